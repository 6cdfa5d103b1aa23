import Foundation
import XCTest

@testable import Thudo

/// The code samples of docs/ios.md, run. A test (tests/tests/doc_samples.rs) checks that every
/// line of every Swift sample in the doc is in this file or in compiled sources.
final class DocSamplesTests: XCTestCase {
    /// Stands for the app's OpenID Connect sign-in (the test server's local provider here).
    func signInWithIdentityProvider(nonce: String) async throws -> String {
        try await testIdToken(citizenId: "001088012345", nonce: nonce)
    }

    func testLifecycleAndErrors() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-doc-\(UUID().uuidString)").path
        guard let url = ProcessInfo.processInfo.environment["THUDO_SERVER_URL"] else { return XCTFail("no THUDO_SERVER_URL") }

        // Open once per process and share; every call is async and runs off the caller's thread.
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "correct horse battery staple", options: testOptions)
        let sync = try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: url), http: URLSessionSyncTransport())
        let idToken = try await signInWithIdentityProvider(nonce: try await sync.registrationNonce())   // the app's VNeID sign-in
        _ = try await sync.register(vault: vault, idToken: idToken, deviceName: "Lan's iPhone")
        let report = try await sync.sync(vault: vault, library: nil, observer: nil)

        // Errors are typed, one case per failure.
        do {
            _ = try await vault.get(collection: "notes", id: "")
            XCTFail("an empty id was accepted")
        } catch VaultError.InvalidArgument(let reason) {
            print("refused: \(reason)")
        }

        // Stop one call without touching the client: by hand, or with a time budget.
        let token = CancelToken.withTimeoutMs(budgetMs: 25_000)
        let quick = try await sync.sync(vault: vault, cancel: token)
        XCTAssertEqual(quick.pulled, 0)
        XCTAssertFalse(token.isCancelled())

        // Teardown: stop work in flight; the objects are freed when released.
        sync.shutdown()
        await vault.shutdown()

        XCTAssertGreaterThan(report.applied, 0)
    }

    func testQrOnScreen() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-doc-qr-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        let issuer = try TransitIssuer.generate(keyId: 9, validFrom: 1_000_000_000, validUntil: 4_000_000_000)
        let now = Int64(Date().timeIntervalSince1970)
        _ = try await phone.installCredential(credential: try issuer.issue(request: CredentialRequest(
            cardId: 7, product: .payAsYouGo, category: .standard, route: 0, passValidFrom: 1_000_000_000,
            passValidUntil: 4_000_000_000, devicePublicKey: phone.devicePublicKey(), lifetimeSecs: 3600), nowUnix: now))

        var shown: TransitQr?
        for try await qr in phone.qrSequence(refreshSecs: 5) {
            shown = qr
            break
        }
        let qr = try XCTUnwrap(shown, "the sequence ended without a QR")
        XCTAssertEqual(Int(qr.size) * Int(qr.size), qr.modules.count)
        await vault.shutdown()
    }
}
