//! The health book for Kotlin and Swift: people, FHIR records, imports of bundles and verified
//! health cards, the IPS export and the schedule from stored immunizations.

use std::collections::HashMap;
use std::sync::Arc;

use thudo_core::health::fhir::Kind as HealthKind;
use thudo_core::health::records::{
    EntryStatus as HealthEntryStatus, Gender, Insurance as HealthInsurance, Person as HealthPerson,
    Source as RecordSource,
};
use thudo_core::health::{dcc, fhir, records, schedule, shc, trust_bundle};

use crate::health::{DoseStatus, HealthCardVerifier};
use crate::{blocking, signed, unix_now};

/// Errors of the health book. Nothing is stored when any is returned.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum HealthBookError {
    /// The bundle or resource is not acceptable FHIR (not JSON, not a bundle, a bad entry).
    #[error("invalid FHIR: {detail}")]
    InvalidFhir {
        /// What was wrong.
        detail: String,
    },
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
    /// The health card failed a check and was not imported.
    #[error("card refused ({reason}): {detail}")]
    CardRefused {
        /// The reason code, as `thudo health verify-shc` prints it (`bad_signature`,
        /// `unknown_key`, `not_yet_valid`, `revoked`, ...).
        reason: String,
        /// The message.
        detail: String,
    },
    /// A health trust bundle was refused and the installed one kept.
    #[error("trust bundle refused ({reason}): {detail}")]
    TrustBundleRefused {
        /// `bad_signature`, `rollback`, `expired` or `malformed`.
        reason: String,
        /// The message.
        detail: String,
    },
    /// The vault under the call failed (closed, locked, its key lost, its disk): the same
    /// faults in every domain's error.
    #[error("{fault}")]
    Vault {
        /// What failed.
        fault: crate::VaultFault,
    },
    /// A bug in the library.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<shc::ShcError> for HealthBookError {
    fn from(e: shc::ShcError) -> Self {
        HealthBookError::CardRefused {
            reason: e.reason_code(),
            detail: e.to_string(),
        }
    }
}

impl From<trust_bundle::TrustBundleError> for HealthBookError {
    fn from(e: trust_bundle::TrustBundleError) -> Self {
        use trust_bundle::TrustBundleError as E;
        let reason = match &e {
            E::Vault(_) => match e {
                E::Vault(v) => return v.into(),
                _ => "malformed",
            },
            E::Malformed { .. } => "malformed",
            E::BadSignature => "bad_signature",
            E::Rollback { .. } => "rollback",
            E::Expired { .. } => "expired",
        };
        HealthBookError::TrustBundleRefused {
            reason: reason.into(),
            detail: e.to_string(),
        }
    }
}

impl From<dcc::DccError> for HealthBookError {
    fn from(e: dcc::DccError) -> Self {
        HealthBookError::CardRefused {
            reason: e.reason_code(),
            detail: e.to_string(),
        }
    }
}

impl From<records::HealthError> for HealthBookError {
    fn from(e: records::HealthError) -> Self {
        use records::HealthError as E;
        match e {
            E::Fhir(f) => HealthBookError::InvalidFhir {
                detail: f.to_string(),
            },
            E::Card(c) => c.into(),
            E::Certificate(c) => c.into(),
            E::Invalid { field, reason } => HealthBookError::Invalid { field, reason },
            E::NotFound { what } => HealthBookError::NotFound { what },
            E::Vault(v) => v.into(),
        }
    }
}

/// Where a device's health trust stands.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HealthTrustStatus {
    /// The installed bundle's version.
    pub version: i64,
    /// When it was published (unix seconds).
    pub issued_at: i64,
    /// When it goes stale.
    pub expires_at: i64,
    /// When this device installed it.
    pub installed_at: i64,
    /// Past its expiry: verification goes on with it; tell the user the list may be out of
    /// date.
    pub stale: bool,
}

impl From<trust_bundle::TrustStatus> for HealthTrustStatus {
    fn from(s: trust_bundle::TrustStatus) -> Self {
        HealthTrustStatus {
            version: i64::try_from(s.version).unwrap_or(i64::MAX),
            issued_at: s.issued_at,
            expires_at: s.expires_at,
            installed_at: s.installed_at,
            stale: s.stale,
        }
    }
}

/// The kinds of record, each one FHIR R4 resource type (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum HealthKind {
    /// Patient: the citizen or a dependant.
    Patient,
    /// Coverage: the health-insurance card.
    Coverage,
    /// Encounter: a visit.
    Encounter,
    /// Immunization.
    Immunization,
    /// AllergyIntolerance.
    AllergyIntolerance,
    /// Condition (ICD-10).
    Condition,
    /// MedicationRequest: a prescription.
    MedicationRequest,
    /// MedicationStatement: a medication taken.
    MedicationStatement,
    /// Observation: a result.
    Observation,
    /// DiagnosticReport.
    DiagnosticReport,
    /// Procedure.
    Procedure,
    /// Appointment: a follow-up.
    Appointment,
    /// ServiceRequest: a referral.
    ServiceRequest,
    /// Any other resource type, kept unchanged.
    Other,
}

/// Where a record came from (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum RecordSource {
    /// Entered on this device.
    Entered,
    /// Imported from an unsigned FHIR bundle.
    FhirImport,
    /// Imported from a SMART Health Card whose signature verified.
    HealthCard,
    /// Published by a facility through the backend.
    Server,
    /// Entered or imported on another device of the citizen, not verified here (a health-card
    /// claim whose card does not verify against this device's trust shows as this).
    OtherDevice,
}

/// Where a record came from and, for a health card, who signed it.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordProvenance {
    /// The source.
    pub source: RecordSource,
    /// The card's issuer.
    pub issuer: Option<String>,
    /// The card's signing key id.
    pub kid: Option<String>,
    /// When the card was verified (unix seconds).
    pub verified_at: Option<i64>,
    /// For a vaccine passport (EU DCC): the signer's country.
    pub country: Option<String>,
    /// For a vaccine passport (EU DCC): the certificate identifier (UVCI).
    pub certificate_id: Option<String>,
    /// For a health card's record, whether the installed trust bundle still vouches for it: its
    /// card is kept with it, still verifies under today's signers and revocations, and holds
    /// this record. `false` once the issuer or signer has left the list or the card was revoked,
    /// and for a record its card does not hold (planted in a backup, say) or kept without its card
    /// (show that instead of "verified"); `null` for other records, or when no bundle is installed.
    pub signer_trusted: Option<bool>,
}

/// One record: the FHIR resource and what an app lists.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HealthEntry {
    /// `Type/id`.
    pub key: String,
    /// The person (Patient id) it is about.
    pub person_id: String,
    /// Its kind.
    pub kind: HealthKind,
    /// The FHIR resource type.
    pub resource_type: String,
    /// Its clinical date as written (FHIR date or dateTime).
    pub date: Option<String>,
    /// What it is: vaccine, diagnosis, substance, test, medicine.
    pub title: String,
    /// The main code (ICD-10, LOINC, CVX, ...).
    pub code: Option<String>,
    /// The code's system.
    pub code_system: Option<String>,
    /// Status or clinical status.
    pub status: Option<String>,
    /// Value: a result, a dosage, a reaction, a dose number.
    pub value: Option<String>,
    /// A result's unit.
    pub unit: Option<String>,
    /// A result's reference range, `low-high`.
    pub reference_range: Option<String>,
    /// The facility or performer.
    pub facility: Option<String>,
    /// Where it came from.
    pub provenance: RecordProvenance,
    /// The whole FHIR resource as JSON (unknown fields and extensions included).
    pub resource_json: String,
}

/// The installed bundle's trust: only if `trust_key` signed it, when the book was given one.
fn installed_trust(
    vault: &thudo_core::vault::Vault,
    trust_key: Option<&[u8]>,
) -> Result<Option<thudo_core::health::shc::TrustStore>, trust_bundle::TrustBundleError> {
    match trust_key {
        Some(anchor) => trust_bundle::installed_trust_signed_by(vault, anchor),
        None => trust_bundle::installed_trust(vault),
    }
}

/// Entries with their signer checked against the installed trust bundle (if any).
fn entries_with_trust(
    book: &records::HealthBook<'_>,
    records: Vec<records::HealthRecord>,
    trust_key: Option<&[u8]>,
) -> Result<Vec<HealthEntry>, records::HealthError> {
    // Loading the bundle parses every issuer key and certificate: only when a card's record
    // is listed.
    let any_card = records
        .iter()
        .any(|r| r.provenance.source == records::Source::HealthCard);
    let trust = if any_card {
        installed_trust(book.vault(), trust_key).unwrap_or_default()
    } else {
        None
    };
    let vouched = match &trust {
        Some(t) => book.vouched(&records, t)?,
        None => vec![None; records.len()],
    };
    Ok(records
        .into_iter()
        .zip(vouched)
        .map(|(r, trusted)| {
            let mut entry = HealthEntry::from(r);
            entry.provenance.signer_trusted = trusted;
            entry
        })
        .collect())
}

impl From<records::HealthRecord> for HealthEntry {
    fn from(r: records::HealthRecord) -> Self {
        let s = r.summary();
        let kind = r.kind();
        let p = r.provenance;
        HealthEntry {
            kind,
            key: r.key,
            person_id: r.person,
            date: r.date,
            title: s.title,
            code: s.code,
            code_system: s.code_system,
            status: s.status,
            value: s.value,
            unit: s.unit,
            reference_range: s.reference_range,
            facility: s.facility,
            provenance: RecordProvenance {
                source: p.source,
                issuer: p.issuer,
                kid: p.kid,
                verified_at: p.verified_at,
                country: p.country,
                certificate_id: p.certificate_id,
                signer_trusted: None,
            },
            resource_json: r.resource.to_string(),
            resource_type: r.resource_type,
        }
    }
}

/// What became of one entry of an imported bundle (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum HealthEntryStatus {
    /// Stored in a person's book.
    Stored,
    /// Stored as shared: about no patient (an organisation, a practitioner, a medication).
    Shared,
    /// Not stored, nothing lost: an IPS "no information" marker.
    Skipped,
    /// Not stored, for the reason given.
    Refused,
}

/// One entry of an import, accounted for.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HealthImportEntry {
    /// Position in the bundle (0-based).
    pub index: i64,
    /// `Type/id` as stored (empty when the entry could not be read).
    pub key: String,
    /// What became of it.
    pub status: HealthEntryStatus,
    /// The person it was filed under, for `Stored`.
    pub person: String,
    /// Why it was skipped or refused.
    pub reason: String,
}

/// What an import did, entry by entry.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HealthImport {
    /// Records stored (new or replaced), shared ones included.
    pub stored: i64,
    /// Stored records per resource type.
    pub by_type: HashMap<String, i64>,
    /// The people the import was about.
    pub people: Vec<String>,
    /// Entries not stored because they only mark an empty IPS section.
    pub skipped: i64,
    /// Entries refused (see `entries` for why).
    pub refused: i64,
    /// Every entry, in bundle order.
    pub entries: Vec<HealthImportEntry>,
    /// References of stored records that resolve to nothing in the book (`Type/id -> ref`).
    pub unresolved: Vec<String>,
    /// Facts about a matched person on which the bundle and the book disagree, kept as the
    /// book had them.
    pub conflicts: Vec<String>,
    /// Every liberty taken to keep a record as the bundle wrote it (an id that is not a FHIR id
    /// repaired, a reference written as `{"id": ...}`, a record naming no patient filed under
    /// the bundle's only one).
    pub liberties: Vec<String>,
}

impl From<records::ImportSummary> for HealthImport {
    fn from(s: records::ImportSummary) -> Self {
        HealthImport {
            stored: signed(s.stored),
            by_type: s.by_type.into_iter().map(|(k, v)| (k, signed(v))).collect(),
            people: s.people,
            skipped: signed(s.skipped),
            refused: signed(s.refused),
            entries: s
                .entries
                .into_iter()
                .map(|e| HealthImportEntry {
                    index: signed(e.index),
                    key: e.key,
                    status: e.status,
                    person: e.person,
                    reason: e.reason,
                })
                .collect(),
            unresolved: s.unresolved,
            conflicts: s.conflicts,
            liberties: s.liberties,
        }
    }
}

/// A BHYT health-insurance card (core's type, carried as it is).
#[uniffi::remote(Record)]
pub struct HealthInsurance {
    /// Card number.
    pub number: String,
    /// First valid day, `YYYY-MM-DD`.
    pub valid_from: String,
    /// Last valid day, `YYYY-MM-DD`; null when open-ended.
    pub valid_to: Option<String>,
    /// Registered primary-care facility, if the card names one.
    pub facility: Option<String>,
}

/// Administrative gender, FHIR's four codes (core's type, carried as it is).
#[uniffi::remote(Enum)]
pub enum Gender {
    /// `male`.
    Male,
    /// `female`.
    Female,
    /// `other`.
    Other,
    /// `unknown`, and what a record leaves out.
    Unknown,
}

/// A person in the book (the citizen or a dependant) with their insurance card (core's type,
/// carried as it is).
#[uniffi::remote(Record)]
pub struct HealthPerson {
    /// Patient id; null to create.
    pub id: Option<String>,
    /// Full name.
    pub full_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// Administrative gender.
    pub gender: Gender,
    /// CCCD (12 digits); null when the person has none.
    pub citizen_id: Option<String>,
    /// The insurance card, if any.
    pub insurance: Option<HealthInsurance>,
}

/// The health book stored in a vault.
#[derive(uniffi::Object)]
pub struct HealthBook {
    vault: Arc<thudo_core::vault::Vault>,
    /// The trust-list key the app carries, when it gave one.
    trust_key: Option<[u8; 65]>,
}

impl HealthBook {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(records::HealthBook<'_>) -> Result<T, records::HealthError> + Send + 'static,
    ) -> Result<T, HealthBookError> {
        let vault = self.vault.clone();
        blocking(move || work(records::HealthBook::new(&vault)).map_err(HealthBookError::from))
            .await
    }
}

fn parse_trust_key(trust_key: &str) -> Result<[u8; 65], HealthBookError> {
    trust_bundle::parse_anchor(trust_key).ok_or_else(|| HealthBookError::Invalid {
        field: "trust_key".into(),
        reason: "not a base64 P-256 public key".into(),
    })
}

fn optional_now(now_unix: Option<i64>) -> i64 {
    now_unix.unwrap_or_else(|| unix_now() as i64)
}

#[uniffi::export(async_runtime = "tokio")]
impl HealthBook {
    /// The health book stored in `vault`. It trusts the installed trust bundle whatever key
    /// signed it; an app that carries a trust-list key opens the book `withTrustKey`.
    #[uniffi::constructor]
    pub fn new(vault: Arc<crate::vault::Vault>) -> Arc<Self> {
        Arc::new(HealthBook {
            vault: vault.core(),
            trust_key: None,
        })
    }

    /// The health book stored in `vault`, trusting the installed trust bundle only if
    /// `trustKey` (the trust-list public key the app is built with, base64) signed it: after
    /// the key is replaced (retired, or leaked), a bundle the old key signed vouches for nothing
    /// (no trusted verifier issuers, no record shown as verified, no trust status) until one
    /// the new key signed is installed.
    #[uniffi::constructor]
    pub fn with_trust_key(
        vault: Arc<crate::vault::Vault>,
        trust_key: String,
    ) -> Result<Arc<Self>, HealthBookError> {
        let anchor = parse_trust_key(&trust_key)?;
        Ok(Arc::new(HealthBook {
            vault: vault.core(),
            trust_key: Some(anchor),
        }))
    }

    /// Imports a FHIR R4 Bundle (IPS document, collection, transaction) in one transaction,
    /// accounting for every entry in the result. With `into_person`, its patient becomes that
    /// person; otherwise patients are matched by identifier, or name and date of birth, and
    /// added when new. An entry that cannot be stored is refused alone (with its index and
    /// reason) unless it is the Patient or others depend on it; `all_or_nothing` refuses the
    /// whole bundle instead.
    #[uniffi::method(default(into_person = None, all_or_nothing = false))]
    pub async fn import_bundle(
        &self,
        bundle_json: String,
        into_person: Option<String>,
        all_or_nothing: bool,
    ) -> Result<HealthImport, HealthBookError> {
        let mode = if all_or_nothing {
            records::ImportMode::AllOrNothing
        } else {
            records::ImportMode::Partial
        };
        self.run(move |b| {
            b.import_bundle_with(&bundle_json, into_person.as_deref(), mode, unix_now())
        })
        .await
        .map(Into::into)
    }

    /// Verifies a health card from its QR text(s) (one `shc:/` text or every chunk) with
    /// `verifier`'s trusted keys at `now_unix` (default: now) and imports it with its provenance.
    /// A card that fails any check but its expiry is refused with `CardRefused` and nothing
    /// is stored (an expired card is imported: a vaccination stays true).
    pub async fn import_card_qr(
        &self,
        verifier: Arc<HealthCardVerifier>,
        qr_texts: Vec<String>,
        into_person: Option<String>,
        now_unix: Option<i64>,
    ) -> Result<HealthImport, HealthBookError> {
        let texts: Vec<&str> = qr_texts.iter().map(String::as_str).collect();
        let jws = shc::jws_from_qr(&texts)?;
        self.import_card_jws(verifier, jws, into_person, now_unix)
            .await
    }

    /// [`HealthBook::import_card_qr`] for a compact JWS (one card of a `.smart-health-card`
    /// file, see `HealthCardVerifier.cardsInFile`).
    pub async fn import_card_jws(
        &self,
        verifier: Arc<HealthCardVerifier>,
        jws: String,
        into_person: Option<String>,
        now_unix: Option<i64>,
    ) -> Result<HealthImport, HealthBookError> {
        let now = optional_now(now_unix);
        let trust = verifier.trust().clone();
        self.run(move |b| b.verify_and_import_card(&jws, &trust, now, into_person.as_deref()))
            .await
            .map(Into::into)
    }

    /// Verifies an EU Digital COVID Certificate (a vaccine passport) from its `HC1:` QR text
    /// with `verifier`'s trusted signers at `now_unix` (default: now) and imports it with its
    /// provenance (country, key id, certificate id). An authentic certificate that has expired
    /// is imported (a vaccination stays true); one that fails any other check is refused with
    /// `CardRefused` and nothing is stored.
    #[uniffi::method(default(into_person = None, now_unix = None))]
    pub async fn import_vaccine_passport(
        &self,
        verifier: Arc<HealthCardVerifier>,
        qr_text: String,
        into_person: Option<String>,
        now_unix: Option<i64>,
    ) -> Result<HealthImport, HealthBookError> {
        let now = optional_now(now_unix);
        // A copy of the trust, so no verifier call waits on this import's commit.
        let trust = verifier.trust().clone();
        self.run(move |b| b.verify_and_import_dcc(&qr_text, &trust, now, into_person.as_deref()))
            .await
            .map(Into::into)
    }

    /// Installs a health trust bundle (a compact JWS from the backend's
    /// `/v1/health/trust-bundle`, which `SyncClient.sync` fetches itself when its settings name
    /// a `healthTrustKey`): signed by `trustKey` (the trust-list public key the app is built
    /// with, base64), not expired, newer than the installed one. The installed one offered again
    /// changes nothing; an older one is refused with `TrustBundleRefused(rollback)`.
    #[uniffi::method(default(now_unix = None))]
    pub async fn install_trust_bundle(
        &self,
        bundle: String,
        trust_key: String,
        now_unix: Option<i64>,
    ) -> Result<HealthTrustStatus, HealthBookError> {
        let anchor = parse_trust_key(&trust_key)?;
        let now = optional_now(now_unix);
        let vault = self.vault.clone();
        blocking(move || Ok(trust_bundle::install(&vault, &bundle, &anchor, now)?.into())).await
    }

    /// The installed trust bundle's version, dates and staleness (`null` before the first, and
    /// in a book opened `withTrustKey` when that key did not sign it).
    #[uniffi::method(default(now_unix = None))]
    pub async fn trust_status(
        &self,
        now_unix: Option<i64>,
    ) -> Result<Option<HealthTrustStatus>, HealthBookError> {
        let now = optional_now(now_unix);
        let (vault, trust_key) = (self.vault.clone(), self.trust_key);
        blocking(move || {
            let status = match trust_key {
                Some(anchor) => trust_bundle::status_signed_by(&vault, &anchor, now)?,
                None => trust_bundle::status(&vault, now)?,
            };
            Ok(status.map(Into::into))
        })
        .await
    }

    /// A verifier holding the installed trust bundle's issuers and signers (an empty one before
    /// the first bundle, and in a book opened `withTrustKey` when that key did not sign it):
    /// health cards and vaccine passports verify with no app code.
    pub async fn trusted_verifier(&self) -> Result<Arc<HealthCardVerifier>, HealthBookError> {
        let (vault, trust_key) = (self.vault.clone(), self.trust_key);
        let trust = blocking(move || -> Result<_, HealthBookError> {
            Ok(installed_trust(&vault, trust_key.as_ref().map(|k| &k[..]))?)
        })
        .await?;
        Ok(HealthCardVerifier::with_trust(trust.unwrap_or_default()))
    }

    /// Stores one FHIR resource entered on this device (an id is given when it has none) and
    /// queues it for upload; returns its `Type/id`.
    pub async fn put_resource(&self, resource_json: String) -> Result<String, HealthBookError> {
        self.run(move |b| b.put_resource(&resource_json, unix_now()))
            .await
    }

    /// Creates (null id) or updates a person and their insurance card; returns the person id.
    pub async fn save_person(&self, person: HealthPerson) -> Result<String, HealthBookError> {
        self.run(move |b| b.save_person(&person, unix_now())).await
    }

    /// A person and their insurance card.
    pub async fn person(&self, id: String) -> Result<Option<HealthPerson>, HealthBookError> {
        self.run(move |b| b.person(&id)).await
    }

    /// Everyone in the book, by name.
    pub async fn people(&self) -> Result<Vec<HealthPerson>, HealthBookError> {
        self.run(|b| b.persons()).await
    }

    /// A person's records, newest first: every kind or one, on days `from..=to`
    /// (`YYYY-MM-DD`, either open).
    pub async fn records(
        &self,
        person_id: String,
        kind: Option<HealthKind>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<HealthEntry>, HealthBookError> {
        let trust_key = self.trust_key;
        self.run(move |b| {
            let found = b.records(&person_id, kind, from.as_deref(), to.as_deref())?;
            entries_with_trust(&b, found, trust_key.as_ref().map(|k| &k[..]))
        })
        .await
    }

    /// A record by `Type/id`.
    pub async fn record(&self, key: String) -> Result<Option<HealthEntry>, HealthBookError> {
        let trust_key = self.trust_key;
        self.run(move |b| {
            let found = b.get(&key)?;
            Ok(entries_with_trust(
                &b,
                found.into_iter().collect(),
                trust_key.as_ref().map(|k| &k[..]),
            )?
            .pop())
        })
        .await
    }

    /// Deletes a record; false when there was none.
    pub async fn delete_record(&self, key: String) -> Result<bool, HealthBookError> {
        self.run(move |b| b.delete(&key, unix_now())).await
    }

    /// The person's International Patient Summary, a FHIR `document` Bundle as JSON.
    pub async fn export_ips(&self, person_id: String) -> Result<String, HealthBookError> {
        let now = fhir::instant(unix_now() as i64);
        self.run(move |b| b.export_ips(&person_id, &now).map(|v| v.to_string()))
            .await
    }

    /// The childhood schedule (the current version, VN-EPI-2024) for a person on `today`
    /// (`YYYY-MM-DD`), from their date of birth and stored immunizations; with `rotavirus`
    /// where the programme gives it (a regional vaccine: the app knows the family's province).
    #[uniffi::method(default(rotavirus = false))]
    pub async fn vaccination_schedule(
        &self,
        person_id: String,
        today: String,
        rotavirus: bool,
    ) -> Result<Vec<DoseStatus>, HealthBookError> {
        let day = schedule::parse_date(&today).ok_or_else(|| HealthBookError::Invalid {
            field: "today".into(),
            reason: "expected YYYY-MM-DD".into(),
        })?;
        self.run(move |b| b.schedule(&person_id, day, rotavirus))
            .await
            .map(|doses| doses.into_iter().map(DoseStatus::from).collect())
    }
}

crate::error_api!(HealthBookError, vault: "health_book", internal: Internal, {
        InvalidFhir => ("health_book.invalid_fhir", false),
        Invalid => ("health_book.invalid", false),
        NotFound => ("health_book.not_found", false),
        CardRefused => ("health_book.card_refused", false),
        TrustBundleRefused => ("health_book.trust_bundle_refused", false),
        Internal => ("health_book.internal", false),
});

/// Reads every vaccination of a FHIR bundle as the WHO DDCC:VS core data set, leniently (ids
/// that are not FHIR ids, references written as `{"id": ...}`, no fullUrls).
#[uniffi::export]
pub fn ddcc_from_fhir(
    bundle_json: String,
) -> Result<Vec<thudo_core::health::ddcc::Vaccination>, HealthBookError> {
    thudo_core::health::ddcc::from_fhir(&bundle_json).map_err(|e| HealthBookError::InvalidFhir {
        detail: e.to_string(),
    })
}

/// The vaccinations as a FHIR `collection` Bundle (Patient, Immunization, and an
/// ImmunizationRecommendation for a next dose), as the WHO's guide maps the data set; import it
/// with `HealthBook.importBundle`.
#[uniffi::export]
pub fn ddcc_to_fhir(vaccinations: Vec<thudo_core::health::ddcc::Vaccination>) -> String {
    thudo_core::health::ddcc::to_fhir(&vaccinations).to_string()
}
