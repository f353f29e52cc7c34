//! Time-based one-time passwords: the RFC 6238 TOTP core over RFC 4226 HOTP.
//!
//! This is the computation and constant-time check only. Enrolment, storage of the
//! last accepted time step (the replay guard), recovery codes and the login flow are in
//! [`crate::mfa`].
//!
//! - [`TotpSecret`]: the shared key, wiped on drop, base32 (RFC 4648) in and out.
//! - [`TotpConfig`]: HMAC algorithm, number of digits, time step and allowed skew.
//! - [`Totp`]: [`Totp::code_at`] and [`Totp::verify`], which returns the matched time
//!   step so that a caller can refuse a second use of the same step.
//!
//! HMAC is aws-lc-rs (`aws_lc_rs::hmac`); nothing here is a hand-written hash.

use std::fmt;

use aws_lc_rs::hmac;
use base32ct::{Base32Unpadded, Base32UpperUnpadded, Encoding as _};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::secret::{RandomError, random_bytes};

/// Shortest accepted shared secret in bytes (RFC 4226 §4, R6: at least 128 bits).
pub const MIN_SECRET_LEN: usize = 16;
/// Longest accepted shared secret in bytes (an HMAC-SHA-512 block; RFC 6238's longest
/// test seed is 64 bytes).
pub const MAX_SECRET_LEN: usize = 128;
/// Length of a secret made by [`TotpSecret::generate`] (RFC 4226 §4 recommends 160
/// bits).
pub const GENERATED_SECRET_LEN: usize = 20;
/// Largest accepted skew, in steps either side of the current one.
pub const MAX_SKEW: u32 = 10;

/// A TOTP configuration or secret was refused. Names the field, never the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// `secret`: not unpadded RFC 4648 base32 (a character outside `A-Z2-7`, either
    /// case; a length no byte string encodes to; or non-zero trailing bits).
    #[error("TOTP secret: not unpadded base32 (RFC 4648)")]
    SecretEncoding,
    /// `secret`: shorter than [`MIN_SECRET_LEN`] or longer than [`MAX_SECRET_LEN`]
    /// bytes.
    #[error("TOTP secret: length must be 16 to 128 bytes")]
    SecretLength,
    /// `digits`: only 6 and 8 are accepted.
    #[error("TOTP digits: must be 6 or 8")]
    Digits,
    /// `step`: the time step must be at least one second.
    #[error("TOTP step: must be at least 1 second")]
    Step,
    /// `skew`: more than [`MAX_SKEW`] steps either side.
    #[error("TOTP skew: at most 10 steps either side")]
    Skew,
}

/// The shared TOTP key. Wiped on drop; `Debug` prints nothing of it.
pub struct TotpSecret {
    key: Zeroizing<Vec<u8>>,
}

impl TotpSecret {
    /// A fresh secret of [`GENERATED_SECRET_LEN`] bytes from the system CSPRNG.
    ///
    /// # Errors
    /// [`RandomError`] if the system random generator fails.
    pub fn generate() -> Result<Self, RandomError> {
        let bytes = random_bytes::<GENERATED_SECRET_LEN>()?;
        Ok(Self {
            key: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// A secret from raw key bytes.
    ///
    /// # Errors
    /// [`TotpError::SecretLength`] outside 16 to 128 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(TotpError::SecretLength);
        }
        Ok(Self {
            key: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// A secret from unpadded RFC 4648 base32 (all upper or all lower case, as
    /// authenticator apps show it; no `=` padding, no spaces).
    ///
    /// # Errors
    /// [`TotpError::SecretEncoding`] if `text` is not such base32,
    /// [`TotpError::SecretLength`] if the decoded key is outside 16 to 128 bytes.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        // Refuse absurd input before decoding it: 128 bytes are 205 characters.
        if text.len() > MAX_SECRET_LEN.div_ceil(5) * 8 {
            return Err(TotpError::SecretLength);
        }
        let key = base32_decode(text).ok_or(TotpError::SecretEncoding)?;
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.len()) {
            return Err(TotpError::SecretLength);
        }
        Ok(Self { key })
    }

    /// The key as unpadded upper-case RFC 4648 base32 (for an `otpauth://` URI or QR
    /// code), wiped on drop.
    #[must_use]
    pub fn to_base32(&self) -> Zeroizing<String> {
        base32_encode(&self.key)
    }

    /// The raw key bytes.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSecret").finish_non_exhaustive()
    }
}

/// The HMAC used by HOTP (RFC 6238 §1.2 allows SHA-1, SHA-256 and SHA-512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1: what RFC 4226 specifies and what authenticator apps assume.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            // HOTP is defined over HMAC-SHA-1; HMAC-SHA-1 is still a sound PRF.
            Self::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => hmac::HMAC_SHA256,
            Self::Sha512 => hmac::HMAC_SHA512,
        }
    }
}

/// TOTP parameters. The default is what authenticator apps use: HMAC-SHA-1, 6 digits,
/// 30-second steps, and one step of skew either side (RFC 6238 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpConfig {
    algorithm: TotpAlgorithm,
    digits: u8,
    step: u64,
    skew: u32,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            algorithm: TotpAlgorithm::Sha1,
            digits: 6,
            step: 30,
            skew: 1,
        }
    }
}

impl TotpConfig {
    /// The default configuration.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the HMAC algorithm.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: TotpAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of digits (6 or 8).
    ///
    /// # Errors
    /// [`TotpError::Digits`] for any other number.
    pub fn with_digits(mut self, digits: u8) -> Result<Self, TotpError> {
        if digits != 6 && digits != 8 {
            return Err(TotpError::Digits);
        }
        self.digits = digits;
        Ok(self)
    }

    /// Sets the time step in seconds (RFC 6238 `X`).
    ///
    /// # Errors
    /// [`TotpError::Step`] for 0.
    pub fn with_step_secs(mut self, step: u64) -> Result<Self, TotpError> {
        if step == 0 {
            return Err(TotpError::Step);
        }
        self.step = step;
        Ok(self)
    }

    /// Sets how many steps either side of the current one are accepted.
    ///
    /// # Errors
    /// [`TotpError::Skew`] above [`MAX_SKEW`].
    pub fn with_skew(mut self, skew: u32) -> Result<Self, TotpError> {
        if skew > MAX_SKEW {
            return Err(TotpError::Skew);
        }
        self.skew = skew;
        Ok(self)
    }

    /// The HMAC algorithm.
    #[must_use]
    pub fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    /// The number of digits.
    #[must_use]
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// The time step in seconds.
    #[must_use]
    pub fn step_secs(&self) -> u64 {
        self.step
    }

    /// Steps accepted either side of the current one.
    #[must_use]
    pub fn skew(&self) -> u32 {
        self.skew
    }
}

/// A TOTP generator and verifier for one secret. `Debug` prints the configuration only.
pub struct Totp {
    key: hmac::Key,
    config: TotpConfig,
}

impl fmt::Debug for Totp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Totp")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Totp {
    /// A TOTP for `secret` (the key is copied into the HMAC state).
    #[must_use]
    pub fn new(secret: &TotpSecret, config: TotpConfig) -> Self {
        Self {
            key: hmac::Key::new(config.algorithm.hmac(), secret.expose_secret()),
            config,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TotpConfig {
        &self.config
    }

    /// The time step (RFC 6238 `T`, with `T0` = 0) that contains `unix_secs`.
    #[must_use]
    pub fn step_at(&self, unix_secs: u64) -> u64 {
        unix_secs / self.config.step
    }

    /// The RFC 4226 HOTP value for `counter`, as a number below `10^digits`.
    ///
    /// Dynamic truncation (RFC 4226 §5.3) picks four bytes at an offset taken from the
    /// tag; the pick reads every candidate offset and selects in constant time, so that
    /// no memory access depends on the tag.
    #[must_use]
    pub fn hotp(&self, counter: u64) -> u32 {
        let tag = hmac::sign(&self.key, &counter.to_be_bytes());
        let tag = tag.as_ref();
        let offset = tag.last().map_or(0, |b| b & 0x0f);
        let mut word = 0u32;
        for (i, w) in tag.windows(4).take(16).enumerate() {
            #[allow(clippy::cast_possible_truncation)] // i < 16
            let here = (i as u8).ct_eq(&offset);
            let candidate = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
            word.conditional_assign(&candidate, here);
        }
        (word & 0x7fff_ffff) % self.modulus()
    }

    /// The code for time `unix_secs`, zero-padded to the configured digits; wiped on
    /// drop.
    #[must_use]
    pub fn code_at(&self, unix_secs: u64) -> Zeroizing<String> {
        let value = self.hotp(self.step_at(unix_secs));
        Zeroizing::new(format!(
            "{value:0width$}",
            width = usize::from(self.config.digits)
        ))
    }

    /// Checks `code` at time `unix_secs` against every step from `skew` before to `skew`
    /// after the current one, and returns the matched step (`None` if none matches).
    ///
    /// The caller must refuse a step it has already accepted for this user (RFC 6238
    /// §5.2: a code is accepted once); the returned step is what it stores. If the code
    /// matches more than one step of the window, the latest is returned, so that a
    /// stored step covers them all.
    ///
    /// `code` is attacker controlled: a wrong length or anything but ASCII digits is
    /// refused without computing anything and without panicking. A well-formed code is
    /// compared with every candidate step in constant time: the whole window is
    /// computed and compared, with no exit at the first match.
    #[must_use]
    pub fn verify(&self, code: &str, unix_secs: u64) -> Option<u64> {
        let given = self.parse(code)?;
        let current = self.step_at(unix_secs);
        let skew = u64::from(self.config.skew);
        let first = current.saturating_sub(skew);
        let last = current.saturating_add(skew);
        let mut found = 0u64;
        let mut any = subtle::Choice::from(0);
        for step in first..=last {
            let hit = self.hotp(step).ct_eq(&given);
            found.conditional_assign(&step, hit);
            any |= hit;
        }
        bool::from(any).then_some(found)
    }

    /// `code` as a number if it is exactly `digits` ASCII digits.
    fn parse(&self, code: &str) -> Option<u32> {
        let bytes = code.as_bytes();
        if bytes.len() != usize::from(self.config.digits) {
            return None;
        }
        bytes.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    }

    fn modulus(&self) -> u32 {
        10u32.pow(u32::from(self.config.digits))
    }
}

/// Unpadded upper-case RFC 4648 base32 of `bytes` (RustCrypto's `base32ct`: no
/// table lookups, no branches on the data).
fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(Base32UpperUnpadded::encode_string(bytes))
}

/// The bytes of unpadded RFC 4648 base32 `text`, all upper or all lower case, or
/// `None`. Decoded into a buffer that is wiped on drop, also on failure. Only the
/// canonical text of a key is accepted (non-zero bits after the last byte are refused:
/// one string per key), checked by encoding the result again.
fn base32_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(vec![0u8; text.len() * 5 / 8]);
    let (len, again) = match Base32UpperUnpadded::decode(text, &mut out) {
        Ok(bytes) => (
            bytes.len(),
            Zeroizing::new(Base32UpperUnpadded::encode_string(bytes)),
        ),
        Err(_) => {
            let bytes = Base32Unpadded::decode(text, &mut out).ok()?;
            (
                bytes.len(),
                Zeroizing::new(Base32Unpadded::encode_string(bytes)),
            )
        }
    };
    if !bool::from(again.as_bytes().ct_eq(text.as_bytes())) {
        return None;
    }
    out.truncate(len);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4648 §10 test vectors, with the `=` padding removed.
    const RFC4648: &[(&str, &str)] = &[
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ];

    #[test]
    fn base32_rfc4648_vectors() {
        for (plain, encoded) in RFC4648 {
            assert_eq!(base32_encode(plain.as_bytes()).as_str(), *encoded);
            assert_eq!(base32_decode(encoded).unwrap().as_slice(), plain.as_bytes());
            let lower = encoded.to_ascii_lowercase();
            assert_eq!(base32_decode(&lower).unwrap().as_slice(), plain.as_bytes());
        }
    }

    #[test]
    fn base32_refuses_bad_input() {
        for bad in [
            "MZXW6YQ=",
            "MY======",
            "M",
            "MZX",
            "MZXW6Y",
            "MZ", // padding, lengths, bits
            "MZXW0",
            "MZXW1",
            "MZXW8",
            "MZ W6",
            "MZXW6YQ\n",
            "MZXWé",
        ] {
            assert!(base32_decode(bad).is_none(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn base32_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = base32_encode(&bytes);
            prop_assert_eq!(text.len(), (bytes.len() * 8).div_ceil(5));
            let back = base32_decode(&text).unwrap();
            prop_assert_eq!(back.as_slice(), bytes.as_slice());
        }

        #[test]
        fn base32_decode_never_panics(text in ".{0,64}") {
            if let Some(bytes) = base32_decode(&text) {
                let again = base32_encode(&bytes);
                prop_assert_eq!(again.as_str(), text.to_ascii_uppercase());
                prop_assert!(text == text.to_ascii_uppercase() || text == text.to_ascii_lowercase());
            }
        }
    }
}
