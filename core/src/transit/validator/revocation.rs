//! The validator's side of the deny list: installing a signed list, restoring the stored one
//! (even after a key rotation), how current it is, and whether it names a ticket.

use super::{Validator, STATE_COLLECTION};
use crate::crypto::p256;
use crate::transit::deny_list::{DenyList, DenyListStatus};
use crate::transit::wire;
use crate::transit::TransitError;

/// How far a validator's clock may be behind its deny list's issue time (the backend's clock)
/// before the list counts as stale.
pub const CLOCK_BEHIND_SECS: u64 = 300;

impl Validator {
    /// The deny list version in force.
    pub fn deny_list_version(&self) -> u32 {
        self.deny.version
    }

    /// How current the deny list is at `now` (unix seconds). A validator whose clock is more
    /// than [`CLOCK_BEHIND_SECS`] behind its list's issue time cannot tell an expired ticket
    /// (a reset clock, a spoofed time source, a rider's phone set back to match): its list is
    /// reported stale, so a validator set to fail closed refuses until its clock is right. A
    /// list no key trusted now vouches for (its signer rotated out, or none verified it since
    /// the validator started) is stale too: its date is nobody's word.
    pub fn deny_list_status(&self, now: u64) -> DenyListStatus {
        let age_secs = now.saturating_sub(u64::from(self.deny.issued_at));
        let max = u64::from(self.config.max_deny_list_age_secs);
        let clock_behind = u64::from(self.deny.issued_at) > now.saturating_add(CLOCK_BEHIND_SECS);
        DenyListStatus {
            version: self.deny.version,
            issued_at: self.deny.issued_at,
            age_secs,
            stale: self.deny.version == 0
                || (max > 0 && age_secs > max)
                || clock_behind
                || !self.deny_vouched(),
            needs_refresh: !self.deny_vouched(),
        }
    }

    /// Whether a key trusted now signed the list in force (or there is none yet): only then
    /// does its version stand as the floor against a rollback.
    fn deny_vouched(&self) -> bool {
        !self.deny_unverified
            && self
                .deny_signer
                .is_none_or(|k| self.trusted.contains_key(&k))
    }

    /// The list stored at the last update, when no key trusted now verifies it: after a key
    /// rotation, or as a restored backup planted it (a backup proves only that its writer knew
    /// the passphrase they chose). Its entries still apply, since a revocation must survive a
    /// rotation and an unverified list can only refuse more; nothing else of it is believed:
    /// the validator starts, reports the list stale and in need of a refresh, and the next
    /// list of a trusted key replaces it whatever its version (so neither a compromised key's
    /// top version nor a planted one can hold back the backend's lists). A key rotation never
    /// bricks a validator.
    pub(super) fn restore_deny_list(&mut self, signed: &[u8]) {
        if self.apply_deny_list(signed, false).is_ok() {
            return;
        }
        if let Some((list, _, _)) = DenyList::decode(signed) {
            self.deny_cards = list.cards.iter().copied().collect();
            self.deny_devices = list.devices.iter().copied().collect();
            self.deny = list;
            self.deny_unverified = true;
        }
    }

    /// Installs a signed deny list if its signature verifies with a trusted issuer key, it was
    /// issued within that key's window, and its version is newer than the current one, or the
    /// same version issued later (which keeps the list fresh while nothing is revoked); any
    /// version replaces a list whose signer is no longer trusted. The swap is atomic: a bad
    /// list changes nothing.
    pub fn update_deny_list(&mut self, signed: &[u8]) -> Result<u32, TransitError> {
        self.apply_deny_list(signed, true)
    }

    fn apply_deny_list(&mut self, signed: &[u8], persist: bool) -> Result<u32, TransitError> {
        let bad = |reason: &str| TransitError::InvalidSignedData {
            reason: reason.into(),
        };
        let (list, key_id, body_len) =
            DenyList::decode(signed).ok_or_else(|| bad("malformed deny list"))?;
        if signed.len() != body_len + 64 {
            return Err(bad("malformed deny list"));
        }
        let key = self
            .trusted
            .get(&key_id)
            .ok_or_else(|| bad("deny list signed by an unknown key"))?;
        let message = [DenyList::TAG, &signed[..body_len]].concat();
        if !p256::verify(&key.public_key, &message, &signed[body_len..]) {
            return Err(bad("deny list signature does not verify"));
        }
        // A key signs lists while it is current: one dated outside its window (far in the
        // future, so that it never goes stale) is not the backend's.
        if !(key.valid_from..=key.valid_until).contains(&list.issued_at) {
            return Err(bad("deny list issued outside its key's window"));
        }
        // The same version signed again later only says it is still current (the backend
        // signs its list afresh on every feed): taken, so a quiet day leaves no validator
        // stale. An older version, or the same one no fresher, is a rollback.
        let fresher_same =
            list.version == self.deny.version && list.issued_at > self.deny.issued_at;
        if persist && self.deny_vouched() && list.version <= self.deny.version && !fresher_same {
            return Err(bad(&format!(
                "deny list version {} is not newer than {}",
                list.version, self.deny.version
            )));
        }
        if persist {
            self.vault.put(STATE_COLLECTION, "deny_list", &[], signed)?;
        }
        self.deny_cards = list.cards.iter().copied().collect();
        self.deny_devices = list.devices.iter().copied().collect();
        self.deny = list;
        self.deny_signer = Some(key_id);
        self.deny_unverified = false;
        self.verified.clear();
        Ok(self.deny.version)
    }

    /// Whether the deny list names the card or the phone's key.
    pub(super) fn revoked(&self, f: &wire::CredentialFields) -> bool {
        self.deny_cards.contains(&f.card_id)
            || self
                .deny_devices
                .contains(&DenyList::device_hash(&f.device_public_key))
    }
}
