//! The grant cache (`store::GrantCache`): the policy scenario through it, every grant
//! write seen by the next decision, hits answered from memory and only for the TTL, no
//! stale entry from a lookup that raced a write, misses and errors never cached, bounded
//! size, and its configuration refused outside its range.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common::{self, acct, user};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use grant_policy::store::{GrantCache, GrantCacheConfig, GrantStore, MemoryStore};
use grant_policy::{
    Access, AccountId, Decision, DenyReason, GrantError, Level, Operation, Policy, Share,
    StoreError, UserId,
};

fn cached<S: GrantStore>(inner: S, ttl_ms: u64, capacity: usize) -> Arc<GrantCache<S>> {
    let config = GrantCacheConfig::new(Duration::from_millis(ttl_ms), capacity).unwrap();
    Arc::new(GrantCache::new(inner, config))
}

fn allow(effective: Level) -> Decision {
    Decision::Allow { effective }
}

fn deny(reason: DenyReason) -> Decision {
    Decision::Deny { reason }
}

/// A memory store that counts access lookups, can fail them, and answers `delay` after
/// reading (as a query in flight does).
#[derive(Debug, Default)]
struct Probe {
    inner: MemoryStore,
    delay: Duration,
    fail: AtomicBool,
    lookups: AtomicUsize,
}

#[async_trait]
impl GrantStore for Probe {
    async fn register(
        &self,
        owner: &UserId,
        account: &AccountId,
        capability: Level,
        now: i64,
    ) -> Result<(), GrantError> {
        self.inner.register(owner, account, capability, now).await
    }
    async fn deregister(&self, owner: &UserId, account: &AccountId) -> Result<(), GrantError> {
        self.inner.deregister(owner, account).await
    }
    async fn access(
        &self,
        user: &UserId,
        account: &AccountId,
    ) -> Result<Option<Access>, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        let found = self.inner.access(user, account).await;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        found
    }
    async fn share(
        &self,
        owner: &UserId,
        account: &AccountId,
        share: &Share,
        now: i64,
    ) -> Result<(), GrantError> {
        self.inner.share(owner, account, share, now).await
    }
    async fn revoke(
        &self,
        owner: &UserId,
        account: &AccountId,
        grantee: &UserId,
    ) -> Result<bool, GrantError> {
        self.inner.revoke(owner, account, grantee).await
    }
    async fn shares(&self, owner: &UserId, account: &AccountId) -> Result<Vec<Share>, GrantError> {
        self.inner.shares(owner, account).await
    }
    async fn accessible(&self, user: &UserId) -> Result<Vec<(AccountId, Access)>, StoreError> {
        self.inner.accessible(user).await
    }
    async fn owner(&self, account: &AccountId) -> Result<Option<UserId>, StoreError> {
        self.inner.owner(account).await
    }
}

/// The whole grant life cycle of `tests/policy.rs` (it decides right after every change)
/// through a cache with a one-second TTL: a write that forgot to drop its entries shows
/// as a stale decision.
#[tokio::test]
async fn the_policy_scenario_passes_through_the_cache() {
    let store = cached(MemoryStore::new(), 1000, 1000);
    crate::policy::scenario(store.clone()).await;
    assert!(
        store.stats().hits > 0,
        "decisions were answered from memory"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_policy_scenario_passes_through_the_cache_on_sqlite() {
    let (inner, _dir) = common::sqlite_store().await;
    let store = cached(inner, 1000, 1000);
    crate::policy::scenario(store.clone()).await;
    assert!(
        store.stats().hits > 0,
        "decisions were answered from memory"
    );
}

/// Each kind of write through the cache (share, re-share, re-register, revoke,
/// deregister) is seen by the very next decision, while the decisions between them are
/// answered from memory.
#[tokio::test]
async fn every_write_is_seen_by_the_next_decision() {
    let store = cached(MemoryStore::new(), 1000, 1000);
    let policy = Policy::builder(store.clone()).build();
    let (alice, bob) = (user("alice"), user("bob"));
    let account = acct("acct-1");
    let order = Operation::CreateOrder;
    let decide = || policy.decide(&bob, &account, order, None);
    let warm = || async {
        let first = decide().await;
        let hits = store.stats().hits;
        assert_eq!(decide().await, first);
        assert_eq!(store.stats().hits, hits + 1, "not answered from memory");
        first
    };

    policy
        .register_account(&alice, &account, Level::Trade)
        .await
        .unwrap();
    policy
        .share(&alice, &account, &bob, Level::Read, None)
        .await
        .unwrap();
    assert_eq!(warm().await, deny(DenyReason::InsufficientLevel));
    policy
        .share(&alice, &account, &bob, Level::Trade, None)
        .await
        .unwrap();
    assert_eq!(warm().await, allow(Level::Trade));
    // The key rotated to read-only caps the grantee at once.
    policy
        .register_account(&alice, &account, Level::Read)
        .await
        .unwrap();
    assert_eq!(warm().await, deny(DenyReason::InsufficientLevel));
    policy
        .register_account(&alice, &account, Level::Trade)
        .await
        .unwrap();
    assert_eq!(warm().await, allow(Level::Trade));
    policy.revoke(&alice, &account, &bob).await.unwrap();
    assert_eq!(decide().await, deny(DenyReason::NotVisible));
    policy
        .share(&alice, &account, &bob, Level::Trade, None)
        .await
        .unwrap();
    assert_eq!(warm().await, allow(Level::Trade));
    policy.deregister_account(&alice, &account).await.unwrap();
    assert_eq!(decide().await, deny(DenyReason::NotVisible));
    // The owner's own entry went with the account too.
    let owner = policy.decide(&alice, &account, order, None).await;
    assert_eq!(owner, deny(DenyReason::NotVisible));
}

/// A write that bypasses the cache (another instance) is not seen until the TTL ends:
/// proof that hits come from memory and that the TTL bounds them. `invalidate()` makes it
/// immediate.
#[tokio::test]
async fn a_hit_comes_from_memory_and_only_for_the_ttl() {
    let store = cached(Probe::default(), 300, 1000);
    let policy = Policy::builder(store.clone()).build();
    let (alice, bob) = (user("alice"), user("bob"));
    let account = acct("acct-ttl");
    policy
        .register_account(&alice, &account, Level::Trade)
        .await
        .unwrap();
    policy
        .share(&alice, &account, &bob, Level::Read, None)
        .await
        .unwrap();
    let balance = Operation::Balance;
    assert_eq!(
        policy.decide(&bob, &account, balance, None).await,
        allow(Level::Read)
    );
    // Another instance revokes (this cache does not hear of it).
    assert!(
        store
            .inner()
            .inner
            .revoke(&alice, &account, &bob)
            .await
            .unwrap()
    );
    let lookups = store.inner().lookups.load(Ordering::SeqCst);
    assert_eq!(
        policy.decide(&bob, &account, balance, None).await,
        allow(Level::Read)
    );
    assert_eq!(store.inner().lookups.load(Ordering::SeqCst), lookups);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        policy.decide(&bob, &account, balance, None).await,
        deny(DenyReason::NotVisible)
    );

    // The service's invalidation channel makes it immediate instead.
    policy
        .share(&alice, &account, &bob, Level::Read, None)
        .await
        .unwrap();
    assert!(
        policy
            .decide(&bob, &account, balance, None)
            .await
            .is_allowed()
    );
    store
        .inner()
        .inner
        .revoke(&alice, &account, &bob)
        .await
        .unwrap();
    store.invalidate();
    assert_eq!(
        policy.decide(&bob, &account, balance, None).await,
        deny(DenyReason::NotVisible)
    );
}

/// A lookup that read a share before its revoke and returns after it must not leave its
/// answer in the cache: the next decision is refused. (Storing it unconditionally admits
/// the grantee for a whole TTL.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_raced_a_revoke_is_not_cached() {
    let probe = Probe {
        delay: Duration::from_millis(200),
        ..Probe::default()
    };
    let store = cached(probe, 1000, 1000);
    let policy = Policy::builder(store.clone()).build();
    let (alice, bob) = (user("alice"), user("bob"));
    let account = acct("acct-race");
    policy
        .register_account(&alice, &account, Level::Trade)
        .await
        .unwrap();
    policy
        .share(&alice, &account, &bob, Level::Trade, None)
        .await
        .unwrap();

    let in_flight = {
        let policy = policy.clone();
        let (bob, account) = (bob.clone(), account.clone());
        tokio::spawn(async move {
            policy
                .decide(&bob, &account, Operation::CreateOrder, None)
                .await
        })
    };
    // The lookup has read the live share and is waiting.
    tokio::time::sleep(Duration::from_millis(50)).await;
    policy.revoke(&alice, &account, &bob).await.unwrap();
    // It started before the revoke: either answer is allowed for it.
    let _ = in_flight.await.unwrap();
    assert_eq!(
        policy
            .decide(&bob, &account, Operation::CreateOrder, None)
            .await,
        deny(DenyReason::NotVisible),
        "a decision after the revoke was answered from a stale entry"
    );
}

/// "No access" and store errors go to the store every time, so a grant made elsewhere is
/// seen at once and an outage is a 503 for every request, never a cached answer.
#[tokio::test]
async fn misses_and_errors_are_not_cached() {
    let store = cached(Probe::default(), 1000, 1000);
    let policy = Policy::builder(store.clone()).build();
    let (alice, bob) = (user("alice"), user("bob"));
    let account = acct("acct-miss");
    for _ in 0..3 {
        assert_eq!(
            policy
                .decide(&bob, &account, Operation::Balance, None)
                .await,
            deny(DenyReason::NotVisible)
        );
    }
    assert_eq!(store.inner().lookups.load(Ordering::SeqCst), 3);
    // Another instance registers and shares: seen at once.
    let inner = &store.inner().inner;
    inner
        .register(&alice, &account, Level::Trade, 0)
        .await
        .unwrap();
    let share = Share {
        grantee: bob.clone(),
        level: Level::Read,
        expires_at: None,
    };
    inner.share(&alice, &account, &share, 0).await.unwrap();
    assert!(
        policy
            .decide(&bob, &account, Operation::Balance, None)
            .await
            .is_allowed()
    );

    store.inner().fail.store(true, Ordering::SeqCst);
    store.invalidate();
    for _ in 0..3 {
        assert_eq!(
            policy
                .decide(&bob, &account, Operation::Balance, None)
                .await,
            deny(DenyReason::StoreUnavailable)
        );
    }
    assert_eq!(store.stats().hits, 0);
    // Back up: answered by the store, then from memory.
    store.inner().fail.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        assert!(
            policy
                .decide(&bob, &account, Operation::Balance, None)
                .await
                .is_allowed()
        );
    }
    assert_eq!(store.stats().hits, 1);
}

/// Three (user, account) pairs in a cache of two: it empties itself instead of growing,
/// and every answer stays right.
#[tokio::test]
async fn the_size_is_bounded() {
    let store = cached(MemoryStore::new(), 1000, 2);
    let policy = Policy::builder(store.clone()).build();
    let alice = user("alice");
    let accounts = [acct("a1"), acct("a2"), acct("a3")];
    let levels = [Level::Trade, Level::Read, Level::Trade];
    for (account, level) in accounts.iter().zip(levels) {
        policy
            .register_account(&alice, account, level)
            .await
            .unwrap();
    }
    let before = store.stats().invalidations;
    for _ in 0..2 {
        for (account, level) in accounts.iter().zip(levels) {
            assert_eq!(
                policy
                    .decide(&alice, account, Operation::Balance, None)
                    .await,
                allow(level)
            );
        }
    }
    assert!(
        store.stats().invalidations > before,
        "the cache grew past 2"
    );
}

#[test]
fn the_configuration_is_refused_outside_its_range() {
    let max = GrantCacheConfig::MAX_TTL;
    for (ttl, capacity, field) in [
        (Duration::ZERO, 10, "ttl"),
        (max + Duration::from_millis(1), 10, "ttl"),
        (Duration::from_millis(500), 0, "capacity"),
    ] {
        let err = GrantCacheConfig::new(ttl, capacity).unwrap_err();
        assert_eq!(err.field(), field);
    }
    let ok = GrantCacheConfig::new(max, 1).unwrap();
    assert_eq!((ok.ttl(), ok.capacity()), (max, 1));
    assert_eq!(max, Duration::from_secs(1));
    assert!(GrantCacheConfig::default().ttl() <= max);
}
