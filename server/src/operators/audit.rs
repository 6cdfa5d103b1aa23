//! The audit trail: every operator request, who made it (subject, role, organisation), what it
//! asked (method, route, the path's parameters with citizen IDs keyed, a digest of the body),
//! when, and what came of it (status and, for a change, the answer: a deny-list version, a
//! count published).
//!
//! A change is entered twice: its intent before it runs and its outcome after, so an action
//! cut short by a crash still shows, as an intent with no outcome. A read is entered once,
//! after it ran.
//!
//! The trail is tamper-evident: each entry carries an HMAC, under a key derived from the
//! server's secrets (outside the database), over the entry before's HMAC and its own fields.
//! Whoever can write the database but does not hold the secrets can neither edit, insert nor
//! remove an entry without the chain breaking at it; removing the newest entries is caught
//! against a head the auditor kept (every answer gives the head). Key numbers never go down
//! along the chain, so a secret rotated out cannot seal entries after those of a newer one
//! (an instance not yet given the newest secret refuses to append; the check refuses an entry
//! sealed under an older key than the one before it).

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::{MatchedPath, Query, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Operator, Role};
use crate::http::{blocking, query_pairs, valid_citizen_id, ApiError, ApiResult};
use crate::secrets::ServerSecrets;
use crate::storage::engine::{params, Engine, Row};
use crate::storage::locks::Lock;
use crate::storage::migrations::ConcernSchema;
use crate::storage::{Result, SqlStorage, StorageError};

/// The audit trail's table.
pub const SCHEMA: ConcernSchema = ConcernSchema {
    concern: "operators",
    sqlite: &[include_str!("schema/sqlite/0001_audit.sql")],
    postgres: &[include_str!("schema/postgres/0001_audit.sql")],
};

/// An entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Who.
    pub subject: String,
    /// In which role.
    pub role: String,
    /// For which organisation.
    pub organisation: String,
    /// What: the method and the route (`POST /v1/admin/transit/deny`).
    pub action: String,
    /// On what: the path's parameters, citizen IDs keyed (`citizen_id=c:…`).
    pub target: String,
    /// The intent an outcome belongs to.
    pub refers_to: Option<u64>,
    /// The request's digest (an intent) or its status and effect (an outcome), as JSON.
    pub detail: Value,
}

/// An entry of the trail, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// Its place (1, 2, 3 …: a gap is a removed entry).
    pub seq: u64,
    /// When (unix seconds).
    pub at: i64,
    /// Who.
    pub subject: String,
    /// In which role.
    pub role: String,
    /// For which organisation.
    pub organisation: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// The intent this outcome belongs to.
    pub refers_to: Option<u64>,
    /// Digest, or status and effect.
    pub detail: String,
    /// The secret it was sealed with (from 0, oldest first).
    pub key_number: u32,
    /// Its seal, hex.
    pub mac: String,
}

/// The trail's store.
pub trait AuditStore: Send + Sync + 'static {
    /// Appends an entry sealed under `secrets`' newest key; returns its place.
    fn append_audit(&self, entry: &NewEntry, secrets: &ServerSecrets) -> Result<u64>;
    /// At most `limit` entries after place `after`, in order.
    fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<Entry>>;
}

/// The text an entry's seal covers, after the seal before it: every field but the seal (the
/// detail as stored, not as re-serialised).
fn sealed_text(e: &Entry) -> String {
    json!([
        e.seq,
        e.at,
        e.subject,
        e.role,
        e.organisation,
        e.action,
        e.target,
        e.refers_to,
        e.detail
    ])
    .to_string()
}

fn seal(key: &hmac::Key, previous: &[u8], text: &str) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(previous);
    ctx.update(text.as_bytes());
    ctx.sign().as_ref().to_vec()
}

impl<E: Engine> AuditStore for SqlStorage<E> {
    fn append_audit(&self, entry: &NewEntry, secrets: &ServerSecrets) -> Result<u64> {
        let at = chrono::Utc::now().timestamp();
        let (key_number, key) = secrets.audit_key();
        self.write(|tx| {
            // One chain for every instance: appends take turns.
            tx.lock(Lock::Audit)?;
            let last = tx.row(
                "SELECT seq, mac, key_number FROM audit_log ORDER BY seq DESC LIMIT 1",
                params![],
            )?;
            let (seq, previous) = match last {
                Some(r) => {
                    // Another instance already seals with a newer secret: this one was not
                    // given it yet (a rolling restart), and an older key here would read as
                    // a forgery.
                    if r.int(2)? > key_number as i64 {
                        return Err(StorageError::Failed(format!(
                            "the audit trail is sealed with secret {} and this server holds \
                             secrets up to {key_number}: give it the newest secrets",
                            r.int(2)?
                        )));
                    }
                    (r.int(0)? as u64 + 1, r.bytes(1)?)
                }
                None => (1, vec![0u8; 32]),
            };
            let sealed = Entry {
                seq,
                at,
                subject: entry.subject.clone(),
                role: entry.role.clone(),
                organisation: entry.organisation.clone(),
                action: entry.action.clone(),
                target: entry.target.clone(),
                refers_to: entry.refers_to,
                detail: entry.detail.to_string(),
                key_number: key_number as u32,
                mac: String::new(),
            };
            let mac = seal(key, &previous, &sealed_text(&sealed));
            tx.exec(
                "INSERT INTO audit_log(seq, at, subject, role, organisation, action, target,
                                       refers_to, detail, key_number, mac)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    seq as i64,
                    at,
                    &sealed.subject,
                    &sealed.role,
                    &sealed.organisation,
                    &sealed.action,
                    &sealed.target,
                    sealed.refers_to.map(|s| s as i64),
                    &sealed.detail,
                    key_number as i64,
                    mac
                ],
            )?;
            Ok(seq)
        })
    }

    fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<Entry>> {
        self.read(|tx| {
            tx.rows(
                "SELECT seq, at, subject, role, organisation, action, target, refers_to, detail,
                        key_number, mac
                 FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after as i64, limit],
            )?
            .iter()
            .map(entry_row)
            .collect()
        })
    }
}

fn entry_row(r: &Row) -> Result<Entry> {
    Ok(Entry {
        seq: r.int(0)? as u64,
        at: r.int(1)?,
        subject: r.text(2)?,
        role: r.text(3)?,
        organisation: r.text(4)?,
        action: r.text(5)?,
        target: r.text(6)?,
        refers_to: r.opt_int(7)?.map(|s| s as u64),
        detail: r.text(8)?,
        key_number: u32::try_from(r.int(9)?).map_err(|e| StorageError::Failed(e.to_string()))?,
        mac: thudo_core::hex::encode(&r.bytes(10)?),
    })
}

/// Checks entries that follow `previous` (`None`: the trail's start) at place
/// `previous_seq`: the first entry whose place or seal is wrong, or whose key is older than
/// the one before it, if any.
pub fn first_broken(
    entries: &[Entry],
    previous_seq: u64,
    previous: Option<&Entry>,
    secrets: &ServerSecrets,
) -> Option<u64> {
    let (mut previous, mut newest_key) = match previous {
        Some(p) => (thudo_core::hex::decode(&p.mac)?, p.key_number),
        None => (vec![0u8; 32], 0),
    };
    for (expected_seq, e) in (previous_seq + 1..).zip(entries) {
        let Some(key) = secrets.audit_key_of(e.key_number as usize) else {
            return Some(e.seq);
        };
        // A rotated-out secret, if it leaked, must not seal entries after a newer one's.
        if e.key_number < newest_key {
            return Some(e.seq);
        }
        newest_key = e.key_number;
        let text = sealed_text(e);
        let Some(mac) = thudo_core::hex::decode(&e.mac) else {
            return Some(e.seq);
        };
        let ok = e.seq == expected_seq
            && hmac::verify(key, &[&previous[..], text.as_bytes()].concat(), &mac).is_ok();
        if !ok {
            return Some(e.seq);
        }
        previous = mac;
    }
    None
}

/// What the audit middleware and routes need.
#[derive(Clone)]
pub struct AuditState {
    /// The trail.
    pub store: Arc<dyn AuditStore>,
    /// The secrets the trail is sealed with (and citizen IDs keyed with).
    pub secrets: Arc<ServerSecrets>,
}

/// Path parameters that name a citizen: entered keyed, never as the number.
const CITIZEN_PARAMS: &[&str] = &["citizen_id", "dependant_citizen_id"];

/// How the trail names a citizen: their lookup key, shortened (`c:` and 32 hex digits).
fn citizen_ref(secrets: &ServerSecrets, citizen_id: &str) -> String {
    let key = secrets.citizen(citizen_id);
    format!("c:{}", thudo_core::hex::encode(&key.as_bytes()[..16]))
}

/// A body's HMAC under the newest audit key (its number is the entry's `key_number`): whoever
/// holds the request can show it is the one entered; the database alone cannot test guesses.
fn body_mac(secrets: &ServerSecrets, body: &[u8]) -> String {
    let (_, key) = secrets.audit_key();
    let mut data = b"thudo/audit/body\0".to_vec();
    data.extend_from_slice(body);
    thudo_core::hex::encode(ring::hmac::sign(key, &data).as_ref())
}

/// The largest effect entered (a change's answer is a few fields).
const MAX_EFFECT_BYTES: usize = 2_048;

/// Answer fields that are secrets (a validator's enrolment code, any token): entered as their
/// SHA-256, which is what the store keeps of them, never as sent. Whoever reads the trail (an
/// auditor, a database backup) must not be able to use them.
const SECRET_FIELDS: &[&str] = &["code", "enrolment_code", "token", "secret"];

/// `effect` with every secret field, at any depth, replaced by `{"sha256": HEX}`.
fn without_secrets(effect: Value) -> Value {
    match effect {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(secret) if SECRET_FIELDS.contains(&name.as_str()) => {
                        let hash = crate::storage::sha256(secret.as_bytes());
                        (name, json!({ "sha256": thudo_core::hex::encode(&hash) }))
                    }
                    other => (name, without_secrets(other)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_secrets).collect()),
        other => other,
    }
}

/// Enters every operator request in the trail: a change's intent before it runs and its
/// outcome after; a read once, after. A request the trail cannot take is refused (503): no
/// operator action goes unrecorded.
pub async fn audited(State(audit): State<AuditState>, req: Request, next: Next) -> Response {
    let Some(operator) = req.extensions().get::<Operator>().cloned() else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    // A path no route matched is not entered as sent: it may hold anything, a citizen ID too.
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| "(no route)".to_owned(), |m| m.as_str().to_owned());
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::bad("unreadable body").into_response();
    };
    // The path's parameters, and a citizen the body names (a guardian's dependant).
    let params = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok();
    let named: Option<Value> = serde_json::from_slice(&bytes).ok();
    let in_body = CITIZEN_PARAMS.iter().filter_map(|name| {
        let value = named.as_ref()?.get(*name)?.as_str()?;
        Some((*name, value))
    });
    // A citizen ID is entered only under its keyed reference, wherever the request named it;
    // a query's citizens are in the target too, so a lookup of a citizen is found by them.
    let entered = |(name, value): (&str, &str)| {
        if CITIZEN_PARAMS.contains(&name) {
            format!("{name}={}", citizen_ref(&audit.secrets, value))
        } else {
            format!("{name}={value}")
        }
    };
    let query = query_pairs(parts.uri.query().unwrap_or_default());
    let in_query = query
        .iter()
        .filter(|(name, _)| CITIZEN_PARAMS.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let target = params
        .iter()
        .flat_map(|p| p.iter())
        .chain(in_body)
        .chain(in_query)
        .map(entered)
        .collect::<Vec<_>>()
        .join("&");
    let query = query
        .iter()
        .map(|(name, value)| entered((name, value)))
        .collect::<Vec<_>>()
        .join("&");
    // A HEAD is a GET without its body: a read, whose answer is not entered.
    let change = !matches!(parts.method, Method::GET | Method::HEAD);
    let mut entry = NewEntry {
        subject: operator.subject.clone(),
        role: operator.role.code().to_owned(),
        organisation: operator.organisation.clone(),
        action: format!("{} {route}", parts.method),
        target,
        refers_to: None,
        detail: json!({
            // Keyed: a small body naming a citizen would otherwise be found by hashing guesses.
            "body_mac": body_mac(&audit.secrets, &bytes),
            "body_bytes": bytes.len(),
            "query": query,
        }),
    };
    if change {
        match append(&audit, entry.clone()).await {
            Ok(seq) => entry.refers_to = Some(seq),
            Err(e) => return e.into_response(),
        }
    }
    // A body the trail cannot read as JSON (a lone surrogate or a byte that is not UTF-8 in a
    // field the handler skips unread; the handlers read any body as JSON, whatever its
    // declared type) could hide the citizen it names from the trail: refused, its intent and
    // the refusal entered.
    if !bytes.is_empty() && named.is_none() {
        let refusal = ApiError::bad("the body is not valid JSON").into_response();
        return outcome(audit, entry, true, refusal).await;
    }
    // The action and its outcome's entry run to the end on their own task: a client that
    // disconnects (dropping this future) cannot leave a change done with no outcome entered.
    let finished = tokio::spawn(async move {
        let request = Request::from_parts(parts, Body::from(bytes));
        outcome(audit, entry, change, next.run(request).await).await
    });
    finished.await.unwrap_or_else(|_| {
        // Not a 503: a retry of a change whose intent is entered, and that may have partly run,
        // is not what to invite.
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ServerErrorCode::Internal,
            "the request failed",
        )
        .into_response()
    })
}

/// A refusal of a malformed request (400, 422) keeps only its code: its message may quote
/// what was sent (a parser's "invalid type: integer `1088012345`"), and the trail, sealed,
/// can never be purged of a citizen ID it took in plain text.
fn malformed_without_message(status: u16, effect: Value) -> Value {
    if matches!(status, 400 | 422) {
        json!({ "error": effect.get("error").cloned().unwrap_or(Value::Null) })
    } else {
        effect
    }
}

/// Enters `response`'s outcome (a change's status and effect, a read's size) and returns it; a
/// read the trail cannot take is not answered.
async fn outcome(
    audit: AuditState,
    mut entry: NewEntry,
    change: bool,
    response: Response,
) -> Response {
    let status = response.status().as_u16();
    let (response_parts, body) = response.into_parts();
    let Ok(answer) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::unavailable(ServerErrorCode::Internal, "unreadable answer")
            .into_response();
    };
    entry.detail = if change {
        let effect = serde_json::from_slice::<Value>(&answer)
            .ok()
            .filter(|_| answer.len() <= MAX_EFFECT_BYTES)
            .map(without_secrets)
            .map(|effect| malformed_without_message(status, effect))
            .unwrap_or_else(|| json!({ "bytes": answer.len() }));
        json!({ "status": status, "effect": effect })
    } else {
        // A read's answer is personal data: only its size is entered.
        json!({ "status": status, "bytes": answer.len(), "request": entry.detail })
    };
    if let Err(e) = append(&audit, entry).await {
        // The change stands (its intent is entered); a read is not answered unrecorded.
        if !change {
            return e.into_response();
        }
    }
    Response::from_parts(response_parts, Body::from(answer))
}

async fn append(audit: &AuditState, entry: NewEntry) -> std::result::Result<u64, ApiError> {
    let (store, secrets) = (audit.store.clone(), audit.secrets.clone());
    blocking(move || Ok(store.append_audit(&entry, &secrets)?)).await
}

/// A page of the trail.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Entries after this place (0: from the start).
    #[serde(default)]
    after: u64,
    /// The seal of entry `after` as an earlier reading gave it (its `head`): the page is then
    /// checked from that very entry, so entries cut from the end and written again show.
    mac: Option<String>,
    /// At most this many (1 to 1,000; 100 by default).
    limit: Option<u32>,
    /// Only entries about this citizen (12 digits).
    citizen_id: Option<String>,
}

/// The last entry checked: an auditor keeps it to check the next page, or the next reading,
/// from it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Head {
    /// Its place.
    pub seq: u64,
    /// Its seal, hex.
    pub mac: String,
}

/// A page of the trail, checked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrailPage {
    /// The page's entries (about the citizen asked for, if one was).
    pub entries: Vec<Entry>,
    /// Every entry of the page is in its place with its seal.
    pub verified: bool,
    /// The first entry whose place or seal is wrong.
    pub broken_at: Option<u64>,
    /// The page's last entry.
    pub head: Option<Head>,
    /// Where the next page starts (none after the last).
    pub next_after: Option<u64>,
}

/// The whole trail, checked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrailCheck {
    /// How many entries were checked.
    pub entries: u64,
    /// Every entry is in its place with its seal.
    pub verified: bool,
    /// The first entry whose place or seal is wrong.
    pub broken_at: Option<u64>,
    /// The last entry.
    pub head: Option<Head>,
    /// Changes entered as an intent with no outcome.
    pub unfinished: Vec<u64>,
}

/// A kept head as a query names it: a place of 1 or more, and a seal (64 hex digits) only
/// with the place it seals; never one ignored.
fn check_kept(place: Option<u64>, mac: Option<&str>) -> std::result::Result<(), ApiError> {
    match (place, mac) {
        (Some(0), _) => Err(ApiError::bad("a kept head's place is 1 or more")),
        (None, Some(_)) => Err(ApiError::bad(
            "mac is the seal of the entry at seq (or after): give both",
        )),
        (_, Some(mac)) if !(mac.len() == 64 && mac.bytes().all(|b| b.is_ascii_hexdigit())) => {
            Err(ApiError::bad("mac is a seal: 64 hex digits"))
        }
        _ => Ok(()),
    }
}

/// A head an auditor kept from an earlier check, to check the trail against: the trail must
/// still reach `seq`, and the entry there carry `mac` (when given).
#[derive(Debug, Deserialize)]
pub struct KeptHead {
    /// Its place.
    seq: Option<u64>,
    /// Its seal, hex.
    mac: Option<String>,
}

/// `/v1/admin/audit` and `/v1/admin/audit/verify`.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<AuditState> {
    utoipa_axum::router::OpenApiRouter::new()
        .routes(utoipa_axum::routes!(read_trail))
        .routes(utoipa_axum::routes!(verify_trail))
}

/// `GET /v1/admin/audit` (auditors): a page of the trail, checked: `broken_at` is the first
/// entry of the page whose place or seal is wrong (the page is checked from the entry before
/// it, which an earlier page checked). `head` is the page's last entry, to keep.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    summary = "Auditors: a page of the sealed audit trail, checked (broken_at: the first entry whose place or seal is wrong); head is the page's last entry",
    params(
        ("after" = Option<u64>, Query, minimum = 0),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000),
        ("citizen_id" = Option<String>, Query, pattern = "^[0-9]{12}$"),
        ("mac" = Option<String>, Query, pattern = "^[0-9a-fA-F]{64}$", description = "The seal of entry `after` as an earlier reading gave it: a page from a trail cut and written again is not verified"),
    ),
    responses(
        (status = 200, description = "OK", body = TrailPage),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub async fn read_trail(
    State(audit): State<AuditState>,
    operator: Operator,
    Query(q): Query<AuditQuery>,
) -> ApiResult<TrailPage> {
    operator.require(&[Role::Auditor])?;
    check_kept((q.after > 0).then_some(q.after), q.mac.as_deref())?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::bad("limit must be 1 to 1,000"));
    }
    let citizen = match &q.citizen_id {
        Some(id) => {
            valid_citizen_id(id)?;
            Some(format!("={}", citizen_ref(&audit.secrets, id)))
        }
        None => None,
    };
    let (store, secrets) = (audit.store.clone(), audit.secrets.clone());
    let after = q.after;
    let (entries, broken_at) = blocking(move || {
        // The entry the page follows, and the one before it: its own seal is checked too, so
        // that its key number (which the page's check starts from) is the one it was sealed
        // with, not one written over it.
        let (prior, before) = match after {
            0 => (None, None),
            1 => (None, store.audit_entries(0, 1)?.pop()),
            n => {
                let mut two = store.audit_entries(n - 2, 2)?;
                let at = two.pop();
                (two.pop(), at)
            }
        };
        let kept = |b: &Entry| {
            q.mac
                .as_ref()
                .is_none_or(|mac| b.mac.eq_ignore_ascii_case(mac))
        };
        let sound = |b: &Entry| {
            b.seq == after
                && kept(b)
                && first_broken(std::slice::from_ref(b), after - 1, prior.as_ref(), &secrets)
                    .is_none()
        };
        if after > 0 && !before.as_ref().is_some_and(sound) {
            return Ok((Vec::new(), Some(after)));
        }
        let entries = store.audit_entries(after, limit)?;
        let broken = first_broken(&entries, after, before.as_ref(), &secrets);
        Ok((entries, broken))
    })
    .await?;
    let head = entries.last().map(|e| Head {
        seq: e.seq,
        mac: e.mac.clone(),
    });
    let next = (entries.len() as u32 == limit).then(|| entries.last().map(|e| e.seq));
    let shown: Vec<Entry> = entries
        .into_iter()
        .filter(|e| {
            citizen
                .as_ref()
                .is_none_or(|c| e.target.contains(c.as_str()))
        })
        .collect();
    Ok(Json(TrailPage {
        entries: shown,
        verified: broken_at.is_none(),
        broken_at,
        head,
        next_after: next.flatten(),
    }))
}

/// `GET /v1/admin/audit/verify` (auditors): checks the whole trail from its start, and lists
/// the changes entered as an intent with no outcome (`unfinished`: cut short by a crash, or
/// running as the trail was read).
#[utoipa::path(
    get,
    path = "/v1/admin/audit/verify",
    summary = "Auditors: checks the whole audit trail from its start; unfinished lists changes entered as an intent with no outcome (cut short by a crash, or running)",
    params(
        ("seq" = Option<u64>, Query, minimum = 1, description = "A head kept from an earlier check: the trail must still reach it"),
        ("mac" = Option<String>, Query, pattern = "^[0-9a-fA-F]{64}$", description = "That head's seal: the entry at `seq` must still carry it"),
    ),
    responses(
        (status = 200, description = "OK", body = TrailCheck),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub async fn verify_trail(
    State(audit): State<AuditState>,
    operator: Operator,
    Query(kept): Query<KeptHead>,
) -> ApiResult<TrailCheck> {
    operator.require(&[Role::Auditor])?;
    let (store, secrets) = (audit.store.clone(), audit.secrets.clone());
    // A head an earlier check gave: the trail must still hold that entry with that seal (an
    // end cut off and written again is a valid chain of its own).
    check_kept(kept.seq, kept.mac.as_deref())?;
    let kept = kept.seq.map(|seq| (seq, kept.mac));
    let (count, broken_at, head, unfinished) = blocking(move || {
        let (mut after, mut previous, mut count) = (0u64, None::<Entry>, 0u64);
        // Changes entered as an intent and never as an outcome: cut short (a crash), or still
        // running.
        let mut unfinished = std::collections::BTreeSet::new();
        loop {
            let page = store.audit_entries(after, 1_000)?;
            if let Some(seq) = first_broken(&page, after, previous.as_ref(), &secrets) {
                return Ok((count, Some(seq), None, unfinished));
            }
            if let Some((seq, Some(mac))) = &kept {
                if let Some(e) = page.iter().find(|e| e.seq == *seq) {
                    if !e.mac.eq_ignore_ascii_case(mac) {
                        return Ok((count, Some(*seq), None, unfinished));
                    }
                }
            }
            let Some(last) = page.last() else {
                if let Some((seq, _)) = kept.filter(|(seq, _)| *seq > after) {
                    // The kept head is gone: the trail was cut before it.
                    return Ok((count, Some(seq), None, unfinished));
                }
                let head = previous.map(|p| Head {
                    seq: after,
                    mac: p.mac,
                });
                return Ok((count, None, head, unfinished));
            };
            for e in &page {
                match e.refers_to {
                    Some(intent) => {
                        unfinished.remove(&intent);
                    }
                    // A read (GET or HEAD) has one entry; a change's intent waits for its outcome.
                    None if !(e.action.starts_with("GET ") || e.action.starts_with("HEAD ")) => {
                        unfinished.insert(e.seq);
                    }
                    None => {}
                }
            }
            count += page.len() as u64;
            after = last.seq;
            previous = Some(last.clone());
        }
    })
    .await?;
    Ok(Json(TrailCheck {
        entries: count,
        verified: broken_at.is_none(),
        broken_at,
        head,
        unfinished: unfinished.into_iter().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn secrets(count: u8) -> ServerSecrets {
        let all: Vec<_> = (0..count)
            .map(|n| Zeroizing::new(vec![n + 1; 32]))
            .collect();
        ServerSecrets::new(&all).unwrap()
    }

    /// An operator's request to enter.
    fn entry(action: &str) -> NewEntry {
        NewEntry {
            subject: "clerk-1".into(),
            role: "transit_operator".into(),
            organisation: "hanoi-metro".into(),
            action: action.into(),
            target: String::new(),
            refers_to: None,
            detail: json!({}),
        }
    }

    /// An entry at `seq` sealed under secret `key_number` after `previous`.
    fn sealed(seq: u64, key_number: u32, previous: Option<&Entry>, s: &ServerSecrets) -> Entry {
        let mut e = Entry {
            seq,
            at: 1_790_000_000,
            subject: "clerk-1".into(),
            role: "transit_operator".into(),
            organisation: "hanoi-metro".into(),
            action: "POST /v1/admin/transit/deny".into(),
            target: String::new(),
            refers_to: None,
            detail: "{}".into(),
            key_number,
            mac: String::new(),
        };
        let before = previous.map_or(vec![0u8; 32], |p| thudo_core::hex::decode(&p.mac).unwrap());
        let key = s.audit_key_of(key_number as usize).unwrap();
        e.mac = thudo_core::hex::encode(&seal(key, &before, &sealed_text(&e)));
        e
    }

    #[test]
    fn a_rotated_out_secret_cannot_seal_after_a_newer_one() {
        let s = secrets(2);
        let first = sealed(1, 0, None, &s);
        let second = sealed(2, 1, Some(&first), &s);
        // Rotation forward: key 0, then key 1.
        assert_eq!(
            first_broken(&[first.clone(), second.clone()], 0, None, &s),
            None
        );
        // Whoever still holds secret 0 appends after an entry of secret 1: a valid seal, but
        // the key went down.
        let forged = sealed(3, 0, Some(&second), &s);
        let chain = [first.clone(), second.clone(), forged.clone()];
        assert_eq!(first_broken(&chain, 0, None, &s), Some(3));
        // The same from a kept head at the second entry.
        assert_eq!(first_broken(&[forged], 2, Some(&second), &s), Some(3));
        let honest = sealed(3, 1, Some(&second), &s);
        assert_eq!(first_broken(&[honest], 2, Some(&second), &s), None);
    }

    #[test]
    fn an_instance_without_the_newest_secret_does_not_append() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::storage::SqliteStorage::open(&dir.path().join("a.db"), &[SCHEMA]).unwrap();
        let entry = entry("POST /v1/admin/transit/deny");
        let (old, new) = (secrets(1), secrets(2));
        assert_eq!(store.append_audit(&entry, &old).unwrap(), 1);
        assert_eq!(store.append_audit(&entry, &new).unwrap(), 2);
        // An instance restarted later, still with the old secrets only.
        let refused = store.append_audit(&entry, &old).unwrap_err();
        assert!(refused.message().contains("newest secrets"), "{refused}");
        assert_eq!(store.append_audit(&entry, &new).unwrap(), 3);
        let entries = store.audit_entries(0, 10).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(first_broken(&entries, 0, None, &new), None);
    }

    /// A page read on from a kept head starts from that head's key: an attacker holding an old
    /// secret and the database who writes the head's key number down, then appends under the
    /// old secret, is caught at the head (its seal is not that key's).
    #[tokio::test]
    async fn a_page_from_a_kept_head_checks_the_heads_own_seal() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            crate::storage::SqliteStorage::open(&dir.path().join("a.db"), &[SCHEMA]).unwrap(),
        );
        let entry = entry("GET /v1/admin/transit/deny");
        let (old, new) = (secrets(1), secrets(2));
        store.append_audit(&entry, &old).unwrap();
        store.append_audit(&entry, &new).unwrap();
        store.append_audit(&entry, &new).unwrap();
        let head = store.audit_entries(2, 1).unwrap().remove(0);
        assert_eq!((head.seq, head.key_number), (3, 1));
        store
            .write(|tx| {
                tx.exec(
                    "UPDATE audit_log SET key_number = 0 WHERE seq = 3",
                    params![],
                )
            })
            .unwrap();
        store.append_audit(&entry, &old).unwrap();
        let page = |after: u64, mac: String| {
            read_trail(
                State(AuditState {
                    store: store.clone(),
                    secrets: Arc::new(secrets(2)),
                }),
                Operator {
                    subject: "auditor-1".into(),
                    role: Role::Auditor,
                    organisation: "hanoi".into(),
                },
                Query(AuditQuery {
                    after,
                    mac: Some(mac),
                    limit: None,
                    citizen_id: None,
                }),
            )
        };
        let read = page(3, head.mac.clone()).await.unwrap().0;
        assert_eq!((read.verified, read.broken_at), (false, Some(3)));
        // An honest head reads on: the second entry, sealed under secret 1.
        let second = store.audit_entries(1, 1).unwrap().remove(0);
        let read = page(2, second.mac).await.unwrap().0;
        assert_eq!(
            read.broken_at,
            Some(3),
            "the head written over shows in its place"
        );
    }
}
