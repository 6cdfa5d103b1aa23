package vn.hanoi.thudo

import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

class HandbookTest {
    @TempDir
    lateinit var dir: Path

    @Test
    fun `search without accents finds Vietnamese documents`() = runBlocking<Unit> {
        val library = HandbookLibrary.open(dir.resolve("library.db").toString())
        library.upsert(listOf(
            PartyDocument("nq57", "57-NQ/TW", "Bộ Chính trị", "2024-12-22", "nghị quyết",
                "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ", "Khoa học, công nghệ là đột phá quan trọng hàng đầu."),
            PartyDocument("qd01", "01-QĐ/TW", "Ban Chấp hành Trung ương", "2026-02-03", "quy định",
                "Quy định số 01-QĐ/TW về chế độ đảng phí", "Đảng viên đóng đảng phí hằng tháng theo bảo hiểm xã hội."),
        ))
        assertEquals("nq57", library.search("nghi quyet 57", 10).first().id)
        assertEquals("qd01", library.search("dang phi", 10).first().id)
        // Typed in Telex or VNI with the marks left as keys.
        assertEquals("nq57", library.search("nghij quyeets 57", 10).first().id)
        assertEquals("qd01", library.search("ddangr phi1", 10).first().id)
        // A typo (swapped letters, a missing one): found, ranked below any exact match.
        val typo = library.search("nghi quyte 57", 10).first()
        assertEquals("nq57", typo.id)
        assertTrue(typo.score < 0.0)
        assertEquals("qd01", library.search("dnag phi", 10).first().id)
        assertEquals("qd01", library.search("01-QĐ/TW", 10).first().id)
        // A document the cell withdraws: gone from search.
        assertTrue(library.remove("nq57"))
        assertTrue(!library.remove("nq57"))
        assertTrue(library.search("nghi quyet 57", 10).none { it.id == "nq57" })
        val hit = library.search("bao hiem", 10).first()
        assertTrue(hit.snippet.contains("<mark>bảo</mark> <mark>hiểm</mark>"), hit.snippet)
        assertTrue(library.search("   ", 10).isEmpty())
        assertThrows<HandbookException.Invalid> { runBlocking { library.search("a".repeat(300), 10) } }
        assertEquals("Quy định số 01-QĐ/TW về chế độ đảng phí", library.get("qd01")?.title)
    }

    @Test
    fun `party fee for any month under the regulation in force`() {
        assertEquals(123_456L, computePartyFee(FeeSituation(FeeBasis.SOCIAL_INSURANCE_SALARY, incomeVnd = 12_345_678L), "2026-03").dueVnd)
        assertEquals(35_000L, computePartyFee(FeeSituation(FeeBasis.PENSION, incomeVnd = 7_000_000L), "2026-03").dueVnd)
        assertEquals(5_000L, computePartyFee(FeeSituation(FeeBasis.STUDENT), "2026-03").dueVnd)
        val reduced = computePartyFee(
            FeeSituation(FeeBasis.SOCIAL_INSURANCE_SALARY, incomeVnd = 10_000_000L, relief = FeeRelief.Reduction(50, "2026-05", 12)), "2026-06")
        assertEquals(50_000L, reduced.dueVnd)
        assertEquals(0L, computePartyFee(FeeSituation(FeeBasis.PENSION, incomeVnd = 9_000_000L, relief = FeeRelief.Exempt), "2026-06").dueVnd)
        // Before February 2026: Decision 342-QĐ/TW, salary plus allowances.
        val old = computePartyFee(FeeSituation(FeeBasis.SOCIAL_INSURANCE_SALARY, incomeVnd = 3_784_600L), "2019-08")
        assertEquals(37_846L, old.dueVnd)
        assertEquals("342-QĐ/TW", old.regulation)
        assertEquals(FeeBasis.SOCIAL_INSURANCE_SALARY, old.basis)
        assertTrue(old.ruleConfirmed && old.rule.contains("allowances"))
        // A farmer in region I: a share of the regional minimum wage, past working age less.
        val farmer = FeeSituation(FeeBasis.OTHER_INCOME, region = WageRegion.I, setAmountVnd = 10_000L)
        assertEquals(15_930L, computePartyFee(farmer, "2026-03").dueVnd)
        assertEquals(10_620L, computePartyFee(farmer.copy(pastWorkingAge = true), "2026-03").dueVnd)
        assertEquals(26_550L, computePartyFee(farmer, "2028-01").dueVnd)
        assertEquals(5_000L, computePartyFee(farmer.copy(pastWorkingAge = true), "2018-05").dueVnd)
        assertEquals(100_000L, computePartyFee(FeeSituation(FeeBasis.ABROAD, setAmountVnd = 100_000L), "2026-06").dueVnd)
        // Arrears across the change of regulation, month by month.
        val statement = computePartyFeeStatement(listOf(FeePeriod("2020-01", farmer)), "2025-12", "2026-02")
        assertEquals(listOf(10_000L, 10_000L, 15_930L), statement.months.map { it.dueVnd })
        assertEquals(listOf("342-QĐ/TW", "342-QĐ/TW", "01-QĐ/TW"), statement.months.map { it.regulation })
        assertEquals(35_930L, statement.totalDueVnd)
        assertTrue(statement.unpriced.isEmpty())
        // Maternity leave had no rule under 342-QĐ/TW: those months are named, the rest priced.
        val leave = FeeSituation(FeeBasis.SICK_OR_MATERNITY_BENEFIT, incomeVnd = 6_000_000L)
        val onLeave = computePartyFeeStatement(listOf(FeePeriod("2025-12", leave)), "2025-12", "2026-02")
        assertEquals(listOf("2025-12", "2026-01"), onLeave.unpriced.map { it.month })
        assertTrue(onLeave.unpriced.all { it.reason.contains("342-QĐ/TW") })
        assertEquals(listOf("2026-02"), onLeave.months.map { it.month })
        assertEquals(60_000L, onLeave.totalDueVnd)
        assertThrows<HandbookException.Invalid> { computePartyFee(FeeSituation(FeeBasis.STUDENT), "2026-13") }
        assertThrows<HandbookException.NoRule> { computePartyFee(FeeSituation(FeeBasis.STUDENT), "2011-03") }
        assertThrows<HandbookException.NoRule> { computePartyFee(FeeSituation(FeeBasis.SICK_OR_MATERNITY_BENEFIT, incomeVnd = 1L), "2025-12") }
        assertThrows<HandbookException.Invalid> { computePartyFee(FeeSituation(FeeBasis.OTHER_INCOME), "2026-03") }
        assertThrows<HandbookException.Invalid> { computePartyFee(FeeSituation(FeeBasis.ABROAD, setAmountVnd = 500_000L), "2026-03") }
        assertThrows<HandbookException.Invalid> {
            computePartyFee(FeeSituation(FeeBasis.PENSION, incomeVnd = 1L, relief = FeeRelief.Reduction(40, "2026-05", 3)), "2026-06")
        }
        assertThrows<HandbookException.Invalid> { computePartyFeeStatement(listOf(FeePeriod("2026-01", farmer)), "2025-12", "2026-02") }
    }

    @Test
    fun `record attendance and queue a procedure offline`() = runBlocking<Unit> {
        val vault = Vault.openWithPassphrase(dir.resolve("member").toString(), "p", testOptions)
        val handbook = MemberHandbook(vault)
        handbook.upsertMeetings(listOf(Meeting("m12", "2026-12-05", "Học tập Nghị quyết 57", listOf("nq57"))))
        handbook.recordAttendance("m12", AttendanceStatus.Excused("Đi công tác"))
        assertThrows<HandbookException.Invalid> { runBlocking { handbook.recordAttendance("m12", AttendanceStatus.Excused(" ")) } }
        assertThrows<HandbookException.NotFound> { runBlocking { handbook.recordAttendance("nope", AttendanceStatus.Present) } }
        // A negative amount or a year that fits no calendar is refused, never wrapped.
        assertThrows<HandbookException.Invalid> { runBlocking { handbook.recordFeePayment("2026-03", -1) } }
        assertThrows<HandbookException.Invalid> { runBlocking { handbook.feeStanding(-2026) } }

        // A temporary transfer for work of a full year is refused and stays a draft.
        handbook.saveDraft("t1", ProcedureRequest.TemporaryTransfer("Đảng bộ Khu công nghệ cao", TransferPurpose.WORK, "2026-12-01", "2027-12-01"))
        val refused = assertThrows<HandbookException.Invalid> { runBlocking { handbook.queueProcedure("t1") } }
        assertTrue(refused.reason.startsWith("until"), refused.reason)
        assertEquals(ProcedureStatus.Draft, handbook.procedures().first { it.id == "t1" }.status)
        handbook.saveDraft("t1", ProcedureRequest.TemporaryTransfer("Đảng bộ Khu công nghệ cao", TransferPurpose.WORK, "2026-12-01", "2027-06-01"))
        assertEquals(ProcedureStatus.Queued, handbook.queueProcedure("t1").status)
        assertThrows<HandbookException.WrongState> { runBlocking { handbook.queueProcedure("t1") } }
        val returned = handbook.applyProcedureStatus("t1", ProcedureStatus.Returned("Thiếu quyết định"))
        assertEquals(ProcedureStatus.Returned("Thiếu quyết định"), returned.status)
        // The procedure carries what it asks, as saved.
        val asked = returned.request as ProcedureRequest.TemporaryTransfer
        assertEquals(TransferPurpose.WORK, asked.purpose)
        assertEquals("2027-06-01", asked.until)

        handbook.setProfile(MemberProfile("Nguyễn Văn An", "1985-04-30", "nam", "2010-05-19", "2011-05-19", "01.123456",
            "Chi bộ Tổ dân phố 5", listOf("Đảng bộ phường Dịch Vọng"), "001085012345", "0912345678"))
        assertEquals("Nguyễn Văn An", handbook.profile()?.fullName)

        for (m in listOf("2026-03", "2026-04", "2026-05")) {
            handbook.recordFeeAssessment(computePartyFee(FeeSituation(FeeBasis.PENSION, incomeVnd = 6_000_000L), m))
        }
        handbook.recordFeePayment("2026-03", 30_000L)
        assertEquals(listOf("2026-04", "2026-05"), handbook.feeStanding(2026).unpaid)
        assertTrue(!handbook.feeStanding(2026).serious)
        assertThrows<HandbookException.NotFound> { runBlocking { handbook.recordFeePayment("2026-09", 1L) } }
        vault.shutdown()
    }
}
