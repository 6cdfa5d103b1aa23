//! Applying pulled pages on the device: order within a page, and changes this version cannot
//! use are skipped without blocking the page.

#![allow(clippy::unwrap_used)]

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
