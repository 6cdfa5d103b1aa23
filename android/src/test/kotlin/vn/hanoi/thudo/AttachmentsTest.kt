package vn.hanoi.thudo

import java.nio.file.Path
import java.security.MessageDigest
import java.util.Base64
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** Files attached to records: kept encrypted in the vault, published ones fetched when opened. */
class AttachmentsTest {
    @TempDir
    lateinit var dir: Path

    private fun sha256Hex(bytes: ByteArray) = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }

    @Test
    fun `a scan attached offline, read back, removed`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(dir.resolve("v").toString(), "p", testOptions)
        val files = AttachmentStore(vault)
        val scan = ByteArray(600_000) { (it * 31 % 251).toByte() }
        val ref = files.add("handbook.procedure/t1", "giay-xac-nhan.jpg", "image/jpeg", scan)
        assertEquals(sha256Hex(scan), ref.id)
        assertEquals(600_000L, ref.size)
        assertArrayEquals(scan, files.read(ref.id))
        val listed = files.list("handbook.procedure/t1").single()
        assertTrue(listed.complete)
        assertEquals(600_000L, files.usedBytes())
        val tooBig = assertThrows<AttachmentException.TooLarge> {
            runBlocking { files.add("handbook.procedure/t1", "big.bin", "application/octet-stream", ByteArray(10 * 1024 * 1024 + 1)) }
        }
        assertEquals("attachment.too_large", tooBig.code())
        assertThrows<AttachmentException.Invalid> { runBlocking { files.add("no-owner", "a.pdf", "application/pdf", scan) } }
        assertTrue(files.remove("handbook.procedure/t1", ref.id))
        assertThrows<AttachmentException.NotFound> { runBlocking { files.read(ref.id) } }
        vault.shutdown()
    }

    @Test
    fun `a published file is fetched when opened and checked`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(System.getenv("THUDO_SERVER_URL")!!, 5_000L, 4, 20L, emptyList()))
        val vault = Vault.openWithPassphrase(dir.resolve("m").toString(), "p", testOptions)
        registerForTest(client, vault, "001090080011", "member")
        val cell = "hn.kotlin.files"
        partyPost("/v1/admin/citizens/001090080011/cell", """{"cell":"$cell"}""")
        val papers = ByteArray(300_000) { (it * 7 % 253).toByte() }
        val answer = partyPost("/v1/admin/cells/$cell/files",
            """{"name":"bien-ban.jpg","media_type":"image/jpeg","data":"${Base64.getEncoder().encodeToString(papers)}"}""")
        assertTrue(answer.contains(sha256Hex(papers)), answer)
        val ref = AttachmentRef(sha256Hex(papers), "bien-ban.jpg", "image/jpeg", papers.size.toLong())
        val files = AttachmentStore(vault)
        assertThrows<AttachmentException.NotFound> { runBlocking { files.read(ref.id) } }
        val fetched = files.fetch(client, "handbook.meeting/m-1", ref)
        assertTrue(fetched.complete)
        assertArrayEquals(papers, files.read(ref.id))
        // A file the cell was never given: the server answers as for none.
        val other = ref.copy(id = sha256Hex(byteArrayOf(1, 2, 3)), size = 3)
        val refused = assertThrows<SyncException.Refused> { runBlocking { files.fetch(client, "handbook.meeting/m-1", other) } }
        assertEquals(404, refused.status)
        client.shutdown()
        vault.shutdown()
    }
}
