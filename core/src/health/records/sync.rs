//! Records pulled from the backend: a facility's resource, or one a device of the citizen
//! pushed, whose claimed provenance is kept only as far as it is proven here (a health card is
//! verified again against this device's trust store).

use serde_json::Value;

use super::provenance::{card_vouches, reverify};
use super::{validate, HealthError, HealthRecord, Provenance, Source, SYNCED};
use crate::changes::Collection;
use crate::health::fhir;
use crate::health::shc::TrustStore;
use crate::vault::VaultTx;

/// The provenance a pulled, device-pushed record earns here: a health-card claim is kept only
/// if its card verifies against `trust` and vouches for the record as the entry it claims; our
/// own record echoed back keeps its provenance; anything else is another device's word. A
/// record whose person's Patient is not here yet keeps its card on the rest of the evidence;
/// the profile is checked when it is read ([`super::HealthBook::vouched`]).
fn earned_provenance(
    tx: &VaultTx<'_>,
    claimed: Option<Provenance>,
    resource: &Value,
    person: &str,
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
            if let Some(card) = reverify(jws, trust, at) {
                let about_someone =
                    !person.is_empty() && fhir::resource_type(resource) != Some("Patient");
                let subject = if about_someone {
                    tx.get_doc::<HealthRecord>(&format!("Patient/{person}"))?
                        .map(|p| p.resource)
                } else {
                    None
                };
                // A dose pulled before its Patient (a pull's pages come in any order) keeps
                // its card: whether the profile holds the card's identity is asked when the
                // record is read (`HealthBook::vouched`), once the Patient is here.
                let card_patient = card
                    .entries
                    .iter()
                    .find(|e| fhir::resource_type(e) == Some("Patient"));
                let subject = match subject {
                    None if about_someone => card_patient.cloned(),
                    known => known,
                };
                if card_vouches(&card.entries, entry, resource, person, subject.as_ref()) {
                    return Ok(Provenance {
                        source: Source::HealthCard,
                        issuer: Some(card.issuer),
                        kid: Some(card.kid),
                        // Verified here as of the time the card was valid for the other device.
                        verified_at: Some(at),
                        card: Some(jws.clone()),
                        card_entry: Some(entry),
                        country: card.country,
                        certificate_id: card.certificate_id,
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
        Some(claim) => {
            earned_provenance(tx, claim, &resource, &person, local.as_ref(), trust, now)?
        }
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

/// `health.records` as a device syncs it: a pulled record is stored by [`store_pulled`], its
/// health-card provenance re-verified against `trust` (this device's trust store).
pub fn synced(trust: Option<std::sync::Arc<TrustStore>>) -> Collection {
    Collection::in_vault(SYNCED, move |tx, id, payload, now| {
        // Filed under its own key only: a change whose id names another record (a facility's)
        // must not replace that one here (a server that does not refuse it may pass it on).
        let resource = payload.get("resource").unwrap_or(payload);
        if fhir::key_of(resource).as_deref() != Some(id) {
            return Ok(false);
        }
        match store_pulled(tx, payload, trust.as_deref(), now) {
            Ok(stored) => Ok(stored),
            Err(HealthError::Vault(e)) => Err(e),
            Err(_) => Ok(false),
        }
    })
}
