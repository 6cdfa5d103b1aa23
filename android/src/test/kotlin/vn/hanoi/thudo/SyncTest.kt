package vn.hanoi.thudo

import java.io.File
import java.nio.file.Path
import java.time.LocalDate
import java.time.ZoneOffset
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import okhttp3.OkHttpClient
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * The sync client's functions across the FFI, against the reference backend that
 * scripts/with-server.sh starts on loopback: arguments in, records, optionals, enums and typed
 * errors out, callbacks, cancellation. The domain's scenarios are told in Rust (server/tests).
 */
class SyncTest {
    @TempDir
    lateinit var dir: Path

    private val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh (THUDO_SERVER_URL)")
    /** The seeded citizen: the server holds health records and handbook documents for them. */
    private val citizen = System.getenv("THUDO_DEMO_CITIZEN") ?: error("run through scripts/test-kotlin.sh (THUDO_DEMO_CITIZEN)")
    /** The test server's single-use enrolment codes: six bus validators (route 32), six metro gates by binding. */
    private val busCodes = System.getenv("THUDO_ENROLMENT_CODES").orEmpty().split(" ").filter { it.isNotBlank() }
    private val inspectorCodes = System.getenv("THUDO_INSPECTOR_CODES").orEmpty().split(" ").filter { it.isNotBlank() }
    private val gateCodes = System.getenv("THUDO_GATE_CODES").orEmpty().split(" ").filter { "=" in it }
        .associate { it.substringBefore("=") to it.substringAfter("=") }

    private fun client(http: HttpClient? = null, attempts: Int = 4): SyncClient {
        val settings = SyncSettings(url, 5_000L, attempts, 20L, emptyList())
        return if (http == null) SyncClient(settings) else SyncClient.withHttpClient(settings, http)
    }

    private suspend fun vault(name: String) = Vault.openWithPassphrase(dir.resolve(name).toString(), "p", testOptions)

    private suspend fun registered(client: SyncClient, name: String, citizenId: String) =
        vault(name).also { registerForTest(client, it, citizenId, name) }

    /** A validator enrolled with `code`, its feed installed. */
    private suspend fun validator(client: SyncClient, code: String, config: ValidatorConfig): Pair<Vault, TransitValidator> {
        val vault = vault("validator-$code")
        client.enrolValidator(vault, code, "validator")
        val feed = TransitClient(client).validatorFeed(vault)
        return vault to TransitValidator.open(vault, feed.issuerKeys, config).also { it.updateDenyList(feed.denyList.toByteArray()) }
    }

    private class Recorder : SyncObserver {
        val events = java.util.Collections.synchronizedList(mutableListOf<SyncProgress>())
        override fun onProgress(progress: SyncProgress) { events.add(progress) }
    }

    @Test
    fun `registration, devices and revocation`() = runBlocking<Unit> {
        val client = client()
        val (phone, tablet) = vault("phone") to vault("tablet")
        assertFalse(client.isRegistered(phone))
        assertEquals("sync.not_registered", assertThrows<SyncException.NotRegistered> { runBlocking { client.sync(phone) } }.code())
        val forged = assertThrows<SyncException.Refused> { runBlocking { client.register(phone, "not.a.token", "phone") } }
        assertEquals(Triple(ServerErrorCode.IDENTITY_INVALID, "identity_invalid", "sync.refused"), Triple(forged.code, forged.wireCode, forged.code()))
        assertTrue(forged.status in 400..499 && forged.detail.isNotEmpty(), forged.toString())

        val token = testIdToken("001090070001", client.registrationNonce())
        val phoneId = client.register(phone, token, "phone")
        assertEquals(ServerErrorCode.NONCE_USED, assertThrows<SyncException.Refused> { runBlocking { client.register(tablet, token, "tablet") } }.code)
        val tabletId = registerForTest(client, tablet, "001090070001", "tablet")
        assertTrue(client.isRegistered(phone))
        // A vault is one citizen's: another citizen cannot register it (its data would reach them).
        val other = assertThrows<SyncException.OtherAccount> { runBlocking { registerForTest(client, phone, "001090070099", "phone") } }
        assertEquals("sync.other_account" to false, other.code() to other.isRetryable())

        val devices = client.devices(phone)
        assertEquals(listOf(Triple(phoneId, "phone", true), Triple(tabletId, "tablet", false)), devices.map { Triple(it.deviceId, it.name, it.current) })
        val now = System.currentTimeMillis() / 1000
        assertTrue(devices.all { it.createdAt in now - 600..now + 60 }, devices.toString())
        // Revoking takes a fresh sign-in of the citizen, its nonce spent once.
        val proof = testIdToken("001090070001", client.registrationNonce())
        assertEquals(ServerErrorCode.IDENTITY_INVALID, assertThrows<SyncException.Refused> { runBlocking { client.revokeDevice(phone, tabletId, "not.a.token") } }.code)
        client.revokeDevice(phone, tabletId, proof)
        assertEquals(ServerErrorCode.NONCE_USED, assertThrows<SyncException.Refused> { runBlocking { client.revokeDevice(phone, tabletId, proof) } }.code)
        assertEquals("sync.unauthorized", assertThrows<SyncException.Unauthorized> { runBlocking { client.sync(tablet) } }.code())
        assertEquals(listOf(phoneId), client.devices(phone).map { it.deviceId })

        val insecure = assertThrows<SyncException.InsecureUrl> { SyncClient(SyncSettings("http://example.vn", null, null, null, emptyList())) }
        assertTrue(insecure.url.startsWith("http://example.vn"), insecure.toString())
        client.shutdown()
        val shut = assertThrows<SyncException.ShutDown> { runBlocking { client.sync(phone) } }
        assertEquals("sync.shut_down" to false, shut.code() to shut.isRetryable())
    }

    @Test
    fun `a sync report, its progress callbacks and the library it fills`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "report", citizen)
        val library = HandbookLibrary.open(dir.resolve("library.db").toString())
        MemberHandbook(phone).saveNote("note-1", "nq-57-2024", "đọc kỹ mục III")
        val recorder = Recorder()
        val report = client.sync(phone, library, recorder)
        assertEquals(1L to 0L, report.pushed to report.rejected, report.toString())
        assertTrue(report.applied in 1..report.pulled, report.toString())
        assertNotNull(report.clockOffsetMs, "the server's clock")
        assertTrue(SyncProgress.Pushed(1, 1) in recorder.events, recorder.events.toString())
        assertTrue(recorder.events.any { it is SyncProgress.Pulled && it.collection == "handbook.documents" && it.received > 0 && (it.total ?: 0) >= it.received })
        assertEquals("57-NQ/TW", library.search("nghi quyet khoa hoc", 5).first().number)
        val allergy = HealthBook(phone).records("demo-citizen", HealthKind.ALLERGY_INTOLERANCE, null, null).single()
        assertEquals(RecordSource.SERVER, allergy.provenance.source)
    }

    @Test
    fun `a cancelled sync stops alone, and the next sync on the same client goes on`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "cancel", citizen)
        val library = HandbookLibrary.open(dir.resolve("cancel-library.db").toString())
        // The token fires on the first page pulled: the sync stops mid-pull.
        val token = CancelToken()
        val fireOnPull = object : SyncObserver {
            override fun onProgress(progress: SyncProgress) { if (progress is SyncProgress.Pulled) token.cancel() }
        }
        val cancelled = assertThrows<SyncException.Cancelled> { runBlocking { client.sync(phone, library, fireOnPull, token) } }
        assertTrue(token.isCancelled())
        assertEquals(Triple("sync.cancelled", true, "cancelled"), Triple(cancelled.code(), cancelled.isRetryable(), cancelled.message))
        client.sync(phone, library)
        assertEquals("57-NQ/TW", library.search("nghi quyet khoa hoc", 5).first().number, "the library is whole")
        // A time budget fires by itself.
        assertThrows<SyncException.Cancelled> { runBlocking { client.sync(phone, null, null, CancelToken.withTimeoutMs(0L)) } }
        // Every call that waits on the network takes a token: sign-in, devices, revocation, enrolment.
        val fired = CancelToken().also { it.cancel() }
        assertThrows<SyncException.Cancelled> { runBlocking { client.registrationNonce(fired) } }
        assertThrows<SyncException.Cancelled> { runBlocking { client.register(phone, "x.y.z", "phone", fired) } }
        assertThrows<SyncException.Cancelled> { runBlocking { client.devices(phone, fired) } }
        assertThrows<SyncException.Cancelled> { runBlocking { client.revokeDevice(phone, "d-1", "x.y.z", fired) } }
        assertThrows<SyncException.Cancelled> { runBlocking { client.enrolValidator(phone, "code", "gate", fired) } }
        assertTrue(client.devices(phone).any { it.current }, "nothing was revoked, and the client goes on")

        // Cancelling the coroutine stops the call too, and the client is still usable.
        val tablet = registered(client, "cancel-tablet", citizen)
        lateinit var job: Job
        val cancelJob = object : SyncObserver {
            override fun onProgress(progress: SyncProgress) { if (progress is SyncProgress.Pulled) job.cancel() }
        }
        job = launch(Dispatchers.IO, start = CoroutineStart.LAZY) { client.sync(tablet, null, cancelJob) }
        job.start()
        job.join()
        assertTrue(job.isCancelled)
        client.sync(tablet)
        val allergy = HealthBook(tablet).records("demo-citizen", HealthKind.ALLERGY_INTOLERANCE, null, null).single()
        assertEquals(RecordSource.SERVER, allergy.provenance.source)
    }

    @Test
    fun `sync over OkHttp, the platform's HTTP stack`() = runBlocking<Unit> {
        val http = OkHttpSyncTransport(OkHttpSyncTransport.client())
        val client = client(http, attempts = 3)
        val phone = registered(client, "okhttp", citizen)
        val report = client.sync(phone)
        assertTrue(report.applied > 0L, report.toString())
        assertNotNull(report.clockOffsetMs, "the server's clock header came through OkHttp")

        // Pins belong to the platform client; in the settings they are refused, not ignored.
        assertThrows<SyncException.InvalidArgument> {
            SyncClient.withHttpClient(SyncSettings(url, null, null, null, listOf("ab".repeat(32))), http)
        }
        assertThrows<IllegalArgumentException> { OkHttpSyncTransport.client("api.example.vn", listOf("not hex")) }
        assertThrows<IllegalArgumentException> { OkHttpSyncTransport.client(null, listOf("ab".repeat(32))) }
        // OkHttp's own reading stops past the limit: 8 bytes allowed for a 15-byte answer.
        val health = HttpRequest("GET", "$url/healthz", emptyMap(), null, 5_000L, 8L)
        assertEquals(200, http.send(health.copy(maxBodyBytes = 1_000L)).status)
        // A POST without a body (a validator's token renewal) goes out with an empty one: the
        // server answers (here: no credential), OkHttp does not refuse to send it.
        val renewal = HttpRequest("POST", "$url/v1/transit/validators/token", emptyMap(), null, 5_000L, 10_000L)
        assertEquals(401, http.send(renewal).status)
        assertThrows<HttpException.TooLarge> { http.send(health) }
        // Nobody listening: OkHttp's failure is retried, then reported as unavailable.
        val offline = SyncClient.withHttpClient(SyncSettings("http://127.0.0.1:9", 1_000L, 2, 10L, emptyList()), http)
        assertEquals(2, assertThrows<SyncException.Unavailable> { runBlocking { offline.sync(phone) } }.attempts)
        // A platform client that answers too much, or throws something unexpected: refused or
        // retried, never a crash.
        val tooMuch = object : HttpClient {
            override fun send(request: HttpRequest) =
                HttpResponse(200, emptyMap(), Bytes(ByteArray(request.maxBodyBytes.toInt() + 1)))
        }
        assertThrows<SyncException.Protocol> { runBlocking { client(tooMuch, attempts = 1).sync(phone) } }
        val throwing = object : HttpClient {
            override fun send(request: HttpRequest): HttpResponse = throw IllegalStateException("bug in the app")
        }
        assertThrows<SyncException.Unavailable> { runBlocking { client(throwing, attempts = 2).sync(phone) } }
    }

    @Test
    fun `screens hear of local writes and of what sync brings`() = runBlocking<Unit> {
        val client = client()
        val tablet = registered(client, "observe", citizen)
        val library = HandbookLibrary.open(dir.resolve("observe-library.db").toString())
        val received = Channel<List<String>>(Channel.UNLIMITED)
        suspend fun next() = withTimeout(10_000) { received.receive() }

        val documents = launch(start = CoroutineStart.UNDISPATCHED) { library.changes().collect { received.send(it) } }
        client.sync(tablet, library)
        assertEquals(listOf("handbook.documents"), next())
        documents.cancel()
        documents.join()
        while (received.tryReceive().isSuccess) { /* the first pull's other pages */ }

        val notes = launch(start = CoroutineStart.UNDISPATCHED) { tablet.changes("handbook.note").collect { received.send(it) } }
        tablet.put("other", "x", byteArrayOf(1), emptyMap()) // another collection: not reported here
        MemberHandbook(tablet).saveNote("observe-local", "nq-57-2024", "ghi")
        assertEquals(listOf("handbook.note"), next())
        // Stopping the collector stops the observation.
        notes.cancel()
        notes.join()
        MemberHandbook(tablet).saveNote("observe-after", "nq-57-2024", "không ai nghe")
        delay(300)
        assertTrue(received.tryReceive().isFailure, "nothing after the collector stopped")
    }

    @Test
    fun `the sync status says what waits to upload and when sync last worked`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "status", citizen)
        val statuses = Channel<SyncStatus>(Channel.UNLIMITED)
        val watching = launch(start = CoroutineStart.UNDISPATCHED) { phone.syncStatusChanges().collect { statuses.send(it) } }
        suspend fun until(ok: (SyncStatus) -> Boolean): SyncStatus = withTimeout(10_000) {
            var s = statuses.receive()
            while (!ok(s)) s = statuses.receive()
            s
        }
        val first = until { true }
        assertEquals(0L, first.pendingUploads)
        MemberHandbook(phone).saveNote("status-1", "nq-57-2024", "chờ gửi")
        MemberHandbook(phone).saveNote("status-2", "nq-57-2024", "chờ gửi nữa")
        until { it.pendingUploads == 2L }
        // Offline: tried, nothing lost.
        val before = System.currentTimeMillis() / 1000
        val offline = SyncClient.withHttpClient(SyncSettings(baseUrl = "http://127.0.0.1:9", maxAttempts = 1), OkHttpSyncTransport(OkHttpClient()))
        assertThrows<SyncException.Unavailable> { runBlocking { offline.sync(phone, null, null) } }
        val failed = syncStatus(phone)
        assertEquals(2L, failed.pendingUploads)
        assertNull(failed.lastSuccessAt)
        assertTrue(failed.lastAttemptAt!! >= before)
        // Online: nothing waits, and it says when.
        client.sync(phone, null, null)
        val synced = until { it.pendingUploads == 0L && it.lastSuccessAt != null }
        assertTrue(synced.lastSuccessAt!! >= failed.lastAttemptAt!!, synced.toString())
        assertEquals(synced, syncStatus(phone))
        watching.cancel()
    }

    @Test
    fun `a burst of writes reaches a busy collector as one merged list`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(dir.resolve("burst").toString(), "pass", testOptions)
        val received = Channel<List<String>>(Channel.UNLIMITED)
        val gate = Channel<Unit>(1)
        val watching = launch(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) {
            vault.changes("a", "b").collect {
                received.send(it)
                if (it == listOf("a")) gate.receive() // busy with the first list
            }
        }
        vault.put("a", "first", byteArrayOf(0), emptyMap())
        assertEquals(listOf("a"), withTimeout(10_000) { received.receive() })
        // 400 transactions while the collector is busy: they wait as one set of names.
        repeat(400) { i -> vault.put(if (i % 2 == 0) "a" else "b", "r$i", byteArrayOf(1), emptyMap()) }
        delay(200)
        gate.send(Unit)
        val after = mutableListOf(withTimeout(10_000) { received.receive() })
        delay(300)
        while (true) after.add(received.tryReceive().getOrNull() ?: break)
        assertEquals(setOf("a", "b"), after.flatten().toSet())
        assertTrue(after.size <= 2, "merged, not one list per transaction: ${after.size} lists")
        assertEquals(listOf("a", "b"), after.first(), "sorted, each once")
        watching.cancel()
        vault.close()
    }

    @Test
    fun `purchases cross with their typed refusals, and the phone shows the card's QR`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "buyer", "001090070002")
        val transit = TransitPhone.open(phone, null, 5)
        val month = LocalDate.now(ZoneOffset.ofHours(7)).toString().substring(0, 7)
        val pass = TransitClient(client).buyTransitProduct(phone, transit, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0, month)
        // The test server's sandbox gateway pays every order as it is made: the credential comes
        // with the order.
        assertEquals(280_000L to TransitOrderStatus.PAID, pass.priceVnd to pass.status)
        assertTrue(pass.passValidFrom < pass.passValidUntil && pass.paymentUrl.isEmpty(), pass.toString())
        val held = transit.credentials().single()
        assertEquals(pass.cardId to TransitProduct.MONTHLY_ALL_ROUTES, held.cardId to held.product)
        assertEquals(held, pass.credential)
        // Collected again: the same credential; the order's status; nobody else's order.
        assertEquals(held, TransitClient(client).collectTransitOrder(phone, transit, pass.orderId))
        assertEquals(TransitOrderStatus.PAID, TransitClient(client).transitOrder(phone, pass.orderId).status)
        assertEquals(ServerErrorCode.NOT_FOUND, assertThrows<SyncException.Refused> { runBlocking { TransitClient(client).collectTransitOrder(phone, transit, "o-nobody") } }.code)
        // Nothing ends within the default 48 h; asked to renew what ends within 4 days, the pass's
        // credential is renewed free and installed.
        assertEquals(emptyList<CredentialRenewal>(), TransitClient(client).renewCredentials(phone, transit))
        val renewed = TransitClient(client).renewCredentials(phone, transit, 4 * 86_400L).single()
        assertEquals(pass.cardId, renewed.cardId)
        assertNull(renewed.refused)
        assertEquals(renewed.notAfter, transit.credentials().single().notAfter)

        val notEntitled = assertThrows<SyncException.NotEntitled> {
            runBlocking { TransitClient(client).buyTransitProduct(phone, transit, TransitProduct.FREE_PASS, PassengerCategory.ELDERLY, 0, "") }
        }
        assertEquals("sync.not_entitled", notEntitled.code())
        // The dependant's citizen ID reaches the backend: a pass for someone else's child is refused.
        val notGuardian = assertThrows<SyncException.Refused> {
            runBlocking { TransitClient(client).buyTransitProduct(phone, transit, TransitProduct.FREE_PASS, PassengerCategory.CHILD, 0, "", "001022070002") }
        }
        assertEquals(ServerErrorCode.NOT_GUARDIAN, notGuardian.code)
        // A route that does not fit the credential's 16 bits is refused before any request.
        assertThrows<SyncException.InvalidArgument> {
            runBlocking { TransitClient(client).buyTransitProduct(phone, transit, TransitProduct.MONTHLY_SINGLE_ROUTE, PassengerCategory.STANDARD, 70_000, month) }
        }

        val now = System.currentTimeMillis() / 1000
        for (qr in listOf(transit.currentQr(), transit.currentQrFor(pass.cardId), transit.currentQrForAt(pass.cardId, now))) {
            assertTrue(qr.text.startsWith("HNT1:") && qr.refreshAt > now - 10, qr.toString())
        }
        assertThrows<TransitException.NoCredential> { runBlocking { transit.currentQrFor(pass.cardId + 1) } }
    }

    @Test
    fun `a bus validator enrols, uploads taps and inspections, and the rider's phone shows the trip`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "rider", "001090070003")
        val transit = TransitPhone.open(phone, null, 5)
        val card = TransitClient(client).buyTransitProduct(phone, transit, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0, "").cardId
        // Pay-as-you-go fares come out of prepaid credit.
        val topUp = TransitClient(client).topUp(phone, 50_000L)
        assertEquals(Triple(TransitOrderStatus.PAID, 50_000L, null), Triple(topUp.status, topUp.priceVnd, topUp.credential))
        assertEquals(TransitBalance(card, 50_000L, 20_000L, false), TransitClient(client).transitBalance(phone))
        assertThrows<SyncException.InvalidArgument> { runBlocking { TransitClient(client).topUp(phone, -1L) } }
        assertEquals(ServerErrorCode.BAD_REQUEST, assertThrows<SyncException.Refused> { runBlocking { TransitClient(client).topUp(phone, 5L) } }.code)
        // A card is named for a dependant's; one the account holds no guardianship of is refused.
        assertEquals(50_000L, TransitClient(client).transitBalance(phone, cardId = card).balanceVnd)
        assertEquals(ServerErrorCode.NOT_GUARDIAN,
            assertThrows<SyncException.Refused> { runBlocking { TransitClient(client).topUp(phone, 50_000L, cardId = card + 1) } }.code)
        assertEquals(ServerErrorCode.NOT_GUARDIAN,
            assertThrows<SyncException.Refused> { runBlocking { TransitClient(client).transitBalance(phone, cardId = card + 1) } }.code)

        val busVault = vault("bus")
        val enrolment = client.enrolValidator(busVault, busCodes[0], "bus 32 front door")
        assertEquals(Triple(32, null, false), Triple(enrolment.route, enrolment.gate, enrolment.inspector))
        assertTrue(enrolment.validatorId.isNotEmpty())
        assertEquals(ServerErrorCode.ENROLMENT_USED, assertThrows<SyncException.Refused> { runBlocking { client.enrolValidator(vault("copy"), busCodes[0], "copy") } }.code)
        assertEquals(ServerErrorCode.VALIDATORS_ONLY, assertThrows<SyncException.Refused> { runBlocking { TransitClient(client).validatorFeed(phone) } }.code)
        val feed = TransitClient(client).validatorFeed(busVault)
        assertTrue(feed.issuerKeys.isNotEmpty() && feed.denyList.toByteArray().isNotEmpty(), feed.toString())

        // Fail closed without a current deny list.
        val strict = TransitValidator.open(vault("strict"), feed.issuerKeys, ValidatorConfig(route = 32, failClosedWhenStale = true))
        assertEquals(VerdictReason.DENY_LIST_STALE, strict.validate(transit.currentQr().text).reason)
        val bus = TransitValidator.open(busVault, emptyList(), ValidatorConfig(route = 32))
        bus.setTrustedKeys(feed.issuerKeys)
        val version = bus.updateDenyList(feed.denyList.toByteArray())
        val status = bus.denyListStatus()
        assertTrue(version >= 1L, "$version")
        assertEquals(Triple(version, false, false), Triple(status.version, status.stale, status.needsRefresh))
        val qr = transit.currentQr().text
        val verdict = bus.validate(qr)
        assertEquals(Triple(true, card, TransitProduct.PAY_AS_YOU_GO), Triple(verdict.accepted, verdict.cardId, verdict.product))
        val receipt = TransitClient(client).uploadTaps(busVault, bus)
        assertEquals(TapUploadReceipt(1, 0, bus.tapLogStatus().ackedSeq, 8_000, 0, 8_000), receipt)
        assertEquals(42_000L, TransitClient(client).transitBalance(phone).balanceVnd)

        // An inspector's device (enrolled as one) checks the QR paired with the bus's taps and
        // uploads the inspection; the taps route refuses it.
        val inspectorVault = vault("inspector")
        val inspectorEnrolment = client.enrolValidator(inspectorVault, inspectorCodes[0], "inspector, route 32")
        assertEquals(Triple(32, null, true), Triple(inspectorEnrolment.route, inspectorEnrolment.gate, inspectorEnrolment.inspector))
        val inspector = TransitValidator.open(inspectorVault, feed.issuerKeys, ValidatorConfig(route = 32))
        val inspection = inspector.inspect(qr, bus.recentTaps(System.currentTimeMillis() / 1000 - 3_600))
        assertEquals(InspectionOutcome.VALID to true, inspection.outcome to inspection.paired)
        assertEquals(listOf(inspection.seq), inspector.exportInspections().map { it.seq })
        assertEquals(InspectionUploadReceipt(1, 0, inspection.seq), TransitClient(client).uploadInspections(inspectorVault, inspector, null))
        inspector.validate(qr)  // a scan logged as a tap: the backend takes none from an inspector
        assertEquals(ServerErrorCode.INSPECTOR_DEVICE, assertThrows<SyncException.Refused> { runBlocking { TransitClient(client).uploadTaps(inspectorVault, inspector) } }.code)

        // The rider's history: a trip, optional fields, a cap.
        client.sync(phone)
        val history = RiderHistory(phone)
        val trip = history.tripsFrom("2000-01-01").single()
        assertEquals(listOf(card, TripMode.BUS, 32, null, null, 8_000L, TransitProduct.PAY_AS_YOU_GO),
            listOf(trip.cardId, trip.mode, trip.route, trip.fromStation, trip.exitAt, trip.fareVnd, trip.product))
        assertEquals(listOf(trip), history.tripsFrom(trip.day, card))
        val cap = history.cap(trip.day)
        assertEquals(Triple(trip.day, 8_000L, false), cap?.let { Triple(it.period, it.paidVnd, it.reached) })
        assertTrue(cap!!.capVnd > 8_000L)
        assertNull(history.cap(trip.day, card + 1), "no cap for a card not held")
        assertEquals(0L, history.forgetBefore(trip.day))
        assertEquals(3L, history.forgetBefore("9999-12-31"), "the trip, the day's and the month's cap progress")
        assertNull(history.cap(trip.day))

        // The same card on a second bus moments later: one pass carrying two people. The
        // operator's policy warns, and the warning reaches the phone.
        assertEquals(emptyList<TransitNotice>(), history.notices())
        val (bus2Vault, bus2) = validator(client, busCodes[1], ValidatorConfig(route = 32))
        // A fresh QR (the one on screen would be the same QR twice: a relay, not two riders).
        val later = System.currentTimeMillis() / 1000 + 10
        assertTrue(bus2.validateAt(transit.currentQrAt(later).text, later).accepted)
        TransitClient(client).uploadTaps(bus2Vault, bus2)
        client.sync(phone)
        val notice = history.notices().single()
        assertEquals(listOf(card, "impossible_travel", 0L), listOf(notice.cardId, notice.kind, notice.penaltyVnd))
        assertTrue(notice.messageEn.contains("two vehicles") && notice.id.startsWith("fraud:"), notice.toString())
    }

    @Test
    fun `metro gates carry their station and direction, and an exit gate refreshes its entries`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "metro", "001090070004")
        val transit = TransitPhone.open(phone, null, 5)
        TransitClient(client).buyTransitProduct(phone, transit, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0, "")
        val entryGate = MetroGate(201, GateDirection.ENTRY)
        val (inVault, entry) = validator(client, gateCodes.getValue("201:entry"), ValidatorConfig(route = 902, gate = entryGate))
        val (outVault, exit) = validator(client, gateCodes.getValue("205:exit"), ValidatorConfig(route = 902, gate = MetroGate(205, GateDirection.EXIT)))
        assertEquals(0L, TransitClient(client).uploadTaps(inVault, entry).stored)
        assertEquals(0L, TransitClient(client).refreshEntries(outVault, exit))
        val empty = exit.entryFeedStatus()
        assertTrue(empty.refusingUnknownExits && empty.completeUntil > 0L && empty.openEntries == 0L, empty.toString())

        val t = System.currentTimeMillis() / 1000
        val refused = exit.validateAt(transit.currentQrAt(t).text, t)
        assertEquals(VerdictReason.NO_ENTRY to "No entry tap: see staff", refused.reason to refused.presentation.lineEn)
        assertTrue(entry.validateAt(transit.currentQrAt(t + 10).text, t + 10).accepted)
        assertEquals(entryGate, entry.exportTaps().single().gate)
        assertEquals(1L, TransitClient(client).uploadTaps(inVault, entry).stored)
        assertEquals(1L, TransitClient(client).refreshEntries(outVault, exit))
        assertEquals(1L, exit.entryFeedStatus().openEntries)
        // The exit gate has uploaded (its one refused tap): exits are known, and the entry gate
        // refuses the card already inside, from a feed of tags, not card numbers.
        assertEquals(1L, TransitClient(client).uploadTaps(outVault, exit).stored)
        assertEquals(1L, TransitClient(client).refreshEntries(inVault, entry))
        val inside = entry.entryFeedStatus()
        assertTrue(inside.refusingCardsInside && inside.openEntries == 1L && !inside.refusingUnknownExits, inside.toString())
        val again = entry.validateAt(transit.currentQrAt(t + 20).text, t + 20)
        assertEquals(VerdictReason.ALREADY_INSIDE to "transit.already_inside", again.reason to again.presentation.messageKey)
    }

    @Test
    fun `a client that trusts a health card issuer verifies synced cards again`() = runBlocking<Unit> {
        val client = client()
        val phone = registered(client, "card-phone", "001090070005")
        val tablet = registered(client, "card-tablet", "001090070005")
        val fixtures = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc")
        val verifier = HealthCardVerifier()
        verifier.addJwks("https://spec.smarthealth.cards/examples/issuer", File(fixtures, "issuer/jwks.json").readText())
        val qr = File(fixtures, "example-00-f-qr-code-numeric-value-0.txt").readText().trim()
        val person = HealthBook(phone).importCardQr(verifier, listOf(qr), null, 1_790_000_000L).people.single()
        client.sync(phone)
        client.trustHealthCards(verifier)
        client.sync(tablet)
        val onTablet = HealthBook(tablet).records(person, HealthKind.IMMUNIZATION, null, null)
        assertEquals(List(3) { RecordSource.HEALTH_CARD }, onTablet.map { it.provenance.source })
    }
}
