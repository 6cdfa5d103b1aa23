package vn.hanoi.thudo

import java.io.File
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

class HealthBookTest {
    @TempDir
    lateinit var dir: Path

    /** The public SMART Health Card examples in core/tests/data/shc (path set by the Maven build). */
    private val fixtures = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc")

    private fun read(name: String) = File(fixtures, name).readText().trim()

    @Test
    fun `import a card for a child, list immunizations, compute the schedule`() = runBlocking<Unit> {
        Vault.openWithPassphrase(dir.resolve("health").toString(), "p", testOptions).use { vault ->
            val book = HealthBook(vault)
            val child = book.savePerson(HealthPerson(null, "Trần Thu Hà", "2026-01-10", Gender.FEMALE, null,
                HealthInsurance("TE1010123456789", "2026-01-10", null, "Trạm y tế phường Láng")))
            val saved = book.person(child)!!
            assertEquals("TE1010123456789", saved.insurance!!.number)
            assertEquals(Triple(child, Gender.FEMALE, null), Triple(saved.id, saved.gender, saved.citizenId))
            assertNull(saved.insurance!!.validTo, "open-ended: no end date")

            val verifier = HealthCardVerifier()
            verifier.addJwks("https://spec.smarthealth.cards/examples/issuer", read("issuer/jwks.json"))
            val qr = read("example-00-f-qr-code-numeric-value-0.txt")
            val imported = book.importCardQr(verifier, listOf(qr), child, 1_790_000_000L)
            assertEquals(3L, imported.byType["Immunization"])
            assertEquals(listOf(child), imported.people)

            val shots = book.records(child, HealthKind.IMMUNIZATION, null, null)
            assertEquals(3, shots.size)
            assertTrue(shots.all { it.provenance.source == RecordSource.HEALTH_CARD })
            assertEquals("https://spec.smarthealth.cards/examples/issuer", shots[0].provenance.issuer)
            assertEquals("207", shots.last().code) // CVX, COVID-19: not on the childhood schedule

            // A dose entered by the parent counts for the schedule.
            book.putResource("""{"resourceType":"Immunization","status":"completed",
                "vaccineCode":{"coding":[{"system":"urn:thudo:vn-epi:vaccine","code":"HepB"}]},
                "patient":{"reference":"Patient/$child"},"occurrenceDateTime":"2026-01-10"}""")
            val schedule = book.vaccinationSchedule(child, "2026-03-20")
            fun state(v: String, d: Int) = schedule.first { it.vaccine == v && it.dose == d }.state
            assertEquals(DoseState.DONE, state("HepB", 1))
            assertEquals(DoseState.DUE, state("DPT-HepB-Hib", 1))
            assertEquals(DoseState.UPCOMING, state("Measles", 1))
            val withRota = book.vaccinationSchedule(child, "2026-03-20", rotavirus = true)
            assertEquals(DoseState.DUE, withRota.first { it.vaccine == "Rota" && it.dose == 1 }.state)

            assertEquals(listOf(child to "Trần Thu Hà"), book.people().map { it.id to it.fullName })
            val first = book.record(shots[0].key)!!
            assertEquals(shots[0].resourceJson, first.resourceJson)
            assertTrue(book.deleteRecord(first.key))
            assertEquals(false, book.deleteRecord(first.key))
            assertEquals(null, book.record(first.key))

            val ips = book.exportIps(child)
            assertTrue(ips.contains("\"60591-5\"") && ips.contains("\"11369-6\""))

            // A tampered card is refused with its reason and adds nothing.
            val jws = read("example-00-d-jws.txt")
            val tampered = jws.dropLast(3) + (if (jws[jws.length - 3] == 'A') 'B' else 'A') + jws.takeLast(2)
            val refused = assertThrows<HealthBookException.CardRefused> {
                runBlocking { book.importCardJws(verifier, tampered, child, 1_790_000_000L) }
            }
            assertEquals("bad_signature", refused.reason)
            assertEquals(3, book.records(child, HealthKind.IMMUNIZATION, null, null).size)
            assertThrows<HealthBookException.InvalidFhir> { runBlocking { book.importBundle("{}", null) } }
            assertThrows<HealthBookException.NotFound> { runBlocking { book.vaccinationSchedule("nobody", "2026-03-20") } }
        }
    }

    @Test
    fun `a real IPS document comes back with every entry accounted for`() = runBlocking<Unit> {
        Vault.openWithPassphrase(dir.resolve("ips").toString(), "p", testOptions).use { vault ->
            val book = HealthBook(vault)
            // The IPS guide's published example (core/tests/data/fhir, CC0).
            val text = File(fixtures, "../fhir/ips-2.0/Bundle-IPS-examples-Bundle-01.json").readText()
            val imported = book.importBundle(text)
            assertEquals(20, imported.entries.size)
            assertEquals(0L, imported.refused)
            assertTrue(imported.entries.all {
                it.status == HealthEntryStatus.STORED || it.status == HealthEntryStatus.SHARED
            })
            val ips = book.exportIps(imported.people.single())
            assertTrue(ips.contains("\"11348-0\""), "past problems keep their section")
            assertTrue(ips.contains("\"value\":7.5"))

            // A bad entry is refused alone, with its index; or the whole bundle when asked.
            val bundle = """{"resourceType":"Bundle","type":"collection","entry":[
                {"resource":{"resourceType":"Patient","id":"k1","name":[{"text":"Lê Hoa"}],"birthDate":"2001-02-03"}},
                {"resource":{"resourceType":"Observation","id":42,"status":"final","subject":{"reference":"Patient/k1"}}}]}"""
            val partial = book.importBundle(bundle)
            assertEquals(1L, partial.refused)
            assertEquals(HealthEntryStatus.REFUSED, partial.entries[1].status)
            assertEquals(1L, partial.entries[1].index)
            assertTrue(partial.entries[1].reason.contains("id"))
            assertThrows<HealthBookException.InvalidFhir> {
                runBlocking { book.importBundle(bundle, null, allOrNothing = true) }
            }
        }
    }

    @Test
    fun `a call on a shut vault says Closed, not a storage failure`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(dir.resolve("closed").toString(), "p", testOptions)
        val book = HealthBook(vault)
        val handbook = MemberHandbook(vault)
        // The cell's notices and meetings, as a sync stores them; a notice read on this phone.
        handbook.upsertNotices(listOf(Notice("n1", "Họp chi bộ tháng 12", "19h thứ Sáu", "2026-11-20", false)))
        handbook.upsertMeetings(listOf(Meeting("m1", "2026-12-05", "Học tập Nghị quyết 57", emptyList())))
        handbook.markNoticeRead("n1")
        assertEquals(listOf(true), handbook.notices().map { it.read })
        assertEquals(listOf("m1"), handbook.meetingsFrom("2026-12-01").map { it.id })
        assertEquals(emptyList<Meeting>(), handbook.meetingsFrom("2027-01-01"))
        vault.shutdown()
        // The same fault from either domain: one handler serves both.
        val closedBook = assertThrows<HealthBookException.Vault> { runBlocking { book.people() } }
        val closedHandbook = assertThrows<HandbookException.Vault> { runBlocking { handbook.notices() } }
        assertEquals(VaultFault.Closed, closedBook.fault)
        assertEquals(closedBook.fault, closedHandbook.fault)
        vault.close()
        // A forgotten passphrase: the files go, and a new vault starts empty in their place.
        destroyVault(dir.resolve("closed").toString())
        Vault.openWithPassphrase(dir.resolve("closed").toString(), "new", testOptions).use {
            assertEquals(0, HealthBook(it).people().size)
        }
    }
}
