//! Cell secretaries, verified check-ins and the counts of a meeting's attendance.

use serde_json::Value;

use crate::devices::store::account_in;
use crate::secrets::CitizenKey;
use crate::storage::engine::{params, Engine, Tx};
use crate::storage::locks::Lock;
use crate::storage::migrations::ConcernSchema;
use crate::storage::{Result, SqlStorage};
use crate::sync::store::last_change;

/// The attendance tables.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "attendance",
    sqlite: &[
        include_str!("schema/sqlite/0001_attendance.sql"),
        include_str!("schema/sqlite/0002_keys_by_account.sql"),
        include_str!("schema/sqlite/0003_check_ins_by_member.sql"),
        include_str!("schema/sqlite/0004_meeting_credentials.sql"),
        include_str!("schema/sqlite/0005_meeting_credentials_since.sql"),
        include_str!("schema/sqlite/0006_meeting_credentials_by_device.sql"),
    ],
    postgres: &[
        include_str!("schema/postgres/0001_attendance.sql"),
        include_str!("schema/postgres/0002_keys_by_account.sql"),
        include_str!("schema/postgres/0003_check_ins_by_member.sql"),
        include_str!("schema/postgres/0004_meeting_credentials.sql"),
        include_str!("schema/postgres/0005_meeting_credentials_since.sql"),
        include_str!("schema/postgres/0006_meeting_credentials_by_device.sql"),
    ],
};

/// A check-in the rules verified, to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckIn {
    /// The member's cell.
    pub cell: String,
    /// The meeting.
    pub meeting_id: String,
    /// The member's account.
    pub account_id: String,
    /// The device that uploaded it.
    pub device_id: String,
    /// The key the member's phone signed with (compressed).
    pub member_key: Vec<u8>,
    /// When the secretary's phone showed the QR.
    pub shown_at: i64,
    /// When the member's phone scanned it.
    pub scanned_at: i64,
    /// When the backend received it.
    pub received_at: i64,
    /// The evidence, as signed.
    pub evidence: Vec<u8>,
}

/// What storing a check-in did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Counted now.
    Counted,
    /// The member had already checked in to the meeting (counted once).
    AlreadyCounted,
    /// The device signed an earlier check-in with another key, or the key is another
    /// member's.
    KeyMismatch,
}

/// A meeting's attendance as the cell's members recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AttendanceCounts {
    /// Members with a verified check-in.
    pub verified: u64,
    /// Members who declared themselves present (verified or not).
    pub declared_present: u64,
    /// Members who declared themselves present with no verified check-in.
    pub declared_present_unverified: u64,
    /// Members who declared themselves excused.
    pub declared_excused: u64,
    /// Members who declared themselves absent.
    pub declared_absent: u64,
}

/// What [`AttendanceStore::record_meeting_credential`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialRecorded {
    /// Recorded: the credential may be handed out.
    Recorded,
    /// The account is not (or no longer) the cell's secretary.
    NotSecretary,
    /// The phone was revoked.
    DeviceRevoked,
}

/// Revokes, inside `tx` (a device's revocation, holding its lock), the meeting credentials
/// issued to `device_id`, and those of its account issued before credentials named their
/// phone: a stolen secretary's phone signs no more QRs that count. The secretary's other
/// phone is issued its own again when it asks. Returns how many.
pub fn revoke_device_credentials(tx: &mut dyn Tx, device_id: &str, now: i64) -> Result<u64> {
    tx.exec(
        "UPDATE meeting_credentials SET revoked_at = ?2
         WHERE revoked_at IS NULL AND (device_id = ?1 OR (device_id IS NULL AND account_id =
               (SELECT account_id FROM devices WHERE id = ?1)))",
        params![device_id, now],
    )
}

/// Where attendance is kept.
pub trait AttendanceStore: Send + Sync + 'static {
    /// Makes the citizen the secretary of `cell`; returns their account.
    fn set_secretary(&self, cell: &str, citizen: &CitizenKey, now: i64) -> Result<String>;
    /// The account that is `cell`'s secretary.
    fn secretary_of(&self, cell: &str) -> Result<Option<String>>;
    /// Records a meeting credential issued to `account_id`'s phone `device_id` for its key
    /// `secretary_key` (issued again after a revocation, it stands again); nothing recorded
    /// when the account is no longer the cell's secretary (replaced while it was being issued)
    /// or the phone was revoked meanwhile.
    fn record_meeting_credential(
        &self,
        cell: &str,
        meeting_id: &str,
        secretary_key: &[u8],
        account_id: &str,
        device_id: &str,
        now: i64,
    ) -> Result<CredentialRecorded>;
    /// When this backend began recording the credentials it issues (unix seconds).
    fn credentials_recorded_since(&self) -> Result<i64>;
    /// When the credential of `meeting_id` for `secretary_key` was revoked (`Some(None)`: it
    /// stands; `None`: no record of it).
    fn meeting_credential_revoked_at(
        &self,
        cell: &str,
        meeting_id: &str,
        secretary_key: &[u8],
    ) -> Result<Option<Option<i64>>>;
    /// The meeting `meeting_id` as last published to `cell` (none once withdrawn).
    fn published_meeting(&self, cell: &str, meeting_id: &str) -> Result<Option<Value>>;
    /// Stores a verified check-in, once per member and meeting; binds the device to its key,
    /// and the key to the member's account, on their first check-in.
    fn record_check_in(&self, check_in: &NewCheckIn) -> Result<Stored>;
    /// The cell in which this very evidence was counted for `account_id` at `meeting_id`, if
    /// it was (an upload again whose first answer was lost).
    fn counted_in(
        &self,
        meeting_id: &str,
        account_id: &str,
        evidence: &[u8],
    ) -> Result<Option<String>>;
    /// The counts for a meeting of `cell`.
    fn attendance(&self, cell: &str, meeting_id: &str) -> Result<AttendanceCounts>;
    /// The first cell `account_id` left after `at`: the one it was in then, if it has moved
    /// since.
    fn first_cell_left_after(&self, account_id: &str, at: i64) -> Result<Option<String>>;
}

impl<E: Engine> AttendanceStore for SqlStorage<E> {
    fn set_secretary(&self, cell: &str, citizen: &CitizenKey, now: i64) -> Result<String> {
        self.write(|tx| {
            tx.lock(Lock::Setting(&format!("cell-secretary:{cell}")))?;
            let account = account_in(tx, citizen)?;
            // The secretary replaced: the credentials the outgoing one was issued sign no QR
            // from now on (a phone holding next month's would go on showing valid ones).
            tx.exec(
                "UPDATE meeting_credentials SET revoked_at = ?3
                 WHERE cell = ?1 AND account_id <> ?2 AND revoked_at IS NULL",
                params![cell, &account, now],
            )?;
            tx.exec(
                "INSERT INTO cell_secretaries(cell, account_id, set_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(cell) DO UPDATE SET account_id = excluded.account_id, set_at = excluded.set_at",
                params![cell, &account, now],
            )?;
            Ok(account)
        })
    }

    fn secretary_of(&self, cell: &str) -> Result<Option<String>> {
        self.read(|tx| {
            tx.row(
                "SELECT account_id FROM cell_secretaries WHERE cell = ?1",
                params![cell],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }

    fn record_meeting_credential(
        &self,
        cell: &str,
        meeting_id: &str,
        secretary_key: &[u8],
        account_id: &str,
        device_id: &str,
        now: i64,
    ) -> Result<CredentialRecorded> {
        self.write(|tx| {
            // Under the locks a replacement and a revocation take: either it revokes this
            // credential, or this sees the new secretary or the revoked phone and records
            // nothing.
            tx.lock_all(&[
                Lock::Device(device_id),
                Lock::Setting(&format!("cell-secretary:{cell}")),
            ])?;
            if tx
                .row(
                    "SELECT 1 FROM devices WHERE id = ?1 AND revoked_at IS NULL",
                    params![device_id],
                )?
                .is_none()
            {
                return Ok(CredentialRecorded::DeviceRevoked);
            }
            let secretary = tx
                .row(
                    "SELECT account_id FROM cell_secretaries WHERE cell = ?1",
                    params![cell],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            if secretary.as_deref() != Some(account_id) {
                return Ok(CredentialRecorded::NotSecretary);
            }
            tx.exec(
                "INSERT INTO meeting_credentials(cell, meeting_id, secretary_key, account_id,
                     issued_at, revoked_at, device_id) VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)
                 ON CONFLICT (cell, meeting_id, secretary_key) DO UPDATE SET
                     account_id = excluded.account_id, issued_at = excluded.issued_at,
                     revoked_at = NULL, device_id = excluded.device_id",
                params![cell, meeting_id, secretary_key, account_id, now, device_id],
            )?;
            Ok(CredentialRecorded::Recorded)
        })
    }

    fn credentials_recorded_since(&self) -> Result<i64> {
        self.read(|tx| {
            Ok(tx
                .row("SELECT MIN(at) FROM meeting_credentials_since", &[])?
                .map(|r| r.opt_int(0))
                .transpose()?
                .flatten()
                .unwrap_or(0))
        })
    }

    fn meeting_credential_revoked_at(
        &self,
        cell: &str,
        meeting_id: &str,
        secretary_key: &[u8],
    ) -> Result<Option<Option<i64>>> {
        self.read(|tx| {
            tx.row(
                "SELECT revoked_at FROM meeting_credentials
                 WHERE cell = ?1 AND meeting_id = ?2 AND secretary_key = ?3",
                params![cell, meeting_id, secretary_key],
            )?
            .map(|r| r.opt_int(0))
            .transpose()
        })
    }

    fn published_meeting(&self, cell: &str, meeting_id: &str) -> Result<Option<Value>> {
        let scope = format!("cell:{cell}");
        self.read(|tx| {
            Ok(last_change(tx, &scope, "handbook.meeting", meeting_id)?
                .and_then(|l| l.put_payload()))
        })
    }

    fn record_check_in(&self, c: &NewCheckIn) -> Result<Stored> {
        self.write(|tx| {
            tx.lock(Lock::Device(&c.device_id))?;
            // Both checked before either is bound, so a refused check-in binds nothing. A key
            // is its member's, from its first check-in: evidence signed on another member's
            // phone never counts for this one, while the member's own phone signed in again
            // (a new device) or restored onto another goes on with it.
            let owner = tx
                .row(
                    "SELECT account_id FROM check_in_member_keys WHERE member_key = ?1",
                    params![&c.member_key[..]],
                )?
                .map(|r| r.text(0))
                .transpose()?;
            if owner.as_ref().is_some_and(|o| *o != c.account_id) {
                return Ok(Stored::KeyMismatch);
            }
            // And a device signs with one key: a modified app cannot bring fresh keys for
            // absent friends.
            let bound = tx
                .row(
                    "SELECT member_key FROM check_in_keys WHERE device_id = ?1",
                    params![&c.device_id],
                )?
                .map(|r| r.bytes(0))
                .transpose()?;
            if bound.as_ref().is_some_and(|k| *k != c.member_key) {
                return Ok(Stored::KeyMismatch);
            }
            if bound.is_none() {
                tx.exec(
                    "INSERT INTO check_in_keys(device_id, member_key) VALUES (?1, ?2)",
                    params![&c.device_id, &c.member_key[..]],
                )?;
            }
            if owner.is_none() {
                // Two accounts' first uploads of one key at once: one insert waits for the
                // other and finds the key taken (PostgreSQL retries the transaction).
                tx.exec(
                    "INSERT INTO check_in_member_keys(member_key, account_id) VALUES (?1, ?2)",
                    params![&c.member_key[..], &c.account_id],
                )?;
            }
            let inserted = tx.exec(
                "INSERT INTO check_ins(cell, meeting_id, account_id, device_id, shown_at,
                     scanned_at, received_at, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                params![
                    &c.cell,
                    &c.meeting_id,
                    &c.account_id,
                    &c.device_id,
                    c.shown_at,
                    c.scanned_at,
                    c.received_at,
                    &c.evidence[..]
                ],
            )?;
            Ok(if inserted == 0 {
                Stored::AlreadyCounted
            } else {
                Stored::Counted
            })
        })
    }

    fn counted_in(
        &self,
        meeting_id: &str,
        account_id: &str,
        evidence: &[u8],
    ) -> Result<Option<String>> {
        self.read(|tx| {
            tx.row(
                "SELECT cell FROM check_ins WHERE account_id = ?1 AND meeting_id = ?2
                   AND evidence = ?3",
                params![account_id, meeting_id, evidence],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }

    fn first_cell_left_after(&self, account_id: &str, at: i64) -> Result<Option<String>> {
        self.read(|tx| {
            tx.row(
                "SELECT cell FROM cell_history WHERE account_id = ?1 AND left_at > ?2
                 ORDER BY left_at, seq LIMIT 1",
                params![account_id, at],
            )?
            .map(|r| r.text(0))
            .transpose()
        })
    }

    fn attendance(&self, cell: &str, meeting_id: &str) -> Result<AttendanceCounts> {
        self.snapshot(|tx| {
            let verified: Vec<String> = tx
                .rows(
                    "SELECT account_id FROM check_ins WHERE cell = ?1 AND meeting_id = ?2",
                    params![cell, meeting_id],
                )?
                .iter()
                .map(|r| r.text(0))
                .collect::<Result<_>>()?;
            // Each member's latest self-declared attendance for the meeting, from the sync log
            // of the accounts in the cell.
            let declared = tx.rows(
                "SELECT a.id, c.payload FROM accounts a JOIN changes c ON c.scope = 'acct:' || a.id
                 WHERE a.cell = ?1 AND c.collection = 'handbook.attendance' AND c.record_id = ?2
                   AND c.seq = (SELECT MAX(seq) FROM changes l WHERE l.scope = c.scope
                                AND l.collection = c.collection AND l.record_id = c.record_id)",
                params![cell, meeting_id],
            )?;
            let mut counts = AttendanceCounts {
                verified: verified.len() as u64,
                ..AttendanceCounts::default()
            };
            for row in declared {
                let account = row.text(0)?;
                let payload: Value = serde_json::from_str(&row.text(1)?).unwrap_or_default();
                match payload["status"]["status"].as_str() {
                    Some("present") => {
                        counts.declared_present += 1;
                        if !verified.contains(&account) {
                            counts.declared_present_unverified += 1;
                        }
                    }
                    Some("excused") => counts.declared_excused += 1,
                    Some("absent") => counts.declared_absent += 1,
                    _ => {}
                }
            }
            Ok(counts)
        })
    }
}
