package vn.hanoi.thudo

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** Every error type gives a stable code, says whether a retry helps, and reads as a sentence. */
class ErrorsTest {
    @TempDir
    lateinit var dir: java.nio.file.Path

    /** docs/errors.md's samples, run: an unregistered client's sync and a closed vault's fault. */
    @Test
    fun `the samples of the errors doc`() = kotlinx.coroutines.runBlocking<Unit> {
        val shown = mutableListOf<String?>()
        var retries = 0
        fun scheduleRetry() { retries++ }
        fun showError(text: String?) { shown.add(text) }
        fun askToUnlock() { shown.add("unlock") }
        fun startRecovery() { shown.add("recover") }
        val strings = mapOf("sync.not_registered" to "Thiết bị chưa đăng ký")
        val vault = Vault.openWithPassphrase(dir.resolve("v").toString(), "p", testOptions)
        val client = SyncClient(SyncSettings(baseUrl = "https://api.example.vn"))
        try { client.sync(vault) } catch (e: SyncException) {
            if (e.isRetryable()) scheduleRetry() else showError(strings[e.code()] ?: e.message)
        }
        assertEquals(listOf<String?>("Thiết bị chưa đăng ký"), shown)

        fun onVaultFault(fault: VaultFault) = when (fault) {
            is VaultFault.Locked -> askToUnlock()
            is VaultFault.KeyLost -> startRecovery()
            else -> showError(fault.toString())
        }
        vault.shutdown()
        try { client.sync(vault) } catch (e: SyncException.Vault) { onVaultFault(e.fault) }
        onVaultFault(VaultFault.Locked("device locked"))
        assertEquals(3, shown.size)
        assertEquals("the vault is closed", shown[1])
        assertEquals("unlock", shown[2])
        assertEquals(0, retries)
        client.shutdown()
    }

    @Test
    fun `every error type has a code, a retry flag and a human message`() {
        val cases: List<Triple<Exception, String, Boolean>> = listOf(
            Triple(VaultException.KeyUnavailable("device locked"), "vault.key_unavailable", true),
            Triple(KeyProviderException.Gone("no such key"), "key_provider.gone", false),
            Triple(SyncException.NotRegistered(), "sync.not_registered", false),
            Triple(HandbookException.Vault(VaultFault.Locked("device locked")), "handbook.locked", true),
            Triple(HealthBookException.InvalidFhir("not a bundle"), "health_book.invalid_fhir", false),
            Triple(HealthCardException.BadSignature(), "health_card.bad_signature", false),
            Triple(ScheduleException.InvalidDate("2026-13-01"), "schedule.invalid_date", false),
            Triple(TransitException.NoCredential(), "transit.no_credential", false),
            Triple(SignerException.Failed("user cancelled"), "signer.failed", false),
            Triple(HttpException.Failed("connection refused"), "http.failed", true),
            // The vault's faults are one type in every domain, with the domain's code and one
            // retry rule each.
            Triple(HealthBookException.Vault(VaultFault.Io("disk full")), "health_book.io", true),
            Triple(SyncException.Vault(VaultFault.KeyLost("key deleted")), "sync.key_lost", false),
            Triple(TransitException.Vault(VaultFault.NewerSchema(9, 3)), "transit.newer_schema", false),
            Triple(HandbookException.Vault(VaultFault.CorruptStore("bad page")), "handbook.corrupt_store", false),
            Triple(SyncException.Vault(VaultFault.Storage("a record")), "sync.storage", false),
            Triple(AttachmentException.Vault(VaultFault.Closed), "attachment.closed", false),
        )
        for ((error, code, retryable) in cases) {
            val (actualCode, actualRetry) = when (error) {
                is VaultException -> error.code() to error.isRetryable()
                is KeyProviderException -> error.code() to error.isRetryable()
                is SyncException -> error.code() to error.isRetryable()
                is HandbookException -> error.code() to error.isRetryable()
                is HealthBookException -> error.code() to error.isRetryable()
                is HealthCardException -> error.code() to error.isRetryable()
                is ScheduleException -> error.code() to error.isRetryable()
                is TransitException -> error.code() to error.isRetryable()
                is SignerException -> error.code() to error.isRetryable()
                is HttpException -> error.code() to error.isRetryable()
                is AttachmentException -> error.code() to error.isRetryable()
                else -> error("unexpected $error")
            }
            assertEquals(code, actualCode)
            assertEquals(retryable, actualRetry, code)
            // A sentence, never empty, never a dump of the fields.
            val message = error.message ?: ""
            assert(message.isNotBlank() && !message.contains("reason=")) { "$code: '$message'" }
        }
        assertEquals("not registered", SyncException.NotRegistered().message)
        assertEquals("key provider unavailable: device locked", VaultException.KeyUnavailable("device locked").message)
    }

    @Test
    fun `a backend that serves no app this old says so, typed`() = kotlinx.coroutines.runBlocking<Unit> {
        val sent = java.util.Collections.synchronizedList(mutableListOf<Map<String, String>>())
        val oldBackend = object : HttpClient {
            override fun send(request: HttpRequest): HttpResponse {
                sent.add(request.headers)
                return HttpResponse(426, mapOf("x-thudo-min-client-version" to "99.0.0"),
                    Bytes("""{"error":"upgrade_required","message":"update the app"}""".toByteArray()))
            }
        }
        val client = SyncClient.withHttpClient(SyncSettings("https://api.example.vn", 1_000L, 3, 10L, emptyList()), oldBackend)
        val e = org.junit.jupiter.api.assertThrows<SyncException.UpgradeRequired> { kotlinx.coroutines.runBlocking { client.registrationNonce() } }
        assertEquals("99.0.0", e.minimum)
        assertEquals("sync.upgrade_required", e.code())
        assertEquals(false, e.isRetryable())
        assertEquals(1, sent.size, "not retried")
        org.junit.jupiter.api.Assertions.assertTrue(sent[0]["x-thudo-client-version"]!!.matches(Regex("""\d+\.\d+\.\d+""")))
        client.shutdown()
    }
}
