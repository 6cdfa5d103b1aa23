//! Certificates signed by a signer of our own, to say what a real issuer's certificate may
//! hold that the official test data lacks, and what it must hold: a given name with no
//! transliteration, a dose number written as a CBOR float, a date of birth with a time (schema
//! 1.0), a dose numbered 0, a vaccination time FHIR would refuse, and no expiry at all.

#![allow(clippy::unwrap_used)] // tests fail by panicking

use ciborium::Value as Cbor;
use coset::{iana, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use thudo_core::health::dcc::{self, DccError, SignerList};

const NOW: i64 = 1_790_000_000;

/// A Document Signer of country DE: its certificate trusted, its key to sign with.
struct Signer {
    trusted: SignerList,
    pair: EcdsaKeyPair,
    kid: Vec<u8>,
}

fn signer() -> Signer {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "DE");
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let mut trusted = SignerList::new();
    let kid = trusted.add_der(&der, Some("DE")).unwrap().to_vec();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    Signer { trusted, pair, kid }
}

/// JSON as CBOR: whole numbers as integers, `1.0` as a float, as an issuer's encoder writes them.
fn cbor(v: &Value) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap()),
        },
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(cbor).collect()),
        Value::Object(map) => Cbor::Map(
            map.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), cbor(v)))
                .collect(),
        ),
    }
}

/// `certificate` signed as an `HC1:` QR text, issued an hour ago, expiring (`exp`) as given.
fn hc1(s: &Signer, certificate: &Value, exp: Option<i64>) -> String {
    let mut claims = vec![
        (Cbor::Integer(1.into()), Cbor::Text("DE".into())),
        (Cbor::Integer(6.into()), Cbor::Integer((NOW - 3_600).into())),
        (
            Cbor::Integer((-260).into()),
            Cbor::Map(vec![(Cbor::Integer(1.into()), cbor(certificate))]),
        ),
    ];
    if let Some(exp) = exp {
        claims.push((Cbor::Integer(4.into()), Cbor::Integer(exp.into())));
    }
    let mut payload = Vec::new();
    ciborium::into_writer(&Cbor::Map(claims), &mut payload).unwrap();
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(s.kid.clone())
        .build();
    let rng = SystemRandom::new();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |data| {
            s.pair.sign(&rng, data).unwrap().as_ref().to_vec()
        })
        .build();
    let cose = sign1.to_tagged_vec().unwrap();
    let zipped = miniz_oxide::deflate::compress_to_vec_zlib(&cose, 9);
    format!("HC1:{}", base45::encode(&zipped))
}

fn vaccination(nam: Value, dob: &str, dn: Value, dt: &str) -> Value {
    json!({
        "ver": "1.3.0", "nam": nam, "dob": dob,
        "v": [{"tg": "840539006", "vp": "1119349007", "mp": "EU/1/20/1528",
               "ma": "ORG-100030215", "dn": dn, "sd": 2, "dt": dt, "co": "DE",
               "is": "Ministry of Health DE", "ci": "URN:UVCI:01:DE:OWN0001"}]
    })
}

#[test]
fn what_the_schema_allows_of_a_real_issuer_verifies() {
    let s = signer();
    let year = Some(NOW + 365 * 86_400);
    // Only `fnt` is required: a given name without its transliteration.
    let nam = json!({"fn": "Jones", "fnt": "JONES", "gn": "Dave"});
    let text = hc1(
        &s,
        &vaccination(nam, "1990-01-01", json!(1), "2021-05-01"),
        year,
    );
    let verified = dcc::verify(&text, &s.trusted, NOW);
    assert!(verified.is_ok(), "{verified:?}");
    // A dose number written as the float 1.0 (JSON Schema's integer is any whole number).
    let nam = json!({"fn": "Jones", "fnt": "JONES"});
    let text = hc1(
        &s,
        &vaccination(nam.clone(), "1990", json!(1.0), "2021-05-01"),
        year,
    );
    let verified = dcc::verify(&text, &s.trusted, NOW).unwrap();
    let bundle = dcc::fhir::bundle(&verified);
    assert_eq!(
        bundle["entry"][1]["resource"]["protocolApplied"][0]["doseNumberPositiveInt"],
        json!(1)
    );
    // An empty transliteration of a given name is still refused, as the official data wants.
    let empty = json!({"fn": "Jones", "fnt": "JONES", "gn": "Dave", "gnt": ""});
    let text = hc1(
        &s,
        &vaccination(empty, "1990", json!(1), "2021-05-01"),
        year,
    );
    assert!(matches!(
        dcc::verify(&text, &s.trusted, NOW),
        Err(DccError::Schema { .. })
    ));
}

#[test]
fn a_certificate_without_an_expiry_is_refused() {
    let s = signer();
    let nam = json!({"fn": "Jones", "fnt": "JONES"});
    let text = hc1(
        &s,
        &vaccination(nam, "1990-01-01", json!(1), "2021-05-01"),
        None,
    );
    for result in [
        dcc::verify(&text, &s.trusted, NOW),
        dcc::authenticate(&text, &s.trusted, NOW),
    ] {
        match result {
            Err(DccError::Cwt { detail }) => assert!(detail.contains("expiry"), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
}

/// What the certificate allows and FHIR does not is made valid FHIR: a date of birth with a
/// time (schema 1.0) is its date, a dose numbered 0 is left out (positiveInt starts at 1), a
/// vaccination time without seconds or zone is its date; a full date-time stays whole.
#[test]
fn dates_and_dose_numbers_become_valid_fhir() {
    let s = signer();
    let year = Some(NOW + 365 * 86_400);
    let mut cert = vaccination(
        json!({"fn": "Jones", "fnt": "JONES"}),
        "1990-01-01",
        json!(0),
        "2021-05-01",
    );
    cert["ver"] = json!("1.0.0");
    cert["dob"] = json!("1990-01-01T00:00:00");
    cert["v"][0]["dt"] = json!("2021-05-01 10:00");
    let verified = dcc::authenticate(&hc1(&s, &cert, year), &s.trusted, NOW);
    let Ok(verified) = verified else {
        // Schema 1.0 allowed these; a version that refuses them has nothing to map.
        panic!("{verified:?}");
    };
    let bundle = dcc::fhir::bundle(&verified);
    let patient = &bundle["entry"][0]["resource"];
    let dose = &bundle["entry"][1]["resource"];
    assert_eq!(patient["birthDate"], json!("1990-01-01"));
    assert_eq!(dose["occurrenceDateTime"], json!("2021-05-01"));
    assert!(dose["protocolApplied"][0]
        .get("doseNumberPositiveInt")
        .is_none());
    // A full date-time with its zone stays as it is (a space made a `T`).
    cert["v"][0]["dt"] = json!("2021-05-01 10:00:00+07:00");
    cert["v"][0]["dn"] = json!(2);
    let verified = dcc::authenticate(&hc1(&s, &cert, year), &s.trusted, NOW).unwrap();
    let dose = &dcc::fhir::bundle(&verified)["entry"][1]["resource"];
    assert_eq!(
        dose["occurrenceDateTime"],
        json!("2021-05-01T10:00:00+07:00")
    );
    assert_eq!(
        dose["protocolApplied"][0]["doseNumberPositiveInt"],
        json!(2)
    );
}

/// A kid is 8 bytes of a hash: two signers may share one (by chance, or by an issuer
/// publishing a certificate made to collide). Each signer under the kid is tried, in any
/// order; a list holding only the other one refuses the certificate.
#[test]
fn signers_sharing_a_kid_are_each_tried() {
    let genuine = signer();
    let text = hc1(
        &genuine,
        &vaccination(
            json!({"fn": "Jones", "fnt": "JONES"}),
            "1990",
            json!(1),
            "2021-05-01",
        ),
        Some(NOW + 86_400),
    );
    let other = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "DE");
    let der = params.self_signed(&other).unwrap().der().to_vec();
    let mut decoy = dcc::Signer::from_der(&der, Some("DE")).unwrap();
    decoy.kid = genuine.kid.clone().try_into().unwrap();

    let mut decoy_only = SignerList::new();
    decoy_only.add_signer(decoy.clone());
    assert!(matches!(
        dcc::verify(&text, &decoy_only, NOW),
        Err(DccError::BadSignature)
    ));
    let genuine_signers = genuine.trusted.by_kid(&genuine.kid).to_vec();
    // The decoy first, then the genuine signer; and the other way round.
    for decoy_first in [true, false] {
        let mut both = SignerList::new();
        if decoy_first {
            both.add_signer(decoy.clone());
        }
        for s in &genuine_signers {
            both.add_signer(s.clone());
        }
        if !decoy_first {
            both.add_signer(decoy.clone());
        }
        assert_eq!(both.by_kid(&genuine.kid).len(), 2);
        let verified = dcc::verify(&text, &both, NOW);
        assert!(verified.is_ok(), "decoy first: {decoy_first}: {verified:?}");
    }
}

/// Forged, truncated and garbled certificates, thousands of them, made from a genuine one both
/// on the QR text and inside the compressed COSE (so the CBOR and COSE readers see the damage,
/// not only zlib's checksum): none panics, and whatever still verifies says exactly what the
/// genuine one said (only the unsigned header may change).
#[test]
fn damaged_certificates_never_panic_or_verify_as_something_else() {
    let s = signer();
    let cert = vaccination(
        json!({"fn": "Jones", "fnt": "JONES"}),
        "1990-01-01",
        json!(2),
        "2021-05-01",
    );
    let text = hc1(&s, &cert, Some(NOW + 86_400));
    let genuine = dcc::verify(&text, &s.trusted, NOW).unwrap();
    let cose = miniz_oxide::inflate::decompress_to_vec_zlib(
        &base45::decode(text.trim_start_matches("HC1:")).unwrap(),
    )
    .unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    };
    let mut verified = 0;
    for round in 0..4_000 {
        let mut bytes = cose.clone();
        match round % 4 {
            0 => {
                let i = next(bytes.len());
                bytes[i] ^= 1 << next(8);
            }
            1 => bytes.truncate(next(bytes.len())),
            2 => {
                let i = next(bytes.len());
                bytes[i] = [0x00, 0xff, 0x9f, 0xbf, 0x1b, 0xd8][next(6)];
            }
            _ => {
                let i = next(bytes.len());
                let extra: Vec<u8> = (0..next(16)).map(|_| next(256) as u8).collect();
                bytes.splice(i..i, extra);
            }
        }
        let zipped = miniz_oxide::deflate::compress_to_vec_zlib(&bytes, 6);
        let damaged = format!("HC1:{}", base45::encode(&zipped));
        if let Ok(v) = dcc::verify(&damaged, &s.trusted, NOW) {
            verified += 1;
            assert_eq!(
                (&v.certificate, &v.certificate_id, v.issued_at, v.expires_at),
                (
                    &genuine.certificate,
                    &genuine.certificate_id,
                    genuine.issued_at,
                    genuine.expires_at
                )
            );
        }
    }
    // The text itself: truncated, or a character changed.
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    for _ in 0..2_000 {
        let mut chars = text.as_bytes().to_vec();
        if next(2) == 0 {
            chars.truncate(next(chars.len()));
        } else {
            let i = 4 + next(chars.len() - 4);
            chars[i] = alphabet[next(alphabet.len())];
        }
        let damaged = String::from_utf8(chars).unwrap();
        if damaged != text {
            if let Ok(v) = dcc::verify(&damaged, &s.trusted, NOW) {
                assert_eq!(v.certificate, genuine.certificate);
            }
        }
    }
    // Nearly every change to the signed bytes is refused.
    assert!(
        verified < 400,
        "{verified} of 4,000 damaged certificates verified"
    );
}

/// A test type outside the DCC's value set is shown as it came, never as a nucleic-acid test.
#[test]
fn a_test_of_an_unknown_type_is_not_named_a_pcr() {
    let s = signer();
    let test = |tt: &str| {
        json!({
            "ver": "1.3.0", "nam": {"fn": "Jones", "fnt": "JONES"}, "dob": "1990-01-01",
            "t": [{"tg": "840539006", "tt": tt, "sc": "2021-05-01T10:00:00Z",
                   "tr": "260415000", "tc": "Testzentrum", "co": "DE",
                   "is": "Ministry of Health DE", "ci": "URN:UVCI:01:DE:OWN0002"}]
        })
    };
    let observation = |tt: &str| {
        let text = hc1(&s, &test(tt), Some(NOW + 86_400));
        let verified = dcc::verify(&text, &s.trusted, NOW).unwrap();
        dcc::fhir::bundle(&verified)["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .find(|r| r["resourceType"] == "Observation")
            .unwrap()
    };
    let pcr = observation("LP6464-4");
    assert_eq!(pcr["code"]["coding"][0]["code"], "94500-6");
    let unknown = observation("LP9999-9");
    let text = unknown["code"]["text"].as_str().unwrap();
    assert!(
        text.contains("unrecognised") && text.contains("LP9999-9"),
        "{text}"
    );
    assert!(!unknown.to_string().contains("94500-6"), "{unknown}");
}
