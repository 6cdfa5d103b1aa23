//! SMART Health Cards against the real public examples in tests/data/shc.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use thudo_core::health::shc::{self, ShcError, TrustStore};

const ISSUER: &str = "https://spec.smarthealth.cards/examples/issuer";
const NOW: i64 = 1_790_000_000;

/// The public examples, kept in the repository (tests/data/shc/README.md says where from).
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/shc")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap()
}

fn trust() -> TrustStore {
    let mut t = TrustStore::new();
    assert_eq!(t.add_jwks(ISSUER, &read("issuer/jwks.json")).unwrap(), 2);
    t.add_crl(&read(
        "issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json",
    ))
    .unwrap();
    t
}

fn resource_types(card: &shc::VerifiedCard) -> Vec<String> {
    card.fhir_bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn example_00_verifies_from_qr_jws_and_file() {
    let t = trust();
    let qr = read("example-00-f-qr-code-numeric-value-0.txt");
    let jws = shc::jws_from_qr(&[qr.trim()]).unwrap();
    assert_eq!(jws, read("example-00-d-jws.txt").trim());
    let card = shc::verify(&jws, &t, NOW).unwrap();
    assert_eq!(card.issuer, ISSUER);
    assert_eq!(card.kid, "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s");
    assert_eq!(
        resource_types(&card),
        ["Patient", "Immunization", "Immunization", "Immunization"]
    );
    let from_file = shc::jws_from_file(&read("example-00-e-file.smart-health-card")).unwrap();
    assert_eq!(shc::verify(&from_file[0], &t, NOW).unwrap(), card);
}

#[test]
fn example_02_three_chunks_in_any_order() {
    let t = trust();
    let chunks: Vec<String> = (0..3)
        .map(|i| read(&format!("example-02-f-qr-code-numeric-value-{i}.txt")))
        .collect();
    let c: Vec<&str> = chunks.iter().map(|s| s.trim()).collect();
    let jws = shc::jws_from_qr(&[c[2], c[0], c[1]]).unwrap();
    assert_eq!(jws, read("example-02-d-jws.txt").trim());
    let card = shc::verify(&jws, &t, NOW).unwrap();
    assert!(resource_types(&card).contains(&"Observation".to_string()));
    // Wrong chunk sets, each with its reason.
    for set in [
        vec![c[0], c[1]],
        vec![c[0], c[0], c[1]],
        vec![c[0], c[1], c[2], c[2]],
    ] {
        assert!(
            matches!(shc::jws_from_qr(&set), Err(ShcError::BadChunks { .. })),
            "{}",
            set.len()
        );
    }
    let single = read("example-00-f-qr-code-numeric-value-0.txt");
    assert!(matches!(
        shc::jws_from_qr(&[c[0], single.trim()]),
        Err(ShcError::BadChunks { .. })
    ));
    for bad in [
        "shc:/4/3/5676",
        "shc:/0/3/5676",
        "shc:/1/1/5676",
        "shc:/x/3/5676",
    ] {
        assert!(
            matches!(shc::jws_from_qr(&[bad]), Err(ShcError::BadChunks { .. })),
            "{bad}"
        );
    }
}

#[test]
fn bad_qr_texts() {
    for bad in [
        "",
        "shc:/",
        "shc:/567",
        "shc:/5678a9",
        "shc:/9999",
        "http://x",
        "shc:/1/2",
        "SHC:/5676",
    ] {
        assert!(
            matches!(
                shc::jws_from_qr(&[bad]),
                Err(ShcError::BadQr { .. } | ShcError::BadChunks { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(shc::jws_from_qr(&[]), Err(ShcError::BadQr { .. })));
    // A QR over the specification's per-QR maximum (1,195 JWS characters, 2,390 digits) is
    // refused, chunked or not, even when every digit pair is valid; at the maximum it decodes.
    let at_max = "56".repeat(shc::MAX_JWS_PER_QR);
    let over = "56".repeat(shc::MAX_JWS_PER_QR + 1);
    assert_eq!(
        shc::jws_from_qr(&[&format!("shc:/{at_max}")])
            .unwrap()
            .len(),
        shc::MAX_JWS_PER_QR
    );
    for text in [format!("shc:/{over}"), format!("shc:/1/2/{over}")] {
        assert!(
            matches!(shc::jws_from_qr(&[&text]), Err(ShcError::BadChunks { .. })),
            "{} digits",
            over.len()
        );
    }
}

fn with_header(jws: &str, header: &str) -> String {
    let rest = jws.split_once('.').unwrap().1;
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
}

#[test]
fn tampering_and_bad_headers_have_their_own_reasons() {
    let t = trust();
    let jws = read("example-00-d-jws.txt").trim().to_string();
    let (head, rest) = jws.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();

    // A flipped signature byte.
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw[10] ^= 1;
    let tampered = format!("{head}.{payload}.{}", URL_SAFE_NO_PAD.encode(&raw));
    assert_eq!(shc::verify(&tampered, &t, NOW), Err(ShcError::BadSignature));
    // A changed payload byte (still base64url).
    let mut p = payload.as_bytes().to_vec();
    p[20] = if p[20] == b'A' { b'B' } else { b'A' };
    let changed = format!("{head}.{}.{sig}", String::from_utf8(p).unwrap());
    assert_eq!(shc::verify(&changed, &t, NOW), Err(ShcError::BadSignature));
    // The signature DER-encoded.
    let raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
    let der_jws = format!(
        "{head}.{payload}.{}",
        URL_SAFE_NO_PAD.encode(der.as_bytes())
    );
    assert_eq!(shc::verify(&der_jws, &t, NOW), Err(ShcError::DerSignature));
    // Another kid: unknown, or known but not the signer.
    let unknown = with_header(&jws, r#"{"zip":"DEF","alg":"ES256","kid":"nope"}"#);
    assert!(matches!(
        shc::verify(&unknown, &t, NOW),
        Err(ShcError::UnknownKey { .. })
    ));
    let other = with_header(
        &jws,
        r#"{"zip":"DEF","alg":"ES256","kid":"EBKOr72QQDcTBUuVzAzkfBTGew0ZA16GuWty64nS-sw"}"#,
    );
    assert_eq!(shc::verify(&other, &t, NOW), Err(ShcError::BadSignature));
    // Missing or malformed header fields.
    for header in [
        r#"{"zip":"DEF","kid":"3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"}"#,
        r#"{"zip":"DEF","alg":"RS256","kid":"3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"}"#,
        r#"{"alg":"ES256","kid":"3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s"}"#,
        r#"{"zip":"DEF","alg":"ES256"}"#,
        "not json",
    ] {
        assert!(
            matches!(
                shc::verify(&with_header(&jws, header), &t, NOW),
                Err(ShcError::BadHeader { .. })
            ),
            "{header}"
        );
    }
    assert!(matches!(
        shc::verify(&format!("%%%.{payload}.{sig}"), &t, NOW),
        Err(ShcError::BadHeader { .. })
    ));
    // Not valid yet; a phone whose clock runs a few minutes slow takes a card issued this
    // moment, but not one issued more than the tolerance ahead of its clock.
    assert!(matches!(
        shc::verify(&jws, &t, 1_600_000_000),
        Err(ShcError::NotYetValid { .. })
    ));
    let nbf = shc::verify(&jws, &t, NOW).unwrap().nbf;
    let tolerance = thudo_core::health::ISSUE_CLOCK_TOLERANCE_SECS;
    assert!(shc::verify(&jws, &t, nbf - 30).is_ok());
    assert!(shc::verify(&jws, &t, nbf - tolerance).is_ok());
    assert!(matches!(
        shc::verify(&jws, &t, nbf - tolerance - 2),
        Err(ShcError::NotYetValid { .. })
    ));
    // Structure.
    for bad in ["", "a.b", "a.b.c.d", &"x".repeat(70_000)] {
        assert!(shc::verify(bad, &t, NOW).is_err());
    }
    // A trust store that files the key under another issuer.
    let mut wrong = TrustStore::new();
    wrong
        .add_jwks("https://elsewhere.example", &read("issuer/jwks.json"))
        .unwrap();
    assert!(matches!(
        shc::verify(&jws, &wrong, NOW),
        Err(ShcError::IssuerMismatch { .. })
    ));
    assert!(matches!(
        shc::verify(&jws, &TrustStore::new(), NOW),
        Err(ShcError::UnknownKey { .. })
    ));
}

#[test]
fn revocation_by_rid_and_rid_timestamp() {
    let jws = read("example-00-d-jws.txt").trim().to_string();
    let kid = "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s";
    let card_rid = shc::verify(&jws, &trust(), NOW).unwrap().rid.unwrap();
    for (entry, revoked) in [
        (card_rid.clone(), true),
        (format!("{card_rid}.1687450765"), true), // issued before the timestamp
        (format!("{card_rid}.1687450000"), false), // issued after it
        ("someoneElse".to_string(), false),
    ] {
        let mut t = trust();
        t.add_crl(&format!(
            r#"{{"kid":"{kid}","method":"rid","ctr":2,"rids":["{entry}"]}}"#
        ))
        .unwrap();
        let result = shc::verify(&jws, &t, NOW);
        assert_eq!(
            matches!(result, Err(ShcError::Revoked { .. })),
            revoked,
            "{entry}: {result:?}"
        );
    }
    // Entries only add up, whatever their order and however many lists name the card: "every
    // card" stays, and the later of two times holds.
    for lists in [
        vec![
            vec![card_rid.clone()],
            vec![format!("{card_rid}.1687450000")],
        ],
        vec![vec![format!("{card_rid}.1687450000"), card_rid.clone()]],
        vec![vec![
            format!("{card_rid}.1687450765"),
            format!("{card_rid}.1687450000"),
        ]],
        vec![
            vec![format!("{card_rid}.1687450765")],
            vec![format!("{card_rid}.1687450000")],
        ],
    ] {
        let mut t = trust();
        for rids in &lists {
            t.add_crl(&serde_json::json!({"kid": kid, "method": "rid", "rids": rids}).to_string())
                .unwrap();
        }
        let result = shc::verify(&jws, &t, NOW);
        assert!(
            matches!(result, Err(ShcError::Revoked { .. })),
            "{lists:?}: {result:?}"
        );
    }
}

#[test]
fn bad_trust_data_is_refused() {
    let mut t = TrustStore::new();
    assert!(t.add_jwks(ISSUER, "not json").is_err());
    assert!(t.add_jwks(ISSUER, r#"{"nokeys":1}"#).is_err());
    let jwks = read("issuer/jwks.json").replace("3Kfdg-XwP", "3Kfdg-XwQ");
    assert!(
        matches!(
            t.add_jwks(ISSUER, &jwks),
            Err(ShcError::BadTrustData { .. })
        ),
        "kid must be the thumbprint"
    );
    assert!(t
        .add_crl(r#"{"kid":"k","method":"other","rids":[]}"#)
        .is_err());
    assert!(t
        .add_crl(r#"{"kid":"k","method":"rid","rids":["a.notanumber"]}"#)
        .is_err());
}

/// A key two issuers list (a signing service serving both): each one's cards verify, under
/// its own name only; a card naming an issuer that does not list the key is refused.
#[test]
fn a_key_listed_by_two_issuers_verifies_the_cards_of_each() {
    let jws = read("example-00-d-jws.txt").trim().to_string();
    let kid = "3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s";
    for other_first in [false, true] {
        let mut t = TrustStore::new();
        if other_first {
            t.add_jwks("https://other.example.vn", &read("issuer/jwks.json"))
                .unwrap();
        }
        t.add_jwks(ISSUER, &read("issuer/jwks.json")).unwrap();
        if !other_first {
            t.add_jwks("https://other.example.vn", &read("issuer/jwks.json"))
                .unwrap();
        }
        let card = shc::verify(&jws, &t, NOW);
        assert_eq!(card.map(|c| c.issuer).ok().as_deref(), Some(ISSUER));
        assert!(t.is_key_of(kid, ISSUER) && t.is_key_of(kid, "https://other.example.vn"));
        assert!(!t.is_key_of(kid, "https://third.example.vn"));
    }
    let mut alone = TrustStore::new();
    alone
        .add_jwks("https://other.example.vn", &read("issuer/jwks.json"))
        .unwrap();
    assert!(matches!(
        shc::verify(&jws, &alone, NOW),
        Err(ShcError::IssuerMismatch { .. })
    ));
}

/// The example card's content, issued again by an issuer of our own with an `exp` already
/// past: the verifier says it expired, and the health book imports it all the same (a
/// vaccination stays true, as with an expired EU certificate) and keeps it verified.
#[test]
fn an_expired_card_is_refused_by_the_verifier_and_imported_as_evidence() {
    use thudo_core::crypto::p256::SoftwareKey;
    use thudo_core::health::records::HealthBook;
    let example = read("example-00-d-jws.txt");
    let payload = example.trim().split('.').nth(1).unwrap();
    let inflated =
        miniz_oxide::inflate::decompress_to_vec(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(&inflated).unwrap();
    let issuer = "https://issuer.example.vn";
    claims["iss"] = issuer.into();
    claims["nbf"] = (NOW - 86_400).into();
    claims["exp"] = (NOW - 60).into();

    let (key, _) = SoftwareKey::generate().unwrap();
    let point = key.public_key();
    let (x, y) = (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    );
    let kid = shc::jwk_thumbprint(&x, &y);
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "kid": kid, "use": "sig", "alg": "ES256", "crv": "P-256", "x": x, "y": y
    }]});
    let mut trust = TrustStore::new();
    assert_eq!(trust.add_jwks(issuer, &jwks.to_string()).unwrap(), 1);
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"zip": "DEF", "alg": "ES256", "kid": kid}).to_string());
    let body = URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(
        claims.to_string().as_bytes(),
        9,
    ));
    let signed = format!("{header}.{body}");
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).unwrap());
    let jws = format!("{signed}.{signature}");

    assert_eq!(
        shc::verify(&jws, &trust, NOW),
        Err(ShcError::Expired { exp: NOW - 60 })
    );
    let card = shc::authenticate(&jws, &trust, NOW).unwrap();
    assert_eq!(card.exp, Some(NOW - 60));
    // Not before its time, and not with a broken signature, expired or not.
    assert!(matches!(
        shc::authenticate(&jws, &trust, NOW - 2 * 86_400),
        Err(ShcError::NotYetValid { .. })
    ));
    let mut forged = jws.clone();
    forged.pop();
    forged.push(if jws.ends_with('A') { 'B' } else { 'A' });
    assert!(shc::authenticate(&forged, &trust, NOW).is_err());

    let dir = tempfile::tempdir().unwrap();
    let vault = thudo_core::vault::Vault::open(
        dir.path(),
        thudo_core::vault::Unlock::passphrase("p"),
        &common::fast(),
    )
    .unwrap();
    let book = HealthBook::new(&vault);
    let imported = book
        .verify_and_import_card(&jws, &trust, NOW, None)
        .unwrap();
    let person = imported.people[0].clone();
    // The example holds three doses, each vouched for by the card kept with it.
    let three_vouched_doses = || {
        let shots = book
            .records(
                &person,
                Some(thudo_core::health::fhir::Kind::Immunization),
                None,
                None,
            )
            .unwrap();
        assert_eq!(shots.len(), 3);
        assert!(book
            .vouched(&shots, &trust)
            .unwrap()
            .iter()
            .all(|v| *v == Some(true)));
    };
    three_vouched_doses();
    // The same card downloaded again: the issuer signs anew (each ECDSA signature differs), the
    // content is the same, so its records are replaced, not copied.
    let again = format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()).unwrap())
    );
    assert_ne!(again, jws);
    book.verify_and_import_card(&again, &trust, NOW, None)
        .unwrap();
    three_vouched_doses();
}
