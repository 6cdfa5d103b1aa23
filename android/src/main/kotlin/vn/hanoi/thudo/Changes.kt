package vn.hanoi.thudo

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow

/**
 * The changes to [collections] (every collection when none is given), as a [Flow]: one list of
 * collection names per committed transaction, after the app's own writes and after sync applies
 * what it pulled. Collect it while a screen is visible and query again on each emission; the
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

/** The changes to the library's documents (upserts, removals, documents pulled by sync). */
fun HandbookLibrary.changes(): Flow<List<String>> = changesOf { listener -> observe(listener) }

// `flow {}` rather than `callbackFlow`: the observation is registered in the collector's own
// coroutine as collection starts, so a collector launched with `CoroutineStart.UNDISPATCHED`
// observes before `launch` returns and misses no write made after it.
private fun changesOf(observe: (ChangeListener) -> ChangeSubscription): Flow<List<String>> = flow {
    // Unbounded: the library's thread never waits for a slow collector.
    val received = Channel<List<String>>(Channel.UNLIMITED)
    val subscription = observe(object : ChangeListener {
        override fun onChange(collections: List<String>) {
            received.trySend(collections)
        }
    })
    try {
        for (collections in received) emit(collections)
    } finally {
        subscription.cancel()
        subscription.close()
    }
}
