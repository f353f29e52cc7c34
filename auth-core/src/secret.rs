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
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality of two digests.
///
/// The digests are XORed as four 64-bit words and the differences ORed into one word:
/// straight-line arithmetic over all 32 bytes with no early exit. `subtle` then compares
/// that word with zero behind its optimisation barrier, so the compiler cannot turn the
/// result into a branch on where the digests differ. (One barrier instead of one per
/// word or byte: the compare is on the request path of every credential.)
pub(crate) fn digest_eq(a: &Digest, b: &Digest) -> bool {
    let diff = digest_words(a)
        .iter()
        .zip(digest_words(b))
        .fold(0u64, |acc, (x, y)| acc | (x ^ y));
    // The OR of the XORs is straight-line code (no branch to take early); `subtle` hides
    // the one comparison that decides. A `black_box` on `diff` as well was measured at
    // about 9 ns (10% of a session resolution) and is left out.
    bool::from(diff.ct_eq(&0))
}

/// A digest as four little-endian 64-bit words.
fn digest_words(d: &Digest) -> [u64; 4] {
    let (words, _) = d.as_chunks::<8>();
    let mut out = [0u64; 4];
    for (o, w) in out.iter_mut().zip(words) {
        *o = u64::from_le_bytes(*w);
    }
    out
}

/// Whether `b` is in the base64url alphabet `[A-Za-z0-9_-]` (`b | 0x20` folds upper case
/// onto lower case). Branch-free, so that a scan over a whole token compiles to vector
/// code instead of a mispredicted branch per character class.
pub(crate) const fn is_base64url(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 26) | (b == b'-') | (b == b'_')
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

/// How far the coarse clock may lag the true time: one tick is 1 to 10 ms (`HZ` of
/// 1000 to 100); 50 ms leaves room for ticks the kernel delivers late.
#[cfg(any(target_os = "linux", target_os = "android"))]
const COARSE_CLOCK_LAG: (i64, i64) = (0, 50_000_000);

/// The current Unix second for expiry checks on the request path: never earlier than
/// the true current second while the kernel keeps time, at most 50 ms later. A
/// credential with `expires_at <= now_unix_for_expiry()` is expired; so it may be refused
/// up to 50 ms before its expiry second, and is not accepted after it (fail closed).
///
/// On Linux this reads `CLOCK_REALTIME_COARSE` (the kernel's time at its last tick,
/// served from the vDSO without reading the hardware counter: about 3 ns against about
/// 25 ns for [`now_unix`] on the benchmark machine, where a whole session resolution is
/// about 100 ns) and adds [`COARSE_CLOCK_LAG`]. It uses the fallible call, so a kernel or
/// sandbox that refuses the coarse clock falls back to the precise one instead of
/// panicking. Elsewhere, and on that fallback, a clock before 1970 reads as the end of
/// time: everything is expired.
pub(crate) fn now_unix_for_expiry() -> i64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::time::{ClockId, DynamicClockId, clock_gettime_dynamic};

        if let Ok(now) = clock_gettime_dynamic(DynamicClockId::Known(ClockId::RealtimeCoarse)) {
            return latest_second((now.tv_sec, now.tv_nsec), COARSE_CLOCK_LAG);
        }
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(i64::MAX, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The whole second of `now + lag` (both `(seconds, nanoseconds)` with nanoseconds in
/// `0..1_000_000_000`): the latest second the true time can be in when a coarse clock
/// reads `now` and lags by at most `lag`.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn latest_second(now: (i64, i64), lag: (i64, i64)) -> i64 {
    let carry = (now.1 + lag.1) / 1_000_000_000;
    now.0.saturating_add(lag.0).saturating_add(carry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_eq_detects_a_difference_in_any_bit() {
        let a = sha256(b"one");
        assert!(digest_eq(&a, &a.clone()));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[byte] ^= 1 << bit;
                assert!(!digest_eq(&a, &b), "byte {byte} bit {bit}");
                assert!(!digest_eq(&b, &a), "byte {byte} bit {bit}");
            }
        }
        assert!(!digest_eq(&a, &sha256(b"two")));
    }

    #[test]
    fn is_base64url_matches_its_definition_for_every_byte() {
        let mut n = 0;
        for b in 0u8..=255 {
            let want = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
            assert_eq!(is_base64url(b), want, "byte {b}");
            n += usize::from(want);
        }
        assert_eq!(n, 64);
    }

    #[test]
    fn latest_second_adds_the_lag_and_carries_nanoseconds() {
        const TICK: (i64, i64) = (0, 4_000_000);
        assert_eq!(latest_second((100, 0), TICK), 100);
        assert_eq!(latest_second((100, 995_999_999), TICK), 100);
        assert_eq!(latest_second((100, 996_000_000), TICK), 101);
        assert_eq!(latest_second((100, 999_999_999), (0, 999_999_999)), 101);
        assert_eq!(latest_second((100, 500_000_000), (2, 0)), 102);
        assert_eq!(latest_second((i64::MAX, 999_999_999), TICK), i64::MAX);
    }

    #[test]
    fn expiry_clock_is_never_behind_and_at_most_a_second_ahead() {
        for _ in 0..10_000 {
            let before = now_unix();
            let expiry = now_unix_for_expiry();
            let after = now_unix();
            assert!(expiry >= before, "expiry clock {expiry} behind {before}");
            assert!(
                expiry <= after + 1,
                "expiry clock {expiry} ahead of {after}"
            );
        }
    }

    #[test]
    fn sha256_matches_the_known_answer() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let want = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(sha256(b"abc"), want);
    }
}
