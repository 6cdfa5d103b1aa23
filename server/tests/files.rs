//! Published files, against the real server (SQLite, and PostgreSQL with
//! `THUDO_TEST_POSTGRES`): a party organisation uploads a PDF for its cell, its text becomes
//! the library document's searchable body, members' phones fetch it lazily chunk by chunk; an
//! interrupted fetch resumes, an altered chunk is caught by the hash, another cell's member
//! gets nothing, an oversized or malformed upload is refused.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;

use base64::Engine as _;
use common::{cell_member, http_client, party, Local, Role};
use serde_json::{json, Value};
use thudo_core::attachments::{self, AttachmentError, AttachmentRef, Attachments, CHUNK_BYTES};
use thudo_core::handbook::library::Library;
use thudo_core::sync::client::BackendError;

const CELL: &str = "hn.ba-dinh.chi-bo-1";

/// A one-page PDF whose text is `text` (ASCII, Helvetica), with a correct cross-reference table.
fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    pdf_with(content.as_bytes(), "")
}

/// A one-page PDF whose page content is `content` as stored, its stream dictionary holding
/// `filter` too (`/Filter /FlateDecode`).
fn pdf_with(content: &[u8], filter: &str) -> Vec<u8> {
    pdf_full(content, filter, &[])
}

/// [`pdf_with`], with `extra` objects after the five of the page (numbered from 6).
fn pdf_full(content: &[u8], filter: &str, extra: &[&[u8]]) -> Vec<u8> {
    let mut stream = format!("<< /Length {} {filter} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(content);
    stream.extend_from_slice(b"\nendstream");
    let objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_vec(),
        stream,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
    ];
    let objects: Vec<Vec<u8>> = objects
        .into_iter()
        .chain(extra.iter().map(|o| o.to_vec()))
        .collect();
    pdf_of(&objects)
}

/// A PDF of `objects` (numbered from 1, the first the catalog), with a correct
/// cross-reference table.
fn pdf_of(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// Changes a stored chunk behind the server's back (what a corrupted disk or a tampering
/// proxy would show the phone).
fn alter_chunk(db: &str, id: &str, index: i64, data: &[u8]) {
    let hex = thudo_core::hex::encode(data);
    if db.starts_with("postgres") {
        let s = thudo_server::storage::PostgresStorage::connect(db, thudo_server::SCHEMA).unwrap();
        let sql = format!("UPDATE file_chunks SET data = decode('{hex}', 'hex') WHERE sha256 = '{id}' AND idx = {index}");
        s.write(|tx| tx.batch(&sql)).unwrap();
    } else {
        let s = thudo_server::storage::SqliteStorage::open(
            std::path::Path::new(db),
            thudo_server::SCHEMA,
        )
        .unwrap();
        let sql = format!(
            "UPDATE file_chunks SET data = X'{hex}' WHERE sha256 = '{id}' AND idx = {index}"
        );
        s.write(|tx| tx.batch(&sql)).unwrap();
    }
}

async fn upload(local: &Local, cell: &str, name: &str, media: &str, bytes: &[u8]) -> (u16, Value) {
    party(
        local,
        "POST",
        &format!("/v1/admin/cells/{cell}/files"),
        json!({"name": name, "media_type": media,
               "data": base64::engine::general_purpose::STANDARD.encode(bytes)}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_pdf_is_searched_by_its_text_and_fetched_lazily_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let phone = cell_member(&local, dir.path(), "001080001001", CELL).await;
    let outsider = cell_member(&local, dir.path(), "001080001002", "hn.ba-dinh.chi-bo-2").await;

    // The resolution's PDF: its text is extracted for search.
    let resolution =
        pdf("Nghi quyet ve dot pha phat trien khoa hoc cong nghe va chuyen doi so quoc gia");
    let (status, uploaded) =
        upload(&local, CELL, "57-NQ-TW.pdf", "application/pdf", &resolution).await;
    assert_eq!(status, 200, "{uploaded}");
    assert!(uploaded["text_chars"].as_u64().unwrap() > 40, "{uploaded}");
    let reference: AttachmentRef = serde_json::from_value(uploaded["reference"].clone()).unwrap();
    assert_eq!(reference.id, attachments::file_id(&resolution));
    // Meeting papers of several chunks (not a PDF: no text).
    let papers: Vec<u8> = (0..(2 * CHUNK_BYTES + 1234))
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let (status, uploaded) = upload(&local, CELL, "bien-ban.jpg", "image/jpeg", &papers).await;
    assert_eq!((status, uploaded["text_chars"].as_u64()), (200, Some(0)));
    let papers_ref: AttachmentRef = serde_json::from_value(uploaded["reference"].clone()).unwrap();

    // A record naming a file not uploaded to its cell, or with another size, is refused: the
    // cell's phones would fetch nothing.
    for (cell, size) in [
        ("hn.ba-dinh.chi-bo-2", reference.size),
        (CELL, reference.size + 1),
    ] {
        let mut named = reference.clone();
        named.size = size;
        let (status, answer) = party(
            &local,
            "POST",
            &format!("/v1/admin/cells/{cell}/handbook.documents"),
            json!({"items": [{"id": "nq57-x", "title": "Nghị quyết 57", "attachments": [named]}]}),
        )
        .await;
        assert_eq!(status, 400, "{cell} {size}: {answer}");
    }
    // Published with an empty body: the document's body is the PDF's text.
    let publish = || async {
        let (status, _) = party(
            &local,
            "POST",
            &format!("/v1/admin/cells/{CELL}/handbook.documents"),
            json!({"items": [{"id": "nq57", "number": "57-NQ/TW", "issuer": "Bộ Chính trị",
                "issued_on": "2024-12-22", "kind": "Nghị quyết", "title": "Nghị quyết 57",
                "body": "", "attachments": [reference]}]}),
        )
        .await;
        assert_eq!(status, 200);
    };
    let library = Arc::new(Library::open(&dir.path().join("library.db")).unwrap());
    let sync = || async {
        local
            .client
            .sync(
                phone.clone(),
                &common::collections_with(library.clone()),
                None,
            )
            .await
            .unwrap();
    };
    publish().await;
    sync().await;
    let hits = library.search("chuyen doi so quoc gia", 5).unwrap();
    assert_eq!(hits.first().map(|h| h.id.as_str()), Some("nq57"));
    let doc = library.get("nq57").unwrap().unwrap();
    assert_eq!(doc.attachments, vec![reference.clone()]);

    // Nothing is downloaded until the file is opened.
    let files = Attachments::new(&phone);
    assert!(files.state(&reference.id).unwrap().is_none());
    let state = attachments::fetch(
        &local.client,
        phone.clone(),
        "handbook.documents/nq57",
        &reference,
    )
    .await
    .unwrap();
    assert!(state.complete);
    assert_eq!(files.read(&reference.id).unwrap(), resolution);

    // Interrupted after the first chunk (kept), then resumed: chunk 0 is never asked again,
    // so even a server whose chunk 0 changed since gives the right file.
    files
        .note_published("handbook.meeting/m-1", &papers_ref)
        .unwrap();
    files
        .store_chunk(&papers_ref.id, 0, &papers[..CHUNK_BYTES])
        .unwrap();
    let alter = |index: i64, data: Vec<u8>| alter_chunk(&db, &papers_ref.id, index, &data);
    alter(0, vec![0u8; CHUNK_BYTES]);
    let done = attachments::fetch(
        &local.client,
        phone.clone(),
        "handbook.meeting/m-1",
        &papers_ref,
    )
    .await
    .unwrap();
    assert!(done.complete);
    assert_eq!(files.read(&papers_ref.id).unwrap(), papers);

    // Tampered in transit (a chunk altered): the whole fails its hash, is dropped and reported;
    // fetched again once the server is right, it completes.
    let cell_mate = cell_member(&local, dir.path(), "001080001003", CELL).await;
    let refused = attachments::fetch(
        &local.client,
        cell_mate.clone(),
        "handbook.meeting/m-1",
        &papers_ref,
    )
    .await;
    assert!(
        matches!(refused, Err(BackendError::Protocol { .. })),
        "{refused:?}"
    );
    let mate_files = Attachments::new(&cell_mate);
    let state = mate_files.state(&papers_ref.id).unwrap().unwrap();
    assert_eq!(
        (state.stored_bytes, state.complete),
        (0, false),
        "dropped, to fetch again"
    );
    assert!(matches!(
        mate_files.read(&papers_ref.id),
        Err(AttachmentError::Incomplete { .. })
    ));
    alter(0, papers[..CHUNK_BYTES].to_vec());
    attachments::fetch(
        &local.client,
        cell_mate.clone(),
        "handbook.meeting/m-1",
        &papers_ref,
    )
    .await
    .unwrap();
    assert_eq!(mate_files.read(&papers_ref.id).unwrap(), papers);
    // A chunk the server sends short (truncated) is refused and nothing of it kept.
    alter(2, papers[2 * CHUNK_BYTES..2 * CHUNK_BYTES + 10].to_vec());
    let third = cell_member(&local, dir.path(), "001080001004", CELL).await;
    let short = attachments::fetch(
        &local.client,
        third.clone(),
        "handbook.meeting/m-1",
        &papers_ref,
    )
    .await;
    assert!(
        matches!(short, Err(BackendError::Protocol { .. })),
        "{short:?}"
    );
    assert_eq!(
        Attachments::new(&third)
            .state(&papers_ref.id)
            .unwrap()
            .unwrap()
            .stored_bytes,
        2 * CHUNK_BYTES as u64
    );

    // Another cell's member gets nothing (the same answer as for no such file).
    let denied = attachments::fetch(
        &local.client,
        outsider.clone(),
        "handbook.documents/nq57",
        &reference,
    )
    .await;
    assert!(
        matches!(&denied, Err(BackendError::Refused { status: 404, .. })),
        "{denied:?}"
    );

    // The document withdrawn: at the next sync the phone drops it and its file, and keeps the
    // meeting's.
    let (status, answer) = party(
        &local,
        "DELETE",
        &format!("/v1/admin/cells/{CELL}/handbook.documents/nq57"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for _ in 0..2 {
        sync().await;
    }
    assert!(library.get("nq57").unwrap().is_none());
    assert!(files.state(&reference.id).unwrap().is_none());
    assert!(files
        .for_owner("handbook.documents/nq57")
        .unwrap()
        .is_empty());
    assert_eq!(files.read(&papers_ref.id).unwrap(), papers);
    // Published again and fetched; then withdrawn and published once more before the phone
    // syncs: its page holds the delete then the put, and the document keeps its file.
    publish().await;
    sync().await;
    attachments::fetch(
        &local.client,
        phone.clone(),
        "handbook.documents/nq57",
        &reference,
    )
    .await
    .unwrap();
    let (status, _) = party(
        &local,
        "DELETE",
        &format!("/v1/admin/cells/{CELL}/handbook.documents/nq57"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    publish().await;
    sync().await;
    assert!(library.get("nq57").unwrap().is_some());
    assert_eq!(files.read(&reference.id).unwrap(), resolution);

    // A document naming a malformed file is refused at publishing, not skipped by phones.
    let (status, _) = party(
        &local,
        "POST",
        &format!("/v1/admin/cells/{CELL}/handbook.documents"),
        json!({"items": [{"id": "bad", "number": "1", "issuer": "x", "issued_on": "2026-01-01",
            "kind": "x", "title": "x", "body": "x",
            "attachments": [{"id": "not-a-hash", "name": "a.pdf", "media_type": "application/pdf", "size": 1}]}]}),
    )
    .await;
    assert_eq!(status, 400);

    // Uploads: too large, not base64, a bad media type, another organisation's cell.
    let big = vec![0u8; 10 * 1024 * 1024 + 1];
    let (status, _) = upload(&local, CELL, "big.bin", "application/octet-stream", &big).await;
    assert_eq!(status, 413);
    let (status, _) = party(
        &local,
        "POST",
        &format!("/v1/admin/cells/{CELL}/files"),
        json!({"name": "x.pdf", "media_type": "application/pdf", "data": "%%%"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = upload(&local, CELL, "x", "pdf", b"abc").await;
    assert_eq!(status, 400);
    // A malformed PDF is kept, with no text (the parser's failure is contained).
    let (status, answer) = upload(
        &local,
        CELL,
        "broken.pdf",
        "application/pdf",
        b"%PDF-1.4 garbage",
    )
    .await;
    assert_eq!((status, answer["text_chars"].as_u64()), (200, Some(0)));
    let stranger = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let r = http_client()
        .post(format!("{}/v1/admin/cells/{CELL}/files", local.url))
        .bearer_auth(stranger)
        .header("content-type", "application/json")
        .body(json!({"name": "a.pdf", "media_type": "application/pdf", "data": ""}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

/// A publish to a cell is bounded as it is filled: at most 1,000 records, and at most 16 MiB
/// once its documents hold their PDFs' text (a small request naming a large PDF many times
/// would otherwise make every device of the cell pull gigabytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_cell_is_bounded_once_filled_with_its_pdfs_text() {
    let dir = tempfile::tempdir().unwrap();
    let local = common::start_local(dir.path()).await;
    let words = "van kien dai hoi dang ".repeat(9_000); // about 200 KB of text
    let (status, uploaded) = upload(&local, CELL, "big.pdf", "application/pdf", &pdf(&words)).await;
    assert_eq!(status, 200, "{uploaded}");
    assert!(
        uploaded["text_chars"].as_u64().unwrap() > 150_000,
        "{uploaded}"
    );
    let reference = uploaded["reference"].clone();
    let document = |i: usize| {
        json!({"id": format!("d{i}"), "number": format!("{i}-NQ/TW"), "issuer": "BCH",
            "issued_on": "2024-12-22", "kind": "Nghị quyết", "title": format!("Văn kiện {i}"),
            "body": "", "attachments": [reference]})
    };
    let path = format!("/v1/admin/cells/{CELL}/handbook.documents");
    // Ten such documents are about 2 MB: published.
    let (status, body) = party(
        &local,
        "POST",
        &path,
        json!({"items": (0..10).map(document).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A hundred are about 20 MB once filled, from a request of some 40 KB: refused whole.
    let (status, body) = party(
        &local,
        "POST",
        &path,
        json!({"items": (0..100).map(document).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );
    let tiny = |i: usize| json!({"id": format!("n{i}"), "title": "x"});
    let (status, body) = party(
        &local,
        "POST",
        &path,
        json!({"items": (0..1_001).map(tiny).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );
}

/// The same PDF uploaded first with no text read (sent as `application/octet-stream`, as a
/// reading that timed out leaves it), then again as a PDF: the second reading's text is kept,
/// and a third upload with no text takes nothing away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_uploaded_again_keeps_the_text_read_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let local = common::start_local(dir.path()).await;
    let bytes = pdf("Chi thi ve tang cuong cong tac phat trien dang vien");
    let id = attachments::file_id(&bytes);
    let text = || {
        local
            .storage
            .file_text(&id, &format!("cell:{CELL}"))
            .unwrap()
            .unwrap()
    };
    let (status, first) = upload(&local, CELL, "ct.pdf", "application/octet-stream", &bytes).await;
    assert_eq!(
        (status, first["text_chars"].as_u64()),
        (200, Some(0)),
        "{first}"
    );
    assert_eq!(text(), "");
    let (status, second) = upload(&local, CELL, "ct.pdf", "application/pdf", &bytes).await;
    assert_eq!(status, 200, "{second}");
    assert!(second["text_chars"].as_u64().unwrap() > 30, "{second}");
    assert!(text().contains("phat trien dang vien"), "{}", text());
    let (status, _) = upload(&local, CELL, "ct.pdf", "application/octet-stream", &bytes).await;
    assert_eq!(status, 200);
    assert!(text().contains("phat trien dang vien"));
}

/// A PDF whose streams would inflate past what the server reads (a deflate bomb: a few MB
/// asking for gigabytes, which would abort the server) keeps no text, and neither does one
/// using a filter that expands without bound; a deflated PDF of ordinary size is read.
#[test]
fn a_pdf_that_would_inflate_past_the_limit_is_not_read() {
    use std::io::Write;
    use thudo_server::files::{pdf_text, MAX_PDF_INFLATED_BYTES};
    let deflated = |content: &[u8]| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(content).unwrap();
        z.finish().unwrap()
    };
    let small = deflated(b"BT /F1 12 Tf 72 720 Td (Nghi quyet so 57) Tj ET");
    let read = pdf_text(&pdf_with(&small, "/Filter /FlateDecode"));
    assert!(read.contains("Nghi quyet so 57"), "{read:?}");
    // Text drawn again and again, past the limit: every page operator is text, so the parser
    // would read it all.
    let line = b"BT /F1 12 Tf 72 720 Td (A) Tj ET\n";
    let times = MAX_PDF_INFLATED_BYTES as usize / line.len() + 1;
    let bomb = deflated(&line.repeat(times));
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    assert_eq!(pdf_text(&pdf_with(&bomb, "/Filter /FlateDecode")), "");
    // Under the limit, the same is read (the limit, not the operators, stops the bomb).
    let under = deflated(&line.repeat(1_000));
    assert!(pdf_text(&pdf_with(&under, "/Filter /FlateDecode")).len() > 500);
    let lzw = pdf_with(b"\x80\x0b\x60\x50", "/Filter /LZWDecode");
    assert_eq!(pdf_text(&lzw), "");
    // One filter in an array is read; what could hide an expansion from the count is not: a
    // chain, LZW behind # escapes, a filter held elsewhere, an encrypted file.
    assert!(pdf_text(&pdf_with(&small, "/Filter [/FlateDecode]")).contains("Nghi quyet"));
    for filter in [
        "/Filter [/FlateDecode /FlateDecode]",
        "/Filter [/ASCII85Decode /FlateDecode]",
        "/Filter /LZW#44ecode",
        "/Filter 7 0 R",
        "/Filter /FlateDecode /Encrypt 9 0 R",
    ] {
        assert_eq!(pdf_text(&pdf_with(&small, filter)), "", "{filter}");
    }
    // A bomb the parser would still find: raw deflate after two bytes (its fallback), or a
    // `stream` keyword ended by spaces and a lone CR.
    let raw = {
        let mut z =
            flate2::write::DeflateEncoder::new(vec![0x78, 0x00], flate2::Compression::best());
        z.write_all(&line.repeat(times)).unwrap();
        z.finish().unwrap()
    };
    assert_eq!(pdf_text(&pdf_with(&raw, "/Filter /FlateDecode")), "");
    for ending in [&b"  \r"[..], b"\t\n", b" \t\r\n"] {
        let mut spaced = pdf_with(&bomb, "/Filter /FlateDecode");
        let at = spaced.windows(7).position(|w| w == b"stream\n").unwrap();
        spaced.splice(at + 6..at + 7, ending.iter().copied());
        assert_eq!(pdf_text(&spaced), "", "{ending:?}");
    }
    // A filter written with # escapes is the filter the parser reads (and counted as such).
    assert!(pdf_text(&pdf_with(&small, "/Filter /Fl#61teDecode")).contains("Nghi quyet"));
    assert_eq!(pdf_text(&pdf_with(&bomb, "/Filter /Fl#61teDecode")), "");
    // Keys written with # escapes are read as the parser reads them; predictor and
    // cross-reference widths that would make it allocate without bound are refused.
    for filter in [
        "/Filt#65r [/FlateDecode /FlateDecode]",
        "/Filter /FlateDecode /Encr#79pt 9 0 R",
        "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 3000000000 >>",
    ] {
        assert_eq!(pdf_text(&pdf_with(&small, filter)), "", "{filter}");
    }
    let xref = pdf_full(
        &small,
        "/Filter /FlateDecode",
        &[b"<< /Type /XRef /W [1099511627776 1 1] /Length 1 >>\nstream\n0\nendstream"],
    );
    assert_eq!(pdf_text(&xref), "");
    // What real documents hold is read: a signature's /Filter (no stream), a Unicode font's
    // glyph widths (/W), an escaped font name, one filter in an array.
    let real = pdf_full(
        &small,
        "/Filter [/FlateDecode]",
        &[
            b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached /ByteRange [0 10 20 30] /Contents <00> >>",
            b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Times#20New#20Roman /W [1 [500 600] 3 20 700] >>",
        ],
    );
    assert!(pdf_text(&real).contains("Nghi quyet so 57"), "{real:?}");
}

/// A PDF that makes the text parser recurse without end (a form that draws itself) would
/// overflow the stack and abort the process reading it: every request the server was serving.
/// The server reads PDFs in a child process, so the upload is stored without text and the
/// next PDF is read as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_that_crashes_the_parser_ends_only_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let content = b"/X1 Do";
    let drawing_itself = pdf_of(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /XObject << /X1 5 0 R >> >> >>".to_vec(),
        [format!("<< /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
        [format!("<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /X1 5 0 R >> >> /Length {} >>\nstream\n", content.len()).as_bytes(), content, b"\nendstream"].concat(),
    ]);
    // The parser itself crashed on it (not the checks before it refusing it).
    let reader = std::path::Path::new(env!("CARGO_BIN_EXE_thudo-server"));
    let crashed = thudo_server::files::pdf::text_in_child(reader, &drawing_itself).await;
    assert!(
        crashed.as_ref().is_err_and(|e| e.contains("signal")),
        "{crashed:?}"
    );
    let (status, body) = upload(&local, CELL, "loop.pdf", "application/pdf", &drawing_itself).await;
    assert_eq!(
        (status, body["text_chars"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let (status, body) = upload(
        &local,
        CELL,
        "nq58.pdf",
        "application/pdf",
        &pdf("Nghi quyet so 58"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["text_chars"].as_u64().unwrap() > 10, "{body}");
    // The crafted file is kept, to be fetched, only not searched.
    let id = attachments::file_id(&drawing_itself);
    assert_eq!(
        common::count(
            &db,
            &format!("SELECT COUNT(*) FROM file_chunks WHERE sha256 = '{id}'")
        ),
        1
    );
}

/// A file published by mistake (a list of members' phone numbers instead of the agenda) is
/// withdrawn from its cell: the cell's phones can no longer fetch it; another cell it was
/// published to keeps it until withdrawn there too, and then its bytes are erased. Only an
/// organisation governing the cell withdraws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_withdrawn_from_its_cells_is_no_longer_served_and_then_erased() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::database(dir.path());
    let local = common::start_on(dir.path(), &db).await;
    let other_cell = "hn.ba-dinh.chi-bo-2";
    let here = cell_member(&local, dir.path(), "001080001011", CELL).await;
    let there = cell_member(&local, dir.path(), "001080001012", other_cell).await;
    let bytes = b"the wrong file: members' phone numbers".to_vec();
    let mut id = String::new();
    for cell in [CELL, other_cell] {
        let (status, uploaded) = upload(&local, cell, "list.txt", "text/plain", &bytes).await;
        assert_eq!(status, 200, "{uploaded}");
        id = uploaded["reference"]["id"].as_str().unwrap().to_owned();
    }
    let fetch = |v: &thudo_core::vault::Vault| {
        let token = thudo_core::sync::client::BackendClient::registration(v)
            .unwrap()
            .unwrap()
            .token;
        let url = format!("{}/v1/files/{id}/chunks/0", local.url);
        async move {
            http_client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!((fetch(&here).await, fetch(&there).await), (200, 200));
    // A ward beside it governs neither cell.
    let stranger = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.hoan-kiem")
        .unwrap();
    let r = http_client()
        .delete(format!("{}/v1/admin/cells/{CELL}/files/{id}", local.url))
        .bearer_auth(stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // The ward governing the cell cannot withdraw what the city committee published there; it
    // withdraws its own, and the committee withdraws the ward's.
    let ward = local
        .idp
        .operator_token(Role::PartyOrganisation, "hn.ba-dinh")
        .unwrap();
    let as_ward = |method: &'static str, path: String, body: Value| {
        let (url, ward) = (local.url.clone(), ward.clone());
        async move {
            let r = http_client()
                .request(method.parse().unwrap(), format!("{url}{path}"))
                .bearer_auth(ward)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
            (status, body)
        }
    };
    let (status, refused) = as_ward(
        "DELETE",
        format!("/v1/admin/cells/{CELL}/files/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (403, Some("not_yours")),
        "{refused}"
    );
    let agenda = b"the ward's agenda".to_vec();
    let (status, uploaded) = as_ward(
        "POST",
        format!("/v1/admin/cells/{CELL}/files"),
        json!({"name": "agenda.txt", "media_type": "text/plain",
               "data": base64::engine::general_purpose::STANDARD.encode(&agenda)}),
    )
    .await;
    assert_eq!(status, 200, "{uploaded}");
    let agenda_id = uploaded["reference"]["id"].as_str().unwrap().to_owned();
    let agenda_path = format!("/v1/admin/cells/{CELL}/files/{agenda_id}");
    assert_eq!(
        as_ward("DELETE", agenda_path.clone(), Value::Null).await.0,
        200
    );
    assert_eq!(
        as_ward(
            "POST",
            format!("/v1/admin/cells/{CELL}/files"),
            json!({"name": "agenda.txt", "media_type": "text/plain",
                   "data": base64::engine::general_purpose::STANDARD.encode(&agenda)})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        party(&local, "DELETE", &agenda_path, Value::Null).await.0,
        200
    );
    let path = |cell: &str| format!("/v1/admin/cells/{cell}/files/{id}");
    let withdraw = |cell: &'static str| {
        let path = path(cell);
        let local = &local;
        async move { party(local, "DELETE", &path, Value::Null).await }
    };
    assert_eq!(withdraw(CELL).await.0, 200);
    assert_eq!((fetch(&here).await, fetch(&there).await), (404, 200));
    assert_eq!(withdraw(CELL).await.0, 404, "withdrawn already");
    assert_eq!(withdraw(other_cell).await.0, 200);
    assert_eq!(fetch(&there).await, 404);
    // Erased: its bytes and its row are gone; uploaded again it is whole again.
    let held = |table: &str| {
        common::count(
            &db,
            &format!("SELECT COUNT(*) FROM {table} WHERE sha256 = '{id}'"),
        )
    };
    assert_eq!((held("files"), held("file_chunks")), (0, 0));
    assert_eq!(
        upload(&local, CELL, "list.txt", "text/plain", &bytes)
            .await
            .0,
        200
    );
    assert_eq!(fetch(&here).await, 200);
}

/// The server's executable run as a PDF reader under `ulimit` settings (each of `limits` one
/// of the shell's `-v KiB`, `-t s`), its environment cleared, reading `pdf`: how it ended and
/// what it wrote.
fn read_under_ulimit(limits: &[&str], pdf: &[u8]) -> std::process::Output {
    let limits: Vec<String> = limits.iter().map(|l| format!("ulimit {l} && ")).collect();
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            &format!("{}exec \"$0\" --read-pdf-text", limits.concat()),
            env!("CARGO_BIN_EXE_thudo-server"),
        ])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(pdf).unwrap();
    child.wait_with_output().unwrap()
}

/// A service that already holds its processes to less (systemd's `LimitAS=`, a container's
/// ulimit) still gets its PDFs read: the reader lowers its limits, never raising one (which a
/// service without `CAP_SYS_RESOURCE`, as services run, may not do: it would fail).
#[test]
fn the_reader_keeps_a_lower_limit_it_was_given() {
    // 1.5 GiB of address space and 10 s of processor time, hard: below the reader's own.
    let out = read_under_ulimit(&["-v 1572864", "-t 10"], &pdf("Nghi quyet so 59"));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "Nghi quyet so 59");
}

/// A PDF as a report generator writes it (an embedded subset of a TrueType font with its
/// ToUnicode map, deflated pages) is read in the confined child with its Vietnamese accents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_pdf_is_read_with_its_accents_in_the_confined_reader() {
    let bytes = include_bytes!("data/nghi-quyet-57.pdf");
    let reader = std::path::Path::new(env!("CARGO_BIN_EXE_thudo-server"));
    let text = thudo_server::files::pdf::text_in_child(reader, bytes)
        .await
        .unwrap();
    let title = "Nghị quyết số 57-NQ/TW về đột phá phát triển khoa học, công nghệ";
    assert_eq!(
        text.matches(title).count(),
        80,
        "{}",
        text.chars().take(200).collect::<String>()
    );
    // As the server reads it in-process.
    assert_eq!(text, thudo_server::files::pdf_text(bytes));
}

/// A document locked against editing (encrypted, with an empty password to open it, as
/// official PDFs often are) is read by the confined reader, whose limits bear what the checks
/// cannot see in encrypted streams; the server's own process never reads one.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_locked_against_editing_is_read_by_the_confined_reader_only() {
    let bytes = include_bytes!("data/chi-thi-35-locked.pdf");
    let reader = std::path::Path::new(env!("CARGO_BIN_EXE_thudo-server"));
    let text = thudo_server::files::pdf::text_in_child(reader, bytes)
        .await
        .unwrap();
    let title = "Chỉ thị số 35-CT/TW về đại hội đảng bộ các cấp";
    assert_eq!(text.matches(title).count(), 10, "{text}");
    assert_eq!(thudo_server::files::pdf_text(bytes), "");
}

/// A bomb the checks cannot count (3 GiB of zeros deflated twice, 5 KB, behind a chain of
/// filters the confined reader accepts) ends its reader when the reader's memory runs out:
/// the allocation fails and the child aborts, with nothing written. (Run under a lower limit
/// than the reader's own, which it keeps, so the test ends in a second.)
#[cfg(target_os = "linux")]
#[test]
fn a_bomb_the_checks_cannot_count_ends_its_reader_at_its_memory_limit() {
    use std::os::unix::process::ExitStatusExt;
    let bomb = pdf_with(
        include_bytes!("data/three-gib-of-zeros.zz.zz"),
        "/Filter [/FlateDecode /FlateDecode]",
    );
    let out = read_under_ulimit(&["-v 393216"], &bomb);
    // Aborted (SIGABRT; a C library that aborts by a call outside the reader's allow-list
    // ends it by SIGSYS instead).
    assert!(
        matches!(out.status.signal(), Some(libc::SIGABRT | libc::SIGSYS)),
        "{:?}",
        out.status
    );
    assert!(out.stdout.is_empty());
}
