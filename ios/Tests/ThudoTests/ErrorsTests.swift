import XCTest

@testable import Thudo

/// Every error type gives a stable code, says whether a retry helps, and reads as a sentence.
final class ErrorsTests: XCTestCase {
    func testEveryErrorTypeHasACodeARetryFlagAndAHumanMessage() {
        let cases: [(String, String, Bool, String)] = [
            describe(VaultError.KeyUnavailable(reason: "device locked")) { ($0.code(), $0.isRetryable()) },
            describe(KeyProviderError.Gone(reason: "no such key")) { ($0.code(), $0.isRetryable()) },
            describe(SyncError.NotRegistered) { ($0.code(), $0.isRetryable()) },
            describe(HandbookError.Vault(fault: .locked(reason: "device locked"))) { ($0.code(), $0.isRetryable()) },
            describe(HealthBookError.InvalidFhir(detail: "not a bundle")) { ($0.code(), $0.isRetryable()) },
            describe(HealthCardError.BadSignature) { ($0.code(), $0.isRetryable()) },
            describe(ScheduleError.InvalidDate(value: "2026-13-01")) { ($0.code(), $0.isRetryable()) },
            describe(TransitError.NoCredential) { ($0.code(), $0.isRetryable()) },
            describe(SignerError.Failed(reason: "user cancelled")) { ($0.code(), $0.isRetryable()) },
            describe(HttpError.Failed(reason: "connection refused")) { ($0.code(), $0.isRetryable()) },
            // The vault's faults are one type in every domain, with the domain's code and one
            // retry rule each.
            describe(HealthBookError.Vault(fault: .io(reason: "disk full"))) { ($0.code(), $0.isRetryable()) },
            describe(SyncError.Vault(fault: .keyLost(reason: "key deleted"))) { ($0.code(), $0.isRetryable()) },
            describe(TransitError.Vault(fault: .newerSchema(found: 9, supported: 3))) { ($0.code(), $0.isRetryable()) },
            describe(HandbookError.Vault(fault: .corruptStore(reason: "bad page"))) { ($0.code(), $0.isRetryable()) },
            describe(SyncError.Vault(fault: .storage(reason: "a record"))) { ($0.code(), $0.isRetryable()) },
            describe(AttachmentError.Vault(fault: .closed)) { ($0.code(), $0.isRetryable()) },
        ].map { ($0.code, $0.expectedCode, $0.retryable, $0.message) }
        let expected: [(String, Bool)] = [
            ("vault.key_unavailable", true), ("key_provider.gone", false), ("sync.not_registered", false),
            ("handbook.locked", true), ("health_book.invalid_fhir", false), ("health_card.bad_signature", false),
            ("schedule.invalid_date", false), ("transit.no_credential", false), ("signer.failed", false),
            ("http.failed", true),
            ("health_book.io", true), ("sync.key_lost", false), ("transit.newer_schema", false),
            ("handbook.corrupt_store", false), ("sync.storage", false), ("attachment.closed", false),
        ]
        XCTAssertEqual(cases.count, expected.count)
        for ((code, _, retryable, message), (expectedCode, expectedRetry)) in zip(cases, expected) {
            XCTAssertEqual(code, expectedCode)
            XCTAssertEqual(retryable, expectedRetry, code)
            // A sentence, never empty, never a dump of the enum.
            XCTAssertFalse(message.isEmpty, code)
            XCTAssertFalse(message.contains("reason:"), "\(code): \(message)")
        }
        XCTAssertEqual(SyncError.NotRegistered.localizedDescription, "not registered")
        XCTAssertEqual(VaultError.KeyUnavailable(reason: "device locked").localizedDescription,
                       "key provider unavailable: device locked")
    }

    /// docs/errors.md's samples, run: an unregistered client's sync and a closed vault's fault.
    func testTheSamplesOfTheErrorsDoc() async throws {
        var shown: [String?] = []
        var retries = 0
        func scheduleRetry() { retries += 1 }
        func showError(_ text: String?) { shown.append(text) }
        func askToUnlock() { shown.append("unlock") }
        func startRecovery() { shown.append("recover") }
        let strings = ["sync.not_registered": "Thiết bị chưa đăng ký"]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let client = try SyncClient(settings: SyncSettings(baseUrl: "https://api.example.vn"))
        do { _ = try await client.sync(vault: vault) } catch let error as SyncError {
            if error.isRetryable() { scheduleRetry() } else { showError(strings[error.code()] ?? error.localizedDescription) }
        }
        XCTAssertEqual(shown, ["Thiết bị chưa đăng ký"])

        func onVaultFault(_ fault: VaultFault) {
            switch fault {
            case .locked: askToUnlock()
            case .keyLost: startRecovery()
            default: showError("\(fault)")
            }
        }
        await vault.shutdown()
        do { _ = try await client.sync(vault: vault); XCTFail("closed") } catch SyncError.Vault(let fault) { onVaultFault(fault) }
        onVaultFault(.locked(reason: "device locked"))
        XCTAssertEqual(shown, ["Thiết bị chưa đăng ký", "the vault is closed", "unlock"])
        XCTAssertEqual(retries, 0)
        client.shutdown()
    }

    private func describe<E: Error>(_ error: E, _ api: (E) -> (String, Bool))
        -> (code: String, expectedCode: String, retryable: Bool, message: String) {
        let (code, retryable) = api(error)
        return (code, code, retryable, error.localizedDescription)
    }

    final class OldBackend: HttpClient, @unchecked Sendable {
        private let lock = NSLock()
        private var headers: [[String: String]] = []
        var sent: [[String: String]] { lock.lock(); defer { lock.unlock() }; return headers }
        func send(request: HttpRequest) throws -> HttpResponse {
            lock.lock(); headers.append(request.headers); lock.unlock()
            return HttpResponse(status: 426, headers: ["x-thudo-min-client-version": "99.0.0"],
                                body: Data(#"{"error":"upgrade_required","message":"update the app"}"#.utf8))
        }
    }

    func testABackendThatServesNoAppThisOldSaysSoTyped() async throws {
        let backend = OldBackend()
        let client = try SyncClient.withHttpClient(settings: SyncSettings(baseUrl: "https://api.example.vn", requestTimeoutMs: 1_000,
                                                                          maxAttempts: 3, backoffBaseMs: 10, pinnedSpkiSha256Hex: []),
                                                   http: backend)
        do {
            _ = try await client.registrationNonce()
            XCTFail("expected UpgradeRequired")
        } catch let error as SyncError {
            guard case SyncError.UpgradeRequired(let minimum) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(minimum, "99.0.0")
            XCTAssertEqual(error.code(), "sync.upgrade_required")
            XCTAssertFalse(error.isRetryable())
        }
        XCTAssertEqual(backend.sent.count, 1, "not retried")
        XCTAssertNotNil(backend.sent.first?["x-thudo-client-version"])
        client.shutdown()
    }
}

