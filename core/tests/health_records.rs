//! The health book: FHIR import and IPS export, SMART Health Card import with provenance,
//! queries, people, the schedule from stored immunizations, and bad input that stores nothing.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::{shc_fixture, shc_trust as trust, vault, SHC_ISSUER as ISSUER};

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value};
use thudo_core::changes::outbox;
use thudo_core::health::fhir::{self, FhirError, Kind};
use thudo_core::health::records::{
    Gender, HealthBook, HealthError, HealthRecord, ImportMode, Insurance, Person, Source,
};
use thudo_core::health::schedule::{DoseState, NaiveDate};
use thudo_core::health::shc::{self, ShcError, TrustStore};
use thudo_core::vault::{Document, Vault};

const NOW: i64 = 1_790_000_000;
const PATIENT: &str = "0c3f6a2e-0000-4000-8000-0000000000a1";

fn ips_text() -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ips-vn.json"),
    )
    .unwrap()
}

/// Every stored record, by key, and the outbox length: what "nothing changed" compares.
fn snapshot(v: &Vault) -> (HashMap<String, Value>, usize) {
    let records: Vec<HealthRecord> = v.list_docs().unwrap();
    let map = records.into_iter().map(|r| (r.key, r.resource)).collect();
    (map, v.transaction(outbox::pending).unwrap().len())
}

/// The source bundle's resources as the book stores them: ids set, `urn:uuid:` references
/// rewritten to `Type/id`.
fn expected_resources(bundle: &Value) -> HashMap<String, Value> {
    let entries = bundle["entry"].as_array().unwrap();
    let urls: HashMap<String, String> = entries
        .iter()
        .map(|e| {
            (
                e["fullUrl"].as_str().unwrap().to_owned(),
                fhir::key_of(&e["resource"]).unwrap(),
            )
        })
        .collect();
    entries
        .iter()
        .map(|e| {
            let mut r = e["resource"].clone();
            fhir::rewrite_references(&mut r, &|x| urls.get(x).cloned());
            (fhir::key_of(&r).unwrap(), r)
        })
        .collect()
}

#[test]
fn ips_import_stores_every_resource_queryable_by_person_kind_and_date() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let summary = book.import_bundle(&ips_text(), None, 100).unwrap();
    assert_eq!(summary.stored, 13, "{summary:?}");
    assert_eq!(summary.by_type["Composition"], 1, "the document is kept");
    assert_eq!(summary.skipped, 0);
    assert_eq!(summary.entries.len(), 13, "every entry is accounted for");
    assert_eq!(summary.people, vec![PATIENT.to_owned()]);
    assert_eq!(summary.by_type["FamilyMemberHistory"], 1);

    // By kind.
    let immunizations = book
        .records(PATIENT, Some(Kind::Immunization), None, None)
        .unwrap();
    assert_eq!(immunizations.len(), 1);
    assert_eq!(immunizations[0].provenance.source, Source::FhirImport);
    let obs = book
        .records(PATIENT, Some(Kind::Observation), None, None)
        .unwrap();
    let s = obs[0].summary();
    assert_eq!(s.title, "HbA1c");
    assert_eq!(s.code.as_deref(), Some("4548-4"));
    assert_eq!(s.value.as_deref(), Some("6.8"));
    assert_eq!(s.unit.as_deref(), Some("%"));
    assert_eq!(s.reference_range.as_deref(), Some("4.0-5.6"));
    assert_eq!(s.facility.as_deref(), Some("Bệnh viện Bạch Mai"));
    let conditions = book
        .records(PATIENT, Some(Kind::Condition), None, None)
        .unwrap();
    assert_eq!(conditions[0].summary().code.as_deref(), Some("E11"));
    assert_eq!(
        conditions[0].summary().code_system.as_deref(),
        Some(fhir::ICD10)
    );
    let encounter = &book
        .records(PATIENT, Some(Kind::Encounter), None, None)
        .unwrap()[0];
    assert_eq!(
        encounter.resource["diagnosis"][0]["condition"]["reference"],
        "Condition/0c3f6a2e-0000-4000-8000-0000000000c1"
    );
    assert_eq!(
        encounter.summary().facility.as_deref(),
        Some("Bệnh viện Bạch Mai")
    );
    let allergy = &book
        .records(PATIENT, Some(Kind::AllergyIntolerance), None, None)
        .unwrap()[0];
    assert_eq!(allergy.summary().value.as_deref(), Some("Phát ban"));
    let others = book
        .records(PATIENT, Some(Kind::Other), None, None)
        .unwrap();
    let mut other_types: Vec<&str> = others.iter().map(|r| r.resource_type.as_str()).collect();
    other_types.sort();
    // The document itself is kept: who wrote it, attested it and keeps it.
    assert_eq!(other_types, ["Composition", "FamilyMemberHistory"]);
    let appointment = &book
        .records(PATIENT, Some(Kind::Appointment), None, None)
        .unwrap()[0];
    assert_eq!(
        appointment.summary().facility.as_deref(),
        Some("Bệnh viện Bạch Mai")
    );

    // By date range, newest first; partial dates count from their first day.
    let september: Vec<String> = book
        .records(PATIENT, None, Some("2026-09-01"), Some("2026-09-30"))
        .unwrap()
        .into_iter()
        .map(|r| r.resource_type)
        .collect();
    assert_eq!(
        september,
        [
            "Encounter",
            "MedicationRequest",
            "Observation",
            "ServiceRequest"
        ]
    );
    let from_2019 = book
        .records(
            PATIENT,
            Some(Kind::Condition),
            Some("2019-06-01"),
            Some("2019-06-01"),
        )
        .unwrap();
    assert_eq!(from_2019.len(), 1);
    let all = book.records(PATIENT, None, None, None).unwrap();
    assert_eq!(
        all.len(),
        12,
        "the Organization is about no one; the document is kept"
    );
    assert!(all
        .windows(2)
        .all(|w| w[0].date.as_deref().and_then(fhir::day_of)
            >= w[1].date.as_deref().and_then(fhir::day_of)));

    // Another person's query sees nothing; a bad date is a typed error.
    assert!(book
        .records("someone-else", None, None, None)
        .unwrap()
        .is_empty());
    assert!(matches!(
        book.records(PATIENT, None, Some("15/09/2026"), None),
        Err(HealthError::Invalid { field, .. }) if field == "from"
    ));

    // The local import is queued for upload, one entry per record.
    assert_eq!(v.transaction(outbox::pending).unwrap().len(), 13);
}

#[test]
fn fhir_round_trip_keeps_every_resource_and_field() {
    let source: Value = serde_json::from_str(&ips_text()).unwrap();
    let mut expected = expected_resources(&source);
    expected.retain(|k, _| !k.starts_with("Composition/"));

    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    book.import_bundle(&ips_text(), None, 100).unwrap();
    let ips = book
        .export_ips(PATIENT, "2026-11-23T10:00:00+07:00")
        .unwrap();
    let exported = expected_resources(&ips);
    for (key, resource) in &expected {
        assert_eq!(
            exported.get(key),
            Some(resource),
            "{key} changed in the export"
        );
    }

    // Import the export into a new book: the same records come back, field for field.
    let (_d2, v2) = vault();
    let book2 = HealthBook::new(&v2);
    let again = book2
        .import_bundle(&serde_json::to_string(&ips).unwrap(), None, 200)
        .unwrap();
    assert_eq!(again.refused, 0);
    assert_eq!(again.entries.len(), ips["entry"].as_array().unwrap().len());
    for (key, resource) in &expected {
        assert_eq!(
            &book2.get(key).unwrap().unwrap().resource,
            resource,
            "{key}"
        );
    }
    // And the second export equals the first.
    assert_eq!(
        book2
            .export_ips(PATIENT, "2026-11-23T10:00:00+07:00")
            .unwrap(),
        ips
    );
}

#[test]
fn ips_export_is_a_document_with_the_required_sections() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    book.import_bundle(&ips_text(), None, 100).unwrap();
    let ips = book
        .export_ips(PATIENT, "2026-11-23T10:00:00+07:00")
        .unwrap();
    assert_eq!(ips["type"], "document");
    let entries = ips["entry"].as_array().unwrap();
    assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
    assert_eq!(entries[1]["resource"]["resourceType"], "Patient");
    let composition = &entries[0]["resource"];
    assert_eq!(composition["type"]["coding"][0]["code"], "60591-5");
    let codes: Vec<&str> = composition["section"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["code"]["coding"][0]["code"].as_str())
        .collect();
    for required in ["11450-4", "48765-2", "10160-0", "11369-6", "30954-2"] {
        assert!(
            codes.contains(&required),
            "{required} missing from {codes:?}"
        );
    }
    // Every reference in the document resolves to an entry of the document.
    let urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    let mut refs = Vec::new();
    collect_refs(&ips, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(urls.contains(&r.as_str()), "dangling reference {r}");
    }
    // Narratives escape the text they show.
    let div = composition["section"][0]["text"]["div"].as_str().unwrap();
    assert!(div.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">"));
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

#[test]
fn empty_required_sections_carry_absent_unknown_entries() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let id = book
        .save_person(
            &Person {
                id: None,
                full_name: "Lê Minh <Khôi>".into(),
                birth_date: "2025-01-10".into(),
                gender: Gender::Male,
                citizen_id: None,
                insurance: None,
            },
            1,
        )
        .unwrap();
    let ips = book.export_ips(&id, "2026-11-23T10:00:00Z").unwrap();
    let entries = ips["entry"].as_array().unwrap();
    let absent: Vec<&str> = entries
        .iter()
        .filter_map(|e| {
            let r = &e["resource"];
            (r["code"]["coding"][0]["system"] == fhir::IPS_ABSENT_UNKNOWN
                || r["medicationCodeableConcept"]["coding"][0]["system"]
                    == fhir::IPS_ABSENT_UNKNOWN)
                .then(|| r["resourceType"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        absent,
        ["Condition", "AllergyIntolerance", "MedicationStatement"]
    );
    let sections = entries[0]["resource"]["section"].as_array().unwrap();
    assert_eq!(sections.len(), 3, "only the required sections when empty");
    let title = entries[0]["resource"]["title"].as_str().unwrap();
    assert!(title.contains("Lê Minh <Khôi>"));
    let div = sections[0]["text"]["div"].as_str().unwrap();
    assert!(!div.contains("<Khôi>"));
    // Re-importing the export does not turn "no information" into records.
    let (_d2, v2) = vault();
    let s = HealthBook::new(&v2)
        .import_bundle(&ips.to_string(), None, 1)
        .unwrap();
    assert_eq!(s.skipped, 3);
    assert_eq!(s.by_type.get("Condition"), None);
}

#[test]
fn a_verified_card_imports_with_its_provenance_once() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let jws = shc_fixture("example-00-d-jws.txt");
    let summary = book
        .verify_and_import_card(&jws, &trust(), NOW, None)
        .unwrap();
    assert_eq!(summary.by_type["Patient"], 1);
    assert_eq!(summary.by_type["Immunization"], 3);
    let person = summary.people[0].clone();
    let shots = book
        .records(&person, Some(Kind::Immunization), None, None)
        .unwrap();
    assert_eq!(shots.len(), 3);
    for shot in &shots {
        assert_eq!(shot.provenance.source, Source::HealthCard);
        assert_eq!(shot.provenance.issuer.as_deref(), Some(ISSUER));
        assert_eq!(shot.provenance.verified_at, Some(NOW));
        assert_eq!(shot.provenance.kid.as_deref().map(str::len), Some(43));
        assert_eq!(
            shot.resource["patient"]["reference"],
            format!("Patient/{person}")
        );
    }
    // The same card again, and its QR form: replaced, not duplicated.
    let qr = shc_fixture("example-00-f-qr-code-numeric-value-0.txt");
    let from_qr = shc::jws_from_qr(&[qr.trim()]).unwrap();
    book.verify_and_import_card(&from_qr, &trust(), NOW + 5, None)
        .unwrap();
    assert_eq!(
        book.records(&person, Some(Kind::Immunization), None, None)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(book.people().unwrap().len(), 1);

    // The chunked card (example 02) verifies and imports too.
    let chunks: Vec<String> = (0..3)
        .map(|i| shc_fixture(&format!("example-02-f-qr-code-numeric-value-{i}.txt")))
        .collect();
    let texts: Vec<&str> = chunks.iter().map(|c| c.trim()).collect();
    let jws2 = shc::jws_from_qr(&texts).unwrap();
    // It has no Patient and its results point at its report, not at a person: filed under the
    // person it is imported for.
    let s2 = book
        .verify_and_import_card(&jws2, &trust(), NOW, Some(&person))
        .unwrap();
    assert_eq!(s2.by_type["Observation"], 51, "{s2:?}");
    let results = book
        .records(&person, Some(Kind::Observation), None, None)
        .unwrap();
    assert_eq!(results.len(), 51);
    assert!(results
        .iter()
        .all(|r| r.provenance.source == Source::HealthCard));
}

#[test]
fn a_card_that_fails_a_check_is_never_imported() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let jws = shc_fixture("example-00-d-jws.txt");
    let jws = jws.trim();
    let before = snapshot(&v);
    // Tampered signature.
    let mut bytes = jws.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert!(matches!(
        book.verify_and_import_card(&tampered, &trust(), NOW, None),
        Err(HealthError::Card(ShcError::BadSignature))
    ));
    // Unknown issuer keys.
    assert!(matches!(
        book.verify_and_import_card(jws, &TrustStore::new(), NOW, None),
        Err(HealthError::Card(ShcError::UnknownKey { .. }))
    ));
    // Not yet valid.
    assert!(matches!(
        book.verify_and_import_card(jws, &trust(), 1_000, None),
        Err(HealthError::Card(ShcError::NotYetValid { .. }))
    ));
    assert_eq!(snapshot(&v), before);
}

#[test]
fn a_card_can_be_filed_under_an_existing_dependant() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let child = book
        .save_person(
            &Person {
                id: Some("con-gai".into()),
                full_name: "Trần Thu Hà".into(),
                birth_date: "2024-02-01".into(),
                gender: Gender::Female,
                citizen_id: None,
                insurance: None,
            },
            1,
        )
        .err();
    assert!(
        matches!(child, Some(HealthError::NotFound { .. })),
        "an id that names no one"
    );
    let child = book
        .save_person(
            &Person {
                id: None,
                full_name: "Trần Thu Hà".into(),
                birth_date: "2024-02-01".into(),
                gender: Gender::Female,
                citizen_id: None,
                insurance: None,
            },
            1,
        )
        .unwrap();
    let jws = shc_fixture("example-00-d-jws.txt");
    let s = book
        .verify_and_import_card(&jws, &trust(), NOW, Some(&child))
        .unwrap();
    assert_eq!(s.people, vec![child.clone()]);
    assert_eq!(book.people().unwrap().len(), 1);
    let p = book.get(&format!("Patient/{child}")).unwrap().unwrap();
    assert_eq!(
        p.resource["name"][0]["text"], "Trần Thu Hà",
        "the book's name wins"
    );
    assert_eq!(
        book.records(&child, Some(Kind::Immunization), None, None)
            .unwrap()
            .len(),
        3
    );
    assert!(matches!(
        book.verify_and_import_card(&jws, &trust(), NOW, Some("nobody")),
        Err(HealthError::NotFound { .. })
    ));
}

#[test]
fn people_with_insurance_and_the_schedule_from_stored_immunizations() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let person = Person {
        id: None,
        full_name: "Phạm Gia Bảo".into(),
        birth_date: "2026-01-05".into(),
        gender: Gender::Male,
        citizen_id: Some("001226000123".into()),
        insurance: Some(Insurance {
            number: "TE1010123456789".into(),
            valid_from: "2026-01-05".into(),
            valid_to: Some("2032-01-04".into()),
            facility: Some("Trạm y tế phường Láng".into()),
        }),
    };
    let id = book.save_person(&person, 10).unwrap();
    let stored = book.person(&id).unwrap().unwrap();
    assert_eq!(
        stored,
        Person {
            id: Some(id.clone()),
            ..person.clone()
        }
    );
    // Update without insurance removes the card; extra Patient fields survive an edit.
    let mut patient = book
        .get(&format!("Patient/{id}"))
        .unwrap()
        .unwrap()
        .resource;
    patient["address"] = json!([{"text": "Đống Đa, Hà Nội"}]);
    book.put_resource(&patient.to_string(), 11).unwrap();
    book.save_person(
        &Person {
            id: Some(id.clone()),
            insurance: None,
            ..person.clone()
        },
        12,
    )
    .unwrap();
    assert_eq!(book.person(&id).unwrap().unwrap().insurance, None);
    let patient = book
        .get(&format!("Patient/{id}"))
        .unwrap()
        .unwrap()
        .resource;
    assert_eq!(patient["address"][0]["text"], "Đống Đa, Hà Nội");

    for (code, system, date) in [
        ("HepB", "urn:thudo:vn-epi:vaccine", "2026-01-05"),
        ("19", "http://hl7.org/fhir/sid/cvx", "2026-01-20"),
        ("DPT-HepB-Hib", "urn:thudo:vn-epi:vaccine", "2026-03-05"),
        ("207", "http://hl7.org/fhir/sid/cvx", "2026-03-06"), // not on the schedule
    ] {
        let imm = json!({
            "resourceType": "Immunization", "status": "completed",
            "vaccineCode": {"coding": [{"system": system, "code": code}]},
            "patient": {"reference": format!("Patient/{id}")},
            "occurrenceDateTime": date,
        });
        book.put_resource(&imm.to_string(), 20).unwrap();
    }
    let not_done = json!({
        "resourceType": "Immunization", "status": "not-done",
        "vaccineCode": {"coding": [{"system": "urn:thudo:vn-epi:vaccine", "code": "OPV"}]},
        "patient": {"reference": format!("Patient/{id}")},
        "occurrenceDateTime": "2026-03-05",
    });
    book.put_resource(&not_done.to_string(), 21).unwrap();
    let today = NaiveDate::from_ymd_opt(2026, 5, 20).unwrap();
    let status = book.schedule(&id, today, false).unwrap();
    let state = |v: &str, d: u32| {
        status
            .iter()
            .find(|s| s.vaccine == v && s.dose == d)
            .unwrap()
            .state
    };
    assert_eq!(state("HepB", 1), DoseState::Done);
    assert_eq!(state("BCG", 1), DoseState::Done);
    assert_eq!(state("DPT-HepB-Hib", 1), DoseState::Done);
    assert_eq!(state("DPT-HepB-Hib", 2), DoseState::Overdue); // due 2026-04-05 + 30 days
    assert_eq!(
        state("OPV", 1),
        DoseState::Overdue,
        "a not-done dose does not count"
    );
    assert_eq!(state("IPV", 1), DoseState::Upcoming);
    assert!(matches!(
        book.schedule(&id, NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), false),
        Err(HealthError::Invalid { .. })
    ));
    assert!(matches!(
        book.schedule("nobody", today, false),
        Err(HealthError::NotFound { .. })
    ));
}

#[test]
fn bad_bundles_and_resources_are_refused_and_store_nothing() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    book.import_bundle(&ips_text(), None, 1).unwrap();
    let before = snapshot(&v);
    let patient_ref = json!({"reference": format!("Patient/{PATIENT}")});
    let bundle = |entries: Value| {
        json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
    };
    let cases: Vec<(&str, String)> = vec![
        ("not json", "{\"resourceType\": ".into()),
        ("empty", String::new()),
        ("array", "[]".into()),
        ("a patient", json!({"resourceType": "Patient"}).to_string()),
        (
            "history bundle",
            json!({"resourceType": "Bundle", "type": "history"}).to_string(),
        ),
        ("no type", json!({"resourceType": "Bundle"}).to_string()),
        (
            "entry object",
            json!({"resourceType": "Bundle", "type": "collection", "entry": {}}).to_string(),
        ),
        ("no resource", bundle(json!([{"fullUrl": "urn:uuid:1"}]))),
        ("resource string", bundle(json!([{"resource": "Patient"}]))),
        (
            "no resourceType",
            bundle(json!([{"resource": {"id": "x"}}])),
        ),
        (
            "lowercase type",
            bundle(json!([{"resource": {"resourceType": "patient"}}])),
        ),
        // An id that is not a FHIR id but a string ("a/b") is repaired, not refused (see
        // tests/ddcc.rs); one that is not a string cannot be.
        (
            "numeric id",
            bundle(json!([{"resource": {"resourceType": "Patient", "id": 7}}])),
        ),
        (
            "nested bundle",
            bundle(json!([{"resource": {"resourceType": "Bundle", "type": "collection"}}])),
        ),
        (
            "repeated key",
            bundle(json!([
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"resource": {"resourceType": "Patient", "id": "p1"}}])),
        ),
        (
            "bad date",
            bundle(json!([
            {"resource": {"resourceType": "Immunization", "id": "i1", "patient": patient_ref,
                          "occurrenceDateTime": "2026-13-45"}}])),
        ),
        // A valid first entry followed by a bad one: the good one is not kept either.
        (
            "half good",
            bundle(json!([
            {"resource": {"resourceType": "Condition", "id": "c2", "subject": patient_ref}},
            {"resource": {"resourceType": "Observation", "id": "o2", "subject": patient_ref,
                          "effectiveDateTime": "yesterday"}}])),
        ),
        (
            "date cut inside a character",
            bundle(
                json!([{"resource": {"resourceType": "Observation", "id": "o3",
                "subject": patient_ref, "effectiveDateTime": "2024-01-0ễ"}}]),
            ),
        ),
        (
            "too large",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(fhir::MAX_BUNDLE_BYTES)),
        ),
    ];
    for (name, text) in &cases {
        let err = book
            .import_bundle_with(text, None, ImportMode::AllOrNothing, 2)
            .unwrap_err();
        assert!(
            matches!(err, HealthError::Fhir(_) | HealthError::Invalid { .. }),
            "{name}: {err:?}"
        );
        assert_eq!(snapshot(&v), before, "{name} changed the book");
    }
    assert!(matches!(
        book.import_bundle("{}", None, 2),
        Err(HealthError::Fhir(FhirError::NotABundle { .. }))
    ));
    // Several patients cannot all become one person.
    let two = bundle(json!([
        {"resource": {"resourceType": "Patient", "id": "a"}},
        {"resource": {"resourceType": "Patient", "id": "b"}}]));
    assert!(matches!(
        book.import_bundle(&two, Some(PATIENT), 2),
        Err(HealthError::Invalid { field, .. }) if field == "into_person"
    ));
    // Entered resources.
    for bad in [
        "not json".to_owned(),
        json!({"id": "x"}).to_string(),
        json!({"resourceType": "Bundle", "type": "collection"}).to_string(),
        json!({"resourceType": "Immunization", "id": "bad id!"}).to_string(),
        json!({"resourceType": "Immunization", "occurrenceDateTime": "2026-01-01"}).to_string(),
        json!({"resourceType": "Immunization", "patient": {"reference": "Patient/nobody"}})
            .to_string(),
    ] {
        assert!(book.put_resource(&bad, 3).is_err(), "{bad}");
        assert_eq!(snapshot(&v), before, "{bad}");
    }
    for bad in [
        Person {
            id: None,
            full_name: " ".into(),
            birth_date: "2020-01-01".into(),
            gender: Gender::Male,
            citizen_id: None,
            insurance: None,
        },
        Person {
            id: None,
            full_name: "A".into(),
            birth_date: "01/01/2020".into(),
            gender: Gender::Male,
            citizen_id: None,
            insurance: None,
        },
        Person {
            id: None,
            full_name: "A".into(),
            birth_date: "2020-01-01".into(),
            gender: Gender::Male,
            citizen_id: Some("12345".into()),
            insurance: None,
        },
        Person {
            id: Some("../x".into()),
            full_name: "A".into(),
            birth_date: "2020-01-01".into(),
            gender: Gender::Male,
            citizen_id: None,
            insurance: None,
        },
        Person {
            id: None,
            full_name: "A".into(),
            birth_date: "2020-01-01".into(),
            gender: Gender::Male,
            citizen_id: None,
            insurance: Some(Insurance {
                number: "X".into(),
                valid_from: "2026-01-01".into(),
                valid_to: Some("2025-01-01".into()),
                facility: None,
            }),
        },
    ] {
        assert!(
            matches!(book.save_person(&bad, 4), Err(HealthError::Invalid { .. })),
            "{bad:?}"
        );
        assert_eq!(snapshot(&v), before, "{bad:?}");
    }
}

#[test]
fn records_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let v = common::open_pass(dir.path(), "pass").unwrap();
        HealthBook::new(&v)
            .import_bundle(&ips_text(), None, 1)
            .unwrap();
        assert!(v.count(HealthRecord::COLLECTION).unwrap() > 0);
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for marker in [
            "001085012345",
            "HbA1c",
            "Metformin",
            "Nguy",
            "E11",
            "Patient",
        ] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{marker} on disk"
            );
        }
    }
}
