//! Lower-case hex, the one text form of bytes across thudo (ids, keys, credentials in JSON).

/// Bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Hex (either case) as bytes; `None` for an odd length or a non-hex character.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let value = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    digits
        .chunks(2)
        .map(|pair| Some(value(pair[0])? << 4 | value(pair[1])?))
        .collect()
}

/// `n` random bytes from the system source, as hex (ids, idempotency keys, tokens).
pub fn random(n: usize) -> Result<String, crate::crypto::CryptoError> {
    let mut bytes = vec![0u8; n];
    crate::crypto::fill_random(&mut bytes)?;
    Ok(encode(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&bytes)), Some(bytes));
        assert_eq!(encode(&[0x0a, 0xff]), "0aff");
        assert_eq!(decode("0AfF"), Some(vec![0x0a, 0xff]));
        for bad in ["0", "zz", "0g", "ễ0", "+1"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
        assert_eq!(random(16).map(|h| h.len()).ok(), Some(32));
    }
}
