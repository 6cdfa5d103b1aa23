package vn.hanoi.thudo.testing

import java.time.YearMonth
import java.time.ZoneOffset
import java.util.IdentityHashMap
import vn.hanoi.thudo.CancelToken
import vn.hanoi.thudo.CredentialInfo
import vn.hanoi.thudo.CredentialRenewal
import vn.hanoi.thudo.CredentialRequest
import vn.hanoi.thudo.InspectionUploadReceipt
import vn.hanoi.thudo.PassengerCategory
import vn.hanoi.thudo.ServerErrorCode
import vn.hanoi.thudo.SyncException
import vn.hanoi.thudo.TapUploadReceipt
import vn.hanoi.thudo.TransitBalance
import vn.hanoi.thudo.TransitClientInterface
import vn.hanoi.thudo.TransitIssuer
import vn.hanoi.thudo.TransitOrder
import vn.hanoi.thudo.TransitOrderStatus
import vn.hanoi.thudo.TransitPhone
import vn.hanoi.thudo.TransitProduct
import vn.hanoi.thudo.TransitValidator
import vn.hanoi.thudo.ValidatorFeed
import vn.hanoi.thudo.Vault
import vn.hanoi.thudo.toBytes

/**
 * An in-memory [TransitClientInterface] for an app's unit tests of a rider's screens: buying,
 * paying, showing the QR, renewing, the balance. No network: an [issuer] made here signs real
 * credentials and installs them on the phone, so `TransitPhone.currentQr()` works after a
 * purchase and a `TransitValidator` trusting `issuer.trustedKey()` accepts the QR.
 *
 * - Each vault is one account with one card ([cardOf]).
 * - A purchase costs [price] (0 by default). With [payInstantly] (the default) it is paid at
 *   once and its credential installed; otherwise it waits (`AWAITING_PAYMENT`, a fake payment
 *   URL) until the test calls [confirmPayment] or [failPayment], then `collectTransitOrder`
 *   installs it or fails with `PAYMENT_FAILED`, as the backend does. An order nobody made is
 *   `Refused` with `NOT_FOUND`.
 * - Pass windows: a monthly pass with `month` ("2026-12") covers that month in Hanoi time, and
 *   from now for 30 days without it; a day pass one day, a week pass seven, a free pass a year;
 *   pay-as-you-go has none. A dependant's pass needs [addDependant] first (`NOT_GUARDIAN`
 *   otherwise).
 * - `topUp` credits the card's balance when paid; `transitBalance` reads it.
 * - `renewCredentials` re-issues every credential ending within the window whose pass still
 *   holds, and reports a pass that ended as refused with `pass_ended`.
 * - A validator's calls fail with `InvalidArgument`: validators are tested against the
 *   reference backend. Calls are recorded in [calls]; a fired [CancelToken] fails a call with
 *   `Cancelled`. The class is open: override a call to model more.
 */
open class FakeTransitClient(
    val issuer: TransitIssuer = TransitIssuer.generate(1, 0, Int.MAX_VALUE.toLong()),
    private val price: (TransitProduct, PassengerCategory) -> Long = { _, _ -> 0L },
    private val now: () -> Long = { System.currentTimeMillis() / 1000 },
) : TransitClientInterface {
    private class Order(
        val id: String,
        val card: Long,
        val request: CredentialRequest?,
        val priceVnd: Long,
        val dependant: Boolean,
        /** Read and written under the client's lock. */
        var status: TransitOrderStatus,
        val expiresAt: Long,
    )

    private val lock = Any()
    private val cards = IdentityHashMap<Vault, Long>()
    private val balances = mutableMapOf<Long, Long>()
    private val orders = mutableMapOf<String, Order>()
    private val dependants = mutableMapOf<String, Pair<Long, Boolean>>()
    private val recorded = mutableListOf<String>()
    private var nextId = 1

    /** Whether purchases and top-ups are paid the moment they are made. */
    @Volatile var payInstantly: Boolean = true

    /** How long a credential lasts before it must be renewed (the backend's 72 hours). */
    @Volatile var credentialLifetimeSecs: Long = 72 * 3600L

    /** The calls made so far, by name, oldest first. */
    val calls: List<String> get() = synchronized(lock) { recorded.toList() }

    /** The card of [vault]'s account (made on first use). */
    fun cardOf(vault: Vault): Long = synchronized(lock) { cards.getOrPut(vault) { 9_704_000_000_000L + nextId++ } }

    /**
     * Records that this account may buy for the citizen [citizenId] (a guardianship); returns
     * the dependant's card. Unless [travelsAlone], the dependant's tickets ride only with the
     * holder's own (`CredentialInfo.withHolder`), as the backend issues them.
     */
    fun addDependant(citizenId: String, travelsAlone: Boolean = false): Long = synchronized(lock) {
        val card = dependants[citizenId]?.first ?: (9_704_000_000_000L + nextId++)
        dependants[citizenId] = card to travelsAlone
        card
    }

    /** The payment gateway confirms [orderId]: collecting it installs its credential. */
    fun confirmPayment(orderId: String) = settle(orderId, TransitOrderStatus.PAID)

    /** The payment of [orderId] failed or was cancelled. */
    fun failPayment(orderId: String) = settle(orderId, TransitOrderStatus.FAILED)

    /** The bank took the money for [orderId] and the gateway holds it for review. */
    fun holdPaymentForReview(orderId: String) = settle(orderId, TransitOrderStatus.UNDER_REVIEW)

    private fun settle(orderId: String, status: TransitOrderStatus) {
        synchronized(lock) {
            val order = orders[orderId] ?: error("no order $orderId")
            order.status = status
            if (status == TransitOrderStatus.PAID && order.request == null) credit(order)
        }
    }

    private fun credit(topUp: Order) {
        balances[topUp.card] = (balances[topUp.card] ?: 0L) + topUp.priceVnd
    }

    private fun enter(name: String, cancel: CancelToken?) {
        synchronized(lock) { recorded.add(name) }
        if (cancel?.isCancelled() == true) throw SyncException.Cancelled()
    }

    private fun refused(status: Int, code: ServerErrorCode, wire: String, detail: String) =
        SyncException.Refused(status, code, wire, detail)

    private fun window(product: TransitProduct, month: String, at: Long): Pair<Long, Long> = when (product) {
        TransitProduct.MONTHLY_SINGLE_ROUTE, TransitProduct.MONTHLY_ALL_ROUTES ->
            if (month.isEmpty()) at to at + 30 * DAY
            else YearMonth.parse(month).let { m ->
                val hanoi = ZoneOffset.ofHours(7)
                m.atDay(1).atStartOfDay().toEpochSecond(hanoi) to m.plusMonths(1).atDay(1).atStartOfDay().toEpochSecond(hanoi) - 1
            }
        TransitProduct.DAY_PASS -> at to at + DAY
        TransitProduct.WEEK_PASS -> at to at + 7 * DAY
        TransitProduct.FREE_PASS -> at to at + 365 * DAY
        TransitProduct.PAY_AS_YOU_GO -> 0L to 0L
    }

    private fun orderOf(order: Order, credential: CredentialInfo?) = TransitOrder(
        order.id, order.status, order.priceVnd,
        if (order.status == TransitOrderStatus.AWAITING_PAYMENT) "https://pay.example.invalid/${order.id}" else "",
        order.card, order.request?.passValidFrom ?: 0L, order.request?.passValidUntil ?: 0L,
        order.expiresAt, credential,
    )

    private suspend fun install(phone: TransitPhone, order: Order): CredentialInfo {
        val request = order.request ?: error("a top-up has no credential")
        val credential = issuer.issue(request, now())
        return if (order.dependant) phone.installDependantCredential(credential) else phone.installCredential(credential)
    }

    override suspend fun buyTransitProduct(
        vault: Vault, phone: TransitPhone, product: TransitProduct, category: PassengerCategory,
        route: Int, month: String, dependantCitizenId: String?,
    ): TransitOrder {
        enter("buyTransitProduct", null)
        val at = now()
        val (from, until) = window(product, month, at)
        val order = synchronized(lock) {
            val (card, alone) = if (dependantCitizenId == null) cardOf(vault) to true else dependants[dependantCitizenId]
                ?: throw refused(403, ServerErrorCode.NOT_GUARDIAN, "not_guardian", "no guardianship of this citizen")
            val request = CredentialRequest(
                card, product, category, route, from, until, phone.devicePublicKey().toBytes(), credentialLifetimeSecs, !alone,
            )
            val status = if (payInstantly) TransitOrderStatus.PAID else TransitOrderStatus.AWAITING_PAYMENT
            Order("order-${nextId++}", card, request, price(product, category), dependantCitizenId != null, status, at + 15 * 60)
                .also { orders[it.id] = it }
        }
        val paid = synchronized(lock) { order.status == TransitOrderStatus.PAID }
        val credential = if (paid) install(phone, order) else null
        return synchronized(lock) { orderOf(order, credential) }
    }

    override suspend fun collectTransitOrder(vault: Vault, phone: TransitPhone, orderId: String, cancel: CancelToken?): CredentialInfo {
        enter("collectTransitOrder", cancel)
        val (order, status) = synchronized(lock) { orders[orderId]?.let { it to it.status } }
            ?: throw refused(404, ServerErrorCode.NOT_FOUND, "not_found", "no such order")
        return when (status) {
            TransitOrderStatus.PAID -> install(phone, order)
            // As the backend: an order unpaid past its time, and the late notice's grace, is gone.
            TransitOrderStatus.AWAITING_PAYMENT -> if (now() > order.expiresAt + LATE_NOTICE_SECS) {
                throw refused(410, ServerErrorCode.ORDER_EXPIRED, "order_expired", "the order was not paid in time: order again")
            } else {
                throw refused(409, ServerErrorCode.PAYMENT_PENDING, "payment_pending", "the payment is not confirmed yet")
            }
            TransitOrderStatus.UNDER_REVIEW ->
                throw refused(409, ServerErrorCode.PAYMENT_UNDER_REVIEW, "payment_under_review", "the bank took the payment and the provider is reviewing it: do not pay again")
            else -> throw refused(402, ServerErrorCode.PAYMENT_FAILED, "payment_failed", "the payment failed or was cancelled")
        }
    }

    override suspend fun transitOrder(vault: Vault, orderId: String, cancel: CancelToken?): TransitOrder {
        enter("transitOrder", cancel)
        return synchronized(lock) { orders[orderId]?.let { orderOf(it, null) } }
            ?: throw refused(404, ServerErrorCode.NOT_FOUND, "not_found", "no such order")
    }

    /** As the backend: the caller's card, or a dependant's added with [addDependant]. */
    private fun payingCard(vault: Vault, cardId: Long?): Long {
        val own = cardOf(vault)
        if (cardId == null || cardId == own) return own
        synchronized(lock) { if (dependants.values.none { it.first == cardId }) null else cardId }
            ?.let { return it }
        throw refused(403, ServerErrorCode.NOT_GUARDIAN, "not_guardian", "the account holds no guardianship of that card")
    }

    override suspend fun topUp(vault: Vault, amountVnd: Long, cardId: Long?, cancel: CancelToken?): TransitOrder {
        enter("topUp", cancel)
        if (amountVnd < 10_000) throw refused(400, ServerErrorCode.BAD_REQUEST, "bad_request", "a top-up is at least 10,000 VND")
        val card = payingCard(vault, cardId)
        val order = synchronized(lock) {
            val status = if (payInstantly) TransitOrderStatus.PAID else TransitOrderStatus.AWAITING_PAYMENT
            Order("topup-${nextId++}", card, null, amountVnd, card != cardOf(vault), status, now() + 15 * 60).also {
                orders[it.id] = it
                if (status == TransitOrderStatus.PAID) credit(it)
            }
        }
        return synchronized(lock) { orderOf(order, null) }
    }

    override suspend fun transitBalance(vault: Vault, cardId: Long?, cancel: CancelToken?): TransitBalance {
        enter("transitBalance", cancel)
        val card = payingCard(vault, cardId)
        return TransitBalance(card, synchronized(lock) { balances[card] ?: 0L }, 0L, false)
    }

    override suspend fun renewCredentials(vault: Vault, phone: TransitPhone, withinSecs: Long, cancel: CancelToken?): List<CredentialRenewal> {
        enter("renewCredentials", cancel)
        val at = now()
        return phone.credentials().filter { it.notAfter <= at + withinSecs }.map { held ->
            if (held.product != TransitProduct.PAY_AS_YOU_GO && held.passValidUntil < at) {
                return@map CredentialRenewal(held.cardId, null, "pass_ended")
            }
            // A dependant's, as the guardianship stands now (the backend's rule).
            val dependant = synchronized(lock) { dependants.values.firstOrNull { it.first == held.cardId } }
            val request = CredentialRequest(
                held.cardId, held.product, held.category, held.route, held.passValidFrom, held.passValidUntil,
                phone.devicePublicKey().toBytes(), credentialLifetimeSecs, dependant?.second == false,
            )
            val credential = issuer.issue(request, at)
            val installed = if (dependant != null) phone.installDependantCredential(credential) else phone.installCredential(credential)
            CredentialRenewal(held.cardId, installed.notAfter, null)
        }
    }

    private fun validatorsOnly(name: String): Nothing {
        synchronized(lock) { recorded.add(name) }
        throw SyncException.InvalidArgument("FakeTransitClient serves phones, not validators ($name)")
    }

    override suspend fun validatorFeed(vault: Vault, cancel: CancelToken?): ValidatorFeed = validatorsOnly("validatorFeed")

    override suspend fun uploadTaps(vault: Vault, validator: TransitValidator, cancel: CancelToken?): TapUploadReceipt =
        validatorsOnly("uploadTaps")

    override suspend fun refreshEntries(vault: Vault, gate: TransitValidator, cancel: CancelToken?): Long = validatorsOnly("refreshEntries")

    override suspend fun uploadInspections(vault: Vault, inspector: TransitValidator, cancel: CancelToken?): InspectionUploadReceipt =
        validatorsOnly("uploadInspections")

    private companion object {
        const val DAY = 86_400L
        /** How late the backend still takes a payment notice after an order's time. */
        const val LATE_NOTICE_SECS = 15 * 60L
    }
}
