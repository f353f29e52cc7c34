//! TOTP (RFC 6238) over HOTP (RFC 4226): known answers, the verification window,
//! hostile codes, secret handling and Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use auth_core::totp::{MAX_SECRET_LEN, MIN_SECRET_LEN};
use auth_core::{Totp, TotpAlgorithm, TotpConfig, TotpError, TotpSecret};
use proptest::prelude::*;

/// The RFC seed for `algorithm`: ASCII "1234567890" repeated to 20, 32 or 64 bytes.
fn rfc_seed(algorithm: TotpAlgorithm) -> TotpSecret {
    let len = match algorithm {
        TotpAlgorithm::Sha256 => 32,
        TotpAlgorithm::Sha512 => 64,
        _ => 20,
    };
    let seed: Vec<u8> = b"1234567890".iter().copied().cycle().take(len).collect();
    TotpSecret::from_bytes(&seed).unwrap()
}

fn algorithm(name: &str) -> TotpAlgorithm {
    match name {
        "SHA1" => TotpAlgorithm::Sha1,
        "SHA256" => TotpAlgorithm::Sha256,
        "SHA512" => TotpAlgorithm::Sha512,
        other => panic!("unknown algorithm {other}"),
    }
}

struct Vector {
    kind: String,
    algorithm: TotpAlgorithm,
    digits: u8,
    input: u64,
    code: String,
}

fn vectors(name: &str) -> Vec<Vector> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let v: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l}");
            Vector {
                kind: f[0].to_owned(),
                algorithm: algorithm(f[1]),
                digits: f[2].parse().unwrap(),
                input: f[3].parse().unwrap(),
                code: f[4].to_owned(),
            }
        })
        .collect();
    assert!(!v.is_empty(), "{name} has no vectors");
    v
}

fn totp(algorithm: TotpAlgorithm, digits: u8) -> Totp {
    let config = TotpConfig::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .unwrap();
    Totp::new(&rfc_seed(algorithm), config)
}

#[test]
fn rfc6238_and_rfc4226_known_answers() {
    let all = vectors("totp_rfc6238_pass.txt");
    let mut seen = [0usize; 4];
    for v in &all {
        let t = totp(v.algorithm, v.digits);
        match v.kind.as_str() {
            "totp" => {
                assert_eq!(
                    t.code_at(v.input).as_str(),
                    v.code,
                    "{:?} at {}",
                    v.algorithm,
                    v.input
                );
                let step = v.input / 30;
                assert_eq!(t.verify(&v.code, v.input), Some(step), "{}", v.code);
                seen[match v.algorithm {
                    TotpAlgorithm::Sha1 => 0,
                    TotpAlgorithm::Sha256 => 1,
                    _ => 2,
                }] += 1;
            }
            "hotp" => {
                let expected: u32 = v.code.parse().unwrap();
                assert_eq!(t.hotp(v.input), expected, "counter {}", v.input);
                // Same numbers through the time API: counter c is the step at 30 c.
                assert_eq!(t.code_at(v.input * 30).as_str(), v.code);
                seen[3] += 1;
            }
            other => panic!("unknown kind {other}"),
        }
    }
    assert_eq!(seen, [6, 6, 6, 10], "vector file is incomplete");
}

#[test]
fn codes_are_zero_padded() {
    // RFC 6238 Appendix B: SHA-1 at 1111111109 is 07081804 (a leading zero).
    let t = totp(TotpAlgorithm::Sha1, 8);
    assert_eq!(t.code_at(1_111_111_109).as_str(), "07081804");
    assert_eq!(
        t.verify("07081804", 1_111_111_109),
        Some(1_111_111_109 / 30)
    );
    assert_eq!(t.verify("7081804", 1_111_111_109), None);
}

#[test]
fn window_accepts_one_step_either_side_and_no_more() {
    let t = Totp::new(&rfc_seed(TotpAlgorithm::Sha1), TotpConfig::default());
    let now: u64 = 1_700_000_015; // mid-step
    let step = now / 30;
    for delta in [-1i64, 0, 1] {
        let at = now.checked_add_signed(delta * 30).unwrap();
        let code = t.code_at(at);
        assert_eq!(t.verify(&code, now), Some(at / 30), "delta {delta}");
    }
    for delta in [-3i64, -2, 2, 3] {
        let at = now.checked_add_signed(delta * 30).unwrap();
        let code = t.code_at(at);
        // Skip the (one in a million) collision with a code inside the window.
        let inside = [-1i64, 0, 1]
            .iter()
            .any(|d| *t.code_at(now.checked_add_signed(d * 30).unwrap()) == *code);
        if !inside {
            assert_eq!(t.verify(&code, now), None, "delta {delta}");
        }
    }
    // The step edge: the last second of step s and the first of s + 1.
    let edge = (step + 1) * 30;
    let code = t.code_at(edge);
    assert_eq!(t.verify(&code, edge - 1), Some(step + 1));
    assert_eq!(t.verify(&code, edge + 30), Some(step + 1));
    let far = t.code_at(edge + 60);
    let collides = *far == *t.code_at(edge - 1) || *far == *t.code_at(edge - 31);
    if !collides {
        assert_eq!(t.verify(&far, edge - 1), None);
    }
}

#[test]
fn zero_skew_accepts_the_current_step_only() {
    let config = TotpConfig::new().with_skew(0).unwrap();
    let t = Totp::new(&rfc_seed(TotpAlgorithm::Sha1), config);
    let now = 1_234_567_890;
    assert_eq!(t.verify(&t.code_at(now), now), Some(now / 30));
    let prev = t.code_at(now - 30);
    if *prev != *t.code_at(now) {
        assert_eq!(t.verify(&prev, now), None);
    }
}

#[test]
fn window_near_time_zero_and_the_end_of_time() {
    let t = Totp::new(&rfc_seed(TotpAlgorithm::Sha1), TotpConfig::default());
    assert_eq!(t.verify(&t.code_at(0), 0), Some(0));
    assert_eq!(t.verify(&t.code_at(30), 0), Some(1));
    assert_eq!(
        t.verify(&t.code_at(u64::MAX), u64::MAX),
        Some(u64::MAX / 30)
    );
}

#[test]
fn malformed_codes_are_refused_without_panicking() {
    let t = Totp::new(&rfc_seed(TotpAlgorithm::Sha1), TotpConfig::default());
    let now = 59;
    let good = t.code_at(now);
    let huge = "9".repeat(1 << 20);
    let mut cases: Vec<String> = vec![
        String::new(),
        "1".into(),
        "12345".into(),
        "1234567".into(),
        "99999999999999999999999".into(),
        huge,
        " 12345".into(),
        "12345 ".into(),
        "-12345".into(),
        "+12345".into(),
        "12a456".into(),
        "１２３４５６".into(), // full-width digits
        "12345\u{0}".into(),
        "٠١٢٣٤٥".into(), // Arabic-Indic digits
    ];
    cases.push(format!("{}0", good.as_str()));
    cases.push(good[..5].to_owned());
    for c in &cases {
        assert_eq!(t.verify(c, now), None);
    }
    assert_eq!(t.verify(&good, now), Some(now / 30));
}

proptest! {
    #[test]
    fn verify_never_panics(code in ".{0,16}", now in any::<u64>()) {
        let t = Totp::new(&rfc_seed(TotpAlgorithm::Sha1), TotpConfig::default());
        if let Some(step) = t.verify(&code, now) {
            prop_assert!(step.abs_diff(now / 30) <= 1);
            prop_assert_eq!(code.len(), 6);
        }
    }

    #[test]
    fn code_round_trips_through_verify(now in any::<u64>(), eight in any::<bool>()) {
        let t = totp(TotpAlgorithm::Sha256, if eight { 8 } else { 6 });
        let code = t.code_at(now);
        prop_assert_eq!(code.len(), if eight { 8 } else { 6 });
        prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
        prop_assert!(t.verify(&code, now).is_some());
    }

    #[test]
    fn secret_base32_round_trip(bytes in proptest::collection::vec(any::<u8>(), MIN_SECRET_LEN..=MAX_SECRET_LEN)) {
        let secret = TotpSecret::from_bytes(&bytes).unwrap();
        let text = secret.to_base32();
        prop_assert!(text.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        let back = TotpSecret::from_base32(&text).unwrap();
        prop_assert_eq!(back.expose_secret(), bytes.as_slice());
        let lower = TotpSecret::from_base32(&text.to_ascii_lowercase()).unwrap();
        prop_assert_eq!(lower.expose_secret(), bytes.as_slice());
    }
}

#[test]
fn secret_base32_known_value() {
    // "12345678901234567890" in base32 (as authenticator apps are given the RFC seed).
    let secret = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    assert_eq!(secret.expose_secret(), b"12345678901234567890");
    assert_eq!(
        rfc_seed(TotpAlgorithm::Sha1).to_base32().as_str(),
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    );
}

#[test]
fn bad_secrets_and_configs_are_typed_errors() {
    assert_eq!(
        TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1").unwrap_err(),
        TotpError::SecretEncoding
    );
    assert_eq!(
        TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====").unwrap_err(),
        TotpError::SecretEncoding
    );
    // 10 bytes: below the 128-bit minimum of RFC 4226.
    assert_eq!(
        TotpSecret::from_base32("GEZDGNBVGY3TQOJQ").unwrap_err(),
        TotpError::SecretLength
    );
    assert_eq!(
        TotpSecret::from_base32(&"A".repeat(10_000)).unwrap_err(),
        TotpError::SecretLength
    );
    assert_eq!(
        TotpSecret::from_bytes(&[7; 15]).unwrap_err(),
        TotpError::SecretLength
    );
    assert_eq!(
        TotpSecret::from_bytes(&[7; 129]).unwrap_err(),
        TotpError::SecretLength
    );
    assert!(TotpSecret::from_bytes(&[7; 16]).is_ok());
    assert!(TotpSecret::from_bytes(&[7; 128]).is_ok());
    for d in [0u8, 1, 5, 7, 9, 10, 255] {
        assert_eq!(
            TotpConfig::new().with_digits(d).unwrap_err(),
            TotpError::Digits
        );
    }
    assert_eq!(
        TotpConfig::new().with_step_secs(0).unwrap_err(),
        TotpError::Step
    );
    assert_eq!(
        TotpConfig::new().with_skew(11).unwrap_err(),
        TotpError::Skew
    );
    let d = TotpConfig::default();
    assert_eq!(
        (d.algorithm(), d.digits(), d.step_secs(), d.skew()),
        (TotpAlgorithm::Sha1, 6, 30, 1)
    );
    // Error messages name the field.
    assert!(TotpError::SecretEncoding.to_string().contains("secret"));
    assert!(TotpError::Digits.to_string().contains("digits"));
}

#[test]
fn generated_secrets_are_20_random_bytes() {
    let a = TotpSecret::generate().unwrap();
    let b = TotpSecret::generate().unwrap();
    assert_eq!(a.expose_secret().len(), 20);
    assert_ne!(a.expose_secret(), b.expose_secret());
    assert_eq!(a.to_base32().len(), 32);
}

#[test]
fn debug_prints_nothing_of_the_key() {
    // A canary key, and its forms that could leak: bytes, text, base32, hex.
    let canary = b"CANARY-totp-key-0123456789";
    let secret = TotpSecret::from_bytes(canary).unwrap();
    let b32 = secret.to_base32().to_string();
    let t = Totp::new(&secret, TotpConfig::default());
    let out = format!("{secret:?} {secret:#?} {t:?} {t:#?}");
    let hex: String = canary.iter().map(|b| format!("{b:02x}")).collect();
    let bytes_debug = format!("{:?}", canary.as_slice());
    for leak in [
        "CANARY",
        b32.as_str(),
        &b32[..8],
        hex.as_str(),
        &bytes_debug[1..12],
    ] {
        assert!(!out.contains(leak), "Debug output leaks {leak:?}");
    }
    assert!(out.contains("TotpSecret") && out.contains("Totp"));
}
