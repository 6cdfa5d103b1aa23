//! Signature and credential checks: an issuer key trusted and in force, both signatures of a
//! scanned QR, the credential's own windows, and the memory of credentials already verified (so
//! a rider seen again costs one signature check, not two). No state of the validator: the
//! backend runs the same checks on uploaded taps.

use std::collections::{HashMap, VecDeque};

use crate::crypto::p256;
use crate::transit::issuer::TrustedIssuerKey;
use crate::transit::reason::Reason;
use crate::transit::wire::{self, Payload};

/// The checks of a scanned payload that need no local state: the issuer key is trusted and
/// within its window at `at`, and both signatures verify. The validator runs them on every scan;
/// the backend runs them again on every uploaded tap (a validator's verdict is a claim).
pub fn verify_signatures(
    p: &Payload,
    trusted: &HashMap<u16, TrustedIssuerKey>,
    at: u64,
) -> Result<(), Reason> {
    let device_key = verify_issuer_signature(p, trusted, at)?;
    verify_device_signature(p, &device_key)
}

/// The issuer's signature over the credential, by a trusted key in its window at `at`; returns
/// the credential's device key, decompressed.
pub(super) fn verify_issuer_signature(
    p: &Payload,
    trusted: &HashMap<u16, TrustedIssuerKey>,
    at: u64,
) -> Result<[u8; p256::UNCOMPRESSED_KEY_LEN], Reason> {
    let key = issuer_key_in_force(p, trusted, at)?;
    let issuer_message = wire::credential_message(p.credential_body());
    if !p256::verify(&key.public_key, &issuer_message, p.issuer_signature()) {
        return Err(Reason::BadIssuerSignature);
    }
    p256::decompress(&p.fields.device_public_key).ok_or(Reason::BadDeviceSignature)
}

/// The trusted issuer key the credential names, if it is in its window at `at`.
pub(super) fn issuer_key_in_force<'k>(
    p: &Payload,
    trusted: &'k HashMap<u16, TrustedIssuerKey>,
    at: u64,
) -> Result<&'k TrustedIssuerKey, Reason> {
    let key = trusted
        .get(&p.fields.issuer_key_id)
        .ok_or(Reason::UnknownIssuer)?;
    if at < u64::from(key.valid_from) || at > u64::from(key.valid_until) {
        return Err(Reason::IssuerKeyExpired);
    }
    Ok(key)
}

/// The phone's signature over this QR, by the credential's device key.
pub(super) fn verify_device_signature(p: &Payload, device_key: &[u8]) -> Result<(), Reason> {
    let tap_message = wire::tap_message(&p.credential, p.timestamp, p.counter);
    if !p256::verify(device_key, &tap_message, &p.device_signature) {
        return Err(Reason::BadDeviceSignature);
    }
    Ok(())
}

/// The credential's own windows at `at`: not past its not-after, inside the pass's validity.
pub fn check_windows(f: &wire::CredentialFields, at: u64) -> Result<(), Reason> {
    if at > u64::from(f.not_after) {
        return Err(Reason::CredentialExpired);
    }
    if at < u64::from(f.pass_valid_from) {
        return Err(Reason::NotYetValid);
    }
    if at > u64::from(f.pass_valid_until) {
        return Err(Reason::PassExpired);
    }
    Ok(())
}

/// How many verified credentials a validator remembers (about 1.3 MB): a bus sees fewer riders
/// than this between two deny-list updates.
pub const VERIFIED_CREDENTIALS: usize = 4_096;

/// Credentials whose issuer signature this validator has verified, whole (signed body and
/// signature), with their device keys decompressed: a rider seen again costs one signature
/// check (the phone's, over the new QR), not two, and no point decompression. Forgotten when
/// the trusted keys or the deny list change; oldest first when full.
#[derive(Default)]
pub(super) struct VerifiedCredentials {
    device_keys: HashMap<[u8; wire::CREDENTIAL_LEN], [u8; p256::UNCOMPRESSED_KEY_LEN]>,
    order: VecDeque<[u8; wire::CREDENTIAL_LEN]>,
}

impl VerifiedCredentials {
    pub(super) fn device_key(
        &self,
        credential: &[u8; wire::CREDENTIAL_LEN],
    ) -> Option<&[u8; p256::UNCOMPRESSED_KEY_LEN]> {
        self.device_keys.get(credential)
    }

    pub(super) fn insert(
        &mut self,
        credential: [u8; wire::CREDENTIAL_LEN],
        device_key: [u8; p256::UNCOMPRESSED_KEY_LEN],
    ) {
        if self.order.len() >= VERIFIED_CREDENTIALS {
            if let Some(oldest) = self.order.pop_front() {
                self.device_keys.remove(&oldest);
            }
        }
        if self.device_keys.insert(credential, device_key).is_none() {
            self.order.push_back(credential);
        }
    }

    pub(super) fn clear(&mut self) {
        self.device_keys.clear();
        self.order.clear();
    }
}
