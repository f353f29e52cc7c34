//! Every store suite against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;

use auth_core::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_suites() {
    support::run_all(Arc::new(MemoryStore::new())).await;
}

/// The in-memory store and the resolvers over it decide without a boxed future (the
/// point of `MaybeReady`): every request-path call is ready before it is polled.
#[tokio::test]
async fn resolutions_over_the_memory_store_answer_without_waiting() {
    use auth_core::api_key::ApiKeyStore;
    use auth_core::session::SessionStore;
    use auth_core::{
        ApiKeys, Credential, CredentialKind, Resolution, Resolver, SessionConfig, Sessions,
    };

    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let keys = ApiKeys::new(store.clone());
    let user = support::ensure_user(&*store, "u-ready").await;
    let token = sessions.issue(&user).await.unwrap();
    let key = keys.create("u-ready", "ready", vec![]).await.unwrap();
    let session = Credential::new(CredentialKind::Bearer, token.expose_secret()).unwrap();
    let api_key = Credential::new(CredentialKind::ApiKey, key.expose_secret()).unwrap();
    let forged =
        Credential::new(CredentialKind::Bearer, &format!("ses_{}", "A".repeat(43))).unwrap();
    // The first use of a key records its last-used time (a write, allowed to wait);
    // later uses within the granularity only read.
    assert!(matches!(
        keys.resolve(&api_key).await,
        Resolution::Authenticated(_)
    ));

    let f = sessions.resolve(&session);
    assert!(f.is_ready(), "session");
    assert!(matches!(f.await, Resolution::Authenticated(p) if p.user_id() == "u-ready"));
    let f = keys.resolve(&api_key);
    assert!(f.is_ready(), "api key");
    assert!(matches!(f.await, Resolution::Authenticated(p) if p.user_id() == "u-ready"));
    let f = sessions.resolve(&forged);
    assert!(f.is_ready(), "unknown session");
    assert!(matches!(f.await, Resolution::Invalid(_)));
    assert!(store.session_by_digest(&[0; 32]).is_ready());
    assert!(store.api_key(key.key_id()).is_ready());
}

/// Every session and API key lookup reads exactly the state `user_by_id` gives for the
/// key's user, after each kind of change of a user (the memory store reads it through a
/// per-user cell shared with the credentials, not from the user row: a change that
/// forgot to republish the cell fails here), and a change of one user never shows in
/// another user's credentials.
#[tokio::test]
async fn lookups_read_the_users_current_state_after_every_change() {
    lookups_follow_every_change(&MemoryStore::new()).await;
}

/// The body of the test above, for any store (the validity cache runs it too: a lookup
/// made before each change is cached, and must not answer after it).
pub(crate) async fn lookups_follow_every_change<S: support::FullStore>(store: &S) {
    use auth_core::ApiKeyRecord;
    use auth_core::session::SessionRecord;
    use auth_core::user::{EpochKind, RevokeScope, SsoIdentity};

    async fn check<S: support::FullStore>(store: &S, step: &str) {
        let creds: [(&str, [u8; 32], &str); 3] = [
            ("u-a", [1; 32], "k-a"),
            ("u-a", [2; 32], "k-a"),
            ("u-b", [3; 32], "k-b"),
        ];
        for (user_id, digest, key_id) in creds {
            let user = store.user_by_id(user_id).await.unwrap().unwrap();
            let s = store.session_by_digest(&digest).await.unwrap().unwrap();
            assert_eq!(s.record.user_id(), user_id, "{step}");
            assert_eq!(s.user, Some(user.state(EpochKind::Session)), "{step}");
            let k = store.api_key(key_id).await.unwrap().unwrap();
            assert_eq!(k.user, Some(user.state(EpochKind::ApiKey)), "{step}");
        }
    }

    let a = support::ensure_user(store, "u-a").await;
    support::ensure_user(store, "u-b").await;
    for (id, user_id, digest) in [("s1", "u-a", [1; 32]), ("s2", "u-a", [2; 32])] {
        let r = SessionRecord::new(id, user_id, digest, 1, i64::MAX);
        store.insert_session(&r).await.unwrap();
    }
    let r = SessionRecord::new("s3", "u-b", [3; 32], 1, i64::MAX);
    store.insert_session(&r).await.unwrap();
    for (id, user_id) in [("k-a", "u-a"), ("k-b", "u-b")] {
        let r = ApiKeyRecord::new(id, user_id, "n", [9; 32], vec![], 1);
        store.insert_api_key(&r).await.unwrap();
    }
    check(store, "created").await;

    let old_hash = a.password_hash.as_deref();
    assert!(
        !store
            .set_password("u-a", Some("$other"), "$h1", true, RevokeScope::All)
            .await
            .unwrap()
    );
    check(store, "failed compare-and-set").await;
    assert!(
        store
            .set_password("u-a", old_hash, "$h1", true, RevokeScope::None)
            .await
            .unwrap()
    );
    check(store, "must change, no revoke").await;
    let a_state = store.session_by_digest(&[1; 32]).await.unwrap().unwrap();
    assert!(a_state.user.unwrap().must_change_password);
    assert!(
        store
            .set_password("u-a", Some("$h1"), "$h2", false, RevokeScope::Sessions)
            .await
            .unwrap()
    );
    check(store, "password change, sessions").await;
    assert!(store.set_disabled("u-a", true).await.unwrap());
    check(store, "disabled").await;
    assert!(
        store
            .session_by_digest(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .user
            .unwrap()
            .disabled
    );
    assert!(store.set_disabled("u-a", false).await.unwrap());
    check(store, "enabled").await;
    assert!(
        store
            .revoke_credentials("u-a", RevokeScope::All)
            .await
            .unwrap()
    );
    check(store, "revoke all").await;
    assert!(store.set_email_verified("u-a").await.unwrap());
    check(store, "email verified").await;
    store
        .bind_identity("u-a", &SsoIdentity::new("https://idp.example", "sub-a"))
        .await
        .unwrap();
    check(store, "identity bound").await;

    let a_now = store.user_by_id("u-a").await.unwrap().unwrap();
    assert_eq!(a_now.session_epoch, 4);
    assert_eq!(a_now.key_epoch, 3);
    let b_now = store.user_by_id("u-b").await.unwrap().unwrap();
    assert_eq!((b_now.session_epoch, b_now.key_epoch), (0, 0));
    // The expiry sweep reads the same state: u-a's sessions are superseded, u-b's is not.
    assert_eq!(store.delete_expired_sessions(0).await.unwrap(), 2);
    assert!(store.session_by_digest(&[3; 32]).await.unwrap().is_some());
}
