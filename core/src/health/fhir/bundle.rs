//! Parsing: a FHIR Bundle read into resources that all have an id, entry by entry, with
//! references between entries rewritten to `Type/id` and stable ids for entries without one.

use std::collections::HashMap;

use ring::digest;
use serde_json::Value;

use super::references::{all_references, rewrite_references};
use super::{is_valid_id, key_of, resource_type, FhirError, MAX_BUNDLE_BYTES};

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
    /// Every liberty taken to read the bundle as it was written: an id that is not a FHIR id
    /// replaced, a reference written as `{"id": ...}` read as a reference. Nothing is changed
    /// silently.
    pub liberties: Vec<String>,
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
            Ok((mut resource, repaired)) => {
                let mut key = key_of(&resource).unwrap_or_default();
                if repaired.is_some() && taken.contains_key(&key) {
                    // The repaired id is another entry's: a generated one instead.
                    resource["id"] = Value::String(format!("{seed}-{index}"));
                    key = key_of(&resource).unwrap_or_default();
                }
                if let Some(old) = repaired {
                    let rtype = resource_type(&resource).unwrap_or_default();
                    out.liberties.push(format!(
                        "entry {index}: {rtype} id {old:?} is not a FHIR id: read as {key}"
                    ));
                    // References name it as `Type/old`, or (health-card style) `old` alone.
                    renames.insert(format!("{rtype}/{old}"), key.clone());
                    renames.entry(old).or_insert_with(|| key.clone());
                }
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
    let keys: std::collections::HashSet<String> = out
        .resources
        .iter()
        .filter_map(|(_, r)| key_of(r))
        .collect();
    for (index, resource) in &mut out.resources {
        for (field, written) in id_references(resource, &keys) {
            out.liberties.push(format!(
                "entry {index}: {field} written as {{\"id\": {written:?}}}: read as a reference"
            ));
        }
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

/// Fields that hold a reference to a patient when one is written as `{"id": "x"}`.
const PATIENT_FIELDS: &[&str] = &["subject", "patient", "beneficiary"];

/// Rewrites references written as `{"id": "Type/id"}` (anywhere) or `{"id": "id"}` (in a
/// patient field, naming a Patient of the bundle) as `{"reference": "Type/id"}`; returns each
/// `(field, id as written)`. An element's own `id` beside other content is left alone.
fn id_references(
    resource: &mut Value,
    keys: &std::collections::HashSet<String>,
) -> Vec<(String, String)> {
    fn walk(
        value: &mut Value,
        field: &str,
        keys: &std::collections::HashSet<String>,
        out: &mut Vec<(String, String)>,
    ) {
        match value {
            Value::Object(map) => {
                let only_id = map.contains_key("id")
                    && !map.contains_key("reference")
                    && map
                        .keys()
                        .all(|k| matches!(k.as_str(), "id" | "display" | "type"));
                if only_id {
                    if let Some(id) = map.get("id").and_then(Value::as_str).map(str::to_owned) {
                        let target = if id.contains('/') && keys.contains(&id) {
                            Some(id.clone())
                        } else if PATIENT_FIELDS.contains(&field)
                            && keys.contains(&format!("Patient/{id}"))
                        {
                            Some(format!("Patient/{id}"))
                        } else {
                            None
                        };
                        if let Some(target) = target {
                            map.remove("id");
                            map.insert("reference".into(), Value::String(target));
                            out.push((field.to_owned(), id));
                            return;
                        }
                    }
                }
                for (name, child) in map.iter_mut() {
                    walk(child, name, keys, out);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, field, keys, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Value::Object(map) = resource {
        for (name, child) in map.iter_mut() {
            // The resource's own id and meta are not references.
            if name != "id" && name != "meta" {
                walk(child, name, keys, &mut out);
            }
        }
    }
    out
}

/// An id made valid: characters FHIR ids do not allow become `-`, at most 64 kept.
fn repaired_id(id: &str) -> Option<String> {
    let fixed: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    is_valid_id(&fixed).then_some(fixed)
}

/// One entry's resource with its id (and the id as written, when it had to be repaired), or
/// why it cannot be read.
fn read_entry(entry: &Value, index: usize, seed: &str) -> Result<(Value, Option<String>), String> {
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
    let mut repaired = None;
    let id = match resource.get("id") {
        Some(Value::String(id)) if is_valid_id(id) => id.clone(),
        // An id FHIR does not allow (`resource:0`, spaces, too long) is repaired, not refused:
        // the record is kept and the liberty reported.
        Some(Value::String(id)) => {
            repaired = Some(id.clone());
            repaired_id(id).unwrap_or_else(|| format!("{seed}-{index}"))
        }
        Some(_) => return Err("id is not a string".into()),
        None => match full_url.and_then(|u| u.strip_prefix("urn:uuid:")) {
            Some(uuid) if is_valid_id(uuid) => uuid.to_owned(),
            _ => format!("{seed}-{index}"),
        },
    };
    resource["id"] = Value::String(id);
    Ok((resource, repaired))
}

fn hex_prefix(data: &[u8], bytes: usize) -> String {
    crate::hex::encode(&digest::digest(&digest::SHA256, data).as_ref()[..bytes])
}
