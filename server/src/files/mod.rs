//! Published files (a resolution's PDF, meeting papers): a party organisation uploads one for
//! its cell, the text of a PDF is extracted for the library's search, and the cell's devices
//! fetch it chunk by chunk (docs/protocol/sync.md, "Attachments").

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

/// The most a PDF's streams may inflate to, together, for its text to be read (the parser
/// holds a page's operations at about forty times their text's size).
pub const MAX_PDF_INFLATED_BYTES: u64 = 16 << 20;

/// The filters a stream may name, one each, for its PDF's text to be read: Flate (counted
/// below), the image codecs the text parser never decodes, and the ASCII encodings. A chain
/// of filters, a filter held elsewhere (`/Filter 7 0 R`), LZW and run-length are not read:
/// each can hide an expansion from the count.
const READ_FILTERS: &[&[u8]] = &[
    b"FlateDecode",
    b"DCTDecode",
    b"JPXDecode",
    b"CCITTFaxDecode",
    b"JBIG2Decode",
    b"ASCIIHexDecode",
    b"ASCII85Decode",
];

/// The most `stream` keywords a PDF's check tries (each inflation restarts from its keyword).
const MAX_STREAM_KEYWORDS: usize = 20_000;

/// A PDF name's bytes with its `#xx` escapes decoded (the parser decodes them in keys too).
fn decoded_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (raw[i], raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (b'#', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The first number in `text` (after whitespace), if any.
fn leading_number(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii_start();
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[..digits]).ok()?.parse().ok()
}

/// Whether a PDF is one whose text the parser may read: not encrypted (the parser would
/// decrypt what no check here sees), every stream's filter one of [`READ_FILTERS`] alone,
/// predictor and cross-reference widths within reason (the parser allocates what they say),
/// and every stream inflating, together, to at most `limit` bytes. The parser inflates each
/// stream whole: a file of a few MB can ask for gigabytes, and a failed allocation aborts the
/// server (no panic the guard could catch). Names are read as the parser reads them, `#xx`
/// escapes decoded. Each `stream` keyword is tried as the start of a zlib stream, and of a
/// raw deflate stream after two bytes (as the parser falls back to), counted, never kept.
fn inflates_within(bytes: &[u8], limit: u64) -> bool {
    let find = |from: usize, needle: &[u8]| {
        bytes
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| from + p)
    };
    // Every name outside streams' data, as the parser decodes it.
    let mut at = 0;
    while let Some(slash) = find(at, b"/") {
        // A stream's data is skipped: its bytes are no names.
        if let Some(stream) = find(at, b"stream").filter(|&st| st < slash) {
            let body = stream + 6;
            at = match find(body, b"endstream") {
                Some(end)
                    if bytes[body..].starts_with(b"\r")
                        || bytes[body..].starts_with(b"\n")
                        || bytes[body..].starts_with(b" ")
                        || bytes[body..].starts_with(b"\t") =>
                {
                    end + 9
                }
                _ => body,
            };
            continue;
        }
        let raw_start = slash + 1;
        let len = bytes[raw_start..]
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b"/[]<>()%{}".contains(&b))
            .unwrap_or(bytes.len() - raw_start);
        at = raw_start + len.max(1).min(bytes.len() - raw_start);
        let name = decoded_name(&bytes[raw_start..raw_start + len]);
        let value = &bytes[raw_start + len..];
        let ok = match name.as_slice() {
            b"Encrypt" => false,
            // Only a stream's filter is the parser's to apply: a signature's
            // (`/Filter /Adobe.PPKLite`) is the end of a dictionary that holds no stream.
            b"Filter" => {
                let next_stream = find(raw_start, b"stream").unwrap_or(usize::MAX);
                let next_end = find(raw_start, b"endobj").unwrap_or(usize::MAX);
                next_end < next_stream || filter_is_read(value)
            }
            b"Columns" => leading_number(value).is_some_and(|n| n <= 1 << 16),
            b"Colors" => leading_number(value).is_some_and(|n| n <= 32),
            b"BitsPerComponent" => leading_number(value).is_some_and(|n| n <= 16),
            // A cross-reference stream's field widths (a font's /W is glyph widths).
            b"W" if {
                let object = bytes[..raw_start]
                    .windows(3)
                    .rposition(|w| w == b"obj")
                    .unwrap_or(0);
                let end = find(raw_start, b"stream").unwrap_or(bytes.len());
                bytes[object..end].windows(5).any(|w| w == b"/XRef")
            } =>
            {
                let inside = value.trim_ascii_start();
                let Some(inside) = inside.strip_prefix(b"[") else {
                    return false;
                };
                let end = inside
                    .iter()
                    .position(|&b| b == b']')
                    .unwrap_or(inside.len());
                inside[..end]
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .all(|w| leading_number(w).is_some_and(|n| n <= 8))
            }
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    let mut total = 0u64;
    let mut at = 0;
    let mut keywords = 0;
    while let Some(found) = find(at, b"stream") {
        keywords += 1;
        if keywords > MAX_STREAM_KEYWORDS {
            return false;
        }
        at = found + 6;
        let mut start = at;
        while matches!(bytes.get(start), Some(b' ' | b'\t')) {
            start += 1;
        }
        let data = match &bytes[start.min(bytes.len())..] {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] | [b'\r', rest @ ..] => rest,
            _ => continue,
        };
        let zlib = inflated(flate2::read::ZlibDecoder::new(data), limit - total);
        let raw = if zlib == 0 {
            inflated(
                flate2::read::DeflateDecoder::new(data.get(2..).unwrap_or_default()),
                limit - total,
            )
        } else {
            0
        };
        total += zlib.max(raw);
        if total > limit {
            return false;
        }
    }
    true
}

/// Whether the value after a stream's `/Filter` key (`text`) is one filter the parser may
/// read.
fn filter_is_read(text: &[u8]) -> bool {
    let text = text.trim_ascii_start();
    let (names, in_array) = match text.strip_prefix(b"[") {
        Some(inside) => match inside.iter().position(|&b| b == b']') {
            Some(end) => (&inside[..end], true),
            None => return false,
        },
        None => (text, false),
    };
    let names = names.trim_ascii_start();
    let Some(name) = names.strip_prefix(b"/") else {
        return false;
    };
    let len = name
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b"/[]<>()%".contains(&b))
        .unwrap_or(name.len());
    let (name, after) = name.split_at(len);
    // An array holds this one name and nothing else.
    if in_array && !after.trim_ascii().is_empty() {
        return false;
    }
    READ_FILTERS.contains(&decoded_name(name).as_slice())
}

/// How many bytes `reader` inflates to, counting up to one past `limit`.
fn inflated(mut reader: impl std::io::Read, limit: u64) -> u64 {
    let mut buffer = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => return total,
            Ok(n) => {
                total += n as u64;
                if total > limit {
                    return total;
                }
            }
        }
    }
}

/// The text of a PDF, or none (not a PDF, no text, malformed, or streams that would inflate
/// past [`MAX_PDF_INFLATED_BYTES`]). The parser runs behind a panic guard: a crafted file may
/// make it fail, never take the request down.
pub fn pdf_text(bytes: &[u8]) -> String {
    if !bytes.starts_with(b"%PDF-") || !inflates_within(bytes, MAX_PDF_INFLATED_BYTES) {
        return String::new();
    }
    let text = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // A control character (pdf-extract gives U+0000 for some encodings' unassigned codes) is
    // no text to search, and PostgreSQL cannot store a NUL.
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
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
    let text_chars = blocking(move || {
        let text = if r.media_type == "application/pdf" {
            pdf_text(&bytes)
        } else {
            String::new()
        };
        let chars = text.chars().count() as u64;
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
        Ok(chars)
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
