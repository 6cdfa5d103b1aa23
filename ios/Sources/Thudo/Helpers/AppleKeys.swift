// Apple-only helpers: a Keychain key provider for the vault and a Secure Enclave signer for
// the transit device key. Linux builds (CI) skip this file's contents.
#if canImport(Security) && canImport(CryptoKit)
import CryptoKit
import Foundation
import Security

/// Wraps the vault's data key with AES-256-GCM under a key kept in the Keychain (this device
/// only, after first unlock: background sync works, backups do not carry it).
///
/// The key is made only when a new vault is wrapped, never in place of a missing one: a vault
/// restored to a new iPhone (its key stayed behind) throws `VaultError.KeyLost`, a locked
/// device `VaultError.KeyUnavailable` (docs/ios.md, "Key loss and restore").
///
/// ```swift
/// let vault = try await Vault.openWithKeyProvider(path: path, provider: KeychainKeyProvider(), options: nil)
/// ```
public final class KeychainKeyProvider: KeyProvider, @unchecked Sendable {
    private let service: String
    private let account: String

    /// The provider over Keychain item (`service`, `account`), made when a new vault needs it.
    public init(service: String = "vn.hanoi.thudo", account: String = "vault.v1") {
        self.service = service
        self.account = account
    }

    public func keyId() -> String { account }

    private func key(createIfMissing: Bool) throws -> SymmetricKey {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
            kSecReturnData as String: true,
        ]
        var item: CFTypeRef?
        let status = SecItemCopyMatching(query as CFDictionary, &item)
        if status == errSecSuccess, let data = item as? Data { return SymmetricKey(data: data) }
        guard status == errSecItemNotFound else { throw KeyProviderError.Unavailable(reason: "Keychain status \(status)") }
        guard createIfMissing else { throw KeyProviderError.Gone(reason: "no Keychain item \(account) (restored from a backup?)") }
        let key = SymmetricKey(size: .bits256)
        query.removeValue(forKey: kSecReturnData as String)
        query[kSecValueData as String] = key.withUnsafeBytes { Data($0) }
        query[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let added = SecItemAdd(query as CFDictionary, nil)
        guard added == errSecSuccess else { throw KeyProviderError.Unavailable(reason: "Keychain status \(added)") }
        return key
    }

    public func wrapKey(dataKey: Data) throws -> Data {
        guard let combined = try AES.GCM.seal(dataKey, using: try key(createIfMissing: true)).combined else {
            throw KeyProviderError.Unavailable(reason: "AES-GCM failed")
        }
        return combined
    }

    public func unwrapKey(wrapped: Data) throws -> Data {
        let wrappingKey = try self.key(createIfMissing: false)
        do {
            return try AES.GCM.open(try AES.GCM.SealedBox(combined: wrapped), using: wrappingKey)
        } catch {
            throw KeyProviderError.WrongKey
        }
    }
}

/// Where a vault lives on iOS: a directory excluded from iCloud and device backups (a vault must
/// never reach another iPhone without its Keychain key, where it would only be reported
/// `VaultError.KeyLost`) and protected at rest by the system.
public enum VaultLocation {
    /// Makes (if needed) and prepares `Application Support/thudo/<name>`, and returns its path.
    /// `protection` defaults to readable after the first unlock, so background refresh can
    /// open the vault; use `.complete` if the app never syncs in the background.
    public static func prepared(
        name: String = "vault",
        protection: FileProtectionType = .completeUntilFirstUserAuthentication
    ) throws -> String {
        let base = try FileManager.default.url(for: .applicationSupportDirectory, in: .userDomainMask,
                                               appropriateFor: nil, create: true)
        var directory = base.appendingPathComponent("thudo", isDirectory: true).appendingPathComponent(name, isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.protectionKey: protection])
        try FileManager.default.setAttributes([.protectionKey: protection], ofItemAtPath: directory.path)
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        try directory.setResourceValues(values)
        return directory.path
    }
}

/// The transit device key in the Secure Enclave: P-256, never exportable. Its encrypted handle
/// (usable only by this device's enclave) is kept in the Keychain.
///
/// ```swift
/// let phone = try await TransitPhone.open(vault: vault, signer: try SecureEnclaveSigner(), refreshSecs: 5)
/// ```
public final class SecureEnclaveSigner: TransitSigner, @unchecked Sendable {
    private let key: SecureEnclave.P256.Signing.PrivateKey

    /// Loads the key named `tag`, or makes it when the Keychain holds none. Any other Keychain
    /// answer (locked before the first unlock, a damaged item) throws `SignerError`, and no key
    /// is made in place of one that may still be there: the credentials bound to it stay.
    public init(tag: String = "vn.hanoi.thudo.transit.device.v1") throws {
        guard SecureEnclave.isAvailable else { throw SignerError.Failed(reason: "no Secure Enclave") }
        let query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: tag,
            kSecReturnData as String: true,
        ]
        var item: CFTypeRef?
        let found = SecItemCopyMatching(query as CFDictionary, &item)
        switch found {
        case errSecSuccess:
            guard let blob = item as? Data else {
                throw SignerError.Failed(reason: "the Keychain item for the device key holds no data")
            }
            key = try SecureEnclave.P256.Signing.PrivateKey(dataRepresentation: blob)
        case errSecItemNotFound:
            key = try SecureEnclave.P256.Signing.PrivateKey()
            let add: [String: Any] = [
                kSecClass as String: kSecClassGenericPassword,
                kSecAttrService as String: tag,
                kSecValueData as String: key.dataRepresentation,
                kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
            ]
            let added = SecItemAdd(add as CFDictionary, nil)
            guard added == errSecSuccess else {
                throw SignerError.Failed(reason: "the device key could not be kept (Keychain status \(added))")
            }
        default:
            throw SignerError.Failed(reason: "the Keychain did not give the device key (status \(found))")
        }
    }

    public func publicKey() throws -> Data { key.publicKey.x963Representation }

    public func sign(message: Data) throws -> Data {
        do {
            return try key.signature(for: message).rawRepresentation
        } catch {
            throw SignerError.Failed(reason: "\(error)")
        }
    }
}
#endif
