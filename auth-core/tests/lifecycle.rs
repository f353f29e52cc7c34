//! Credential lifecycle races: a login racing a password change (A1), a rehash racing a
//! password change (A2), bcrypt's 72-byte limit (A3) and disabled users' API keys (A4),
//! on every store back end. Each test here also runs against the code before the
//! credential epochs (it uses only calls that existed then) and fails there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auth_core::{
    AccountError, Accounts, ApiKeys, Credential, CredentialKind, Password, Resolution, Resolver,
    SessionConfig, Sessions, User,
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

/// A1: four clients log in with the old password every 2 ms while the owner changes it.
/// No session obtained with the old password may resolve after the change answered.
async fn login_racing_password_change<S: FullStore>(store: Arc<S>) {
    let (accounts, sessions, _) = parts(&store);
    let old = Password::new("the old password 0123");
    let new = Password::new("the new password 4567");
    let mut obtained = 0;
    for round in 0..6 {
        let email = format!("a1-race-{round}@example.com");
        let user = accounts.register(&email, &old).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (accounts, email, old, stop) =
                    (accounts.clone(), email.clone(), old.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut tokens = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        if let Ok(auth_core::LoginStep::Session(login)) =
                            accounts.login(&email, &old).await
                        {
                            tokens.push(login.token.expose_secret().to_owned());
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    tokens
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10 + 3 * round)).await;
        accounts
            .change_password(&user.id, &old, &new)
            .await
            .unwrap();
        // Let the logins that were in flight during the change finish.
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.store(true, Ordering::SeqCst);
        let mut live = 0;
        for client in clients {
            for token in client.await.unwrap() {
                obtained += 1;
                if resolves(&sessions, &bearer(&token)).await {
                    live += 1;
                }
            }
        }
        assert_eq!(
            live, 0,
            "round {round}: sessions from before the change live"
        );
        accounts
            .login(&email, &new)
            .await
            .unwrap()
            .into_session()
            .unwrap();
    }
    assert!(
        obtained > 0,
        "no login succeeded: the race was not exercised"
    );
}

/// A2: a legacy bcrypt user changes the password while a login with the old one (which
/// upgrades the hash) is in flight. Every round: the new password works, the old fails.
async fn rehash_racing_password_change<S: FullStore>(store: Arc<S>) {
    let (accounts, _, _) = parts(&store);
    let old = "legacy old password 1";
    let new = Password::new("brand new password 22");
    for round in 0..12u64 {
        let email = format!("a2-race-{round}@example.com");
        let user = User::new(
            format!("u-a2-{round}"),
            email.clone(),
            Some(bcrypt::hash(old, 4).unwrap()),
            1,
        );
        store.create_user(&user).await.unwrap();
        let login = {
            let (accounts, email) = (accounts.clone(), email.clone());
            tokio::spawn(async move {
                // Start the login a little later each round, so that its write-back lands
                // at different points of the change.
                tokio::time::sleep(Duration::from_micros(700 * round)).await;
                accounts
                    .login(&email, &Password::new(old))
                    .await
                    .map(|_| ())
            })
        };
        let change = accounts
            .change_password(&user.id, &Password::new(old), &new)
            .await;
        let _ = login.await.unwrap();
        assert!(change.is_ok(), "round {round}: change refused: {change:?}");
        assert!(
            accounts.login(&email, &new).await.is_ok(),
            "round {round}: the new password does not work"
        );
        assert!(
            matches!(
                accounts.login(&email, &Password::new(old)).await,
                Err(AccountError::InvalidCredentials)
            ),
            "round {round}: the old password came back"
        );
    }
}

/// A3: bcrypt reads 72 bytes. The first 72 bytes of the owner's 80-byte password followed
/// by `ATTACKER` must not log in, and must not replace the owner's hash.
async fn bcrypt_suffix_is_refused<S: FullStore>(store: Arc<S>) {
    let (accounts, _, _) = parts(&store);
    let owner: String = "0123456789".repeat(8);
    assert_eq!(owner.len(), 80);
    let hash = bcrypt::hash(&owner, 4).unwrap();
    let user = User::new("u-a3", "a3@example.com", Some(hash.clone()), 1);
    store.create_user(&user).await.unwrap();
    let attacker = format!("{}ATTACKER", &owner[..72]);
    assert!(matches!(
        accounts
            .login("a3@example.com", &Password::new(attacker))
            .await,
        Err(AccountError::InvalidCredentials)
    ));
    let stored = store.user_by_id("u-a3").await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_deref(), Some(hash.as_str()));
    // The rule: more than 72 bytes never matches a bcrypt hash, the owner's own 80 bytes
    // included (documented: such a user resets the password).
    assert!(matches!(
        accounts
            .login("a3@example.com", &Password::new(&*owner))
            .await,
        Err(AccountError::InvalidCredentials)
    ));
    let stored = store.user_by_id("u-a3").await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_deref(), Some(hash.as_str()));
}

/// A4: a disabled user's API key resolves no more (login and sessions already refused).
async fn disabled_users_keys_do_not_resolve<S: FullStore>(store: Arc<S>) {
    let (accounts, sessions, keys) = parts(&store);
    let pw = Password::new("a4 password 0123");
    let user = accounts.register("a4@example.com", &pw).await.unwrap();
    let login = accounts
        .login("a4@example.com", &pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    let key = keys.create(&user.id, "bot", vec![]).await.unwrap();
    let key_cred = Credential::new(CredentialKind::ApiKey, key.expose_secret()).unwrap();
    assert!(resolves(&keys, &key_cred).await);
    accounts.set_disabled(&user.id, true).await.unwrap();
    assert!(
        !resolves(&keys, &key_cred).await,
        "disabled user's key resolved"
    );
    assert!(!resolves(&sessions, &bearer(login.token.expose_secret())).await);
    assert!(keys.create(&user.id, "new", vec![]).await.is_err());
}

async fn all<S: FullStore>(store: Arc<S>) {
    login_racing_password_change(store.clone()).await;
    rehash_racing_password_change(store.clone()).await;
    bcrypt_suffix_is_refused(store.clone()).await;
    disabled_users_keys_do_not_resolve(store).await;
}

on_every_store!(
    all,
    lifecycle_on_memory_store,
    lifecycle_on_sqlite_store,
    lifecycle_on_postgres_store,
    "auth_core_lifecycle"
);
