//! The sync engine: pushes the outbox in batches, pulls each registered collection page by
//! page with opaque cursors, over the backend transport (`crate::net`).
//!
//! Every step is durable before the next: acknowledged outbox entries are removed in one vault
//! transaction; each pulled page is applied together with its new cursor in one transaction. A
//! crash or a cancellation anywhere loses nothing and applies nothing twice.

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use super::apply::{self, Applied};
use std::collections::HashSet;

use super::status::RejectedMutation;

/// The backend's refusal of a change whose clock is more than a day ahead of its own.
const CLOCK_IN_FUTURE: &str = "clock_in_future";
/// When the backend said this device's pushes may come again (unix seconds, `sync.state`).
const PUSH_AFTER: &str = "push_after";
use crate::changes::outbox::{self, OutboxEntry, STATE_COLLECTION};
use crate::changes::{Apply, Collection, Registry};
use crate::net::protocol::*;
use crate::net::{blocking, now_secs, Run};
use crate::vault::{Document, Vault, VaultError};

pub use super::events::{SyncEvent, SyncObserver, SyncReport};
#[cfg(feature = "rust-http")]
pub use crate::net::{server_verifier, spki_sha256, tls_config};
pub use crate::net::{
    BackendClient, BackendConfig, BackendError, Cancel, HttpFailure, HttpFuture, HttpRequest,
    HttpResponse, HttpTransport, Registration, Retry,
};

/// A sync's observer and the report it builds.
struct Progress<'a> {
    observer: Option<&'a dyn SyncObserver>,
    report: SyncReport,
}

impl Progress<'_> {
    fn event(&self, e: SyncEvent) {
        if let Some(o) = self.observer {
            o.on_event(&e);
        }
    }
}

impl BackendClient {
    /// Pushes the outbox, then pulls every pullable collection of `collections` (one stored
    /// nowhere on this device is skipped; see `crate::collections::registry`). Returns what
    /// happened; on error, what was done stays done.
    pub async fn sync(
        &self,
        vault: Arc<Vault>,
        collections: &Registry,
        observer: Option<&dyn SyncObserver>,
    ) -> Result<SyncReport, BackendError> {
        self.check_open()?;
        let started = Instant::now();
        let v = vault.clone();
        let reg = blocking(move || Self::sync_registration(&v))
            .await?
            .ok_or(BackendError::NotRegistered)?;
        let v = vault.clone();
        blocking(move || Ok(super::status::started(&v, now_secs())?)).await?;
        let on_retry = |r: &Retry| {
            if let Some(o) = observer {
                o.on_event(&SyncEvent::Retrying {
                    attempt: r.attempt,
                    delay_ms: r.delay_ms,
                    reason: r.reason.clone(),
                });
            }
        };
        let mut run = Run::new(Some(&on_retry));
        let mut progress = Progress {
            observer,
            report: SyncReport::default(),
        };
        // Pushes the backend deferred (the account's day of pushes spent) wait until the time
        // it gave; pulls go on meanwhile, so the device still gets everyone else's changes.
        let v = vault.clone();
        let push_after: i64 = blocking(move || {
            Ok(v.find(STATE_COLLECTION, PUSH_AFTER)?
                .and_then(|r| String::from_utf8_lossy(&r.body).parse().ok())
                .unwrap_or(0))
        })
        .await?;
        // A time more than two days off is not the backend's (a device clock set back since):
        // pushes go.
        let now = now_secs() as i64;
        if now < push_after && push_after - now <= 2 * 86_400 {
            log::info!("pushes deferred by the backend; pulling only");
        } else {
            match self.push(&vault, &reg, &mut run, &mut progress).await {
                Err(BackendError::Unavailable { .. }) if run.deferred.is_some() => {
                    // At most a day: a clock or a server that says more is not waited for.
                    let wait = run.deferred.map_or(0, |d| d.as_secs()).min(86_400);
                    let until = now_secs().saturating_add(wait);
                    log::warn!("the backend deferred this device's pushes; pulling");
                    let v = vault.clone();
                    blocking(move || {
                        Ok(v.put(
                            STATE_COLLECTION,
                            PUSH_AFTER,
                            &[],
                            until.to_string().as_bytes(),
                        )?)
                    })
                    .await?;
                }
                pushed => {
                    pushed?;
                    if push_after != 0 {
                        let v = vault.clone();
                        blocking(move || Ok(v.delete(STATE_COLLECTION, PUSH_AFTER).map(|_| ())?))
                            .await?;
                    }
                }
            }
        }
        for collection in collections.iter().filter(|c| c.spec.pullable) {
            if matches!(collection.apply, Apply::Nowhere) {
                continue;
            }
            self.pull(&vault, collection, &reg, &mut run, &mut progress)
                .await?;
        }
        let mut report = progress.report;
        report.retries = run.retries;
        report.clock_offset_ms = run.clock_offset_ms;
        let (v, offset) = (vault.clone(), report.clock_offset_ms);
        blocking(move || {
            Ok(v.transaction(|tx| {
                if let Some(offset) = offset {
                    tx.put(
                        STATE_COLLECTION,
                        "clock_offset_ms",
                        &[],
                        offset.to_string().as_bytes(),
                    )?;
                }
                super::status::finished(tx, now_secs())
            })?)
        })
        .await?;
        report.elapsed_ms = started.elapsed().as_millis() as i64;
        let r = &report;
        log::info!(
            pushed = r.pushed, duplicates = r.duplicates, rejected = r.rejected,
            pulled = r.pulled, applied = r.applied, skipped = r.skipped, retries = r.retries,
            elapsed_ms = r.elapsed_ms;
            "sync done"
        );
        Ok(report)
    }

    async fn push(
        &self,
        vault: &Arc<Vault>,
        reg: &Registration,
        run: &mut Run<'_>,
        progress: &mut Progress<'_>,
    ) -> Result<(), BackendError> {
        let v = vault.clone();
        let total = blocking(move || Ok(v.count(OutboxEntry::COLLECTION)? as i64)).await?;
        let mut done = 0i64;
        let batch_size = self.config.push_batch.clamp(1, MAX_PUSH_BATCH);
        // The positions waiting, read once; read again when they are done, for the changes
        // made while this push ran.
        let mut waiting = std::collections::VecDeque::new();
        // Changes stamped again this run (their clock was far ahead), and those refused again
        // after it (the backend's clock unknown, the device's still wrong): these wait for the
        // next sync rather than go round this one for ever.
        let (mut restamped, mut held_back) = (HashSet::new(), HashSet::new());
        loop {
            if waiting.is_empty() {
                let v = vault.clone();
                waiting = blocking(move || Ok(outbox::pending_seqs(&v)?))
                    .await?
                    .into_iter()
                    .filter(|seq| !held_back.contains(seq))
                    .collect();
                if waiting.is_empty() {
                    return Ok(());
                }
            }
            let next: Vec<u64> = waiting.iter().take(batch_size).copied().collect();
            let v = vault.clone();
            let batch: Vec<OutboxEntry> = blocking(move || {
                let entries = v.transaction(|tx| outbox::entries_at(tx, &next))?;
                Ok(within_push_budget(entries, batch_size))
            })
            .await?;
            // What this batch sends, and any entry gone since the read, leave the queue.
            let sent_up_to = batch.last().map(|e| e.seq);
            let taken = waiting.len().min(batch_size);
            match sent_up_to {
                Some(last) => {
                    while waiting.front().is_some_and(|s| *s <= last) {
                        waiting.pop_front();
                    }
                }
                None => {
                    waiting.drain(..taken);
                    continue;
                }
            }
            let request = PushRequest {
                mutations: batch
                    .iter()
                    .map(|e| Mutation {
                        idempotency_key: e.idempotency_key.clone(),
                        seq: e.seq,
                        collection: e.collection.clone(),
                        record_id: e.record_id.clone(),
                        op: e.op.clone(),
                        payload: e.payload.clone(),
                        // Entries queued before clocks existed: their creation time, node "0".
                        hlc: if e.hlc.is_empty() {
                            crate::changes::hlc::Hlc {
                                wall_ms: e.created_at.saturating_mul(1000),
                                counter: 0,
                                node: "0".into(),
                            }
                            .to_string()
                        } else {
                            e.hlc.clone()
                        },
                    })
                    .collect(),
            };
            let body = serde_json::to_vec(&request).map_err(|e| BackendError::Protocol {
                detail: e.to_string(),
            })?;
            let response: PushResponse = self
                .call(
                    Method::POST,
                    &format!("{API_PREFIX}/sync/push"),
                    Some(&reg.token),
                    Some(body),
                    run,
                )
                .await?;
            if response.results.len() != batch.len()
                || response
                    .results
                    .iter()
                    .zip(&batch)
                    .any(|(r, e)| r.idempotency_key != e.idempotency_key)
            {
                return Err(BackendError::Protocol {
                    detail: "push results do not match the batch".into(),
                });
            }
            for (r, e) in response.results.iter().zip(&batch) {
                match &r.outcome {
                    Outcome::Applied => progress.report.pushed += 1,
                    Outcome::Duplicate => progress.report.duplicates += 1,
                    Outcome::Superseded => progress.report.superseded_on_server += 1,
                    Outcome::Rejected { reason } if reason == CLOCK_IN_FUTURE => {
                        log::warn!(collection = e.collection.as_str(); "a change stamped by a clock far ahead is stamped again")
                    }
                    Outcome::Rejected { .. } => {
                        progress.report.rejected += 1;
                        log::warn!(collection = e.collection.as_str(); "the backend refused a change for good");
                    }
                }
            }
            // This device's clock as the backend's (the offset this run measured).
            let now_ms = (crate::net::now_secs() as i64)
                .saturating_mul(1000)
                .saturating_add(run.clock_offset_ms.unwrap_or(0))
                .max(0) as u64;
            let mut stamp_again = Vec::new();
            for (r, e) in response.results.iter().zip(&batch) {
                if matches!(&r.outcome, Outcome::Rejected { reason } if reason == CLOCK_IN_FUTURE) {
                    if restamped.insert(e.seq) {
                        stamp_again.push(e.seq);
                    } else {
                        held_back.insert(e.seq);
                    }
                }
            }
            let v = vault.clone();
            blocking(move || {
                v.transaction(|tx| {
                    let mut done = Vec::with_capacity(batch.len());
                    for (r, e) in response.results.iter().zip(&batch) {
                        match &r.outcome {
                            // Stamped by a clock that was far ahead: stamped again and sent
                            // again (once a run), kept either way.
                            Outcome::Rejected { reason } if reason == CLOCK_IN_FUTURE => {
                                if stamp_again.contains(&e.seq) {
                                    let what = outbox::restamp(tx, e, now_ms)?;
                                    log::info!(outcome:? = what; "a change refused for its clock");
                                    // Set aside where the app can see it, never dropped unseen.
                                    if what == outbox::Restamped::Replaced {
                                        tx.put_doc(&RejectedMutation {
                                            entry: e.clone(),
                                            reason: CLOCK_IN_FUTURE.to_owned(),
                                        })?;
                                    }
                                }
                                continue;
                            }
                            Outcome::Rejected { reason } => tx.put_doc(&RejectedMutation {
                                entry: e.clone(),
                                reason: reason.clone(),
                            })?,
                            _ => {}
                        }
                        done.push(e.seq);
                    }
                    outbox::remove(tx, &done)
                })?;
                Ok(())
            })
            .await?;
            done += request.mutations.len() as i64;
            progress.event(SyncEvent::Pushed {
                done,
                total: total.max(done),
            });
        }
    }

    async fn pull(
        &self,
        vault: &Arc<Vault>,
        collection: &Collection,
        reg: &Registration,
        run: &mut Run<'_>,
        progress: &mut Progress<'_>,
    ) -> Result<(), BackendError> {
        let name = collection.spec.name;
        let cursor_key = format!("cursor:{name}");
        let v = vault.clone();
        let key = cursor_key.clone();
        let mut cursor = blocking(move || {
            Ok(v.find(STATE_COLLECTION, &key)?
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default())
        })
        .await?;
        let limit = self.config.page_size.clamp(1, MAX_PULL_PAGE);
        let mut received = 0i64;
        for _ in 0..MAX_PULL_PAGES_PER_SYNC {
            let path = format!(
                "{API_PREFIX}/sync/pull?collection={name}&cursor={}&limit={limit}",
                urlencode(&cursor)
            );
            let page: PullResponse = self
                .call(Method::GET, &path, Some(&reg.token), None, run)
                .await?;
            if page.changes.iter().any(|c| c.collection != name) {
                return Err(BackendError::Protocol {
                    detail: format!("a page of {name} holds another collection"),
                });
            }
            let n = page.changes.len() as u64;
            // This device's clock as the backend's, for the versions it compares.
            let now = (now_secs() as i64)
                .saturating_add(run.clock_offset_ms.unwrap_or(0) / 1000)
                .max(0) as u64;
            let v = vault.clone();
            let key = cursor_key.clone();
            let next = page.next_cursor.clone();
            let changes = page.changes;
            let this = collection.clone();
            let applied: Applied = blocking(move || {
                // A store outside the vault applies first (idempotently); the cursor moves
                // with the vault's part, so a crash in between pulls the page again.
                let outside = apply::apply_outside(&this, &changes).map_err(BackendError::Store)?;
                let inside = v.transaction(|tx| {
                    let a = apply::apply_changes(tx, &this, &changes, now)?;
                    // A record deleted (withdrawn by its publisher) lets go of its files: one
                    // whose last change in the page is a delete (not put back after it) and,
                    // in the vault, gone (not kept by a newer local write).
                    let mut last_ops: std::collections::HashMap<&str, &str> =
                        std::collections::HashMap::new();
                    for c in &changes {
                        last_ops.insert(c.record_id.as_str(), c.op.as_str());
                    }
                    for (id, _) in last_ops.iter().filter(|(_, op)| **op == "delete") {
                        let kept = matches!(this.apply, Apply::Vault(_))
                            && matches!(tx.get(name, id), Ok(Some(_)));
                        if kept {
                            continue;
                        }
                        let owner = format!("{name}/{id}");
                        match crate::attachments::release_owner(tx, &owner) {
                            // An owner the vault cannot index holds nothing; a file record
                            // damaged on disk is left (never failing every sync after).
                            Err(
                                VaultError::InvalidArgument { .. }
                                | VaultError::CorruptRecord { .. },
                            ) => {}
                            other => {
                                other?;
                            }
                        }
                    }
                    tx.put(STATE_COLLECTION, &key, &[], next.as_bytes())?;
                    Ok::<_, VaultError>(a)
                })?;
                Ok(Applied {
                    applied: outside.applied + inside.applied,
                    superseded: inside.superseded,
                    skipped: outside.skipped + inside.skipped,
                })
            })
            .await?;
            log::debug!(collection = name, changes = n, applied = applied.applied; "pulled a page");
            progress.report.pulled += n as i64;
            progress.report.applied += applied.applied as i64;
            progress.report.superseded_locally += applied.superseded as i64;
            progress.report.skipped += applied.skipped as i64;
            received += n as i64;
            progress.event(SyncEvent::Pulled {
                collection: name.to_owned(),
                received,
                total: page
                    .remaining
                    .map(|r| received.saturating_add(i64::try_from(r).unwrap_or(i64::MAX))),
            });
            if !page.has_more {
                return Ok(());
            }
            if page.next_cursor == cursor {
                return Err(BackendError::Protocol {
                    detail: "the server said more but did not move the cursor".into(),
                });
            }
            cursor = page.next_cursor;
        }
        // A server whose cursors go round (or that never stops saying "more") is not followed
        // for ever: what was applied stays, and the next sync goes on from its cursor.
        log::warn!(collection = name; "pulled the most pages one sync takes: the rest next sync");
        Ok(())
    }
}

/// Most pages one sync pulls of one collection (a million changes at the largest page).
pub const MAX_PULL_PAGES_PER_SYNC: usize = 1_000;

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The first outbox entries that make one push: at most `count`, and payloads adding up to at
/// most [`MAX_PUSH_BATCH_BYTES`](super::protocol::MAX_PUSH_BATCH_BYTES), the first always.
fn within_push_budget(entries: Vec<OutboxEntry>, count: usize) -> Vec<OutboxEntry> {
    let mut bytes = 0;
    let mut batch = Vec::new();
    for entry in entries.into_iter().take(count) {
        bytes += entry.payload.to_string().len();
        if !batch.is_empty() && bytes > super::protocol::MAX_PUSH_BATCH_BYTES {
            break;
        }
        batch.push(entry);
    }
    batch
}
