//! The credential record sealed by the [local source](crate::local): one
//! binary record per credential.
//!
//! # Record format, version 1
//!
//! ```text
//! offset  size  content
//! 0       1     version: 0x01
//! 1       1     flags: bit 0 = read_only, bit 1 = has_passphrase; bits 2-7 zero
//! 2       2+n   api_key:    u16 big-endian length n, then n bytes
//! .       2+n   secret:     same
//! .       2+n   passphrase: same, present only when bit 1 is set
//! ```
//!
//! Each field is 1 to 1024 bytes of visible ASCII (0x21-0x7e). Nothing may
//! follow the last field. The record carries no id: the envelope binds the
//! sealed blob to its credential through the encryption context (see
//! [`crate::local`]), so a record copied to another credential's row does not
//! open. Test vectors: `tests/data/record_*_pass.hex` / `record_*_fail.hex`;
//! specification: `FORMATS.md`, section 1.

use zeroize::Zeroizing;

use crate::credential::{ExchangeCredential, MAX_FIELD_LEN};
use crate::error::CredentialError;
use access_types::AccountId;

/// Format version written and read.
pub const RECORD_VERSION: u8 = 1;
const FLAG_READ_ONLY: u8 = 0b01;
const FLAG_PASSPHRASE: u8 = 0b10;

/// A record could not be decoded. Names the part at fault, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The version byte is not [`RECORD_VERSION`].
    #[error("unsupported record version")]
    Version,
    /// Reserved flag bits are set.
    #[error("record flags hold reserved bits")]
    Flags,
    /// The record ends inside `field`.
    #[error("record is truncated in {field}")]
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// A field's value is refused.
    #[error("record field is invalid: {0}")]
    Field(#[from] CredentialError),
    /// Bytes follow the last field.
    #[error("record has trailing bytes")]
    TrailingBytes,
}

/// Encodes `credential` as a version 1 record, into a buffer wiped on drop.
#[must_use]
pub fn encode(credential: &ExchangeCredential) -> Zeroizing<Vec<u8>> {
    let fields: [Option<&str>; 3] = [
        Some(credential.expose_api_key()),
        Some(credential.expose_secret()),
        credential.expose_passphrase(),
    ];
    let len = 2 + fields.iter().flatten().map(|f| 2 + f.len()).sum::<usize>();
    // Allocated once at its final size: no reallocation leaves a copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut flags = 0;
    if credential.is_read_only() {
        flags |= FLAG_READ_ONLY;
    }
    if credential.expose_passphrase().is_some() {
        flags |= FLAG_PASSPHRASE;
    }
    out.push(RECORD_VERSION);
    out.push(flags);
    for field in fields.into_iter().flatten() {
        // ExchangeCredential caps every field at MAX_FIELD_LEN (1024) bytes.
        let n = u16::try_from(field.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

fn take_field(rest: &mut &[u8], field: &'static str) -> Result<Zeroizing<String>, RecordError> {
    let (len, tail) = rest
        .split_first_chunk::<2>()
        .ok_or(RecordError::Truncated { field })?;
    let n = usize::from(u16::from_be_bytes(*len));
    if n > MAX_FIELD_LEN {
        return Err(CredentialError::TooLong {
            field,
            max: MAX_FIELD_LEN,
        }
        .into());
    }
    if tail.len() < n {
        return Err(RecordError::Truncated { field });
    }
    let (value, tail) = tail.split_at(n);
    *rest = tail;
    let text =
        std::str::from_utf8(value).map_err(|_| CredentialError::InvalidCharacter { field })?;
    let mut s = Zeroizing::new(String::with_capacity(n));
    s.push_str(text);
    Ok(s)
}

/// Decodes a version 1 record for `credential`.
///
/// Never panics, whatever `bytes` holds.
///
/// # Errors
///
/// [`RecordError`] naming the part that breaks the format.
pub fn decode(credential: AccountId, bytes: &[u8]) -> Result<ExchangeCredential, RecordError> {
    let [version, flags, rest @ ..] = bytes else {
        return Err(RecordError::Truncated { field: "header" });
    };
    if *version != RECORD_VERSION {
        return Err(RecordError::Version);
    }
    if flags & !(FLAG_READ_ONLY | FLAG_PASSPHRASE) != 0 {
        return Err(RecordError::Flags);
    }
    let mut rest = rest;
    let api_key = take_field(&mut rest, "api_key")?;
    let secret = take_field(&mut rest, "secret")?;
    let passphrase = if flags & FLAG_PASSPHRASE != 0 {
        Some(take_field(&mut rest, "passphrase")?)
    } else {
        None
    };
    if !rest.is_empty() {
        return Err(RecordError::TrailingBytes);
    }
    Ok(ExchangeCredential::new(
        credential,
        api_key,
        secret,
        passphrase,
        flags & FLAG_READ_ONLY != 0,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id() -> AccountId {
        AccountId::new("acct-1").unwrap()
    }

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// `tests/data/record_*_pass.hex` decode and re-encode to the same bytes;
    /// `record_*_fail.hex` are refused. Lines starting with `#` are comments.
    #[test]
    fn vectors() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let mut seen = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.starts_with("record_") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
            let bytes = unhex(&hex);
            let result = decode(id(), &bytes);
            if name.ends_with("_pass.hex") {
                seen.0 += 1;
                let c = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(&*encode(&c), &bytes[..], "{name}");
            } else {
                assert!(name.ends_with("_fail.hex"), "{name}: not *_pass/*_fail");
                seen.1 += 1;
                assert!(result.is_err(), "{name} decoded");
            }
        }
        assert!(seen.0 >= 2 && seen.1 >= 6, "too few vectors: {seen:?}");
    }

    #[test]
    fn known_answer() {
        let c = ExchangeCredential::new(
            id(),
            Zeroizing::new("AK".into()),
            Zeroizing::new("sk".into()),
            None,
            true,
        )
        .unwrap();
        assert_eq!(
            &*encode(&c),
            &[1, 1, 0, 2, b'A', b'K', 0, 2, b's', b'k'][..]
        );
    }

    proptest! {
        #[test]
        fn round_trip(api in "[!-~]{1,64}", secret in "[!-~]{1,64}",
                      pass in proptest::option::of("[!-~]{1,32}"), ro in any::<bool>()) {
            let c = ExchangeCredential::new(id(), Zeroizing::new(api.clone()),
                Zeroizing::new(secret.clone()), pass.clone().map(Zeroizing::new), ro).unwrap();
            let back = decode(id(), &encode(&c)).unwrap();
            prop_assert_eq!(back.expose_api_key(), api.as_str());
            prop_assert_eq!(back.expose_secret(), secret.as_str());
            prop_assert_eq!(back.expose_passphrase(), pass.as_deref());
            prop_assert_eq!(back.is_read_only(), ro);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(id(), &bytes);
        }
    }
}
