//! Small, safe wrappers over `ring`: random bytes, key derivation, AEAD and keyed hashes.
//!
//! Nothing here invents cryptography; it fixes the parameters thudo uses so that callers cannot
//! choose weak ones, and keeps key bytes in [`SecretKey`], which is zeroized on drop.

pub mod p256;

use std::num::NonZeroU32;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac, pbkdf2};
use zeroize::Zeroizing;

/// Length of every symmetric key thudo uses (AES-256, ChaCha20, HMAC-SHA256).
pub const KEY_LEN: usize = 32;
/// Length of an AEAD nonce (96 bits for both ciphers).
pub const NONCE_LEN: usize = 12;
/// Length of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// Length of an HMAC-SHA256 output.
pub const MAC_LEN: usize = 32;

/// A 256-bit secret key, wiped from memory when dropped.
pub type SecretKey = Zeroizing<[u8; KEY_LEN]>;

/// The only failure crypto primitives report: the operation did not succeed. Callers map it to a
/// domain error (wrong key, corrupt record), because only they know what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cryptographic operation failed")]
pub struct CryptoError;

impl From<ring::error::Unspecified> for CryptoError {
    fn from(_: ring::error::Unspecified) -> Self {
        CryptoError
    }
}

/// Fills `out` from the operating system's secure random source.
pub fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(out)?;
    Ok(())
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<SecretKey, CryptoError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(key.as_mut())?;
    Ok(key)
}

/// Derives a subkey from `master` with HKDF-SHA256; `info` names the key's purpose, so keys for
/// different purposes are independent.
pub fn derive_key(master: &[u8; KEY_LEN], info: &[u8]) -> SecretKey {
    struct Len;
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            KEY_LEN
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"thudo/hkdf/v1").extract(master);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let info = [info];
    // `expand` and `fill` fail only when the requested length exceeds 255 hash blocks; 32 bytes
    // is one block, so this cannot fail.
    if let Ok(okm) = prk.expand(&info, Len) {
        let _ = okm.fill(out.as_mut());
    }
    out
}

/// Stretches a passphrase into a key with PBKDF2-HMAC-SHA256.
pub fn derive_from_passphrase(passphrase: &[u8], salt: &[u8], iterations: NonZeroU32) -> SecretKey {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase,
        out.as_mut(),
    );
    out
}

/// The AEAD algorithms an envelope may name. The numbers are stored on disk: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cipher {
    /// AES-256-GCM: fastest where the CPU has AES instructions (all 64-bit phones).
    #[default]
    Aes256Gcm = 1,
    /// ChaCha20-Poly1305: fastest on old 32-bit ARM phones without AES instructions.
    ChaCha20Poly1305 = 2,
}

impl Cipher {
    /// The cipher stored under `id`, if any.
    pub fn from_id(id: u8) -> Option<Cipher> {
        match id {
            1 => Some(Cipher::Aes256Gcm),
            2 => Some(Cipher::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The number stored on disk for this cipher.
    pub fn id(self) -> u8 {
        self as u8
    }

    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
}

/// An AEAD key bound to one cipher. Nonces are random (96 bits), so one key should seal fewer
/// than 2^32 messages; the vault rotates data keys long before that.
pub struct AeadKey {
    key: LessSafeKey,
    cipher: Cipher,
}

impl AeadKey {
    /// Makes an AEAD key for `cipher` from 32 key bytes.
    pub fn new(cipher: Cipher, key: &[u8; KEY_LEN]) -> Self {
        // Both algorithms take exactly 32-byte keys, so construction cannot fail.
        let unbound = match UnboundKey::new(cipher.algorithm(), key) {
            Ok(k) => k,
            Err(_) => unreachable!("32-byte key for a 256-bit AEAD"),
        };
        AeadKey {
            key: LessSafeKey::new(unbound),
            cipher,
        }
    }

    /// The cipher this key uses.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Encrypts `buf` in place with a fresh random nonce, appends the tag, returns the nonce.
    pub fn seal(&self, aad: &[u8], buf: &mut Vec<u8>) -> Result<[u8; NONCE_LEN], CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            buf,
        )?;
        Ok(nonce)
    }

    /// Decrypts `buf` (ciphertext then tag) in place; returns the plaintext slice.
    pub fn open<'a>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        Ok(self
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)?)
    }
}

/// An HMAC-SHA256 key, for blind indexes and key checks.
#[derive(Clone)]
pub struct MacKey(hmac::Key);

impl MacKey {
    /// Makes an HMAC-SHA256 key from 32 key bytes.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        MacKey(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The tag of `parts`, each prefixed with its length so that ("ab","c") and ("a","bc") differ.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(self.context(parts).sign().as_ref());
        out
    }

    fn context(&self, parts: &[&[u8]]) -> hmac::Context {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx
    }

    /// Checks `tag` against the tag of `parts` in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        constant_time_eq(self.context(parts).sign().as_ref(), tag)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aead_round_trip_and_tamper() {
        for cipher in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            let key = AeadKey::new(cipher, &random_key().unwrap());
            let mut buf = b"hello".to_vec();
            let nonce = key.seal(b"aad", &mut buf).unwrap();
            assert_eq!(buf.len(), 5 + TAG_LEN);
            let mut copy = buf.clone();
            assert_eq!(key.open(nonce, b"aad", &mut copy).unwrap(), b"hello");
            let mut copy = buf.clone();
            assert!(key.open(nonce, b"aaX", &mut copy).is_err());
            let mut copy = buf.clone();
            copy[0] ^= 1;
            assert!(key.open(nonce, b"aad", &mut copy).is_err());
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        let master = random_key().unwrap();
        assert_ne!(*derive_key(&master, b"a"), *derive_key(&master, b"b"));
        assert_eq!(*derive_key(&master, b"a"), *derive_key(&master, b"a"));
    }

    #[test]
    fn mac_parts_are_length_prefixed() {
        let key = MacKey::new(&random_key().unwrap());
        assert_ne!(key.tag(&[b"ab", b"c"]), key.tag(&[b"a", b"bc"]));
        let tag = key.tag(&[b"x"]);
        assert!(key.verify(&[b"x"], &tag));
        assert!(!key.verify(&[b"y"], &tag));
        assert!(!key.verify(&[b"x"], &tag[..31]));
    }

    #[test]
    fn pbkdf2_matches_rfc_7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P="passwd", S="salt", c=1, first 32 bytes.
        let key = derive_from_passphrase(b"passwd", b"salt", NonZeroU32::new(1).unwrap());
        let expected = "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc";
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }
}
