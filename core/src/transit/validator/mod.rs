//! The bus validator: accepts or rejects a scanned QR offline, and keeps a durable tap log.
//!
//! This module holds the [`Validator`] itself: its settings, opening it over a vault (the trusted
//! keys, the deny list, the replay and passback memory restored), and the path of a scan from
//! decision to a durable tap. The rest is split by concern, in two kinds of module:
//!
//! - what the validator is made of, importing nothing from this module: `verdict` (the
//!   [`Verdict`]), `signatures` (signature and credential checks, verified credentials),
//!   `replay` (the memory of used QRs), `entries` (what an exit gate keeps of entries),
//!   `tap_log` (the [`Tap`] and its stored record);
//! - what it does, each an `impl Validator` that nothing else imports: `rules` (the decision),
//!   `revocation` (installing, restoring and checking the deny list), `entry_feed` (taking in
//!   an exit gate's entries), `tap_store` (the tap log in the vault), `export` (upload and
//!   acknowledgement), `inspect` (inspecting a ticket without using it).
//!
//! [`Reason`] and [`DenyList`] live in leaf modules of `transit` and are re-exported here, as
//! are the public items of the modules above: every path of this module is as it was.

mod entries;
mod entry_feed;
mod export;
mod inside;
mod inspect;
mod replay;
mod revocation;
mod rules;
mod signatures;
mod tap_log;
mod tap_store;
mod verdict;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub use super::deny_list::{DenyList, DenyListStatus};
pub use super::reason::Reason;
pub use entries::EntryFeedStatus;
pub use revocation::CLOCK_BEHIND_SECS;
pub use signatures::{check_windows, verify_signatures, VERIFIED_CREDENTIALS};
pub use tap_log::{Tap, TapLogStatus, MAX_LOGGED_REJECTED, TAP_EXPORT_LIMIT};
pub use verdict::Verdict;

use super::issuer::TrustedIssuerKey;
use super::metro::{Gate, GateDirection};
use super::TransitError;
use crate::crypto::p256;
use crate::vault::Vault;
use entries::{EntryFeedPosition, HeldEntry};
use replay::ReplayCache;
use signatures::VerifiedCredentials;

/// The tap log: one record per logged tap, named by its zero-padded sequence number.
const TAP_COLLECTION: &str = "transit.tap";
/// The validator's state: the deny list, the tap log's numbers, an exit gate's feed position,
/// the next inspection number.
const STATE_COLLECTION: &str = "transit.validator";

/// Taps decrypted per page when the log is read.
const TAP_PAGE: usize = 1_000;
const TAP_LOG_STATE: &str = "tap_log";

/// Validator settings.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// The route this bus serves.
    pub route: u16,
    /// Oldest QR accepted, seconds before the validator's clock.
    pub max_age_secs: u32,
    /// Newest QR accepted, seconds after the validator's clock (clock skew tolerance).
    pub max_future_secs: u32,
    /// After an accept, the same card is refused for this long.
    pub passback_secs: u32,
    /// Most QRs remembered for replay detection (older ones fall out of the window anyway).
    pub replay_capacity: usize,
    /// Taps buffered before the tap log commits (one transaction per batch).
    pub tap_batch: usize,
    /// A deny list issued longer ago than this is stale (0: never stale). The validator
    /// reports it ([`Validator::deny_list_status`]) so it can fetch a fresh one.
    pub max_deny_list_age_secs: u32,
    /// With a stale (or no) deny list: refuse every scan (`true`, fail closed: no revoked
    /// card can ride, but nobody rides) or keep deciding with the list it has (`false`,
    /// fail open, the default: riders are never stranded by a validator that lost its network;
    /// the backend still refuses to charge revoked cards and records them).
    pub fail_closed_when_stale: bool,
    /// The metro gate this validator is, if it is one (`route` is then its line's route code).
    /// `None`: a bus validator.
    pub gate: Option<Gate>,
    /// An exit gate refuses a card with no known entry ([`Reason::NoEntry`]) only while its
    /// entry feed is complete up to at most this long ago; with an older feed it lets the rider
    /// out and the backend prices the journey from the taps, so a lost link never locks riders
    /// in. Keep it below the shortest ride between two stations. An entry gate refuses a card
    /// already inside ([`Reason::AlreadyInside`]) only while its inside feed knows the exits
    /// up to at most this long ago.
    pub max_entry_feed_age_secs: u32,
    /// How long an exit gate honours an entry (default a day: past the fare table's journey
    /// time the backend charges the maximum fare, but a slow rider is never kept in).
    pub entry_honoured_secs: u32,
    /// Which product rides which mode and route: the operator's tariff (the one shipped
    /// with the library by default).
    pub tariff: Arc<super::tariff::Tariff>,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            route: 0,
            max_age_secs: 45,
            max_future_secs: 15,
            passback_secs: 120,
            replay_capacity: 100_000,
            tap_batch: 64,
            max_deny_list_age_secs: 86_400,
            fail_closed_when_stale: false,
            gate: None,
            max_entry_feed_age_secs: 60,
            entry_honoured_secs: super::metro::ENTRY_HONOURED_SECS as u32,
            tariff: Arc::new(super::tariff::shipped().clone()),
        }
    }
}

/// An offline validator. Not thread-safe by itself: one scanner feeds it (the FFI wraps it in a
/// mutex).
pub struct Validator {
    vault: Arc<Vault>,
    config: ValidatorConfig,
    trusted: HashMap<u16, TrustedIssuerKey>,
    deny: DenyList,
    deny_cards: HashSet<u64>,
    deny_devices: HashSet<[u8; 32]>,
    replay: ReplayCache,
    verified: VerifiedCredentials,
    last_accept: HashMap<u64, u64>,
    /// When a ticket that needs no holder was last accepted here, by its phone key: a
    /// dependant's ticket of the same phone rides only soon after.
    holders: HashMap<[u8; 33], u64>,
    pending: Vec<Tap>,
    /// The log's numbers and counters, as they will be stored with the next commit.
    log: TapLogStatus,
    /// The same, as last committed.
    stored_log: TapLogStatus,
    /// The list in force was restored without a trusted key's signature over it (see
    /// `restore_deny_list`): its entries apply, its version and date vouch for nothing.
    deny_unverified: bool,
    /// The issuer key that signed the list in force: its version floor holds only while that
    /// key is trusted.
    deny_signer: Option<u16>,
    /// An exit gate's entries by card: the newest per card, open or used by an exit here.
    entries: HashMap<u64, HeldEntry>,
    /// Its feed's cursor and completeness.
    entry_feed: EntryFeedPosition,
    /// Cards whose entries exits used, not yet committed: marked used with their taps.
    consumed: Vec<u64>,
    /// Pay-as-you-go cards that reached today's cap, from the feed, and when today ends.
    capped: (HashSet<u64>, u64),
    /// An entry gate's cards inside the network, from its inside feed.
    inside: inside::Inside,
}

impl Validator {
    /// A state record, `None` when it does not decrypt (damaged on disk): the validator starts
    /// without it (a deny list then counts as missing, so stale) rather than not at all.
    fn readable(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<crate::vault::Record>, TransitError> {
        match self.vault.find(collection, id) {
            Err(crate::vault::VaultError::CorruptRecord { .. }) => {
                log::warn!(collection, id; "a validator record that does not decrypt was left out");
                Ok(None)
            }
            other => Ok(other?),
        }
    }

    /// Opens a validator over `vault`: restores the deny list and, from the tap log not yet
    /// uploaded, the replay and passback memory (so a reboot does not open a replay window).
    pub fn open(
        vault: Arc<Vault>,
        trusted: Vec<TrustedIssuerKey>,
        config: ValidatorConfig,
    ) -> Result<Validator, TransitError> {
        if config.replay_capacity == 0 || config.tap_batch == 0 {
            return Err(super::invalid(
                "replay capacity and tap batch must be at least 1",
            ));
        }
        let mut validator = Validator {
            vault,
            trusted: HashMap::new(),
            deny: DenyList::default(),
            deny_cards: HashSet::new(),
            deny_devices: HashSet::new(),
            replay: ReplayCache {
                seen: HashSet::new(),
                order: VecDeque::new(),
                capacity: config.replay_capacity,
            },
            verified: VerifiedCredentials::default(),
            last_accept: HashMap::new(),
            holders: HashMap::new(),
            pending: Vec::new(),
            log: TapLogStatus::default(),
            stored_log: TapLogStatus::default(),
            deny_unverified: false,
            deny_signer: None,
            entries: HashMap::new(),
            entry_feed: EntryFeedPosition::default(),
            consumed: Vec::new(),
            capped: (HashSet::new(), 0),
            inside: inside::Inside::default(),
            config,
        };
        if validator.is_exit_gate() {
            validator.restore_entries()?;
        }
        validator.set_trusted_keys(trusted)?;
        if let Some(record) = validator.readable(STATE_COLLECTION, "deny_list")? {
            validator.restore_deny_list(&record.body);
        }
        if let Some(record) = validator.readable(STATE_COLLECTION, TAP_LOG_STATE)? {
            if let Ok(log) = serde_json::from_slice::<TapLogStatus>(&record.body) {
                validator.log = log;
            }
        }
        // Only the newest taps matter to replay and passback: read the log backwards, a page at
        // a time, until the taps are older than the window before the newest one.
        let (horizon, window) = (validator.horizon(), validator.window());
        let mut newest_at = None;
        let recent = validator.taps_newest_first(|tap| {
            let newest = *newest_at.get_or_insert(tap.at);
            tap.at + window >= newest
        })?;
        if let Some(newest) = recent.first() {
            // A log written before the numbers were stored: continue after its newest tap.
            validator.log.next_seq = validator.log.next_seq.max(newest.seq + 1);
        }
        validator.log.next_seq = validator.log.next_seq.max(1);
        validator.stored_log = validator.log.clone();
        for tap in recent.into_iter().rev() {
            if let (Some(card), Some(ts), Some(counter)) =
                (tap.card_id, tap.qr_timestamp, tap.qr_counter)
            {
                if tap.accepted || tap.reason == Reason::Passback {
                    validator
                        .replay
                        .insert(tap.at, (card, ts, counter), horizon);
                }
                if tap.accepted {
                    // At an exit gate a tap moments after the last one let out was the one
                    // repeat allowed: as live, it ends the window instead of moving it.
                    let repeat =
                        validator.is_exit_gate() && validator.let_out_just_now(card, tap.at);
                    if repeat {
                        validator.last_accept.remove(&card);
                    } else {
                        validator.last_accept.insert(card, tap.at);
                    }
                }
            }
            if let Some(key) = tap.accepted.then(|| holder_key(&tap)).flatten() {
                validator.holders.insert(key, tap.at);
            }
        }
        Ok(validator)
    }

    /// Replaces the trusted issuer keys (each must be an uncompressed P-256 point).
    pub fn set_trusted_keys(&mut self, keys: Vec<TrustedIssuerKey>) -> Result<(), TransitError> {
        let mut trusted = HashMap::new();
        for key in keys {
            if p256::decompress(&key.public_key).as_ref().map(|k| &k[..])
                != Some(&key.public_key[..])
            {
                return Err(TransitError::InvalidSignedData {
                    reason: format!(
                        "issuer key {} is not an uncompressed P-256 point",
                        key.key_id
                    ),
                });
            }
            trusted.insert(key.key_id, key);
        }
        self.trusted = trusted;
        self.verified.clear();
        Ok(())
    }

    fn horizon(&self) -> u64 {
        u64::from(self.config.max_age_secs) + u64::from(self.config.max_future_secs)
    }

    /// How long a tap matters to later decisions: the replay horizon, the passback time, or
    /// the time a dependant's ticket may follow its holder's.
    fn window(&self) -> u64 {
        self.horizon()
            .max(u64::from(self.config.passback_secs))
            .max(crate::transit::TRAVEL_TOGETHER_SECS)
    }

    /// Takes the feed's pay-as-you-go cards that reached today's cap (until `until`, the end of
    /// the day): their let-throughs say the ride is free. Informational only, and not kept
    /// across restarts (the next feed brings it again).
    pub fn set_capped_cards(&mut self, cards: &[u64], until: u64) {
        self.capped = (cards.iter().copied().collect(), until);
    }

    /// The metro gate this validator is, if it is one.
    pub fn gate(&self) -> Option<Gate> {
        self.config.gate
    }

    fn is_exit_gate(&self) -> bool {
        self.config
            .gate
            .is_some_and(|g| g.direction == GateDirection::Exit)
    }

    /// Whether this validator is a metro entry gate.
    pub fn is_entry_gate(&self) -> bool {
        self.config
            .gate
            .is_some_and(|g| g.direction == GateDirection::Entry)
    }

    /// Decides on one scanned text at validator time `now` (unix seconds) and returns the
    /// verdict only once its tap is durable in the log (one transaction): a verdict shown is a
    /// tap stored, whatever happens to the process next.
    pub fn validate(&mut self, text: &str, now: u64) -> Result<Verdict, TransitError> {
        let waiting = self.pending.len();
        // A commit that fails, here or inside the deferred call (a full batch), leaves the
        // verdict unshown: its tap is forgotten, so it is neither stored nor charged later, and
        // its QR is not remembered as used.
        let shown = self
            .validate_deferred(text, now)
            .and_then(|verdict| self.flush().map(|()| verdict));
        if shown.is_err() && self.pending.len() > waiting {
            if let Some(tap) = self.pending.pop() {
                self.forget(&tap);
            }
        }
        shown
    }

    fn forget(&mut self, tap: &Tap) {
        if let (Some(card), Some(ts), Some(counter)) =
            (tap.card_id, tap.qr_timestamp, tap.qr_counter)
        {
            let key = (card, ts, counter);
            // Only a tap that put its QR in the replay memory takes it out: a refused replay
            // must not make the QR it replayed new again.
            let remembered_here = tap.accepted || tap.reason == Reason::Passback;
            if remembered_here && self.replay.seen.remove(&key) {
                self.replay.order.retain(|(_, k)| *k != key);
            }
            if tap.accepted && self.last_accept.get(&card) == Some(&tap.at) {
                self.last_accept.remove(&card);
            }
        }
        if let Some(key) = tap.accepted.then(|| holder_key(tap)).flatten() {
            if self.holders.get(&key) == Some(&tap.at) {
                self.holders.remove(&key);
            }
        }
        if !tap.accepted {
            self.log.logged_rejected = self.log.logged_rejected.saturating_sub(1);
        }
        if let Some(i) = self.consumed.iter().position(|c| Some(*c) == tap.card_id) {
            let card = self.consumed.swap_remove(i);
            if let Some(held) = self.entries.get_mut(&card) {
                held.used = false;
            }
        }
    }

    /// Decides like [`Validator::validate`] but leaves the tap in memory until [`Validator::flush`]
    /// (or until `tap_batch` taps wait): group commit for a caller that shows no verdict before
    /// its flush returns (`thudo validate` writes verdicts out only after flushing).
    pub fn validate_deferred(&mut self, text: &str, now: u64) -> Result<Verdict, TransitError> {
        let (verdict, payload) = self.decide(text, now);
        log::debug!(accepted = verdict.accepted, reason:? = verdict.reason; "scan decided");
        let Some(payload) = payload else {
            // Unreadable scans are counted, never logged one by one: junk cannot fill the disk.
            self.log.unreadable_scans += 1;
            return Ok(verdict);
        };
        if !verdict.accepted {
            if self.log.logged_rejected >= MAX_LOGGED_REJECTED {
                self.log.rejected_not_logged += 1;
                return Ok(verdict);
            }
            self.log.logged_rejected += 1;
        }
        let tap = Tap {
            seq: self.log.next_seq,
            at: now,
            route: self.config.route,
            accepted: verdict.accepted,
            reason: verdict.reason,
            card_id: verdict.card_id,
            product: verdict.product,
            qr_timestamp: Some(payload.timestamp),
            qr_counter: Some(payload.counter),
            qr: Some(text.trim_end_matches(['\r', '\n']).to_owned()),
            gate: self.config.gate,
        };
        // Numbers are never reused: the next one is stored with each commit.
        self.log.next_seq += 1;
        self.pending.push(tap);
        if self.pending.len() >= self.config.tap_batch {
            self.flush()?;
        }
        Ok(verdict)
    }
}

/// The phone key of a logged tap whose ticket needs no holder (a holder's own), if its scan is
/// kept and readable.
fn holder_key(tap: &Tap) -> Option<[u8; 33]> {
    let payload = crate::transit::wire::Payload::from_qr_text(tap.qr.as_deref()?).ok()?;
    (!payload.fields.with_holder).then_some(payload.fields.device_public_key)
}
