//! Wrong second-factor codes are limited per user on every path that checks a code
//! (`Mfa::verify`, the login's second step, disable), with the login throttle's
//! second-factor backoff: after the free failures, even a right code is refused
//! (429-style `Throttled`) without being checked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::{
    AccountError, Accounts, FirstFactor, LoginThrottle, MemorySealer, MemoryStore, Mfa, MfaConfig,
    MfaError, Password, SessionConfig, Sessions, TotpConfig, TotpSecret,
};

const PW: &str = "correct horse battery staple";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 6238 SHA-1, 6 digits, 30 s, computed here with aws-lc-rs HMAC directly.
fn code(secret_b32: &str, t: u64) -> String {
    use aws_lc_rs::hmac;
    let key = TotpSecret::from_base32(secret_b32).unwrap();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key.expose_secret()),
        &(t / 30).to_be_bytes(),
    );
    let tag = tag.as_ref();
    let off = usize::from(tag[tag.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([tag[off] & 0x7f, tag[off + 1], tag[off + 2], tag[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// A code that is wrong for every step of the window.
fn wrong_code(secret: &str) -> String {
    let t = now();
    let near: Vec<String> = (0..=3).map(|i| code(secret, t + 60 - i * 30)).collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test]
async fn wrong_codes_are_throttled_on_every_path() {
    let store = Arc::new(MemoryStore::new());
    let throttle = LoginThrottle::memory();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let config = MfaConfig::new("Strongroom test").with_totp(TotpConfig::new());
    let mfa = Mfa::new(
        store.clone(),
        Arc::new(MemorySealer::generate().unwrap()),
        config,
    )
    .with_throttle(throttle.clone());
    let accounts = Accounts::new(store.clone(), sessions, support::fast_hasher())
        .with_mfa(mfa.clone())
        .with_throttle(throttle);
    let user = accounts
        .register("otp@example.com", &Password::new(PW))
        .await
        .unwrap();
    let secret = mfa
        .enroll(&user.id, "otp@example.com")
        .await
        .unwrap()
        .secret_base32()
        .to_owned();
    mfa.confirm(&user.id, &code(&secret, now() - 30))
        .await
        .unwrap();
    let bad = wrong_code(&secret);

    // The free failures are answered as wrong codes...
    for i in 0..3 {
        assert!(
            matches!(mfa.verify(&user.id, &bad).await, Err(MfaError::InvalidCode)),
            "free failure {i}"
        );
    }
    // ...then even the right code is refused without being checked.
    match mfa.verify(&user.id, &code(&secret, now())).await {
        Err(MfaError::Throttled { retry_after }) => assert!(retry_after.as_secs() <= 2),
        other => panic!("expected Throttled, got {other:?}"),
    }
    // The login's second step goes through the same limit (as AccountError::Throttled).
    let FirstFactor::SecondFactorRequired(challenge) = accounts
        .authenticate("otp@example.com", &Password::new(PW), None)
        .await
        .unwrap()
    else {
        panic!("second factor expected");
    };
    assert!(matches!(
        accounts
            .complete_mfa(challenge.expose_secret(), &code(&secret, now()))
            .await,
        Err(AccountError::Throttled { .. })
    ));
    // And so does disabling the factor.
    assert!(matches!(
        accounts
            .disable_mfa(&user.id, &Password::new(PW), &code(&secret, now()))
            .await,
        Err(AccountError::Throttled { .. })
    ));
    // Another user is not affected.
    let other = accounts
        .register("other@example.com", &Password::new(PW))
        .await
        .unwrap();
    let other_secret = mfa
        .enroll(&other.id, "other@example.com")
        .await
        .unwrap()
        .secret_base32()
        .to_owned();
    mfa.confirm(&other.id, &code(&other_secret, now()))
        .await
        .unwrap();
}
