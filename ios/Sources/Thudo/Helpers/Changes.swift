import Foundation

/// The collection names written since the iterator last took them: a set, so it stays as small
/// as the number of collections however many transactions commit meanwhile.
private final class PendingNames: @unchecked Sendable {
    private let lock = NSLock()
    private var names = Set<String>()

    func add(_ collections: [String]) {
        lock.lock()
        names.formUnion(collections)
        lock.unlock()
    }

    func take() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        let taken = names.sorted()
        names.removeAll()
        return taken
    }
}

/// Adds each change to the pending names and signals the iterator, never waiting.
private final class StreamListener: ChangeListener, @unchecked Sendable {
    private let pending: PendingNames
    private let signal: AsyncStream<Void>.Continuation
    init(_ pending: PendingNames, _ signal: AsyncStream<Void>.Continuation) {
        self.pending = pending
        self.signal = signal
    }
    func onChange(collections: [String]) {
        pending.add(collections)
        signal.yield(())
    }
}

/// One observation: its pending names and the signals that wake its iterator. Observing
/// starts when it is made and ends when its signals end (the iterating task cancelled, or the
/// iterator released).
private struct Observation: Sendable {
    let pending: PendingNames
    let signals: AsyncStream<Void>

    init(_ observe: @Sendable (ChangeListener) -> ChangeSubscription) {
        let pending = PendingNames()
        self.pending = pending
        // One signal at most waits: a later one adds nothing the pending set does not hold.
        self.signals = AsyncStream(bufferingPolicy: .bufferingNewest(1)) { continuation in
            let subscription = observe(StreamListener(pending, continuation))
            continuation.onTermination = { _ in subscription.cancel() }
        }
    }
}

/// The observation a stream starts when it is made, for its first iterator.
private final class FirstObservation: @unchecked Sendable {
    private let lock = NSLock()
    private var first: Observation?

    init(_ first: Observation) { self.first = first }

    func take() -> Observation? {
        lock.lock()
        defer { lock.unlock() }
        let taken = first
        first = nil
        return taken
    }
}

/// A store's changes as an `AsyncSequence` of collection-name lists (sorted, each once).
/// Coalesced and bounded: transactions that commit while the loop body runs arrive merged in
/// the next list, so a sync applying thousands of records is one refresh, and nothing queues
/// up behind a slow screen. The first iteration hears every change from the stream's making;
/// each later one (a stream kept in a view model, iterated again by each `.task`) observes
/// afresh from its start, so a view that comes back keeps refreshing and two loops each hear
/// every change. An observation ends when its iterating task is cancelled or its iterator is
/// released.
public struct ChangeStream: AsyncSequence, Sendable {
    public typealias Element = [String]

    private let observe: @Sendable (ChangeListener) -> ChangeSubscription
    private let first: FirstObservation

    fileprivate init(_ observe: @escaping @Sendable (ChangeListener) -> ChangeSubscription) {
        self.observe = observe
        self.first = FirstObservation(Observation(observe))
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate var signals: AsyncStream<Void>.AsyncIterator
        fileprivate let pending: PendingNames

        public mutating func next() async -> [String]? {
            while await signals.next() != nil {
                let names = pending.take()
                if !names.isEmpty { return names }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        let observation = first.take() ?? Observation(observe)
        return AsyncIterator(signals: observation.signals.makeAsyncIterator(), pending: observation.pending)
    }
}

extension Vault {
    /// The changes to `collections` (every collection when empty), as an `AsyncSequence`: the
    /// collection names written, after the app's own writes and after sync applies what it
    /// pulled; transactions that commit while the loop body runs arrive merged. Iterate it in
    /// SwiftUI's `.task { }` and query again on each element; the observation stops when the
    /// task is cancelled.
    ///
    /// ```swift
    /// .task { for await _ in vault.changes(["handbook.note"]) { notes = try? await handbook.notesFor(documentId: id) } }
    /// ```
    public func changes(_ collections: [String] = []) -> ChangeStream {
        ChangeStream { self.observe(collections: collections, listener: $0) }
    }

    /// `["reminders"]` after committed changes that may change `upcomingReminders` (a
    /// meeting, a fee payment, a person or immunization, a transit credential): list them again
    /// and reschedule the local notifications.
    public func reminderChanges() -> ChangeStream {
        ChangeStream { observeReminders(vault: self, listener: $0) }
    }
}

/// The sync status (`syncStatus(vault:)`) now, and again after every change to it: a local
/// change queued, an upload acknowledged or refused, a sync started or finished. Equal statuses
/// in a row come once; a burst of changes is one read.
public struct SyncStatusStream: AsyncSequence, Sendable {
    public typealias Element = SyncStatus

    private let vault: Vault
    private let changes: ChangeStream

    fileprivate init(_ vault: Vault) {
        self.vault = vault
        // Observing from here on, before the first read: nothing is missed.
        self.changes = ChangeStream { observeSyncStatus(vault: vault, listener: $0) }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let vault: Vault
        fileprivate var changes: ChangeStream.AsyncIterator
        fileprivate var started = false
        fileprivate var last: SyncStatus?

        public mutating func next() async throws -> SyncStatus? {
            while true {
                if started {
                    guard await changes.next() != nil else { return nil }
                }
                started = true
                let now = try await syncStatus(vault: vault)
                if now != last {
                    last = now
                    return now
                }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(vault: vault, changes: changes.makeAsyncIterator())
    }
}

extension Vault {
    /// The sync status now and after every change to it, for the line beside the sync button
    /// ("3 changes waiting", "last synced 10:42") while offline.
    ///
    /// ```swift
    /// .task { for try await s in vault.syncStatusChanges() { waiting = s.pendingUploads } }
    /// ```
    public func syncStatusChanges() -> SyncStatusStream {
        SyncStatusStream(self)
    }
}

extension HandbookLibrary {
    /// The changes to the library's documents (upserts, removals, documents pulled by sync).
    public func changes() -> ChangeStream {
        ChangeStream { self.observe(listener: $0) }
    }
}
