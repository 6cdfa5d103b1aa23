//! Metro journeys on the routes: the entry feed exit gates read, and settling journeys whose
//! time ran out (every minute on every instance, or at the operator's word).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use thudo_core::hex;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use thudo_core::transit::metro::{EntryFeed, InsideFeed, InsideKey};

use super::validators::validator_caller;
use super::TransitState;
use crate::http::{blocking, query_params, ApiError, ApiResult};
use crate::operators::{Operator, Role};

/// Entries per page of the entry feed.
pub const ENTRY_FEED_PAGE: usize = 5_000;

/// `GET /v1/transit/entries?after=N`: the metro entries still open on the network after cursor
/// `N` (not yet paired with an exit, young enough to be honoured), for exit gates only.
#[utoipa::path(
    get,
    path = "/v1/transit/entries",
    summary = "For metro exit gates: the entries still open on the network after a cursor (each verified here), and the time up to which every entry gate has uploaded. Exit gates only (403 exit_gates_only for entry gates, buses and inspectors).",
    params(
        ("after" = Option<u64>, Query, description = "The cursor of the last page read (0 or absent: from the start)", minimum = 0),
    ),
    responses(
        (status = 200, description = "OK", body = EntryFeed),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Not an exit gate (`exit_gates_only`, `validators_only`, `decommissioned`)", body = ErrorBody),
    ),
    security(("validator" = [])),
)]
pub(crate) async fn entry_feed(
    State(state): State<TransitState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> ApiResult<EntryFeed> {
    // Least data: where cards entered, and when, is for the gates that let them out.
    let gate = validator_caller(&state, &headers).await?;
    if !gate.gate.as_deref().is_some_and(|g| g.ends_with(":exit")) {
        return Err(ApiError::forbidden(
            ServerErrorCode::ExitGatesOnly,
            "only metro exit gates read the entry feed",
        ));
    }
    let cursor = match query_params(raw).get("after") {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::bad("after must be a whole number"))?,
    };
    let storage = state.storage.clone();
    let feed = blocking(move || {
        let now = chrono::Utc::now().timestamp();
        Ok(storage.entry_feed(
            cursor,
            now,
            thudo_core::transit::metro::ENTRY_HONOURED_SECS,
            ENTRY_FEED_PAGE,
        )?)
    })
    .await?;
    Ok(Json(feed))
}

/// Most cards an inside feed lists (a full network's worth; past it the feed says nothing is
/// complete, so no gate refuses by it).
pub const INSIDE_FEED_LIMIT: usize = 200_000;

/// `GET /v1/transit/inside`: the cards inside the network now, for entry gates only, each as a
/// tag under a key new in every answer: a gate can test the card before it, and learns no card,
/// station or time beyond that.
#[utoipa::path(
    get,
    path = "/v1/transit/inside",
    summary = "For metro entry gates: the cards inside the network now (an entry and no exit within the fare table's journey time), each as an 8-byte HMAC-SHA-256 tag of the card id under a salt new in every answer, and the time up to which every exit gate has uploaded. Entry gates only (403 entry_gates_only for exit gates, buses and inspectors).",
    responses(
        (status = 200, description = "OK", body = InsideFeed),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Not an entry gate (`entry_gates_only`, `validators_only`, `decommissioned`)", body = ErrorBody),
    ),
    security(("validator" = [])),
)]
pub(crate) async fn inside_feed(
    State(state): State<TransitState>,
    headers: HeaderMap,
) -> ApiResult<InsideFeed> {
    let gate = validator_caller(&state, &headers).await?;
    if !gate.gate.as_deref().is_some_and(|g| g.ends_with(":entry")) {
        return Err(ApiError::forbidden(
            ServerErrorCode::EntryGatesOnly,
            "only metro entry gates read the cards inside",
        ));
    }
    let storage = state.storage.clone();
    let now = chrono::Utc::now().timestamp();
    // Inside for the fare table's journey time at most: past it the journey is settled with no
    // exit, and the rider may enter again.
    let (today, _) = state.fares.local_day_and_month(now.max(0) as u64);
    let journey = state.fares.max_journey_secs(&today);
    // The read and the tags (up to one HMAC per card) run off the async workers.
    let feed = blocking(move || {
        let (cards, exits_until) = storage.cards_inside(now, journey, INSIDE_FEED_LIMIT)?;
        let mut salt = [0u8; 32];
        thudo_core::crypto::fill_random(&mut salt)
            .map_err(|_| ApiError::unavailable(ServerErrorCode::Internal, "no randomness"))?;
        let key = InsideKey::new(&salt);
        let complete = cards.len() < INSIDE_FEED_LIMIT;
        Ok(InsideFeed {
            salt: hex::encode(&salt),
            cards: cards
                .into_iter()
                .map(|card| hex::encode(&key.tag(card)))
                .collect(),
            exits_complete_until: if complete { exits_until } else { 0 },
            now: now.max(0) as u64,
        })
    })
    .await?;
    Ok(Json(feed))
}

/// Journeys settled.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Settled {
    /// How many were settled now.
    settled: u32,
}

/// `POST /v1/admin/transit/journeys/settle`: settles the journeys whose time ran out now (the
/// server also does it every minute).
#[utoipa::path(
    post,
    path = "/v1/admin/transit/journeys/settle",
    summary = "Settles the metro journeys whose time ran out now: an entry with no exit, or an exit with no entry, is charged its line's maximum fare (every instance also does this each minute; a late tap corrects it)",
    responses(
        (status = 200, description = "How many were settled", body = Settled),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(crate) async fn admin_settle_journeys(
    State(state): State<TransitState>,
    operator: Operator,
) -> ApiResult<Settled> {
    operator.require(&[Role::TransitOperator])?;
    let settled = settle_now(&state).await?;
    Ok(Json(Settled { settled }))
}

/// Settles what is due now, a thousand journeys at a time, then acts on fraud records not acted
/// on yet.
pub(crate) async fn settle_now(state: &TransitState) -> Result<u32, ApiError> {
    let storage = state.storage.clone();
    let fares = state.fares.clone();
    blocking(move || {
        let mut total = 0;
        loop {
            let n = storage.settle_journeys(chrono::Utc::now().timestamp(), &fares)?;
            total += n;
            if n < 1_000 {
                // Settling finds fraud too (an entry with no exit after a second entry): act on
                // what the policy says follows.
                storage.act_on_fraud(&fares, chrono::Utc::now().timestamp())?;
                return Ok(total);
            }
        }
    })
    .await
}
