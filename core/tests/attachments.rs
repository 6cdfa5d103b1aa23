//! Files attached to records, in the vault: kept in chunks, read back checked, refused when
//! too large or altered; a download kept chunk by chunk resumes where it stopped, refuses a
//! chunk out of order or of the wrong size, and drops a whole that fails its hash.

#![allow(clippy::unwrap_used)] // tests fail by panicking

mod common;

use thudo_core::attachments::{
    file_id, AttachmentError, AttachmentRef, Attachments, CHUNK_BYTES, MAX_FILE_BYTES,
};
use thudo_core::vault::{Unlock, Vault};

fn vault(dir: &tempfile::TempDir) -> Vault {
    Vault::open(dir.path(), Unlock::passphrase("p"), &common::fast()).unwrap()
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn a_scan_is_kept_encrypted_in_chunks_and_read_back_checked() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(&dir);
    let files = Attachments::new(&v);
    let scan = bytes(CHUNK_BYTES * 2 + 17, 3);
    let r = files
        .add(
            "handbook.procedure/t1",
            "giay-xac-nhan.jpg",
            "image/jpeg",
            &scan,
        )
        .unwrap();
    assert_eq!((r.id.clone(), r.size), (file_id(&scan), scan.len() as i64));
    assert_eq!(files.read(&r.id).unwrap(), scan);
    // The same file for another record is kept once.
    files
        .add(
            "health.records/DocumentReference/scan-1",
            "scan.jpg",
            "image/jpeg",
            &scan,
        )
        .unwrap();
    assert_eq!(files.used_bytes().unwrap(), scan.len() as u64);
    assert_eq!(files.for_owner("handbook.procedure/t1").unwrap().len(), 1);
    // Nothing of it is in the vault's file in clear.
    v.close();
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            raw.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(!raw.windows(64).any(|w| w == &scan[1000..1064]));
    let v = vault(&dir);
    let files = Attachments::new(&v);
    // Detached by one owner, it stays for the other; by both, it is gone.
    assert!(files.detach("handbook.procedure/t1", &r.id).unwrap());
    assert!(!files.detach("handbook.procedure/t1", &r.id).unwrap());
    assert_eq!(files.read(&r.id).unwrap(), scan);
    assert!(files
        .detach("health.records/DocumentReference/scan-1", &r.id)
        .unwrap());
    assert!(matches!(
        files.read(&r.id),
        Err(AttachmentError::NotFound { .. })
    ));
    assert_eq!(files.used_bytes().unwrap(), 0);
}

#[test]
fn oversized_and_malformed_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(&dir);
    let files = Attachments::new(&v);
    let big = vec![0u8; MAX_FILE_BYTES as usize + 1];
    assert!(matches!(
        files.add("handbook.procedure/t1", "big.pdf", "application/pdf", &big),
        Err(AttachmentError::TooLarge { .. })
    ));
    for (owner, name, media) in [
        ("no-slash", "a.pdf", "application/pdf"),
        ("handbook.procedure/t1", "", "application/pdf"),
        ("handbook.procedure/t1", "a\nb.pdf", "application/pdf"),
        ("handbook.procedure/t1", "a.pdf", "pdf"),
    ] {
        assert!(
            matches!(
                files.add(owner, name, media, b"x"),
                Err(AttachmentError::Invalid { .. })
            ),
            "{owner} {name} {media}"
        );
    }
    let forged = AttachmentRef {
        id: "A".repeat(64),
        name: "a.pdf".into(),
        media_type: "application/pdf".into(),
        size: 3,
    };
    assert!(matches!(
        files.note_published("handbook.meeting/m", &forged),
        Err(AttachmentError::Invalid { .. })
    ));
    let negative = AttachmentRef {
        id: file_id(b"abc"),
        size: -1,
        ..forged
    };
    assert!(files
        .note_published("handbook.meeting/m", &negative)
        .is_err());
}

#[test]
fn a_download_resumes_refuses_bad_chunks_and_drops_a_whole_that_fails_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(&dir);
    let file = bytes(CHUNK_BYTES * 3 + 5, 9);
    let reference = AttachmentRef {
        id: file_id(&file),
        name: "bien-ban.pdf".into(),
        media_type: "application/pdf".into(),
        size: file.len() as i64,
    };
    let chunk = |i: usize| &file[i * CHUNK_BYTES..((i + 1) * CHUNK_BYTES).min(file.len())];
    {
        let files = Attachments::new(&v);
        files
            .note_published("handbook.meeting/m-1", &reference)
            .unwrap();
        assert!(matches!(
            files.read(&reference.id),
            Err(AttachmentError::Incomplete { .. })
        ));
        files.store_chunk(&reference.id, 0, chunk(0)).unwrap();
        // Out of order, short, oversized: refused, nothing kept.
        assert!(matches!(
            files.store_chunk(&reference.id, 2, chunk(2)),
            Err(AttachmentError::Invalid { .. })
        ));
        assert!(matches!(
            files.store_chunk(&reference.id, 1, &chunk(1)[..100]),
            Err(AttachmentError::Invalid { .. })
        ));
        let mut long = chunk(1).to_vec();
        long.push(0);
        assert!(matches!(
            files.store_chunk(&reference.id, 1, &long),
            Err(AttachmentError::Invalid { .. })
        ));
        files.store_chunk(&reference.id, 1, chunk(1)).unwrap();
    }
    // The process dies; the next run goes on from chunk 2.
    v.close();
    let v = vault(&dir);
    let files = Attachments::new(&v);
    let state = files.state(&reference.id).unwrap().unwrap();
    assert_eq!(
        (state.stored_bytes, state.complete),
        (2 * CHUNK_BYTES as u64, false)
    );
    files.store_chunk(&reference.id, 2, chunk(2)).unwrap();
    // The last chunk altered: the whole fails its hash, every chunk is dropped.
    let mut altered = chunk(3).to_vec();
    altered[0] ^= 1;
    assert!(matches!(
        files.store_chunk(&reference.id, 3, &altered),
        Err(AttachmentError::Tampered { .. })
    ));
    let state = files.state(&reference.id).unwrap().unwrap();
    assert_eq!((state.stored_bytes, state.complete), (0, false));
    for i in 0..4 {
        files
            .store_chunk(&reference.id, i as u32, chunk(i))
            .unwrap();
    }
    assert_eq!(files.read(&reference.id).unwrap(), file);
    // Delivered twice: a complete file takes no more chunks and stays as it is.
    files.store_chunk(&reference.id, 0, b"anything").unwrap();
    assert_eq!(files.read(&reference.id).unwrap(), file);
}

/// A chunk lost from under a file (a damaged disk, a record deleted behind the library's back)
/// never leaves it stuck: the file is dropped, reported `Tampered`, and fetched again from its
/// first chunk, while downloading and once complete; a file detached meanwhile takes no chunk.
#[test]
fn a_file_missing_a_chunk_is_dropped_to_be_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let v = vault(&dir);
    let files = Attachments::new(&v);
    let file = bytes(CHUNK_BYTES * 3 + 5, 4);
    let reference = AttachmentRef {
        id: file_id(&file),
        name: "nghi-quyet.pdf".into(),
        media_type: "application/pdf".into(),
        size: file.len() as i64,
    };
    let chunk = |i: usize| &file[i * CHUNK_BYTES..((i + 1) * CHUNK_BYTES).min(file.len())];
    let chunk_record = |i: u32| format!("{}.{i:05}", reference.id);
    files
        .note_published("handbook.documents/nq57", &reference)
        .unwrap();
    for i in 0..3 {
        files
            .store_chunk(&reference.id, i, chunk(i as usize))
            .unwrap();
    }
    assert!(v.delete("attachments.chunk", &chunk_record(1)).unwrap());
    assert!(matches!(
        files.store_chunk(&reference.id, 3, chunk(3)),
        Err(AttachmentError::Tampered { .. })
    ));
    let state = files.state(&reference.id).unwrap().unwrap();
    assert_eq!((state.stored_bytes, state.complete), (0, false));
    for i in 0..4 {
        files
            .store_chunk(&reference.id, i, chunk(i as usize))
            .unwrap();
    }
    assert_eq!(files.read(&reference.id).unwrap(), file);
    // Lost once complete: reading it drops it too.
    assert!(v.delete("attachments.chunk", &chunk_record(2)).unwrap());
    assert!(matches!(
        files.read(&reference.id),
        Err(AttachmentError::Tampered { .. })
    ));
    let state = files.state(&reference.id).unwrap().unwrap();
    assert_eq!((state.stored_bytes, state.complete), (0, false));
    assert_eq!(files.used_bytes().unwrap(), 0);
    // Its last owner lets go: a chunk arriving after (a cancelled fetch) brings nothing back.
    assert!(files
        .detach("handbook.documents/nq57", &reference.id)
        .unwrap());
    assert!(matches!(
        files.store_chunk(&reference.id, 0, chunk(0)),
        Err(AttachmentError::NotFound { .. })
    ));
    assert!(files.state(&reference.id).unwrap().is_none());
}
