//! Provenance is evidence, not a label. A record another device of the citizen pushes as
//! "verified health card" carries the signed card; the device pulling it re-verifies the card
//! against its own trust store and checks the record is the card's entry it claims to be. A
//! claim that does not verify is kept, shown as another device's word. No pulled or imported
//! record moves to another person or lands in a book the caller did not choose.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::{shc_fixture as fixture, shc_trust as trust, vault, SHC_ISSUER as ISSUER};

use serde_json::{json, Value};
use thudo_core::changes::outbox;
use thudo_core::health::records::{
    EntryStatus, Gender, HealthBook, HealthError, HealthRecord, ImportMode, Person, Source,
};
use thudo_core::health::shc::TrustStore;
use thudo_core::vault::Vault;

const NOW: i64 = 1_790_000_000;

/// Device A imports example 00 (verified); returns what it pushes for the card's Patient and
/// for its first Immunization.
fn pushed_immunization() -> (tempfile::TempDir, Vault, Value, Value) {
    let (d, a) = vault();
    HealthBook::new(&a)
        .verify_and_import_card(&fixture("example-00-d-jws.txt"), &trust(), NOW, None)
        .unwrap();
    let (patient, immunization) = (
        common::pushed(&a, "Patient/"),
        common::pushed(&a, "Immunization/"),
    );
    (d, a, patient, immunization)
}

/// A device that pulled the card's Patient record (verified) first, as sync order gives it.
fn device_with_patient(patient: &Value, trust: Option<&TrustStore>) -> (tempfile::TempDir, Vault) {
    let (d, v) = vault();
    assert!(pull(&v, patient, trust));
    (d, v)
}

/// Applies one pulled change on `v` as the sync client does; returns whether it was stored.
fn pull(v: &Vault, payload: &Value, trust: Option<&TrustStore>) -> bool {
    common::pull_health_record(v, payload, trust, NOW as u64 + 60)
}

fn stored(v: &Vault, payload: &Value) -> HealthRecord {
    let resource = payload.get("resource").unwrap_or(payload);
    let key = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    HealthBook::new(v).get(&key).unwrap().unwrap()
}

#[test]
fn a_pulled_card_record_is_verified_again_here_or_shown_as_another_devices_word() {
    let (_a_dir, a, patient, payload) = pushed_immunization();
    assert!(
        payload["provenance"]["card"].is_string(),
        "the card travels"
    );

    // Device B trusts the issuer: the card verifies, the records are its entries, about its
    // patient.
    let (_b_dir, b) = device_with_patient(&patient, Some(&trust()));
    assert_eq!(stored(&b, &patient).provenance.source, Source::HealthCard);
    assert!(pull(&b, &payload, Some(&trust())));
    let r = stored(&b, &payload);
    assert_eq!(r.provenance.source, Source::HealthCard);
    assert_eq!(r.provenance.issuer.as_deref(), Some(ISSUER));
    assert_eq!(
        r.provenance.verified_at,
        Some(NOW),
        "as of when the card was checked"
    );

    // Device C does not trust that issuer (or has no trust store): kept, not verified.
    for trust in [None, Some(TrustStore::new())] {
        let (_c_dir, c) = device_with_patient(&patient, trust.as_ref());
        assert!(pull(&c, &payload, trust.as_ref()));
        assert_eq!(stored(&c, &payload).provenance.source, Source::OtherDevice);
    }

    // Forgeries by a malicious device of the same account, each pulled by a trusting device.
    let mut forgeries: Vec<(&str, Value)> = Vec::new();
    let mut altered = payload.clone();
    altered["resource"]["vaccineCode"]["coding"][0]["code"] = json!("999");
    forgeries.push(("a record changed under a genuine card", altered));
    let mut no_card = payload.clone();
    no_card["provenance"]
        .as_object_mut()
        .unwrap()
        .remove("card");
    forgeries.push(("the label without the card", no_card));
    let mut other_entry = payload.clone();
    other_entry["provenance"]["card_entry"] = json!(0); // entry 0 is the Patient
    forgeries.push(("the card's other entry", other_entry));
    let mut tampered = payload.clone();
    let jws = payload["provenance"]["card"].as_str().unwrap();
    let mut bytes = jws.as_bytes().to_vec();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    tampered["provenance"]["card"] = json!(String::from_utf8(bytes).unwrap());
    forgeries.push(("a tampered card", tampered));
    let mut other_card = payload.clone();
    other_card["provenance"]["card"] = json!(fixture("example-02-d-jws.txt"));
    forgeries.push(("another genuine card", other_card));
    let mut as_server = payload.clone();
    as_server["provenance"] = json!({"source": "server"});
    forgeries.push(("a device claiming to be a facility", as_server));
    // A genuine entry under a new id, pointed at someone else in the book.
    let mut repointed = payload.clone();
    repointed["resource"]["id"] = json!("stolen-shot");
    repointed["resource"]["patient"]["reference"] = json!("Patient/someone-else");
    forgeries.push(("a genuine entry pointed at another person", repointed));
    let someone_else = json!({"resourceType": "Patient", "id": "someone-else",
        "name": [{"text": "Trần Khác"}], "birthDate": "1990-01-01"});
    for (what, forged) in forgeries {
        let (_d, d) = device_with_patient(&patient, Some(&trust()));
        assert!(pull(&d, &someone_else, None), "a facility's patient");
        assert!(pull(&d, &forged, Some(&trust())), "{what}: kept");
        let r = stored(&d, &forged);
        assert_eq!(r.provenance.source, Source::OtherDevice, "{what}");
        assert_eq!(r.provenance.issuer, None, "{what}");
    }

    // Device A pulls its own push back: its provenance stands.
    assert!(pull(&a, &payload, None));
    assert_eq!(stored(&a, &payload).provenance.source, Source::HealthCard);
}

/// A pull's pages come in any order: a dose that arrives before its Patient keeps its card,
/// and is vouched for once the Patient that holds the card's identity is here, never before,
/// and never under a Patient that is not the card's.
#[test]
fn a_dose_pulled_before_its_patient_is_vouched_for_once_the_patient_is_here() {
    let (_a_dir, _a, patient, payload) = pushed_immunization();
    let vouched = |v: &Vault| {
        let record = stored(v, &payload);
        HealthBook::new(v).vouched(&[record], &trust()).unwrap()[0]
    };
    let (_b_dir, b) = vault();
    assert!(pull(&b, &payload, Some(&trust())));
    assert_eq!(stored(&b, &payload).provenance.source, Source::HealthCard);
    assert_eq!(
        vouched(&b),
        Some(false),
        "no profile holds the card's identity yet"
    );
    assert!(pull(&b, &patient, Some(&trust())));
    assert_eq!(vouched(&b), Some(true));

    // The same order, but the profile that arrives under that id is someone else's.
    let (_c_dir, c) = vault();
    assert!(pull(&c, &payload, Some(&trust())));
    let mut impostor = patient.clone();
    impostor["resource"]["name"] = json!([{"text": "Trần Khác"}]);
    impostor["resource"]["birthDate"] = json!("1990-01-01");
    assert!(pull(&c, &impostor, Some(&trust())));
    assert_eq!(vouched(&c), Some(false));
}

#[test]
fn records_never_move_to_another_person_or_land_where_nobody_said() {
    let (_a_dir, _a, patient, payload) = pushed_immunization();
    let (_b_dir, b) = device_with_patient(&patient, Some(&trust()));
    assert!(pull(&b, &payload, Some(&trust())));
    let person = stored(&b, &payload).person;
    assert!(!person.is_empty());
    // The same record id, now about someone else: refused, the record stays where it was.
    let mut moved = payload.clone();
    moved["resource"]["patient"]["reference"] = json!("Patient/someone-else");
    assert!(!pull(&b, &moved, Some(&trust())));
    let kept = stored(&b, &payload);
    assert_eq!(kept.person, person);
    assert_eq!(kept.provenance.source, Source::HealthCard);

    // A bundle whose clinical entry names no patient is refused unless the caller says whose
    // book it goes in, and then it goes exactly there.
    let (_c_dir, c) = vault();
    let book = HealthBook::new(&c);
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:7f000000-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Patient", "id": "p1", "name": [{"text": "Nguyễn An"}], "birthDate": "2020-01-01"}},
        {"fullUrl": "urn:uuid:7f000000-0000-4000-8000-000000000002",
         "resource": {"resourceType": "Immunization", "id": "i1", "status": "completed",
                      "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "08"}]},
                      "occurrenceDateTime": "2020-01-02"}}
    ]})
    .to_string();
    let before = c.transaction(outbox::pending).unwrap().len();
    match book.import_bundle_with(&bundle, None, ImportMode::AllOrNothing, 100) {
        Err(HealthError::Invalid { field, .. }) => assert_eq!(field, "subject"),
        other => panic!("a subjectless entry was filed: {other:?}"),
    }
    assert_eq!(c.transaction(outbox::pending).unwrap().len(), before);
    // Entry by entry, the Patient is kept and the immunization refused, with its reason.
    let partial = book.import_bundle(&bundle, None, 100).unwrap();
    assert_eq!(partial.refused, 1);
    let refused = &partial.entries[1];
    assert_eq!(
        (refused.index, refused.status, refused.key.as_str()),
        (1, EntryStatus::Refused, "Immunization/i1")
    );
    assert!(
        refused.reason.contains("chosen person"),
        "{}",
        refused.reason
    );
    assert!(book.get("Immunization/i1").unwrap().is_none());
    let child = book
        .save_person(
            &Person {
                id: None,
                full_name: "Nguyễn An".into(),
                birth_date: "2020-01-01".into(),
                gender: Gender::Female,
                citizen_id: None,
                insurance: None,
            },
            100,
        )
        .unwrap();
    book.import_bundle(&bundle, Some(&child), 100).unwrap();
    let shots = book
        .records(
            &child,
            Some(thudo_core::health::fhir::Kind::Immunization),
            None,
            None,
        )
        .unwrap();
    assert_eq!(shots.len(), 1);
}
