//! The validity cache (`store::ValidityCache`): every store suite through it, every
//! change of a user seen at once, entries really answered from memory and only for the
//! TTL, no stale entry from a lookup that raced a revocation, bounded size, and its
//! configuration refused outside its range.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::session::{SessionRecord, SessionStore};
use auth_core::store::validity::MAX_TTL;
use auth_core::user::WithUser;
use auth_core::{
    ApiKeys, ConfigError, MemoryStore, Resolution, Resolver, SessionConfig, Sessions, StoreError,
    StoreFuture, ValidityCache, ValidityCacheConfig,
};

fn cached(ttl_ms: u64) -> Arc<ValidityCache<MemoryStore>> {
    let config = ValidityCacheConfig::new(Duration::from_millis(ttl_ms), 1000).unwrap();
    Arc::new(ValidityCache::new(MemoryStore::new(), config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_suite_passes_through_the_cache() {
    // A one-second TTL: a write that forgot to empty the cache shows as a stale answer in
    // the suites' checks right after each change.
    support::run_all(cached(1000)).await;
}

#[tokio::test]
async fn every_change_of_a_user_is_seen_at_once() {
    let store = cached(1000);
    crate::store_memory::lookups_follow_every_change(&*store).await;
    assert!(
        store.stats().hits > 0,
        "the checks were answered from memory"
    );
}

/// A write that bypasses the cache (another instance) is not seen until the TTL ends:
/// proof that hits come from memory, and that the TTL bounds them.
#[tokio::test]
async fn a_hit_comes_from_memory_and_only_for_the_ttl() {
    let store = cached(300);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let user = support::ensure_user(&*store, "u-ttl").await;
    let token = sessions.issue(&user).await.unwrap();
    let cred = support::bearer(token.expose_secret());
    assert!(matches!(
        sessions.resolve(&cred).await,
        Resolution::Authenticated(_)
    ));
    // Another instance logs the session out (the cache does not hear of it).
    let digest = store
        .inner()
        .user_sessions("u-ttl")
        .await
        .unwrap()
        .remove(0)
        .token_digest()
        .to_owned();
    assert!(
        store
            .inner()
            .delete_session_by_digest(&digest)
            .await
            .unwrap()
    );
    let hits = store.stats().hits;
    let f = sessions.resolve(&cred);
    assert!(f.is_ready(), "answered without a store call");
    assert!(matches!(f.await, Resolution::Authenticated(_)));
    assert_eq!(store.stats().hits, hits + 1);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        sessions.resolve(&cred).await,
        Resolution::Invalid(_)
    ));
    // The service's invalidation channel makes it immediate instead.
    let token = sessions.issue(&user).await.unwrap();
    let cred = support::bearer(token.expose_secret());
    assert!(matches!(
        sessions.resolve(&cred).await,
        Resolution::Authenticated(_)
    ));
    store.inner().delete_user_sessions("u-ttl").await.unwrap();
    store.invalidate();
    assert!(matches!(
        sessions.resolve(&cred).await,
        Resolution::Invalid(_)
    ));
}

/// `user_by_id` (the access-token epoch check, "who am I") is cached like the
/// credential lookups: a write through the cache shows at once, a write that bypasses it
/// only after the TTL.
#[tokio::test]
async fn user_lookups_are_cached_and_follow_writes() {
    use auth_core::user::UserStore;

    let store = cached(300);
    support::ensure_user(&*store, "u-user").await;
    assert!(!store.user_by_id("u-user").await.unwrap().unwrap().disabled);
    assert!(store.set_disabled("u-user", true).await.unwrap());
    assert!(store.user_by_id("u-user").await.unwrap().unwrap().disabled);

    assert!(store.inner().set_disabled("u-user", false).await.unwrap());
    let hits = store.stats().hits;
    assert!(store.user_by_id("u-user").await.unwrap().unwrap().disabled);
    assert_eq!(store.stats().hits, hits + 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!store.user_by_id("u-user").await.unwrap().unwrap().disabled);
    assert!(store.user_by_id("nobody").await.unwrap().is_none());
}

#[tokio::test]
async fn revoking_through_the_cache_is_immediate_for_sessions_and_keys() {
    let store = cached(1000);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let keys = ApiKeys::new(store.clone());
    let user = support::ensure_user(&*store, "u-now").await;
    let token = sessions.issue(&user).await.unwrap();
    let session = support::bearer(token.expose_secret());
    let key = keys.create("u-now", "k", vec![]).await.unwrap();
    let api_key =
        auth_core::Credential::new(auth_core::CredentialKind::ApiKey, key.expose_secret()).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            sessions.resolve(&session).await,
            Resolution::Authenticated(_)
        ));
        assert!(matches!(
            keys.resolve(&api_key).await,
            Resolution::Authenticated(_)
        ));
    }
    assert!(sessions.revoke_token(token.expose_secret()).await.unwrap());
    assert!(matches!(
        sessions.resolve(&session).await,
        Resolution::Invalid(_)
    ));
    assert!(keys.revoke("u-now", key.key_id()).await.unwrap());
    assert!(matches!(
        keys.resolve(&api_key).await,
        Resolution::Invalid(_)
    ));
}

/// A session store whose lookups read at once and answer `delay` later, as a database
/// query in flight does.
#[derive(Debug)]
struct Slow {
    inner: MemoryStore,
    delay: Duration,
}

#[async_trait]
impl SessionStore for Slow {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.inner.insert_session(record).await
    }
    fn session_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreFuture<'_, Option<WithUser<SessionRecord>>> {
        let read = self.inner.session_by_digest(digest);
        StoreFuture::boxed(async move {
            let found = read.await;
            tokio::time::sleep(self.delay).await;
            found
        })
    }
    async fn delete_session_by_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.inner.delete_session_by_digest(digest).await
    }
    async fn delete_session(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        self.inner.delete_session(user_id, session_id).await
    }
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.inner.delete_user_sessions(user_id).await
    }
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        self.inner.delete_expired_sessions(now).await
    }
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.user_sessions(user_id).await
    }
    async fn set_session_mfa_at(
        &self,
        user_id: &str,
        session_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.inner.set_session_mfa_at(user_id, session_id, at).await
    }
}

/// A lookup that read the session before a logout and returns after it must not leave
/// its answer in the cache: the next request is refused. (Storing it unconditionally
/// admits that request for a whole TTL.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_raced_a_logout_is_not_cached() {
    let memory = MemoryStore::new();
    let user = support::ensure_user(&memory, "u-race").await;
    let slow = Slow {
        inner: memory,
        delay: Duration::from_millis(200),
    };
    let config = ValidityCacheConfig::new(MAX_TTL, 100).unwrap();
    let store = Arc::new(ValidityCache::new(slow, config));
    let sessions = Arc::new(Sessions::new(store.clone(), SessionConfig::default()));
    let token = sessions.issue(&user).await.unwrap();
    let secret = token.expose_secret().to_owned();

    let in_flight = {
        let sessions = sessions.clone();
        let secret = secret.clone();
        tokio::spawn(async move { sessions.resolve(&support::bearer(&secret)).await })
    };
    // The lookup has read the live session and is waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sessions.revoke_token(&secret).await.unwrap());
    // It started before the logout: either answer is allowed for it.
    let _ = in_flight.await.unwrap();
    assert!(
        matches!(
            sessions.resolve(&support::bearer(&secret)).await,
            Resolution::Invalid(_)
        ),
        "a request after the logout was admitted from a stale cache entry"
    );
}

/// Creating users ends no credential: a registration flood through the cache leaves
/// every cached session, key and user answering from memory. (The cache used to empty
/// itself on each creation, so these lookups went to the store.)
#[tokio::test]
async fn creating_users_keeps_the_hits() {
    use auth_core::user::UserStore;

    let store = cached(1000);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let keys = ApiKeys::new(store.clone());
    let user = support::ensure_user(&*store, "u-keep").await;
    let token = sessions.issue(&user).await.unwrap();
    let session = support::bearer(token.expose_secret());
    let key = keys.create("u-keep", "k", vec![]).await.unwrap();
    let api_key =
        auth_core::Credential::new(auth_core::CredentialKind::ApiKey, key.expose_secret()).unwrap();
    // Warm every kind (the key's first use also records its last-used time).
    for _ in 0..2 {
        assert!(matches!(
            sessions.resolve(&session).await,
            Resolution::Authenticated(_)
        ));
        assert!(matches!(
            keys.resolve(&api_key).await,
            Resolution::Authenticated(_)
        ));
        assert!(store.user_by_id("u-keep").await.unwrap().is_some());
    }
    // A user looked up before it exists is not cached as absent.
    assert!(store.user_by_id("u-new-1").await.unwrap().is_none());

    let invalidations = store.stats().invalidations;
    for i in 0..20 {
        let u = support::user(&format!("u-new-{i}"), &format!("new{i}@users.example"));
        store.create_user(&u).await.unwrap();
    }
    let u = support::user("u-new-sso", "sso@users.example");
    let identity = auth_core::SsoIdentity::new("https://issuer.example", "sub-1");
    store
        .create_user_with_identity(&u, &identity)
        .await
        .unwrap();
    assert_eq!(
        store.stats().invalidations,
        invalidations,
        "a creation emptied the cache"
    );

    let hits = store.stats().hits;
    let f = sessions.resolve(&session);
    assert!(f.is_ready(), "the session was not answered from memory");
    assert!(matches!(f.await, Resolution::Authenticated(_)));
    let f = keys.resolve(&api_key);
    assert!(f.is_ready(), "the API key was not answered from memory");
    assert!(matches!(f.await, Resolution::Authenticated(_)));
    assert!(store.user_by_id("u-keep").await.unwrap().is_some());
    assert_eq!(store.stats().hits, hits + 3);
    // The user created after the miss is found at once.
    assert!(store.user_by_id("u-new-1").await.unwrap().is_some());
}

/// `set_email_verified` drops that user's entry only: the next lookup of that user reads
/// the flag, every other entry keeps answering from memory.
#[tokio::test]
async fn setting_email_verified_drops_only_that_user() {
    use auth_core::user::UserStore;

    let store = cached(1000);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let alice = support::ensure_user(&*store, "u-alice").await;
    support::ensure_user(&*store, "u-bob").await;
    let token = sessions.issue(&alice).await.unwrap();
    let session = support::bearer(token.expose_secret());
    for _ in 0..2 {
        assert!(
            !store
                .user_by_id("u-alice")
                .await
                .unwrap()
                .unwrap()
                .email_verified
        );
        assert!(store.user_by_id("u-bob").await.unwrap().is_some());
        assert!(matches!(
            sessions.resolve(&session).await,
            Resolution::Authenticated(_)
        ));
    }
    let invalidations = store.stats().invalidations;
    assert!(store.set_email_verified("u-alice").await.unwrap());
    assert_eq!(store.stats().invalidations, invalidations, "emptied");

    let (hits, misses) = (store.stats().hits, store.stats().misses);
    assert!(
        store
            .user_by_id("u-alice")
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert_eq!(store.stats().misses, misses + 1, "alice's entry answered");
    assert!(store.user_by_id("u-bob").await.unwrap().is_some());
    let f = sessions.resolve(&session);
    assert!(f.is_ready(), "alice's session was not answered from memory");
    assert!(matches!(f.await, Resolution::Authenticated(_)));
    assert_eq!(store.stats().hits, hits + 2);
}

/// `set_session_mfa_at` drops that one session's entry: its next lookup reads the new
/// time, the user's other sessions and other users' sessions stay in memory.
#[tokio::test]
async fn a_second_factor_check_drops_only_that_session() {
    let store = cached(1000);
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let alice = support::ensure_user(&*store, "u-mfa-a").await;
    let bob = support::ensure_user(&*store, "u-mfa-b").await;
    for user in [&alice, &alice, &bob] {
        sessions.issue(user).await.unwrap();
    }
    let mut alices = store.inner().user_sessions("u-mfa-a").await.unwrap();
    let bobs = store.inner().user_sessions("u-mfa-b").await.unwrap();
    let (d1, d2, d3) = (
        *alices[0].token_digest(),
        *alices[1].token_digest(),
        *bobs[0].token_digest(),
    );
    let id = alices.remove(0).id().to_owned();
    for _ in 0..2 {
        for d in [&d1, &d2, &d3] {
            let found = store.session_by_digest(d).await.unwrap().unwrap();
            assert_eq!(found.record.mfa_at(), None);
        }
    }
    let invalidations = store.stats().invalidations;
    assert!(
        store
            .set_session_mfa_at("u-mfa-a", &id, 1_800_000_000)
            .await
            .unwrap()
    );
    assert_eq!(store.stats().invalidations, invalidations, "emptied");

    let misses = store.stats().misses;
    let found = store.session_by_digest(&d1).await.unwrap().unwrap();
    assert_eq!(found.record.mfa_at(), Some(1_800_000_000));
    assert_eq!(store.stats().misses, misses + 1, "the stale entry answered");
    let hits = store.stats().hits;
    for d in [&d2, &d3] {
        let f = store.session_by_digest(d);
        assert!(f.is_ready(), "another session's entry was dropped");
        assert_eq!(f.await.unwrap().unwrap().record.mfa_at(), None);
    }
    assert_eq!(store.stats().hits, hits + 2);
}

/// A lookup that read a session before its second-factor time was recorded, and returns
/// after, must not store the old record: the next lookup sees the new time. (A targeted
/// drop without the counter check lets the slow lookup put the old record back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_raced_a_second_factor_check_is_not_cached() {
    let memory = MemoryStore::new();
    let user = support::ensure_user(&memory, "u-mfa-race").await;
    let slow = Slow {
        inner: memory,
        delay: Duration::from_millis(200),
    };
    let config = ValidityCacheConfig::new(MAX_TTL, 100).unwrap();
    let store = Arc::new(ValidityCache::new(slow, config));
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    sessions.issue(&user).await.unwrap();
    let record = store
        .inner()
        .inner
        .user_sessions("u-mfa-race")
        .await
        .unwrap()[0]
        .clone();
    let (digest, id) = (*record.token_digest(), record.id().to_owned());

    let in_flight = {
        let store = store.clone();
        tokio::spawn(async move { store.session_by_digest(&digest).await })
    };
    // The lookup has read the record without a second-factor time and is waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        store
            .set_session_mfa_at("u-mfa-race", &id, 1_800_000_000)
            .await
            .unwrap()
    );
    let _ = in_flight.await.unwrap();
    let found = store.session_by_digest(&digest).await.unwrap().unwrap();
    assert_eq!(
        found.record.mfa_at(),
        Some(1_800_000_000),
        "a lookup after the write was answered from a stale entry"
    );
}

#[tokio::test]
async fn misses_are_not_cached_and_the_size_is_bounded() {
    let config = ValidityCacheConfig::new(MAX_TTL, 2).unwrap();
    let store = Arc::new(ValidityCache::new(MemoryStore::new(), config));
    // An unknown digest is looked up every time, and a session created under it later
    // (by another instance) is found at once.
    for _ in 0..5 {
        assert!(store.session_by_digest(&[7; 32]).await.unwrap().is_none());
    }
    assert_eq!(store.stats().hits, 0);
    support::ensure_user(&*store, "u-size").await;
    let r = SessionRecord::new("s7", "u-size", [7; 32], 0, i64::MAX);
    store.inner().insert_session(&r).await.unwrap();
    assert!(store.session_by_digest(&[7; 32]).await.unwrap().is_some());

    // Three sessions in a cache of two: it empties itself instead of growing, and every
    // answer stays right.
    for (i, d) in [[1; 32], [2; 32], [3; 32]].iter().enumerate() {
        let r = SessionRecord::new(format!("s{i}"), "u-size", *d, 0, i64::MAX);
        store.insert_session(&r).await.unwrap();
    }
    let before = store.stats().invalidations;
    for d in [[1; 32], [2; 32], [3; 32], [7; 32]] {
        let found = store.session_by_digest(&d).await.unwrap().unwrap();
        assert_eq!(found.record.token_digest(), &d);
    }
    assert!(store.stats().invalidations > before);
}

#[test]
fn the_configuration_is_refused_outside_its_range() {
    for (ttl, capacity, field) in [
        (Duration::ZERO, 10, "ttl"),
        (MAX_TTL + Duration::from_millis(1), 10, "ttl"),
        (Duration::from_millis(500), 0, "capacity"),
    ] {
        let err = ValidityCacheConfig::new(ttl, capacity).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { field: f, .. } if f == field),
            "{err:?}"
        );
    }
    let ok = ValidityCacheConfig::new(MAX_TTL, 1).unwrap();
    assert_eq!((ok.ttl(), ok.capacity()), (MAX_TTL, 1));
    assert!(ValidityCacheConfig::default().ttl() <= MAX_TTL);
}
