package vn.hanoi.thudo

import java.io.File
import java.nio.file.Path
import java.time.LocalDate
import java.time.ZoneOffset
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** A real sync against the reference backend that scripts/with-server.sh starts on loopback. */
class SyncTest {
    @TempDir
    lateinit var dir: Path

    private val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh (THUDO_SERVER_URL)")
    private val citizen = System.getenv("THUDO_DEMO_CITIZEN") ?: "001088012345"
    /** Single-use validator enrolment codes the test server made (route 32). */
    private val enrolmentCodes = (System.getenv("THUDO_ENROLMENT_CODES") ?: "").split(" ").filter { it.isNotBlank() }
    /** Single-use metro gate enrolment codes by binding (`201:entry`, `205:exit`). */
    private val gateCodes = (System.getenv("THUDO_GATE_CODES") ?: "").split(" ").filter { it.contains("=") }
        .associate { it.substringBefore("=") to it.substringAfter("=") }

    /** A validator enrolled with the operator's `code`, its feed installed. */
    private suspend fun enrol(client: SyncClient, code: String, name: String, route: Int, gate: MetroGate?): Pair<Vault, TransitValidator> {
        val vault = Vault.openWithPassphrase(dir.resolve(name).toString(), "p", testOptions)
        val enrolled = client.enrolValidator(vault, code, name)
        assertEquals(gate?.let { "${it.station}:${it.direction.name.lowercase()}" }, enrolled.gate)
        val feed = client.validatorFeed(vault)
        val v = TransitValidator.open(vault, feed.issuerKeys, ValidatorConfig(route = route, gate = gate))
        v.updateDenyList(feed.denyList.toByteArray())
        return vault to v
    }

    /** The test server's metro gate bound as `binding` (`201:entry`), on line 2A. */
    private suspend fun enrolGate(client: SyncClient, binding: String, station: Int, direction: GateDirection) =
        enrol(client, gateCodes.getValue(binding), binding.replace(":", "-"), 902, MetroGate(station, direction))

    private class Recorder : SyncObserver {
        val events = java.util.Collections.synchronizedList(mutableListOf<SyncProgress>())
        override fun onProgress(progress: SyncProgress) { events.add(progress) }
    }

    @Test
    fun `a cancelled sync stops alone, and the next sync on the same client goes on`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val phone = Vault.openWithPassphrase(dir.resolve("cancel-phone").toString(), "p", testOptions)
        registerForTest(client, phone, citizen, "cancel test (Kotlin)")
        val library = HandbookLibrary.open(dir.resolve("cancel-library.db").toString())
        MemberHandbook(phone).saveNote("cancel-note", "nq-57-2024", "trước khi huỷ")

        // The token fires on the first page pulled: the sync stops mid-pull.
        val token = CancelToken()
        val fireOnPull = object : SyncObserver {
            override fun onProgress(progress: SyncProgress) { if (progress is SyncProgress.Pulled) token.cancel() }
        }
        val cancelled = assertThrows<SyncException.Cancelled> { runBlocking { client.sync(phone, library, fireOnPull, token) } }
        assertTrue(token.isCancelled())
        assertEquals("sync.cancelled", cancelled.code())
        assertTrue(cancelled.isRetryable())
        assertEquals("cancelled", cancelled.message)

        // The same client syncs again: the note went before the pull began, the library is whole.
        val report = client.sync(phone, library)
        assertEquals(0L, report.pushed, report.toString())
        assertEquals("57-NQ/TW", library.search("nghi quyet khoa hoc", 5).first().number)
        assertEquals(0L, client.sync(phone, library).pulled)

        // A time budget fires by itself.
        assertThrows<SyncException.Cancelled> { runBlocking { client.sync(phone, library, null, CancelToken.withTimeoutMs(0L)) } }
        // Cancelling the coroutine stops the call too, and the client is still usable.
        val fresh = Vault.openWithPassphrase(dir.resolve("cancel-tablet").toString(), "p", testOptions)
        registerForTest(client, fresh, citizen, "cancel test 2 (Kotlin)")
        lateinit var job: kotlinx.coroutines.Job
        val cancelJob = object : SyncObserver {
            override fun onProgress(progress: SyncProgress) { if (progress is SyncProgress.Pulled) job.cancel() }
        }
        job = launch(kotlinx.coroutines.Dispatchers.IO, start = kotlinx.coroutines.CoroutineStart.LAZY) { client.sync(fresh, null, cancelJob) }
        job.start()
        job.join()
        assertTrue(job.isCancelled)
        client.sync(fresh)
        assertEquals("trước khi huỷ", MemberHandbook(fresh).notesFor("nq-57-2024").single { it.id == "cancel-note" }.text)
        phone.shutdown()
        fresh.shutdown()
    }

    @Test
    fun `sync over OkHttp, the platform's HTTP stack`() = runBlocking<Unit> {
        val http = OkHttpSyncTransport(OkHttpSyncTransport.client())
        val client = SyncClient.withHttpClient(SyncSettings(url, 5_000L, 3, 20L, emptyList()), http)
        val phone = Vault.openWithPassphrase(dir.resolve("okhttp").toString(), "p", testOptions)
        registerForTest(client, phone, citizen, "okhttp test (Kotlin)")
        val library = HandbookLibrary.open(dir.resolve("okhttp-library.db").toString())
        val report = client.sync(phone, library)
        assertTrue(report.applied > 0L, report.toString())
        assertTrue(report.clockOffsetMs != null, "the server's clock header came through OkHttp")
        assertEquals("57-NQ/TW", library.search("nghi quyet khoa hoc", 5).first().number)

        // Pins belong to the platform client; in the settings they are refused, not ignored.
        assertThrows<SyncException.InvalidArgument> {
            SyncClient.withHttpClient(SyncSettings(url, null, null, null, listOf("ab".repeat(32))), http)
        }
        assertThrows<IllegalArgumentException> { OkHttpSyncTransport.client("api.example.vn", listOf("not hex")) }
        assertThrows<IllegalArgumentException> { OkHttpSyncTransport.client(null, listOf("ab".repeat(32))) }
        // OkHttp's own reading stops past the limit: 8 bytes allowed for a 15-byte answer.
        val health = HttpRequest("GET", "$url/healthz", emptyMap(), null, 5_000L, 8L)
        assertEquals(200, http.send(health.copy(maxBodyBytes = 1_000L)).status)
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
        assertThrows<SyncException.Protocol> {
            runBlocking { SyncClient.withHttpClient(SyncSettings(url, null, 1, 10L, emptyList()), tooMuch).sync(phone) }
        }
        val throwing = object : HttpClient {
            override fun send(request: HttpRequest): HttpResponse = throw IllegalStateException("bug in the app")
        }
        assertThrows<SyncException.Unavailable> {
            runBlocking { SyncClient.withHttpClient(SyncSettings(url, null, 2, 10L, emptyList()), throwing).sync(phone) }
        }
        phone.shutdown()
    }

    @Test
    fun `screens hear of local writes and of what sync brings`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val phone = Vault.openWithPassphrase(dir.resolve("observe-phone").toString(), "p", testOptions)
        val tablet = Vault.openWithPassphrase(dir.resolve("observe-tablet").toString(), "p", testOptions)
        registerForTest(client, phone, citizen, "observe test phone (Kotlin)")
        registerForTest(client, tablet, citizen, "observe test tablet (Kotlin)")
        val library = HandbookLibrary.open(dir.resolve("observe-library.db").toString())
        val received = kotlinx.coroutines.channels.Channel<List<String>>(kotlinx.coroutines.channels.Channel.UNLIMITED)
        suspend fun next() = kotlinx.coroutines.withTimeout(10_000) { received.receive() }

        // The library's documents arrive by sync.
        val documents = launch(start = kotlinx.coroutines.CoroutineStart.UNDISPATCHED) { library.changes().collect { received.send(it) } }
        client.sync(tablet, library)
        assertEquals(listOf("handbook.documents"), next())
        documents.cancel()
        while (received.tryReceive().isSuccess) { /* the rest of the first pull's pages */ }

        // Notes: a local write, then one made on the phone and brought by sync.
        val notes = launch(start = kotlinx.coroutines.CoroutineStart.UNDISPATCHED) { tablet.changes("handbook.note").collect { received.send(it) } }
        MemberHandbook(tablet).saveNote("observe-local", "nq-57-2024", "ghi trên máy tính bảng")
        assertEquals(listOf("handbook.note"), next())
        // Another collection is not reported to this observer.
        MemberHandbook(tablet).setProfile(MemberProfile("Nguyễn Văn An", "1985-04-30", "nam", "2010-05-19", "2011-05-19", "01.123456",
            "Chi bộ Tổ dân phố 5", listOf("Đảng bộ phường Dịch Vọng"), "001085012345", "0912345678"))
        MemberHandbook(phone).saveNote("observe-remote", "nq-57-2024", "ghi trên điện thoại")
        client.sync(phone)
        client.sync(tablet)
        assertEquals(listOf("handbook.note"), next())
        assertEquals("ghi trên điện thoại", MemberHandbook(tablet).notesFor("nq-57-2024").single { it.id == "observe-remote" }.text)
        // Stopping the collector stops the observation.
        notes.cancel()
        notes.join()
        while (received.tryReceive().isSuccess) { /* the sync's other pages */ }
        MemberHandbook(tablet).saveNote("observe-after", "nq-57-2024", "không ai nghe")
        assertTrue(received.tryReceive().isFailure)
        phone.shutdown()
        tablet.shutdown()
    }

    @Test
    fun `two devices of one citizen sync handbook, health and notes`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val phone = Vault.openWithPassphrase(dir.resolve("phone").toString(), "p", testOptions)
        val tablet = Vault.openWithPassphrase(dir.resolve("tablet").toString(), "p", testOptions)
        assertThrows<SyncException.NotRegistered> { runBlocking { client.sync(phone, null, null) } }
        // A citizen ID alone opens nothing: a forged or replayed sign-in is refused.
        assertEquals("identity_invalid", assertThrows<SyncException.Refused> {
            runBlocking { client.register(phone, "not.a.token", "Kotlin phone") }
        }.code)
        val token = testIdToken(citizen, client.registrationNonce())
        client.register(phone, token, "Kotlin phone")
        assertEquals("nonce_used", assertThrows<SyncException.Refused> {
            runBlocking { client.register(tablet, token, "Kotlin tablet") }
        }.code)
        registerForTest(client, tablet, citizen, "Kotlin tablet")
        assertTrue(client.isRegistered(phone))

        val library = HandbookLibrary.open(dir.resolve("library.db").toString())
        val recorder = Recorder()
        val report = client.sync(phone, library, recorder)
        assertTrue(report.applied >= 4L, report.toString())
        assertTrue(recorder.events.any { it is SyncProgress.Pulled && it.collection == "handbook.documents" })
        assertEquals("57-NQ/TW", library.search("nghi quyet khoa hoc", 5).first().number)
        val health = HealthBook(phone).records("demo-citizen", HealthKind.ALLERGY_INTOLERANCE, null, null)
        assertEquals(RecordSource.SERVER, health.single().provenance.source)

        // A note written on the phone reaches the tablet.
        MemberHandbook(phone).saveNote("kt-note", "nq-57-2024", "đọc kỹ mục III")
        assertEquals(1L, client.sync(phone, library, null).pushed)
        client.sync(tablet, null, null)
        assertEquals("đọc kỹ mục III", MemberHandbook(tablet).notesFor("nq-57-2024").single { it.id == "kt-note" }.text)

        // A health card imported on the phone travels with the signed card: the tablet, trusting
        // the issuer, verifies it again; a laptop that trusts no issuer shows another device's word.
        val fixtures = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc")
        val verifier = HealthCardVerifier()
        verifier.addJwks("https://spec.smarthealth.cards/examples/issuer", File(fixtures, "issuer/jwks.json").readText())
        val qr = File(fixtures, "example-00-f-qr-code-numeric-value-0.txt").readText().trim()
        val person = HealthBook(phone).importCardQr(verifier, listOf(qr), null, 1_790_000_000L).people.single()
        client.sync(phone, null, null)
        client.trustHealthCards(verifier)
        client.sync(tablet, null, null)
        val onTablet = HealthBook(tablet).records(person, HealthKind.IMMUNIZATION, null, null)
        assertEquals(3, onTablet.size)
        assertTrue(onTablet.all { it.provenance.source == RecordSource.HEALTH_CARD }, onTablet.toString())
        val untrusting = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val laptop = Vault.openWithPassphrase(dir.resolve("laptop").toString(), "p", testOptions)
        registerForTest(untrusting, laptop, citizen, "Kotlin laptop")
        untrusting.sync(laptop, null, null)
        val onLaptop = HealthBook(laptop).records(person, HealthKind.IMMUNIZATION, null, null)
        assertEquals(3, onLaptop.size)
        assertTrue(onLaptop.all { it.provenance.source == RecordSource.OTHER_DEVICE }, onLaptop.toString())

        // Buy a pass, show the QR, validate it on a registered validator, upload the tap.
        val transit = TransitPhone.open(phone, null, 5)
        val month = LocalDate.now(ZoneOffset.ofHours(7)).toString().substring(0, 7)
        val bought = client.buyTransitProduct(phone, transit, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0, month)
        assertEquals(280_000L, bought.priceVnd)
        // A free category needs an entitlement the operator holds: a typed error to explain.
        assertThrows<SyncException.NotEntitled> {
            runBlocking { client.buyTransitProduct(phone, transit, TransitProduct.FREE_PASS, PassengerCategory.ELDERLY, 0, "") }
        }

        // A phone cannot declare itself a validator, nor read the feed or upload taps.
        val fake = Vault.openWithPassphrase(dir.resolve("fake").toString(), "p", testOptions)
        assertEquals("validators_only", assertThrows<SyncException.Refused> { runBlocking { client.validatorFeed(phone) } }.code)

        // The bus enrols with the operator's single-use code; the code cannot be used twice.
        val busVault = Vault.openWithPassphrase(dir.resolve("bus").toString(), "p", testOptions)
        val enrolment = client.enrolValidator(busVault, enrolmentCodes[0], "bus 32 front door")
        assertEquals(32, enrolment.route)
        val again = assertThrows<SyncException.Refused> { runBlocking { client.enrolValidator(fake, enrolmentCodes[0], "copy") } }
        assertEquals("enrolment_used", again.code)
        val feed = client.validatorFeed(busVault)
        // Fail closed without a current deny list: nobody rides until the feed arrives.
        val strictVault = Vault.openWithPassphrase(dir.resolve("strict").toString(), "p", testOptions)
        val strict = TransitValidator.open(strictVault, feed.issuerKeys, ValidatorConfig(route = 32, failClosedWhenStale = true))
        assertTrue(strict.denyListStatus().stale)
        assertEquals(VerdictReason.DENY_LIST_STALE, strict.validate(transit.currentQr().text).reason)
        strict.close()
        val validator = TransitValidator.open(busVault, feed.issuerKeys, ValidatorConfig(route = enrolment.route!!))
        validator.setTrustedKeys(feed.issuerKeys)
        assertEquals(1L, validator.updateDenyList(feed.denyList.toByteArray()))
        val status = validator.denyListStatus()
        assertEquals(1L, status.version)
        assertTrue(!status.stale && !status.needsRefresh, status.toString())
        assertTrue(validator.validate(transit.currentQr().text).accepted)
        val receipt = client.uploadTaps(busVault, validator)
        assertEquals(1L, receipt.stored)
        assertEquals(0L, receipt.chargedVnd)
        assertEquals(0L, receipt.notCharged)
        assertEquals(validator.tapLogStatus().ackedSeq, receipt.acknowledgedSeq)

        // The phone's next sync brings the ride it took, charged nothing on its monthly pass.
        client.sync(phone, null, null)
        val trips = RiderHistory(phone).tripsFrom("2000-01-01")
        val ride = trips.single { it.route == 32 }
        assertEquals(TransitProduct.MONTHLY_ALL_ROUTES, ride.product)
        assertEquals(0L to false, ride.fareVnd to ride.capped)
        assertEquals(null, RiderHistory(phone).cap(ride.day), "nothing paid toward a cap on a pass")
        // The app keeps what it shows: older trips are forgotten on the phone only.
        assertEquals(0L, RiderHistory(phone).forgetBefore(ride.day))
        assertEquals(trips.size.toLong(), RiderHistory(phone).forgetBefore("9999-12-31"))
        assertTrue(RiderHistory(phone).tripsFrom("2000-01-01").isEmpty())
        // The same enrolled device inspects a rider: the ticket is not used (it taps again
        // afterwards), the inspection is uploaded and its scan verified at the backend.
        val inspection = validator.inspect(transit.currentQr().text, emptyList())
        assertEquals(InspectionOutcome.NOT_TAPPED, inspection.outcome)
        assertEquals(VerdictSignal.WARN, inspection.presentation.signal)
        assertEquals(listOf(inspection.seq), validator.exportInspections().map { it.seq })
        val inspected = client.uploadInspections(busVault, validator, null)
        assertEquals(1L, inspected.stored)
        assertEquals(inspection.seq, inspected.acknowledgedSeq)
        assertTrue(validator.exportInspections().isEmpty())

        // The citizen sees both devices and revokes the tablet: its token stops at once.
        val devices = client.devices(phone)
        // Other tests register devices of the same citizen on this server too.
        assertEquals(listOf("Kotlin phone", "Kotlin tablet", "Kotlin laptop"), devices.map { it.name }.filter { it.startsWith("Kotlin ") })
        assertEquals(listOf("Kotlin phone"), devices.filter { it.current }.map { it.name })
        client.revokeDevice(phone, devices.single { it.name == "Kotlin tablet" }.deviceId)
        assertThrows<SyncException.Unauthorized> { runBlocking { client.sync(tablet, null, null) } }
        assertEquals(devices.size - 1, client.devices(phone).size)

        assertThrows<SyncException.InsecureUrl> { SyncClient(SyncSettings("http://example.vn", null, null, null, emptyList())) }
        client.shutdown()
        val shut = assertThrows<SyncException.ShutDown> { runBlocking { client.sync(phone, null, null) } }
        assertFalse(shut.isRetryable(), "a shut-down client stays shut")
        // A background job does not retry forever on a shut-down client.
        assertTrue(backgroundSync(client, phone) is BackgroundSyncResult.Failure)
        untrusting.shutdown()
        listOf(phone, tablet, busVault, fake, strictVault, laptop).forEach { it.shutdown(); it.close() }
    }

    @Test
    fun `a metro journey through two gates is priced by its stations and shows on the phone`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val phone = Vault.openWithPassphrase(dir.resolve("metro-phone").toString(), "p", testOptions)
        registerForTest(client, phone, "001090011111", "Kotlin metro rider")
        val transit = TransitPhone.open(phone, null, 5)
        client.buyTransitProduct(phone, transit, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0, "")

        // Two gates enrol with the operator's codes, bound to their stations.
        suspend fun gate(binding: String, station: Int, direction: GateDirection) =
            enrolGate(client, binding, station, direction)
        val (inVault, catLinhIn) = gate("201:entry", 201, GateDirection.ENTRY)
        val (outVault, thuongDinhOut) = gate("205:exit", 205, GateDirection.EXIT)

        // The entry gate has uploaded: the exit gate's feed is complete, and a card that did
        // not tap in is sent to the staff gate.
        client.uploadTaps(inVault, catLinhIn)
        client.refreshEntries(outVault, thuongDinhOut)
        assertTrue(thuongDinhOut.entryFeedStatus().refusingUnknownExits)
        val t = System.currentTimeMillis() / 1000
        val refused = thuongDinhOut.validateAt(transit.currentQrAt(t).text, t)
        assertEquals(VerdictReason.NO_ENTRY, refused.reason)
        assertEquals("No entry tap: see staff", refused.presentation.lineEn)

        // In at Cát Linh, out at Thượng Đình 30 s later: one journey of four stations, 10,000 VND.
        assertTrue(catLinhIn.validateAt(transit.currentQrAt(t + 10).text, t + 10).accepted)
        assertEquals(MetroGate(201, GateDirection.ENTRY), catLinhIn.exportTaps().single().gate)
        assertEquals(0L, client.uploadTaps(inVault, catLinhIn).chargedVnd)
        assertEquals(1L, client.refreshEntries(outVault, thuongDinhOut))
        assertTrue(thuongDinhOut.validateAt(transit.currentQrAt(t + 30).text, t + 30).accepted)
        assertEquals(10_000L, client.uploadTaps(outVault, thuongDinhOut).chargedVnd)

        client.sync(phone, null, null)
        val journey = RiderHistory(phone).tripsFrom("2000-01-01").single()
        assertEquals("metro" to 902, journey.mode to journey.route)
        assertEquals("Cát Linh" to "Thượng Đình", journey.fromStation to journey.toStation)
        assertEquals(10_000L, journey.fareVnd)
        assertFalse(journey.incomplete)
        assertTrue(journey.exitAt!! >= journey.at)
        listOf(catLinhIn, thuongDinhOut).forEach { it.close() }
        client.shutdown()
        listOf(phone, inVault, outVault).forEach { it.shutdown(); it.close() }
    }

    @Test
    fun `a parent's phone holds a child's free pass beside their own, each rider on their own card`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val parent = "001090033333"
        val child = "001022033333"
        val phone = Vault.openWithPassphrase(dir.resolve("parent-phone").toString(), "p", testOptions)
        registerForTest(client, phone, parent, "Kotlin parent")
        val transit = TransitPhone.open(phone, null, 5)
        val own = client.buyTransitProduct(phone, transit, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0, "")
        // Not the parent's to buy until the operator records the guardianship.
        val refused = assertThrows<SyncException.Refused> {
            runBlocking { client.buyTransitProduct(phone, transit, TransitProduct.FREE_PASS, PassengerCategory.CHILD, 0, "", child) }
        }
        assertEquals("not_guardian", refused.code)
        assertEquals(200, adminPost("/v1/admin/citizens/$parent/dependants", """{"dependant_citizen_id":"$child"}"""))
        val now = System.currentTimeMillis() / 1000
        assertEquals(200, adminPost("/v1/admin/citizens/$child/entitlements",
            """{"category":"child","valid_from":${now - 86_400},"valid_until":${now + 86_400 * 365},"evidence_ref":"KS-2020-0117"}"""))
        val childs = client.buyTransitProduct(phone, transit, TransitProduct.FREE_PASS, PassengerCategory.CHILD, 0, "", child)
        assertEquals(listOf(own.cardId, childs.cardId), transit.credentials().map { it.cardId })
        assertTrue(transit.currentQrFor(childs.cardId).text.startsWith("HNT1:"), "the child's QR, now")

        // One bus, one phone, two riders a second apart: both board, only the parent pays.
        val busVault = Vault.openWithPassphrase(dir.resolve("family-bus").toString(), "p", testOptions)
        client.enrolValidator(busVault, enrolmentCodes[1], "bus 32 rear door")
        val feed = client.validatorFeed(busVault)
        val bus = TransitValidator.open(busVault, feed.issuerKeys, ValidatorConfig(route = 32))
        val t = System.currentTimeMillis() / 1000
        assertTrue(bus.validateAt(transit.currentQrAt(t).text, t).accepted)
        val childRide = bus.validateAt(transit.currentQrForAt(childs.cardId, t + 1).text, t + 1)
        assertTrue(childRide.accepted)
        assertEquals(PassengerCategory.CHILD, childRide.category)
        assertEquals(8_000L, client.uploadTaps(busVault, bus).chargedVnd)

        // The parent's phone shows each rider's trips and caps apart.
        client.sync(phone, null, null)
        val history = RiderHistory(phone)
        assertEquals(2, history.tripsFrom("2000-01-01").size)
        val childTrip = history.tripsFrom("2000-01-01", childs.cardId).single()
        assertEquals(TransitProduct.FREE_PASS to 0L, childTrip.product to childTrip.fareVnd)
        assertEquals(8_000L, history.cap(childTrip.day)!!.paidVnd)
        assertEquals(null, history.cap(childTrip.day, childs.cardId))
        assertTrue(transit.removeCredential(childs.cardId))
        assertEquals(listOf(own.cardId), transit.credentials().map { it.cardId })
        bus.close()
        client.shutdown()
        listOf(phone, busVault).forEach { it.shutdown(); it.close() }
    }

    @Test
    fun `the scripted day - a parent and a child through metro gates and two buses, inspected, up to the daily cap`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(url, 5_000L, 4, 50L, emptyList()))
        val parent = "001085055555"
        val child = "001021055555"
        val phone = Vault.openWithPassphrase(dir.resolve("day-phone").toString(), "p", testOptions)
        registerForTest(client, phone, parent, "Kotlin day rider")
        val transit = TransitPhone.open(phone, null, 5)
        val own = client.buyTransitProduct(phone, transit, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0, "").cardId
        assertEquals(200, adminPost("/v1/admin/citizens/$parent/dependants", """{"dependant_citizen_id":"$child"}"""))
        val now = System.currentTimeMillis() / 1000
        assertEquals(200, adminPost("/v1/admin/citizens/$child/entitlements",
            """{"category":"child","valid_from":${now - 86_400},"valid_until":${now + 86_400 * 365},"evidence_ref":"KS-2021-0042"}"""))
        val kid = client.buyTransitProduct(phone, transit, TransitProduct.FREE_PASS, PassengerCategory.CHILD, 0, "", child).cardId

        suspend fun device(code: String, name: String, route: Int, gate: MetroGate?) = enrol(client, code, name, route, gate)
        suspend fun gate(binding: String, station: Int, direction: GateDirection) =
            enrolGate(client, binding, station, direction)
        val (laThanhInVault, laThanhIn) = gate("202:entry", 202, GateDirection.ENTRY)
        val (laKheOutVault, laKheOut) = gate("210:exit", 210, GateDirection.EXIT)
        val (laKheInVault, laKheIn) = gate("210:entry", 210, GateDirection.ENTRY)
        val (laThanhOutVault, laThanhOut) = gate("202:exit", 202, GateDirection.EXIT)
        val (busAVault, busA) = device(enrolmentCodes[2], "bus-a", 32, null)
        val (busBVault, busB) = device(enrolmentCodes[3], "bus-b", 32, null)
        val (inspectorVault, inspector) = device(enrolmentCodes[4], "inspector", 32, null)

        // 07:00 tomorrow in Hanoi: every ride below counts toward one local day.
        val hanoi = now + 7 * 3600
        val t = hanoi - hanoi % 86_400 + 86_400
        suspend fun tap(card: Long, v: TransitValidator, at: Long) {
            val verdict = v.validateAt(transit.currentQrForAt(card, at).text, at)
            assertTrue(verdict.accepted, verdict.toString())
        }
        var charged = 0L
        suspend fun upload(vault: Vault, v: TransitValidator) { charged += client.uploadTaps(vault, v).chargedVnd }
        // Morning: the metro from La Thành to La Khê, both riders.
        tap(own, laThanhIn, t); tap(kid, laThanhIn, t + 2)
        upload(laThanhInVault, laThanhIn)
        client.refreshEntries(laKheOutVault, laKheOut)
        tap(own, laKheOut, t + 1_200); tap(kid, laKheOut, t + 1_202)
        upload(laKheOutVault, laKheOut)
        // Two buses; an inspector on the second, paired with its validator.
        tap(own, busA, t + 3_600); tap(kid, busA, t + 3_601)
        tap(own, busB, t + 7_200); tap(kid, busB, t + 7_201)
        val vehicle = busB.recentTaps(t + 7_200 - 3 * 3_600)
        for (card in listOf(own, kid)) {
            val inspection = inspector.inspectAt(transit.currentQrForAt(card, t + 7_800).text, t + 7_800, vehicle)
            assertEquals(InspectionOutcome.VALID, inspection.outcome, inspection.toString())
        }
        upload(busAVault, busA); upload(busBVault, busB)
        assertEquals(2L, client.uploadInspections(inspectorVault, inspector, null).stored)
        // Evening: the metro home; the parent reaches the daily cap.
        val evening = t + 10 * 3_600
        tap(own, laKheIn, evening); tap(kid, laKheIn, evening + 2)
        upload(laKheInVault, laKheIn)
        client.refreshEntries(laThanhOutVault, laThanhOut)
        tap(own, laThanhOut, evening + 1_200); tap(kid, laThanhOut, evening + 1_202)
        upload(laThanhOutVault, laThanhOut)
        // 13,000 + 8,000 + 8,000 + 13,000 capped to 1,000; the child rides free.
        assertEquals(30_000L, charged)

        client.sync(phone, null, null)
        val history = RiderHistory(phone)
        val parentTrips = history.tripsFrom("2000-01-01", own).reversed()
        assertEquals(listOf(13_000L, 8_000L, 8_000L, 1_000L), parentTrips.map { it.fareVnd })
        assertEquals(listOf("metro", "bus", "bus", "metro"), parentTrips.map { it.mode })
        assertEquals("La Khê" to "La Thành", parentTrips.last().fromStation to parentTrips.last().toStation)
        assertTrue(parentTrips.last().capped)
        val childTrips = history.tripsFrom("2000-01-01", kid)
        assertEquals(4, childTrips.size)
        assertTrue(childTrips.all { it.fareVnd == 0L && it.product == TransitProduct.FREE_PASS })
        val cap = history.cap(parentTrips.first().day)!!
        assertEquals(30_000L to true, cap.paidVnd to cap.reached)
        listOf(laThanhIn, laKheOut, laKheIn, laThanhOut, busA, busB, inspector).forEach { it.close() }
        client.shutdown()
        listOf(phone, laThanhInVault, laKheOutVault, laKheInVault, laThanhOutVault, busAVault, busBVault, inspectorVault)
            .forEach { it.shutdown(); it.close() }
    }
}
