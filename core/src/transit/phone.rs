//! The citizen's phone: holds the credential and the device key, and makes a fresh signed QR
//! every refresh period, offline.

use std::sync::{Arc, Mutex};

use super::qr::{self, QrImage};
use super::wire::{self, CredentialFields, CREDENTIAL_LEN};
use super::TransitError;
use crate::crypto::p256::{self, SoftwareKey};
use crate::vault::Vault;

const COLLECTION: &str = "transit.phone";

/// A host-provided P-256 signer (Secure Enclave, StrongBox) for the device key.
pub trait Signer: Send + Sync {
    /// The public key, SEC1 (compressed or uncompressed).
    fn public_key(&self) -> Result<Vec<u8>, String>;
    /// Signs `message` with ECDSA P-256 / SHA-256; raw r||s or DER.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// Phone settings.
#[derive(Debug, Clone)]
pub struct PhoneOptions {
    /// Seconds between QR refreshes (5-30 is sensible).
    pub refresh_secs: u32,
    /// Warn the app this many seconds before the credential expires.
    pub expiry_warning_secs: u32,
}

impl Default for PhoneOptions {
    fn default() -> Self {
        PhoneOptions {
            refresh_secs: 5,
            expiry_warning_secs: 6 * 3600,
        }
    }
}

/// The QR to show now.
#[derive(Debug, Clone)]
pub struct TransitQr {
    /// The QR text (`HNT1:` + base45).
    pub text: String,
    /// The rendered symbol.
    pub image: QrImage,
    /// When it was made (unix seconds, device clock, like `refresh_at`; the QR itself carries
    /// the time corrected by the clock offset, which validators compare with theirs).
    pub generated_at: u64,
    /// When to ask for the next one (unix seconds, device clock).
    pub refresh_at: u64,
    /// Seconds until the credential expires.
    pub credential_expires_in: i64,
    /// True when the credential expires within the warning period: go online to refresh it.
    pub expiry_warning: bool,
}

enum DeviceKey {
    Software(Box<SoftwareKey>),
    /// The platform's signer and the public key (uncompressed) it gave at open.
    Host(Arc<dyn Signer>, [u8; p256::UNCOMPRESSED_KEY_LEN]),
}

/// A credential held: its bytes and fields.
type Held = ([u8; CREDENTIAL_LEN], CredentialFields);

struct State {
    /// The phone owner's credential.
    owner: Option<Held>,
    /// Dependants' credentials (a child's, an elderly parent's), one per card.
    dependants: Vec<Held>,
    /// Passes bought ahead, until they start (`credential:upcoming:CARD:START:...`).
    upcoming: Vec<Held>,
    counter: u32,
    clock_offset: i64,
    /// The QR shown last, by card.
    cached: std::collections::HashMap<u64, TransitQr>,
}

/// The record id of the owner's credential; a dependant's is `credential:CARD`.
const OWNER_RECORD: &str = "credential";

fn dependant_record(card: u64) -> String {
    format!("credential:{card}")
}

/// The record of the credential held for `card`: the owner's, or that dependant's.
fn held_record(owner: bool, card: u64) -> String {
    if owner {
        OWNER_RECORD.to_owned()
    } else {
        dependant_record(card)
    }
}

impl State {
    fn all(&self) -> impl Iterator<Item = &Held> {
        self.owner.iter().chain(self.dependants.iter())
    }

    /// Device time `now` on the backend's clock (the offset learned at the last sync).
    fn corrected(&self, now: u64) -> u64 {
        (now as i64).saturating_add(self.clock_offset).max(0) as u64
    }

    /// Holds `held` as the owner's credential, or as its card's dependant credential.
    fn set_held(&mut self, owner: bool, held: Held) {
        let card = held.1.card_id;
        if owner {
            if let Some((_, old)) = self.owner.replace(held) {
                self.cached.remove(&old.card_id);
            }
        } else {
            match self.dependants.iter().position(|(_, f)| f.card_id == card) {
                Some(i) => self.dependants[i] = held,
                None => self.dependants.push(held),
            }
        }
        self.cached.remove(&card);
    }
}

/// The record of a pass bought ahead, kept until it starts: by its pass (card, window,
/// product, category, route).
fn upcoming_record(f: &CredentialFields) -> String {
    format!(
        "{UPCOMING_PREFIX}{}:{}:{}:{}:{}:{}",
        f.card_id,
        f.pass_valid_from,
        f.pass_valid_until,
        f.product as u8,
        f.category as u8,
        f.route
    )
}

const UPCOMING_PREFIX: &str = "credential:upcoming:";

/// Whether `f`'s pass is in force at `now` (the backend's clock).
fn in_force(f: &CredentialFields, now: u64) -> bool {
    (u64::from(f.pass_valid_from)..=u64::from(f.pass_valid_until)).contains(&now)
}

/// The same pass: card, product, category, route and window.
fn same_pass(a: &CredentialFields, b: &CredentialFields) -> bool {
    a.card_id == b.card_id
        && a.product == b.product
        && a.category == b.category
        && a.route == b.route
        && a.pass_valid_from == b.pass_valid_from
        && a.pass_valid_until == b.pass_valid_until
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Persisted {
    counter: u32,
    clock_offset: i64,
}

/// Whether `held` is the same pass as `offered` (card, product, category, route, window) and
/// shown longer, or as long under the same issuer key: `offered` is then a late answer (a
/// renewal that arrived after a newer one, a paid order collected again), never installed over
/// it. One as long under another key (the issuer rotated) is installed.
fn supersedes(held: &CredentialFields, offered: &CredentialFields) -> bool {
    same_pass(held, offered)
        && held.with_holder == offered.with_holder
        && (held.not_after > offered.not_after
            || (held.not_after == offered.not_after && held.issuer_key_id == offered.issuer_key_id))
}

/// The transit side of a citizen's phone.
pub struct Phone {
    vault: Arc<Vault>,
    key: DeviceKey,
    public_key: [u8; 33],
    options: PhoneOptions,
    state: Mutex<State>,
}

impl Phone {
    /// Opens the phone's transit state in `vault`. Without a host signer the device key is made
    /// once and kept in the vault.
    pub fn open(
        vault: Arc<Vault>,
        signer: Option<Arc<dyn Signer>>,
        options: PhoneOptions,
    ) -> Result<Phone, TransitError> {
        if options.refresh_secs == 0 {
            return Err(super::invalid("refresh period must be at least 1 s"));
        }
        let (key, public_key) = match signer {
            Some(signer) => {
                let raw = signer
                    .public_key()
                    .map_err(|reason| TransitError::Signer { reason })?;
                let full = p256::decompress(&raw).ok_or_else(|| TransitError::Signer {
                    reason: "the signer's public key is not P-256".into(),
                })?;
                let compressed = p256::compress(&full).ok_or_else(|| super::invalid("bad key"))?;
                (DeviceKey::Host(signer, full), compressed)
            }
            None => {
                let key = match vault.find(COLLECTION, "device_key")? {
                    Some(record) => SoftwareKey::from_pkcs8(&record.body).ok_or_else(|| {
                        TransitError::InvalidCredential {
                            reason: "stored device key is unreadable".into(),
                        }
                    })?,
                    None => {
                        // A first key, unless credentials are held: then the key they bind
                        // is gone, and a new one must not silently orphan them.
                        let orphaned = lost_credentials(&vault, None)?;
                        if !orphaned.is_empty() {
                            return Err(TransitError::KeyLost { cards: orphaned });
                        }
                        let (key, pkcs8) =
                            SoftwareKey::generate().ok_or_else(|| TransitError::Signer {
                                reason: "key generation failed".into(),
                            })?;
                        // Two opens of one fresh vault keep whichever key was stored first:
                        // a phone holding the other would sign QRs no credential binds.
                        let stored = vault.transaction(|tx| -> Result<_, TransitError> {
                            Ok(match tx.get(COLLECTION, "device_key")? {
                                Some(existing) => Some(existing.body),
                                None => {
                                    tx.put(COLLECTION, "device_key", &[], &pkcs8)?;
                                    None
                                }
                            })
                        })?;
                        match stored {
                            Some(first) => SoftwareKey::from_pkcs8(&first).ok_or_else(|| {
                                TransitError::InvalidCredential {
                                    reason: "stored device key is unreadable".into(),
                                }
                            })?,
                            None => key,
                        }
                    }
                };
                let public = key.compressed_public_key();
                (DeviceKey::Software(Box::new(key)), public)
            }
        };
        // Credentials held for another key: the host's key was replaced (a reset keystore, a
        // restored backup), so they can never be shown. Said, not hidden.
        let orphaned = lost_credentials(&vault, Some(&public_key))?;
        if !orphaned.is_empty() {
            return Err(TransitError::KeyLost { cards: orphaned });
        }
        // A phone with no state yet (a first start, or an app reinstalled with its key kept, as
        // the iOS Keychain keeps it) counts on from the clock's seconds: a phone makes well under
        // one QR a second, so its counter keeps growing across a reinstall, as the backend's
        // check of a phone's QR order expects.
        let fresh = || Persisted {
            counter: u32::try_from(crate::net::now_secs()).unwrap_or(u32::MAX),
            clock_offset: 0,
        };
        let persisted: Persisted = match vault.find(COLLECTION, "state")? {
            Some(r) => serde_json::from_slice(&r.body).unwrap_or_else(|_| fresh()),
            None => fresh(),
        };
        let owner = match vault.find(COLLECTION, OWNER_RECORD)? {
            Some(r) => parse_for_key(&r.body, &public_key).ok(),
            None => None,
        };
        let owner_card = owner.as_ref().map(|(_, f)| f.card_id);
        let (mut dependants, mut upcoming): (Vec<Held>, Vec<Held>) = Default::default();
        for r in vault.list(COLLECTION)? {
            if r.id.starts_with(UPCOMING_PREFIX) {
                upcoming.extend(parse_for_key(&r.body, &public_key).ok());
            } else if r.id.starts_with("credential:") {
                dependants.extend(
                    parse_for_key(&r.body, &public_key)
                        .ok()
                        .filter(|(_, f)| Some(f.card_id) != owner_card),
                );
            }
        }
        Ok(Phone {
            vault,
            key,
            public_key,
            options,
            state: Mutex::new(State {
                owner,
                dependants,
                upcoming,
                counter: persisted.counter,
                clock_offset: persisted.clock_offset,
                cached: Default::default(),
            }),
        })
    }

    /// The device public key (compressed SEC1) to send with a credential request.
    pub fn device_public_key(&self) -> [u8; 33] {
        self.public_key
    }

    /// Installs the phone owner's credential, received from the backend (it must bind this
    /// phone's key), in place of the one held; returns the fields of the one now held (or
    /// kept for later). One for the same pass that ends no later than the held one's is a late
    /// answer: the held one stays. A pass that starts later, bought while the held one's pass
    /// is in force (next month's, a week ahead), is kept beside it until it starts or the held
    /// one's pass ends ([`Phone::upcoming_credentials`]), so the rider rides on meanwhile.
    pub fn install_credential(&self, credential: &[u8]) -> Result<CredentialFields, TransitError> {
        self.install(credential, true)
    }

    /// Installs a dependant's credential (a child's or an elderly parent's pass, bought by
    /// their guardian on the dependant's own card, bound to this phone's key), in place of
    /// that card's one if held, as [`Phone::install_credential`] does the owner's (a late
    /// answer is not installed; a pass bought ahead waits). Shown with
    /// [`Phone::current_qr_for`].
    pub fn install_dependant_credential(
        &self,
        credential: &[u8],
    ) -> Result<CredentialFields, TransitError> {
        self.install(credential, false)
    }

    /// Installs `renewed`, the backend's renewal of `replacing` (a credential this phone held
    /// for the owner when `owner`, or a dependant): in its place if it is still there, whatever
    /// its end (an entitlement ending soon shortens a renewal); else as any answer is
    /// ([`Phone::install_credential`]: another was installed meanwhile).
    pub fn install_renewed(
        &self,
        renewed: &[u8],
        replacing: &[u8],
        owner: bool,
    ) -> Result<CredentialFields, TransitError> {
        let (bytes, fields) = parse_for_key(renewed, &self.public_key)?;
        let now = self.corrected_now(crate::net::now_secs());
        {
            let mut state = self.lock();
            // What has started takes its place first, so the renewal lands where it is now.
            self.promote_upcoming(&mut state, now)?;
            let card = fields.card_id;
            let held_there = state
                .all()
                .any(|(b, f)| f.card_id == card && b[..] == *replacing && same_pass(f, &fields));
            if held_there {
                let record = held_record(owner, card);
                self.vault.put(COLLECTION, &record, &[], &bytes)?;
                state.set_held(owner, (bytes, fields.clone()));
                return Ok(fields);
            }
            if let Some(i) = state
                .upcoming
                .iter()
                .position(|(b, f)| b[..] == *replacing && same_pass(f, &fields))
            {
                self.vault
                    .put(COLLECTION, &upcoming_record(&fields), &[], &bytes)?;
                state.upcoming[i] = (bytes, fields.clone());
                return Ok(fields);
            }
        }
        self.install(renewed, owner)
    }

    fn install(&self, credential: &[u8], owner: bool) -> Result<CredentialFields, TransitError> {
        let (bytes, fields) = parse_for_key(credential, &self.public_key)?;
        let now = self.corrected_now(crate::net::now_secs());
        let mut state = self.lock();
        // A pass that has started takes its place first: the new one is weighed against it,
        // never overwritten by it later (July waiting, August bought on the 2nd).
        self.promote_upcoming(&mut state, now)?;
        let card = fields.card_id;
        if owner && state.dependants.iter().any(|(_, f)| f.card_id == card) {
            return Err(super::invalid("this card is a dependant's on this phone"));
        }
        if !owner && state.owner.as_ref().is_some_and(|(_, f)| f.card_id == card) {
            return Err(super::invalid("this card is the phone owner's"));
        }
        let held = if owner {
            state.owner.as_ref()
        } else {
            state.dependants.iter().find(|(_, f)| f.card_id == card)
        };
        if let Some((_, h)) = held.filter(|(_, h)| supersedes(h, &fields)) {
            return Ok(h.clone());
        }
        if let Some((_, u)) = state.upcoming.iter().find(|(_, u)| supersedes(u, &fields)) {
            return Ok(u.clone());
        }
        let held_in_force = held.filter(|(_, h)| h.card_id == card && in_force(h, now));
        // A pass already over, while the held one rides (June's renewal answered after July
        // took its place): a late answer too.
        if let Some((_, h)) = held_in_force.filter(|_| u64::from(fields.pass_valid_until) < now) {
            return Ok(h.clone());
        }
        let ahead = u64::from(fields.pass_valid_from) > now
            && held_in_force.is_some_and(|(_, h)| !same_pass(h, &fields));
        // What waits for the same pass gives way to this newer credential of it.
        let replaced: Vec<String> = state
            .upcoming
            .iter()
            .filter(|(_, u)| same_pass(u, &fields))
            .map(|(_, u)| upcoming_record(u))
            .collect();
        let record = if ahead {
            upcoming_record(&fields)
        } else {
            held_record(owner, card)
        };
        self.vault.transaction(|tx| {
            for old in &replaced {
                tx.delete(COLLECTION, old)?;
            }
            tx.put(COLLECTION, &record, &[], &bytes)?;
            Ok::<_, TransitError>(())
        })?;
        state.upcoming.retain(|(_, u)| !same_pass(u, &fields));
        if ahead {
            state.upcoming.push((bytes, fields.clone()));
        } else {
            state.set_held(owner, (bytes, fields.clone()));
        }
        Ok(fields)
    }

    /// Passes bought ahead, kept until they start (their fields; renewed with the others by
    /// [`super::backend::TransitClient::renew_due`]; put in place by the first QR asked for
    /// once they start, or by [`Phone::start_due_passes`]).
    pub fn upcoming_credentials(&self) -> Vec<CredentialFields> {
        self.lock()
            .upcoming
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The waiting credential of `pass` (a pass bought ahead, as
    /// [`Phone::upcoming_credentials`] lists it): its bytes, its fields, and whether the card
    /// is the owner's.
    pub fn upcoming_credential(
        &self,
        pass: &CredentialFields,
    ) -> Option<(Vec<u8>, CredentialFields, bool)> {
        let state = self.lock();
        let owner = state
            .owner
            .as_ref()
            .is_some_and(|(_, f)| f.card_id == pass.card_id);
        let found = state
            .upcoming
            .iter()
            .find(|(_, f)| same_pass(f, pass))
            .map(|(b, f)| (b.to_vec(), f.clone(), owner));
        found
    }

    /// Puts in place the passes bought ahead whose time has come at device time `now`: they
    /// have started, or the held pass of their card has ended.
    pub fn start_due_passes(&self, now: u64) -> Result<(), TransitError> {
        let mut state = self.lock();
        let corrected = state.corrected(now);
        self.promote_upcoming(&mut state, corrected)
    }

    /// Puts in place, card by card, the earliest pass bought ahead whose time has come at `now`
    /// (the backend's clock): it has started, or the held pass of its card has ended. One the
    /// held credential already covers (a restored old record of it) is dropped; one whose
    /// card is held by no one here (the owner changed cards) waits.
    fn promote_upcoming(&self, state: &mut State, now: u64) -> Result<(), TransitError> {
        let covered: Vec<String> = state
            .upcoming
            .iter()
            .filter(|(_, u)| state.all().any(|(_, h)| supersedes(h, u)))
            .map(|(_, u)| upcoming_record(u))
            .collect();
        if !covered.is_empty() {
            self.vault.transaction(|tx| {
                for record in &covered {
                    tx.delete(COLLECTION, record)?;
                }
                Ok::<_, TransitError>(())
            })?;
            state
                .upcoming
                .retain(|(_, u)| !covered.contains(&upcoming_record(u)));
        }
        loop {
            let due = state
                .upcoming
                .iter()
                .enumerate()
                .filter(|(_, (_, u))| {
                    state.all().any(|(_, h)| {
                        h.card_id == u.card_id
                            && (u64::from(u.pass_valid_from) <= now
                                || u64::from(h.pass_valid_until) < now)
                    })
                })
                .min_by_key(|(_, (_, u))| (u.card_id, u.pass_valid_from))
                .map(|(i, _)| i);
            let Some(i) = due else {
                return Ok(());
            };
            let (bytes, fields) = state.upcoming[i].clone();
            let card = fields.card_id;
            let owner = state.owner.as_ref().is_some_and(|(_, f)| f.card_id == card);
            let record = held_record(owner, card);
            self.vault.transaction(|tx| {
                tx.put(COLLECTION, &record, &[], &bytes)?;
                tx.delete(COLLECTION, &upcoming_record(&fields))?;
                Ok::<_, TransitError>(())
            })?;
            state.upcoming.remove(i);
            state.set_held(owner, (bytes, fields));
        }
    }

    /// Removes a dependant's credential, and the passes bought ahead for the card if any (a
    /// card no longer held here, the owner's former one, included); returns whether there was
    /// any. The owner's is replaced, never removed.
    pub fn remove_credential(&self, card_id: u64) -> Result<bool, TransitError> {
        let mut state = self.lock();
        if state
            .owner
            .as_ref()
            .is_some_and(|(_, f)| f.card_id == card_id)
        {
            return Err(super::invalid(
                "the phone owner's credential is replaced, not removed",
            ));
        }
        let held = state
            .dependants
            .iter()
            .position(|(_, f)| f.card_id == card_id);
        // With the passes bought ahead for the card, if any (also those of a card no longer
        // held here: the owner's former card).
        let waiting: Vec<String> = state
            .upcoming
            .iter()
            .filter(|(_, f)| f.card_id == card_id)
            .map(|(_, f)| upcoming_record(f))
            .collect();
        if held.is_none() && waiting.is_empty() {
            return Ok(false);
        }
        self.vault.transaction(|tx| {
            if held.is_some() {
                tx.delete(COLLECTION, &dependant_record(card_id))?;
            }
            for record in &waiting {
                tx.delete(COLLECTION, record)?;
            }
            Ok::<_, TransitError>(())
        })?;
        if let Some(i) = held {
            state.dependants.remove(i);
        }
        state.upcoming.retain(|(_, f)| f.card_id != card_id);
        state.cached.remove(&card_id);
        Ok(true)
    }

    /// The phone owner's credential's fields, if any.
    pub fn credential(&self) -> Option<CredentialFields> {
        self.lock().owner.as_ref().map(|(_, f)| f.clone())
    }

    /// Every credential held: the owner's first, then dependants'.
    pub fn credentials(&self) -> Vec<CredentialFields> {
        self.lock().all().map(|(_, f)| f.clone()).collect()
    }

    /// Records the offset (server time minus device time, seconds) learned at the last sync;
    /// QR timestamps are corrected by it.
    pub fn set_clock_offset(&self, offset_secs: i64) -> Result<(), TransitError> {
        let mut state = self.lock();
        state.clock_offset = offset_secs;
        state.cached.clear();
        self.persist(&state)
    }

    /// The device's own clock was set (the platform says so: Android's `ACTION_TIME_CHANGED`,
    /// iOS's `NSSystemClockDidChange`). The offset learned at the last sync measured
    /// the old setting, so it is dropped until the next sync: the usual change is a wrong clock
    /// put right, after which the old offset would push every QR out of the validators' window.
    pub fn device_clock_changed(&self) -> Result<(), TransitError> {
        self.set_clock_offset(0)
    }

    fn persist(&self, state: &State) -> Result<(), TransitError> {
        let body = serde_json::to_vec(&Persisted {
            counter: state.counter,
            clock_offset: state.clock_offset,
        })
        .map_err(|e| super::invalid(e.to_string()))?;
        self.vault.put(COLLECTION, "state", &[], &body)?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signs a proof of possession of the device key for the backend: an order's or a
    /// renewal's (`message` starts with [`wire::ORDER_TAG`] or [`wire::RENEW_TAG`], so it can
    /// never be taken for a QR's signature); raw r||s.
    pub fn prove_order(&self, message: &[u8]) -> Result<[u8; 64], TransitError> {
        if !message.starts_with(wire::ORDER_TAG) && !message.starts_with(wire::RENEW_TAG) {
            return Err(super::invalid(
                "a proof starts with the order or renewal tag",
            ));
        }
        self.sign(message)
    }

    /// The credential held for `card_id` (the owner's or a dependant's): its bytes, its
    /// fields, and whether it is the owner's.
    pub fn held_credential(&self, card_id: u64) -> Option<(Vec<u8>, CredentialFields, bool)> {
        let state = self.lock();
        let owner = state
            .owner
            .as_ref()
            .is_some_and(|(_, f)| f.card_id == card_id);
        let held = state
            .all()
            .find(|(_, f)| f.card_id == card_id)
            .map(|(b, f)| (b.to_vec(), f.clone(), owner));
        held
    }

    /// `now` on the backend's clock, as learned at the last sync (`set_clock_offset`).
    pub fn corrected_now(&self, now: u64) -> u64 {
        self.lock().corrected(now)
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], TransitError> {
        match &self.key {
            DeviceKey::Software(key) => key.sign(message).ok_or_else(|| TransitError::Signer {
                reason: "signing failed".into(),
            }),
            DeviceKey::Host(signer, public_key) => {
                let sig = signer
                    .sign(message)
                    .map_err(|reason| TransitError::Signer { reason })?;
                let raw = p256::to_raw_signature(&sig).ok_or_else(|| TransitError::Signer {
                    reason: "the signer returned a malformed signature".into(),
                })?;
                // A platform key replaced behind the phone's back (a keystore reset while the
                // app runs) signs QRs every validator refuses: said here, not at the gate.
                if !p256::verify(public_key, message, &raw) {
                    return Err(TransitError::Signer {
                        reason: "the signer's signature does not verify with its public key".into(),
                    });
                }
                Ok(raw)
            }
        }
    }

    /// The phone owner's QR to show at device time `now` (unix seconds). The same QR is
    /// returned until its refresh time; then a new one is signed.
    pub fn current_qr(&self, now: u64) -> Result<TransitQr, TransitError> {
        let card = self.credential().ok_or(TransitError::NoCredential)?.card_id;
        self.current_qr_for(card, now)
    }

    /// The QR of card `card_id` (the owner's or a dependant's) to show at device time `now`.
    pub fn current_qr_for(&self, card_id: u64, now: u64) -> Result<TransitQr, TransitError> {
        let mut state = self.lock();
        if !state.upcoming.is_empty() {
            let corrected = state.corrected(now);
            // A pass that could not be put in place waits for the next QR; this one is shown.
            if self.promote_upcoming(&mut state, corrected).is_err() {
                log::warn!("a pass bought ahead could not be put in place yet");
            }
        }
        if let Some(cached) = state.cached.get(&card_id) {
            if now < cached.refresh_at
                && now + u64::from(self.options.refresh_secs) >= cached.refresh_at
            {
                return Ok(cached.clone());
            }
        }
        let (credential, fields) = state
            .all()
            .find(|(_, f)| f.card_id == card_id)
            .cloned()
            .ok_or(TransitError::NoCredential)?;
        let corrected = (now as i64)
            .saturating_add(state.clock_offset)
            .clamp(0, u32::MAX as i64) as u32;
        if corrected > fields.not_after {
            return Err(TransitError::CredentialExpired {
                not_after: fields.not_after,
            });
        }
        state.counter = state.counter.wrapping_add(1);
        // The counter is stored before the QR is shown, so a restart never reuses one.
        self.persist(&state)?;
        let message = wire::tap_message(&credential, corrected, state.counter);
        let signature = self.sign(&message)?;
        let text = wire::qr_text(&credential, corrected, state.counter, &signature);
        let image = qr::render(&text).map_err(super::invalid)?;
        let expires_in = i64::from(fields.not_after) - i64::from(corrected);
        let qr = TransitQr {
            text,
            image,
            generated_at: now,
            refresh_at: now + u64::from(self.options.refresh_secs),
            credential_expires_in: expires_in,
            expiry_warning: expires_in <= i64::from(self.options.expiry_warning_secs),
        };
        state.cached.insert(card_id, qr.clone());
        Ok(qr)
    }
}

/// The cards whose stored credentials bind another key than `key` (every stored credential
/// when there is no key).
fn lost_credentials(vault: &Vault, key: Option<&[u8; 33]>) -> Result<Vec<u64>, TransitError> {
    let mut cards = Vec::new();
    for r in vault.list(COLLECTION)? {
        if r.id != OWNER_RECORD && !r.id.starts_with("credential:") {
            continue;
        }
        let Ok(bytes) = <[u8; CREDENTIAL_LEN]>::try_from(r.body.as_slice()) else {
            continue;
        };
        if let Ok(fields) = CredentialFields::decode(&bytes) {
            if key.is_none_or(|k| &fields.device_public_key != k)
                && !cards.contains(&fields.card_id)
            {
                cards.push(fields.card_id);
            }
        }
    }
    Ok(cards)
}

/// Removes the credentials that bind another key than the one `signer` (or, without one, the
/// vault's software key) holds, after [`TransitError::KeyLost`]; returns their cards. The
/// passes themselves stay with the backend: order or restore them for the new key.
pub fn discard_lost_credentials(
    vault: &Vault,
    signer: Option<&dyn Signer>,
) -> Result<Vec<u64>, TransitError> {
    let key: Option<[u8; 33]> = match signer {
        Some(signer) => {
            let raw = signer
                .public_key()
                .map_err(|reason| TransitError::Signer { reason })?;
            let full = p256::decompress(&raw).ok_or_else(|| TransitError::Signer {
                reason: "the signer's public key is not P-256".into(),
            })?;
            p256::compress(&full)
        }
        // The vault's own key; none when the software key itself was lost (then every held
        // credential is). An unreadable one is an error, not taken for none. Pass the same
        // signer the phone opens with.
        None => match vault.find(COLLECTION, "device_key")? {
            Some(record) => Some(
                SoftwareKey::from_pkcs8(&record.body)
                    .map(|k| k.compressed_public_key())
                    .ok_or_else(|| TransitError::InvalidCredential {
                        reason: "stored device key is unreadable".into(),
                    })?,
            ),
            None => None,
        },
    };
    let lost = lost_credentials(vault, key.as_ref())?;
    // Listed and deleted in one transaction: a credential installed meanwhile is not lost.
    vault.transaction(|tx| {
        for r in tx.list(COLLECTION)? {
            if r.id != OWNER_RECORD && !r.id.starts_with("credential:") {
                continue;
            }
            let binds_lost = <[u8; CREDENTIAL_LEN]>::try_from(r.body.as_slice())
                .ok()
                .and_then(|b| CredentialFields::decode(&b).ok())
                .is_some_and(|f| key.is_none_or(|k| f.device_public_key != k));
            if binds_lost {
                tx.delete(COLLECTION, &r.id)?;
            }
        }
        Ok::<_, TransitError>(())
    })?;
    Ok(lost)
}

fn parse_for_key(
    credential: &[u8],
    public_key: &[u8; 33],
) -> Result<([u8; CREDENTIAL_LEN], CredentialFields), TransitError> {
    let bad = |reason: &str| TransitError::InvalidCredential {
        reason: reason.into(),
    };
    let bytes: [u8; CREDENTIAL_LEN] = credential.try_into().map_err(|_| bad("wrong length"))?;
    let fields = CredentialFields::decode(&bytes).map_err(|e| bad(&format!("{e:?}")))?;
    if &fields.device_public_key != public_key {
        return Err(bad("the credential is bound to another device key"));
    }
    Ok((bytes, fields))
}
