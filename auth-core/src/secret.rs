//! Shared helpers for secrets: SHA-256 digests, constant-time comparison, random tokens
//! and the current time. Crate-internal.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{SHA256, digest};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A SHA-256 digest.
pub(crate) type Digest = [u8; 32];

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> Digest {
    let d = digest(&SHA256, data);
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

/// Constant-time equality of two digests.
pub(crate) fn digest_eq(a: &Digest, b: &Digest) -> bool {
    bool::from(a.ct_eq(b))
}

/// The system random generator failed (the crate refuses to issue a weak token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("system random number generator failed")]
pub struct RandomError;

/// `N` bytes from the system CSPRNG (aws-lc-rs), wiped on drop.
pub(crate) fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, RandomError> {
    let mut buf = Zeroizing::new([0u8; N]);
    aws_lc_rs::rand::fill(buf.as_mut()).map_err(|_| RandomError)?;
    Ok(buf)
}

/// 32 random bytes as unpadded base64url (43 characters): a 256-bit secret.
pub(crate) fn random_secret_b64() -> Result<Zeroizing<String>, RandomError> {
    use base64ct::Encoding as _;
    let bytes = random_bytes::<32>()?;
    Ok(Zeroizing::new(base64ct::Base64UrlUnpadded::encode_string(
        bytes.as_ref(),
    )))
}

/// 16 random bytes as lower-case hex (32 characters): a non-secret 128-bit id.
pub(crate) fn random_id() -> Result<String, RandomError> {
    let bytes = random_bytes::<16>()?;
    Ok(base16ct::lower::encode_string(bytes.as_ref()))
}

/// The current time in Unix seconds (0 if the clock is before 1970, which only makes
/// everything look expired later: fail closed).
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
