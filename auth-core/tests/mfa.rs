//! The TOTP second factor on every store: enrolment and confirmation with codes computed
//! here from RFC 6238 (an independent HMAC), the replay guard (also under 50 concurrent
//! verifications), recovery codes, disable, the login challenge and the step-up check.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::mfa::{MfaState, MfaStore};
use auth_core::{
    AccountError, Accounts, FirstFactor, LoginKind, LoginStep, MemorySealer, Mfa, MfaConfig,
    MfaError, Password, Principal, Resolution, Resolver, SecondFactor, SessionConfig, Sessions,
    StepUpError, TotpAlgorithm, TotpConfig, TotpSecret, User,
};
use support::FullStore;

trait MfaFullStore: FullStore + MfaStore {}
impl<T: FullStore + MfaStore> MfaFullStore for T {}

const PW: &str = "correct horse battery staple";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 6238 TOTP computed here with aws-lc-rs HMAC directly (RFC 4226 §5.3 truncation),
/// independent of `auth_core::totp`.
fn rfc6238(secret_b32: &str, algorithm: TotpAlgorithm, digits: u32, t: u64) -> String {
    use aws_lc_rs::hmac;
    let key = TotpSecret::from_base32(secret_b32).unwrap();
    let alg = match algorithm {
        TotpAlgorithm::Sha256 => hmac::HMAC_SHA256,
        TotpAlgorithm::Sha512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
    };
    let tag = hmac::sign(
        &hmac::Key::new(alg, key.expose_secret()),
        &(t / 30).to_be_bytes(),
    );
    let tag = tag.as_ref();
    let off = usize::from(tag[tag.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([tag[off] & 0x7f, tag[off + 1], tag[off + 2], tag[off + 3]]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

fn code(secret: &str, t: u64) -> String {
    rfc6238(secret, TotpAlgorithm::Sha1, 6, t)
}

struct Ctx<S> {
    store: Arc<S>,
    sessions: Sessions,
    accounts: Accounts,
    mfa: Mfa,
}

fn ctx<S: MfaFullStore>(store: Arc<S>, config: MfaConfig) -> Ctx<S> {
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let mfa = Mfa::new(
        store.clone(),
        Arc::new(MemorySealer::generate().unwrap()),
        config,
    );
    let accounts = Accounts::new(store.clone(), sessions.clone(), support::fast_hasher())
        .with_mfa(mfa.clone());
    Ctx {
        store,
        sessions,
        accounts,
        mfa,
    }
}

/// A registered user with a confirmed factor (confirmed with the previous step's code,
/// so that the current and next steps are still free). Returns the base32 secret and the
/// recovery codes.
async fn enrolled<S: MfaFullStore>(c: &Ctx<S>, email: &str) -> (User, String, Vec<String>) {
    let user = c
        .accounts
        .register(email, &Password::new(PW))
        .await
        .unwrap();
    let e = c.mfa.enroll(&user.id, email).await.unwrap();
    let secret = e.secret_base32().to_owned();
    let codes = c
        .mfa
        .confirm(&user.id, &code(&secret, now() - 30))
        .await
        .unwrap();
    (user, secret, codes.expose_secret().to_vec())
}

async fn mfa_suite<S: MfaFullStore>(store: Arc<S>) {
    enrol_confirm_and_replay(store.clone()).await;
    concurrent_replay(store.clone()).await;
    recovery_codes(store.clone()).await;
    disable_needs_password_and_code(store.clone()).await;
    login_flow(store.clone()).await;
    token_expires(store.clone()).await;
    step_up(store.clone()).await;
    login_kind(store.clone()).await;
    sealed_secrets_for_rotation(store.clone()).await;
    sha256_eight_digits(store).await;
}

/// Key rotation: every sealed secret (pending ones too) is listed in pages in user-id
/// order, and replaced only by a compare-and-set on the bytes read; the factor keeps its
/// state and replay guard, and works with the re-sealed secret.
async fn sealed_secrets_for_rotation<S: MfaFullStore>(store: Arc<S>) {
    use auth_core::TotpSealer as _;
    let sealer = Arc::new(MemorySealer::generate().unwrap());
    let mfa = Mfa::new(store.clone(), sealer.clone(), MfaConfig::new("Strongroom"));
    let mut mine = Vec::new();
    for i in 0..3 {
        let user = support::ensure_user(store.as_ref(), &format!("rotation-user-{i}")).await;
        let e = mfa.enroll(&user.id, &user.email).await.unwrap();
        let secret = e.secret_base32().to_owned();
        if i < 2 {
            mfa.confirm(&user.id, &code(&secret, now() - 30))
                .await
                .unwrap();
        }
        mine.push((user.id, secret));
    }
    // Walked in pages of two: every user once, ascending.
    let (mut after, mut seen) = (None::<String>, Vec::new());
    loop {
        let page = store
            .sealed_secrets_page(after.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.user_id.clone());
        seen.extend(page);
    }
    let ids: Vec<&str> = seen.iter().map(|s| s.user_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "ascending, each user once");
    for (id, _) in &mine {
        let listed = seen.iter().find(|s| &s.user_id == id).unwrap();
        let record = store.mfa_record(id).await.unwrap().unwrap();
        assert_eq!(listed.sealed_secret, record.sealed_secret);
        assert!(format!("{listed:?}").contains("sealed_len"));
    }

    let (id, secret) = &mine[0];
    let before = store.mfa_record(id).await.unwrap().unwrap();
    let resealed = sealer
        .seal(id, &TotpSecret::from_base32(secret).unwrap())
        .await
        .unwrap();
    assert_ne!(resealed, before.sealed_secret);
    // A stale read is not written over what the store holds.
    assert!(
        !store
            .replace_sealed_secret(id, b"not what is stored", &resealed)
            .await
            .unwrap()
    );
    assert!(
        !store
            .replace_sealed_secret("no-such-user", &before.sealed_secret, &resealed)
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_sealed_secret(id, &before.sealed_secret, &resealed)
            .await
            .unwrap()
    );
    let after = store.mfa_record(id).await.unwrap().unwrap();
    assert_eq!(after.sealed_secret, resealed);
    assert_eq!(after.state, MfaState::Active);
    assert_eq!(after.last_step, before.last_step);
    assert_eq!(after.enrollment_id, before.enrollment_id);
    // The old bytes are gone: the same compare-and-set again does nothing.
    assert!(
        !store
            .replace_sealed_secret(id, &before.sealed_secret, &resealed)
            .await
            .unwrap()
    );
    // The factor works with the re-sealed secret.
    mfa.verify(id, &code(secret, now())).await.unwrap();
}

/// The challenge remembers what the login finishes into (session or token pair).
async fn login_kind<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strongroom"));
    let (alice, secret, recovery) = enrolled(&c, "kind.mfa@example.com").await;
    let pw = Password::new(PW);
    let begin = |kind| {
        let accounts = c.accounts.clone();
        let pw = Password::new(PW);
        async move {
            match accounts
                .authenticate_for("kind.mfa@example.com", &pw, None, kind)
                .await
                .unwrap()
            {
                FirstFactor::SecondFactorRequired(ch) => ch.expose_secret().to_owned(),
                FirstFactor::Complete(_) => panic!("second factor expected"),
            }
        }
    };
    // Begun for a token pair: the second step says so.
    let token = begin(LoginKind::TokenPair).await;
    let auth = c
        .accounts
        .complete_mfa(&token, &code(&secret, now()))
        .await
        .unwrap();
    assert_eq!(auth.kind, LoginKind::TokenPair);
    assert_eq!(auth.amr, &["pwd", "otp"]);
    // A token-pair login cannot be finished into a session.
    let token = begin(LoginKind::TokenPair).await;
    assert!(matches!(
        c.accounts
            .login_mfa(&token, &code(&secret, now() + 30))
            .await,
        Err(AccountError::InvalidSecondFactor)
    ));
    assert!(c.sessions.list(&alice.id).await.unwrap().is_empty());
    // The default (authenticate, login) is a session.
    let FirstFactor::SecondFactorRequired(ch) = c
        .accounts
        .authenticate("kind.mfa@example.com", &pw, None)
        .await
        .unwrap()
    else {
        panic!("second factor expected")
    };
    let auth = c
        .accounts
        .complete_mfa(ch.expose_secret(), &recovery[0])
        .await
        .unwrap();
    assert_eq!(auth.kind, LoginKind::Session);
    // Without a factor the kind comes straight back.
    c.accounts
        .register("kind.plain@example.com", &pw)
        .await
        .unwrap();
    let FirstFactor::Complete(auth) = c
        .accounts
        .authenticate_for("kind.plain@example.com", &pw, None, LoginKind::TokenPair)
        .await
        .unwrap()
    else {
        panic!("no second factor")
    };
    assert_eq!(auth.kind, LoginKind::TokenPair);
}

async fn enrol_confirm_and_replay<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strong Room"));
    let user = c
        .accounts
        .register("enrol@example.com", &Password::new(PW))
        .await
        .unwrap();
    let e = c.mfa.enroll(&user.id, "enrol@example.com").await.unwrap();
    let secret = e.secret_base32().to_owned();
    assert_eq!(secret.len(), 32, "20 bytes of base32");
    assert_eq!(
        e.otpauth_uri(),
        format!(
            "otpauth://totp/Strong%20Room:enrol%40example.com?secret={secret}\
             &issuer=Strong%20Room&algorithm=SHA1&digits=6&period=30"
        )
    );
    // Stored sealed and pending: the plaintext key is nowhere in the record.
    let rec = c.store.mfa_record(&user.id).await.unwrap().unwrap();
    assert_eq!(rec.state, MfaState::Pending);
    let key = TotpSecret::from_base32(&secret).unwrap();
    assert!(
        !rec.sealed_secret
            .windows(key.expose_secret().len())
            .any(|w| w == key.expose_secret())
    );
    assert!(
        !rec.sealed_secret
            .windows(8)
            .any(|w| w == &secret.as_bytes()[..8])
    );
    // An unconfirmed enrolment changes nothing at login.
    assert!(!c.mfa.is_enabled(&user.id).await.unwrap());
    let step = c
        .accounts
        .login("enrol@example.com", &Password::new(PW))
        .await
        .unwrap();
    assert!(matches!(step, LoginStep::Session(_)));
    // Verify needs an active factor.
    assert!(matches!(
        c.mfa.verify(&user.id, &code(&secret, now())).await,
        Err(MfaError::NotEnabled)
    ));
    // Wrong code: not activated.
    let t = now();
    let wrong = format!(
        "{:06}",
        (code(&secret, t).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert!(matches!(
        c.mfa.confirm(&user.id, &wrong).await,
        Err(MfaError::InvalidCode)
    ));
    assert!(!c.mfa.is_enabled(&user.id).await.unwrap());
    // The right code activates and yields ten distinct recovery codes.
    let confirm_code = code(&secret, now());
    let codes = c.mfa.confirm(&user.id, &confirm_code).await.unwrap();
    assert!(c.mfa.is_enabled(&user.id).await.unwrap());
    let codes = codes.expose_secret().to_vec();
    assert_eq!(codes.len(), 10);
    for rc in &codes {
        assert_eq!(rc.len(), 19, "{rc:?}");
        assert!(rc.bytes().enumerate().all(|(i, b)| if i % 5 == 4 {
            b == b'-'
        } else {
            b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)
        }));
    }
    let mut dedup = codes.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 10);
    assert_eq!(c.mfa.recovery_codes_left(&user.id).await.unwrap(), 10);
    // Confirmation again: nothing pending.
    assert!(matches!(
        c.mfa.confirm(&user.id, &confirm_code).await,
        Err(MfaError::NoPendingEnrollment)
    ));
    // Enrolling again while active is refused.
    assert!(matches!(
        c.mfa.enroll(&user.id, "x").await,
        Err(MfaError::AlreadyEnabled)
    ));
    // The code that confirmed is spent.
    assert!(matches!(
        c.mfa.verify(&user.id, &confirm_code).await,
        Err(MfaError::InvalidCode)
    ));
    // The next step's code works once.
    let next = code(&secret, now() + 30);
    assert!(matches!(
        c.mfa.verify(&user.id, &next).await,
        Ok(SecondFactor::Totp { .. })
    ));
    assert!(matches!(
        c.mfa.verify(&user.id, &next).await,
        Err(MfaError::InvalidCode)
    ));
    // An earlier step is refused too (the guard only moves forward), and out-of-window
    // codes never work.
    assert!(c.mfa.verify(&user.id, &code(&secret, now())).await.is_err());
    assert!(
        c.mfa
            .verify(&user.id, &code(&secret, now() + 90))
            .await
            .is_err()
    );
    // Junk is refused without a panic.
    for junk in ["", "12345", "1234567", "abcdef", &"9".repeat(10_000)] {
        assert!(matches!(
            c.mfa.verify(&user.id, junk).await,
            Err(MfaError::InvalidCode)
        ));
    }
}

async fn concurrent_replay<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strongroom"));
    let (user, secret, _) = enrolled(&c, "race@example.com").await;
    let the_code = code(&secret, now());
    // All 50 start together, so that their reads of the guard overlap.
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let mfa = c.mfa.clone();
        let barrier = barrier.clone();
        let (id, cd) = (user.id.clone(), the_code.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            mfa.verify(&id, &cd).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(SecondFactor::Totp { .. }) => ok += 1,
            Err(MfaError::InvalidCode) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        ok, 1,
        "exactly one of 50 concurrent verifications may succeed"
    );
}

async fn recovery_codes<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strongroom"));
    let (user, _, codes) = enrolled(&c, "recovery@example.com").await;
    let (other, _, other_codes) = enrolled(&c, "recovery2@example.com").await;
    // Another user's recovery code is not this user's.
    assert!(matches!(
        c.mfa.verify(&user.id, &other_codes[0]).await,
        Err(MfaError::InvalidCode)
    ));
    for (i, rc) in codes.iter().enumerate() {
        // Typed in upper case without hyphens for half of them.
        let typed = if i % 2 == 0 {
            rc.clone()
        } else {
            rc.replace('-', "").to_uppercase()
        };
        assert_eq!(
            c.mfa.verify(&user.id, &typed).await.unwrap(),
            SecondFactor::RecoveryCode
        );
        assert!(matches!(
            c.mfa.verify(&user.id, rc).await,
            Err(MfaError::InvalidCode)
        ));
        assert_eq!(
            c.mfa.recovery_codes_left(&user.id).await.unwrap(),
            9 - i as u64
        );
    }
    assert_eq!(c.mfa.recovery_codes_left(&other.id).await.unwrap(), 10);
    // A recovery code also finishes a login.
    let LoginStep::SecondFactorRequired(ch) = c
        .accounts
        .login("recovery2@example.com", &Password::new(PW))
        .await
        .unwrap()
    else {
        panic!("second factor expected")
    };
    let login = c
        .accounts
        .login_mfa(ch.expose_secret(), &other_codes[3])
        .await
        .unwrap();
    assert_eq!(login.amr, ["pwd", "otp"]);
}

async fn disable_needs_password_and_code<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strongroom"));
    let (user, secret, codes) = enrolled(&c, "disable@example.com").await;
    let good = code(&secret, now());
    // Wrong password: refused before the code is looked at (the code stays usable).
    assert!(matches!(
        c.accounts
            .disable_mfa(&user.id, &Password::new("wrong password!"), &good)
            .await,
        Err(AccountError::InvalidCredentials)
    ));
    assert!(c.mfa.is_enabled(&user.id).await.unwrap());
    // Right password, wrong code.
    assert!(matches!(
        c.accounts
            .disable_mfa(&user.id, &Password::new(PW), "000000x")
            .await,
        Err(AccountError::InvalidSecondFactor)
    ));
    assert!(c.mfa.is_enabled(&user.id).await.unwrap());
    // Both right.
    c.accounts
        .disable_mfa(&user.id, &Password::new(PW), &good)
        .await
        .unwrap();
    assert!(!c.mfa.is_enabled(&user.id).await.unwrap());
    assert_eq!(c.mfa.recovery_codes_left(&user.id).await.unwrap(), 0);
    assert!(matches!(
        c.mfa.verify(&user.id, &codes[0]).await,
        Err(MfaError::NotEnabled)
    ));
    // Password-only login again.
    assert!(matches!(
        c.accounts
            .login("disable@example.com", &Password::new(PW))
            .await
            .unwrap(),
        LoginStep::Session(_)
    ));
    // The permit is the only way in: a permit for the wrong user cannot be built here,
    // and a verified password alone does not disable (no code).
    let (user2, _, _) = enrolled(&c, "disable2@example.com").await;
    let permit = c
        .accounts
        .verify_password(&user2.id, &Password::new(PW))
        .await
        .unwrap();
    assert!(c.mfa.disable(&permit, "").await.is_err());
    assert!(c.mfa.is_enabled(&user2.id).await.unwrap());
}

async fn login_flow<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strongroom"));
    let (alice, a_secret, _) = enrolled(&c, "alice.mfa@example.com").await;
    let (bob, b_secret, _) = enrolled(&c, "bob.mfa@example.com").await;
    let pw = Password::new(PW);

    // The password step issues nothing.
    let first = c
        .accounts
        .authenticate("alice.mfa@example.com", &pw, None)
        .await
        .unwrap();
    let FirstFactor::SecondFactorRequired(ch1) = first else {
        panic!("second factor expected")
    };
    let LoginStep::SecondFactorRequired(ch2) = c
        .accounts
        .login("alice.mfa@example.com", &pw)
        .await
        .unwrap()
    else {
        panic!("second factor expected")
    };
    assert!(c.sessions.list(&alice.id).await.unwrap().is_empty());
    let token1 = ch1.expose_secret().to_owned();
    let token2 = ch2.expose_secret().to_owned();
    assert!(token1.starts_with("mfa_") && token1.len() == 47);
    assert_ne!(token1, token2);
    // A wrong password still answers the opaque refusal, never a challenge.
    assert!(matches!(
        c.accounts
            .login("alice.mfa@example.com", &Password::new("wrong password!"))
            .await,
        Err(AccountError::InvalidCredentials)
    ));

    // A wrong code spends the token: the right code afterwards is refused.
    assert!(matches!(
        c.accounts.login_mfa(&token1, "000000x").await,
        Err(AccountError::InvalidSecondFactor)
    ));
    let a_code = code(&a_secret, now());
    assert!(matches!(
        c.accounts.login_mfa(&token1, &a_code).await,
        Err(AccountError::InvalidSecondFactor)
    ));

    // Bound to the user: Bob's valid code does not finish Alice's login, and Alice's
    // token can only ever yield Alice.
    let LoginStep::SecondFactorRequired(ch3) = c
        .accounts
        .login("alice.mfa@example.com", &pw)
        .await
        .unwrap()
    else {
        panic!()
    };
    let b_code = code(&b_secret, now());
    assert!(matches!(
        c.accounts.login_mfa(ch3.expose_secret(), &b_code).await,
        Err(AccountError::InvalidSecondFactor)
    ));
    // (Bob's code was not spent by that.)
    assert!(c.mfa.verify(&bob.id, &b_code).await.is_ok());

    // The right code finishes the login once: amr pwd+otp, a session with mfa_at.
    let before = i64::try_from(now()).unwrap();
    let login = c.accounts.login_mfa(&token2, &a_code).await.unwrap();
    assert_eq!(login.user.id, alice.id);
    assert_eq!(login.amr, ["pwd", "otp"]);
    assert!(login.auth_time >= before);
    let Resolution::Authenticated(p) = c
        .sessions
        .resolve(&support::bearer(login.token.expose_secret()))
        .await
    else {
        panic!("session should resolve")
    };
    assert_eq!(p.user_id(), alice.id);
    assert!(p.mfa_at().is_some_and(|t| t >= before));
    assert_eq!(c.sessions.list(&alice.id).await.unwrap().len(), 1);
    // Single use.
    let a_next = code(&a_secret, now() + 30);
    assert!(matches!(
        c.accounts.login_mfa(&token2, &a_next).await,
        Err(AccountError::InvalidSecondFactor)
    ));
    // Malformed tokens.
    for bad in [
        "",
        "mfa_",
        "ses_x",
        &format!("{token2}x"),
        &"m".repeat(5000),
    ] {
        assert!(matches!(
            c.accounts.login_mfa(bad, &a_next).await,
            Err(AccountError::InvalidSecondFactor)
        ));
    }

    // Bound to that login: a sign-out-everywhere between the steps ends the challenge.
    let LoginStep::SecondFactorRequired(ch4) = c
        .accounts
        .login("alice.mfa@example.com", &pw)
        .await
        .unwrap()
    else {
        panic!()
    };
    c.accounts.sign_out_everywhere(&alice.id).await.unwrap();
    assert!(matches!(
        c.accounts.login_mfa(ch4.expose_secret(), &a_next).await,
        Err(AccountError::InvalidCredentials)
    ));
    // Only 1 session was ever issued to Alice (the one above, now ended by the epoch).
    assert!(c.sessions.list(&alice.id).await.unwrap().len() <= 1);
}

async fn token_expires<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(
        store,
        MfaConfig::new("Strongroom").with_challenge_ttl(Duration::from_secs(1)),
    );
    let (_, secret, _) = enrolled(&c, "expiry@example.com").await;
    let LoginStep::SecondFactorRequired(ch) = c
        .accounts
        .login("expiry@example.com", &Password::new(PW))
        .await
        .unwrap()
    else {
        panic!()
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        c.accounts
            .login_mfa(ch.expose_secret(), &code(&secret, now()))
            .await,
        Err(AccountError::InvalidSecondFactor)
    ));
    assert!(c.mfa.sweep().await.unwrap() >= 1);
}

async fn step_up<S: MfaFullStore>(store: Arc<S>) {
    let c = ctx(store, MfaConfig::new("Strongroom"));
    let window = Duration::from_secs(300);
    let now_i = i64::try_from(now()).unwrap();
    // No second factor: always Ok.
    let plain = c
        .accounts
        .register("plain@example.com", &Password::new(PW))
        .await
        .unwrap();
    let p = Principal::new(plain.id.clone(), auth_core::AuthMethod::Session);
    c.mfa.require_recent(&p, window).await.unwrap();

    // With one: only with a recent check.
    let (user, secret, _) = enrolled(&c, "stepup@example.com").await;
    let p = Principal::new(user.id.clone(), auth_core::AuthMethod::Session);
    assert_eq!(
        c.mfa.require_recent(&p, window).await,
        Err(StepUpError::Required)
    );
    let old = p.clone().with_mfa_at(Some(now_i - 301));
    assert_eq!(
        c.mfa.require_recent(&old, window).await,
        Err(StepUpError::Required)
    );
    let recent = p.clone().with_mfa_at(Some(now_i - 10));
    c.mfa.require_recent(&recent, window).await.unwrap();
    c.mfa.require_step_up(&recent).await.unwrap();
    assert_eq!(
        c.mfa.require_recent(&recent, Duration::from_secs(5)).await,
        Err(StepUpError::Required)
    );

    // A session from a password-only login (issued before the factor existed) has no
    // mfa_at; a step-up on it records one.
    let token = c.sessions.issue(&user).await.unwrap();
    let resolve = || async {
        let Resolution::Authenticated(p) = c
            .sessions
            .resolve(&support::bearer(token.expose_secret()))
            .await
        else {
            panic!()
        };
        p
    };
    let p = resolve().await;
    assert_eq!(p.mfa_at(), None);
    assert_eq!(c.mfa.require_step_up(&p).await, Err(StepUpError::Required));
    c.mfa.verify(&user.id, &code(&secret, now())).await.unwrap();
    assert!(
        c.sessions
            .record_step_up(&user.id, token.session_id())
            .await
            .unwrap()
    );
    let p = resolve().await;
    assert!(p.mfa_at().is_some_and(|t| t >= now_i));
    c.mfa.require_step_up(&p).await.unwrap();
    // Scoped by user: another user's id records nothing.
    assert!(
        !c.sessions
            .record_step_up(&plain.id, token.session_id())
            .await
            .unwrap()
    );
}

async fn sha256_eight_digits<S: MfaFullStore>(store: Arc<S>) {
    let totp = TotpConfig::new()
        .with_algorithm(TotpAlgorithm::Sha256)
        .with_digits(8)
        .unwrap();
    let c = ctx(store, MfaConfig::new("Strongroom").with_totp(totp));
    let user = c
        .accounts
        .register("sha256@example.com", &Password::new(PW))
        .await
        .unwrap();
    let e = c.mfa.enroll(&user.id, "sha256@example.com").await.unwrap();
    assert!(
        e.otpauth_uri()
            .ends_with("&algorithm=SHA256&digits=8&period=30")
    );
    let secret = e.secret_base32().to_owned();
    // A SHA-1 code of the same secret is not accepted.
    assert!(
        c.mfa
            .confirm(&user.id, &rfc6238(&secret, TotpAlgorithm::Sha1, 8, now()))
            .await
            .is_err()
    );
    c.mfa
        .confirm(&user.id, &rfc6238(&secret, TotpAlgorithm::Sha256, 8, now()))
        .await
        .unwrap();
    assert!(
        c.mfa
            .verify(
                &user.id,
                &rfc6238(&secret, TotpAlgorithm::Sha256, 8, now() + 30)
            )
            .await
            .is_ok()
    );
}

on_every_store!(
    mfa_suite,
    mfa_memory,
    mfa_sqlite,
    mfa_postgres,
    "auth_core_mfa"
);

#[tokio::test]
async fn memory_sealer_binds_the_user_and_detects_tampering() {
    use auth_core::TotpSealer as _;
    let sealer = MemorySealer::generate().unwrap();
    let secret = TotpSecret::generate().unwrap();
    let sealed = sealer.seal("user-a", &secret).await.unwrap();
    let opened = sealer.open("user-a", &sealed).await.unwrap();
    assert_eq!(opened.expose_secret(), secret.expose_secret());
    assert!(sealer.open("user-b", &sealed).await.is_err());
    for i in 0..sealed.len() {
        let mut t = sealed.clone();
        t[i] ^= 1;
        assert!(sealer.open("user-a", &t).await.is_err(), "byte {i}");
    }
    assert!(sealer.open("user-a", &sealed[..11]).await.is_err());
    assert!(sealer.open("user-a", &[]).await.is_err());
    let other = MemorySealer::generate().unwrap();
    assert!(other.open("user-a", &sealed).await.is_err());
}

/// Moving a sealed secret to another user's row makes that factor unusable (fail
/// closed: 503-class error, never a valid check with the wrong key).
#[tokio::test]
async fn copied_sealed_secret_does_not_open_for_another_user() {
    let store = Arc::new(auth_core::MemoryStore::new());
    let c = ctx(store.clone(), MfaConfig::new("Strongroom"));
    let (a, _, _) = enrolled(&c, "a.copy@example.com").await;
    let b = c
        .accounts
        .register("b.copy@example.com", &Password::new(PW))
        .await
        .unwrap();
    let mut rec = store.mfa_record(&a.id).await.unwrap().unwrap();
    rec.user_id = b.id.clone();
    assert!(store.put_pending(&rec).await.unwrap());
    assert!(matches!(
        c.mfa.confirm(&b.id, "123456").await,
        Err(MfaError::Seal(_))
    ));
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn step_up_refusal_is_403_mfa_required() {
    use axum::response::IntoResponse as _;
    let r = StepUpError::Required.into_response();
    assert_eq!(r.status(), http::StatusCode::FORBIDDEN);
    assert_eq!(r.headers()[http::header::CACHE_CONTROL], "no-store");
    let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], br#"{"error":"mfa_required"}"#);
    let r = StepUpError::Unavailable.into_response();
    assert_eq!(r.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}
