//! Health and handbook publishing: facilities publish a citizen's health records to their
//! account, the party publishes a cell's documents, meetings and notices, and sets a member's
//! cell. Every route is an operator's.

pub mod seed;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use thudo_core::changes::hlc::Hlc;
use thudo_core::collections::spec as collection;
use thudo_core::sync::protocol::{Change, MAX_RECORD_BYTES};

use crate::devices::store::DeviceStore;
use crate::http::{blocking, valid_citizen_id, ApiError, ApiResult, JsonBody};
use crate::operators::Operators;
use crate::sync::store::SyncStore;

/// What the publishing routes need.
#[derive(Clone)]
pub struct PublishingState {
    /// The change log published to.
    pub sync: Arc<dyn SyncStore>,
    /// Accounts (a citizen's account, a member's cell).
    pub devices: Arc<dyn DeviceStore>,
    /// Who may publish.
    pub operators: Operators,
}

/// The routes under `/v1/admin/citizens/{id}/health`, `…/cell` and `/v1/admin/cells/…`.
pub fn routes(state: PublishingState) -> Router {
    Router::new()
        .route("/v1/admin/citizens/{citizen_id}/health", post(admin_health))
        .route(
            "/v1/admin/citizens/{citizen_id}/cell",
            post(admin_cell_member),
        )
        .route(
            "/v1/admin/cells/{cell}/{collection}",
            post(admin_cell_content),
        )
        .with_state(state)
}

/// Published records obey the same cap as pushed ones: every device must be able to hold them.
fn record_fits(index: usize, record: &Value) -> Result<(), ApiError> {
    if record.to_string().len() > MAX_RECORD_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("record {index} is larger than {MAX_RECORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn server_hlc() -> String {
    Hlc::tick(None, chrono::Utc::now().timestamp_millis() as u64, "server").to_string()
}

/// Health records a facility publishes for a citizen.
#[derive(Debug, Deserialize)]
struct HealthPublish {
    resources: Vec<Value>,
}

async fn admin_health(
    State(state): State<PublishingState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<HealthPublish>,
) -> ApiResult<Value> {
    state.operators.authorize(&headers)?;
    valid_citizen_id(&citizen_id)?;
    let mut changes = Vec::with_capacity(body.resources.len());
    for (i, r) in body.resources.into_iter().enumerate() {
        let key = thudo_core::health::fhir::key_of(&r).ok_or_else(|| {
            ApiError::bad(format!("resource {i} needs resourceType and a valid id"))
        })?;
        record_fits(i, &r)?;
        changes.push(Change {
            collection: "health.records".into(),
            record_id: key,
            op: "put".into(),
            payload: r,
            hlc: server_hlc(),
        });
    }
    let (devices, sync) = (state.devices.clone(), state.sync.clone());
    let published = blocking(move || {
        let account = devices.account_for_citizen(&citizen_id)?;
        Ok(sync.publish(&format!("acct:{account}"), &changes)?)
    })
    .await?;
    Ok(Json(json!({ "published": published })))
}

#[derive(Debug, Deserialize)]
struct CellMembership {
    cell: String,
}

async fn admin_cell_member(
    State(state): State<PublishingState>,
    headers: HeaderMap,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<CellMembership>,
) -> ApiResult<Value> {
    state.operators.authorize(&headers)?;
    valid_citizen_id(&citizen_id)?;
    if body.cell.trim().is_empty() || body.cell.len() > 100 {
        return Err(ApiError::bad("cell must be 1 to 100 bytes"));
    }
    let storage = state.devices.clone();
    blocking(move || Ok(storage.set_cell(&citizen_id, body.cell.trim())?)).await?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Debug, Deserialize)]
struct CellPublish {
    items: Vec<Value>,
}

async fn admin_cell_content(
    State(state): State<PublishingState>,
    headers: HeaderMap,
    Path((cell, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<CellPublish>,
) -> ApiResult<Value> {
    state.operators.authorize(&headers)?;
    let spec = collection(&name)
        .filter(|c| c.per_cell)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_collection", name.clone()))?;
    let mut changes = Vec::with_capacity(body.items.len());
    for (i, item) in body.items.into_iter().enumerate() {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .ok_or_else(|| ApiError::bad(format!("item {i} needs an id")))?
            .to_owned();
        record_fits(i, &item)?;
        changes.push(Change {
            collection: spec.name.into(),
            record_id: id,
            op: "put".into(),
            payload: item,
            hlc: server_hlc(),
        });
    }
    let storage = state.sync.clone();
    let published =
        blocking(move || Ok(storage.publish(&format!("cell:{cell}"), &changes)?)).await?;
    Ok(Json(json!({ "published": published })))
}
