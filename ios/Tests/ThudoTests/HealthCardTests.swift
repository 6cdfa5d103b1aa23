import Foundation
import XCTest

@testable import Thudo

final class HealthCardTests: XCTestCase {
    /// scripts/test-swift.sh copies core/tests/data/shc into the Swift root and names it here.
    func read(_ name: String) throws -> String {
        let dir = ProcessInfo.processInfo.environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        return try String(contentsOfFile: dir + "/" + name, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testExampleCardsVerify() throws {
        let v = HealthCardVerifier()
        XCTAssertEqual(try v.addJwks(issuer: "https://spec.smarthealth.cards/examples/issuer", jwksJson: try read("issuer/jwks.json")), 2)
        let card = try v.verifyQr(qrTexts: [try read("example-00-f-qr-code-numeric-value-0.txt")], nowUnix: 1_790_000_000)
        XCTAssertEqual(card.resourceTypes, ["Patient", "Immunization", "Immunization", "Immunization"])
        let chunks = try (0..<3).map { try read("example-02-f-qr-code-numeric-value-\($0).txt") }
        XCTAssertEqual(try v.verifyQr(qrTexts: chunks.reversed(), nowUnix: 1_790_000_000).resourceTypes.first, "DiagnosticReport")
        XCTAssertThrowsError(try v.verifyQr(qrTexts: Array(chunks.prefix(2)), nowUnix: 1_790_000_000)) { error in
            guard case HealthCardError.BadChunks = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try HealthCardVerifier().verifyJws(jws: try read("example-00-d-jws.txt"), nowUnix: 1_790_000_000)) { error in
            guard case HealthCardError.UnknownKey = error else { return XCTFail("\(error)") }
        }
    }

    func testCardsInFileAndRevocationList() throws {
        let v = HealthCardVerifier()
        _ = try v.addJwks(issuer: "https://spec.smarthealth.cards/examples/issuer", jwksJson: try read("issuer/jwks.json"))
        let cards = try v.cardsInFile(fileContents: try read("example-00-e-file.smart-health-card"))
        XCTAssertEqual(cards, [try read("example-00-d-jws.txt")])
        let rid = try XCTUnwrap(try v.verifyJws(jws: cards[0], nowUnix: 1_790_000_000).rid)
        // The issuer's published list does not name this card; one that does revokes it.
        XCTAssertEqual(try v.addCrl(crlJson: try read("issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json")), 4)
        _ = try v.verifyJws(jws: cards[0], nowUnix: 1_790_000_000)
        XCTAssertEqual(try v.addCrl(crlJson: "{\"kid\":\"3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s\",\"method\":\"rid\",\"rids\":[\"\(rid)\"]}"), 1)
        XCTAssertThrowsError(try v.verifyJws(jws: cards[0], nowUnix: 1_790_000_000)) { error in
            guard case HealthCardError.Revoked(let revoked) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(revoked, rid)
        }
        XCTAssertThrowsError(try v.addCrl(crlJson: "{\"kid\":\"k\",\"method\":\"other\",\"rids\":[]}"))
        XCTAssertThrowsError(try v.cardsInFile(fileContents: "not a file"))
    }
}

final class ScheduleTests: XCTestCase {
    func testOverdueAfterMissedVisits() throws {
        let given = [GivenDose(vaccine: "HepB", date: "2026-01-15"), GivenDose(vaccine: "BCG", date: "2026-01-20")]
        let schedule = try vaccinationSchedule(birthDate: "2026-01-15", given: given, today: "2026-07-01")
        func state(_ v: String, _ d: Int32) -> DoseState? { schedule.first { $0.vaccine == v && $0.dose == d }?.state }
        XCTAssertEqual(state("BCG", 1), .done)
        XCTAssertEqual(state("DPT-HepB-Hib", 1), .overdue)
        XCTAssertEqual(state("IPV", 1), .due)
        XCTAssertEqual(state("Measles", 1), .upcoming)
        XCTAssertThrowsError(try vaccinationSchedule(birthDate: "2026-01-15", given: [], today: "2025-01-01"))
    }

    func testSecondIpvTdAtSevenAndRotavirusWhereGiven() throws {
        let at9Months = try vaccinationSchedule(birthDate: "2026-01-15", given: [], today: "2026-10-20")
        XCTAssertEqual(at9Months.first { $0.vaccine == "IPV" && $0.dose == 2 }?.state, .due)
        XCTAssertNil(at9Months.first { $0.vaccine == "Rota" })
        let withRota = try vaccinationSchedule(birthDate: "2026-01-15", given: [], today: "2026-03-20", rotavirus: true)
        XCTAssertEqual(withRota.first { $0.vaccine == "Rota" && $0.dose == 1 }?.state, .due)
        let at7 = try vaccinationSchedule(birthDate: "2018-01-15", given: [GivenDose(vaccine: "DT", date: "2025-01-20")], today: "2025-02-01")
        XCTAssertEqual(at7.first { $0.vaccine == "Td" }?.state, .done)
    }
}
