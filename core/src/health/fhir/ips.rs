//! Mapping the book to the International Patient Summary: the IPS sections and where a
//! record belongs, the narrative, the markers of empty required sections, and the `document`
//! Bundle with its Composition and name-based entry URLs.

use std::collections::{BTreeMap, HashMap};

use ring::digest;
use serde_json::{json, Map, Value};

use super::references::{is_relative, references};
use super::summary::display_of;
use super::{
    clinical_date, key_of, patient_name, resource_type, str_at, IPS_ABSENT_UNKNOWN, LOINC,
};

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
