//! The health book over the vault: FHIR resources of a citizen and the dependants they manage,
//! encrypted, indexed (blind) by person and resource type, with their provenance. An import
//! writes in one transaction and accounts for every entry (stored, shared, skipped or refused);
//! see docs/health.md.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use super::fhir::{self, FhirError, Kind};
use super::schedule::{self, DoseStatus, GivenDose, NaiveDate};
use super::shc::{self, ShcError, TrustStore, VerifiedCard};
use crate::changes::outbox;
use crate::changes::{Collection, CollectionSpec, ConflictPolicy};
use crate::vault::{Document, Vault, VaultError, VaultTx};

/// Errors of the health book. Nothing is stored when any is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The bundle or resource is not acceptable FHIR.
    #[error(transparent)]
    Fhir(#[from] FhirError),
    /// The health card failed verification.
    #[error(transparent)]
    Card(#[from] ShcError),
    /// A field was rejected.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// The person or record does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was missing.
        what: String,
    },
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

fn invalid(field: &str, reason: impl Into<String>) -> HealthError {
    HealthError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Entered on this device.
    Entered,
    /// Imported from a FHIR bundle (not signed).
    FhirImport,
    /// Imported from a SMART Health Card whose signature verified.
    HealthCard,
    /// Published by a facility through the backend.
    Server,
    /// Entered or imported on another device of the citizen, and not verified here: a claim,
    /// never shown as verified (a health card claim whose card does not verify lands here).
    OtherDevice,
}

/// Where a record came from and, for a health card, who signed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The source.
    pub source: Source,
    /// The card's issuer (`iss`).
    pub issuer: Option<String>,
    /// The card's signing key id.
    pub kid: Option<String>,
    /// When the card was verified (unix seconds).
    pub verified_at: Option<i64>,
    /// The signed card itself (compact JWS), for a health-card record: the evidence another
    /// device of the citizen re-verifies against its own trust store when it pulls the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Which entry of the card's bundle this record is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_entry: Option<u32>,
}

impl Provenance {
    /// Provenance without a signer.
    pub fn of(source: Source) -> Provenance {
        Provenance {
            source,
            issuer: None,
            kid: None,
            verified_at: None,
            card: None,
            card_entry: None,
        }
    }
}

/// A resource with what an import may change removed (its id, every reference, `meta`): two
/// resources with the same fingerprint say the same thing about the same kind of subject.
fn fingerprint(resource: &Value) -> Value {
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

/// The provenance a pulled, device-pushed record earns here: a health-card claim is kept only
/// if its card verifies against `trust` and the record is the card's entry it says it is; our
/// own record echoed back keeps its provenance; anything else is another device's word.
fn earned_provenance(
    tx: &VaultTx<'_>,
    claimed: Option<Provenance>,
    resource: &Value,
    local: Option<&HealthRecord>,
    trust: Option<&TrustStore>,
    now: u64,
) -> Result<Provenance, HealthError> {
    if let (Some(claim), Some(trust)) = (&claimed, trust) {
        if let (Source::HealthCard, Some(jws), Some(entry)) =
            (claim.source, &claim.card, claim.card_entry)
        {
            // Verified as of the time the other device says it verified, never later than now.
            let at = claim.verified_at.unwrap_or(now as i64).min(now as i64);
            if let Ok(card) = shc::verify(jws, trust, at) {
                let entries =
                    fhir::resources_of_bundle(card.fhir_bundle.clone(), jws).unwrap_or_default();
                let same_content = entries
                    .get(entry as usize)
                    .is_some_and(|e| fingerprint(e) == fingerprint(resource));
                // The record must also be about the card's patient: the fingerprint leaves
                // references out, so a genuine entry re-pointed at someone else fails here.
                let card_patient = entries
                    .iter()
                    .find(|e| fhir::resource_type(e) == Some("Patient"));
                let subject = if fhir::resource_type(resource) == Some("Patient") {
                    Some(resource.clone())
                } else {
                    let person = fhir::person_of(resource).unwrap_or_default();
                    tx.get_doc::<HealthRecord>(&format!("Patient/{person}"))?
                        .map(|p| p.resource)
                };
                let same_patient = match (card_patient, subject) {
                    (Some(c), Some(s)) => same_person(c, &s),
                    _ => false,
                };
                if same_content && same_patient {
                    return Ok(Provenance {
                        source: Source::HealthCard,
                        issuer: Some(card.issuer),
                        kid: Some(card.kid),
                        // Verified here as of the time the card was valid for the other device.
                        verified_at: Some(at),
                        card: Some(jws.clone()),
                        card_entry: Some(entry),
                    });
                }
            }
        }
    }
    Ok(match local {
        Some(mine) if mine.resource == *resource && mine.provenance.source != Source::Server => {
            mine.provenance.clone()
        }
        _ => Provenance::of(Source::OtherDevice),
    })
}

/// One stored record: a FHIR R4 resource, whole, with what the book indexes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthRecord {
    /// `Type/id`.
    pub key: String,
    /// The Patient id it is about (the Patient's own id for a Patient; empty for supporting
    /// resources such as an Organization).
    pub person: String,
    /// The resource type.
    pub resource_type: String,
    /// Its clinical date as written (see [`fhir::clinical_date`]).
    pub date: Option<String>,
    /// The resource.
    pub resource: Value,
    /// Where it came from.
    pub provenance: Provenance,
    /// When it was stored (unix seconds).
    pub updated_at: u64,
}

impl Document for HealthRecord {
    const COLLECTION: &'static str = "health.records";
    fn id(&self) -> String {
        self.key.clone()
    }
    fn index(&self) -> Vec<(String, String)> {
        vec![
            ("person".into(), self.person.clone()),
            ("type".into(), self.resource_type.clone()),
            (
                "person_type".into(),
                format!("{}\u{1f}{}", self.person, self.resource_type),
            ),
        ]
    }
}

impl HealthRecord {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        Kind::of(&self.resource_type)
    }

    /// Its summary for lists.
    pub fn summary(&self) -> fhir::Summary {
        fhir::summary(&self.resource)
    }

    fn day(&self) -> Option<String> {
        self.date.as_deref().and_then(fhir::day_of)
    }
}

/// What became of one entry of an imported bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Stored in a person's book.
    Stored,
    /// Stored as shared: a resource about no patient (an organisation, a practitioner, a
    /// medication) that records point to.
    Shared,
    /// Not stored, and nothing lost: an IPS *no information* marker.
    Skipped,
    /// Not stored, for the reason given.
    Refused,
}

/// One entry of an import, accounted for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryReport {
    /// Position in the bundle (0-based).
    pub index: usize,
    /// `Type/id` as stored (empty when the entry could not be read).
    pub key: String,
    /// What became of it.
    pub status: EntryStatus,
    /// The person it was filed under (for [`EntryStatus::Stored`]).
    pub person: String,
    /// Why it was skipped or refused.
    pub reason: String,
}

/// How an import treats an entry it cannot store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Refuse that entry alone, reported with its index and reason; the bundle is still
    /// refused whole when the entry is a Patient or other entries depend on it.
    #[default]
    Partial,
    /// Refuse the whole bundle.
    AllOrNothing,
}

/// What an import did, entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Records stored (new or replaced), shared ones included.
    pub stored: usize,
    /// Stored records per resource type.
    pub by_type: BTreeMap<String, usize>,
    /// The people (Patient ids) the bundle was about, after matching to people already in the
    /// book.
    pub people: Vec<String>,
    /// Entries not stored because they only mark an empty IPS section.
    pub skipped: usize,
    /// Entries refused (see [`ImportSummary::entries`] for why).
    pub refused: usize,
    /// Every entry, in bundle order.
    pub entries: Vec<EntryReport>,
    /// References of stored records that resolve to nothing in the book, as
    /// `Type/id -> reference`.
    pub unresolved: Vec<String>,
    /// Facts about a matched person on which the bundle and the book disagree, kept as the book
    /// had them (lists such as addresses and phones are merged instead).
    pub conflicts: Vec<String>,
}

/// A person's profile and health-insurance card, as the app edits it; stored as a FHIR Patient
/// (with the CCCD as an identifier) and a Coverage (the BHYT card).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Patient id; empty to create a new person.
    pub id: String,
    /// Full name as written.
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `male`, `female`, `other` or `unknown`.
    pub gender: String,
    /// Citizen ID (CCCD), 12 digits, or empty (children may have none).
    pub citizen_id: String,
    /// The health-insurance card, if any.
    pub insurance: Option<Insurance>,
}

/// A BHYT card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insurance {
    /// Card number.
    pub number: String,
    /// First valid day, `YYYY-MM-DD`.
    pub valid_from: String,
    /// Last valid day, `YYYY-MM-DD` (empty when open-ended).
    pub valid_to: String,
    /// The registered primary-care facility.
    pub facility: String,
}

/// The health book in a vault.
pub struct HealthBook<'a> {
    vault: &'a Vault,
}

fn random_id() -> Result<String, HealthError> {
    crate::hex::random(16).map_err(|_| {
        VaultError::Io {
            reason: "system random source failed".into(),
        }
        .into()
    })
}

fn normalized_name(patient: &Value) -> String {
    fhir::patient_name(patient)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn identifiers(patient: &Value) -> Vec<(String, String)> {
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
fn same_person(a: &Value, b: &Value) -> bool {
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

/// Known facts that tell two Patients apart: different dates of birth, names or values of the
/// same identifier system.
fn different_people(a: &Value, b: &Value) -> bool {
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
fn suffixed(key: &str, suffix: &str) -> String {
    let (rtype, id) = key.split_once('/').unwrap_or(("", key));
    let keep = 64usize.saturating_sub(suffix.len() + 1).min(id.len());
    format!("{rtype}/{}-{suffix}", &id[..keep])
}

/// What identifies a Patient, as text (for a stable new id).
fn identity_text(p: &Value) -> String {
    format!(
        "{}|{}|{:?}",
        normalized_name(p),
        p.get("birthDate").and_then(Value::as_str).unwrap_or(""),
        identifiers(p)
    )
}

/// Eight hex digits of SHA-256: short, stable, collision-unlikely within one person's book.
fn short_hash(text: &str) -> String {
    crate::hex::encode(&ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref()[..4])
}

/// Fills what `stored` lacks from `incoming`, adds the incoming entries of list fields
/// (identifiers, names, addresses, phones, ...) it does not have, and names the single-valued
/// facts on which the two disagree.
fn merge_patient(stored: &Value, incoming: &Value) -> (Value, Vec<String>) {
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

/// The person a record is filed under ("" for a shared resource), or why it cannot be.
fn place(
    r: &Value,
    rtype: &str,
    fallback: Option<&str>,
    chosen: bool,
    person_exists: &dyn Fn(&str) -> bool,
) -> Result<String, HealthError> {
    if rtype == "Patient" {
        return Ok(fhir::person_of(r).unwrap_or_default());
    }
    let names_someone = ["subject", "patient", "beneficiary"]
        .iter()
        .any(|f| r.get(f).is_some());
    match fhir::person_of(r) {
        Some(p) if person_exists(&p) => Ok(p),
        Some(p) => Err(invalid(
            "subject",
            format!("names Patient/{p}, which is neither in this bundle nor in the book"),
        )),
        None if SHARED_TYPES.contains(&rtype) && !names_someone => Ok(String::new()),
        None => match fallback {
            Some(p) if chosen || Kind::of(rtype) == Kind::Other => Ok(p.to_owned()),
            None if Kind::of(rtype) == Kind::Other && !names_someone => Ok(String::new()),
            _ => Err(invalid(
                "subject",
                format!("{rtype} names no patient: import it into a chosen person"),
            )),
        },
    }
}

/// Resource types about no patient: stored once, shared by the records that reference them.
const SHARED_TYPES: &[&str] = &[
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "Substance",
    "Device",
];

/// Checks the date a record is placed by and, for a record entered here, the reference to its
/// person (imported cards in the wild omit it; they are filed under the bundle's person).
fn validate(resource: &Value, require_subject: bool) -> Result<(), HealthError> {
    if let Some(date) = fhir::clinical_date(resource) {
        if fhir::day_of(&date).is_none() {
            return Err(invalid("date", format!("{date} is not a FHIR date")));
        }
    }
    let kind = fhir::resource_type(resource).map(Kind::of);
    if require_subject
        && !matches!(kind, Some(Kind::Patient | Kind::Other))
        && fhir::person_of(resource).is_none()
    {
        return Err(invalid(
            "subject",
            "a clinical record must reference its Patient",
        ));
    }
    Ok(())
}

impl<'a> HealthBook<'a> {
    /// The health book in `vault`.
    pub fn new(vault: &'a Vault) -> Self {
        HealthBook { vault }
    }

    /// Imports a FHIR R4 Bundle (an IPS document, a collection, a search set), entry by entry
    /// ([`ImportMode::Partial`]; see [`HealthBook::import_bundle_with`]). With `into_person`,
    /// the bundle's one Patient (or, without a Patient, every patient reference) becomes that
    /// person; otherwise each Patient is matched to a person already in the book by
    /// identifier, or by name and date of birth, and is added when new.
    pub fn import_bundle(
        &self,
        bundle_json: &str,
        into_person: Option<&str>,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        self.import_bundle_with(bundle_json, into_person, ImportMode::Partial, now)
    }

    /// [`HealthBook::import_bundle`] with a choice of what an unstorable entry does. Every entry
    /// is accounted for in [`ImportSummary::entries`]. Ids generated for entries without one
    /// come from the bundle's content, not its layout, so the same bundle imported twice
    /// (whatever its whitespace or key order) names the same records. The stored entries are
    /// written in one transaction.
    pub fn import_bundle_with(
        &self,
        bundle_json: &str,
        into_person: Option<&str>,
        mode: ImportMode,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        let bundle = fhir::parse_bundle(bundle_json)?;
        // Serialised again, the bundle is canonical: sorted keys, no whitespace, numbers as
        // written.
        let seed = format!("bundle:{bundle}");
        let read = fhir::bundle_entries(bundle, &seed)?;
        let first_refused = |index: usize| {
            read.refused
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, reason)| reason.clone())
                .unwrap_or_default()
        };
        if let Some((index, url)) = read.needed.first() {
            let what = if url.is_empty() {
                "it is a Patient".to_owned()
            } else {
                format!("it is a Patient or other entries reference {url}")
            };
            return Err(FhirError::BadResource {
                index: *index,
                detail: format!("{}; it cannot be left out: {what}", first_refused(*index)),
            }
            .into());
        }
        if mode == ImportMode::AllOrNothing {
            if let Some((index, detail)) = read.refused.first() {
                return Err(FhirError::BadResource {
                    index: *index,
                    detail: detail.clone(),
                }
                .into());
            }
        }
        self.import_resources(
            read.resources,
            read.refused,
            Provenance::of(Source::FhirImport),
            into_person,
            mode,
            now,
        )
    }

    /// Imports a verified SMART Health Card (see [`super::shc::verify`]) with its provenance:
    /// issuer, key id and time of verification. `jws` names the card's records stably, so
    /// importing the same card again replaces rather than duplicates. A signed card is stored
    /// whole or not at all.
    pub fn import_card(
        &self,
        card: &VerifiedCard,
        jws: &str,
        into_person: Option<&str>,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        let resources = fhir::resources_of_bundle(card.fhir_bundle.clone(), jws)?;
        let provenance = Provenance {
            source: Source::HealthCard,
            issuer: Some(card.issuer.clone()),
            kid: Some(card.kid.clone()),
            verified_at: Some(card.verified_at),
            card: Some(jws.to_owned()),
            card_entry: None,
        };
        self.import_resources(
            resources.into_iter().enumerate().collect(),
            Vec::new(),
            provenance,
            into_person,
            ImportMode::AllOrNothing,
            now,
        )
    }

    /// Verifies a card (compact JWS) against `trust` at `now_unix` and imports it; a card that
    /// fails any check is not imported and its reason is returned.
    pub fn verify_and_import_card(
        &self,
        jws: &str,
        trust: &TrustStore,
        now_unix: i64,
        into_person: Option<&str>,
    ) -> Result<ImportSummary, HealthError> {
        let card = shc::verify(jws, trust, now_unix)?;
        self.import_card(&card, jws.trim(), into_person, now_unix.max(0) as u64)
    }

    fn import_resources(
        &self,
        resources: Vec<(usize, Value)>,
        unreadable: Vec<(usize, String)>,
        provenance: Provenance,
        into_person: Option<&str>,
        mode: ImportMode,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        let mut summary = ImportSummary::default();
        let refuse = |summary: &mut ImportSummary, index: usize, key: &str, reason: String| {
            summary.refused += 1;
            summary.entries.push(EntryReport {
                index,
                key: key.to_owned(),
                status: EntryStatus::Refused,
                person: String::new(),
                reason,
            });
        };
        for (index, reason) in unreadable {
            refuse(&mut summary, index, "", reason);
        }
        let mut kept = Vec::with_capacity(resources.len());
        // The position of each kept resource in the bundle (a card's entry number).
        let mut entries = Vec::with_capacity(resources.len());
        for (index, r) in resources {
            let key = fhir::key_of(&r);
            if fhir::is_absent_marker(&r) {
                summary.skipped += 1;
                summary.entries.push(EntryReport {
                    index,
                    key: key.unwrap_or_default(),
                    status: EntryStatus::Skipped,
                    person: String::new(),
                    reason: "an IPS \"no information\" marker: the section is empty".into(),
                });
                continue;
            }
            if key.is_none() {
                let reason = "resource without a valid id".to_owned();
                if mode == ImportMode::AllOrNothing {
                    return Err(FhirError::BadResource {
                        index,
                        detail: reason,
                    }
                    .into());
                }
                refuse(&mut summary, index, "", reason);
                continue;
            }
            kept.push(r);
            entries.push(index);
        }
        let queue = provenance.source != Source::Server;
        let summary = self.vault.transaction(|tx| {
            let known: Vec<HealthRecord> = tx.query_docs("type", "Patient")?;
            let mut renames: HashMap<String, String> = HashMap::new();
            let mut merged: HashMap<String, Value> = HashMap::new();
            // Resources given a new key because theirs names someone else's record.
            let mut rekeyed: HashMap<String, String> = HashMap::new();
            let patients: Vec<&Value> = kept
                .iter()
                .filter(|r| fhir::resource_type(r) == Some("Patient"))
                .collect();
            let mut merge_into = |target: &HealthRecord, p: &Value, summary: &mut ImportSummary| {
                let (m, conflicts) = merge_patient(&target.resource, p);
                summary.conflicts.extend(conflicts);
                merged.insert(target.key.clone(), m);
            };
            if let Some(target) = into_person {
                let stored = known.iter().find(|k| k.person == target).ok_or_else(|| {
                    HealthError::NotFound {
                        what: format!("person {target}"),
                    }
                })?;
                match patients.as_slice() {
                    [] => {
                        for r in &kept {
                            let mut refs = Vec::new();
                            fhir::references(r, &mut refs);
                            for old in refs.into_iter().filter(|x| x.starts_with("Patient/")) {
                                renames.insert(old, stored.key.clone());
                            }
                        }
                    }
                    [p] => {
                        let key = fhir::key_of(p).unwrap_or_default();
                        renames.insert(key, stored.key.clone());
                        merge_into(stored, p, &mut summary);
                    }
                    _ => return Err(invalid("into_person", "the bundle has several patients")),
                }
            } else {
                for p in &patients {
                    let key = fhir::key_of(p).unwrap_or_default();
                    // Identity first; the same id only when it does not name someone else.
                    let matched =
                        known
                            .iter()
                            .find(|k| same_person(&k.resource, p))
                            .or_else(|| {
                                known
                                    .iter()
                                    .find(|k| k.key == key && !different_people(&k.resource, p))
                            });
                    match matched {
                        Some(existing) => {
                            renames.insert(key, existing.key.clone());
                            merge_into(existing, p, &mut summary);
                        }
                        // Another source reused this id for another person: a new id.
                        None if known.iter().any(|k| k.key == key) => {
                            let new_key = suffixed(&key, &short_hash(&identity_text(p)));
                            rekeyed.insert(key.clone(), new_key.clone());
                            renames.insert(key, new_key);
                        }
                        None => {}
                    }
                }
            }
            // The people this import is about, under the keys they are stored by.
            let imported_people: Vec<String> = patients
                .iter()
                .filter_map(|p| {
                    let key = fhir::key_of(p)?;
                    Some(renames.get(&key).cloned().unwrap_or(key))
                })
                .collect();
            let mut bundle_person: Vec<&String> = imported_people.iter().collect();
            bundle_person.sort();
            bundle_person.dedup();
            // Where an entry that names no one (or names no one readable) is filed: the chosen
            // person, else (for types the book does not model) the bundle's only patient. A
            // clinical record is never guessed into a book.
            let fallback: Option<String> = match into_person {
                Some(p) => Some(p.to_owned()),
                None => match bundle_person.as_slice() {
                    [one] => one.strip_prefix("Patient/").map(str::to_owned),
                    _ => None,
                },
            };
            let person_exists = |id: &str| {
                let key = format!("Patient/{id}");
                known.iter().any(|k| k.key == key) || imported_people.contains(&key)
            };
            // A record whose id is already taken by another person's record (two sources reusing
            // a plain id) gets its own id, stable for re-imports.
            for r in &kept {
                let key = fhir::key_of(r).unwrap_or_default();
                if fhir::resource_type(r) == Some("Patient") || renames.contains_key(&key) {
                    continue;
                }
                let mut probe = r.clone();
                fhir::rewrite_references(&mut probe, &|old| renames.get(old).cloned());
                let person = fhir::person_of(&probe).unwrap_or_default();
                if let Some(existing) = tx.get_doc::<HealthRecord>(&key)? {
                    let suffix = if !existing.person.is_empty()
                        && !person.is_empty()
                        && existing.person != person
                    {
                        Some(short_hash(&person))
                    } else if existing.person.is_empty()
                        && person.is_empty()
                        && fingerprint(&existing.resource) != fingerprint(r)
                    {
                        // Another source's shared resource under the same plain id (their
                        // Medication/1 is not ours): both are kept, neither overwritten.
                        Some(short_hash(&fingerprint(r).to_string()))
                    } else {
                        None
                    };
                    if let Some(suffix) = suffix {
                        let new_key = suffixed(&key, &suffix);
                        rekeyed.insert(key.clone(), new_key.clone());
                        renames.insert(key, new_key);
                    }
                }
            }
            let mut stored_keys: std::collections::HashSet<String> = Default::default();
            let mut pending_refs: Vec<(String, String, bool)> = Vec::new();
            for (mut r, index) in kept.iter().cloned().zip(entries.iter().copied()) {
                let key = fhir::key_of(&r).unwrap_or_default();
                if let Some(new_key) = rekeyed.get(&key) {
                    let new_id = new_key
                        .split_once('/')
                        .map(|(_, id)| id)
                        .unwrap_or_default();
                    r["id"] = Value::String(new_id.to_owned());
                } else if let Some(target) = renames.get(&key) {
                    match merged.remove(target) {
                        Some(m) => r = m,
                        None => {
                            // A second Patient merged into the same person.
                            summary.entries.push(EntryReport {
                                index,
                                key: target.clone(),
                                status: EntryStatus::Stored,
                                person: target.trim_start_matches("Patient/").to_owned(),
                                reason: "merged into the same person".into(),
                            });
                            continue;
                        }
                    }
                }
                fhir::rewrite_references(&mut r, &|old| renames.get(old).cloned());
                let rtype = fhir::resource_type(&r).unwrap_or("").to_owned();
                let placed = validate(&r, false).and_then(|()| {
                    place(
                        &r,
                        &rtype,
                        fallback.as_deref(),
                        into_person.is_some(),
                        &person_exists,
                    )
                });
                let person = match placed {
                    Ok(person) => person,
                    Err(e) if mode == ImportMode::AllOrNothing || rtype == "Patient" => {
                        return Err(e)
                    }
                    Err(e) => {
                        refuse(
                            &mut summary,
                            index,
                            &fhir::key_of(&r).unwrap_or_default(),
                            e.to_string(),
                        );
                        continue;
                    }
                };
                let mut record_provenance = provenance.clone();
                if record_provenance.card.is_some() {
                    record_provenance.card_entry = Some(index as u32);
                }
                let mut record = self.record(r, record_provenance, now)?;
                record.person = person;
                if record.resource_type == "Patient" && !summary.people.contains(&record.person) {
                    summary.people.push(record.person.clone());
                }
                *summary
                    .by_type
                    .entry(record.resource_type.clone())
                    .or_default() += 1;
                summary.stored += 1;
                summary.entries.push(EntryReport {
                    index,
                    key: record.key.clone(),
                    status: if record.person.is_empty() {
                        EntryStatus::Shared
                    } else {
                        EntryStatus::Stored
                    },
                    person: record.person.clone(),
                    reason: String::new(),
                });
                let mut refs = Vec::new();
                fhir::all_references(&record.resource, &mut refs);
                let listing = fhir::is_listing(&record.resource);
                pending_refs.extend(
                    refs.into_iter()
                        .filter(|r| !r.starts_with('#'))
                        .map(|r| (record.key.clone(), r, listing)),
                );
                stored_keys.insert(record.key.clone());
                put(tx, &record, queue, now)?;
            }
            // A refused entry that a stored one references makes the import unsafe to keep.
            let refused: HashMap<&str, &EntryReport> = summary
                .entries
                .iter()
                .filter(|e| e.status == EntryStatus::Refused && !e.key.is_empty())
                .map(|e| (e.key.as_str(), e))
                .collect();
            for (from, reference, listing) in &pending_refs {
                if *listing {
                    continue;
                }
                if let Some(e) = refused.get(reference.as_str()) {
                    return Err(FhirError::BadResource {
                        index: e.index,
                        detail: format!(
                            "{}; it cannot be left out: {from} references it",
                            e.reason
                        ),
                    }
                    .into());
                }
            }
            // No-information markers are not stored on purpose: a document listing one is fine.
            let skipped: std::collections::HashSet<&str> = summary
                .entries
                .iter()
                .filter(|e| e.status == EntryStatus::Skipped)
                .map(|e| e.key.as_str())
                .collect();
            let mut unresolved = Vec::new();
            for (from, reference, _) in &pending_refs {
                // `Type/id/_history/n` names a version of `Type/id`.
                let target = reference.split("/_history/").next().unwrap_or(reference);
                let resolves = skipped.contains(target)
                    || (fhir::is_relative(target)
                        && (stored_keys.contains(target)
                            || tx.get_doc::<HealthRecord>(target)?.is_some()));
                if !resolves {
                    unresolved.push(format!("{from} -> {reference}"));
                }
            }
            summary.unresolved = unresolved;
            summary.entries.sort_by_key(|e| e.index);
            Ok(summary)
        })?;
        // Logged once the transaction is over: a slow log sink never holds the vault.
        log::info!(
            stored = summary.stored, skipped = summary.skipped, refused = summary.refused,
            unresolved = summary.unresolved.len(), conflicts = summary.conflicts.len();
            "health import"
        );
        Ok(summary)
    }

    fn record(
        &self,
        resource: Value,
        provenance: Provenance,
        now: u64,
    ) -> Result<HealthRecord, HealthError> {
        let key = fhir::key_of(&resource).ok_or_else(|| invalid("id", "missing or invalid"))?;
        let resource_type = fhir::resource_type(&resource).unwrap_or("").to_owned();
        Ok(HealthRecord {
            key,
            person: fhir::person_of(&resource).unwrap_or_default(),
            date: fhir::clinical_date(&resource),
            resource_type,
            resource,
            provenance,
            updated_at: now,
        })
    }

    /// Stores one resource entered on this device (a new id is given when it has none) and
    /// queues it for upload; returns its `Type/id`. A clinical record must reference a person
    /// already in the book.
    pub fn put_resource(&self, resource_json: &str, now: u64) -> Result<String, HealthError> {
        let mut resource: Value =
            serde_json::from_str(resource_json).map_err(|e| FhirError::NotJson {
                detail: e.to_string(),
            })?;
        let rtype = fhir::resource_type(&resource)
            .ok_or_else(|| invalid("resourceType", "missing or malformed"))?;
        if matches!(rtype, "Bundle" | "Composition") {
            return Err(invalid("resourceType", format!("{rtype} is not a record")));
        }
        match resource.get("id") {
            None => resource["id"] = Value::String(random_id()?),
            Some(Value::String(id)) if fhir::is_valid_id(id) => {}
            Some(_) => return Err(invalid("id", "not a valid FHIR id")),
        }
        validate(&resource, true)?;
        let record = self.record(resource, Provenance::of(Source::Entered), now)?;
        self.vault.transaction(|tx| {
            if record.resource_type != "Patient" && !record.person.is_empty() {
                let person_key = format!("Patient/{}", record.person);
                if tx.get_doc::<HealthRecord>(&person_key)?.is_none() {
                    return Err(HealthError::NotFound {
                        what: format!("person {}", record.person),
                    });
                }
            }
            put(tx, &record, true, now)
        })?;
        Ok(record.key)
    }

    /// Creates or updates a person (Patient) and their insurance card (Coverage); returns the
    /// person id. Fields the app does not edit stay as they were.
    pub fn save_person(&self, person: &Person, now: u64) -> Result<String, HealthError> {
        if person.full_name.trim().is_empty() {
            return Err(invalid("full_name", "is required"));
        }
        let born = schedule::parse_date(&person.birth_date)
            .ok_or_else(|| invalid("birth_date", "expected YYYY-MM-DD"))?;
        if !matches!(
            person.gender.as_str(),
            "male" | "female" | "other" | "unknown"
        ) {
            return Err(invalid("gender", "male, female, other or unknown"));
        }
        if !person.citizen_id.is_empty()
            && (person.citizen_id.len() != 12
                || !person.citizen_id.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid("citizen_id", "a CCCD number has 12 digits"));
        }
        if let Some(card) = &person.insurance {
            if card.number.trim().is_empty() {
                return Err(invalid("insurance.number", "is required"));
            }
            let from = schedule::parse_date(&card.valid_from)
                .ok_or_else(|| invalid("insurance.valid_from", "expected YYYY-MM-DD"))?;
            if !card.valid_to.is_empty() {
                let to = schedule::parse_date(&card.valid_to)
                    .ok_or_else(|| invalid("insurance.valid_to", "expected YYYY-MM-DD"))?;
                if to < from {
                    return Err(invalid("insurance.valid_to", "is before valid_from"));
                }
            }
        }
        let id = match person.id.as_str() {
            "" => random_id()?,
            id if fhir::is_valid_id(id) => id.to_owned(),
            _ => return Err(invalid("id", "not a valid FHIR id")),
        };
        let key = format!("Patient/{id}");
        self.vault.transaction(|tx| {
            let existing = tx.get_doc::<HealthRecord>(&key)?;
            if existing.is_none() && !person.id.is_empty() {
                return Err(HealthError::NotFound {
                    what: format!("person {id}"),
                });
            }
            let mut patient = existing
                .map(|r| r.resource)
                .unwrap_or_else(|| json!({"resourceType": "Patient", "id": id}));
            patient["name"] = json!([{"text": person.full_name.trim()}]);
            patient["birthDate"] = json!(born.to_string());
            patient["gender"] = json!(person.gender);
            let mut ids: Vec<Value> = patient["identifier"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i["system"] != fhir::CCCD_SYSTEM)
                .collect();
            if !person.citizen_id.is_empty() {
                ids.push(json!({"system": fhir::CCCD_SYSTEM, "value": person.citizen_id}));
            }
            patient["identifier"] = Value::Array(ids);
            let record = self.record(patient, Provenance::of(Source::Entered), now)?;
            put(tx, &record, true, now)?;
            let coverage_key = format!("Coverage/bhyt-{id}");
            match &person.insurance {
                Some(card) => {
                    let mut coverage = tx
                        .get_doc::<HealthRecord>(&coverage_key)?
                        .map(|r| r.resource)
                        .unwrap_or_else(|| {
                            json!({"resourceType": "Coverage", "id": format!("bhyt-{id}"), "status": "active"})
                        });
                    coverage["beneficiary"] = json!({"reference": key});
                    coverage["subscriberId"] = json!(card.number);
                    coverage["identifier"] =
                        json!([{"system": fhir::BHYT_SYSTEM, "value": card.number}]);
                    let mut period = json!({"start": card.valid_from});
                    if !card.valid_to.is_empty() {
                        period["end"] = json!(card.valid_to);
                    }
                    coverage["period"] = period;
                    coverage["payor"] = json!([{"display": "Bảo hiểm xã hội Việt Nam"}]);
                    if card.facility.is_empty() {
                        if let Some(c) = coverage.as_object_mut() {
                            c.remove("class");
                        }
                    } else {
                        coverage["class"] = json!([{
                            "type": {"text": "registered primary care facility"},
                            "value": card.facility,
                        }]);
                    }
                    let record = self.record(coverage, Provenance::of(Source::Entered), now)?;
                    put(tx, &record, true, now)?;
                }
                None => {
                    if tx.delete(HealthRecord::COLLECTION, &coverage_key)? {
                        outbox::enqueue(
            tx,
            &SYNCED,
                            &coverage_key,
                            "delete",
                            Value::Null,
                            now,
                        )?;
                    }
                }
            }
            Ok(id)
        })
    }

    /// A person and their insurance card.
    pub fn person(&self, id: &str) -> Result<Option<Person>, HealthError> {
        let Some(patient) = self
            .vault
            .get_doc::<HealthRecord>(&format!("Patient/{id}"))?
        else {
            return Ok(None);
        };
        let coverage = self
            .records(id, Some(Kind::Coverage), None, None)?
            .into_iter()
            .next();
        let p = &patient.resource;
        let text = |v: &Value, path: &str| {
            v.pointer(path)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        Ok(Some(Person {
            id: id.to_owned(),
            full_name: fhir::patient_name(p),
            birth_date: text(p, "/birthDate"),
            gender: text(p, "/gender"),
            citizen_id: identifiers(p)
                .into_iter()
                .find(|(s, _)| s == fhir::CCCD_SYSTEM)
                .map(|(_, v)| v)
                .unwrap_or_default(),
            insurance: coverage.map(|c| Insurance {
                number: text(&c.resource, "/subscriberId"),
                valid_from: text(&c.resource, "/period/start"),
                valid_to: text(&c.resource, "/period/end"),
                facility: text(&c.resource, "/class/0/value"),
            }),
        }))
    }

    /// Everyone in the book (their Patient records), by name.
    pub fn people(&self) -> Result<Vec<HealthRecord>, HealthError> {
        let mut people: Vec<HealthRecord> = self.vault.query_docs("type", "Patient")?;
        people.sort_by_key(|p| fhir::patient_name(&p.resource));
        Ok(people)
    }

    /// A record by `Type/id`.
    pub fn get(&self, key: &str) -> Result<Option<HealthRecord>, HealthError> {
        Ok(self.vault.get_doc(key)?)
    }

    /// A person's records, newest first: all, or one kind ([`Kind::Other`]: every type the book
    /// does not model), on days `from..=to` (`YYYY-MM-DD`, either open). Records without a date
    /// are left out when a range is given.
    pub fn records(
        &self,
        person: &str,
        kind: Option<Kind>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<HealthRecord>, HealthError> {
        let bound = |field: &str, v: Option<&str>| match v {
            None => Ok(None),
            Some(d) => schedule::parse_date(d)
                .map(|d| Some(d.to_string()))
                .ok_or_else(|| invalid(field, "expected YYYY-MM-DD")),
        };
        let (from, to) = (bound("from", from)?, bound("to", to)?);
        let mut out: Vec<HealthRecord> = match kind.and_then(resource_type_of) {
            Some(t) => self
                .vault
                .query_docs("person_type", &format!("{person}\u{1f}{t}"))?,
            None => self.vault.query_docs("person", person)?,
        };
        if kind == Some(Kind::Other) {
            out.retain(|r| r.kind() == Kind::Other);
        }
        if from.is_some() || to.is_some() {
            out.retain(|r| {
                r.day().is_some_and(|d| {
                    from.as_ref().is_none_or(|f| &d >= f) && to.as_ref().is_none_or(|t| &d <= t)
                })
            });
        }
        out.sort_by(|a, b| b.day().cmp(&a.day()).then_with(|| a.key.cmp(&b.key)));
        Ok(out)
    }

    /// Deletes a record (and queues the deletion); false when there was none.
    pub fn delete(&self, key: &str, now: u64) -> Result<bool, HealthError> {
        Ok(self.vault.transaction(|tx| {
            let gone = tx.delete(HealthRecord::COLLECTION, key)?;
            if gone {
                outbox::enqueue(tx, &SYNCED, key, "delete", Value::Null, now)?;
            }
            Ok::<_, VaultError>(gone)
        })?)
    }

    /// The person's International Patient Summary (see [`fhir::ips_document`]): their records
    /// and the supporting resources those reference. `timestamp` is RFC 3339.
    pub fn export_ips(&self, person: &str, timestamp: &str) -> Result<Value, HealthError> {
        let patient =
            self.get(&format!("Patient/{person}"))?
                .ok_or_else(|| HealthError::NotFound {
                    what: format!("person {person}"),
                })?;
        let mut resources: Vec<Value> = self
            .vault
            .query_docs::<HealthRecord>("person", person)?
            .into_iter()
            .filter(|r| r.resource_type != "Patient")
            .map(|r| r.resource)
            .collect();
        // Supporting resources (Organization, Practitioner, Medication, ...) that records point to.
        let mut included: std::collections::HashSet<String> =
            resources.iter().filter_map(fhir::key_of).collect();
        included.insert(patient.key.clone());
        let mut frontier = resources.clone();
        while !frontier.is_empty() {
            let mut refs = Vec::new();
            frontier.iter().for_each(|r| fhir::references(r, &mut refs));
            frontier.clear();
            for key in refs {
                if included.insert(key.clone()) {
                    // Shared resources and this person's own, never another person's records
                    // (a reference to a relative does not bring their book along).
                    if let Some(found) = self
                        .get(&key)?
                        .filter(|r| r.person.is_empty() || r.person == person)
                    {
                        frontier.push(found.resource.clone());
                        resources.push(found.resource);
                    }
                }
            }
        }
        resources.sort_by_key(|r| fhir::key_of(r).unwrap_or_default());
        let (documents, resources): (Vec<Value>, Vec<Value>) = resources
            .into_iter()
            .partition(|r| fhir::resource_type(r) == Some("Composition"));
        Ok(fhir::ips_document(
            &patient.resource,
            &resources,
            &documents,
            timestamp,
        ))
    }

    /// The person's immunizations that count for the childhood schedule.
    pub fn given_doses(&self, person: &str) -> Result<Vec<GivenDose>, HealthError> {
        let mut out = Vec::new();
        for r in self.records(person, Some(Kind::Immunization), None, None)? {
            let status = r.resource.get("status").and_then(Value::as_str);
            if matches!(status, Some("not-done" | "entered-in-error")) {
                continue;
            }
            let Some(date) = r.day().and_then(|d| schedule::parse_date(&d)) else {
                continue;
            };
            let codings = r
                .resource
                .pointer("/vaccineCode/coding")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let vaccine = codings.iter().find_map(|c| {
                schedule::vaccine_for(c.get("system")?.as_str()?, c.get("code")?.as_str()?)
            });
            if let Some(v) = vaccine {
                out.push(GivenDose {
                    vaccine: v.to_owned(),
                    date,
                });
            }
        }
        Ok(out)
    }

    /// The childhood schedule for a person on `today`, from their date of birth and recorded
    /// immunizations.
    pub fn schedule(&self, person: &str, today: NaiveDate) -> Result<Vec<DoseStatus>, HealthError> {
        let patient =
            self.get(&format!("Patient/{person}"))?
                .ok_or_else(|| HealthError::NotFound {
                    what: format!("person {person}"),
                })?;
        let birth = patient
            .resource
            .get("birthDate")
            .and_then(Value::as_str)
            .and_then(fhir::day_of)
            .and_then(|d| schedule::parse_date(&d))
            .ok_or_else(|| invalid("birthDate", "the person has no date of birth"))?;
        if today < birth {
            return Err(invalid("today", "is before the date of birth"));
        }
        let given = self.given_doses(person)?;
        Ok(schedule::VN_EPI_2024.status(birth, &given, today))
    }
}

/// Stores a record pulled from the backend inside the caller's transaction. `payload` is the
/// resource as a facility published it (provenance: server), or `{"resource": ..,
/// "provenance": ..}` as a device of the citizen pushed it: that provenance is a claim, kept
/// only as far as it is proven here (see [`Provenance::card`]); `trust` is this device's health
/// card trust store, without which no pulled card is shown as verified. Returns false, storing
/// nothing, for a payload that is not a valid resource, or that would move a record to
/// another person.
pub fn store_pulled(
    tx: &VaultTx<'_>,
    payload: &Value,
    trust: Option<&TrustStore>,
    now: u64,
) -> Result<bool, HealthError> {
    let (resource, claimed) = match payload.get("resource") {
        Some(r) => (
            r.clone(),
            Some(
                payload
                    .get("provenance")
                    .and_then(|p| serde_json::from_value::<Provenance>(p.clone()).ok()),
            ),
        ),
        None => (payload.clone(), None),
    };
    let Some(key) = fhir::key_of(&resource) else {
        return Ok(false);
    };
    if validate(&resource, false).is_err() {
        return Ok(false);
    }
    let person = match fhir::person_of(&resource) {
        Some(p) => p,
        // A record the resource files under no one: under the person the other device filed it
        // under, if that person is in this book too; else shared.
        None => match payload.get("person").and_then(Value::as_str) {
            Some(p)
                if tx
                    .get_doc::<HealthRecord>(&format!("Patient/{p}"))?
                    .is_some() =>
            {
                p.to_owned()
            }
            _ => String::new(),
        },
    };
    let local = tx.get_doc::<HealthRecord>(&key)?;
    if local
        .as_ref()
        .is_some_and(|l| !l.person.is_empty() && l.person != person)
    {
        return Ok(false);
    }
    let provenance = match claimed {
        None => Provenance::of(Source::Server),
        Some(claim) => earned_provenance(tx, claim, &resource, local.as_ref(), trust, now)?,
    };
    let record = HealthRecord {
        key,
        person,
        resource_type: fhir::resource_type(&resource).unwrap_or("").to_owned(),
        date: fhir::clinical_date(&resource),
        resource,
        provenance,
        updated_at: now,
    };
    tx.put_doc(&record)?;
    Ok(true)
}

/// The `resourceType` of a modelled kind.
pub fn resource_type_of(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Patient => "Patient",
        Kind::Coverage => "Coverage",
        Kind::Encounter => "Encounter",
        Kind::Immunization => "Immunization",
        Kind::AllergyIntolerance => "AllergyIntolerance",
        Kind::Condition => "Condition",
        Kind::MedicationRequest => "MedicationRequest",
        Kind::MedicationStatement => "MedicationStatement",
        Kind::Observation => "Observation",
        Kind::DiagnosticReport => "DiagnosticReport",
        Kind::Procedure => "Procedure",
        Kind::Appointment => "Appointment",
        Kind::ServiceRequest => "ServiceRequest",
        Kind::Other => return None,
    })
}

fn put(tx: &VaultTx<'_>, record: &HealthRecord, queue: bool, now: u64) -> Result<(), HealthError> {
    tx.put_doc(record)?;
    if queue {
        let mut payload = json!({"resource": record.resource, "provenance": record.provenance});
        // Filed under a person the resource does not name (a chosen person, a document's only
        // patient): say whose, so the citizen's other devices file it the same way.
        if fhir::person_of(&record.resource).is_none() && !record.person.is_empty() {
            payload["person"] = Value::String(record.person.clone());
        }
        outbox::enqueue(tx, &SYNCED, &record.key, "put", payload, now)?;
    }
    Ok(())
}

/// The health book's synced collection: a citizen's records, server-authoritative.
pub const SYNCED: CollectionSpec = CollectionSpec::device(
    HealthRecord::COLLECTION,
    ConflictPolicy::ServerAuthoritative,
);

/// `health.records` as a device syncs it: a pulled record is stored by [`store_pulled`], its
/// health-card provenance re-verified against `trust` (this device's trust store).
pub fn synced(trust: Option<std::sync::Arc<TrustStore>>) -> Collection {
    Collection::in_vault(SYNCED, move |tx, _id, payload, now| {
        match store_pulled(tx, payload, trust.as_deref(), now) {
            Ok(stored) => Ok(stored),
            Err(HealthError::Vault(e)) => Err(e),
            Err(_) => Ok(false),
        }
    })
}
