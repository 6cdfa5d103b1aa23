package vn.hanoi.thudo

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.distinctUntilChanged
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.map

/**
 * The changes to [collections] (every collection when none is given), as a [Flow]: a list of
 * the collection names written, after the app's own writes and after sync applies what it
 * pulled. Transactions that commit while the collector is busy arrive merged in one list (a
 * sync of thousands of records is one refresh, not thousands). Collect it while a screen is visible and query again on each emission; the
 * observation starts when collection starts and stops when the collector does.
 *
 * ```kotlin
 * repeatOnLifecycle(Lifecycle.State.STARTED) {
 *     vault.changes("handbook.note").collect { notes = handbook.notesFor(documentId) }
 * }
 * ```
 *
 * Collection names: docs/android.md, "Observing changes".
 */
fun Vault.changes(vararg collections: String): Flow<List<String>> =
    changesOf { listener -> observe(collections.toList(), listener) }

/**
 * Emits `["reminders"]` after every committed change that may change [upcomingReminders] (a
 * meeting, a fee payment, a person or immunization, a transit credential): list them again and
 * reschedule the local notifications.
 */
fun Vault.reminderChanges(): Flow<List<String>> = changesOf { listener -> observeReminders(this, listener) }

/**
 * The sync status ([syncStatus]: changes waiting to upload, refusals, the last sync that
 * finished and the last one tried) now, and again after every change to it: a local change
 * queued, an upload acknowledged or refused, a sync started or finished. For the line beside
 * the sync button ("3 changes waiting", "last synced 10:42") while offline. Equal statuses in a
 * row are emitted once; a burst of changes is one read.
 */
fun Vault.syncStatusChanges(): Flow<SyncStatus> =
    changesOf(now = true) { listener -> observeSyncStatus(this, listener) }
        .map { syncStatus(this) }
        .distinctUntilChanged()

/** The changes to the library's documents (upserts, removals, documents pulled by sync). */
fun HandbookLibrary.changes(): Flow<List<String>> = changesOf { listener -> observe(listener) }

// `flow {}` rather than `callbackFlow`: the observation is registered in the collector's own
// coroutine as collection starts, so a collector launched with `CoroutineStart.UNDISPATCHED`
// observes before `launch` returns and misses no write made after it.
//
// Coalesced and bounded: the library's thread adds the names to a set and signals a conflated
// channel, never waiting; the collector takes the whole set at each signal. A slow collector
// gets one list with every collection written since its last one, never a backlog.
// `now`: emit an empty list first, once observing, for a caller that reads the current state.
private fun changesOf(now: Boolean = false, observe: (ChangeListener) -> ChangeSubscription): Flow<List<String>> = flow {
    val pending = sortedSetOf<String>()
    val signal = Channel<Unit>(Channel.CONFLATED)
    val subscription = observe(object : ChangeListener {
        override fun onChange(collections: List<String>) {
            synchronized(pending) { pending.addAll(collections) }
            signal.trySend(Unit)
        }
    })
    try {
        if (now) emit(emptyList())
        for (ignored in signal) {
            val collections = synchronized(pending) { pending.toList().also { pending.clear() } }
            if (collections.isNotEmpty()) emit(collections)
        }
    } finally {
        subscription.cancel()
        subscription.close()
    }
}
