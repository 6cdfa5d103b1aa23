//! Transit: issuer, phone and validator together, good input and bad.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::sync::Arc;

use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::transit::issuer::{CredentialRequest, IssuerKey};
use thudo_core::transit::metro::{EntryFeed, Gate, GateDirection, GateEntry};
use thudo_core::transit::phone::{Phone, PhoneOptions, Signer};
use thudo_core::transit::presentation::Signal;
use thudo_core::transit::validator::{DenyList, Reason, Validator, ValidatorConfig};
use thudo_core::transit::wire::{self, Payload, PAYLOAD_LEN, QR_PREFIX, QR_TEXT_LEN};
use thudo_core::transit::{Category, Product, TransitError};
use thudo_core::vault::{Unlock, Vault};

const NOW: u64 = 1_790_000_000; // 2026-09-21
const DAY: u32 = 86_400;

struct World {
    _dirs: Vec<tempfile::TempDir>,
    issuer: IssuerKey,
    phone: Phone,
    phone_vault: Arc<Vault>,
    validator: Validator,
    validator_vault: Arc<Vault>,
}

fn vault() -> (tempfile::TempDir, Arc<Vault>) {
    let dir = tempfile::tempdir().unwrap();
    let v = Vault::open(
        dir.path(),
        Unlock::Provider(common::TestProvider::new("k")),
        &common::fast(),
    )
    .unwrap();
    (dir, Arc::new(v))
}

fn request(phone: &Phone, product: Product, category: Category, route: u16) -> CredentialRequest {
    CredentialRequest {
        card_id: 9_704_000_000_123,
        product,
        category,
        route,
        pass_valid_from: NOW as u32 - 10 * DAY,
        pass_valid_until: NOW as u32 + 20 * DAY,
        device_public_key: phone.device_public_key().to_vec(),
        lifetime_secs: 72 * 3600,
    }
}

fn world_with(product: Product, category: Category, route: u16, config: ValidatorConfig) -> World {
    let (d1, phone_vault) = vault();
    let (d2, validator_vault) = vault();
    let (issuer, _) =
        IssuerKey::generate(7, NOW as u32 - 30 * DAY, NOW as u32 + 300 * DAY).unwrap();
    let phone = Phone::open(phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    let credential = issuer
        .issue(&request(&phone, product, category, route), NOW as u32)
        .unwrap();
    phone.install_credential(&credential).unwrap();
    let validator = Validator::open(
        validator_vault.clone(),
        vec![issuer.trusted().clone()],
        config,
    )
    .unwrap();
    World {
        _dirs: vec![d1, d2],
        issuer,
        phone,
        phone_vault,
        validator,
        validator_vault,
    }
}

fn world() -> World {
    world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
}

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
fn issuer_trust_signatures_and_deny_list() {
    let mut w = world();
    // Same key id, another key: bad issuer signature.
    let (impostor, _) = IssuerKey::generate(7, NOW as u32 - DAY, NOW as u32 + DAY).unwrap();
    let forged = impostor
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            NOW as u32,
        )
        .unwrap();
    w.phone.install_credential(&forged).unwrap();
    let qr = w.phone.current_qr(NOW).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW).unwrap().reason,
        Reason::BadIssuerSignature
    );
    // Unknown key id.
    let (other, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + DAY).unwrap();
    w.phone
        .install_credential(
            &other
                .issue(
                    &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
                    NOW as u32,
                )
                .unwrap(),
        )
        .unwrap();
    let qr = w.phone.current_qr(NOW + 10).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 10).unwrap().reason,
        Reason::UnknownIssuer
    );
    // Trusting both keys (rotation with overlap): accepted.
    w.validator
        .set_trusted_keys(vec![w.issuer.trusted().clone(), other.trusted().clone()])
        .unwrap();
    assert!(w.validator.validate(&qr.text, NOW + 10).unwrap().accepted);
    // The key's window has closed.
    let after_window = NOW + u64::from(DAY) + 100;
    assert_eq!(
        w.validator.validate(&qr.text, after_window).unwrap().reason,
        Reason::IssuerKeyExpired
    );

    // Deny list: signed by a trusted key, versioned, atomic.
    let mut w = world();
    let card = w.phone.credential().unwrap().card_id;
    let list = DenyList {
        version: 3,
        issued_at: NOW as u32,
        cards: vec![card],
        devices: vec![],
    };
    let signed = w.issuer.sign_deny_list(&list).unwrap();
    let mut tampered = signed.clone();
    tampered[20] ^= 1;
    assert!(w.validator.update_deny_list(&tampered).is_err());
    assert!(w
        .validator
        .update_deny_list(&signed[..signed.len() - 1])
        .is_err());
    assert!(w
        .validator
        .update_deny_list(&impostor.sign_deny_list(&list).unwrap())
        .is_err());
    assert_eq!(
        w.validator.deny_list_version(),
        0,
        "bad lists change nothing"
    );
    let qr = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&qr.text, NOW).unwrap().accepted);
    assert_eq!(w.validator.update_deny_list(&signed).unwrap(), 3);
    let qr = w.phone.current_qr(NOW + 200).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 200).unwrap().reason,
        Reason::Revoked
    );
    // Older or equal versions are refused (no rollback).
    let older = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 2,
            ..Default::default()
        })
        .unwrap();
    assert!(w.validator.update_deny_list(&older).is_err());
    assert!(w.validator.update_deny_list(&signed).is_err());
    // Devices can be revoked too, and the list survives a restart.
    let device = DenyList::device_hash(&w.phone.device_public_key());
    let v4 = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 4,
            issued_at: NOW as u32,
            cards: vec![],
            devices: vec![device],
        })
        .unwrap();
    w.validator.update_deny_list(&v4).unwrap();
    let mut reopened = Validator::open(
        w.validator_vault.clone(),
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    assert_eq!(reopened.deny_list_version(), 4);
    let qr = w.phone.current_qr(NOW + 400).unwrap();
    assert_eq!(
        reopened.validate(&qr.text, NOW + 400).unwrap().reason,
        Reason::Revoked
    );
}

#[test]
fn passback_route_and_validity_rules() {
    let mut w = world();
    let first = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&first.text, NOW).unwrap().accepted);
    let second = w.phone.current_qr(NOW + 30).unwrap();
    assert_ne!(first.text, second.text);
    assert_eq!(
        w.validator.validate(&second.text, NOW + 30).unwrap().reason,
        Reason::Passback
    );
    let later = w.phone.current_qr(NOW + 130).unwrap();
    assert!(
        w.validator
            .validate(&later.text, NOW + 130)
            .unwrap()
            .accepted
    );

    // Single-route pass on route 32, validator on route 32 then on route 18.
    let mut w = world_with(
        Product::MonthlySingleRoute,
        Category::Priority,
        32,
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    );
    assert!(
        w.validator
            .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .accepted
    );
    let mut w = world_with(
        Product::MonthlySingleRoute,
        Category::Priority,
        32,
        ValidatorConfig {
            route: 18,
            ..Default::default()
        },
    );
    assert_eq!(
        w.validator
            .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .reason,
        Reason::WrongRoute
    );

    // Free riders ride everywhere.
    let mut w = world_with(
        Product::FreePass,
        Category::Elderly,
        0,
        ValidatorConfig {
            route: 5,
            ..Default::default()
        },
    );
    let v = w
        .validator
        .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert!(v.accepted);
    assert!(v.display.contains("Người cao tuổi"));

    // Pass not yet valid / ended; credential expired.
    let mut w = world();
    let mut req = request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0);
    req.pass_valid_from = NOW as u32 + 100;
    w.phone
        .install_credential(&w.issuer.issue(&req, NOW as u32).unwrap())
        .unwrap();
    assert_eq!(
        w.validator
            .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .reason,
        Reason::NotYetValid
    );
    req.pass_valid_from = NOW as u32 - 100;
    req.pass_valid_until = NOW as u32 - 1;
    w.phone
        .install_credential(&w.issuer.issue(&req, NOW as u32).unwrap())
        .unwrap();
    assert_eq!(
        w.validator
            .validate(&w.phone.current_qr(NOW + 5).unwrap().text, NOW + 5)
            .unwrap()
            .reason,
        Reason::PassExpired
    );
    req.pass_valid_until = NOW as u32 + DAY;
    req.lifetime_secs = 60;
    w.phone
        .install_credential(&w.issuer.issue(&req, NOW as u32).unwrap())
        .unwrap();
    let qr = w.phone.current_qr(NOW + 50).unwrap();
    assert_eq!(
        w.validator.validate(&qr.text, NOW + 61).unwrap().reason,
        Reason::CredentialExpired
    );
    assert!(matches!(
        w.phone.current_qr(NOW + 61),
        Err(TransitError::CredentialExpired { .. })
    ));
}

#[test]
fn tap_log_is_durable_and_restores_replay_memory() {
    let mut w = world();
    let qr = w.phone.current_qr(NOW).unwrap();
    // `validate` returns once the tap is committed: no flush needed before a crash.
    assert!(w.validator.validate(&qr.text, NOW).unwrap().accepted);
    w.validator.validate("garbage", NOW).unwrap();
    let reopen = || {
        Validator::open(
            w.validator_vault.clone(),
            vec![w.issuer.trusted().clone()],
            ValidatorConfig::default(),
        )
        .unwrap()
    };
    // A reboot: replay and passback memory come back from the tap log.
    let mut again = reopen();
    assert_eq!(
        again.validate(&qr.text, NOW + 5).unwrap().reason,
        Reason::Replayed
    );
    let taps = again.export_taps().unwrap();
    assert_eq!(taps.iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(taps[0].accepted);
    assert_eq!(taps[1].reason, Reason::Replayed);
    // The unreadable scan is counted, not logged.
    assert_eq!(again.tap_log_status().unreadable_scans, 1);
    assert_eq!(again.acknowledge_taps(1).unwrap(), 1);
    assert_eq!(again.export_taps().unwrap().len(), 1);
    // Everything acknowledged, then a reboot: numbering goes on (the backend would drop a
    // reused number as a duplicate), and the QR seconds ago is still a replay.
    assert_eq!(again.acknowledge_taps(2).unwrap(), 1);
    assert!(again.export_taps().unwrap().is_empty());
    drop(again);
    let mut third = reopen();
    assert_eq!(third.tap_log_status().next_seq, 3);
    assert_eq!(
        third.validate(&qr.text, NOW + 10).unwrap().reason,
        Reason::Replayed
    );
    assert_eq!(third.export_taps().unwrap()[0].seq, 3);
    // Long after the window (and the 3 hours kept for inspectors pairing with this
    // vehicle), acknowledged taps leave the disk.
    let later = w.phone.current_qr(NOW + 4 * 3600).unwrap();
    assert!(
        third
            .validate(&later.text, NOW + 4 * 3600)
            .unwrap()
            .accepted
    );
    third.acknowledge_taps(4).unwrap();
    assert_eq!(w.validator_vault.count("transit.tap").unwrap(), 1);
    // Card ids in the tap log are encrypted at rest.
    let db = std::fs::read(thudo_core::vault::database_path(w._dirs[1].path())).unwrap();
    assert!(!db.windows(13).any(|win| win == b"9704000000123"));
}

#[test]
fn junk_scans_are_counted_and_rejected_taps_are_bounded() {
    let mut w = world();
    for i in 0..3_000 {
        w.validator
            .validate_deferred(&format!("HNT1:junk{i}"), NOW)
            .unwrap();
    }
    w.validator.flush().unwrap();
    assert_eq!(w.validator_vault.count("transit.tap").unwrap(), 0);
    assert_eq!(w.validator.tap_log_status().unreadable_scans, 3_000);
    // Readable but refused scans are evidence, logged up to a bound between uploads.
    let qr = w.phone.current_qr(NOW).unwrap();
    let stale = NOW + 3_600; // every scan below is an expired QR
    let limit = thudo_core::transit::validator::MAX_LOGGED_REJECTED;
    for _ in 0..limit + 25 {
        w.validator.validate_deferred(&qr.text, stale).unwrap();
    }
    w.validator.flush().unwrap();
    assert_eq!(w.validator_vault.count("transit.tap").unwrap(), limit);
    let status = w.validator.tap_log_status();
    assert_eq!(status.rejected_not_logged, 25);
    // Export reads the log a page at a time, an upload's worth.
    assert_eq!(
        w.validator.export_taps().unwrap().len(),
        thudo_core::transit::validator::TAP_EXPORT_LIMIT
    );
    // After an upload, rejected taps are logged again; an accepted tap always is.
    w.validator.acknowledge_taps(status.next_seq - 1).unwrap();
    let fresh = w.phone.current_qr(stale).unwrap();
    assert!(w.validator.validate(&fresh.text, stale).unwrap().accepted);
    assert_eq!(w.validator.export_taps().unwrap().len(), 1);
}

struct HostSigner(SoftwareKey);

impl Signer for HostSigner {
    fn public_key(&self) -> Result<Vec<u8>, String> {
        Ok(self.0.public_key().to_vec())
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        // Keystores return DER.
        let raw = self.0.sign(message).ok_or("sign failed")?;
        Ok(p256::ecdsa::Signature::from_slice(&raw)
            .unwrap()
            .to_der()
            .as_bytes()
            .to_vec())
    }
}

#[test]
fn phone_refresh_counter_offset_expiry_and_host_signer() {
    let w = world();
    let a = w.phone.current_qr(NOW).unwrap();
    let b = w.phone.current_qr(NOW + 2).unwrap();
    assert_eq!(a.text, b.text, "same QR within the refresh period");
    let c = w.phone.current_qr(NOW + 5).unwrap();
    assert_ne!(a.text, c.text);
    let pa = Payload::from_qr_text(&a.text).unwrap();
    let pc = Payload::from_qr_text(&c.text).unwrap();
    assert_eq!(pc.counter, pa.counter + 1);
    // The counter survives a restart.
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(reopened.device_public_key(), w.phone.device_public_key());
    let d = Payload::from_qr_text(&reopened.current_qr(NOW + 10).unwrap().text).unwrap();
    assert!(d.counter > pc.counter);
    // Clock offset learned at sync corrects the timestamp.
    reopened.set_clock_offset(-7).unwrap();
    let e = Payload::from_qr_text(&reopened.current_qr(NOW + 20).unwrap().text).unwrap();
    assert_eq!(u64::from(e.timestamp), NOW + 13);
    // Expiry warning within 6 h of not-after.
    let late = reopened.current_qr(NOW + 70 * 3600).unwrap();
    assert!(late.expiry_warning);
    assert!(!c.expiry_warning);

    // Errors: no credential, credential of another device, garbage.
    let (_d, v) = vault();
    let fresh = Phone::open(v, None, PhoneOptions::default()).unwrap();
    assert!(matches!(
        fresh.current_qr(NOW),
        Err(TransitError::NoCredential)
    ));
    let foreign = w
        .issuer
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            NOW as u32,
        )
        .unwrap();
    assert!(matches!(
        fresh.install_credential(&foreign),
        Err(TransitError::InvalidCredential { .. })
    ));
    assert!(matches!(
        fresh.install_credential(&[1, 2, 3]),
        Err(TransitError::InvalidCredential { .. })
    ));
    assert!(Phone::open(
        w.phone_vault.clone(),
        None,
        PhoneOptions {
            refresh_secs: 0,
            ..Default::default()
        }
    )
    .is_err());

    // A host signer (DER signatures) works end to end.
    let (_d, v) = vault();
    let (key, _) = SoftwareKey::generate().unwrap();
    let phone = Phone::open(v, Some(Arc::new(HostSigner(key))), PhoneOptions::default()).unwrap();
    phone
        .install_credential(
            &w.issuer
                .issue(
                    &request(&phone, Product::PayAsYouGo, Category::Standard, 0),
                    NOW as u32,
                )
                .unwrap(),
        )
        .unwrap();
    let mut validator = Validator::open(
        vault().1,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    assert!(
        validator
            .validate(&phone.current_qr(NOW).unwrap().text, NOW)
            .unwrap()
            .accepted
    );
}

#[test]
fn issuer_refuses_nonsense_requests() {
    let w = world();
    let base = request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0);
    let cases: Vec<(&str, CredentialRequest)> = vec![
        (
            "free pass for a payer",
            CredentialRequest {
                product: Product::FreePass,
                ..base.clone()
            },
        ),
        (
            "monthly for a free rider",
            CredentialRequest {
                category: Category::Child,
                ..base.clone()
            },
        ),
        (
            "single route without route",
            CredentialRequest {
                product: Product::MonthlySingleRoute,
                ..base.clone()
            },
        ),
        (
            "route on all-routes pass",
            CredentialRequest {
                route: 12,
                ..base.clone()
            },
        ),
        (
            "validity reversed",
            CredentialRequest {
                pass_valid_until: base.pass_valid_from,
                ..base.clone()
            },
        ),
        (
            "lifetime 0",
            CredentialRequest {
                lifetime_secs: 0,
                ..base.clone()
            },
        ),
        (
            "lifetime > 72 h",
            CredentialRequest {
                lifetime_secs: 73 * 3600,
                ..base.clone()
            },
        ),
        (
            "device key not a point",
            CredentialRequest {
                device_public_key: [vec![2], vec![0xff; 32]].concat(),
                ..base.clone()
            },
        ),
        (
            "device key empty",
            CredentialRequest {
                device_public_key: vec![],
                ..base.clone()
            },
        ),
    ];
    for (what, req) in cases {
        assert!(
            matches!(
                w.issuer.issue(&req, NOW as u32),
                Err(TransitError::InvalidRequest { .. })
            ),
            "{what}"
        );
    }
    assert!(
        w.issuer.issue(&base, NOW as u32 + 400 * DAY).is_err(),
        "issuer key expired"
    );
    assert!(IssuerKey::generate(1, 10, 5).is_err());
    assert!(IssuerKey::from_pkcs8(b"junk", 1, 0, 10).is_err());
}

#[test]
fn wire_constants_and_message_layout() {
    assert_eq!(wire::CREDENTIAL_LEN, 124);
    assert_eq!(PAYLOAD_LEN, 196);
    let msg = wire::tap_message(&[0xAB; 124], 0x01020304, 0x0A0B0C0D);
    assert!(msg.starts_with(wire::TAP_TAG));
    assert!(msg.ends_with(&[1, 2, 3, 4, 10, 11, 12, 13]));
}

#[test]
fn key_rotation_with_overlap() {
    use thudo_core::transit::issuer::IssuerKeyring;
    let t0 = NOW as u32;
    let (old, _) = IssuerKey::generate(1, t0 - 100 * DAY, t0 + 10 * DAY).unwrap();
    let (new, _) = IssuerKey::generate(2, t0 + 5 * DAY, t0 + 400 * DAY).unwrap();
    let ring = IssuerKeyring::new(vec![old, new]).unwrap();
    assert_eq!(ring.signing_key(t0).unwrap().trusted().key_id, 1);
    assert_eq!(
        ring.signing_key(t0 + 6 * DAY).unwrap().trusted().key_id,
        2,
        "the newer key signs in the overlap"
    );
    assert_eq!(
        ring.trusted_keys(t0).len(),
        2,
        "validators learn the next key early"
    );
    assert_eq!(ring.trusted_keys(t0 + 11 * DAY).len(), 1);
    assert!(ring.signing_key(t0 + 500 * DAY).is_none());
    let (a, _) = IssuerKey::generate(3, 0, 10).unwrap();
    let (b, _) = IssuerKey::generate(3, 0, 10).unwrap();
    assert!(IssuerKeyring::new(vec![a, b]).is_err());

    // A credential signed by the old key just before the switch still passes during the overlap.
    let w = world();
    let (_d, v) = vault();
    let before = ring.signing_key(t0 + 4 * DAY).unwrap();
    let credential = before
        .issue(
            &request(&w.phone, Product::MonthlyAllRoutes, Category::Standard, 0),
            t0 + 4 * DAY,
        )
        .unwrap();
    w.phone.install_credential(&credential).unwrap();
    let mut validator = Validator::open(
        v,
        ring.trusted_keys(t0 + 4 * DAY),
        ValidatorConfig::default(),
    )
    .unwrap();
    let at = u64::from(t0 + 6 * DAY);
    let qr = w.phone.current_qr(at).unwrap();
    assert!(validator.validate(&qr.text, at).unwrap().accepted);
}

#[test]
fn stale_deny_list_is_reported_and_fails_closed_only_when_configured() {
    let list = |issuer: &IssuerKey, version: u32, issued_at: u32| {
        issuer
            .sign_deny_list(&DenyList {
                version,
                issued_at,
                cards: vec![],
                devices: vec![],
            })
            .unwrap()
    };
    // Fail open (the default): a validator without a list, or with an old one, says so and
    // still lets riders in.
    let mut open = world();
    let status = open.validator.deny_list_status(NOW);
    assert!(status.stale && status.version == 0 && !status.needs_refresh);
    let issued = NOW as u32 - 2 * DAY;
    open.validator
        .update_deny_list(&list(&open.issuer, 2, issued))
        .unwrap();
    let status = open.validator.deny_list_status(NOW);
    assert_eq!((status.version, status.age_secs), (2, 2 * u64::from(DAY)));
    assert!(status.stale, "older than the default 24 hours");
    let qr = open.phone.current_qr(NOW).unwrap();
    assert!(open.validator.validate(&qr.text, NOW).unwrap().accepted);

    // Fail closed: refused until a fresh list arrives, then accepted.
    let mut closed = world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            max_deny_list_age_secs: 3600,
            fail_closed_when_stale: true,
            ..Default::default()
        },
    );
    let qr = closed.phone.current_qr(NOW).unwrap();
    let verdict = closed.validator.validate(&qr.text, NOW).unwrap();
    assert_eq!(verdict.reason, Reason::DenyListStale);
    assert!(!verdict.accepted);
    closed
        .validator
        .update_deny_list(&list(&closed.issuer, 2, NOW as u32 - 7200))
        .unwrap();
    let qr = closed.phone.current_qr(NOW + 1).unwrap();
    assert_eq!(
        closed.validator.validate(&qr.text, NOW + 1).unwrap().reason,
        Reason::DenyListStale,
        "two hours old with a one-hour limit"
    );
    closed
        .validator
        .update_deny_list(&list(&closed.issuer, 3, NOW as u32 - 60))
        .unwrap();
    assert!(!closed.validator.deny_list_status(NOW + 2).stale);
    let qr = closed.phone.current_qr(NOW + 2).unwrap();
    assert!(
        closed
            .validator
            .validate(&qr.text, NOW + 2)
            .unwrap()
            .accepted
    );
}

#[test]
fn a_key_rotation_never_bricks_a_validator() {
    let mut w = world();
    let revoked: u64 = 9_704_000_000_123;
    let signed = w
        .issuer
        .sign_deny_list(&DenyList {
            version: 5,
            issued_at: NOW as u32,
            cards: vec![revoked],
            devices: vec![],
        })
        .unwrap();
    w.validator.update_deny_list(&signed).unwrap();
    let qr = w.phone.current_qr(NOW).unwrap();
    assert!(w.validator.validate(&qr.text, NOW).unwrap().reason == Reason::Revoked);
    w.validator.flush().unwrap();
    drop(w.validator);

    // The issuer rotated: the old key is no longer trusted. The validator still starts, keeps
    // its tap log and the revocations it had, and asks for a fresh list.
    let (new_issuer, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + 300 * DAY).unwrap();
    let mut v = Validator::open(
        w.validator_vault.clone(),
        vec![new_issuer.trusted().clone()],
        ValidatorConfig {
            route: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let status = v.deny_list_status(NOW);
    assert!(status.needs_refresh);
    assert_eq!(status.version, 5, "the version floor survives");
    assert_eq!(v.export_taps().unwrap().len(), 1, "the tap log is kept");
    // An older list signed by the new key is still refused (no rollback), a newer one heals.
    let list = |version: u32, cards: Vec<u64>| {
        new_issuer
            .sign_deny_list(&DenyList {
                version,
                issued_at: NOW as u32,
                cards,
                devices: vec![],
            })
            .unwrap()
    };
    assert!(v.update_deny_list(&list(4, vec![])).is_err());
    v.update_deny_list(&list(6, vec![revoked])).unwrap();
    assert!(!v.deny_list_status(NOW).needs_refresh);
}

/// The same credential with a fresh QR signed by `key` (the phone's or someone else's).
fn qr_signed_by(w: &World, key: &SoftwareKey, at: u32, counter: u32) -> String {
    let p = Payload::from_qr_text(&w.phone.current_qr(u64::from(at)).unwrap().text).unwrap();
    let sig = key
        .sign(&wire::tap_message(&p.credential, at, counter))
        .unwrap();
    wire::qr_text(&p.credential, at, counter, &sig)
}

/// A monthly all-routes rider and a route-32 bus that lets the same card in again at once.
fn world_without_passback() -> World {
    world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            passback_secs: 0,
            ..Default::default()
        },
    )
}

#[test]
fn a_repeat_rider_is_checked_again_in_full_where_it_matters() {
    let mut w = world_without_passback();
    // First ride: both signatures checked; the credential is remembered.
    let first = w.phone.current_qr(NOW).unwrap().text;
    assert!(w.validator.validate(&first, NOW).unwrap().accepted);
    // The same credential in a QR a thief signed with another key: the phone's signature is
    // still checked on every ride.
    let (thief, _) = SoftwareKey::generate().unwrap();
    let forged = qr_signed_by(&w, &thief, NOW as u32 + 5, 999);
    assert_eq!(
        w.validator.validate(&forged, NOW + 5).unwrap().reason,
        Reason::BadDeviceSignature
    );
    // A credential whose body matches but whose issuer signature was altered is not the
    // remembered one: it is checked in full and refused.
    let mut bytes = Payload::from_qr_text(&w.phone.current_qr(NOW + 10).unwrap().text)
        .unwrap()
        .to_bytes();
    bytes[wire::CREDENTIAL_LEN - 1] ^= 1;
    let altered = Payload::decode(&bytes).unwrap().qr_text();
    assert_eq!(
        w.validator.validate(&altered, NOW + 10).unwrap().reason,
        Reason::BadIssuerSignature
    );
    // Revoked: refused though remembered (and the new deny list empties the memory).
    let list = DenyList {
        version: 2,
        issued_at: NOW as u32,
        cards: vec![9_704_000_000_123],
        devices: vec![],
    };
    w.validator
        .update_deny_list(&w.issuer.sign_deny_list(&list).unwrap())
        .unwrap();
    let next = w.phone.current_qr(NOW + 20).unwrap().text;
    assert_eq!(
        w.validator.validate(&next, NOW + 20).unwrap().reason,
        Reason::Revoked
    );
    // The issuer's key no longer trusted: a remembered credential is refused too.
    let mut w = world_without_passback();
    let first = w.phone.current_qr(NOW).unwrap().text;
    assert!(w.validator.validate(&first, NOW).unwrap().accepted);
    let (other, _) = IssuerKey::generate(8, NOW as u32 - DAY, NOW as u32 + DAY).unwrap();
    w.validator
        .set_trusted_keys(vec![other.trusted().clone()])
        .unwrap();
    let again = w.phone.current_qr(NOW + 30).unwrap().text;
    assert_eq!(
        w.validator.validate(&again, NOW + 30).unwrap().reason,
        Reason::UnknownIssuer
    );
}

#[test]
fn an_inspection_uses_nothing_and_sees_whether_the_card_tapped_here() {
    use thudo_core::transit::inspection::InspectionOutcome;
    let mut w = world();
    let (_d, inspector_vault) = vault();
    let mut inspector = Validator::open(
        inspector_vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig::default(),
    )
    .unwrap();
    // Inspected twice, then tapped: the ticket was not used by the inspections.
    let qr = w.phone.current_qr(NOW).unwrap().text;
    for _ in 0..2 {
        let i = inspector.inspect(&qr, NOW + 1, None).unwrap();
        assert_eq!(
            (i.outcome, i.reason),
            (InspectionOutcome::Valid, Reason::Ok)
        );
        assert_eq!(i.card_id, Some(9_704_000_000_123));
        assert_eq!(i.product, Some(Product::MonthlyAllRoutes));
        assert!(!i.paired);
    }
    assert_eq!(inspector.tap_log_status().next_seq, 1, "no tap logged");
    assert!(w.validator.validate(&qr, NOW + 2).unwrap().accepted);
    // Paired with the bus's log: this card tapped on it.
    let bus_taps = w.validator.recent_taps(NOW - 3600).unwrap();
    let later = w.phone.current_qr(NOW + 600).unwrap().text;
    let i = inspector
        .inspect(&later, NOW + 600, Some(&bus_taps))
        .unwrap();
    assert_eq!(i.outcome, InspectionOutcome::Valid);
    assert_eq!(i.tapped_at, Some(NOW + 2));
    assert_eq!(i.presentation(NOW + 600).line_en, "Valid ticket");
    // A rider who never tapped on this bus, or tapped more than three hours ago.
    let i = inspector.inspect(&later, NOW + 600, Some(&[])).unwrap();
    assert_eq!(i.outcome, InspectionOutcome::NotTapped);
    let much_later = w.phone.current_qr(NOW + 4 * 3600).unwrap().text;
    let i = inspector
        .inspect(&much_later, NOW + 4 * 3600, Some(&bus_taps))
        .unwrap();
    assert_eq!(
        (i.outcome, i.tapped_at),
        (InspectionOutcome::NotTapped, None)
    );
    // A screenshot (an old QR) and junk are invalid, with the reason.
    let i = inspector.inspect(&qr, NOW + 600, None).unwrap();
    assert_eq!(
        (i.outcome, i.reason),
        (InspectionOutcome::Invalid, Reason::Expired)
    );
    let i = inspector.inspect("not a ticket", NOW + 600, None).unwrap();
    assert_eq!((i.outcome, i.card_id), (InspectionOutcome::Invalid, None));
    assert_eq!(
        i.presentation(NOW).signal,
        thudo_core::transit::presentation::Signal::Stop
    );
    // Every inspection is recorded; acknowledged ones go, and numbers are never reused.
    // Junk is shown but not recorded (seq 0): it cannot fill the log.
    assert_eq!(i.seq, 0);
    let recorded = inspector.export_inspections().unwrap();
    assert_eq!(
        recorded.iter().map(|i| i.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(inspector.acknowledge_inspections(5).unwrap(), 5);
    let i = inspector.inspect(&later, NOW + 601, None).unwrap();
    assert_eq!(i.seq, 7);
    assert_eq!(inspector.export_inspections().unwrap().len(), 2);
    // The vehicle keeps its taps for pairing after they are uploaded and acknowledged.
    let seq = w.validator.tap_log_status().next_seq - 1;
    w.validator.acknowledge_taps(seq).unwrap();
    assert!(w.validator.export_taps().unwrap().is_empty());
    let recent = w.validator.recent_taps(NOW).unwrap();
    assert_eq!(recent.len(), 1);
    let i = inspector.inspect(&later, NOW + 602, Some(&recent)).unwrap();
    assert_eq!(
        (i.outcome, i.tapped_at),
        (InspectionOutcome::Valid, Some(NOW + 2))
    );
    // A vehicle clock a little ahead of the inspector's still counts its tap.
    let i = inspector.inspect(&later, NOW, Some(&recent)).unwrap();
    assert_eq!(i.tapped_at, Some(NOW + 2));
}

/// A gate validator at `station` trusting the world's issuer, over a new vault.
fn gate(w: &World, station: u16, direction: GateDirection) -> (tempfile::TempDir, Validator) {
    let (dir, v) = vault();
    (dir, gate_over(w, v, station, direction))
}

fn gate_over(w: &World, vault: Arc<Vault>, station: u16, direction: GateDirection) -> Validator {
    Validator::open(
        vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 902,
            gate: Some(Gate { station, direction }),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn a_metro_exit_lets_out_only_a_card_that_entered() {
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let card = 9_704_000_000_123;
    let (_d1, mut entry) = gate(&w, 201, GateDirection::Entry);
    let (d2, exit_vault) = vault();
    let mut exit = gate_over(&w, exit_vault.clone(), 205, GateDirection::Exit);

    // In at Cát Linh: a gate's tap says where and which way.
    let tapped_in = entry
        .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert!(tapped_in.accepted, "{tapped_in:?}");
    let logged = entry.export_taps().unwrap();
    assert_eq!(
        logged[0].gate,
        Some(Gate {
            station: 201,
            direction: GateDirection::Entry
        })
    );
    assert!(entry.apply_entry_feed(&EntryFeed::default(), NOW).is_err());

    // The backend knows every entry up to NOW - 10 and passes this one on; an entry of another
    // card long ago is dropped.
    let feed = EntryFeed {
        entries: vec![
            GateEntry {
                card_id: card,
                station: 201,
                at: NOW,
            },
            GateEntry {
                card_id: 42,
                station: 203,
                at: NOW - 25 * 3600,
            },
        ],
        cursor: 2,
        complete_until: NOW + 600,
        now: 0,
    };
    assert_eq!(exit.apply_entry_feed(&feed, NOW + 600).unwrap(), 1);
    let out = exit
        .validate(&w.phone.current_qr(NOW + 610).unwrap().text, NOW + 610)
        .unwrap();
    assert!(out.accepted, "{out:?}");
    // The gate closed on the rider, who taps again: the same exit, let out again.
    assert!(
        exit.validate(&w.phone.current_qr(NOW + 650).unwrap().text, NOW + 650)
            .unwrap()
            .accepted
    );

    // After a power cut the used entry stays used, the feed position is kept, and so is the
    // memory of who just went out here.
    drop(exit);
    let mut exit = gate_over(&w, exit_vault.clone(), 205, GateDirection::Exit);
    let status = exit.entry_feed_status(NOW + 655);
    assert_eq!((status.cursor, status.open_entries), (2, 0));
    assert!(status.refusing_unknown_exits);
    assert!(
        exit.validate(&w.phone.current_qr(NOW + 655).unwrap().text, NOW + 655)
            .unwrap()
            .accepted
    );
    // Two minutes on, with a current feed: the entry was used, so the card is sent to staff.
    let current = EntryFeed {
        entries: vec![],
        cursor: 2,
        complete_until: NOW + 780,
        now: NOW + 780,
    };
    exit.apply_entry_feed(&current, NOW + 780).unwrap();
    let again = exit
        .validate(&w.phone.current_qr(NOW + 781).unwrap().text, NOW + 781)
        .unwrap();
    assert_eq!(again.reason, Reason::NoEntry);
    assert!(!again.accepted);
    assert_eq!(again.presentation.line_en, "No entry tap: see staff");
    // The same feed delivered twice, or an older one, opens nothing again.
    exit.apply_entry_feed(&feed, NOW + 782).unwrap();
    assert_eq!(exit.entry_feed_status(NOW + 782).open_entries, 0);
    assert_eq!(
        exit.validate(&w.phone.current_qr(NOW + 783).unwrap().text, NOW + 783)
            .unwrap()
            .reason,
        Reason::NoEntry
    );
    // A refused QR is not used up: once its entry is known, the same QR lets the rider out.
    let refused = w.phone.current_qr(NOW + 784).unwrap().text;
    assert_eq!(
        exit.validate(&refused, NOW + 784).unwrap().reason,
        Reason::NoEntry
    );
    let later_entry = EntryFeed {
        entries: vec![GateEntry {
            card_id: card,
            station: 202,
            at: NOW + 760,
        }],
        cursor: 3,
        complete_until: NOW + 785,
        now: 0,
    };
    assert_eq!(exit.apply_entry_feed(&later_entry, NOW + 785).unwrap(), 1);
    assert!(exit.validate(&refused, NOW + 786).unwrap().accepted);
    assert_eq!(
        exit.validate(&refused, NOW + 787).unwrap().reason,
        Reason::Replayed,
        "once used, it is used"
    );
    let stale = EntryFeed {
        cursor: 1,
        complete_until: NOW,
        ..feed.clone()
    };
    exit.apply_entry_feed(&stale, NOW + 790).unwrap();
    let status = exit.entry_feed_status(NOW + 790);
    assert_eq!((status.cursor, status.complete_until), (3, NOW + 785));

    // A feed that has not been complete for over a minute: nobody is locked in; the tap goes
    // to the backend as an exit, which prices it.
    let late = NOW + 785 + 61;
    assert!(!exit.entry_feed_status(late + 100).refusing_unknown_exits);
    let let_out = exit
        .validate(&w.phone.current_qr(late + 100).unwrap().text, late + 100)
        .unwrap();
    assert!(let_out.accepted, "{let_out:?}");
    let taps = exit.export_taps().unwrap();
    assert!(taps.iter().all(|t| t.gate
        == Some(Gate {
            station: 205,
            direction: GateDirection::Exit
        })));
    assert_eq!(taps.iter().filter(|t| t.accepted).count(), 5);
    drop(d2);

    // The feed's age is counted on the backend's clock: a gate whose own clock is 10 minutes
    // behind still stops refusing a minute after the entries were last complete.
    let (_d3, mut behind) = gate(&w, 205, GateDirection::Exit);
    let backend_now = NOW + 5_000;
    behind
        .apply_entry_feed(
            &EntryFeed {
                entries: vec![],
                cursor: 9,
                complete_until: backend_now - 50,
                now: backend_now,
            },
            backend_now - 600,
        )
        .unwrap();
    assert!(
        behind
            .entry_feed_status(backend_now - 600 + 10)
            .refusing_unknown_exits
    );
    assert!(
        !behind
            .entry_feed_status(backend_now - 600 + 11)
            .refusing_unknown_exits
    );
    assert!(
        !behind
            .entry_feed_status(backend_now - 700)
            .refusing_unknown_exits,
        "a clock that went back"
    );
}

#[test]
fn an_exit_gate_checks_the_phone_but_not_the_pass_window() {
    // A pass that ends while the rider is on the train still gets them out; a forged QR over
    // the same credential does not.
    let w = world_with(
        Product::MonthlyAllRoutes,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let mut ending = request(&w.phone, Product::DayPass, Category::Standard, 0);
    ending.pass_valid_until = NOW as u32 + 300;
    let credential = w.issuer.issue(&ending, NOW as u32).unwrap();
    w.phone.install_credential(&credential).unwrap();
    let (_d, mut exit) = gate(&w, 212, GateDirection::Exit);
    let (_d2, mut entry) = gate(&w, 201, GateDirection::Entry);
    let out_at = NOW + 900;
    assert_eq!(
        entry
            .validate(&w.phone.current_qr(out_at).unwrap().text, out_at)
            .unwrap()
            .reason,
        Reason::PassExpired,
        "an entry checks the pass"
    );
    exit.apply_entry_feed(
        &EntryFeed {
            entries: vec![GateEntry {
                card_id: 9_704_000_000_123,
                station: 201,
                at: NOW + 100,
            }],
            cursor: 1,
            complete_until: out_at,
            now: 0,
        },
        out_at,
    )
    .unwrap();
    let (thief, _) = SoftwareKey::generate().unwrap();
    let forged = qr_signed_by(&w, &thief, out_at as u32, 7);
    assert_eq!(
        exit.validate(&forged, out_at).unwrap().reason,
        Reason::BadDeviceSignature
    );
    let out = exit
        .validate(&w.phone.current_qr(out_at + 5).unwrap().text, out_at + 5)
        .unwrap();
    assert!(out.accepted, "{out:?}");
    // The gate closed on the rider, who taps again: let out again, not sent to the staff.
    let again = exit
        .validate(&w.phone.current_qr(out_at + 40).unwrap().text, out_at + 40)
        .unwrap();
    assert!(again.accepted, "{again:?}");
    // A fail-closed setting never keeps riders in: exits ignore it.
    let (_d3, strict_vault) = vault();
    let mut strict = Validator::open(
        strict_vault,
        vec![w.issuer.trusted().clone()],
        ValidatorConfig {
            route: 902,
            gate: Some(Gate {
                station: 212,
                direction: GateDirection::Exit,
            }),
            fail_closed_when_stale: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(strict.deny_list_status(out_at).stale);
    let let_out = strict
        .validate(&w.phone.current_qr(out_at + 60).unwrap().text, out_at + 60)
        .unwrap();
    assert!(let_out.accepted, "{let_out:?}");
}

#[test]
fn a_phone_holds_its_owners_pass_and_dependants_and_shows_each() {
    let mut w = world();
    let owner = 9_704_000_000_123;
    let child = 9_704_000_000_456;
    let mut child_request = request(&w.phone, Product::FreePass, Category::Child, 0);
    child_request.card_id = child;
    let credential = w.issuer.issue(&child_request, NOW as u32).unwrap();
    w.phone.install_dependant_credential(&credential).unwrap();
    // Installing again replaces the card's credential, never adds a second one; the card
    // cannot also be the owner's.
    w.phone.install_dependant_credential(&credential).unwrap();
    assert!(w.phone.install_credential(&credential).is_err());
    let cards = |p: &Phone| {
        p.credentials()
            .iter()
            .map(|c| c.card_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(cards(&w.phone), [owner, child]);
    assert_eq!(w.phone.credential().unwrap().card_id, owner);
    // Each card's QR is its own, and a card the phone does not hold has none.
    let owners = w.phone.current_qr(NOW).unwrap().text;
    let childs = w.phone.current_qr_for(child, NOW).unwrap().text;
    assert_eq!(
        Payload::from_qr_text(&childs).unwrap().fields.card_id,
        child
    );
    assert!(matches!(
        w.phone.current_qr_for(42, NOW),
        Err(TransitError::NoCredential)
    ));
    // One validator, one phone, two riders a second apart: no passback between cards.
    assert!(w.validator.validate(&owners, NOW).unwrap().accepted);
    let v = w.validator.validate(&childs, NOW + 1).unwrap();
    assert!(v.accepted, "{v:?}");
    assert_eq!(v.category, Some(Category::Child));
    // After a restart the phone holds the same passes in the same order.
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(cards(&reopened), [owner, child]);
    assert!(reopened.remove_credential(owner).is_err());
    assert!(reopened.remove_credential(child).unwrap());
    assert!(!reopened.remove_credential(child).unwrap());
    let reopened = Phone::open(w.phone_vault.clone(), None, PhoneOptions::default()).unwrap();
    assert_eq!(cards(&reopened), [owner]);

    // A guardian whose phone holds only the child's pass: it is never taken for the owner's.
    let (_d, fresh_vault) = vault();
    let guardian = Phone::open(fresh_vault.clone(), None, PhoneOptions::default()).unwrap();
    let mut for_guardian = child_request.clone();
    for_guardian.device_public_key = guardian.device_public_key().to_vec();
    guardian
        .install_dependant_credential(&w.issuer.issue(&for_guardian, NOW as u32).unwrap())
        .unwrap();
    assert!(guardian.credential().is_none());
    assert!(matches!(
        guardian.current_qr(NOW),
        Err(TransitError::NoCredential)
    ));
    assert!(guardian.current_qr_for(child, NOW).is_ok());
    let reopened = Phone::open(fresh_vault, None, PhoneOptions::default()).unwrap();
    assert_eq!(cards(&reopened), [child]);
    assert!(reopened.credential().is_none());
}

#[test]
fn a_card_capped_today_is_let_through_in_amber_with_a_free_ride() {
    let mut w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig {
            route: 32,
            passback_secs: 0,
            ..Default::default()
        },
    );
    let card = 9_704_000_000_123;
    let before = w
        .validator
        .validate(&w.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert_eq!(before.presentation.line_en, "Welcome aboard");
    // The feed says the card reached today's cap; today ends in an hour.
    w.validator.set_capped_cards(&[card], NOW + 3_600);
    let capped = w
        .validator
        .validate(&w.phone.current_qr(NOW + 60).unwrap().text, NOW + 60)
        .unwrap();
    assert!(capped.accepted);
    assert_eq!(
        (
            capped.presentation.signal,
            capped.presentation.line_en.as_str()
        ),
        (Signal::Warn, "Cap reached today: this ride is free")
    );
    assert_eq!(
        capped.presentation.line_vi,
        "Đã đủ mức trần hôm nay: miễn phí"
    );
    // Tomorrow it is a fare again; a refusal stays a refusal.
    let tomorrow = w
        .validator
        .validate(&w.phone.current_qr(NOW + 3_700).unwrap().text, NOW + 3_700)
        .unwrap();
    assert_eq!(tomorrow.presentation.signal, Signal::Go);
    let replayed = w
        .validator
        .validate(&w.phone.current_qr(NOW + 3_700).unwrap().text, NOW + 3_701)
        .unwrap();
    assert_eq!(replayed.presentation.signal, Signal::Stop);
    // A pass holder's card in the list is not told about a cap it does not pay toward.
    let mut pass = world();
    pass.validator.set_capped_cards(&[card], NOW + 3_600);
    let v = pass
        .validator
        .validate(&pass.phone.current_qr(NOW).unwrap().text, NOW)
        .unwrap();
    assert_eq!(v.presentation.signal, Signal::Go);
}

#[test]
fn an_exit_whose_commit_fails_is_not_shown_and_does_not_use_the_entry() {
    // The exit's tap and the entry marked used go to disk in one commit. When that commit
    // fails (the storage goes away mid-decision), no verdict is shown, and after a restart the
    // entry still lets the rider out.
    let w = world_with(
        Product::PayAsYouGo,
        Category::Standard,
        0,
        ValidatorConfig::default(),
    );
    let dir = tempfile::tempdir().unwrap();
    let keys = common::TestProvider::new("k");
    let open = || {
        Arc::new(Vault::open(dir.path(), Unlock::Provider(keys.clone()), &common::fast()).unwrap())
    };
    let exit_vault = open();
    let mut exit = gate_over(&w, exit_vault.clone(), 205, GateDirection::Exit);
    let feed = EntryFeed {
        entries: vec![GateEntry {
            card_id: 9_704_000_000_123,
            station: 201,
            at: NOW,
        }],
        cursor: 1,
        complete_until: NOW + 600,
        now: NOW + 600,
    };
    exit.apply_entry_feed(&feed, NOW + 600).unwrap();
    exit_vault.close();
    let qr = w.phone.current_qr(NOW + 610).unwrap().text;
    assert!(
        exit.validate(&qr, NOW + 610).is_err(),
        "no verdict without its tap on disk"
    );
    drop(exit);
    let mut exit = gate_over(&w, open(), 205, GateDirection::Exit);
    assert_eq!(exit.entry_feed_status(NOW + 611).open_entries, 1);
    let out = exit.validate(&qr, NOW + 611).unwrap();
    assert!(out.accepted, "the same QR, not used up: {out:?}");
    assert_eq!(exit.export_taps().unwrap().len(), 1);
}
