import Foundation
import XCTest

import Thudo
import ThudoTesting

/// The fakes app teams test their screens with, used the way an app's code uses the real objects.
final class FakesTests: XCTestCase {
    func vault(_ name: String) async throws -> Vault {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-fakes-\(name)-\(UUID().uuidString)").path
        return try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
    }

    /// What an app's screen does on "refresh": written against the protocol, not the class.
    func refresh(_ client: SyncClientProtocol, _ vault: Vault) async -> String {
        do {
            return "pulled \(try await client.sync(vault: vault, library: nil, observer: nil, cancel: nil).pulled)"
        } catch let error as SyncError {
            return error.isRetryable() ? "offline: \(error.code())" : "error: \(error.code())"
        } catch {
            return "\(error)"
        }
    }

    /// The error `body` throws, as a `SyncError`.
    func syncError<T>(_ body: () async throws -> T) async -> SyncError? {
        do {
            _ = try await body()
            XCTFail("expected an error")
            return nil
        } catch {
            return error as? SyncError
        }
    }

    func refusal<T>(_ body: () async throws -> T) async -> ServerErrorCode? {
        guard case .Refused(_, let code, _, _) = await syncError(body) else { return nil }
        return code
    }

    final class Heard: SyncObserver, @unchecked Sendable {
        let lock = NSLock()
        var progress: [SyncProgress] = []
        func onProgress(progress: SyncProgress) { lock.withLock { self.progress.append(progress) } }
    }

    func testAScreenWrittenAgainstTheProtocolRunsOnTheFake() async throws {
        let fake = FakeSyncClient()
        let phone = try await vault("phone")
        let before = await refresh(fake, phone)
        XCTAssertEqual(before, "error: sync.not_registered")
        let id = try await fake.register(vault: phone, idToken: "any.id.token", deviceName: "phone", cancel: nil)
        let registered = try await fake.isRegistered(vault: phone)
        XCTAssertTrue(registered)
        let devices = try await fake.devices(vault: phone, cancel: nil)
        XCTAssertEqual(devices.map(\.deviceId), [id])

        let heard = Heard()
        fake.enqueueSync(FakeSyncClient.report(pulled: 3), progress: [.pulled(collection: "notes", received: 3, total: 3)])
        let report = try await fake.sync(vault: phone, library: nil, observer: heard, cancel: nil)
        XCTAssertEqual(report.pulled, 3)
        XCTAssertEqual(heard.progress, [.pulled(collection: "notes", received: 3, total: 3)])
        let empty = await refresh(fake, phone)
        XCTAssertEqual(empty, "pulled 0", "nothing scripted: an empty report")

        fake.offline = true
        let offline = await refresh(fake, phone)
        XCTAssertEqual(offline, "offline: sync.unavailable")
        fake.offline = false
        fake.enqueueFailure(.UpgradeRequired(minimum: "0.3.0"))
        let old = await refresh(fake, phone)
        XCTAssertEqual(old, "error: sync.upgrade_required")

        let token = CancelToken()
        token.cancel()
        let cancelled = await syncError { try await fake.sync(vault: phone, library: nil, observer: nil, cancel: token) }
        XCTAssertEqual(cancelled?.code(), "sync.cancelled")
        let unknown = await refusal { try await fake.revokeDevice(vault: phone, deviceId: "nobody", idToken: "t", cancel: nil) }
        XCTAssertEqual(unknown, .notFound)
        try await fake.revokeDevice(vault: phone, deviceId: id, idToken: "fresh.id.token", cancel: nil)
        let after = try await fake.isRegistered(vault: phone)
        XCTAssertFalse(after)
        fake.shutdown()
        let shut = await syncError { try await fake.registrationNonce(cancel: nil) }
        XCTAssertEqual(shut?.code(), "sync.shut_down")
        XCTAssertEqual(Array(fake.calls.prefix(5)), ["sync", "register", "isRegistered", "devices", "sync"])
        await phone.shutdown()
    }

    func testAPassBoughtFromTheFakeShowsAQrAValidatorTrustingItsIssuerAccepts() async throws {
        let fake = try FakeTransitClient(price: { product, _ in product == .monthlyAllRoutes ? 200_000 : 0 })
        let riderVault = try await vault("rider")
        let phone = try await TransitPhone.open(vault: riderVault, signer: nil, refreshSecs: 5)
        let order = try await fake.buyTransitProduct(vault: riderVault, phone: phone, product: .monthlyAllRoutes,
                                                     category: .standard, route: 0, month: "", dependantCitizenId: nil)
        XCTAssertEqual(order.status, .paid)
        XCTAssertEqual(order.priceVnd, 200_000)
        XCTAssertEqual(order.credential?.cardId, fake.cardOf(riderVault))

        let validator = try await TransitValidator.open(vault: try await vault("bus"), trustedKeys: [fake.issuer.trustedKey()],
                                                        config: ValidatorConfig(route: 29))
        let qr = try await phone.currentQr()
        let verdict = try validator.validateAt(text: qr.text, nowUnix: Int64(Date().timeIntervalSince1970))
        XCTAssertTrue(verdict.accepted, "\(verdict)")

        // Waiting for the payment, then paid; a failed one is refused when collected.
        fake.payInstantly = false
        let pending = try await fake.buyTransitProduct(vault: riderVault, phone: phone, product: .dayPass,
                                                       category: .standard, route: 0, month: "", dependantCitizenId: nil)
        XCTAssertEqual(pending.status, .awaitingPayment)
        XCTAssertNil(pending.credential)
        let early = await refusal { try await fake.collectTransitOrder(vault: riderVault, phone: phone, orderId: pending.orderId, cancel: nil) }
        XCTAssertEqual(early, .paymentPending)
        fake.confirmPayment(pending.orderId)
        let collected = try await fake.collectTransitOrder(vault: riderVault, phone: phone, orderId: pending.orderId, cancel: nil)
        XCTAssertEqual(collected.product, .dayPass)
        let failed = try await fake.buyTransitProduct(vault: riderVault, phone: phone, product: .dayPass,
                                                      category: .standard, route: 0, month: "", dependantCitizenId: nil)
        fake.failPayment(failed.orderId)
        let late = await refusal { try await fake.collectTransitOrder(vault: riderVault, phone: phone, orderId: failed.orderId, cancel: nil) }
        XCTAssertEqual(late, .paymentFailed)
        // Money taken and held for review: "do not pay again", then the pass once confirmed.
        let inReview = try await fake.buyTransitProduct(vault: riderVault, phone: phone, product: .dayPass,
                                                        category: .standard, route: 0, month: "", dependantCitizenId: nil)
        fake.holdPaymentForReview(inReview.orderId)
        let reviewed = try await fake.transitOrder(vault: riderVault, orderId: inReview.orderId, cancel: nil)
        XCTAssertEqual(reviewed.status, .underReview)
        let notYet = await refusal { try await fake.collectTransitOrder(vault: riderVault, phone: phone, orderId: inReview.orderId, cancel: nil) }
        XCTAssertEqual(notYet, .paymentUnderReview)
        fake.confirmPayment(inReview.orderId)
        let confirmed = try await fake.collectTransitOrder(vault: riderVault, phone: phone, orderId: inReview.orderId, cancel: nil)
        XCTAssertEqual(confirmed.product, .dayPass)

        // An order unpaid past its 15 minutes, and the backend's 15 minutes for a late notice,
        // is gone when collected, as the backend says it.
        let clock = FakeClock(1_796_000_000)
        let timed = try FakeTransitClient(now: { clock.now })
        timed.payInstantly = false
        let unpaid = try await timed.buyTransitProduct(vault: riderVault, phone: phone, product: .dayPass,
                                                       category: .standard, route: 0, month: "", dependantCitizenId: nil)
        clock.advance(29 * 60)
        let waiting = await refusal { try await timed.collectTransitOrder(vault: riderVault, phone: phone, orderId: unpaid.orderId, cancel: nil) }
        XCTAssertEqual(waiting, .paymentPending)
        clock.advance(2 * 60)
        let gone = await refusal { try await timed.collectTransitOrder(vault: riderVault, phone: phone, orderId: unpaid.orderId, cancel: nil) }
        XCTAssertEqual(gone, .orderExpired)

        // A month names its window; a stranger's dependant is refused; the balance adds up.
        let other = try await TransitPhone.open(vault: try await vault("other"), signer: nil, refreshSecs: 5)
        let december = try await fake.buyTransitProduct(vault: riderVault, phone: other, product: .monthlyAllRoutes,
                                                        category: .standard, route: 0, month: "2026-12", dependantCitizenId: nil)
        XCTAssertEqual(december.passValidFrom, 1_796_058_000)
        XCTAssertEqual(december.passValidUntil, 1_798_736_399)
        let stranger = await refusal {
            try await fake.buyTransitProduct(vault: riderVault, phone: phone, product: .freePass, category: .elderly,
                                             route: 0, month: "", dependantCitizenId: "001045000001")
        }
        XCTAssertEqual(stranger, .notGuardian)
        fake.payInstantly = true
        _ = try await fake.topUp(vault: riderVault, amountVnd: 50_000, cardId: nil, cancel: nil)
        let balance = try await fake.transitBalance(vault: riderVault, cardId: nil, cancel: nil)
        XCTAssertEqual(balance.balanceVnd, 50_000)

        // A dependant's pass rides with its holder, as the backend issues it.
        let childCard = fake.addDependant("001022000001")
        // A guardian pays a dependant's fares; nobody pays on a card not theirs.
        let childTopUp = try await fake.topUp(vault: riderVault, amountVnd: 20_000, cardId: childCard, cancel: nil)
        XCTAssertEqual(childTopUp.cardId, childCard)
        let childBalance = try await fake.transitBalance(vault: riderVault, cardId: childCard, cancel: nil)
        let ownBalance = try await fake.transitBalance(vault: riderVault, cardId: nil, cancel: nil)
        XCTAssertEqual([childBalance.balanceVnd, ownBalance.balanceVnd], [20_000, 50_000])
        let notTheirs = await refusal { try await fake.topUp(vault: riderVault, amountVnd: 20_000, cardId: childCard + 1, cancel: nil) }
        XCTAssertEqual(notTheirs, .notGuardian)
        let child = try await fake.buyTransitProduct(vault: riderVault, phone: phone, product: .freePass, category: .child,
                                                     route: 0, month: "", dependantCitizenId: "001022000001")
        XCTAssertEqual(child.cardId, childCard)
        XCTAssertEqual(child.credential?.withHolder, true)

        // Renewal re-issues what ends within the window, a dependant's as one.
        let renewed = try await fake.renewCredentials(vault: riderVault, phone: phone, withinSecs: 365 * 86_400, cancel: nil)
        XCTAssertFalse(renewed.isEmpty)
        XCTAssertTrue(renewed.allSatisfy { $0.refused == nil && $0.notAfter != nil }, "\(renewed)")
        XCTAssertTrue(renewed.contains { $0.cardId == childCard })
        let held = try await phone.credentials()
        XCTAssertEqual(held.first { $0.cardId == childCard }?.withHolder, true)
        let feed = await syncError { try await fake.validatorFeed(vault: riderVault, cancel: nil) }
        XCTAssertEqual(feed?.code(), "sync.invalid_argument")
        XCTAssertTrue(fake.calls.contains("renewCredentials"))
        await riderVault.shutdown()
    }

    func testABackgroundTasksSyncRunsOnTheFakes() async throws {
        let fake = FakeSyncClient()
        let phoneVault = try await vault("worker")
        guard case .failure = await backgroundSync(client: fake, vault: phoneVault) else {
            return XCTFail("not registered: give up")
        }
        _ = try await fake.register(vault: phoneVault, idToken: "any.id.token", deviceName: "phone", cancel: nil)
        fake.offline = true
        guard case .retry = await backgroundSync(client: fake, vault: phoneVault) else {
            return XCTFail("offline: retry")
        }
        fake.offline = false
        let phone = try await TransitPhone.open(vault: phoneVault, signer: nil, refreshSecs: 5)
        // A phone with a fake sync client alone: no transit client to renew with, found before
        // anything is synced.
        let syncs = fake.calls.filter { $0 == "sync" }.count
        guard case .failure = await backgroundSync(client: fake, vault: phoneVault, transitPhone: phone) else {
            return XCTFail("a phone needs a transit client")
        }
        XCTAssertEqual(fake.calls.filter { $0 == "sync" }.count, syncs)
        let transit = try FakeTransitClient(price: { _, _ in 0 })
        _ = try await transit.buyTransitProduct(vault: phoneVault, phone: phone, product: .dayPass,
                                                category: .standard, route: 0, month: "", dependantCitizenId: nil)
        fake.enqueueSync(FakeSyncClient.report(pulled: 4))
        let done = await backgroundSync(client: fake, vault: phoneVault, transitPhone: phone,
                                        renewWithinSecs: 365 * 86_400, transit: transit)
        guard case .success(let report, let renewals) = done else { return XCTFail("\(done)") }
        XCTAssertEqual(report.pulled, 4)
        XCTAssertEqual(renewals.count, 1, "\(renewals)")
        await phoneVault.shutdown()
    }
}
