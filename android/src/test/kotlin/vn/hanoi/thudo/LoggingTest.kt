package vn.hanoi.thudo

import java.nio.file.Path
import java.util.Collections
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

class LoggingTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `the library's records reach the app's sink at the level it sets`() = kotlinx.coroutines.runBlocking<Unit> {
        val lines = Collections.synchronizedList(mutableListOf<Triple<Int, String, String>>())
        setLogSink(LogcatSink { p, t, m -> lines.add(Triple(p, t, m)); 0 }, LogLevel.INFO)
        try {
            Vault.openWithPassphrase(dir.resolve("v").toString(), "bí mật", testOptions).use { }
            val opened = lines.first { it.third.startsWith("vault opened") }
            assertEquals(4, opened.first, "INFO")
            assertEquals("thudo.vault", opened.second)
            assertTrue(opened.third.contains("new=true") && opened.third.contains("schema=1"), opened.third)
            assertTrue(lines.none { it.third.contains("bí mật") })

            // Off at run time: nothing more arrives.
            setLogLevel(LogLevel.OFF)
            val before = lines.size
            Vault.openWithPassphrase(dir.resolve("v").toString(), "bí mật", testOptions).use { }
            assertEquals(before, lines.size)
        } finally {
            setLogSink(null, LogLevel.OFF)
        }
        assertEquals("thudo.health_book_with_", LogcatSink.tag("thudo_core::health_book_with_a_long_name"))
        assertEquals(2, LogcatSink.priority(LogLevel.TRACE))
    }
}
