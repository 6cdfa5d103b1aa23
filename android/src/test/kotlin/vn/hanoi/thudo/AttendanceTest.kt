package vn.hanoi.thudo

import java.nio.file.Path
import java.time.LocalDate
import java.time.ZoneOffset
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** Signed attendance: the secretary's phone shows the meeting QR, a member's phone checks in. */
class AttendanceTest {
    @TempDir
    lateinit var dir: Path

    private val opens = 1_796_403_600L // 2026-12-05 00:00 in Hanoi
    private val now = opens + 9 * 3600

    private suspend fun vault(name: String) = Vault.openWithPassphrase(dir.resolve(name).toString(), "p", testOptions)

    @Test
    fun `two phones check in offline, and every bad QR is refused by name`() = runBlocking<Unit> {
        val issuer = MeetingIssuer.generate(1)
        val meeting = Meeting("m-12", "2026-12-05", "Sinh hoạt chi bộ tháng 12", listOf(), "hn.chi-bo-1", issuer.attendanceKey())
        val secretary = MemberHandbook(vault("secretary"))
        val member = MemberHandbook(vault("member"))
        secretary.upsertMeetings(listOf(meeting))
        member.upsertMeetings(listOf(meeting))
        val credential = issuer.issue("m-12", "hn.chi-bo-1", opens, opens + 86_399, secretary.handbookPublicKey())
        secretary.installMeetingCredential("m-12", credential)

        val qr = secretary.meetingQr("m-12", now)
        assertTrue(qr.startsWith("HNM1:"), qr)
        val checkIn = member.checkIn(qr, now + 10)
        assertEquals(CheckInStatus.Pending, checkIn.status)
        assertEquals(now, checkIn.shownAtSecs)
        assertEquals(listOf("m-12"), member.checkIns().map { it.meetingId })

        fun refusal(block: suspend () -> Unit) =
            assertThrows<HandbookException.CheckInRefused> { runBlocking { block() } }.refusal
        assertEquals(CheckInRefusal.ALREADY_CHECKED_IN, refusal { member.checkIn(qr, now + 11) })
        val other = MemberHandbook(vault("other"))
        other.upsertMeetings(listOf(meeting))
        assertEquals(CheckInRefusal.STALE, refusal { other.checkIn(qr, now + 1_200) })
        assertEquals(CheckInRefusal.BAD_QR, refusal { other.checkIn(qr.dropLast(4), now + 10) })
        assertEquals(CheckInRefusal.NOT_OPEN, refusal { secretary.meetingQr("m-12", opens + 90_000) })
        assertEquals(CheckInRefusal.INVALID_CREDENTIAL, refusal { other.installMeetingCredential("m-12", credential) })
        val stranger = MemberHandbook(vault("stranger"))
        assertEquals(CheckInRefusal.UNKNOWN_MEETING, refusal { stranger.checkIn(qr, now + 10) })
        val e = assertThrows<HandbookException.CheckInRefused> { runBlocking { stranger.checkIn(qr, now + 10) } }
        assertEquals("handbook.check_in_refused", e.code())
    }

    @Test
    fun `the secretary fetches the credential and the check-in is counted`() = runBlocking<Unit> {
        val client = SyncClient(SyncSettings(System.getenv("THUDO_SERVER_URL")!!, 5_000L, 4, 20L, emptyList()))
        val today = LocalDate.now(ZoneOffset.ofHours(7)).toString()
        val cell = "hn.kotlin.chi-bo-1"
        val secretaryVault = vault("s")
        val memberVault = vault("m")
        registerForTest(client, secretaryVault, "001090080001", "secretary")
        registerForTest(client, memberVault, "001090080002", "member")
        for (citizen in listOf("001090080001", "001090080002")) {
            partyPost("/v1/admin/citizens/$citizen/cell", """{"cell":"$cell"}""")
        }
        partyPost("/v1/admin/cells/$cell/handbook.meeting",
            """{"items":[{"id":"m-k","date":"$today","topic":"Sinh hoạt chi bộ","document_ids":[]}]}""")
        val handbookClient = HandbookClient(client)
        client.sync(secretaryVault)
        val notYet = assertThrows<SyncException.Refused> { runBlocking { handbookClient.fetchMeetingCredential(secretaryVault, "m-k") } }
        assertEquals(ServerErrorCode.NOT_SECRETARY, notYet.code)
        assertEquals("not_secretary", notYet.wireCode)
        partyPost("/v1/admin/cells/$cell/secretary", """{"citizen_id":"001090080001"}""")
        val window = handbookClient.fetchMeetingCredential(secretaryVault, "m-k")
        assertEquals(86_399L, window.closesSecs - window.opensSecs)

        client.sync(memberVault)
        val member = MemberHandbook(memberVault)
        val nowSecs = System.currentTimeMillis() / 1000
        member.checkIn(MemberHandbook(secretaryVault).meetingQr("m-k", nowSecs), nowSecs)
        val report = handbookClient.uploadCheckIns(memberVault)
        assertEquals(1L, report.accepted)
        assertTrue(report.refused.isEmpty())
        assertEquals(CheckInStatus.Accepted, member.checkIns().single().status)
        client.shutdown()
    }
}
