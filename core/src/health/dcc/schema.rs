//! The DCC schema, by the version a certificate declares (`ver`), as issuers actually wrote
//! it. The three generations of the published JSON schema (1.0.x; 1.1 and 1.2; 1.3) differ in
//! the date of birth they allow; certificates in the wild (and the official test data, which
//! this module agrees with case by case) take some liberties the schema text does not, and
//! some checks the schema leaves to value sets are applied here. The rules, and why:
//!
//! - entries of exactly one kind, `v`, `t` or `r` (a `null` kind is absent), and from 1.3
//!   exactly one entry (earlier issuers listed a series of doses in one certificate);
//! - the date of birth is `YYYY`, `YYYY-MM` or `YYYY-MM-DD` in 1900-2099 for every version
//!   (1.0 issuers already wrote partial dates, and 1.0's unanchored pattern let a time follow),
//!   empty only from 1.3, and never after the certificate was issued;
//! - transliterated names are ICAO 9303 (`A-Z` and `<`); only `fnt` is required (DCC 1.3
//!   `person_name`), but a forename's transliteration, when written, is not empty (the
//!   official test data refuses one);
//! - dates start with a real `YYYY-MM-DD` (issuers appended times; the schema's `format` is an
//!   annotation, not an assertion);
//! - a country is empty (unknown) or an ISO 3166 code ([`super::valuesets`]);
//! - dose numbers are whole and not negative (0 occurs in issued certificates; a whole float
//!   such as `1.0` is whole, as JSON Schema reads `integer`);
//! - names, issuers and UVCIs are at most 80 characters (1.3's limit, which real UVCIs needed
//!   earlier); a test centre or test name at most 256 (issuers wrote long addresses).
//!
//! Written out as code rather than run through a JSON Schema engine: the schema is small and
//! fixed (issuance ended in 2023), and the library stays small.

use serde_json::{Map, Value};

use super::valuesets::COUNTRIES;
use super::DccError;

/// The schema generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Generation {
    /// 1.0.x: a full date of birth (possibly followed by a time).
    V1_0,
    /// 1.1.x and 1.2.x: a date of birth may be a year or a year and month.
    V1_2,
    /// 1.3.x: a date of birth may be empty; the test centre (`tc`) is optional.
    V1_3,
}

fn fail(detail: impl Into<String>) -> DccError {
    DccError::Schema {
        detail: detail.into(),
    }
}

/// Checks a certificate (`ver`, `nam`, `dob`, and `v`, `t` or `r`) against the schema of the
/// version it declares; `issued_at` (seconds since the epoch), when known, bounds the date of
/// birth.
pub fn check(cert: &Value, issued_at: Option<i64>) -> Result<(), DccError> {
    let cert = cert.as_object().ok_or_else(|| fail("not an object"))?;
    let ver = string(cert, "ver", "")?.ok_or_else(|| fail("no ver"))?;
    let generation = generation(ver)?;
    let max_len = MAX_TEXT;
    let nam = cert
        .get("nam")
        .ok_or_else(|| fail("no nam"))?
        .as_object()
        .ok_or_else(|| fail("nam is not an object"))?;
    for field in ["fn", "gn"] {
        bounded(nam, field, "nam.", max_len)?;
    }
    if nam.get("fnt").is_none() {
        return Err(fail("nam has no fnt"));
    }
    for field in ["fnt", "gnt"] {
        if let Some(s) = bounded(nam, field, "nam.", max_len)? {
            if !s.bytes().all(|b| b.is_ascii_uppercase() || b == b'<') {
                return Err(fail(format!("nam.{field} is not ICAO 9303 (A-Z and <)")));
            }
        }
    }
    // Only `fnt` is required (DCC 1.3 `person_name`): a given name with no transliteration
    // at all is valid. One whose transliteration is given empty is not (the official test
    // data expects it refused).
    let given = string(nam, "gn", "nam.")?.unwrap_or_default();
    if !given.trim().is_empty() && string(nam, "gnt", "nam.")? == Some("") {
        return Err(fail("nam.gn has an empty transliteration (gnt)"));
    }
    let dob = string(cert, "dob", "")?.ok_or_else(|| fail("no dob"))?;
    if !date_of_birth(dob, generation) {
        return Err(fail(format!("dob {dob:?} is not allowed by schema {ver}")));
    }
    // The date of birth is a local calendar date and `iat` an instant: compared with the issue
    // day where it is latest (UTC+14), so a baby born and certified the same morning east of
    // Greenwich is not born "after" the UTC day of issue.
    let latest_local = issued_at.map(|t| t.saturating_add(14 * 3600));
    if let Some(issued) = latest_local.and_then(|t| chrono::DateTime::from_timestamp(t, 0)) {
        // Compared as text: a partial date is before the issue day if its prefix is.
        let issued_day = issued.format("%Y-%m-%d").to_string();
        let dob_day = dob.get(..10.min(dob.len())).unwrap_or_default();
        if dob_day > &issued_day[..dob_day.len().min(10)] {
            return Err(fail(format!(
                "born ({dob}) after the certificate was issued"
            )));
        }
    }
    let entries: Vec<&str> = ["v", "t", "r"]
        .into_iter()
        .filter(|k| cert.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if entries.len() != 1 {
        return Err(fail("exactly one of v, t, r is required"));
    }
    for key in entries {
        let list = cert[key]
            .as_array()
            .ok_or_else(|| fail(format!("{key} is not an array")))?;
        if list.is_empty() || (generation == Generation::V1_3 && list.len() > 1) {
            return Err(fail(format!("{key} must hold one entry")));
        }
        for item in list {
            let item = item
                .as_object()
                .ok_or_else(|| fail(format!("{key} entry is not an object")))?;
            entry(key, item, generation, max_len)?;
        }
    }
    Ok(())
}

fn generation(ver: &str) -> Result<Generation, DccError> {
    let parts: Vec<&str> = ver.splitn(3, |c: char| !c.is_ascii_digit()).collect();
    let numbers: Option<Vec<u32>> = match parts[..] {
        [a, b, c] if !a.is_empty() && !b.is_empty() && !c.is_empty() => {
            [a, b, c].iter().map(|p| p.parse().ok()).collect()
        }
        _ => None,
    };
    match numbers.as_deref() {
        Some([1, 0, _]) => Ok(Generation::V1_0),
        Some([1, 1 | 2, _]) => Ok(Generation::V1_2),
        Some([1, _, _]) => Ok(Generation::V1_3),
        _ => Err(fail(format!("unsupported schema version {ver:?}"))),
    }
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    prefix: &str,
) -> Result<Option<&'a str>, DccError> {
    match obj.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(fail(format!("{prefix}{field} is not a string"))),
    }
}

fn bounded<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    prefix: &str,
    max_len: usize,
) -> Result<Option<&'a str>, DccError> {
    let s = string(obj, field, prefix)?;
    if let Some(s) = s {
        if s.chars().count() > max_len {
            return Err(fail(format!("{prefix}{field} is longer than {max_len}")));
        }
    }
    Ok(s)
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn date_of_birth(dob: &str, generation: Generation) -> bool {
    if dob.is_empty() {
        return generation == Generation::V1_3;
    }
    let dob = match (generation, dob.split_once('T')) {
        // 1.0's pattern was unanchored: a full date followed by a time passed it.
        (Generation::V1_0, Some((day, _))) if full_date(day) => day,
        _ => dob,
    };
    let parts: Vec<&str> = dob.split('-').collect();
    parts.len() <= 3
        && parts[0].len() == 4
        && digits(parts[0])
        && (parts[0].starts_with("19") || parts[0].starts_with("20"))
        && parts[1..].iter().all(|p| p.len() == 2 && digits(p))
}

/// RFC 3339 `full-date`: `YYYY-MM-DD`, a real day.
fn full_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// A date, or a date and time: it starts with a real `YYYY-MM-DD`.
/// A count (a dose number) as JSON Schema reads `integer`: any number with no fraction, so a
/// CBOR float 1.0 counts as 1.
pub(super) fn count(n: &Value) -> Option<u64> {
    n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(f))
            .map(|f| f as u64)
    })
}

fn starts_with_date(s: &str) -> bool {
    s.get(..10).is_some_and(full_date) && (s.len() == 10 || s[10..].starts_with(['T', ' ']))
}

/// The longest name, issuer or UVCI accepted.
const MAX_TEXT: usize = 80;
/// The longest test centre or test name accepted.
const MAX_PLACE: usize = 256;

fn entry(
    key: &str,
    item: &Map<String, Value>,
    generation: Generation,
    max_len: usize,
) -> Result<(), DccError> {
    let prefix = format!("{key}.");
    let required: &[&str] = match key {
        "v" => &["tg", "vp", "mp", "ma", "dn", "sd", "dt", "co", "is", "ci"],
        "t" if generation == Generation::V1_3 => &["tg", "tt", "sc", "tr", "co", "is", "ci"],
        "t" => &["tg", "tt", "sc", "tr", "tc", "co", "is", "ci"],
        _ => &["tg", "fr", "co", "is", "df", "du", "ci"],
    };
    if let Some(missing) = required.iter().find(|f| !item.contains_key(**f)) {
        return Err(fail(format!("{prefix}{missing} is required")));
    }
    for field in ["tg", "vp", "mp", "ma", "tt", "tr"] {
        string(item, field, &prefix)?;
    }
    for field in ["is", "ci"] {
        bounded(item, field, &prefix, max_len)?;
    }
    for field in ["tc", "nm"] {
        bounded(item, field, &prefix, MAX_PLACE)?;
    }
    if let Some(co) = string(item, "co", &prefix)? {
        if !co.is_empty() && !COUNTRIES.contains(&co) {
            return Err(fail(format!("{prefix}co {co:?} is not a country")));
        }
    }
    for field in ["dn", "sd"] {
        if let Some(n) = item.get(field) {
            if count(n).is_none_or(|n| n > 99) {
                return Err(fail(format!("{prefix}{field} is not a dose number")));
            }
        }
    }
    for field in ["dt", "fr", "df", "du", "sc", "dr"] {
        if let Some(d) = string(item, field, &prefix)? {
            if !starts_with_date(d) {
                return Err(fail(format!("{prefix}{field} {d:?} is not a date")));
            }
        }
    }
    Ok(())
}
