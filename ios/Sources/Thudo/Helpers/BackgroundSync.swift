import Foundation

/// What a background task should do after `backgroundSync`.
public enum BackgroundSyncResult: Sendable {
    /// Synced: `task.setTaskCompleted(success: true)`. `renewals`: what became of each transit
    /// credential due for renewal (empty without a phone, or when none was due).
    case success(SyncReport, renewals: [CredentialRenewal])
    /// Try again at the next opportunity (offline, out of time, device locked): schedule the
    /// next refresh and complete the task with `success: false`.
    case retry(String)
    /// Retrying will not help until the app acts (not registered, token refused).
    case failure(String)
}

/// An iOS refresh task (`BGAppRefreshTask`) has about 30 seconds.
public let backgroundRefreshBudgetMs: Int64 = 25_000

/// One sync for a background task: pushes the outbox and pulls everything within `budgetMs`,
/// and sorts any failure into retry-later or give-up. Nothing is lost either way. Cancel
/// `token` from the task's expiration handler to stop at once; the client stays usable.
///
/// With `transitPhone`, it then renews, free, every transit credential ending within
/// `renewWithinSecs` (48 hours by default, before the phone's one-day expiry warning), so a rider
/// whose phone syncs at least every three days never sees a credential end while the pass holds;
/// a refused renewal (the pass ended) is reported in `renewals`.
///
/// It takes the protocols, so a task's tests run it on the fakes (`FakeSyncClient`, and
/// `FakeTransitClient` as `transit`); `transit` defaults to the real client's transit calls.
/// A `transitPhone` with no `transit` (a fake sync client alone) is a `.failure`, before anything
/// is synced.
///
/// ```swift
/// BGTaskScheduler.shared.register(forTaskWithIdentifier: "vn.hanoi.thudo.sync", using: nil) { task in
///     let token = CancelToken.withTimeoutMs(budgetMs: backgroundRefreshBudgetMs)
///     task.expirationHandler = { token.cancel() }
///     Task {
///         let result = await backgroundSync(client: App.sync, vault: App.vault, token: token, transitPhone: App.transit)
///         if case .success = result { task.setTaskCompleted(success: true) } else { task.setTaskCompleted(success: false) }
///     }
/// }
/// ```
public func backgroundSync(
    client: SyncClientProtocol,
    vault: Vault,
    library: HandbookLibrary? = nil,
    observer: SyncObserver? = nil,
    token: CancelToken = CancelToken.withTimeoutMs(budgetMs: backgroundRefreshBudgetMs),
    transitPhone: TransitPhone? = nil,
    renewWithinSecs: Int64 = 172_800,
    transit: TransitClientProtocol? = nil
) async -> BackgroundSyncResult {
    let renewer = transitPhone == nil ? nil : transit ?? (client as? SyncClient).map { TransitClient(client: $0) }
    if transitPhone != nil && renewer == nil {
        return .failure("a transit phone needs a transit client (pass transit:)")
    }
    do {
        let report = try await client.sync(vault: vault, library: library, observer: observer, cancel: token)
        var renewals: [CredentialRenewal] = []
        if let phone = transitPhone, let renewer {
            renewals = try await renewer.renewCredentials(
                vault: vault, phone: phone, withinSecs: renewWithinSecs, cancel: token)
        }
        return .success(report, renewals: renewals)
    } catch let error as SyncError {
        // Closed: the app shut the vault meanwhile; the next run opens it again.
        if error.isRetryable() { return .retry(error.localizedDescription) }
        if case .Vault(fault: .closed) = error { return .retry(error.localizedDescription) }
        return .failure(error.localizedDescription)
    } catch {
        return .failure("\(error)")
    }
}
