//! The server's secrets, kept outside the database: a database file alone must give back no
//! citizen ID and must not let anyone rewrite the audit trail unseen.
//!
//! The secrets file holds one secret per line (64 hex digits, 32 random bytes), oldest first;
//! a rotation appends a line and never removes one. From each secret three keys are derived
//! (HKDF-SHA256): one keys citizen IDs, one seals audit entries, one signs registration
//! nonces.
//!
//! **Citizen IDs** are stored as `HMAC(kₙ, … HMAC(k₁, SHA-256("thudo/citizen/" ‖ id)))`: every
//! secret is a layer. A database keyed with the first `m` secrets is brought up to all `n` by
//! applying the new layers to the stored values, without knowing any ID; that is how rows from
//! before keying (plain SHA-256) are migrated too. docs/security.md tells the rotation.
//!
//! **Audit entries** are sealed with the newest secret's audit key; each names the secret it
//! was sealed with, so older entries still verify after a rotation.

use ring::{digest, hkdf, hmac};
use zeroize::Zeroizing;

/// A citizen's lookup key: their ID under the server's keyed hash. Stores take this, never the
/// ID itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CitizenKey(pub(crate) [u8; 32]);

impl CitizenKey {
    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for CitizenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CitizenKey({}…)", thudo_core::hex::encode(&self.0[..4]))
    }
}

/// The secret of `ServerSecrets::local`: public, for tests and demos only.
const LOCAL_SECRET: [u8; 32] = *b"thudo local test secret: public!";

struct Layer {
    citizen: hmac::Key,
    audit: hmac::Key,
    nonce: hmac::Key,
    fingerprint: String,
}

/// The server's secrets (see the module's documentation).
pub struct ServerSecrets {
    layers: Vec<Layer>,
}

fn derive(secret: &[u8], purpose: &[u8]) -> hmac::Key {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"thudo-server secrets v1").extract(secret);
    match prk.expand(&[purpose], hmac::HMAC_SHA256) {
        Ok(okm) => okm.into(),
        // Unreachable: one SHA-256 block is within HKDF's limit.
        Err(_) => hmac::Key::new(hmac::HMAC_SHA256, secret),
    }
}

impl ServerSecrets {
    /// Secrets from their raw bytes, oldest first (each at least 32 bytes).
    pub fn new(secrets: &[Zeroizing<Vec<u8>>]) -> anyhow::Result<ServerSecrets> {
        anyhow::ensure!(!secrets.is_empty(), "no secret given");
        let mut layers = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            anyhow::ensure!(
                secret.len() >= 32,
                "secret {} is shorter than 32 bytes",
                i + 1
            );
            let check = derive(secret, b"fingerprint");
            let tag = hmac::sign(&check, b"thudo");
            layers.push(Layer {
                citizen: derive(secret, b"citizen-id"),
                audit: derive(secret, b"audit"),
                nonce: derive(secret, b"registration-nonce"),
                fingerprint: thudo_core::hex::encode(&tag.as_ref()[..8]),
            });
        }
        Ok(ServerSecrets { layers })
    }

    /// Secrets from a secrets file's text: one secret per line as 64 hex digits, oldest
    /// first; blank lines and `#` comments ignored.
    pub fn from_file_text(text: &str) -> anyhow::Result<ServerSecrets> {
        let mut secrets = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = thudo_core::hex::decode(line)
                .filter(|b| b.len() == 32)
                .ok_or_else(|| anyhow::anyhow!("line {}: not 64 hex digits", n + 1))?;
            secrets.push(Zeroizing::new(bytes));
        }
        ServerSecrets::new(&secrets)
    }

    /// The public secret of tests and demos (never a deployment's).
    pub fn local() -> ServerSecrets {
        match ServerSecrets::new(&[Zeroizing::new(LOCAL_SECRET.to_vec())]) {
            Ok(s) => s,
            Err(_) => unreachable!("the local secret is 32 bytes"),
        }
    }

    /// The fingerprints of the secrets, oldest first (stored to tell which layers a database
    /// has; they give nothing of the secrets).
    pub fn fingerprints(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.fingerprint.clone()).collect()
    }

    /// A citizen ID's lookup key under every secret.
    pub fn citizen(&self, citizen_id: &str) -> CitizenKey {
        let unkeyed = digest::digest(
            &digest::SHA256,
            format!("thudo/citizen/{citizen_id}").as_bytes(),
        );
        let mut value = [0u8; 32];
        value.copy_from_slice(unkeyed.as_ref());
        CitizenKey(self.rekey(0, &value))
    }

    /// A stored value keyed with the first `from` secrets, keyed with all of them.
    pub(crate) fn rekey(&self, from: usize, stored: &[u8; 32]) -> [u8; 32] {
        let mut value = *stored;
        for layer in self.layers.iter().skip(from) {
            let tag = hmac::sign(&layer.citizen, &value);
            value.copy_from_slice(tag.as_ref());
        }
        value
    }

    /// The newest secret's number (from 0) and audit key: new entries are sealed with it.
    pub(crate) fn audit_key(&self) -> (usize, &hmac::Key) {
        let n = self.layers.len() - 1;
        (n, &self.layers[n].audit)
    }

    /// The audit key of secret `n`.
    pub(crate) fn audit_key_of(&self, n: usize) -> Option<&hmac::Key> {
        self.layers.get(n).map(|l| &l.audit)
    }

    /// A registration nonce good until `expires_at` (unix seconds): 16 random bytes, the
    /// expiry and the newest secret's MAC over both, in hex ([`NONCE_HEX_LEN`] characters).
    /// Nothing is stored until it is spent, so asking for nonces writes nothing.
    pub fn registration_nonce(&self, expires_at: i64) -> Option<String> {
        let mut raw = [0u8; NONCE_RAW_LEN];
        thudo_core::crypto::fill_random(&mut raw[..16]).ok()?;
        raw[16..].copy_from_slice(&expires_at.to_be_bytes());
        let layer = self.layers.last()?;
        let tag = hmac::sign(&layer.nonce, &nonce_message(&raw));
        let mut out = raw.to_vec();
        out.extend_from_slice(tag.as_ref());
        Some(thudo_core::hex::encode(&out))
    }

    /// The expiry of a nonce from [`Self::registration_nonce`] under any of the secrets;
    /// `None` when it is not one (made up, altered, or of another deployment).
    pub fn nonce_expiry(&self, nonce: &str) -> Option<i64> {
        // Lower case only, as issued: another spelling of one nonce would be spent apart.
        if nonce.len() != NONCE_HEX_LEN || nonce.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let bytes = thudo_core::hex::decode(nonce)?;
        let (raw, tag) = bytes.split_at(NONCE_RAW_LEN);
        let message = nonce_message(raw);
        self.layers
            .iter()
            .any(|l| hmac::verify(&l.nonce, &message, tag).is_ok())
            .then(|| {
                let mut expiry = [0u8; 8];
                expiry.copy_from_slice(&raw[16..]);
                i64::from_be_bytes(expiry)
            })
    }
}

/// Random bytes and expiry of a registration nonce.
const NONCE_RAW_LEN: usize = 24;
/// A registration nonce's length in hex: its random bytes, expiry and 32-byte MAC.
pub const NONCE_HEX_LEN: usize = (NONCE_RAW_LEN + 32) * 2;

fn nonce_message(raw: &[u8]) -> Vec<u8> {
    let mut message = b"thudo/registration-nonce/v1".to_vec();
    message.extend_from_slice(raw);
    message
}
