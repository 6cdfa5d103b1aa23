package vn.hanoi.thudo

import java.nio.file.Path
import java.security.KeyPairGenerator
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import javax.crypto.KeyGenerator
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.test.runTest
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** The Kotlin helpers that do not need Android: key wrapping, the signer, the QR flow, background sync. */
class HelpersTest {
    @TempDir
    lateinit var dir: Path

    private val now = 1_790_000_000L
    private val day = 86_400L

    private fun aesKey() = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()

    @Test
    fun `AES-GCM key provider opens the vault, and a wrong key is a typed error`() = runBlocking<Unit> {
        val key = aesKey()
        val path = dir.resolve("v").toString()
        Vault.openWithKeyProvider(path, AesGcmKeyProvider("k1", { key }, null), testOptions).use { v ->
            v.put("notes", "n1", "xin chào".toByteArray(), emptyMap())
            v.shutdown()
        }
        Vault.openWithKeyProvider(path, AesGcmKeyProvider("k1", { key }, null), testOptions).use { v ->
            assertEquals("xin chào", String(v.get("notes", "n1")!!.body.toByteArray()))
            v.shutdown()
        }
        val other = aesKey()
        assertThrows<VaultException> { runBlocking { Vault.openWithKeyProvider(path, AesGcmKeyProvider("k1", { other }, null), testOptions) } }
        val gone = AesGcmKeyProvider("k1", { throw java.security.KeyStoreException("key permanently invalidated") }, null)
        assertThrows<KeyProviderException.Unavailable> { gone.wrapKey(ByteArray(32)) }
        assertThrows<KeyProviderException.WrongKey> { AesGcmKeyProvider("k1", { key }, null).unwrapKey(ByteArray(5)) }
    }

    @Test
    fun `a vault restored without its key says so, and no key is made in its place`() = runBlocking<Unit> {
        val path = dir.resolve("restored").toString()
        var created = 0
        var stored: javax.crypto.SecretKey? = null
        val provider = AesGcmKeyProvider("k1", existingKey = { stored }, createKey = { created++; aesKey().also { stored = it } })
        Vault.openWithKeyProvider(path, provider, testOptions).use { v ->
            v.put("notes", "n1", "xin chào".toByteArray(), emptyMap())
            v.shutdown()
        }
        assertEquals(1, created)

        // Restored to a new phone: the file came back, the hardware key did not.
        stored = null
        val lost = assertThrows<VaultException.KeyLost> { runBlocking { Vault.openWithKeyProvider(path, provider, testOptions) } }
        assertEquals(1, created, "no key made in place of the missing one")
        assertEquals("vault.key_lost", lost.code())
        assertFalse(lost.isRetryable())
        assertTrue(lost.message.startsWith("the vault's key is gone"), lost.message)

        // Locked (user authentication needed) is apart from gone, and worth a retry.
        val locked = AesGcmKeyProvider("k1", { throw java.security.UnrecoverableKeyException("user not authenticated") }, null)
        val unavailable = assertThrows<VaultException.KeyUnavailable> { runBlocking { Vault.openWithKeyProvider(path, locked, testOptions) } }
        assertEquals("vault.key_unavailable", unavailable.code())
        assertTrue(unavailable.isRetryable())

        // Android 12+ reports an invalidated key wrapped in another exception: still gone for
        // good, not "retry later".
        val invalidated = android.security.keystore.KeyPermanentlyInvalidatedException("biometrics re-enrolled")
        val wrapped = AesGcmKeyProvider("k1", { throw java.security.UnrecoverableKeyException("key unusable").apply { initCause(invalidated) } }, null)
        assertThrows<VaultException.KeyLost> { runBlocking { Vault.openWithKeyProvider(path, wrapped, testOptions) } }

        // A wrong key is neither, and says so in words.
        val wrong = assertThrows<VaultException.WrongKey> { runBlocking { Vault.openWithKeyProvider(path, AesGcmKeyProvider("k1", { aesKey() }, null), testOptions) } }
        assertEquals("vault.wrong_key", wrong.code())
        assertTrue(wrong.message.startsWith("wrong key"), wrong.message)

        // The recovery path: destroy the unreadable vault and start again.
        destroyVault(path)
        Vault.openWithKeyProvider(path, provider, testOptions).use { v ->
            assertThrows<VaultException.NotFound> { runBlocking { v.get("notes", "n1") } }
            v.shutdown()
        }
        assertEquals(2, created)
    }

    @Test
    fun `JCA signer signs QRs a validator accepts`() = runBlocking<Unit> {
        val pair = KeyPairGenerator.getInstance("EC").apply { initialize(ECGenParameterSpec("secp256r1")) }.generateKeyPair()
        val signer = JcaTransitSigner(pair.private, pair.public as ECPublicKey)
        assertEquals(65, signer.publicKey().size)
        val issuer = TransitIssuer.generate(3, now - day, now + day)
        Vault.openWithPassphrase(dir.resolve("phone").toString(), "p", testOptions).use { vault ->
            val phone = TransitPhone.open(vault, signer, 5)
            phone.installCredential(issuer.issue(CredentialRequest(1L, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0,
                now - day, now + day, phone.devicePublicKey().toBytes(), 3600), now))
            val validator = TransitValidator.open(
                Vault.openWithPassphrase(dir.resolve("bus").toString(), "p", testOptions), listOf(issuer.trustedKey()), ValidatorConfig(route = 1))
            assertTrue(validator.validateAt(phone.currentQrAt(now).text, now).accepted)
            vault.shutdown()
        }
    }

    @Test
    fun `the QR flow emits at each refresh time and stops with its collector`() = runTest {
        val issuer = TransitIssuer.generate(4, now - day, now + day)
        val vault = Vault.openWithPassphrase(dir.resolve("flow").toString(), "p", testOptions)
        val phone = TransitPhone.open(vault, null, 5)
        phone.installCredential(issuer.issue(CredentialRequest(2L, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0,
            now - day, now + day, phone.devicePublicKey().toBytes(), 3600), now))
        // Virtual time: the clock starts 2 s into a 5 s period.
        val start = now + 2
        val clock = { start + testScheduler.currentTime / 1000 }
        val times = mutableListOf<Long>()
        val qrs = phone.qrFlow(refreshSecs = 5, clock = clock).onEach { times.add(clock()) }.take(3).toList()
        assertEquals(3, qrs.map { it.text }.distinct().size, "each emission is a fresh QR")
        assertEquals(listOf(start, start + 5, start + 10), times, "at once, then at each refresh time")
        // A collector that stops: no emission after cancellation. The QR is signed on a library
        // thread, so wait (in real time) for each emission before moving virtual time on.
        val emittedAt = mutableListOf<Long>()
        val job = launch { phone.qrFlow(5, clock).collect { emittedAt.add(clock()) } }
        fun awaitEmissions(n: Int) {
            val deadline = System.nanoTime() + 10_000_000_000
            while (emittedAt.size < n && System.nanoTime() < deadline) {
                Thread.sleep(2)
                testScheduler.runCurrent()
            }
        }
        for (n in 1..3) {
            awaitEmissions(n)
            testScheduler.advanceTimeBy(5_000)
        }
        awaitEmissions(4)
        job.cancel()
        val seen = emittedAt.size
        testScheduler.advanceTimeBy(60_000)
        Thread.sleep(50)
        testScheduler.runCurrent()
        assertEquals(4, seen)
        assertEquals(seen, emittedAt.size, "nothing after the collector stopped")
        assertEquals(setOf(5L), emittedAt.zipWithNext { a, b -> b - a }.toSet(), "every 5 s: $emittedAt")
        vault.shutdown()
    }

    @Test
    fun `background sync sorts outcomes for WorkManager`() = runBlocking<Unit> {
        val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh")
        val vault = Vault.openWithPassphrase(dir.resolve("bg").toString(), "p", testOptions)
        val client = SyncClient(SyncSettings(url, 5_000L, 2, 10L, emptyList()))
        val unregistered = backgroundSync(client, vault)
        assertEquals(BackgroundSyncResult.Failure("not registered"), unregistered)
        registerForTest(client, vault, System.getenv("THUDO_DEMO_CITIZEN") ?: "001088012345", "bg")
        val ok = backgroundSync(client, vault)
        assertTrue(ok is BackgroundSyncResult.Success && ok.report.applied > 0L, ok.toString())
        val offline = SyncClient(SyncSettings("http://127.0.0.1:9", 500L, 2, 10L, emptyList()))
        val unreachable = backgroundSync(offline, vault)
        assertTrue(unreachable is BackgroundSyncResult.Retry && unreachable.reason.startsWith("server unavailable after 2 attempts"), unreachable.toString())
        // Out of time: a retry, and the client goes on afterwards.
        assertEquals(BackgroundSyncResult.Retry("cancelled"), backgroundSync(client, vault, budgetMs = 0))
        val again = backgroundSync(client, vault)
        assertTrue(again is BackgroundSyncResult.Success && again.report.pushed == 0L && again.report.rejected == 0L, again.toString())
        // With the rider's phone: credentials due are renewed after the sync (none is due within
        // 48 h of a fresh purchase; within four days, the one held is).
        val phone = TransitPhone.open(vault, null, 5)
        TransitClient(client).buyTransitProduct(vault, phone, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0, "")
        val nothingDue = backgroundSync(client, vault, transitPhone = phone)
        assertEquals(emptyList<CredentialRenewal>(), (nothingDue as BackgroundSyncResult.Success).renewals)
        val renewed = backgroundSync(client, vault, transitPhone = phone, renewWithinSecs = 4 * 86_400L)
        val renewal = (renewed as BackgroundSyncResult.Success).renewals.single()
        assertEquals(null to phone.credentials().single().notAfter, renewal.refused to renewal.notAfter)
        vault.shutdown()
    }
}
