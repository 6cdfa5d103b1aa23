//! FHIR R4 as the health book stores it: every record *is* a FHIR resource, kept whole (unknown
//! fields and extensions included) with references in the relative `Type/id` form. This module
//! reads Bundles into such resources, pulls out the few facts the book indexes (kind, person,
//! clinical date) and writes the International Patient Summary document.
//!
//! This module holds the resource facts (kind, id, person, dates); the rest is split by concern:
//! `bundle` parses Bundles, `references` reads and rewrites references, `ips` maps records to
//! the IPS document, `summary` reads a record for lists.

mod bundle;
mod ips;
mod references;
mod summary;

use serde_json::Value;

pub use bundle::{
    bundle_entries, is_listing, parse_bundle, read_bundle, resources_of_bundle, BundleEntries,
};
pub use ips::{ips_document, section_of};
pub use references::{all_references, is_relative, references, rewrite_references};
pub use summary::{display_of, summary, Summary};

/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// ICD-10 (WHO), the coding of diagnoses in Vietnam.
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
/// IPS codes for "no information" entries of empty sections.
pub const IPS_ABSENT_UNKNOWN: &str = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips";
/// The citizen ID (CCCD) identifier system used by this library.
pub const CCCD_SYSTEM: &str = "urn:thudo:vn:cccd";
/// The health-insurance (BHYT) card identifier system used by this library.
pub const BHYT_SYSTEM: &str = "urn:thudo:vn:bhyt";

/// Largest bundle accepted for import (bytes of JSON).
pub const MAX_BUNDLE_BYTES: usize = 16 << 20;

/// Why a bundle or resource was refused. Nothing is stored when any is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// Not JSON, or larger than [`MAX_BUNDLE_BYTES`].
    #[error("not a JSON document: {detail}")]
    NotJson {
        /// What was wrong.
        detail: String,
    },
    /// Not a Bundle of type document, collection, searchset, transaction or batch.
    #[error("not a FHIR bundle: {detail}")]
    NotABundle {
        /// What was wrong.
        detail: String,
    },
    /// An entry's resource is malformed.
    #[error("entry {index}: {detail}")]
    BadResource {
        /// Position in the bundle (0-based); 0 for a single resource.
        index: usize,
        /// What was wrong.
        detail: String,
    },
}

/// The resource types the book understands, each mapping one to one onto a FHIR R4 resource.
/// Any other type is stored and exported unchanged as [`Kind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A person: the citizen or a dependant (Patient).
    Patient,
    /// Health insurance, the BHYT card (Coverage).
    Coverage,
    /// A visit, with facility, dates, diagnoses and summary (Encounter).
    Encounter,
    /// A vaccination (Immunization).
    Immunization,
    /// An allergy or intolerance (AllergyIntolerance).
    AllergyIntolerance,
    /// A problem or diagnosis, ICD-10 coded (Condition).
    Condition,
    /// A prescription (MedicationRequest).
    MedicationRequest,
    /// A medication taken (MedicationStatement).
    MedicationStatement,
    /// A result: lab value with unit and reference range, vital sign (Observation).
    Observation,
    /// A report grouping results (DiagnosticReport).
    DiagnosticReport,
    /// A procedure (Procedure).
    Procedure,
    /// A follow-up appointment (Appointment).
    Appointment,
    /// A referral (ServiceRequest).
    ServiceRequest,
    /// Anything else (Organization, Practitioner, Medication, ...), kept as it came.
    Other,
}

impl Kind {
    /// The kind of a `resourceType`.
    pub fn of(resource_type: &str) -> Kind {
        match resource_type {
            "Patient" => Kind::Patient,
            "Coverage" => Kind::Coverage,
            "Encounter" => Kind::Encounter,
            "Immunization" => Kind::Immunization,
            "AllergyIntolerance" => Kind::AllergyIntolerance,
            "Condition" => Kind::Condition,
            "MedicationRequest" => Kind::MedicationRequest,
            "MedicationStatement" => Kind::MedicationStatement,
            "Observation" => Kind::Observation,
            "DiagnosticReport" => Kind::DiagnosticReport,
            "Procedure" => Kind::Procedure,
            "Appointment" => Kind::Appointment,
            "ServiceRequest" => Kind::ServiceRequest,
            _ => Kind::Other,
        }
    }
}

/// A FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The `resourceType` of a resource, checked to be a plausible type name.
pub fn resource_type(resource: &Value) -> Option<&str> {
    let t = resource.get("resourceType")?.as_str()?;
    let mut chars = t.chars();
    let first = chars.next()?;
    (first.is_ascii_uppercase() && t.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric()))
        .then_some(t)
}

/// `Type/id` of a resource that has both.
pub fn key_of(resource: &Value) -> Option<String> {
    let t = resource_type(resource)?;
    let id = resource.get("id")?.as_str()?;
    is_valid_id(id).then(|| format!("{t}/{id}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => cur.get(i)?,
            Err(_) => cur.get(*p)?,
        };
    }
    cur.as_str()
}

/// The Patient id a resource is about (`subject`, `patient`, `beneficiary`, or an Appointment
/// participant), or the Patient's own id.
pub fn person_of(resource: &Value) -> Option<String> {
    if resource_type(resource) == Some("Patient") {
        return resource.get("id")?.as_str().map(str::to_owned);
    }
    let direct = ["subject", "patient", "beneficiary"]
        .iter()
        .find_map(|field| str_at(resource, &[field, "reference"]));
    let from_participants = || {
        resource
            .get("participant")?
            .as_array()?
            .iter()
            .find_map(|p| str_at(p, &["actor", "reference"]).filter(|r| r.starts_with("Patient/")))
    };
    let reference = direct.or_else(from_participants)?;
    reference.strip_prefix("Patient/").map(str::to_owned)
}

/// The date that places a resource on the timeline, as written (a FHIR date or dateTime).
pub fn clinical_date(resource: &Value) -> Option<String> {
    let candidates: &[&[&str]] = match resource_type(resource)? {
        "Patient" => &[&["birthDate"]],
        "Coverage" => &[&["period", "start"]],
        "Encounter" => &[&["period", "start"]],
        "Immunization" => &[&["occurrenceDateTime"], &["recorded"]],
        "AllergyIntolerance" | "Condition" => &[&["onsetDateTime"], &["recordedDate"]],
        "MedicationRequest" => &[&["authoredOn"]],
        "MedicationStatement" => &[
            &["effectiveDateTime"],
            &["effectivePeriod", "start"],
            &["dateAsserted"],
        ],
        "Observation" | "DiagnosticReport" => &[
            &["effectiveDateTime"],
            &["effectivePeriod", "start"],
            &["issued"],
        ],
        "Procedure" => &[&["performedDateTime"], &["performedPeriod", "start"]],
        "Appointment" => &[&["start"]],
        "ServiceRequest" => &[&["occurrenceDateTime"], &["authoredOn"]],
        _ => &[&["meta", "lastUpdated"]],
    };
    candidates
        .iter()
        .find_map(|path| str_at(resource, path))
        .map(str::to_owned)
}

/// The day of a FHIR date or dateTime as `YYYY-MM-DD`, a partial date taking its first day
/// (`2021` is `2021-01-01`), for range comparisons.
pub fn day_of(date: &str) -> Option<String> {
    let day = match date.len() {
        4 => format!("{date}-01-01"),
        7 => format!("{date}-01"),
        n if n >= 10 => date.get(..10)?.to_owned(),
        _ => return None,
    };
    chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok()?;
    Some(day)
}

/// True when the resource is an IPS *no information* marker (`no-allergy-info`,
/// `no-problem-info`, ...): it says nothing about the patient and only marks an empty section.
/// A statement of absence (`no-known-allergies`, ...) is clinical data and is not a marker.
pub fn is_absent_marker(resource: &Value) -> bool {
    let codes = ["code", "medicationCodeableConcept", "vaccineCode"];
    codes.iter().any(|field| {
        resource
            .get(field)
            .and_then(|c| c.get("coding"))
            .and_then(Value::as_array)
            .is_some_and(|codings| {
                codings.iter().any(|c| {
                    str_at(c, &["system"]) == Some(IPS_ABSENT_UNKNOWN)
                        && str_at(c, &["code"]).is_some_and(|code| code.ends_with("-info"))
                })
            })
    })
}

/// A Patient's name: `text`, else family then given names.
pub fn patient_name(patient: &Value) -> String {
    if let Some(text) = str_at(patient, &["name", "0", "text"]) {
        return text.to_owned();
    }
    let family = str_at(patient, &["name", "0", "family"]).unwrap_or("");
    let given: Vec<&str> = patient
        .pointer("/name/0/given")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    format!("{family} {}", given.join(" ")).trim().to_owned()
}

/// A FHIR `instant` (RFC 3339, UTC) for unix seconds.
pub fn instant(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
