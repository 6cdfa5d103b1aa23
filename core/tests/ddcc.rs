//! The WHO's DDCC example bundles (from the WHO's DDCC verifier, Apache-2.0, in
//! tests/data/ddcc/), read as they are written: every clinical record kept, every liberty
//! taken reported.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use std::path::Path;

use serde_json::{json, Value};
use thudo_core::health::ddcc;
use thudo_core::health::records::{EntryStatus, HealthBook, HealthRecord};

fn bundles() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ddcc");
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn entries(text: &str) -> Vec<Value> {
    let bundle: Value = serde_json::from_str(text).unwrap();
    bundle["entry"].as_array().unwrap().clone()
}

#[test]
fn every_who_example_bundle_imports_with_every_record_kept() {
    let all = bundles();
    assert_eq!(all.len(), 18);
    let mut liberties = 0;
    for (name, text) in &all {
        let dir = tempfile::tempdir().unwrap();
        let v = common::open_pass(dir.path(), "pass").unwrap();
        let s = HealthBook::new(&v)
            .import_bundle(text, None, 1)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.refused, 0, "{name}: {:?}", s.entries);
        assert_eq!(s.stored, entries(text).len(), "{name}: every entry stored");
        assert!(
            s.entries
                .iter()
                .all(|e| matches!(e.status, EntryStatus::Stored | EntryStatus::Shared)),
            "{name}"
        );
        let stored: Vec<HealthRecord> = v.list_docs().unwrap();
        let immunizations = entries(text)
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Immunization")
            .count();
        assert_eq!(
            stored
                .iter()
                .filter(|r| r.resource_type == "Immunization")
                .count(),
            immunizations,
            "{name}"
        );
        // Every clinical record is filed under the bundle's person.
        assert_eq!(s.people.len(), 1, "{name}");
        for r in stored.iter().filter(|r| {
            matches!(
                r.resource_type.as_str(),
                "Immunization" | "Observation" | "Encounter"
            )
        }) {
            assert_eq!(r.person, s.people[0], "{name}: {}", r.key);
        }
        // Health-card style ids (`resource:0`) are repaired and said so.
        if text.contains("\"resource:0\"") {
            assert!(
                s.liberties
                    .iter()
                    .any(|l| l.contains("resource:0") && l.contains("not a FHIR id")),
                "{name}: {:?}",
                s.liberties
            );
        }
        liberties += s.liberties.len();
    }
    assert!(liberties > 0);
}

#[test]
fn an_encounter_naming_no_one_is_filed_under_the_only_patient_and_reported() {
    let (_, text) = bundles()
        .into_iter()
        .find(|(n, _)| n == "WHOSingaporePCRFHIRBundle.json")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v = common::open_pass(dir.path(), "pass").unwrap();
    let s = HealthBook::new(&v).import_bundle(&text, None, 1).unwrap();
    assert!(
        s.liberties
            .iter()
            .any(|l| l.contains("Encounter/") && l.contains("names no patient")),
        "{:?}",
        s.liberties
    );
}

#[test]
fn references_written_as_ids_and_bad_ids_are_read_as_meant() {
    // As the WHO's examples write them: no fullUrls, a Patient id that is not a FHIR id, the
    // Immunization's patient as `{"id": "Patient/..."}`, an Observation's as a bare id.
    let text = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "patient 1", "name": [{"text": "Lê Văn Ba"}],
                      "birthDate": "1970-05-06"}},
        {"resource": {"resourceType": "Immunization", "id": "imm-1", "status": "completed",
                      "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "207"}]},
                      "patient": {"id": "Patient/patient-1"}, "occurrenceDateTime": "2021-08-01"}},
        {"resource": {"resourceType": "Observation", "id": "obs-1", "status": "final",
                      "code": {"text": "SARS-CoV-2 PCR"}, "subject": {"id": "patient-1"},
                      "effectiveDateTime": "2021-07-01", "valueString": "negative"}}
    ]})
    .to_string();
    let dir = tempfile::tempdir().unwrap();
    let v = common::open_pass(dir.path(), "pass").unwrap();
    let book = HealthBook::new(&v);
    let s = book.import_bundle(&text, None, 1).unwrap();
    assert_eq!((s.stored, s.refused), (3, 0), "{:?}", s.entries);
    assert_eq!(s.people, ["patient-1"]);
    assert_eq!(s.liberties.len(), 3, "{:?}", s.liberties);
    let shot = book.get("Immunization/imm-1").unwrap().unwrap();
    assert_eq!(shot.person, "patient-1");
    assert_eq!(shot.resource["patient"]["reference"], "Patient/patient-1");
    assert_eq!(
        book.get("Observation/obs-1").unwrap().unwrap().person,
        "patient-1"
    );
    // An element's own id beside other content is not a reference.
    let coded = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p2", "name": [{"text": "X"}]}},
        {"resource": {"resourceType": "Immunization", "id": "imm-2", "status": "completed",
                      "vaccineCode": {"id": "Patient/p2", "coding": [{"code": "207"}]},
                      "patient": {"reference": "Patient/p2"}, "occurrenceDateTime": "2021-08-01"}}]});
    let s = book.import_bundle(&coded.to_string(), None, 2).unwrap();
    assert!(s.liberties.is_empty(), "{:?}", s.liberties);
}

#[test]
fn the_core_data_set_reads_from_every_who_bundle_and_round_trips() {
    for (name, text) in bundles() {
        let read = ddcc::from_fhir(&text).unwrap();
        let immunizations = entries(&text)
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Immunization")
            .count();
        assert_eq!(read.len(), immunizations, "{name}");
        for v in &read {
            assert!(!v.name.is_empty(), "{name}: a person");
        }
    }
    let (_, who) = bundles()
        .into_iter()
        .find(|(n, _)| n == "WHOQR1FHIRBundle.json")
        .unwrap();
    let v = &ddcc::from_fhir(&who).unwrap()[0];
    assert_eq!(v.name, "Eddie Murphy");
    assert_eq!(v.birth_date.as_deref(), Some("1986-09-19"));
    assert_eq!(v.lot.as_deref(), Some("PT123F"));
    assert_eq!(v.date.as_deref(), Some("2021-07-08"));
    assert_eq!(v.valid_from.as_deref(), Some("2021-07-22"));
    assert_eq!(v.country.as_ref().unwrap().code, "USA");
    assert_eq!(v.brand.as_ref().unwrap().code, "TEST");
    assert_eq!(v.centre.as_deref(), Some("Vaccination Site"));
    assert_eq!(v.certificate_id.as_deref(), Some("US111222333444555666"));
    assert!(v.next_dose.is_some());

    // Written out and read back, a full record is the same record; and the book imports it.
    let full = ddcc::Vaccination {
        name: "Nguyễn Thị Lan".into(),
        birth_date: Some("1990-03-04".into()),
        identifier: Some("001190012345".into()),
        sex: Some("female".into()),
        vaccine: Some(ddcc::Coding {
            system: "http://id.who.int/icd11/mms".into(),
            code: "XM68M6".into(),
            display: None,
        }),
        brand: Some(ddcc::Coding {
            system: "http://id.who.int/icd11/mms".into(),
            code: "XM8NQ0".into(),
            display: Some("Comirnaty".into()),
        }),
        manufacturer: Some(ddcc::Coding {
            system: "https://spor.ema.europa.eu".into(),
            code: "ORG-100030215".into(),
            display: Some("BioNTech".into()),
        }),
        ma_holder: Some(ddcc::Coding {
            system: "https://spor.ema.europa.eu".into(),
            code: "ORG-100030215".into(),
            display: None,
        }),
        lot: Some("FE1234".into()),
        date: Some("2021-09-10".into()),
        valid_from: Some("2021-09-24".into()),
        dose: Some(2),
        total_doses: Some(2),
        country: Some(ddcc::Coding {
            system: "urn:iso:std:iso:3166".into(),
            code: "VNM".into(),
            display: None,
        }),
        centre: Some("Trạm y tế phường Láng Thượng".into()),
        practitioner: Some("HW-0042".into()),
        disease: Some(ddcc::Coding {
            system: "http://id.who.int/icd11/mms".into(),
            code: "RA01".into(),
            display: None,
        }),
        next_dose: Some("2022-03-10".into()),
        issuer: Some("Bộ Y tế".into()),
        certificate_id: Some("VN-HCID-0001".into()),
    };
    let bundle = ddcc::to_fhir(std::slice::from_ref(&full)).to_string();
    assert_eq!(ddcc::from_fhir(&bundle).unwrap(), vec![full.clone()]);
    // A series: each dose keeps its own next date (the first dose's recommendation is not the
    // second's).
    let first = ddcc::Vaccination {
        date: Some("2021-08-13".into()),
        dose: Some(1),
        lot: Some("FE1200".into()),
        next_dose: Some("2021-09-10".into()),
        certificate_id: Some("VN-HCID-0000".into()),
        ..full.clone()
    };
    let last = ddcc::Vaccination {
        next_dose: None,
        ..full.clone()
    };
    for series in [vec![first.clone(), last.clone()], vec![last, first]] {
        let bundle = ddcc::to_fhir(&series).to_string();
        assert_eq!(ddcc::from_fhir(&bundle).unwrap(), series);
    }
    let dir = tempfile::tempdir().unwrap();
    let v = common::open_pass(dir.path(), "pass").unwrap();
    let s = HealthBook::new(&v).import_bundle(&bundle, None, 1).unwrap();
    assert_eq!((s.stored, s.refused), (3, 0));
    assert!(s.liberties.is_empty(), "{:?}", s.liberties);
    // A dose naming a patient the bundle does not hold is nobody's, not the only patient's.
    let strays = json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient", "id": "A",
                "name": [{"text": "Trần Văn A"}], "birthDate": "1980-01-01"}},
            {"fullUrl": "urn:uuid:i", "resource": {"resourceType": "Immunization", "id": "I",
                "status": "completed", "patient": {"reference": "Patient/B"},
                "vaccineCode": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM68M6"}]},
                "occurrenceDateTime": "2021-09-10"}}
        ]
    })
    .to_string();
    for reference in ["urn:uuid:b", "https://registry.example.vn/fhir/Patient/B"] {
        let other = strays.replace("Patient/B", reference);
        let read = ddcc::from_fhir(&other).unwrap();
        assert_eq!(read[0].name, "", "{reference}");
    }
    let read = ddcc::from_fhir(&strays).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(
        (read[0].name.as_str(), read[0].birth_date.as_deref()),
        ("", None)
    );
    // Garbage is an error, not a panic.
    assert!(ddcc::from_fhir("{").is_err());
    assert!(ddcc::from_fhir("[]").is_err());
}
