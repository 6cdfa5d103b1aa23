//! The health book over the vault: FHIR resources of a citizen and the dependants they manage,
//! encrypted, indexed (blind) by person and resource type, with their provenance. An import
//! writes in one transaction and accounts for every entry (stored, shared, skipped or refused);
//! see docs/health.md.
//!
//! This module holds the record type, the book and its plain reads and writes; the rest is split
//! by concern: `provenance` (where a record came from), `identity` (matching people, content
//! fingerprints), `import` (bundles and health cards), `people` (the profile and insurance card
//! the app edits), `export` (the IPS document), `vaccination` (the childhood schedule) and `sync`
//! (records pulled from the backend).

mod export;
mod identity;
mod import;
mod people;
mod provenance;
mod sync;
mod vaccination;

use serde_json::{json, Value};

pub use import::{EntryReport, EntryStatus, ImportMode, ImportSummary};
pub use people::{Gender, Insurance, Person};
pub use provenance::{Provenance, Source};
pub use sync::{store_pulled, synced};

use super::fhir::{self, FhirError, Kind};
use super::schedule;
use super::shc::ShcError;
use crate::changes::outbox;
use crate::changes::{CollectionSpec, ConflictPolicy};
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
    /// An EU Digital COVID Certificate that failed verification.
    #[error(transparent)]
    Certificate(#[from] crate::health::dcc::DccError),
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

/// The health book in a vault.
pub struct HealthBook<'a> {
    vault: &'a Vault,
}

impl<'a> HealthBook<'a> {
    /// The vault the book lives in.
    pub fn vault(&self) -> &'a Vault {
        self.vault
    }
}

fn random_id() -> Result<String, HealthError> {
    crate::hex::random(16).map_err(|_| {
        VaultError::Io {
            reason: "system random source failed".into(),
        }
        .into()
    })
}

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
    /// already in the book; a record of another person is never moved by an edit.
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
            // An edit never moves a record to another person (delete it and enter it again).
            if let Some(existing) = tx.get_doc::<HealthRecord>(&record.key)? {
                if existing.person != record.person {
                    return Err(invalid(
                        "subject",
                        format!("{} is another person's record: it is not moved", record.key),
                    ));
                }
            }
            put(tx, &record, true, now)
        })?;
        Ok(record.key)
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
        // The index is the vault's word for what the record says; a restored backup's could
        // say otherwise. Only records that are this person's are theirs.
        out.retain(|r| r.person == person);
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
