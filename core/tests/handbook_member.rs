//! The member's handbook data: profile, notes, meetings, attendance, notices, procedures.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::{member_profile as profile, vault};

use thudo_core::changes::outbox::{self, OutboxEntry};
use thudo_core::handbook::member::*;
use thudo_core::vault::Vault;

fn outbox(v: &Vault) -> Vec<OutboxEntry> {
    v.transaction(outbox::pending).unwrap()
}

#[test]
fn profile_is_validated_and_encrypted() {
    let (dir, v) = vault();
    let h = MemberHandbook::new(&v);
    h.set_profile(&profile()).unwrap();
    assert_eq!(h.profile().unwrap().unwrap(), profile());
    // Never queued: it holds the citizen ID, which the backend keeps only keyed.
    assert!(outbox(&v).is_empty());
    for (bad, field) in [
        (
            MemberProfile {
                full_name: " ".into(),
                ..profile()
            },
            "full_name",
        ),
        (
            MemberProfile {
                date_of_birth: "30/04/1985".into(),
                ..profile()
            },
            "date_of_birth",
        ),
        (
            MemberProfile {
                joined_on: "1980-01-01".into(),
                ..profile()
            },
            "joined_on",
        ),
        (
            MemberProfile {
                official_on: "2009-01-01".into(),
                ..profile()
            },
            "official_on",
        ),
        (
            MemberProfile {
                citizen_id: "12345".into(),
                ..profile()
            },
            "citizen_id",
        ),
        (
            MemberProfile {
                cell: "".into(),
                ..profile()
            },
            "cell",
        ),
    ] {
        match h.set_profile(&bad) {
            Err(MemberError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert_eq!(
        h.profile().unwrap().unwrap(),
        profile(),
        "bad input changes nothing"
    );
    v.close();
    let db = std::fs::read(thudo_core::vault::database_path(dir.path())).unwrap();
    assert!(
        !db.windows(12).any(|w| w == b"001085012345"),
        "CCCD never in clear"
    );
}

#[test]
fn notes_meetings_attendance_and_notices() {
    let (_d, v) = vault();
    let h = MemberHandbook::new(&v);
    h.save_note(&DocumentNote {
        id: "n1".into(),
        document_id: "nq57".into(),
        text: "Đọc kỹ phần III".into(),
        updated_at: 100,
    })
    .unwrap();
    h.save_note(&DocumentNote {
        id: "b1".into(),
        document_id: "nq57".into(),
        text: String::new(),
        updated_at: 101,
    })
    .unwrap();
    assert_eq!(h.notes_for("nq57").unwrap().len(), 2);
    assert!(h
        .save_note(&DocumentNote {
            id: "".into(),
            document_id: "x".into(),
            text: "t".into(),
            updated_at: 1
        })
        .is_err());

    h.upsert_meetings(&[
        Meeting {
            id: "m12".into(),
            date: "2026-12-05".into(),
            topic: "Học tập Nghị quyết 57".into(),
            document_ids: vec!["nq57".into()],
            cell: None,
            attendance_key: None,
            attachments: vec![],
        },
        Meeting {
            id: "m11".into(),
            date: "2026-11-05".into(),
            topic: "Thu đảng phí".into(),
            document_ids: vec![],
            cell: None,
            attendance_key: None,
            attachments: vec![],
        },
    ])
    .unwrap();
    assert!(h
        .upsert_meetings(&[Meeting {
            id: "bad".into(),
            date: "5/12".into(),
            topic: "x".into(),
            document_ids: vec![],
            cell: None,
            attendance_key: None,
            attachments: vec![],
        }])
        .is_err());
    assert_eq!(
        h.meetings_from("2026-11-23")
            .unwrap()
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["m12"]
    );

    let before = outbox(&v).len();
    h.record_attendance("m11", AttendanceStatus::Present, 200)
        .unwrap();
    h.record_attendance(
        "m12",
        AttendanceStatus::Excused {
            reason: "Đi công tác".into(),
        },
        201,
    )
    .unwrap();
    assert!(matches!(
        h.record_attendance("m12", AttendanceStatus::Excused { reason: " ".into() }, 202),
        Err(MemberError::Invalid { .. })
    ));
    assert!(matches!(
        h.record_attendance("nope", AttendanceStatus::Absent, 203),
        Err(MemberError::NotFound { .. })
    ));
    let queued = outbox(&v);
    assert_eq!(
        queued.len(),
        before + 2,
        "each accepted change queued once; refused ones not at all"
    );
    assert_eq!(queued.last().unwrap().collection, "handbook.attendance");
    assert_eq!(
        queued.last().unwrap().payload["status"]["reason"],
        "Đi công tác"
    );
    assert_ne!(queued[0].idempotency_key, queued[1].idempotency_key);
    assert!(queued.windows(2).all(|w| w[1].seq == w[0].seq + 1));

    h.upsert_notices(&[Notice {
        id: "t1".into(),
        title: "Lịch sinh hoạt".into(),
        body: "Ngày 5".into(),
        published_on: "2026-11-20".into(),
        read: false,
    }])
    .unwrap();
    h.mark_notice_read("t1", 300).unwrap();
    // A later copy from the server does not make it unread again.
    h.upsert_notices(&[Notice {
        id: "t1".into(),
        title: "Lịch sinh hoạt (sửa)".into(),
        body: "Ngày 6".into(),
        published_on: "2026-11-20".into(),
        read: false,
    }])
    .unwrap();
    let notices = h.notices().unwrap();
    assert!(notices[0].read);
    assert_eq!(notices[0].body, "Ngày 6");
    assert!(matches!(
        h.mark_notice_read("zz", 1),
        Err(MemberError::NotFound { .. })
    ));
}

fn temporary(purpose: TransferPurpose, from: &str, until: &str) -> ProcedureRequest {
    ProcedureRequest::TemporaryTransfer {
        to_organisation: "Đảng bộ Khu công nghệ cao".into(),
        purpose,
        from: from.into(),
        until: until.into(),
    }
}

#[test]
fn procedures_are_validated_before_queueing() {
    let (_d, v) = vault();
    let h = MemberHandbook::new(&v);
    let bad: Vec<(ProcedureRequest, &str)> = vec![
        (
            ProcedureRequest::FeePayment {
                months: vec![],
                amount_vnd: 5_000,
            },
            "months",
        ),
        (
            ProcedureRequest::FeePayment {
                months: vec!["2026-13".into()],
                amount_vnd: 5_000,
            },
            "months",
        ),
        (
            ProcedureRequest::FeePayment {
                months: vec!["2026-11".into()],
                amount_vnd: 0,
            },
            "amount_vnd",
        ),
        (
            ProcedureRequest::ResidenceComment {
                residence_cell: "".into(),
                address: "a".into(),
                period_from: "2026-01-01".into(),
                period_to: "2026-06-30".into(),
            },
            "residence_cell",
        ),
        (
            ProcedureRequest::ResidenceComment {
                residence_cell: "c".into(),
                address: "a".into(),
                period_from: "2026-06-30".into(),
                period_to: "2026-01-01".into(),
            },
            "period_to",
        ),
        (
            ProcedureRequest::OfficialTransfer {
                to_organisation: "X".into(),
                self_review: "ngắn".into(),
                decision_number: "12/QĐ".into(),
                decision_date: "2026-10-01".into(),
            },
            "self_review",
        ),
        (
            ProcedureRequest::OfficialTransfer {
                to_organisation: "X".into(),
                self_review: "Tự kiểm điểm đầy đủ, nghiêm túc.".into(),
                decision_number: "".into(),
                decision_date: "2026-10-01".into(),
            },
            "decision_number",
        ),
        (
            ProcedureRequest::OfficialTransfer {
                to_organisation: "X".into(),
                self_review: "Tự kiểm điểm đầy đủ, nghiêm túc.".into(),
                decision_number: "12".into(),
                decision_date: "2026-02-30".into(),
            },
            "decision_date",
        ),
        (
            temporary(TransferPurpose::Work, "2026-12-01", "2027-02-27"),
            "until",
        ), // a day under 3 months (`until` is the last day)
        (
            temporary(TransferPurpose::Work, "2026-12-01", "2027-11-30"),
            "until",
        ), // a full year
        (
            temporary(TransferPurpose::Residence, "2026-12-01", "2028-01-01"),
            "until",
        ),
        (
            temporary(TransferPurpose::Study, "2026-12-01", "2028-12-01"),
            "until",
        ), // 2 years and a day
        (
            temporary(TransferPurpose::Study, "2026-12-01", "2026-11-01"),
            "until",
        ),
        (
            temporary(TransferPurpose::Study, "bad", "2027-11-01"),
            "from",
        ),
    ];
    let outbox_before = outbox(&v).len();
    for (i, (request, field)) in bad.into_iter().enumerate() {
        let id = format!("p{i}");
        h.save_draft(&id, request, 10).unwrap();
        match h.queue(&id, 11) {
            Err(MemberError::Invalid { field: f, .. }) => assert_eq!(f, field, "case {i}"),
            other => panic!("case {i}: {other:?}"),
        }
        assert_eq!(
            v.get_doc::<Procedure>(&id).unwrap().unwrap().status,
            ProcedureStatus::Draft,
            "case {i} stays a draft"
        );
    }
    assert_eq!(
        outbox(&v).len(),
        outbox_before,
        "no bad draft reaches the outbox"
    );

    // Boundaries that pass (`until` is the last day): exactly 3 months; a day under a year for
    // work; exactly 2 years of study.
    for (id, request) in [
        (
            "ok1",
            temporary(TransferPurpose::Work, "2026-12-01", "2027-02-28"),
        ),
        (
            "ok2",
            temporary(TransferPurpose::Work, "2026-12-01", "2027-11-29"),
        ),
        (
            "ok3",
            temporary(TransferPurpose::Study, "2026-12-01", "2028-11-30"),
        ),
        (
            "ok4",
            ProcedureRequest::FeePayment {
                months: vec!["2026-10".into(), "2026-11".into()],
                amount_vnd: 70_000,
            },
        ),
    ] {
        h.save_draft(id, request, 20).unwrap();
        assert_eq!(
            h.queue(id, 21).unwrap().status,
            ProcedureStatus::Queued,
            "{id}"
        );
    }
    let queued = outbox(&v);
    assert_eq!(queued.len(), outbox_before + 4);
    assert_eq!(
        queued.last().unwrap().payload["request"]["kind"],
        "fee_payment"
    );

    // Status flow: queued ones cannot be edited or queued again; returned ones can be fixed.
    assert!(matches!(
        h.save_draft(
            "ok1",
            temporary(TransferPurpose::Work, "2026-12-01", "2027-04-01"),
            30
        ),
        Err(MemberError::WrongState { .. })
    ));
    assert!(matches!(
        h.queue("ok1", 30),
        Err(MemberError::WrongState { .. })
    ));
    h.apply_status("ok1", ProcedureStatus::Submitted, 40)
        .unwrap();
    let returned = h
        .apply_status(
            "ok1",
            ProcedureStatus::Returned {
                reason: "Thiếu quyết định".into(),
            },
            50,
        )
        .unwrap();
    assert!(matches!(returned.status, ProcedureStatus::Returned { .. }));
    h.save_draft(
        "ok1",
        temporary(TransferPurpose::Work, "2026-12-01", "2027-05-01"),
        60,
    )
    .unwrap();
    // A report that comes late, for the request before the edit, leaves the draft as it is.
    assert!(matches!(
        h.apply_status("ok1", ProcedureStatus::Submitted, 60),
        Err(MemberError::WrongState { .. })
    ));
    assert_eq!(h.queue("ok1", 61).unwrap().status, ProcedureStatus::Queued);
    // The old "returned" delivered again after it was sent anew: the backend's next report
    // still moves it on.
    let stale = ProcedureStatus::Returned {
        reason: "Thiếu quyết định".into(),
    };
    h.apply_status("ok1", stale, 62).unwrap();
    assert_eq!(
        h.apply_status("ok1", ProcedureStatus::Submitted, 63)
            .unwrap()
            .status,
        ProcedureStatus::Submitted
    );
    h.apply_status("ok2", ProcedureStatus::Accepted, 70)
        .unwrap();
    assert!(h.apply_status("ok2", ProcedureStatus::Queued, 71).is_err());
    // Decided is decided: a stray "returned" or "submitted" changes nothing; the same report
    // again is no change either.
    for late in [
        ProcedureStatus::Returned { reason: "x".into() },
        ProcedureStatus::Submitted,
    ] {
        assert!(matches!(
            h.apply_status("ok2", late, 72),
            Err(MemberError::WrongState { .. })
        ));
    }
    let again = h
        .apply_status("ok2", ProcedureStatus::Accepted, 73)
        .unwrap();
    assert_eq!(
        (again.status, again.updated_at),
        (ProcedureStatus::Accepted, 70)
    );
    assert!(matches!(
        h.queue("missing", 1),
        Err(MemberError::NotFound { .. })
    ));
    assert_eq!(h.procedures().unwrap()[0].id, "ok2");
}

/// A pulled page holding notes the vault cannot hold (pushed by a hostile device of the same
/// account: an empty id, an index value over the vault's limit) or a note under another id
/// than its change's skips them and applies the rest: one bad change must not stop every sync
/// after it, nor overwrite a newer note behind the conflict check.
#[test]
fn a_pulled_note_the_vault_cannot_hold_or_under_another_id_is_skipped() {
    use thudo_core::sync::protocol::Change;
    let (_dir, v) = vault();
    let h = MemberHandbook::new(&v);
    h.save_note(&DocumentNote {
        id: "mine".into(),
        document_id: "nq57".into(),
        text: "newer, written here".into(),
        updated_at: 500,
    })
    .unwrap();
    let note = |record_id: &str, id: &str, document_id: &str, text: &str| Change {
        collection: "handbook.note".into(),
        record_id: record_id.into(),
        op: "put".into(),
        payload: serde_json::json!({"id": id, "document_id": document_id, "text": text,
                                    "updated_at": 1}),
        hlc: thudo_core::changes::hlc::Hlc::tick(None, 1_000, "dev").to_string(),
    };
    let page = vec![
        note("", "", "nq57", "no id"),
        note(
            "long",
            "long",
            &"x".repeat(5_000),
            "an index value over 4 KiB",
        ),
        note("other", "mine", "nq57", "older, under another change's id"),
        note("good", "good", "nq57", "applied"),
    ];
    let registry = thudo_core::changes::Registry::new(synced());
    let applied = v
        .transaction(|tx| thudo_core::sync::apply::apply_page(tx, &registry, &page, 1_000))
        .unwrap();
    assert_eq!((applied.applied, applied.skipped), (1, 3), "{applied:?}");
    let texts: Vec<String> = h
        .notes_for("nq57")
        .unwrap()
        .into_iter()
        .map(|n| n.text)
        .collect();
    assert!(texts.contains(&"applied".to_owned()), "{texts:?}");
    assert!(
        texts.contains(&"newer, written here".to_owned()),
        "{texts:?}"
    );
    assert!(!texts.iter().any(|t| t.starts_with("older")), "{texts:?}");
}

/// A backup restored over a vault whose newer changes wait to be pushed brings back an older
/// outbox counter: the next change takes a free position and overwrites none of them.
#[test]
fn a_restored_backup_never_overwrites_a_change_waiting_to_be_pushed() {
    let (dir, v) = vault();
    let h = MemberHandbook::new(&v);
    let note = |id: &str| DocumentNote {
        id: id.into(),
        document_id: "nq57".into(),
        text: format!("ghi chú {id}"),
        updated_at: 1,
    };
    h.save_note(&note("n1")).unwrap();
    let backup = dir.path().join("backup.thudo");
    v.export_backup(&backup, "mật khẩu sao lưu").unwrap();
    h.save_note(&note("n2")).unwrap();
    h.save_note(&note("n3")).unwrap();
    v.import_backup(&backup, "mật khẩu sao lưu").unwrap();
    h.save_note(&note("n4")).unwrap();
    let pending: Vec<String> = outbox(&v).into_iter().map(|e| e.record_id).collect();
    assert_eq!(pending, ["n1", "n2", "n3", "n4"]);
}

/// A procedure pulled from the backend goes through the same rules as a reported status: the
/// organisation's decision lands, the member's own upload echoed back late never takes a
/// decided procedure back to queued, and a draft never travels.
#[test]
fn pulled_procedures_move_only_forward() {
    use ProcedureStatus::*;
    let returned = || Returned {
        reason: "Thiếu quyết định".into(),
    };
    let replaces = ProcedureStatus::pulled_replaces;
    // Nothing held: anything but a draft.
    assert!(replaces(None, &Queued) && replaces(None, &Accepted));
    assert!(!replaces(None, &Draft));
    // The organisation's word moves it on.
    assert!(replaces(Some(&Queued), &Submitted));
    assert!(replaces(Some(&Submitted), &Accepted));
    assert!(replaces(Some(&Submitted), &returned()));
    // The member's own upload echoed late: never over a submitted or decided procedure.
    assert!(!replaces(Some(&Submitted), &Queued));
    assert!(!replaces(Some(&Accepted), &Queued));
    assert!(!replaces(Some(&Accepted), &returned()));
    // Sent again from another phone after a return, or a draft there queued: taken.
    assert!(replaces(Some(&returned()), &Queued));
    assert!(replaces(Some(&Draft), &Queued));
    assert!(!replaces(Some(&Queued), &Draft));

    // Applied by sync: the registry's collection follows the same rules.
    let (_dir, v) = vault();
    let registry = thudo_core::changes::Registry::new(synced());
    let collection = registry.get("handbook.procedure").unwrap();
    let change = |status: serde_json::Value, hlc: &str| thudo_core::sync::protocol::Change {
        collection: "handbook.procedure".into(),
        record_id: "p-1".into(),
        op: "put".into(),
        payload: serde_json::json!({"id": "p-1", "updated_at": 5, "status": status,
            "request": {"kind": "fee_payment", "months": ["2026-11"], "amount_vnd": 50_000}}),
        hlc: hlc.into(),
    };
    let apply = |c| {
        v.transaction(|tx| thudo_core::sync::apply::apply_changes(tx, collection, &[c], 10))
            .unwrap()
    };
    apply(change(
        serde_json::json!({"state": "accepted"}),
        "1-0-server",
    ));
    let late_echo = apply(change(serde_json::json!({"state": "queued"}), "2-0-phone"));
    assert_eq!((late_echo.applied, late_echo.skipped), (0, 1));
    let held = MemberHandbook::new(&v).procedures().unwrap();
    assert_eq!(held[0].status, Accepted);
}
