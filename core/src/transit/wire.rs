//! The transit QR wire format, versions 1 and 2 (docs/protocol/transit-qr.md).
//!
//! ```text
//! credential (level 1, signed by the issuer), 124 bytes
//!   0  1  format version (1; 2: with holder) 15  4  pass valid from (unix s)
//!   1  2  issuer key id               19  4  pass valid until (unix s)
//!   3  8  card / account id           23  4  credential not after (unix s)
//!  11  1  product                     27 33  device public key, SEC1 compressed
//!  12  1  passenger category          60 64  issuer signature r||s over
//!  13  2  route (0 = all routes)             "thudo/transit/credential/v1" || bytes 0..60
//! tap (level 2, signed on the phone), 72 bytes after the credential
//! 124  4  timestamp (unix s)
//! 128  4  counter
//! 132 64  device signature r||s over "thudo/transit/tap/v1" || bytes 0..132
//! QR text: "HNT1:" + base45(196 bytes)  = 299 characters, alphanumeric mode, version 10-M
//! ```
//! All integers are big-endian.

use super::{Category, Product};

/// Prefix of every transit QR text (alphanumeric-mode characters only).
pub const QR_PREFIX: &str = "HNT1:";
/// Format version in byte 0.
pub const FORMAT_VERSION: u8 = 1;
/// Format version of a dependant's credential that rides only with its holder's ticket: the
/// same bytes as version 1 (so every other credential stays readable by validators that know
/// only version 1, and one that does not know this version refuses it).
pub const FORMAT_VERSION_WITH_HOLDER: u8 = 2;
/// Domain tag of the issuer's signature.
pub const CREDENTIAL_TAG: &[u8] = b"thudo/transit/credential/v1";
/// Domain tag of the device's signature.
pub const TAP_TAG: &[u8] = b"thudo/transit/tap/v1";
/// Domain tag of the device's proof that it holds the key an order names (never a QR).
pub const ORDER_TAG: &[u8] = b"thudo/transit/order/v1";
/// Domain tag of the device's proof that it still holds the key of a credential to renew.
pub const RENEW_TAG: &[u8] = b"thudo/transit/renew/v1";
/// Bytes of the signed part of a credential.
pub const CREDENTIAL_BODY_LEN: usize = 60;
/// Bytes of a whole credential.
pub const CREDENTIAL_LEN: usize = CREDENTIAL_BODY_LEN + 64;
/// Bytes of a whole QR payload.
pub const PAYLOAD_LEN: usize = CREDENTIAL_LEN + 8 + 64;
/// Characters of a whole QR text.
pub const QR_TEXT_LEN: usize = QR_PREFIX.len() + PAYLOAD_LEN / 2 * 3;

/// The fields of a credential (level 1), without the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFields {
    /// The issuer key that signs it.
    pub issuer_key_id: u16,
    /// Card or account number.
    pub card_id: u64,
    /// What was bought.
    pub product: Product,
    /// Who rides.
    pub category: Category,
    /// The route of a single-route pass; 0 for all routes.
    pub route: u16,
    /// First second the pass is valid (unix time).
    pub pass_valid_from: u32,
    /// Last second the pass is valid (unix time).
    pub pass_valid_until: u32,
    /// Last second this credential may be shown; phones refresh it while online.
    pub not_after: u32,
    /// The phone's P-256 key, SEC1 compressed.
    pub device_public_key: [u8; 33],
    /// A dependant's credential held on a guardian's phone that rides only together with the
    /// holder's own ticket (format version 2): a validator accepts it only after a ticket of
    /// the same phone key on that validator moments before.
    pub with_holder: bool,
}

/// Why bytes are not a valid payload (before any signature is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// Missing or wrong prefix.
    Prefix,
    /// Not base45, or not ASCII.
    Base45,
    /// Wrong number of bytes.
    Length,
    /// Unknown format version.
    Version,
    /// An unknown product or category code.
    Field,
}

impl CredentialFields {
    /// The 60 signed bytes.
    pub fn encode(&self) -> [u8; CREDENTIAL_BODY_LEN] {
        let mut b = [0u8; CREDENTIAL_BODY_LEN];
        b[0] = if self.with_holder {
            FORMAT_VERSION_WITH_HOLDER
        } else {
            FORMAT_VERSION
        };
        b[1..3].copy_from_slice(&self.issuer_key_id.to_be_bytes());
        b[3..11].copy_from_slice(&self.card_id.to_be_bytes());
        b[11] = self.product as u8;
        b[12] = self.category as u8;
        b[13..15].copy_from_slice(&self.route.to_be_bytes());
        b[15..19].copy_from_slice(&self.pass_valid_from.to_be_bytes());
        b[19..23].copy_from_slice(&self.pass_valid_until.to_be_bytes());
        b[23..27].copy_from_slice(&self.not_after.to_be_bytes());
        b[27..60].copy_from_slice(&self.device_public_key);
        b
    }

    /// Parses the 60 signed bytes.
    pub fn decode(b: &[u8]) -> Result<Self, FormatError> {
        if b.len() < CREDENTIAL_BODY_LEN {
            return Err(FormatError::Length);
        }
        let with_holder = match b[0] {
            FORMAT_VERSION => false,
            FORMAT_VERSION_WITH_HOLDER => true,
            _ => return Err(FormatError::Version),
        };
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut device_public_key = [0u8; 33];
        device_public_key.copy_from_slice(&b[27..60]);
        Ok(CredentialFields {
            issuer_key_id: u16_at(1),
            card_id: u64::from_be_bytes(b[3..11].try_into().map_err(|_| FormatError::Length)?),
            product: Product::from_code(b[11]).ok_or(FormatError::Field)?,
            category: Category::from_code(b[12]).ok_or(FormatError::Field)?,
            route: u16_at(13),
            pass_valid_from: u32_at(15),
            pass_valid_until: u32_at(19),
            not_after: u32_at(23),
            device_public_key,
            with_holder,
        })
    }
}

/// The message the issuer signs.
pub fn credential_message(body: &[u8]) -> Vec<u8> {
    [CREDENTIAL_TAG, body].concat()
}

/// The message the device signs: tag, whole credential, timestamp, counter.
pub fn tap_message(credential: &[u8], timestamp: u32, counter: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(TAP_TAG.len() + CREDENTIAL_LEN + 8);
    m.extend_from_slice(TAP_TAG);
    m.extend_from_slice(credential);
    m.extend_from_slice(&timestamp.to_be_bytes());
    m.extend_from_slice(&counter.to_be_bytes());
    m
}

/// A parsed (not yet verified) QR payload.
#[derive(Debug, Clone)]
pub struct Payload {
    /// The credential's fields.
    pub fields: CredentialFields,
    /// The whole credential (signed body and issuer signature).
    pub credential: [u8; CREDENTIAL_LEN],
    /// When the phone made this QR (its clock, corrected by the offset learned at sync).
    pub timestamp: u32,
    /// The phone's QR counter.
    pub counter: u32,
    /// The device signature.
    pub device_signature: [u8; 64],
}

impl Payload {
    /// The issuer's signature.
    pub fn issuer_signature(&self) -> &[u8] {
        &self.credential[CREDENTIAL_BODY_LEN..]
    }

    /// The credential's signed body.
    pub fn credential_body(&self) -> &[u8] {
        &self.credential[..CREDENTIAL_BODY_LEN]
    }

    /// Parses the payload bytes.
    pub fn decode(bytes: &[u8]) -> Result<Payload, FormatError> {
        if bytes.len() != PAYLOAD_LEN {
            return Err(FormatError::Length);
        }
        let fields = CredentialFields::decode(&bytes[..CREDENTIAL_BODY_LEN])?;
        let mut credential = [0u8; CREDENTIAL_LEN];
        credential.copy_from_slice(&bytes[..CREDENTIAL_LEN]);
        let at = CREDENTIAL_LEN;
        let timestamp = u32::from_be_bytes(
            bytes[at..at + 4]
                .try_into()
                .map_err(|_| FormatError::Length)?,
        );
        let counter = u32::from_be_bytes(
            bytes[at + 4..at + 8]
                .try_into()
                .map_err(|_| FormatError::Length)?,
        );
        let mut device_signature = [0u8; 64];
        device_signature.copy_from_slice(&bytes[at + 8..]);
        Ok(Payload {
            fields,
            credential,
            timestamp,
            counter,
            device_signature,
        })
    }

    /// The payload's bytes (what the QR text encodes in base45).
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let mut b = [0u8; PAYLOAD_LEN];
        b[..CREDENTIAL_LEN].copy_from_slice(&self.credential);
        b[CREDENTIAL_LEN..CREDENTIAL_LEN + 4].copy_from_slice(&self.timestamp.to_be_bytes());
        b[CREDENTIAL_LEN + 4..CREDENTIAL_LEN + 8].copy_from_slice(&self.counter.to_be_bytes());
        b[CREDENTIAL_LEN + 8..].copy_from_slice(&self.device_signature);
        b
    }

    /// The QR text of this payload.
    pub fn qr_text(&self) -> String {
        qr_text(
            &self.credential,
            self.timestamp,
            self.counter,
            &self.device_signature,
        )
    }

    /// Parses a scanned QR text.
    pub fn from_qr_text(text: &str) -> Result<Payload, FormatError> {
        // Cheap checks first: a scanner may hand over anything, up to megabytes.
        if text.len() != QR_TEXT_LEN {
            return Err(if text.starts_with(QR_PREFIX) {
                FormatError::Length
            } else {
                FormatError::Prefix
            });
        }
        let body = text.strip_prefix(QR_PREFIX).ok_or(FormatError::Prefix)?;
        let bytes = base45::decode(body).map_err(|_| FormatError::Base45)?;
        Payload::decode(&bytes)
    }
}

/// Builds the QR text from the credential, timestamp, counter and device signature.
pub fn qr_text(credential: &[u8], timestamp: u32, counter: u32, device_signature: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(PAYLOAD_LEN);
    bytes.extend_from_slice(credential);
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&counter.to_be_bytes());
    bytes.extend_from_slice(device_signature);
    format!("{QR_PREFIX}{}", base45::encode(&bytes))
}
