//! Helpers shared by the vault's integration tests.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use thudo_core::crypto::{self, AeadKey, Cipher, SecretKey, NONCE_LEN};
use thudo_core::vault::{KeyProvider, KeyProviderError, Unlock, Vault, VaultOptions};

/// Cheap PBKDF2 for tests only; production uses the default (600,000).
pub fn fast() -> VaultOptions {
    VaultOptions {
        kdf_iterations: thudo_core::vault::MIN_KDF_ITERATIONS,
        ..Default::default()
    }
}

pub fn open_pass(dir: &Path, pass: &str) -> Result<Vault, thudo_core::vault::VaultError> {
    Vault::open(dir, Unlock::passphrase(pass), &fast())
}

/// A new vault in a temporary folder (removed when the folder is dropped).
pub fn vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let v = open_pass(dir.path(), "pass").expect("a new vault opens");
    (dir, v)
}

/// A key provider that wraps with AES-GCM under its own random key, like a Keystore key would.
pub struct TestProvider {
    pub id: String,
    key: SecretKey,
    pub unavailable: bool,
}

impl TestProvider {
    pub fn new(id: &str) -> Arc<Self> {
        Arc::new(TestProvider {
            id: id.into(),
            key: crypto::random_key().unwrap(),
            unavailable: false,
        })
    }
    pub fn unavailable() -> Arc<Self> {
        Arc::new(TestProvider {
            id: "locked".into(),
            key: crypto::random_key().unwrap(),
            unavailable: true,
        })
    }
}

impl KeyProvider for TestProvider {
    fn key_id(&self) -> String {
        self.id.clone()
    }
    fn wrap_key(&self, data_key: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
        let mut buf = data_key.to_vec();
        let nonce = AeadKey::new(Cipher::Aes256Gcm, &self.key)
            .seal(b"", &mut buf)
            .unwrap();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyProviderError> {
        if self.unavailable {
            return Err(KeyProviderError::Unavailable {
                reason: "device locked".into(),
            });
        }
        if wrapped.len() < NONCE_LEN {
            return Err(KeyProviderError::WrongKey);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
        let mut buf = wrapped[NONCE_LEN..].to_vec();
        let key = AeadKey::new(Cipher::Aes256Gcm, &self.key);
        let plain = key
            .open(nonce, b"", &mut buf)
            .map_err(|_| KeyProviderError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

pub fn idx(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

/// The `KEY=value` lines between `<!-- NAME:begin -->` and `<!-- NAME:end -->` of
/// docs/protocol/transit-qr.md (its test vectors).
pub fn transit_doc_block(name: &str) -> std::collections::HashMap<String, String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/protocol/transit-qr.md"
    ))
    .unwrap();
    let block = doc
        .split(&format!("<!-- {name}:begin -->"))
        .nth(1)
        .unwrap()
        .split(&format!("<!-- {name}:end -->"))
        .next()
        .unwrap();
    block
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Applies `payload` (a wrapped health record, or a bare resource as a facility publishes it)
/// as sync does when it pulls it, checking cards against `trust` at `now`; whether it was
/// applied.
pub fn pull_health_record(
    v: &Vault,
    payload: &serde_json::Value,
    trust: Option<&thudo_core::health::shc::TrustStore>,
    now: u64,
) -> bool {
    let resource = payload.get("resource").unwrap_or(payload);
    let change = thudo_core::sync::protocol::Change {
        collection: "health.records".into(),
        record_id: format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap_or_default(),
            resource["id"].as_str().unwrap_or_default()
        ),
        op: "put".into(),
        payload: payload.clone(),
        hlc: String::new(),
    };
    v.transaction(|tx| {
        let collection = thudo_core::health::records::synced(trust.cloned().map(Arc::new));
        thudo_core::sync::apply::apply_changes(tx, &collection, &[change], now)
    })
    .map(|a| a.applied == 1)
    .unwrap_or(false)
}

/// The party member the handbook's tests keep.
pub fn member_profile() -> thudo_core::handbook::member::MemberProfile {
    thudo_core::handbook::member::MemberProfile {
        full_name: "Nguyễn Văn An".into(),
        date_of_birth: "1985-04-30".into(),
        sex: "nam".into(),
        joined_on: "2010-05-19".into(),
        official_on: "2011-05-19".into(),
        party_card_number: "01.123456".into(),
        cell: "Chi bộ Tổ dân phố 5".into(),
        parent_organisations: vec![
            "Đảng bộ phường Dịch Vọng".into(),
            "Đảng bộ quận Cầu Giấy".into(),
        ],
        citizen_id: "001085012345".into(),
        phone: "0912345678".into(),
    }
}

/// The payload of the first change waiting to upload whose record id starts with `prefix`.
pub fn pushed(v: &Vault, prefix: &str) -> serde_json::Value {
    let pending = v
        .transaction(thudo_core::changes::outbox::pending)
        .expect("the outbox reads");
    pending
        .into_iter()
        .find(|e| e.record_id.starts_with(prefix))
        .unwrap_or_else(|| panic!("no change waiting for {prefix}"))
        .payload
}

/// The SMART Health Cards specification's example issuer (tests/data/shc).
pub const SHC_ISSUER: &str = "https://spec.smarthealth.cards/examples/issuer";

/// A file of the SMART Health Cards examples (tests/data/shc), trimmed.
pub fn shc_fixture(name: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/shc")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.trim().to_owned()
}

/// Trust in the example issuer's keys.
pub fn shc_trust() -> thudo_core::health::shc::TrustStore {
    let mut t = thudo_core::health::shc::TrustStore::new();
    t.add_jwks(SHC_ISSUER, &shc_fixture("issuer/jwks.json"))
        .expect("the example issuer's keys");
    t
}
