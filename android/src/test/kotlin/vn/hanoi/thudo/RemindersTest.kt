package vn.hanoi.thudo

import java.nio.file.Path
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

class RemindersTest {
    @TempDir
    lateinit var dir: Path

    private val now = 1_790_000_000L // 2026-09-21, 20:33 in Hanoi
    private val day = 86_400L

    @Test
    fun `one list across the domains, and a change is heard`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(dir.resolve("home").toString(), "p", testOptions)
        val handbook = MemberHandbook(vault)
        handbook.setProfile(MemberProfile("Nguyễn Văn An", "1985-04-30", "nam", "2010-05-19", "2011-05-19", "01.123456",
            "Chi bộ Tổ dân phố 5", listOf(), "001085012345", "0912345678"))
        handbook.upsertMeetings(listOf(Meeting("m-oct", "2026-10-05", "Học tập Nghị quyết 57", listOf())))
        handbook.recordFeeAssessment(computePartyFee(FeeSituation(FeeBasis.PENSION, incomeVnd = 5_000_000L), "2026-08"))
        HealthBook(vault).savePerson(HealthPerson(null, "Bé Lan", "2026-06-01", Gender.FEMALE, null, null))
        val issuer = TransitIssuer.generate(7, now - 30 * day, now + 300 * day)
        val phone = TransitPhone.open(vault, null, 5)
        phone.installCredential(issuer.issue(CredentialRequest(42L, TransitProduct.MONTHLY_ALL_ROUTES, PassengerCategory.STANDARD, 0,
            now - 20 * day, now + 10 * day, phone.devicePublicKey().toBytes(), 72 * 3600), now))

        val list = upcomingReminders(vault, phone, now, now + 30 * day, now)
        val byId = list.associateBy { it.id }
        assertEquals(1_791_162_000L, byId.getValue("meeting:m-oct").atSecs) // 08:00 in Hanoi on the day
        val unpaid = byId.getValue("fee_unpaid:2026-08")
        assertEquals(ReminderKind.FEE_UNPAID, unpaid.kind)
        assertTrue(unpaid.text.contains("25.000 đ"), unpaid.text)
        val pass = list.first { it.kind == ReminderKind.PASS_ENDING }
        assertEquals(now + 7 * day, pass.atSecs)
        assertEquals("42", pass.subject)
        assertTrue(list.any { it.kind == ReminderKind.CREDENTIAL_RENEWAL })
        assertTrue(list.any { it.kind == ReminderKind.VACCINE_OVERDUE && it.text.startsWith("Bé Lan") })
        assertEquals(list.sortedBy { it.atSecs }.map { it.atSecs }, list.map { it.atSecs })
        // The same call gives the same ids: an app replaces its notifications by id.
        assertEquals(list.map { it.id }, upcomingReminders(vault, phone, now, now + 30 * day, now).map { it.id })
        // Without the phone: no transit reminders.
        assertTrue(upcomingReminders(vault, null, now, now + 30 * day, now).none { it.kind == ReminderKind.PASS_ENDING })

        // Paying the month is heard as a change of the reminders, and the month leaves the list.
        val received = Channel<List<String>>(Channel.UNLIMITED)
        val watching = launch(start = CoroutineStart.UNDISPATCHED) { vault.reminderChanges().collect { received.send(it) } }
        handbook.recordFeePayment("2026-08", 25_000L)
        assertEquals(listOf("reminders"), withTimeout(10_000) { received.receive() })
        watching.cancel()
        assertTrue(upcomingReminders(vault, phone, now, now + 30 * day, now).none { it.id == "fee_unpaid:2026-08" })

        assertThrows<VaultException.InvalidArgument> { runBlocking { upcomingReminders(vault, null, now, now - 1, now) } }
        vault.shutdown()
        assertThrows<VaultException.Closed> { runBlocking { upcomingReminders(vault, null, now, now + day, now) } }
    }
}
