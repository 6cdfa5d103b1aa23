import Foundation
import XCTest

@testable import Thudo

/// The sync client's functions across the FFI, against the reference backend that
/// scripts/with-server.sh starts on loopback: arguments in, records, optionals, enums and typed
/// errors out, callbacks, cancellation. The domain's scenarios are told in Rust (server/tests).
final class SyncTests: XCTestCase {
    final class Recorder: SyncObserver, @unchecked Sendable {
        private let lock = NSLock()
        private var seen: [SyncProgress] = []
        func onProgress(progress: SyncProgress) { lock.lock(); seen.append(progress); lock.unlock() }
        var events: [SyncProgress] { lock.lock(); defer { lock.unlock() }; return seen }
    }

    final class FireOnPull: SyncObserver, @unchecked Sendable {
        let token: CancelToken
        init(_ token: CancelToken) { self.token = token }
        func onProgress(progress: SyncProgress) { if case .pulled = progress { token.cancel() } }
    }

    let environment = ProcessInfo.processInfo.environment
    var url: String!
    /// The seeded citizen: the server holds health records and handbook documents for them.
    var citizen: String!

    override func setUpWithError() throws {
        url = try XCTUnwrap(environment["THUDO_SERVER_URL"], "run through scripts/test-swift.sh (THUDO_SERVER_URL)")
        citizen = try XCTUnwrap(environment["THUDO_DEMO_CITIZEN"], "run through scripts/test-swift.sh (THUDO_DEMO_CITIZEN)")
    }

    /// The test server's single-use enrolment codes: six bus validators (route 32), six metro gates by binding.
    var busCodes: [String] { (environment["THUDO_ENROLMENT_CODES"] ?? "").split(separator: " ").map(String.init) }
    var inspectorCodes: [String] { (environment["THUDO_INSPECTOR_CODES"] ?? "").split(separator: " ").map(String.init) }
    func gateCode(_ binding: String) throws -> String {
        let pair = (environment["THUDO_GATE_CODES"] ?? "").split(separator: " ").first { $0.hasPrefix(binding + "=") }
        return String(try XCTUnwrap(pair, "no gate code for \(binding)").dropFirst(binding.count + 1))
    }

    func client(_ http: HttpClient? = nil, attempts: Int32 = 4) throws -> SyncClient {
        let settings = SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: attempts, backoffBaseMs: 20,
                                    pinnedSpkiSha256Hex: [])
        return try http.map { try SyncClient.withHttpClient(settings: settings, http: $0) } ?? SyncClient(settings: settings)
    }

    func vault(_ name: String) async throws -> Vault {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-sync-\(name)-\(UUID().uuidString)").path
        return try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
    }

    func registered(_ client: SyncClient, _ name: String, _ citizenId: String) async throws -> Vault {
        let vault = try await vault(name)
        try await registerForTest(client, vault, citizenId: citizenId, name: name)
        return vault
    }

    func library(_ name: String) async throws -> HandbookLibrary {
        try await HandbookLibrary.open(path: FileManager.default.temporaryDirectory
            .appendingPathComponent("thudo-sync-\(name)-\(UUID().uuidString).db").path)
    }

    /// A validator enrolled with `code`, its feed installed.
    func validator(_ client: SyncClient, _ code: String, _ config: ValidatorConfig) async throws -> (Vault, TransitValidator) {
        let vault = try await vault("validator")
        _ = try await client.enrolValidator(vault: vault, enrolmentCode: code, deviceName: "validator")
        let feed = try await TransitClient(client: client).validatorFeed(vault: vault)
        let validator = try await TransitValidator.open(vault: vault, trustedKeys: feed.issuerKeys, config: config)
        _ = try await validator.updateDenyList(signedList: feed.denyList)
        return (vault, validator)
    }

    /// The error `body` throws; a failure if it returns.
    func thrown<T>(file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T) async -> Error {
        do { _ = try await body() } catch { return error }
        XCTFail("expected an error", file: file, line: line)
        return CancellationError()
    }

    /// The `code` of the backend's refusal `body` throws (checked against the code on the wire).
    func refusal<T>(file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> T) async -> ServerErrorCode? {
        let error = await thrown(file: file, line: line, body)
        guard case SyncError.Refused(_, let code, let wireCode, _) = error else { XCTFail("\(error)", file: file, line: line); return nil }
        XCTAssertNotEqual(code, .unknown, wireCode, file: file, line: line)
        return code
    }

    func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    func testRegistrationDevicesAndRevocation() async throws {
        let client = try client()
        let (phone, tablet) = (try await vault("phone"), try await vault("tablet"))
        let registeredBefore = try await client.isRegistered(vault: phone)
        XCTAssertFalse(registeredBefore)
        let unregistered = await thrown { try await client.sync(vault: phone) }
        XCTAssertEqual((unregistered as? SyncError)?.code(), "sync.not_registered")
        let forged = await thrown { try await client.register(vault: phone, idToken: "not.a.token", deviceName: "phone") }
        guard case SyncError.Refused(let status, let code, let wireCode, let detail) = forged else { return XCTFail("\(forged)") }
        XCTAssertEqual(code, .identityInvalid)
        XCTAssertEqual(wireCode, "identity_invalid")
        XCTAssertEqual((forged as? SyncError)?.code(), "sync.refused")
        XCTAssertTrue((400..<500).contains(status) && !detail.isEmpty, "\(forged)")

        let token = try await testIdToken(citizenId: "001090080001", nonce: try await client.registrationNonce())
        let phoneId = try await client.register(vault: phone, idToken: token, deviceName: "phone")
        let replayed = await refusal { try await client.register(vault: tablet, idToken: token, deviceName: "tablet") }
        XCTAssertEqual(replayed, .nonceUsed)
        let tabletId = try await registerForTest(client, tablet, citizenId: "001090080001", name: "tablet")
        let registeredAfter = try await client.isRegistered(vault: phone)
        XCTAssertTrue(registeredAfter)
        // A vault is one citizen's: another citizen cannot register it (its data would reach them).
        let otherAccount = await thrown { try await registerForTest(client, phone, citizenId: "001090080099", name: "phone") }
        guard case SyncError.OtherAccount = otherAccount else { return XCTFail("\(otherAccount)") }
        XCTAssertEqual((otherAccount as? SyncError)?.code(), "sync.other_account")

        let devices = try await client.devices(vault: phone)
        XCTAssertEqual(devices.map(\.deviceId), [phoneId, tabletId])
        XCTAssertEqual(devices.map(\.name), ["phone", "tablet"])
        XCTAssertEqual(devices.map(\.current), [true, false])
        let t = now()
        XCTAssertTrue(devices.allSatisfy { (t - 600...t + 60).contains($0.createdAt) }, "\(devices)")
        // Revoking takes a fresh sign-in of the citizen, its nonce spent once.
        let proof = try await testIdToken(citizenId: "001090080001", nonce: try await client.registrationNonce())
        let unproven = await refusal { try await client.revokeDevice(vault: phone, deviceId: tabletId, idToken: "not.a.token") }
        XCTAssertEqual(unproven, .identityInvalid)
        try await client.revokeDevice(vault: phone, deviceId: tabletId, idToken: proof)
        let replayedProof = await refusal { try await client.revokeDevice(vault: phone, deviceId: tabletId, idToken: proof) }
        XCTAssertEqual(replayedProof, .nonceUsed)
        let revoked = await thrown { try await client.sync(vault: tablet) }
        XCTAssertEqual((revoked as? SyncError)?.code(), "sync.unauthorized")
        let left = try await client.devices(vault: phone)
        XCTAssertEqual(left.map(\.deviceId), [phoneId])

        let insecure = await thrown {
            try SyncClient(settings: SyncSettings(baseUrl: "http://example.vn", requestTimeoutMs: nil, maxAttempts: nil,
                                                  backoffBaseMs: nil, pinnedSpkiSha256Hex: []))
        }
        guard case SyncError.InsecureUrl(let insecureUrl, _) = insecure else { return XCTFail("\(insecure)") }
        XCTAssertTrue(insecureUrl.hasPrefix("http://example.vn"), insecureUrl)
        client.shutdown()
        let shut = await thrown { try await client.sync(vault: phone) }
        XCTAssertEqual((shut as? SyncError)?.code(), "sync.shut_down")
        XCTAssertEqual((shut as? SyncError)?.isRetryable(), false)
    }

    func testASyncReportItsProgressCallbacksAndTheLibraryItFills() async throws {
        let client = try client()
        let phone = try await registered(client, "report", citizen)
        let library = try await library("report-library")
        _ = try await MemberHandbook(vault: phone).saveNote(id: "note-1", documentId: "nq-57-2024", text: "đọc kỹ mục III")
        let recorder = Recorder()
        let report = try await client.sync(vault: phone, library: library, observer: recorder)
        XCTAssertEqual(report.pushed, 1)
        XCTAssertEqual(report.rejected, 0)
        XCTAssertTrue((1...report.pulled).contains(report.applied), "\(report)")
        XCTAssertNotNil(report.clockOffsetMs, "the server's clock")
        XCTAssertTrue(recorder.events.contains(.pushed(done: 1, total: 1)), "\(recorder.events)")
        XCTAssertTrue(recorder.events.contains {
            if case .pulled(let collection, let received, let total) = $0 { return collection == "handbook.documents" && received > 0 && total ?? 0 >= received } else { return false }
        })
        let hits = try await library.search(query: "nghi quyet khoa hoc", limit: 5)
        XCTAssertEqual(hits.first?.number, "57-NQ/TW")
        let allergies = try await HealthBook(vault: phone).records(personId: "demo-citizen", kind: .allergyIntolerance, from: nil, to: nil)
        XCTAssertEqual(allergies.map(\.provenance.source), [.server])
    }

    func testACancelledSyncStopsAloneAndTheNextSyncGoesOn() async throws {
        let client = try client()
        let phone = try await registered(client, "cancel", citizen)
        let library = try await library("cancel-library")
        // The token fires on the first page pulled: the sync stops mid-pull.
        let token = CancelToken()
        let cancelled = await thrown { try await client.sync(vault: phone, library: library, observer: FireOnPull(token), cancel: token) }
        guard case SyncError.Cancelled = cancelled, let error = cancelled as? SyncError else { return XCTFail("\(cancelled)") }
        XCTAssertTrue(token.isCancelled())
        XCTAssertEqual(error.code(), "sync.cancelled")
        XCTAssertTrue(error.isRetryable())
        XCTAssertEqual(error.localizedDescription, "cancelled")
        _ = try await client.sync(vault: phone, library: library)
        let hits = try await library.search(query: "nghi quyet khoa hoc", limit: 5)
        XCTAssertEqual(hits.first?.number, "57-NQ/TW", "the library is whole")
        // A time budget fires by itself.
        let budget = await thrown { try await client.sync(vault: phone, cancel: CancelToken.withTimeoutMs(budgetMs: 0)) }
        XCTAssertEqual((budget as? SyncError)?.code(), "sync.cancelled")
        // Every call that waits on the network takes a token: sign-in, devices, revocation, enrolment.
        let fired = CancelToken()
        fired.cancel()
        let calls: [() async throws -> Void] = [
            { _ = try await client.registrationNonce(cancel: fired) },
            { _ = try await client.register(vault: phone, idToken: "x.y.z", deviceName: "phone", cancel: fired) },
            { _ = try await client.devices(vault: phone, cancel: fired) },
            { try await client.revokeDevice(vault: phone, deviceId: "d-1", idToken: "x.y.z", cancel: fired) },
            { _ = try await client.enrolValidator(vault: phone, enrolmentCode: "code", deviceName: "gate", cancel: fired) },
        ]
        for call in calls {
            let stopped = await thrown { try await call() }
            XCTAssertEqual((stopped as? SyncError)?.code(), "sync.cancelled")
        }
        let left = try await client.devices(vault: phone)
        XCTAssertTrue(left.contains { $0.current }, "nothing was revoked, and the client goes on")
        // A Task's cancellation reaches the calls through `withCancelToken`.
        let looping = Task {
            try await withCancelToken { token -> Int in
                for _ in 0..<100_000 { _ = try await client.devices(vault: phone, cancel: token) }
                return 0
            }
        }
        try await Task.sleep(nanoseconds: 100_000_000)
        looping.cancel()
        guard case .failure(let stoppedByTask) = await looping.result else { return XCTFail("the loop ran to its end") }
        XCTAssertEqual((stoppedByTask as? SyncError)?.code(), "sync.cancelled")
        // From the main actor, the body touches main-actor state (a screen's) without crossing.
        let screen = DevicesScreen()
        let shown = try await screen.refresh(client: client, vault: phone)
        XCTAssertGreaterThan(shown, 0)

        // The background helper: out of time is a retry, and the client goes on afterwards.
        guard case .retry(let reason) = await backgroundSync(client: client, vault: phone, token: CancelToken.withTimeoutMs(budgetMs: 0)) else {
            return XCTFail("an expired budget should ask for a retry")
        }
        XCTAssertEqual(reason, "cancelled")
        guard case .success(let report, let none) = await backgroundSync(client: client, vault: phone) else { return XCTFail("expected success") }
        XCTAssertEqual(report.pushed, 0)
        XCTAssertEqual(report.rejected, 0)
        XCTAssertEqual(none, [])
        // With the rider's phone: credentials due are renewed after the sync (none is due within
        // 48 h of a fresh purchase; within four days, the one held is).
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        _ = try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .payAsYouGo, category: .standard,
                                                                       route: 0, month: "")
        guard case .success(_, let nothingDue) = await backgroundSync(client: client, vault: phone, transitPhone: transit) else {
            return XCTFail("expected success")
        }
        XCTAssertEqual(nothingDue, [])
        guard case .success(_, let renewed) = await backgroundSync(client: client, vault: phone, transitPhone: transit,
                                                                   renewWithinSecs: 4 * 86_400) else {
            return XCTFail("expected success")
        }
        let held = try await transit.credentials()
        XCTAssertEqual(renewed.map(\.notAfter), held.map(\.notAfter))
        XCTAssertEqual(renewed.map(\.refused), [nil])
    }

    func testSyncOverURLSessionThePlatformsHttpStack() async throws {
        let http = URLSessionSyncTransport()
        let client = try client(http, attempts: 3)
        let phone = try await registered(client, "urlsession", citizen)
        let report = try await client.sync(vault: phone)
        XCTAssertGreaterThan(report.applied, 0)
        XCTAssertNotNil(report.clockOffsetMs, "the server's clock header came through URLSession")

        // Pins belong to the platform client; in the settings they are refused, not ignored.
        let pinned = await thrown {
            try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: self.url, requestTimeoutMs: nil, maxAttempts: nil, backoffBaseMs: nil,
                                                                 pinnedSpkiSha256Hex: [String(repeating: "ab", count: 32)]), http: http)
        }
        XCTAssertEqual((pinned as? SyncError)?.code(), "sync.invalid_argument")
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
        let unavailable = await thrown { try await offline.sync(vault: phone) }
        guard case SyncError.Unavailable(let attempts, _) = unavailable else { return XCTFail("\(unavailable)") }
        XCTAssertEqual(attempts, 2)
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var lists: [[String]] = []
        func add(_ list: [String]) { lock.lock(); lists.append(list); lock.unlock() }
        var all: [[String]] { lock.lock(); defer { lock.unlock() }; return lists }
    }

    /// Waits up to 10 s for `seen` to hold `count` lists.
    func waitFor(_ seen: Seen, count: Int) async throws {
        for _ in 0..<200 where seen.all.count < count { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertGreaterThanOrEqual(seen.all.count, count, "changes not reported in time")
    }

    func testScreensHearOfLocalWritesAndOfWhatSyncBrings() async throws {
        let client = try client()
        let tablet = try await registered(client, "observe", citizen)
        let library = try await library("observe-library")

        let documents = Seen()
        let documentStream = library.changes()
        let documentTask = Task { for await c in documentStream { documents.add(c) } }
        _ = try await client.sync(vault: tablet, library: library)
        try await waitFor(documents, count: 1)
        XCTAssertEqual(documents.all.first, ["handbook.documents"])
        documentTask.cancel()

        let notes = Seen()
        let noteStream = tablet.changes(["handbook.note"])
        let noteTask = Task { for await c in noteStream { notes.add(c) } }
        try await tablet.put(collection: "other", id: "x", body: Data([1]), index: [:])  // another collection: not reported here
        _ = try await MemberHandbook(vault: tablet).saveNote(id: "observe-local", documentId: "nq-57-2024", text: "ghi")
        try await waitFor(notes, count: 1)
        XCTAssertEqual(notes.all, [["handbook.note"]])
        // Cancelling the task stops the observation.
        noteTask.cancel()
        _ = await noteTask.value
        _ = try await MemberHandbook(vault: tablet).saveNote(id: "observe-after", documentId: "nq-57-2024", text: "không ai nghe")
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(notes.all, [["handbook.note"]], "nothing after the task stopped")
    }

    final class Statuses: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [SyncStatus] = []
        func add(_ s: SyncStatus) { lock.lock(); list.append(s); lock.unlock() }
        var all: [SyncStatus] { lock.lock(); defer { lock.unlock() }; return list }
        /// Waits up to 10 s for a status that passes `ok`.
        func until(_ ok: (SyncStatus) -> Bool) async throws -> SyncStatus {
            for _ in 0..<200 {
                if let s = all.first(where: ok) { return s }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            XCTFail("no such status in time: \(all)")
            throw CancellationError()
        }
    }

    func testTheSyncStatusSaysWhatWaitsToUploadAndWhenSyncLastWorked() async throws {
        let client = try client()
        let phone = try await registered(client, "status", citizen)
        let statuses = Statuses()
        let stream = phone.syncStatusChanges()
        let watching = Task { for try await s in stream { statuses.add(s) } }
        let first = try await statuses.until { _ in true }
        XCTAssertEqual(first.pendingUploads, 0)
        _ = try await MemberHandbook(vault: phone).saveNote(id: "status-1", documentId: "nq-57-2024", text: "chờ gửi")
        _ = try await MemberHandbook(vault: phone).saveNote(id: "status-2", documentId: "nq-57-2024", text: "chờ gửi nữa")
        _ = try await statuses.until { $0.pendingUploads == 2 }
        // Offline: tried, nothing lost.
        let before = Int64(Date().timeIntervalSince1970)
        let offline = try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: "http://127.0.0.1:9", maxAttempts: 1),
                                                    http: URLSessionSyncTransport())
        do {
            _ = try await offline.sync(vault: phone, library: nil, observer: nil)
            XCTFail("an unreachable server synced")
        } catch SyncError.Unavailable {
        }
        let failed = try await syncStatus(vault: phone)
        XCTAssertEqual(failed.pendingUploads, 2)
        XCTAssertNil(failed.lastSuccessAt)
        XCTAssertGreaterThanOrEqual(failed.lastAttemptAt ?? 0, before)
        // Online: nothing waits, and it says when.
        _ = try await client.sync(vault: phone, library: nil, observer: nil)
        let synced = try await statuses.until { $0.pendingUploads == 0 && $0.lastSuccessAt != nil }
        XCTAssertGreaterThanOrEqual(synced.lastSuccessAt ?? 0, failed.lastAttemptAt ?? 0)
        let now = try await syncStatus(vault: phone)
        XCTAssertEqual(synced, now)
        watching.cancel()
    }

    /// A stream kept and iterated again (a view that comes back): the second loop still hears
    /// changes, and so does a second loop running beside it.
    func testAChangeStreamIteratedAgainKeepsHearingChanges() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-again-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "pass", options: testOptions)
        let stream = vault.changes(["a"])
        let first = Seen()
        let firstTask = Task.detached { for await c in stream { first.add(c) } }
        _ = try await vault.put(collection: "a", id: "1", body: Data([0]), index: [:])
        try await waitFor(first, count: 1)
        firstTask.cancel()
        _ = await firstTask.value
        let (second, beside) = (Seen(), Seen())
        let (started, ready) = AsyncStream<Void>.makeStream()
        let secondTask = Task.detached {
            var iterator = stream.makeAsyncIterator()
            ready.yield(())
            while let c = await iterator.next() { second.add(c) }
        }
        let besideTask = Task.detached {
            var iterator = stream.makeAsyncIterator()
            ready.yield(())
            while let c = await iterator.next() { beside.add(c) }
        }
        var waiting = started.makeAsyncIterator()
        _ = await waiting.next()
        _ = await waiting.next()
        _ = try await vault.put(collection: "a", id: "2", body: Data([1]), index: [:])
        try await waitFor(second, count: 1)
        try await waitFor(beside, count: 1)
        XCTAssertEqual(second.all, [["a"]])
        XCTAssertEqual(beside.all, [["a"]])
        secondTask.cancel()
        besideTask.cancel()
        await vault.shutdown()
    }

    func testABurstOfWritesReachesABusyLoopAsOneMergedList() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-burst-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "pass", options: testOptions)
        let seen = Seen()
        let (gate, open) = AsyncStream<Void>.makeStream()
        let stream = vault.changes(["a", "b"])
        let task = Task.detached {
            var gateOpened = gate.makeAsyncIterator()
            for await c in stream {
                seen.add(c)
                if c == ["a"] { _ = await gateOpened.next() }  // busy with the first list
            }
        }
        _ = try await vault.put(collection: "a", id: "first", body: Data([0]), index: [:])
        try await waitFor(seen, count: 1)
        XCTAssertEqual(seen.all, [["a"]])
        // 400 transactions while the loop is busy: they wait as one set of names.
        for i in 0..<400 {
            _ = try await vault.put(collection: i % 2 == 0 ? "a" : "b", id: "r\(i)", body: Data([1]), index: [:])
        }
        try await Task.sleep(nanoseconds: 200_000_000)
        open.yield(())
        try await waitFor(seen, count: 2)
        try await Task.sleep(nanoseconds: 300_000_000)
        let after = Array(seen.all.dropFirst())
        XCTAssertEqual(Set(after.flatMap { $0 }), ["a", "b"])
        XCTAssertLessThanOrEqual(after.count, 2, "merged, not one list per transaction: \(after.count) lists")
        XCTAssertEqual(after.first, ["a", "b"], "sorted, each once")
        task.cancel()
        await vault.shutdown()
    }

    func testPurchasesCrossWithTheirTypedRefusalsAndThePhoneShowsTheCardsQr() async throws {
        let client = try client()
        let phone = try await registered(client, "buyer", "001090080002")
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM"
        formatter.timeZone = TimeZone(secondsFromGMT: 7 * 3600)
        let month = formatter.string(from: Date())
        let pass = try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .monthlyAllRoutes,
                                                      category: .standard, route: 0, month: month)
        // The test server's sandbox gateway pays every order as it is made: the credential comes
        // with the order.
        XCTAssertEqual(pass.priceVnd, 280_000)
        XCTAssertEqual(pass.status, .paid)
        XCTAssertLessThan(pass.passValidFrom, pass.passValidUntil)
        XCTAssertEqual(pass.paymentUrl, "")
        let held = try await transit.credentials()
        XCTAssertEqual(held.map(\.cardId), [pass.cardId])
        XCTAssertEqual(held.map(\.product), [.monthlyAllRoutes])
        XCTAssertEqual(pass.credential?.notAfter, held.first?.notAfter)
        // Collected again: the same credential; the order's status; nobody else's order.
        let collected = try await TransitClient(client: client).collectTransitOrder(vault: phone, phone: transit, orderId: pass.orderId)
        XCTAssertEqual(collected.notAfter, held.first?.notAfter)
        let status = try await TransitClient(client: client).transitOrder(vault: phone, orderId: pass.orderId)
        XCTAssertEqual(status.status, .paid)
        let nobody = await refusal {
            try await TransitClient(client: client).collectTransitOrder(vault: phone, phone: transit, orderId: "o-nobody")
        }
        XCTAssertEqual(nobody, .notFound)
        // Nothing ends within the default 48 h; asked to renew what ends within 4 days, the pass's
        // credential is renewed free and installed.
        let none = try await TransitClient(client: client).renewCredentials(vault: phone, phone: transit)
        XCTAssertEqual(none, [])
        let renewed = try await TransitClient(client: client).renewCredentials(vault: phone, phone: transit, withinSecs: 4 * 86_400)
        XCTAssertEqual(renewed.map(\.cardId), [pass.cardId])
        XCTAssertNil(renewed.first?.refused)
        let heldNow = try await transit.credentials()
        XCTAssertEqual(renewed.first?.notAfter, heldNow.first?.notAfter)

        let notEntitled = await thrown {
            try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .freePass, category: .elderly, route: 0, month: "")
        }
        XCTAssertEqual((notEntitled as? SyncError)?.code(), "sync.not_entitled")
        // The dependant's citizen ID reaches the backend: a pass for someone else's child is refused.
        let notGuardian = await refusal {
            try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .freePass, category: .child, route: 0,
                                               month: "", dependantCitizenId: "001022080002")
        }
        XCTAssertEqual(notGuardian, .notGuardian)
        // A route that does not fit the credential's 16 bits is refused before any request.
        let wide = await thrown {
            try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .monthlySingleRoute, category: .standard,
                                               route: 70_000, month: month)
        }
        XCTAssertEqual((wide as? SyncError)?.code(), "sync.invalid_argument")

        let t = now()
        for qr in [try await transit.currentQr(), try await transit.currentQrFor(cardId: pass.cardId),
                   try await transit.currentQrForAt(cardId: pass.cardId, nowUnix: t)] {
            XCTAssertTrue(qr.text.hasPrefix("HNT1:") && qr.refreshAt > t - 10, "\(qr)")
        }
        let unknown = await thrown { try await transit.currentQrFor(cardId: pass.cardId + 1) }
        XCTAssertEqual((unknown as? TransitError)?.code(), "transit.no_credential")
    }

    func testABusValidatorEnrolsUploadsTapsAndInspectionsAndTheRidersPhoneShowsTheTrip() async throws {
        let client = try client()
        let phone = try await registered(client, "rider", "001090080003")
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        let card = try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .payAsYouGo, category: .standard,
                                                      route: 0, month: "").cardId
        // Pay-as-you-go fares come out of prepaid credit.
        let topUp = try await TransitClient(client: client).topUp(vault: phone, amountVnd: 50_000)
        XCTAssertEqual(topUp.status, .paid)
        XCTAssertEqual(topUp.priceVnd, 50_000)
        XCTAssertNil(topUp.credential)
        let balance = try await TransitClient(client: client).transitBalance(vault: phone)
        XCTAssertEqual(balance, TransitBalance(cardId: card, balanceVnd: 50_000, creditLimitVnd: 20_000, denied: false))
        let tooSmall = await refusal { try await TransitClient(client: client).topUp(vault: phone, amountVnd: 5) }
        XCTAssertEqual(tooSmall, .badRequest)
        // A card is named for a dependant's; one the account holds no guardianship of is refused.
        let named = try await TransitClient(client: client).transitBalance(vault: phone, cardId: card)
        XCTAssertEqual(named.balanceVnd, 50_000)
        let notTheirs = await refusal { try await TransitClient(client: client).topUp(vault: phone, amountVnd: 50_000, cardId: card + 1) }
        XCTAssertEqual(notTheirs, .notGuardian)
        let notTheirBalance = await refusal { try await TransitClient(client: client).transitBalance(vault: phone, cardId: card + 1) }
        XCTAssertEqual(notTheirBalance, .notGuardian)

        let busVault = try await vault("bus")
        let code = try XCTUnwrap(busCodes.first, "run through scripts/test-swift.sh (THUDO_ENROLMENT_CODES)")
        let enrolment = try await client.enrolValidator(vault: busVault, enrolmentCode: code, deviceName: "bus 32 front door")
        XCTAssertEqual(enrolment.route, 32)
        XCTAssertNil(enrolment.gate)
        XCTAssertFalse(enrolment.inspector)
        XCTAssertFalse(enrolment.validatorId.isEmpty)
        let copy = try await vault("copy")
        let used = await refusal { try await client.enrolValidator(vault: copy, enrolmentCode: code, deviceName: "copy") }
        XCTAssertEqual(used, .enrolmentUsed)
        let notValidator = await refusal { try await TransitClient(client: client).validatorFeed(vault: phone) }
        XCTAssertEqual(notValidator, .validatorsOnly)
        let feed = try await TransitClient(client: client).validatorFeed(vault: busVault)
        XCTAssertFalse(feed.issuerKeys.isEmpty || feed.denyList.isEmpty, "\(feed)")

        // Fail closed without a current deny list.
        let strict = try await TransitValidator.open(vault: try await vault("strict"), trustedKeys: feed.issuerKeys,
                                                     config: ValidatorConfig(route: 32, failClosedWhenStale: true))
        let early = try await transit.currentQr()
        XCTAssertEqual(try strict.validate(text: early.text).reason, .denyListStale)
        let bus = try await TransitValidator.open(vault: busVault, trustedKeys: [], config: ValidatorConfig(route: 32))
        try await bus.setTrustedKeys(keys: feed.issuerKeys)
        let installed = try await bus.updateDenyList(signedList: feed.denyList)
        XCTAssertGreaterThanOrEqual(installed, 1)
        let status = try await bus.denyListStatus()
        XCTAssertEqual(status.version, installed)
        XCTAssertFalse(status.stale || status.needsRefresh)
        let qr = try await transit.currentQr().text
        let verdict = try bus.validate(text: qr)
        XCTAssertTrue(verdict.accepted)
        XCTAssertEqual(verdict.cardId, card)
        XCTAssertEqual(verdict.product, .payAsYouGo)
        let receipt = try await TransitClient(client: client).uploadTaps(vault: busVault, validator: bus)
        let acked = try await bus.tapLogStatus().ackedSeq
        XCTAssertEqual(receipt, TapUploadReceipt(stored: 1, duplicates: 0, acknowledgedSeq: acked, chargedVnd: 8_000, notCharged: 0, storedChargedVnd: 8_000))
        let afterRide = try await TransitClient(client: client).transitBalance(vault: phone)
        XCTAssertEqual(afterRide.balanceVnd, 42_000)

        // An inspector's device (enrolled as one) checks the QR paired with the bus's taps and
        // uploads the inspection; the taps route refuses it.
        let inspectorVault = try await vault("inspector")
        let inspectorCode = try XCTUnwrap(inspectorCodes.first, "run through scripts/test-swift.sh (THUDO_INSPECTOR_CODES)")
        let inspectorEnrolment = try await client.enrolValidator(vault: inspectorVault, enrolmentCode: inspectorCode, deviceName: "inspector, route 32")
        XCTAssertEqual(inspectorEnrolment.route, 32)
        XCTAssertTrue(inspectorEnrolment.inspector)
        let inspector = try await TransitValidator.open(vault: inspectorVault, trustedKeys: feed.issuerKeys, config: ValidatorConfig(route: 32))
        let inspection = try await inspector.inspect(text: qr, vehicleTaps: try await bus.recentTaps(sinceUnix: now() - 3_600))
        XCTAssertEqual(inspection.outcome, .valid)
        XCTAssertTrue(inspection.paired)
        let pending = try await inspector.exportInspections()
        XCTAssertEqual(pending.map(\.seq), [inspection.seq])
        let inspected = try await TransitClient(client: client).uploadInspections(vault: inspectorVault, inspector: inspector, cancel: nil)
        XCTAssertEqual(inspected, InspectionUploadReceipt(stored: 1, duplicates: 0, acknowledgedSeq: inspection.seq))
        _ = try inspector.validate(text: qr)  // a scan logged as a tap: the backend takes none from an inspector
        let notTaps = await refusal { try await TransitClient(client: client).uploadTaps(vault: inspectorVault, validator: inspector) }
        XCTAssertEqual(notTaps, .inspectorDevice)

        // The rider's history: a trip, optional fields, a cap.
        _ = try await client.sync(vault: phone)
        let history = RiderHistory(vault: phone)
        let trips = try await history.tripsFrom(fromDay: "2000-01-01")
        XCTAssertEqual(trips.count, 1)
        let trip = try XCTUnwrap(trips.first)
        XCTAssertEqual(trip.cardId, card)
        XCTAssertEqual(trip.mode, .bus)
        XCTAssertEqual(trip.route, 32)
        XCTAssertNil(trip.fromStation)
        XCTAssertNil(trip.exitAt)
        XCTAssertEqual(trip.fareVnd, 8_000)
        XCTAssertEqual(trip.product, .payAsYouGo)
        let ofCard = try await history.tripsFrom(fromDay: trip.day, cardId: card)
        XCTAssertEqual(ofCard, [trip])
        let capOrNil = try await history.cap(period: trip.day)
        let cap = try XCTUnwrap(capOrNil)
        XCTAssertEqual(cap.period, trip.day)
        XCTAssertEqual(cap.paidVnd, 8_000)
        XCTAssertFalse(cap.reached)
        XCTAssertGreaterThan(cap.capVnd, 8_000)
        let noCap = try await history.cap(period: trip.day, cardId: card + 1)
        XCTAssertNil(noCap, "no cap for a card not held")
        let kept = try await history.forgetBefore(beforeDay: trip.day)
        XCTAssertEqual(kept, 0)
        let forgotten = try await history.forgetBefore(beforeDay: "9999-12-31")
        XCTAssertEqual(forgotten, 3, "the trip, the day's and the month's cap progress")
        let forgottenCap = try await history.cap(period: trip.day)
        XCTAssertNil(forgottenCap)

        // The same card on a second bus moments later: one pass carrying two people. The
        // operator's policy warns, and the warning reaches the phone.
        let noNotices = try await history.notices()
        XCTAssertEqual(noNotices, [])
        let bus2Vault = try await vault("bus2")
        _ = try await client.enrolValidator(vault: bus2Vault, enrolmentCode: busCodes[1], deviceName: "bus 32 rear door")
        let feed2 = try await TransitClient(client: client).validatorFeed(vault: bus2Vault)
        let bus2 = try await TransitValidator.open(vault: bus2Vault, trustedKeys: feed2.issuerKeys, config: ValidatorConfig(route: 32))
        _ = try await bus2.updateDenyList(signedList: feed2.denyList)
        // A fresh QR (the one on screen would be the same QR twice: a relay, not two riders).
        let later = now() + 10
        let fresh = try await transit.currentQrAt(nowUnix: later)
        XCTAssertTrue(try bus2.validateAt(text: fresh.text, nowUnix: later).accepted)
        _ = try await TransitClient(client: client).uploadTaps(vault: bus2Vault, validator: bus2)
        _ = try await client.sync(vault: phone)
        let notices = try await history.notices()
        XCTAssertEqual(notices.map(\.cardId), [card])
        XCTAssertEqual(notices.map(\.kind), ["impossible_travel"])
        XCTAssertEqual(notices.map(\.penaltyVnd), [0])
        XCTAssertTrue(notices.first?.messageEn.contains("two vehicles") ?? false)
    }

    func testMetroGatesCarryTheirStationAndDirectionAndAnExitGateRefreshesItsEntries() async throws {
        let client = try client()
        let phone = try await registered(client, "metro", "001090080004")
        let transit = try await TransitPhone.open(vault: phone, signer: nil, refreshSecs: 5)
        _ = try await TransitClient(client: client).buyTransitProduct(vault: phone, phone: transit, product: .payAsYouGo, category: .standard, route: 0, month: "")
        let entryGate = MetroGate(station: 201, direction: .entry)
        let (inVault, entry) = try await validator(client, try gateCode("201:entry"), ValidatorConfig(route: 902, gate: entryGate))
        let (outVault, exit) = try await validator(client, try gateCode("205:exit"),
                                                   ValidatorConfig(route: 902, gate: MetroGate(station: 205, direction: .exit)))
        let nothing = try await TransitClient(client: client).uploadTaps(vault: inVault, validator: entry)
        XCTAssertEqual(nothing.stored, 0)
        let none = try await TransitClient(client: client).refreshEntries(vault: outVault, gate: exit)
        XCTAssertEqual(none, 0)
        let empty = try await exit.entryFeedStatus()
        XCTAssertTrue(empty.refusingUnknownExits && empty.completeUntil > 0 && empty.openEntries == 0, "\(empty)")

        let t = now()
        let refused = try exit.validateAt(text: try await transit.currentQrAt(nowUnix: t).text, nowUnix: t)
        XCTAssertEqual(refused.reason, .noEntry)
        XCTAssertEqual(refused.presentation.lineEn, "No entry tap: see staff")
        let entering = try await transit.currentQrAt(nowUnix: t + 10)
        XCTAssertTrue(try entry.validateAt(text: entering.text, nowUnix: t + 10).accepted)
        let taps = try await entry.exportTaps()
        XCTAssertEqual(taps.map(\.gate), [entryGate])
        let uploaded = try await TransitClient(client: client).uploadTaps(vault: inVault, validator: entry)
        XCTAssertEqual(uploaded.stored, 1)
        let open = try await TransitClient(client: client).refreshEntries(vault: outVault, gate: exit)
        XCTAssertEqual(open, 1)
        let status = try await exit.entryFeedStatus()
        XCTAssertEqual(status.openEntries, 1)
        // The exit gate has uploaded (its one refused tap): exits are known, and the entry gate
        // refuses the card already inside, from a feed of tags, not card numbers.
        let heartbeat = try await TransitClient(client: client).uploadTaps(vault: outVault, validator: exit)
        XCTAssertEqual(heartbeat.stored, 1)
        let inside = try await TransitClient(client: client).refreshEntries(vault: inVault, gate: entry)
        XCTAssertEqual(inside, 1)
        let insideStatus = try await entry.entryFeedStatus()
        XCTAssertTrue(insideStatus.refusingCardsInside && insideStatus.openEntries == 1 && !insideStatus.refusingUnknownExits,
                      "\(insideStatus)")
        let again = try entry.validateAt(text: try await transit.currentQrAt(nowUnix: t + 20).text, nowUnix: t + 20)
        XCTAssertEqual(again.reason, .alreadyInside)
        XCTAssertEqual(again.presentation.messageKey, "transit.already_inside")
    }

    func testAClientThatTrustsAHealthCardIssuerVerifiesSyncedCardsAgain() async throws {
        let client = try client()
        let phone = try await registered(client, "card-phone", "001090080005")
        let tablet = try await registered(client, "card-tablet", "001090080005")
        let fixtures = environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        let verifier = HealthCardVerifier()
        _ = try verifier.addJwks(issuer: "https://spec.smarthealth.cards/examples/issuer",
                                 jwksJson: try String(contentsOfFile: fixtures + "/issuer/jwks.json", encoding: .utf8))
        let qr = try String(contentsOfFile: fixtures + "/example-00-f-qr-code-numeric-value-0.txt", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let imported = try await HealthBook(vault: phone).importCardQr(verifier: verifier, qrTexts: [qr], intoPerson: nil, nowUnix: 1_790_000_000)
        let person = try XCTUnwrap(imported.people.first)
        _ = try await client.sync(vault: phone)
        client.trustHealthCards(verifier: verifier)
        _ = try await client.sync(vault: tablet)
        let onTablet = try await HealthBook(vault: tablet).records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(onTablet.map(\.provenance.source), [.healthCard, .healthCard, .healthCard])
    }
}

/// A screen's state on the main actor, refreshed through `withCancelToken`.
@MainActor final class DevicesScreen {
    var count = 0

    func refresh(client: SyncClient, vault: Vault) async throws -> Int {
        try await withCancelToken(budgetMs: 30_000) { token in
            count = try await client.devices(vault: vault, cancel: token).count
            return count
        }
    }
}
