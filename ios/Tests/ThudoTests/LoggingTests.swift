import Foundation
import XCTest

@testable import Thudo

final class CapturingSink: LogSink, @unchecked Sendable {
    private let lock = NSLock()
    private var records: [LogRecord] = []

    func log(record: LogRecord) {
        lock.lock(); records.append(record); lock.unlock()
    }

    var all: [LogRecord] {
        lock.lock(); defer { lock.unlock() }; return records
    }
}

final class LoggingTests: XCTestCase {
    func testRecordsReachTheSinkAtTheLevelSet() async throws {
        let sink = CapturingSink()
        setLogSink(sink: sink, level: .info)
        defer { setLogSink(sink: nil, level: .off) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("thudo-log-\(UUID().uuidString)").path
        let vault = try await Vault.openWithPassphrase(path: path, passphrase: "bí mật", options: testOptions)
        await vault.shutdown()
        let opened = try XCTUnwrap(sink.all.first { $0.message == "vault opened" })
        XCTAssertEqual(opened.level, .info)
        XCTAssertEqual(opened.target, "thudo_core::vault")
        XCTAssertEqual(opened.fields["new"], "true")
        XCTAssertTrue(logLine(opened).hasPrefix("vault opened new=true"))
        XCTAssertFalse(sink.all.contains { logLine($0).contains("bí mật") })

        // Off at run time: nothing more arrives.
        setLogLevel(level: .off)
        let before = sink.all.count
        let again = try await Vault.openWithPassphrase(path: path, passphrase: "bí mật", options: testOptions)
        await again.shutdown()
        XCTAssertEqual(sink.all.count, before)
    }
}
