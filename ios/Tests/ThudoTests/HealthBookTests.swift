import Foundation
import XCTest

@testable import Thudo

final class HealthBookTests: XCTestCase {
    func read(_ name: String) throws -> String {
        let dir = ProcessInfo.processInfo.environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        return try String(contentsOfFile: dir + "/" + name, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testImportCardListImmunizationsComputeSchedule() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-health-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let book = HealthBook(vault: vault)
        let child = try await book.savePerson(person: HealthPerson(id: nil, fullName: "Trần Thu Hà", birthDate: "2026-01-10",
                                                                   gender: .female, citizenId: nil, insurance: nil))
        let verifier = HealthCardVerifier()
        _ = try verifier.addJwks(issuer: "https://spec.smarthealth.cards/examples/issuer", jwksJson: try read("issuer/jwks.json"))
        let imported = try await book.importCardQr(verifier: verifier, qrTexts: [try read("example-00-f-qr-code-numeric-value-0.txt")],
                                                   intoPerson: child, nowUnix: 1_790_000_000)
        XCTAssertEqual(imported.byType["Immunization"], 3)

        let shots = try await book.records(personId: child, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(shots.count, 3)
        XCTAssertTrue(shots.allSatisfy { $0.provenance.source == .healthCard && $0.provenance.verifiedAt == 1_790_000_000 })
        let inRange = try await book.records(personId: child, kind: .immunization, from: "2021-01-01", to: "2021-01-31")
        XCTAssertEqual(inRange.count, 2)

        _ = try await book.putResource(resourceJson: """
            {"resourceType":"Immunization","status":"completed",
             "vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"08"}]},
             "patient":{"reference":"Patient/\(child)"},"occurrenceDateTime":"2026-01-10"}
            """)
        let schedule = try await book.vaccinationSchedule(personId: child, today: "2026-03-20")
        func state(_ v: String, _ d: Int32) -> DoseState? { schedule.first { $0.vaccine == v && $0.dose == d }?.state }
        XCTAssertEqual(state("HepB", 1), .done)
        XCTAssertEqual(state("BCG", 1), .overdue)
        XCTAssertEqual(state("DPT-HepB-Hib", 1), .due)
        let withRota = try await book.vaccinationSchedule(personId: child, today: "2026-03-20", rotavirus: true)
        XCTAssertEqual(withRota.first { $0.vaccine == "Rota" && $0.dose == 1 }?.state, .due)

        do {
            _ = try await book.importCardQr(verifier: HealthCardVerifier(), qrTexts: [try read("example-00-f-qr-code-numeric-value-0.txt")],
                                            intoPerson: child, nowUnix: 1_790_000_000)
            XCTFail("an untrusted card was imported")
        } catch HealthBookError.CardRefused(let reason, _) {
            XCTAssertEqual(reason, "unknown_key")
        }
        let after = try await book.records(personId: child, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(after.count, 4)
        let people = try await book.people()
        XCTAssertEqual(people.map { $0.id }, [child])
        XCTAssertEqual(people.first?.gender, .female)
        XCTAssertNil(people.first?.citizenId)
        let person = try await book.person(id: child)
        XCTAssertEqual(person?.fullName, "Trần Thu Hà")
        let first = try await book.record(key: shots[0].key)
        XCTAssertEqual(first?.resourceJson, shots[0].resourceJson)
        let deleted = try await book.deleteRecord(key: shots[0].key)
        XCTAssertTrue(deleted)
        let gone = try await book.record(key: shots[0].key)
        XCTAssertNil(gone)
        let again = try await book.importCardJws(verifier: verifier, jws: try read("example-00-d-jws.txt"),
                                                 intoPerson: child, nowUnix: 1_790_000_000)
        XCTAssertEqual(again.byType["Immunization"], 3, "the deleted shot comes back from the card")
        do {
            _ = try await book.importBundle(bundleJson: "{}", intoPerson: nil)
            XCTFail("not a bundle")
        } catch HealthBookError.InvalidFhir {}

        let ips = try await book.exportIps(personId: child)
        XCTAssertTrue(ips.contains("\"11450-4\""))
        await vault.shutdown()
    }

    func testRealIpsDocumentComesBackWithEveryEntryAccountedFor() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-ips-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let book = HealthBook(vault: vault)
        // The IPS guide's published example (core/tests/data/fhir, CC0).
        let text = try read("../fhir/ips-2.0/Bundle-IPS-examples-Bundle-01.json")
        let imported = try await book.importBundle(bundleJson: text)
        XCTAssertEqual(imported.entries.count, 20)
        XCTAssertEqual(imported.refused, 0)
        XCTAssertTrue(imported.entries.allSatisfy { $0.status == .stored || $0.status == .shared })
        let ips = try await book.exportIps(personId: imported.people[0])
        XCTAssertTrue(ips.contains("\"11348-0\""), "past problems keep their section")
        XCTAssertTrue(ips.contains("\"value\":7.5"))

        // A bad entry is refused alone, with its index; or the whole bundle when asked.
        let bundle = """
            {"resourceType":"Bundle","type":"collection","entry":[
            {"resource":{"resourceType":"Patient","id":"k1","name":[{"text":"Lê Hoa"}],"birthDate":"2001-02-03"}},
            {"resource":{"resourceType":"Observation","id":42,"status":"final","subject":{"reference":"Patient/k1"}}}]}
            """
        let partial = try await book.importBundle(bundleJson: bundle)
        XCTAssertEqual(partial.refused, 1)
        XCTAssertEqual(partial.entries[1].status, .refused)
        XCTAssertEqual(partial.entries[1].index, 1)
        do {
            _ = try await book.importBundle(bundleJson: bundle, allOrNothing: true)
            XCTFail("all or nothing")
        } catch HealthBookError.InvalidFhir {}
        await vault.shutdown()
    }

    func testCallOnShutVaultSaysClosed() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-closed-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let book = HealthBook(vault: vault)
        let handbook = MemberHandbook(vault: vault)
        // The cell's notices and meetings, as a sync stores them; a notice read on this phone.
        try await handbook.upsertNotices(notices: [Notice(id: "n1", title: "Họp chi bộ tháng 12", body: "19h thứ Sáu",
                                                          publishedOn: "2026-11-20", read: false)])
        try await handbook.upsertMeetings(meetings: [Meeting(id: "m1", date: "2026-12-05", topic: "Học tập Nghị quyết 57",
                                                             documentIds: [])])
        try await handbook.markNoticeRead(id: "n1")
        let read = try await handbook.notices().map { $0.read }
        XCTAssertEqual(read, [true])
        let meetings = try await handbook.meetingsFrom(from: "2026-12-01").map { $0.id }
        XCTAssertEqual(meetings, ["m1"])
        await vault.shutdown()
        // The same fault from either domain: one handler serves both.
        do {
            _ = try await book.people()
            XCTFail("closed")
        } catch HealthBookError.Vault(let fault) {
            XCTAssertEqual(fault, .closed)
        }
        do {
            _ = try await handbook.notices()
            XCTFail("closed")
        } catch HandbookError.Vault(let fault) {
            XCTAssertEqual(fault, .closed)
        }
        // A forgotten passphrase: the files go, and a new vault starts empty in their place.
        try await destroyVault(path: path)
        let fresh = try await Vault.openWithPassphrase(path: path, passphrase: "new", options: testOptions)
        let people = try await HealthBook(vault: fresh).people()
        XCTAssertEqual(people.count, 0)
        await fresh.shutdown()
    }
}
