//! The health book keeps what clinicians wrote: statements of absence, exact decimals, IPS
//! sections, the document's authors, and an account of every entry (docs/health.md).

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use common::vault;

use serde_json::{json, Value};
use thudo_core::changes::outbox;
use thudo_core::health::fhir::{self, FhirError, IPS_ABSENT_UNKNOWN};
use thudo_core::health::records::{self, EntryStatus, HealthBook, HealthError, ImportMode};

const PATIENT: &str = "p1";
const TIMESTAMP: &str = "2026-11-27T10:00:00Z";

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": PATIENT, "name": [{"text": "Phạm Thu Hà"}],
           "birthDate": "1990-05-06", "gender": "female",
           "address": [{"text": "1 Tràng Tiền, Hà Nội"}]})
}

fn subject() -> Value {
    json!({"reference": format!("Patient/{PATIENT}")})
}

fn bundle(entries: Vec<Value>) -> String {
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|r| json!({"resource": r}))
        .collect();
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries}).to_string()
}

/// The exported document's sections as (code, listed keys).
fn sections(ips: &Value) -> Vec<(String, Vec<String>)> {
    let urls: std::collections::HashMap<String, String> = ips["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["fullUrl"].as_str().unwrap().to_owned(),
                fhir::key_of(&e["resource"]).unwrap(),
            )
        })
        .collect();
    ips["entry"][0]["resource"]["section"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let code = s["code"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let keys = s["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| urls.get(e["reference"].as_str()?).cloned())
                .collect();
            (code, keys)
        })
        .collect()
}

fn exported<'a>(ips: &'a Value, key: &str) -> Option<&'a Value> {
    ips["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| fhir::key_of(r).as_deref() == Some(key))
}

#[test]
fn no_known_allergies_is_a_record_and_no_information_is_not() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let absent = |id: &str, code: &str| {
        json!({"resourceType": "AllergyIntolerance", "id": id, "patient": subject(),
               "code": {"coding": [{"system": IPS_ABSENT_UNKNOWN, "code": code}]}})
    };
    let no_problem_info = json!({"resourceType": "Condition", "id": "c0", "subject": subject(),
        "code": {"coding": [{"system": IPS_ABSENT_UNKNOWN, "code": "no-problem-info"}]}});
    let s = book
        .import_bundle(
            &bundle(vec![
                patient(),
                absent("nka", "no-known-allergies"),
                no_problem_info,
            ]),
            None,
            1,
        )
        .unwrap();
    assert_eq!((s.stored, s.skipped), (2, 1));
    assert_eq!(s.entries[2].status, EntryStatus::Skipped);
    assert!(book.get("AllergyIntolerance/nka").unwrap().is_some());
    let ips = book.export_ips(PATIENT, TIMESTAMP).unwrap();
    let by_code = sections(&ips);
    let allergies = &by_code.iter().find(|(c, _)| c == "48765-2").unwrap().1;
    assert_eq!(allergies, &["AllergyIntolerance/nka"]);
    // The export says "no known allergies", never "no information about allergies".
    let text = ips.to_string();
    assert!(!text.contains("no-allergy-info"));
    assert!(text.contains("no-known-allergies"));
    // The problem list had no information: it says so again.
    assert!(text.contains("no-problem-info"));
}

#[test]
fn decimals_come_back_as_written() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let text = format!(
        r#"{{"resourceType": "Bundle", "type": "collection", "entry": [
        {{"resource": {patient}}},
        {{"resource": {{"resourceType": "Observation", "id": "o1", "status": "final",
           "subject": {{"reference": "Patient/{PATIENT}"}}, "code": {{"text": "HbA1c"}},
           "valueQuantity": {{"value": 7.20, "unit": "%"}},
           "referenceRange": [{{"low": {{"value": 4.0}}, "high": {{"value": 0.1000000000000000055511151231257827}}}}],
           "component": [{{"code": {{"text": "big"}}, "valueQuantity": {{"value": 123456789012345678901234567890.10}}}},
                         {{"code": {{"text": "exp"}}, "valueQuantity": {{"value": 1.50e2}}}}]}}}}]}}"#,
        patient = patient()
    );
    book.import_bundle(&text, None, 1).unwrap();
    let ips = book.export_ips(PATIENT, TIMESTAMP).unwrap().to_string();
    for written in [
        "\"value\":7.20",
        "\"value\":4.0",
        "\"value\":0.1000000000000000055511151231257827",
        "\"value\":123456789012345678901234567890.10",
        // The one normalisation (docs/health.md): an exponent gains its sign, digits unchanged.
        "\"value\":1.50e+2",
    ] {
        assert!(ips.contains(written), "{written} changed");
    }
    // Summaries show the value as written too.
    let obs = book.get("Observation/o1").unwrap().unwrap();
    assert_eq!(obs.summary().value.as_deref(), Some("7.20"));
}

#[test]
fn records_land_in_the_ips_sections_the_guide_defines() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let category = |code: &str| json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}]);
    let entries = vec![
        patient(),
        json!({"resourceType": "Observation", "id": "bp", "status": "final", "subject": subject(),
               "category": category("vital-signs"), "code": {"text": "Huyết áp"}}),
        json!({"resourceType": "Observation", "id": "smoke", "status": "final", "subject": subject(),
               "category": category("social-history"), "code": {"text": "Hút thuốc"}}),
        json!({"resourceType": "Observation", "id": "preg", "status": "final", "subject": subject(),
               "code": {"coding": [{"system": fhir::LOINC, "code": "82810-3"}]}}),
        json!({"resourceType": "Observation", "id": "lab", "status": "final", "subject": subject(),
               "category": category("laboratory"), "code": {"text": "Glucose"}}),
        json!({"resourceType": "Condition", "id": "old", "subject": subject(),
               "clinicalStatus": {"coding": [{"code": "resolved"}]}, "code": {"text": "Sởi"}}),
        json!({"resourceType": "Condition", "id": "now", "subject": subject(),
               "clinicalStatus": {"coding": [{"code": "active"}]}, "code": {"text": "Hen"}}),
        json!({"resourceType": "Flag", "id": "alert", "status": "active", "subject": subject(),
               "code": {"text": "Nguy cơ ngã"}}),
        json!({"resourceType": "Consent", "id": "dnr", "status": "active", "patient": subject(),
               "scope": {"text": "adr"}, "category": [{"text": "DNR"}]}),
        json!({"resourceType": "DeviceUseStatement", "id": "pacer", "status": "active",
               "subject": subject(), "device": {"reference": "Device/pm"}}),
        json!({"resourceType": "Device", "id": "pm", "patient": subject(), "type": {"text": "Máy tạo nhịp"}}),
        json!({"resourceType": "CarePlan", "id": "plan", "status": "active", "intent": "plan",
               "subject": subject()}),
        json!({"resourceType": "Goal", "id": "goal", "lifecycleStatus": "active",
               "description": {"text": "HbA1c < 7"}, "subject": subject()}),
    ];
    book.import_bundle(&bundle(entries), None, 1).unwrap();
    let ips = book.export_ips(PATIENT, TIMESTAMP).unwrap();
    let by_code = sections(&ips);
    let section = |code: &str| {
        by_code
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, keys)| keys.clone())
            .unwrap_or_default()
    };
    assert_eq!(section("8716-3"), ["Observation/bp"]);
    assert_eq!(section("29762-2"), ["Observation/smoke"]);
    assert_eq!(section("10162-6"), ["Observation/preg"]);
    assert_eq!(section("30954-2"), ["Observation/lab"]);
    assert_eq!(section("11348-0"), ["Condition/old"]);
    assert_eq!(section("11450-4"), ["Condition/now"]);
    assert_eq!(section("104605-1"), ["Flag/alert"]);
    assert_eq!(section("42348-3"), ["Consent/dnr"]);
    assert_eq!(section("46264-8"), ["DeviceUseStatement/pacer"]);
    assert_eq!(section("18776-5"), ["CarePlan/plan"]);
    // A record no section takes is still reachable: under "Other records".
    assert_eq!(section(""), ["Goal/goal"]);
    // The Device is reached through the statement that uses it.
    assert!(exported(&ips, "Device/pm").is_some());
}

#[test]
fn the_documents_authors_custodian_and_attesters_are_kept_and_exported() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
        {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000001", "resource": {
            "resourceType": "Composition", "status": "final", "date": "2026-10-01",
            "type": {"coding": [{"system": fhir::LOINC, "code": "60591-5"}]},
            "subject": {"reference": "urn:uuid:c0000000-0000-4000-8000-000000000002"},
            "author": [{"reference": "urn:uuid:c0000000-0000-4000-8000-000000000003"}],
            "custodian": {"reference": "urn:uuid:c0000000-0000-4000-8000-000000000004"},
            "attester": [{"mode": "legal", "party": {"reference": "urn:uuid:c0000000-0000-4000-8000-000000000003"}}],
            "title": "Tóm tắt",
            "section": [
                {"title": "Kế hoạch điều trị", "code": {"coding": [{"system": fhir::LOINC, "code": "18776-5"}]},
                 "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Tái khám sau 3 tháng</div>"}}
            ]}},
        {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000002", "resource": patient()},
        {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000003", "resource": {
            "resourceType": "Practitioner", "name": [{"text": "BS. Lê Văn Minh"}]}},
        {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000004", "resource": {
            "resourceType": "Organization", "name": "Bệnh viện Bạch Mai"}}
    ]});
    let s = book.import_bundle(&doc.to_string(), None, 1).unwrap();
    let statuses: Vec<EntryStatus> = s.entries.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [
            EntryStatus::Stored,
            EntryStatus::Stored,
            EntryStatus::Shared,
            EntryStatus::Shared
        ]
    );
    let ips = book.export_ips(PATIENT, TIMESTAMP).unwrap();
    let composition = &ips["entry"][0]["resource"];
    let practitioner = "Practitioner/c0000000-0000-4000-8000-000000000003";
    let organization = "Organization/c0000000-0000-4000-8000-000000000004";
    assert!(exported(&ips, practitioner).is_some());
    assert!(exported(&ips, organization).is_some());
    let url_of = |key: &str| {
        ips["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| fhir::key_of(&e["resource"]).as_deref() == Some(key))
            .map(|e| e["fullUrl"].clone())
            .unwrap()
    };
    assert!(composition["author"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["reference"] == url_of(practitioner)));
    assert_eq!(composition["custodian"]["reference"], url_of(organization));
    assert_eq!(
        composition["attester"][0]["party"]["reference"],
        url_of(practitioner)
    );
    // The section that held only a narrative is carried as written.
    let plan = composition["section"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["code"]["coding"][0]["code"] == "18776-5")
        .unwrap();
    assert!(plan["text"]["div"]
        .as_str()
        .unwrap()
        .contains("Tái khám sau 3 tháng"));
}

#[test]
fn every_entry_is_accounted_for_and_nothing_is_filed_under_nobody() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let entries = vec![
        patient(),
        // Unmodelled, with a malformed subject: filed under the bundle's one person.
        json!({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
               "description": {"text": "Đi bộ"}, "subject": {"reference": "urn:uuid:not-here"}}),
        // Names a person who is nowhere: refused, not stored under a ghost.
        json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/ghost"},
               "code": {"text": "Hen"}}),
        // Refers to a practitioner the bundle does not hold: stored, the reference reported.
        json!({"resourceType": "Immunization", "id": "i1", "status": "completed",
               "patient": subject(), "occurrenceDateTime": "2026-01-01",
               "vaccineCode": {"text": "Cúm"},
               "performer": [{"actor": {"reference": "Practitioner/away"}}]}),
        json!({"resourceType": "Organization", "id": "o1", "name": "Trạm y tế"}),
    ];
    let s = book.import_bundle(&bundle(entries), None, 1).unwrap();
    let outcome: Vec<(EntryStatus, &str)> = s
        .entries
        .iter()
        .map(|e| (e.status, e.person.as_str()))
        .collect();
    assert_eq!(
        outcome,
        [
            (EntryStatus::Stored, PATIENT),
            (EntryStatus::Stored, PATIENT),
            (EntryStatus::Refused, ""),
            (EntryStatus::Stored, PATIENT),
            (EntryStatus::Shared, ""),
        ]
    );
    assert!(s.entries[2].reason.contains("Patient/ghost"));
    assert!(book.get("Condition/c1").unwrap().is_none());
    assert_eq!((s.stored, s.refused), (4, 1));
    assert_eq!(
        s.unresolved,
        [
            "Goal/g1 -> urn:uuid:not-here",
            "Immunization/i1 -> Practitioner/away"
        ]
    );
    // The export does not pretend the dangling reference resolves.
    let ips = book.export_ips(PATIENT, TIMESTAMP).unwrap();
    let shot = exported(&ips, "Immunization/i1").unwrap();
    assert!(shot["performer"][0]["actor"].get("reference").is_none());
    assert!(shot["performer"][0]["actor"]["display"]
        .as_str()
        .unwrap()
        .contains("Practitioner/away"));
}

#[test]
fn duplicate_full_urls_are_refused_and_generated_ids_follow_content() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let url = "urn:uuid:d0000000-0000-4000-8000-000000000001";
    let twice = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": url, "resource": patient()},
        {"fullUrl": url, "resource": {"resourceType": "Observation", "status": "final",
            "subject": {"reference": url}, "code": {"text": "x"}}}]});
    assert!(matches!(
        book.import_bundle(&twice.to_string(), None, 1),
        Err(HealthError::Fhir(FhirError::BadResource { index: 1, .. }))
    ));
    assert!(book.people().unwrap().is_empty(), "nothing stored");

    // Id-less entries: the same content laid out differently names the same records.
    let idless = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient()},
        {"resource": {"resourceType": "Observation", "status": "final", "subject": subject(),
                      "code": {"text": "Cân nặng"}, "valueQuantity": {"value": 52.50}}}]});
    let compact = idless.to_string();
    let pretty = serde_json::to_string_pretty(&idless).unwrap();
    let a = book.import_bundle(&compact, None, 1).unwrap();
    let b = book.import_bundle(&pretty, None, 2).unwrap();
    assert_eq!(a.entries[1].key, b.entries[1].key);
    assert_eq!(book.records(PATIENT, None, None, None).unwrap().len(), 2);
}

#[test]
fn a_newer_address_is_kept_and_a_conflict_is_surfaced() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    book.import_bundle(&bundle(vec![patient()]), None, 1)
        .unwrap();
    let mut moved = patient();
    moved["address"] = json!([{"text": "25 Lý Thường Kiệt, Hà Nội"}]);
    moved["telecom"] = json!([{"system": "phone", "value": "0912345678"}]);
    moved["gender"] = json!("other");
    let s = book.import_bundle(&bundle(vec![moved]), None, 2).unwrap();
    let stored = book.get(&format!("Patient/{PATIENT}")).unwrap().unwrap();
    let addresses: Vec<&str> = stored.resource["address"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        addresses,
        ["1 Tràng Tiền, Hà Nội", "25 Lý Thường Kiệt, Hà Nội"]
    );
    assert_eq!(stored.resource["telecom"][0]["value"], "0912345678");
    assert_eq!(stored.resource["gender"], "female");
    assert_eq!(s.conflicts.len(), 1, "{:?}", s.conflicts);
    assert!(s.conflicts[0].contains("gender"));
}

#[test]
fn a_bad_entry_is_refused_alone_unless_others_need_it() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let obs = |id: Value| {
        json!({"resourceType": "Observation", "id": id, "status": "final", "subject": subject(),
               "code": {"text": "x"}})
    };
    // One unreadable id (a number) among good entries: the rest is kept, the bad one named.
    let text = bundle(vec![patient(), obs(json!(42)), obs(json!("good"))]);
    let s = book.import_bundle(&text, None, 1).unwrap();
    assert_eq!((s.stored, s.refused), (2, 1));
    assert_eq!(
        (s.entries[1].index, s.entries[1].status),
        (1, EntryStatus::Refused)
    );
    assert!(s.entries[1].reason.contains("id"));
    // Asked for all or nothing, the same bundle stores nothing.
    let (_d2, v2) = vault();
    let strict = HealthBook::new(&v2);
    assert!(matches!(
        strict.import_bundle_with(&text, None, ImportMode::AllOrNothing, 1),
        Err(HealthError::Fhir(FhirError::BadResource { index: 1, .. }))
    ));
    assert!(strict.people().unwrap().is_empty());
    // A bad Patient refuses the whole bundle.
    let mut bad_patient = patient();
    bad_patient["id"] = json!(["no good"]);
    assert!(strict
        .import_bundle(&bundle(vec![bad_patient, obs(json!("o9"))]), None, 1)
        .is_err());
    assert!(strict.people().unwrap().is_empty());
    // So does a bad entry that a good one points to.
    let needed = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient()},
        {"fullUrl": "urn:uuid:e0000000-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Medication", "id": 42}},
        {"resource": {"resourceType": "MedicationStatement", "id": "ms", "status": "active",
                      "subject": subject(),
                      "medicationReference": {"reference": "urn:uuid:e0000000-0000-4000-8000-000000000001"}}}]});
    match strict.import_bundle(&needed.to_string(), None, 1) {
        Err(HealthError::Fhir(FhirError::BadResource { index, detail })) => {
            assert_eq!(index, 1);
            assert!(detail.contains("cannot be left out"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(strict.people().unwrap().is_empty());
    // And a refused entry's own id that a stored entry references.
    let by_key = bundle(vec![
        patient(),
        json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/ghost"}}),
        json!({"resourceType": "Encounter", "id": "e1", "status": "finished", "subject": subject(),
               "diagnosis": [{"condition": {"reference": "Condition/c1"}}]}),
    ]);
    assert!(strict.import_bundle(&by_key, None, 1).is_err());
    assert!(strict.people().unwrap().is_empty());
}

#[test]
fn another_sources_shared_resource_is_kept_beside_ours() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let statement = |drug: &str| {
        bundle(vec![
            patient(),
            json!({"resourceType": "Medication", "id": "1", "code": {"text": drug}}),
            json!({"resourceType": "MedicationStatement", "id": format!("ms-{drug}"), "status": "active",
                   "subject": subject(), "medicationReference": {"reference": "Medication/1"}}),
        ])
    };
    book.import_bundle(&statement("Metformin"), None, 1)
        .unwrap();
    let second = book.import_bundle(&statement("Insulin"), None, 2).unwrap();
    // The second source's Medication/1 got its own id; the first one's is untouched.
    let theirs = &second.entries[1].key;
    assert_ne!(theirs, "Medication/1");
    assert_eq!(
        book.get("Medication/1").unwrap().unwrap().resource["code"]["text"],
        "Metformin"
    );
    let ms = book.get("MedicationStatement/ms-Insulin").unwrap().unwrap();
    assert_eq!(
        ms.resource["medicationReference"]["reference"],
        theirs.as_str()
    );
    // The same bundle again changes nothing.
    let again = book
        .import_bundle(&statement("Metformin"), None, 3)
        .unwrap();
    assert_eq!(again.entries[1].key, "Medication/1");
}

#[test]
fn an_export_never_brings_another_persons_records() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let mother = json!({"resourceType": "Patient", "id": "mother", "name": [{"text": "Lê Thị Mai"}],
                        "birthDate": "1965-01-01"});
    let her_condition = json!({"resourceType": "Condition", "id": "her-c", "subject": {"reference": "Patient/mother"},
                               "code": {"text": "Ung thư vú"}});
    book.import_bundle(&bundle(vec![mother, her_condition]), None, 1)
        .unwrap();
    // Our record points at her and her condition (family history written as a reference).
    let mine = json!({"resourceType": "Observation", "id": "fh", "status": "final", "subject": subject(),
                      "code": {"text": "Tiền sử gia đình"},
                      "focus": [{"reference": "Patient/mother"}, {"reference": "Condition/her-c"}]});
    book.import_bundle(&bundle(vec![patient(), mine]), None, 2)
        .unwrap();
    let ips = book.export_ips(PATIENT, TIMESTAMP).unwrap();
    assert!(exported(&ips, "Patient/mother").is_none());
    assert!(exported(&ips, "Condition/her-c").is_none());
    assert!(!ips.to_string().contains("Ung thư vú"));
}

#[test]
fn a_document_listing_a_bad_entry_is_imported_without_it() {
    let (_d, v) = vault();
    let book = HealthBook::new(&v);
    let doc = json!({"resourceType": "Bundle", "type": "document", "entry": [
        {"fullUrl": "urn:uuid:f0000000-0000-4000-8000-000000000001", "resource": {
            "resourceType": "Composition", "status": "final", "date": "2026-10-01",
            "subject": {"reference": "urn:uuid:f0000000-0000-4000-8000-000000000002"},
            "section": [{"title": "Kết quả", "code": {"coding": [{"system": fhir::LOINC, "code": "30954-2"}]},
                         "entry": [{"reference": "urn:uuid:f0000000-0000-4000-8000-000000000003"},
                                   {"reference": "urn:uuid:f0000000-0000-4000-8000-000000000004"}]}]}},
        {"fullUrl": "urn:uuid:f0000000-0000-4000-8000-000000000002", "resource": patient()},
        {"fullUrl": "urn:uuid:f0000000-0000-4000-8000-000000000003", "resource": {
            "resourceType": "Observation", "id": 42, "status": "final", "subject": subject()}},
        {"fullUrl": "urn:uuid:f0000000-0000-4000-8000-000000000004", "resource": {
            "resourceType": "Observation", "id": "good", "status": "final", "subject": subject(),
            "code": {"text": "Glucose"}}}
    ]});
    let s = book.import_bundle(&doc.to_string(), None, 1).unwrap();
    assert_eq!((s.stored, s.refused), (3, 1));
    assert_eq!(s.entries[2].status, EntryStatus::Refused);
    // The document's mention of the refused entry is reported, not pretended.
    assert_eq!(s.unresolved.len(), 1, "{:?}", s.unresolved);
    assert!(s.unresolved[0].starts_with("Composition/"));
    assert!(book.get("Observation/good").unwrap().is_some());
}

#[test]
fn a_record_filed_under_a_person_it_does_not_name_is_filed_the_same_on_other_devices() {
    let (_d, phone) = vault();
    let book = HealthBook::new(&phone);
    let goal = json!({"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
                      "description": {"text": "Đi bộ"}, "subject": {"reference": "urn:uuid:not-here"}});
    book.import_bundle(&bundle(vec![patient(), goal]), None, 1)
        .unwrap();
    assert_eq!(book.get("Goal/g1").unwrap().unwrap().person, PATIENT);
    let pushed: Vec<_> = phone.transaction(outbox::pending).unwrap();
    let payload = |key: &str| {
        pushed
            .iter()
            .find(|e| e.record_id == key)
            .unwrap()
            .payload
            .clone()
    };
    assert_eq!(payload("Goal/g1")["person"], PATIENT);

    // The tablet pulls the person, then the goal: filed under the same person.
    let (_d2, tablet) = vault();
    let pull = |key: &str| {
        tablet
            .transaction(|tx| records::store_pulled(tx, &payload(key), None, 2))
            .unwrap()
    };
    assert!(pull(&format!("Patient/{PATIENT}")));
    assert!(pull("Goal/g1"));
    let on_tablet = HealthBook::new(&tablet).get("Goal/g1").unwrap().unwrap();
    assert_eq!(on_tablet.person, PATIENT);

    // A claimed person this device does not know files nothing under a ghost.
    let (_d3, other) = vault();
    assert!(other
        .transaction(|tx| records::store_pulled(tx, &payload("Goal/g1"), None, 2))
        .unwrap());
    assert_eq!(
        HealthBook::new(&other)
            .get("Goal/g1")
            .unwrap()
            .unwrap()
            .person,
        ""
    );
}
