import Foundation
import XCTest

@testable import Thudo

final class RemindersTests: XCTestCase {
    let now: Int64 = 1_790_000_000  // 2026-09-21, 20:33 in Hanoi
    let day: Int64 = 86_400

    final class Heard: @unchecked Sendable {
        private let lock = NSLock()
        private var lists: [[String]] = []
        func add(_ list: [String]) { lock.lock(); lists.append(list); lock.unlock() }
        var all: [[String]] { lock.lock(); defer { lock.unlock() }; return lists }
    }

    func testOneListAcrossTheDomainsAndAChangeIsHeard() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-reminders-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let handbook = MemberHandbook(vault: vault)
        try await handbook.setProfile(profile: MemberProfile(
            fullName: "Nguyễn Văn An", dateOfBirth: "1985-04-30", sex: "nam", joinedOn: "2010-05-19", officialOn: "2011-05-19",
            partyCardNumber: "01.123456", cell: "Chi bộ Tổ dân phố 5", parentOrganisations: [],
            citizenId: "001085012345", phone: "0912345678"))
        try await handbook.upsertMeetings(meetings: [Meeting(id: "m-oct", date: "2026-10-05", topic: "Học tập Nghị quyết 57", documentIds: [])])
        try await handbook.recordFeeAssessment(
            assessment: try computePartyFee(situation: FeeSituation(basis: .pension, incomeVnd: 5_000_000), month: "2026-08"))
        _ = try await HealthBook(vault: vault).savePerson(person: HealthPerson(id: nil, fullName: "Bé Lan", birthDate: "2026-06-01",
                                                                             gender: .female, citizenId: nil, insurance: nil))
        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        let issuer = try TransitIssuer.generate(keyId: 7, validFrom: now - 30 * day, validUntil: now + 300 * day)
        let request = CredentialRequest(cardId: 42, product: .monthlyAllRoutes, category: .standard, route: 0,
                                        passValidFrom: now - 20 * day, passValidUntil: now + 10 * day,
                                        devicePublicKey: phone.devicePublicKey(), lifetimeSecs: 72 * 3600)
        _ = try await phone.installCredential(credential: try issuer.issue(request: request, nowUnix: now))

        let list = try await upcomingReminders(vault: vault, phone: phone, fromSecs: now, toSecs: now + 30 * day, nowSecs: now)
        let meeting = list.first { $0.id == "meeting:m-oct" }
        XCTAssertEqual(meeting?.atSecs, 1_791_162_000)  // 08:00 in Hanoi on the day
        let unpaid = list.first { $0.id == "fee_unpaid:2026-08" }
        XCTAssertEqual(unpaid?.kind, .feeUnpaid)
        XCTAssertTrue(unpaid?.text.contains("25.000 đ") ?? false)
        let pass = list.first { $0.kind == .passEnding }
        XCTAssertEqual(pass?.atSecs, now + 7 * day)
        XCTAssertEqual(pass?.subject, "42")
        XCTAssertTrue(list.contains { $0.kind == .credentialRenewal })
        XCTAssertTrue(list.contains { $0.kind == .vaccineOverdue && $0.text.hasPrefix("Bé Lan") })
        XCTAssertEqual(list.map { $0.atSecs }, list.map { $0.atSecs }.sorted())
        let again = try await upcomingReminders(vault: vault, phone: phone, fromSecs: now, toSecs: now + 30 * day, nowSecs: now)
        XCTAssertEqual(again.map { $0.id }, list.map { $0.id })

        // Paying the month is heard as a change of the reminders, and the month leaves the list.
        let heard = Heard()
        let stream = vault.reminderChanges()
        let task = Task { for await c in stream { heard.add(c) } }
        try await Task.sleep(nanoseconds: 100_000_000)
        try await handbook.recordFeePayment(month: "2026-08", amountVnd: 25_000)
        for _ in 0..<200 where heard.all.isEmpty { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertEqual(heard.all.first, ["reminders"])
        task.cancel()
        let paid = try await upcomingReminders(vault: vault, phone: phone, fromSecs: now, toSecs: now + 30 * day, nowSecs: now)
        XCTAssertFalse(paid.contains { $0.id == "fee_unpaid:2026-08" })

        do {
            _ = try await upcomingReminders(vault: vault, phone: nil, fromSecs: now, toSecs: now - 1, nowSecs: now)
            XCTFail("expected InvalidArgument")
        } catch VaultError.InvalidArgument {}
        await vault.shutdown()
    }
}
