//! The health trust bundle as an attacker would offer it (forged, tampered, truncated,
//! oversized, rolled back, expired, delivered twice) and as time passes (stale, an issuer
//! removed): a device installs only what the trust-list key signed, never goes back, and shows
//! a record whose signer left the list as such.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::{vault, SHC_ISSUER as ISSUER};

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use thudo_core::crypto::p256::SoftwareKey;
use thudo_core::health::records::HealthBook;
use thudo_core::health::shc::TrustStore;
use thudo_core::health::trust_bundle::{
    self, CardIssuer, PassportSigner, TrustBundle, TrustBundleError,
};
use thudo_core::vault::Vault;

const NOW: i64 = 1_790_000_000;

fn data(path: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(path),
    )
    .unwrap()
}

fn issuer() -> CardIssuer {
    CardIssuer {
        iss: ISSUER.into(),
        jwks: serde_json::from_str(&data("shc/issuer/jwks.json")).unwrap(),
        // Its key announces revocation list version 1: the bundle carries it.
        crls: vec![serde_json::from_str(&data(CRL)).unwrap()],
    }
}

const CRL: &str = "shc/issuer/crl/3Kfdg-XwP-7gXyywtUfUADwBumDOPKMQx-iELL11W9s.json";

fn german_signer() -> PassportSigner {
    let cases: Vec<Value> = serde_json::from_str(&data("dcc/DE.json")).unwrap();
    PassportSigner {
        country: "DE".into(),
        certificate: cases[0]["TESTCTX"]["CERTIFICATE"].as_str().unwrap().into(),
    }
}

fn bundle(version: u64, card_issuers: Vec<CardIssuer>) -> TrustBundle {
    TrustBundle {
        version,
        issued_at: NOW - 60,
        expires_at: NOW + 7 * 86_400,
        card_issuers,
        passport_signers: vec![german_signer()],
        passport_revocations: Vec::new(),
        passport_revocation_hashes: Vec::new(),
        content_published_at: None,
    }
}

fn key() -> SoftwareKey {
    SoftwareKey::generate().unwrap().0
}

#[test]
fn a_signed_bundle_installs_and_the_verifiers_use_it() {
    let k = key();
    let (_d, v) = vault();
    assert!(trust_bundle::status(&v, NOW).unwrap().is_none());
    let jws = bundle(5, vec![issuer()]).sign(&k).unwrap();
    let s = trust_bundle::install(&v, &jws, k.public_key(), NOW).unwrap();
    assert_eq!((s.version, s.stale, s.installed_at), (5, false, NOW));
    let trust = trust_bundle::installed_trust(&v).unwrap().unwrap();
    // The example health card and the German vaccine passport verify with it alone.
    let card = thudo_core::health::shc::verify(&data("shc/example-00-d-jws.txt"), &trust, NOW);
    assert!(card.is_ok(), "{card:?}");
    assert_eq!(trust.dcc.len(), 1);
    // Delivered twice: nothing changes.
    let again = trust_bundle::install(&v, &jws, k.public_key(), NOW + 10).unwrap();
    assert_eq!(again.installed_at, NOW);
    // Stale once past its expiry, and still used.
    let later = NOW + 8 * 86_400;
    assert!(trust_bundle::status(&v, later).unwrap().unwrap().stale);
    assert!(trust_bundle::installed_trust(&v).unwrap().is_some());
}

#[test]
fn forged_tampered_truncated_and_oversized_bundles_are_refused() {
    let k = key();
    let (_d, v) = vault();
    let good = bundle(5, vec![issuer()]).sign(&k).unwrap();
    trust_bundle::install(&v, &good, k.public_key(), NOW).unwrap();
    // Signed by another key (the network's, an attacker's).
    let forged = bundle(9, Vec::new()).sign(&key()).unwrap();
    assert!(matches!(
        trust_bundle::install(&v, &forged, k.public_key(), NOW),
        Err(TrustBundleError::BadSignature)
    ));
    // The payload swapped under a genuine signature: a newer version that drops the issuer.
    let parts: Vec<&str> = good.split('.').collect();
    let swapped = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&bundle(9, Vec::new())).unwrap());
    let tampered = format!("{}.{swapped}.{}", parts[0], parts[2]);
    assert!(matches!(
        trust_bundle::install(&v, &tampered, k.public_key(), NOW),
        Err(TrustBundleError::BadSignature)
    ));
    // Every truncation fails, none panics.
    for end in 0..good.len() {
        assert!(trust_bundle::install(&v, &good[..end], k.public_key(), NOW).is_err());
    }
    // Too large, not a JWS, another JWS type.
    let huge = "a".repeat(trust_bundle::MAX_BUNDLE + 1);
    for bad in [huge.as_str(), "", "a.b", "not a bundle"] {
        assert!(matches!(
            trust_bundle::install(&v, bad, k.public_key(), NOW),
            Err(TrustBundleError::Malformed { .. })
        ));
    }
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#);
    let other_type = format!("{header}.{}.{}", parts[1], parts[2]);
    assert!(matches!(
        trust_bundle::install(&v, &other_type, k.public_key(), NOW),
        Err(TrustBundleError::Malformed { .. })
    ));
    // Through it all, version 5 stayed installed.
    assert_eq!(trust_bundle::status(&v, NOW).unwrap().unwrap().version, 5);
}

/// The backend signs only a bundle it loads whole; a device that cannot read an entry of one
/// (a newer key type, a newer revocation method) leaves that entry out, never the bundle: it
/// would otherwise stop taking every later revocation. An issuer goes with its keys when its
/// revocation list cannot be read (trusting less, never more). Encryption keys listed in an
/// issuer's JWKS are passed over.
#[test]
fn an_entry_a_device_cannot_read_is_left_out_not_the_bundle() {
    let k = key();
    let (_d, v) = vault();
    let card = data("shc/example-00-d-jws.txt");
    let verifies = |v: &Vault| {
        let trust = trust_bundle::installed_trust(v).unwrap().unwrap();
        thudo_core::health::shc::verify(&card, &trust, NOW).is_ok()
    };

    // An encryption key beside the signing key: passed over, the card verifies.
    let mut with_enc = issuer();
    let mut enc = with_enc.jwks["keys"][0].clone();
    enc["use"] = Value::String("enc".into());
    enc["kid"] = Value::String("enc-1".into());
    with_enc.jwks["keys"].as_array_mut().unwrap().push(enc);
    let b = bundle(5, vec![with_enc]);
    assert!(b.trust_store().is_ok(), "the backend publishes it");
    trust_bundle::install(&v, &b.sign(&k).unwrap(), k.public_key(), NOW).unwrap();
    assert!(verifies(&v));

    // A revocation list of a method this version cannot read, and a signer certificate it
    // cannot parse: the issuer and the certificate are left out, the German signer stays.
    let mut newer_crl = issuer();
    newer_crl.crls = vec![serde_json::json!({"kid": "k", "method": "crl-v2", "ctr": 1})];
    let mut b = bundle(6, vec![newer_crl]);
    b.passport_signers.push(PassportSigner {
        country: "XX".into(),
        certificate: "AAAA".into(),
    });
    assert!(
        matches!(b.trust_store(), Err(TrustBundleError::Malformed { .. })),
        "the backend refuses to sign it"
    );
    let (_, left_out) = b.device_trust_store().unwrap();
    assert_eq!(left_out.len(), 2, "{left_out:?}");
    let s = trust_bundle::install(&v, &b.sign(&k).unwrap(), k.public_key(), NOW).unwrap();
    assert_eq!(s.version, 6);
    assert!(
        !verifies(&v),
        "an issuer whose revocations cannot be read is not trusted"
    );
    let trust = trust_bundle::installed_trust(&v).unwrap().unwrap();
    assert_eq!(trust.dcc.len(), 1);

    // A signing key that is not what its kid says is left out with its issuer too.
    let mut broken = issuer();
    broken.jwks["keys"][0]["kid"] = Value::String("not-the-thumbprint".into());
    let s = trust_bundle::install(
        &v,
        &bundle(7, vec![broken, issuer()]).sign(&k).unwrap(),
        k.public_key(),
        NOW,
    )
    .unwrap();
    assert_eq!(s.version, 7);
    assert!(verifies(&v), "the issuer listed well is trusted");
}

#[test]
fn a_rollback_or_an_expired_bundle_is_refused() {
    let k = key();
    let (_d, v) = vault();
    let v5 = bundle(5, vec![issuer()]).sign(&k).unwrap();
    let v6 = bundle(6, Vec::new()).sign(&k).unwrap();
    trust_bundle::install(&v, &v6, k.public_key(), NOW).unwrap();
    // The older bundle that still trusted the removed issuer.
    assert!(matches!(
        trust_bundle::install(&v, &v5, k.public_key(), NOW),
        Err(TrustBundleError::Rollback {
            installed: 6,
            offered: 5
        })
    ));
    // The same version with other content.
    let other6 = bundle(6, vec![issuer()]).sign(&k).unwrap();
    assert!(matches!(
        trust_bundle::install(&v, &other6, k.public_key(), NOW),
        Err(TrustBundleError::Rollback { .. })
    ));
    // A newer bundle that has already expired.
    let mut old = bundle(7, vec![issuer()]);
    old.expires_at = NOW - 1;
    assert!(matches!(
        trust_bundle::install(&v, &old.sign(&k).unwrap(), k.public_key(), NOW),
        Err(TrustBundleError::Expired { .. })
    ));
    assert_eq!(trust_bundle::status(&v, NOW).unwrap().unwrap().version, 6);
}

/// The trust-list key leaked and the app now carries a new one: the bundle its holder signed
/// with the highest version there is, once installed, sets no floor under the new key. The
/// first bundle the new key signs replaces it, and the device asks for it without naming the
/// version it holds.
#[test]
fn a_bundle_from_a_replaced_key_gives_way_to_the_new_keys_first() {
    let (old, new) = (key(), key());
    let (_d, v) = vault();
    let verifies = |v: &Vault| {
        let trust = trust_bundle::installed_trust(v).unwrap().unwrap();
        thudo_core::health::shc::verify(&data("shc/example-00-d-jws.txt"), &trust, NOW).is_ok()
    };
    let planted = bundle(u64::MAX, vec![issuer()]).sign(&old).unwrap();
    trust_bundle::install(&v, &planted, old.public_key(), NOW).unwrap();
    assert!(verifies(&v));
    // Asked with the key the app carries now, it vouches for nothing.
    assert!(
        trust_bundle::installed_trust_signed_by(&v, new.public_key())
            .unwrap()
            .is_none()
    );
    assert!(
        trust_bundle::installed_trust_signed_by(&v, old.public_key())
            .unwrap()
            .is_some()
    );
    // The new key's bundle offered to an app still carrying the old key: not its key.
    let genuine = bundle(3, Vec::new()).sign(&new).unwrap();
    assert!(matches!(
        trust_bundle::install(&v, &genuine, old.public_key(), NOW),
        Err(TrustBundleError::BadSignature)
    ));
    let s = trust_bundle::install(&v, &genuine, new.public_key(), NOW).unwrap();
    assert_eq!(s.version, 3);
    assert!(
        !verifies(&v),
        "the planted bundle's issuer is trusted no more"
    );
    // From now on the new key's bundle is the floor as usual.
    let older = bundle(2, vec![issuer()]).sign(&new).unwrap();
    assert!(matches!(
        trust_bundle::install(&v, &older, new.public_key(), NOW),
        Err(TrustBundleError::Rollback {
            installed: 3,
            offered: 2
        })
    ));
    // And the old key's bundle, offered again, is not signed by the key the app carries.
    assert!(matches!(
        trust_bundle::install(&v, &planted, new.public_key(), NOW),
        Err(TrustBundleError::BadSignature)
    ));
}

/// A backup is sealed with whatever passphrase its writer chose: restoring one never puts its
/// trust bundle in place of the one this device verified (an attacker's, signed by their own
/// key, or an honest older one that still trusts a removed issuer), nor installs one where
/// there was none.
#[test]
fn a_restored_backup_brings_no_trust_bundle() {
    use thudo_core::vault::Document;
    assert!(thudo_core::vault::NOT_RESTORED.contains(&trust_bundle::Installed::COLLECTION));
    let (real, forger) = (key(), key());
    let (dir, attacker) = vault();
    let planted = bundle(99, vec![issuer()]).sign(&forger).unwrap();
    trust_bundle::install(&attacker, &planted, forger.public_key(), NOW).unwrap();
    attacker.put("notes", "n1", &[], b"a note").unwrap();
    let file = dir.path().join("family.backup");
    attacker.export_backup(&file, "1234").unwrap();

    let (_d, victim) = vault();
    let current = bundle(6, Vec::new()).sign(&real).unwrap();
    trust_bundle::install(&victim, &current, real.public_key(), NOW).unwrap();
    assert_eq!(
        victim.import_backup(&file, "1234").unwrap(),
        1,
        "the note alone"
    );
    assert_eq!(
        trust_bundle::status(&victim, NOW).unwrap().unwrap().version,
        6
    );
    let trust = trust_bundle::installed_trust(&victim).unwrap().unwrap();
    let card = thudo_core::health::shc::verify(&data("shc/example-00-d-jws.txt"), &trust, NOW);
    assert!(card.is_err(), "the planted issuer is not trusted");
    assert_eq!(victim.get("notes", "n1").unwrap().body, b"a note");

    let (_e, fresh) = vault();
    fresh.import_backup(&file, "1234").unwrap();
    assert!(trust_bundle::status(&fresh, NOW).unwrap().is_none());
}

/// What the listing shows of `r`'s card under `trust` (`signerTrusted`).
fn verdict(
    book: &HealthBook,
    r: &thudo_core::health::records::HealthRecord,
    trust: &TrustStore,
) -> Option<bool> {
    book.vouched(std::slice::from_ref(r), trust).unwrap()[0]
}

/// Installs a bundle trusting the example issuer (signed by `k`) in `v` and imports the
/// example card: the trust, the person, and their immunization records.
fn imported_card(
    v: &Vault,
    k: &SoftwareKey,
) -> (
    TrustStore,
    String,
    Vec<thudo_core::health::records::HealthRecord>,
) {
    trust_bundle::install(
        v,
        &bundle(5, vec![issuer()]).sign(k).unwrap(),
        k.public_key(),
        NOW,
    )
    .unwrap();
    let trust = trust_bundle::installed_trust(v).unwrap().unwrap();
    let book = HealthBook::new(v);
    let s = book
        .verify_and_import_card(&data("shc/example-00-d-jws.txt"), &trust, NOW, None)
        .unwrap();
    let person = s.people[0].clone();
    let shots = book
        .records(
            &person,
            Some(thudo_core::health::fhir::Kind::Immunization),
            None,
            None,
        )
        .unwrap();
    (trust, person, shots)
}

#[test]
fn a_record_whose_issuer_left_the_list_is_shown_as_such() {
    let k = key();
    let (_d, v) = vault();
    let (trust, person, shots) = imported_card(&v, &k);
    let book = HealthBook::new(&v);
    assert_eq!(verdict(&HealthBook::new(&v), &shots[0], &trust), Some(true));
    // The issuer leaves the list.
    trust_bundle::install(
        &v,
        &bundle(6, Vec::new()).sign(&k).unwrap(),
        k.public_key(),
        NOW,
    )
    .unwrap();
    let now_trust = trust_bundle::installed_trust(&v).unwrap().unwrap();
    assert_eq!(
        verdict(&HealthBook::new(&v), &shots[0], &now_trust),
        Some(false)
    );
    // Records not from a card carry no such flag.
    let patient = book.get(&format!("Patient/{person}")).unwrap().unwrap();
    assert_eq!(verdict(&book, &patient, &now_trust), Some(false));
    let mut entered = patient.clone();
    entered.provenance =
        thudo_core::health::records::Provenance::of(thudo_core::health::records::Source::Entered);
    assert_eq!(verdict(&book, &entered, &now_trust), None);
}

/// A SMART Health Card revoked after its import (its issuer's revocation list names the card's
/// `rid`) is no longer shown as trusted, nor imported again.
#[test]
fn a_card_revoked_after_its_import_is_shown_as_such() {
    let k = key();
    let (_d, v) = vault();
    let (trust, _, shots) = imported_card(&v, &k);
    let card = data("shc/example-00-d-jws.txt");
    assert_eq!(verdict(&HealthBook::new(&v), &shots[0], &trust), Some(true));
    let kid = shots[0].provenance.kid.clone().unwrap();
    // Another card's rid revokes nothing; the card's own rid, or rid.ts after its issue, does.
    for (rids, trusted) in [
        (vec!["another-rid"], true),
        (vec!["MKyCxh7p6uQ.1600000000"], true),
        (vec!["MKyCxh7p6uQ.1700000000"], false),
        (vec!["MKyCxh7p6uQ"], false),
    ] {
        let mut revoking = issuer();
        revoking.crls = vec![serde_json::json!({"kid": kid, "method": "rid", "rids": rids})];
        let (_e, fresh) = vault();
        trust_bundle::install(
            &fresh,
            &bundle(6, vec![revoking]).sign(&k).unwrap(),
            k.public_key(),
            NOW,
        )
        .unwrap();
        let trust = trust_bundle::installed_trust(&fresh).unwrap().unwrap();
        assert_eq!(
            verdict(&HealthBook::new(&v), &shots[0], &trust),
            Some(trusted),
            "{rids:?}"
        );
        assert_eq!(
            HealthBook::new(&fresh)
                .verify_and_import_card(&card, &trust, NOW, None)
                .is_ok(),
            trusted,
            "{rids:?}"
        );
    }
}

#[test]
fn a_revoked_passport_in_the_bundle_no_longer_verifies() {
    let k = key();
    let (_d, v) = vault();
    let cases: Vec<Value> = serde_json::from_str(&data("dcc/DE.json")).unwrap();
    let qr = cases[0]["PREFIX"].as_str().unwrap();
    let clock = 1_622_570_400; // the case's validation clock
    let uvci = "URN:UVCI:01DE/IZ12345A/5CWLU12RNOB9RXSEOP6FG8#W";
    let mut b = bundle(5, Vec::new());
    b.issued_at = clock - 60;
    b.expires_at = clock + 86_400;
    trust_bundle::install(&v, &b.sign(&k).unwrap(), k.public_key(), clock).unwrap();
    let trust = trust_bundle::installed_trust(&v).unwrap().unwrap();
    assert!(thudo_core::health::dcc::verify(qr, &trust.dcc, clock).is_ok());
    // Imported while valid: shown as trusted until the revocation arrives.
    let (_e, book_vault) = vault();
    let book = HealthBook::new(&book_vault);
    let imported = book.verify_and_import_dcc(qr, &trust, clock, None).unwrap();
    let shot = book
        .records(
            &imported.people[0],
            Some(thudo_core::health::fhir::Kind::Immunization),
            None,
            None,
        )
        .unwrap()
        .remove(0);
    assert_eq!(verdict(&book, &shot, &trust), Some(true));
    // The next bundle revokes it (hex of SHA-256 of the UVCI).
    let mut revoking = b.clone();
    revoking.version = 6;
    revoking.passport_revocations = vec![thudo_core::hex::encode(
        &thudo_core::health::dcc::uvci_hash(uvci),
    )];
    trust_bundle::install(&v, &revoking.sign(&k).unwrap(), k.public_key(), clock).unwrap();
    let trust = trust_bundle::installed_trust(&v).unwrap().unwrap();
    for result in [
        thudo_core::health::dcc::verify(qr, &trust.dcc, clock),
        thudo_core::health::dcc::authenticate(qr, &trust.dcc, clock),
    ] {
        assert!(
            matches!(result, Err(thudo_core::health::dcc::DccError::Revoked { ref certificate_id }) if certificate_id == uvci),
            "{result:?}"
        );
    }
    assert!(HealthBook::new(&v)
        .verify_and_import_dcc(qr, &trust, clock, None)
        .is_err());
    assert_eq!(verdict(&book, &shot, &trust), Some(false), "revoked since");
    // As the EU gateway lists them: the first 128 bits, base64, by each of the three hashes.
    use base64::engine::general_purpose::STANDARD;
    let sha256 = |bytes: &[u8]| {
        ring::digest::digest(&ring::digest::SHA256, bytes)
            .as_ref()
            .to_vec()
    };
    let signature = thudo_core::health::dcc::decode(qr)
        .unwrap()
        .signature()
        .to_vec();
    assert_eq!(signature.len(), 64, "ES256: r then s");
    let gateway =
        |kind: &str, hashed: &[u8]| format!("{kind}{}", STANDARD.encode(&sha256(hashed)[..16]));
    for (version, entry) in [
        (10, gateway("", uvci.as_bytes())),
        (11, gateway("UCI:", uvci.as_bytes())),
        (
            12,
            gateway("COUNTRYCODEUCI:", format!("DE{uvci}").as_bytes()),
        ),
        (13, gateway("SIGNATURE:", &signature[..32])),
    ] {
        let (_f, fresh) = vault();
        let mut gateway_bundle = b.clone();
        gateway_bundle.version = version;
        gateway_bundle.passport_revocation_hashes = vec![entry.clone()];
        trust_bundle::install(
            &fresh,
            &gateway_bundle.sign(&k).unwrap(),
            k.public_key(),
            clock,
        )
        .unwrap();
        let trust = trust_bundle::installed_trust(&fresh).unwrap().unwrap();
        assert!(
            matches!(
                thudo_core::health::dcc::verify(qr, &trust.dcc, clock),
                Err(thudo_core::health::dcc::DccError::Revoked { .. })
            ),
            "{entry}"
        );
        assert_eq!(verdict(&book, &shot, &trust), Some(false), "{entry}");
    }
    // Hashes of something else revoke nothing: another country, the signature's s half.
    for entry in [
        gateway("COUNTRYCODEUCI:", format!("FR{uvci}").as_bytes()),
        gateway("SIGNATURE:", &signature[32..]),
    ] {
        let (_f, fresh) = vault();
        let mut other = b.clone();
        other.passport_revocation_hashes = vec![entry.clone()];
        trust_bundle::install(&fresh, &other.sign(&k).unwrap(), k.public_key(), clock).unwrap();
        let trust = trust_bundle::installed_trust(&fresh).unwrap().unwrap();
        assert!(
            thudo_core::health::dcc::verify(qr, &trust.dcc, clock).is_ok(),
            "{entry}"
        );
        assert_eq!(verdict(&book, &shot, &trust), Some(true), "{entry}");
    }
    // A revocation entry that is not a hash, or of an unknown kind, makes the bundle
    // unloadable.
    let mut unknown_kind = b.clone();
    unknown_kind.version = 7;
    unknown_kind.passport_revocation_hashes = vec![gateway("DCCHASH:", uvci.as_bytes())];
    assert!(matches!(
        trust_bundle::install(&v, &unknown_kind.sign(&k).unwrap(), k.public_key(), clock),
        Err(TrustBundleError::Malformed { .. })
    ));
    // The field every version reads takes only whole UVCI hashes: a gateway form there would
    // make older apps refuse the whole bundle.
    let mut mixed = b.clone();
    mixed.version = 7;
    mixed.passport_revocations = vec![gateway("UCI:", uvci.as_bytes())];
    assert!(matches!(
        trust_bundle::install(&v, &mixed.sign(&k).unwrap(), k.public_key(), clock),
        Err(TrustBundleError::Malformed { .. })
    ));
    let mut broken = b.clone();
    broken.version = 7;
    broken.passport_revocations = vec!["not a hash".into()];
    assert!(matches!(
        trust_bundle::install(&v, &broken.sign(&k).unwrap(), k.public_key(), clock),
        Err(TrustBundleError::Malformed { .. })
    ));
}

/// A backup's records are its writer's word: a record claiming a genuine card's provenance is
/// shown as vouched for only when the card holds it. An attacker's "family backup" that alters
/// a genuine card's vaccination (a dose that was never given), files it under another person,
/// or claims a card without carrying it is restored, but never listed as verified; the genuine
/// records restored beside them still are.
#[test]
fn a_restored_record_is_verified_only_when_its_card_holds_it() {
    use thudo_core::health::records::{HealthRecord, Source};
    let k = key();
    let (dir, attacker) = vault();
    let (trust, person, shots) = imported_card(&attacker, &k);
    let book = HealthBook::new(&attacker);
    let genuine = shots[0].clone();
    assert_eq!(book.vouched(&shots, &trust).unwrap()[0], Some(true));

    // An extra dose, "from" the same card.
    let mut extra = genuine.clone();
    extra.key = "Immunization/planted".into();
    extra.resource["id"] = "planted".into();
    extra.resource["occurrenceDateTime"] = "2021-12-24".into();
    // The genuine dose re-pointed at a second person of the book.
    let other = book
        .put_resource(
            r#"{"resourceType":"Patient","id":"other","name":[{"family":"Nguyễn","given":["Văn An"]}],"birthDate":"1990-02-03"}"#,
            NOW as u64,
        )
        .unwrap();
    let mut moved = genuine.clone();
    moved.key = "Immunization/moved".into();
    moved.person = "other".into();
    moved.resource["id"] = "moved".into();
    moved.resource["patient"]["reference"] = other.clone().into();
    // A card record without its card.
    let mut bare = genuine.clone();
    bare.key = "Immunization/bare".into();
    bare.resource["id"] = "bare".into();
    bare.provenance.card = None;
    for planted in [&extra, &moved, &bare] {
        attacker.put_doc(planted).unwrap();
    }
    let file = dir.path().join("family.backup");
    attacker.export_backup(&file, "1234").unwrap();

    let (_d, victim) = vault();
    trust_bundle::install(
        &victim,
        &bundle(6, vec![issuer()]).sign(&k).unwrap(),
        k.public_key(),
        NOW,
    )
    .unwrap();
    victim.import_backup(&file, "1234").unwrap();
    let trust = trust_bundle::installed_trust(&victim).unwrap().unwrap();
    let book = HealthBook::new(&victim);
    let restored = |key: &str| -> HealthRecord { book.get(key).unwrap().unwrap() };
    let listed = [
        restored(&genuine.key),
        restored(&format!("Patient/{person}")),
        restored("Immunization/planted"),
        restored("Immunization/moved"),
        restored("Immunization/bare"),
    ];
    // Each planted record still claims the card, whose signer is still trusted.
    assert!(listed[2..]
        .iter()
        .all(|r| r.provenance.source == Source::HealthCard));
    assert_eq!(
        book.vouched(&listed, &trust).unwrap(),
        [
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(false)
        ]
    );
    // Other records carry no verdict.
    let entered = book.get(&other).unwrap().unwrap();
    assert_eq!(book.vouched(&[entered], &trust).unwrap(), [None]);
}

/// An issuer key announcing a revocation list (`crlVersion`) is published only with that list
/// at that version or later: without it, the cards the issuer revoked would verify.
#[test]
fn the_backend_publishes_no_issuer_without_the_revocations_its_keys_announce() {
    let refused = |issuer: CardIssuer| match bundle(1, vec![issuer]).trust_store() {
        Err(TrustBundleError::Malformed { detail }) => detail,
        other => panic!("published: {other:?}"),
    };
    let mut without = issuer();
    without.crls.clear();
    assert!(
        refused(without).contains("announces revocation list version 1, the bundle carries none")
    );
    let mut older = issuer();
    older.crls[0]["ctr"] = 0.into();
    assert!(refused(older).contains("carries version 0"));
    let mut newer_key = issuer();
    newer_key.jwks["keys"][0]["crlVersion"] = 2.into();
    assert!(refused(newer_key).contains("version 2"));
    let mut zero = issuer();
    zero.jwks["keys"][0]["crlVersion"] = 0.into();
    zero.crls.clear();
    assert!(refused(zero).contains("the bundle carries none"));
    let mut not_a_count = issuer();
    not_a_count.jwks["keys"][0]["crlVersion"] = "1".into();
    assert!(refused(not_a_count).contains("is not a count"));
    // The list at that version or later, or a key announcing none: published.
    let mut later = issuer();
    later.crls[0]["ctr"] = 3.into();
    assert!(bundle(1, vec![later, issuer()]).trust_store().is_ok());
    let mut none_announced = issuer();
    none_announced.crls.clear();
    for key in none_announced.jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("crlVersion");
    }
    assert!(bundle(1, vec![none_announced]).trust_store().is_ok());
}

/// The published vector (docs/protocol/health-trust-bundle.md), signed independently of this
/// library: it opens under the trust key in either form, installs, and its issuer's cards
/// verify; a field this version does not know is ignored; one byte altered anywhere is refused.
#[test]
fn the_published_vector_verifies() {
    let vector: Value = serde_json::from_str(&data("trust_bundle/vector.json")).unwrap();
    let jws = vector["jws"].as_str().unwrap();
    let anchor = trust_bundle::parse_anchor(vector["trust_key_base64"].as_str().unwrap()).unwrap();
    let compressed =
        trust_bundle::parse_anchor(vector["trust_key_compressed_base64url"].as_str().unwrap())
            .unwrap();
    assert_eq!(anchor, compressed);
    let bundle = trust_bundle::open(jws, &anchor).unwrap();
    assert_eq!(
        (bundle.version, bundle.issued_at, bundle.expires_at),
        (42, 1_796_400_000, 1_797_004_800)
    );
    // The header is exactly the one published.
    let header = URL_SAFE_NO_PAD
        .decode(jws.split('.').next().unwrap())
        .unwrap();
    assert_eq!(header, vector["header"].as_str().unwrap().as_bytes());
    let (_d, v) = vault();
    let at = 1_796_500_000;
    assert_eq!(
        trust_bundle::install(&v, jws, &anchor, at).unwrap().version,
        42
    );
    let trust = trust_bundle::installed_trust(&v).unwrap().unwrap();
    let card = thudo_core::health::shc::verify(&data("shc/example-00-d-jws.txt"), &trust, at);
    assert!(card.is_ok(), "{card:?}");
    // Altered: the payload's version, the header, the signature's last character.
    let parts: Vec<&str> = jws.split('.').collect();
    let mut payload: Value = vector["payload"].clone();
    payload["version"] = 43.into();
    let forged = [
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT"}"#),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}{}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() - 1],
            if parts[2].ends_with('A') { "B" } else { "A" }
        ),
    ];
    for jws in forged {
        assert!(trust_bundle::open(&jws, &anchor).is_err(), "{jws}");
    }
}
