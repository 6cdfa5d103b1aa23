//! The rules a third-party validator must apply exactly as the reference does, from the rule
//! and feed vectors of docs/protocol/transit-qr.md: each documented line is rebuilt from what
//! the reference validator actually decides and must read the same.

use thudo_core::transit::backend::{TapReceipt, TapUpload, ValidatorFeed};
use thudo_core::transit::metro::{EntryFeed, GateDirection};
use thudo_core::transit::presentation::{present, Signal};
use thudo_core::transit::validator::{DenyList, Reason, ValidatorConfig};
use thudo_core::transit::{Category, Product};

use crate::world::*;

const T: u64 = NOW + 40;

fn block(name: &str) -> std::collections::HashMap<String, String> {
    crate::common::transit_doc_block(name)
}

fn code(reason: Reason) -> String {
    serde_json::to_value(reason)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn decide(w: &mut World, text: &str, at: u64) -> String {
    code(w.validator.validate(text, at).unwrap().reason)
}

#[test]
fn the_documented_rules_are_the_reference_validators() {
    let doc = block("rules-vector");
    let line = |key: &str| {
        doc.get(key)
            .unwrap_or_else(|| panic!("no {key} line"))
            .clone()
    };

    // What uses up a QR.
    let mut w = world();
    let first = w.phone.current_qr(T - 10).unwrap().text;
    let a = decide(&mut w, &first, T);
    let second = w.phone.current_qr(T).unwrap().text;
    let b = decide(&mut w, &second, T + 10);
    let c = decide(&mut w, &second, T + 20);
    let later = w.phone.current_qr(T + 125).unwrap().text;
    let d = decide(&mut w, &later, T + 130);
    assert_eq!(
        line("USED_UP"),
        format!("bus route 32, passback 120 s: a QR made at T-10 shown at T -> {a}; a new QR made at T shown at T+10 -> {b}; that QR again at T+20 -> {c}; a new QR made at T+125 shown at T+130 -> {d}")
    );
    let mut w = world();
    let early = w.phone.current_qr(T + 30).unwrap().text;
    let a = decide(&mut w, &early, T);
    let b = decide(&mut w, &early, T + 20);
    assert_eq!(
        line("NOT_USED_UP"),
        format!("a QR made at T+30 shown at T -> {a}; the same QR shown at T+20 -> {b}")
    );

    let mut w = world();
    let first = w.phone.current_qr(T).unwrap().text;
    let a = decide(&mut w, &first, T);
    let early = w.phone.current_qr(T + 115).unwrap().text;
    let b = decide(&mut w, &early, T + 115);
    let on_time = w.phone.current_qr(T + 120).unwrap().text;
    let c = decide(&mut w, &on_time, T + 120);
    assert_eq!(
        line("PASSBACK_EDGE"),
        format!("a QR accepted at T -> {a}; a new QR shown at T+115 -> {b}; a new QR shown at T+120 -> {c}")
    );

    // The refusals checked after replay, in their order.
    let mut w = world();
    let child = dependant_ticket(&w);
    let alone = w.phone.current_qr_for(child, T).unwrap().text;
    let a = decide(&mut w, &alone, T);
    let own = w.phone.current_qr(T + 2).unwrap().text;
    let b = decide(&mut w, &own, T + 2);
    let c = decide(&mut w, &alone, T + 5);
    let within = w.phone.current_qr_for(child, T + 117).unwrap().text;
    let d = decide(&mut w, &within, T + 117);
    let after = w.phone.current_qr_for(child, T + 123).unwrap().text;
    let e = decide(&mut w, &after, T + 123);
    assert_eq!(
        line("HOLDER_FIRST"),
        format!("a dependant's QR made at T shown alone -> {a}; the holder's QR at T+2 -> {b}; the dependant's QR from T again at T+5 -> {c}; a new dependant's QR at T+117 (the holder 115 s before) -> {d}; one at T+123 (121 s) -> {e}")
    );
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let card = w.phone.credential().unwrap().card_id;
    let (_g, mut entry) = gate(&w, 201, GateDirection::Entry);
    let first = w.phone.current_qr(T).unwrap().text;
    let a = code(entry.validate(&first, T).unwrap().reason);
    entry
        .apply_inside_feed(&inside_feed(&[card], T + 50, T + 55), T + 55)
        .unwrap();
    let later = w.phone.current_qr(T + 60).unwrap().text;
    let b = code(entry.validate(&later, T + 60).unwrap().reason);
    entry
        .apply_inside_feed(&inside_feed(&[], T + 90, T + 95), T + 95)
        .unwrap();
    let c = code(entry.validate(&later, T + 100).unwrap().reason);
    let d = code(entry.validate(&later, T + 101).unwrap().reason);
    assert_eq!(
        line("INSIDE_FIRST"),
        format!("a metro entry gate: a QR at T -> {a}; its inside feed, current, then lists the card; a new QR made at T+60 -> {b}; the next feed no longer lists it; that QR at T+100 -> {c}; again at T+101 -> {d}")
    );

    // Routes.
    let config = |route| ValidatorConfig {
        route,
        ..ValidatorConfig::default()
    };
    let mut w = world_with(
        Product::MonthlySingleRoute,
        Category::Standard,
        32,
        config(32),
    );
    let qr = w.phone.current_qr(T).unwrap().text;
    let a = decide(&mut w, &qr, T);
    let (_d, other) = vault();
    let mut bus_33 = thudo_core::transit::validator::Validator::open(
        other,
        vec![w.issuer.trusted().clone()],
        config(33),
    )
    .unwrap();
    let b = code(bus_33.validate(&qr, T).unwrap().reason);
    assert_eq!(
        line("SINGLE_ROUTE"),
        format!("a single-route pass for route 32: on route 32 -> {a}; on route 33 -> {b}")
    );
    let mut w = world_with(Product::DayPass, Category::Standard, 902, config(32));
    let (_g, mut entry) = gate(&w, 201, GateDirection::Entry);
    let qr = w.phone.current_qr(T).unwrap().text;
    let a = code(entry.validate(&qr, T).unwrap().reason);
    let b = decide(&mut w, &qr, T + 1);
    assert_eq!(
        line("LINE_TICKET"),
        format!("line 2A's day ticket (route 902): at a 902 entry gate -> {a}; on a route 32 bus -> {b}")
    );

    // The deny list's first version.
    let mut w = world();
    let none = w.validator.deny_list_status(T);
    let list = |version, issued_at: u64, cards: Vec<u64>| DenyList {
        version,
        issued_at: issued_at as u32,
        cards,
        devices: Vec::new(),
    };
    let v1 = w.issuer.sign_deny_list(&list(1, T, vec![])).unwrap();
    let installed = w.validator.update_deny_list(&v1).unwrap();
    let outcome = |w: &mut World, list: &[u8]| match w.validator.update_deny_list(list) {
        Ok(_) => "installed",
        Err(_) => "refused",
    };
    let again = outcome(&mut w, &v1);
    let resigned = w.issuer.sign_deny_list(&list(1, T + 60, vec![])).unwrap();
    let later = outcome(&mut w, &resigned);
    let card = w.phone.credential().unwrap().card_id;
    let v2 = w.issuer.sign_deny_list(&list(2, T, vec![card])).unwrap();
    w.validator.update_deny_list(&v2).unwrap();
    let qr = w.phone.current_qr(T).unwrap().text;
    let revoked = decide(&mut w, &qr, T);
    assert_eq!(
        line("DENY_FIRST"),
        format!(
            "no list: version {}, {}; list v1 issued at T: installed, version {installed}; v1 again -> {again}; v1 issued at T+60 -> {later}; v2 naming the card: installed, the card's QR -> {revoked}",
            none.version,
            if none.stale { "stale" } else { "fresh" }
        )
    );

    // Staleness, failing open and closed.
    let mut w = world();
    let old = w
        .issuer
        .sign_deny_list(&list(1, T - 86_400, vec![]))
        .unwrap();
    w.validator.update_deny_list(&old).unwrap();
    let fresh = |s: bool| if s { "stale" } else { "fresh" };
    let at_t = fresh(w.validator.deny_list_status(T).stale);
    let after = fresh(w.validator.deny_list_status(T + 1).stale);
    let (_c, closed_vault) = vault();
    let mut closed = thudo_core::transit::validator::Validator::open(
        closed_vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 32,
            fail_closed_when_stale: true,
            ..ValidatorConfig::default()
        },
    )
    .unwrap();
    closed.update_deny_list(&old).unwrap();
    let qr = w.phone.current_qr(T + 1).unwrap().text;
    let shut = code(closed.validate(&qr, T + 1).unwrap().reason);
    let open = decide(&mut w, &qr, T + 1);
    assert_eq!(
        line("DENY_STALE"),
        format!("list issued at T-86400: at T {at_t}; at T+1 {after}; fail closed -> {shut}; fail open -> {open}")
    );

    // The pass-ending warning.
    let w = world();
    let fields = w.phone.credential().unwrap();
    let shown = |product, until: u64| {
        let mut f = fields.clone();
        f.product = product;
        f.pass_valid_until = until as u32;
        let p = present(Reason::Ok, Some(&f), T);
        match p.signal {
            Signal::Go => "go".to_owned(),
            Signal::Warn if p.line_en.ends_with("today") => "warn, today".to_owned(),
            Signal::Warn => format!(
                "warn, {} days",
                p.line_en
                    .split_whitespace()
                    .find_map(|w| w.parse::<u64>().ok())
                    .unwrap()
            ),
            Signal::Stop => "stop".to_owned(),
        }
    };
    let all = Product::MonthlyAllRoutes;
    assert_eq!(
        line("PASS_ENDING"),
        format!(
            "pass ends at T+259200 -> {}; at T+259199 -> {}; at T+100 -> {}; a day pass ending at T+100 -> {}",
            shown(all, T + 259_200),
            shown(all, T + 259_199),
            shown(all, T + 100),
            shown(Product::DayPass, T + 100)
        )
    );

    // Category names.
    let names: Vec<String> = (0..=u8::MAX)
        .filter_map(Category::from_code)
        .map(|c| {
            let wire = serde_json::to_value(c).unwrap();
            format!("{} {} {}", c as u8, wire.as_str().unwrap(), c.label())
        })
        .collect();
    assert_eq!(line("CATEGORIES"), names.join("; "));
}

#[test]
fn the_documented_exchanges_parse_as_the_reference_sends_them() {
    let doc = block("feed-vector");
    let feed: ValidatorFeed = serde_json::from_str(&doc["FEED"]).unwrap();
    assert_eq!(feed.issuer_keys[0].public_key.len(), 65);
    assert_eq!(
        (feed.capped_cards.len(), feed.capped_until),
        (1, 1_790_009_999)
    );
    let upload: TapUpload = serde_json::from_str(&doc["TAP_UPLOAD"]).unwrap();
    assert!(upload.drained && upload.taps[0].qr.is_some());
    assert_eq!(upload.taps[0].reason, Reason::Ok);
    let receipt: TapReceipt = serde_json::from_str(&doc["TAP_RECEIPT"]).unwrap();
    assert_eq!(receipt.taps[0].seq, receipt.acknowledged_seq);
    let entries: EntryFeed = serde_json::from_str(&doc["ENTRY_FEED"]).unwrap();
    assert_eq!(entries.now - entries.complete_until, 5);
    // Each written back reads the same: no field the document names is ignored.
    for (key, value) in [
        ("FEED", serde_json::to_value(&feed).unwrap()),
        ("TAP_UPLOAD", serde_json::to_value(&upload).unwrap()),
        ("TAP_RECEIPT", serde_json::to_value(&receipt).unwrap()),
        ("ENTRY_FEED", serde_json::to_value(&entries).unwrap()),
    ] {
        let documented: serde_json::Value = serde_json::from_str(&doc[key]).unwrap();
        assert_eq!(value, documented, "{key}");
    }
}
