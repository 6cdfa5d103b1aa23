//! Handbook: Vietnamese document search and party fees.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use thudo_core::handbook::fees::{
    Assessment, FeeBasis, FeeError, FeeLedger, FeeRules, FeeSituation, Relief, YearMonth,
};
use thudo_core::handbook::library::{Library, LibraryDocument, LibraryError};
use thudo_core::vault::{Unlock, Vault};

fn doc(id: &str, number: &str, title: &str, body: &str) -> LibraryDocument {
    LibraryDocument {
        id: id.into(),
        number: number.into(),
        issuer: "Bộ Chính trị".into(),
        issued_on: "2024-12-22".into(),
        kind: "nghị quyết".into(),
        title: title.into(),
        body: body.into(),
        attachments: vec![],
    }
}

fn library() -> (tempfile::TempDir, Library) {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::open(&dir.path().join("library.db")).unwrap();
    lib.upsert(&[
        doc("nq57", "57-NQ/TW", "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số quốc gia",
            "Khoa học, công nghệ, đổi mới sáng tạo và chuyển đổi số là đột phá quan trọng hàng đầu. Toàn Đảng, toàn dân thực hiện nghị quyết."),
        doc("qd01", "01-QĐ/TW", "Quy định số 01-QĐ/TW về chế độ đảng phí",
            "Đảng viên đóng đảng phí hằng tháng. Đảng viên hưởng lương bảo hiểm xã hội đóng 1% tiền lương. Người nghỉ hưu đóng 0,5% lương hưu."),
        doc("ct35", "35-CT/TW", "Chỉ thị số 35-CT/TW về đại hội đảng bộ các cấp",
            "Chỉ thị về tổ chức đại hội. Ghi chú: sau giờ nghỉ, đại hội biểu quyết nhân sự."),
        doc("kl01", "01-KL/TW", "Kết luận về tiếp tục thực hiện Chỉ thị 05-CT/TW",
            "Học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh. Nghị quyết và chỉ thị cần được quán triệt. Những người nghĩ quyết liệt."),
        doc("tb", "TB-1", "Thông báo lịch sinh hoạt chi bộ tháng 12",
            "Chi bộ sinh hoạt ngày 5. Nội dung: học tập nghị quyết; thu đảng phí; bàn về kế hoạch năm mới. Ễnh ương, ộp ộp, lẫn lộn."),
    ])
    .unwrap();
    (dir, lib)
}

fn ids(hits: &[thudo_core::handbook::library::SearchHit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

#[test]
fn accent_and_case_insensitive() {
    let (_d, lib) = library();
    let hits = lib.search("nghi quyet 57", 10).unwrap();
    assert_eq!(ids(&hits)[0], "nq57");
    assert_eq!(ids(&lib.search("NGHI QUYET 57", 10).unwrap())[0], "nq57");
    assert_eq!(ids(&lib.search("Nghị Quyết 57", 10).unwrap())[0], "nq57");
    // đ and d alike, both ways.
    let dang_phi_hits = lib.search("dang phi", 10).unwrap();
    let dang_phi = ids(&dang_phi_hits);
    assert_eq!(dang_phi[0], "qd01", "title hit first");
    assert!(dang_phi.contains(&"tb"));
    assert_eq!(ids(&lib.search("ĐẢNG PHÍ", 10).unwrap())[0], "qd01");
    assert_eq!(ids(&lib.search("đang phi", 10).unwrap())[0], "qd01");
    // Stacked diacritics: ễ, ộ, ẫ.
    assert_eq!(ids(&lib.search("ễnh ương", 10).unwrap()), ["tb"]);
    assert_eq!(ids(&lib.search("enh uong", 10).unwrap()), ["tb"]);
    assert_eq!(ids(&lib.search("ộp", 10).unwrap()), ["tb"]);
    assert_eq!(ids(&lib.search("lan lon", 10).unwrap()), ["tb"]);
    assert_eq!(ids(&lib.search("lẫn lộn", 10).unwrap()), ["tb"]);
}

/// Accents typed or stored as separate marks (a "tổ hợp" keyboard, text pasted from a Mac or
/// extracted from a PDF) search exactly as composed ones, both in the query and in documents.
#[test]
fn accents_as_separate_marks_search_as_composed_ones() {
    use unicode_normalization::UnicodeNormalization;
    let nfd = |s: &str| s.nfd().collect::<String>();
    let (_d, lib) = library();
    // "nghĩ quyết" ranks kl01's exact accents above nghị: the ranking holds too.
    for query in [
        "Nghị quyết",
        "nghĩ quyết",
        "đảng phí",
        "lẫn lộn",
        "ễnh ương",
    ] {
        assert_ne!(nfd(query), query, "{query} decomposes");
        assert_eq!(
            ids(&lib.search(&nfd(query), 10).unwrap()),
            ids(&lib.search(query, 10).unwrap()),
            "{query}"
        );
    }
    // Ð (eth) reads as Đ.
    assert_eq!(ids(&lib.search("ÐẢNG PHÍ", 10).unwrap())[0], "qd01");

    let title = "Hướng dẫn thu nộp đảng phí";
    lib.upsert(&[doc(
        "hd",
        "HD-9",
        &nfd(title),
        &nfd("Chi ủy hướng dẫn đảng viên nộp đảng phí đúng hạn."),
    )])
    .unwrap();
    for query in [
        "huong dan thu nop",
        "hướng dẫn thu nộp",
        &nfd("hướng dẫn thu nộp"),
    ] {
        let hits = lib.search(query, 10).unwrap();
        assert_eq!(ids(&hits).first(), Some(&"hd"), "{query}");
    }
    let hits = lib.search("hướng dẫn thu", 10).unwrap();
    assert_eq!(hits[0].title, title, "stored composed");
    assert!(
        hits[0].snippet.contains("<mark>hướng</mark>"),
        "{}",
        hits[0].snippet
    );
    assert_eq!(lib.get("hd").unwrap().unwrap().title, title);
}

/// A library file from before documents were composed: its decomposed documents are stored
/// and indexed again, once, when it is opened.
#[test]
fn an_older_librarys_decomposed_documents_are_composed_on_open() {
    use unicode_normalization::UnicodeNormalization;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("library.db");
    let title = "Hướng dẫn thu nộp đảng phí";
    Library::open(&path)
        .unwrap()
        .upsert(&[doc("hd", "HD-9", title, "Chi ủy hướng dẫn.")])
        .unwrap();
    // As an older version left it: the text as it came, its index without it, and the work
    // marked as not done.
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute(
        "UPDATE documents SET title = ?1 WHERE doc_id = 'hd'",
        [title.nfd().collect::<String>()],
    )
    .unwrap();
    old.execute(
        "DELETE FROM documents_fts WHERE rowid = (SELECT rowid FROM documents WHERE doc_id = 'hd')",
        [],
    )
    .unwrap();
    old.execute("INSERT INTO recompose_pending VALUES (1)", [])
        .unwrap();
    drop(old);
    let lib = Library::open(&path).unwrap();
    assert_eq!(lib.get("hd").unwrap().unwrap().title, title);
    assert_eq!(ids(&lib.search("hướng dẫn thu nộp", 10).unwrap()), ["hd"]);
    drop(lib);
    let pending: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM recompose_pending", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0, "done once");
}

#[test]
fn document_numbers_prefixes_and_ranking() {
    let (_d, lib) = library();
    assert_eq!(ids(&lib.search("57-NQ/TW", 10).unwrap())[0], "nq57");
    assert_eq!(ids(&lib.search("01-QĐ/TW", 10).unwrap())[0], "qd01");
    assert_eq!(ids(&lib.search("01-qd/tw", 10).unwrap())[0], "qd01");
    assert_eq!(ids(&lib.search("01-KL/TW", 10).unwrap())[0], "kl01");
    // Search as you type: the last term is a prefix.
    assert_eq!(ids(&lib.search("chuyen doi s", 10).unwrap())[0], "nq57");
    // Exact accents first: "nghị quyết" vs "nghĩ quyết" / "nghi thức ... quyết nghị".
    let accented = lib.search("nghị quyết", 10).unwrap();
    let plain = lib.search("nghi quyet", 10).unwrap();
    assert!(
        ids(&plain).contains(&"ct35"),
        "accent-free query matches every folded form"
    );
    let pos = |hits: &[_], id: &str| ids(hits).iter().position(|x| *x == id).unwrap();
    assert!(
        pos(&accented, "tb") < pos(&accented, "ct35"),
        "exact accents outrank look-alikes: {:?}",
        ids(&accented)
    );
    // Titles outrank bodies.
    assert_eq!(ids(&lib.search("chi thi", 10).unwrap())[0], "ct35");
    // Snippets: the original text, terms marked, HTML escaped.
    let hit = &lib.search("bao hiem xa hoi", 1).unwrap()[0];
    assert!(
        hit.snippet
            .contains("<mark>bảo</mark> <mark>hiểm</mark> <mark>xã</mark> <mark>hội</mark>"),
        "{}",
        hit.snippet
    );
    lib.upsert(&[doc("x", "X-1", "Tài liệu thử", "a < b && c > d: khoa học")])
        .unwrap();
    let hit = &lib
        .search("khoa hoc", 10)
        .unwrap()
        .into_iter()
        .find(|h| h.id == "x")
        .unwrap();
    assert!(
        hit.snippet.contains("a &lt; b &amp;&amp; c &gt; d"),
        "{}",
        hit.snippet
    );
}

#[test]
fn bad_queries_and_documents() {
    let (_d, lib) = library();
    for q in [
        "",
        "   ",
        "!!!",
        "\"",
        "*",
        "NEAR(",
        "AND OR NOT",
        "-",
        "^",
        "()",
    ] {
        let _ = lib.search(q, 10).unwrap(); // never an FTS syntax error
    }
    assert!(lib.search("nghị quyết", 0).unwrap().is_empty());
    // Query syntax is searched as words: "OR" and "body" are in no document.
    assert_eq!(lib.search("\" OR body:", 10).unwrap(), []);
    assert!(matches!(
        lib.search(&"a".repeat(300), 10),
        Err(LibraryError::Invalid { .. })
    ));
    assert!(matches!(
        lib.upsert(&[doc("", "n", "t", "b")]),
        Err(LibraryError::Invalid { .. })
    ));
    assert!(matches!(
        lib.upsert(&[doc("ok", "n", " ", "b"), doc("y", "n", "t", "b")]),
        Err(LibraryError::Invalid { .. })
    ));
    assert_eq!(lib.count().unwrap(), 5, "a rejected batch stores nothing");
    // Replacing and removing keep the index in step.
    lib.upsert(&[doc("tb", "TB-1", "Thông báo mới", "không còn nội dung cũ")])
        .unwrap();
    assert!(lib.search("enh uong", 10).unwrap().is_empty());
    assert_eq!(lib.get("tb").unwrap().unwrap().title, "Thông báo mới");
    assert!(lib.remove("tb").unwrap());
    assert!(!lib.remove("tb").unwrap());
    assert!(lib.search("thong bao moi", 10).unwrap().is_empty());
    assert_eq!(lib.count().unwrap(), 4);
}

fn ym(s: &str) -> YearMonth {
    YearMonth::parse(s).unwrap()
}

fn rules() -> FeeRules {
    FeeRules::official().unwrap().clone()
}

fn situation(basis: FeeBasis, income: u64) -> FeeSituation {
    FeeSituation::new(basis, income)
}

#[test]
fn fee_rules_each_basis_and_effective_date() {
    let r = rules();
    let m = ym("2026-03");
    assert_eq!(
        r.assess(&situation(FeeBasis::SocialInsuranceSalary, 12_345_678), m)
            .unwrap()
            .due_vnd,
        123_456
    );
    assert_eq!(
        r.assess(&situation(FeeBasis::SickOrMaternityBenefit, 8_000_000), m)
            .unwrap()
            .due_vnd,
        80_000
    );
    assert_eq!(
        r.assess(&situation(FeeBasis::Pension, 7_000_001), m)
            .unwrap()
            .due_vnd,
        35_000
    );
    assert_eq!(
        r.assess(&situation(FeeBasis::Student, 0), m)
            .unwrap()
            .due_vnd,
        5_000
    );
    // The month before the new regulation: the old rules.
    let jan = r
        .assess(&situation(FeeBasis::Student, 0), ym("2026-01"))
        .unwrap();
    assert_eq!((jan.due_vnd, jan.regulation.as_str()), (2_000, "342-QĐ/TW"));
    assert_eq!(
        r.assess(&situation(FeeBasis::Student, 0), ym("2026-02"))
            .unwrap()
            .regulation,
        "01-QĐ/TW"
    );
    // The old regulation had no benefit rule; before any regulation there is none at all.
    assert!(matches!(
        r.assess(
            &situation(FeeBasis::SickOrMaternityBenefit, 1),
            ym("2025-12")
        ),
        Err(FeeError::NoRule { .. })
    ));
    assert!(matches!(
        r.assess(&situation(FeeBasis::Pension, 1), ym("2009-12")),
        Err(FeeError::NoRule { .. })
    ));
}

#[test]
fn exemptions_and_reductions() {
    let r = rules();
    let salary = |relief| FeeSituation {
        relief: Some(relief),
        ..FeeSituation::new(FeeBasis::SocialInsuranceSalary, 10_000_000)
    };
    assert_eq!(
        r.assess(&salary(Relief::Exempt), ym("2026-05"))
            .unwrap()
            .due_vnd,
        0
    );
    let cut = Relief::Reduction {
        percent: 30,
        from: ym("2026-11"),
        months: 3,
    };
    assert_eq!(
        r.assess(&salary(cut), ym("2026-10")).unwrap().due_vnd,
        100_000
    );
    assert_eq!(
        r.assess(&salary(cut), ym("2026-11")).unwrap().due_vnd,
        70_000
    );
    assert_eq!(
        r.assess(&salary(cut), ym("2027-01")).unwrap().due_vnd,
        70_000,
        "across the year end"
    );
    assert_eq!(
        r.assess(&salary(cut), ym("2027-02")).unwrap().due_vnd,
        100_000
    );
    for (percent, due) in [(50, 50_000), (70, 30_000)] {
        let relief = Relief::Reduction {
            percent,
            from: ym("2026-05"),
            months: 12,
        };
        assert_eq!(
            r.assess(&salary(relief), ym("2026-05")).unwrap().due_vnd,
            due
        );
    }
    for bad in [
        Relief::Reduction {
            percent: 40,
            from: ym("2026-05"),
            months: 1,
        },
        Relief::Reduction {
            percent: 50,
            from: ym("2026-05"),
            months: 13,
        },
        Relief::Reduction {
            percent: 50,
            from: ym("2026-05"),
            months: 0,
        },
    ] {
        assert!(matches!(
            r.assess(&salary(bad), ym("2026-05")),
            Err(FeeError::Invalid { .. })
        ));
    }
    for bad in ["2026-13", "2026-00", "26-1", "abc", "2026/05", ""] {
        assert!(YearMonth::parse(bad).is_err(), "{bad}");
    }
    let dup = FeeRules::new(
        vec![
            FeeRules::regulation_01_2026().unwrap(),
            FeeRules::regulation_01_2026().unwrap(),
        ],
        vec![],
    );
    assert!(dup.is_err());
}

#[test]
fn ledger_flags_unpaid_months() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(dir.path(), Unlock::passphrase("p"), &common::fast()).unwrap();
    let ledger = FeeLedger::new(&vault);
    let r = rules();
    for m in 1..=6 {
        let month = YearMonth::new(2026, m).unwrap();
        ledger
            .record_assessment(
                r.assess(&situation(FeeBasis::Pension, 6_000_000), month)
                    .unwrap(),
            )
            .unwrap();
    }
    for m in [1, 2, 4] {
        let a: Assessment = r
            .assess(
                &situation(FeeBasis::Pension, 6_000_000),
                YearMonth::new(2026, m).unwrap(),
            )
            .unwrap();
        ledger.record_payment(a.month, a.due_vnd).unwrap();
    }
    ledger.record_payment(ym("2026-05"), 10_000).unwrap(); // part of 30,000
    let standing = ledger.standing(2026, ym("2027-01")).unwrap();
    assert_eq!(standing.assessed.len(), 6);
    assert_eq!(
        standing.unpaid,
        [ym("2026-03"), ym("2026-05"), ym("2026-06")]
    );
    assert!(standing.serious);
    // In June, June is not due yet: two months are unpaid, not serious; nor in January is any
    // month of a year's statement recorded then.
    // March begins in Hanoi at 17:00 UTC on the last day of February.
    assert_eq!(YearMonth::in_hanoi(1_772_298_000), Some(ym("2026-03")));
    assert_eq!(YearMonth::in_hanoi(1_772_297_999), Some(ym("2026-02")));
    let in_june = ledger.standing(2026, ym("2026-06")).unwrap();
    assert_eq!(in_june.unpaid, [ym("2026-03"), ym("2026-05")]);
    assert!(!in_june.serious);
    assert!(ledger
        .standing(2026, ym("2026-01"))
        .unwrap()
        .unpaid
        .is_empty());
    ledger.record_payment(ym("2026-06"), 30_000).unwrap();
    assert!(!ledger.standing(2026, ym("2027-01")).unwrap().serious);
    assert!(ledger
        .standing(2025, ym("2027-01"))
        .unwrap()
        .assessed
        .is_empty());
    // Paying an unassessed month, or nothing, is refused and changes nothing.
    assert!(matches!(
        ledger.record_payment(ym("2026-09"), 1),
        Err(FeeError::NotAssessed { .. })
    ));
    assert!(ledger.record_payment(ym("2026-03"), 0).is_err());
    // Re-assessing keeps what was paid.
    ledger
        .record_assessment(
            r.assess(&situation(FeeBasis::Pension, 6_000_000), ym("2026-05"))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        ledger.standing(2026, ym("2027-01")).unwrap().unpaid,
        [ym("2026-03"), ym("2026-05")]
    );
}

#[test]
fn queries_typed_in_telex_or_vni_without_marks_find_what_they_mean() {
    let (_d, lib) = library();
    let meant = ids(&lib.search("nghi quyet 57", 10).unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    for typed in ["nghij quyeets 57", "nghi5 quye6t1 57", "NGHIJ QUYEETS 57"] {
        let hits = lib.search(typed, 10).unwrap();
        assert_eq!(ids(&hits)[0], "nq57", "{typed}");
        for id in &meant {
            assert!(ids(&hits).contains(&id.as_str()), "{typed}: {id}");
        }
    }
    // As the user types: "ddangr phis" and its prefix "ddangr ph" find party fees.
    assert_eq!(ids(&lib.search("ddangr phis", 10).unwrap())[0], "qd01");
    assert_eq!(ids(&lib.search("ddangr ph", 10).unwrap())[0], "qd01");
    // The snippet marks the words meant.
    let hit = &lib.search("baor hieemr xax hooij", 1).unwrap()[0];
    assert!(hit.snippet.contains("<mark>bảo</mark>"), "{}", hit.snippet);
    // A query with no such keys is unchanged: nothing spurious comes back.
    assert!(lib.search("zzzqqq", 10).unwrap().is_empty());
}

#[test]
fn a_query_with_a_typo_still_finds_the_document_below_exact_matches() {
    let (dir, lib) = library();
    // A swapped, a missing, an extra and a wrong letter.
    for typed in [
        "nghi quyte 57",
        "ngh quyet 57",
        "nghii quyet 57",
        "nghi quyet 57 khoq hoc",
    ] {
        let hits = lib.search(typed, 10).unwrap();
        assert_eq!(ids(&hits).first(), Some(&"nq57"), "{typed}");
        assert!(
            hits[0].score < 0.0,
            "{typed}: a corrected match ranks below exact ones"
        );
    }
    // Two edits in a long word; the snippet marks the word meant.
    let hit = &lib.search("chuyenn dooi", 5).unwrap()[0];
    assert_eq!(hit.id, "nq57");
    assert!(
        hit.snippet.contains("<mark>chuyển</mark>"),
        "{}",
        hit.snippet
    );
    assert_eq!(
        ids(&lib.search("sangtao", 5).unwrap()),
        Vec::<&str>::new(),
        "three edits"
    );
    // Exact matches of the page come first; a typo is only corrected when no document holds
    // the word as typed.
    let exact = lib.search("dang phi", 10).unwrap();
    assert!(exact.iter().all(|h| h.score > 0.0));
    // Numbers and words of one or two letters are never corrected.
    assert!(lib.search("58-NQ/TW", 10).unwrap().is_empty());
    assert!(lib.search("nghi quyet 75", 10).unwrap().is_empty());
    // The vocabulary follows the documents: a word gone from the library is no correction.
    assert!(!lib.search("tuong", 5).unwrap().is_empty()); // tư tưởng, in kl01
    assert_eq!(ids(&lib.search("tuongg", 5).unwrap()), ["kl01"]);
    lib.remove("kl01").unwrap();
    assert!(lib.search("tuongg", 5).unwrap().is_empty());
    lib.upsert(&[doc("kl01", "01-KL/TW", "Kết luận", "Tư tưởng Hồ Chí Minh.")])
        .unwrap();
    assert_eq!(ids(&lib.search("tuongg", 5).unwrap()), ["kl01"]);
    // Replacing a document drops its old words.
    lib.upsert(&[doc("kl01", "01-KL/TW", "Kết luận", "Phong cách.")])
        .unwrap();
    assert!(lib.search("tuongg", 5).unwrap().is_empty());
    // A library from before the vocabulary existed gets one when opened.
    drop(lib);
    let path = dir.path().join("library.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM vocabulary", [])
        .unwrap();
    let lib = Library::open(&path).unwrap();
    assert_eq!(
        ids(&lib.search("nghi quyte 57", 10).unwrap()).first(),
        Some(&"nq57")
    );
}

/// Old and new tone placement are the same accents: "hoà bình" typed the new way finds the
/// document written "hòa bình" first, ahead of a title with "họa bình".
#[test]
fn old_and_new_tone_placement_rank_as_exact_accents() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::open(&dir.path().join("library.db")).unwrap();
    // The look-alikes are said more often (they match the folded words better): only the
    // exact-accent bonus puts the document that holds the words as typed first.
    lib.upsert(&[
        doc(
            "old",
            "1-NQ/TW",
            "Nghị quyết về công tác năm 2026",
            "Giữ vững hòa bình, làm tốt thủy lợi, chăm lo sức khỏe.",
        ),
        doc(
            "other",
            "2-NQ/TW",
            "Nghị quyết về công tác năm 2027",
            "Họa bình, họa bình; thùy lợi, thùy lợi; khóe, khóe.",
        ),
    ])
    .unwrap();
    for query in ["hoà bình", "hòa bình", "thuỷ lợi", "khoẻ"] {
        assert_eq!(ids(&lib.search(query, 10).unwrap())[0], "old", "{query}");
    }
}

/// Accents typed on some words only, or on a word still being typed, still rank the document
/// written with them first; a soft hyphen or zero-width space pasted inside a word neither hides
/// the document nor splits its word; a snippet marks only the words the search matched.
#[test]
fn partial_accents_invisible_characters_and_exact_snippet_marks() {
    let (_d, lib) = library();
    lib.upsert(&[
        doc("a", "1", "Dạng phí", "Một văn bản về dạng phí."),
        doc("z", "2", "Đảng phí", "Một văn bản về đảng phí."),
        doc(
            "soft",
            "3",
            "Nghị quy\u{00AD}ết 57",
            "Về đột\u{200B}phá khoa học và an toàn thông tin. Anh ấy nói thêm.",
        ),
    ])
    .unwrap();
    for query in ["đảng ph", "đảng phi", "đảng phí"] {
        assert_eq!(
            lib.search(query, 10)
                .unwrap()
                .first()
                .map(|h| h.id.as_str()),
            Some("z"),
            "{query}"
        );
    }
    assert!(ids(&lib.search("nghị quyết", 10).unwrap()).contains(&"soft"));
    assert!(ids(&lib.search("dotphá", 10).unwrap()).contains(&"soft"));
    let hit = lib.search("an toan ", 10).unwrap();
    let snippet = &hit.iter().find(|h| h.id == "soft").unwrap().snippet;
    assert!(snippet.contains("<mark>an</mark>"), "{snippet}");
    assert!(!snippet.contains("<mark>Anh</mark>"), "{snippet}");
    // While typing, the last term is a prefix: "an" then marks "Anh" too.
    let typing = lib.search("toan an", 10).unwrap();
    let snippet = &typing.iter().find(|h| h.id == "soft").unwrap().snippet;
    assert!(snippet.contains("<mark>Anh</mark>"), "{snippet}");
    // A query pasted decomposed (NFD) is measured composed.
    let long = "nghị quyết ".repeat(16);
    let decomposed: String =
        unicode_normalization::UnicodeNormalization::nfd(long.as_str()).collect();
    assert!(decomposed.len() > 256 && long.trim_end().len() <= 256);
    assert!(lib.search(long.trim_end(), 10).is_ok());
    assert!(lib.search(decomposed.trim_end(), 10).is_ok());
}
