import Foundation
import Thudo

/// An in-memory `SyncClientProtocol` for an app's unit tests: no network and no backend. Code
/// that takes a `SyncClientProtocol` (a view model, a background task) takes this in place of
/// `SyncClient`, and the test scripts what the backend answers.
///
/// What it models, as the real client behaves:
/// - `registrationNonce`, `register` (any non-empty ID token; one device id per vault),
///   `isRegistered`, `devices` and `revokeDevice` (a device id it never gave is `Refused` with
///   `.notFound`);
/// - `sync`: `NotRegistered` before `register`; otherwise the next scripted outcome
///   (`enqueueSync`, `enqueueFailure`), or an empty report when none is left; `offline` makes
///   every network call fail with `Unavailable`, as the real client does after its retries. The
///   observer hears the progress scripted with the outcome. The vault is not touched: what waits
///   to upload still waits;
/// - a fired `CancelToken` fails the call with `Cancelled`, and `shutdown()` fails every later
///   call with `ShutDown`.
///
/// `enrolValidator` fails with `InvalidArgument` (a validator's tests run against the reference
/// backend), and `refreshHealthTrust` finds no bundle (`nil`). Every call is recorded in `calls`.
/// The class is open: override a call to model more.
open class FakeSyncClient: SyncClientProtocol, @unchecked Sendable {
    private let lock = NSLock()
    private var devicesByVault: [ObjectIdentifier: [DeviceInfo]] = [:]
    private var outcomes: [([SyncProgress], Result<SyncReport, SyncError>)] = []
    private var recorded: [String] = []
    private var nextId = 1
    private var closed = false
    private var isOffline = false

    public init() {}

    /// Whether the backend is out of reach: every network call fails with `Unavailable`.
    public var offline: Bool {
        get { lock.withLock { isOffline } }
        set { lock.withLock { isOffline = newValue } }
    }

    /// The calls made so far, by name, oldest first.
    public var calls: [String] { lock.withLock { recorded } }

    /// The next `sync` tells its observer `progress`, then returns `report`.
    public func enqueueSync(_ report: SyncReport, progress: [SyncProgress] = []) {
        lock.withLock { outcomes.append((progress, .success(report))) }
    }

    /// The next `sync` tells its observer `progress`, then throws `error` (`Refused`,
    /// `Unauthorized`, `UpgradeRequired`, ...).
    public func enqueueFailure(_ error: SyncError, progress: [SyncProgress] = []) {
        lock.withLock { outcomes.append((progress, .failure(error))) }
    }

    /// A sync report with the given counts (everything else zero).
    public static func report(pushed: Int64 = 0, pulled: Int64 = 0, rejected: Int64 = 0) -> SyncReport {
        SyncReport(pushed: pushed, duplicates: 0, supersededOnServer: 0, rejected: rejected, pulled: pulled,
                   applied: pulled, supersededLocally: 0, skipped: 0, retries: 0, clockOffsetMs: nil, elapsedMs: 1)
    }

    private func enter(_ name: String, _ cancel: CancelToken?, network: Bool = true) throws {
        let (shut, away) = lock.withLock { () -> (Bool, Bool) in
            recorded.append(name)
            return (closed, isOffline)
        }
        if shut { throw SyncError.ShutDown }
        if cancel?.isCancelled() == true { throw SyncError.Cancelled }
        if network && away { throw SyncError.Unavailable(attempts: 1, last: "offline (FakeSyncClient)") }
    }

    open func registrationNonce(cancel: CancelToken?) async throws -> String {
        try enter("registrationNonce", cancel)
        return lock.withLock {
            defer { nextId += 1 }
            return "fake-nonce-\(nextId)"
        }
    }

    open func register(vault: Vault, idToken: String, deviceName: String, cancel: CancelToken?) async throws -> String {
        try enter("register", cancel)
        if idToken.isEmpty {
            throw SyncError.Refused(status: 403, code: .identityInvalid, wireCode: "identity_invalid", detail: "no ID token")
        }
        return lock.withLock {
            let id = "fake-device-\(nextId)"
            nextId += 1
            let device = DeviceInfo(deviceId: id, name: deviceName, createdAt: Int64(Date().timeIntervalSince1970), current: true)
            devicesByVault[ObjectIdentifier(vault), default: []].append(device)
            return id
        }
    }

    open func isRegistered(vault: Vault) async throws -> Bool {
        try enter("isRegistered", nil, network: false)
        return lock.withLock { !(devicesByVault[ObjectIdentifier(vault)] ?? []).isEmpty }
    }

    open func devices(vault: Vault, cancel: CancelToken?) async throws -> [DeviceInfo] {
        try enter("devices", cancel)
        guard let mine = lock.withLock({ devicesByVault[ObjectIdentifier(vault)] }) else { throw SyncError.NotRegistered }
        return mine
    }

    open func revokeDevice(vault: Vault, deviceId: String, idToken: String, cancel: CancelToken?) async throws {
        try enter("revokeDevice", cancel)
        let outcome: SyncError? = lock.withLock {
            guard var mine = devicesByVault[ObjectIdentifier(vault)] else { return .NotRegistered }
            guard let at = mine.firstIndex(where: { $0.deviceId == deviceId }) else {
                return .Refused(status: 404, code: .notFound, wireCode: "not_found", detail: "no such device on this account")
            }
            mine.remove(at: at)
            devicesByVault[ObjectIdentifier(vault)] = mine
            return nil
        }
        if let error = outcome { throw error }
    }

    open func sync(vault: Vault, library: HandbookLibrary?, observer: SyncObserver?, cancel: CancelToken?) async throws -> SyncReport {
        try enter("sync", cancel)
        let next: ([SyncProgress], Result<SyncReport, SyncError>)? = try lock.withLock {
            if (devicesByVault[ObjectIdentifier(vault)] ?? []).isEmpty { throw SyncError.NotRegistered }
            return outcomes.isEmpty ? nil : outcomes.removeFirst()
        }
        let (progress, result) = next ?? ([], .success(Self.report()))
        progress.forEach { observer?.onProgress(progress: $0) }
        return try result.get()
    }

    open func enrolValidator(vault: Vault, enrolmentCode: String, deviceName: String, cancel: CancelToken?) async throws -> ValidatorEnrolment {
        try enter("enrolValidator", cancel)
        throw SyncError.InvalidArgument(reason: "FakeSyncClient does not enrol validators")
    }

    open func refreshHealthTrust(vault: Vault, cancel: CancelToken?) async throws -> HealthTrustStatus? {
        try enter("refreshHealthTrust", cancel)
        return nil
    }

    open func trustHealthCards(verifier: HealthCardVerifier) {
        lock.withLock { recorded.append("trustHealthCards") }
    }

    open func shutdown() {
        lock.withLock {
            recorded.append("shutdown")
            closed = true
        }
    }
}
