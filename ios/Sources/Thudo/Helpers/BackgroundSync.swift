import Foundation

/// What a background task should do after `backgroundSync`.
public enum BackgroundSyncResult: Sendable {
    /// Synced: `task.setTaskCompleted(success: true)`.
    case success(SyncReport)
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
/// ```swift
/// BGTaskScheduler.shared.register(forTaskWithIdentifier: "vn.hanoi.thudo.sync", using: nil) { task in
///     let token = CancelToken.withTimeoutMs(budgetMs: backgroundRefreshBudgetMs)
///     task.expirationHandler = { token.cancel() }
///     Task {
///         let result = await backgroundSync(client: App.sync, vault: App.vault, token: token)
///         if case .success = result { task.setTaskCompleted(success: true) } else { task.setTaskCompleted(success: false) }
///     }
/// }
/// ```
public func backgroundSync(
    client: SyncClient,
    vault: Vault,
    library: HandbookLibrary? = nil,
    observer: SyncObserver? = nil,
    token: CancelToken = CancelToken.withTimeoutMs(budgetMs: backgroundRefreshBudgetMs)
) async -> BackgroundSyncResult {
    do {
        return .success(try await client.sync(vault: vault, library: library, observer: observer, cancel: token))
    } catch let error as SyncError {
        // Closed: the app shut the vault meanwhile; the next run opens it again.
        if error.isRetryable() { return .retry(error.localizedDescription) }
        if case .Closed = error { return .retry(error.localizedDescription) }
        return .failure(error.localizedDescription)
    } catch {
        return .failure("\(error)")
    }
}
