//! FHIR R4 as the health book stores it: every record *is* a FHIR resource, kept whole (unknown
//! fields and extensions included) with references in the relative `Type/id` form. This module
//! reads Bundles into such resources, pulls out the few facts the book indexes (kind, person,
//! clinical date) and writes the International Patient Summary document.

use std::collections::{BTreeMap, HashMap};

use ring::digest;
use serde_json::{json, Map, Value};

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

/// A bundle read entry by entry.
#[derive(Debug, Clone, Default)]
pub struct BundleEntries {
    /// `(entry index, resource)` for every entry that could be read, each with an id, with
    /// references between entries rewritten to `Type/id`.
    pub resources: Vec<(usize, Value)>,
    /// `(entry index, reason)` for entries that could not be read (no resource, a malformed
    /// type or id, a nested bundle).
    pub refused: Vec<(usize, String)>,
    /// `(entry index, fullUrl)` of the refused entries that other entries reference, or that
    /// are Patients: without them the rest cannot be filed safely.
    pub needed: Vec<(usize, String)>,
}

/// Reads a Bundle into resources that all have an id, with references between entries
/// rewritten from their `fullUrl` (`urn:uuid:...`, `resource:0`, absolute URLs) to `Type/id`.
/// Entries without an id get a stable one derived from `id_seed` and their position, so
/// importing the same bundle twice names the same records. Any unreadable entry refuses the
/// whole bundle (see [`bundle_entries`] to keep the rest).
pub fn read_bundle(text: &str, id_seed: &str) -> Result<Vec<Value>, FhirError> {
    resources_of_bundle(parse_bundle(text)?, id_seed)
}

/// Parses bundle JSON, refusing more than [`MAX_BUNDLE_BYTES`]. Decimals keep the digits they
/// were written with.
pub fn parse_bundle(text: &str) -> Result<Value, FhirError> {
    if text.len() > MAX_BUNDLE_BYTES {
        return Err(FhirError::NotJson {
            detail: format!("larger than {MAX_BUNDLE_BYTES} bytes"),
        });
    }
    serde_json::from_str(text).map_err(|e| FhirError::NotJson {
        detail: e.to_string(),
    })
}

/// [`read_bundle`] on parsed JSON: every entry or nothing.
pub fn resources_of_bundle(bundle: Value, id_seed: &str) -> Result<Vec<Value>, FhirError> {
    let read = bundle_entries(bundle, id_seed)?;
    if let Some((index, detail)) = read.refused.into_iter().next() {
        return Err(FhirError::BadResource { index, detail });
    }
    Ok(read.resources.into_iter().map(|(_, r)| r).collect())
}

/// Reads a Bundle entry by entry (see [`read_bundle`]): an unreadable entry is refused on its
/// own. The bundle as a whole is refused when it is not a bundle, when two entries share a
/// `fullUrl` or a `Type/id` (references to them would be ambiguous).
pub fn bundle_entries(bundle: Value, id_seed: &str) -> Result<BundleEntries, FhirError> {
    let not_bundle = |detail: &str| FhirError::NotABundle {
        detail: detail.to_owned(),
    };
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(not_bundle("resourceType is not Bundle"));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("document" | "collection" | "searchset" | "transaction" | "batch") => {}
        Some(other) => return Err(not_bundle(&format!("bundle type {other} is not imported"))),
        None => return Err(not_bundle("bundle type is missing")),
    }
    let entries = match bundle.get("entry") {
        None => return Ok(BundleEntries::default()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(not_bundle("entry is not an array")),
    };
    let seed = hex_prefix(id_seed.as_bytes(), 12);
    let mut out = BundleEntries::default();
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut urls: HashMap<&str, usize> = HashMap::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut refused_urls: Vec<(usize, String, bool)> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        if let Some(url) = full_url {
            if let Some(previous) = urls.insert(url, index) {
                return Err(FhirError::BadResource {
                    index,
                    detail: format!("repeats the fullUrl of entry {previous}"),
                });
            }
        }
        let read = read_entry(entry, index, &seed);
        match read {
            Ok(resource) => {
                let key = key_of(&resource).unwrap_or_default();
                if let Some(previous) = taken.insert(key.clone(), index) {
                    return Err(FhirError::BadResource {
                        index,
                        detail: format!("{key} repeats entry {previous}"),
                    });
                }
                if let Some(url) = full_url {
                    renames.insert(url.to_owned(), key.clone());
                }
                // Relative references name a resource by `Type/id` whatever its fullUrl.
                out.resources.push((index, resource));
            }
            Err(reason) => {
                let is_patient = entry
                    .pointer("/resource/resourceType")
                    .and_then(Value::as_str)
                    == Some("Patient");
                let name = full_url.map(str::to_owned).unwrap_or_default();
                refused_urls.push((index, name, is_patient));
                out.refused.push((index, reason));
            }
        }
    }
    let mut referenced = std::collections::HashSet::new();
    for (_, resource) in &mut out.resources {
        rewrite_references(resource, &|r| renames.get(r).cloned());
        // A document's or a list's mention is no dependency: without the entry it lists one
        // thing fewer (the loss is reported), while a record pointing at it would be wrong.
        if !is_listing(resource) {
            let mut refs = Vec::new();
            all_references(resource, &mut refs);
            referenced.extend(refs);
        }
    }
    out.needed = refused_urls
        .into_iter()
        .filter(|(_, url, is_patient)| *is_patient || (!url.is_empty() && referenced.contains(url)))
        .map(|(index, url, _)| (index, url))
        .collect();
    Ok(out)
}

/// A resource that only lists others (a document's Composition, a List): what it points to may
/// be missing without making it wrong.
pub fn is_listing(resource: &Value) -> bool {
    matches!(resource_type(resource), Some("Composition" | "List"))
}

/// One entry's resource with its id, or why it cannot be read.
fn read_entry(entry: &Value, index: usize, seed: &str) -> Result<Value, String> {
    let mut resource = entry
        .get("resource")
        .cloned()
        .ok_or("entry has no resource")?;
    if !resource.is_object() {
        return Err("resource is not an object".into());
    }
    let rtype = resource_type(&resource)
        .ok_or("resourceType is missing or malformed")?
        .to_owned();
    if rtype == "Bundle" {
        return Err("nested bundles are not imported".into());
    }
    let full_url = entry.get("fullUrl").and_then(Value::as_str);
    let id = match resource.get("id") {
        Some(Value::String(id)) if is_valid_id(id) => id.clone(),
        Some(_) => return Err("id is not a valid FHIR id".into()),
        None => match full_url.and_then(|u| u.strip_prefix("urn:uuid:")) {
            Some(uuid) if is_valid_id(uuid) => uuid.to_owned(),
            _ => format!("{seed}-{index}"),
        },
    };
    resource["id"] = Value::String(id);
    Ok(resource)
}

/// Every reference string inside a resource, whatever its form (`Type/id`, URLs, `#contained`).
pub fn all_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match (name.as_str(), field) {
                    ("reference", Value::String(r)) => out.push(r.clone()),
                    _ => all_references(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| all_references(i, out)),
        _ => {}
    }
}

/// Replaces every `reference` string that `map` knows.
pub fn rewrite_references(value: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if name == "reference" {
                    if let Some(new) = field.as_str().and_then(map) {
                        *field = Value::String(new);
                    }
                } else {
                    rewrite_references(field, map);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rewrite_references(i, map)),
        _ => {}
    }
}

/// Every `Type/id` reference inside a resource.
pub fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                match (name.as_str(), field) {
                    ("reference", Value::String(r)) if r.contains('/') => out.push(r.clone()),
                    _ => references(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        _ => {}
    }
}

fn hex_prefix(data: &[u8], bytes: usize) -> String {
    crate::hex::encode(&digest::digest(&digest::SHA256, data).as_ref()[..bytes])
}

/// A name-based UUID (RFC 9562 version 8 over SHA-256), so an export names each resource the
/// same way every time.
fn uuid_for(name: &str) -> String {
    let d = digest::digest(&digest::SHA256, name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hex::encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

struct Section {
    loinc: &'static str,
    title: &'static str,
    /// Required by IPS: the resource type and absent-unknown code used when there is nothing.
    absent: Option<(&'static str, &'static str, &'static str)>,
}

/// The IPS sections in the order the guide lists them, then the two this book adds
/// (encounters, payers). [`section_of`] files a record that no imported document placed.
const SECTIONS: &[Section] = &[
    Section {
        loinc: "11450-4",
        title: "Problem list",
        absent: Some((
            "Condition",
            "no-problem-info",
            "No information about problems",
        )),
    },
    Section {
        loinc: "48765-2",
        title: "Allergies and intolerances",
        absent: Some((
            "AllergyIntolerance",
            "no-allergy-info",
            "No information about allergies",
        )),
    },
    Section {
        loinc: "10160-0",
        title: "History of medication use",
        absent: Some((
            "MedicationStatement",
            "no-medication-info",
            "No information about medications",
        )),
    },
    Section {
        loinc: "11369-6",
        title: "History of immunizations",
        absent: None,
    },
    Section {
        loinc: "30954-2",
        title: "Results",
        absent: None,
    },
    Section {
        loinc: "47519-4",
        title: "History of procedures",
        absent: None,
    },
    Section {
        loinc: "46264-8",
        title: "Medical devices",
        absent: None,
    },
    Section {
        loinc: "8716-3",
        title: "Vital signs",
        absent: None,
    },
    Section {
        loinc: "11348-0",
        title: "History of past problems",
        absent: None,
    },
    Section {
        loinc: "47420-5",
        title: "Functional status",
        absent: None,
    },
    Section {
        loinc: "18776-5",
        title: "Plan of care",
        absent: None,
    },
    Section {
        loinc: "29762-2",
        title: "Social history",
        absent: None,
    },
    Section {
        loinc: "10162-6",
        title: "History of pregnancies",
        absent: None,
    },
    Section {
        loinc: "42348-3",
        title: "Advance directives",
        absent: None,
    },
    Section {
        loinc: "104605-1",
        title: "Alerts",
        absent: None,
    },
    Section {
        loinc: "46240-8",
        title: "Encounters",
        absent: None,
    },
    Section {
        loinc: "48768-6",
        title: "Payers",
        absent: None,
    },
];

/// LOINC codes of pregnancy observations (status, outcomes, expected delivery).
const PREGNANCY_CODES: &[&str] = &[
    "82810-3", "11449-6", "11636-8", "11637-6", "11638-4", "11639-2", "11640-0", "11612-9",
    "11613-7", "11614-5", "33065-4", "11778-8", "11779-6", "11780-4",
];

fn has_category(resource: &Value, code: &str) -> bool {
    resource
        .get("category")
        .and_then(Value::as_array)
        .is_some_and(|cats| {
            cats.iter().any(|c| {
                c.get("coding")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|x| str_at(x, &["code"]) == Some(code)))
            })
        })
}

/// The IPS section (its LOINC code) a record belongs in when no imported document placed it;
/// `None` for supporting resources (organisations, practitioners, medications, ...), which an
/// export reaches through the records that reference them.
pub fn section_of(resource: &Value) -> Option<&'static str> {
    Some(match resource_type(resource)? {
        "Condition" => {
            let status = str_at(resource, &["clinicalStatus", "coding", "0", "code"]);
            if matches!(status, Some("inactive" | "resolved" | "remission")) {
                "11348-0"
            } else {
                "11450-4"
            }
        }
        "AllergyIntolerance" => "48765-2",
        "MedicationStatement"
        | "MedicationRequest"
        | "MedicationAdministration"
        | "MedicationDispense" => "10160-0",
        "Immunization" => "11369-6",
        "Observation" => {
            let code = str_at(resource, &["code", "coding", "0", "code"]).unwrap_or("");
            if has_category(resource, "vital-signs") {
                "8716-3"
            } else if has_category(resource, "social-history") {
                "29762-2"
            } else if PREGNANCY_CODES.contains(&code) {
                "10162-6"
            } else {
                "30954-2"
            }
        }
        "DiagnosticReport" => "30954-2",
        "Procedure" => "47519-4",
        "DeviceUseStatement" => "46264-8",
        "ClinicalImpression" => "47420-5",
        "CarePlan" | "ServiceRequest" | "Appointment" | "ImmunizationRecommendation" => "18776-5",
        "Consent" => "42348-3",
        "Flag" => "104605-1",
        "Encounter" => "46240-8",
        "Coverage" => "48768-6",
        _ => return None,
    })
}

/// The code of a Composition section (its first coding), or "" without one.
fn section_code(section: &Value) -> &str {
    str_at(section, &["code", "coding", "0", "code"]).unwrap_or("")
}

/// A short human label for a resource (the narrative of its section).
pub fn display_of(resource: &Value) -> String {
    let concept_fields = [
        "code",
        "vaccineCode",
        "medicationCodeableConcept",
        "type",
        "serviceType",
    ];
    for field in concept_fields {
        let concept = match resource.get(field) {
            Some(Value::Array(items)) => items.first(),
            other => other,
        };
        if let Some(c) = concept {
            if let Some(text) = str_at(c, &["text"])
                .or_else(|| str_at(c, &["coding", "0", "display"]))
                .or_else(|| str_at(c, &["coding", "0", "code"]))
            {
                return text.to_owned();
            }
        }
    }
    str_at(resource, &["description"])
        .or_else(|| str_at(resource, &["medicationReference", "display"]))
        .unwrap_or_else(|| resource_type(resource).unwrap_or("resource"))
        .to_owned()
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn narrative(lines: &[String]) -> Value {
    let items: String = lines
        .iter()
        .map(|l| format!("<li>{}</li>", escape_xml(l)))
        .collect();
    json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><ul>{items}</ul></div>"),
    })
}

fn absent_resource(rtype: &str, code: &str, display: &str, patient: &str) -> Value {
    let concept =
        json!({"coding": [{"system": IPS_ABSENT_UNKNOWN, "code": code, "display": display}]});
    let subject = json!({"reference": format!("Patient/{patient}")});
    let id = format!("absent-{code}");
    match rtype {
        "AllergyIntolerance" => {
            json!({"resourceType": rtype, "id": id, "code": concept, "patient": subject})
        }
        "MedicationStatement" => json!({
            "resourceType": rtype, "id": id, "status": "unknown",
            "medicationCodeableConcept": concept, "subject": subject
        }),
        _ => json!({"resourceType": rtype, "id": id, "code": concept, "subject": subject}),
    }
}

/// Writes the International Patient Summary of one person: a `document` Bundle whose first entry
/// is the Composition, then the Patient and every other resource, each with a stable `urn:uuid:`
/// fullUrl and references rewritten to those URLs.
///
/// `documents` are the Compositions of documents imported for this person: a record one of them
/// listed stays in that section (the latest document wins); the others are filed by
/// [`section_of`]. Their authors, attesters and custodian (the latest) are the new document's,
/// beside this library's Device, and their sections that hold only a narrative are carried over.
/// Problems, Allergies and Medications are always present, with a *no information* entry when
/// empty. A record no section or reachable record points to is listed under "Other records",
/// so every entry is reachable from the Composition. A reference to a resource the export does
/// not hold loses its `reference` (keeping `display`, or naming what it pointed to) rather
/// than pretending to resolve. `timestamp` is an RFC 3339 instant.
pub fn ips_document(
    patient: &Value,
    resources: &[Value],
    documents: &[Value],
    timestamp: &str,
) -> Value {
    let patient_id = patient.get("id").and_then(Value::as_str).unwrap_or("");
    let patient_key = format!("Patient/{patient_id}");
    let mut documents: Vec<&Value> = documents.iter().collect();
    documents.sort_by_key(|d| str_at(d, &["date"]).unwrap_or("").to_owned());
    // Where the imported documents placed each record (the latest document last, so it wins).
    let mut placed: HashMap<String, &Value> = HashMap::new();
    for d in &documents {
        for section in d
            .get("section")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut refs = Vec::new();
            if let Some(entries) = section.get("entry") {
                references(entries, &mut refs);
            }
            for r in refs {
                placed.insert(r, section);
            }
        }
    }
    let device = json!({
        "resourceType": "Device", "id": "thudo",
        "deviceName": [{"name": "thudo", "type": "manufacturer-name"}],
        "version": [{"value": env!("CARGO_PKG_VERSION")}],
    });
    let mut extra: Vec<Value> = Vec::new();
    let mut members: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    // Sections only an imported document knows (codes this library does not list), as written.
    let mut foreign: Vec<(String, Value)> = Vec::new();
    for r in resources {
        let Some(key) = key_of(r) else { continue };
        let code = match placed.get(&key) {
            Some(section) => {
                let code = section_code(section).to_owned();
                if !SECTIONS.iter().any(|s| s.loinc == code)
                    && !foreign.iter().any(|(c, _)| *c == code)
                {
                    foreign.push((code.clone(), (*section).clone()));
                }
                code
            }
            None => match section_of(r) {
                Some(code) => code.to_owned(),
                None => continue,
            },
        };
        members.entry(code).or_default().push(r);
    }
    let label = |r: &Value| match clinical_date(r) {
        Some(d) => format!("{} ({d})", display_of(r)),
        None => display_of(r),
    };
    let section_json = |title: &str, code: Option<&Value>, rs: &[&Value]| {
        let (entries, lines): (Vec<Value>, Vec<String>) = rs
            .iter()
            .filter_map(|r| Some((json!({"reference": key_of(r)?}), label(r))))
            .unzip();
        let mut section = json!({"title": title, "text": narrative(&lines), "entry": entries});
        if let Some(code) = code {
            section["code"] = code.clone();
        }
        section
    };
    // The latest imported document's section of each code: its title, or its narrative and
    // empty reason when it listed nothing.
    let mut imported: HashMap<&str, &Value> = HashMap::new();
    for d in &documents {
        for section in d
            .get("section")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            imported.insert(section_code(section), section);
        }
    }
    // A section that lists nothing but says something (a narrative, an empty reason).
    let says_only = |section: &Value| {
        section
            .get("entry")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
            && (section.get("text").is_some() || section.get("emptyReason").is_some())
    };
    let mut sections = Vec::new();
    for s in SECTIONS {
        let code = json!({"coding": [{"system": LOINC, "code": s.loinc}]});
        let original = imported.get(s.loinc);
        let title = original
            .and_then(|o| str_at(o, &["title"]))
            .unwrap_or(s.title);
        match members.get(s.loinc) {
            Some(rs) => sections.push(section_json(title, Some(&code), rs)),
            // The document said why it was empty: kept as it said it.
            None if original.is_some_and(|o| says_only(o)) => {}
            None => {
                if let Some((rtype, absent, display)) = s.absent {
                    let marker = absent_resource(rtype, absent, display, patient_id);
                    let key = key_of(&marker).unwrap_or_default();
                    extra.push(marker);
                    // An imported document's own words for the empty section are kept.
                    let text = original
                        .and_then(|o| o.get("text"))
                        .cloned()
                        .unwrap_or_else(|| narrative(&[display.to_owned()]));
                    sections.push(json!({
                        "title": title, "code": code, "text": text,
                        "entry": [{"reference": key}],
                    }));
                }
            }
        }
    }
    for (code, original) in &foreign {
        let title = str_at(original, &["title"]).unwrap_or("Section");
        let rs = members.get(code).map(Vec::as_slice).unwrap_or_default();
        sections.push(section_json(title, original.get("code"), rs));
    }
    // Sections that held only a narrative (or an empty reason) in an imported document.
    let exported_codes: Vec<String> = sections
        .iter()
        .map(|s| section_code(s).to_owned())
        .collect();
    let mut narrative_only: Vec<Value> = Vec::new();
    for d in documents.iter().rev() {
        for section in d
            .get("section")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let code = section_code(section);
            let seen = exported_codes.iter().any(|c| c == code)
                || narrative_only.iter().any(|s| section_code(s) == code);
            if !seen && says_only(section) {
                narrative_only.push(section.clone());
            }
        }
    }
    sections.extend(narrative_only);
    let name = match patient_name(patient) {
        n if n.is_empty() => patient_id.to_owned(),
        n => n,
    };
    let mut authors = vec![json!({"reference": "Device/thudo"})];
    let mut attesters: Vec<Value> = Vec::new();
    let mut custodian = None;
    for d in &documents {
        union_into(&mut authors, d.get("author"));
        union_into(&mut attesters, d.get("attester"));
        if let Some(c) = d.get("custodian") {
            custodian = Some(c.clone());
        }
    }
    let mut composition = json!({
        "resourceType": "Composition",
        "id": uuid_for(&format!("Composition/{patient_key}/{timestamp}")),
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]},
        "subject": {"reference": patient_key},
        "date": timestamp,
        "author": authors,
        "title": format!("Patient Summary: {name}"),
    });
    if !attesters.is_empty() {
        composition["attester"] = Value::Array(attesters);
    }
    if let Some(c) = custodian {
        composition["custodian"] = c;
    }
    let mut all: Vec<Value> = vec![patient.clone()];
    all.extend(
        resources
            .iter()
            .filter(|r| {
                let key = key_of(r);
                // A re-imported export holds this library's Device: it goes last, as here.
                key.as_deref() != Some(patient_key.as_str())
                    && key.as_deref() != Some("Device/thudo")
            })
            .cloned(),
    );
    all.extend(extra);
    all.push(device);
    let mut seen = std::collections::HashSet::new();
    all.retain(|r| key_of(r).is_some_and(|k| seen.insert(k)));
    // Every entry must be reachable from the Composition: what is not gets its own section.
    composition["section"] = Value::Array(sections);
    let unreachable = unreachable_from(&composition, &all);
    if !unreachable.is_empty() {
        let rs: Vec<&Value> = all
            .iter()
            .filter(|r| key_of(r).is_some_and(|k| unreachable.contains(&k)))
            .collect();
        let other = section_json("Other records", None, &rs);
        if let Some(Value::Array(sections)) = composition.get_mut("section") {
            sections.push(other);
        }
    }
    all.insert(0, composition);
    let urls: HashMap<String, String> = all
        .iter()
        .filter_map(key_of)
        .map(|k| {
            let url = format!("urn:uuid:{}", uuid_for(&k));
            (k, url)
        })
        .collect();
    let entries: Vec<Value> = all
        .into_iter()
        .map(|mut r| {
            let full_url = key_of(&r)
                .and_then(|k| urls.get(&k).cloned())
                .unwrap_or_default();
            settle_references(&mut r, &urls);
            let mut entry = Map::new();
            entry.insert("fullUrl".into(), Value::String(full_url));
            entry.insert("resource".into(), r);
            Value::Object(entry)
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": uuid_for(&format!("Bundle/{patient_key}/{timestamp}")),
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", uuid_for(&format!("ips/{patient_key}/{timestamp}")))},
        "type": "document",
        "timestamp": timestamp,
        "entry": entries,
    })
}

/// Adds the items of the array `more` that `list` lacks.
fn union_into(list: &mut Vec<Value>, more: Option<&Value>) {
    for item in more.and_then(Value::as_array).into_iter().flatten() {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

/// The keys of `resources` that cannot be reached from `composition` by following references.
fn unreachable_from(composition: &Value, resources: &[Value]) -> std::collections::HashSet<String> {
    let by_key: HashMap<String, &Value> = resources
        .iter()
        .filter_map(|r| Some((key_of(r)?, r)))
        .collect();
    let mut reached = std::collections::HashSet::new();
    let mut frontier = vec![composition];
    while let Some(r) = frontier.pop() {
        let mut refs = Vec::new();
        references(r, &mut refs);
        for key in refs {
            if let Some(next) = by_key.get(&key) {
                if reached.insert(key) {
                    frontier.push(next);
                }
            }
        }
    }
    by_key
        .into_keys()
        .filter(|k| !reached.contains(k))
        .collect()
}

/// Rewrites each `Type/id` reference to the entry's URL; one the export does not hold loses
/// its `reference` and keeps (or gains) a `display`, so it never looks resolvable. Contained
/// (`#id`) and absolute references are left as written.
fn settle_references(value: &mut Value, urls: &HashMap<String, String>) {
    match value {
        Value::Object(fields) => {
            let target = fields
                .get("reference")
                .and_then(Value::as_str)
                .map(str::to_owned);
            // `Type/id/_history/n` names a version of the entry `Type/id`.
            let url = target
                .as_deref()
                .map(|r| r.split("/_history/").next().unwrap_or(r))
                .and_then(|base| urls.get(base))
                .cloned();
            match target {
                Some(_) if url.is_some() => {
                    fields.insert("reference".into(), Value::String(url.unwrap_or_default()));
                }
                Some(r) if is_relative(&r) => {
                    fields.remove("reference");
                    fields
                        .entry("display")
                        .or_insert_with(|| Value::String(format!("{r} (not in this summary)")));
                }
                _ => {}
            }
            fields
                .iter_mut()
                .filter(|(name, _)| *name != "reference")
                .for_each(|(_, field)| settle_references(field, urls));
        }
        Value::Array(items) => items.iter_mut().for_each(|i| settle_references(i, urls)),
        _ => {}
    }
}

/// A `Type/id` reference (not contained, not a URL or URN).
pub fn is_relative(reference: &str) -> bool {
    !reference.starts_with('#')
        && !reference.contains(':')
        && reference.split_once('/').is_some_and(|(t, id)| {
            is_valid_id(id.split("/_history/").next().unwrap_or(id)) && !t.is_empty()
        })
}

/// The facts an app lists for any record, read from its FHIR resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// What it is: the vaccine, diagnosis, substance, test, medicine or visit type.
    pub title: String,
    /// The main code (ICD-10 for conditions, LOINC for results, CVX for vaccines, ...).
    pub code: Option<String>,
    /// The code's system.
    pub code_system: Option<String>,
    /// `status`, or the clinical status of a condition or allergy.
    pub status: Option<String>,
    /// The value: a result with its unit, a dosage, a reaction, a dose number.
    pub value: Option<String>,
    /// A result's unit.
    pub unit: Option<String>,
    /// A result's reference range, `low-high`.
    pub reference_range: Option<String>,
    /// Where: the facility or performer.
    pub facility: Option<String>,
}

fn first_coding(resource: &Value, field: &str) -> Option<(String, String)> {
    let concept = match resource.get(field)? {
        Value::Array(items) => items.first()?,
        c => c,
    };
    let coding = concept.get("coding")?.as_array()?.first()?;
    Some((
        str_at(coding, &["system"]).unwrap_or("").to_owned(),
        str_at(coding, &["code"])?.to_owned(),
    ))
}

fn number(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Reads a record's [`Summary`].
pub fn summary(resource: &Value) -> Summary {
    let rtype = resource_type(resource).unwrap_or("");
    let code_field = match rtype {
        "Immunization" => "vaccineCode",
        "MedicationRequest" | "MedicationStatement" => "medicationCodeableConcept",
        "Encounter" => "reasonCode",
        "Coverage" | "Appointment" => "serviceType",
        _ => "code",
    };
    let coding = first_coding(resource, code_field);
    let status = str_at(resource, &["clinicalStatus", "coding", "0", "code"])
        .or_else(|| str_at(resource, &["status"]))
        .map(str::to_owned);
    let mut out = Summary {
        title: match rtype {
            "Patient" => patient_name(resource),
            "Coverage" => str_at(resource, &["subscriberId"])
                .map(|n| format!("Insurance {n}"))
                .unwrap_or_else(|| display_of(resource)),
            _ => display_of(resource),
        },
        code_system: coding.as_ref().map(|c| c.0.clone()),
        code: coding.map(|c| c.1),
        status,
        ..Summary::default()
    };
    match rtype {
        "Observation" => {
            if let Some(q) = resource.get("valueQuantity") {
                out.value = number(q.get("value"));
                out.unit = str_at(q, &["unit"])
                    .or_else(|| str_at(q, &["code"]))
                    .map(str::to_owned);
            } else {
                out.value = str_at(resource, &["valueString"])
                    .or_else(|| str_at(resource, &["valueCodeableConcept", "text"]))
                    .or_else(|| {
                        str_at(
                            resource,
                            &["valueCodeableConcept", "coding", "0", "display"],
                        )
                    })
                    .map(str::to_owned);
            }
            if let Some(range) = resource.pointer("/referenceRange/0") {
                let low = number(range.pointer("/low/value"));
                let high = number(range.pointer("/high/value"));
                out.reference_range = match (low, high) {
                    (None, None) => str_at(range, &["text"]).map(str::to_owned),
                    (l, h) => Some(format!(
                        "{}-{}",
                        l.unwrap_or_default(),
                        h.unwrap_or_default()
                    )),
                };
            }
        }
        "MedicationRequest" => {
            out.value = str_at(resource, &["dosageInstruction", "0", "text"]).map(str::to_owned)
        }
        "MedicationStatement" => {
            out.value = str_at(resource, &["dosage", "0", "text"]).map(str::to_owned)
        }
        "AllergyIntolerance" => {
            out.value = str_at(resource, &["reaction", "0", "manifestation", "0", "text"])
                .or_else(|| {
                    str_at(
                        resource,
                        &[
                            "reaction",
                            "0",
                            "manifestation",
                            "0",
                            "coding",
                            "0",
                            "display",
                        ],
                    )
                })
                .map(str::to_owned)
        }
        "Immunization" => {
            out.value = number(resource.pointer("/protocolApplied/0/doseNumberPositiveInt"))
                .map(|n| format!("dose {n}"))
                .or_else(|| str_at(resource, &["lotNumber"]).map(|l| format!("lot {l}")))
        }
        "Encounter" => {
            out.value = str_at(resource, &["class", "code"]).map(str::to_owned);
        }
        _ => {}
    }
    out.facility = match rtype {
        "Encounter" => str_at(resource, &["serviceProvider", "display"])
            .or_else(|| str_at(resource, &["location", "0", "location", "display"])),
        "Immunization" | "Procedure" => str_at(resource, &["performer", "0", "actor", "display"]),
        "Observation" | "DiagnosticReport" => str_at(resource, &["performer", "0", "display"]),
        "MedicationRequest" => str_at(resource, &["requester", "display"]),
        "ServiceRequest" => str_at(resource, &["performer", "0", "display"]),
        "Appointment" => resource
            .get("participant")
            .and_then(Value::as_array)
            .and_then(|ps| {
                ps.iter().find_map(|p| {
                    let about_patient = str_at(p, &["actor", "reference"])
                        .is_some_and(|r| r.starts_with("Patient/"));
                    str_at(p, &["actor", "display"]).filter(|_| !about_patient)
                })
            }),
        "Coverage" => str_at(resource, &["payor", "0", "display"]),
        _ => None,
    }
    .map(str::to_owned);
    out
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
