package vn.hanoi.thudo

import java.math.BigInteger
import java.nio.file.Path
import java.security.KeyPairGenerator
import java.security.Signature
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** A device signer in Kotlin with a JCA EC key, signing DER as Android Keystore does. */
class JcaSigner : TransitSigner {
    private val pair = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }.generateKeyPair()

    override fun publicKey(): ByteArray {
        val w = (pair.public as ECPublicKey).w
        fun fixed(n: BigInteger) = n.toByteArray().let { b -> ByteArray(32 - minOf(32, b.size)) + b.takeLast(32).toByteArray() }
        return byteArrayOf(4) + fixed(w.affineX) + fixed(w.affineY)
    }

    override fun sign(message: ByteArray): ByteArray =
        Signature.getInstance("SHA256withECDSA").run { initSign(pair.private); update(message); sign() }
}

class TransitTest {
    @TempDir
    lateinit var dir: Path

    private val now = 1_790_000_000L
    private val day = 86_400L

    private fun request(phone: TransitPhone, product: TransitProduct = TransitProduct.MONTHLY_ALL_ROUTES) = CredentialRequest(
        cardId = 9_704_000_000_123L,
        product = product,
        category = PassengerCategory.STANDARD,
        route = 0,
        passValidFrom = now - 10 * day,
        passValidUntil = now + 20 * day,
        devicePublicKey = phone.devicePublicKey().toBytes(),
        lifetimeSecs = 72 * 3600,
    )

    @Test
    fun `next month's pass bought ahead waits beside this month's`() = runBlocking<Unit> {
        val real = System.currentTimeMillis() / 1000
        val issuer = TransitIssuer.generate(7, real - day, real + 365 * day)
        val vault = Vault.openWithKeyProvider(dir.resolve("ahead").toString(), AesKeyProvider("a"), testOptions)
        val phone = TransitPhone.open(vault, null, 5)
        val thisMonth = request(phone).copy(passValidFrom = real - 10 * day, passValidUntil = real + 20 * day)
        val nextMonth = thisMonth.copy(passValidFrom = real + 20 * day + 1, passValidUntil = real + 50 * day)
        val current = phone.installCredential(issuer.issue(thisMonth, real))
        assertEquals(emptyList<CredentialInfo>(), phone.upcomingCredentials())
        val bought = phone.installCredential(issuer.issue(nextMonth, real))
        assertEquals(real + 20 * day + 1, bought.passValidFrom)
        assertEquals(current, phone.credential(), "this month's still rides")
        assertEquals(listOf(bought), phone.upcomingCredentials())
    }

    @Test
    fun `phone makes a QR, validator in Kotlin accepts it and rejects its replay`() = runBlocking<Unit> {
        val issuer = TransitIssuer.generate(7, now - day, now + 365 * day)
        val phoneVault = Vault.openWithKeyProvider(dir.resolve("phone").toString(), AesKeyProvider("p"), testOptions)
        val phone = TransitPhone.open(phoneVault, null, 5)
        assertEquals(33, phone.devicePublicKey().size)
        val info = phone.installCredential(issuer.issue(request(phone), now))
        assertEquals(TransitProduct.MONTHLY_ALL_ROUTES, info.product)
        assertEquals(info.cardId, phone.credential()?.cardId)
        // A dependant's pass on another card sits beside the owner's, never in its place.
        val childs = phone.installDependantCredential(issuer.issue(request(phone, TransitProduct.FREE_PASS).copy(cardId = 42L, category = PassengerCategory.CHILD), now))
        assertEquals(listOf(info.cardId, 42L), phone.credentials().map { it.cardId })
        assertEquals(info.cardId, phone.credential()?.cardId)
        assertEquals(PassengerCategory.CHILD, childs.category)
        assertTrue(phone.removeCredential(42L))
        // An offset learned at sync moves the QR's time; the device's clock set drops it.
        phone.setClockOffsetMs(3_600_000L)
        val ahead = phone.currentQrAt(now)
        phone.deviceClockChanged()

        val qr = phone.currentQrAt(now)
        assertEquals(now, qr.generatedAt)
        assertTrue(qr.text.startsWith("HNT1:"))
        assertTrue(qr.version <= 10, "QR version ${qr.version}")
        assertEquals((qr.size * qr.size).toInt(), qr.modules.size)
        assertTrue(qr.svg.contains("<svg"))
        assertEquals(qr.text, phone.currentQrAt(now + 2L).text, "same QR within the refresh period")

        val validatorVault = Vault.openWithKeyProvider(dir.resolve("bus").toString(), AesKeyProvider("b"), testOptions)
        val validator = TransitValidator.open(validatorVault, listOf(issuer.trustedKey()), ValidatorConfig(route = 32))
        val verdict = validator.validateAt(qr.text, now + 1L)
        assertTrue(verdict.accepted, verdict.toString())
        assertEquals(VerdictReason.OK, verdict.reason)
        assertEquals(9_704_000_000_123L, verdict.cardId)
        assertTrue(verdict.display.contains("liên tuyến"))
        // Every validator app shows and plays the same: green, one short high beep, two languages.
        assertEquals(VerdictSignal.GO, verdict.presentation.signal)
        assertEquals("#2E7D32", verdict.presentation.colour)
        assertEquals(listOf(VerdictBeep(2000, 120, 0)), verdict.presentation.beeps)
        assertEquals("Mời lên xe" to "Welcome aboard", verdict.presentation.lineVi to verdict.presentation.lineEn)
        val replayed = validator.validateAt(qr.text, now + 3L)
        assertEquals(VerdictReason.REPLAYED, replayed.reason)
        assertEquals(VerdictSignal.STOP, replayed.presentation.signal)
        assertEquals("#C62828", replayed.presentation.colour)
        assertEquals("Code already used", replayed.presentation.lineEn)
        assertEquals("transit.code_used" to emptyMap<String, String>(), replayed.presentation.messageKey to replayed.presentation.messageArgs)
        assertEquals(VerdictReason.BAD_FORMAT, validator.validateAt("not a ticket", now).reason)
        assertEquals(VerdictReason.EXPIRED, validator.validateAt(phone.currentQrAt(now - 600L).text, now).reason)
        // The QR made under the offset of a clock since set carries a time an hour ahead.
        assertEquals(VerdictReason.CLOCK_SKEW, validator.validateAt(ahead.text, now + 1L).reason)

        // An inspector checks the QR without using it; paired with the bus's taps it sees
        // whether this card tapped there.
        val inspectorVault = Vault.openWithKeyProvider(dir.resolve("inspector").toString(), AesKeyProvider("i"), testOptions)
        val inspector = TransitValidator.open(inspectorVault, listOf(issuer.trustedKey()), ValidatorConfig(route = 32))
        val fresh = phone.currentQrAt(now + 200L).text
        val busTaps = validator.recentTaps(now - 3600L)
        val seen = inspector.inspectAt(fresh, now + 200L, busTaps)
        assertEquals(InspectionOutcome.VALID, seen.outcome)
        assertEquals(now + 1L, seen.tappedAt)
        assertEquals(VerdictSignal.GO, seen.presentation.signal)
        assertEquals(InspectionOutcome.NOT_TAPPED, inspector.inspectAt(fresh, now + 200L, emptyList()).outcome)
        val unpaired = inspector.inspectAt(fresh, now + 200L, null)
        assertEquals(InspectionOutcome.VALID to false, unpaired.outcome to unpaired.paired)
        val junk = inspector.inspectAt("not a ticket", now, null)
        assertEquals(InspectionOutcome.INVALID to 0L, junk.outcome to junk.seq, "shown, not recorded")
        assertEquals(32, seen.route)
        assertEquals(listOf(1L, 2L, 3L), inspector.exportInspections().map { it.seq })
        assertTrue(validator.validateAt(fresh, now + 201L).accepted, "the inspections used nothing")
        inspectorVault.shutdown()
        inspectorVault.close()
        // Deny list from the issuer: the card is refused afterwards.
        assertEquals(1L, validator.updateDenyList(issuer.signDenyList(1, now, listOf(9_704_000_000_123L))))
        assertThrows<TransitException.InvalidSignedData> { runBlocking { validator.updateDenyList(byteArrayOf(1, 2, 3)) } }
        assertEquals(VerdictReason.REVOKED, validator.validateAt(phone.currentQrAt(now + 300L).text, now + 300L).reason)

        assertEquals(1L, validator.denyListVersion())
        validator.flush()
        // Every verdict returned is a tap on disk; the unreadable scan is counted, not logged.
        val taps = validator.exportTaps()
        assertEquals(6, taps.size)
        assertTrue(taps.first().accepted)
        assertEquals(1L, validator.tapLogStatus().unreadableScans)
        assertEquals(taps.count { !it.accepted }.toLong(), validator.tapLogStatus().loggedRejected)
        assertEquals(6L, validator.acknowledgeTaps(taps.last().seq))
        val status = validator.tapLogStatus()
        assertEquals(taps.last().seq, status.ackedSeq)
        assertEquals(taps.last().seq + 1L, status.nextSeq)
        phoneVault.shutdown()
        validatorVault.shutdown()
    }

    @Test
    fun `a Kotlin signer with DER signatures, and typed errors`() = runBlocking<Unit> {
        val issuer = TransitIssuer.generate(1, now - day, now + day)
        val vault = Vault.openWithPassphrase(dir.resolve("v").toString(), "p", testOptions)
        val phone = TransitPhone.open(vault, JcaSigner(), 10)
        assertThrows<TransitException.NoCredential> { runBlocking { phone.currentQrAt(now) } }
        assertThrows<TransitException.InvalidCredential> { runBlocking { phone.installCredential(byteArrayOf(1, 2)) } }
        assertThrows<TransitException.InvalidRequest> {
            issuer.issue(request(phone).copy(product = TransitProduct.FREE_PASS), now)
        }
        phone.installCredential(issuer.issue(request(phone, TransitProduct.PAY_AS_YOU_GO), now))
        val validator = TransitValidator.open(
            Vault.openWithPassphrase(dir.resolve("b").toString(), "p", testOptions),
            listOf(issuer.trustedKey()),
            ValidatorConfig(route = 1),
        )
        val verdict = validator.validateAt(phone.currentQrAt(now).text, now)
        assertTrue(verdict.accepted, verdict.toString())
        assertEquals(TransitProduct.PAY_AS_YOU_GO, verdict.product)
        assertFalse(validator.validateAt(phone.currentQrAt(now + 10L).text, now + 10L).accepted, "passback")
        // The feed says the card reached today's cap: its next ride is let through in amber.
        validator.setCappedCards(listOf(verdict.cardId!!), now + 3_600L)
        val capped = validator.validateAt(phone.currentQrAt(now + 300L).text, now + 300L)
        assertEquals(VerdictSignal.WARN to "Cap reached today: this ride is free", capped.presentation.signal to capped.presentation.lineEn)
        // Numbers that do not fit the formats' widths are refused, never wrapped.
        assertThrows<TransitException.InvalidRequest> { TransitIssuer.generate(70_000, now, now + day) }
        assertThrows<TransitException.InvalidRequest> { issuer.issue(request(phone).copy(route = -1), now) }
        assertThrows<TransitException.InvalidRequest> { issuer.issue(request(phone), 1L shl 40) }
        assertThrows<TransitException.InvalidRequest> { validator.validateAt(phone.currentQrAt(now).text, -1) }
        assertThrows<TransitException.InvalidRequest> { runBlocking { validator.setTrustedKeys(listOf(issuer.trustedKey().copy(validUntil = -5))) } }
        vault.shutdown()
    }

    @Test
    fun `a keystore reset is KeyLost with the cards, never a silent new key`() = runBlocking<Unit> {
        val issuer = TransitIssuer.generate(1, now - day, now + day)
        val vault = Vault.openWithPassphrase(dir.resolve("keylost").toString(), "p", testOptions)
        val phone = TransitPhone.open(vault, JcaSigner(), 10)
        val card = phone.installCredential(issuer.issue(request(phone), now)).cardId
        // The platform key is gone; the app makes a new one.
        val fresh = JcaSigner()
        val lost = assertThrows<TransitException.SignerKeyLost> { runBlocking { TransitPhone.open(vault, fresh, 10) } }
        assertEquals(listOf(card), lost.cards)
        assertEquals("transit.signer_key_lost", lost.code())
        assertEquals(listOf(card), discardLostTransitCredentials(vault, fresh))
        val reopened = TransitPhone.open(vault, fresh, 10)
        assertThrows<TransitException.NoCredential> { runBlocking { reopened.currentQrAt(now) } }
        vault.shutdown()
    }

    @Test
    fun `a pass ending in two days is let in with an amber warning`() = runBlocking<Unit> {
        val issuer = TransitIssuer.generate(7, now - day, now + 365 * day)
        val phoneVault = Vault.openWithKeyProvider(dir.resolve("phone-w").toString(), AesKeyProvider("p"), testOptions)
        val phone = TransitPhone.open(phoneVault, null, 5)
        phone.installCredential(issuer.issue(request(phone).copy(passValidUntil = now + 2 * day + 3600L), now))
        val validatorVault = Vault.openWithKeyProvider(dir.resolve("bus-w").toString(), AesKeyProvider("b"), testOptions)
        val validator = TransitValidator.open(validatorVault, listOf(issuer.trustedKey()), ValidatorConfig(route = 32))
        val verdict = validator.validateAt(phone.currentQrAt(now).text, now + 1L)
        assertTrue(verdict.accepted)
        assertEquals(VerdictSignal.WARN, verdict.presentation.signal)
        assertEquals("#F9A825", verdict.presentation.colour)
        assertEquals(2, verdict.presentation.beeps.size)
        assertEquals("Mời lên xe. Vé còn 2 ngày", verdict.presentation.lineVi)
        assertEquals("Welcome. Your pass ends in 2 days", verdict.presentation.lineEn)
        // The same as a key with its arguments, for the app's own language or voice.
        assertEquals("transit.welcome.pass_days_left" to mapOf("days" to "2"),
            verdict.presentation.messageKey to verdict.presentation.messageArgs)
        // A day pass ends the day it is used: let in without a warning.
        phone.installCredential(issuer.issue(request(phone, TransitProduct.DAY_PASS).copy(passValidUntil = now + 3600L), now))
        val day = validator.validateAt(phone.currentQrAt(now + 200L).text, now + 200L)
        assertEquals(TransitProduct.DAY_PASS to VerdictSignal.GO, day.product to day.presentation.signal)
        phoneVault.shutdown()
        validatorVault.shutdown()
        phoneVault.close()
        validatorVault.close()
    }

    @Test
    fun `a dependant's ticket rides only after its holder's own, in amber`() = runBlocking<Unit> {
        val issuer = TransitIssuer.generate(7, now - day, now + 365 * day)
        val phoneVault = Vault.openWithKeyProvider(dir.resolve("phone-d").toString(), AesKeyProvider("p"), testOptions)
        val phone = TransitPhone.open(phoneVault, null, 5)
        phone.installCredential(issuer.issue(request(phone), now))
        val child = phone.installDependantCredential(
            issuer.issue(request(phone, TransitProduct.FREE_PASS).copy(cardId = 42L, category = PassengerCategory.CHILD, withHolder = true), now))
        assertTrue(child.withHolder)
        val validatorVault = Vault.openWithKeyProvider(dir.resolve("bus-d").toString(), AesKeyProvider("b"), testOptions)
        val validator = TransitValidator.open(validatorVault, listOf(issuer.trustedKey()), ValidatorConfig(route = 32))
        val childQr = phone.currentQrForAt(42L, now).text
        val alone = validator.validateAt(childQr, now)
        assertEquals(VerdictReason.HOLDER_NOT_TAPPED to "transit.holder_first", alone.reason to alone.presentation.messageKey)
        assertTrue(validator.validateAt(phone.currentQrAt(now + 2L).text, now + 2L).accepted)
        val together = validator.validateAt(childQr, now + 4L)
        assertTrue(together.accepted, together.toString())
        assertEquals(PassengerCategory.CHILD, together.category)
        assertEquals(VerdictSignal.WARN to "transit.with_holder", together.presentation.signal to together.presentation.messageKey)
        phoneVault.shutdown()
        validatorVault.shutdown()
        phoneVault.close()
        validatorVault.close()
    }
}
