import Foundation

/// The QR to show, as an `AsyncSequence`: a fresh `TransitQr` at once and then each time the
/// shown QR's refresh time (`refreshAt`, every `refreshSecs`) comes, until the consuming task is
/// cancelled (leaving the screen) or the loop breaks. Inject `clock` (unix seconds) and `sleep`
/// in tests.
///
/// ```swift
/// .task {
///     do { for try await qr in phone.qrSequence(refreshSecs: 5) { self.qr = qr } } catch { self.error = error }
/// }
/// ```
public struct TransitQrSequence: AsyncSequence {
    public typealias Element = TransitQr

    let phone: TransitPhone
    let refreshSecs: Int64
    let clock: @Sendable () -> Int64
    let sleep: @Sendable (Int64) async throws -> Void

    /// A sequence over `phone`, whose refresh period is `refreshSecs`.
    public init(
        phone: TransitPhone,
        refreshSecs: Int64 = 5,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) },
        sleep: @escaping @Sendable (Int64) async throws -> Void = { try await Task.sleep(nanoseconds: UInt64($0) * 1_000_000_000) }
    ) {
        self.phone = phone
        self.refreshSecs = Swift.max(refreshSecs, 1)
        self.clock = clock
        self.sleep = sleep
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(sequence: self)
    }

    /// Its iterator.
    public struct Iterator: AsyncIteratorProtocol {
        let sequence: TransitQrSequence
        var refreshAt: Int64?

        public mutating func next() async throws -> TransitQr? {
            if let due = refreshAt {
                // The phone signs a new QR from its refresh time on: wake up then (1 s at least).
                let now = sequence.clock()
                let wait = Swift.min(Swift.max(due > now ? due - now : 1, 1), sequence.refreshSecs)
                do {
                    try await sequence.sleep(wait)
                } catch {
                    return nil  // cancelled while waiting: the sequence ends
                }
            }
            if Task.isCancelled { return nil }
            let qr = try await sequence.phone.currentQrAt(nowUnix: sequence.clock())
            refreshAt = qr.refreshAt
            return qr
        }
    }
}

extension TransitPhone {
    /// This phone's QRs as an `AsyncSequence` (see `TransitQrSequence`).
    public func qrSequence(
        refreshSecs: Int64 = 5,
        clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) -> TransitQrSequence {
        TransitQrSequence(phone: self, refreshSecs: refreshSecs, clock: clock)
    }
}
