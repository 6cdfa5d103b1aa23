package vn.hanoi.thudo

/** What a background job should do after [backgroundSync]: WorkManager's three outcomes. */
sealed class BackgroundSyncResult {
    /**
     * Synced; `Result.success()`. [renewals]: what became of each transit credential due for
     * renewal (empty without a phone, or when none was due).
     */
    data class Success(val report: SyncReport, val renewals: List<CredentialRenewal> = emptyList()) : BackgroundSyncResult()

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
 * With [transitPhone], it then renews, free, every transit credential ending within
 * [renewWithinSecs] (48 hours by default, before the phone's one-day expiry warning), so a rider
 * whose phone syncs at least every three days never sees a credential end while the pass holds;
 * a refused renewal (the pass ended) is reported in [BackgroundSyncResult.Success.renewals].
 *
 * It takes the interfaces, so a worker's tests run it on the fakes (`FakeSyncClient`, and
 * `FakeTransitClient` as [transit]); [transit] defaults to the real client's transit calls.
 * A [transitPhone] with no [transit] (a fake sync client alone) is a [BackgroundSyncResult.Failure],
 * before anything is synced.
 *
 * The sync stops by itself after [budgetMs] (default 9 minutes, inside WorkManager's 10) and
 * asks for a retry; cancelling the worker's coroutine stops it at once. The client stays usable.
 *
 * ```kotlin
 * class ThudoSyncWorker(ctx: Context, params: WorkerParameters) : CoroutineWorker(ctx, params) {
 *     override suspend fun doWork(): Result = when (backgroundSync(App.sync, App.vault, App.library, transitPhone = App.transit)) {
 *         is BackgroundSyncResult.Success -> Result.success()
 *         is BackgroundSyncResult.Retry -> Result.retry()
 *         is BackgroundSyncResult.Failure -> Result.failure()
 *     }
 * }
 * ```
 */
suspend fun backgroundSync(
    client: SyncClientInterface,
    vault: Vault,
    library: HandbookLibrary? = null,
    observer: SyncObserver? = null,
    budgetMs: Long = WORK_MANAGER_BUDGET_MS,
    transitPhone: TransitPhone? = null,
    renewWithinSecs: Long = 172_800L,
    transit: TransitClientInterface? = null,
): BackgroundSyncResult = try {
    val renewer = transit ?: (client as? SyncClient)?.takeIf { transitPhone != null }?.let(::TransitClient)
    if (transitPhone != null && renewer == null) {
        BackgroundSyncResult.Failure("a transit phone needs a transit client (pass transit)")
    } else {
        val token = CancelToken.withTimeoutMs(budgetMs)
        val report = client.sync(vault, library, observer, token)
        val renewals = transitPhone?.let { renewer?.renewCredentials(vault, it, renewWithinSecs, token) }
        BackgroundSyncResult.Success(report, renewals.orEmpty())
    }
} catch (e: SyncException) {
    // Closed: the app shut the vault meanwhile; the next run opens it again.
    val closed = e is SyncException.Vault && e.fault is VaultFault.Closed
    if (e.isRetryable() || closed) BackgroundSyncResult.Retry(e.toString())
    else BackgroundSyncResult.Failure(e.toString())
}

/** A WorkManager run may last 10 minutes; stop a little before the system does. */
const val WORK_MANAGER_BUDGET_MS: Long = 9 * 60_000L
