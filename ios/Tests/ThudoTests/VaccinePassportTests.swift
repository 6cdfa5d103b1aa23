import Foundation
import XCTest

@testable import Thudo

/// Vaccine passports (EU DCC) from the official test data in core/tests/data/dcc.
final class VaccinePassportTests: XCTestCase {
    /// A case's QR text and signer certificate, from its country file (scripts/test-swift.sh
    /// copies core/tests/data/dcc beside the health-card examples).
    func testCase(_ folder: String, _ file: String) throws -> (qr: String, certificate: String) {
        let dir = ProcessInfo.processInfo.environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/../dcc/" + folder + ".json"))
        let cases = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        let found = try XCTUnwrap(cases.first { $0["FILE"] as? String == file })
        let context = try XCTUnwrap(found["TESTCTX"] as? [String: Any])
        return (try XCTUnwrap(found["PREFIX"] as? String), try XCTUnwrap(context["CERTIFICATE"] as? String))
    }

    /// 2021-06-01T18:00:00Z, the German case's validation clock.
    let clock: Int64 = 1_622_570_400

    func testVerifyRefuseForgedAndKeepExpiredAsHistory() throws {
        let german = try testCase("DE", "DE/2DCode/raw/1.json")
        let v = HealthCardVerifier()
        XCTAssertEqual(try v.addDccSigner(certificateBase64: german.certificate).count, 12)
        let passport = try v.verifyVaccinePassport(qrText: german.qr, nowUnix: clock)
        XCTAssertEqual(passport.kind, .vaccination)
        XCTAssertEqual(passport.country, "DE")
        XCTAssertEqual(passport.certificateId, "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W")
        XCTAssertFalse(passport.expired)
        XCTAssertTrue(passport.fhirBundleJson.contains("\"Immunization\""))

        XCTAssertThrowsError(try HealthCardVerifier().verifyVaccinePassport(qrText: german.qr, nowUnix: clock)) { error in
            guard case HealthCardError.UnknownKey = error else { return XCTFail("\(error)") }
        }
        let forged = try testCase("common", "common/2DCode/raw/CO5.json")
        let other = HealthCardVerifier()
        _ = try other.addDccSigner(certificateBase64: forged.certificate)
        XCTAssertThrowsError(try other.verifyVaccinePassport(qrText: forged.qr, nowUnix: clock)) { error in
            guard case HealthCardError.BadSignature = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try v.verifyVaccinePassport(qrText: "HC2:" + german.qr.dropFirst(4), nowUnix: clock)) { error in
            guard case HealthCardError.BadQr = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try v.addDccSigner(certificateBase64: "not a certificate")) { error in
            guard case HealthCardError.BadTrustData = error else { return XCTFail("\(error)") }
        }
        let years = clock + 5 * 365 * 86_400
        XCTAssertThrowsError(try v.verifyVaccinePassport(qrText: german.qr, nowUnix: years))
        XCTAssertTrue(try v.authenticateVaccinePassport(qrText: german.qr, nowUnix: years).expired)
    }

    func testImportOnceWithProvenance() async throws {
        let german = try testCase("DE", "DE/2DCode/raw/1.json")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let book = HealthBook(vault: vault)
        let v = HealthCardVerifier()
        _ = try v.addDccSigner(certificateBase64: german.certificate, country: "DE")
        let now = clock + 5 * 365 * 86_400 // long expired: the vaccination stays true
        let imported = try await book.importVaccinePassport(verifier: v, qrText: german.qr, nowUnix: now)
        XCTAssertEqual(imported.byType["Immunization"], 1)
        let person = try XCTUnwrap(imported.people.first)
        let shots = try await book.records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(shots.count, 1)
        XCTAssertEqual(shots[0].provenance.source, .healthCard)
        XCTAssertEqual(shots[0].provenance.country, "DE")
        XCTAssertEqual(shots[0].provenance.certificateId, "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W")
        _ = try await book.importVaccinePassport(verifier: v, qrText: german.qr, nowUnix: now)
        let again = try await book.records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(again.count, 1)
        let forged = try testCase("common", "common/2DCode/raw/CO5.json")
        _ = try v.addDccSigner(certificateBase64: forged.certificate)
        do {
            _ = try await book.importVaccinePassport(verifier: v, qrText: forged.qr, intoPerson: person, nowUnix: now)
            XCTFail("a forged passport was imported")
        } catch HealthBookError.CardRefused(let reason, _) {
            XCTAssertEqual(reason, "bad_signature")
        }
        let people = try await book.people()
        XCTAssertEqual(people.count, 1)
    }

    func testDdccCoreDataSetReadsWhoBundlesAndWritesBack() async throws {
        let dir = ProcessInfo.processInfo.environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        let who = { (name: String) in try String(contentsOfFile: dir + "/../ddcc/" + name, encoding: .utf8) }
        let read = try ddccFromFhir(bundleJson: try who("WHOQR1FHIRBundle.json"))
        XCTAssertEqual(read.count, 1)
        var v = read[0]
        XCTAssertEqual(v.name, "Eddie Murphy")
        XCTAssertEqual(v.lot, "PT123F")
        XCTAssertEqual(v.country?.code, "USA")
        XCTAssertEqual(v.validFrom, "2021-07-22")
        XCTAssertThrowsError(try ddccFromFhir(bundleJson: "{")) { error in
            guard case HealthBookError.InvalidFhir = error else { return XCTFail("\(error)") }
        }
        v.name = "Nguyễn Thị Lan"
        v.certificateId = "VN-HCID-0001"
        XCTAssertEqual(try ddccFromFhir(bundleJson: ddccToFhir(vaccinations: [v])), [v])

        let path = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let book = HealthBook(vault: vault)
        let imported = try await book.importBundle(bundleJson: try who("SHCQR1FHIRBundle.json"))
        XCTAssertEqual(imported.refused, 0)
        XCTAssertEqual(imported.byType["Immunization"], 2)
        XCTAssertTrue(imported.liberties.contains { $0.contains("resource:0") }, "\(imported.liberties)")
    }

    func testTrustBundlesArriveBySyncNeverRollBackAndRemovalShows() async throws {
        let url = try XCTUnwrap(ProcessInfo.processInfo.environment["THUDO_SERVER_URL"])
        let dir = ProcessInfo.processInfo.environment["THUDO_FIXTURES"] ?? "/w/fixtures/shc"
        let jwks = try String(contentsOfFile: dir + "/issuer/jwks.json", encoding: .utf8)
        // Its key announces revocation list version 1: the backend publishes it only with that list.
        let crl = try String(contentsOfFile: dir + "/issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json", encoding: .utf8)
        let issuer = "{\"iss\":\"https://spec.smarthealth.cards/examples/issuer\",\"jwks\":\(jwks),\"crls\":[\(crl)]}"
        let first = try await publishTestTrustBundle("{\"card_issuers\":[\(issuer)],\"valid_days\":7}")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let book = HealthBook(vault: vault)
        let none = try await book.trustStatus()
        XCTAssertNil(none)
        let client = try SyncClient(settings: SyncSettings(baseUrl: url, requestTimeoutMs: 5_000, maxAttempts: 4, backoffBaseMs: 20,
                                                           pinnedSpkiSha256Hex: [], healthTrustKey: first.key))
        try await registerForTest(client, vault, citizenId: "001088077002", name: "phone")
        _ = try await client.sync(vault: vault)
        let status = try await XCTUnwrapAsync(try await book.trustStatus())
        XCTAssertGreaterThanOrEqual(status.version, first.version)
        XCTAssertFalse(status.stale)
        let later = try await book.trustStatus(nowUnix: status.expiresAt + 1)
        XCTAssertEqual(later?.stale, true)
        let card = try String(contentsOfFile: dir + "/example-00-d-jws.txt", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let verifier = try await book.trustedVerifier()
        _ = try verifier.verifyJws(jws: card, nowUnix: 1_790_000_000)
        let imported = try await book.importCardJws(verifier: verifier, jws: card, intoPerson: nil, nowUnix: 1_790_000_000)
        let person = try XCTUnwrap(imported.people.first)
        let before = try await book.records(personId: person, kind: .immunization, from: nil, to: nil)
        // Every dose of the card says so (a listing checks each card once for all its entries).
        XCTAssertGreaterThanOrEqual(before.count, 2)
        XCTAssertEqual(before.map(\.provenance.signerTrusted), Array(repeating: true, count: before.count))
        // A book opened with the app's key trusts the bundle; with another key (the app moved to
        // a new trust-list key) nothing it signed vouches for anything.
        let own = try await HealthBook.withTrustKey(vault: vault, trustKey: first.key).trustStatus()
        XCTAssertEqual(own?.version, status.version)
        // A valid P-256 key no bundle is signed with (the curve's generator, compressed).
        let moved = try HealthBook.withTrustKey(vault: vault, trustKey: "A2sX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKW")
        let movedStatus = try await moved.trustStatus()
        XCTAssertNil(movedStatus)
        let untrusted = try await moved.trustedVerifier()
        XCTAssertThrowsError(try untrusted.verifyJws(jws: card, nowUnix: 1_790_000_000)) { error in
            guard case HealthCardError.UnknownKey = error else { return XCTFail("\(error)") }
        }
        let unvouched = try await moved.records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(unvouched.map(\.provenance.signerTrusted), Array(repeating: nil, count: before.count))
        XCTAssertThrowsError(try HealthBook.withTrustKey(vault: vault, trustKey: "not a key"))

        let second = try await publishTestTrustBundle("{\"card_issuers\":[]}")
        let refreshed = try await client.refreshHealthTrust(vault: vault)
        XCTAssertEqual(refreshed?.version, second.version)
        let after = try await book.records(personId: person, kind: .immunization, from: nil, to: nil)
        XCTAssertEqual(after.map(\.provenance.signerTrusted), Array(repeating: false, count: before.count))
        let emptied = try await book.trustedVerifier()
        XCTAssertThrowsError(try emptied.verifyJws(jws: card, nowUnix: 1_790_000_000)) { error in
            guard case HealthCardError.UnknownKey = error else { return XCTFail("\(error)") }
        }
        do {
            _ = try await book.installTrustBundle(bundle: "a.b.c", trustKey: first.key)
            XCTFail("a malformed bundle was installed")
        } catch HealthBookError.TrustBundleRefused(let reason, _) {
            XCTAssertEqual(reason, "malformed")
        }
    }
}

/// `XCTUnwrap` for an async expression's result.
func XCTUnwrapAsync<T>(_ value: T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    try XCTUnwrap(value, file: file, line: line)
}
