package vn.hanoi.thudo

import okhttp3.OkHttpClient

/**
 * README.md's Kotlin samples, compiled (never run: the names they take from the app are
 * parameters here). A test (tests/tests/doc_samples.rs) checks that every line of every Kotlin
 * sample in README.md is in compiled code, so the README cannot drift from the API.
 */
@Suppress("UNUSED_VARIABLE", "UNUSED_PARAMETER", "unused")
internal object ReadmeSamples {
    suspend fun vault(path: String, keystoreProvider: KeyProvider, json: String) {
        val vault = Vault.openWithKeyProvider(path, keystoreProvider, null)   // suspend
        vault.put("health.immunization", "bcg-1", json.toByteArray(), mapOf("person" to "child"))
        val shots = vault.query("health.immunization", "person", "child")
        vault.shutdown()   // interrupts work in flight; later calls throw VaultException.Closed
        vault.close()      // frees the handle (or use `use {}`)
    }

    suspend fun transit(vault: Vault, busVault: Vault, trustedKeys: List<TrustedIssuerKey>, credentialFromBackend: ByteArray, scannedText: String) {
        val phone = TransitPhone.open(vault, signer = null, refreshSecs = 5)    // or a StrongBox signer
        phone.installCredential(credentialFromBackend)
        val qr = phone.currentQr()            // text, modules, svg, refreshAt, expiryWarning
        val bus = TransitValidator.open(busVault, trustedKeys, ValidatorConfig(route = 32))
        val verdict = bus.validate(scannedText)   // accepted, reason, display line for the driver
    }

    suspend fun handbook(
        vault: Vault, libraryPath: String, org: String, scannedMeetingQr: String, client: SyncClient, doc: PartyDocument,
    ) {
        val library = HandbookLibrary.open(libraryPath)
        library.search("nghi quyet 57", 20)           // finds "Nghị quyết số 57-NQ/TW", snippet with <mark>
        computePartyFee(FeeSituation(FeeBasis.PENSION, incomeVnd = 7_000_000L), "2026-03").dueVnd   // 35,000 VND
        val handbook = MemberHandbook(vault)
        handbook.recordAttendance("m12", AttendanceStatus.Excused("Đi công tác"))
        handbook.saveDraft("t1", ProcedureRequest.TemporaryTransfer(org, TransferPurpose.WORK, "2026-12-01", "2027-06-01"))
        handbook.queueProcedure("t1")                 // validated, then queued in the sync outbox
        computePartyFeeStatement(listOf(FeePeriod("2025-01", FeeSituation(FeeBasis.OTHER_INCOME,
            region = WageRegion.I, setAmountVnd = 10_000L))), "2025-11", "2026-02").totalDueVnd  // 45,930 VND
        handbook.checkIn(scannedMeetingQr)            // signed check-in, offline; HandbookClient uploads it
        AttachmentStore(vault).fetch(client, "handbook.documents/nq57", doc.attachments[0])  // the PDF, on open
    }

    suspend fun reminders(vault: Vault, phone: TransitPhone, nowSecs: Long, schedule: (String, Long, String) -> Unit) {
        // Meetings, fee months, passes ending, a child's doses: schedule them as local notifications.
        upcomingReminders(vault, phone, nowSecs, nowSecs + 30 * 86_400).forEach { schedule(it.id, it.atSecs, it.text) }
        vault.reminderChanges().collect { /* list again and reschedule */ }
    }

    suspend fun health(vault: Vault, verifier: HealthCardVerifier, qrText: String) {
        val book = HealthBook(vault)
        val child = book.savePerson(HealthPerson(null, "Trần Thu Hà", "2026-01-10", Gender.FEMALE, null, null))
        book.importCardQr(verifier, listOf(qrText), child, null)       // verified, with issuer/kid provenance
        book.records(child, HealthKind.IMMUNIZATION, null, null)       // FHIR R4 resources + summaries
        book.vaccinationSchedule(child, "2026-03-20")                  // done / due / overdue / upcoming
        book.exportIps(child)                                          // IPS document Bundle (JSON)
    }

    suspend fun sync(
        vault: Vault, library: HandbookLibrary, observer: SyncObserver, okHttpClient: OkHttpClient, transitPhone: TransitPhone,
        lostPhoneId: String, freshIdToken: String, signInWithVNeID: (String) -> String,
    ) {
        val sync = SyncClient.withHttpClient(SyncSettings(baseUrl = "https://api.example.vn"), OkHttpSyncTransport(okHttpClient))
        val idToken = signInWithVNeID(sync.registrationNonce())          // the provider's sign-in, with our nonce
        sync.register(vault, idToken, "Lan's phone")                     // once, a fresh sign-in; token kept in the vault
        sync.devices(vault); sync.revokeDevice(vault, lostPhoneId, freshIdToken)  // a fresh sign-in; the revoked one stops at once, the others are told
        val report = sync.sync(vault, library, observer)                 // push outbox, pull every collection
        report.clockOffsetMs?.let { transitPhone.setClockOffsetMs(it) }   // the unit sync reports
        transitPhone.deviceClockChanged()                                // from ACTION_TIME_CHANGED: drops that offset
        val transit = TransitClient(sync)                                // transit's calls over the same connection
        transit.buyTransitProduct(vault, transitPhone, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0, "2026-12")
        transit.renewCredentials(vault, transitPhone)                    // after each sync: free, while the pass holds
        RiderHistory(vault).tripsFrom("2026-11-01")                     // rides and fares charged, synced, offline
        RiderHistory(vault).cap("2026-11-27")                            // paid today toward the daily cap
        sync.shutdown()                                                   // cancels calls in flight
    }

    suspend fun validators(
        sync: SyncClient, transit: TransitClient, busVault: Vault, codeFromOperator: String, validator: TransitValidator,
        verdict: Verdict, inspector: TransitValidator, qrText: String, nowUnix: Long, inspectorVault: Vault,
    ) {
        val enrolment = sync.enrolValidator(busVault, codeFromOperator, "bus 32 front door")   // route 32
        val feed = transit.validatorFeed(busVault)         // issuer keyring + signed deny list
        validator.setTrustedKeys(feed.issuerKeys); validator.updateDenyList(feed.denyList.toByteArray())
        validator.denyListStatus()                         // version, age, stale, needsRefresh
        transit.uploadTaps(busVault, validator)            // each tap carries its scan; the backend re-verifies it
        verdict.presentation                               // colour, beeps, Vietnamese and English lines: the same everywhere
        // An inspector (enrolled the same way) checks a QR without using it, paired with the bus's taps:
        val inspection = inspector.inspect(qrText, validator.recentTaps(nowUnix - 3 * 3600))  // VALID, NOT_TAPPED, INVALID
        transit.uploadInspections(inspectorVault, inspector, null)
    }
}
