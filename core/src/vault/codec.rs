//! On-disk formats of one record: the encrypted envelope and the plaintext payload inside it.
//!
//! Envelope, version 1 (all integers big-endian):
//!
//! ```text
//! offset size
//!      0    1  envelope version = 1
//!      1    1  cipher id (1 = AES-256-GCM, 2 = ChaCha20-Poly1305)
//!      2    4  data-key generation
//!      6   12  random nonce
//!     18    n  ciphertext of the payload, then the 16-byte tag
//! ```
//!
//! The additional data is `"thudo/record/v1"`, the 6 header bytes, the collection name and the
//! record's id hash, each length-prefixed: a ciphertext moved to another record or collection, or
//! a changed header byte, fails authentication.
//!
//! Payload, version 1: `u32 id length, id, u16 index count, (u16 field length, field, u32 value
//! length, value) * count, body to the end`.

use crate::crypto::{AeadKey, Cipher, NONCE_LEN, TAG_LEN};

use super::error::{Result, VaultError};

pub(crate) const ENVELOPE_VERSION: u8 = 1;
const HEADER_LEN: usize = 6;
const MIN_ENVELOPE_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// A record in clear, as the vault hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's id, unique within its collection.
    pub id: String,
    /// Indexed fields and their values, for [`super::Vault::query`].
    pub index: Vec<(String, String)>,
    /// The record's content, opaque to the vault.
    pub body: Vec<u8>,
}

/// Room for the longest additional data: tag, header, a 64-byte collection name, a MAC.
const AAD_CAPACITY: usize = 15 + HEADER_LEN + 4 + 64 + 4 + 32;

/// Builds the additional data on the stack: this runs on every read and write.
fn record_aad(header: &[u8], collection: &str, id_hash: &[u8]) -> ([u8; AAD_CAPACITY], usize) {
    let mut aad = [0u8; AAD_CAPACITY];
    let mut len = 0;
    let parts: [&[u8]; 6] = [
        b"thudo/record/v1",
        header,
        &(collection.len() as u32).to_be_bytes(),
        collection.as_bytes(),
        &(id_hash.len() as u32).to_be_bytes(),
        id_hash,
    ];
    for part in parts {
        // Callers validate names (64 bytes at most) and pass 32-byte MACs; clamp all the same.
        let n = part.len().min(AAD_CAPACITY - len);
        aad[len..len + n].copy_from_slice(&part[..n]);
        len += n;
    }
    (aad, len)
}

/// Encrypts `payload` into a version-1 envelope bound to `collection` and `id_hash`.
pub(crate) fn seal(
    key: &AeadKey,
    generation: u32,
    collection: &str,
    id_hash: &[u8],
    mut payload: Vec<u8>,
) -> Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    header[0] = ENVELOPE_VERSION;
    header[1] = key.cipher().id();
    header[2..6].copy_from_slice(&generation.to_be_bytes());
    let (aad, aad_len) = record_aad(&header, collection, id_hash);
    let nonce = key
        .seal(&aad[..aad_len], &mut payload)
        .map_err(|_| VaultError::Io {
            reason: "system random source failed".into(),
        })?;
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Authenticates and decrypts an envelope; returns the payload bytes.
pub(crate) fn open(
    key: &AeadKey,
    generation: u32,
    collection: &str,
    id_hash: &[u8],
    mut envelope: Vec<u8>,
) -> Result<Vec<u8>> {
    if envelope.len() < MIN_ENVELOPE_LEN {
        return Err(VaultError::corrupt(collection, "envelope too short"));
    }
    let header: [u8; HEADER_LEN] = envelope[..HEADER_LEN].try_into().unwrap_or_default();
    let rest = &envelope[HEADER_LEN..];
    if header[0] != ENVELOPE_VERSION {
        return Err(VaultError::corrupt(
            collection,
            format!("unsupported envelope version {}", header[0]),
        ));
    }
    if Cipher::from_id(header[1]) != Some(key.cipher()) {
        return Err(VaultError::corrupt(
            collection,
            format!("unexpected cipher id {}", header[1]),
        ));
    }
    let stored_generation = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    if stored_generation != generation {
        return Err(VaultError::corrupt(
            collection,
            format!(
                "sealed under data-key generation {stored_generation}, vault is at {generation}"
            ),
        ));
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&rest[..NONCE_LEN]);
    let (aad, aad_len) = record_aad(&header, collection, id_hash);
    // Decrypt in place in the fetched buffer: no copy of the body.
    let start = HEADER_LEN + NONCE_LEN;
    let plain_len = key
        .open(nonce, &aad[..aad_len], &mut envelope[start..])
        .map_err(|_| VaultError::corrupt(collection, "authentication failed"))?
        .len();
    envelope.truncate(start + plain_len);
    envelope.drain(..start);
    Ok(envelope)
}

/// Serialises a record into payload version 1.
pub(crate) fn encode_payload(id: &str, index: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let index_len: usize = index.iter().map(|(f, v)| 6 + f.len() + v.len()).sum();
    let mut out = Vec::with_capacity(6 + id.len() + index_len + body.len() + TAG_LEN);
    out.extend_from_slice(&(id.len() as u32).to_be_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&(index.len() as u16).to_be_bytes());
    for (field, value) in index {
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Option<usize> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn string(&mut self, len: usize) -> Option<String> {
        self.take(len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    }
}

/// Parses payload version 1. Only authenticated bytes reach here, so a failure means a bug or a
/// payload from a future version, reported as a corrupt record.
pub(crate) fn decode_payload(collection: &str, payload: &[u8]) -> Result<Record> {
    decode_payload_owned(collection, payload.to_vec())
}

/// [`decode_payload`] reusing the payload's buffer for the body.
pub(crate) fn decode_payload_owned(collection: &str, mut payload: Vec<u8>) -> Result<Record> {
    let bad = || VaultError::corrupt(collection, "malformed payload");
    let mut r = Reader { buf: &payload };
    let id_len = r.u32().ok_or_else(bad)?;
    let id = r.string(id_len).ok_or_else(bad)?;
    let count = r.u16().ok_or_else(bad)?;
    let mut index = Vec::with_capacity(count);
    for _ in 0..count {
        let field_len = r.u16().ok_or_else(bad)?;
        let field = r.string(field_len).ok_or_else(bad)?;
        let value_len = r.u32().ok_or_else(bad)?;
        let value = r.string(value_len).ok_or_else(bad)?;
        index.push((field, value));
    }
    let consumed = payload.len() - r.buf.len();
    payload.drain(..consumed);
    Ok(Record {
        id,
        index,
        body: payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_key;
    use proptest::prelude::*;

    fn key(cipher: Cipher) -> AeadKey {
        AeadKey::new(cipher, &random_key().unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn payload_round_trips(
            id in ".{0,40}",
            index in proptest::collection::vec(("[a-z_]{1,12}", ".{0,30}"), 0..5),
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let encoded = encode_payload(&id, &index, &body);
            let record = decode_payload("c", &encoded).unwrap();
            prop_assert_eq!(record, Record { id, index, body });
        }

        #[test]
        fn envelope_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
            generation in any::<u32>(),
            chacha in any::<bool>(),
        ) {
            let key = key(if chacha { Cipher::ChaCha20Poly1305 } else { Cipher::Aes256Gcm });
            let sealed = seal(&key, generation, "health", b"idhash", payload.clone()).unwrap();
            prop_assert_eq!(sealed.len(), payload.len() + MIN_ENVELOPE_LEN);
            prop_assert_eq!(open(&key, generation, "health", b"idhash", sealed).unwrap(), payload);
        }

        #[test]
        fn any_mutation_is_rejected(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            position in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let key = key(Cipher::Aes256Gcm);
            let mut sealed = seal(&key, 7, "c", b"h", payload).unwrap();
            let at = position.index(sealed.len());
            sealed[at] ^= flip;
            let err = open(&key, 7, "c", b"h", sealed).unwrap_err();
            prop_assert!(matches!(err, VaultError::CorruptRecord { .. }), "{err:?}");
        }

        #[test]
        fn truncation_and_extension_are_rejected(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            cut in any::<prop::sample::Index>(),
            extra in proptest::collection::vec(any::<u8>(), 1..8),
        ) {
            let key = key(Cipher::Aes256Gcm);
            let sealed = seal(&key, 1, "c", b"h", payload).unwrap();
            let at = cut.index(sealed.len());
            prop_assert!(open(&key, 1, "c", b"h", sealed[..at].to_vec()).is_err());
            let mut longer = sealed.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(open(&key, 1, "c", b"h", longer).is_err());
        }
    }

    #[test]
    fn binding_to_collection_id_and_generation() {
        let key = key(Cipher::Aes256Gcm);
        let sealed = seal(&key, 1, "a", b"id1", b"x".to_vec()).unwrap();
        let sealed = || sealed.clone();
        assert!(open(&key, 1, "b", b"id1", sealed()).is_err());
        assert!(open(&key, 1, "a", b"id2", sealed()).is_err());
        assert!(open(&key, 2, "a", b"id1", sealed()).is_err());
        assert!(open(&self::key(Cipher::Aes256Gcm), 1, "a", b"id1", sealed()).is_err());
    }

    #[test]
    fn garbage_payload_is_corrupt_not_panic() {
        for bytes in [&[][..], &[0, 0, 0, 9, b'a'], &[0, 0, 0, 0, 0, 3, 0, 1]] {
            assert!(decode_payload("c", bytes).is_err());
        }
    }
}
