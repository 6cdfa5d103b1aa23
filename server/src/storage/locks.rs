//! The named locks a transaction may hold until it ends, with the order they are taken in.
//!
//! Several instances share one PostgreSQL database, so a rule that reads and then writes (one
//! push per account, one upload per validator, journeys numbered in commit order) holds a lock
//! other instances' transactions wait on. Two transactions taking two locks in opposite orders
//! would wait on each other for ever, so every lock has a **rank** and a transaction takes
//! locks in rank order: a lock ranked below one it already holds is refused with an error,
//! on SQLite (where writers are serial and the locks cost nothing) exactly as on PostgreSQL.
//! Locks of one rank taken together ([`super::engine::Tx::lock_all`]) are taken in key order.

use std::collections::BTreeSet;

use super::{sha256, Result, StorageError};

/// Card locks are taken by bucket (`card_id % CARD_LOCK_BUCKETS`): an upload of 10,000 taps
/// holds at most this many locks (PostgreSQL's lock table is small).
pub const CARD_LOCK_BUCKETS: u64 = 512;

/// A lock, by what it protects. Declared in rank order: a transaction takes them top to
/// bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock<'a> {
    /// Schema migrations (two instances starting on one new database).
    Migrations,
    /// One validator's uploads (de-duplication by sequence).
    Validator(&'a str),
    /// One sales order: its payment recorded once, its credential handed out once.
    Order(&'a str),
    /// One account's orders and credentials counted against its hourly limit.
    Account(&'a str),
    /// One device: its revocation, and the transit keys recorded for it.
    Device(&'a str),
    /// One transit key (SHA-256 of the compressed key, hex): two accounts claiming it.
    DeviceKey(&'a str),
    /// The cards in one bucket: QR uses, fares and caps.
    Card(u64),
    /// Metro journeys are numbered in commit order (an exit gate's cursor never skips one).
    Journeys,
    /// The deny list's version.
    Deny,
    /// One scope's change log (`acct:…`, `cell:…`): changes commit in sequence order.
    Scope(&'a str),
    /// The ids of a collection whose ids name one scope's record across all scopes (a
    /// meeting's, a notice's): two cells publishing one id at once. One lock for the
    /// collection, not one per id: a publish of 1,000 records would fill PostgreSQL's lock
    /// table, and cells publish rarely.
    UniqueIds(&'a str),
    /// One setting read and replaced in a transaction.
    Setting(&'a str),
    /// The audit trail's end: entries are sealed one after another.
    Audit,
    /// One published file (its SHA-256): an upload and a withdrawal of it, one at a time.
    File(&'a str),
}

impl Lock<'_> {
    /// The lock's place in the order.
    pub fn rank(&self) -> u8 {
        match self {
            Lock::Migrations => 0,
            Lock::Validator(_) => 1,
            Lock::Order(_) => 2,
            Lock::Account(_) => 3,
            Lock::Device(_) => 4,
            Lock::DeviceKey(_) => 5,
            Lock::Card(_) => 6,
            Lock::Journeys => 7,
            Lock::Deny => 8,
            Lock::Scope(_) => 9,
            Lock::UniqueIds(_) => 10,
            Lock::Setting(_) => 11,
            Lock::Audit => 12,
            Lock::File(_) => 13,
        }
    }

    /// The lock's name: every instance maps it to the same key.
    pub fn name(&self) -> String {
        match self {
            Lock::Migrations => "thudo/migrations".into(),
            Lock::Validator(id) => format!("validator:{id}"),
            Lock::Order(id) => format!("order:{id}"),
            Lock::Account(id) => format!("account:{id}"),
            Lock::Device(id) => format!("device:{id}"),
            Lock::DeviceKey(hash) => format!("device-key:{hash}"),
            Lock::Card(card) => format!("card-bucket:{}", card % CARD_LOCK_BUCKETS),
            Lock::Journeys => "journeys".into(),
            Lock::Deny => "deny".into(),
            Lock::Scope(scope) => format!("scope:{scope}"),
            Lock::UniqueIds(collection) => format!("unique-ids:{collection}"),
            Lock::Setting(key) => format!("setting:{key}"),
            Lock::Audit => "audit".into(),
            Lock::File(sha256) => format!("file:{sha256}"),
        }
    }

    /// The 64-bit key PostgreSQL's advisory locks take.
    pub fn key(&self) -> i64 {
        let hash = sha256(self.name().as_bytes());
        i64::from_be_bytes([
            hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
        ])
    }
}

/// The locks one transaction holds.
#[derive(Debug, Default)]
pub struct Held {
    keys: BTreeSet<i64>,
    highest: Option<(u8, String)>,
}

impl Held {
    /// Admits `locks` in rank order: returns the keys not held yet, ascending, or an error
    /// when one ranks below a lock already held (a bug: the transaction ends unapplied).
    pub fn admit(&mut self, locks: &[Lock<'_>]) -> Result<Vec<i64>> {
        let mut wanted: Vec<&Lock<'_>> = locks.iter().collect();
        wanted.sort_by_key(|l| l.rank());
        let mut keys = Vec::new();
        for lock in wanted {
            let key = lock.key();
            if self.keys.contains(&key) {
                continue;
            }
            if let Some((rank, name)) = &self.highest {
                if lock.rank() < *rank {
                    return Err(StorageError::Failed(format!(
                        "lock order: {} taken after {name}",
                        lock.name()
                    )));
                }
            }
            if self.highest.as_ref().is_none_or(|(r, _)| lock.rank() > *r) {
                self.highest = Some((lock.rank(), lock.name()));
            }
            keys.push(key);
        }
        keys.sort_unstable();
        keys.dedup();
        self.keys.extend(&keys);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_map_to_distinct_keys() {
        assert_ne!(Lock::Card(1).key(), Lock::Card(2).key());
        assert_eq!(Lock::Card(1).key(), Lock::Card(1 + CARD_LOCK_BUCKETS).key());
        assert_eq!(Lock::Deny.key(), Lock::Deny.key());
        assert_ne!(Lock::Scope("acct:a").key(), Lock::Setting("acct:a").key());
    }

    #[test]
    fn locks_are_taken_in_rank_order_only() {
        let mut held = Held::default();
        assert_eq!(held.admit(&[Lock::Validator("v")]).map(|k| k.len()), Ok(1));
        // Several of one rank, and again one already held: fine.
        assert!(held.admit(&[Lock::Card(2), Lock::Card(1)]).is_ok());
        assert_eq!(held.admit(&[Lock::Validator("v")]).map(|k| k.len()), Ok(0));
        assert!(held.admit(&[Lock::Scope("acct:a")]).is_ok());
        let err = held.admit(&[Lock::Journeys]).unwrap_err();
        assert!(
            err.message()
                .contains("lock order: journeys taken after scope:acct:a"),
            "{err}"
        );
        // A set given at once is sorted by rank first.
        let mut held = Held::default();
        assert!(held.admit(&[Lock::Deny, Lock::Device("d")]).is_ok());
    }
}
