//! Health and handbook publishing: facilities publish a citizen's health records to their
//! account, the party publishes a cell's documents, meetings and notices, and sets a member's
//! cell. Every route is an operator's.

mod procedures;
pub mod seed;
mod trust;

pub use trust::{current_trust_bundle, TrustBundleAnswer};

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use thudo_core::collections::spec as collection;
use thudo_core::sync::protocol::{Change, MAX_RECORD_BYTES};

use crate::devices::store::DeviceStore;
use crate::http::{
    blocking, valid_cell, valid_citizen_id, valid_record_id, ApiError, ApiResult, JsonBody,
};
use crate::operators::{Operator, Role};
use crate::sync::store::{server_hlc, Published, SyncStore, Withdrawn};

/// What the publishing routes need.
#[derive(Clone)]
pub struct PublishingState {
    /// The change log published to.
    pub sync: Arc<dyn SyncStore>,
    /// Accounts (a citizen's account, a member's cell).
    pub devices: Arc<dyn DeviceStore>,
    /// The keys citizen IDs are looked up under.
    pub secrets: Arc<crate::secrets::ServerSecrets>,
    /// The health trust bundle and its signing key.
    pub settings: Arc<dyn crate::storage::settings::SettingsStore>,
    /// Published files (a document's PDF gives it its searchable text).
    pub files: Arc<dyn crate::files::store::FileStore>,
}

/// The routes under `/v1/admin/citizens/{id}/health`, `…/cell` and `/v1/admin/cells/…`.
pub fn routes() -> OpenApiRouter<PublishingState> {
    OpenApiRouter::new()
        .routes(routes!(admin_health))
        .routes(routes!(withdraw_health))
        .routes(routes!(admin_cell_member))
        .routes(routes!(admin_cell_content))
        .routes(routes!(withdraw_cell_content))
        .routes(routes!(procedures::member_procedures))
        .routes(routes!(procedures::decide_procedure))
        .routes(routes!(trust::publish, trust::published))
        .routes(routes!(trust::for_device))
}

fn not_governed(cell: &str) -> ApiError {
    ApiError::forbidden(
        ServerErrorCode::NotGoverned,
        &format!("cell {cell} is not one of this organisation's"),
    )
}

/// Published records obey the same cap as pushed ones: every device must be able to hold them.
fn record_fits(index: usize, record: &Value) -> Result<(), ApiError> {
    if record.to_string().len() > MAX_RECORD_BYTES {
        return Err(too_large(format!(
            "record {index} is larger than {MAX_RECORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Health records a facility publishes for a citizen.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct HealthPublish {
    /// FHIR R4 resources (Immunization, Encounter, AllergyIntolerance, Condition,
    /// MedicationRequest, Observation, Patient), each with an `id`.
    #[schema(value_type = Vec<FhirResource>, max_items = 1000)]
    resources: Vec<Value>,
}

/// What the backend reads of a FHIR resource (the rest is kept as sent).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct FhirResource {
    /// Its type (`Immunization`).
    #[schema(rename = "resourceType", pattern = "^[A-Z][A-Za-z0-9]{0,63}$")]
    resource_type: String,
    /// Its id (FHIR's id: letters, digits, `-` and `.`).
    #[schema(pattern = "^[A-Za-z0-9.-]{1,64}$")]
    id: String,
    /// `meta.source` is set to the publishing facility; a resource naming another is refused.
    meta: Option<FhirMeta>,
}

/// A resource's `meta`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct FhirMeta {
    /// `urn:thudo:facility:{organisation}`.
    source: Option<String>,
}

/// How many records were published.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct PublishedRecords {
    /// Records written (each one a change the citizen's or cell's devices pull).
    published: usize,
}

#[utoipa::path(
    post,
    path = "/v1/admin/citizens/{citizen_id}/health",
    summary = "A facility publishes FHIR R4 resources for a citizen",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
    ),
    request_body(content = HealthPublish, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = PublishedRecords),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn admin_health(
    State(state): State<PublishingState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<HealthPublish>,
) -> ApiResult<PublishedRecords> {
    operator.require(&[Role::HealthFacility])?;
    valid_citizen_id(&citizen_id)?;
    let citizen = state.secrets.citizen(&citizen_id);
    // Every record says which facility published it; none may claim another.
    let source = format!("urn:thudo:facility:{}", operator.organisation);
    // A citizen's every device pulls what lands here: as bounded as a cell's publish.
    if body.resources.len() > MAX_CELL_ITEMS {
        return Err(too_large(format!(
            "at most {MAX_CELL_ITEMS} resources per publish"
        )));
    }
    let mut changes = Vec::with_capacity(body.resources.len());
    for (i, mut r) in body.resources.into_iter().enumerate() {
        let key = thudo_core::health::fhir::key_of(&r).ok_or_else(|| {
            ApiError::bad(format!("resource {i} needs resourceType and a valid id"))
        })?;
        stamp_source(i, &mut r, &source)?;
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
        let account = devices.account_for_citizen(&citizen)?;
        // No facility replaces another's record.
        Ok(sync.publish_as(&format!("acct:{account}"), &changes, &source, &|_| false)?)
    })
    .await?;
    match published {
        Published::Published(n) => Ok(Json(PublishedRecords { published: n })),
        Published::NotYours(record) | Published::TakenElsewhere(record) => {
            Err(ApiError::forbidden(
                ServerErrorCode::NotYours,
                &format!(
                    "{record} was published by another facility, or is the citizen's own: \
                     nothing was published"
                ),
            ))
        }
    }
}

/// A record withdrawn.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct WithdrawnRecord {
    /// `false` when it was withdrawn before (the same withdrawal delivered twice).
    withdrawn: bool,
}

/// What a withdrawal answers.
fn withdrawal(outcome: Withdrawn, record: &str) -> ApiResult<WithdrawnRecord> {
    match outcome {
        Withdrawn::Withdrawn => Ok(Json(WithdrawnRecord { withdrawn: true })),
        Withdrawn::AlreadyWithdrawn => Ok(Json(WithdrawnRecord { withdrawn: false })),
        Withdrawn::NotYours => Err(ApiError::forbidden(
            ServerErrorCode::NotYours,
            &format!("{record} was published by another publisher: nothing was withdrawn"),
        )),
        Withdrawn::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            format!("no published {record} here"),
        )),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/admin/citizens/{citizen_id}/health/{resource_type}/{id}",
    summary = "A facility withdraws a health record it published for a citizen (published to the wrong citizen, or in error): every device of the citizen deletes it at its next sync",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
        ("resource_type" = String, Path, pattern = "^[A-Z][A-Za-z0-9]{0,63}$"),
        ("id" = String, Path, pattern = "^[A-Za-z0-9.-]{1,64}$"),
    ),
    responses(
        (status = 200, description = "OK", body = WithdrawnRecord),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn withdraw_health(
    State(state): State<PublishingState>,
    operator: Operator,
    Path((citizen_id, resource_type, id)): Path<(String, String, String)>,
) -> ApiResult<WithdrawnRecord> {
    operator.require(&[Role::HealthFacility])?;
    valid_citizen_id(&citizen_id)?;
    // A key no resource can have names nothing published.
    let key = thudo_core::health::fhir::key_of(&json!({"resourceType": resource_type, "id": id}))
        .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            format!("no published health.records/{resource_type}/{id} here"),
        )
    })?;
    let citizen = state.secrets.citizen(&citizen_id);
    let source = format!("urn:thudo:facility:{}", operator.organisation);
    let (devices, sync, record) = (state.devices.clone(), state.sync.clone(), key.clone());
    let outcome = blocking(move || {
        // Looked up, never made: a citizen with no account holds nothing to withdraw.
        let Some((account, _)) = devices.member(&citizen)? else {
            return Ok(Withdrawn::NotFound);
        };
        let scope = format!("acct:{account}");
        Ok(sync.withdraw_as(&scope, "health.records", &record, &source, &|_| false)?)
    })
    .await?;
    withdrawal(outcome, &format!("health.records/{key}"))
}

/// Sets a resource's `meta.source` to the publishing facility; refused when it names another.
fn stamp_source(index: usize, resource: &mut Value, source: &str) -> Result<(), ApiError> {
    let Some(object) = resource.as_object_mut() else {
        return Err(ApiError::bad(format!("resource {index} is not an object")));
    };
    let meta = object.entry("meta").or_insert(Value::Null);
    // An absent meta and a null one are the same.
    if meta.is_null() {
        *meta = json!({});
    }
    let meta = meta
        .as_object_mut()
        .ok_or_else(|| ApiError::bad(format!("resource {index}'s meta is not an object")))?;
    match meta.get("source").and_then(Value::as_str) {
        Some(named) if named != source => Err(ApiError::forbidden(
            ServerErrorCode::NotYours,
            &format!("resource {index} names another source ({named}): a facility publishes only as itself"),
        )),
        _ => {
            meta.insert("source".into(), Value::String(source.to_owned()));
            Ok(())
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct CellMembership {
    /// The cell's id: 1 to 100 lower-case letters, digits, `-`, `_` and `.`.
    #[schema(pattern = "^[a-z0-9._-]{1,100}$")]
    cell: String,
}

#[utoipa::path(
    post,
    path = "/v1/admin/citizens/{citizen_id}/cell",
    summary = "Set a citizen's party cell",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
    ),
    request_body(content = CellMembership, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = crate::http::Done),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn admin_cell_member(
    State(state): State<PublishingState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
    JsonBody(body): JsonBody<CellMembership>,
) -> ApiResult<crate::http::Done> {
    operator.require(&[Role::PartyOrganisation])?;
    valid_citizen_id(&citizen_id)?;
    let citizen = state.secrets.citizen(&citizen_id);
    let cell = valid_cell(&body.cell)?;
    if !operator.governs_cell(&cell) {
        return Err(not_governed(&cell));
    }
    let storage = state.devices.clone();
    // A member moves between cells of one organisation; a transfer from another goes through
    // an organisation governing both.
    let moved = blocking(move || {
        Ok(storage.move_to_cell(&citizen, &cell, &|current| {
            current.is_none_or(|c| operator.governs_cell(c))
        })?)
    })
    .await?;
    if !moved {
        return Err(ApiError::forbidden(
            ServerErrorCode::NotGoverned,
            "the member belongs to a cell of another organisation",
        ));
    }
    Ok(Json(crate::http::Done { ok: true }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct CellPublish {
    /// The records, each an object with an `id`: at most 1,000.
    #[schema(value_type = Vec<CellItem>, max_items = 1000)]
    items: Vec<Value>,
}

/// Most records one publish to a cell, or to a citizen's health book, carries.
const MAX_CELL_ITEMS: usize = 1_000;
/// Most bytes one publish to a cell adds up to once its documents hold their PDFs' text: what
/// every device of the cell pulls.
const MAX_CELL_PUBLISH_BYTES: usize = 16 << 20;

fn too_large(message: String) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ServerErrorCode::TooLarge,
        message,
    )
}

/// What the backend reads of a record it publishes to a cell (the rest is kept as sent).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct CellItem {
    /// Its id: 1 to 440 bytes of UTF-8, none a control character.
    #[schema(
        min_length = 1,
        max_length = 440,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    id: String,
}

#[utoipa::path(
    post,
    path = "/v1/admin/cells/{cell}/{collection}",
    summary = "Publish handbook content (documents, meetings, notices) to a party cell",
    params(
        ("cell" = String, Path, pattern = "^[a-z0-9._-]{1,100}$"),
        ("collection" = crate::schema::CellCollection, Path),
    ),
    request_body(content = CellPublish, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = PublishedRecords),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn admin_cell_content(
    State(state): State<PublishingState>,
    operator: Operator,
    Path((cell, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<CellPublish>,
) -> ApiResult<PublishedRecords> {
    operator.require(&[Role::PartyOrganisation])?;
    let cell = valid_cell(&cell)?;
    if !operator.governs_cell(&cell) {
        return Err(not_governed(&cell));
    }
    let spec = collection(&name).filter(|c| c.per_cell).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::UnknownCollection,
            name.clone(),
        )
    })?;
    if body.items.len() > MAX_CELL_ITEMS {
        return Err(too_large(format!(
            "at most {MAX_CELL_ITEMS} records per publish"
        )));
    }
    let mut changes = Vec::with_capacity(body.items.len());
    // A meeting carries its cell and the attendance key, for signed check-ins offline.
    let attendance_key = if spec.name == "handbook.meeting" {
        let settings = state.settings.clone();
        Some(blocking(move || crate::attendance::published_key(settings.as_ref())).await?)
    } else {
        None
    };
    // A library document published with a PDF and no text of its own is searched by the
    // PDF's text.
    let mut items = body.items;
    if spec.name == "handbook.documents" {
        let (files, scope) = (state.files.clone(), format!("cell:{cell}"));
        items = blocking(move || {
            // Each record checked as soon as it holds its text, and the whole as it grows:
            // a small request naming a large PDF many times is refused early.
            let mut total = 0;
            for (i, item) in items.iter_mut().enumerate() {
                fill_body_from_pdf(files.as_ref(), &scope, item)?;
                record_fits(i, item)?;
                total += item.to_string().len();
                if total > MAX_CELL_PUBLISH_BYTES {
                    return Err(too_large(format!(
                        "the records add up to more than {MAX_CELL_PUBLISH_BYTES} bytes"
                    )));
                }
            }
            Ok(items)
        })
        .await?;
    }
    for (i, mut item) in items.into_iter().enumerate() {
        if let Some(key) = &attendance_key {
            crate::attendance::stamp_meeting(&cell, key, &mut item);
        }
        let id = item
            .get("id")
            .and_then(Value::as_str)
            // No control character: PostgreSQL cannot store a NUL in text, and no id needs one.
            .filter(|id| valid_record_id(id))
            .ok_or_else(|| {
                ApiError::bad(format!(
                    "item {i} needs an id of 1 to 440 bytes (UTF-8), none a control character"
                ))
            })?
            .to_owned();
        record_fits(i, &item)?;
        attachments_fit(i, &item)?;
        changes.push(Change {
            collection: spec.name.into(),
            record_id: id,
            op: "put".into(),
            payload: item,
            hlc: server_hlc(),
        });
    }
    // Every file a record names is one uploaded to this cell, of the size it says: a phone
    // fetches it from there and checks every byte.
    let named: Vec<(usize, thudo_core::attachments::AttachmentRef)> = changes
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            serde_json::from_value::<Vec<thudo_core::attachments::AttachmentRef>>(
                c.payload.get("attachments").cloned().unwrap_or(json!([])),
            )
            .unwrap_or_default()
            .into_iter()
            .map(move |r| (i, r))
        })
        .collect();
    if !named.is_empty() {
        let (files, scope) = (state.files.clone(), format!("cell:{cell}"));
        blocking(move || {
            for (i, r) in named {
                if files.file_size(&r.id, &scope)? != Some(r.size) {
                    return Err(ApiError::bad(format!(
                        "item {i}'s attachment {} is no file uploaded to this cell with {} bytes",
                        r.id, r.size
                    )));
                }
            }
            Ok(())
        })
        .await?;
    }
    // Each record is its publisher's: an organisation replaces its own, or those of the
    // organisations below it (the city committee a ward's), never one above or beside it.
    let storage = state.sync.clone();
    let publisher = operator.organisation.clone();
    // A meeting's or a notice's id is one cell's: phones and the attendance count key them by
    // id alone, and a member moved between cells would hold both under one.
    let unique = matches!(spec.name, "handbook.meeting" | "handbook.notice");
    let published = blocking(move || {
        let below = |owner: &str| crate::operators::governs(&publisher, owner);
        let scope = format!("cell:{cell}");
        Ok(if unique {
            storage.publish_unique_as(&scope, &changes, &publisher, &below)?
        } else {
            storage.publish_as(&scope, &changes, &publisher, &below)?
        })
    })
    .await?;
    match published {
        Published::Published(published) => Ok(Json(PublishedRecords { published })),
        Published::TakenElsewhere(record) => Err(ApiError::forbidden(
            ServerErrorCode::NotYours,
            &format!(
                "{record} is another cell's: meeting and notice ids are unique across cells \
                 (prefix them with the cell's id); nothing was published"
            ),
        )),
        Published::NotYours(record) => Err(ApiError::forbidden(
            ServerErrorCode::NotYours,
            &format!(
                "{record} was published by an organisation above or beside this one: nothing was published"
            ),
        )),
    }
}

#[utoipa::path(
    delete,
    path = "/v1/admin/cells/{cell}/{collection}/{id}",
    summary = "Withdraw a record published to a party cell (a document, meeting or notice published to the wrong cell, or in error): every device of the cell deletes it at its next sync",
    params(
        ("cell" = String, Path, pattern = "^[a-z0-9._-]{1,100}$"),
        ("collection" = crate::schema::CellCollection, Path),
        ("id" = String, Path, min_length = 1, max_length = 440, pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"),
    ),
    responses(
        (status = 200, description = "OK", body = WithdrawnRecord),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn withdraw_cell_content(
    State(state): State<PublishingState>,
    operator: Operator,
    Path((cell, name, id)): Path<(String, String, String)>,
) -> ApiResult<WithdrawnRecord> {
    operator.require(&[Role::PartyOrganisation])?;
    let cell = valid_cell(&cell)?;
    if !operator.governs_cell(&cell) {
        return Err(not_governed(&cell));
    }
    let spec = collection(&name).filter(|c| c.per_cell).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::UnknownCollection,
            name.clone(),
        )
    })?;
    // An id no record can have (over 440 bytes of UTF-8) names nothing published.
    if !valid_record_id(&id) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            format!("no published {}/{id} here", spec.name),
        ));
    }
    let (sync, publisher, record) = (state.sync.clone(), operator.organisation.clone(), id);
    let what = format!("{}/{record}", spec.name);
    let outcome = blocking(move || {
        // Its publisher, or an organisation above it, as for publishing it again.
        let below = |owner: &str| crate::operators::governs(&publisher, owner);
        let scope = format!("cell:{cell}");
        Ok(sync.withdraw_as(&scope, spec.name, &record, &publisher, &below)?)
    })
    .await?;
    withdrawal(outcome, &what)
}

/// Sets an empty `body` to the text of the first PDF among the item's `attachments` that was
/// uploaded for `scope`.
fn fill_body_from_pdf(
    files: &dyn crate::files::store::FileStore,
    scope: &str,
    item: &mut Value,
) -> Result<(), ApiError> {
    let has_body = item["body"].as_str().is_some_and(|b| !b.trim().is_empty());
    if has_body {
        return Ok(());
    }
    let pdfs: Vec<String> = item["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["media_type"] == "application/pdf")
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    for id in pdfs {
        if let Some(text) = files.file_text(&id, scope)?.filter(|t| !t.is_empty()) {
            if let Some(object) = item.as_object_mut() {
                object.insert("body".into(), Value::String(text));
            }
            break;
        }
    }
    Ok(())
}

/// An item's `attachments`, when it has any, are references devices accept (a SHA-256 id, a
/// name, a media type, a size within the limit): a bad one is refused here rather than making
/// every device skip the item.
fn attachments_fit(index: usize, item: &Value) -> Result<(), ApiError> {
    let Some(list) = item.get("attachments") else {
        return Ok(());
    };
    let refs: Vec<thudo_core::attachments::AttachmentRef> = serde_json::from_value(list.clone())
        .map_err(|e| ApiError::bad(format!("item {index}'s attachments: {e}")))?;
    for r in &refs {
        r.validate()
            .map_err(|e| ApiError::bad(format!("item {index}: {e}")))?;
    }
    Ok(())
}
