//! Importing a FHIR bundle or a verified SMART Health Card: every entry accounted for (stored,
//! shared, skipped or refused), Patients matched to people already in the book, references
//! rewritten and checked, all written in one transaction.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::identity::{
    different_people, fingerprint, identity_text, merge_patient, same_person, short_hash, suffixed,
};
use super::{invalid, put, validate, HealthBook, HealthError, HealthRecord, Provenance, Source};
use crate::health::dcc::{self, VerifiedDcc};
use crate::health::fhir::{self, FhirError, Kind};
use crate::health::shc::{self, TrustStore, VerifiedCard};

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
    /// Every liberty taken to keep a record of a bundle as it was written (an id that is not a
    /// FHIR id repaired, a reference written as `{"id": ...}`, a record naming no patient filed
    /// under the bundle's only one).
    pub liberties: Vec<String>,
}

/// The person a record is filed under ("" for a shared resource), or why it cannot be.
fn place(
    r: &Value,
    rtype: &str,
    fallback: Option<&str>,
    chosen: bool,
    linked: bool,
    person_exists: &dyn Fn(&str) -> bool,
) -> Result<String, HealthError> {
    if rtype == "Patient" {
        return Ok(fhir::person_of(r).unwrap_or_default());
    }
    let names_someone = ["subject", "patient", "beneficiary"]
        .iter()
        .any(|f| r.get(f).is_some());
    match fhir::person_of(r) {
        // Imported into a chosen person, a record about someone else in the book does not
        // belong to this import.
        Some(p) if chosen && fallback.is_some_and(|f| f != p) => Err(invalid(
            "subject",
            format!("names Patient/{p}, but the import is into another person"),
        )),
        Some(p) if person_exists(&p) => Ok(p),
        Some(p) => Err(invalid(
            "subject",
            format!("names Patient/{p}, which is neither in this bundle nor in the book"),
        )),
        None if SHARED_TYPES.contains(&rtype) && !names_someone => Ok(String::new()),
        None => match fallback {
            // The chosen person; or the bundle's only patient, for a record the bundle itself
            // ties to that patient (another of their records references it: the caller reports
            // the liberty). A record linked to no one is never guessed into a book.
            Some(p) if chosen || linked || Kind::of(rtype) == Kind::Other => Ok(p.to_owned()),
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

impl HealthBook<'_> {
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
        let mut summary = self.import_resources(
            read.resources,
            read.refused,
            Provenance::of(Source::FhirImport),
            into_person,
            mode,
            now,
        )?;
        let mut liberties = read.liberties;
        liberties.append(&mut summary.liberties);
        summary.liberties = liberties;
        Ok(summary)
    }

    /// Imports a verified SMART Health Card (see [`shc::verify`]) with its provenance:
    /// issuer, key id and time of verification. The issuer and the card's content name its
    /// records, so importing the same card again, even signed anew (issuers sign on every
    /// download, and each signature differs), replaces rather than duplicates. A signed card is
    /// stored whole or not at all.
    pub fn import_card(
        &self,
        card: &VerifiedCard,
        jws: &str,
        into_person: Option<&str>,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        let content = format!("{}\n{}", card.issuer, card.fhir_bundle);
        let resources = fhir::resources_of_bundle(card.fhir_bundle.clone(), &content)?;
        let provenance = Provenance {
            source: Source::HealthCard,
            issuer: Some(card.issuer.clone()),
            kid: Some(card.kid.clone()),
            verified_at: Some(card.verified_at),
            card: Some(jws.to_owned()),
            card_entry: None,
            country: None,
            certificate_id: None,
        };
        self.import_signed(resources, provenance, into_person, now)
    }

    /// A signed card's resources, stored whole or not at all under its provenance.
    fn import_signed(
        &self,
        resources: Vec<Value>,
        provenance: Provenance,
        into_person: Option<&str>,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        self.import_resources(
            resources.into_iter().enumerate().collect(),
            Vec::new(),
            provenance,
            into_person,
            ImportMode::AllOrNothing,
            now,
        )
    }

    /// Imports an authenticated EU Digital COVID Certificate (see [`dcc::authenticate`]) with its
    /// provenance: signer country, key id, certificate id (UVCI) and time of verification. The
    /// records' ids come from the UVCI, so importing it again replaces rather than duplicates.
    /// An expired certificate is imported (a vaccination stays true); it is stored whole or not
    /// at all.
    pub fn import_dcc(
        &self,
        certificate: &VerifiedDcc,
        qr_text: &str,
        into_person: Option<&str>,
        now: u64,
    ) -> Result<ImportSummary, HealthError> {
        let resources = fhir::resources_of_bundle(dcc::fhir::bundle(certificate), qr_text)?;
        let provenance = Provenance {
            source: Source::HealthCard,
            issuer: Some(certificate.vouched_issuer()),
            kid: Some(certificate.kid.clone()),
            verified_at: Some(certificate.verified_at),
            card: Some(qr_text.trim().to_owned()),
            card_entry: None,
            country: Some(certificate.country.clone()),
            certificate_id: Some(certificate.certificate_id.clone()),
        };
        self.import_signed(resources, provenance, into_person, now)
    }

    /// Authenticates an EU DCC `HC1:` text against `trust`'s signers at `now_unix` and imports
    /// it; a certificate that fails any check but its expiry is not imported and its reason is
    /// returned.
    pub fn verify_and_import_dcc(
        &self,
        qr_text: &str,
        trust: &TrustStore,
        now_unix: i64,
        into_person: Option<&str>,
    ) -> Result<ImportSummary, HealthError> {
        let certificate = dcc::authenticate(qr_text, &trust.dcc, now_unix)?;
        self.import_dcc(&certificate, qr_text, into_person, now_unix.max(0) as u64)
    }

    /// Verifies a card (compact JWS) against `trust` at `now_unix` and imports it; a card that
    /// fails any check but its expiry is not imported and its reason is returned (an expired
    /// card is imported: a vaccination stays true, as with an EU certificate).
    pub fn verify_and_import_card(
        &self,
        jws: &str,
        trust: &TrustStore,
        now_unix: i64,
        into_person: Option<&str>,
    ) -> Result<ImportSummary, HealthError> {
        let card = shc::authenticate(jws, trust, now_unix)?;
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
            // Records that a record naming someone references, with whom those records name:
            // the bundle ties a record to a person only when every reference to it comes from
            // that person's records.
            let person_after_renames = |p: String| {
                renames
                    .get(&format!("Patient/{p}"))
                    .and_then(|k| k.strip_prefix("Patient/"))
                    .map(str::to_owned)
                    .unwrap_or(p)
            };
            let mut linked_to: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
            for r in &kept {
                if let Some(p) = fhir::person_of(r) {
                    let mut refs = Vec::new();
                    fhir::references(r, &mut refs);
                    let p = person_after_renames(p);
                    for target in refs {
                        linked_to.entry(target).or_default().insert(p.clone());
                    }
                }
            }
            let linked = |key: &str| {
                linked_to.get(key).is_some_and(|people| {
                    people.len() == 1
                        && people.iter().next().map(String::as_str) == fallback.as_deref()
                })
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
                // The person the record will be filed under, as `place` will file it (a record
                // that names no one goes to the chosen person).
                let rtype = fhir::resource_type(&probe).unwrap_or("").to_owned();
                let person = place(
                    &probe,
                    &rtype,
                    fallback.as_deref(),
                    into_person.is_some(),
                    linked(&key),
                    &person_exists,
                )
                .unwrap_or_default();
                if let Some(existing) = tx.get_doc::<HealthRecord>(&key)? {
                    // A verified record (a signed card's, a facility's) is never replaced by an
                    // unsigned one: the new one is kept beside it.
                    let verified = matches!(
                        existing.provenance.source,
                        Source::HealthCard | Source::Server
                    );
                    let suffix = if verified
                        && provenance.source != existing.provenance.source
                        && fingerprint(&existing.resource) != fingerprint(r)
                    {
                        Some(short_hash(&format!("{person}|{}", fingerprint(r))))
                    } else if existing.person != person && !person.is_empty() {
                        Some(short_hash(&person))
                    } else if existing.person != person {
                        // Shared here, someone's record there.
                        Some(short_hash(&fingerprint(r).to_string()))
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
                        // The new key may itself be taken by someone else's record: another.
                        let mut new_key = suffixed(&key, &suffix);
                        for n in 1..=16 {
                            match tx.get_doc::<HealthRecord>(&new_key)? {
                                // Ours: this person's, from this kind of source (a re-import).
                                Some(taken)
                                    if taken.person != person
                                        || taken.provenance.source != provenance.source =>
                                {
                                    new_key = suffixed(&key, &format!("{suffix}{n}"));
                                }
                                _ => break,
                            }
                        }
                        rekeyed.insert(key.clone(), new_key.clone());
                        renames.insert(key, new_key);
                    }
                }
            }
            // New key -> the key the bundle gave, to report each collision.
            let moved_from: HashMap<String, String> = rekeyed
                .iter()
                .map(|(old, new)| (new.clone(), old.clone()))
                .collect();
            let mut stored_keys: std::collections::HashSet<String> = Default::default();
            let mut pending_refs: Vec<(String, String, bool)> = Vec::new();
            for (mut r, index) in kept.iter().cloned().zip(entries.iter().copied()) {
                let key = fhir::key_of(&r).unwrap_or_default();
                let original_key = key.clone();
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
                        linked(&original_key),
                        &person_exists,
                    )
                });
                let person = match placed {
                    Ok(person) => {
                        let names_no_one = fhir::person_of(&r).is_none();
                        if names_no_one
                            && into_person.is_none()
                            && !person.is_empty()
                            && rtype != "Patient"
                            && Kind::of(&rtype) != Kind::Other
                        {
                            summary.liberties.push(format!(
                                "entry {index}: {} names no patient: filed under \
                                 Patient/{person}, whose records reference it",
                                fhir::key_of(&r).unwrap_or_default()
                            ));
                        }
                        person
                    }
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
                    reason: match moved_from.get(&record.key) {
                        Some(old) => format!(
                            "{old} is another record in the book: kept apart as {}",
                            record.key
                        ),
                        None => String::new(),
                    },
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
}
