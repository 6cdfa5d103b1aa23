import Foundation
import XCTest

@testable import Thudo

/// A real sync against the reference backend that scripts/with-server.sh starts on loopback.
final class SyncTests: XCTestCase {
    final class Recorder: SyncObserver, @unchecked Sendable {
        private let lock = NSLock()
        private var seen: [SyncProgress] = []
        func onProgress(progress: SyncProgress) { lock.lock(); seen.append(progress); lock.unlock() }
        var events: [SyncProgress] { lock.lock(); defer { lock.unlock() }; return seen }
    }

    /// The test server scripts/with-server.sh started, and its seeded citizen.
    func testServer() -> (url: String, citizen: String)? {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["THUDO_SERVER_URL"] else { return nil }
        return (url, environment["THUDO_DEMO_CITIZEN"] ?? "001088012345")
    }

    /// Settings for the test server: short timeouts, quick retries.
    func settings(_ url: String) -> SyncSettings {
        SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: 4, backoffBaseMs: 50, pinnedSpkiSha256Hex: [])
    }

    /// The test server's single-use metro gate codes, by binding (`201:entry`).
    func gateCodes() -> [String: String] {
        Dictionary(uniqueKeysWithValues: (ProcessInfo.processInfo.environment["THUDO_GATE_CODES"] ?? "")
            .split(separator: " ").compactMap { pair -> (String, String)? in
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            })
    }

    /// A validator enrolled with the operator's `code`, its feed installed.
    func enrol(_ client: SyncClient, _ code: String, _ name: String, _ route: Int32,
               _ gate: MetroGate?) async throws -> (Vault, TransitValidator) {
        let vault = try await Vault.openWithPassphrase(path: temp(name), passphrase: "p", options: testOptions)
        let enrolled = try await client.enrolValidator(vault: vault, enrolmentCode: code, deviceName: name)
        XCTAssertEqual(enrolled.gate, gate.map { "\($0.station):\($0.direction == .entry ? "entry" : "exit")" })
        let feed = try await client.validatorFeed(vault: vault)
        let validator = try await TransitValidator.open(vault: vault, trustedKeys: feed.issuerKeys,
                                                        config: ValidatorConfig(route: route, gate: gate))
        _ = try await validator.updateDenyList(signedList: feed.denyList)
        return (vault, validator)
    }

    /// The test server's metro gate bound as `binding`, on line 2A.
    func enrolGate(_ client: SyncClient, _ binding: String, _ station: Int32,
                   _ direction: GateDirection) async throws -> (Vault, TransitValidator) {
        try await enrol(client, try XCTUnwrap(gateCodes()[binding]), binding, 902,
                        MetroGate(station: station, direction: direction))
    }

    func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("thudo-sync-\(name)-\(UUID().uuidString)").path
    }

    final class FireOnPull: SyncObserver, @unchecked Sendable {
        let token: CancelToken
        init(_ token: CancelToken) { self.token = token }
        func onProgress(progress: SyncProgress) { if case .pulled = progress { token.cancel() } }
    }

    func testACancelledSyncStopsAloneAndTheNextSyncGoesOn() async throws {
        guard let server = testServer() else { return XCTFail("run through scripts/test-swift.sh (THUDO_SERVER_URL)") }
        let (url, citizen) = (server.url, server.citizen)
        let client = try SyncClient(settings: settings(url))
        let phone = try await Vault.openWithPassphrase(path: temp("cancel"), passphrase: "p", options: testOptions)
        try await registerForTest(client, phone, citizenId: citizen, name: "cancel test (Swift)")
        let library = try await HandbookLibrary.open(path: temp("cancel-library") + ".db")
        _ = try await MemberHandbook(vault: phone).saveNote(id: "swift-cancel", documentId: "nq-57-2024", text: "trước khi huỷ")

        // The token fires on the first page pulled: the sync stops mid-pull.
        let token = CancelToken()
        do {
            _ = try await client.sync(vault: phone, library: library, observer: FireOnPull(token), cancel: token)
            XCTFail("the sync ran past its cancel")
        } catch let error as SyncError {
            guard case .Cancelled = error else { return XCTFail("expected Cancelled, got \(error)") }
            XCTAssertEqual(error.code(), "sync.cancelled")
            XCTAssertTrue(error.isRetryable())
            XCTAssertEqual(error.localizedDescription, "cancelled")
        }
        XCTAssertTrue(token.isCancelled())

        // The same client syncs again: the note went before the pull began, the library is whole.
        let report = try await client.sync(vault: phone, library: library)
        XCTAssertEqual(report.pushed, 0)
        let hits = try await library.search(query: "nghi quyet khoa hoc", limit: 5)
        XCTAssertEqual(hits.first?.number, "57-NQ/TW")
        let again = try await client.sync(vault: phone, library: library)
        XCTAssertEqual(again.pulled, 0)

        // A time budget fires by itself.
        do {
            _ = try await client.sync(vault: phone, cancel: CancelToken.withTimeoutMs(budgetMs: 0))
            XCTFail("an expired budget did not stop the sync")
        } catch SyncError.Cancelled {}

        // The background helper: out of time is a retry, and the client goes on afterwards.
        guard case .retry = await backgroundSync(client: client, vault: phone, token: CancelToken.withTimeoutMs(budgetMs: 0)) else {
            return XCTFail("an expired budget should ask for a retry")
        }
        guard case .success = await backgroundSync(client: client, vault: phone) else { return XCTFail("expected success") }
        await phone.shutdown()
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var lists: [[String]] = []
        func add(_ list: [String]) { lock.lock(); lists.append(list); lock.unlock() }
        var all: [[String]] { lock.lock(); defer { lock.unlock() }; return lists }
        func clear() { lock.lock(); lists.removeAll(); lock.unlock() }
    }

    /// Waits up to 10 s for `seen` to hold `count` lists.
    func waitFor(_ seen: Seen, count: Int) async throws {
        for _ in 0..<200 where seen.all.count < count { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertGreaterThanOrEqual(seen.all.count, count, "changes not reported in time")
    }

    func testSyncOverURLSessionThePlatformsHttpStack() async throws {
        guard let url = ProcessInfo.processInfo.environment["THUDO_SERVER_URL"] else {
            return XCTFail("run through scripts/test-swift.sh (THUDO_SERVER_URL)")
        }
        let citizen = ProcessInfo.processInfo.environment["THUDO_DEMO_CITIZEN"] ?? "001088012345"
        let http = URLSessionSyncTransport()
        let client = try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: 3,
                                                                           backoffBaseMs: 20, pinnedSpkiSha256Hex: []), http: http)
        let phone = try await Vault.openWithPassphrase(path: temp("urlsession"), passphrase: "p", options: testOptions)
        try await registerForTest(client, phone, citizenId: citizen, name: "urlsession test (Swift)")
        let library = try await HandbookLibrary.open(path: temp("urlsession-library") + ".db")
        let report = try await client.sync(vault: phone, library: library)
        XCTAssertGreaterThan(report.applied, 0)
        XCTAssertNotNil(report.clockOffsetMs, "the server's clock header came through URLSession")
        let hits = try await library.search(query: "nghi quyet khoa hoc", limit: 5)
        XCTAssertEqual(hits.first?.number, "57-NQ/TW")

        // Pins belong to the platform client; in the settings they are refused, not ignored.
        XCTAssertThrowsError(try SyncClient.withHttpClient(
            settings: SyncSettings(baseUrl: url, requestTimeoutMs: nil, maxAttempts: nil, backoffBaseMs: nil,
                                   pinnedSpkiSha256Hex: [String(repeating: "ab", count: 32)]), http: http)) { error in
            guard case SyncError.InvalidArgument = error else { return XCTFail("\(error)") }
        }
        // URLSession's reading stops past the limit: 8 bytes allowed for a 15-byte answer.
        let health = HttpRequest(method: "GET", url: url + "/healthz", headers: [:], body: nil, timeoutMs: 5_000, maxBodyBytes: 8)
        var roomy = health
        roomy.maxBodyBytes = 1_000
        XCTAssertEqual(try http.send(request: roomy).status, 200)
        XCTAssertThrowsError(try http.send(request: health)) { error in
            guard case HttpError.TooLarge = error else { return XCTFail("\(error)") }
        }
        // Nobody listening: URLSession's failure is retried, then reported as unavailable.
        let offline = try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: "http://127.0.0.1:9", requestTimeoutMs: 1_000,
                                                                            maxAttempts: 2, backoffBaseMs: 10, pinnedSpkiSha256Hex: []), http: http)
        do {
            _ = try await offline.sync(vault: phone)
            XCTFail("synced with nobody listening")
        } catch SyncError.Unavailable(let attempts, _) {
            XCTAssertEqual(attempts, 2)
        }
        await phone.shutdown()
    }

    func testScreensHearOfLocalWritesAndOfWhatSyncBrings() async throws {
        guard let server = testServer() else { return XCTFail("run through scripts/test-swift.sh (THUDO_SERVER_URL)") }
        let (url, citizen) = (server.url, server.citizen)
        let client = try SyncClient(settings: settings(url))
        let phone = try await Vault.openWithPassphrase(path: temp("observe-phone"), passphrase: "p", options: testOptions)
        let tablet = try await Vault.openWithPassphrase(path: temp("observe-tablet"), passphrase: "p", options: testOptions)
        try await registerForTest(client, phone, citizenId: citizen, name: "observe test phone (Swift)")
        try await registerForTest(client, tablet, citizenId: citizen, name: "observe test tablet (Swift)")
        let library = try await HandbookLibrary.open(path: temp("observe-library") + ".db")

        // The library's documents arrive by sync.
        let documents = Seen()
        let documentStream = library.changes()
        let documentTask = Task { for await c in documentStream { documents.add(c) } }
        _ = try await client.sync(vault: tablet, library: library)
        try await waitFor(documents, count: 1)
        XCTAssertEqual(documents.all.first, ["handbook.documents"])
        documentTask.cancel()

        // Notes: a local write, then one made on the phone and brought by sync.
        let notes = Seen()
        let noteStream = tablet.changes(["handbook.note"])
        let noteTask = Task { for await c in noteStream { notes.add(c) } }
        _ = try await MemberHandbook(vault: tablet).saveNote(id: "observe-local", documentId: "nq-57-2024", text: "ghi trên máy tính bảng")
        try await waitFor(notes, count: 1)
        XCTAssertEqual(notes.all, [["handbook.note"]])
        // Another collection is not reported to this observer.
        try await MemberHandbook(vault: tablet).setProfile(profile: MemberProfile(
            fullName: "Nguyễn Văn An", dateOfBirth: "1985-04-30", sex: "nam", joinedOn: "2010-05-19", officialOn: "2011-05-19",
            partyCardNumber: "01.123456", cell: "Chi bộ Tổ dân phố 5", parentOrganisations: ["Đảng bộ phường Dịch Vọng"],
            citizenId: "001085012345", phone: "0912345678"))
        _ = try await MemberHandbook(vault: phone).saveNote(id: "observe-remote", documentId: "nq-57-2024", text: "ghi trên điện thoại")
        _ = try await client.sync(vault: phone)
        _ = try await client.sync(vault: tablet)
        try await waitFor(notes, count: 2)
        XCTAssertTrue(notes.all.allSatisfy { $0 == ["handbook.note"] }, "\(notes.all)")
        let onTablet = try await MemberHandbook(vault: tablet).notesFor(documentId: "nq-57-2024")
        XCTAssertEqual(onTablet.first { $0.id == "observe-remote" }?.text, "ghi trên điện thoại")
        // Cancelling the task stops the observation.
        noteTask.cancel()
        _ = await noteTask.value
        notes.clear()
        _ = try await MemberHandbook(vault: tablet).saveNote(id: "observe-after", documentId: "nq-57-2024", text: "không ai nghe")
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(notes.all, [])
        await phone.shutdown()
        await tablet.shutdown()
    }

    func testTwoDevicesSyncHandbookHealthAndNotes() async throws {
        guard let server = testServer() else { return XCTFail("run through scripts/test-swift.sh (THUDO_SERVER_URL)") }
        let (url, citizen) = (server.url, server.citizen)
        let client = try SyncClient(settings: settings(url))
        let phone = try await Vault.openWithPassphrase(path: temp("phone"), passphrase: "p", options: testOptions)
        let tablet = try await Vault.openWithPassphrase(path: temp("tablet"), passphrase: "p", options: testOptions)
        // A citizen ID alone opens nothing: a forged or replayed sign-in is refused.
        do {
            _ = try await client.register(vault: phone, idToken: "not.a.token", deviceName: "Swift phone")
            XCTFail("a forged token registered")
        } catch SyncError.Refused(_, let code, _) { XCTAssertEqual(code, "identity_invalid") }
        let token = try await testIdToken(citizenId: citizen, nonce: try await client.registrationNonce())
        _ = try await client.register(vault: phone, idToken: token, deviceName: "Swift phone")
        do {
            _ = try await client.register(vault: tablet, idToken: token, deviceName: "Swift tablet")
            XCTFail("a replayed token registered")
        } catch SyncError.Refused(_, let code, _) { XCTAssertEqual(code, "nonce_used") }
        try await registerForTest(client, tablet, citizenId: citizen, name: "Swift tablet")

        let library = try await HandbookLibrary.open(path: temp("library") + ".db")
        let recorder = Recorder()
        let report = try await client.sync(vault: phone, library: library, observer: recorder)
        XCTAssertGreaterThanOrEqual(report.applied, 4)
        XCTAssertTrue(recorder.events.contains { if case .pulled(let c, _) = $0 { return c == "handbook.documents" } else { return false } })
        let hits = try await library.search(query: "nghi quyet khoa hoc", limit: 5)
        XCTAssertEqual(hits.first?.number, "57-NQ/TW")
        let records = try await HealthBook(vault: phone).records(personId: "demo-citizen", kind: .observation, from: nil, to: nil)
        XCTAssertEqual(records.first?.unit, "mmol/L")

        _ = try await MemberHandbook(vault: phone).saveNote(id: "swift-note", documentId: "nq-57-2024", text: "ghi chú từ Swift")
        let pushed = try await client.sync(vault: phone, library: nil, observer: nil)
        XCTAssertEqual(pushed.pushed, 1)
        _ = try await client.sync(vault: tablet, library: nil, observer: nil)
        let notes = try await MemberHandbook(vault: tablet).notesFor(documentId: "nq-57-2024")
        XCTAssertEqual(notes.first { $0.id == "swift-note" }?.text, "ghi chú từ Swift")

        // A health card imported on the phone travels with the signed card: the tablet, trusting
        // the issuer, verifies it again; a laptop that trusts no issuer shows another device's word.
        let fixtures = ProcessInfo.processInfo.environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        let verifier = HealthCardVerifier()
        _ = try verifier.addJwks(issuer: "https://spec.smarthealth.cards/examples/issuer",
                                 jwksJson: try String(contentsOfFile: fixtures + "/issuer/jwks.json", encoding: .utf8))
        let qrText = try String(contentsOfFile: fixtures + "/example-00-f-qr-code-numeric-value-0.txt", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let imported = try await HealthBook(vault: phone).importCardQr(verifier: verifier, qrTexts: [qrText], intoPerson: nil,
                                                                       nowUnix: 1_790_000_000)
        let person = imported.people[0]
        _ = try await client.sync(vault: phone, library: nil, observer: nil)
        client.trustHealthCards(verifier: verifier)
        _ = try await client.sync(vault: tablet, library: nil, observer: nil)
        let onTablet = try await HealthBook(vault: tablet).records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(onTablet.count, 3)
        XCTAssertTrue(onTablet.allSatisfy { $0.provenance.source == .healthCard })
        let untrusting = try SyncClient(settings: SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: 4,
                                                               backoffBaseMs: 50, pinnedSpkiSha256Hex: []))
        let laptop = try await Vault.openWithPassphrase(path: temp("laptop"), passphrase: "p", options: testOptions)
        try await registerForTest(untrusting, laptop, citizenId: citizen, name: "Swift laptop")
        _ = try await untrusting.sync(vault: laptop, library: nil, observer: nil)
        let onLaptop = try await HealthBook(vault: laptop).records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(onLaptop.count, 3)
        XCTAssertTrue(onLaptop.allSatisfy { $0.provenance.source == .otherDevice })
        untrusting.shutdown()
        await laptop.shutdown()

        // Buy a pass, validate its QR on a registered validator, upload the tap.
        let registered = try await client.isRegistered(vault: phone)
        XCTAssertTrue(registered)
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM"
        formatter.timeZone = TimeZone(secondsFromGMT: 7 * 3600)
        let bought = try await client.buyTransitProduct(vault: phone, phone: transit, product: .monthlyAllRoutes,
                                                        category: .standard, route: 0, month: formatter.string(from: Date()))
        XCTAssertEqual(bought.priceVnd, 280_000)
        // A free category needs an entitlement the operator holds: a typed error to explain.
        do {
            _ = try await client.buyTransitProduct(vault: phone, phone: transit, product: .freePass,
                                                   category: .elderly, route: 0, month: "")
            XCTFail("a free pass was sold without an entitlement")
        } catch SyncError.NotEntitled {}

        // A phone cannot read the validator feed.
        let fake = try await Vault.openWithPassphrase(path: temp("fake"), passphrase: "p", options: testOptions)
        do {
            _ = try await client.validatorFeed(vault: phone)
            XCTFail("a phone read the validator feed")
        } catch SyncError.Refused(_, let code, _) { XCTAssertEqual(code, "validators_only") }

        // The bus enrols with the operator's single-use code (the second of the test server's
        // six; Kotlin's run has its own server), which cannot be used twice.
        let codes = (ProcessInfo.processInfo.environment["THUDO_ENROLMENT_CODES"] ?? "").split(separator: " ").map(String.init)
        XCTAssertEqual(codes.count, 6)
        let bus = try await Vault.openWithPassphrase(path: temp("bus"), passphrase: "p", options: testOptions)
        let enrolment = try await client.enrolValidator(vault: bus, enrolmentCode: codes[1], deviceName: "bus 32 front door")
        XCTAssertEqual(enrolment.route, 32)
        do {
            _ = try await client.enrolValidator(vault: fake, enrolmentCode: codes[1], deviceName: "copy")
            XCTFail("an enrolment code was used twice")
        } catch SyncError.Refused(_, let code, _) { XCTAssertEqual(code, "enrolment_used") }
        await fake.shutdown()
        let feed = try await client.validatorFeed(vault: bus)
        // Fail closed without a current deny list: nobody rides until the feed arrives.
        let strictVault = try await Vault.openWithPassphrase(path: temp("strict"), passphrase: "p", options: testOptions)
        let strict = try await TransitValidator.open(vault: strictVault, trustedKeys: feed.issuerKeys,
                                                     config: ValidatorConfig(route: 32, failClosedWhenStale: true))
        let strictStatus = try await strict.denyListStatus()
        XCTAssertTrue(strictStatus.stale)
        let early = try await transit.currentQr()
        XCTAssertEqual(try strict.validate(text: early.text).reason, .denyListStale)
        let validator = try await TransitValidator.open(vault: bus, trustedKeys: feed.issuerKeys, config: ValidatorConfig(route: enrolment.route ?? 0))
        try await validator.setTrustedKeys(keys: feed.issuerKeys)
        let installed = try await validator.updateDenyList(signedList: feed.denyList)
        XCTAssertEqual(installed, 1)
        let status = try await validator.denyListStatus()
        XCTAssertEqual(status.version, 1)
        XCTAssertFalse(status.stale || status.needsRefresh)
        let qr = try await transit.currentQr()
        XCTAssertTrue(try validator.validate(text: qr.text).accepted)
        let receipt = try await client.uploadTaps(vault: bus, validator: validator)
        XCTAssertEqual(receipt.stored, 1)
        XCTAssertEqual(receipt.chargedVnd, 0)
        XCTAssertEqual(receipt.notCharged, 0)
        let logStatus = try await validator.tapLogStatus()
        XCTAssertEqual(receipt.acknowledgedSeq, logStatus.ackedSeq)
        // The phone's next sync brings the ride it took, charged nothing on its monthly pass.
        _ = try await client.sync(vault: phone, library: nil, observer: nil)
        let trips = try await RiderHistory(vault: phone).tripsFrom(fromDay: "2000-01-01")
        let ride = try XCTUnwrap(trips.first { $0.route == 32 })
        XCTAssertEqual(ride.product, .monthlyAllRoutes)
        XCTAssertEqual(ride.fareVnd, 0)
        XCTAssertFalse(ride.capped)
        let cap = try await RiderHistory(vault: phone).cap(period: ride.day)
        XCTAssertNil(cap, "nothing paid toward a cap on a pass")
        // The app keeps what it shows: older trips are forgotten on the phone only.
        let keptAll = try await RiderHistory(vault: phone).forgetBefore(beforeDay: ride.day)
        XCTAssertEqual(keptAll, 0)
        let forgotten = try await RiderHistory(vault: phone).forgetBefore(beforeDay: "9999-12-31")
        XCTAssertEqual(forgotten, Int64(trips.count))
        // The same enrolled device inspects a rider: the ticket is not used, the inspection is
        // uploaded and its scan verified at the backend.
        let inspection = try await validator.inspect(text: qr.text, vehicleTaps: [])
        XCTAssertEqual(inspection.outcome, .notTapped)
        XCTAssertEqual(inspection.presentation.signal, .warn)
        let inspected = try await client.uploadInspections(vault: bus, inspector: validator, cancel: nil)
        XCTAssertEqual(inspected.stored, 1)
        XCTAssertEqual(inspected.acknowledgedSeq, inspection.seq)
        let inspectionsLeft = try await validator.exportInspections()
        XCTAssertTrue(inspectionsLeft.isEmpty)
        await bus.shutdown()

        // The citizen sees both devices and revokes the tablet: its token stops at once.
        let devices = try await client.devices(vault: phone)
        // Other tests register devices of the same citizen on this server too.
        XCTAssertEqual(devices.map(\.name).filter { $0.hasPrefix("Swift ") }, ["Swift phone", "Swift tablet", "Swift laptop"])
        XCTAssertEqual(devices.filter(\.current).map(\.name), ["Swift phone"])
        let tabletId = devices.first { $0.name == "Swift tablet" }!.deviceId
        try await client.revokeDevice(vault: phone, deviceId: tabletId)
        do {
            _ = try await client.sync(vault: tablet, library: nil, observer: nil)
            XCTFail("a revoked device synced")
        } catch SyncError.Unauthorized {}
        let left = try await client.devices(vault: phone)
        XCTAssertEqual(left.count, devices.count - 1)
        XCTAssertFalse(left.contains { $0.name == "Swift tablet" })

        XCTAssertThrowsError(try SyncClient(settings: SyncSettings(baseUrl: "http://example.vn", requestTimeoutMs: nil,
                                                                   maxAttempts: nil, backoffBaseMs: nil, pinnedSpkiSha256Hex: []))) { error in
            guard case SyncError.InsecureUrl = error else { return XCTFail("\(error)") }
        }
        client.shutdown()
        do {
            _ = try await client.sync(vault: phone, library: nil, observer: nil)
            XCTFail("a shut-down client synced")
        } catch let error as SyncError {
            guard case .ShutDown = error else { return XCTFail("expected ShutDown, got \(error)") }
            XCTAssertFalse(error.isRetryable())
        }
        await phone.shutdown()
        await tablet.shutdown()
    }

    func testAMetroJourneyThroughTwoGatesIsPricedByItsStationsAndShowsOnThePhone() async throws {
        guard let (url, _) = testServer() else { throw XCTSkip("run through scripts/test-swift.sh") }
        let client = try SyncClient(settings: settings(url))
        let phone = try await Vault.openWithPassphrase(path: temp("metro-phone"), passphrase: "p", options: testOptions)
        try await registerForTest(client, phone, citizenId: "001090022222", name: "Swift metro rider")
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        _ = try await client.buyTransitProduct(vault: phone, phone: transit, product: .payAsYouGo,
                                               category: .standard, route: 0, month: "")

        // Two gates enrol with the operator's codes, bound to their stations.
        let (inVault, catLinhIn) = try await enrolGate(client, "201:entry", 201, .entry)
        let (outVault, thuongDinhOut) = try await enrolGate(client, "205:exit", 205, .exit)

        // The entry gate has uploaded: the exit gate's feed is complete, and a card that did not
        // tap in is sent to the staff gate.
        _ = try await client.uploadTaps(vault: inVault, validator: catLinhIn)
        _ = try await client.refreshEntries(vault: outVault, gate: thuongDinhOut)
        let feedStatus = try await thuongDinhOut.entryFeedStatus()
        XCTAssertTrue(feedStatus.refusingUnknownExits)
        let t = Int64(Date().timeIntervalSince1970)
        let firstQr = try await transit.currentQrAt(nowUnix: t)
        let refused = try thuongDinhOut.validateAt(text: firstQr.text, nowUnix: t)
        XCTAssertEqual(refused.reason, .noEntry)
        XCTAssertEqual(refused.presentation.lineEn, "No entry tap: see staff")

        // In at Cát Linh, out at Thượng Đình 30 s later: one journey of four stations, 10,000 VND.
        let inQr = try await transit.currentQrAt(nowUnix: t + 10)
        XCTAssertTrue(try catLinhIn.validateAt(text: inQr.text, nowUnix: t + 10).accepted)
        let entryTaps = try await catLinhIn.exportTaps()
        XCTAssertEqual(entryTaps.map(\.gate), [MetroGate(station: 201, direction: .entry)])
        let entries = try await client.uploadTaps(vault: inVault, validator: catLinhIn)
        XCTAssertEqual(entries.chargedVnd, 0)
        let open = try await client.refreshEntries(vault: outVault, gate: thuongDinhOut)
        XCTAssertEqual(open, 1)
        let outQr = try await transit.currentQrAt(nowUnix: t + 30)
        XCTAssertTrue(try thuongDinhOut.validateAt(text: outQr.text, nowUnix: t + 30).accepted)
        let exits = try await client.uploadTaps(vault: outVault, validator: thuongDinhOut)
        XCTAssertEqual(exits.chargedVnd, 10_000)

        _ = try await client.sync(vault: phone, library: nil, observer: nil)
        let trips = try await RiderHistory(vault: phone).tripsFrom(fromDay: "2000-01-01")
        XCTAssertEqual(trips.count, 1)
        let journey = try XCTUnwrap(trips.first)
        XCTAssertEqual(journey.mode, "metro")
        XCTAssertEqual(journey.route, 902)
        XCTAssertEqual(journey.fromStation, "Cát Linh")
        XCTAssertEqual(journey.toStation, "Thượng Đình")
        XCTAssertEqual(journey.fareVnd, 10_000)
        XCTAssertFalse(journey.incomplete)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(journey.exitAt), journey.at)
        client.shutdown()
        for vault in [phone, inVault, outVault] { await vault.shutdown() }
    }

    func testAParentsPhoneHoldsAChildsFreePassBesideTheirOwn() async throws {
        guard let (url, _) = testServer() else { throw XCTSkip("run through scripts/test-swift.sh") }
        let client = try SyncClient(settings: settings(url))
        let parent = "001090044444"
        let child = "001022044444"
        let phone = try await Vault.openWithPassphrase(path: temp("parent-phone"), passphrase: "p", options: testOptions)
        try await registerForTest(client, phone, citizenId: parent, name: "Swift parent")
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        let own = try await client.buyTransitProduct(vault: phone, phone: transit, product: .payAsYouGo,
                                                     category: .standard, route: 0, month: "")
        // Not the parent's to buy until the operator records the guardianship.
        do {
            _ = try await client.buyTransitProduct(vault: phone, phone: transit, product: .freePass, category: .child,
                                                   route: 0, month: "", dependantCitizenId: child)
            XCTFail("bought a pass for someone else's child")
        } catch SyncError.Refused(_, let code, _) { XCTAssertEqual(code, "not_guardian") }
        let recorded = try await adminPost("/v1/admin/citizens/\(parent)/dependants", ["dependant_citizen_id": child])
        XCTAssertEqual(recorded, 200)
        let now = Int(Date().timeIntervalSince1970)
        let granted = try await adminPost("/v1/admin/citizens/\(child)/entitlements",
                                          ["category": "child", "valid_from": now - 86_400, "valid_until": now + 86_400 * 365,
                                           "evidence_ref": "KS-2020-0117"])
        XCTAssertEqual(granted, 200)
        let childs = try await client.buyTransitProduct(vault: phone, phone: transit, product: .freePass, category: .child,
                                                        route: 0, month: "", dependantCitizenId: child)
        let held = try await transit.credentials()
        XCTAssertEqual(held.map(\.cardId), [own.cardId, childs.cardId])
        let childNow = try await transit.currentQrFor(cardId: childs.cardId)
        XCTAssertTrue(childNow.text.hasPrefix("HNT1:"), "the child's QR, now")

        // One bus, one phone, two riders a second apart: both board, only the parent pays.
        let codes = (ProcessInfo.processInfo.environment["THUDO_ENROLMENT_CODES"] ?? "").split(separator: " ").map(String.init)
        let busVault = try await Vault.openWithPassphrase(path: temp("family-bus"), passphrase: "p", options: testOptions)
        _ = try await client.enrolValidator(vault: busVault, enrolmentCode: codes[2], deviceName: "bus 32 rear door")
        let feed = try await client.validatorFeed(vault: busVault)
        let bus = try await TransitValidator.open(vault: busVault, trustedKeys: feed.issuerKeys, config: ValidatorConfig(route: 32))
        let t = Int64(Date().timeIntervalSince1970)
        let ownQr = try await transit.currentQrAt(nowUnix: t)
        XCTAssertTrue(try bus.validateAt(text: ownQr.text, nowUnix: t).accepted)
        let childQr = try await transit.currentQrForAt(cardId: childs.cardId, nowUnix: t + 1)
        let childRide = try bus.validateAt(text: childQr.text, nowUnix: t + 1)
        XCTAssertTrue(childRide.accepted)
        XCTAssertEqual(childRide.category, .child)
        let receipt = try await client.uploadTaps(vault: busVault, validator: bus)
        XCTAssertEqual(receipt.chargedVnd, 8_000)

        // The parent's phone shows each rider's trips and caps apart.
        _ = try await client.sync(vault: phone, library: nil, observer: nil)
        let history = RiderHistory(vault: phone)
        let all = try await history.tripsFrom(fromDay: "2000-01-01")
        XCTAssertEqual(all.count, 2)
        let childTrips = try await history.tripsFrom(fromDay: "2000-01-01", cardId: childs.cardId)
        let childTrip = try XCTUnwrap(childTrips.first)
        XCTAssertEqual(childTrips.count, 1)
        XCTAssertEqual(childTrip.product, .freePass)
        XCTAssertEqual(childTrip.fareVnd, 0)
        let ownCap = try await history.cap(period: childTrip.day)
        XCTAssertEqual(ownCap?.paidVnd, 8_000)
        let childCap = try await history.cap(period: childTrip.day, cardId: childs.cardId)
        XCTAssertNil(childCap)
        let removed = try await transit.removeCredential(cardId: childs.cardId)
        XCTAssertTrue(removed)
        let left = try await transit.credentials()
        XCTAssertEqual(left.map(\.cardId), [own.cardId])
        client.shutdown()
        for vault in [phone, busVault] { await vault.shutdown() }
    }

    func testTheScriptedDayAParentAndAChildThroughMetroGatesAndTwoBusesUpToTheDailyCap() async throws {
        guard let (url, _) = testServer() else { throw XCTSkip("run through scripts/test-swift.sh") }
        let environment = ProcessInfo.processInfo.environment
        let codes = (environment["THUDO_ENROLMENT_CODES"] ?? "").split(separator: " ").map(String.init)
        let client = try SyncClient(settings: settings(url))
        let parent = "001085066666"
        let child = "001021066666"
        let phone = try await Vault.openWithPassphrase(path: temp("day-phone"), passphrase: "p", options: testOptions)
        try await registerForTest(client, phone, citizenId: parent, name: "Swift day rider")
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        let own = try await client.buyTransitProduct(vault: phone, phone: transit, product: .payAsYouGo,
                                                     category: .standard, route: 0, month: "").cardId
        let recorded = try await adminPost("/v1/admin/citizens/\(parent)/dependants", ["dependant_citizen_id": child])
        XCTAssertEqual(recorded, 200)
        let now = Int64(Date().timeIntervalSince1970)
        let granted = try await adminPost("/v1/admin/citizens/\(child)/entitlements",
                                          ["category": "child", "valid_from": now - 86_400, "valid_until": now + 86_400 * 365,
                                           "evidence_ref": "KS-2021-0042"])
        XCTAssertEqual(granted, 200)
        let kid = try await client.buyTransitProduct(vault: phone, phone: transit, product: .freePass, category: .child,
                                                     route: 0, month: "", dependantCitizenId: child).cardId

        let (laThanhInVault, laThanhIn) = try await enrolGate(client, "202:entry", 202, .entry)
        let (laKheOutVault, laKheOut) = try await enrolGate(client, "210:exit", 210, .exit)
        let (laKheInVault, laKheIn) = try await enrolGate(client, "210:entry", 210, .entry)
        let (laThanhOutVault, laThanhOut) = try await enrolGate(client, "202:exit", 202, .exit)
        let (busAVault, busA) = try await enrol(client, codes[3], "bus-a", 32, nil)
        let (busBVault, busB) = try await enrol(client, codes[4], "bus-b", 32, nil)
        let (inspectorVault, inspector) = try await enrol(client, codes[5], "inspector", 32, nil)
        let vaults = [phone, laThanhInVault, laKheOutVault, laKheInVault, laThanhOutVault, busAVault, busBVault, inspectorVault]

        // 07:00 tomorrow in Hanoi: every ride below counts toward one local day.
        let hanoi = now + 7 * 3600
        let t = hanoi - hanoi % 86_400 + 86_400
        func tap(_ card: Int64, _ v: TransitValidator, _ at: Int64) async throws {
            let qr = try await transit.currentQrForAt(cardId: card, nowUnix: at)
            let verdict = try v.validateAt(text: qr.text, nowUnix: at)
            XCTAssertTrue(verdict.accepted, "\(verdict)")
        }
        var charged: Int64 = 0
        func upload(_ vault: Vault, _ v: TransitValidator) async throws {
            charged += try await client.uploadTaps(vault: vault, validator: v).chargedVnd
        }
        // Morning: the metro from La Thành to La Khê, both riders.
        try await tap(own, laThanhIn, t)
        try await tap(kid, laThanhIn, t + 2)
        try await upload(laThanhInVault, laThanhIn)
        _ = try await client.refreshEntries(vault: laKheOutVault, gate: laKheOut)
        try await tap(own, laKheOut, t + 1_200)
        try await tap(kid, laKheOut, t + 1_202)
        try await upload(laKheOutVault, laKheOut)
        // Two buses; an inspector on the second, paired with its validator.
        try await tap(own, busA, t + 3_600)
        try await tap(kid, busA, t + 3_601)
        try await tap(own, busB, t + 7_200)
        try await tap(kid, busB, t + 7_201)
        let vehicle = try await busB.recentTaps(sinceUnix: t + 7_200 - 3 * 3_600)
        for card in [own, kid] {
            let qr = try await transit.currentQrForAt(cardId: card, nowUnix: t + 7_800)
            let inspection = try await inspector.inspectAt(text: qr.text, nowUnix: t + 7_800, vehicleTaps: vehicle)
            XCTAssertEqual(inspection.outcome, .valid)
        }
        try await upload(busAVault, busA)
        try await upload(busBVault, busB)
        let inspected = try await client.uploadInspections(vault: inspectorVault, inspector: inspector, cancel: nil)
        XCTAssertEqual(inspected.stored, 2)
        // Evening: the metro home; the parent reaches the daily cap.
        let evening = t + 10 * 3_600
        try await tap(own, laKheIn, evening)
        try await tap(kid, laKheIn, evening + 2)
        try await upload(laKheInVault, laKheIn)
        _ = try await client.refreshEntries(vault: laThanhOutVault, gate: laThanhOut)
        try await tap(own, laThanhOut, evening + 1_200)
        try await tap(kid, laThanhOut, evening + 1_202)
        try await upload(laThanhOutVault, laThanhOut)
        // 13,000 + 8,000 + 8,000 + 13,000 capped to 1,000; the child rides free.
        XCTAssertEqual(charged, 30_000)

        _ = try await client.sync(vault: phone, library: nil, observer: nil)
        let history = RiderHistory(vault: phone)
        let parentTrips = Array(try await history.tripsFrom(fromDay: "2000-01-01", cardId: own).reversed())
        XCTAssertEqual(parentTrips.map(\.fareVnd), [13_000, 8_000, 8_000, 1_000])
        XCTAssertEqual(parentTrips.map(\.mode), ["metro", "bus", "bus", "metro"])
        XCTAssertEqual(parentTrips.last?.fromStation, "La Khê")
        XCTAssertEqual(parentTrips.last?.toStation, "La Thành")
        XCTAssertEqual(parentTrips.last?.capped, true)
        let childTrips = try await history.tripsFrom(fromDay: "2000-01-01", cardId: kid)
        XCTAssertEqual(childTrips.count, 4)
        XCTAssertTrue(childTrips.allSatisfy { $0.fareVnd == 0 && $0.product == .freePass })
        let cap = try await history.cap(period: try XCTUnwrap(parentTrips.first).day)
        XCTAssertEqual(cap?.paidVnd, 30_000)
        XCTAssertEqual(cap?.reached, true)
        client.shutdown()
        for vault in vaults { await vault.shutdown() }
    }
}
