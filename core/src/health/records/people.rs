//! A person's profile and health-insurance card as the app edits them, stored as a FHIR
//! Patient (the CCCD an identifier) and a Coverage (the BHYT card).

use serde_json::{json, Value};

use super::identity::identifiers;
use super::{
    invalid, put, random_id, HealthBook, HealthError, HealthRecord, Provenance, Source, SYNCED,
};
use crate::changes::outbox;
use crate::health::fhir::{self, Kind};
use crate::health::schedule;
use crate::vault::Document;

/// A person's profile and health-insurance card, as the app edits it; stored as a FHIR Patient
/// (with the CCCD as an identifier) and a Coverage (the BHYT card).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Patient id; `None` to create a new person.
    pub id: Option<String>,
    /// Full name as written.
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// Administrative gender (FHIR's four values).
    pub gender: Gender,
    /// Citizen ID (CCCD), 12 digits; `None` when the person has none (children may not).
    pub citizen_id: Option<String>,
    /// The health-insurance card, if any.
    pub insurance: Option<Insurance>,
}

/// Administrative gender, as FHIR's Patient.gender codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// `male`.
    Male,
    /// `female`.
    Female,
    /// `other`.
    Other,
    /// `unknown`, and what a record leaves out.
    Unknown,
}

impl Gender {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }

    /// From a FHIR code; anything else (absent, misspelt) is `Unknown`.
    pub fn from_code(code: &str) -> Gender {
        match code {
            "male" => Gender::Male,
            "female" => Gender::Female,
            "other" => Gender::Other,
            _ => Gender::Unknown,
        }
    }
}

/// A BHYT card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insurance {
    /// Card number.
    pub number: String,
    /// First valid day, `YYYY-MM-DD`.
    pub valid_from: String,
    /// Last valid day, `YYYY-MM-DD`; `None` when open-ended.
    pub valid_to: Option<String>,
    /// The registered primary-care facility, if the card names one.
    pub facility: Option<String>,
}

impl HealthBook<'_> {
    /// Creates or updates a person (Patient) and their insurance card (Coverage); returns the
    /// person id. Fields the app does not edit stay as they were.
    pub fn save_person(&self, person: &Person, now: u64) -> Result<String, HealthError> {
        if person.full_name.trim().is_empty() {
            return Err(invalid("full_name", "is required"));
        }
        let born = schedule::parse_date(&person.birth_date)
            .ok_or_else(|| invalid("birth_date", "expected YYYY-MM-DD"))?;
        if let Some(cccd) = &person.citizen_id {
            if cccd.len() != 12 || !cccd.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("citizen_id", "a CCCD number has 12 digits"));
            }
        }
        if let Some(card) = &person.insurance {
            if card.number.trim().is_empty() {
                return Err(invalid("insurance.number", "is required"));
            }
            let from = schedule::parse_date(&card.valid_from)
                .ok_or_else(|| invalid("insurance.valid_from", "expected YYYY-MM-DD"))?;
            if let Some(valid_to) = &card.valid_to {
                let to = schedule::parse_date(valid_to)
                    .ok_or_else(|| invalid("insurance.valid_to", "expected YYYY-MM-DD"))?;
                if to < from {
                    return Err(invalid("insurance.valid_to", "is before valid_from"));
                }
            }
        }
        let id = match person.id.as_deref() {
            None => random_id()?,
            Some(id) if fhir::is_valid_id(id) => id.to_owned(),
            Some(_) => return Err(invalid("id", "not a valid FHIR id")),
        };
        let key = format!("Patient/{id}");
        self.vault.transaction(|tx| {
            let existing = tx.get_doc::<HealthRecord>(&key)?;
            if existing.is_none() && person.id.is_some() {
                return Err(HealthError::NotFound {
                    what: format!("person {id}"),
                });
            }
            let mut patient = existing
                .map(|r| r.resource)
                .unwrap_or_else(|| json!({"resourceType": "Patient", "id": id}));
            patient["name"] = json!([{"text": person.full_name.trim()}]);
            patient["birthDate"] = json!(born.to_string());
            patient["gender"] = json!(person.gender.code());
            let mut ids: Vec<Value> = patient["identifier"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i["system"] != fhir::CCCD_SYSTEM)
                .collect();
            if let Some(cccd) = &person.citizen_id {
                ids.push(json!({"system": fhir::CCCD_SYSTEM, "value": cccd}));
            }
            patient["identifier"] = Value::Array(ids);
            let record = self.record(patient, Provenance::of(Source::Entered), now)?;
            put(tx, &record, true, now)?;
            let coverage_key = format!("Coverage/bhyt-{id}");
            match &person.insurance {
                Some(card) => {
                    let mut coverage = tx
                        .get_doc::<HealthRecord>(&coverage_key)?
                        .map(|r| r.resource)
                        .unwrap_or_else(|| {
                            json!({"resourceType": "Coverage", "id": format!("bhyt-{id}"), "status": "active"})
                        });
                    coverage["beneficiary"] = json!({"reference": key});
                    coverage["subscriberId"] = json!(card.number);
                    coverage["identifier"] =
                        json!([{"system": fhir::BHYT_SYSTEM, "value": card.number}]);
                    let mut period = json!({"start": card.valid_from});
                    if let Some(valid_to) = &card.valid_to {
                        period["end"] = json!(valid_to);
                    }
                    coverage["period"] = period;
                    coverage["payor"] = json!([{"display": "Bảo hiểm xã hội Việt Nam"}]);
                    match card.facility.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
                        None => {
                            if let Some(c) = coverage.as_object_mut() {
                                c.remove("class");
                            }
                        }
                        Some(facility) => {
                            coverage["class"] = json!([{
                                "type": {"text": "registered primary care facility"},
                                "value": facility,
                            }]);
                        }
                    }
                    let record = self.record(coverage, Provenance::of(Source::Entered), now)?;
                    put(tx, &record, true, now)?;
                }
                None => {
                    if tx.delete(HealthRecord::COLLECTION, &coverage_key)? {
                        outbox::enqueue(
            tx,
            &SYNCED,
                            &coverage_key,
                            "delete",
                            Value::Null,
                            now,
                        )?;
                    }
                }
            }
            Ok(id)
        })
    }

    /// A person and their insurance card.
    pub fn person(&self, id: &str) -> Result<Option<Person>, HealthError> {
        let Some(patient) = self
            .vault
            .get_doc::<HealthRecord>(&format!("Patient/{id}"))?
        else {
            return Ok(None);
        };
        let coverage = self
            .records(id, Some(Kind::Coverage), None, None)?
            .into_iter()
            .next();
        let p = &patient.resource;
        let some = |v: &Value, path: &str| {
            v.pointer(path)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let text = |v: &Value, path: &str| some(v, path).unwrap_or_default();
        Ok(Some(Person {
            id: Some(id.to_owned()),
            full_name: fhir::patient_name(p),
            birth_date: text(p, "/birthDate"),
            gender: Gender::from_code(&text(p, "/gender")),
            citizen_id: identifiers(p)
                .into_iter()
                .find(|(s, _)| s == fhir::CCCD_SYSTEM)
                .map(|(_, v)| v),
            insurance: coverage.map(|c| Insurance {
                number: text(&c.resource, "/subscriberId"),
                valid_from: text(&c.resource, "/period/start"),
                valid_to: some(&c.resource, "/period/end"),
                facility: some(&c.resource, "/class/0/value"),
            }),
        }))
    }

    /// Everyone in the book, as people (by name): the citizen and their dependants.
    pub fn persons(&self) -> Result<Vec<Person>, HealthError> {
        let mut persons = Vec::new();
        for record in self.people()? {
            let id = record.key.trim_start_matches("Patient/").to_owned();
            if let Some(person) = self.person(&id)? {
                persons.push(person);
            }
        }
        Ok(persons)
    }
}
