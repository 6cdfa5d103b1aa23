package vn.hanoi.thudo

import java.nio.file.Path
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import okhttp3.OkHttpClient
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * The code samples of docs/android.md, run. A test (tests/tests/doc_samples.rs) checks that
 * every line of every Kotlin sample in the doc is in this file or in compiled sources.
 */
class DocSamplesTest {
    /** Stands for the app's OpenID Connect sign-in (the test server's local provider here). */
    private fun signInWithIdentityProvider(nonce: String) = testIdToken("001088012345", nonce)

    @TempDir
    lateinit var dir: Path

    @Test
    fun `lifecycle, threading and errors`() = runBlocking<Unit> {
        val path = dir.resolve("vault").toString()
        val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh")

        // Open once per process and share; every call is a suspend function run off the main thread.
        val vault = Vault.openWithPassphrase(path, "correct horse battery staple", testOptions)
        val http = OkHttpSyncTransport(OkHttpClient())   // the app's client: its trust store, proxy and pins
        val sync = SyncClient.withHttpClient(SyncSettings(baseUrl = url), http)
        val idToken = signInWithIdentityProvider(sync.registrationNonce())   // the app's VNeID sign-in
        sync.register(vault, idToken, "Lan's phone")
        val report = sync.sync(vault, null, null)

        // Errors are typed exceptions, one class per case.
        try {
            vault.get("notes", "")
            fail<Unit>("an empty id was accepted")
        } catch (e: VaultException.InvalidArgument) {
            println("refused: ${e.message}")
        }

        // Stop one call without touching the client: by hand, or with a time budget.
        val token = CancelToken.withTimeoutMs(25_000L)
        val quick = sync.sync(vault, null, null, token)
        assertEquals(0L, quick.pulled)
        assertTrue(!token.isCancelled())

        // Teardown: stop work in flight, then free the handles (or use `use {}`).
        sync.shutdown()
        vault.shutdown()
        assertThrows<VaultException.Closed> { runBlocking { vault.get("notes", "n1") } }
        vault.close()
        sync.close()

        assertTrue(report.applied > 0L)
    }

    @Test
    fun `the QR on screen`() = runBlocking<Unit> {
        val issuer = TransitIssuer.generate(9, 1_000_000_000, 4_000_000_000)
        Vault.openWithPassphrase(dir.resolve("qr").toString(), "p", testOptions).use { vault ->
            val phone = TransitPhone.open(vault, null, 5)
            phone.installCredential(issuer.issue(CredentialRequest(7L, TransitProduct.PAY_AS_YOU_GO, PassengerCategory.STANDARD, 0,
                1_000_000_000, 4_000_000_000, phone.devicePublicKey().toBytes(), 3600), (System.currentTimeMillis() / 1000)))

            val qr = phone.qrFlow(refreshSecs = 5).first()

            assertEquals((qr.size * qr.size).toInt(), qr.modules.size)
            vault.shutdown()
        }
    }
}
