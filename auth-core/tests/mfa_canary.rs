//! Canary for the second factor: the TOTP secret, the otpauth URI, the recovery codes,
//! the mfa_token and a TOTP code go through enrolment, confirmation, refusals, the login
//! challenge, disable and every Debug/Display with a capturing tracing subscriber at
//! TRACE; none may appear in the captured output or in any Debug/Display string.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use crate::capture;
use capture::Capture;

use std::sync::Arc;

use auth_core::password::PasswordConfig;
use auth_core::{
    Accounts, LoginStep, MemorySealer, MemoryStore, Mfa, MfaConfig, Password, PasswordHasher,
    SessionConfig, Sessions, Totp, TotpConfig, TotpSecret,
};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mfa_secrets_never_leak() {
    let capture = Capture::install();

    let store = Arc::new(MemoryStore::new());
    let hasher = PasswordHasher::new(auth_core::danger::weak_password_params(
        PasswordConfig::default(),
        256,
        1,
        1,
    ))
    .unwrap();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let sealer = MemorySealer::generate().unwrap();
    let mut out = format!("{sealer:?}");
    let mfa = Mfa::new(store.clone(), Arc::new(sealer), MfaConfig::new("Canary"));
    let accounts = Accounts::new(store.clone(), sessions, hasher).with_mfa(mfa.clone());
    out += &format!("{mfa:?}{accounts:?}");
    let pw = Password::new("canary password 123");
    let user = accounts.register("c@example.com", &pw).await.unwrap();

    let enrollment = mfa.enroll(&user.id, "c@example.com").await.unwrap();
    out += &format!("{enrollment:?}");
    let secret_b32 = enrollment.secret_base32().to_owned();
    let uri = enrollment.otpauth_uri().to_owned();
    let key = TotpSecret::from_base32(&secret_b32).unwrap();
    out += &format!("{key:?}");
    let totp = Totp::new(&key, TotpConfig::default());
    out += &format!("{:?}", store_record(&store, &user.id).await);

    // Refusals with near misses of the secret as the code.
    for bad in [secret_b32.as_str(), uri.as_str(), "000000x"] {
        let e = mfa.confirm(&user.id, bad).await.unwrap_err();
        out += &format!("{e:?} {e}");
    }
    let confirm_code = totp.code_at(now() - 30).to_string();
    let codes = mfa.confirm(&user.id, &confirm_code).await.unwrap();
    out += &format!("{codes:?}");
    let recovery: Vec<String> = codes.expose_secret().to_vec();
    // Replay and recovery-code paths.
    let e = mfa.verify(&user.id, &confirm_code).await.unwrap_err();
    out += &format!("{e:?} {e}");
    out += &format!("{:?}", mfa.verify(&user.id, &recovery[0]).await);
    let e = mfa.verify(&user.id, &recovery[0]).await.unwrap_err();
    out += &format!("{e:?} {e}");
    let e = mfa.enroll(&user.id, &uri).await.unwrap_err();
    out += &format!("{e:?} {e}");

    // Login challenge: issued, refused with a wrong code, reused, malformed.
    let step = accounts.login("c@example.com", &pw).await.unwrap();
    out += &format!("{step:?}");
    let LoginStep::SecondFactorRequired(challenge) = step else {
        panic!("second factor expected")
    };
    let token = challenge.expose_secret().to_owned();
    out += &format!("{challenge:?}");
    let e = accounts.login_mfa(&token, &recovery[1]).await;
    out += &format!("{e:?}");
    let e = accounts.login_mfa(&token, &recovery[2]).await.unwrap_err();
    out += &format!("{e:?} {e}");
    let e = accounts
        .login_mfa(&format!("{token}x"), &recovery[2])
        .await
        .unwrap_err();
    out += &format!("{e:?} {e}");
    let parsed = auth_core::mfa::MfaToken::parse(&token).unwrap();
    out += &format!("{parsed:?}");
    let e = auth_core::mfa::MfaToken::parse(&format!("{token}x")).unwrap_err();
    out += &format!("{e:?} {e}");

    // Disable: wrong password, then right.
    let e = accounts
        .disable_mfa(&user.id, &Password::new("wrong password!"), &recovery[3])
        .await
        .unwrap_err();
    out += &format!("{e:?} {e}");
    accounts
        .disable_mfa(&user.id, &pw, &recovery[4])
        .await
        .unwrap();

    let logs = capture.text();
    assert!(logs.contains("mfa.activated"), "capture works: {logs}");
    assert!(logs.contains("mfa.challenge_issued"));
    let lower = secret_b32.to_ascii_lowercase();
    let mut canaries = vec![
        secret_b32.as_str(),
        lower.as_str(),
        uri.as_str(),
        token.as_str(),
        &token[4..],
        confirm_code.as_str(),
    ];
    let stripped: Vec<String> = recovery.iter().map(|r| r.replace('-', "")).collect();
    canaries.extend(recovery.iter().map(String::as_str));
    canaries.extend(stripped.iter().map(String::as_str));
    for canary in canaries {
        assert!(!logs.contains(canary), "leaked into logs: {canary}");
        assert!(!out.contains(canary), "leaked into Debug/Display: {canary}");
    }
}

async fn store_record(store: &MemoryStore, user_id: &str) -> auth_core::mfa::MfaRecord {
    use auth_core::MfaStore as _;
    store.mfa_record(user_id).await.unwrap().unwrap()
}
