import Foundation
import XCTest

@testable import Thudo

final class TransitTests: XCTestCase {
    let now: Int64 = 1_790_000_000
    let day: Int64 = 86_400
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-transit-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func request(_ phone: TransitPhone, product: TransitProduct = .monthlyAllRoutes) -> CredentialRequest {
        CredentialRequest(
            cardId: 9_704_000_000_123, product: product, category: .standard, route: 0,
            passValidFrom: now - 10 * day, passValidUntil: now + 20 * day,
            devicePublicKey: phone.devicePublicKey(), lifetimeSecs: 72 * 3600)
    }

    func testNextMonthsPassBoughtAheadWaitsBesideThisMonths() async throws {
        let real = Int64(Date().timeIntervalSince1970)
        let issuer = try TransitIssuer.generate(keyId: 7, validFrom: real - day, validUntil: real + 365 * day)
        let vault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("ahead").path,
                                                        provider: PadKeyProvider(id: "a"), options: testOptions)
        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        var thisMonth = request(phone)
        thisMonth.passValidFrom = real - 10 * day
        thisMonth.passValidUntil = real + 20 * day
        var nextMonth = thisMonth
        nextMonth.passValidFrom = real + 20 * day + 1
        nextMonth.passValidUntil = real + 50 * day
        let current = try await phone.installCredential(credential: try issuer.issue(request: thisMonth, nowUnix: real))
        let none = try await phone.upcomingCredentials()
        XCTAssertTrue(none.isEmpty)
        let bought = try await phone.installCredential(credential: try issuer.issue(request: nextMonth, nowUnix: real))
        XCTAssertEqual(bought.passValidFrom, real + 20 * day + 1)
        let riding = try await phone.credential()
        XCTAssertEqual(riding, current, "this month's still rides")
        let waiting = try await phone.upcomingCredentials()
        XCTAssertEqual(waiting, [bought])
    }

    func testPhoneQrAcceptedByValidatorAndReplayRejected() async throws {
        let issuer = try TransitIssuer.generate(keyId: 7, validFrom: now - day, validUntil: now + 365 * day)
        let phoneVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("phone").path,
                                                             provider: PadKeyProvider(id: "p"), options: testOptions)
        let phone = try await TransitPhone.open(vault: phoneVault, signer: nil, refreshSecs: 5)
        XCTAssertEqual(phone.devicePublicKey().count, 33)
        let info = try await phone.installCredential(credential: try issuer.issue(request: request(phone), nowUnix: now))
        XCTAssertEqual(info.product, .monthlyAllRoutes)
        let stored = try await phone.credential()
        XCTAssertEqual(stored?.cardId, info.cardId)
        // A dependant's pass on another card sits beside the owner's, never in its place.
        var childRequest = request(phone)
        childRequest.cardId = 42
        childRequest.product = .freePass
        childRequest.category = .child
        let childs = try await phone.installDependantCredential(credential: try issuer.issue(request: childRequest, nowUnix: now))
        XCTAssertEqual(childs.category, .child)
        let held = try await phone.credentials()
        XCTAssertEqual(held.map(\.cardId), [info.cardId, 42])
        let owner = try await phone.credential()
        XCTAssertEqual(owner?.cardId, info.cardId)
        let removed = try await phone.removeCredential(cardId: 42)
        XCTAssertTrue(removed)
        // An offset learned at sync moves the QR's time; the device's clock set drops it.
        try await phone.setClockOffsetMs(offsetMs: 3_600_000)
        let ahead = try await phone.currentQrAt(nowUnix: now)
        try await phone.deviceClockChanged()

        let qr = try await phone.currentQrAt(nowUnix: now)
        XCTAssertEqual(qr.generatedAt, now)
        XCTAssertTrue(qr.text.hasPrefix("HNT1:"))
        XCTAssertLessThanOrEqual(qr.version, 10)
        XCTAssertEqual(Int(qr.size * qr.size), qr.modules.count)
        let same = try await phone.currentQrAt(nowUnix: now + 2)
        XCTAssertEqual(qr.text, same.text)

        let busVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("bus").path,
                                                           provider: PadKeyProvider(id: "b"), options: testOptions)
        let validator = try await TransitValidator.open(vault: busVault, trustedKeys: [issuer.trustedKey()],
                                                        config: ValidatorConfig(route: 32))
        let verdict = try validator.validateAt(text: qr.text, nowUnix: now + 1)
        XCTAssertTrue(verdict.accepted, "\(verdict)")
        XCTAssertEqual(verdict.reason, .ok)
        XCTAssertEqual(verdict.cardId, 9_704_000_000_123)
        // Every validator app shows and plays the same: green, one short high beep, two languages.
        XCTAssertEqual(verdict.presentation.signal, .go)
        XCTAssertEqual(verdict.presentation.colour, "#2E7D32")
        XCTAssertEqual(verdict.presentation.beeps, [VerdictBeep(frequencyHz: 2000, durationMs: 120, pauseMs: 0)])
        XCTAssertEqual(verdict.presentation.lineVi, "Mời lên xe")
        XCTAssertEqual(verdict.presentation.lineEn, "Welcome aboard")
        let replayed = try validator.validateAt(text: qr.text, nowUnix: now + 3)
        XCTAssertEqual(replayed.reason, .replayed)
        XCTAssertEqual(replayed.presentation.signal, .stop)
        XCTAssertEqual(replayed.presentation.colour, "#C62828")
        XCTAssertEqual(replayed.presentation.lineEn, "Code already used")
        XCTAssertEqual(replayed.presentation.messageKey, "transit.code_used")
        XCTAssertEqual(try validator.validateAt(text: "HNT1:garbage", nowUnix: now).reason, .badFormat)
        let old = try await phone.currentQrAt(nowUnix: now - 600)
        XCTAssertEqual(try validator.validateAt(text: old.text, nowUnix: now).reason, .expired)
        // The QR made under the offset of a clock since set carries a time an hour ahead.
        XCTAssertEqual(try validator.validateAt(text: ahead.text, nowUnix: now + 1).reason, .clockSkew)

        // An inspector checks the QR without using it; paired with the bus's taps it sees
        // whether this card tapped there.
        let inspectorVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("inspector").path,
                                                                 provider: PadKeyProvider(id: "i"), options: testOptions)
        let inspector = try await TransitValidator.open(vault: inspectorVault, trustedKeys: [issuer.trustedKey()],
                                                        config: ValidatorConfig(route: 32))
        let fresh = try await phone.currentQrAt(nowUnix: now + 200)
        let busTaps = try await validator.recentTaps(sinceUnix: now - 3600)
        let seen = try await inspector.inspectAt(text: fresh.text, nowUnix: now + 200, vehicleTaps: busTaps)
        XCTAssertEqual(seen.outcome, .valid)
        XCTAssertEqual(seen.tappedAt, now + 1)
        XCTAssertEqual(seen.presentation.signal, .go)
        let notHere = try await inspector.inspectAt(text: fresh.text, nowUnix: now + 200, vehicleTaps: [])
        XCTAssertEqual(notHere.outcome, .notTapped)
        let junk = try await inspector.inspect(text: "not a ticket", vehicleTaps: nil)
        XCTAssertEqual(junk.outcome, .invalid)
        XCTAssertEqual(junk.seq, 0, "shown, not recorded")
        XCTAssertEqual(seen.route, 32)
        let recorded = try await inspector.exportInspections()
        XCTAssertEqual(recorded.map { $0.seq }, [1, 2])
        XCTAssertTrue(try validator.validateAt(text: fresh.text, nowUnix: now + 201).accepted, "the inspections used nothing")
        await inspectorVault.shutdown()

        // A deny list from the issuer: the card is refused afterwards.
        let installed = try await validator.updateDenyList(signedList: try issuer.signDenyList(version: 1, issuedAt: now, cards: [9_704_000_000_123]))
        XCTAssertEqual(installed, 1)
        let denyListVersion = try await validator.denyListVersion()
        XCTAssertEqual(denyListVersion, 1)
        try await validator.flush()
        // Every verdict returned is a tap on disk; the unreadable scan is counted, not logged.
        let taps = try await validator.exportTaps()
        XCTAssertEqual(taps.count, 5)
        let beforeAck = try await validator.tapLogStatus()
        XCTAssertEqual(beforeAck.unreadableScans, 1)
        XCTAssertEqual(beforeAck.loggedRejected, Int64(taps.filter { !$0.accepted }.count))
        let acknowledged = try await validator.acknowledgeTaps(upToSeq: taps.last!.seq)
        XCTAssertEqual(acknowledged, 5)
        let afterAck = try await validator.tapLogStatus()
        XCTAssertEqual(afterAck.nextSeq, taps.last!.seq + 1)
        await phoneVault.shutdown()
        await busVault.shutdown()
    }

    func testALostDeviceKeyIsKeyLostWithTheCardsNeverASilentNewKey() async throws {
        let issuer = try TransitIssuer.generate(keyId: 7, validFrom: now - day, validUntil: now + 365 * day)
        let vault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("keylost").path,
                                                        provider: PadKeyProvider(id: "k"), options: testOptions)
        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        let card = try await phone.installCredential(credential: try issuer.issue(request: request(phone), nowUnix: now)).cardId
        // The device key's record is gone (a partial restore): no new key behind the user's back.
        let deleted = try await vault.delete(collection: "transit.phone", id: "device_key")
        XCTAssertTrue(deleted)
        do {
            _ = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
            XCTFail("a new key was made silently")
        } catch let error as TransitError {
            guard case .SignerKeyLost(let cards) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(cards, [card])
            XCTAssertEqual(error.code(), "transit.signer_key_lost")
        }
        let discarded = try await discardLostTransitCredentials(vault: vault, signer: nil)
        XCTAssertEqual(discarded, [card])
        let reopened = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        do {
            _ = try await reopened.currentQrAt(nowUnix: now)
            XCTFail("no credential should be left")
        } catch TransitError.NoCredential {}
    }

    func testAPassEndingInTwoDaysIsLetInWithAnAmberWarning() async throws {
        let issuer = try TransitIssuer.generate(keyId: 7, validFrom: now - day, validUntil: now + 365 * day)
        let phoneVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("phone-w").path,
                                                             provider: PadKeyProvider(id: "p"), options: testOptions)
        let phone = try await TransitPhone.open(vault: phoneVault, signer: nil, refreshSecs: 5)
        var ending = request(phone)
        ending.passValidUntil = now + 2 * day + 3600
        _ = try await phone.installCredential(credential: try issuer.issue(request: ending, nowUnix: now))
        let busVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("bus-w").path,
                                                           provider: PadKeyProvider(id: "b"), options: testOptions)
        let validator = try await TransitValidator.open(vault: busVault, trustedKeys: [issuer.trustedKey()],
                                                        config: ValidatorConfig(route: 32))
        let qr = try await phone.currentQrAt(nowUnix: now)
        let verdict = try validator.validateAt(text: qr.text, nowUnix: now + 1)
        XCTAssertTrue(verdict.accepted)
        XCTAssertEqual(verdict.presentation.signal, .warn)
        XCTAssertEqual(verdict.presentation.colour, "#F9A825")
        XCTAssertEqual(verdict.presentation.beeps.count, 2)
        XCTAssertEqual(verdict.presentation.lineVi, "Mời lên xe. Vé còn 2 ngày")
        // The same as a key with its arguments, for the app's own language or voice.
        XCTAssertEqual(verdict.presentation.messageKey, "transit.welcome.pass_days_left")
        XCTAssertEqual(verdict.presentation.messageArgs, ["days": "2"])
        XCTAssertEqual(verdict.presentation.lineEn, "Welcome. Your pass ends in 2 days")
        // A day pass ends the day it is used: let in without a warning.
        var dayPass = request(phone, product: .dayPass)
        dayPass.passValidUntil = now + 3600
        _ = try await phone.installCredential(credential: try issuer.issue(request: dayPass, nowUnix: now))
        let dayQr = try await phone.currentQrAt(nowUnix: now + 200)
        let day = try validator.validateAt(text: dayQr.text, nowUnix: now + 200)
        XCTAssertEqual(day.product, .dayPass)
        XCTAssertEqual(day.presentation.signal, .go)
        // A pay-as-you-go card the feed names as capped today: let through in amber, free.
        _ = try await phone.installCredential(credential: try issuer.issue(request: request(phone, product: .payAsYouGo), nowUnix: now))
        try await validator.setCappedCards(cards: [9_704_000_000_123], untilUnix: now + 3600)
        let paygQr = try await phone.currentQrAt(nowUnix: now + 400)
        let capped = try validator.validateAt(text: paygQr.text, nowUnix: now + 400)
        XCTAssertEqual(capped.presentation.signal, .warn)
        XCTAssertEqual(capped.presentation.lineEn, "Cap reached today: this ride is free")
        await phoneVault.shutdown()
        await busVault.shutdown()
    }

    func testADependantsTicketRidesOnlyAfterItsHoldersOwnInAmber() async throws {
        let issuer = try TransitIssuer.generate(keyId: 7, validFrom: now - day, validUntil: now + 365 * day)
        let phoneVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("phone-d").path,
                                                             provider: PadKeyProvider(id: "p"), options: testOptions)
        let phone = try await TransitPhone.open(vault: phoneVault, signer: nil, refreshSecs: 5)
        _ = try await phone.installCredential(credential: try issuer.issue(request: request(phone), nowUnix: now))
        var childRequest = request(phone, product: .freePass)
        childRequest.cardId = 42
        childRequest.category = .child
        childRequest.withHolder = true
        let child = try await phone.installDependantCredential(credential: try issuer.issue(request: childRequest, nowUnix: now))
        XCTAssertTrue(child.withHolder)
        let busVault = try await Vault.openWithKeyProvider(path: dir.appendingPathComponent("bus-d").path,
                                                           provider: PadKeyProvider(id: "b"), options: testOptions)
        let validator = try await TransitValidator.open(vault: busVault, trustedKeys: [issuer.trustedKey()],
                                                        config: ValidatorConfig(route: 32))
        let childQr = try await phone.currentQrForAt(cardId: 42, nowUnix: now).text
        let alone = try validator.validateAt(text: childQr, nowUnix: now)
        XCTAssertEqual(alone.reason, .holderNotTapped)
        XCTAssertEqual(alone.presentation.messageKey, "transit.holder_first")
        let own = try await phone.currentQrAt(nowUnix: now + 2)
        XCTAssertTrue(try validator.validateAt(text: own.text, nowUnix: now + 2).accepted)
        let together = try validator.validateAt(text: childQr, nowUnix: now + 4)
        XCTAssertTrue(together.accepted, "\(together)")
        XCTAssertEqual(together.category, .child)
        XCTAssertEqual(together.presentation.signal, .warn)
        XCTAssertEqual(together.presentation.messageKey, "transit.with_holder")
        await phoneVault.shutdown()
        await busVault.shutdown()
    }

    func testTypedErrors() async throws {
        let issuer = try TransitIssuer.generate(keyId: 1, validFrom: now - day, validUntil: now + day)
        let vault = try await Vault.openWithPassphrase(path: dir.appendingPathComponent("v").path, passphrase: "p", options: testOptions)
        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        do {
            _ = try await phone.currentQrAt(nowUnix: now)
            XCTFail("expected NoCredential")
        } catch TransitError.NoCredential {}
        do {
            _ = try await phone.installCredential(credential: Data([1, 2, 3]))
            XCTFail("expected InvalidCredential")
        } catch TransitError.InvalidCredential {}
        var bad = request(phone)
        bad.product = .freePass
        XCTAssertThrowsError(try issuer.issue(request: bad, nowUnix: now)) { error in
            guard case TransitError.InvalidRequest = error else { return XCTFail("\(error)") }
        }
        // Numbers that do not fit the formats' widths are refused, never wrapped.
        var badRoute = request(phone)
        badRoute.route = 70_000
        for attempt in [
            { _ = try TransitIssuer.generate(keyId: -1, validFrom: self.now, validUntil: self.now + self.day) },
            { _ = try issuer.issue(request: badRoute, nowUnix: self.now) },
            { _ = try issuer.issue(request: self.request(phone), nowUnix: 1 << 40) },
        ] as [() throws -> Void] {
            XCTAssertThrowsError(try attempt()) { error in
                guard case TransitError.InvalidRequest = error else { return XCTFail("\(error)") }
            }
        }
        await vault.shutdown()
    }
}
