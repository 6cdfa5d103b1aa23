//! The backend's storage layer. [`Storage`] is what the HTTP layer needs. [`SqlStorage`]
//! implements it once, over two engines: [`SqliteStorage`] on one embedded SQLite file
//! (nothing to install; the default) and [`PostgresStorage`] for a deployment of several
//! instances on one PostgreSQL. Every method is one transaction; the change log is an
//! append-only table ordered by a sequence. docs/deployment.md says how the rules stay exact
//! with several instances.

pub mod engine;
mod postgres;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use ring::digest;
use serde_json::Value;
use thudo_core::changes::hlc::Hlc;
use thudo_core::changes::ConflictPolicy;
use thudo_core::sync::protocol::{self, Change, Mutation, Outcome, PushResult};
use thudo_core::transit::metro::REPEAT_TAP_SECS;
use thudo_core::transit::validator::Tap;
use thudo_core::transit::{trips, Product};

use crate::fares::FarePolicy;
use engine::{big, params, Engine, Row, Tx};
pub use postgres::{create_database, PostgresEngine, DEFAULT_POOL_SIZE};
pub use sqlite::SqliteEngine;

/// A storage failure (a 500 for the client, which retries).
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

/// Result of storage calls.
pub type Result<T> = std::result::Result<T, StorageError>;

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Device id.
    pub id: String,
    /// The citizen's account.
    pub account_id: String,
    /// `phone` or `validator`.
    pub role: String,
    /// The account's party cell, if a member.
    pub cell: Option<String>,
    /// The account's transit card number.
    pub card_id: u64,
}

/// An enrolled validator (a bus or a metro gate), as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ValidatorRecord {
    /// Validator id.
    pub id: String,
    /// The name the validator gave itself at enrolment.
    pub name: String,
    /// The operator's label of the enrolment ("bus 32, front door").
    pub label: String,
    /// The route it is bound to (a bus), if any: fares use it, not what the validator says.
    pub route: Option<u16>,
    /// The gate it is bound to (a metro station gate), if any.
    pub gate: Option<String>,
    /// When it enrolled (unix seconds).
    pub enrolled_at: i64,
    /// When the operator decommissioned it; its calls are refused from then on.
    pub decommissioned_at: Option<i64>,
}

/// An operator-issued enrolment, stored by the hash of its single-use code.
#[derive(Debug, Clone)]
pub struct NewEnrolment {
    /// SHA-256 of the code.
    pub code_hash: [u8; 32],
    /// The operator's label.
    pub label: String,
    /// Route binding.
    pub route: Option<u16>,
    /// Gate binding.
    pub gate: Option<String>,
    /// Last second the code may be used.
    pub expires_at: i64,
}

/// What became of an enrolment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// Enrolled now.
    Enrolled(ValidatorRecord),
    /// No such code.
    Unknown,
    /// The code was used already (single use).
    Used,
    /// The code expired.
    Expired,
}

/// What the backend established about one uploaded tap from its evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// No scanned text came with the tap.
    Missing,
    /// The scanned text is not a transit QR, or a signature does not verify: the reason.
    Forged(String),
    /// Both signatures verify; the credential was or was not valid at the QR's time.
    Verified(VerifiedScan),
}

/// The facts of a scan whose two signatures the backend verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedScan {
    /// The card, from the issuer-signed credential.
    pub card_id: u64,
    /// The product.
    pub product: thudo_core::transit::Product,
    /// The phone's signed QR time.
    pub qr_timestamp: u32,
    /// The phone's QR counter.
    pub qr_counter: u32,
    /// SHA-256 of the phone's compressed key (as the deny list names devices).
    pub device_key_hash: [u8; 32],
    /// Why the credential was not valid at the QR's time on this validator, if it was not.
    pub invalid: Option<String>,
    /// Whether the pass itself (its windows, its route) was valid at the QR's time: `invalid`
    /// says so too, except at an exit gate, which lets out on the phone's proof alone.
    pub pass_valid: bool,
}

/// One uploaded tap: the validator's claim and what its evidence shows.
#[derive(Debug, Clone)]
pub struct CheckedTap {
    /// As the validator logged it.
    pub tap: Tap,
    /// What the backend verified.
    pub evidence: Evidence,
}

/// The result of storing an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapTotals {
    /// Stored now.
    pub stored: u32,
    /// Uploaded before.
    pub duplicates: u32,
    /// Highest sequence stored.
    pub highest_seq: u64,
    /// Charged now, VND.
    pub charged_vnd: u64,
    /// Taps the validator accepted that the backend does not charge (no or bad evidence,
    /// revoked, invalid, replayed, relayed).
    pub not_charged: u32,
}

/// Something an operator should look at: evidence that a device lied or a QR was relayed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FraudRecord {
    /// `suspected_relay` (one QR accepted by two validators), `forged_evidence`,
    /// `accepted_without_evidence`.
    pub kind: String,
    /// The validator that uploaded the tap.
    pub validator_id: String,
    /// Its tap sequence.
    pub seq: u64,
    /// The card, when the evidence verified.
    pub card_id: Option<u64>,
    /// The validator that used the QR first, for a relay.
    pub first_validator_id: Option<String>,
    /// Details.
    pub detail: String,
    /// When recorded (unix seconds).
    pub recorded_at: i64,
}

/// An entitlement to a reduced or free passenger category, held by the backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entitlement {
    /// The category.
    pub category: thudo_core::transit::Category,
    /// First second it applies (unix).
    pub valid_from: i64,
    /// Last second it applies (unix).
    pub valid_until: i64,
    /// Where the proof is kept (a case number, a document reference); never the document.
    pub evidence_ref: String,
}

/// One uploaded inspection: the inspector's record and what its scan shows here.
#[derive(Debug, Clone)]
pub struct CheckedInspection {
    /// As the inspector recorded it.
    pub inspection: thudo_core::transit::inspection::Inspection,
    /// What the backend verified of its scan (at the inspection's time).
    pub evidence: Evidence,
}

/// Inspections for the operator's fraud statistics. The inspector's outcome is its own
/// observation; `verified_*` counts only inspections whose scan verified here.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InspectionStats {
    /// Inspections stored.
    pub inspections: u64,
    /// The inspector found a valid ticket (tapped here when paired).
    pub valid: u64,
    /// A valid ticket that did not tap on the paired vehicle.
    pub not_tapped: u64,
    /// The ticket was not valid.
    pub invalid: u64,
    /// Not-tapped findings whose scan verified as a valid ticket here: rides not paid for.
    pub verified_not_tapped: u64,
    /// Findings of a valid ticket whose scan did not verify as one here (forged, missing,
    /// invalid): to look at.
    pub disputed: u64,
}

/// What became of a registration nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceOutcome {
    /// Consumed now.
    Consumed,
    /// Never issued here.
    Unknown,
    /// Consumed before.
    Used,
    /// Past its time to live.
    Expired,
}

/// One of a citizen's devices, as the citizen sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it registered (unix seconds).
    pub created_at: i64,
}

/// What the HTTP layer needs from storage.
pub trait Storage: Send + Sync + 'static {
    /// The account of a citizen, created when new; returns its id.
    fn account_for_citizen(&self, citizen_id: &str) -> Result<String>;
    /// Registers a device of a citizen's account under a token hash; returns the device id and
    /// account id.
    fn register_device(
        &self,
        citizen_id: &str,
        name: &str,
        role: &str,
        token_hash: &[u8; 32],
    ) -> Result<(String, String)>;
    /// The device holding a token.
    fn device_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Device>>;
    /// Sets the party cell of a citizen.
    fn set_cell(&self, citizen_id: &str, cell: &str) -> Result<()>;
    /// Applies a batch of mutations from a device, exactly once per idempotency key.
    fn push(&self, device: &Device, mutations: &[Mutation]) -> Result<Vec<PushResult>>;
    /// Changes of `collection` in `scope` after position `after`, at most `limit`; returns them,
    /// the position of the last one, and whether more are waiting.
    fn pull(
        &self,
        scope: &str,
        collection: &str,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<Change>, i64, bool)>;
    /// Publishes server changes (facilities, the party) to a scope; returns how many.
    fn publish(&self, scope: &str, changes: &[Change]) -> Result<usize>;
    /// A configuration value.
    fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a configuration value.
    fn set_setting(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Stores `value` under `key` unless the key holds a value already; returns the value
    /// stored, so that of two instances racing to set it, both go on with the first's.
    fn claim_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>>;
    /// Replaces a value with `update(current)` in one transaction, one instance at a time;
    /// returns the new value. `update` may run more than once.
    fn update_setting(
        &self,
        key: &str,
        update: &mut dyn FnMut(Option<Vec<u8>>) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>>;
    /// Stores a validator's taps once each (by validator and sequence) and charges
    /// pay-as-you-go fares under the caps, only for taps whose evidence verified, valid at the
    /// QR's time, not revoked then, and whose QR no validator used before (a second use on
    /// another validator is a suspected relay, recorded for the operator).
    /// `complete_at`: when the validator's log held nothing more than these (a metro entry
    /// gate's entries are complete up to then).
    fn record_taps(
        &self,
        validator: &ValidatorRecord,
        taps: &[CheckedTap],
        fares: &FarePolicy,
        complete_at: Option<i64>,
    ) -> Result<TapTotals>;
    /// Stores an inspector's inspections once each (by inspector and sequence); returns how
    /// many were stored now, how many were duplicates, and the highest sequence stored.
    fn record_inspections(
        &self,
        inspector: &ValidatorRecord,
        inspections: &[CheckedInspection],
    ) -> Result<(u32, u32, u64)>;
    /// The inspection statistics.
    fn inspection_stats(&self) -> Result<InspectionStats>;
    /// Fares charged to a card, VND, per day `YYYY-MM-DD` (Hanoi time): bus rides and metro
    /// journeys.
    fn charges(&self, card_id: u64) -> Result<Vec<(String, u64)>>;
    /// The cards charged at least `cap_vnd` on local day `day` (bus rides and metro journeys),
    /// at most 100,000.
    fn capped_cards(&self, day: &str, cap_vnd: u64) -> Result<Vec<u64>>;
    /// Settles the metro journeys whose time ran out at `now`: an entry with no exit, and an
    /// exit with no entry, are charged their line's maximum fare (a late tap corrects it).
    /// Returns how many were settled (at most 1,000 per call).
    fn settle_journeys(&self, now: i64, fares: &FarePolicy) -> Result<u32>;
    /// The entries after `cursor` not yet paired with an exit and at most `honoured_secs` old
    /// (at most `limit`, oldest first), for exit gates, with the time up to which every entry
    /// gate's log was drained.
    fn entry_feed(
        &self,
        cursor: u64,
        now: i64,
        honoured_secs: u64,
        limit: usize,
    ) -> Result<thudo_core::transit::metro::EntryFeed>;
    /// Revokes cards and device keys (SHA-256 of the compressed key) from `at` on; returns the
    /// new deny-list version, always above every version published before.
    fn deny(&self, cards: &[u64], device_key_hashes: &[[u8; 32]], at: i64) -> Result<u32>;
    /// The deny list: version, cards, device key hashes.
    fn deny_list(&self) -> Result<(u32, Vec<u64>, Vec<[u8; 32]>)>;
    /// Records that a device bought a credential for a transit key (so revoking the device
    /// revokes the key). False, recording nothing, when the key is already another account's
    /// (a phone's key is its own, and nobody may get someone else's key revoked) or the device
    /// was revoked meanwhile.
    fn record_device_key(&self, device: &Device, key_hash: &[u8; 32]) -> Result<bool>;
    /// The transit keys a device bought credentials for.
    fn device_keys(&self, device_id: &str) -> Result<Vec<[u8; 32]>>;
    /// Stores a registration nonce (by hash) until `expires_at`.
    fn create_nonce(&self, hash: &[u8; 32], expires_at: i64) -> Result<()>;
    /// Uses a nonce once.
    fn consume_nonce(&self, hash: &[u8; 32], now: i64) -> Result<NonceOutcome>;
    /// The active (not revoked) devices of an account, oldest first.
    fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRecord>>;
    /// Revokes a device of an account: its token stops working at once and, in the same
    /// transaction, every transit key it bought credentials for is denied. Returns how many
    /// keys were denied, or `None` when the account has no such active device.
    fn revoke_device(&self, account_id: &str, device_id: &str, now: i64) -> Result<Option<usize>>;
    /// Stores an enrolment.
    fn create_enrolment(&self, enrolment: &NewEnrolment) -> Result<()>;
    /// Uses an enrolment code once: enrols a validator under `token_hash`.
    fn enrol_validator(
        &self,
        code_hash: &[u8; 32],
        name: &str,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<EnrolOutcome>;
    /// The validator holding a token (decommissioned ones included: the caller refuses them).
    fn validator_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<ValidatorRecord>>;
    /// Every validator, oldest first.
    fn validators(&self) -> Result<Vec<ValidatorRecord>>;
    /// Decommissions a validator; false when there is none with this id.
    fn decommission_validator(&self, id: &str, now: i64) -> Result<bool>;
    /// Fraud records, oldest first.
    fn fraud_records(&self) -> Result<Vec<FraudRecord>>;
    /// Grants a citizen an entitlement.
    fn grant_entitlement(&self, citizen_id: &str, entitlement: &Entitlement) -> Result<()>;
    /// A citizen's entitlements.
    fn entitlements(&self, citizen_id: &str) -> Result<Vec<Entitlement>>;
    /// Records that `guardian` may hold `dependant`'s passes and see their trips (creating
    /// either account if new). Recording it twice changes nothing.
    fn add_dependant(&self, guardian_citizen_id: &str, dependant_citizen_id: &str) -> Result<()>;
    /// Ends a guardianship; false when there was none.
    fn remove_dependant(
        &self,
        guardian_citizen_id: &str,
        dependant_citizen_id: &str,
    ) -> Result<bool>;
    /// The account and card of `dependant_citizen_id`, if it is a dependant of account
    /// `guardian_account`.
    fn dependant_of(
        &self,
        guardian_account: &str,
        dependant_citizen_id: &str,
    ) -> Result<Option<(String, u64)>>;
    /// The entitlement of an account to `category` in force at `at`, the one lasting longest.
    fn entitlement_at(
        &self,
        account_id: &str,
        category: thudo_core::transit::Category,
        at: i64,
    ) -> Result<Option<Entitlement>>;
}

/// SHA-256, for tokens and citizen IDs (neither is stored in clear).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    thudo_core::crypto::fill_random(&mut b).map_err(|_| StorageError("no randomness".into()))?;
    Ok(b)
}

/// Card locks are taken by bucket (`card_id % CARD_LOCK_BUCKETS`): an upload of 10,000 taps
/// holds at most this many locks.
const CARD_LOCK_BUCKETS: u64 = 512;

/// Storage on one SQLite file: the embedded default.
pub type SqliteStorage = SqlStorage<SqliteEngine>;
/// Storage on PostgreSQL: for several instances.
pub type PostgresStorage = SqlStorage<PostgresEngine>;

impl SqliteStorage {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStorage> {
        Ok(SqlStorage {
            engine: SqliteEngine::open(path)?,
        })
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn connect(url: &str) -> Result<PostgresStorage> {
        Ok(SqlStorage {
            engine: PostgresEngine::open(url)?,
        })
    }
}

/// Opens the storage a `--db` value names: a `postgres://` or `postgresql://` URL is
/// PostgreSQL, anything else a SQLite file path.
pub fn open(db: &str) -> Result<Arc<dyn Storage>> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStorage::connect(db)?))
    } else {
        Ok(Arc::new(SqliteStorage::open(Path::new(db))?))
    }
}

/// The storage rules, written once over an [`Engine`]: every method is one transaction.
pub struct SqlStorage<E> {
    engine: E,
}

impl<E: Engine> SqlStorage<E> {
    fn write<T>(&self, mut work: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.engine.write(&mut work)
    }

    fn read<T>(&self, mut work: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.engine.read(&mut work)
    }

    fn snapshot<T>(&self, mut work: impl FnMut(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.engine.snapshot(&mut work)
    }
}

fn account_in(tx: &mut dyn Tx, citizen_id: &str) -> Result<String> {
    let hash = sha256(format!("thudo/citizen/{citizen_id}").as_bytes());
    if let Some(row) = tx.row(
        "SELECT id FROM accounts WHERE citizen_hash = ?1",
        params![&hash],
    )? {
        return row.text(0);
    }
    let id = format!("a-{}", thudo_core::hex::encode(&random_bytes::<8>()?));
    // Card numbers: random, 15 decimal digits, so they are not guessable from each other.
    let card = u64::from_le_bytes(random_bytes::<8>()?) % 900_000_000_000_000 + 100_000_000_000_000;
    tx.exec(
        "INSERT INTO accounts(id, citizen_hash, cell, card_id) VALUES (?1, ?2, NULL, ?3)",
        params![&id, &hash, big(card)],
    )?;
    Ok(id)
}

/// Appends to a scope's change log. The scope's lock is held from before the change takes its
/// sequence until the transaction ends, so changes of one scope commit in sequence order.
fn append(tx: &mut dyn Tx, scope: &str, c: &Change) -> Result<()> {
    tx.lock(&format!("scope:{scope}"))?;
    tx.exec(
        "INSERT INTO changes(scope, collection, record_id, op, payload, hlc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![scope, &c.collection, &c.record_id, &c.op, c.payload.to_string(), &c.hlc],
    )?;
    Ok(())
}

/// The deny-list version as stored.
fn stored_deny_version(tx: &mut dyn Tx) -> Result<u32> {
    Ok(tx
        .row("SELECT value FROM settings WHERE key = 'deny_version'", &[])?
        .map(|r| r.bytes(0))
        .transpose()?
        .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(1))
}

/// Publishes a new deny-list version, one writer at a time on every instance.
fn bump_deny_version(tx: &mut dyn Tx) -> Result<u32> {
    tx.lock("deny")?;
    let version = stored_deny_version(tx)? + 1;
    tx.exec(
        "UPDATE settings SET value = ?1 WHERE key = 'deny_version'",
        params![version.to_string().into_bytes()],
    )?;
    Ok(version)
}

const VALIDATOR_COLUMNS: &str =
    "SELECT id, name, label, route, gate, enrolled_at, decommissioned_at FROM validators";

fn validator_row(r: &Row) -> Result<ValidatorRecord> {
    Ok(ValidatorRecord {
        id: r.text(0)?,
        name: r.text(1)?,
        label: r.text(2)?,
        route: r.opt_int(3)?.and_then(|v| u16::try_from(v).ok()),
        gate: r.opt_text(4)?,
        enrolled_at: r.int(5)?,
        decommissioned_at: r.opt_int(6)?,
    })
}

fn entitlement_row(r: &Row) -> Result<Option<Entitlement>> {
    let Some(category) = u8::try_from(r.int(0)?)
        .ok()
        .and_then(thudo_core::transit::Category::from_code)
    else {
        return Ok(None);
    };
    Ok(Some(Entitlement {
        category,
        valid_from: r.int(1)?,
        valid_until: r.int(2)?,
        evidence_ref: r.text(3)?,
    }))
}

impl<E: Engine> Storage for SqlStorage<E> {
    fn account_for_citizen(&self, citizen_id: &str) -> Result<String> {
        self.write(|tx| account_in(tx, citizen_id))
    }

    fn register_device(
        &self,
        citizen_id: &str,
        name: &str,
        role: &str,
        token_hash: &[u8; 32],
    ) -> Result<(String, String)> {
        self.write(|tx| {
            let account = account_in(tx, citizen_id)?;
            let id = format!("d-{}", thudo_core::hex::encode(&random_bytes::<8>()?));
            tx.exec(
                "INSERT INTO devices(id, account_id, name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&id, &account, name, role, token_hash, chrono::Utc::now().timestamp()],
            )?;
            Ok((id, account))
        })
    }

    fn device_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Device>> {
        self.read(|tx| {
            tx.row(
                "SELECT d.id, d.account_id, d.role, a.cell, a.card_id FROM devices d
                 JOIN accounts a ON a.id = d.account_id
                 WHERE d.token_hash = ?1 AND d.revoked_at IS NULL",
                params![token_hash],
            )?
            .map(|r| {
                Ok(Device {
                    id: r.text(0)?,
                    account_id: r.text(1)?,
                    role: r.text(2)?,
                    cell: r.opt_text(3)?,
                    card_id: r.int(4)? as u64,
                })
            })
            .transpose()
        })
    }

    fn set_cell(&self, citizen_id: &str, cell: &str) -> Result<()> {
        self.write(|tx| {
            let account = account_in(tx, citizen_id)?;
            tx.exec(
                "UPDATE accounts SET cell = ?1 WHERE id = ?2",
                params![cell, &account],
            )?;
            Ok(())
        })
    }

    fn push(&self, device: &Device, mutations: &[Mutation]) -> Result<Vec<PushResult>> {
        let scope = format!("acct:{}", device.account_id);
        self.write(|tx| {
            // One push per account at a time: the idempotency check, the clock comparison and
            // the append see every earlier push of the account, whichever instance took it.
            tx.lock(&format!("scope:{scope}"))?;
            let mut results = Vec::with_capacity(mutations.len());
            for m in mutations {
                let seen = tx
                    .row(
                        "SELECT outcome FROM mutations WHERE account_id = ?1 AND idempotency_key = ?2",
                        params![&device.account_id, &m.idempotency_key],
                    )?
                    .is_some();
                let outcome = if seen {
                    Outcome::Duplicate
                } else {
                    let outcome = apply_mutation(tx, &scope, m)?;
                    let tag = match &outcome {
                        Outcome::Applied => "applied",
                        Outcome::Superseded => "superseded",
                        _ => "rejected",
                    };
                    tx.exec(
                        "INSERT INTO mutations(account_id, idempotency_key, outcome) VALUES (?1, ?2, ?3)",
                        params![&device.account_id, &m.idempotency_key, tag],
                    )?;
                    outcome
                };
                results.push(PushResult {
                    idempotency_key: m.idempotency_key.clone(),
                    outcome,
                });
            }
            Ok(results)
        })
    }

    fn pull(
        &self,
        scope: &str,
        collection: &str,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<Change>, i64, bool)> {
        self.read(|tx| {
            let rows = tx.rows(
                "SELECT seq, record_id, op, payload, hlc FROM changes
                 WHERE scope = ?1 AND collection = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
                params![scope, collection, after, i64::from(limit) + 1],
            )?;
            let mut last = after;
            let mut changes = Vec::new();
            let mut more = false;
            let mut bytes = 0usize;
            for row in rows {
                let payload = row.text(3)?;
                // A page ends at `limit` changes or once its payloads reach the byte cap.
                if changes.len() == limit as usize
                    || (!changes.is_empty()
                        && bytes + payload.len() > protocol::MAX_PULL_PAGE_BYTES)
                {
                    more = true;
                    break;
                }
                bytes += payload.len();
                last = row.int(0)?;
                changes.push(Change {
                    collection: collection.to_owned(),
                    record_id: row.text(1)?,
                    op: row.text(2)?,
                    payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                    hlc: row.text(4)?,
                });
            }
            Ok((changes, last, more))
        })
    }

    fn publish(&self, scope: &str, changes: &[Change]) -> Result<usize> {
        self.write(|tx| {
            for c in changes {
                append(tx, scope, c)?;
            }
            Ok(changes.len())
        })
    }

    fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            tx.row("SELECT value FROM settings WHERE key = ?1", params![key])?
                .map(|r| r.bytes(0))
                .transpose()
        })
    }

    fn set_setting(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn claim_setting(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                params![key, value],
            )?;
            tx.row("SELECT value FROM settings WHERE key = ?1", params![key])?
                .ok_or_else(|| StorageError(format!("setting {key} vanished")))?
                .bytes(0)
        })
    }

    fn update_setting(
        &self,
        key: &str,
        update: &mut dyn FnMut(Option<Vec<u8>>) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        self.write(|tx| {
            tx.lock(&format!("setting:{key}"))?;
            let current = tx
                .row("SELECT value FROM settings WHERE key = ?1", params![key])?
                .map(|r| r.bytes(0))
                .transpose()?;
            let value = update(current)?;
            tx.exec(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, &value[..]],
            )?;
            Ok(value)
        })
    }

    fn record_taps(
        &self,
        validator: &ValidatorRecord,
        taps: &[CheckedTap],
        fares: &FarePolicy,
        complete_at: Option<i64>,
    ) -> Result<TapTotals> {
        let mut ordered: Vec<&CheckedTap> = taps.iter().collect();
        ordered.sort_by_key(|t| (t.tap.at, t.tap.seq));
        // The cards whose fares this upload may charge, by bucket: at most CARD_LOCK_BUCKETS
        // locks however many cards an upload names (PostgreSQL's lock table is small).
        let cards: Vec<String> = taps
            .iter()
            .filter_map(|t| match &t.evidence {
                Evidence::Verified(s) => {
                    Some(format!("card-bucket:{}", s.card_id % CARD_LOCK_BUCKETS))
                }
                _ => None,
            })
            .collect();
        self.write(|tx| {
            // One upload per validator at a time (the de-duplication by sequence), then each
            // card's QR uses and fares.
            tx.lock(&format!("validator:{}", validator.id))?;
            tx.lock_all(&cards)?;
            let mut totals = TapTotals::default();
            let now = chrono::Utc::now().timestamp();
            let mut paid = std::collections::BTreeSet::new();
            for checked in &ordered {
                record_tap(tx, validator, checked, fares, now, &mut totals, &mut paid)?;
            }
            // Each card's progress toward the caps it paid toward, once per upload.
            for (card, day, month) in &paid {
                publish_caps(tx, fares, *card, day, month)?;
            }
            // An entry gate's log emptied: the entry feed is complete up to its export.
            if let Some(at) = complete_at {
                tx.exec(
                    "UPDATE validators SET last_upload_at = ?2
                     WHERE id = ?1 AND (last_upload_at IS NULL OR last_upload_at < ?2)",
                    params![&validator.id, at],
                )?;
            }
            Ok(totals)
        })
    }

    fn record_inspections(
        &self,
        inspector: &ValidatorRecord,
        inspections: &[CheckedInspection],
    ) -> Result<(u32, u32, u64)> {
        self.write(|tx| {
            let (mut stored, mut duplicates, mut highest) = (0, 0, 0);
            let now = chrono::Utc::now().timestamp();
            for c in inspections {
                let i = &c.inspection;
                highest = highest.max(i.seq);
                let evidence = match &c.evidence {
                    Evidence::Missing => "missing".to_owned(),
                    Evidence::Forged(why) => format!("forged:{why}"),
                    Evidence::Verified(s) => match &s.invalid {
                        Some(why) => format!("invalid:{why}"),
                        None if revoked_at(tx, s)? => "revoked".to_owned(),
                        None => "valid".to_owned(),
                    },
                };
                let card = match &c.evidence {
                    Evidence::Verified(s) => Some(big(s.card_id)),
                    _ => None,
                };
                let added = tx.exec(
                    "INSERT INTO inspections(validator_id, seq, at, outcome, reason, paired, tapped_at,
                                             card_id, evidence, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                    params![
                        &inspector.id,
                        big(i.seq),
                        big(i.at),
                        code_of(&i.outcome),
                        code_of(&i.reason),
                        i.paired,
                        i.tapped_at.map(big),
                        card,
                        evidence,
                        now,
                    ],
                )?;
                if added == 1 {
                    stored += 1;
                } else {
                    duplicates += 1;
                }
            }
            Ok((stored, duplicates, highest))
        })
    }

    fn inspection_stats(&self) -> Result<InspectionStats> {
        self.read(|tx| {
            let row = tx.row(
                "SELECT CAST(COUNT(*) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'valid' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'not_tapped' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'invalid' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'not_tapped' AND evidence = 'valid' THEN 1 ELSE 0 END), 0) AS BIGINT),
                        CAST(COALESCE(SUM(CASE WHEN outcome = 'valid' AND evidence <> 'valid' THEN 1 ELSE 0 END), 0) AS BIGINT)
                 FROM inspections",
                &[],
            )?;
            let n = |i: usize| -> Result<u64> {
                Ok(row.as_ref().map_or(Ok(0), |r| r.int(i))? as u64)
            };
            Ok(InspectionStats {
                inspections: n(0)?,
                valid: n(1)?,
                not_tapped: n(2)?,
                invalid: n(3)?,
                verified_not_tapped: n(4)?,
                disputed: n(5)?,
            })
        })
    }

    fn charges(&self, card_id: u64) -> Result<Vec<(String, u64)>> {
        self.read(|tx| {
            let mut days = std::collections::BTreeMap::<String, u64>::new();
            for sql in [
                "SELECT day, CAST(SUM(charged_vnd) AS BIGINT) FROM taps WHERE card_id = ?1 GROUP BY day",
                "SELECT day, CAST(SUM(fare_vnd) AS BIGINT) FROM journeys WHERE card_id = ?1 GROUP BY day",
            ] {
                for r in tx.rows(sql, params![big(card_id)])? {
                    *days.entry(r.text(0)?).or_default() += r.int(1)? as u64;
                }
            }
            Ok(days.into_iter().collect())
        })
    }

    fn capped_cards(&self, day: &str, cap_vnd: u64) -> Result<Vec<u64>> {
        self.read(|tx| {
            tx.rows(
                "SELECT card_id FROM (
                     SELECT card_id, charged_vnd AS vnd FROM taps WHERE day = ?1 AND card_id IS NOT NULL
                     UNION ALL
                     SELECT card_id, fare_vnd AS vnd FROM journeys WHERE day = ?1
                 ) paid GROUP BY card_id HAVING CAST(SUM(vnd) AS BIGINT) >= ?2
                 ORDER BY card_id LIMIT 100000",
                params![day, big(cap_vnd)],
            )?
            .iter()
            .map(|r| Ok(r.int(0)? as u64))
            .collect()
        })
    }

    fn settle_journeys(&self, now: i64, fares: &FarePolicy) -> Result<u32> {
        let (today, _) = fares.local_day_and_month(now.max(0) as u64);
        let cutoff = now.saturating_sub(fares.max_journey_secs(&today) as i64);
        self.write(|tx| {
            let due = tx.rows(
                "SELECT id, card_id FROM journeys
                 WHERE (status = 'open' AND entry_at < ?1) OR (status = 'no_entry' AND exit_at < ?1)
                 ORDER BY id LIMIT 1000",
                params![cutoff],
            )?;
            let mut buckets: Vec<String> = due
                .iter()
                .map(|r| {
                    Ok(format!(
                        "card-bucket:{}",
                        r.int(1)? as u64 % CARD_LOCK_BUCKETS
                    ))
                })
                .collect::<Result<_>>()?;
            buckets.sort();
            buckets.dedup();
            tx.lock_all(&buckets)?;
            let mut paid = std::collections::BTreeSet::new();
            let mut settled = 0;
            for r in &due {
                let id = r.int(0)?;
                // Read again under the card's lock: an upload may have completed it meanwhile.
                let status = tx
                    .row("SELECT status FROM journeys WHERE id = ?1", params![id])?
                    .map(|r| r.text(0))
                    .transpose()?;
                let to = match status.as_deref() {
                    Some("open") => "no_exit",
                    Some("no_entry") => "no_entry_charged",
                    _ => continue,
                };
                settle_journey(tx, fares, id, to, &mut paid)?;
                settled += 1;
            }
            for (card, day, month) in &paid {
                publish_caps(tx, fares, *card, day, month)?;
            }
            Ok(settled)
        })
    }

    fn entry_feed(
        &self,
        cursor: u64,
        now: i64,
        honoured_secs: u64,
        limit: usize,
    ) -> Result<thudo_core::transit::metro::EntryFeed> {
        use thudo_core::transit::metro::{EntryFeed, GateEntry};
        self.read(|tx| {
            // Completeness first: an upload seen here committed its entries with it.
            let complete_until = tx
                .row(
                    "SELECT CAST(MIN(COALESCE(last_upload_at, 0)) AS BIGINT), CAST(COUNT(*) AS BIGINT)
                     FROM validators WHERE gate LIKE '%:entry' AND decommissioned_at IS NULL",
                    &[],
                )?
                .map(|r| -> Result<i64> {
                    Ok(if r.int(1)? == 0 { now } else { r.opt_int(0)?.unwrap_or(0) })
                })
                .transpose()?
                .unwrap_or(now);
            let rows = tx.rows(
                "SELECT id, card_id, entry_station, entry_at FROM journeys
                 WHERE id > ?1 AND status IN ('open', 'no_exit') AND entry_at >= ?2 ORDER BY id LIMIT ?3",
                params![
                    big(cursor),
                    now.saturating_sub(honoured_secs as i64),
                    limit as i64
                ],
            )?;
            let mut feed = EntryFeed {
                entries: Vec::with_capacity(rows.len()),
                cursor,
                complete_until: complete_until.max(0) as u64,
                now: now.max(0) as u64,
            };
            for r in &rows {
                feed.cursor = r.int(0)? as u64;
                feed.entries.push(GateEntry {
                    card_id: r.int(1)? as u64,
                    station: u16::try_from(r.int(2)?).unwrap_or(0),
                    at: r.int(3)? as u64,
                });
            }
            if rows.len() >= limit {
                // More to come: not complete until the gate has read it all.
                feed.complete_until = 0;
            }
            Ok(feed)
        })
    }

    fn deny(&self, cards: &[u64], device_key_hashes: &[[u8; 32]], at: i64) -> Result<u32> {
        self.write(|tx| {
            let version = bump_deny_version(tx)?;
            for c in cards {
                tx.exec(
                    "INSERT INTO deny_cards(card_id, denied_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![big(*c), at],
                )?;
            }
            for h in device_key_hashes {
                tx.exec(
                    "INSERT INTO deny_devices(key_hash, denied_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![h, at],
                )?;
            }
            Ok(version)
        })
    }

    fn deny_list(&self) -> Result<(u32, Vec<u64>, Vec<[u8; 32]>)> {
        // One snapshot: the version and the entries it names are read together, and no writer
        // (nor another validator's feed) waits on it.
        self.snapshot(|tx| {
            let version = stored_deny_version(tx)?;
            let cards = tx
                .rows("SELECT card_id FROM deny_cards ORDER BY card_id", &[])?
                .iter()
                .map(|r| Ok(r.int(0)? as u64))
                .collect::<Result<_>>()?;
            let devices = tx
                .rows("SELECT key_hash FROM deny_devices ORDER BY key_hash", &[])?
                .iter()
                .filter_map(|r| r.hash(0).transpose())
                .collect::<Result<_>>()?;
            Ok((version, cards, devices))
        })
    }

    fn record_device_key(&self, device: &Device, key_hash: &[u8; 32]) -> Result<bool> {
        self.write(|tx| {
            // A revocation of this device in flight finishes first (and this then sees it).
            tx.lock(&format!("device:{}", device.id))?;
            // Two accounts claiming one key at once: one waits and then sees the other's claim.
            tx.lock(&format!("device-key:{}", thudo_core::hex::encode(key_hash)))?;
            let active = tx
                .row(
                    "SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL",
                    params![&device.id],
                )?
                .is_some();
            if !active {
                return Ok(false);
            }
            let other_account = tx
                .row(
                    "SELECT 1 FROM device_keys k JOIN devices d ON d.id = k.device_id
                     WHERE k.key_hash = ?1 AND d.account_id <> ?2",
                    params![key_hash, &device.account_id],
                )?
                .is_some();
            if other_account {
                return Ok(false);
            }
            tx.exec(
                "INSERT INTO device_keys(device_id, key_hash) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![&device.id, key_hash],
            )?;
            Ok(true)
        })
    }

    fn device_keys(&self, device_id: &str) -> Result<Vec<[u8; 32]>> {
        self.read(|tx| {
            tx.rows(
                "SELECT key_hash FROM device_keys WHERE device_id = ?1",
                params![device_id],
            )?
            .iter()
            .filter_map(|r| r.hash(0).transpose())
            .collect()
        })
    }

    fn create_nonce(&self, hash: &[u8; 32], expires_at: i64) -> Result<()> {
        self.write(|tx| {
            // Expired nonces are dropped as new ones come: the table stays small.
            tx.exec(
                "DELETE FROM nonces WHERE expires_at < ?1",
                params![expires_at - 2 * crate::identity::NONCE_TTL_SECS],
            )?;
            tx.exec(
                "INSERT INTO nonces(hash, expires_at, used_at) VALUES (?1, ?2, NULL)",
                params![hash, expires_at],
            )?;
            Ok(())
        })
    }

    fn consume_nonce(&self, hash: &[u8; 32], now: i64) -> Result<NonceOutcome> {
        self.write(|tx| {
            // The conditional update is the claim: of two instances consuming one nonce at
            // once, the second waits for the first's row and then finds it used.
            let claimed = tx.exec(
                "UPDATE nonces SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL AND expires_at >= ?1",
                params![now, hash],
            )?;
            if claimed == 1 {
                return Ok(NonceOutcome::Consumed);
            }
            let row = tx.row(
                "SELECT expires_at, used_at FROM nonces WHERE hash = ?1",
                params![hash],
            )?;
            Ok(match row {
                None => NonceOutcome::Unknown,
                Some(r) if r.opt_int(1)?.is_some() => NonceOutcome::Used,
                Some(_) => NonceOutcome::Expired,
            })
        })
    }

    fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRecord>> {
        self.read(|tx| {
            tx.rows(
                "SELECT id, name, created_at FROM devices
                 WHERE account_id = ?1 AND revoked_at IS NULL ORDER BY created_at, rowid",
                params![account_id],
            )?
            .iter()
            .map(|r| {
                Ok(DeviceRecord {
                    id: r.text(0)?,
                    name: r.text(1)?,
                    created_at: r.int(2)?,
                })
            })
            .collect()
        })
    }

    fn revoke_device(&self, account_id: &str, device_id: &str, now: i64) -> Result<Option<usize>> {
        self.write(|tx| {
            // The deny list's lock first (as `deny` takes it), then the device's: a purchase
            // recording a key for this device waits, or finishes before and is denied here.
            tx.lock("deny")?;
            tx.lock(&format!("device:{device_id}"))?;
            let n = tx.exec(
                "UPDATE devices SET revoked_at = ?1
                 WHERE id = ?2 AND account_id = ?3 AND revoked_at IS NULL",
                params![now, device_id, account_id],
            )?;
            if n != 1 {
                return Ok(None);
            }
            let denied = tx.exec(
                "INSERT INTO deny_devices(key_hash, denied_at)
                 SELECT key_hash, ?1 FROM device_keys WHERE device_id = ?2 ON CONFLICT DO NOTHING",
                params![now, device_id],
            )?;
            if denied > 0 {
                bump_deny_version(tx)?;
            }
            Ok(Some(denied as usize))
        })
    }

    fn create_enrolment(&self, e: &NewEnrolment) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO enrolments(code_hash, label, route, gate, expires_at, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                params![
                    &e.code_hash,
                    &e.label,
                    e.route,
                    e.gate.as_ref(),
                    e.expires_at
                ],
            )?;
            Ok(())
        })
    }

    fn enrol_validator(
        &self,
        code_hash: &[u8; 32],
        name: &str,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<EnrolOutcome> {
        self.write(|tx| {
            // The conditional update is the claim (single use across instances).
            let claimed = tx.exec(
                "UPDATE enrolments SET used_at = ?1 WHERE code_hash = ?2 AND used_at IS NULL AND expires_at >= ?1",
                params![now, code_hash],
            )?;
            let Some(r) = tx.row(
                "SELECT label, route, gate, used_at FROM enrolments WHERE code_hash = ?1",
                params![code_hash],
            )?
            else {
                return Ok(EnrolOutcome::Unknown);
            };
            if claimed != 1 {
                return Ok(if r.opt_int(3)?.is_some() {
                    EnrolOutcome::Used
                } else {
                    EnrolOutcome::Expired
                });
            }
            let record = ValidatorRecord {
                id: format!("v-{}", thudo_core::hex::encode(&random_bytes::<8>()?)),
                name: name.to_owned(),
                label: r.text(0)?,
                route: r.opt_int(1)?.and_then(|v| u16::try_from(v).ok()),
                gate: r.opt_text(2)?,
                enrolled_at: now,
                decommissioned_at: None,
            };
            tx.exec(
                "INSERT INTO validators(id, name, label, route, gate, token_hash, enrolled_at, decommissioned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
                params![&record.id, &record.name, &record.label, record.route, record.gate.as_ref(), token_hash, now],
            )?;
            Ok(EnrolOutcome::Enrolled(record))
        })
    }

    fn validator_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<ValidatorRecord>> {
        self.read(|tx| {
            tx.row(
                &format!("{VALIDATOR_COLUMNS} WHERE token_hash = ?1"),
                params![token_hash],
            )?
            .as_ref()
            .map(validator_row)
            .transpose()
        })
    }

    fn validators(&self) -> Result<Vec<ValidatorRecord>> {
        self.read(|tx| {
            tx.rows(
                &format!("{VALIDATOR_COLUMNS} ORDER BY enrolled_at, id"),
                &[],
            )?
            .iter()
            .map(validator_row)
            .collect()
        })
    }

    fn decommission_validator(&self, id: &str, now: i64) -> Result<bool> {
        self.write(|tx| {
            let n = tx.exec(
                "UPDATE validators SET decommissioned_at = COALESCE(decommissioned_at, ?1) WHERE id = ?2",
                params![now, id],
            )?;
            Ok(n == 1)
        })
    }

    fn fraud_records(&self) -> Result<Vec<FraudRecord>> {
        self.read(|tx| {
            tx.rows(
                "SELECT kind, validator_id, seq, card_id, first_validator_id, detail, recorded_at
                 FROM fraud ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(FraudRecord {
                    kind: r.text(0)?,
                    validator_id: r.text(1)?,
                    seq: r.int(2)? as u64,
                    card_id: r.opt_int(3)?.map(|c| c as u64),
                    first_validator_id: r.opt_text(4)?,
                    detail: r.text(5)?,
                    recorded_at: r.int(6)?,
                })
            })
            .collect()
        })
    }

    fn grant_entitlement(&self, citizen_id: &str, e: &Entitlement) -> Result<()> {
        self.write(|tx| {
            let account = account_in(tx, citizen_id)?;
            tx.exec(
                "INSERT INTO entitlements(account_id, category, valid_from, valid_until, evidence_ref, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&account, e.category as u8, e.valid_from, e.valid_until, &e.evidence_ref, chrono::Utc::now().timestamp()],
            )?;
            Ok(())
        })
    }

    fn add_dependant(&self, guardian_citizen_id: &str, dependant_citizen_id: &str) -> Result<()> {
        self.write(|tx| {
            let guardian = account_in(tx, guardian_citizen_id)?;
            let dependant = account_in(tx, dependant_citizen_id)?;
            tx.exec(
                "INSERT INTO dependants(guardian_account, dependant_account, created_at)
                 VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![&guardian, &dependant, chrono::Utc::now().timestamp()],
            )?;
            Ok(())
        })
    }

    fn remove_dependant(
        &self,
        guardian_citizen_id: &str,
        dependant_citizen_id: &str,
    ) -> Result<bool> {
        let hash = |c: &str| sha256(format!("thudo/citizen/{c}").as_bytes());
        let (guardian, dependant) = (hash(guardian_citizen_id), hash(dependant_citizen_id));
        self.write(|tx| {
            Ok(tx.exec(
                "DELETE FROM dependants
                 WHERE guardian_account = (SELECT id FROM accounts WHERE citizen_hash = ?1)
                   AND dependant_account = (SELECT id FROM accounts WHERE citizen_hash = ?2)",
                params![&guardian, &dependant],
            )? > 0)
        })
    }

    fn dependant_of(
        &self,
        guardian_account: &str,
        dependant_citizen_id: &str,
    ) -> Result<Option<(String, u64)>> {
        let hash = sha256(format!("thudo/citizen/{dependant_citizen_id}").as_bytes());
        self.read(|tx| {
            tx.row(
                "SELECT a.id, a.card_id FROM accounts a
                 JOIN dependants d ON d.dependant_account = a.id
                 WHERE a.citizen_hash = ?1 AND d.guardian_account = ?2",
                params![&hash, guardian_account],
            )?
            .map(|r| Ok((r.text(0)?, r.int(1)? as u64)))
            .transpose()
        })
    }

    fn entitlements(&self, citizen_id: &str) -> Result<Vec<Entitlement>> {
        self.write(|tx| {
            let account = account_in(tx, citizen_id)?;
            let rows = tx.rows(
                "SELECT category, valid_from, valid_until, evidence_ref FROM entitlements
                 WHERE account_id = ?1 ORDER BY valid_from",
                params![&account],
            )?;
            Ok(rows
                .iter()
                .filter_map(|r| entitlement_row(r).ok().flatten())
                .collect())
        })
    }

    fn entitlement_at(
        &self,
        account_id: &str,
        category: thudo_core::transit::Category,
        at: i64,
    ) -> Result<Option<Entitlement>> {
        self.read(|tx| {
            Ok(tx
                .row(
                    "SELECT category, valid_from, valid_until, evidence_ref FROM entitlements
                     WHERE account_id = ?1 AND category = ?2 AND valid_from <= ?3 AND valid_until >= ?3
                     ORDER BY valid_until DESC LIMIT 1",
                    params![account_id, category as u8, at],
                )?
                .as_ref()
                .map(entitlement_row)
                .transpose()?
                .flatten())
        })
    }
}

/// A wire enum's snake_case code (`not_tapped`, `bad_format`).
fn code_of(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether a verified scan's card or device key was on the deny list at the QR's time.
fn revoked_at(tx: &mut dyn Tx, s: &VerifiedScan) -> Result<bool> {
    Ok(tx
        .row(
            "SELECT 1 FROM deny_cards WHERE card_id = ?1 AND denied_at <= ?2
             UNION SELECT 1 FROM deny_devices WHERE key_hash = ?3 AND denied_at <= ?2",
            params![
                big(s.card_id),
                i64::from(s.qr_timestamp),
                &s.device_key_hash
            ],
        )?
        .is_some())
}

/// The account a card belongs to (taps of cards no account holds are not published).
fn account_of_card(tx: &mut dyn Tx, card: u64) -> Result<Option<String>> {
    tx.row(
        "SELECT id FROM accounts WHERE card_id = ?1",
        params![big(card)],
    )?
    .map(|r| r.text(0))
    .transpose()
}

/// What a card paid in a day and in the month, VND.
fn paid_in(tx: &mut dyn Tx, card: u64, day: &str, month: &str) -> Result<(u64, u64)> {
    // Bus rides are charged on their taps, metro journeys on the journey: caps count both.
    let mut paid = (0, 0);
    for table in ["taps", "journeys"] {
        let column = if table == "taps" {
            "charged_vnd"
        } else {
            "fare_vnd"
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(CASE WHEN day = ?2 THEN {column} ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM({column}), 0) AS BIGINT)
             FROM {table} WHERE card_id = ?1 AND month = ?3"
        );
        if let Some(r) = tx.row(&sql, params![big(card), day, month])? {
            paid.0 += r.int(0)? as u64;
            paid.1 += r.int(1)? as u64;
        }
    }
    Ok(paid)
}

/// Publishes a record to the account holding `card`, if any.
fn publish_to_card(
    tx: &mut dyn Tx,
    card: u64,
    collection: &str,
    record_id: &str,
    payload: Value,
) -> Result<()> {
    for account in accounts_seeing_card(tx, card)? {
        append(
            tx,
            &format!("acct:{account}"),
            &Change {
                collection: collection.to_owned(),
                record_id: record_id.to_owned(),
                op: "put".into(),
                payload: payload.clone(),
                hlc: String::new(),
            },
        )?;
    }
    Ok(())
}

/// The account holding `card`, then its guardians' accounts (a guardian sees a dependant's
/// trips and caps on the phone that holds their pass).
fn accounts_seeing_card(tx: &mut dyn Tx, card: u64) -> Result<Vec<String>> {
    let Some(account) = account_of_card(tx, card)? else {
        return Ok(Vec::new());
    };
    let mut accounts = vec![account.clone()];
    for r in tx.rows(
        "SELECT guardian_account FROM dependants WHERE dependant_account = ?1 ORDER BY guardian_account",
        params![&account],
    )? {
        accounts.push(r.text(0)?);
    }
    Ok(accounts)
}

/// Publishes a card's progress toward the day's and the month's caps to its account.
fn publish_caps(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    card: u64,
    day: &str,
    month: &str,
) -> Result<()> {
    let (today, this_month) = paid_in(tx, card, day, month)?;
    // The card's own account names a cap by its period; a guardian's by card and period.
    for (i, account) in accounts_seeing_card(tx, card)?.iter().enumerate() {
        for (period, paid_vnd, cap_vnd) in [
            (day, today, fares.daily_cap_vnd),
            (month, this_month, fares.monthly_cap_vnd),
        ] {
            let progress = trips::CapProgress {
                id: trips::CapProgress::record_id(period, (i > 0).then_some(card)),
                card_id: Some(card),
                period: period.to_owned(),
                paid_vnd,
                cap_vnd,
            };
            let payload =
                serde_json::to_value(&progress).map_err(|e| StorageError(e.to_string()))?;
            append(
                tx,
                &format!("acct:{account}"),
                &Change {
                    collection: trips::CAPS.to_owned(),
                    record_id: progress.id.clone(),
                    op: "put".into(),
                    payload,
                    hlc: String::new(),
                },
            )?;
        }
    }
    Ok(())
}

/// Stores one tap and charges its fare; the caller holds the validator's and the cards' locks.
/// A tap charged (or ridden on a pass) becomes a trip on the rider's phone; `paid` collects the
/// (card, day, month) whose cap progress changed.
fn record_tap(
    tx: &mut dyn Tx,
    validator: &ValidatorRecord,
    checked: &CheckedTap,
    fares: &FarePolicy,
    now: i64,
    totals: &mut TapTotals,
    paid: &mut std::collections::BTreeSet<(u64, String, String)>,
) -> Result<()> {
    let t = &checked.tap;
    // A gate's station and direction are the operator's binding, never the tap's claim.
    let gate = validator.gate.as_deref().and_then(crate::fares::parse_gate);
    totals.highest_seq = totals.highest_seq.max(t.seq);
    let exists = tx
        .row(
            "SELECT 1 FROM taps WHERE validator_id = ?1 AND seq = ?2",
            params![&validator.id, big(t.seq)],
        )?
        .is_some();
    if exists {
        totals.duplicates += 1;
        return Ok(());
    }
    let fraud = |tx: &mut dyn Tx,
                 kind: &str,
                 card: Option<u64>,
                 first: Option<&str>,
                 detail: &str| {
        tx.exec(
            "INSERT INTO fraud(kind, validator_id, seq, card_id, first_validator_id, detail, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![kind, &validator.id, big(t.seq), card.map(big), first, detail, now],
        )
    };
    let scan = match &checked.evidence {
        Evidence::Verified(s) => Some(s),
        _ => None,
    };
    // The backend's verdict: only a verified, valid, unrevoked, first use is charged.
    let verdict: &str = match (&checked.evidence, t.accepted) {
        (_, false) => "refused_by_validator",
        (Evidence::Missing, true) => {
            fraud(
                tx,
                "accepted_without_evidence",
                None,
                None,
                "accepted with no scan",
            )?;
            "no_evidence"
        }
        (Evidence::Forged(why), true) => {
            fraud(tx, "forged_evidence", None, None, why)?;
            "forged"
        }
        (Evidence::Verified(s), true) => {
            let revoked = revoked_at(tx, s)?;
            let first = tx
                .row(
                    "SELECT validator_id FROM qr_uses WHERE card_id = ?1 AND qr_ts = ?2 AND qr_counter = ?3",
                    params![big(s.card_id), s.qr_timestamp, s.qr_counter],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            match (&s.invalid, revoked, first) {
                (Some(_), _, _) => "invalid",
                (None, true, _) => "revoked",
                (None, false, Some(first)) if first != validator.id => {
                    fraud(
                        tx,
                        "suspected_relay",
                        Some(s.card_id),
                        Some(&first),
                        "one QR accepted by two validators",
                    )?;
                    "relayed"
                }
                (None, false, Some(_)) => "replayed",
                (None, false, None) => {
                    tx.exec(
                        "INSERT INTO qr_uses(card_id, qr_ts, qr_counter, validator_id, seq)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            big(s.card_id),
                            s.qr_timestamp,
                            s.qr_counter,
                            &validator.id,
                            big(t.seq)
                        ],
                    )?;
                    "charged"
                }
            }
        }
    };
    // Days and months from the phone's signed QR time when there is one.
    let when = scan.map_or(t.at, |s| u64::from(s.qr_timestamp));
    let (day, month) = fares.local_day_and_month(when);
    let route = validator
        .route
        .or_else(|| gate.and_then(|g| fares.gate_route(&g, &day)))
        .unwrap_or(t.route);
    let mut fare = 0u64;
    if let (
        None,
        "charged",
        Some(VerifiedScan {
            card_id,
            product: Product::PayAsYouGo,
            ..
        }),
    ) = (gate, verdict, scan)
    {
        let (today, this_month) = paid_in(tx, *card_id, &day, &month)?;
        fare = fares.charge(route, today, this_month);
    }
    if t.accepted && verdict != "charged" {
        totals.not_charged += 1;
    }
    let reason = serde_json::to_value(t.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let product = scan
        .and_then(|s| serde_json::to_value(s.product).ok())
        .map(|v| v.to_string());
    tx.exec(
        "INSERT INTO taps(validator_id, seq, at, route, accepted, reason, card_id, product, day, month,
                          charged_vnd, verdict, qr_ts, qr_counter, station, direction)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            &validator.id,
            big(t.seq),
            big(t.at),
            route,
            t.accepted,
            reason,
            scan.map(|s| big(s.card_id)),
            product,
            &day,
            &month,
            big(fare),
            verdict,
            scan.map(|s| s.qr_timestamp),
            scan.map(|s| s.qr_counter),
            gate.map(|g| g.station),
            gate.map(|g| code_of(&g.direction)),
        ],
    )?;
    totals.stored += 1;
    totals.charged_vnd += fare;
    if let (Some(gate), "charged", Some(s)) = (gate, verdict, scan) {
        let tap = GateTap {
            validator_id: &validator.id,
            seq: t.seq,
            gate,
            card_id: s.card_id,
            product: s.product,
            pass_valid: s.pass_valid,
            at: when,
        };
        totals.charged_vnd += journey_tap(tx, fares, &tap, now, paid)?;
        return Ok(());
    }
    if let ("charged", Some(s)) = (verdict, scan) {
        let full_fare_vnd = match s.product {
            Product::PayAsYouGo => {
                paid.insert((s.card_id, day.clone(), month.clone()));
                fares.charge(route, 0, 0)
            }
            _ => 0,
        };
        let trip = trips::Trip {
            id: format!("{}:{}", validator.id, t.seq),
            card_id: s.card_id,
            mode: "bus".into(),
            route: Some(route),
            at: when,
            from_station: None,
            to_station: None,
            exit_at: None,
            incomplete: false,
            day: day.clone(),
            product: s.product,
            fare_vnd: fare,
            full_fare_vnd,
        };
        let payload = serde_json::to_value(&trip).map_err(|e| StorageError(e.to_string()))?;
        publish_to_card(tx, s.card_id, trips::TRIPS, &trip.id, payload)?;
    }
    Ok(())
}

/// A verified, first-use tap at a metro gate.
struct GateTap<'a> {
    validator_id: &'a str,
    seq: u64,
    gate: thudo_core::transit::metro::Gate,
    card_id: u64,
    product: Product,
    /// Whether the pass was valid (windows, route) at the tap: an exit checks nothing of it.
    pass_valid: bool,
    /// The phone's signed QR time.
    at: u64,
}

impl GateTap<'_> {
    fn side(&self) -> Side<'_> {
        Side {
            validator_id: self.validator_id,
            seq: self.seq as i64,
            station: i64::from(self.gate.station),
            at: self.at as i64,
        }
    }
}

/// One tap of a journey: the gate's validator and sequence, the station, the phone's time.
struct Side<'a> {
    validator_id: &'a str,
    seq: i64,
    station: i64,
    at: i64,
}

/// A journey to store.
struct NewJourney<'a> {
    card: u64,
    product: Product,
    entry: Option<Side<'a>>,
    exit: Option<Side<'a>>,
    status: &'a str,
    day: &'a str,
    month: &'a str,
}

/// Stores a journey; returns its number. Journeys are numbered in commit order (one lock until
/// the commit), so an exit gate's entry-feed cursor never skips one.
fn insert_journey(tx: &mut dyn Tx, j: &NewJourney<'_>, now: i64) -> Result<i64> {
    tx.lock("journeys")?;
    let (entry, exit) = (j.entry.as_ref(), j.exit.as_ref());
    tx.row(
        "INSERT INTO journeys(card_id, product, entry_validator, entry_seq, entry_station,
                              entry_at, exit_validator, exit_seq, exit_station, exit_at,
                              status, day, month, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         RETURNING id",
        params![
            big(j.card),
            code_of(&j.product),
            entry.map(|s| s.validator_id),
            entry.map(|s| s.seq),
            entry.map(|s| s.station),
            entry.map(|s| s.at),
            exit.map(|s| s.validator_id),
            exit.map(|s| s.seq),
            exit.map(|s| s.station),
            exit.map(|s| s.at),
            j.status,
            j.day,
            j.month,
            now
        ],
    )?
    .ok_or_else(|| StorageError("no journey number returned".into()))?
    .int(0)
}

/// Files a gate tap into the card's journeys and prices what it completes; returns what it
/// charged. Both taps of a journey carry the same phone's signed time, so an exit pairs only
/// with an entry before it and with no other entry in between.
///
/// - An entry opens a journey. An earlier one left open is settled at the maximum (no exit
///   came); an exit that arrived first (its gate uploaded before the entry gate) is completed.
/// - An exit completes the card's latest entry if that journey is still open or was settled at
///   the maximum (correcting it); else it waits as a journey with no entry.
/// - A repeated tap within [`REPEAT_TAP_SECS`] is ignored; a repeated exit is recorded for the
///   operator (one entry let out twice may be a phone passed back).
///
/// The caller holds the card's lock.
fn journey_tap(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    tap: &GateTap<'_>,
    now: i64,
    paid: &mut std::collections::BTreeSet<(u64, String, String)>,
) -> Result<u64> {
    use thudo_core::transit::metro::{GateDirection, ENTRY_HONOURED_SECS};
    let (day, month) = fares.local_day_and_month(tap.at);
    let (card, at) = (big(tap.card_id), big(tap.at));
    let station = i64::from(tap.gate.station);
    // Gates upload in any order: a repeat may be filed before the tap it repeats.
    let since = big(tap.at.saturating_sub(REPEAT_TAP_SECS));
    let until = big(tap.at + REPEAT_TAP_SECS);
    let mut charged = 0;
    match tap.gate.direction {
        GateDirection::Entry => {
            let repeated = tx.row(
                "SELECT 1 FROM journeys WHERE card_id = ?1 AND entry_station = ?2
                   AND entry_at >= ?3 AND entry_at <= ?4 AND (exit_at IS NULL OR exit_at > ?5)",
                params![card.clone(), station, since, until, at.clone()],
            )?;
            if repeated.is_some() {
                return Ok(0);
            }
            // An exit after this entry that was paired with an older entry (this entry's gate
            // uploaded late) is this entry's: the older entry had no exit.
            let crossed = tx.row(
                "SELECT id, exit_validator, exit_seq, exit_station, exit_at FROM journeys
                 WHERE card_id = ?1 AND status = 'closed' AND entry_at < ?2 AND exit_at > ?2
                   AND exit_at <= ?3
                 ORDER BY exit_at LIMIT 1",
                params![card.clone(), at.clone(), big(tap.at + ENTRY_HONOURED_SECS)],
            )?;
            if let Some(c) = crossed {
                let old = c.int(0)?;
                tx.exec(
                    "UPDATE journeys SET exit_validator = NULL, exit_seq = NULL, exit_station = NULL,
                            exit_at = NULL WHERE id = ?1",
                    params![old],
                )?;
                charged += settle_journey(tx, fares, old, "no_exit", paid)?;
                let exit_validator = c.opt_text(1)?.unwrap_or_default();
                let exit = Side {
                    validator_id: &exit_validator,
                    seq: c.opt_int(2)?.unwrap_or(0),
                    station: c.opt_int(3)?.unwrap_or(0),
                    at: c.opt_int(4)?.unwrap_or(0),
                };
                let new = NewJourney {
                    card: tap.card_id,
                    product: tap.product,
                    entry: Some(tap.side()),
                    exit: Some(exit),
                    status: "open",
                    day: &day,
                    month: &month,
                };
                let id = insert_journey(tx, &new, now)?;
                charged += settle_journey(tx, fares, id, "closed", paid)?;
                return Ok(charged);
            }
            let left_open = tx.rows(
                "SELECT id FROM journeys WHERE card_id = ?1 AND status = 'open' AND entry_at < ?2",
                params![card.clone(), at.clone()],
            )?;
            for row in left_open {
                charged += settle_journey(tx, fares, row.int(0)?, "no_exit", paid)?;
            }
            let waiting_exit = tx.row(
                "SELECT j.id, j.day, j.month FROM journeys j
                 WHERE j.card_id = ?1 AND j.entry_at IS NULL
                   AND j.status IN ('no_entry', 'no_entry_charged') AND j.exit_at >= ?2 AND j.exit_at <= ?3
                   AND NOT EXISTS (SELECT 1 FROM journeys e WHERE e.card_id = ?1
                                     AND e.entry_at > ?2 AND e.entry_at < j.exit_at)
                 ORDER BY j.exit_at LIMIT 1",
                params![card.clone(), at.clone(), big(tap.at + ENTRY_HONOURED_SECS)],
            )?;
            if let Some(row) = waiting_exit {
                let id = row.int(0)?;
                // The day it was charged on changes: that day's cap progress is published again.
                paid.insert((tap.card_id, row.text(1)?, row.text(2)?));
                tx.exec(
                    "UPDATE journeys SET entry_validator = ?2, entry_seq = ?3, entry_station = ?4,
                            entry_at = ?5, day = ?6, month = ?7, product = ?8 WHERE id = ?1",
                    params![
                        id,
                        tap.validator_id,
                        big(tap.seq),
                        station,
                        at,
                        &day,
                        &month,
                        code_of(&tap.product)
                    ],
                )?;
                charged += settle_journey(tx, fares, id, "closed", paid)?;
            } else {
                let new = NewJourney {
                    card: tap.card_id,
                    product: tap.product,
                    entry: Some(tap.side()),
                    exit: None,
                    status: "open",
                    day: &day,
                    month: &month,
                };
                insert_journey(tx, &new, now)?;
            }
        }
        GateDirection::Exit => {
            let repeated = tx.row(
                "SELECT exit_validator FROM journeys WHERE card_id = ?1 AND exit_station = ?2
                   AND exit_at >= ?3 AND exit_at <= ?4",
                params![card.clone(), station, since, until],
            )?;
            if let Some(row) = repeated {
                if row.opt_text(0)?.as_deref() != Some(tap.validator_id) {
                    tx.exec(
                        "INSERT INTO fraud(kind, validator_id, seq, card_id, first_validator_id, detail, recorded_at)
                         VALUES ('repeated_exit', ?1, ?2, ?3, ?4, 'one journey let out at two exit gates', ?5)",
                        params![tap.validator_id, big(tap.seq), card, row.opt_text(0)?, now],
                    )?;
                }
                return Ok(0);
            }
            // The card's latest entry before this exit, whatever became of it.
            let latest = tx.row(
                "SELECT id, status FROM journeys WHERE card_id = ?1 AND entry_at IS NOT NULL
                   AND entry_at <= ?2 AND entry_at >= ?3
                 ORDER BY entry_at DESC, id DESC LIMIT 1",
                params![
                    card.clone(),
                    at.clone(),
                    big(tap.at.saturating_sub(ENTRY_HONOURED_SECS))
                ],
            )?;
            let open = match &latest {
                Some(row) if matches!(row.text(1)?.as_str(), "open" | "no_exit") => {
                    Some(row.int(0)?)
                }
                _ => None,
            };
            if let Some(id) = open {
                tx.exec(
                    "UPDATE journeys SET exit_validator = ?2, exit_seq = ?3, exit_station = ?4,
                            exit_at = ?5 WHERE id = ?1",
                    params![id, tap.validator_id, big(tap.seq), station, at],
                )?;
                charged += settle_journey(tx, fares, id, "closed", paid)?;
            } else {
                // With no entry, the pass counts only if it was valid here and now.
                let product = if tap.pass_valid {
                    tap.product
                } else {
                    Product::PayAsYouGo
                };
                let new = NewJourney {
                    card: tap.card_id,
                    product,
                    entry: None,
                    exit: Some(tap.side()),
                    status: "no_entry",
                    day: &day,
                    month: &month,
                };
                insert_journey(tx, &new, now)?;
            }
        }
    }
    Ok(charged)
}

/// Prices journey `id` as `status` (`closed`: by its two stations; `no_exit` or
/// `no_entry_charged`: the maximum fare), under the caps as they stand without its own earlier
/// charge, and publishes it to the rider as a trip. Returns the change in what it charged (a
/// correction may lower it: then 0). The caller holds the card's lock.
fn settle_journey(
    tx: &mut dyn Tx,
    fares: &FarePolicy,
    id: i64,
    status: &str,
    paid: &mut std::collections::BTreeSet<(u64, String, String)>,
) -> Result<u64> {
    let Some(r) = tx.row(
        "SELECT card_id, product, entry_station, entry_at, exit_station, exit_at, day, month,
                fare_vnd FROM journeys WHERE id = ?1",
        params![id],
    )?
    else {
        return Ok(0);
    };
    let card = r.int(0)? as u64;
    let product: Product = serde_json::from_value(Value::String(r.text(1)?))
        .map_err(|e| StorageError(format!("journey {id}: {e}")))?;
    let station =
        |i: usize| -> Result<Option<u16>> { Ok(r.opt_int(i)?.and_then(|v| u16::try_from(v).ok())) };
    let (entry, exit) = (station(2)?, station(4)?);
    let (entry_at, exit_at) = (r.opt_int(3)?, r.opt_int(5)?);
    let (day, month) = (r.text(6)?, r.text(7)?);
    let before = r.int(8)? as u64;
    // A journey longer than the fare table allows is charged the maximum, like one without
    // an exit.
    let overtime = matches!((entry_at, exit_at), (Some(a), Some(b))
        if b.saturating_sub(a) > fares.max_journey_secs(&day) as i64);
    let (full, priced) = match (status, entry, exit) {
        ("closed", Some(a), Some(b)) if !overtime => fares.metro_fare(&day, a, b),
        ("closed", Some(a), Some(b)) => (
            fares
                .metro_max_fare(&day, a)
                .max(fares.metro_max_fare(&day, b)),
            false,
        ),
        (_, Some(s), None) | (_, None, Some(s)) => (fares.metro_max_fare(&day, s), false),
        _ => (0, false),
    };
    // Passes ride free; the caps count what the card paid without this journey's charge.
    let full = if product == Product::PayAsYouGo {
        full
    } else {
        0
    };
    let (today, this_month) = paid_in(tx, card, &day, &month)?;
    let fare = fares.capped(
        full,
        today.saturating_sub(before),
        this_month.saturating_sub(before),
    );
    tx.exec(
        "UPDATE journeys SET status = ?2, fare_vnd = ?3, full_fare_vnd = ?4 WHERE id = ?1",
        params![id, status, big(fare), big(full)],
    )?;
    let name = |s: Option<u16>| s.and_then(|s| fares.station_name(&day, s));
    let route = entry
        .or(exit)
        .and_then(|s| fares.metro.in_force(&day)?.station(s).map(|s| s.line.route));
    let trip = trips::Trip {
        id: format!("journey:{id}"),
        card_id: card,
        mode: "metro".into(),
        route,
        at: entry_at.or(exit_at).unwrap_or(0) as u64,
        from_station: name(entry),
        to_station: name(exit),
        exit_at: exit_at.map(|t| t as u64),
        incomplete: !priced,
        day: day.clone(),
        product,
        fare_vnd: fare,
        full_fare_vnd: full,
    };
    let payload = serde_json::to_value(&trip).map_err(|e| StorageError(e.to_string()))?;
    publish_to_card(tx, card, trips::TRIPS, &trip.id, payload)?;
    paid.insert((card, day, month));
    Ok(fare.saturating_sub(before))
}

/// Applies one new mutation in the account's scope under its collection's policy.
fn apply_mutation(tx: &mut dyn Tx, scope: &str, m: &Mutation) -> Result<Outcome> {
    let reject = |reason: &str| {
        Ok(Outcome::Rejected {
            reason: reason.to_owned(),
        })
    };
    let Some(spec) = thudo_core::collections::spec(&m.collection) else {
        return reject("unknown_collection");
    };
    if !spec.pushable {
        return reject("read_only_collection");
    }
    if m.op != "put" && m.op != "delete" {
        return reject("unknown_op");
    }
    if m.record_id.is_empty() || m.record_id.len() > 256 || crate::has_control(&m.record_id) {
        return reject("bad_record_id");
    }
    if m.hlc.len() > 128 || crate::has_control(&m.hlc) || crate::has_control(&m.collection) {
        return reject("bad_clock");
    }
    if m.op == "put" && !m.payload.is_object() {
        return reject("payload_not_an_object");
    }
    if m.payload.to_string().len() > protocol::MAX_RECORD_BYTES {
        return reject("record_too_large");
    }
    // A bare resource in the health book is what a facility publishes: a device's record must
    // come wrapped with its provenance, so no device can pass as a facility.
    if m.op == "put" && m.collection == "health.records" && !m.payload["resource"].is_object() {
        return reject("resource_wrapper_required");
    }
    if spec.policy == ConflictPolicy::LastWriterWins {
        let Some(incoming) = Hlc::parse(&m.hlc) else {
            return reject("missing_clock");
        };
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        if incoming.wall_ms > now_ms.saturating_add(thudo_core::changes::hlc::MAX_AHEAD_MS) {
            return reject("clock_in_future");
        }
        let current = tx
            .row(
                "SELECT hlc FROM versions WHERE scope = ?1 AND collection = ?2 AND record_id = ?3",
                params![scope, &m.collection, &m.record_id],
            )?
            .map(|r| r.text(0))
            .transpose()?;
        if current
            .and_then(|c| Hlc::parse(&c))
            .is_some_and(|c| c >= incoming)
        {
            return Ok(Outcome::Superseded);
        }
    }
    tx.exec(
        "INSERT INTO versions(scope, collection, record_id, hlc) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope, collection, record_id) DO UPDATE SET hlc = excluded.hlc",
        params![scope, &m.collection, &m.record_id, &m.hlc],
    )?;
    append(
        tx,
        scope,
        &Change {
            collection: m.collection.clone(),
            record_id: m.record_id.clone(),
            op: m.op.clone(),
            payload: m.payload.clone(),
            hlc: m.hlc.clone(),
        },
    )?;
    Ok(Outcome::Applied)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail by panicking
mod migration_tests {
    use super::*;
    use rusqlite::Connection;

    /// A database file as an earlier server left it: base tables only (made before versioning)
    /// or at version 2, with one account in it.
    fn earlier(path: &Path, steps: &[&str], version: u32) {
        let conn = Connection::open(path).unwrap();
        for step in steps {
            conn.execute_batch(step).unwrap();
        }
        conn.execute(
            "INSERT INTO accounts(id, citizen_hash, cell, card_id) VALUES ('a1', x'01', NULL, 7)",
            [],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    #[test]
    fn each_earlier_version_is_brought_up_to_date_with_its_data() {
        let steps = sqlite::SCHEMA.steps;
        for (steps, version) in [(&steps[..1], 0u32), (&steps[..2], 2)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("server.db");
            earlier(&path, steps, version);
            let storage = SqliteStorage::open(&path).unwrap();
            // The data is there and the newest tables work.
            let deny_version = storage.get_setting("deny_version").unwrap();
            assert_eq!(deny_version.as_deref(), Some(&b"1"[..]), "from {version}");
            storage.create_nonce(&[9; 32], 1).unwrap();
            drop(storage);
            let conn = Connection::open(&path).unwrap();
            let kept: String = conn
                .query_row("SELECT id FROM accounts", [], |r| r.get(0))
                .unwrap();
            assert_eq!(kept, "a1");
            assert_eq!(
                thudo_core::schema::version(&conn).unwrap(),
                sqlite::SCHEMA.latest()
            );
        }
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        drop(SqliteStorage::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 9)
            .unwrap();
        let err = SqliteStorage::open(&path).err().unwrap();
        assert!(err.0.contains("newer"), "{err:?}");
    }
}
