//! The health book keeps each person's records apart: sources reusing plain ids, imports and
//! edits aimed at another person, a verified record against an unsigned one, and records that
//! name no one.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::{shc_fixture, shc_trust as trust, vault};
use serde_json::json;
use thudo_core::health::fhir::{FhirError, Kind};
use thudo_core::health::records::{Gender, HealthBook, HealthError, Person, Source};

const NOW: i64 = 1_790_000_000;

#[test]
fn two_sources_reusing_plain_ids_for_different_people_do_not_overwrite_each_other() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let bundle = |name: &str, born: &str, value: &str| {
        json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "1", "name": [{"text": name}], "birthDate": born}},
            {"resource": {"resourceType": "Observation", "id": "1", "status": "final",
                          "code": {"text": "Glucose"}, "subject": {"reference": "Patient/1"},
                          "effectiveDateTime": "2026-10-01", "valueString": value}}]})
        .to_string()
    };
    let first = book
        .import_bundle(&bundle("Nguyễn Văn An", "1980-01-01", "5.1"), None, 1)
        .unwrap();
    let second = book
        .import_bundle(&bundle("Trần Thị Bình", "1990-02-02", "6.9"), None, 2)
        .unwrap();
    assert_eq!(first.people, vec!["1".to_owned()]);
    assert_ne!(
        second.people, first.people,
        "the second hospital's patient 1 is someone else"
    );
    assert_eq!(book.people().unwrap().len(), 2);
    // As people: by name, each with what the bundle said (no CCCD, so none).
    let persons = book.persons().unwrap();
    let names: Vec<&str> = persons.iter().map(|p| p.full_name.as_str()).collect();
    assert_eq!(names.len(), 2, "{persons:?}");
    assert!(persons
        .iter()
        .all(|p| p.id.is_some() && p.citizen_id.is_none()));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    let an = book
        .records("1", Some(Kind::Observation), None, None)
        .unwrap();
    let binh = book
        .records(&second.people[0], Some(Kind::Observation), None, None)
        .unwrap();
    assert_eq!(an.len(), 1);
    assert_eq!(
        an[0].summary().value.as_deref(),
        Some("5.1"),
        "not overwritten"
    );
    assert_eq!(binh.len(), 1);
    assert_eq!(binh[0].summary().value.as_deref(), Some("6.9"));
    assert_eq!(
        binh[0].resource["subject"]["reference"],
        format!("Patient/{}", second.people[0])
    );
    // Importing the second bundle again replaces its own records: still two of each.
    book.import_bundle(&bundle("Trần Thị Bình", "1990-02-02", "7.0"), None, 3)
        .unwrap();
    assert_eq!(book.people().unwrap().len(), 2);
    let binh = book
        .records(&second.people[0], Some(Kind::Observation), None, None)
        .unwrap();
    assert_eq!(binh.len(), 1);
    assert_eq!(binh[0].summary().value.as_deref(), Some("7.0"));
}

#[test]
fn no_import_or_edit_replaces_or_moves_another_persons_record() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let person = |name: &str, born: &str| {
        book.save_person(
            &Person {
                id: None,
                full_name: name.into(),
                birth_date: born.into(),
                gender: Gender::Other,
                citizen_id: None,
                insurance: None,
            },
            1,
        )
        .unwrap()
    };
    let (an, binh) = (
        person("Nguyễn Văn An", "1980-01-01"),
        person("Trần Thị Bình", "1990-02-02"),
    );
    let shot = |value: &str, subject: Option<&str>| {
        let mut r = json!({"resourceType": "Immunization", "id": "shot-1", "status": "completed",
            "vaccineCode": {"text": value}, "occurrenceDateTime": "2026-10-01"});
        if let Some(s) = subject {
            r["patient"] = json!({"reference": format!("Patient/{s}")});
        }
        json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r}]})
            .to_string()
    };
    book.import_bundle(&shot("An's vaccine", Some(&an)), None, 2)
        .unwrap();
    let ans = || {
        book.records(&an, Some(Kind::Immunization), None, None)
            .unwrap()
    };
    let original = ans()[0].clone();

    // A bundle whose entry names no patient, imported into Bình: kept apart, reported.
    let s = book
        .import_bundle(&shot("Bình's vaccine", None), Some(&binh), 3)
        .unwrap();
    assert_eq!(s.stored, 1);
    assert_ne!(s.entries[0].key, "Immunization/shot-1");
    assert!(
        s.entries[0].reason.contains("kept apart"),
        "{:?}",
        s.entries[0]
    );
    assert_eq!(ans(), vec![original.clone()], "An's record untouched");
    let binhs = book
        .records(&binh, Some(Kind::Immunization), None, None)
        .unwrap();
    assert_eq!(binhs.len(), 1);
    assert_eq!(binhs[0].summary().title, "Bình's vaccine");
    // Imported again: the same record, replaced, not a third.
    book.import_bundle(&shot("Bình's vaccine", None), Some(&binh), 4)
        .unwrap();
    assert_eq!(
        book.records(&binh, Some(Kind::Immunization), None, None)
            .unwrap()
            .len(),
        1
    );
    // Naming Bình outright: the same.
    book.import_bundle(&shot("Bình's other", Some(&binh)), None, 5)
        .unwrap();
    assert_eq!(ans(), vec![original.clone()]);
    // A shared resource under the same id as a person's record does not replace it either.
    let shared = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource":
        {"resourceType": "Medication", "id": "shot-1", "code": {"text": "Paracetamol"}}}]});
    book.import_bundle(&shared.to_string(), None, 6).unwrap();
    let med = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource":
        {"resourceType": "Immunization", "id": "shot-1", "status": "completed",
         "vaccineCode": {"text": "x"}, "occurrenceDateTime": "2026-10-02"}}]});
    book.import_bundle(&med.to_string(), Some(&binh), 7)
        .unwrap();
    assert_eq!(ans(), vec![original.clone()]);

    // An edit does not move An's record to Bình.
    let mut moved = original.resource.clone();
    moved["patient"]["reference"] = json!(format!("Patient/{binh}"));
    assert!(matches!(
        book.put_resource(&moved.to_string(), 8),
        Err(HealthError::Invalid { .. })
    ));
    assert_eq!(ans(), vec![original.clone()]);
    // An edit of An's record for An is fine.
    let mut edited = original.resource.clone();
    edited["vaccineCode"]["text"] = json!("An's vaccine, corrected");
    book.put_resource(&edited.to_string(), 9).unwrap();
    assert_eq!(ans()[0].summary().title, "An's vaccine, corrected");
}

#[test]
fn a_verified_record_is_never_replaced_by_an_unsigned_one_and_imports_stay_with_their_person() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    // A verified card's Immunization.
    let card = book
        .verify_and_import_card(&shc_fixture("example-00-d-jws.txt"), &trust(), NOW, None)
        .unwrap();
    let person = card.people[0].clone();
    let shots = book
        .records(&person, Some(Kind::Immunization), None, None)
        .unwrap();
    let genuine = shots[0].clone();
    assert_eq!(genuine.provenance.source, Source::HealthCard);
    // A plain bundle reusing its id and person, with other content: kept beside, not over.
    let mut forged = genuine.resource.clone();
    forged["lotNumber"] = json!("FORGED");
    let bundle = json!({"resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": forged}]});
    let s = book.import_bundle(&bundle.to_string(), None, 2).unwrap();
    assert_ne!(s.entries[0].key, genuine.key, "{:?}", s.entries);
    assert!(s.entries[0].reason.contains("kept apart"));
    let still = book.get(&genuine.key).unwrap().unwrap();
    assert_eq!(still.resource, genuine.resource);
    assert_eq!(still.provenance.source, Source::HealthCard);
    // Imported into another person, a record that names the card's person is refused.
    let other = book
        .save_person(
            &Person {
                id: None,
                full_name: "Người Khác".into(),
                birth_date: "2001-01-01".into(),
                gender: Gender::Other,
                citizen_id: None,
                insurance: None,
            },
            3,
        )
        .unwrap();
    // (The bundle's own Patient becomes the chosen person; its aimed entry names the card's.)
    let mut aimed = genuine.resource.clone();
    aimed["id"] = json!("aimed");
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "self", "name": [{"text": "Người Khác"}]}},
        {"resource": aimed}]});
    let s = book
        .import_bundle(&bundle.to_string(), Some(&other), 4)
        .unwrap();
    assert_eq!(s.refused, 1, "{:?}", s.entries);
    assert!(
        s.entries[1].reason.contains("into another person"),
        "{:?}",
        s.entries
    );
    assert!(book.get("Immunization/aimed").unwrap().is_none());
}

#[test]
fn a_record_naming_no_one_is_filed_only_where_every_reference_to_it_comes_from() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let existing = book
        .save_person(
            &Person {
                id: None,
                full_name: "Trần B".into(),
                birth_date: "1990-01-01".into(),
                gender: Gender::Other,
                citizen_id: None,
                insurance: None,
            },
            1,
        )
        .unwrap();
    // Patient A is the bundle's; O1 is B's and points at O2, which names no one.
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a", "name": [{"text": "Lê A"}], "birthDate": "1980-02-02"}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": format!("Patient/{existing}")},
                      "hasMember": [{"reference": "Observation/o2"}]}},
        {"resource": {"resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "y"}}}
    ]});
    // O2 is not A's: not filed under A; and B's O1 needs it, so nothing is stored.
    match book.import_bundle(&bundle.to_string(), None, 2) {
        Err(HealthError::Fhir(FhirError::BadResource { index, detail })) => {
            assert_eq!(index, 2);
            assert!(detail.contains("names no patient"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(book.get("Observation/o2").unwrap().is_none());
    assert!(book.get("Observation/o1").unwrap().is_none());
    // Referenced from A's own record instead, O2 is A's.
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "a", "name": [{"text": "Lê A"}], "birthDate": "1980-02-02"}},
        {"resource": {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "Patient/a"},
                      "hasMember": [{"reference": "Observation/o2"}]}},
        {"resource": {"resourceType": "Observation", "id": "o2", "status": "final", "code": {"text": "y"}}}
    ]});
    let s = book.import_bundle(&bundle.to_string(), None, 3).unwrap();
    assert_eq!(s.refused, 0);
    assert_eq!(book.get("Observation/o2").unwrap().unwrap().person, "a");
    assert_eq!(s.liberties.len(), 1, "{:?}", s.liberties);
}
