//! Store-independent test suites. Each backend's test file calls every suite on a fresh
//! store, so memory, SQLite and PostgreSQL are held to the same behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "sso")]
use auth_core::SsoBinder;
use auth_core::api_key::{ApiKeyStore, ApiKeys};
use auth_core::password::{PasswordConfig, PasswordHasher};
use auth_core::session::{SessionConfig, SessionRecord, SessionStore, Sessions};
#[cfg(feature = "sso")]
use auth_core::sso::{BindError, BindingKind, IdentityBinder, VerifiedIdentity};
use auth_core::user::{RevokeScope, SsoIdentity, User, UserStore};
use auth_core::{
    AccountError, Accounts, AuthMethod, Credential, CredentialKind, Password, Resolution, Resolver,
    StoreError,
};

/// A store implementing all three traits.
pub trait FullStore: UserStore + SessionStore + ApiKeyStore + 'static {}
impl<T: UserStore + SessionStore + ApiKeyStore + 'static> FullStore for T {}

/// Fast Argon2 parameters for tests (the default ones are tested in `password.rs`).
pub fn fast_hasher() -> PasswordHasher {
    let config = auth_core::danger::weak_password_params(PasswordConfig::default(), 256, 1, 1);
    PasswordHasher::new(config).unwrap()
}

pub fn bearer(token: &str) -> Credential {
    Credential::new(CredentialKind::Bearer, token).unwrap()
}

pub fn user(id: &str, email: &str) -> User {
    User::new(
        id,
        email,
        Some("$argon2id$placeholder".to_owned()),
        1_700_000_000,
    )
}

/// The user `id` (created with a placeholder hash if missing): sessions and keys resolve
/// only for users that exist.
pub async fn ensure_user<S: FullStore + ?Sized>(store: &S, id: &str) -> User {
    if let Some(u) = store.user_by_id(id).await.unwrap() {
        return u;
    }
    let u = user(id, &format!("{id}@users.example"));
    store.create_user(&u).await.unwrap();
    u
}

pub async fn run_all<S: FullStore>(store: Arc<S>) {
    user_store(store.clone()).await;
    session_store(store.clone()).await;
    sessions_service(store.clone()).await;
    api_keys(store.clone()).await;
    accounts(store.clone()).await;
    #[cfg(feature = "sso")]
    binding(store.clone()).await;
}

pub async fn user_store<S: FullStore>(store: Arc<S>) {
    let a = user("u-store-a", "store-a@example.com");
    store.create_user(&a).await.unwrap();
    assert_eq!(
        store.user_by_id("u-store-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        store.user_by_email("store-a@example.com").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(store.user_by_id("u-store-missing").await.unwrap(), None);
    // Unique email.
    let dup = user("u-store-b", "store-a@example.com");
    assert!(matches!(
        store.create_user(&dup).await,
        Err(StoreError::Conflict { field: "email" })
    ));
    // Unique id.
    let dup_id = user("u-store-a", "other-a@example.com");
    assert!(matches!(
        store.create_user(&dup_id).await,
        Err(StoreError::Conflict { .. })
    ));
    // Password and flags.
    // Compare-and-set: a stale expected hash changes nothing.
    assert!(
        !store
            .set_password(
                "u-store-a",
                Some("$argon2id$stale"),
                "$argon2id$new",
                true,
                RevokeScope::Sessions
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.user_by_id("u-store-a").await.unwrap(),
        Some(a.clone())
    );
    assert!(
        store
            .set_password(
                "u-store-a",
                Some("$argon2id$placeholder"),
                "$argon2id$new",
                true,
                RevokeScope::Sessions
            )
            .await
            .unwrap()
    );
    let got = store.user_by_id("u-store-a").await.unwrap().unwrap();
    assert_eq!(got.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(got.must_change_password);
    assert_eq!((got.session_epoch, got.key_epoch), (1, 0));
    assert!(
        !store
            .set_password("u-store-missing", None, "x", false, RevokeScope::None)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_credentials("u-store-a", RevokeScope::All)
            .await
            .unwrap()
    );
    let got = store.user_by_id("u-store-a").await.unwrap().unwrap();
    assert_eq!((got.session_epoch, got.key_epoch), (2, 1));
    assert!(
        !store
            .revoke_credentials("u-store-missing", RevokeScope::All)
            .await
            .unwrap()
    );
    assert!(!got.email_verified);
    assert!(store.set_email_verified("u-store-a").await.unwrap());
    assert!(
        store
            .user_by_id("u-store-a")
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert!(store.set_disabled("u-store-a", true).await.unwrap());
    let got = store.user_by_id("u-store-a").await.unwrap().unwrap();
    assert!(got.disabled);
    // Disabling ends everything.
    assert_eq!((got.session_epoch, got.key_epoch), (3, 2));
    assert!(!store.set_disabled("u-store-missing", true).await.unwrap());

    // Identities: unique per identity and per user.
    let idp = SsoIdentity::new("https://idp.example", "sub-1");
    assert_eq!(store.identity_of("u-store-a").await.unwrap(), None);
    store.bind_identity("u-store-a", &idp).await.unwrap();
    // A link ends everything the account had.
    let got = store.user_by_id("u-store-a").await.unwrap().unwrap();
    assert_eq!((got.session_epoch, got.key_epoch), (4, 3));
    assert_eq!(
        store.identity_of("u-store-a").await.unwrap(),
        Some(idp.clone())
    );
    assert_eq!(
        store.user_by_identity(&idp).await.unwrap().map(|u| u.id),
        Some("u-store-a".to_owned())
    );
    // Subject comparison is exact.
    let other_case = SsoIdentity::new("https://idp.example", "SUB-1");
    assert_eq!(store.user_by_identity(&other_case).await.unwrap(), None);
    let second = SsoIdentity::new("https://idp.example", "sub-2");
    assert!(matches!(
        store.bind_identity("u-store-a", &second).await,
        Err(StoreError::Conflict { .. })
    ));
    let c = user("u-store-c", "store-c@example.com");
    store.create_user(&c).await.unwrap();
    assert!(matches!(
        store.bind_identity("u-store-c", &idp).await,
        Err(StoreError::Conflict { .. })
    ));
    // Atomic create-with-identity: a conflicting identity creates no user.
    let d = user("u-store-d", "store-d@example.com");
    assert!(matches!(
        store.create_user_with_identity(&d, &idp).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.user_by_id("u-store-d").await.unwrap(), None);
    store
        .create_user_with_identity(&d, &SsoIdentity::new("https://idp.example", "sub-d"))
        .await
        .unwrap();
    assert_eq!(store.user_by_id("u-store-d").await.unwrap(), Some(d));
}

pub async fn session_store<S: FullStore>(store: Arc<S>) {
    for id in ["u-sess-1", "u-sess-2", "u-sess-3"] {
        ensure_user(&*store, id).await;
    }
    // No session for a user that does not exist, or at another epoch.
    assert!(matches!(
        store
            .insert_session(&SessionRecord::new(
                "s-0",
                "u-sess-none",
                [8; 32],
                1,
                10_000
            ))
            .await,
        Err(StoreError::UserRefused)
    ));
    assert!(matches!(
        store
            .insert_session(
                &SessionRecord::new("s-0", "u-sess-1", [8; 32], 1, 10_000).with_epoch(7)
            )
            .await,
        Err(StoreError::UserRefused)
    ));
    let r1 = SessionRecord::new("s-1", "u-sess-1", [1; 32], 100, 200);
    let r2 = SessionRecord::new("s-2", "u-sess-1", [2; 32], 110, 10_000);
    let r3 = SessionRecord::new("s-3", "u-sess-2", [3; 32], 120, 10_000);
    for r in [&r1, &r2, &r3] {
        store.insert_session(r).await.unwrap();
    }
    assert!(store.insert_session(&r1).await.is_err());
    let found = store.session_by_digest(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found.record, r1);
    let state = found.user.unwrap();
    assert!(!state.disabled && !state.must_change_password);
    assert_eq!(state.epoch, 0);
    assert_eq!(store.session_by_digest(&[9; 32]).await.unwrap(), None);
    assert_eq!(
        store.user_sessions("u-sess-1").await.unwrap(),
        vec![r2.clone(), r1.clone()]
    );
    // Scoped delete: another user's id does nothing.
    assert!(!store.delete_session("u-sess-2", "s-1").await.unwrap());
    assert!(store.session_by_digest(&[1; 32]).await.unwrap().is_some());
    // Sweep deletes only expired rows.
    assert_eq!(store.delete_expired_sessions(200).await.unwrap(), 1);
    assert_eq!(store.session_by_digest(&[1; 32]).await.unwrap(), None);
    assert!(store.delete_session("u-sess-1", "s-2").await.unwrap());
    assert!(!store.delete_session("u-sess-1", "s-2").await.unwrap());
    assert!(store.delete_session_by_digest(&[3; 32]).await.unwrap());
    assert!(!store.delete_session_by_digest(&[3; 32]).await.unwrap());
    let r4 = SessionRecord::new("s-4", "u-sess-3", [4; 32], 1, 10_000);
    let r5 = SessionRecord::new("s-5", "u-sess-3", [5; 32], 1, 10_000);
    store.insert_session(&r4).await.unwrap();
    store.insert_session(&r5).await.unwrap();
    assert_eq!(store.delete_user_sessions("u-sess-3").await.unwrap(), 2);
    assert!(store.user_sessions("u-sess-3").await.unwrap().is_empty());
}

pub async fn sessions_service<S: FullStore>(store: Arc<S>) {
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let t1 = sessions
        .issue(&ensure_user(&*store, "u-svc-1").await)
        .await
        .unwrap();
    let t2 = sessions
        .issue(&ensure_user(&*store, "u-svc-1").await)
        .await
        .unwrap();
    // Fresh token each time: 'ses_' + 43 base64url characters.
    assert_ne!(t1.expose_secret(), t2.expose_secret());
    assert_ne!(t1.session_id(), t2.session_id());
    assert_eq!(t1.expose_secret().len(), 4 + 43);
    assert!(t1.expose_secret().starts_with("ses_"));
    // Only the digest is stored.
    let listed = sessions.list("u-svc-1").await.unwrap();
    assert_eq!(listed.len(), 2);
    for rec in &listed {
        assert_ne!(&rec.token_digest()[..], t1.expose_secret().as_bytes());
        assert!(rec.expires_at() - rec.created_at() == 30 * 24 * 3600);
    }
    match sessions.resolve(&bearer(t1.expose_secret())).await {
        Resolution::Authenticated(p) => {
            assert_eq!(p.user_id(), "u-svc-1");
            assert_eq!(p.method(), AuthMethod::Session);
            assert_eq!(p.credential_id(), Some(t1.session_id()));
        }
        other => panic!("expected authenticated, got {other:?}"),
    }
    // Unknown ses_ token: refused; other bearer tokens: passed on.
    let forged = format!("ses_{}", "A".repeat(43));
    assert!(matches!(
        sessions.resolve(&bearer(&forged)).await,
        Resolution::Invalid(r) if r.code() == "session.unknown"
    ));
    assert_eq!(
        sessions.resolve(&bearer("eyJhbGciOiJSUzI1NiJ9.x.y")).await,
        Resolution::Pass
    );
    let api = Credential::new(CredentialKind::ApiKey, t1.expose_secret()).unwrap();
    assert_eq!(sessions.resolve(&api).await, Resolution::Pass);
    // Revoke one by id: scoped to the owner.
    assert!(
        !sessions
            .revoke("u-svc-other", t1.session_id())
            .await
            .unwrap()
    );
    assert!(sessions.revoke("u-svc-1", t1.session_id()).await.unwrap());
    assert!(matches!(
        sessions.resolve(&bearer(t1.expose_secret())).await,
        Resolution::Invalid(_)
    ));
    assert!(matches!(
        sessions.resolve(&bearer(t2.expose_secret())).await,
        Resolution::Authenticated(_)
    ));
    // Logout by token.
    assert!(sessions.revoke_token(t2.expose_secret()).await.unwrap());
    assert!(matches!(
        sessions.resolve(&bearer(t2.expose_secret())).await,
        Resolution::Invalid(_)
    ));
    // Revoke all.
    let a = sessions
        .issue(&ensure_user(&*store, "u-svc-2").await)
        .await
        .unwrap();
    let b = sessions
        .issue(&ensure_user(&*store, "u-svc-2").await)
        .await
        .unwrap();
    let other = sessions
        .issue(&ensure_user(&*store, "u-svc-3").await)
        .await
        .unwrap();
    assert_eq!(sessions.revoke_all("u-svc-2").await.unwrap(), 2);
    for t in [&a, &b] {
        assert!(matches!(
            sessions.resolve(&bearer(t.expose_secret())).await,
            Resolution::Invalid(_)
        ));
    }
    assert!(matches!(
        sessions.resolve(&bearer(other.expose_secret())).await,
        Resolution::Authenticated(_)
    ));
    // Expiry: a zero lifetime is expired at once; the sweep removes it.
    let short = Sessions::new(store.clone(), SessionConfig::default().ttl(Duration::ZERO));
    let expired = short
        .issue(&ensure_user(&*store, "u-svc-4").await)
        .await
        .unwrap();
    assert!(matches!(
        short.resolve(&bearer(expired.expose_secret())).await,
        Resolution::Invalid(r) if r.code() == "session.expired"
    ));
    assert!(short.sweep().await.unwrap() >= 1);
    assert!(short.list("u-svc-4").await.unwrap().is_empty());
    assert!(matches!(
        sessions.resolve(&bearer(other.expose_secret())).await,
        Resolution::Authenticated(_)
    ));
    // The spawned sweeper runs (first tick immediately).
    let expired2 = short
        .issue(&ensure_user(&*store, "u-svc-5").await)
        .await
        .unwrap();
    assert_eq!(short.list("u-svc-5").await.unwrap().len(), 1);
    let handle = short.spawn_sweeper();
    let mut swept = false;
    for _ in 0..100 {
        if short.list("u-svc-5").await.unwrap().is_empty() {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.abort();
    assert!(swept, "sweeper did not remove the expired session");
    drop(expired2);
}

pub async fn api_keys<S: FullStore>(store: Arc<S>) {
    let keys = ApiKeys::new(store.clone());
    // No key for a user that does not exist.
    assert!(matches!(
        keys.create("u-key-none", "bot", vec![]).await,
        Err(auth_core::api_key::ApiKeyError::Store(
            StoreError::UserRefused
        ))
    ));
    ensure_user(&*store, "u-key-1").await;
    let k = keys
        .create(
            "u-key-1",
            "trading bot",
            vec!["read".into(), "trade".into()],
        )
        .await
        .unwrap();
    let raw = k.expose_secret().to_owned();
    assert!(raw.starts_with("ak_"));
    assert_eq!(raw.len(), 3 + 32 + 1 + 43);
    assert!(raw[3..].starts_with(k.key_id()));
    let listed = keys.list("u-key-1").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), k.key_id());
    assert_eq!(listed[0].last_used_at(), None);
    assert!(!listed[0].secret_digest().iter().all(|b| *b == 0));

    let cred = Credential::new(CredentialKind::ApiKey, &raw).unwrap();
    match keys.resolve(&cred).await {
        Resolution::Authenticated(p) => {
            assert_eq!(p.user_id(), "u-key-1");
            assert_eq!(p.method(), AuthMethod::ApiKey);
            assert_eq!(p.credential_id(), Some(k.key_id()));
            assert!(p.has_scope("trade"));
            assert!(!p.has_scope("withdraw"));
        }
        other => panic!("expected authenticated, got {other:?}"),
    }
    // Also accepted as a bearer token.
    assert!(matches!(
        keys.resolve(&bearer(&raw)).await,
        Resolution::Authenticated(_)
    ));
    // Last-used recorded.
    assert!(
        keys.list("u-key-1").await.unwrap()[0]
            .last_used_at()
            .is_some()
    );

    // Right id, wrong secret.
    let mut wrong = raw.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let wrong = Credential::new(CredentialKind::ApiKey, &wrong).unwrap();
    assert!(
        matches!(keys.resolve(&wrong).await, Resolution::Invalid(r) if r.code() == "api_key.mismatch")
    );
    // Unknown id.
    let unknown = format!("ak_{}_{}", "0".repeat(32), "A".repeat(43));
    let unknown = Credential::new(CredentialKind::ApiKey, &unknown).unwrap();
    assert!(
        matches!(keys.resolve(&unknown).await, Resolution::Invalid(r) if r.code() == "api_key.unknown")
    );
    // Malformed.
    for bad in ["ak_", "ak_zz", "nope", &raw[..raw.len() - 1]] {
        let c = Credential::new(CredentialKind::ApiKey, bad).unwrap();
        assert!(
            matches!(keys.resolve(&c).await, Resolution::Invalid(r) if r.code() == "api_key.malformed")
        );
    }
    // Non-key bearer tokens and other kinds pass.
    assert_eq!(keys.resolve(&bearer("ses_abc")).await, Resolution::Pass);
    let internal = Credential::new(CredentialKind::InternalSecret, &raw).unwrap();
    assert_eq!(keys.resolve(&internal).await, Resolution::Pass);

    // Revocation is scoped to the owner.
    assert!(!keys.revoke("u-key-2", k.key_id()).await.unwrap());
    assert!(matches!(
        keys.resolve(&cred).await,
        Resolution::Authenticated(_)
    ));
    assert!(keys.revoke("u-key-1", k.key_id()).await.unwrap());
    assert!(!keys.revoke("u-key-1", k.key_id()).await.unwrap());
    assert!(
        matches!(keys.resolve(&cred).await, Resolution::Invalid(r) if r.code() == "api_key.revoked")
    );
    assert!(
        keys.list("u-key-1").await.unwrap()[0]
            .revoked_at()
            .is_some()
    );
    assert!(keys.list("u-key-2").await.unwrap().is_empty());

    // Validation.
    assert!(keys.create("u-key-1", "", vec![]).await.is_err());
    assert!(
        keys.create("u-key-1", "x", vec!["Has Space".into()])
            .await
            .is_err()
    );
    let unscoped = keys.create("u-key-1", "read only", vec![]).await.unwrap();
    let c = Credential::new(CredentialKind::ApiKey, unscoped.expose_secret()).unwrap();
    match keys.resolve(&c).await {
        Resolution::Authenticated(p) => assert!(p.scopes().is_empty()),
        other => panic!("expected authenticated, got {other:?}"),
    }
}

pub async fn accounts<S: FullStore>(store: Arc<S>) {
    let hasher = fast_hasher();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions.clone(), hasher.clone());
    let pw = Password::new("correct horse battery");
    let u = accounts
        .register("  Alice@Example.COM ", &pw)
        .await
        .unwrap();
    assert_eq!(u.email, "alice@example.com");
    assert!(
        u.password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );
    assert!(matches!(
        accounts.register("alice@example.com", &pw).await,
        Err(AccountError::EmailTaken)
    ));
    assert!(matches!(
        accounts
            .register("bob@example.com", &Password::new("short"))
            .await,
        Err(AccountError::Policy(_))
    ));
    assert!(matches!(
        accounts.register("not an email", &pw).await,
        Err(AccountError::Email(_))
    ));

    // Login issues a new session every time.
    let l1 = accounts
        .login("ALICE@example.com", &pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let l2 = accounts
        .login("alice@example.com", &pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    assert_ne!(l1.token.expose_secret(), l2.token.expose_secret());
    assert_eq!(l1.user.id, u.id);
    let principal = match sessions.resolve(&bearer(l1.token.expose_secret())).await {
        Resolution::Authenticated(p) => p,
        other => panic!("expected authenticated, got {other:?}"),
    };
    assert_eq!(accounts.me(&principal).await.unwrap().id, u.id);

    // Wrong password and unknown email: same opaque error, same work.
    let before = hasher.completed_operations();
    assert!(matches!(
        accounts
            .login("alice@example.com", &Password::new("wrong password!"))
            .await,
        Err(AccountError::InvalidCredentials)
    ));
    let known_cost = hasher.completed_operations() - before;
    let before = hasher.completed_operations();
    assert!(matches!(
        accounts.login("nobody@example.com", &pw).await,
        Err(AccountError::InvalidCredentials)
    ));
    let unknown_cost = hasher.completed_operations() - before;
    assert_eq!(known_cost, 1);
    assert_eq!(unknown_cost, known_cost);

    // Logout revokes that session only.
    assert!(accounts.logout(l1.token.expose_secret()).await.unwrap());
    assert!(matches!(
        sessions.resolve(&bearer(l1.token.expose_secret())).await,
        Resolution::Invalid(_)
    ));
    assert!(matches!(
        sessions.resolve(&bearer(l2.token.expose_secret())).await,
        Resolution::Authenticated(_)
    ));

    // Change password: needs the current one, revokes every session.
    let new_pw = Password::new("a much better passphrase");
    assert!(matches!(
        accounts
            .change_password(&u.id, &Password::new("wrong password!"), &new_pw)
            .await,
        Err(AccountError::InvalidCredentials)
    ));
    assert!(matches!(
        sessions.resolve(&bearer(l2.token.expose_secret())).await,
        Resolution::Authenticated(_)
    ));
    accounts.change_password(&u.id, &pw, &new_pw).await.unwrap();
    assert!(matches!(
        sessions.resolve(&bearer(l2.token.expose_secret())).await,
        Resolution::Invalid(_)
    ));
    assert!(matches!(
        accounts.login("alice@example.com", &pw).await,
        Err(AccountError::InvalidCredentials)
    ));
    accounts
        .login("alice@example.com", &new_pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();

    // Admin-created user must change the password first.
    let temp = Password::new("temporary password 1");
    let admin_made = accounts
        .admin_create_user("carol@example.com", &temp)
        .await
        .unwrap();
    assert!(admin_made.must_change_password);
    assert!(admin_made.email_verified);
    // Login gives a restricted session.
    let restricted = accounts
        .login("carol@example.com", &temp)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    assert!(restricted.password_change_required);
    match sessions
        .resolve(&bearer(restricted.token.expose_secret()))
        .await
    {
        Resolution::Authenticated(p) => assert!(p.is_restricted()),
        other => panic!("expected a restricted principal, got {other:?}"),
    }
    // A wrong password does not reveal the flag.
    assert!(matches!(
        accounts
            .login("carol@example.com", &Password::new("wrong password!"))
            .await,
        Err(AccountError::InvalidCredentials)
    ));
    let carol_pw = Password::new("carol's own passphrase");
    accounts
        .change_password(&admin_made.id, &temp, &carol_pw)
        .await
        .unwrap();
    let l = accounts
        .login("carol@example.com", &carol_pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    assert!(!l.user.must_change_password);
    assert!(!l.password_change_required);
    // The restricted session ended with the change; the new one is unrestricted.
    assert!(matches!(
        sessions.resolve(&bearer(restricted.token.expose_secret())).await,
        Resolution::Invalid(r) if r.code() == "user.credential_superseded"
    ));
    match sessions.resolve(&bearer(l.token.expose_secret())).await {
        Resolution::Authenticated(p) => assert!(!p.is_restricted()),
        other => panic!("expected authenticated, got {other:?}"),
    }

    // Disabled users cannot log in and lose their sessions.
    accounts.set_disabled(&admin_made.id, true).await.unwrap();
    assert!(matches!(
        sessions.resolve(&bearer(l.token.expose_secret())).await,
        Resolution::Invalid(_)
    ));
    assert!(matches!(
        accounts.login("carol@example.com", &carol_pw).await,
        Err(AccountError::InvalidCredentials)
    ));

    // Legacy bcrypt hashes verify and are upgraded to Argon2id at login.
    let legacy_hash = bcrypt::hash("legacy password 123", 4).unwrap();
    let legacy = User::new(
        "u-legacy",
        "legacy@example.com",
        Some(legacy_hash.clone()),
        1,
    );
    store.create_user(&legacy).await.unwrap();
    accounts
        .login("legacy@example.com", &Password::new("legacy password 123"))
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let upgraded = store.user_by_id("u-legacy").await.unwrap().unwrap();
    assert!(
        upgraded
            .password_hash
            .as_deref()
            .unwrap()
            .starts_with("$argon2id$")
    );
    accounts
        .login("legacy@example.com", &Password::new("legacy password 123"))
        .await
        .unwrap()
        .into_session()
        .unwrap();
}

#[cfg(feature = "sso")]
fn identity(sub: &str, email: Option<&str>, verified: bool) -> VerifiedIdentity {
    VerifiedIdentity::new(
        "https://idp.example.com",
        sub,
        email.map(str::to_owned),
        verified,
        4_000_000_000,
    )
}

#[cfg(feature = "sso")]
pub async fn binding<S: FullStore>(store: Arc<S>) {
    let binder = SsoBinder::new(store.clone());
    // Unknown: provisioned.
    let p = binder
        .bind(&identity("b-sub-1", Some("New@Bind.example"), true))
        .await
        .unwrap();
    assert_eq!(p.kind, BindingKind::Provisioned);
    let created = store.user_by_id(&p.user_id).await.unwrap().unwrap();
    assert_eq!(created.email, "new@bind.example");
    assert_eq!(created.password_hash, None);
    // Same identity again: existing.
    let again = binder
        .bind(&identity("b-sub-1", Some("new@bind.example"), true))
        .await
        .unwrap();
    assert_eq!(again.kind, BindingKind::Existing);
    assert_eq!(again.user_id, p.user_id);
    // The email is bound to b-sub-1: another identity claiming it is refused.
    assert!(matches!(
        binder
            .bind(&identity("b-sub-2", Some("new@bind.example"), true))
            .await,
        Err(BindError::EmailBoundElsewhere)
    ));
    // Existing unbound user whose email was never proven (self-registered): not adopted.
    let unproven = user("u-bind-unproven", "unproven@bind.example");
    store.create_user(&unproven).await.unwrap();
    assert!(matches!(
        binder
            .bind(&identity("b-sub-9", Some("unproven@bind.example"), true))
            .await,
        Err(BindError::EmailUnproven)
    ));
    assert_eq!(store.identity_of("u-bind-unproven").await.unwrap(), None);
    // Existing unbound user with a proven email: adopted once, when the token's email is
    // verified.
    let local = user("u-bind-local", "local@bind.example").with_email_verified(true);
    store.create_user(&local).await.unwrap();
    assert!(matches!(
        binder
            .bind(&identity("b-sub-3", Some("local@bind.example"), false))
            .await,
        Err(BindError::EmailNotVerified)
    ));
    assert_eq!(store.identity_of("u-bind-local").await.unwrap(), None);
    let adopted = binder
        .bind(&identity("b-sub-3", Some("local@bind.example"), true))
        .await
        .unwrap();
    assert_eq!(adopted.kind, BindingKind::AdoptedByEmail);
    assert_eq!(adopted.user_id, "u-bind-local");
    let later = binder
        .bind(&identity("b-sub-3", Some("changed@bind.example"), true))
        .await
        .unwrap();
    assert_eq!(later.kind, BindingKind::Existing);
    assert_eq!(later.user_id, "u-bind-local");
    // ... and not adopted a second time by another identity.
    assert!(matches!(
        binder
            .bind(&identity("b-sub-4", Some("local@bind.example"), true))
            .await,
        Err(BindError::EmailBoundElsewhere)
    ));
    // Auto-provisioning off.
    let strict = SsoBinder::new(store.clone()).auto_provision(false);
    assert!(matches!(
        strict
            .bind(&identity("b-sub-5", Some("fresh@bind.example"), true))
            .await,
        Err(BindError::ProvisioningDisabled)
    ));
    assert_eq!(
        store.user_by_email("fresh@bind.example").await.unwrap(),
        None
    );
    // Provisioning needs a verified email.
    assert!(matches!(
        binder
            .bind(&identity("b-sub-6", Some("unverified@bind.example"), false))
            .await,
        Err(BindError::EmailNotVerified)
    ));
    assert!(matches!(
        binder.bind(&identity("b-sub-7", None, true)).await,
        Err(BindError::EmailNotVerified)
    ));
    // Disabled bound user: refused.
    store.set_disabled("u-bind-local", true).await.unwrap();
    assert!(matches!(
        binder.bind(&identity("b-sub-3", None, true)).await,
        Err(BindError::UserDisabled)
    ));
    // Concurrent first logins of one identity: one user, one binding.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = binder.clone();
        tasks.push(tokio::spawn(async move {
            b.bind(&identity("b-sub-race", Some("race@bind.example"), true))
                .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap().user_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "concurrent binds created several users");
}

/// A `PgStore` in a fresh schema of the database at `STRONGROOM_PG_URL`, migrated; call
/// [`PgSchema::drop_schema`] when the test passed.
#[cfg(feature = "postgres")]
pub struct PgSchema {
    admin: sqlx::PgPool,
    url: String,
    schema: String,
    pub store: auth_core::PgStore,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    /// A schema named `<prefix>_<nanoseconds>` and a pool of `connections` on it.
    pub async fn create(prefix: &str, connections: u32) -> Self {
        use sqlx::postgres::PgPoolOptions;
        let url = std::env::var("STRONGROOM_PG_URL")
            .expect("STRONGROOM_PG_URL must be set to run the PostgreSQL tests");
        let schema = format!(
            "{prefix}_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .unwrap();
        let pool = pool_on(&url, &schema, connections).await;
        let store = auth_core::PgStore::new(pool);
        store.migrate().await.unwrap();
        Self {
            admin,
            url,
            schema,
            store,
        }
    }

    /// Another pool of `connections` on the same schema (a second instance).
    pub async fn pool(&self, connections: u32) -> sqlx::PgPool {
        pool_on(&self.url, &self.schema, connections).await
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

/// A pool of `connections` on `schema` of the database at `url`.
#[cfg(feature = "postgres")]
async fn pool_on(url: &str, schema: &str, connections: u32) -> sqlx::PgPool {
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .unwrap()
}

/// Three tests running the async suite `$all(store)` on a fresh memory, SQLite and
/// PostgreSQL (ignored unless `STRONGROOM_PG_URL` is set) store.
#[allow(unused_macros)] // Not every test module uses every helper.
macro_rules! on_every_store {
    ($all:ident, $memory:ident, $sqlite:ident, $postgres:ident, $schema:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $memory() {
            $all(std::sync::Arc::new(auth_core::MemoryStore::new())).await;
        }

        #[cfg(feature = "sqlite")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("auth.db").display());
            let store = auth_core::SqliteStore::connect(&url).await.unwrap();
            $all(std::sync::Arc::new(store)).await;
        }

        #[cfg(feature = "postgres")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        #[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
        async fn $postgres() {
            let pg = support::PgSchema::create($schema, 8).await;
            $all(std::sync::Arc::new(pg.store.clone())).await;
            pg.drop_schema().await;
        }
    };
}
