//! References inside a resource: collected (every form, or only `Type/id`), rewritten, and
//! told apart (relative `Type/id` or not).

use serde_json::Value;

use super::is_valid_id;

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

/// A `Type/id` reference (not contained, not a URL or URN).
pub fn is_relative(reference: &str) -> bool {
    !reference.starts_with('#')
        && !reference.contains(':')
        && reference.split_once('/').is_some_and(|(t, id)| {
            is_valid_id(id.split("/_history/").next().unwrap_or(id)) && !t.is_empty()
        })
}
