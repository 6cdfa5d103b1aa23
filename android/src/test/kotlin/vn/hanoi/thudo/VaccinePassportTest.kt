package vn.hanoi.thudo

import java.io.File
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** Vaccine passports (EU DCC) from the official test data in core/tests/data/dcc. */
class VaccinePassportTest {
    @TempDir
    lateinit var dir: Path

    private val data = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc", "../dcc")

    /** A case's QR text and signer certificate (the files list cases sorted by name). */
    private fun case(folder: String, file: String): Pair<String, String> {
        val text = File(data, "$folder.json").readText()
        val at = text.indexOf("\"FILE\": \"$file\"")
        val start = text.lastIndexOf("\"CBOR\"", at).coerceAtLeast(text.lastIndexOf("{", at))
        val body = text.substring(start, text.indexOf("\"VALIDATIONCLOCK\"", at))
        fun field(name: String) = Regex("\"$name\": \"([^\"]+)\"").find(body)!!.groupValues[1]
        return field("PREFIX") to field("CERTIFICATE")
    }

    private val german = case("DE", "DE/2DCode/raw/1.json")
    private val clock = 1_622_570_400L // 2021-06-01T18:00:00Z, the case's validation clock

    @Test
    fun `verify a passport, refuse a forged or unknown one, keep an expired one as history`() {
        val (qr, certificate) = german
        val v = HealthCardVerifier()
        assertEquals(12, v.addDccSigner(certificate).length) // 8 bytes, base64
        val passport = v.verifyVaccinePassport(qr, clock)
        assertEquals(CertificateKind.VACCINATION, passport.kind)
        assertEquals("DE", passport.country)
        assertEquals("URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W", passport.certificateId)
        assertFalse(passport.expired)
        assertTrue(passport.fhirBundleJson.contains("\"Immunization\""))

        assertThrows<HealthCardException.UnknownKey> { HealthCardVerifier().verifyVaccinePassport(qr, clock) }
        val (forged, forgedSigner) = case("common", "common/2DCode/raw/CO5.json")
        val other = HealthCardVerifier().apply { addDccSigner(forgedSigner) }
        assertThrows<HealthCardException.BadSignature> { other.verifyVaccinePassport(forged, clock) }
        assertThrows<HealthCardException.BadQr> { v.verifyVaccinePassport("HC2:" + qr.drop(4), clock) }
        assertThrows<HealthCardException.Malformed> { v.verifyVaccinePassport(qr.dropLast(20), clock) }
        assertThrows<HealthCardException.BadTrustData> { v.addDccSigner("not a certificate") }

        val years = clock + 5L * 365 * 86_400
        val refused = runCatching { v.verifyVaccinePassport(qr, years) }.exceptionOrNull()
        assertTrue(refused is HealthCardException.Expired || refused is HealthCardException.SignerNotAllowed, "$refused")
        assertTrue(v.authenticateVaccinePassport(qr, years).expired)
    }

    @Test
    fun `import a passport into the book once, with its provenance`() = runBlocking<Unit> {
        val (qr, certificate) = german
        Vault.openWithPassphrase(dir.resolve("health").toString(), "p", testOptions).use { vault ->
            val book = HealthBook(vault)
            val v = HealthCardVerifier().apply { addDccSigner(certificate, "DE") }
            val now = clock + 5L * 365 * 86_400 // long expired: the vaccination stays true
            val imported = book.importVaccinePassport(v, qr, null, now)
            assertEquals(1L, imported.byType["Immunization"])
            val person = imported.people.single()
            val shot = book.records(person, HealthKind.IMMUNIZATION, null, null).single()
            assertEquals(RecordSource.HEALTH_CARD, shot.provenance.source)
            assertEquals("DE", shot.provenance.country)
            assertEquals("URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W", shot.provenance.certificateId)
            assertEquals("2021-05-29", shot.date)
            // Scanned twice: the same records.
            book.importVaccinePassport(v, qr, null, now)
            assertEquals(1, book.records(person, HealthKind.IMMUNIZATION, null, null).size)
            // A forged passport adds nothing.
            val (forged, forgedSigner) = case("common", "common/2DCode/raw/CO5.json")
            v.addDccSigner(forgedSigner)
            val refused = assertThrows<HealthBookException.CardRefused> {
                runBlocking { book.importVaccinePassport(v, forged, person, now) }
            }
            assertEquals("bad_signature", refused.reason)
            assertEquals(1, book.people().size)
        }
    }

    private val who = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc", "../ddcc")

    @Test
    fun `the WHO DDCC core data set reads from the WHO's bundles and writes back`() = runBlocking<Unit> {
        val read = ddccFromFhir(File(who, "WHOQR1FHIRBundle.json").readText())
        val v = read.single()
        assertEquals("Eddie Murphy", v.name)
        assertEquals("PT123F", v.lot)
        assertEquals("USA", v.country!!.code)
        assertEquals("2021-07-22", v.validFrom)
        assertThrows<HealthBookException.InvalidFhir> { ddccFromFhir("{") }
        // Written out and read back, the same record.
        val mine = v.copy(name = "Nguyễn Thị Lan", certificateId = "VN-HCID-0001")
        assertEquals(listOf(mine), ddccFromFhir(ddccToFhir(listOf(mine))))

        // The WHO's health-card example (ids like resource:0) imports whole, liberties said.
        Vault.openWithPassphrase(dir.resolve("ddcc").toString(), "p", testOptions).use { vault ->
            val book = HealthBook(vault)
            val imported = book.importBundle(File(who, "SHCQR1FHIRBundle.json").readText())
            assertEquals(0L, imported.refused)
            assertEquals(2L, imported.byType["Immunization"])
            assertTrue(imported.liberties.any { it.contains("resource:0") }, "${imported.liberties}")
        }
    }

    @Test
    fun `trust bundles arrive by sync, never roll back, and a removed issuer shows`() = runBlocking<Unit> {
        val url = System.getenv("THUDO_SERVER_URL") ?: error("run through scripts/test-kotlin.sh")
        val shc = File(System.getProperty("thudo.fixtures") ?: "../core/tests/data/shc")
        // Its key announces revocation list version 1: the backend publishes it only with that list.
        val crl = File(shc, "issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json").readText()
        val issuer = """{"iss":"https://spec.smarthealth.cards/examples/issuer","jwks":${File(shc, "issuer/jwks.json").readText()},"crls":[$crl]}"""
        val (key, first) = publishTestTrustBundle("""{"card_issuers":[$issuer],"valid_days":7}""")
        Vault.openWithPassphrase(dir.resolve("trust").toString(), "p", testOptions).use { vault ->
            val book = HealthBook(vault)
            assertEquals(null, book.trustStatus())
            val client = SyncClient(SyncSettings(url, 5_000L, 4, 20L, emptyList(), healthTrustKey = key))
            registerForTest(client, vault, "001088077001", "phone")
            client.sync(vault)
            val status = book.trustStatus()!!
            assertTrue(status.version >= first)
            assertFalse(status.stale)
            assertTrue(book.trustStatus(status.expiresAt + 1)!!.stale)
            // The verifier holds the bundle's issuers: the example card verifies with no app code.
            val verifier = book.trustedVerifier()
            val card = File(shc, "example-00-d-jws.txt").readText().trim()
            verifier.verifyJws(card, 1_790_000_000L)
            val imported = book.importCardJws(verifier, card, null, 1_790_000_000L)
            val person = imported.people.single()
            // Every dose of the card says so (a listing checks each card once for all its entries).
            val shots = book.records(person, HealthKind.IMMUNIZATION, null, null)
            assertTrue(shots.size >= 2, "$shots")
            assertEquals(List(shots.size) { true }, shots.map { it.provenance.signerTrusted })
            // A book opened with the app's key trusts the bundle; with another key (the app
            // moved to a new trust-list key) nothing it signed vouches for anything.
            assertEquals(status.version, HealthBook.withTrustKey(vault, key).trustStatus()!!.version)
            val moved = HealthBook.withTrustKey(vault, GENERATOR_KEY)
            assertEquals(null, moved.trustStatus())
            assertThrows<HealthCardException.UnknownKey> { moved.trustedVerifier().verifyJws(card, 1_790_000_000L) }
            assertEquals(List(shots.size) { null }, moved.records(person, HealthKind.IMMUNIZATION, null, null).map { it.provenance.signerTrusted })
            assertThrows<HealthBookException.Invalid> { HealthBook.withTrustKey(vault, "not a key") }

            // The issuer leaves the list: the record says so, the verifier no longer trusts it.
            val (_, second) = publishTestTrustBundle("""{"card_issuers":[]}""")
            assertEquals(second, client.refreshHealthTrust(vault)!!.version)
            assertEquals(List(shots.size) { false }, book.records(person, HealthKind.IMMUNIZATION, null, null).map { it.provenance.signerTrusted })
            assertThrows<HealthCardException.UnknownKey> { book.trustedVerifier().verifyJws(card, 1_790_000_000L) }
            assertThrows<HealthBookException.Invalid> { runBlocking { book.installTrustBundle("x.y.z", "not a key") } }
            val refused = assertThrows<HealthBookException.TrustBundleRefused> { runBlocking { book.installTrustBundle("a.b.c", key) } }
            assertEquals("malformed", refused.reason)
            assertThrows<SyncException.InvalidArgument> {
                runBlocking { SyncClient(SyncSettings(url, null, null, null, emptyList())).refreshHealthTrust(vault) }
            }
        }
    }
}

/** A valid P-256 public key no bundle is signed with (the curve's generator, compressed). */
private const val GENERATOR_KEY = "A2sX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKW"
