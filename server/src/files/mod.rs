//! Published files (a resolution's PDF, meeting papers): a party organisation uploads one for
//! its cell, the text of a PDF is extracted for the library's search, and the cell's devices
//! fetch it chunk by chunk (docs/protocol/sync.md, "Attachments").

pub mod pdf;
pub mod store;

use std::sync::Arc;
use thudo_core::sync::protocol::ErrorBody;
use thudo_core::sync::protocol::ServerErrorCode;
use utoipa_axum::{router::OpenApiRouter, routes};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thudo_core::attachments::{file_id, AttachmentRef, ChunkResponse, CHUNK_BYTES, MAX_FILE_BYTES};

use crate::devices::authenticate;
use crate::devices::store::DeviceStore;
use crate::http::{blocking, valid_cell, ApiError, ApiResult, JsonBody};
use crate::operators::{Operator, Role};
pub use pdf::{pdf_text, PdfReader, MAX_PDF_INFLATED_BYTES};
use store::{FileStore, NewFile, Withdrawal};

/// The most text kept from a PDF (the library's body).
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// What the file routes need.
#[derive(Clone)]
pub struct FilesState {
    /// The files.
    pub store: Arc<dyn FileStore>,
    /// Devices, to authenticate the ones fetching.
    pub devices: Arc<dyn DeviceStore>,
    /// Where a PDF's text is read.
    pub pdf_reader: PdfReader,
}

/// The routes.
pub fn routes() -> OpenApiRouter<FilesState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(withdraw))
        .routes(routes!(chunk))
}

/// A file a party organisation uploads.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Upload {
    /// File name, as shown: 1 to 255 characters, not blank, no control character.
    #[schema(
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    /// Its media type (`application/pdf`): type/subtype, no control character.
    #[schema(
        max_length = 100,
        pattern = r"^[^/\u0000-\u001f\u007f-\u009f]+/[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    media_type: String,
    /// The bytes, base64 (standard alphabet, padded).
    #[schema(
        pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
    )]
    data: String,
}

/// The stored file: the reference to publish with a document or meeting, and how much text
/// its PDF gave.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// What a record carries of it.
    pub reference: AttachmentRef,
    /// Characters of text extracted (0 for anything but a PDF with text).
    pub text_chars: u64,
}

/// `cell`, checked, when `operator` is a party organisation governing it (403 otherwise).
fn governed_cell(operator: &Operator, cell: &str) -> Result<String, ApiError> {
    operator.require(&[Role::PartyOrganisation])?;
    let cell = valid_cell(cell)?;
    if !operator.governs_cell(&cell) {
        return Err(ApiError::forbidden(
            ServerErrorCode::NotGoverned,
            &format!("cell {cell} is not one of this organisation's"),
        ));
    }
    Ok(cell)
}

#[utoipa::path(
    post,
    path = "/v1/admin/cells/{cell}/files",
    summary = "Upload a file for a cell's documents and meetings (a PDF's text is extracted for search)",
    params(
        ("cell" = String, Path, pattern = "^[a-z0-9._-]{1,100}$"),
    ),
    request_body(content = Upload, content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = Uploaded),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn upload(
    State(state): State<FilesState>,
    operator: Operator,
    Path(cell): Path<String>,
    JsonBody(body): JsonBody<Upload>,
) -> ApiResult<Uploaded> {
    let cell = governed_cell(&operator, &cell)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.data.as_bytes())
        .map_err(|_| ApiError::bad("data is not base64"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ServerErrorCode::TooLarge,
            format!("a file is at most {MAX_FILE_BYTES} bytes"),
        ));
    }
    let reference = AttachmentRef {
        id: file_id(&bytes),
        name: body.name,
        media_type: body.media_type,
        size: bytes.len() as i64,
    };
    reference
        .validate()
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let store = state.store.clone();
    let scope = format!("cell:{cell}");
    let publisher = operator.organisation.clone();
    let r = reference.clone();
    let bytes = Arc::new(bytes);
    let text = if r.media_type == "application/pdf" {
        state.pdf_reader.text(bytes.clone()).await
    } else {
        String::new()
    };
    let text_chars = text.chars().count() as u64;
    blocking(move || {
        store.put_file(&NewFile {
            sha256: r.id.clone(),
            media_type: r.media_type.clone(),
            scope,
            publisher,
            chunks: bytes.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect(),
            size: bytes.len() as i64,
            text,
            now: chrono::Utc::now().timestamp(),
        })?;
        Ok(())
    })
    .await?;
    Ok(Json(Uploaded {
        reference,
        text_chars,
    }))
}

/// What a withdrawal did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Withdrawn {
    /// The file's id.
    pub id: String,
}

#[utoipa::path(
    delete,
    path = "/v1/admin/cells/{cell}/files/{id}",
    summary = "Withdraw a file from a cell (published by mistake, or superseded): the cell's phones can no longer fetch it, and a file no cell or account may fetch is erased",
    params(
        ("cell" = String, Path, pattern = "^[a-z0-9._-]{1,100}$"),
        ("id" = String, Path, pattern = "^[0-9a-f]{64}$"),
    ),
    responses(
        (status = 200, description = "OK", body = Withdrawn),
        (status = 400, description = "Malformed or out of range: the message says which", body = ErrorBody),
        (status = 403, description = "Refused: the code says why", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("operator" = [])),
)]
async fn withdraw(
    State(state): State<FilesState>,
    operator: Operator,
    Path((cell, id)): Path<(String, String)>,
) -> ApiResult<Withdrawn> {
    let cell = governed_cell(&operator, &cell)?;
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::bad("a file id is 64 lower-case hex digits"));
    }
    let store = state.store.clone();
    let scope = format!("cell:{cell}");
    let file = id.clone();
    let me = operator.organisation.clone();
    // Its publisher, or an organisation above it (as for a cell's records).
    let withdrawn = blocking(move || {
        let may =
            |publisher: Option<&str>| publisher.is_none_or(|p| crate::operators::governs(&me, p));
        Ok(store.withdraw_file(&file, &scope, &may)?)
    })
    .await?;
    match withdrawn {
        Withdrawal::Withdrawn => Ok(Json(Withdrawn { id })),
        Withdrawal::NotThere => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            "no such file in this cell",
        )),
        Withdrawal::NotYours(publisher) => Err(ApiError::forbidden(
            ServerErrorCode::NotYours,
            &format!(
                "the file was published here by {publisher}: not this organisation's to withdraw"
            ),
        )),
    }
}

#[utoipa::path(
    get,
    path = "/v1/files/{id}/chunks/{index}",
    summary = "One 256 KiB chunk of a published file the caller's cell or account may fetch",
    params(
        ("id" = String, Path, pattern = "^[0-9a-f]{64}$"),
        ("index" = u32, Path, maximum = 39, description = "The chunk (256 KiB each; a file holds at most 40)"),
    ),
    responses(
        (status = 200, description = "OK", body = ChunkResponse),
        (status = 404, description = "No such resource", body = ErrorBody),
    ),
    security(("device" = [])),
)]
async fn chunk(
    State(state): State<FilesState>,
    headers: HeaderMap,
    Path((id, index)): Path<(String, u32)>,
) -> ApiResult<ChunkResponse> {
    let device = authenticate(&state.devices, &headers).await?;
    let mut scopes = vec![format!("acct:{}", device.account_id)];
    if let Some(cell) = &device.cell {
        scopes.push(format!("cell:{cell}"));
    }
    let store = state.store.clone();
    let data = blocking(move || Ok(store.chunk(&id, index, &scopes)?)).await?;
    // Not there, or not the caller's to see: the same answer.
    let data = data.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ServerErrorCode::NotFound,
            "no such file chunk",
        )
    })?;
    Ok(Json(ChunkResponse {
        index,
        data: base64::engine::general_purpose::STANDARD.encode(data),
    }))
}
