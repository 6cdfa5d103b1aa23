package vn.hanoi.thudo

/** What a background job should do after [backgroundSync]: WorkManager's three outcomes. */
sealed class BackgroundSyncResult {
    /** Synced; `Result.success()`. */
    data class Success(val report: SyncReport) : BackgroundSyncResult()

    /** Try again later with the job's backoff (offline, server busy, cancelled); `Result.retry()`. */
    data class Retry(val reason: String) : BackgroundSyncResult()

    /** Retrying will not help until the app acts (not registered, token refused, bad URL); `Result.failure()`. */
    data class Failure(val reason: String) : BackgroundSyncResult()
}

/**
 * One sync for a background job (WorkManager's `CoroutineWorker.doWork`, or a foreground
 * service): pushes the outbox and pulls everything, and sorts any failure into retry-later or
 * give-up. Nothing is lost either way: the outbox stays until the server acknowledges it.
 *
 * ```kotlin
 * class ThudoSyncWorker(ctx: Context, params: WorkerParameters) : CoroutineWorker(ctx, params) {
 *     override suspend fun doWork(): Result = when (backgroundSync(App.sync, App.vault, App.library)) {
 *         is BackgroundSyncResult.Success -> Result.success()
 *         is BackgroundSyncResult.Retry -> Result.retry()
 *         is BackgroundSyncResult.Failure -> Result.failure()
 *     }
 * }
 * ```
 */
suspend fun backgroundSync(
    client: SyncClient,
    vault: Vault,
    library: HandbookLibrary? = null,
    observer: SyncObserver? = null,
): BackgroundSyncResult = try {
    BackgroundSyncResult.Success(client.sync(vault, library, observer))
} catch (e: SyncException) {
    when (e) {
        // Locked: the device is locked, the key comes back after unlock; Closed: the app shut
        // the vault meanwhile. Both are worth another run.
        is SyncException.Unavailable, is SyncException.Cancelled, is SyncException.Storage,
        is SyncException.Protocol, is SyncException.Locked, is SyncException.Closed ->
            BackgroundSyncResult.Retry(e.message ?: e.javaClass.simpleName)
        is SyncException.NotRegistered, is SyncException.Unauthorized, is SyncException.InsecureUrl,
        is SyncException.Refused, is SyncException.NotEntitled, is SyncException.Internal ->
            BackgroundSyncResult.Failure(e.message ?: e.javaClass.simpleName)
    }
}
