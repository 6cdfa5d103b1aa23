import Foundation

/// Runs `body` with a `CancelToken` that fires when the calling `Task` is cancelled (a view
/// disappears, a `.task` modifier ends, a parent task gives up), so every call that takes a
/// token stops at its next step with `SyncError.Cancelled` and nothing waits on the network.
/// A token already fired, or a task already cancelled, stops the calls before they start.
///
/// ```swift
/// .task {
///     let devices = try? await withCancelToken { token in
///         try await App.sync.devices(vault: App.vault, cancel: token)
///     }
/// }
/// ```
/// `body` runs in the caller's isolation (`isolation`, the main actor from a view): it may
/// touch the caller's state without crossing actors.
public func withCancelToken<T>(
    isolation: isolated (any Actor)? = #isolation,
    budgetMs: Int64? = nil,
    _ body: (CancelToken) async throws -> T
) async throws -> T {
    let token = budgetMs.map { CancelToken.withTimeoutMs(budgetMs: $0) } ?? CancelToken()
    return try await withTaskCancellationHandler {
        if Task.isCancelled { token.cancel() }
        return try await body(token)
    } onCancel: {
        token.cancel()
    }
}
