//! The signed deny list of revoked cards and devices, its byte codec, and how current a
//! validator's list is.
//!
//! A leaf of the transit modules (it imports none of them): the issuer encodes and signs a list,
//! the validator decodes, verifies and enforces it, and neither goes through the other.

use ring::digest;

/// A signed, versioned list of revoked cards and devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyList {
    /// Monotonic version: a validator never goes back to an older list.
    pub version: u32,
    /// When the backend made it (unix seconds).
    pub issued_at: u32,
    /// Revoked card ids.
    pub cards: Vec<u64>,
    /// SHA-256 of revoked devices' compressed public keys.
    pub devices: Vec<[u8; 32]>,
}

impl DenyList {
    /// Domain tag of its signature.
    pub const TAG: &'static [u8] = b"thudo/transit/denylist/v1";

    /// The signed bytes: `u8 format(1) | u16 key id | u32 version | u32 issued_at |
    /// u32 n, n * u64 cards | u32 m, m * [32] devices`.
    pub fn encode(&self, key_id: u16) -> Vec<u8> {
        let mut b = Vec::with_capacity(19 + self.cards.len() * 8 + self.devices.len() * 32);
        b.push(1);
        b.extend_from_slice(&key_id.to_be_bytes());
        b.extend_from_slice(&self.version.to_be_bytes());
        b.extend_from_slice(&self.issued_at.to_be_bytes());
        b.extend_from_slice(&(self.cards.len() as u32).to_be_bytes());
        for card in &self.cards {
            b.extend_from_slice(&card.to_be_bytes());
        }
        b.extend_from_slice(&(self.devices.len() as u32).to_be_bytes());
        for device in &self.devices {
            b.extend_from_slice(device);
        }
        b
    }

    /// The hash that names a device in the list.
    pub fn device_hash(compressed_key: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, compressed_key).as_ref());
        out
    }

    /// Parses signed bytes; returns the list and the key id that signed it.
    pub(crate) fn decode(signed: &[u8]) -> Option<(DenyList, u16, usize)> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = signed.get(at..at + n)?;
            at += n;
            Some(s)
        };
        if take(1)? != [1] {
            return None;
        }
        let key_id = u16::from_be_bytes(take(2)?.try_into().ok()?);
        let version = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let issued_at = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let n = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        // Room for what the bytes can hold, not what a damaged count says.
        let mut cards = Vec::with_capacity(n.min(signed.len() / 8));
        for _ in 0..n {
            cards.push(u64::from_be_bytes(take(8)?.try_into().ok()?));
        }
        let m = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        let mut devices = Vec::with_capacity(m.min(signed.len() / 32));
        for _ in 0..m {
            devices.push(take(32)?.try_into().ok()?);
        }
        Some((
            DenyList {
                version,
                issued_at,
                cards,
                devices,
            },
            key_id,
            at,
        ))
    }
}

/// How current the validator's deny list is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyListStatus {
    /// Version in force (0: none yet).
    pub version: u32,
    /// When the backend issued it (unix seconds; 0: none yet).
    pub issued_at: u32,
    /// Seconds since it was issued, at the time asked.
    pub age_secs: u64,
    /// Older than `max_deny_list_age_secs`, none installed, the validator's clock far behind
    /// its issue time, or not signed by a key trusted now (see `needs_refresh`).
    pub stale: bool,
    /// The list in force is signed by a key no longer trusted here (the issuer rotated keys),
    /// or its signature no longer verifies: its entries still apply, and a fresh list should
    /// be fetched.
    pub needs_refresh: bool,
}
