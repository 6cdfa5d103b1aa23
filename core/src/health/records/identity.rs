//! Who and what a resource is about: matching Patients (the same person, or surely different
//! people), merging a matched Patient, stable ids from identity, and content fingerprints.

use serde_json::Value;

use crate::health::fhir;

/// A resource with what an import may change removed (its id, every reference, `meta`): two
/// resources with the same fingerprint say the same thing about the same kind of subject.
pub(super) fn fingerprint(resource: &Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("id");
                map.remove("meta");
                if map.get("reference").is_some_and(Value::is_string) {
                    map.insert("reference".into(), Value::Null);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut copy = resource.clone();
    strip(&mut copy);
    copy
}

fn normalized_name(patient: &Value) -> String {
    fhir::patient_name(patient)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn identifiers(patient: &Value) -> Vec<(String, String)> {
    patient
        .get("identifier")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|i| {
                    Some((
                        i.get("system")?.as_str()?.to_owned(),
                        i.get("value")?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The same person: a shared identifier, or the same name and date of birth.
pub(super) fn same_person(a: &Value, b: &Value) -> bool {
    let ids_b = identifiers(b);
    if identifiers(a).iter().any(|i| ids_b.contains(i)) {
        return true;
    }
    let birth = |p: &Value| {
        p.get("birthDate")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    birth(a).is_some() && birth(a) == birth(b) && {
        let name = normalized_name(a);
        !name.is_empty() && name == normalized_name(b)
    }
}

/// A name as a person reads it whatever the spelling: lower case, marks and `đ` folded,
/// spaces single ("Nguyen Van An" is "Nguyễn Văn An").
fn folded_name(patient: &Value) -> String {
    use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};
    fhir::patient_name(patient)
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            c => c,
        })
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `profile` holds the identity of `card` (a health card's Patient) and says nothing
/// against it: each of the card's identifiers and no other value of their systems, the name
/// it shows (its first) the card's whatever the accents, and the card's birth date (or a
/// fuller one: a passport may give only the year). A book's person merged with a card holds
/// it (the book's name first, spelled without accents, is still the card's); a profile with
/// the card's identifier but another name, birth date or identifier does not. The card must
/// name someone: an identifier, or a name and a birth date.
pub(super) fn holds_identity(card: &Value, profile: &Value) -> bool {
    let ids = identifiers(profile);
    let card_ids = identifiers(card);
    let ids_held = card_ids.iter().all(|i| ids.contains(i))
        && !ids
            .iter()
            .any(|(s, v)| card_ids.iter().any(|(cs, cv)| cs == s && cv != v));
    let card_name = folded_name(card);
    let name_held = card_name.is_empty() || card_name == folded_name(profile);
    let birth = |p: &Value| {
        p.get("birthDate")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let birth_held = match (birth(card), birth(profile)) {
        (None, _) => true,
        (Some(c), Some(p)) => p.starts_with(&c),
        (Some(_), None) => false,
    };
    let names_someone = !card_ids.is_empty() || (!card_name.is_empty() && birth(card).is_some());
    names_someone && ids_held && name_held && birth_held
}

/// Known facts that tell two Patients apart: different dates of birth, names or values of the
/// same identifier system.
pub(super) fn different_people(a: &Value, b: &Value) -> bool {
    let birth = |p: &Value| {
        p.get("birthDate")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if let (Some(x), Some(y)) = (birth(a), birth(b)) {
        if x != y {
            return true;
        }
    }
    let (na, nb) = (normalized_name(a), normalized_name(b));
    if !na.is_empty() && !nb.is_empty() && na != nb {
        return true;
    }
    let ids_b = identifiers(b);
    identifiers(a)
        .iter()
        .any(|(system, value)| ids_b.iter().any(|(s, v)| s == system && v != value))
}

/// `Type/id-suffix`, the id cut so that it stays a valid FHIR id (64 characters at most).
pub(super) fn suffixed(key: &str, suffix: &str) -> String {
    let (rtype, id) = key.split_once('/').unwrap_or(("", key));
    let keep = 64usize.saturating_sub(suffix.len() + 1).min(id.len());
    format!("{rtype}/{}-{suffix}", &id[..keep])
}

/// What identifies a Patient, as text (for a stable new id).
pub(super) fn identity_text(p: &Value) -> String {
    format!(
        "{}|{}|{:?}",
        normalized_name(p),
        p.get("birthDate").and_then(Value::as_str).unwrap_or(""),
        identifiers(p)
    )
}

/// Eight hex digits of SHA-256: short, stable, collision-unlikely within one person's book.
pub(super) fn short_hash(text: &str) -> String {
    crate::hex::encode(&ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()[..4])
}

/// Fills what `stored` lacks from `incoming`, adds the incoming entries of list fields
/// (identifiers, names, addresses, phones, ...) it does not have, and names the single-valued
/// facts on which the two disagree.
pub(super) fn merge_patient(stored: &Value, incoming: &Value) -> (Value, Vec<String>) {
    let mut merged = stored.clone();
    let mut conflicts = Vec::new();
    let (Some(m), Some(inc)) = (merged.as_object_mut(), incoming.as_object()) else {
        return (merged, conflicts);
    };
    let key = fhir::key_of(stored).unwrap_or_default();
    for (k, v) in inc {
        if matches!(k.as_str(), "id" | "meta" | "text") {
            continue;
        }
        match (m.get_mut(k), v) {
            (None, _) => {
                m.insert(k.clone(), v.clone());
            }
            (Some(Value::Array(have)), Value::Array(new)) => {
                for item in new {
                    if !have.contains(item) {
                        have.push(item.clone());
                    }
                }
            }
            (Some(have), _) if have != v => conflicts.push(format!(
                "{key} {k}: the book has {have}, the bundle {v}; kept the book's"
            )),
            _ => {}
        }
    }
    (merged, conflicts)
}
