//! Where a record came from: entered here, imported from a bundle or a verified health card,
//! published by a facility, or another device's claim; and whether a card still vouches for a
//! record, whichever way the record reached this vault (imported, pulled, restored).

use serde_json::Value;

use super::identity::{fingerprint, holds_identity};
use super::{HealthBook, HealthError, HealthRecord};
use crate::health::shc::{self, TrustStore};
use crate::health::{dcc, fhir};

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Entered on this device.
    Entered,
    /// Imported from a FHIR bundle (not signed).
    FhirImport,
    /// Imported from a signed health card whose signature verified: a SMART Health Card or an
    /// EU Digital COVID Certificate (a vaccine passport).
    HealthCard,
    /// Published by a facility through the backend.
    Server,
    /// Entered or imported on another device of the citizen, and not verified here: a claim,
    /// never shown as verified (a health card claim whose card does not verify lands here).
    OtherDevice,
}

/// Where a record came from and, for a health card, who signed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The source.
    pub source: Source,
    /// The card's issuer (`iss`).
    pub issuer: Option<String>,
    /// The card's signing key id.
    pub kid: Option<String>,
    /// When the card was verified (unix seconds).
    pub verified_at: Option<i64>,
    /// The signed card itself (a compact JWS, or an EU DCC's `HC1:` text), for a health-card
    /// record: the evidence another device of the citizen re-verifies against its own trust
    /// store when it pulls the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// Which entry of the card's bundle this record is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_entry: Option<u32>,
    /// For an EU DCC: the signer's country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// For an EU DCC: the certificate identifier (UVCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<String>,
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
            country: None,
            certificate_id: None,
        }
    }
}

/// A signed card verified again here: what its provenance names and the bundle it carries.
pub(super) struct Reverified {
    pub(super) issuer: String,
    pub(super) kid: String,
    pub(super) country: Option<String>,
    pub(super) certificate_id: Option<String>,
    /// Its resources, in the order a record's `card_entry` counts them.
    pub(super) entries: Vec<Value>,
}

/// Verifies a card as of `at`, authenticated (evidence stays evidence after its expiry): a
/// SMART Health Card (JWS) or an EU DCC (`HC1:`).
pub(super) fn reverify(card: &str, trust: &TrustStore, at: i64) -> Option<Reverified> {
    let (issuer, kid, country, certificate_id, bundle) = if card.starts_with("HC1:") {
        let c = dcc::authenticate(card, &trust.dcc, at).ok()?;
        let bundle = dcc::fhir::bundle(&c);
        (
            c.vouched_issuer(),
            c.kid,
            Some(c.country),
            Some(c.certificate_id),
            bundle,
        )
    } else {
        let c = shc::authenticate(card, trust, at).ok()?;
        (c.issuer, c.kid, None, None, c.fhir_bundle)
    };
    Some(Reverified {
        issuer,
        kid,
        country,
        certificate_id,
        entries: fhir::resources_of_bundle(bundle, card).unwrap_or_default(),
    })
}

/// Whether a card's `entries` vouch for `resource` as their entry number `entry`, the record
/// filed under person `filed_under` (empty: shared, no one's) whose Patient record is
/// `subject`. A Patient must hold the card patient's identity (its identifiers, name and birth
/// date: see `holds_identity`; the card vouches for who the person is, not for details entered
/// here beside it). Any other record must say what that entry says (ids
/// and references aside); if the entry is about the card's patient, the record must be filed
/// under a person, name no other, and that person must be the card's patient: a genuine entry
/// re-pointed or re-filed at someone else, or left shared, fails; that person's profile must
/// hold the card patient's identity.
pub(super) fn card_vouches(
    entries: &[Value],
    entry: u32,
    resource: &Value,
    filed_under: &str,
    subject: Option<&Value>,
) -> bool {
    let Some(vouched) = entries.get(entry as usize) else {
        return false;
    };
    let card_patient = entries
        .iter()
        .find(|e| fhir::resource_type(e) == Some("Patient"));
    if fhir::resource_type(resource) == Some("Patient") {
        return fhir::resource_type(vouched) == Some("Patient")
            && holds_identity(vouched, resource);
    }
    if fingerprint(vouched) != fingerprint(resource) {
        return false;
    }
    let names = fhir::person_of(resource);
    if fhir::person_of(vouched).is_none() {
        // An entry about no one (an Organization): what it says is all there is to check.
        return names.is_none();
    }
    !filed_under.is_empty()
        && names.is_none_or(|p| p == filed_under)
        && matches!((card_patient, subject), (Some(c), Some(s)) if holds_identity(c, s))
}

impl HealthBook<'_> {
    /// For each of `records`, whether the installed `trust` vouches for it: `None` for a record
    /// that is not a health card's; `Some(true)` only when its card is kept with it, still
    /// verifies as of its verification time under today's signers and revocations, names the
    /// signer the record says, and holds this record as the entry it claims (see
    /// `card_vouches`). A record restored from a backup, planted, or kept from before the card
    /// was stored is `Some(false)`: its provenance alone is the writer's word. Each card is
    /// verified once however many of its entries are listed (a signature check is about 90 µs).
    pub fn vouched(
        &self,
        records: &[HealthRecord],
        trust: &TrustStore,
    ) -> Result<Vec<Option<bool>>, HealthError> {
        use std::collections::HashMap;
        let mut cards: HashMap<(&str, i64), Option<Reverified>> = HashMap::new();
        let mut patients: HashMap<&str, Option<HealthRecord>> = HashMap::new();
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let p = &r.provenance;
            if p.source != Source::HealthCard {
                out.push(None);
                continue;
            }
            let (Some(card), Some(at), Some(entry)) = (&p.card, p.verified_at, p.card_entry) else {
                out.push(Some(false));
                continue;
            };
            let checked = cards
                .entry((card.as_str(), at))
                .or_insert_with(|| reverify(card, trust, at));
            let Some(c) = checked else {
                out.push(Some(false));
                continue;
            };
            let signer_named = Some(&c.kid) == p.kid.as_ref()
                && Some(&c.issuer) == p.issuer.as_ref()
                && c.certificate_id == p.certificate_id;
            let subject = if r.resource_type == "Patient" || r.person.is_empty() {
                None
            } else {
                if !patients.contains_key(r.person.as_str()) {
                    let patient = self.get(&format!("Patient/{}", r.person))?;
                    patients.insert(r.person.as_str(), patient);
                }
                patients[r.person.as_str()].as_ref().map(|p| &p.resource)
            };
            out.push(Some(
                signer_named && card_vouches(&c.entries, entry, &r.resource, &r.person, subject),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::card_vouches;
    use serde_json::json;

    fn card() -> Vec<serde_json::Value> {
        vec![
            json!({"resourceType": "Patient", "id": "p0",
                   "identifier": [{"system": "urn:vn:cccd", "value": "001090000001"}],
                   "name": [{"family": "Nguyễn", "given": ["An"]}], "birthDate": "1990-02-03"}),
            json!({"resourceType": "Immunization", "id": "i0", "status": "completed",
                   "patient": {"reference": "Patient/p0"},
                   "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "207"}]},
                   "occurrenceDateTime": "2021-06-01"}),
        ]
    }

    fn me() -> serde_json::Value {
        json!({"resourceType": "Patient", "id": "me",
               "identifier": [{"system": "urn:vn:cccd", "value": "001090000001"}],
               "name": [{"family": "Nguyễn", "given": ["An"]}], "birthDate": "1990-02-03"})
    }

    /// A genuine dose vouches only filed under the card's person; re-filed under someone else,
    /// through a reference that names no Patient or through where it is filed, it does not.
    #[test]
    fn a_dose_vouches_only_under_the_cards_person() {
        let entries = card();
        let owner = me();
        let child = json!({"resourceType": "Patient", "id": "kid",
                           "name": [{"family": "Nguyễn", "given": ["Bé"]}], "birthDate": "2020-01-01"});
        let mut dose = entries[1].clone();
        dose["patient"]["reference"] = "Patient/me".into();
        assert!(card_vouches(&entries, 1, &dose, "me", Some(&owner)));
        assert!(
            !card_vouches(&entries, 1, &dose, "kid", Some(&child)),
            "named me, filed under kid"
        );
        let mut refiled = dose.clone();
        refiled["patient"]["reference"] = "Patient/kid".into();
        assert!(!card_vouches(&entries, 1, &refiled, "kid", Some(&child)));
        let mut unnamed = dose.clone();
        unnamed["patient"]["reference"] = "urn:x".into();
        assert!(
            !card_vouches(&entries, 1, &unnamed, "kid", Some(&child)),
            "names no Patient"
        );
        assert!(
            !card_vouches(&entries, 1, &unnamed, "", None),
            "shared, yet about someone"
        );
        assert!(card_vouches(&entries, 1, &unnamed, "me", Some(&owner)));
        let mut altered = dose.clone();
        altered["occurrenceDateTime"] = "2021-12-24".into();
        assert!(!card_vouches(&entries, 1, &altered, "me", Some(&owner)));
        assert!(
            !card_vouches(&entries, 0, &dose, "me", Some(&owner)),
            "another entry"
        );
        assert!(
            !card_vouches(&entries, 7, &dose, "me", Some(&owner)),
            "no such entry"
        );
    }

    /// A person of the book merged with the card (the book's name first, without accents,
    /// the card's name and identifier added) is the card's person, the Patient and its doses
    /// alike; a profile with the card's identifier but another name and birth date is not.
    #[test]
    fn a_patient_vouches_only_as_the_cards_person() {
        let entries = card();
        let mut merged = me();
        merged["name"] = json!([{"family": "Nguyen", "given": ["An"]},
                                {"family": "Nguyễn", "given": ["An"]}]);
        merged["telecom"] = json!([{"system": "phone", "value": "0900000000"}]);
        assert!(card_vouches(&entries, 0, &merged, "me", None));
        let mut dose = entries[1].clone();
        dose["patient"]["reference"] = "Patient/me".into();
        assert!(card_vouches(&entries, 1, &dose, "me", Some(&merged)));
        let impostor = json!({"resourceType": "Patient", "id": "x",
                              "identifier": [{"system": "urn:vn:cccd", "value": "001090000001"}],
                              "name": [{"family": "Trần", "given": ["Bình"]}], "birthDate": "1985-05-05"});
        assert!(!card_vouches(&entries, 0, &impostor, "x", None));
        // The card's name and identifier added behind another's, a year for a birth date, or
        // a second citizen ID: planted, not the card's person.
        let mut behind = me();
        behind["name"] = json!([{"family": "Trần", "given": ["Bình"]},
                                {"family": "Nguyễn", "given": ["An"]}]);
        assert!(!card_vouches(&entries, 0, &behind, "me", None));
        let mut year = me();
        year["birthDate"] = "1990".into();
        assert!(!card_vouches(&entries, 0, &year, "me", None));
        let mut two_ids = me();
        two_ids["identifier"] = json!([{"system": "urn:vn:cccd", "value": "001090000001"},
                                       {"system": "urn:vn:cccd", "value": "001090099999"}]);
        assert!(!card_vouches(&entries, 0, &two_ids, "me", None));
        // A profile edited here (its name as plain text, an insurance card added) still is.
        let mut edited = me();
        edited["name"] = json!([{"text": "Nguyen  An"}]);
        edited["identifier"] = json!([{"system": "urn:vn:cccd", "value": "001090000001"},
                                      {"system": "urn:vn:bhyt", "value": "HN4010112345678"}]);
        assert!(card_vouches(&entries, 0, &edited, "me", None));
        let mut at_impostor = dose.clone();
        at_impostor["patient"]["reference"] = "Patient/x".into();
        assert!(!card_vouches(
            &entries,
            1,
            &at_impostor,
            "x",
            Some(&impostor)
        ));
        assert!(
            !card_vouches(&entries, 1, &merged, "me", None),
            "a dose's entry"
        );
    }
}
