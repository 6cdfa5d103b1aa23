import Foundation
import XCTest

@testable import Thudo

final class HandbookTests: XCTestCase {
    func testSearchWithoutAccents() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-lib-\(UUID().uuidString).db").path
        let library = try await HandbookLibrary.open(path: path)
        try await library.upsert(documents: [
            PartyDocument(id: "nq57", number: "57-NQ/TW", issuer: "Bộ Chính trị", issuedOn: "2024-12-22", kind: "nghị quyết",
                          title: "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ",
                          body: "Khoa học, công nghệ là đột phá quan trọng hàng đầu."),
            PartyDocument(id: "qd01", number: "01-QĐ/TW", issuer: "Ban Chấp hành Trung ương", issuedOn: "2026-02-03", kind: "quy định",
                          title: "Quy định số 01-QĐ/TW về chế độ đảng phí", body: "Đảng viên đóng đảng phí hằng tháng."),
        ])
        let nq = try await library.search(query: "nghi quyet 57", limit: 10)
        XCTAssertEqual(nq.first?.id, "nq57")
        let fee = try await library.search(query: "ĐANG PHI", limit: 10)
        XCTAssertEqual(fee.first?.id, "qd01")
        XCTAssertTrue(fee.first?.snippet.contains("<mark>") ?? false)
        // Typed in Telex or VNI with the marks left as keys.
        let telex = try await library.search(query: "nghij quyeets 57", limit: 10)
        XCTAssertEqual(telex.first?.id, "nq57")
        let vni = try await library.search(query: "ddangr phi1", limit: 10)
        XCTAssertEqual(vni.first?.id, "qd01")
        // A typo (swapped letters): found, ranked below any exact match.
        let typo = try await library.search(query: "dnag phi", limit: 10)
        XCTAssertEqual(typo.first?.id, "qd01")
        XCTAssertLessThan(typo.first?.score ?? 1, 0)
        do {
            _ = try await library.search(query: String(repeating: "a", count: 300), limit: 10)
            XCTFail("expected Invalid")
        } catch HandbookError.Invalid {}
    }

    func testPartyFee() throws {
        XCTAssertEqual(try computePartyFee(situation: FeeSituation(basis: .socialInsuranceSalary, incomeVnd: 12_345_678), month: "2026-03").dueVnd, 123_456)
        XCTAssertEqual(try computePartyFee(situation: FeeSituation(basis: .pension, incomeVnd: 7_000_000), month: "2026-03").dueVnd, 35_000)
        XCTAssertEqual(try computePartyFee(situation: FeeSituation(basis: .student), month: "2026-03").dueVnd, 5_000)
        let reduced = try computePartyFee(
            situation: FeeSituation(basis: .socialInsuranceSalary, incomeVnd: 10_000_000,
                                    relief: .reduction(percent: 70, fromMonth: "2026-05", months: 12)),
            month: "2026-06")
        XCTAssertEqual(reduced.dueVnd, 30_000)
        // Before February 2026: Decision 342-QĐ/TW.
        let old = try computePartyFee(situation: FeeSituation(basis: .enterpriseWage, incomeVnd: 8_500_000), month: "2015-03")
        XCTAssertEqual(old.dueVnd, 85_000)
        XCTAssertEqual(old.regulation, "342-QĐ/TW")
        XCTAssertEqual(old.basis, .enterpriseWage)
        // A farmer in region IV past working age: a share of the regional minimum wage.
        let farmer = FeeSituation(basis: .otherIncome, pastWorkingAge: true, region: .iv, setAmountVnd: 10_000)
        XCTAssertEqual(try computePartyFee(situation: farmer, month: "2027-12").dueVnd, 7_400)
        XCTAssertEqual(try computePartyFee(situation: farmer, month: "2028-01").dueVnd, 11_100)
        XCTAssertEqual(try computePartyFee(situation: farmer, month: "2025-01").dueVnd, 5_000)
        XCTAssertTrue(try computePartyFee(situation: farmer, month: "2027-12").rule.contains("293/2025/NĐ-CP"))
        let abroad = try computePartyFee(situation: FeeSituation(basis: .abroad, incomeVnd: 25_000_000), month: "2026-06")
        XCTAssertEqual(abroad.dueVnd, 250_000)
        // Arrears across the change of regulation.
        let statement = try computePartyFeeStatement(
            periods: [FeePeriod(sinceMonth: "2020-01", situation: farmer)], fromMonth: "2026-01", toMonth: "2026-02")
        XCTAssertEqual(statement.months.map { $0.dueVnd }, [5_000, 7_400])
        XCTAssertEqual(statement.totalDueVnd, 12_400)
        XCTAssertTrue(statement.unpriced.isEmpty)
        // Maternity leave had no rule under 342-QĐ/TW: those months are named, the rest priced.
        let leave = FeeSituation(basis: .sickOrMaternityBenefit, incomeVnd: 6_000_000)
        let onLeave = try computePartyFeeStatement(
            periods: [FeePeriod(sinceMonth: "2025-12", situation: leave)], fromMonth: "2025-12", toMonth: "2026-02")
        XCTAssertEqual(onLeave.unpriced.map { $0.month }, ["2025-12", "2026-01"])
        XCTAssertTrue(onLeave.unpriced.allSatisfy { $0.reason.contains("342-QĐ/TW") })
        XCTAssertEqual(onLeave.months.map { $0.month }, ["2026-02"])
        XCTAssertEqual(onLeave.totalDueVnd, 60_000)
        XCTAssertThrowsError(try computePartyFee(situation: FeeSituation(basis: .student), month: "2011-03")) { error in
            guard case HandbookError.NoRule = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try computePartyFee(situation: FeeSituation(basis: .otherIncome), month: "2026-03")) { error in
            guard case HandbookError.Invalid = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try computePartyFeeStatement(periods: [], fromMonth: "2026-01", toMonth: "2026-02")) { error in
            guard case HandbookError.Invalid = error else { return XCTFail("\(error)") }
        }
    }

    func testAttendanceAndProcedure() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-member-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let handbook = MemberHandbook(vault: vault)
        try await handbook.upsertMeetings(meetings: [Meeting(id: "m12", date: "2026-12-05", topic: "Học tập Nghị quyết 57", documentIds: ["nq57"])])
        try await handbook.recordAttendance(meetingId: "m12", status: .present)
        do {
            try await handbook.recordAttendance(meetingId: "m12", status: .excused(reason: ""))
            XCTFail("expected Invalid")
        } catch HandbookError.Invalid {}

        _ = try await handbook.saveDraft(id: "s1", request: .temporaryTransfer(
            toOrganisation: "Đảng bộ Trường Đại học", purpose: .study, from: "2026-12-01", until: "2029-01-01"))
        do {
            _ = try await handbook.queueProcedure(id: "s1")
            XCTFail("expected Invalid: study transfers last at most 2 years")
        } catch HandbookError.Invalid(let reason) {
            XCTAssertTrue(reason.hasPrefix("until"), reason)
        }
        _ = try await handbook.saveDraft(id: "s1", request: .temporaryTransfer(
            toOrganisation: "Đảng bộ Trường Đại học", purpose: .study, from: "2026-12-01", until: "2028-11-30"))
        let queued = try await handbook.queueProcedure(id: "s1")
        XCTAssertEqual(queued.status, .queued)
        let listed = try await handbook.procedures().first { $0.id == "s1" }
        XCTAssertEqual(listed?.status, .queued)
        let returned = try await handbook.applyProcedureStatus(id: "s1", status: .returned(reason: "Thiếu giấy báo nhập học"))
        XCTAssertEqual(returned.status, .returned(reason: "Thiếu giấy báo nhập học"))
        // The procedure carries what it asks, as saved.
        guard case let .temporaryTransfer(_, purpose, _, until) = returned.request else {
            return XCTFail("expected the temporary transfer, got \(returned.request)")
        }
        XCTAssertEqual(purpose, .study)
        XCTAssertEqual(until, "2028-11-30")

        try await handbook.setProfile(profile: MemberProfile(
            fullName: "Nguyễn Văn An", dateOfBirth: "1985-04-30", sex: "nam", joinedOn: "2010-05-19", officialOn: "2011-05-19",
            partyCardNumber: "01.123456", cell: "Chi bộ Tổ dân phố 5", parentOrganisations: ["Đảng bộ phường Dịch Vọng"],
            citizenId: "001085012345", phone: "0912345678"))
        let profile = try await handbook.profile()
        XCTAssertEqual(profile?.fullName, "Nguyễn Văn An")

        for month in ["2026-03", "2026-04", "2026-05"] {
            try await handbook.recordFeeAssessment(assessment: try computePartyFee(situation: FeeSituation(basis: .pension, incomeVnd: 6_000_000), month: month))
        }
        try await handbook.recordFeePayment(month: "2026-03", amountVnd: 30_000)
        let standing = try await handbook.feeStanding(year: 2026)
        XCTAssertEqual(standing.unpaid, ["2026-04", "2026-05"])
        XCTAssertFalse(standing.serious)
        do {
            try await handbook.recordFeePayment(month: "2026-09", amountVnd: 1)
            XCTFail("no assessment for September")
        } catch HandbookError.NotFound {}
        await vault.shutdown()
    }

    func testLibraryRemovesADocument() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-lib-\(UUID().uuidString).db").path
        let library = try await HandbookLibrary.open(path: path)
        try await library.upsert(documents: [
            PartyDocument(id: "qd01", number: "01-QĐ/TW", issuer: "Ban Chấp hành Trung ương", issuedOn: "2026-02-03", kind: "quy định",
                          title: "Quy định số 01-QĐ/TW về chế độ đảng phí", body: "Đảng viên đóng đảng phí hằng tháng."),
        ])
        let removed = try await library.remove(id: "qd01")
        XCTAssertTrue(removed)
        let again = try await library.remove(id: "qd01")
        XCTAssertFalse(again)
        let hits = try await library.search(query: "dang phi", limit: 5)
        XCTAssertTrue(hits.isEmpty)
    }
}
