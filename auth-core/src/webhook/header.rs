//! The `X-Strongroom-Signature` header value: a strict, bounded parser that never
//! panics and never allocates.

use std::fmt;

use http::HeaderName;

use super::WebhookError;

/// The header that carries a delivery's signature (`X-Strongroom-Signature`; header
/// names are case-insensitive, RFC 9110 §5.1).
pub const SIGNATURE_HEADER: HeaderName = HeaderName::from_static("x-strongroom-signature");
/// Longest accepted header value, in bytes.
pub const MAX_HEADER_LEN: usize = 1024;
/// Most `v1` entries accepted in one header (a sender signs with one entry per active
/// secret: two during a rotation).
pub const MAX_SIGNATURES: usize = 8;
/// Longest key of an element (`t`, `v1`, or a key this version does not know).
const MAX_KEY_LEN: usize = 16;
/// Longest `t`: the decimal digits of `i64::MAX`.
const MAX_T_DIGITS: usize = 19;

/// A parsed signature header: the timestamp `t` and 1 to [`MAX_SIGNATURES`] `v1`
/// signatures (HMAC-SHA256 tags).
///
/// Grammar (`WEBHOOKS.md` has the full rules):
///
/// ```text
/// header  = element *( "," element )        ; at most 1024 bytes, no whitespace
/// element = key "=" value
/// t       = "0" / %x31-39 *18DIGIT          ; exactly once, at most i64::MAX
/// v1      = 64HEXDIG                        ; 1 to 8 times, either case
/// other   = 1*16( %x61-7A / DIGIT / "_" ) "=" 1*( %x21-2B / %x2D-7E )  ; ignored
/// ```
///
/// Unknown keys are ignored (forward compatibility: a later version may add a `v2`
/// signature beside `v1`), but must still have this shape.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    timestamp: i64,
    /// `t` exactly as sent (canonical: no sign, no leading zero) followed by `.`: the
    /// prefix of the signed payload, fed to the HMAC in one piece.
    prefix: [u8; MAX_T_DIGITS + 1],
    prefix_len: usize,
    signatures: [[u8; 32]; MAX_SIGNATURES],
    count: usize,
}

impl SignatureHeader {
    /// Parses a header value.
    ///
    /// `value` is attacker controlled: this never panics, never allocates, and reads at
    /// most [`MAX_HEADER_LEN`] bytes of it.
    ///
    /// # Errors
    /// [`WebhookError::Malformed`] with `field`:
    /// * `"header"`: empty, longer than [`MAX_HEADER_LEN`], an empty element, an element
    ///   without `=`, or an unknown element whose key or value has the wrong shape;
    /// * `"t"`: missing, repeated, or not a canonical decimal of at most `i64::MAX`;
    /// * `"v1"`: missing, more than [`MAX_SIGNATURES`], or not 64 hex digits.
    pub fn parse(value: &str) -> Result<Self, WebhookError> {
        const fn malformed(field: &'static str) -> WebhookError {
            WebhookError::Malformed { field }
        }
        if value.is_empty() || value.len() > MAX_HEADER_LEN {
            return Err(malformed("header"));
        }
        let mut header = Self {
            timestamp: 0,
            prefix: [0; MAX_T_DIGITS + 1],
            prefix_len: 0,
            signatures: [[0; 32]; MAX_SIGNATURES],
            count: 0,
        };
        for element in value.split(',') {
            let Some((key, val)) = element.split_once('=') else {
                return Err(malformed("header"));
            };
            match key {
                "t" => {
                    if header.prefix_len != 0 {
                        return Err(malformed("t"));
                    }
                    header.timestamp = parse_t(val).ok_or(malformed("t"))?;
                    // `parse_t` accepted at most MAX_T_DIGITS digits: the prefix fits.
                    let (digits, dot) = header.prefix.split_at_mut(val.len());
                    digits.copy_from_slice(val.as_bytes());
                    if let Some(dot) = dot.first_mut() {
                        *dot = b'.';
                    }
                    header.prefix_len = val.len() + 1;
                }
                "v1" => {
                    let slot = header
                        .signatures
                        .get_mut(header.count)
                        .ok_or(malformed("v1"))?;
                    *slot = decode_v1(val.as_bytes()).ok_or(malformed("v1"))?;
                    header.count += 1;
                }
                _ => {
                    if !is_other_key(key) || !is_other_value(val) {
                        return Err(malformed("header"));
                    }
                }
            }
        }
        if header.prefix_len == 0 {
            return Err(malformed("t"));
        }
        if header.count == 0 {
            return Err(malformed("v1"));
        }
        Ok(header)
    }

    /// The timestamp `t`, in Unix seconds.
    #[must_use]
    pub const fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The `v1` signatures, in header order.
    #[must_use]
    pub fn signatures(&self) -> &[[u8; 32]] {
        &self.signatures[..self.count]
    }

    /// `t` as sent and the `.`: the signed payload's prefix.
    pub(super) fn signed_prefix(&self) -> &[u8] {
        &self.prefix[..self.prefix_len]
    }
}

impl fmt::Debug for SignatureHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Signatures are public (they travel in the header), but add nothing to a log.
        f.debug_struct("SignatureHeader")
            .field("timestamp", &self.timestamp)
            .field("signatures", &self.count)
            .finish()
    }
}

/// The `X-Strongroom-Signature` value of a request's headers, for
/// [`Verifier::verify`](super::Verifier::verify): `Ok(None)` when absent.
///
/// # Errors
/// [`WebhookError::Malformed`] (`field` `"header"`) if the header appears more than once
/// (which one was signed would be ambiguous) or its value is not visible ASCII.
pub fn signature_header_value(headers: &http::HeaderMap) -> Result<Option<&str>, WebhookError> {
    let mut values = headers.get_all(&SIGNATURE_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(WebhookError::Malformed { field: "header" });
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| WebhookError::Malformed { field: "header" })
}

/// A canonical non-negative decimal (no sign, no leading zero, no other character) that
/// fits an `i64`.
fn parse_t(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_T_DIGITS || (bytes.len() > 1 && bytes[0] == b'0') {
        return None;
    }
    bytes.iter().try_fold(0i64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(i64::from(b - b'0'))
    })
}

/// A `v1` value: exactly 64 hex digits, either case, as 32 bytes.
///
/// Variable-time on purpose: the value is public (it travels in the header and is what
/// the sender claims); only the comparison with the expected tag must be constant-time,
/// and it is (`crate::secret::digest_eq`). A plain decode costs less than the
/// constant-time one, which shows on small bodies (the 1.2x goal against a raw HMAC).
fn decode_v1(hex: &[u8]) -> Option<[u8; 32]> {
    let (pairs, []) = hex.as_chunks::<2>() else {
        return None;
    };
    if pairs.len() != 32 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, [hi, lo]) in out.iter_mut().zip(pairs) {
        *byte = (nibble(*hi)? << 4) | nibble(*lo)?;
    }
    Some(out)
}

/// One hex digit's value.
const fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// An unknown element's key: 1 to 16 of `a-z`, `0-9`, `_`.
fn is_other_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An unknown element's value: at least one visible ASCII character other than `,`.
fn is_other_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_is_canonical() {
        assert_eq!(parse_t("0"), Some(0));
        assert_eq!(parse_t("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_t("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "9223372036854775808",
            "١",
        ] {
            assert_eq!(parse_t(bad), None, "{bad:?}");
        }
    }
}
