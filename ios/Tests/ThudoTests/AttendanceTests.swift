import Foundation
import XCTest

@testable import Thudo

/// Signed attendance: the secretary's phone shows the meeting QR, a member's phone checks in.
final class AttendanceTests: XCTestCase {
    let opens: Int64 = 1_796_403_600  // 2026-12-05 00:00 in Hanoi
    var now: Int64 { opens + 9 * 3600 }

    func vault(_ name: String) async throws -> Vault {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-att-\(name)-\(UUID().uuidString)").path
        return try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
    }

    func refusal(_ work: () async throws -> Void) async -> CheckInRefusal? {
        do {
            try await work()
        } catch HandbookError.CheckInRefused(let refusal, _) {
            return refusal
        } catch {
            XCTFail("\(error)")
        }
        return nil
    }

    func testTwoPhonesCheckInOfflineAndBadQrsAreRefusedByName() async throws {
        let issuer = try MeetingIssuer.generate(keyId: 1)
        let meeting = Meeting(id: "m-12", date: "2026-12-05", topic: "Sinh hoạt chi bộ tháng 12", documentIds: [],
                              cell: "hn.chi-bo-1", attendanceKey: issuer.attendanceKey())
        let secretary = MemberHandbook(vault: try await vault("secretary"))
        let member = MemberHandbook(vault: try await vault("member"))
        try await secretary.upsertMeetings(meetings: [meeting])
        try await member.upsertMeetings(meetings: [meeting])
        let credential = try issuer.issue(meetingId: "m-12", cell: "hn.chi-bo-1", opensSecs: opens, closesSecs: opens + 86_399,
                                          secretaryKey: try await secretary.handbookPublicKey())
        try await secretary.installMeetingCredential(meetingId: "m-12", credential: credential)

        let qr = try await secretary.meetingQr(meetingId: "m-12", nowSecs: now)
        XCTAssertTrue(qr.hasPrefix("HNM1:"))
        let checkIn = try await member.checkIn(qrText: qr, nowSecs: now + 10)
        XCTAssertEqual(checkIn.status, .pending)
        XCTAssertEqual(checkIn.scannedAtSecs, now + 10)
        let all = try await member.checkIns()
        XCTAssertEqual(all.map { $0.meetingId }, ["m-12"])

        let again = await refusal { _ = try await member.checkIn(qrText: qr, nowSecs: self.now + 11) }
        XCTAssertEqual(again, .alreadyCheckedIn)
        let other = MemberHandbook(vault: try await vault("other"))
        try await other.upsertMeetings(meetings: [meeting])
        let stale = await refusal { _ = try await other.checkIn(qrText: qr, nowSecs: self.now + 1_200) }
        XCTAssertEqual(stale, .stale)
        let cut = await refusal { _ = try await other.checkIn(qrText: String(qr.dropLast(4)), nowSecs: self.now + 10) }
        XCTAssertEqual(cut, .badQr)
        let late = await refusal { _ = try await secretary.meetingQr(meetingId: "m-12", nowSecs: self.opens + 90_000) }
        XCTAssertEqual(late, .notOpen)
        let foreign = await refusal { try await other.installMeetingCredential(meetingId: "m-12", credential: credential) }
        XCTAssertEqual(foreign, .invalidCredential)
    }

    func testTheSecretaryFetchesTheCredentialAndTheCheckInIsCounted() async throws {
        let url = ProcessInfo.processInfo.environment["THUDO_SERVER_URL"] ?? ""
        let client = try SyncClient(settings: SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: 4, backoffBaseMs: 20,
                                                           pinnedSpkiSha256Hex: []))
        var hanoi = Calendar(identifier: .gregorian)
        hanoi.timeZone = TimeZone(secondsFromGMT: 7 * 3600)!
        let parts = hanoi.dateComponents([.year, .month, .day], from: Date())
        let today = String(format: "%04d-%02d-%02d", parts.year!, parts.month!, parts.day!)
        let cell = "hn.swift.chi-bo-1"
        let secretaryVault = try await vault("s")
        let memberVault = try await vault("m")
        try await registerForTest(client, secretaryVault, citizenId: "001090090001", name: "secretary")
        try await registerForTest(client, memberVault, citizenId: "001090090002", name: "member")
        for citizen in ["001090090001", "001090090002"] {
            try await partyPost("/v1/admin/citizens/\(citizen)/cell", "{\"cell\":\"\(cell)\"}")
        }
        try await partyPost("/v1/admin/cells/\(cell)/handbook.meeting",
                            "{\"items\":[{\"id\":\"m-s\",\"date\":\"\(today)\",\"topic\":\"Sinh hoạt chi bộ\",\"document_ids\":[]}]}")
        try await partyPost("/v1/admin/cells/\(cell)/secretary", "{\"citizen_id\":\"001090090001\"}")
        _ = try await client.sync(vault: secretaryVault)
        let handbookClient = HandbookClient(client: client)
        let window = try await handbookClient.fetchMeetingCredential(vault: secretaryVault, meetingId: "m-s")
        XCTAssertEqual(window.closesSecs - window.opensSecs, 86_399)

        _ = try await client.sync(vault: memberVault)
        let member = MemberHandbook(vault: memberVault)
        let nowSecs = Int64(Date().timeIntervalSince1970)
        let qr = try await MemberHandbook(vault: secretaryVault).meetingQr(meetingId: "m-s", nowSecs: nowSecs)
        _ = try await member.checkIn(qrText: qr, nowSecs: nowSecs)
        let report = try await handbookClient.uploadCheckIns(vault: memberVault)
        XCTAssertEqual(report.accepted, 1)
        XCTAssertTrue(report.refused.isEmpty)
        let after = try await member.checkIns()
        XCTAssertEqual(after.first?.status, .accepted)
        client.shutdown()
    }
}
