//! The test vector of docs/protocol/transit-qr.md, read from the document itself.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use thudo_core::transit::issuer::TrustedIssuerKey;
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
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/protocol/transit-qr.md"
    ))
    .unwrap();
    let block = doc
        .split("<!-- vector:begin -->")
        .nth(1)
        .unwrap()
        .split("<!-- vector:end -->")
        .next()
        .unwrap();
    block
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
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
    };
    assert_eq!(
        fields.encode().to_vec(),
        unhex(&v["BODY"]),
        "credential body is determined by the fields"
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
