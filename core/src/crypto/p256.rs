//! P-256 helpers around ring: key encodings and the raw r||s signature form.
//!
//! ring signs and verifies; the `p256` crate only decompresses points (ring accepts uncompressed
//! keys only) and parses DER signatures from platform keystores.

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};

/// Length of a compressed SEC1 public key.
pub const COMPRESSED_KEY_LEN: usize = 33;
/// Length of an uncompressed SEC1 public key.
pub const UNCOMPRESSED_KEY_LEN: usize = 65;
/// Length of a raw r||s signature.
pub const SIGNATURE_LEN: usize = 64;

/// Compresses an uncompressed SEC1 point (0x04 || x || y) to 0x02/0x03 || x.
pub fn compress(uncompressed: &[u8]) -> Option<[u8; COMPRESSED_KEY_LEN]> {
    if uncompressed.len() != UNCOMPRESSED_KEY_LEN || uncompressed[0] != 0x04 {
        return None;
    }
    let mut out = [0u8; COMPRESSED_KEY_LEN];
    out[0] = 0x02 | (uncompressed[64] & 1);
    out[1..].copy_from_slice(&uncompressed[1..33]);
    Some(out)
}

/// Decompresses and validates a SEC1 point (either form); `None` if it is not on the curve.
pub fn decompress(key: &[u8]) -> Option<[u8; UNCOMPRESSED_KEY_LEN]> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let public = p256::PublicKey::from_sec1_bytes(key).ok()?;
    let point = public.to_encoded_point(false);
    point.as_bytes().try_into().ok()
}

/// Verifies a raw r||s signature with an uncompressed public key.
pub fn verify(uncompressed: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, uncompressed)
        .verify(message, signature)
        .is_ok()
}

/// Accepts a signature as raw r||s (64 bytes) or DER (Android Keystore, iOS SecKey) and returns
/// it raw.
pub fn to_raw_signature(signature: &[u8]) -> Option<[u8; SIGNATURE_LEN]> {
    if signature.len() == SIGNATURE_LEN {
        return signature.try_into().ok();
    }
    let parsed = p256::ecdsa::Signature::from_der(signature).ok()?;
    let mut raw = [0u8; SIGNATURE_LEN];
    raw.copy_from_slice(&parsed.to_bytes());
    Some(raw)
}

/// A P-256 key pair held in software (ring), stored as PKCS#8.
pub struct SoftwareKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl SoftwareKey {
    /// A new random key; returns it and its PKCS#8 document to store.
    pub fn generate() -> Option<(SoftwareKey, Vec<u8>)> {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        let key = SoftwareKey::from_pkcs8(pkcs8.as_ref())?;
        Some((key, pkcs8.as_ref().to_vec()))
    }

    /// Loads a key from PKCS#8.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Option<SoftwareKey> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .ok()?;
        Some(SoftwareKey { pair, rng })
    }

    /// The uncompressed public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The compressed public key.
    pub fn compressed_public_key(&self) -> [u8; COMPRESSED_KEY_LEN] {
        // ring's public keys are always uncompressed, valid points.
        compress(self.public_key()).unwrap_or([0; COMPRESSED_KEY_LEN])
    }

    /// Signs `message` (ECDSA P-256 with SHA-256), raw r||s.
    pub fn sign(&self, message: &[u8]) -> Option<[u8; SIGNATURE_LEN]> {
        let sig = self.pair.sign(&self.rng, message).ok()?;
        sig.as_ref().try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compress_decompress_sign_verify() {
        let (key, _) = SoftwareKey::generate().unwrap();
        let compressed = key.compressed_public_key();
        assert_eq!(
            decompress(&compressed).unwrap().as_slice(),
            key.public_key()
        );
        let sig = key.sign(b"msg").unwrap();
        assert!(verify(key.public_key(), b"msg", &sig));
        assert!(!verify(key.public_key(), b"msh", &sig));
        // A DER signature converts to the same raw form.
        let der = p256::ecdsa::Signature::from_slice(&sig).unwrap().to_der();
        assert_eq!(to_raw_signature(der.as_bytes()).unwrap(), sig);
        assert!(to_raw_signature(&[0x30, 0x01]).is_none());
    }

    #[test]
    fn off_curve_points_are_refused() {
        let mut x_too_big = [0xffu8; 33];
        x_too_big[0] = 0x02; // x >= p: no such point
        assert!(decompress(&x_too_big).is_none());
        let mut bad_prefix = [0u8; 33];
        bad_prefix[0] = 0x07;
        assert!(decompress(&bad_prefix).is_none());
        assert!(decompress(&[0x02; 10]).is_none());
        assert!(compress(&[0x04; 10]).is_none());
    }
}
