//! The key hierarchy: how the data key is wrapped (key slots) and the subkeys derived from it.
//!
//! ```text
//! passphrase --PBKDF2--> KEK --AEAD--> data key     (slot 'passphrase')
//! host KeyProvider  ---wrap/unwrap---> data key     (slot 'provider')
//! data key --HKDF--> record key (AEAD), key-check MAC,
//!                    per collection: id key, index key (HMAC blind indexes)
//! ```
//!
//! Changing the passphrase or the provider key rewraps only the data key. Rotating the data key
//! re-encrypts every record (see [`super::Vault::rotate_data_key`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::crypto::{self, AeadKey, Cipher, MacKey, SecretKey, KEY_LEN, NONCE_LEN};

use super::error::{Result, VaultError};

/// Default PBKDF2-HMAC-SHA256 iterations for a passphrase (OWASP's 2023 figure).
pub const DEFAULT_KDF_ITERATIONS: u32 = 600_000;
/// The fewest iterations the vault accepts at all. Anything under the default is for tests.
pub const MIN_KDF_ITERATIONS: u32 = 10_000;
/// The most iterations a new passphrase may be given (about 15 s on a cheap phone). A vault
/// made before with more still opens.
pub const MAX_KDF_ITERATIONS: u32 = 10_000_000;
const SALT_LEN: usize = 16;

/// Why a [`KeyProvider`] could not wrap or unwrap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProviderError {
    /// The wrapped key was not made by this provider's key.
    #[error("the provider's key does not match")]
    WrongKey,
    /// The provider's key cannot be used now (device locked, user authentication needed):
    /// worth retrying after the user unlocks.
    #[error("{reason}")]
    Unavailable {
        /// What the platform reported.
        reason: String,
    },
    /// The provider's key no longer exists or was invalidated for good (restored to another
    /// device, key deleted, biometrics re-enrolled): the wrapped key can never be opened.
    #[error("key gone: {reason}")]
    Gone {
        /// What the platform reported.
        reason: String,
    },
}

/// A key the host app keeps outside the library, typically a non-exportable key in Android
/// Keystore or the iOS Keychain / Secure Enclave, used to wrap the vault's data key.
///
/// Implementations must not call back into the vault: the vault may be waiting on them.
pub trait KeyProvider: Send + Sync {
    /// A stable name of the provider's current key, stored beside the wrapped key.
    fn key_id(&self) -> String;
    /// Encrypts (wraps) the 32-byte data key.
    fn wrap_key(&self, data_key: &[u8]) -> Result<Vec<u8>, KeyProviderError>;
    /// Decrypts (unwraps) what [`KeyProvider::wrap_key`] produced.
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyProviderError>;
}

/// How a vault is unlocked.
#[derive(Clone)]
pub enum Unlock {
    /// A passphrase the user types, stretched with PBKDF2.
    Passphrase(Zeroizing<String>),
    /// A key held by the host platform.
    Provider(Arc<dyn KeyProvider>),
}

impl Unlock {
    /// Unlock with a passphrase.
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        Unlock::Passphrase(Zeroizing::new(passphrase.into()))
    }
}

/// The names of the two slot kinds in the `key_slots` table.
pub(crate) const PASSPHRASE_SLOT: &str = "passphrase";
pub(crate) const PROVIDER_SLOT: &str = "provider";
const PBKDF2_KEY_ID: &str = "pbkdf2-sha256";

/// A key slot row.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub slot: String,
    pub key_id: String,
    pub params: Vec<u8>,
    pub wrapped: Vec<u8>,
}

/// What the vault keeps in memory to rewrap a new data key without asking the user again.
pub(crate) enum Wrapper {
    Passphrase {
        kek: SecretKey,
        salt: [u8; SALT_LEN],
        iterations: u32,
        cipher: Cipher,
    },
    Provider(Arc<dyn KeyProvider>),
}

fn passphrase_aad(params: &[u8]) -> Vec<u8> {
    let mut aad = b"thudo/slot/passphrase/v1".to_vec();
    aad.extend_from_slice(params);
    aad
}

fn passphrase_params(salt: &[u8; SALT_LEN], iterations: u32, cipher: Cipher) -> Vec<u8> {
    let mut params = Vec::with_capacity(SALT_LEN + 5);
    params.extend_from_slice(salt);
    params.extend_from_slice(&iterations.to_be_bytes());
    params.push(cipher.id());
    params
}

/// Checks an iteration count the caller asked for.
pub(crate) fn check_iterations(iterations: u32) -> Result<NonZeroU32> {
    if !(MIN_KDF_ITERATIONS..=MAX_KDF_ITERATIONS).contains(&iterations) {
        return Err(VaultError::invalid(format!(
            "kdf iterations must be {MIN_KDF_ITERATIONS} to {MAX_KDF_ITERATIONS} (default {DEFAULT_KDF_ITERATIONS})"
        )));
    }
    NonZeroU32::new(iterations).ok_or_else(|| VaultError::invalid("kdf iterations must be > 0"))
}

impl Wrapper {
    /// The cipher of a passphrase slot.
    pub fn cipher(&self) -> Option<Cipher> {
        match self {
            Wrapper::Passphrase { cipher, .. } => Some(*cipher),
            Wrapper::Provider(_) => None,
        }
    }

    /// A passphrase wrapper with a fresh salt (PBKDF2 runs here: slow by design).
    pub fn new_passphrase(passphrase: &str, iterations: u32, cipher: Cipher) -> Result<Self> {
        let rounds = check_iterations(iterations)?;
        let mut salt = [0u8; SALT_LEN];
        crypto::fill_random(&mut salt).map_err(rng_failed)?;
        let kek = crypto::derive_from_passphrase(passphrase.as_bytes(), &salt, rounds);
        Ok(Wrapper::Passphrase {
            kek,
            salt,
            iterations,
            cipher,
        })
    }

    /// Recreates the passphrase wrapper of an existing slot and unwraps its data key.
    pub fn open_passphrase(slot: &Slot, passphrase: &str) -> Result<(Self, SecretKey)> {
        let bad = || VaultError::CorruptStore {
            reason: "malformed passphrase key slot".into(),
        };
        if slot.params.len() != SALT_LEN + 5 {
            return Err(bad());
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&slot.params[..SALT_LEN]);
        let iterations = u32::from_be_bytes(
            slot.params[SALT_LEN..SALT_LEN + 4]
                .try_into()
                .map_err(|_| bad())?,
        );
        let cipher = Cipher::from_id(slot.params[SALT_LEN + 4]).ok_or_else(bad)?;
        let rounds = NonZeroU32::new(iterations).ok_or_else(bad)?;
        let kek = crypto::derive_from_passphrase(passphrase.as_bytes(), &salt, rounds);
        let wrapper = Wrapper::Passphrase {
            kek,
            salt,
            iterations,
            cipher,
        };
        let data_key = wrapper.unwrap(slot)?;
        Ok((wrapper, data_key))
    }

    /// Wraps `data_key` into a slot row. A provider is called here: hold no lock.
    pub fn wrap(&self, data_key: &SecretKey) -> Result<Slot> {
        match self {
            Wrapper::Passphrase {
                kek,
                salt,
                iterations,
                cipher,
            } => {
                let params = passphrase_params(salt, *iterations, *cipher);
                let mut buf = data_key.to_vec();
                let nonce = AeadKey::new(*cipher, kek)
                    .seal(&passphrase_aad(&params), &mut buf)
                    .map_err(rng_failed)?;
                let mut wrapped = nonce.to_vec();
                wrapped.extend_from_slice(&buf);
                Ok(Slot {
                    slot: PASSPHRASE_SLOT.into(),
                    key_id: PBKDF2_KEY_ID.into(),
                    params,
                    wrapped,
                })
            }
            Wrapper::Provider(provider) => {
                let wrapped = provider
                    .wrap_key(data_key.as_ref())
                    .map_err(provider_error)?;
                Ok(Slot {
                    slot: PROVIDER_SLOT.into(),
                    key_id: provider.key_id(),
                    params: Vec::new(),
                    wrapped,
                })
            }
        }
    }

    /// Unwraps the data key from `slot`. A provider is called here: hold no lock.
    pub fn unwrap(&self, slot: &Slot) -> Result<SecretKey> {
        let raw: Zeroizing<Vec<u8>> = match self {
            Wrapper::Passphrase { kek, cipher, .. } => {
                if slot.slot != PASSPHRASE_SLOT {
                    return Err(wrong("the vault is not protected by a passphrase"));
                }
                if slot.wrapped.len() < NONCE_LEN {
                    return Err(VaultError::CorruptStore {
                        reason: "malformed key slot".into(),
                    });
                }
                let mut nonce = [0u8; NONCE_LEN];
                nonce.copy_from_slice(&slot.wrapped[..NONCE_LEN]);
                let mut buf = Zeroizing::new(slot.wrapped[NONCE_LEN..].to_vec());
                let len = AeadKey::new(*cipher, kek)
                    .open(nonce, &passphrase_aad(&slot.params), &mut buf)
                    .map_err(|_| wrong("the passphrase is wrong"))?
                    .len();
                buf.truncate(len);
                buf
            }
            Wrapper::Provider(provider) => {
                if slot.slot != PROVIDER_SLOT {
                    return Err(wrong(
                        "the vault is protected by a passphrase, not a key provider",
                    ));
                }
                Zeroizing::new(provider.unwrap_key(&slot.wrapped).map_err(provider_error)?)
            }
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if raw.len() != KEY_LEN {
            return Err(wrong("the key provider returned a key of the wrong length"));
        }
        key.copy_from_slice(&raw);
        Ok(key)
    }
}

fn wrong(reason: &str) -> VaultError {
    VaultError::WrongKey {
        reason: reason.into(),
    }
}

fn rng_failed(_: crypto::CryptoError) -> VaultError {
    VaultError::Io {
        reason: "system random source failed".into(),
    }
}

fn provider_error(err: KeyProviderError) -> VaultError {
    match err {
        KeyProviderError::WrongKey => wrong("the key provider's key does not match"),
        KeyProviderError::Unavailable { reason } => VaultError::KeyUnavailable { reason },
        KeyProviderError::Gone { reason } => VaultError::KeyLost { reason },
    }
}

/// The per-collection blind-index keys.
pub(crate) struct CollectionKeys {
    pub id: MacKey,
    pub index: MacKey,
}

/// Every key derived from one data key, for one key generation.
pub(crate) struct KeySet {
    pub generation: u32,
    data_key: SecretKey,
    pub record: AeadKey,
    check: MacKey,
    collections: Mutex<HashMap<String, Arc<CollectionKeys>>>,
}

const KEY_CHECK_MESSAGE: &[u8] = b"thudo vault key check v1";

impl KeySet {
    pub fn new(data_key: SecretKey, generation: u32, cipher: Cipher) -> Self {
        let record = AeadKey::new(cipher, &crypto::derive_key(&data_key, b"thudo/record/v1"));
        let check = MacKey::new(&crypto::derive_key(&data_key, b"thudo/check/v1"));
        KeySet {
            generation,
            data_key,
            record,
            check,
            collections: Mutex::new(HashMap::new()),
        }
    }

    pub fn data_key(&self) -> &SecretKey {
        &self.data_key
    }

    /// A tag stored in the vault so a wrong key is recognised before any record is touched.
    pub fn key_check(&self) -> [u8; crypto::MAC_LEN] {
        self.check.tag(&[KEY_CHECK_MESSAGE])
    }

    pub fn verify_key_check(&self, stored: &[u8]) -> bool {
        self.check.verify(&[KEY_CHECK_MESSAGE], stored)
    }

    /// The collection's blind-index keys, derived once and cached.
    pub fn collection(&self, collection: &str) -> Arc<CollectionKeys> {
        let mut cache = self.collections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = cache.get(collection) {
            return keys.clone();
        }
        let info = |purpose: &str| format!("thudo/{purpose}/v1/{collection}");
        let keys = Arc::new(CollectionKeys {
            id: MacKey::new(&crypto::derive_key(&self.data_key, info("id").as_bytes())),
            index: MacKey::new(&crypto::derive_key(
                &self.data_key,
                info("index").as_bytes(),
            )),
        });
        cache.insert(collection.to_owned(), keys.clone());
        keys
    }
}
