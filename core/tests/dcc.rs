//! Vaccine passports (EU DCC) as an attacker and a fault would present them: forged, tampered,
//! truncated, oversized, expired, signed by the wrong signer, imported twice; and imported into
//! the health book with their provenance, which another device earns only by verifying again.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::vault;

use std::path::Path;

use serde_json::{json, Value};
use thudo_core::changes::outbox;
use thudo_core::health::dcc::{self, CertificateKind, DccError, SignerList};
use thudo_core::health::records::{HealthBook, HealthError, HealthRecord, Source};
use thudo_core::health::shc::TrustStore;
use thudo_core::vault::Vault;

/// A case of the official test data: its QR text, its signer, its validation clock.
struct Case {
    qr: String,
    certificate: String,
    clock: i64,
}

fn case(folder: &str, file: &str) -> Case {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/dcc/{folder}.json"));
    let list: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let c = list
        .into_iter()
        .find(|c| c["FILE"].as_str().unwrap().ends_with(file))
        .unwrap();
    let clock = c["TESTCTX"]["VALIDATIONCLOCK"].as_str().unwrap();
    let clock = chrono::DateTime::parse_from_rfc3339(clock)
        .map(|t| t.timestamp())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(clock, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc().timestamp())
        })
        .unwrap();
    Case {
        qr: c["PREFIX"].as_str().unwrap().to_owned(),
        certificate: c["TESTCTX"]["CERTIFICATE"].as_str().unwrap().to_owned(),
        clock,
    }
}

/// Germany's vaccination example (ES256).
fn german() -> Case {
    case("DE", "DE/2DCode/raw/1.json")
}

fn signers(c: &Case) -> SignerList {
    let mut s = SignerList::new();
    s.add_base64(&c.certificate, None).unwrap();
    s
}

/// The COSE message inside a QR text.
fn cose_of(qr: &str) -> Vec<u8> {
    let compressed = base45::decode(qr.strip_prefix("HC1:").unwrap()).unwrap();
    miniz_oxide::inflate::decompress_to_vec_zlib(&compressed).unwrap()
}

/// A QR text carrying `cose`, encoded as issuers encode it.
fn qr_of(cose: &[u8]) -> String {
    format!(
        "HC1:{}",
        base45::encode(miniz_oxide::deflate::compress_to_vec_zlib(cose, 9))
    )
}

#[test]
fn a_genuine_certificate_verifies_with_what_it_says() {
    let de = german();
    let c = dcc::verify(&de.qr, &signers(&de), de.clock).unwrap();
    assert_eq!(c.kind, CertificateKind::Vaccination);
    assert_eq!(c.country, "DE");
    assert_eq!(
        c.certificate_id,
        "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W"
    );
    assert_eq!(c.certificate["nam"]["fnt"], "MUSTERMANN");
    assert!(!c.expired);
    // PS256 on an RSA signer (Iceland) and ES256 on a P-384 signer (Spain) verify too.
    for (folder, file) in [
        ("IS", "IS/2DCode/raw/3.json"),
        ("ES", "ES/2DCode/raw/401.json"),
    ] {
        let k = case(folder, file);
        dcc::decode(&k.qr)
            .unwrap()
            .verify_signature(&signers(&k))
            .unwrap();
    }
}

#[test]
fn forged_tampered_and_unknown_signers_are_refused() {
    let de = german();
    let trusted = signers(&de);
    // The signature's last byte changed.
    let mut cose = cose_of(&de.qr);
    let last = cose.len() - 1;
    cose[last] ^= 1;
    assert_eq!(
        dcc::verify(&qr_of(&cose), &trusted, de.clock),
        Err(DccError::BadSignature)
    );
    // The name changed under the genuine signature.
    let mut cose = cose_of(&de.qr);
    let at = cose.windows(10).position(|w| w == b"Mustermann").unwrap();
    cose[at..at + 10].copy_from_slice(b"Musterfrau");
    assert_eq!(
        dcc::verify(&qr_of(&cose), &trusted, de.clock),
        Err(DccError::BadSignature)
    );
    // Nobody trusted, or only another country's signer.
    assert!(matches!(
        dcc::verify(&de.qr, &SignerList::new(), de.clock),
        Err(DccError::UnknownKey { .. })
    ));
    let other = case("AT", "AT/2DCode/raw/1.json");
    assert!(matches!(
        dcc::verify(&de.qr, &signers(&other), de.clock),
        Err(DccError::UnknownKey { .. })
    ));
    // Signed by a signer whose key usage is for recoveries only (the Polish case 6).
    let pl = case("PL", "PL/1.3.0/2DCode/raw/6.json");
    assert!(dcc::verify(&pl.qr, &signers(&pl), pl.clock).is_err());
}

/// Spain's ES256 on a P-384 key, with `r` and `s` each padded by a zero byte: ring would read
/// the same numbers, but a revocation by signature hashes the first half, which would then
/// no longer be `r`. Only the exact 96 bytes verify.
#[test]
fn a_padded_signature_does_not_verify() {
    use ciborium::value::Value as Cbor;
    let es = case("ES", "ES/2DCode/raw/401.json");
    let mut message: Cbor = ciborium::from_reader(&cose_of(&es.qr)[..]).unwrap();
    let parts = match &mut message {
        Cbor::Tag(18, inner) => inner.as_array_mut(),
        other => other.as_array_mut(),
    }
    .unwrap();
    let signature = parts[3].as_bytes().unwrap().clone();
    assert_eq!(signature.len(), 96);
    let mut padded = vec![0];
    padded.extend_from_slice(&signature[..48]);
    padded.push(0);
    padded.extend_from_slice(&signature[48..]);
    parts[3] = Cbor::Bytes(padded);
    let mut cose = Vec::new();
    ciborium::into_writer(&message, &mut cose).unwrap();
    assert_eq!(
        dcc::decode(&qr_of(&cose))
            .unwrap()
            .verify_signature(&signers(&es)),
        Err(DccError::BadSignature)
    );
}

#[test]
fn truncated_oversized_and_bombs_fail_with_a_reason_and_no_panic() {
    let de = german();
    let trusted = signers(&de);
    // Every truncation of the text.
    for end in 0..de.qr.len() {
        assert!(dcc::verify(&de.qr[..end], &trusted, de.clock).is_err());
    }
    // Every truncation of the COSE message, re-encoded.
    let cose = cose_of(&de.qr);
    for end in 0..cose.len() {
        assert!(dcc::verify(&qr_of(&cose[..end]), &trusted, de.clock).is_err());
    }
    // More than a QR code holds.
    let long = format!("HC1:{}", "A".repeat(20_000));
    assert!(matches!(
        dcc::verify(&long, &trusted, de.clock),
        Err(DccError::BadPrefix { .. })
    ));
    // A zlib bomb: 4 MB of zeros in a few KB.
    let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; 4 << 20], 10);
    let bomb_qr = format!("HC1:{}", base45::encode(&bomb));
    assert!(bomb_qr.len() < 8 * 1024, "{}", bomb_qr.len());
    assert!(matches!(
        dcc::verify(&bomb_qr, &trusted, de.clock),
        Err(DccError::Inflate { .. })
    ));
    // Another context, or none.
    for text in ["HC2:6BF", "6BF+70790", "shc:/5676"] {
        assert!(matches!(
            dcc::verify(text, &trusted, de.clock),
            Err(DccError::BadPrefix { .. })
        ));
    }
    // Garbage certificates for the signer list.
    let mut list = SignerList::new();
    for bad in ["", "not base64!", "MIIB", &"QUFB".repeat(10_000)] {
        assert!(matches!(
            list.add_base64(bad, None),
            Err(DccError::BadTrustData { .. })
        ));
    }
    assert!(list.is_empty());
}

#[test]
fn an_expired_certificate_is_refused_at_a_border_and_kept_as_history() {
    let de = german();
    let trusted = signers(&de);
    let decoded = dcc::decode(&de.qr).unwrap();
    let after = decoded.expires_at.unwrap() + 1;
    assert!(matches!(
        dcc::verify(&de.qr, &trusted, after),
        Err(DccError::Expired { .. } | DccError::SignerNotValid { .. })
    ));
    let history = dcc::authenticate(&de.qr, &trusted, after).unwrap();
    assert!(history.expired);
    // Issued in the future is never authentic; a few minutes ahead of a slow clock is.
    let issued_at = decoded.issued_at.unwrap();
    let before = issued_at - 3600;
    assert!(matches!(
        dcc::authenticate(&de.qr, &trusted, before),
        Err(DccError::NotYetValid { .. } | DccError::SignerNotValid { .. })
    ));
    let tolerance = thudo_core::health::ISSUE_CLOCK_TOLERANCE_SECS;
    assert!(dcc::authenticate(&de.qr, &trusted, issued_at - tolerance).is_ok());
    assert!(matches!(
        dcc::authenticate(&de.qr, &trusted, issued_at - tolerance - 1),
        Err(DccError::NotYetValid { .. })
    ));
}

/// A signer whose certificate has not begun yet signs nothing authentic now; one that began
/// after the certificate's issue time may (the official test data holds such genuine cases,
/// `BG/2DCode/raw/4.json`).
#[test]
fn a_signer_that_has_not_begun_is_refused_but_a_later_begun_one_is_not() {
    let de = german();
    let trusted = signers(&de);
    let decoded = dcc::decode(&de.qr).unwrap();
    let signer = decoded.verify_signature(&trusted).unwrap();
    let issued_at = decoded.issued_at.unwrap();
    let now = issued_at + 60;
    let with_start = |not_before: i64| {
        let mut list = SignerList::new();
        list.add_signer(dcc::Signer {
            not_before,
            ..signer.clone()
        });
        dcc::authenticate(&de.qr, &list, now)
    };
    assert!(matches!(
        with_start(now + 1),
        Err(DccError::SignerNotValid { .. })
    ));
    assert!(with_start(issued_at + 1).is_ok());
}

fn trust_for(c: &Case) -> TrustStore {
    let mut t = TrustStore::new();
    t.dcc.add_base64(&c.certificate, None).unwrap();
    t
}

#[test]
fn a_passport_is_imported_with_its_provenance_once_however_often_it_is_scanned() {
    let de = german();
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    // Imported years after it expired: the vaccination stays true.
    let now = de.clock + 5 * 365 * 86_400;
    let first = book
        .verify_and_import_dcc(&de.qr, &trust_for(&de), now, None)
        .unwrap();
    assert_eq!(first.stored, 2);
    assert_eq!(first.by_type.get("Immunization"), Some(&1));
    let records: Vec<HealthRecord> = v.list_docs().unwrap();
    let shot = records
        .iter()
        .find(|r| r.resource_type == "Immunization")
        .unwrap();
    assert_eq!(shot.provenance.source, Source::HealthCard);
    assert_eq!(shot.provenance.country.as_deref(), Some("DE"));
    assert_eq!(
        shot.provenance.certificate_id.as_deref(),
        Some("URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W")
    );
    assert_eq!(shot.provenance.verified_at, Some(now));
    assert_eq!(shot.resource["occurrenceDateTime"], "2021-05-29");
    assert_eq!(
        shot.resource["protocolApplied"][0]["doseNumberPositiveInt"],
        2
    );
    assert_eq!(shot.date.as_deref(), Some("2021-05-29"));
    // Scanned again (a replay, a double tap): the same records, nothing added.
    let again = book
        .verify_and_import_dcc(&de.qr, &trust_for(&de), now, None)
        .unwrap();
    assert_eq!(again.people, first.people);
    let after: Vec<HealthRecord> = v.list_docs().unwrap();
    assert_eq!(after.len(), records.len());

    // A forged passport stores nothing.
    let (_e, w) = vault();
    let mut cose = cose_of(&de.qr);
    let last = cose.len() - 1;
    cose[last] ^= 1;
    let refused =
        HealthBook::new(&w).verify_and_import_dcc(&qr_of(&cose), &trust_for(&de), now, None);
    assert!(matches!(
        refused,
        Err(HealthError::Certificate(DccError::BadSignature))
    ));
    assert!(w.list_docs::<HealthRecord>().unwrap().is_empty());
    assert!(w.transaction(outbox::pending).unwrap().is_empty());
}

/// Applies one pulled change as the sync client does; returns whether it was stored.
fn pull(v: &Vault, payload: &Value, trust: Option<&TrustStore>, now: u64) -> bool {
    common::pull_health_record(v, payload, trust, now)
}

#[test]
fn another_device_shows_a_passport_record_as_verified_only_if_it_verifies_it_too() {
    let de = german();
    let now = de.clock + 86_400;
    let (_a, a) = vault();
    HealthBook::new(&a)
        .verify_and_import_dcc(&de.qr, &trust_for(&de), now, None)
        .unwrap();
    let (patient, shot) = (
        common::pushed(&a, "Patient/"),
        common::pushed(&a, "Immunization/"),
    );
    let source_on = |trust: Option<&TrustStore>, payload: &Value| {
        let (_b, b) = vault();
        assert!(pull(&b, &patient, trust, now as u64));
        assert!(pull(&b, payload, trust, now as u64));
        let key = format!(
            "Immunization/{}",
            payload["resource"]["id"].as_str().unwrap()
        );
        HealthBook::new(&b).get(&key).unwrap().unwrap().provenance
    };
    let trusted = source_on(Some(&trust_for(&de)), &shot);
    assert_eq!(trusted.source, Source::HealthCard);
    assert_eq!(trusted.country.as_deref(), Some("DE"));
    assert_eq!(source_on(None, &shot).source, Source::OtherDevice);
    assert_eq!(
        source_on(Some(&TrustStore::new()), &shot).source,
        Source::OtherDevice
    );
    // A changed dose under the genuine passport is another device's word.
    let mut altered = shot.clone();
    altered["resource"]["protocolApplied"][0]["doseNumberPositiveInt"] = json!(3);
    assert_eq!(
        source_on(Some(&trust_for(&de)), &altered).source,
        Source::OtherDevice
    );
}

#[test]
fn every_kind_maps_to_fhir_the_book_reads() {
    for (folder, file, rtype) in [
        ("DE", "DE/2DCode/raw/1.json", "Immunization"),
        ("AT", "AT/2DCode/raw/3.json", "Observation"),
        ("AT", "AT/2DCode/raw/2.json", "Condition"),
    ] {
        let k = case(folder, file);
        let c = dcc::authenticate(&k.qr, &signers(&k), k.clock).unwrap();
        let bundle = dcc::fhir::bundle(&c);
        let types: Vec<&str> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Patient", rtype], "{file}");
        let (_d, v) = vault();
        let summary = HealthBook::new(&v)
            .import_dcc(&c, &k.qr, None, k.clock as u64)
            .unwrap();
        assert_eq!(summary.refused, 0, "{file}");
        assert_eq!(summary.stored, 2, "{file}");
    }
}

/// A date of birth is a local calendar date and the issue time an instant: a baby born and
/// certified the same morning in Hanoi (UTC+7, the evening before in UTC) is not "born after
/// the certificate was issued"; one born the day after the issue day anywhere on Earth is.
#[test]
fn a_newborn_certified_the_morning_of_birth_east_of_greenwich() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dcc/DE.json");
    let list: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut cert = list[0]["JSON"].clone();
    cert["dob"] = json!("2021-06-01");
    cert["v"][0]["dt"] = json!("2021-06-01");
    // 2021-06-01T06:00+07:00, that is 2021-05-31T23:00Z.
    let issued = 1_622_502_000;
    let checked = dcc::schema::check(&cert, Some(issued));
    assert!(checked.is_ok(), "{checked:?}");
    cert["dob"] = json!("2021-06-02");
    cert["v"][0]["dt"] = json!("2021-06-02");
    assert!(dcc::schema::check(&cert, Some(issued)).is_err());
}
