package vn.hanoi.thudo

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow

/**
 * The changes to [collections] (every collection when none is given), as a [Flow]: one list of
 * collection names per committed transaction, after the app's own writes and after sync applies
 * what it pulled. Collect it while a screen is visible and query again on each emission; the
 * observation stops when the collector does.
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

/** The changes to the library's documents (upserts, removals, documents pulled by sync). */
fun HandbookLibrary.changes(): Flow<List<String>> = changesOf { listener -> observe(listener) }

private fun changesOf(observe: (ChangeListener) -> ChangeSubscription): Flow<List<String>> = callbackFlow {
    val subscription = observe(object : ChangeListener {
        override fun onChange(collections: List<String>) {
            // Never blocks the library's thread: the buffer below is unbounded.
            trySend(collections)
        }
    })
    awaitClose {
        subscription.cancel()
        subscription.close()
    }
}.buffer(Channel.UNLIMITED)
