import Foundation
import XCTest

@testable import Thudo

/// A KeyProvider written in Swift. Real apps wrap with a Keychain or Secure Enclave key
/// (docs/ios.md); here a 32-byte pad held by the test stands in for it, prefixed with the key id
/// so that a different provider reports `WrongKey` itself.
final class PadKeyProvider: KeyProvider, @unchecked Sendable {
    let id: String
    let pad: [UInt8]
    var locked = false
    /// The key no longer exists (the app was restored to a new phone).
    var gone = false
    private(set) var calls = 0

    init(id: String) {
        self.id = id
        self.pad = (0..<32).map { _ in UInt8.random(in: 0...255) }
    }

    func keyId() -> String { id }

    func wrapKey(dataKey: Data) throws -> Data {
        calls += 1
        return Data(id.utf8) + Data(zip(dataKey, pad).map { $0 ^ $1 })
    }

    func unwrapKey(wrapped: Data) throws -> Data {
        calls += 1
        if locked { throw KeyProviderError.Unavailable(reason: "device is locked") }
        if gone { throw KeyProviderError.Gone(reason: "no such Keychain item") }
        let prefix = Data(id.utf8)
        guard wrapped.starts(with: prefix) else { throw KeyProviderError.WrongKey }
        return Data(zip(wrapped.dropFirst(prefix.count), pad).map { $0 ^ $1 })
    }
}

/// Cheap PBKDF2 for tests only; apps keep the 600,000-iteration default.
let testOptions = VaultOptions(kdfIterations: 10_000, cipher: nil)

final class VaultTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func path(_ name: String = "vault") -> String { dir.appendingPathComponent(name).path }

    func testKeyProviderOpenPutGetQueryListDelete() async throws {
        let provider = PadKeyProvider(id: "swift-key-1")
        let vault = try await Vault.openWithKeyProvider(path: path(), provider: provider, options: testOptions)
        XCTAssertGreaterThanOrEqual(provider.calls, 1, "the Swift provider wrapped the data key")
        try await vault.put(collection: "health.visit", id: "v1", body: Data("Khám tổng quát".utf8), index: ["person": "me"])
        try await vault.put(collection: "health.visit", id: "v2", body: Data("Tiêm phòng".utf8), index: ["person": "child"])
        try await vault.put(collection: "health.visit", id: "v3", body: Data(), index: ["person": "me"])

        let record = try await vault.get(collection: "health.visit", id: "v1")
        XCTAssertEqual(String(decoding: record.body, as: UTF8.self), "Khám tổng quát")
        XCTAssertEqual(record.index, ["person": "me"])
        let mine = try await vault.query(collection: "health.visit", field: "person", value: "me")
        XCTAssertEqual(mine.map(\.id), ["v1", "v3"])
        let all = try await vault.list(collection: "health.visit")
        XCTAssertEqual(all.map(\.id), ["v1", "v2", "v3"])
        let deleted = try await vault.delete(collection: "health.visit", id: "v2")
        XCTAssertTrue(deleted)
        let missing = try await vault.find(collection: "health.visit", id: "v2")
        XCTAssertNil(missing)
        do {
            _ = try await vault.get(collection: "health.visit", id: "v2")
            XCTFail("expected NotFound")
        } catch VaultError.NotFound(let collection) {
            XCTAssertEqual(collection, "health.visit")
        }
        await vault.shutdown()

        let again = try await Vault.openWithKeyProvider(path: path(), provider: provider, options: testOptions)
        let count = try await again.count(collection: "health.visit")
        XCTAssertEqual(count, 2)
        await again.shutdown()
    }

    func testTransactionIsAllOrNothing() async throws {
        let vault = try await Vault.openWithPassphrase(path: path(), passphrase: "pass", options: testOptions)
        try await vault.writeBatch(ops: [
            .put(collection: "notes", id: "a", body: Data("A".utf8), index: [:]),
            .put(collection: "notes", id: "b", body: Data("B".utf8), index: [:]),
        ])
        do {
            try await vault.writeBatch(ops: [
                .delete(collection: "notes", id: "a"),
                .put(collection: "notes", id: "c", body: Data(), index: [:]),
                .put(collection: "Bad Collection", id: "d", body: Data(), index: [:]),
            ])
            XCTFail("expected InvalidArgument")
        } catch VaultError.InvalidArgument(let reason) {
            XCTAssertTrue(reason.contains("collection"), reason)
        }
        let ids = try await vault.list(collection: "notes").map(\.id)
        XCTAssertEqual(ids, ["a", "b"])
        await vault.shutdown()
    }

    func testWrongKeysAreTypedErrorsAndDamageNothing() async throws {
        let p = path()
        let vault = try await Vault.openWithPassphrase(path: p, passphrase: "right", options: testOptions)
        try await vault.put(collection: "c", id: "id", body: Data("data".utf8), index: [:])
        await vault.shutdown()
        do {
            _ = try await Vault.openWithPassphrase(path: p, passphrase: "wrong", options: testOptions)
            XCTFail("expected WrongKey")
        } catch VaultError.WrongKey(let reason) {
            XCTAssertFalse(reason.contains("right"))
        }
        do {
            _ = try await Vault.openWithKeyProvider(path: p, provider: PadKeyProvider(id: "k"), options: testOptions)
            XCTFail("expected WrongKey")
        } catch VaultError.WrongKey {}
        let reopened = try await Vault.openWithPassphrase(path: p, passphrase: "right", options: testOptions)
        let body = try await reopened.get(collection: "c", id: "id").body
        XCTAssertEqual(body, Data("data".utf8))
        await reopened.shutdown()

        // Same key id, other pad: the provider returns a wrong key; the vault's key check catches it.
        let providerPath = path("p")
        let provider = PadKeyProvider(id: "k1")
        await (try await Vault.openWithKeyProvider(path: providerPath, provider: provider, options: testOptions)).shutdown()
        do {
            _ = try await Vault.openWithKeyProvider(path: providerPath, provider: PadKeyProvider(id: "k1"), options: testOptions)
            XCTFail("expected WrongKey")
        } catch VaultError.WrongKey {}
        provider.locked = true
        do {
            _ = try await Vault.openWithKeyProvider(path: providerPath, provider: provider, options: testOptions)
            XCTFail("expected KeyUnavailable")
        } catch let error as VaultError {
            guard case .KeyUnavailable(let reason) = error else { return XCTFail("expected KeyUnavailable, got \(error)") }
            XCTAssertTrue(reason.contains("locked"))
            XCTAssertEqual(error.code(), "vault.key_unavailable")
            XCTAssertTrue(error.isRetryable())
        }

        // Restored to a new phone without its key: told apart from a wrong or locked key, and the
        // vault is untouched until the app destroys it.
        provider.locked = false
        provider.gone = true
        do {
            _ = try await Vault.openWithKeyProvider(path: providerPath, provider: provider, options: testOptions)
            XCTFail("expected KeyLost")
        } catch let error as VaultError {
            guard case .KeyLost = error else { return XCTFail("expected KeyLost, got \(error)") }
            XCTAssertEqual(error.code(), "vault.key_lost")
            XCTAssertFalse(error.isRetryable())
            XCTAssertTrue(error.localizedDescription.hasPrefix("the vault's key is gone"), error.localizedDescription)
        }
        provider.gone = false
        await (try await Vault.openWithKeyProvider(path: providerPath, provider: provider, options: testOptions)).shutdown()
        try await destroyVault(path: providerPath)
    }

    func testRotationsBackupAndWipe() async throws {
        let p = path()
        let vault = try await Vault.openWithPassphrase(path: p, passphrase: "old", options: testOptions)
        for i in 0..<20 {
            try await vault.put(collection: "c", id: "r\(i)", body: Data("body \(i)".utf8), index: ["even": String(i % 2 == 0)])
        }
        try await vault.changePassphrase(old: "old", new: "new")
        // A long operation stopped by its token keeps nothing of itself and may run again.
        let stopped = CancelToken()
        stopped.cancel()
        do {
            _ = try await vault.rotateDataKey(cancel: stopped)
            XCTFail("a stopped rotation ran")
        } catch let error as VaultError {
            guard case .Cancelled = error else { return XCTFail("\(error)") }
            XCTAssertEqual(error.code(), "vault.cancelled")
            XCTAssertTrue(error.isRetryable())
        }
        let stoppedFile = dir.appendingPathComponent("stopped.thudo").path
        do {
            _ = try await vault.exportBackup(path: stoppedFile, passphrase: "x", cancel: stopped)
            XCTFail("a stopped export ran")
        } catch VaultError.Cancelled {}
        XCTAssertFalse(FileManager.default.fileExists(atPath: stoppedFile))
        let rotated = try await vault.rotateDataKey()
        XCTAssertEqual(rotated, 20)
        let evens = try await vault.query(collection: "c", field: "even", value: "true")
        XCTAssertEqual(evens.count, 10)
        let backup = dir.appendingPathComponent("backup.thudo").path
        let exported = try await vault.exportBackup(path: backup, passphrase: "backup secret")
        XCTAssertEqual(exported, 20)
        let provider = PadKeyProvider(id: "k")
        try await vault.rotateKeyProvider(provider: provider)
        await vault.shutdown()

        let restored = try await Vault.openWithPassphrase(path: path("restored"), passphrase: "x", options: testOptions)
        do {
            _ = try await restored.importBackup(path: backup, passphrase: "bad")
            XCTFail("expected WrongKey")
        } catch VaultError.WrongKey {}
        let imported = try await restored.importBackup(path: backup, passphrase: "backup secret")
        XCTAssertEqual(imported, 20)
        await restored.shutdown()

        let reopened = try await Vault.openWithKeyProvider(path: p, provider: provider, options: testOptions)
        try await reopened.wipe()
        XCTAssertTrue(reopened.isClosed())
        XCTAssertFalse(FileManager.default.fileExists(atPath: p + "/vault.db"))
    }

    func testClosedVaultAndBadInput() async throws {
        let vault = try await Vault.openWithPassphrase(path: path(), passphrase: "p", options: testOptions)
        do {
            try await vault.put(collection: "c", id: "", body: Data(), index: [:])
            XCTFail("expected InvalidArgument")
        } catch VaultError.InvalidArgument {}
        do {
            _ = try await Vault.openWithPassphrase(path: path("weak"), passphrase: "p",
                                                   options: VaultOptions(kdfIterations: 1000, cipher: nil))
            XCTFail("expected InvalidArgument")
        } catch VaultError.InvalidArgument {}
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask { try await vault.put(collection: "c", id: "id\(i)", body: Data([UInt8(i)]), index: [:]) }
            }
            try await group.waitForAll()
        }
        let count = try await vault.count(collection: "c")
        XCTAssertEqual(count, 20)
        await vault.shutdown()
        do {
            _ = try await vault.count(collection: "c")
            XCTFail("expected Closed")
        } catch VaultError.Closed {}
        XCTAssertEqual(vaultSchemaVersion(), 1)
    }
}
