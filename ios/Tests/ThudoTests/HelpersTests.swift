import Foundation
import XCTest

@testable import Thudo

/// A clock the test moves; `sleep` advances it instantly.
final class FakeClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ start: Int64) { value = start }
    var now: Int64 { lock.lock(); defer { lock.unlock() }; return value }
    func advance(_ secs: Int64) { lock.lock(); value += secs; lock.unlock() }
}

final class HelpersTests: XCTestCase {
    let now: Int64 = 1_790_000_000

    func phone() async throws -> TransitPhone {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-qrseq-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "p", options: testOptions)
        let phone = try await TransitPhone.open(vault: vault, signer: nil, refreshSecs: 5)
        let issuer = try TransitIssuer.generate(keyId: 5, validFrom: now - 86_400, validUntil: now + 86_400)
        let request = CredentialRequest(cardId: 42, product: .monthlyAllRoutes, category: .standard, route: 0,
                                        passValidFrom: now - 86_400, passValidUntil: now + 86_400,
                                        devicePublicKey: phone.devicePublicKey(), lifetimeSecs: 3600)
        _ = try await phone.installCredential(credential: try issuer.issue(request: request, nowUnix: now))
        return phone
    }

    func testSequenceEmitsAtEachRefreshTime() async throws {
        let phone = try await phone()
        let clock = FakeClock(now + 2)  // 2 s into a 5 s period
        let sequence = TransitQrSequence(phone: phone, refreshSecs: 5, clock: { clock.now }, sleep: { clock.advance($0) })
        var times: [Int64] = []
        var texts: Set<String> = []
        for try await qr in sequence {
            times.append(clock.now)
            texts.insert(qr.text)
            if times.count == 3 { break }
        }
        XCTAssertEqual(times, [now + 2, now + 7, now + 12], "at once, then at each refresh time")
        XCTAssertEqual(texts.count, 3, "a fresh QR each period")
    }

    func testCancellingTheConsumerEndsTheSequence() async throws {
        let phone = try await phone()
        let clock = FakeClock(now)
        let task = Task { () -> Int in
            var n = 0
            // Real sleeping between emissions: cancellation arrives while waiting.
            for try await _ in TransitQrSequence(phone: phone, refreshSecs: 5, clock: { clock.now },
                                                 sleep: { try await Task.sleep(nanoseconds: UInt64($0) * 1_000_000_000) }) {
                n += 1
            }
            return n
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        task.cancel()
        let emitted = try await task.value
        XCTAssertEqual(emitted, 1, "one QR at once, then the wait was cancelled")
    }
}
