//! The change log: devices' pushes applied once per idempotency key under each collection's
//! conflict policy, pulls by scope and cursor, and what facilities, the party and transit
//! publish to a scope.

use serde_json::Value;
use thudo_core::changes::hlc::Hlc;
use thudo_core::changes::ConflictPolicy;
use thudo_core::sync::protocol::{self, Change, Mutation, Outcome, PushResult};

use crate::devices::store::Device;
use crate::http::has_control;
use crate::storage::engine::{params, Engine, Tx};
use crate::storage::locks::Lock;
use crate::storage::migrations::ConcernSchema;
use crate::storage::{Result, SqlStorage};

/// The sync tables.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "sync",
    sqlite: &[
        include_str!("schema/sqlite/0001_base.sql"),
        include_str!("schema/sqlite/0002_publishers.sql"),
        include_str!("schema/sqlite/0003_push_budget.sql"),
        include_str!("schema/sqlite/0004_mutation_digest.sql"),
        include_str!("schema/sqlite/0005_publishers_by_record.sql"),
    ],
    postgres: &[
        include_str!("schema/postgres/0001_base.sql"),
        include_str!("schema/postgres/0002_publishers.sql"),
        include_str!("schema/postgres/0003_push_budget.sql"),
        include_str!("schema/postgres/0004_mutation_digest.sql"),
        include_str!("schema/postgres/0005_publishers_by_record.sql"),
    ],
};

/// The change log.
pub trait SyncStore: Send + Sync + 'static {
    /// Applies a batch of mutations from a device (idempotency keys unique within it), exactly
    /// once per idempotency key, and counts the keys new to the account against its `budget`
    /// for the day: all of the batch, or nothing when the day's would pass it
    /// ([`Pushed::OverBudget`]) or the device was revoked after it was authenticated.
    fn push(&self, device: &Device, mutations: &[Mutation], budget: PushBudget) -> Result<Pushed>;
    /// Changes of `collection` in `scope` after position `after`, at most `limit`; returns them,
    /// the position of the last one, and whether more are waiting.
    fn pull(
        &self,
        scope: &str,
        collection: &str,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<Change>, i64, bool)>;
    /// How many changes of `collection` in `scope` come after position `after`, counted up to
    /// `cap` (the count costs one index entry per change; a progress bar needs no more).
    fn remaining(&self, scope: &str, collection: &str, after: i64, cap: u32) -> Result<u64>;
    /// A fingerprint of the change at position `at` of `collection` in `scope` (its number,
    /// record, operation, clock and payload); `None` when there is none. A cursor carries its
    /// position's: a database restored from a backup (its numbers counted again, other
    /// changes under them) no longer holds that change there, and the device starts over.
    fn mark_at(&self, scope: &str, collection: &str, at: i64) -> Result<Option<[u8; 6]>>;
    /// Publishes server changes (facilities, the party) to a scope; returns how many.
    fn publish(&self, scope: &str, changes: &[Change]) -> Result<usize>;
    /// Publishes as `publisher` (a facility, a party organisation): all or nothing, and
    /// nothing when a record was published by another publisher before that `may_replace`
    /// does not name ([`Published::NotYours`]); each record is then `publisher`'s.
    fn publish_as(
        &self,
        scope: &str,
        changes: &[Change],
        publisher: &str,
        may_replace: &dyn Fn(&str) -> bool,
    ) -> Result<Published>;
    /// [`SyncStore::publish_as`] for records whose id names one scope's record across all
    /// scopes (a meeting's, a notice's): nothing is published, and the id is returned, when
    /// another scope holds a record of that id it has not withdrawn.
    fn publish_unique_as(
        &self,
        scope: &str,
        changes: &[Change],
        publisher: &str,
        may_replace: &dyn Fn(&str) -> bool,
    ) -> Result<Published>;
    /// Reads the record `record_id` of `collection` in `scope` as last put (`None`: none, or
    /// deleted) and, in the same transaction under the scope's lock, appends the server's
    /// next version of it when `next` gives one; returns what was appended.
    fn put_next(
        &self,
        scope: &str,
        collection: &str,
        record_id: &str,
        next: &mut dyn FnMut(Option<Value>) -> Option<Value>,
    ) -> Result<Option<Value>>;
    /// Withdraws record `record_id` of `collection` from `scope` as `publisher`: a delete its
    /// devices pull, when `publisher` published it (or one `may_replace` names). A record
    /// withdrawn already is not withdrawn again; one nobody published (a device's own) is
    /// [`Withdrawn::NotFound`].
    fn withdraw_as(
        &self,
        scope: &str,
        collection: &str,
        record_id: &str,
        publisher: &str,
        may_replace: &dyn Fn(&str) -> bool,
    ) -> Result<Withdrawn>;
}

/// An account's allowance of pushed bytes for one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushBudget {
    /// The UTC day number (unix seconds / 86,400).
    pub day: i64,
    /// The most bytes the account's pushes may count on that day.
    pub max_bytes: u64,
}

/// What [`SyncStore::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Each mutation's outcome, in the batch's order.
    Done(Vec<PushResult>),
    /// The device was revoked after it was authenticated: nothing applied.
    Revoked,
    /// The keys new to the account would pass its day's budget: nothing applied or counted.
    OverBudget,
}

/// What one mutation counts against its account's day: its record and at least what a
/// change-log row costs beside it (a delete's payload is `null`, but its row is not nothing).
/// A key sent again (a retry whose answer was lost) counts nothing.
pub fn push_cost(m: &Mutation, payload_text: &str) -> u64 {
    (payload_text.len() + m.record_id.len() + m.hlc.len()).max(256) as u64
}

/// What a key was first sent with: the same key with other content is refused.
fn content_digest(m: &Mutation, payload_text: &str) -> String {
    let text = format!(
        "{}\0{}\0{}\0{}\0{payload_text}",
        m.collection, m.record_id, m.op, m.hlc
    );
    thudo_core::hex::encode(&crate::storage::sha256(text.as_bytes()))
}

/// What the first pass of a push found of one mutation.
enum Planned<'a> {
    /// Its key was answered before: that answer again.
    Seen(String),
    /// Its key was first sent with other content.
    Reused,
    /// A key new to the account: its payload serialized and its digest.
    New(&'a str, &'a str),
}

/// Counts `bytes` against `account_id`'s pushes on `budget`'s day; `false`, and nothing
/// counted, when the day's would pass the budget. The day's first push is taken whatever its
/// size (a batch over a small budget would otherwise be refused every day, for ever, and its
/// device never get past it). Older days of the account are dropped.
fn spend_push_budget(
    tx: &mut dyn Tx,
    account_id: &str,
    budget: PushBudget,
    bytes: u64,
) -> Result<bool> {
    tx.exec(
        "DELETE FROM push_budget WHERE account_id = ?1 AND day < ?2",
        params![account_id, budget.day],
    )?;
    let spent = tx.exec(
        "INSERT INTO push_budget(account_id, day, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, day) DO UPDATE SET bytes = push_budget.bytes + excluded.bytes
         WHERE push_budget.bytes + excluded.bytes <= ?4",
        params![
            account_id,
            budget.day,
            bytes as i64,
            budget.max_bytes as i64
        ],
    )?;
    Ok(spent == 1)
}

/// What [`SyncStore::publish_as`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// This many changes published.
    Published(usize),
    /// This record (`collection/record_id`) is another publisher's: nothing was published.
    NotYours(String),
    /// Another scope holds a record of this id (`collection/record_id`) where ids name one
    /// scope's record ([`SyncStore::publish_unique_as`]): nothing was published.
    TakenElsewhere(String),
}

/// What [`SyncStore::withdraw_as`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawn {
    /// A delete was published.
    Withdrawn,
    /// It was withdrawn before: nothing changed.
    AlreadyWithdrawn,
    /// Another publisher's record: nothing changed.
    NotYours,
    /// No publisher published such a record here.
    NotFound,
}

/// Publishes `changes` to `scope` as `publisher` in `tx` ([`SyncStore::publish_as`]); with
/// `unique`, also refused when another scope holds a live record of one of the ids.
fn publish_in(
    tx: &mut dyn Tx,
    scope: &str,
    changes: &[Change],
    publisher: &str,
    may_replace: &dyn Fn(&str) -> bool,
    unique: bool,
) -> Result<Published> {
    // Checked before anything is written, under the scope's lock (and each id's, when ids are
    // unique across scopes): all or nothing.
    tx.lock(Lock::Scope(scope))?;
    if unique {
        let locks: Vec<Lock<'_>> = changes
            .iter()
            .map(|c| Lock::UniqueIds(&c.collection))
            .collect();
        tx.lock_all(&locks)?;
        for c in changes {
            let holders = tx.rows(
                "SELECT scope FROM publishers WHERE collection = ?1 AND record_id = ?2
                   AND scope <> ?3",
                params![&c.collection, &c.record_id, scope],
            )?;
            for holder in holders {
                let other = holder.text(0)?;
                let live = last_change(tx, &other, &c.collection, &c.record_id)?;
                if live.is_some_and(|l| l.is_put()) {
                    return Ok(Published::TakenElsewhere(format!(
                        "{}/{}",
                        c.collection, c.record_id
                    )));
                }
            }
        }
    }
    for c in changes {
        let owner = tx.row(
            "SELECT publisher FROM publishers
             WHERE scope = ?1 AND collection = ?2 AND record_id = ?3",
            params![scope, &c.collection, &c.record_id],
        )?;
        // A record whose last change a device pushed is the citizen's, whoever published the
        // key before; one no publisher published is free if the server wrote it (before
        // publishers were kept).
        let last = last_change(tx, scope, &c.collection, &c.record_id)?;
        let yours = !last.is_some_and(|l| l.put_by_a_device())
            && match owner {
                Some(owner) => {
                    let owner = owner.text(0)?;
                    owner == publisher || may_replace(&owner)
                }
                None => true,
            };
        if !yours {
            return Ok(Published::NotYours(format!(
                "{}/{}",
                c.collection, c.record_id
            )));
        }
    }
    for c in changes {
        tx.exec(
            "INSERT INTO publishers(scope, collection, record_id, publisher)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (scope, collection, record_id)
             DO UPDATE SET publisher = excluded.publisher",
            params![scope, &c.collection, &c.record_id, publisher],
        )?;
        append(tx, scope, c)?;
    }
    Ok(Published::Published(changes.len()))
}

/// A record's last change in a scope: its operation, payload and clock.
pub(crate) struct LastChange {
    op: String,
    payload: String,
    hlc: String,
}

impl LastChange {
    /// Whether it is a version of the record (not its deletion).
    fn is_put(&self) -> bool {
        self.op == "put"
    }

    /// Its payload when it is a put.
    pub(crate) fn put_payload(&self) -> Option<Value> {
        self.is_put()
            .then(|| serde_json::from_str(&self.payload).ok())
            .flatten()
    }

    /// Whether a device put it (its clock's node is not the server's): a record of the
    /// citizen's own, which no publisher replaces. One the citizen deleted is not: its
    /// publisher may publish it again.
    fn put_by_a_device(&self) -> bool {
        self.is_put() && Hlc::parse(&self.hlc).is_none_or(|h| h.node != SERVER_NODE)
    }
}

/// The last change of record `record_id` of `collection` in `scope`, if it has one.
pub(crate) fn last_change(
    tx: &mut dyn Tx,
    scope: &str,
    collection: &str,
    record_id: &str,
) -> Result<Option<LastChange>> {
    tx.row(
        "SELECT op, payload, hlc FROM changes
         WHERE scope = ?1 AND collection = ?2 AND record_id = ?3 ORDER BY seq DESC LIMIT 1",
        params![scope, collection, record_id],
    )?
    .map(|r| {
        Ok(LastChange {
            op: r.text(0)?,
            payload: r.text(1)?,
            hlc: r.text(2)?,
        })
    })
    .transpose()
}

/// A clock for a change the server makes itself.
pub fn server_hlc() -> String {
    Hlc::tick(
        None,
        chrono::Utc::now().timestamp_millis() as u64,
        SERVER_NODE,
    )
    .to_string()
}

/// The node of the clocks the server stamps its own changes with.
pub const SERVER_NODE: &str = "server";

/// Appends to a scope's change log. The scope's lock is held from before the change takes its
/// sequence until the transaction ends, so changes of one scope commit in sequence order.
pub fn append(tx: &mut dyn Tx, scope: &str, c: &Change) -> Result<()> {
    let payload = c.payload.to_string();
    append_text(
        tx,
        scope,
        &c.collection,
        &c.record_id,
        &c.op,
        &payload,
        &c.hlc,
    )
}

/// [`append`] with the payload already serialized.
fn append_text(
    tx: &mut dyn Tx,
    scope: &str,
    collection: &str,
    record_id: &str,
    op: &str,
    payload: &str,
    hlc: &str,
) -> Result<()> {
    tx.lock(Lock::Scope(scope))?;
    tx.exec(
        "INSERT INTO changes(scope, collection, record_id, op, payload, hlc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![scope, collection, record_id, op, payload, hlc],
    )?;
    Ok(())
}

/// Rows a pull reads at once while it fills a page.
const PULL_READ_ROWS: usize = 32;

impl<E: Engine> SyncStore for SqlStorage<E> {
    fn push(&self, device: &Device, mutations: &[Mutation], budget: PushBudget) -> Result<Pushed> {
        let scope = format!("acct:{}", device.account_id);
        // Serialized and hashed once, before the lock (a 16 MiB batch takes a while).
        let contents: Vec<(String, String)> = mutations
            .iter()
            .map(|m| {
                let text = m.payload.to_string();
                let digest = content_digest(m, &text);
                (text, digest)
            })
            .collect();
        self.write(|tx| {
            // One push per account at a time: the idempotency check, the budget, the clock
            // comparison and the append see every earlier push of the account, whichever
            // instance took it.
            tx.lock(Lock::Scope(&scope))?;
            // A revocation tells the account under this lock: one that committed while this
            // push waited (for a worker, for the lock) is seen here, and the push lands nowhere.
            if tx
                .row(
                    "SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL",
                    params![&device.id],
                )?
                .is_none()
            {
                return Ok(Pushed::Revoked);
            }
            // First what each key is: answered before (free), or new (counted), so the day's
            // budget is checked once for the batch before anything is applied.
            let mut planned = Vec::with_capacity(mutations.len());
            let mut cost = 0u64;
            let mut in_batch = std::collections::HashMap::new();
            for (m, (text, digest)) in mutations.iter().zip(&contents) {
                // A key twice in one batch (the handler refuses it; a direct caller may not):
                // the second is the first's retry, or another change under its key.
                if let Some(first) = in_batch.insert(m.idempotency_key.as_str(), digest) {
                    planned.push(if first == digest {
                        Planned::Seen("duplicate".to_owned())
                    } else {
                        Planned::Reused
                    });
                    continue;
                }
                let seen = tx.row(
                    "SELECT outcome, digest FROM mutations WHERE account_id = ?1 AND idempotency_key = ?2",
                    params![&device.account_id, &m.idempotency_key],
                )?;
                planned.push(match seen {
                    Some(row) => match row.opt_text(1)? {
                        Some(first) if first != *digest => Planned::Reused,
                        _ => Planned::Seen(row.text(0)?),
                    },
                    None => {
                        cost = cost.saturating_add(push_cost(m, text));
                        Planned::New(text, digest)
                    }
                });
            }
            if cost > 0 && !spend_push_budget(tx, &device.account_id, budget, cost)? {
                return Ok(Pushed::OverBudget);
            }
            let mut results = Vec::with_capacity(mutations.len());
            for (m, plan) in mutations.iter().zip(planned) {
                let outcome = match plan {
                    // A retry whose answer was lost gets the first answer: a refusal stays a
                    // refusal (the device keeps it in `sync.rejected`), never a silent success.
                    Planned::Seen(seen) => match seen.strip_prefix("rejected") {
                        Some(reason) => Outcome::Rejected {
                            reason: reason.strip_prefix(':').unwrap_or("rejected").to_owned(),
                        },
                        None => Outcome::Duplicate,
                    },
                    // Another change under a key already used (a client that reuses keys):
                    // answering the first's outcome would tell it this one was applied.
                    Planned::Reused => Outcome::Rejected {
                        reason: "idempotency_key_reused".to_owned(),
                    },
                    Planned::New(text, digest) => {
                        let outcome = apply_mutation(tx, &scope, m, text)?;
                        let tag = match &outcome {
                            Outcome::Applied => "applied".to_owned(),
                            Outcome::Superseded => "superseded".to_owned(),
                            Outcome::Rejected { reason } => format!("rejected:{reason}"),
                            Outcome::Duplicate => "duplicate".to_owned(),
                        };
                        tx.exec(
                            "INSERT INTO mutations(account_id, idempotency_key, outcome, digest)
                             VALUES (?1, ?2, ?3, ?4)",
                            params![&device.account_id, &m.idempotency_key, tag, digest],
                        )?;
                        outcome
                    }
                };
                results.push(PushResult {
                    idempotency_key: m.idempotency_key.clone(),
                    outcome,
                });
            }
            Ok(Pushed::Done(results))
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
            let mut last = after;
            let mut changes = Vec::new();
            let mut more = false;
            let mut bytes = 0usize;
            // Read a few rows at a time: a page of a thousand records of 1 MiB each must not
            // be read whole to keep its first four megabytes.
            'page: loop {
                let wanted = (limit as usize + 1 - changes.len()).min(PULL_READ_ROWS);
                let rows = tx.rows(
                    "SELECT seq, record_id, op, payload, hlc FROM changes
                     WHERE scope = ?1 AND collection = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
                    params![scope, collection, last, wanted as i64],
                )?;
                let read = rows.len();
                for row in rows {
                    let payload = row.text(3)?;
                    // A page ends at `limit` changes or once its payloads reach the byte cap.
                    if changes.len() == limit as usize
                        || (!changes.is_empty()
                            && bytes + payload.len() > protocol::MAX_PULL_PAGE_BYTES)
                    {
                        more = true;
                        break 'page;
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
                if read < wanted {
                    break;
                }
            }
            Ok((changes, last, more))
        })
    }

    fn mark_at(&self, scope: &str, collection: &str, at: i64) -> Result<Option<[u8; 6]>> {
        self.read(|tx| {
            let Some(row) = tx.row(
                "SELECT record_id, op, hlc, payload FROM changes
                 WHERE seq = ?1 AND scope = ?2 AND collection = ?3",
                params![at, scope, collection],
            )?
            else {
                return Ok(None);
            };
            let text = format!(
                "{at}\0{}\0{}\0{}\0{}",
                row.text(0)?,
                row.text(1)?,
                row.text(2)?,
                row.text(3)?
            );
            let mut mark = [0u8; 6];
            mark.copy_from_slice(&crate::storage::sha256(text.as_bytes())[..6]);
            Ok(Some(mark))
        })
    }

    fn remaining(&self, scope: &str, collection: &str, after: i64, cap: u32) -> Result<u64> {
        self.read(|tx| {
            let row = tx.row(
                "SELECT COUNT(*) FROM (SELECT 1 FROM changes
                 WHERE scope = ?1 AND collection = ?2 AND seq > ?3 LIMIT ?4) AS waiting",
                params![scope, collection, after, i64::from(cap)],
            )?;
            Ok(match row {
                Some(r) => u64::try_from(r.int(0)?).unwrap_or(0),
                None => 0,
            })
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

    fn publish_as(
        &self,
        scope: &str,
        changes: &[Change],
        publisher: &str,
        may_replace: &dyn Fn(&str) -> bool,
    ) -> Result<Published> {
        self.write(|tx| publish_in(tx, scope, changes, publisher, may_replace, false))
    }

    fn publish_unique_as(
        &self,
        scope: &str,
        changes: &[Change],
        publisher: &str,
        may_replace: &dyn Fn(&str) -> bool,
    ) -> Result<Published> {
        self.write(|tx| publish_in(tx, scope, changes, publisher, may_replace, true))
    }

    fn put_next(
        &self,
        scope: &str,
        collection: &str,
        record_id: &str,
        next: &mut dyn FnMut(Option<Value>) -> Option<Value>,
    ) -> Result<Option<Value>> {
        self.write(|tx| {
            tx.lock(Lock::Scope(scope))?;
            let current =
                last_change(tx, scope, collection, record_id)?.and_then(|l| l.put_payload());
            let Some(payload) = next(current) else {
                return Ok(None);
            };
            append(
                tx,
                scope,
                &Change {
                    collection: collection.to_owned(),
                    record_id: record_id.to_owned(),
                    op: "put".into(),
                    payload: payload.clone(),
                    hlc: server_hlc(),
                },
            )?;
            Ok(Some(payload))
        })
    }

    fn withdraw_as(
        &self,
        scope: &str,
        collection: &str,
        record_id: &str,
        publisher: &str,
        may_replace: &dyn Fn(&str) -> bool,
    ) -> Result<Withdrawn> {
        self.write(|tx| {
            tx.lock(Lock::Scope(scope))?;
            let owner = tx.row(
                "SELECT publisher FROM publishers
                 WHERE scope = ?1 AND collection = ?2 AND record_id = ?3",
                params![scope, collection, record_id],
            )?;
            let Some(owner) = owner.map(|o| o.text(0)).transpose()? else {
                return Ok(Withdrawn::NotFound);
            };
            if owner != publisher && !may_replace(&owner) {
                return Ok(Withdrawn::NotYours);
            }
            let Some(last) = last_change(tx, scope, collection, record_id)?.filter(|l| l.is_put())
            else {
                return Ok(Withdrawn::AlreadyWithdrawn);
            };
            // The citizen's own version since (pushed over the published one) is theirs.
            if last.put_by_a_device() {
                return Ok(Withdrawn::NotYours);
            }
            append_text(
                tx,
                scope,
                collection,
                record_id,
                "delete",
                "null",
                &server_hlc(),
            )?;
            Ok(Withdrawn::Withdrawn)
        })
    }
}

/// Applies one new mutation in the account's scope under its collection's policy (its payload
/// serialized as `payload_text`).
fn apply_mutation(
    tx: &mut dyn Tx,
    scope: &str,
    m: &Mutation,
    payload_text: &str,
) -> Result<Outcome> {
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
    if !crate::http::valid_record_id(&m.record_id) {
        return reject("bad_record_id");
    }
    if m.hlc.len() > 128 || has_control(&m.hlc) || has_control(&m.collection) {
        return reject("bad_clock");
    }
    if m.op == "put" && !m.payload.is_object() {
        return reject("payload_not_an_object");
    }
    if payload_text.len() > protocol::MAX_RECORD_BYTES {
        return reject("record_too_large");
    }
    // A bare resource in the health book is what a facility publishes: a device's record must
    // come wrapped with its provenance, so no device can pass as a facility.
    if m.op == "put" && m.collection == "health.records" && !m.payload["resource"].is_object() {
        return reject("resource_wrapper_required");
    }
    // Filed under its own key (`Type/id`) only: under another id it would replace that record
    // (a facility's) on every device, which files a record by its resource.
    if m.op == "put"
        && m.collection == "health.records"
        && thudo_core::health::fhir::key_of(&m.payload["resource"]).as_deref()
            != Some(m.record_id.as_str())
    {
        return reject("record_id_mismatch");
    }
    // A member files a procedure; only the party organisation submits, accepts or returns it
    // (a modified app cannot mark its own transfer accepted on the member's other phones).
    if m.collection == "handbook.procedure" {
        if m.op == "put" && m.payload["status"]["state"] != "queued" {
            return reject("procedure_not_queued");
        }
        // Nor undo a decision: a procedure submitted or accepted is the organisation's now
        // (a returned one may be sent again). Read under the scope's lock the push holds.
        let latest = last_change(tx, scope, &m.collection, &m.record_id)?;
        let decided = latest.and_then(|l| l.put_payload()).is_some_and(|p| {
            matches!(
                p["status"]["state"].as_str(),
                Some("submitted" | "accepted")
            )
        });
        if decided {
            return reject("procedure_decided");
        }
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
    append_text(
        tx,
        scope,
        &m.collection,
        &m.record_id,
        &m.op,
        payload_text,
        &m.hlc,
    )?;
    Ok(Outcome::Applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's digest is the content as the backend reads it: key order and spacing do not
    /// change it, a number's text does. Fixed here, so a change of the JSON library's
    /// settings (kept key order, number parsing) cannot silently refuse every retry sent
    /// across an upgrade.
    #[test]
    fn a_keys_digest_is_fixed() {
        let read = |json: &str| -> Mutation { serde_json::from_str(json).unwrap() };
        let m = read(
            r#"{"idempotency_key": "k", "seq": 1, "collection": "handbook.note",
                "record_id": "n1", "op": "put", "hlc": "1790000000000-000000-phone",
                "payload": {"text": "Hà Nội", "id": "n1", "weight": 1.50}}"#,
        );
        let text = m.payload.to_string();
        assert_eq!(text, r#"{"id":"n1","text":"Hà Nội","weight":1.50}"#);
        assert_eq!(
            content_digest(&m, &text),
            "05665f9e6a77a253110f7244e23939504b6313db49a3684322ca10701301d55c"
        );
        let spaced = read(
            r#"{"idempotency_key":"k","seq":1,"collection":"handbook.note","record_id":"n1",
                "op":"put","hlc":"1790000000000-000000-phone",
                "payload":{ "weight":1.50 ,"id":"n1","text":"H\u00e0 N\u1ed9i"}}"#,
        );
        let spaced_text = spaced.payload.to_string();
        assert_eq!(
            content_digest(&spaced, &spaced_text),
            content_digest(&m, &text)
        );
        let other_number = read(&serde_json::to_string(&m).unwrap().replace("1.50", "1.5"));
        let other_text = other_number.payload.to_string();
        assert_ne!(
            content_digest(&other_number, &other_text),
            content_digest(&m, &text)
        );
    }
}
