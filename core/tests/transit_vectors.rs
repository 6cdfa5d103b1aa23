//! The test vector of docs/protocol/transit-qr.md, read from the document itself.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use thudo_core::transit::inspection::InspectionOutcome;
use thudo_core::transit::issuer::TrustedIssuerKey;
use thudo_core::transit::metro::{EntryFeed, Gate, GateDirection, MetroFares};
use thudo_core::transit::validator::Tap;
use thudo_core::transit::validator::{Reason, Validator, ValidatorConfig};
use thudo_core::transit::wire::{self, CredentialFields, Payload};
use thudo_core::transit::{Category, Product};
use thudo_core::vault::{Unlock, Vault};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vector() -> HashMap<String, String> {
    block("vector")
}

fn block(name: &str) -> std::collections::HashMap<String, String> {
    crate::common::transit_doc_block(name)
}

#[test]
fn documented_vector_decodes_verifies_and_is_exact() {
    let v = vector();
    let fields = CredentialFields {
        issuer_key_id: 0x0102,
        card_id: 9_704_123_456_789,
        product: Product::MonthlySingleRoute,
        category: Category::Priority,
        route: 32,
        pass_valid_from: 1_788_220_800,
        pass_valid_until: 1_790_812_799,
        not_after: 1_790_259_200,
        device_public_key: unhex(&v["DEVICE_PUB"]).try_into().unwrap(),
        with_holder: false,
    };
    assert_eq!(
        fields.encode().to_vec(),
        unhex(&v["BODY"]),
        "credential body is determined by the fields"
    );
    // A dependant's ticket that rides with its holder is version 2, byte for byte the same
    // otherwise; a version nobody defined is refused.
    let escorted = CredentialFields {
        with_holder: true,
        ..fields.clone()
    };
    let body = escorted.encode();
    assert_eq!(body[0], 2);
    assert_eq!(&body[1..], &unhex(&v["BODY"])[1..]);
    assert_eq!(CredentialFields::decode(&body), Ok(escorted));
    let mut unknown = body;
    unknown[0] = 3;
    assert_eq!(
        CredentialFields::decode(&unknown),
        Err(wire::FormatError::Version)
    );
    let credential = unhex(&v["CRED"]);
    assert_eq!(&credential[..60], &unhex(&v["BODY"])[..]);
    assert_eq!(
        wire::tap_message(&credential, 1_790_000_030, 257),
        unhex(&v["TAPMSG"])
    );

    let qr = &v["QR"];
    assert_eq!(qr.len(), 299);
    let payload = Payload::from_qr_text(qr).unwrap();
    assert_eq!(payload.fields, fields);
    assert_eq!(payload.timestamp, 1_790_000_030);
    assert_eq!(payload.counter, 257);
    assert_eq!(&payload.credential[..], &credential[..]);

    let dir = tempfile::tempdir().unwrap();
    let vault =
        Arc::new(Vault::open(dir.path(), Unlock::passphrase("v"), &common::fast()).unwrap());
    let trusted = TrustedIssuerKey {
        key_id: 0x0102,
        public_key: unhex(&v["ISSUER_PUB"]),
        valid_from: 1_780_000_000,
        valid_until: 1_800_000_000,
    };
    let mut validator = Validator::open(
        vault,
        vec![trusted],
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let verdict = validator.validate(qr, 1_790_000_040).unwrap();
    assert!(verdict.accepted, "{verdict:?}");
    assert_eq!(
        validator.validate(qr, 1_790_000_041).unwrap().reason,
        Reason::Replayed
    );
}

/// The issuer key of the vector.
fn trusted() -> TrustedIssuerKey {
    TrustedIssuerKey {
        key_id: 0x0102,
        public_key: unhex(&vector()["ISSUER_PUB"]),
        valid_from: 1_780_000_000,
        valid_until: 1_800_000_000,
    }
}

/// A validator over a new vault: a bus or inspector on `route`, or a gate.
fn validator(dir: &tempfile::TempDir, name: &str, route: u16, gate: Option<Gate>) -> Validator {
    let vault = Arc::new(
        Vault::open(
            dir.path().join(name),
            Unlock::passphrase("v"),
            &common::fast(),
        )
        .unwrap(),
    );
    Validator::open(
        vault,
        vec![trusted()],
        ValidatorConfig {
            route,
            gate,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The reason code a line of the block ends with (`... -> code`, or `-> outcome, code`).
fn expected(line: &str) -> &str {
    line.rsplit("-> ")
        .next()
        .unwrap()
        .rsplit(", ")
        .next()
        .unwrap()
}

fn code(reason: Reason) -> String {
    serde_json::to_value(reason)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn documented_inside_feed_vector_holds() {
    let v = block("inside-vector");
    let salt: [u8; 32] = unhex(&v["SALT"]).try_into().unwrap();
    let card: u64 = v["CARD"].parse().unwrap();
    let key = thudo_core::transit::metro::InsideKey::new(&salt);
    assert_eq!(thudo_core::hex::encode(&key.tag(card)), v["TAG"]);
    let qr = vector()["QR"].clone();
    let at = 1_790_000_040;
    let dir = tempfile::tempdir().unwrap();
    for (name, feed_key, line_key) in [
        ("inside", "INSIDE_FEED", "INSIDE"),
        ("old", "OLD_EXITS_FEED", "OLD_EXITS"),
    ] {
        let mut entry = validator(
            &dir,
            name,
            32,
            Some(Gate {
                station: 201,
                direction: GateDirection::Entry,
            }),
        );
        let feed: thudo_core::transit::metro::InsideFeed =
            serde_json::from_str(&v[feed_key]).unwrap();
        entry.apply_inside_feed(&feed, at).unwrap();
        assert_eq!(
            code(entry.validate(&qr, at).unwrap().reason),
            expected(&v[line_key]),
            "{name}"
        );
    }
}

#[test]
fn documented_gate_and_inspection_vectors_hold() {
    let g = block("gate-vector");
    let qr = vector()["QR"].clone();
    let at = 1_790_000_040;
    let dir = tempfile::tempdir().unwrap();
    let gate = |station, direction| Some(Gate { station, direction });

    // An entry gate checks the pass: a route-32 pass does not ride line 2A.
    let mut entry = validator(&dir, "entry", 902, gate(201, GateDirection::Entry));
    assert_eq!(
        code(entry.validate(&qr, at).unwrap().reason),
        expected(&g["ENTRY_GATE"])
    );

    // An exit gate with the entry in its feed lets the rider out, once.
    let mut exit = validator(&dir, "exit", 902, gate(205, GateDirection::Exit));
    let feed: EntryFeed = serde_json::from_str(&g["EXIT_FEED"]).unwrap();
    exit.apply_entry_feed(&feed, at).unwrap();
    assert_eq!(
        code(exit.validate(&qr, at).unwrap().reason),
        expected(&g["EXIT_GATE"])
    );
    let taps = exit.export_taps().unwrap();
    let documented: serde_json::Value =
        serde_json::from_str(&g["EXIT_TAP"].replace("$QR", &qr)).unwrap();
    assert_eq!(serde_json::to_value(&taps[0]).unwrap(), documented);
    assert_eq!(
        serde_json::from_value::<Tap>(documented).unwrap(),
        taps[0],
        "the documented upload reads back"
    );
    assert_eq!(
        code(exit.validate(&qr, at + 1).unwrap().reason),
        expected(&g["EXIT_AGAIN"])
    );

    // No entry: refused while the feed is current, let out when it is not.
    for (name, feed_key, line_key) in [
        ("fresh", "NO_ENTRY_FEED", "NO_ENTRY"),
        ("stale", "STALE_FEED", "STALE"),
    ] {
        let mut exit = validator(&dir, name, 902, gate(205, GateDirection::Exit));
        let feed: EntryFeed = serde_json::from_str(&g[feed_key]).unwrap();
        exit.apply_entry_feed(&feed, at).unwrap();
        assert_eq!(
            code(exit.validate(&qr, at).unwrap().reason),
            expected(&g[line_key]),
            "{name}"
        );
    }

    // The fare table's lookups.
    let fares = MetroFares::hanoi();
    let t = fares.in_force("2026-09-21").unwrap();
    let found = format!(
        "2026-09-21 201 -> 205 = {}, 201 -> 212 = {}, 201 -> 301 = {}, max at 205 = {}",
        t.fare(201, 205).unwrap(),
        t.fare(201, 212).unwrap(),
        t.fare(201, 301).map_or("none".into(), |f| f.to_string()),
        t.max_fare(205)
    );
    assert_eq!(found, g["FARE"]);

    // Inspection: paired with the vehicle's taps, or not.
    let card = 9_704_123_456_789;
    let vehicle_tap = |card_id: u64| Tap {
        seq: 1,
        at: 1_790_000_035,
        route: 32,
        accepted: true,
        reason: Reason::Ok,
        card_id: Some(card_id),
        product: None,
        qr_timestamp: None,
        qr_counter: None,
        qr: None,
        gate: None,
    };
    let mut inspector = validator(&dir, "inspector", 32, None);
    let paired = inspector
        .inspect(&qr, at, Some(&[vehicle_tap(card)]))
        .unwrap();
    assert_eq!(paired.outcome, InspectionOutcome::Valid);
    assert!(
        g["INSPECT_PAIRED"].ends_with(&format!("valid, tapped_at {}", paired.tapped_at.unwrap()))
    );
    let untapped = inspector
        .inspect(&qr, at, Some(&[vehicle_tap(42)]))
        .unwrap();
    assert_eq!(
        serde_json::to_value(untapped.outcome).unwrap(),
        expected(&g["INSPECT_UNTAPPED"])
    );
    let mut elsewhere = validator(&dir, "elsewhere", 33, None);
    let refused = elsewhere.inspect(&qr, at, None).unwrap();
    assert_eq!(refused.outcome, InspectionOutcome::Invalid);
    assert_eq!(code(refused.reason), expected(&g["INSPECT_ELSEWHERE"]));
}

#[test]
fn the_documented_message_table_is_the_code_s() {
    use thudo_core::transit::presentation::MESSAGES;
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol/transit-qr.md"),
    )
    .unwrap();
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `transit.") && l.matches(" | ").count() == 3)
        .collect();
    assert_eq!(rows.len(), MESSAGES.len(), "one row per message");
    for (key, args, vi, en) in MESSAGES {
        let row = format!("| `{key}` | {} | {vi} | {en} |", args.join(", "));
        assert!(rows.contains(&row.as_str()), "not documented: {row}");
    }
}

/// The vector's tap with its device signature's `s` replaced by `n - s` (`QR_HIGH_S`), and with
/// a scanner's line ending: other texts of the same tap. Each verifies once; the replay key is
/// the tap, not the text or the signature.
#[test]
fn other_texts_of_the_vectors_tap_ride_once() {
    // The order of P-256's group, big-endian.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let v = vector();
    let p = Payload::from_qr_text(&v["QR"]).unwrap();
    let mut flipped = p.device_signature;
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(p.device_signature[32 + i]) - borrow;
        flipped[32 + i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    assert_eq!(borrow, 0);
    assert_eq!(
        wire::qr_text(&p.credential, p.timestamp, p.counter, &flipped),
        v["QR_HIGH_S"]
    );
    let at = 1_790_000_040;
    let dir = tempfile::tempdir().unwrap();
    for (name, other) in [
        ("high-s", v["QR_HIGH_S"].clone()),
        ("crlf", format!("{}\r\n", v["QR"])),
    ] {
        let mut bus = validator(&dir, name, 32, None);
        let first = bus.validate(&other, at).unwrap();
        assert!(first.accepted, "{name}: {first:?}");
        assert_eq!(
            bus.validate(&v["QR"], at + 1).unwrap().reason,
            Reason::Replayed,
            "{name}"
        );
    }
    let mut bus = validator(&dir, "space", 32, None);
    assert_eq!(
        bus.validate(&format!("{} ", v["QR"]), at).unwrap().reason,
        Reason::BadFormat
    );
}

/// `DENY_LIST` is the documented bytes, signed by `DENY_PUB`; installed from the feed vector,
/// it refuses the vector's QR by its device key's hash.
#[test]
fn the_documented_feed_revokes_the_vectors_device() {
    use thudo_core::transit::backend::ValidatorFeed;
    use thudo_core::transit::validator::DenyList;
    let v = vector();
    let feed: ValidatorFeed = serde_json::from_str(&block("feed-vector")["FEED"]).unwrap();
    assert_eq!(feed.deny_list, v["DENY_LIST"]);
    assert_eq!(feed.issuer_keys[0], trusted());
    assert_eq!(feed.issuer_keys[1].public_key, unhex(&v["DENY_PUB"]));
    let device = unhex(&v["DEVICE_PUB"]);
    assert_eq!(
        thudo_core::hex::encode(&DenyList::device_hash(&device)),
        "e5c0437128755f40eefb0d3434c3e1f39b59427f0595870ec33118889a80c4c4"
    );
    let body = DenyList {
        version: 2,
        issued_at: 1_790_000_000,
        cards: vec![9_704_000_000_999],
        devices: vec![DenyList::device_hash(&device)],
    }
    .encode(0x0103);
    let signed = unhex(&v["DENY_LIST"]);
    assert_eq!(&signed[..signed.len() - 64], &body[..]);

    let at = 1_790_000_040;
    let dir = tempfile::tempdir().unwrap();
    let mut bus = validator(&dir, "bus", 32, None);
    bus.set_trusted_keys(feed.issuer_keys.clone()).unwrap();
    assert_eq!(bus.update_deny_list(&signed).unwrap(), 2);
    assert_eq!(bus.validate(&v["QR"], at).unwrap().reason, Reason::Revoked);
    // A list whose signature does not hold is refused and changes nothing.
    let mut forged = signed.clone();
    forged[10] ^= 1;
    let mut other = validator(&dir, "other", 32, None);
    other.set_trusted_keys(feed.issuer_keys).unwrap();
    assert!(other.update_deny_list(&forged).is_err());
    assert!(other.validate(&v["QR"], at).unwrap().accepted);
}
