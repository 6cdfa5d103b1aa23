package vn.hanoi.thudo

import java.nio.file.Files
import java.nio.file.Path
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.spec.GCMParameterSpec
import javax.crypto.spec.SecretKeySpec
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/**
 * A KeyProvider written in Kotlin: AES-GCM under a key held by the app, as an Android Keystore
 * key would be (the Keystore-backed one lives in the Android module).
 */
class AesKeyProvider(private val id: String, private val key: ByteArray = ByteArray(32).also { SecureRandom().nextBytes(it) }) : KeyProvider {
    var calls = 0
    var locked = false

    override fun keyId(): String = id

    override fun wrapKey(dataKey: ByteArray): ByteArray {
        calls++
        val iv = ByteArray(12).also { SecureRandom().nextBytes(it) }
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, SecretKeySpec(key, "AES"), GCMParameterSpec(128, iv))
        return iv + cipher.doFinal(dataKey)
    }

    override fun unwrapKey(wrapped: ByteArray): ByteArray {
        calls++
        if (locked) throw KeyProviderException.Unavailable("device is locked")
        if (wrapped.size < 12 + 16) throw KeyProviderException.WrongKey()
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, SecretKeySpec(key, "AES"), GCMParameterSpec(128, wrapped.copyOfRange(0, 12)))
        return try {
            cipher.doFinal(wrapped.copyOfRange(12, wrapped.size))
        } catch (e: javax.crypto.AEADBadTagException) {
            throw KeyProviderException.WrongKey()
        }
    }
}

/** Cheap PBKDF2 for tests only; apps keep the 600,000-iteration default. */
val testOptions = VaultOptions(kdfIterations = 10_000, cipher = null)

class VaultTest {
    @TempDir
    lateinit var dir: Path

    private fun vaultPath(name: String = "vault") = dir.resolve(name).toString()

    @Test
    fun `key provider in Kotlin - put, get, query, list, delete`() = runBlocking<Unit> {
        val provider = AesKeyProvider("test-key-1")
        val vault = Vault.openWithKeyProvider(vaultPath(), provider, testOptions)
        assertTrue(provider.calls >= 1, "the Kotlin provider wrapped the new data key")
        vault.put("health.visit", "v1", "Khám tổng quát".toByteArray(), mapOf("person" to "me"))
        vault.put("health.visit", "v2", "Tiêm phòng".toByteArray(), mapOf("person" to "child"))
        vault.put("health.visit", "v3", byteArrayOf(), mapOf("person" to "me"))

        val got = vault.get("health.visit", "v1")
        assertEquals("Khám tổng quát", got.body.toByteArray().decodeToString())
        assertEquals(mapOf("person" to "me"), got.index)
        assertEquals(listOf("v1", "v3"), vault.query("health.visit", "person", "me").map { it.id })
        assertEquals(listOf("v1", "v2", "v3"), vault.list("health.visit").map { it.id })
        assertEquals(3L, vault.count("health.visit"))
        assertTrue(vault.delete("health.visit", "v2"))
        assertFalse(vault.delete("health.visit", "v2"))
        assertNull(vault.find("health.visit", "v2"))
        assertThrows<VaultException.NotFound> { runBlocking { vault.get("health.visit", "v2") } }
        vault.shutdown()
        vault.close()

        // Reopen with the same Kotlin provider: the data is there.
        Vault.openWithKeyProvider(vaultPath(), provider, testOptions).use { again ->
            assertEquals(2L, again.count("health.visit"))
            again.shutdown()
        }
    }

    @Test
    fun `transactions are all or nothing`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(vaultPath(), "pass", testOptions)
        vault.writeBatch(listOf(
            WriteOp.Put("notes", "a", "A".toByteArray().toBytes(), emptyMap()),
            WriteOp.Put("notes", "b", "B".toByteArray().toBytes(), emptyMap()),
        ))
        assertEquals(2L, vault.count("notes"))
        val err = assertThrows<VaultException.InvalidArgument> {
            runBlocking {
                vault.writeBatch(listOf(
                    WriteOp.Delete("notes", "a"),
                    WriteOp.Put("notes", "c", "C".toByteArray().toBytes(), emptyMap()),
                    WriteOp.Put("Bad Collection", "d", byteArrayOf().toBytes(), emptyMap()),
                ))
            }
        }
        assertTrue(err.reason.contains("collection"), err.reason)
        assertEquals(listOf("a", "b"), vault.list("notes").map { it.id })
        vault.shutdown()
    }

    @Test
    fun `wrong passphrase and wrong key are typed exceptions and damage nothing`() = runBlocking<Unit> {
        val path = vaultPath()
        Vault.openWithPassphrase(path, "right", testOptions).use { v ->
            v.put("c", "id", "data".toByteArray(), emptyMap())
            v.shutdown()
        }
        val wrong = assertThrows<VaultException.WrongKey> {
            runBlocking { Vault.openWithPassphrase(path, "wrong", testOptions) }
        }
        assertFalse(wrong.reason.contains("right"), "no secret in the message")
        assertThrows<VaultException.WrongKey> {
            runBlocking { Vault.openWithKeyProvider(path, AesKeyProvider("k"), testOptions) }
        }
        Vault.openWithPassphrase(path, "right", testOptions).use { v ->
            assertEquals(Bytes("data".toByteArray()), v.get("c", "id").body)
            // Records holding bytes compare by content: two reads of one record are equal.
            assertEquals(v.get("c", "id"), v.get("c", "id"))
            assertEquals(v.get("c", "id").hashCode(), v.get("c", "id").hashCode())
            v.shutdown()
        }

        val providerPath = vaultPath("p")
        val provider = AesKeyProvider("k1")
        Vault.openWithKeyProvider(providerPath, provider, testOptions).use { it.shutdown() }
        assertThrows<VaultException.WrongKey> {
            runBlocking { Vault.openWithKeyProvider(providerPath, AesKeyProvider("k2"), testOptions) }
        }
        provider.locked = true
        assertThrows<VaultException.KeyUnavailable> {
            runBlocking { Vault.openWithKeyProvider(providerPath, provider, testOptions) }
        }
    }

    @Test
    fun `a provider that throws an unexpected exception is reported, not a crash`() = runBlocking<Unit> {
        val broken = object : KeyProvider {
            override fun keyId() = "broken"
            override fun wrapKey(dataKey: ByteArray): ByteArray = throw IllegalStateException("boom")
            override fun unwrapKey(wrapped: ByteArray): ByteArray = throw IllegalStateException("boom")
        }
        assertThrows<VaultException.KeyUnavailable> {
            runBlocking { Vault.openWithKeyProvider(vaultPath(), broken, testOptions) }
        }
        Unit
    }

    @Test
    fun `passphrase change, provider rotation, data key rotation, backup`() = runBlocking<Unit> {
        val path = vaultPath()
        val vault = Vault.openWithPassphrase(path, "old", testOptions)
        for (i in 0 until 20) vault.put("c", "r$i", "body $i".toByteArray(), mapOf("even" to (i % 2 == 0).toString()))
        assertThrows<VaultException.WrongKey> { runBlocking { vault.changePassphrase("nope", "new") } }
        vault.changePassphrase("old", "new")
        // A long operation stopped by its token keeps nothing of itself and may run again.
        val stopped = CancelToken().also { it.cancel() }
        val cancelled = assertThrows<VaultException.Cancelled> { runBlocking { vault.rotateDataKey(stopped) } }
        assertEquals("vault.cancelled" to true, cancelled.code() to cancelled.isRetryable())
        assertThrows<VaultException.Cancelled> { runBlocking { vault.exportBackup(dir.resolve("stopped.thudo").toString(), "x", stopped) } }
        assertFalse(Files.exists(dir.resolve("stopped.thudo")) || Files.exists(dir.resolve("stopped.thudo.partial")))
        assertEquals("body 3", vault.get("c", "r3").body.toByteArray().decodeToString())
        assertEquals(20L, vault.rotateDataKey())
        assertEquals(10, vault.query("c", "even", "true").size)

        val backup = dir.resolve("backup.thudo").toString()
        assertEquals(20L, vault.exportBackup(backup, "backup secret"))
        val provider = AesKeyProvider("k")
        vault.rotateKeyProvider(provider)
        vault.shutdown()

        assertThrows<VaultException.WrongKey> { runBlocking { Vault.openWithPassphrase(path, "new", testOptions) } }
        val restored = Vault.openWithPassphrase(vaultPath("restored"), "other", testOptions)
        assertThrows<VaultException.WrongKey> { runBlocking { restored.importBackup(backup, "bad") } }
        Files.write(Path.of("$backup.cut"), Files.readAllBytes(Path.of(backup)).copyOf(100))
        assertThrows<VaultException.InvalidBackup> { runBlocking { restored.importBackup("$backup.cut", "backup secret") } }
        assertEquals(0L, restored.count("c"))
        assertEquals(20L, restored.importBackup(backup, "backup secret"))
        assertEquals("body 7", restored.get("c", "r7").body.toByteArray().decodeToString())
        restored.shutdown()

        Vault.openWithKeyProvider(path, provider, testOptions).use { v ->
            assertEquals(20L, v.count("c"))
            v.wipe()
            assertTrue(v.isClosed())
        }
        assertFalse(Files.exists(Path.of(path, "vault.db")))
    }

    @Test
    fun `concurrent suspend calls and close`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(vaultPath(), "p", testOptions)
        val writes = (0 until 50).map { i -> async { vault.put("c", "id$i", ByteArray(100) { i.toByte() }, emptyMap()) } }
        writes.awaitAll()
        assertEquals(50L, vault.count("c"))
        vault.shutdown()
        assertTrue(vault.isClosed())
        assertThrows<VaultException.Closed> { runBlocking { vault.count("c") } }
        vault.shutdown() // idempotent
        vault.close()
    }

    @Test
    fun `bad input is rejected with InvalidArgument`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(vaultPath(), "p", testOptions)
        assertThrows<VaultException.InvalidArgument> { runBlocking { vault.put("", "id", byteArrayOf(), emptyMap()) } }
        assertThrows<VaultException.InvalidArgument> { runBlocking { vault.put("c", "", byteArrayOf(), emptyMap()) } }
        assertThrows<VaultException.InvalidArgument> { runBlocking { vault.put("c", "id", byteArrayOf(), mapOf("Bad Field" to "v")) } }
        assertThrows<VaultException.InvalidArgument> {
            runBlocking { Vault.openWithPassphrase(vaultPath("weak"), "p", VaultOptions(kdfIterations = 1000, cipher = null)) }
        }
        assertEquals(0L, vault.count("c"))
        vault.shutdown()
        assertEquals(1L, vaultSchemaVersion())
    }
}
