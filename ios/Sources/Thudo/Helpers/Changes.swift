import Foundation

/// Forwards a store's changes into an `AsyncStream`.
private final class StreamListener: ChangeListener, @unchecked Sendable {
    private let continuation: AsyncStream<[String]>.Continuation
    init(_ continuation: AsyncStream<[String]>.Continuation) { self.continuation = continuation }
    func onChange(collections: [String]) { continuation.yield(collections) }
}

private func changes(_ observe: @escaping @Sendable (ChangeListener) -> ChangeSubscription) -> AsyncStream<[String]> {
    AsyncStream(bufferingPolicy: .unbounded) { continuation in
        let subscription = observe(StreamListener(continuation))
        continuation.onTermination = { _ in subscription.cancel() }
    }
}

extension Vault {
    /// The changes to `collections` (every collection when empty), as an `AsyncSequence`: one
    /// list of collection names per committed transaction, after the app's own writes and after
    /// sync applies what it pulled. Iterate it in SwiftUI's `.task { }` and query again on each
    /// element; the observation stops when the task is cancelled.
    ///
    /// ```swift
    /// .task { for await _ in vault.changes(["handbook.note"]) { notes = try? await handbook.notesFor(documentId: id) } }
    /// ```
    public func changes(_ collections: [String] = []) -> AsyncStream<[String]> {
        Thudo.changes { self.observe(collections: collections, listener: $0) }
    }

    /// `["reminders"]` after every committed change that may change `upcomingReminders` (a
    /// meeting, a fee payment, a person or immunization, a transit credential): list them again
    /// and reschedule the local notifications.
    public func reminderChanges() -> AsyncStream<[String]> {
        Thudo.changes { observeReminders(vault: self, listener: $0) }
    }
}

extension HandbookLibrary {
    /// The changes to the library's documents (upserts, removals, documents pulled by sync).
    public func changes() -> AsyncStream<[String]> {
        Thudo.changes { self.observe(listener: $0) }
    }
}
