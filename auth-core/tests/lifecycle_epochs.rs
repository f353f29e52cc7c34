//! What ends what: password change, disable, SSO link, sign-out-everywhere and admin
//! reset against sessions and API keys, each atomic with respect to concurrent logins;
//! SSO adoption only of proven emails (A6); the same-password refusal (A8); restricted
//! sessions and the extractor that refuses them (A11).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::sso::{BindError, BindingKind, IdentityBinder, VerifiedIdentity};
use auth_core::{
    AccountError, Accounts, ApiKeys, Credential, CredentialKind, MemoryStore, Password, Resolution,
    Resolver, SessionConfig, Sessions, SsoBinder,
};
use support::{FullStore, bearer, fast_hasher};

fn parts<S: FullStore>(store: &Arc<S>) -> (Accounts, Sessions, ApiKeys) {
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions.clone(), fast_hasher());
    (accounts, sessions, ApiKeys::new(store.clone()))
}

async fn resolves(r: &impl Resolver, cred: &Credential) -> bool {
    matches!(r.resolve(cred).await, Resolution::Authenticated(_))
}

fn key_cred(raw: &str) -> Credential {
    Credential::new(CredentialKind::ApiKey, raw).unwrap()
}

fn verified_identity(sub: &str, email: &str) -> VerifiedIdentity {
    VerifiedIdentity::new(
        "https://idp.example.com",
        sub,
        Some(email.to_owned()),
        true,
        4_000_000_000,
    )
}

#[derive(Clone, Copy, Debug)]
enum Event {
    SignOutEverywhere,
    Disable,
    Link,
    AdminReset,
}

/// Four clients log in every 2 ms while `event` happens: no session obtained before it
/// answered resolves afterwards, and neither does the API key made before it.
async fn logins_racing<S: FullStore>(store: Arc<S>, event: Event) {
    let (accounts, sessions, keys) = parts(&store);
    let binder = SsoBinder::new(store.clone());
    let pw = Password::new("racing password 0123");
    let mut obtained = 0;
    for round in 0..4u64 {
        let email = format!("race-{event:?}-{round}@example.com").to_lowercase();
        // Operator-created without reset: the email is proven (the link may adopt it).
        let user = accounts
            .admin_create_user_keep_password(&email, &pw)
            .await
            .unwrap();
        let key = keys.create(&user.id, "bot", vec![]).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let succeeded = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (accounts, email, pw, stop, succeeded) = (
                    accounts.clone(),
                    email.clone(),
                    pw.clone(),
                    stop.clone(),
                    succeeded.clone(),
                );
                tokio::spawn(async move {
                    let mut tokens = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        if let Ok(auth_core::LoginStep::Session(login)) =
                            accounts.login(&email, &pw).await
                        {
                            tokens.push(login.token.expose_secret().to_owned());
                            succeeded.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    tokens
                })
            })
            .collect();
        // Fire once some sessions exist (a slow machine must not make the test vacuous),
        // a little later each round.
        for _ in 0..10_000 {
            if succeeded.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(3 * round)).await;
        match event {
            Event::SignOutEverywhere => accounts.sign_out_everywhere(&user.id).await.unwrap(),
            Event::Disable => accounts.set_disabled(&user.id, true).await.unwrap(),
            Event::Link => {
                let bound = binder
                    .bind(&verified_identity(&format!("sub-{round}"), &email))
                    .await
                    .unwrap();
                assert_eq!(bound.kind, BindingKind::AdoptedByEmail);
            }
            Event::AdminReset => accounts
                .admin_reset_password(&user.id, &Password::new("operator reset 0123"))
                .await
                .unwrap(),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, Ordering::SeqCst);
        let mut tokens = Vec::new();
        for client in clients {
            tokens.extend(client.await.unwrap());
        }
        obtained += tokens.len();
        let user_now = store.user_by_id(&user.id).await.unwrap().unwrap();
        let records = sessions.list(&user.id).await.unwrap();
        for token in &tokens {
            let live = resolves(&sessions, &bearer(token)).await;
            match event {
                // No login can succeed after these: every session obtained is dead.
                Event::Disable | Event::AdminReset => {
                    assert!(!live, "{event:?} round {round}: a session lives");
                }
                // Logins after these succeed again: a session lives exactly when it was
                // issued at the user's current epoch, i.e. after the event.
                Event::SignOutEverywhere | Event::Link => {
                    let digest =
                        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
                    let record = records
                        .iter()
                        .find(|r| r.token_digest()[..] == *digest.as_ref())
                        .expect("session row");
                    assert_eq!(
                        live,
                        record.epoch() == user_now.session_epoch,
                        "{event:?} round {round}: epoch {} vs user {}",
                        record.epoch(),
                        user_now.session_epoch
                    );
                }
            }
        }
        assert!(
            records.iter().any(|r| r.epoch() < user_now.session_epoch)
                || matches!(event, Event::Disable | Event::AdminReset),
            "{event:?} round {round}: no session from before the event to check"
        );
        assert!(
            !resolves(&keys, &key_cred(key.expose_secret())).await,
            "{event:?} round {round}: the API key made before lives"
        );
    }
    assert!(obtained > 0, "{event:?}: no login succeeded");
}

/// What each change ends: a password change ends sessions, not API keys; sign-out
/// everywhere ends both; disabling ends both and re-enabling brings nothing back.
async fn what_ends_what<S: FullStore>(store: Arc<S>) {
    let (accounts, sessions, keys) = parts(&store);
    let pw = Password::new("what ends what 0123");
    let user = accounts.register("ends@example.com", &pw).await.unwrap();
    let s1 = accounts
        .login("ends@example.com", &pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let k1 = keys.create(&user.id, "bot", vec![]).await.unwrap();
    // Password change: sessions end, the key survives.
    let pw2 = Password::new("what ends what 4567");
    accounts.change_password(&user.id, &pw, &pw2).await.unwrap();
    assert!(matches!(
        sessions.resolve(&bearer(s1.token.expose_secret())).await,
        Resolution::Invalid(r) if r.code() == "user.credential_superseded"
    ));
    assert!(resolves(&keys, &key_cred(k1.expose_secret())).await);
    // Sign out everywhere: both end; new ones work.
    let s2 = accounts
        .login("ends@example.com", &pw2)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    accounts.sign_out_everywhere(&user.id).await.unwrap();
    assert!(!resolves(&sessions, &bearer(s2.token.expose_secret())).await);
    assert!(!resolves(&keys, &key_cred(k1.expose_secret())).await);
    let s3 = accounts
        .login("ends@example.com", &pw2)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let k3 = keys.create(&user.id, "bot", vec![]).await.unwrap();
    assert!(resolves(&sessions, &bearer(s3.token.expose_secret())).await);
    assert!(resolves(&keys, &key_cred(k3.expose_secret())).await);
    // Disable: both end, with the user-state refusal; re-enabling revives nothing.
    accounts.set_disabled(&user.id, true).await.unwrap();
    assert!(matches!(
        keys.resolve(&key_cred(k3.expose_secret())).await,
        Resolution::Invalid(r) if r.code() == "user.disabled"
    ));
    accounts.set_disabled(&user.id, false).await.unwrap();
    assert!(!resolves(&sessions, &bearer(s3.token.expose_secret())).await);
    assert!(!resolves(&keys, &key_cred(k3.expose_secret())).await);
    // The sweep removes superseded rows.
    assert!(sessions.sweep().await.unwrap() >= 3);
    assert!(sessions.list(&user.id).await.unwrap().is_empty());
    // Unknown users.
    assert!(matches!(
        accounts.sign_out_everywhere("u-nobody").await,
        Err(AccountError::UserNotFound)
    ));
}

/// A6: account pre-hijacking through SSO. An attacker registers the victim's email with
/// their own password, keeps a session and a key; the victim's first SSO sign-in must not
/// adopt that account. An operator-created (proven) account is adopted, and the link ends
/// every credential it had.
async fn sso_adopts_only_proven_emails_and_the_link_ends_credentials<S: FullStore>(store: Arc<S>) {
    let (accounts, sessions, keys) = parts(&store);
    let binder = SsoBinder::new(store.clone());
    let attacker_pw = Password::new("attacker password 0123");
    let squatted = accounts
        .register("victim@example.com", &attacker_pw)
        .await
        .unwrap();
    assert!(!squatted.email_verified);
    let attacker = accounts
        .login("victim@example.com", &attacker_pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let attacker_key = keys.create(&squatted.id, "bot", vec![]).await.unwrap();
    assert!(matches!(
        binder
            .bind(&verified_identity("victim-sub", "victim@example.com"))
            .await,
        Err(BindError::EmailUnproven)
    ));
    assert_eq!(store.identity_of(&squatted.id).await.unwrap(), None);
    // Once the service verified the email, adoption works, and ends everything before.
    accounts.mark_email_verified(&squatted.id).await.unwrap();
    let bound = binder
        .bind(&verified_identity("victim-sub", "victim@example.com"))
        .await
        .unwrap();
    assert_eq!(bound.kind, BindingKind::AdoptedByEmail);
    assert!(!resolves(&sessions, &bearer(attacker.token.expose_secret())).await);
    assert!(!resolves(&keys, &key_cred(attacker_key.expose_secret())).await);

    // Operator-created: proven from the start.
    let temp = Password::new("operator temp 0123");
    let made = accounts
        .admin_create_user("staff@example.com", &temp)
        .await
        .unwrap();
    let restricted = accounts
        .login("staff@example.com", &temp)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let bound = binder
        .bind(&verified_identity("staff-sub", "staff@example.com"))
        .await
        .unwrap();
    assert_eq!(
        (bound.kind, bound.user_id.as_str()),
        (BindingKind::AdoptedByEmail, made.id.as_str())
    );
    assert!(!resolves(&sessions, &bearer(restricted.token.expose_secret())).await);
    // A must-change user signing in through SSO is bound (a full principal: the
    // restriction is on the operator-set password, which SSO does not use).
    let again = binder
        .bind(&verified_identity("staff-sub", "staff@example.com"))
        .await
        .unwrap();
    assert_eq!(again.kind, BindingKind::Existing);
    // Disabled: SSO refused through the same user-state decision.
    accounts.set_disabled(&made.id, true).await.unwrap();
    assert!(matches!(
        binder
            .bind(&verified_identity("staff-sub", "staff@example.com"))
            .await,
        Err(BindError::UserDisabled)
    ));
}

/// A8 and A11 on the library side: the forced change refuses the same password with a
/// typed error; the must-change login is a restricted session until the change.
async fn forced_change<S: FullStore>(store: Arc<S>) {
    let (accounts, sessions, keys) = parts(&store);
    let temp = Password::new("temporary password 0123");
    let user = accounts
        .admin_create_user("forced@example.com", &temp)
        .await
        .unwrap();
    let login = accounts
        .login("forced@example.com", &temp)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    assert!(login.password_change_required);
    // The login says when its session ends: the stored expiry, the configured TTL on.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let ttl = i64::try_from(auth_core::session::DEFAULT_SESSION_TTL.as_secs()).unwrap();
    assert_eq!(login.expires_at, login.token.expires_at());
    assert!(
        (now + ttl - 2..=now + ttl).contains(&login.expires_at),
        "{} vs {}",
        login.expires_at,
        now + ttl
    );
    match sessions.resolve(&bearer(login.token.expose_secret())).await {
        Resolution::Authenticated(p) => assert!(p.is_restricted()),
        other => panic!("expected a restricted principal, got {other:?}"),
    }
    // An API key of a must-change user is restricted too (one decision for all).
    let key = keys.create(&user.id, "bot", vec![]).await.unwrap();
    match keys.resolve(&key_cred(key.expose_secret())).await {
        Resolution::Authenticated(p) => assert!(p.is_restricted()),
        other => panic!("expected a restricted principal, got {other:?}"),
    }
    assert!(matches!(
        accounts.change_password(&user.id, &temp, &temp).await,
        Err(AccountError::SamePassword)
    ));
    let still = store.user_by_id(&user.id).await.unwrap().unwrap();
    assert!(still.must_change_password);
    let own = Password::new("my own password 4567");
    accounts
        .change_password(&user.id, &temp, &own)
        .await
        .unwrap();
    let l = accounts
        .login("forced@example.com", &own)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    assert!(!l.password_change_required);
    match sessions.resolve(&bearer(l.token.expose_secret())).await {
        Resolution::Authenticated(p) => assert!(!p.is_restricted()),
        other => panic!("expected authenticated, got {other:?}"),
    }
    // Admin reset: must change again, every credential ends.
    let key = keys.create(&user.id, "bot2", vec![]).await.unwrap();
    accounts
        .admin_reset_password(&user.id, &Password::new("operator reset 0123"))
        .await
        .unwrap();
    assert!(!resolves(&sessions, &bearer(l.token.expose_secret())).await);
    assert!(!resolves(&keys, &key_cred(key.expose_secret())).await);
    assert!(
        accounts
            .login("forced@example.com", &Password::new("operator reset 0123"))
            .await
            .unwrap()
            .into_session()
            .unwrap()
            .password_change_required
    );
}

/// Review: a key created by a session whose request was authenticated before the session
/// ended (sign out everywhere, disable+enable, password change, admin reset) must not be
/// stored: otherwise the ended session leaves behind a key stamped with the new epoch.
async fn key_minted_by_an_ended_session<S: FullStore>(store: Arc<S>) {
    let (accounts, sessions, keys) = parts(&store);
    let pw = Password::new("minted by ended 0123");
    let pw2 = Password::new("minted by ended 4567");
    let user = accounts.register("minted@example.com", &pw).await.unwrap();
    for step in 0..4 {
        let current = if step < 2 { &pw } else { &pw2 };
        let login = accounts
            .login("minted@example.com", current)
            .await
            .unwrap()
            .into_session()
            .unwrap();
        // The request is authenticated...
        let Resolution::Authenticated(principal) =
            sessions.resolve(&bearer(login.token.expose_secret())).await
        else {
            panic!("fresh session must resolve");
        };
        // ...then its session ends while the handler runs...
        match step {
            0 => accounts.sign_out_everywhere(&user.id).await.unwrap(),
            1 => accounts.change_password(&user.id, &pw, &pw2).await.unwrap(),
            2 => {
                accounts.set_disabled(&user.id, true).await.unwrap();
                accounts.set_disabled(&user.id, false).await.unwrap();
            }
            _ => accounts.sign_out_everywhere(&user.id).await.unwrap(),
        }
        // ...and the handler mints a key on its behalf: refused, and nothing stored.
        let minted = keys.create_for(&principal, "late", vec![]).await;
        assert!(
            matches!(
                minted,
                Err(auth_core::api_key::ApiKeyError::Store(
                    auth_core::StoreError::UserRefused
                ))
            ),
            "step {step}: an ended session minted a key"
        );
        assert!(keys.list(&user.id).await.unwrap().is_empty());
    }
    // A live session still mints keys, and they resolve.
    let login = accounts
        .login("minted@example.com", &pw2)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let Resolution::Authenticated(principal) =
        sessions.resolve(&bearer(login.token.expose_secret())).await
    else {
        panic!("fresh session must resolve");
    };
    let key = keys.create_for(&principal, "ok", vec![]).await.unwrap();
    assert!(resolves(&keys, &key_cred(key.expose_secret())).await);
}

async fn all<S: FullStore>(store: Arc<S>) {
    for event in [
        Event::SignOutEverywhere,
        Event::Disable,
        Event::Link,
        Event::AdminReset,
    ] {
        logins_racing(store.clone(), event).await;
    }
    what_ends_what(store.clone()).await;
    sso_adopts_only_proven_emails_and_the_link_ends_credentials(store.clone()).await;
    forced_change(store.clone()).await;
    key_minted_by_an_ended_session(store).await;
}

on_every_store!(
    all,
    epochs_on_memory_store,
    epochs_on_sqlite_store,
    epochs_on_postgres_store,
    "auth_core_epochs"
);

/// A11: the extractor refuses a restricted principal with 403
/// `{"error":"password_change_required"}`; a route that opts in sees it.
#[cfg(feature = "axum")]
#[tokio::test]
async fn extractor_refuses_restricted_principals_unless_the_route_opts_in() {
    use auth_core::Chain;
    use auth_core::http::{AllowRestricted, AuthLayer, Authenticated};
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    let store = Arc::new(MemoryStore::new());
    let (accounts, sessions, _) = parts(&store);
    let temp = Password::new("temporary password 0123");
    accounts
        .admin_create_user("gate@example.com", &temp)
        .await
        .unwrap();
    let restricted = accounts
        .login("gate@example.com", &temp)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let router = Router::new()
        .route(
            "/me",
            get(|Authenticated(p): Authenticated| async move { p.user_id().to_owned() }),
        )
        .route(
            "/password",
            get(|AllowRestricted(p): AllowRestricted| async move {
                format!("restricted={}", p.is_restricted())
            }),
        )
        .layer(AuthLayer::new(Chain::builder().resolver(sessions).build()));
    let call = |uri: &'static str, token: String| {
        let router = router.clone();
        async move {
            let req = http::Request::builder()
                .uri(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let token = restricted.token.expose_secret().to_owned();
    let (s, body) = call("/me", token.clone()).await;
    assert_eq!(s, http::StatusCode::FORBIDDEN);
    assert_eq!(body, r#"{"error":"password_change_required"}"#);
    let (s, body) = call("/password", token).await;
    assert_eq!(
        (s, body.as_str()),
        (http::StatusCode::OK, "restricted=true")
    );
    let own = Password::new("my own password 4567");
    let user = store_user(&store, "gate@example.com").await;
    accounts.change_password(&user, &temp, &own).await.unwrap();
    let full = accounts
        .login("gate@example.com", &own)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let (s, _) = call("/me", full.token.expose_secret().to_owned()).await;
    assert_eq!(s, http::StatusCode::OK);
}

#[cfg(feature = "axum")]
async fn store_user(store: &MemoryStore, email: &str) -> String {
    use auth_core::UserStore as _;
    store.user_by_email(email).await.unwrap().unwrap().id
}
