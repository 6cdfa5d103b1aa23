//! The party's side of its members' procedures (fee payment, residence comments, official and
//! temporary transfer): a member's phone uploads one queued; the party organisation governing
//! the member's cell reads it and says where it stands (submitted, accepted, returned with a
//! reason), which every phone of the member pulls.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use thudo_core::handbook::member::{Procedure, ProcedureStatus};
use thudo_core::sync::protocol::{ErrorBody, ServerErrorCode};

use super::{not_governed, PublishingState};
use crate::http::{blocking, valid_citizen_id, valid_record_id, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};

/// The collection members' procedures travel in.
const PROCEDURES: &str = "handbook.procedure";
/// Longest reason a returned procedure carries.
const MAX_REASON_CHARS: usize = 500;

/// A member's procedures.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct MemberProcedures {
    /// Each as the member's phones hold it: `id`, `request` (its `kind` and fields), `status`
    /// (`state`: queued, submitted, accepted, returned with `reason`), `updated_at`.
    #[schema(value_type = Vec<Object>)]
    procedures: Vec<Value>,
}

/// Where the organisation says a procedure stands.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct Decision {
    /// `submitted`, `accepted` or `returned`.
    #[schema(pattern = "^(submitted|accepted|returned)$")]
    state: String,
    /// Why it is returned (1 to 500 characters); only with `returned`.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// The member's account scope, if the operator governs the member's cell.
async fn governed_member(
    state: &PublishingState,
    operator: &Operator,
    citizen_id: &str,
) -> Result<String, ApiError> {
    operator.require(&[Role::PartyOrganisation])?;
    valid_citizen_id(citizen_id)?;
    let citizen = state.secrets.citizen(citizen_id);
    let devices = state.devices.clone();
    let member = blocking(move || Ok(devices.member(&citizen)?)).await?;
    match member {
        Some((account, Some(cell))) if operator.governs_cell(&cell) => {
            Ok(format!("acct:{account}"))
        }
        Some((_, Some(cell))) => Err(not_governed(&cell)),
        _ => Err(ApiError::forbidden(
            ServerErrorCode::NotGoverned,
            "the citizen is a member of none of this organisation's cells",
        )),
    }
}

/// The member's procedures as last uploaded or decided, by id.
fn procedures_in(
    sync: &dyn crate::sync::store::SyncStore,
    scope: &str,
) -> crate::storage::Result<std::collections::BTreeMap<String, Value>> {
    let mut latest = std::collections::BTreeMap::new();
    let mut after = 0;
    loop {
        let (page, last, more) = sync.pull(scope, PROCEDURES, after, 500)?;
        for c in page {
            if c.op == "put" {
                latest.insert(c.record_id, c.payload);
            } else {
                latest.remove(&c.record_id);
            }
        }
        if !more {
            return Ok(latest);
        }
        after = last;
    }
}

#[utoipa::path(
    get,
    path = "/v1/admin/citizens/{citizen_id}/procedures",
    summary = "The party organisation governing a member's cell: the member's procedures (fee payment, residence comments, official and temporary transfer) as uploaded and decided",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
    ),
    responses(
        (status = 200, description = "OK", body = MemberProcedures),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(super) async fn member_procedures(
    State(state): State<PublishingState>,
    operator: Operator,
    Path(citizen_id): Path<String>,
) -> ApiResult<MemberProcedures> {
    let scope = governed_member(&state, &operator, &citizen_id).await?;
    let sync = state.sync.clone();
    let procedures = blocking(move || Ok(procedures_in(sync.as_ref(), &scope)?)).await?;
    Ok(Json(MemberProcedures {
        procedures: procedures.into_values().collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/admin/citizens/{citizen_id}/procedures/{id}",
    summary = "The party organisation governing a member's cell says where a procedure stands (submitted, accepted, or returned with a reason); every phone of the member pulls it",
    params(
        ("citizen_id" = String, Path, pattern = "^[0-9]{12}$"),
        ("id" = String, Path, min_length = 1, max_length = 440, pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"),
    ),
    request_body(content = Decision, content_type = "application/json"),
    responses(
        (status = 200, description = "OK: the procedure as the member's phones will hold it", body = Object),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 409, description = "The procedure's state does not move to this one (`wrong_state`)", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
pub(super) async fn decide_procedure(
    State(state): State<PublishingState>,
    operator: Operator,
    Path((citizen_id, id)): Path<(String, String)>,
    JsonBody(decision): JsonBody<Decision>,
) -> ApiResult<Value> {
    let reported = match (decision.state.as_str(), decision.reason) {
        ("submitted", None) => ProcedureStatus::Submitted,
        ("accepted", None) => ProcedureStatus::Accepted,
        ("returned", Some(reason))
            if !reason.trim().is_empty() && reason.chars().count() <= MAX_REASON_CHARS =>
        {
            ProcedureStatus::Returned { reason }
        }
        ("returned", _) => {
            return Err(ApiError::bad(format!(
                "a returned procedure says why: reason of 1 to {MAX_REASON_CHARS} characters"
            )))
        }
        ("submitted" | "accepted", Some(_)) => {
            return Err(ApiError::bad("only a returned procedure carries a reason"))
        }
        _ => return Err(ApiError::bad("state is submitted, accepted or returned")),
    };
    let scope = governed_member(&state, &operator, &citizen_id).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            format!("the member has no procedure {id}"),
        )
    };
    if !valid_record_id(&id) {
        return Err(not_found());
    }
    // Read, checked and decided in one transaction under the member's scope lock: a queued
    // upload or another organisation's decision at the same moment comes before or after.
    enum Outcome {
        NotFound,
        Same(Value),
        WrongState(&'static str),
        Decided,
    }
    let (sync, record) = (state.sync.clone(), id.clone());
    let wanted = reported.clone();
    let (decided, outcome) = blocking(move || {
        let mut outcome = Outcome::NotFound;
        let decided = sync.put_next(&scope, PROCEDURES, &record, &mut |current| {
            let Some(held) = current.and_then(|p| serde_json::from_value::<Procedure>(p).ok())
            else {
                outcome = Outcome::NotFound;
                return None;
            };
            if held.status == wanted {
                outcome = Outcome::Same(serde_json::to_value(&held).unwrap_or_default());
                return None;
            }
            if !held.status.reported_moves_to(&wanted) {
                outcome = Outcome::WrongState(held.status.name());
                return None;
            }
            outcome = Outcome::Decided;
            serde_json::to_value(Procedure {
                status: wanted.clone(),
                updated_at: chrono::Utc::now().timestamp(),
                ..held
            })
            .ok()
        })?;
        Ok((decided, outcome))
    })
    .await?;
    match (decided, outcome) {
        (Some(payload), Outcome::Decided) => Ok(Json(payload)),
        (_, Outcome::Same(payload)) => Ok(Json(payload)),
        (_, Outcome::WrongState(state)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ServerErrorCode::WrongState,
            format!(
                "the procedure is {state}: it cannot become {}",
                reported.name()
            ),
        )),
        _ => Err(not_found()),
    }
}
