package vn.hanoi.thudo

import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import vn.hanoi.thudo.testing.FakeSyncClient
import vn.hanoi.thudo.testing.FakeTransitClient

/** The fakes app teams test their screens with, used the way an app's code uses the real objects. */
class FakesTest {
    @TempDir
    lateinit var dir: Path

    private suspend fun vault(name: String) = Vault.openWithPassphrase(dir.resolve(name).toString(), "p", testOptions)

    /** What an app's screen does on "refresh": written against the interface, not the class. */
    private suspend fun refresh(client: SyncClientInterface, vault: Vault): String = try {
        "pulled ${client.sync(vault, null, null, null).pulled}"
    } catch (e: SyncException) {
        if (e.isRetryable()) "offline: ${e.code()}" else "error: ${e.code()}"
    }

    @Test
    fun `a screen written against SyncClientInterface runs on the fake`() = runBlocking<Unit> {
        val fake = FakeSyncClient()
        val phone = vault("phone")
        assertEquals("error: sync.not_registered", refresh(fake, phone))
        val id = fake.register(phone, "any.id.token", "phone", null)
        assertTrue(fake.isRegistered(phone))
        assertEquals(listOf(id), fake.devices(phone, null).map { it.deviceId })

        val heard = mutableListOf<SyncProgress>()
        val observer = object : SyncObserver { override fun onProgress(progress: SyncProgress) { heard.add(progress) } }
        fake.enqueueSync(FakeSyncClient.report(pulled = 3), listOf(SyncProgress.Pulled("notes", 3, 3)))
        assertEquals(3, fake.sync(phone, null, observer, null).pulled)
        assertEquals(listOf<SyncProgress>(SyncProgress.Pulled("notes", 3, 3)), heard)
        assertEquals("pulled 0", refresh(fake, phone), "nothing scripted: an empty report")

        fake.offline = true
        assertEquals("offline: sync.unavailable", refresh(fake, phone))
        fake.offline = false
        fake.enqueueFailure(SyncException.UpgradeRequired("0.3.0"))
        assertEquals("error: sync.upgrade_required", refresh(fake, phone))

        val token = CancelToken().also { it.cancel() }
        assertThrows<SyncException.Cancelled> { runBlocking { fake.sync(phone, null, null, token) } }
        val unknown = assertThrows<SyncException.Refused> { runBlocking { fake.revokeDevice(phone, "nobody", "t", null) } }
        assertEquals(ServerErrorCode.NOT_FOUND, unknown.code)
        fake.revokeDevice(phone, id, "fresh.id.token", null)
        assertFalse(fake.isRegistered(phone))
        fake.shutdown()
        assertThrows<SyncException.ShutDown> { runBlocking { fake.registrationNonce(null) } }
        assertEquals(listOf("sync", "register", "isRegistered", "devices", "sync"), fake.calls.take(5))
        phone.shutdown()
    }

    @Test
    fun `a pass bought from the fake shows a QR a validator trusting its issuer accepts`() = runBlocking<Unit> {
        val fake = FakeTransitClient(price = { product, _ -> if (product == TransitProduct.MONTHLY_ALL_ROUTES) 200_000L else 0L })
        val phoneVault = vault("rider")
        val phone = TransitPhone.open(phoneVault, null, 5)
        val order = fake.buyTransitProduct(phoneVault, phone, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0, "", null)
        assertEquals(TransitOrderStatus.PAID to 200_000L, order.status to order.priceVnd)
        assertEquals(fake.cardOf(phoneVault), order.credential!!.cardId)

        val validator = TransitValidator.open(vault("bus"), listOf(fake.issuer.trustedKey()), ValidatorConfig(route = 29))
        val verdict = validator.validateAt(phone.currentQr().text, System.currentTimeMillis() / 1000)
        assertTrue(verdict.accepted, verdict.toString())

        // Waiting for the payment, then paid; a failed one is refused when collected.
        fake.payInstantly = false
        val pending = fake.buyTransitProduct(phoneVault, phone, TransitProduct.DAY_PASS, PassengerCategory.STANDARD, 0, "", null)
        assertEquals(TransitOrderStatus.AWAITING_PAYMENT, pending.status)
        assertNull(pending.credential)
        val early = assertThrows<SyncException.Refused> { runBlocking { fake.collectTransitOrder(phoneVault, phone, pending.orderId, null) } }
        assertEquals(ServerErrorCode.PAYMENT_PENDING, early.code)
        fake.confirmPayment(pending.orderId)
        assertEquals(TransitProduct.DAY_PASS, fake.collectTransitOrder(phoneVault, phone, pending.orderId, null).product)
        val failed = fake.buyTransitProduct(phoneVault, phone, TransitProduct.DAY_PASS, PassengerCategory.STANDARD, 0, "", null)
        fake.failPayment(failed.orderId)
        assertEquals(ServerErrorCode.PAYMENT_FAILED,
            assertThrows<SyncException.Refused> { runBlocking { fake.collectTransitOrder(phoneVault, phone, failed.orderId, null) } }.code)
        // Money taken and held for review: "do not pay again", then the pass once confirmed.
        val held = fake.buyTransitProduct(phoneVault, phone, TransitProduct.DAY_PASS, PassengerCategory.STANDARD, 0, "", null)
        fake.holdPaymentForReview(held.orderId)
        assertEquals(TransitOrderStatus.UNDER_REVIEW, fake.transitOrder(phoneVault, held.orderId, null).status)
        assertEquals(ServerErrorCode.PAYMENT_UNDER_REVIEW,
            assertThrows<SyncException.Refused> { runBlocking { fake.collectTransitOrder(phoneVault, phone, held.orderId, null) } }.code)
        fake.confirmPayment(held.orderId)
        assertEquals(TransitProduct.DAY_PASS, fake.collectTransitOrder(phoneVault, phone, held.orderId, null).product)

        // An order unpaid past its 15 minutes, and the backend's 15 minutes for a late notice,
        // is gone when collected, as the backend says it.
        var clock = 1_796_000_000L
        val timed = FakeTransitClient(now = { clock })
        timed.payInstantly = false
        val unpaid = timed.buyTransitProduct(phoneVault, phone, TransitProduct.DAY_PASS, PassengerCategory.STANDARD, 0, "", null)
        clock += 29 * 60
        assertEquals(ServerErrorCode.PAYMENT_PENDING,
            assertThrows<SyncException.Refused> { runBlocking { timed.collectTransitOrder(phoneVault, phone, unpaid.orderId, null) } }.code)
        clock += 2 * 60
        val gone = assertThrows<SyncException.Refused> { runBlocking { timed.collectTransitOrder(phoneVault, phone, unpaid.orderId, null) } }
        assertEquals(ServerErrorCode.ORDER_EXPIRED to 410, gone.code to gone.status)

        // A month names its window; a stranger's dependant is refused; the balance adds up.
        val december = fake.buyTransitProduct(phoneVault, TransitPhone.open(vault("other"), null, 5), TransitProduct.MONTHLY_ALL_ROUTES,
            PassengerCategory.STANDARD, 0, "2026-12", null)
        assertEquals(1_796_058_000L to 1_798_736_399L, december.passValidFrom to december.passValidUntil)
        assertEquals(ServerErrorCode.NOT_GUARDIAN, assertThrows<SyncException.Refused> {
            runBlocking { fake.buyTransitProduct(phoneVault, phone, TransitProduct.FREE_PASS, PassengerCategory.ELDERLY, 0, "", "001045000001") }
        }.code)
        fake.payInstantly = true
        fake.topUp(phoneVault, 50_000, null, null)
        assertEquals(50_000L, fake.transitBalance(phoneVault, null, null).balanceVnd)

        // A dependant's pass rides with its holder, as the backend issues it.
        val childCard = fake.addDependant("001022000001")
        // A guardian pays a dependant's fares; nobody pays on a card not theirs.
        assertEquals(childCard, fake.topUp(phoneVault, 20_000, childCard, null).cardId)
        assertEquals(20_000L to 50_000L,
            fake.transitBalance(phoneVault, childCard, null).balanceVnd to fake.transitBalance(phoneVault, null, null).balanceVnd)
        assertEquals(ServerErrorCode.NOT_GUARDIAN,
            assertThrows<SyncException.Refused> { runBlocking { fake.topUp(phoneVault, 20_000, childCard + 1, null) } }.code)
        val child = fake.buyTransitProduct(phoneVault, phone, TransitProduct.FREE_PASS, PassengerCategory.CHILD, 0, "", "001022000001")
        assertEquals(childCard, child.cardId)
        assertTrue(child.credential!!.withHolder)

        // Renewal re-issues what ends within the window, a dependant's as one.
        val renewed = fake.renewCredentials(phoneVault, phone, 365 * 86_400L, null)
        assertTrue(renewed.isNotEmpty() && renewed.all { it.refused == null && it.notAfter != null }, renewed.toString())
        assertTrue(renewed.any { it.cardId == childCard })
        assertTrue(phone.credentials().single { it.cardId == childCard }.withHolder)
        assertThrows<SyncException.InvalidArgument> { runBlocking { fake.validatorFeed(phoneVault, null) } }
        assertNotNull(fake.calls.firstOrNull { it == "renewCredentials" })
        phoneVault.shutdown()
    }

    @Test
    fun `a background worker's sync runs on the fakes`() = runBlocking<Unit> {
        val fake = FakeSyncClient()
        val phoneVault = vault("worker")
        assertTrue(backgroundSync(fake, phoneVault) is BackgroundSyncResult.Failure, "not registered: give up")
        fake.register(phoneVault, "any.id.token", "phone", null)
        fake.offline = true
        assertTrue(backgroundSync(fake, phoneVault) is BackgroundSyncResult.Retry, "offline: retry")
        fake.offline = false
        val phone = TransitPhone.open(phoneVault, null, 5)
        // A phone with a fake sync client alone: no transit client to renew with, found before
        // anything is synced.
        val syncs = fake.calls.count { it == "sync" }
        assertTrue(backgroundSync(fake, phoneVault, transitPhone = phone) is BackgroundSyncResult.Failure)
        assertEquals(syncs, fake.calls.count { it == "sync" })
        val transit = FakeTransitClient(price = { _, _ -> 0L })
        transit.buyTransitProduct(phoneVault, phone, TransitProduct.DAY_PASS, PassengerCategory.STANDARD, 0, "", null)
        fake.enqueueSync(FakeSyncClient.report(pulled = 4))
        val done = backgroundSync(fake, phoneVault, transitPhone = phone, renewWithinSecs = 365 * 86_400L, transit = transit)
        done as BackgroundSyncResult.Success
        assertEquals(4L, done.report.pulled)
        assertEquals(1, done.renewals.size, done.renewals.toString())
        phoneVault.shutdown()
    }
}
