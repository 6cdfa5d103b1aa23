package vn.hanoi.thudo.sample

import java.nio.file.Files
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import vn.hanoi.thudo.MemberHandbook
import vn.hanoi.thudo.SyncClient
import vn.hanoi.thudo.SyncException
import vn.hanoi.thudo.SyncSettings
import vn.hanoi.thudo.Vault
import vn.hanoi.thudo.VaultException
import vn.hanoi.thudo.VaultOptions
import vn.hanoi.thudo.SyncClientInterface
import vn.hanoi.thudo.syncStatusChanges
import vn.hanoi.thudo.testing.FakeSyncClient

/** What an app's unit test does with the desktop artifact: the real library, no device. */
class AppViewModelTest {
    @Test
    fun `the library loads from the artifact and works offline`() = runBlocking<Unit> {
        assertNull(System.getProperty("jna.library.path"), "nothing points at a native library")
        val dir = Files.createTempDirectory("thudo-app-test")
        val vault = Vault.openWithPassphrase(dir.resolve("vault").toString(), "pass", VaultOptions(kdfIterations = 10_000, cipher = null))
        MemberHandbook(vault).saveNote("n1", "nq-57-2024", "ghi chú")
        assertEquals(1L, vault.syncStatusChanges().first().pendingUploads)
        assertThrows<VaultException.NotFound> { runBlocking { vault.get("notes", "missing") } }
        // Not registered yet: a typed error, before any network.
        val sync = SyncClient(SyncSettings(baseUrl = "http://127.0.0.1:9", maxAttempts = 1))
        val offline = assertThrows<SyncException.NotRegistered> { runBlocking { sync.sync(vault) } }
        assertEquals("sync.not_registered", offline.code())
        sync.close()
        // The artifact's fakes stand in for the backend behind the same interface.
        val fake: SyncClientInterface = FakeSyncClient()
        fake.register(vault, "id.token", "test", null)
        assertEquals(0L, fake.sync(vault, null, null, null).pulled)
        vault.shutdown()
        vault.close()
    }
}
