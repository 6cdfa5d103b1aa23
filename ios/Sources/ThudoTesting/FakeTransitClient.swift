import Foundation
import Thudo

/// An in-memory `TransitClientProtocol` for an app's unit tests of a rider's screens: buying,
/// paying, showing the QR, renewing, the balance. No network: an `issuer` made here signs real
/// credentials and installs them on the phone, so `TransitPhone.currentQr()` works after a
/// purchase and a `TransitValidator` trusting `issuer.trustedKey()` accepts the QR.
///
/// - Each vault is one account with one card (`cardOf`).
/// - A purchase costs `price` (0 by default). With `payInstantly` (the default) it is paid at
///   once and its credential installed; otherwise it waits (`awaitingPayment`, a fake payment
///   URL) until the test calls `confirmPayment` or `failPayment`, then `collectTransitOrder`
///   installs it or fails with `.paymentFailed`, as the backend does. An order nobody made is
///   `Refused` with `.notFound`.
/// - Pass windows: a monthly pass with `month` ("2026-12") covers that month in Hanoi time, and
///   from now for 30 days without it; a day pass one day, a week pass seven, a free pass a year;
///   pay-as-you-go has none. A dependant's pass needs `addDependant` first (`.notGuardian`
///   otherwise).
/// - `topUp` credits the card's balance when paid; `transitBalance` reads it.
/// - `renewCredentials` re-issues every credential ending within the window whose pass still
///   holds, and reports a pass that ended as refused with `pass_ended`.
/// - A validator's calls fail with `InvalidArgument`: validators are tested against the
///   reference backend. Calls are recorded in `calls`; a fired `CancelToken` fails a call with
///   `Cancelled`. The class is open: override a call to model more.
open class FakeTransitClient: TransitClientProtocol, @unchecked Sendable {
    private struct Order {
        let id: String
        let card: Int64
        let request: CredentialRequest?
        let priceVnd: Int64
        let dependant: Bool
        var status: TransitOrderStatus
        let expiresAt: Int64
    }

    /// Signs the credentials this fake sells: give a validator `issuer.trustedKey()`.
    public let issuer: TransitIssuer
    private let price: @Sendable (TransitProduct, PassengerCategory) -> Int64
    private let now: @Sendable () -> Int64
    private let lock = NSLock()
    private var cards: [ObjectIdentifier: Int64] = [:]
    private var balances: [Int64: Int64] = [:]
    private var orders: [String: Order] = [:]
    private var dependants: [String: (card: Int64, travelsAlone: Bool)] = [:]
    private var recorded: [String] = []
    private var nextId: Int64 = 1
    private var instant = true
    private var lifetime: Int64 = 72 * 3600

    private static let day: Int64 = 86_400
    /// How late the backend still takes a payment notice after an order's time.
    private static let lateNoticeSecs: Int64 = 15 * 60

    public init(
        issuer: TransitIssuer? = nil,
        price: @escaping @Sendable (TransitProduct, PassengerCategory) -> Int64 = { _, _ in 0 },
        now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
    ) throws {
        self.issuer = try issuer ?? TransitIssuer.generate(keyId: 1, validFrom: 0, validUntil: Int64(Int32.max))
        self.price = price
        self.now = now
    }

    /// Whether purchases and top-ups are paid the moment they are made.
    public var payInstantly: Bool {
        get { lock.withLock { instant } }
        set { lock.withLock { instant = newValue } }
    }

    /// How long a credential lasts before it must be renewed (the backend's 72 hours).
    public var credentialLifetimeSecs: Int64 {
        get { lock.withLock { lifetime } }
        set { lock.withLock { lifetime = newValue } }
    }

    /// The calls made so far, by name, oldest first.
    public var calls: [String] { lock.withLock { recorded } }

    private func newId() -> Int64 {
        defer { nextId += 1 }
        return nextId
    }

    /// The card of `vault`'s account (made on first use).
    public func cardOf(_ vault: Vault) -> Int64 {
        lock.withLock { card(of: vault) }
    }

    private func card(of vault: Vault) -> Int64 {
        if let card = cards[ObjectIdentifier(vault)] { return card }
        let card = 9_704_000_000_000 + newId()
        cards[ObjectIdentifier(vault)] = card
        return card
    }

    /// Records that this account may buy for the citizen `citizenId` (a guardianship); returns
    /// the dependant's card. Unless `travelsAlone`, the dependant's tickets ride only with the
    /// holder's own (`CredentialInfo.withHolder`), as the backend issues them.
    @discardableResult
    public func addDependant(_ citizenId: String, travelsAlone: Bool = false) -> Int64 {
        lock.withLock {
            let card = dependants[citizenId]?.card ?? 9_704_000_000_000 + newId()
            dependants[citizenId] = (card, travelsAlone)
            return card
        }
    }

    /// The payment gateway confirms `orderId`: collecting it installs its credential.
    public func confirmPayment(_ orderId: String) { settle(orderId, .paid) }

    /// The payment of `orderId` failed or was cancelled.
    public func failPayment(_ orderId: String) { settle(orderId, .failed) }

    /// The bank took the money for `orderId` and the gateway holds it for review.
    public func holdPaymentForReview(_ orderId: String) { settle(orderId, .underReview) }

    private func settle(_ orderId: String, _ status: TransitOrderStatus) {
        lock.withLock {
            guard var order = orders[orderId] else { preconditionFailure("no order \(orderId)") }
            order.status = status
            orders[orderId] = order
            if status == .paid && order.request == nil { balances[order.card, default: 0] += order.priceVnd }
        }
    }

    private func enter(_ name: String, _ cancel: CancelToken?) throws {
        lock.withLock { recorded.append(name) }
        if cancel?.isCancelled() == true { throw SyncError.Cancelled }
    }

    private func refused(_ status: Int32, _ code: ServerErrorCode, _ wire: String, _ detail: String) -> SyncError {
        .Refused(status: status, code: code, wireCode: wire, detail: detail)
    }

    private func window(_ product: TransitProduct, _ month: String, _ at: Int64) -> (Int64, Int64) {
        switch product {
        case .monthlySingleRoute, .monthlyAllRoutes:
            let parts = month.split(separator: "-").compactMap { Int($0) }
            guard parts.count == 2 else { return (at, at + 30 * Self.day) }
            var hanoi = Calendar(identifier: .gregorian)
            hanoi.timeZone = TimeZone(secondsFromGMT: 7 * 3600)!
            let start = hanoi.date(from: DateComponents(year: parts[0], month: parts[1], day: 1))!
            let end = hanoi.date(byAdding: .month, value: 1, to: start)!
            return (Int64(start.timeIntervalSince1970), Int64(end.timeIntervalSince1970) - 1)
        case .dayPass: return (at, at + Self.day)
        case .weekPass: return (at, at + 7 * Self.day)
        case .freePass: return (at, at + 365 * Self.day)
        case .payAsYouGo: return (0, 0)
        }
    }

    private func orderOf(_ order: Order, _ credential: CredentialInfo?) -> TransitOrder {
        TransitOrder(orderId: order.id, status: order.status, priceVnd: order.priceVnd,
                     paymentUrl: order.status == .awaitingPayment ? "https://pay.example.invalid/\(order.id)" : "",
                     cardId: order.card, passValidFrom: order.request?.passValidFrom ?? 0,
                     passValidUntil: order.request?.passValidUntil ?? 0, expiresAt: order.expiresAt, credential: credential)
    }

    private func install(_ phone: TransitPhone, _ order: Order) async throws -> CredentialInfo {
        guard let request = order.request else { preconditionFailure("a top-up has no credential") }
        let credential = try issuer.issue(request: request, nowUnix: now())
        return order.dependant
            ? try await phone.installDependantCredential(credential: credential)
            : try await phone.installCredential(credential: credential)
    }

    open func buyTransitProduct(vault: Vault, phone: TransitPhone, product: TransitProduct, category: PassengerCategory,
                                route: Int32, month: String, dependantCitizenId: String?) async throws -> TransitOrder {
        try enter("buyTransitProduct", nil)
        let at = now()
        let (from, until) = window(product, month, at)
        let key = phone.devicePublicKey()
        let order: Order = try lock.withLock {
            let card: Int64
            var withHolder = false
            if let citizen = dependantCitizenId {
                guard let theirs = dependants[citizen] else {
                    throw refused(403, .notGuardian, "not_guardian", "no guardianship of this citizen")
                }
                card = theirs.card
                withHolder = !theirs.travelsAlone
            } else {
                card = self.card(of: vault)
            }
            let request = CredentialRequest(cardId: card, product: product, category: category, route: route,
                                            passValidFrom: from, passValidUntil: until, devicePublicKey: key,
                                            lifetimeSecs: lifetime, withHolder: withHolder)
            let order = Order(id: "order-\(newId())", card: card, request: request, priceVnd: price(product, category),
                              dependant: dependantCitizenId != nil, status: instant ? .paid : .awaitingPayment,
                              expiresAt: at + 15 * 60)
            orders[order.id] = order
            return order
        }
        return orderOf(order, order.status == .paid ? try await install(phone, order) : nil)
    }

    open func collectTransitOrder(vault: Vault, phone: TransitPhone, orderId: String, cancel: CancelToken?) async throws -> CredentialInfo {
        try enter("collectTransitOrder", cancel)
        guard let order = lock.withLock({ orders[orderId] }) else { throw refused(404, .notFound, "not_found", "no such order") }
        switch order.status {
        case .paid: return try await install(phone, order)
        // As the backend: an order unpaid past its time, and the late notice's grace, is gone.
        case .awaitingPayment where now() > order.expiresAt + Self.lateNoticeSecs:
            throw refused(410, .orderExpired, "order_expired", "the order was not paid in time: order again")
        case .awaitingPayment: throw refused(409, .paymentPending, "payment_pending", "the payment is not confirmed yet")
        case .underReview:
            throw refused(409, .paymentUnderReview, "payment_under_review",
                          "the bank took the payment and the provider is reviewing it: do not pay again")
        default: throw refused(402, .paymentFailed, "payment_failed", "the payment failed or was cancelled")
        }
    }

    open func transitOrder(vault: Vault, orderId: String, cancel: CancelToken?) async throws -> TransitOrder {
        try enter("transitOrder", cancel)
        guard let order = lock.withLock({ orders[orderId] }) else { throw refused(404, .notFound, "not_found", "no such order") }
        return orderOf(order, nil)
    }

    /// As the backend: the caller's card, or a dependant's added with `addDependant`.
    private func payingCard(_ vault: Vault, _ cardId: Int64?) throws -> Int64 {
        let own = cardOf(vault)
        guard let cardId, cardId != own else { return own }
        guard lock.withLock({ dependants.values.contains { $0.card == cardId } }) else {
            throw refused(403, .notGuardian, "not_guardian", "the account holds no guardianship of that card")
        }
        return cardId
    }

    open func topUp(vault: Vault, amountVnd: Int64, cardId: Int64?, cancel: CancelToken?) async throws -> TransitOrder {
        try enter("topUp", cancel)
        if amountVnd < 10_000 { throw refused(400, .badRequest, "bad_request", "a top-up is at least 10,000 VND") }
        let paying = try payingCard(vault, cardId)
        let own = cardOf(vault)
        let at = now()
        let order: Order = lock.withLock {
            let order = Order(id: "topup-\(newId())", card: paying, request: nil, priceVnd: amountVnd,
                              dependant: paying != own, status: instant ? .paid : .awaitingPayment, expiresAt: at + 15 * 60)
            orders[order.id] = order
            if order.status == .paid { balances[order.card, default: 0] += amountVnd }
            return order
        }
        return orderOf(order, nil)
    }

    open func transitBalance(vault: Vault, cardId: Int64?, cancel: CancelToken?) async throws -> TransitBalance {
        try enter("transitBalance", cancel)
        let card = try payingCard(vault, cardId)
        return TransitBalance(cardId: card, balanceVnd: lock.withLock { balances[card] ?? 0 }, creditLimitVnd: 0, denied: false)
    }

    open func renewCredentials(vault: Vault, phone: TransitPhone, withinSecs: Int64, cancel: CancelToken?) async throws -> [CredentialRenewal] {
        try enter("renewCredentials", cancel)
        let at = now()
        var renewals: [CredentialRenewal] = []
        for held in try await phone.credentials() where held.notAfter <= at + withinSecs {
            if held.product != .payAsYouGo && held.passValidUntil < at {
                renewals.append(CredentialRenewal(cardId: held.cardId, notAfter: nil, refused: "pass_ended"))
                continue
            }
            // A dependant's, as the guardianship stands now (the backend's rule).
            let dependant = lock.withLock { dependants.values.first { $0.card == held.cardId } }
            let request = CredentialRequest(cardId: held.cardId, product: held.product, category: held.category,
                                            route: held.route, passValidFrom: held.passValidFrom,
                                            passValidUntil: held.passValidUntil, devicePublicKey: phone.devicePublicKey(),
                                            lifetimeSecs: credentialLifetimeSecs,
                                            withHolder: dependant.map { !$0.travelsAlone } ?? false)
            let credential = try issuer.issue(request: request, nowUnix: at)
            let installed = dependant == nil
                ? try await phone.installCredential(credential: credential)
                : try await phone.installDependantCredential(credential: credential)
            renewals.append(CredentialRenewal(cardId: held.cardId, notAfter: installed.notAfter, refused: nil))
        }
        return renewals
    }

    private func validatorsOnly(_ name: String) -> SyncError {
        lock.withLock { recorded.append(name) }
        return .InvalidArgument(reason: "FakeTransitClient serves phones, not validators (\(name))")
    }

    open func validatorFeed(vault: Vault, cancel: CancelToken?) async throws -> ValidatorFeed {
        throw validatorsOnly("validatorFeed")
    }

    open func uploadTaps(vault: Vault, validator: TransitValidator, cancel: CancelToken?) async throws -> TapUploadReceipt {
        throw validatorsOnly("uploadTaps")
    }

    open func refreshEntries(vault: Vault, gate: TransitValidator, cancel: CancelToken?) async throws -> Int64 {
        throw validatorsOnly("refreshEntries")
    }

    open func uploadInspections(vault: Vault, inspector: TransitValidator, cancel: CancelToken?) async throws -> InspectionUploadReceipt {
        throw validatorsOnly("uploadInspections")
    }
}
