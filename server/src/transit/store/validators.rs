//! Validators: enrolment codes (single use, hashed), enrolled validators and their tokens.

use thudo_core::hex;

use super::{
    EnrolOutcome, NewEnrolment, ValidatorRecord, ValidatorStore, VALIDATOR_RETRY_WINDOW_SECS,
    VALIDATOR_TOKEN_GRACE_SECS, VALIDATOR_TOKEN_SECS,
};
use crate::storage::engine::{params, Engine, Row};
use crate::storage::{random_bytes, Result, SqlStorage};

const VALIDATOR_COLUMNS: &str =
    "SELECT id, name, label, route, gate, enrolled_at, decommissioned_at, inspector FROM validators";

fn validator_row(r: &Row) -> Result<ValidatorRecord> {
    Ok(ValidatorRecord {
        id: r.text(0)?,
        name: r.text(1)?,
        label: r.text(2)?,
        route: r.opt_int(3)?.and_then(|v| u16::try_from(v).ok()),
        gate: r.opt_text(4)?,
        enrolled_at: r.int(5)?,
        decommissioned_at: r.opt_int(6)?,
        inspector: r.int(7)? != 0,
    })
}

impl<E: Engine> ValidatorStore for SqlStorage<E> {
    fn create_enrolment(&self, e: &NewEnrolment) -> Result<()> {
        self.write(|tx| {
            tx.exec(
                "INSERT INTO enrolments(code_hash, label, route, gate, expires_at, used_at, inspector)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
                params![
                    &e.code_hash,
                    &e.label,
                    e.route,
                    e.gate.as_ref(),
                    e.expires_at,
                    i64::from(e.inspector)
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
                "SELECT label, route, gate, used_at, inspector FROM enrolments WHERE code_hash = ?1",
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
                id: format!("v-{}", hex::encode(&random_bytes::<8>()?)),
                name: name.to_owned(),
                label: r.text(0)?,
                route: r.opt_int(1)?.and_then(|v| u16::try_from(v).ok()),
                gate: r.opt_text(2)?,
                inspector: r.int(4)? != 0,
                enrolled_at: now,
                decommissioned_at: None,
            };
            tx.exec(
                "INSERT INTO validators(id, name, label, route, gate, token_hash, enrolled_at,
                                        decommissioned_at, token_expires_at, inspector)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8, ?9)",
                params![&record.id, &record.name, &record.label, record.route, record.gate.as_ref(), token_hash, now, now + VALIDATOR_TOKEN_SECS, i64::from(record.inspector)],
            )?;
            Ok(EnrolOutcome::Enrolled(record))
        })
    }

    fn validator_by_token(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<ValidatorRecord>> {
        let (found, ends_grace) = self.read(|tx| {
            let found = tx
                .row(
                    &format!(
                        "{VALIDATOR_COLUMNS}
                         WHERE (token_hash = ?1 AND token_expires_at > ?2)
                            OR (previous_token_hash = ?1 AND previous_valid_until > ?2)"
                    ),
                    params![token_hash, now],
                )?
                .as_ref()
                .map(validator_row)
                .transpose()?;
            let ends_grace = found.is_some()
                && tx
                    .row(
                        "SELECT 1 FROM validators WHERE token_hash = ?1 AND previous_valid_until > ?2",
                        params![token_hash, now],
                    )?
                    .is_some();
            Ok((found, ends_grace))
        })?;
        // The renewed token in use: the validator has it, so the token it replaced is nobody's
        // to hold any more (a copy of it renewed again would take the validator over).
        if ends_grace {
            self.write(|tx| {
                tx.exec(
                    "UPDATE validators SET previous_valid_until = ?2, successor_used_at = ?2
                     WHERE token_hash = ?1 AND previous_valid_until > ?2",
                    params![token_hash, now],
                )
            })?;
        }
        if found.is_some() {
            return Ok(found);
        }
        // A decommissioned validator's replaced token says so (the validator enrols again).
        // A token whose successor has been used, presented again past the client's retries of
        // a call begun before (a plain 401 until then): two parties hold the validator's
        // tokens (a copy renewed first, or a copy of the old one kept). Neither can be told
        // from the other, so the validator is decommissioned: the copy's holder loses it, and
        // the operator enrols the real one again, instead of a silent takeover.
        // So does a token replaced before its first use, presented past that window (the
        // validator had it; a copy of the token before it renewed again).
        let forked = self.read(|tx| {
            tx.row(
                &format!(
                    "{VALIDATOR_COLUMNS} WHERE (previous_token_hash = ?1
                       AND (successor_used_at <= ?2 OR decommissioned_at IS NOT NULL))
                       OR id = (SELECT validator_id FROM validator_replaced_tokens
                                WHERE token_hash = ?1 AND replaced_at <= ?2)"
                ),
                params![token_hash, now - VALIDATOR_RETRY_WINDOW_SECS],
            )?
            .as_ref()
            .map(validator_row)
            .transpose()
        })?;
        let Some(mut validator) = forked else {
            return Ok(None);
        };
        if validator.decommissioned_at.is_none() {
            self.write(|tx| {
                tx.exec(
                    "UPDATE validators SET decommissioned_at = COALESCE(decommissioned_at, ?2)
                     WHERE id = ?1",
                    params![&validator.id, now],
                )
            })?;
            validator.decommissioned_at = Some(now);
            eprintln!(
                "warning: validator {}: a token used after its successor (a copy exists); decommissioned",
                validator.id
            );
        }
        Ok(Some(validator))
    }

    fn renew_validator_token(
        &self,
        presented: &[u8; 32],
        new: &[u8; 32],
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        self.write(|tx| {
            // Presenting the current token: it becomes the previous one, honoured a while.
            let renewed = tx.exec(
                "UPDATE validators SET previous_token_hash = token_hash, successor_used_at = NULL,
                        previous_valid_until = ?3, token_hash = ?2, token_expires_at = ?4
                 WHERE token_hash = ?1 AND token_expires_at > ?5 AND decommissioned_at IS NULL",
                params![
                    presented,
                    new,
                    now + VALIDATOR_TOKEN_GRACE_SECS,
                    expires_at,
                    now
                ],
            )?;
            if renewed == 1 {
                return Ok(true);
            }
            // Presenting the previous one: the new token it was given never arrived; replace
            // that one, and the previous keeps the grace it had. The replaced token is kept:
            // if it did arrive (a copy of the previous token renewed after the validator), its
            // holder presenting it shows the copy.
            let Some(current) = tx.row(
                "SELECT id, token_hash FROM validators
                 WHERE previous_token_hash = ?1 AND previous_valid_until > ?2
                   AND decommissioned_at IS NULL",
                params![presented, now],
            )?
            else {
                return Ok(false);
            };
            let (id, replaced) = (current.text(0)?, current.bytes(1)?);
            // Conditional on the token read: of two such renewals at once, one replaces it.
            if tx.exec(
                "UPDATE validators SET token_hash = ?2, token_expires_at = ?3
                 WHERE id = ?1 AND token_hash = ?4",
                params![&id, new, expires_at, &replaced[..]],
            )? != 1
            {
                return Ok(false);
            }
            // Kept as long as a token lives, and a month more.
            tx.exec(
                "DELETE FROM validator_replaced_tokens WHERE replaced_at < ?1",
                params![now - 2 * VALIDATOR_TOKEN_SECS],
            )?;
            tx.exec(
                "INSERT INTO validator_replaced_tokens(token_hash, validator_id, replaced_at)
                 VALUES (?1, ?2, ?3) ON CONFLICT (token_hash) DO NOTHING",
                params![&replaced[..], &id, now],
            )?;
            Ok(true)
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
}
