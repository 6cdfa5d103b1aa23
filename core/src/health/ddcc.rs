//! The WHO's Digital Documentation of COVID-19 Certificates (DDCC): its core data set for
//! vaccination status (DDCC:VS), mapped to FHIR as the WHO's implementation guide maps it
//! (Patient, Immunization, ImmunizationRecommendation) and read back from any FHIR bundle,
//! including the WHO's own examples as they are written (see [`from_fhir`]).

use serde_json::{json, Map, Value};

use super::fhir::{self, FhirError};

/// The extension URLs of the guide; older examples use a different base, so they are matched by
/// their last path segment.
const EXTENSION_BASE: &str = "https://smart.who.int/ddcc/StructureDefinition/";

/// A code as the data set carries it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Coding {
    /// The code system (may be empty when only a display is given).
    pub system: String,
    /// The code (may be empty when only a display is given).
    pub code: String,
    /// The text shown for it.
    pub display: Option<String>,
}

/// One vaccination of the DDCC:VS core data set, with the person it is about.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Vaccination {
    /// The person's full name.
    pub name: String,
    /// Date of birth (FHIR date: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// The person's identifier.
    pub identifier: Option<String>,
    /// Sex (`male`, `female`, `other`, `unknown`).
    pub sex: Option<String>,
    /// The vaccine or prophylaxis.
    pub vaccine: Option<Coding>,
    /// The brand.
    pub brand: Option<Coding>,
    /// The manufacturer.
    pub manufacturer: Option<Coding>,
    /// The market authorization holder.
    pub ma_holder: Option<Coding>,
    /// The lot number.
    pub lot: Option<String>,
    /// When it was given (FHIR dateTime); the data set requires it, but some bundles lack it.
    pub date: Option<String>,
    /// From when it counts.
    pub valid_from: Option<String>,
    /// The dose number.
    pub dose: Option<u32>,
    /// The total doses of the series.
    pub total_doses: Option<u32>,
    /// The country of vaccination.
    pub country: Option<Coding>,
    /// The administering centre.
    pub centre: Option<String>,
    /// The health worker's identifier.
    pub practitioner: Option<String>,
    /// The disease or agent targeted.
    pub disease: Option<Coding>,
    /// When the next dose is due.
    pub next_dose: Option<String>,
    /// The certificate's issuer (the public health authority).
    pub issuer: Option<String>,
    /// The health certificate identifier (HCID).
    pub certificate_id: Option<String>,
}

fn coding_json(c: &Coding) -> Value {
    let mut v = Map::new();
    if !c.system.is_empty() {
        v.insert("system".into(), json!(c.system));
    }
    if !c.code.is_empty() {
        v.insert("code".into(), json!(c.code));
    }
    if let Some(d) = &c.display {
        v.insert("display".into(), json!(d));
    }
    Value::Object(v)
}

fn coding_of(v: &Value) -> Option<Coding> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let c = Coding {
        system: text("system").unwrap_or_default(),
        code: text("code").unwrap_or_default(),
        display: text("display"),
    };
    (!c.code.is_empty() || c.display.is_some()).then_some(c)
}

fn id_from(seed: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    let hex: String = hash.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("ddcc-{hex}")
}

/// The vaccinations as a FHIR `collection` Bundle, as the guide maps the data set: a Patient
/// per person (by name, date of birth and identifier), an Immunization per vaccination, and an
/// ImmunizationRecommendation for a next dose.
pub fn to_fhir(vaccinations: &[Vaccination]) -> Value {
    let mut entries: Vec<Value> = Vec::new();
    let mut patients: Vec<String> = Vec::new();
    for (n, v) in vaccinations.iter().enumerate() {
        let patient_id = id_from(&format!(
            "{}|{}|{}",
            v.name,
            v.birth_date.as_deref().unwrap_or_default(),
            v.identifier.as_deref().unwrap_or_default()
        ));
        if !patients.contains(&patient_id) {
            patients.push(patient_id.clone());
            let mut p =
                json!({"resourceType": "Patient", "id": patient_id, "name": [{"text": v.name}]});
            if let Some(b) = &v.birth_date {
                p["birthDate"] = json!(b);
            }
            if let Some(i) = &v.identifier {
                p["identifier"] = json!([{ "value": i }]);
            }
            if let Some(s) = &v.sex {
                p["gender"] = json!(s);
            }
            entries.push(json!({ "resource": p }));
        }
        let immunization_id = id_from(&format!(
            "{patient_id}|{}|{}|{n}",
            v.date.as_deref().unwrap_or_default(),
            v.certificate_id.as_deref().unwrap_or_default()
        ));
        let mut extensions = Vec::new();
        let mut extension = |name: &str, value: Value| {
            extensions.push(json!({ "url": format!("{EXTENSION_BASE}{name}") }));
            if let Some(Value::Object(last)) = extensions.last_mut() {
                if let Value::Object(fields) = value {
                    last.extend(fields);
                }
            }
        };
        if let Some(b) = &v.brand {
            extension("DDCCEventBrand", json!({ "valueCoding": coding_json(b) }));
        }
        if let Some(m) = &v.ma_holder {
            extension(
                "DDCCVaccineMarketAuthorization",
                json!({ "valueCoding": coding_json(m) }),
            );
        }
        if let Some(c) = &v.country {
            extension(
                "DDCCCountryOfEvent",
                json!({ "valueCoding": coding_json(c) }),
            );
        }
        if let Some(d) = &v.valid_from {
            extension("DDCCVaccineValidFrom", json!({ "valueDate": d }));
        }
        let mut imm = json!({
            "resourceType": "Immunization",
            "id": immunization_id,
            "status": "completed",
            "patient": { "reference": format!("Patient/{patient_id}") },
            "vaccineCode": v.vaccine.as_ref().map(|c| json!({ "coding": [coding_json(c)] }))
                .unwrap_or_else(|| json!({ "text": "unknown" })),
        });
        match &v.date {
            Some(d) => imm["occurrenceDateTime"] = json!(d),
            None => imm["occurrenceString"] = json!("unknown"),
        }
        if !extensions.is_empty() {
            imm["extension"] = Value::Array(extensions);
        }
        if let Some(c) = &v.certificate_id {
            imm["identifier"] = json!([{ "value": c }]);
        }
        if let Some(m) = &v.manufacturer {
            imm["manufacturer"] = json!({ "identifier": { "system": m.system, "value": m.code },
                "display": m.display.clone().unwrap_or_else(|| m.code.clone()) });
        }
        if let Some(l) = &v.lot {
            imm["lotNumber"] = json!(l);
        }
        if let Some(c) = &v.centre {
            imm["location"] = json!({ "display": c });
        }
        if let Some(p) = &v.practitioner {
            imm["performer"] = json!([{ "actor": { "identifier": { "value": p } } }]);
        }
        let mut protocol = Map::new();
        if let Some(i) = &v.issuer {
            protocol.insert("authority".into(), json!({ "identifier": { "value": i } }));
        }
        if let Some(d) = &v.disease {
            protocol.insert(
                "targetDisease".into(),
                json!([{ "coding": [coding_json(d)] }]),
            );
        }
        if let Some(d) = v.dose {
            protocol.insert("doseNumberPositiveInt".into(), json!(d));
        }
        if let Some(t) = v.total_doses {
            protocol.insert("seriesDosesPositiveInt".into(), json!(t));
        }
        if !protocol.is_empty() {
            imm["protocolApplied"] = json!([protocol]);
        }
        entries.push(json!({ "resource": imm }));
        if let Some(next) = &v.next_dose {
            entries.push(json!({ "resource": {
                "resourceType": "ImmunizationRecommendation",
                "id": id_from(&format!("{immunization_id}|next")),
                "patient": { "reference": format!("Patient/{patient_id}") },
                "date": v.date.as_deref().unwrap_or(next.as_str()),
                "recommendation": [{
                    "vaccineCode": imm["vaccineCode"].clone(),
                    "forecastStatus": { "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/immunization-recommendation-status",
                        "code": "due" }] },
                    "dateCriterion": [{
                        "code": { "coding": [{ "system": "http://loinc.org", "code": "30980-7" }] },
                        "value": next
                    }],
                    "supportingImmunization": [{ "reference": format!("Immunization/{immunization_id}") }]
                }]
            }}));
        }
    }
    json!({ "resourceType": "Bundle", "type": "collection", "entry": entries })
}

/// The extension of `resource` whose URL ends with `/name` (any base).
fn extension<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    resource.get("extension")?.as_array()?.iter().find(|e| {
        e.get("url")
            .and_then(Value::as_str)
            .is_some_and(|u| u.rsplit('/').next() == Some(name))
    })
}

/// The text a reference shows: its display, its identifier, or the name of the bundle's
/// resource it points to.
fn reference_text(r: &Value, by_key: &std::collections::HashMap<String, &Value>) -> Option<String> {
    if let Some(d) = r.get("display").and_then(Value::as_str) {
        return Some(d.to_owned());
    }
    if let Some(i) = r.pointer("/identifier/value").and_then(Value::as_str) {
        return Some(i.to_owned());
    }
    let target = by_key.get(r.get("reference")?.as_str()?)?;
    target
        .get("name")
        .and_then(|n| n.as_str().map(str::to_owned))
        .or_else(|| {
            target
                .pointer("/identifier/0/value")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// Reads every Immunization of a FHIR bundle as a DDCC:VS vaccination, with its person (the
/// Patient it references, else the bundle's only Patient). The bundle is read as the health
/// book imports it: ids that are not FHIR ids, references written as `{"id": ...}` and missing
/// fullUrls are taken as meant.
pub fn from_fhir(bundle_json: &str) -> Result<Vec<Vaccination>, FhirError> {
    let bundle = fhir::parse_bundle(bundle_json)?;
    let read = fhir::bundle_entries(bundle, "ddcc")?;
    let resources: Vec<&Value> = read.resources.iter().map(|(_, r)| r).collect();
    let by_key: std::collections::HashMap<String, &Value> = resources
        .iter()
        .filter_map(|r| Some((fhir::key_of(r)?, *r)))
        .collect();
    let patients: Vec<&&Value> = resources
        .iter()
        .filter(|r| fhir::resource_type(r) == Some("Patient"))
        .collect();
    let text = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_owned);
    let recommendations: Vec<&Value> = resources
        .iter()
        .copied()
        .filter(|r| fhir::resource_type(r) == Some("ImmunizationRecommendation"))
        .collect();
    let mut out = Vec::new();
    for imm in resources
        .iter()
        .filter(|r| fhir::resource_type(r) == Some("Immunization"))
    {
        // The patient the dose names; the bundle's only patient only when it names none (one
        // it names but the bundle lacks, `Patient/…`, `urn:uuid:…` or a URL, is nobody's,
        // never another person's).
        let names_someone = ["/patient/reference", "/subject/reference"]
            .iter()
            .any(|at| imm.pointer(at).is_some());
        let patient = match fhir::person_of(imm) {
            Some(p) => by_key.get(&format!("Patient/{p}")).copied(),
            None if names_someone => None,
            None => match patients.as_slice() {
                [one] => Some(**one),
                _ => None,
            },
        };
        let name = patient.map(fhir::patient_name).unwrap_or_default();
        let protocol = imm.pointer("/protocolApplied/0");
        let number = |field: &str| {
            protocol
                .and_then(|p| p.get(field))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
        };
        let key = fhir::key_of(imm).unwrap_or_default();
        // The recommendation that names this dose; else, when it names no dose at all, the
        // person's (never another dose's: each dose of a series keeps its own next date).
        let supporting = |r: &Value| {
            r.pointer("/recommendation/0/supportingImmunization")
                .and_then(Value::as_array)
                .filter(|s| !s.is_empty())
                .cloned()
        };
        let next_dose = recommendations
            .iter()
            .find(|r| {
                supporting(r).is_some_and(|s| s.iter().any(|x| x["reference"] == key.as_str()))
            })
            .or_else(|| {
                recommendations
                    .iter()
                    .find(|r| supporting(r).is_none() && fhir::person_of(r) == fhir::person_of(imm))
            })
            .and_then(|r| text(r, "/recommendation/0/dateCriterion/0/value"));
        out.push(Vaccination {
            name,
            birth_date: patient.and_then(|p| text(p, "/birthDate")),
            identifier: patient.and_then(|p| text(p, "/identifier/0/value")),
            sex: patient.and_then(|p| text(p, "/gender")),
            vaccine: imm.pointer("/vaccineCode/coding/0").and_then(coding_of),
            brand: extension(imm, "DDCCEventBrand")
                .or_else(|| extension(imm, "DDCCVaccineBrand"))
                .and_then(|e| e.get("valueCoding"))
                .and_then(coding_of),
            manufacturer: imm.get("manufacturer").and_then(|m| {
                let display = reference_text(m, &by_key);
                let code = text(m, "/identifier/value").unwrap_or_default();
                (display.is_some() || !code.is_empty()).then(|| Coding {
                    system: text(m, "/identifier/system").unwrap_or_default(),
                    code,
                    display,
                })
            }),
            ma_holder: extension(imm, "DDCCVaccineMarketAuthorization")
                .and_then(|e| e.get("valueCoding"))
                .and_then(coding_of),
            lot: text(imm, "/lotNumber"),
            date: text(imm, "/occurrenceDateTime"),
            valid_from: extension(imm, "DDCCVaccineValidFrom")
                .and_then(|e| text(e, "/valueDate").or_else(|| text(e, "/valueDateTime"))),
            dose: number("doseNumberPositiveInt"),
            total_doses: number("seriesDosesPositiveInt"),
            country: extension(imm, "DDCCCountryOfEvent")
                .or_else(|| extension(imm, "DDCCCountryOfVaccination"))
                .and_then(|e| e.get("valueCoding"))
                .and_then(coding_of),
            centre: imm.get("location").and_then(|l| reference_text(l, &by_key)),
            practitioner: imm
                .pointer("/performer/0/actor")
                .and_then(|a| reference_text(a, &by_key)),
            disease: protocol
                .and_then(|p| p.pointer("/targetDisease/0/coding/0"))
                .and_then(coding_of),
            next_dose,
            issuer: protocol
                .and_then(|p| p.get("authority"))
                .and_then(|a| reference_text(a, &by_key)),
            certificate_id: text(imm, "/identifier/0/value"),
        });
    }
    Ok(out)
}
