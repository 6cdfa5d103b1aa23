package vn.hanoi.thudo

import java.io.File
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

class HealthCardTest {
    /** The public SMART Health Card examples in core/tests/data/shc (path set by the Maven build). */
    private val fixtures = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc")

    private fun read(name: String) = File(fixtures, name).readText().trim()

    private fun verifier() = HealthCardVerifier().apply {
        assertEquals(2L, addJwks("https://spec.smarthealth.cards/examples/issuer", read("issuer/jwks.json")))
    }

    @Test
    fun `verify the example cards from QR and chunks`() {
        val v = verifier()
        val card = v.verifyQr(listOf(read("example-00-f-qr-code-numeric-value-0.txt")), 1_790_000_000L)
        assertEquals(listOf("Patient", "Immunization", "Immunization", "Immunization"), card.resourceTypes)
        val chunks = (0..2).map { read("example-02-f-qr-code-numeric-value-$it.txt") }.reversed()
        assertEquals("DiagnosticReport", v.verifyQr(chunks, 1_790_000_000L).resourceTypes.first())
        assertThrows<HealthCardException.BadChunks> { v.verifyQr(chunks.take(2), 1_790_000_000L) }
        assertThrows<HealthCardException.NotYetValid> { v.verifyQr(listOf(read("example-00-f-qr-code-numeric-value-0.txt")), 1_600_000_000L) }
        val jws = read("example-00-d-jws.txt")
        val tampered = jws.substring(0, jws.length - 10) + (if (jws[jws.length - 10] == 'A') 'B' else 'A') + jws.substring(jws.length - 9)
        assertThrows<HealthCardException.BadSignature> { v.verifyJws(tampered, 1_790_000_000L) }
        assertThrows<HealthCardException.UnknownKey> { HealthCardVerifier().verifyJws(jws, 1_790_000_000L) }
    }

    @Test
    fun `cards come out of a health-card file and a revocation list revokes them`() {
        val v = verifier()
        val cards = v.cardsInFile(read("example-00-e-file.smart-health-card"))
        assertEquals(listOf(read("example-00-d-jws.txt")), cards)
        val rid = v.verifyJws(cards[0], 1_790_000_000L).rid!!
        // The issuer's published list does not name this card; one that does revokes it.
        assertEquals(4L, v.addCrl(read("issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json")))
        v.verifyJws(cards[0], 1_790_000_000L)
        assertEquals(1L, v.addCrl("""{"kid":"3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s","method":"rid","ctr":2,"rids":["$rid"]}"""))
        val revoked = assertThrows<HealthCardException.Revoked> { v.verifyJws(cards[0], 1_790_000_000L) }
        assertEquals(rid, revoked.rid)
        assertThrows<HealthCardException.BadTrustData> { v.addCrl("""{"kid":"k","method":"other","rids":[]}""") }
        assertThrows<HealthCardException.Malformed> { v.cardsInFile("not a file") }
    }
}

class ScheduleTest {
    @Test
    fun `a three-month-old on track has the second doses due`() {
        val given = listOf(GivenDose("HepB", "2026-01-15"), GivenDose("BCG", "2026-01-20"),
            GivenDose("DPT-HepB-Hib", "2026-03-16"), GivenDose("OPV", "2026-03-16"))
        val schedule = vaccinationSchedule("2026-01-15", given, "2026-04-16")
        fun state(v: String, d: Int) = schedule.first { it.vaccine == v && it.dose == d }.state
        assertEquals(DoseState.DONE, state("BCG", 1))
        assertEquals(DoseState.DUE, state("DPT-HepB-Hib", 2))
        assertEquals(DoseState.UPCOMING, state("Measles", 1))
        assertEquals("2026-04-15", schedule.first { it.vaccine == "OPV" && it.dose == 2 }.dueOn)
        assertThrows<ScheduleException.InvalidDate> { vaccinationSchedule("15/01/2026", emptyList(), "2026-04-16") }
    }

    @Test
    fun `the current schedule has the second IPV dose, Td at seven, and rotavirus where given`() {
        val at9Months = vaccinationSchedule("2026-01-15", emptyList(), "2026-10-20")
        assertEquals(DoseState.DUE, at9Months.first { it.vaccine == "IPV" && it.dose == 2 }.state)
        assertEquals(null, at9Months.firstOrNull { it.vaccine == "Rota" })
        val withRota = vaccinationSchedule("2026-01-15", emptyList(), "2026-03-20", rotavirus = true)
        assertEquals(DoseState.DUE, withRota.first { it.vaccine == "Rota" && it.dose == 1 }.state)
        val at7 = vaccinationSchedule("2018-01-15", listOf(GivenDose("DT", "2025-01-20")), "2025-02-01")
        assertEquals(DoseState.DONE, at7.first { it.vaccine == "Td" }.state)
    }
}
