package vn.hanoi.thudo.testing

import java.util.IdentityHashMap
import vn.hanoi.thudo.CancelToken
import vn.hanoi.thudo.DeviceInfo
import vn.hanoi.thudo.HandbookLibrary
import vn.hanoi.thudo.HealthCardVerifier
import vn.hanoi.thudo.HealthTrustStatus
import vn.hanoi.thudo.ServerErrorCode
import vn.hanoi.thudo.SyncClientInterface
import vn.hanoi.thudo.SyncException
import vn.hanoi.thudo.SyncObserver
import vn.hanoi.thudo.SyncProgress
import vn.hanoi.thudo.SyncReport
import vn.hanoi.thudo.ValidatorEnrolment
import vn.hanoi.thudo.Vault

/**
 * An in-memory [SyncClientInterface] for an app's unit tests: no network and no backend. Code
 * that takes a `SyncClientInterface` (a view model, a WorkManager worker) takes this in place
 * of `SyncClient`, and the test scripts what the backend answers.
 *
 * What it models, as the real client behaves:
 * - `registrationNonce`, `register` (any non-empty ID token; one device id per vault),
 *   `isRegistered`, `devices` and `revokeDevice` (a device id it never gave is `Refused` with
 *   [ServerErrorCode.NOT_FOUND]);
 * - `sync`: `NotRegistered` before `register`; otherwise the next scripted outcome
 *   ([enqueueSync], [enqueueFailure]), or an empty report when none is left; [offline] makes
 *   every network call fail with `Unavailable`, as the real client does after its retries.
 *   The observer hears the progress scripted with the outcome. The vault is not touched: what
 *   waits to upload still waits;
 * - a fired [CancelToken] fails the call with `Cancelled`, and [shutdown] fails every later
 *   call with `ShutDown`.
 *
 * `enrolValidator` fails with `InvalidArgument` (a validator's tests run against the reference
 * backend), and `refreshHealthTrust` finds no bundle (`null`). Every call is recorded in
 * [calls]. The class is open: override a call to model more.
 */
open class FakeSyncClient : SyncClientInterface {
    private val lock = Any()
    private val devices = IdentityHashMap<Vault, MutableList<DeviceInfo>>()
    private val outcomes = ArrayDeque<Pair<List<SyncProgress>, Result<SyncReport>>>()
    private val recorded = mutableListOf<String>()
    private var nextId = 1
    private var closed = false

    /** Whether the backend is out of reach: every network call fails with `Unavailable`. */
    @Volatile var offline: Boolean = false

    /** The calls made so far, by name, oldest first. */
    val calls: List<String> get() = synchronized(lock) { recorded.toList() }

    /** The next `sync` tells its observer [progress], then returns [report]. */
    fun enqueueSync(report: SyncReport, progress: List<SyncProgress> = emptyList()) =
        synchronized(lock) { outcomes.addLast(progress to Result.success(report)) }

    /**
     * The next `sync` tells its observer [progress], then throws [error] (`Refused`,
     * `Unauthorized`, `UpgradeRequired`, ...).
     */
    fun enqueueFailure(error: SyncException, progress: List<SyncProgress> = emptyList()) =
        synchronized(lock) { outcomes.addLast(progress to Result.failure(error)) }

    private fun enter(name: String, cancel: CancelToken?, network: Boolean = true) {
        synchronized(lock) {
            recorded.add(name)
            if (closed) throw SyncException.ShutDown()
        }
        if (cancel?.isCancelled() == true) throw SyncException.Cancelled()
        if (network && offline) throw SyncException.Unavailable(1, "offline (FakeSyncClient)")
    }

    override suspend fun registrationNonce(cancel: CancelToken?): String {
        enter("registrationNonce", cancel)
        return synchronized(lock) { "fake-nonce-${nextId++}" }
    }

    override suspend fun register(vault: Vault, idToken: String, deviceName: String, cancel: CancelToken?): String {
        enter("register", cancel)
        if (idToken.isEmpty()) {
            throw SyncException.Refused(403, ServerErrorCode.IDENTITY_INVALID, "identity_invalid", "no ID token")
        }
        return synchronized(lock) {
            val id = "fake-device-${nextId++}"
            devices.getOrPut(vault) { mutableListOf() }.add(DeviceInfo(id, deviceName, System.currentTimeMillis() / 1000, true))
            id
        }
    }

    override suspend fun isRegistered(vault: Vault): Boolean {
        enter("isRegistered", null, network = false)
        return synchronized(lock) { devices[vault]?.isNotEmpty() == true }
    }

    override suspend fun devices(vault: Vault, cancel: CancelToken?): List<DeviceInfo> {
        enter("devices", cancel)
        return synchronized(lock) { devices[vault]?.toList() ?: throw SyncException.NotRegistered() }
    }

    override suspend fun revokeDevice(vault: Vault, deviceId: String, idToken: String, cancel: CancelToken?) {
        enter("revokeDevice", cancel)
        synchronized(lock) {
            val mine = devices[vault] ?: throw SyncException.NotRegistered()
            if (!mine.removeIf { it.deviceId == deviceId }) {
                throw SyncException.Refused(404, ServerErrorCode.NOT_FOUND, "not_found", "no such device on this account")
            }
        }
    }

    override suspend fun sync(vault: Vault, library: HandbookLibrary?, observer: SyncObserver?, cancel: CancelToken?): SyncReport {
        enter("sync", cancel)
        val outcome = synchronized(lock) {
            if (devices[vault].isNullOrEmpty()) throw SyncException.NotRegistered()
            outcomes.removeFirstOrNull()
        } ?: (emptyList<SyncProgress>() to Result.success(report()))
        outcome.first.forEach { observer?.onProgress(it) }
        return outcome.second.getOrThrow()
    }

    override suspend fun enrolValidator(vault: Vault, enrolmentCode: String, deviceName: String, cancel: CancelToken?): ValidatorEnrolment {
        enter("enrolValidator", cancel)
        throw SyncException.InvalidArgument("FakeSyncClient does not enrol validators")
    }

    override suspend fun refreshHealthTrust(vault: Vault, cancel: CancelToken?): HealthTrustStatus? {
        enter("refreshHealthTrust", cancel)
        return null
    }

    override fun trustHealthCards(verifier: HealthCardVerifier) {
        synchronized(lock) { recorded.add("trustHealthCards") }
    }

    override fun shutdown() {
        synchronized(lock) {
            recorded.add("shutdown")
            closed = true
        }
    }

    companion object {
        /** A sync report with the given counts (everything else zero). */
        fun report(pushed: Long = 0, pulled: Long = 0, applied: Long = pulled, rejected: Long = 0) =
            SyncReport(pushed, 0, 0, rejected, pulled, applied, 0, 0, 0, null, 1)
    }
}
