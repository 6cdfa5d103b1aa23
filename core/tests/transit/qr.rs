//! The QR itself: its size, its freshness, every byte signed, junk read without a panic.

use thudo_core::transit::validator::Reason;
use thudo_core::transit::wire::{self, PAYLOAD_LEN, QR_PREFIX, QR_TEXT_LEN};
use thudo_core::transit::Product;

use crate::world::{world, NOW};

#[test]
fn fresh_qr_is_accepted_and_fits_version_10_m() {
    let mut w = world();
    let qr = w.phone.current_qr(NOW).unwrap();
    assert_eq!(qr.text.len(), QR_TEXT_LEN);
    assert_eq!(QR_TEXT_LEN, 299);
    assert!(qr.text.starts_with(QR_PREFIX));
    assert!(qr
        .text
        .bytes()
        .all(|b| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&b)));
    assert!(qr.image.version <= 10, "version {}", qr.image.version);
    assert_eq!(qr.image.modules.len() as u32, qr.image.size * qr.image.size);
    assert!(qr.image.svg(256).starts_with("<?xml"));
    assert!(qr.image.png(4).unwrap().starts_with(b"\x89PNG"));
    assert!(qr.image.terminal().lines().count() as u32 >= qr.image.size / 2);
    let v = w.validator.validate(&qr.text, NOW + 1).unwrap();
    assert!(v.accepted, "{v:?}");
    assert_eq!(v.reason, Reason::Ok);
    assert_eq!(v.card_id, Some(9_704_000_000_123));
    assert_eq!(v.product, Some(Product::MonthlyAllRoutes));
    assert!(v.display.contains("liên tuyến"));
}

#[test]
fn replay_old_qr_and_clock_skew() {
    let mut w = world();
    let qr = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&qr.text, NOW).unwrap().accepted);
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 2).unwrap().reason,
        Reason::Replayed
    );

    // A QR from 10 minutes ago.
    let mut w = world();
    let old = w.phone.current_qr(NOW - 600).unwrap();
    assert_eq!(
        w.validator.validate(&old.text, NOW).unwrap().reason,
        Reason::Expired
    );

    // Validator clock 10 s behind or ahead: a fresh QR still passes.
    for skew in [-10i64, 10] {
        let mut w = world();
        let qr = w.phone.current_qr(NOW).unwrap();
        let v = w
            .validator
            .validate(&qr.text, (NOW as i64 + skew) as u64)
            .unwrap();
        assert!(v.accepted, "skew {skew}: {v:?}");
    }
    // A phone 60 s ahead of the validator.
    let mut w = world();
    let future = w.phone.current_qr(NOW + 60).unwrap();
    assert_eq!(
        w.validator.validate(&future.text, NOW).unwrap().reason,
        Reason::ClockSkew
    );
}

#[test]
fn every_single_byte_change_is_rejected() {
    let mut w = world();
    let qr = w.phone.current_qr(NOW).unwrap();
    let bytes = base45::decode(&qr.text[QR_PREFIX.len()..]).unwrap();
    assert_eq!(bytes.len(), PAYLOAD_LEN);
    let mut reasons = std::collections::HashMap::new();
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            let text = format!("{QR_PREFIX}{}", base45::encode(&bad));
            let v = w.validator.validate(&text, NOW).unwrap();
            assert!(!v.accepted, "byte {at} ^ {flip:#x} accepted");
            *reasons.entry(v.reason).or_insert(0) += 1;
        }
    }
    // The original still passes afterwards: mutations did not poison the replay memory.
    assert!(w.validator.validate(&qr.text, NOW).unwrap().accepted);
    for expected in [
        Reason::BadFormat,
        Reason::UnknownIssuer,
        Reason::BadIssuerSignature,
        Reason::BadDeviceSignature,
    ] {
        assert!(
            reasons.contains_key(&expected),
            "{expected:?} never seen: {reasons:?}"
        );
    }
}

#[test]
fn malformed_text_is_bad_format_without_panic() {
    let mut w = world();
    let qr = w.phone.current_qr(NOW).unwrap();
    let text = qr.text.clone();
    let mut cases: Vec<String> = vec![
        String::new(),
        "\n".into(),
        "HNT1:".into(),
        "hnt1:".to_string() + &text[5..],
        text[..text.len() - 1].to_string(),
        text[..text.len() - 3].to_string(),
        format!("{text}A"),
        format!("{text}AAA"),
        "x".repeat(1 << 20),
        format!("{QR_PREFIX}{}", "Đ".repeat(147)),
        text.replacen('A', "a", 1),
        format!("{}::{}", &text[..10], &text[12..]),
        format!("{QR_PREFIX}{}", "~".repeat(QR_TEXT_LEN - 5)),
        format!("{QR_PREFIX}{}", "ZZZ".repeat((QR_TEXT_LEN - 5) / 3)),
    ];
    // Every character position replaced by another base45 character.
    let alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    for at in (QR_PREFIX.len()..text.len()).step_by(7) {
        let c = text.as_bytes()[at] as char;
        let other = alphabet.chars().find(|&o| o != c).unwrap();
        let mut t = text.clone();
        t.replace_range(at..at + 1, &other.to_string());
        cases.push(t);
    }
    for case in &cases {
        let v = w.validator.validate(case, NOW).unwrap();
        assert!(!v.accepted, "accepted: {case:.40}");
    }
    for case in &cases[..10] {
        assert_eq!(
            w.validator.validate(case, NOW).unwrap().reason,
            Reason::BadFormat,
            "{case:.40}"
        );
    }
    assert!(w.validator.validate(&text, NOW).unwrap().accepted);
}

#[test]
fn wire_constants_and_message_layout() {
    assert_eq!(wire::CREDENTIAL_LEN, 124);
    assert_eq!(PAYLOAD_LEN, 196);
    let msg = wire::tap_message(&[0xAB; 124], 0x01020304, 0x0A0B0C0D);
    assert!(msg.starts_with(wire::TAP_TAG));
    assert!(msg.ends_with(&[1, 2, 3, 4, 10, 11, 12, 13]));
}
