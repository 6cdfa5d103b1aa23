//! Applying pulled pages on the device: order within a page, and changes this version cannot
//! use are skipped without blocking the page.

#![allow(clippy::unwrap_used)]

mod common;

use serde_json::json;
use std::sync::Arc;

use thudo_core::handbook::library::{self, Library};
use thudo_core::sync::apply::apply_outside;
use thudo_core::sync::protocol::Change;

fn change(op: &str, id: &str, title: &str) -> Change {
    Change {
        collection: "handbook.documents".into(),
        record_id: id.into(),
        op: op.into(),
        payload: json!({"id": id, "number": "1-NQ/TW", "issuer": "Bộ Chính trị", "issued_on": "2026-01-01",
                        "kind": "Nghị quyết", "title": title, "body": "Nội dung"}),
        hlc: String::new(),
    }
}

#[test]
fn a_page_applies_in_order_and_skips_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let library = Arc::new(Library::open(&dir.path().join("lib.db")).unwrap());
    let page = vec![
        change("put", "a", "Văn bản A"),
        change("put", "blank", "  "), // refused by the library: skipped, not fatal
        Change {
            payload: json!("not a document"),
            ..change("put", "junk", "x")
        },
        change("put", "d", "Văn bản D"),
        change("delete", "d", ""), // put then delete in one page: deleted
        change("put", "e", "Văn bản E"),
    ];
    let applied = apply_outside(&library::synced(Some(library.clone())), &page).unwrap();
    assert_eq!((applied.applied, applied.skipped), (4, 2), "{applied:?}");
    assert!(library.get("a").unwrap().is_some());
    assert!(library.get("d").unwrap().is_none(), "the later delete wins");
    assert!(library.get("e").unwrap().is_some());
    assert!(library.get("blank").unwrap().is_none());
    assert_eq!(library.count().unwrap(), 2);
}

/// A note edited while the phone's clock read two years ahead carries that future as its
/// version: another device's later edit still replaces it here (a version more than a day
/// ahead of this device's clock and of the change stands against nothing), while an edit a
/// little older than a version within the day does not.
#[test]
fn a_version_stamped_far_ahead_stands_against_nothing() {
    use thudo_core::handbook::member::{self, DocumentNote, MemberHandbook};
    let (_dir, vault) = common::vault();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let book = MemberHandbook::new(&vault);
    let note = |id: &str, text: &str, at: i64| DocumentNote {
        id: id.into(),
        document_id: "nq-57-2024".into(),
        text: text.into(),
        updated_at: at,
    };
    book.save_note(&note(
        "ahead",
        "clock two years ahead",
        now + 2 * 365 * 86_400,
    ))
    .unwrap();
    book.save_note(&note("fresh", "just written", now)).unwrap();
    let notes = member::synced()
        .into_iter()
        .find(|c| c.spec.name == "handbook.note")
        .unwrap();
    let edit = |id: &str, at_ms: i64| Change {
        collection: "handbook.note".into(),
        record_id: id.into(),
        op: "put".into(),
        payload: serde_json::to_value(note(id, "from the tablet", at_ms / 1000)).unwrap(),
        hlc: format!("{at_ms:013}-000000-tablet"),
    };
    let applied = vault
        .transaction(|tx| {
            thudo_core::sync::apply::apply_changes(
                tx,
                &notes,
                &[
                    edit("ahead", now * 1000 + 60_000),
                    edit("fresh", now * 1000 - 60_000),
                ],
                now as u64,
            )
        })
        .unwrap();
    assert_eq!((applied.applied, applied.superseded), (1, 1), "{applied:?}");
    let texts: Vec<(String, String)> = book
        .notes_for("nq-57-2024")
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.text))
        .collect();
    assert!(
        texts.contains(&("ahead".into(), "from the tablet".into())),
        "{texts:?}"
    );
    assert!(
        texts.contains(&("fresh".into(), "just written".into())),
        "{texts:?}"
    );
}

/// A pulled health record is filed by its resource: a change whose id names another record
/// (sent by a backend that does not refuse it) is skipped, and the record it names is kept.
#[test]
fn a_health_record_under_another_records_id_is_skipped() {
    let (_dir, vault) = common::vault();
    let records = thudo_core::health::records::synced(None);
    let change = |record_id: &str, text: &str| Change {
        collection: "health.records".into(),
        record_id: record_id.into(),
        op: "put".into(),
        payload: json!({"resourceType": "Immunization", "id": "imm-1", "status": "completed",
                        "note": [{"text": text}]}),
        hlc: String::new(),
    };
    let applied = vault
        .transaction(|tx| {
            thudo_core::sync::apply::apply_changes(
                tx,
                &records,
                &[
                    change("Immunization/imm-1", "the facility's"),
                    change("Immunization/imm-9", "a replacement"),
                ],
                1_790_000_000,
            )
        })
        .unwrap();
    assert_eq!((applied.applied, applied.skipped), (1, 1), "{applied:?}");
    let kept = thudo_core::health::records::HealthBook::new(&vault)
        .get("Immunization/imm-1")
        .unwrap()
        .unwrap();
    assert!(kept.resource.to_string().contains("the facility's"));
}

/// A phone with no clock reading kept (a backup restored onto it: backups carry none) whose
/// first sync pulls an older change: the reading kept is the newest version the phone holds,
/// not the pulled change's, so the next edit here still goes after every version it holds.
#[test]
fn a_first_pull_keeps_the_newest_version_as_the_clock() {
    use thudo_core::handbook::member::{self, DocumentNote, MemberHandbook};
    let (_dir, vault) = common::vault();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let book = MemberHandbook::new(&vault);
    let note = |id: &str, at: i64| DocumentNote {
        id: id.into(),
        document_id: "nq-57-2024".into(),
        text: format!("note {id}"),
        updated_at: at,
    };
    // Written an hour ahead (a clock a little fast): its version is the newest held.
    book.save_note(&note("fast", now + 3_600)).unwrap();
    let version = |id: &str| {
        let body = vault
            .get("sync.versions", &format!("handbook.note\u{1f}{id}"))
            .unwrap()
            .body;
        String::from_utf8(body).unwrap()
    };
    let newest = version("fast");
    vault.delete("sync.state", "hlc").unwrap();
    let notes = member::synced()
        .into_iter()
        .find(|c| c.spec.name == "handbook.note")
        .unwrap();
    let older = Change {
        collection: "handbook.note".into(),
        record_id: "pulled".into(),
        op: "put".into(),
        payload: serde_json::to_value(note("pulled", now - 3_600)).unwrap(),
        hlc: format!("{:013}-000000-tablet", (now - 3_600) * 1000),
    };
    vault
        .transaction(|tx| {
            thudo_core::sync::apply::apply_changes(
                tx,
                &notes,
                std::slice::from_ref(&older),
                now as u64,
            )
        })
        .unwrap();
    let kept = vault.get("sync.state", "hlc").unwrap().body;
    assert_eq!(String::from_utf8(kept).unwrap(), newest);
    // The next edit, made now (before the fast clock's hour), still goes after it.
    book.save_note(&note("next", now)).unwrap();
    let next = version("next");
    let parse = |h: &str| thudo_core::changes::hlc::Hlc::parse(h).unwrap();
    assert!(parse(&next) > parse(&newest), "{next} after {newest}");
}
