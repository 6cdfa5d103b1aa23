//! A verified DCC as FHIR R4: a `collection` Bundle of the Patient and one record (an
//! Immunization, a test Observation, or a recovery Condition), coded as the certificate codes it
//! (SNOMED CT, ATC, the EU product register, LOINC), with the certificate identifier (UVCI) as
//! the record's identifier. Ids come from the UVCI, so the same certificate imported twice
//! names the same records.

use ring::digest;
use serde_json::{json, Value};

use super::{CertificateKind, VerifiedDcc};

const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const ATC: &str = "http://www.whocc.no/atc";
const EU_PRODUCTS: &str = "https://ec.europa.eu/health/documents/community-register/html/";
const UVCI: &str = "https://id.uvci.eu";

/// Names of the vaccines most certificates carry (the EU register's product numbers).
const PRODUCTS: &[(&str, &str)] = &[
    ("EU/1/20/1528", "Comirnaty (Pfizer-BioNTech)"),
    ("EU/1/20/1507", "Spikevax (Moderna)"),
    ("EU/1/21/1529", "Vaxzevria (AstraZeneca)"),
    ("EU/1/20/1525", "Jcovden (Janssen)"),
    ("EU/1/21/1618", "Nuvaxovid (Novavax)"),
    ("EU/1/21/1624", "COVID-19 Vaccine Valneva"),
    ("EU/1/22/1724", "VidPrevtyn Beta (Sanofi)"),
    ("EU/1/21/1580", "Bimervax (HIPRA)"),
    ("BBIBP-CorV", "BBIBP-CorV (Sinopharm)"),
    ("CoronaVac", "CoronaVac (Sinovac)"),
    ("Sputnik-V", "Sputnik V"),
    ("Covishield", "Covishield (Serum Institute of India)"),
    ("Covaxin", "Covaxin (Bharat Biotech)"),
    ("Hayat-Vax", "Hayat-Vax"),
    ("Abdala", "Abdala"),
];

/// The test types' codes (the DCC uses LOINC parts; the records use the LOINC test codes).
/// A type outside the DCC's value set is named as it came, never as the strongest kind.
fn test_code(tt: &str) -> Option<(&'static str, &'static str)> {
    match tt {
        "LP217198-3" => Some(("94558-4", "SARS-CoV-2 rapid antigen test")),
        "LP6464-4" => Some(("94500-6", "SARS-CoV-2 nucleic acid test")),
        _ => None,
    }
}

fn result_text(tr: &str) -> &'static str {
    match tr {
        "260373001" => "Detected",
        "260415000" => "Not detected",
        _ => "Unknown",
    }
}

/// A FHIR id (at most 64 of `A-Za-z0-9-.`) from any text: `dcc-` and a hash.
fn id_from(text: &str) -> String {
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    let hex: String = hash.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("dcc-{hex}")
}

fn text_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A certificate's date or date-time as FHIR takes it: a full date-time with its zone as it is
/// (a space before the time made a `T`); one without seconds or zone (`2021-05-01 10:00`,
/// which FHIR refuses) as its date; a date, a year-month or a year as it is.
fn fhir_date_time(v: &Value, key: &str) -> String {
    let text = text_of(v, key).replacen(' ', "T", 1);
    let Some((date, time)) = text.split_once('T') else {
        return text;
    };
    let zoned = time.ends_with('Z') || time.rfind(['+', '-']).is_some_and(|i| i >= 8);
    if zoned && time.len() >= 9 && time.as_bytes().get(5) == Some(&b':') {
        text
    } else {
        date.to_owned()
    }
}

/// A certificate's date of birth as FHIR's `date`: its date part (schema 1.0 allowed a time).
fn fhir_date(v: &Value, key: &str) -> String {
    let text = text_of(v, key);
    text.split(['T', ' ']).next().unwrap_or_default().to_owned()
}

/// The certificate's person as a FHIR Patient.
fn patient(cert: &Value, id: &str) -> Value {
    let nam = &cert["nam"];
    let family = [text_of(nam, "fn"), text_of(nam, "fnt")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let given = [text_of(nam, "gn"), text_of(nam, "gnt")]
        .into_iter()
        .find(|s| !s.is_empty());
    let mut name = json!({ "family": family });
    if let Some(given) = given {
        name["given"] = json!([given]);
    }
    let mut p = json!({ "resourceType": "Patient", "id": id, "name": [name] });
    let dob = fhir_date(cert, "dob");
    if !dob.is_empty() {
        p["birthDate"] = Value::String(dob);
    }
    p
}

/// The certificate as a FHIR `collection` Bundle: its Patient first, then a record for each of
/// its entries (one from schema 1.3; earlier issuers listed a series of doses).
pub fn bundle(dcc: &VerifiedDcc) -> Value {
    let cert = &dcc.certificate;
    let nam = &cert["nam"];
    let patient_id = id_from(&format!(
        "{}|{}|{}",
        text_of(nam, "fnt"),
        text_of(nam, "gnt"),
        text_of(cert, "dob")
    ));
    let mut entries = vec![json!({ "resource": patient(cert, &patient_id) })];
    let items = cert[dcc.kind.key()].as_array().cloned().unwrap_or_default();
    for (index, item) in items.iter().enumerate() {
        let seed = match index {
            0 => text_of(item, "ci"),
            n => format!("{}#{n}", text_of(item, "ci")),
        };
        entries.push(json!({ "resource": record(dcc.kind, item, &patient_id, &id_from(&seed)) }));
    }
    json!({ "resourceType": "Bundle", "type": "collection", "entry": entries })
}

fn record(kind: CertificateKind, entry: &Value, patient_id: &str, record_id: &str) -> Value {
    let ci = text_of(entry, "ci");
    let subject = json!({ "reference": format!("Patient/{patient_id}") });
    let identifier = json!([{ "system": UVCI, "value": ci }]);
    let country = text_of(entry, "co");
    let issuer = text_of(entry, "is");
    let disease = json!({ "coding": [{ "system": SNOMED, "code": text_of(entry, "tg") }] });
    match kind {
        CertificateKind::Vaccination => {
            let mp = text_of(entry, "mp");
            let vp = text_of(entry, "vp");
            let name = PRODUCTS
                .iter()
                .find(|(code, _)| *code == mp)
                .map(|(_, name)| (*name).to_owned())
                .unwrap_or_else(|| mp.clone());
            let vp_system = if vp.starts_with('J') { ATC } else { SNOMED };
            let mut protocol = json!({
                "targetDisease": [disease],
                "authority": { "display": issuer },
            });
            // FHIR's positiveInt starts at 1: a dose numbered 0 says nothing to keep.
            let positive = |key| {
                entry
                    .get(key)
                    .and_then(super::schema::count)
                    .filter(|n| *n >= 1)
            };
            if let Some(dn) = positive("dn") {
                protocol["doseNumberPositiveInt"] = json!(dn);
            }
            if let Some(sd) = positive("sd") {
                protocol["seriesDosesPositiveInt"] = json!(sd);
            }
            json!({
                "resourceType": "Immunization",
                "id": record_id,
                "identifier": identifier,
                "status": "completed",
                "vaccineCode": {
                    "coding": [
                        { "system": EU_PRODUCTS, "code": mp, "display": name },
                        { "system": vp_system, "code": vp }
                    ],
                    "text": name
                },
                "patient": subject,
                "occurrenceDateTime": fhir_date_time(entry, "dt"),
                "manufacturer": { "display": text_of(entry, "ma") },
                "location": { "display": format!("Country: {country}") },
                "protocolApplied": [protocol]
            })
        }
        CertificateKind::Test => {
            let tt = text_of(entry, "tt");
            let (coding, title) = match test_code(&tt) {
                Some((loinc, title)) => (
                    json!([
                        { "system": LOINC, "code": loinc, "display": title },
                        { "system": LOINC, "code": tt }
                    ]),
                    title.to_owned(),
                ),
                None => (
                    json!([{ "system": LOINC, "code": tt }]),
                    format!("SARS-CoV-2 test of an unrecognised type ({tt})"),
                ),
            };
            let tr = text_of(entry, "tr");
            let performer = [text_of(entry, "tc"), issuer.clone()]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            let mut o = json!({
                "resourceType": "Observation",
                "id": record_id,
                "identifier": identifier,
                "status": "final",
                "category": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory"
                }] }],
                "code": { "coding": coding, "text": title },
                "subject": subject,
                "effectiveDateTime": fhir_date_time(entry, "sc"),
                "valueCodeableConcept": {
                    "coding": [{ "system": SNOMED, "code": tr }],
                    "text": result_text(&tr)
                },
                "performer": [{ "display": performer }],
                "note": [{ "text": format!("Tested in {country}") }]
            });
            let device = [text_of(entry, "ma"), text_of(entry, "nm")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if !device.is_empty() {
                o["method"] = json!({ "text": device });
            }
            o
        }
        CertificateKind::Recovery => json!({
            "resourceType": "Condition",
            "id": record_id,
            "identifier": identifier,
            "clinicalStatus": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "resolved"
            }] },
            "code": {
                "coding": [{ "system": SNOMED, "code": text_of(entry, "tg") }],
                "text": "COVID-19 (recovered)"
            },
            "subject": subject,
            "onsetDateTime": fhir_date_time(entry, "fr"),
            "recordedDate": fhir_date_time(entry, "df"),
            "note": [{ "text": format!(
                "Certificate of recovery issued by {issuer} ({country}), valid {} to {}",
                text_of(entry, "df"), text_of(entry, "du")
            ) }]
        }),
    }
}
