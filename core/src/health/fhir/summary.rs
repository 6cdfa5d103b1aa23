//! Reading a record for lists: its [`Summary`] (title, code, status, value, facility) and a
//! short human label.

use serde_json::Value;

use super::{patient_name, resource_type, str_at};

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
