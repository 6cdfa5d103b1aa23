//! Encrypted backup files.
//!
//! ```text
//! header (61 bytes)
//!   "THUDOBK1"  cipher u8  iterations u32  salt [16]  key check [32]
//! chunks, until one marked final
//!   final u8  length u32  nonce [12]  sealed entries (length bytes, tag included)
//! entry
//!   u16 collection length, collection, u32 payload length, payload (the record codec)
//! ```
//!
//! The backup key is PBKDF2 of the backup passphrase; the key check (an HMAC of the first 29
//! header bytes) tells a wrong passphrase from a damaged file. Each chunk's additional data is the
//! header, the chunk number and the final flag, so chunks cannot be reordered, dropped or cut off
//! without detection.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use crate::crypto::{self, AeadKey, Cipher, MacKey, NONCE_LEN, TAG_LEN};

use super::codec::{self, Record};
use super::error::{Result, VaultError};
use super::keys::{check_iterations, MIN_KDF_ITERATIONS};
use super::{MAX_BODY_LEN, MAX_ID_LEN, MAX_INDEX_ENTRIES, MAX_INDEX_VALUE_LEN, MAX_NAME_LEN};

const MAGIC: &[u8; 8] = b"THUDOBK1";
const PREFIX_LEN: usize = 8 + 1 + 4 + 16;
const HEADER_LEN: usize = PREFIX_LEN + crypto::MAC_LEN;
const CHUNK_TARGET: usize = 256 * 1024;
/// The largest entry the vault can hold, as a chunk carries it: its collection's name, then
/// the longest id, every index entry at its longest and the largest body. A chunk holds up to
/// `CHUNK_TARGET` of entries or one entry alone, so this (and its tag) bounds every chunk.
const MAX_ENTRY: usize = 2
    + MAX_NAME_LEN
    + 4
    + (4 + MAX_ID_LEN)
    + 2
    + MAX_INDEX_ENTRIES * (2 + MAX_NAME_LEN + 4 + MAX_INDEX_VALUE_LEN)
    + MAX_BODY_LEN;
const MAX_CHUNK: usize = MAX_ENTRY + TAG_LEN;
/// A file may ask for more iterations than we write (600,000 by default), but not enough to
/// hang the app: a hostile file asking for 10 million kept a phone busy for 10 s or more.
pub(crate) const MAX_ITERATIONS: u32 = 2_000_000;

struct BackupKeys {
    aead: AeadKey,
    check: MacKey,
}

fn backup_keys(passphrase: &str, salt: &[u8], iterations: NonZeroU32) -> BackupKeys {
    let kek = passphrase_key(passphrase, salt, iterations);
    BackupKeys {
        aead: AeadKey::new(
            Cipher::Aes256Gcm,
            &crypto::derive_key(&kek, b"thudo/backup/v1"),
        ),
        check: MacKey::new(&crypto::derive_key(&kek, b"thudo/backup-check/v1")),
    }
}

#[cfg(not(fuzzing))]
fn passphrase_key(passphrase: &str, salt: &[u8], iterations: NonZeroU32) -> crypto::SecretKey {
    crypto::derive_from_passphrase(passphrase.as_bytes(), salt, iterations)
}

/// Fuzzing builds remember the last derivation, so that runs on one header spend their time in
/// the parser and the authenticated chunks rather than in PBKDF2.
#[cfg(fuzzing)]
fn passphrase_key(passphrase: &str, salt: &[u8], iterations: NonZeroU32) -> crypto::SecretKey {
    use std::sync::Mutex;
    type Memo = Option<((String, Vec<u8>, NonZeroU32), crypto::SecretKey)>;
    static LAST: Mutex<Memo> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let wanted = (passphrase.to_owned(), salt.to_vec(), iterations);
    if let Some((inputs, key)) = last.as_ref() {
        if *inputs == wanted {
            return key.clone();
        }
    }
    let key = crypto::derive_from_passphrase(passphrase.as_bytes(), salt, iterations);
    *last = Some((wanted, key.clone()));
    key
}

fn chunk_aad(prefix: &[u8], index: u64, last: bool) -> Vec<u8> {
    let mut aad = prefix.to_vec();
    aad.extend_from_slice(&index.to_be_bytes());
    aad.push(last as u8);
    aad
}

fn invalid(reason: impl Into<String>) -> VaultError {
    VaultError::InvalidBackup {
        reason: reason.into(),
    }
}

/// Writes a backup to a temporary file beside the target, renamed into place by `finish`.
pub(crate) struct Writer {
    out: Option<BufWriter<File>>,
    temp: PathBuf,
    target: PathBuf,
    keys: BackupKeys,
    prefix: Vec<u8>,
    chunk: Vec<u8>,
    chunk_index: u64,
    count: u64,
}

impl Writer {
    pub fn create(path: &Path, passphrase: &str, iterations: u32) -> Result<Writer> {
        if passphrase.is_empty() {
            return Err(VaultError::invalid("the backup passphrase is empty"));
        }
        let mut salt = [0u8; 16];
        crypto::fill_random(&mut salt).map_err(|_| VaultError::Io {
            reason: "system random source failed".into(),
        })?;
        Self::create_with_salt(path, passphrase, iterations, salt)
    }

    fn create_with_salt(
        path: &Path,
        passphrase: &str,
        iterations: u32,
        salt: [u8; 16],
    ) -> Result<Writer> {
        // At most what every import accepts: a vault set above it still writes backups that
        // restore.
        let iterations = iterations.min(MAX_ITERATIONS);
        let rounds = check_iterations(iterations)?;
        let keys = backup_keys(passphrase, &salt, rounds);
        let mut prefix = MAGIC.to_vec();
        prefix.push(Cipher::Aes256Gcm.id());
        prefix.extend_from_slice(&iterations.to_be_bytes());
        prefix.extend_from_slice(&salt);
        remove_stale_partials(path);
        // A temporary file of its own: two exports to one path at once never write into each
        // other's file (the last to finish wins, whole).
        let mut temp = path.as_os_str().to_owned();
        temp.push(".partial-");
        temp.push(crate::hex::random(8).map_err(|_| VaultError::Io {
            reason: "system random source failed".into(),
        })?);
        let temp = PathBuf::from(temp);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let mut out = BufWriter::new(file);
        out.write_all(&prefix)?;
        out.write_all(&keys.check.tag(&[&prefix]))?;
        Ok(Writer {
            out: Some(out),
            temp,
            target: path.to_path_buf(),
            keys,
            prefix,
            chunk: Vec::with_capacity(CHUNK_TARGET + 1024),
            chunk_index: 0,
            count: 0,
        })
    }

    pub fn add(&mut self, collection: &str, record: &Record) -> Result<()> {
        let payload = codec::encode_payload(&record.id, &record.index, &record.body);
        if !self.chunk.is_empty() && self.chunk.len() + payload.len() > CHUNK_TARGET {
            self.flush_chunk(false)?;
        }
        self.chunk
            .extend_from_slice(&(collection.len() as u16).to_be_bytes());
        self.chunk.extend_from_slice(collection.as_bytes());
        self.chunk
            .extend_from_slice(&(payload.len() as u32).to_be_bytes());
        self.chunk.extend_from_slice(&payload);
        self.count += 1;
        Ok(())
    }

    fn flush_chunk(&mut self, last: bool) -> Result<()> {
        // Never a backup its import would refuse (a record beyond the vault's limits, which
        // `put` does not let in).
        if self.chunk.len() + TAG_LEN > MAX_CHUNK {
            return Err(VaultError::invalid(format!(
                "a record of {} bytes is over a backup's limit",
                self.chunk.len()
            )));
        }
        let mut buf = std::mem::take(&mut self.chunk);
        let aad = chunk_aad(&self.prefix, self.chunk_index, last);
        let nonce = self
            .keys
            .aead
            .seal(&aad, &mut buf)
            .map_err(|_| VaultError::Io {
                reason: "system random source failed".into(),
            })?;
        let out = self.out.as_mut().ok_or(VaultError::Closed)?;
        out.write_all(&[last as u8])?;
        out.write_all(&(buf.len() as u32).to_be_bytes())?;
        out.write_all(&nonce)?;
        out.write_all(&buf)?;
        self.chunk_index += 1;
        Ok(())
    }

    /// Seals the last chunk, syncs the file, moves it into place and syncs the folder (so the
    /// rename survives a power cut); on failure the temporary file is removed.
    pub fn finish(mut self) -> Result<u64> {
        self.flush_chunk(true)?;
        let out = self.out.take().ok_or(VaultError::Closed)?;
        let placed = (|| -> Result<()> {
            let file = out.into_inner().map_err(|e| VaultError::Io {
                reason: e.to_string(),
            })?;
            file.sync_all()?;
            std::fs::rename(&self.temp, &self.target)?;
            // Best effort: not every platform opens a folder as a file.
            if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
                if let Ok(dir) = File::open(dir) {
                    let _ = dir.sync_all();
                }
            }
            Ok(())
        })();
        if placed.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        placed.map(|()| self.count)
    }
}

/// Fuzzing builds only: writes a backup whose chunks hold `chunks` as they are (the last one
/// marked final), authenticated under `passphrase` with a fixed salt and the cheapest key
/// derivation, so a fuzzer reaches the entry parser behind the authentication.
#[cfg(fuzzing)]
pub fn write_raw(path: &Path, passphrase: &str, chunks: &[&[u8]]) -> Result<()> {
    let mut writer = Writer::create_with_salt(path, passphrase, MIN_KDF_ITERATIONS, [7; 16])?;
    for (i, chunk) in chunks.iter().enumerate() {
        writer.chunk = chunk.to_vec();
        writer.flush_chunk(i + 1 == chunks.len())?;
    }
    let out = writer.out.take().ok_or(VaultError::Closed)?;
    out.into_inner().map_err(|e| VaultError::Io {
        reason: e.to_string(),
    })?;
    std::fs::rename(&writer.temp, &writer.target)?;
    Ok(())
}

/// Removes the temporary files an export to `target` left when its process died (an hour
/// old or more: no export still running takes that long to write).
fn remove_stale_partials(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.to_owned();
    prefix.push(".partial");
    let prefix = prefix.to_string_lossy().into_owned();
    // Only names an export gives: `.partial` (older versions) or `.partial-` and 16 hex digits.
    let ours = |file: &str| {
        file.strip_prefix(&prefix).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix('-').is_some_and(|h| {
                    h.len() == 16
                        && h.bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
        })
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age >= std::time::Duration::from_secs(3_600));
        if stale && ours(&entry.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Not finished: remove the partial file.
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Reads a backup entry by entry, authenticating each chunk before using it.
pub(crate) struct Reader {
    input: BufReader<File>,
    keys: BackupKeys,
    prefix: Vec<u8>,
    chunk: Vec<u8>,
    pos: usize,
    chunk_index: u64,
    finished: bool,
}

impl Reader {
    pub fn open(path: &Path, passphrase: &str) -> Result<Reader> {
        let mut input = BufReader::new(File::open(path)?);
        let mut header = [0u8; HEADER_LEN];
        read_exact(
            &mut input,
            &mut header,
            "the file is too short to be a thudo backup",
        )?;
        if &header[..8] != MAGIC {
            return Err(invalid("not a thudo backup file"));
        }
        if Cipher::from_id(header[8]) != Some(Cipher::Aes256Gcm) {
            return Err(invalid("unsupported backup cipher"));
        }
        let iterations = u32::from_be_bytes([header[9], header[10], header[11], header[12]]);
        if !(MIN_KDF_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(invalid("key-derivation settings out of range"));
        }
        let rounds = NonZeroU32::new(iterations).ok_or_else(|| invalid("zero iterations"))?;
        let (prefix, check) = header.split_at(PREFIX_LEN);
        let keys = backup_keys(passphrase, &prefix[13..29], rounds);
        if !keys.check.verify(&[prefix], check) {
            return Err(VaultError::WrongKey {
                reason: "the backup passphrase is wrong".into(),
            });
        }
        Ok(Reader {
            input,
            keys,
            prefix: prefix.to_vec(),
            chunk: Vec::new(),
            pos: 0,
            chunk_index: 0,
            finished: false,
        })
    }

    fn next_chunk(&mut self) -> Result<bool> {
        if self.finished {
            // Anything after the final chunk is not ours.
            let mut probe = [0u8; 1];
            return match self.input.read(&mut probe)? {
                0 => Ok(false),
                _ => Err(invalid("data after the final chunk")),
            };
        }
        let mut head = [0u8; 5 + NONCE_LEN];
        read_exact(&mut self.input, &mut head, "the backup is truncated")?;
        let last = match head[0] {
            0 => false,
            1 => true,
            _ => {
                return Err(invalid(format!(
                    "chunk {} has a bad flag",
                    self.chunk_index
                )))
            }
        };
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(TAG_LEN..=MAX_CHUNK).contains(&len) {
            return Err(invalid(format!(
                "chunk {} has a bad length",
                self.chunk_index
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[5..]);
        let mut buf = vec![0u8; len];
        read_exact(&mut self.input, &mut buf, "the backup is truncated")?;
        let aad = chunk_aad(&self.prefix, self.chunk_index, last);
        let plain_len = self
            .keys
            .aead
            .open(nonce, &aad, &mut buf)
            .map_err(|_| invalid(format!("chunk {} failed authentication", self.chunk_index)))?
            .len();
        buf.truncate(plain_len);
        self.chunk = buf;
        self.pos = 0;
        self.chunk_index += 1;
        self.finished = last;
        Ok(true)
    }

    /// The next (collection, record), or `None` after the final chunk.
    pub fn next_entry(&mut self) -> Result<Option<(String, Record)>> {
        while self.pos >= self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(None);
            }
        }
        let bad = || invalid("malformed entry");
        let rest = &self.chunk[self.pos..];
        let coll_len = u16::from_be_bytes(
            rest.get(..2)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let collection = rest.get(2..2 + coll_len).ok_or_else(bad)?;
        let collection = std::str::from_utf8(collection)
            .map_err(|_| bad())?
            .to_owned();
        let at = 2 + coll_len;
        let payload_len = u32::from_be_bytes(
            rest.get(at..at + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let end = (at + 4).checked_add(payload_len).ok_or_else(bad)?;
        let payload = rest.get(at + 4..end).ok_or_else(bad)?;
        let record = codec::decode_payload(&collection, payload).map_err(|_| bad())?;
        self.pos += end;
        Ok(Some((collection, record)))
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], message: &str) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => invalid(message),
        _ => e.into(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail by panicking

    use super::{Record, Writer};
    use crate::vault::{Unlock, Vault, VaultOptions, MIN_KDF_ITERATIONS, NOT_BACKED_UP};

    /// A backup is its writer's word: one crafted to hold a device secret (which no export
    /// writes) restores everything else, never the secret.
    #[test]
    fn a_crafted_backup_restores_no_device_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("crafted.backup");
        let mut writer = Writer::create(&file, "1234", MIN_KDF_ITERATIONS).unwrap();
        let record = |id: &str, body: &[u8]| Record {
            id: id.into(),
            index: Vec::new(),
            body: body.to_vec(),
        };
        for (collection, id) in NOT_BACKED_UP {
            writer
                .add(collection, &record(id, b"the writer's key"))
                .unwrap();
        }
        writer.add("notes", &record("n1", b"a note")).unwrap();
        writer.finish().unwrap();

        let options = VaultOptions {
            kdf_iterations: MIN_KDF_ITERATIONS,
            ..Default::default()
        };
        let v = Vault::open(dir.path().join("v"), Unlock::passphrase("p"), &options).unwrap();
        assert_eq!(v.import_backup(&file, "1234").unwrap(), 1, "the note alone");
        for (collection, id) in NOT_BACKED_UP {
            assert!(v.find(collection, id).unwrap().is_none());
        }
        assert_eq!(v.get("notes", "n1").unwrap().body, b"a note");
    }
}
