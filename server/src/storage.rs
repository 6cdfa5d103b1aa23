//! The backend's storage layer. [`Storage`] is what the HTTP layer needs; [`SqliteStorage`]
//! implements it on one embedded SQLite file (nothing to install). A deployment that outgrows one
//! machine implements the same trait on PostgreSQL: every method is one transaction, and the
//! change log is an append-only table ordered by a sequence.

use std::path::Path;
use std::sync::Mutex;

use ring::digest;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use thudo_core::sync::hlc::Hlc;
use thudo_core::sync::protocol::{self, Change, ConflictPolicy, Mutation, Outcome, PushResult};
use thudo_core::transit::validator::Tap;
use thudo_core::transit::Product;

use crate::fares::FarePolicy;

/// A storage failure (a 500 for the client, which retries).
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageError(pub String);

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError(e.to_string())
    }
}

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
    /// Stores a validator's taps once each and charges pay-as-you-go fares under the caps;
    /// returns (stored, duplicates, highest seq, charged VND).
    fn record_taps(
        &self,
        validator: &Device,
        taps: &[Tap],
        fares: &FarePolicy,
    ) -> Result<(u32, u32, u64, u64)>;
    /// Fares charged to a card, VND, per day `YYYY-MM-DD` (Hanoi time).
    fn charges(&self, card_id: u64) -> Result<Vec<(String, u64)>>;
    /// Adds cards to the deny list; returns the new list version.
    fn deny_cards(&self, cards: &[u64]) -> Result<u32>;
    /// The deny list: version and cards.
    fn deny_list(&self) -> Result<(u32, Vec<u64>)>;
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts(
    id TEXT PRIMARY KEY, citizen_hash BLOB NOT NULL UNIQUE, cell TEXT, card_id INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS devices(
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), name TEXT NOT NULL,
    role TEXT NOT NULL, token_hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS changes(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, collection TEXT NOT NULL,
    record_id TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL, hlc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_by_scope ON changes(scope, collection, seq);
CREATE TABLE IF NOT EXISTS versions(
    scope TEXT NOT NULL, collection TEXT NOT NULL, record_id TEXT NOT NULL, hlc TEXT NOT NULL,
    PRIMARY KEY(scope, collection, record_id));
CREATE TABLE IF NOT EXISTS mutations(
    account_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, outcome TEXT NOT NULL,
    PRIMARY KEY(account_id, idempotency_key));
CREATE TABLE IF NOT EXISTS taps(
    validator_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, route INTEGER NOT NULL,
    accepted INTEGER NOT NULL, reason TEXT NOT NULL, card_id INTEGER, product TEXT,
    day TEXT NOT NULL, month TEXT NOT NULL, charged_vnd INTEGER NOT NULL,
    PRIMARY KEY(validator_id, seq));
CREATE INDEX IF NOT EXISTS taps_by_card ON taps(card_id, day);
CREATE TABLE IF NOT EXISTS deny_cards(card_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

/// Storage on one SQLite file (WAL, full sync).
pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

impl SqliteStorage {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStorage> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteStorage {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn account_in(tx: &rusqlite::Transaction<'_>, citizen_id: &str) -> Result<String> {
    let hash = sha256(format!("thudo/citizen/{citizen_id}").as_bytes());
    if let Some(id) = tx
        .query_row(
            "SELECT id FROM accounts WHERE citizen_hash = ?1",
            [&hash[..]],
            |r| r.get::<_, String>(0),
        )
        .optional()?
    {
        return Ok(id);
    }
    let id = format!("a-{}", thudo_core::hex::encode(&random_bytes::<8>()?));
    // Card numbers: random, 15 decimal digits, so they are not guessable from each other.
    let card = u64::from_le_bytes(random_bytes::<8>()?) % 900_000_000_000_000 + 100_000_000_000_000;
    tx.execute(
        "INSERT INTO accounts(id, citizen_hash, cell, card_id) VALUES (?1, ?2, NULL, ?3)",
        params![id, &hash[..], card as i64],
    )?;
    Ok(id)
}

fn append(tx: &rusqlite::Transaction<'_>, scope: &str, c: &Change) -> Result<()> {
    tx.execute(
        "INSERT INTO changes(scope, collection, record_id, op, payload, hlc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![scope, c.collection, c.record_id, c.op, c.payload.to_string(), c.hlc],
    )?;
    Ok(())
}

impl Storage for SqliteStorage {
    fn account_for_citizen(&self, citizen_id: &str) -> Result<String> {
        self.with(|tx| account_in(tx, citizen_id))
    }

    fn register_device(
        &self,
        citizen_id: &str,
        name: &str,
        role: &str,
        token_hash: &[u8; 32],
    ) -> Result<(String, String)> {
        self.with(|tx| {
            let account = account_in(tx, citizen_id)?;
            let id = format!("d-{}", thudo_core::hex::encode(&random_bytes::<8>()?));
            tx.execute(
                "INSERT INTO devices(id, account_id, name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, account, name, role, &token_hash[..], chrono::Utc::now().timestamp()],
            )?;
            Ok((id, account))
        })
    }

    fn device_by_token(&self, token_hash: &[u8; 32]) -> Result<Option<Device>> {
        self.with(|tx| {
            Ok(tx
                .query_row(
                    "SELECT d.id, d.account_id, d.role, a.cell, a.card_id FROM devices d
                     JOIN accounts a ON a.id = d.account_id WHERE d.token_hash = ?1",
                    [&token_hash[..]],
                    |r| {
                        Ok(Device {
                            id: r.get(0)?,
                            account_id: r.get(1)?,
                            role: r.get(2)?,
                            cell: r.get(3)?,
                            card_id: r.get::<_, i64>(4)? as u64,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn set_cell(&self, citizen_id: &str, cell: &str) -> Result<()> {
        self.with(|tx| {
            let account = account_in(tx, citizen_id)?;
            tx.execute(
                "UPDATE accounts SET cell = ?1 WHERE id = ?2",
                params![cell, account],
            )?;
            Ok(())
        })
    }

    fn push(&self, device: &Device, mutations: &[Mutation]) -> Result<Vec<PushResult>> {
        let scope = format!("acct:{}", device.account_id);
        self.with(|tx| {
            let mut results = Vec::with_capacity(mutations.len());
            for m in mutations {
                let seen: Option<String> = tx
                    .query_row(
                        "SELECT outcome FROM mutations WHERE account_id = ?1 AND idempotency_key = ?2",
                        params![device.account_id, m.idempotency_key],
                        |r| r.get(0),
                    )
                    .optional()?;
                let outcome = if seen.is_some() {
                    Outcome::Duplicate
                } else {
                    let outcome = apply_mutation(tx, &scope, m)?;
                    let tag = match &outcome {
                        Outcome::Applied => "applied",
                        Outcome::Superseded => "superseded",
                        _ => "rejected",
                    };
                    tx.execute(
                        "INSERT INTO mutations(account_id, idempotency_key, outcome) VALUES (?1, ?2, ?3)",
                        params![device.account_id, m.idempotency_key, tag],
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
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT seq, record_id, op, payload, hlc FROM changes
             WHERE scope = ?1 AND collection = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
        )?;
        let mut last = after;
        let mut changes = Vec::new();
        let rows = stmt.query_map(
            params![scope, collection, after, i64::from(limit) + 1],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )?;
        let mut more = false;
        for row in rows {
            let (seq, record_id, op, payload, hlc) = row?;
            if changes.len() == limit as usize {
                more = true;
                break;
            }
            last = seq;
            changes.push(Change {
                collection: collection.to_owned(),
                record_id,
                op,
                payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                hlc,
            });
        }
        Ok((changes, last, more))
    }

    fn publish(&self, scope: &str, changes: &[Change]) -> Result<usize> {
        self.with(|tx| {
            for c in changes {
                append(tx, scope, c)?;
            }
            Ok(changes.len())
        })
    }

    fn get_setting(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn set_setting(&self, key: &str, value: &[u8]) -> Result<()> {
        self.with(|tx| {
            tx.execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    fn record_taps(
        &self,
        validator: &Device,
        taps: &[Tap],
        fares: &FarePolicy,
    ) -> Result<(u32, u32, u64, u64)> {
        self.with(|tx| {
            let (mut stored, mut duplicates, mut highest, mut charged) = (0u32, 0u32, 0u64, 0u64);
            let mut ordered: Vec<&Tap> = taps.iter().collect();
            ordered.sort_by_key(|t| (t.at, t.seq));
            for t in ordered {
                highest = highest.max(t.seq);
                let exists: bool = tx
                    .query_row(
                        "SELECT 1 FROM taps WHERE validator_id = ?1 AND seq = ?2",
                        params![validator.id, t.seq as i64],
                        |_| Ok(true),
                    )
                    .optional()?
                    .unwrap_or(false);
                if exists {
                    duplicates += 1;
                    continue;
                }
                let (day, month) = fares.local_day_and_month(t.at);
                let mut fare = 0u64;
                if let (true, Some(card), Some(Product::PayAsYouGo)) =
                    (t.accepted, t.card_id, t.product)
                {
                    let sum = |column: &str, value: &str| -> Result<u64> {
                        Ok(tx.query_row(
                            &format!(
                                "SELECT COALESCE(SUM(charged_vnd), 0) FROM taps WHERE card_id = ?1 AND {column} = ?2"
                            ),
                            params![card as i64, value],
                            |r| r.get::<_, i64>(0),
                        )? as u64)
                    };
                    fare = fares.charge(t.route, sum("day", &day)?, sum("month", &month)?);
                }
                tx.execute(
                    "INSERT INTO taps(validator_id, seq, at, route, accepted, reason, card_id, product, day, month, charged_vnd)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        validator.id,
                        t.seq as i64,
                        t.at as i64,
                        t.route,
                        t.accepted,
                        serde_json::to_value(t.reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                        t.card_id.map(|c| c as i64),
                        t.product.and_then(|p| serde_json::to_value(p).ok()).map(|v| v.to_string()),
                        day,
                        month,
                        fare as i64
                    ],
                )?;
                stored += 1;
                charged += fare;
            }
            Ok((stored, duplicates, highest, charged))
        })
    }

    fn charges(&self, card_id: u64) -> Result<Vec<(String, u64)>> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare(
            "SELECT day, SUM(charged_vnd) FROM taps WHERE card_id = ?1 GROUP BY day ORDER BY day",
        )?;
        let rows = stmt.query_map([card_id as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn deny_cards(&self, cards: &[u64]) -> Result<u32> {
        self.with(|tx| {
            for c in cards {
                tx.execute(
                    "INSERT OR IGNORE INTO deny_cards(card_id) VALUES (?1)",
                    [*c as i64],
                )?;
            }
            let version: u32 = tx
                .query_row(
                    "SELECT value FROM settings WHERE key = 'deny_version'",
                    [],
                    |r| r.get::<_, Vec<u8>>(0),
                )
                .optional()?
                .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0)
                + 1;
            tx.execute(
                "INSERT INTO settings(key, value) VALUES ('deny_version', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [version.to_string().into_bytes()],
            )?;
            Ok(version)
        })
    }

    fn deny_list(&self) -> Result<(u32, Vec<u64>)> {
        let version = self
            .get_setting("deny_version")?
            .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(1);
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare("SELECT card_id FROM deny_cards ORDER BY card_id")?;
        let cards = stmt
            .query_map([], |r| Ok(r.get::<_, i64>(0)? as u64))?
            .collect::<std::result::Result<_, _>>()?;
        Ok((version, cards))
    }
}

/// Applies one new mutation in the account's scope under its collection's policy.
fn apply_mutation(tx: &rusqlite::Transaction<'_>, scope: &str, m: &Mutation) -> Result<Outcome> {
    let reject = |reason: &str| {
        Ok(Outcome::Rejected {
            reason: reason.to_owned(),
        })
    };
    let Some(spec) = protocol::collection(&m.collection) else {
        return reject("unknown_collection");
    };
    if !spec.pushable {
        return reject("read_only_collection");
    }
    if m.op != "put" && m.op != "delete" {
        return reject("unknown_op");
    }
    if m.record_id.is_empty() || m.record_id.len() > 256 {
        return reject("bad_record_id");
    }
    if m.op == "put" && !m.payload.is_object() {
        return reject("payload_not_an_object");
    }
    if spec.policy == ConflictPolicy::LastWriterWins {
        let Some(incoming) = Hlc::parse(&m.hlc) else {
            return reject("missing_clock");
        };
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        if incoming.wall_ms > now_ms.saturating_add(thudo_core::sync::hlc::MAX_AHEAD_MS) {
            return reject("clock_in_future");
        }
        let current: Option<String> = tx
            .query_row(
                "SELECT hlc FROM versions WHERE scope = ?1 AND collection = ?2 AND record_id = ?3",
                params![scope, m.collection, m.record_id],
                |r| r.get(0),
            )
            .optional()?;
        if current
            .and_then(|c| Hlc::parse(&c))
            .is_some_and(|c| c >= incoming)
        {
            return Ok(Outcome::Superseded);
        }
    }
    tx.execute(
        "INSERT INTO versions(scope, collection, record_id, hlc) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(scope, collection, record_id) DO UPDATE SET hlc = excluded.hlc",
        params![scope, m.collection, m.record_id, m.hlc],
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
