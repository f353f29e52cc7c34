//! Every store suite against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
mod support;

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
