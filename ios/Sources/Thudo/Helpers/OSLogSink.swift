import Foundation

/// One line for a log record: the message, then its fields sorted by name (`key=value`).
public func logLine(_ record: LogRecord) -> String {
    let fields = record.fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    return fields.isEmpty ? record.message : "\(record.message) \(fields)"
}

#if canImport(os)
import os

/// Sends thudo's log records to the unified logging system (Console, `log stream`). At start-up:
///
/// ```swift
/// setLogSink(sink: OSLogSink(), level: .info)
/// ```
///
/// Records carry counts, collection names, reasons and durations, never personal data, so they
/// are logged as public.
public final class OSLogSink: LogSink, @unchecked Sendable {
    private let subsystem: String

    public init(subsystem: String = "vn.hanoi.thudo") {
        self.subsystem = subsystem
    }

    public func log(record: LogRecord) {
        let category = record.target.components(separatedBy: "::").last ?? record.target
        let logger = os.Logger(subsystem: subsystem, category: category)
        let line = logLine(record)
        switch record.level {
        case .error: logger.error("\(line, privacy: .public)")
        case .warn: logger.warning("\(line, privacy: .public)")
        case .info: logger.info("\(line, privacy: .public)")
        case .debug, .trace: logger.debug("\(line, privacy: .public)")
        case .off: break
        }
    }
}
#endif
