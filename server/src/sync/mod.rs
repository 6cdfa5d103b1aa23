//! Sync: devices push their outbox and pull each collection's changes by scope (their
//! account's, or their party cell's) with opaque cursors (docs/protocol/sync.md).

pub mod store;

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use thudo_core::collections::spec as collection;
use thudo_core::hex;
use thudo_core::sync::protocol::*;

use crate::devices::authenticate;
use crate::devices::store::DeviceStore;
use crate::http::{blocking, query_params, valid_id, ApiError, ApiResult, JsonBody};
use crate::storage::sha256;
use store::{PushBudget, Pushed, SyncStore};

/// What the sync routes need.
#[derive(Clone)]
pub struct SyncState {
    /// The change log.
    pub storage: Arc<dyn SyncStore>,
    /// Devices, to authenticate the caller.
    pub devices: Arc<dyn DeviceStore>,
    /// The most bytes of records one account may push on one UTC day
    /// ([`MAX_PUSH_BYTES_PER_DAY`] by default).
    pub push_bytes_per_day: u64,
}

/// The routes: `/v1/sync/push`, `/v1/sync/pull`.
pub fn routes() -> OpenApiRouter<SyncState> {
    OpenApiRouter::new()
        .routes(routes!(push))
        .routes(routes!(pull))
}

#[utoipa::path(
    post,
    path = "/v1/sync/push",
    summary = "Push outbox mutations; each idempotency key is applied at most once",
    request_body(content = PushRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = PushResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 429, description = "The account's keys new today would pass its bytes for the day, 256 MiB by default: nothing applied (rate_limited, Retry-After: the next UTC day)", body = ErrorBody),
    ),
    security(("device" = [])),
)]
async fn push(
    State(state): State<SyncState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PushRequest>,
) -> ApiResult<PushResponse> {
    let device = authenticate(&state.devices, &headers).await?;
    if req.mutations.len() > MAX_PUSH_BATCH {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerErrorCode::TooLarge,
            format!("at most {MAX_PUSH_BATCH} mutations per push"),
        ));
    }
    let mut keys = std::collections::HashSet::new();
    for m in &req.mutations {
        if !valid_id(&m.idempotency_key, 64) {
            return Err(ApiError::bad(
                "idempotency_key must be 1 to 64 characters, none a control character",
            ));
        }
        if !keys.insert(m.idempotency_key.as_str()) {
            return Err(ApiError::bad("an idempotency key repeats within the batch"));
        }
    }
    // A day's pushes of one account are bounded (the change log every device of it pulls, and
    // the backend's disk): past it, the devices come back the next day, and nothing is lost.
    // Counted in the push's transaction, for the keys new to the account only: a retry whose
    // answer was lost always gets its answer.
    let now = chrono::Utc::now().timestamp();
    let (day, next_day_in) = (now.div_euclid(86_400), 86_400 - now.rem_euclid(86_400));
    let budget = PushBudget {
        day,
        max_bytes: state.push_bytes_per_day,
    };
    let storage = state.storage.clone();
    let results = match blocking(move || Ok(storage.push(&device, &req.mutations, budget)?)).await?
    {
        Pushed::Done(results) => results,
        Pushed::Revoked => return Err(ApiError::unauthorized("missing or unknown token")),
        Pushed::OverBudget => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ServerErrorCode::RateLimited,
                format!(
                    "this account pushed its {} bytes for today: push again tomorrow",
                    budget.max_bytes
                ),
            )
            .retry_after(next_day_in as u64))
        }
    };
    Ok(Json(PushResponse { results }))
}

/// The most bytes of records one account may push on one (UTC) day, by default: far more than a citizen's
/// whole health book (20,000 records of 2 KB are 40 MB), far less than a token's rate allows
/// (20 pushes a second of 1 MB).
pub const MAX_PUSH_BYTES_PER_DAY: u64 = 256 << 20;

/// Cursors are opaque to devices: `c2.<scope tag>.<position>.<mark>`. The tag names the scope
/// the position belongs to: a member moved to another cell (or a vault registered to another
/// citizen) presents a cursor of the old scope, and starts the new one from the beginning. The
/// mark is the change at the position's ([`SyncStore::mark_at`]): after the database was
/// restored from a backup, the change there is another or none, and the device starts over
/// (applying a change twice does no harm; skipping one would). `c1` cursors (no mark) are read
/// as before.
fn scope_tag(scope: &str) -> String {
    hex::encode(&sha256(scope.as_bytes())[..6])
}

fn make_cursor(scope: &str, position: i64, mark: Option<[u8; 6]>) -> String {
    format!(
        "c2.{}.{position}.{}",
        scope_tag(scope),
        hex::encode(&mark.unwrap_or_default())
    )
}

/// A cursor's position in `scope`, and the mark its position must still carry (none for the
/// beginning, a `c1` cursor, or another scope's, which start over).
fn parse_cursor(cursor: &str, scope: &str) -> Result<(i64, Option<[u8; 6]>), ApiError> {
    if cursor.is_empty() {
        return Ok((0, None));
    }
    let unknown = || ApiError::bad("unknown cursor");
    let (version, rest) = cursor.split_once('.').ok_or_else(unknown)?;
    let (tag, rest) = rest.split_once('.').ok_or_else(unknown)?;
    let (position, mark) = match version {
        "c1" => (rest, None),
        "c2" => {
            let (position, mark) = rest.split_once('.').ok_or_else(unknown)?;
            let mark: [u8; 6] = hex::decode(mark)
                .and_then(|m| m.try_into().ok())
                .ok_or_else(unknown)?;
            (position, Some(mark))
        }
        _ => return Err(unknown()),
    };
    let position = position
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(unknown)?;
    Ok(if tag == scope_tag(scope) && position > 0 {
        (position, mark)
    } else {
        (0, None)
    })
}

#[utoipa::path(
    get,
    path = "/v1/sync/pull",
    summary = "Changes of one collection after a cursor, oldest first",
    params(
        ("collection" = crate::schema::PullableCollection, Query),
        ("cursor" = Option<String>, Query, pattern = r"^(c1\.[0-9a-f]{12}\.[0-9]{1,18}|c2\.[0-9a-f]{12}\.[0-9]{1,18}\.[0-9a-f]{12})?$", description = "The `next_cursor` of the page before; empty for the beginning"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "500 by default"),
    ),
    responses(
        (status = 200, description = "OK", body = PullResponse),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("device" = [])),
)]
async fn pull(
    State(state): State<SyncState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<PullResponse> {
    let device = authenticate(&state.devices, &headers).await?;
    let params = query_params(raw);
    let name = params
        .get("collection")
        .ok_or_else(|| ApiError::bad("collection is required"))?;
    let spec = collection(name).filter(|c| c.pullable).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::UnknownCollection,
            name.clone(),
        )
    })?;
    let limit = match params.get("limit") {
        None => 500,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PULL_PAGE).contains(l))
            .ok_or_else(|| ApiError::bad(format!("limit must be 1 to {MAX_PULL_PAGE}")))?,
    };
    let scope = if spec.per_cell {
        match &device.cell {
            Some(cell) => format!("cell:{cell}"),
            None => {
                return Ok(Json(PullResponse {
                    changes: Vec::new(),
                    next_cursor: String::new(),
                    has_more: false,
                    remaining: Some(0),
                }))
            }
        }
    } else {
        format!("acct:{}", device.account_id)
    };
    let (after, mark) = parse_cursor(
        params.get("cursor").map(String::as_str).unwrap_or(""),
        &scope,
    )?;
    let cursor_scope = scope.clone();
    let storage = state.storage.clone();
    let collection_name = spec.name;
    let (changes, last, more, remaining, next_mark) = blocking(move || {
        // A position whose change is not the one the cursor saw there: start over.
        let (after, checked) = match mark {
            Some(mark) if storage.mark_at(&scope, collection_name, after)? != Some(mark) => {
                (0, None)
            }
            _ => (after, mark),
        };
        let (changes, last, more) = storage.pull(&scope, collection_name, after, limit)?;
        // A device at the end asks again and again: its mark, just checked, stands.
        let next_mark = match checked {
            Some(mark) if last == after => Some(mark),
            _ => storage.mark_at(&scope, collection_name, last)?,
        };
        // For the device's progress bar: counted only when more pages wait, and only so far.
        let remaining = if more {
            storage.remaining(&scope, collection_name, last, MAX_REMAINING_COUNTED)?
        } else {
            0
        };
        Ok((changes, last, more, remaining, next_mark))
    })
    .await?;
    Ok(Json(PullResponse {
        changes,
        next_cursor: make_cursor(&cursor_scope, last, next_mark),
        has_more: more,
        remaining: Some(remaining),
    }))
}
