//! [`GrantCache`]: a short-lived, in-process cache of grant lookups.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::Level;
use crate::error::{ConfigError, GrantError, StoreError};
use crate::grant::{Access, Share};
use crate::store::GrantStore;
use crate::{AccountId, UserId};

/// [`GrantCache`] settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantCacheConfig {
    ttl: Duration,
    capacity: usize,
}

impl Default for GrantCacheConfig {
    /// 500 ms, 50 000 (user, account) entries.
    fn default() -> Self {
        Self {
            ttl: Duration::from_millis(500),
            capacity: 50_000,
        }
    }
}

impl GrantCacheConfig {
    /// The longest [`ttl`](GrantCacheConfig::ttl): how stale another instance's view of
    /// a revoke may be.
    pub const MAX_TTL: Duration = Duration::from_secs(1);

    /// How long an entry answers (more than zero, at most [`Self::MAX_TTL`]) and how
    /// many (user, account) entries are kept (at least 1).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `ttl` or `capacity`.
    pub fn new(ttl: Duration, capacity: usize) -> Result<Self, ConfigError> {
        if ttl.is_zero() || ttl > Self::MAX_TTL {
            return Err(ConfigError::new("ttl"));
        }
        if capacity == 0 {
            return Err(ConfigError::new("capacity"));
        }
        Ok(Self { ttl, capacity })
    }

    /// How long an entry answers.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Entries kept before the cache empties itself.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Counters since the cache was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GrantCacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to the store.
    pub misses: u64,
    /// Times entries were dropped: an account's by each write (twice: before and after),
    /// all of them by [`GrantCache::invalidate`] or when full.
    pub invalidations: u64,
}

/// A cached answer and when it was stored.
#[derive(Clone, Copy)]
struct Entry {
    access: Access,
    stored: Instant,
}

/// The entries by account, then user: a write drops one account's map at once, and a
/// lookup needs no owned key.
#[derive(Default)]
struct Entries {
    accounts: HashMap<AccountId, HashMap<UserId, Entry>>,
    len: usize,
}

/// State shared with the lookups in flight.
struct State {
    config: GrantCacheConfig,
    /// Bumped by every write and every emptying: a lookup that started before stores
    /// nothing.
    generation: AtomicU64,
    entries: RwLock<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

impl State {
    fn get(&self, user: &UserId, account: &AccountId) -> Option<Access> {
        // A panic never happens under these locks, so a poisoned map is still whole.
        let found = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .accounts
            .get(account)
            .and_then(|users| users.get(user))
            .filter(|e| e.stored.elapsed() < self.config.ttl)
            .map(|e| e.access);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores `access`, read by a lookup that started in `generation`, unless a write
    /// has happened since.
    fn put(&self, user: &UserId, account: &AccountId, access: Access, generation: u64) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that writes drop entries under, after bumping: either
        // this insert sees the new generation, or the drop that follows removes it.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let present = entries
            .accounts
            .get(account)
            .is_some_and(|users| users.contains_key(user));
        if !present && entries.len >= self.config.capacity {
            *entries = Entries::default();
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
        let entry = Entry {
            access,
            stored: Instant::now(),
        };
        entries
            .accounts
            .entry(account.clone())
            .or_default()
            .insert(user.clone(), entry);
        if !present {
            entries.len += 1;
        }
    }

    /// Drops `account`'s entries (every user's relation to it); lookups in flight store
    /// nothing afterwards.
    fn drop_account(&self, account: &AccountId) {
        // Bump first: a `put` that takes the lock after the removal sees the new count.
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(users) = entries.accounts.remove(account) {
            entries.len -= users.len();
        }
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = Entries::default();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }
}

/// A grant store whose [`access`](GrantStore::access) answers (the one read behind every
/// [`Policy::decide`](crate::Policy::decide)) are cached for at most a second.
///
/// # What it guarantees
///
/// * **Immediate on this instance.** Every write through the cache (`register`,
///   `deregister`, `share`, `revoke`) drops the entries of its account before the write
///   starts and again after it ends, and bumps a generation counter each time. A lookup
///   stores its answer only if the counter has not moved since the lookup started, so a
///   lookup that raced a write never leaves the state before it in the cache: once the
///   write's call returns, the next decision on this instance reads the new grant.
/// * **Bounded elsewhere.** Another instance's write (or one that bypasses the cache) is
///   seen within the TTL, at most [`GrantCacheConfig::MAX_TTL`] (one second). A service
///   that hears of such a write sooner calls [`GrantCache::invalidate`].
/// * **Only what the store said.** A hit is the [`Access`] the store returned; the
///   decision (expiry included) is made on it exactly as on a fresh answer, so a share
///   that expires while cached is refused from the cache too. "No access" answers and
///   store errors are never cached (an unknown account costs a lookup each time, so
///   random ids cannot fill the cache), and at [`capacity`] the cache is emptied instead
///   of growing.
///
/// The other reads (`shares`, `accessible`, `owner`) pass straight through.
///
/// Build the [`Policy`](crate::Policy) (and the [`RiskGuard`](crate::RiskGuard)'s grant
/// store) on the **same** cache, and make every grant write through it: a write that
/// bypasses it is seen only after the TTL. Cloning shares the cache.
///
/// ```
/// use std::sync::Arc;
///
/// use grant_policy::store::{GrantCache, GrantCacheConfig, MemoryStore};
/// use grant_policy::Policy;
///
/// let grants = Arc::new(GrantCache::new(MemoryStore::new(), GrantCacheConfig::default()));
/// let policy = Policy::builder(grants.clone()).build();
/// # let _ = policy;
/// ```
///
/// [`capacity`]: GrantCacheConfig::capacity
pub struct GrantCache<S> {
    inner: S,
    state: Arc<State>,
}

impl<S: Clone> Clone for GrantCache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for GrantCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrantCache")
            .field("inner", &self.inner)
            .field("config", &self.state.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<S> GrantCache<S> {
    /// Caches `inner`'s access lookups.
    pub fn new(inner: S, config: GrantCacheConfig) -> Self {
        Self {
            inner,
            state: Arc::new(State {
                config,
                generation: AtomicU64::new(0),
                entries: RwLock::default(),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
            }),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The settings.
    pub fn config(&self) -> GrantCacheConfig {
        self.state.config
    }

    /// Empties the cache: call it when another instance reports a grant write (its
    /// effect is then seen at once instead of within the TTL).
    pub fn invalidate(&self) {
        self.state.invalidate();
    }

    /// Hit, miss and invalidation counts.
    pub fn stats(&self) -> GrantCacheStats {
        GrantCacheStats {
            hits: self.state.hits.load(Ordering::Relaxed),
            misses: self.state.misses.load(Ordering::Relaxed),
            invalidations: self.state.invalidations.load(Ordering::Relaxed),
        }
    }

    /// Runs a write on `account` with its entries dropped before it starts and after it
    /// ends.
    async fn write<T>(&self, account: &AccountId, op: impl Future<Output = T>) -> T {
        self.state.drop_account(account);
        let out = op.await;
        self.state.drop_account(account);
        out
    }
}

#[async_trait]
impl<S: GrantStore> GrantStore for GrantCache<S> {
    async fn register(
        &self,
        owner: &UserId,
        account: &AccountId,
        capability: Level,
        now: i64,
    ) -> Result<(), GrantError> {
        // A re-registration changes the capability every grantee is capped by.
        self.write(
            account,
            self.inner.register(owner, account, capability, now),
        )
        .await
    }

    async fn deregister(&self, owner: &UserId, account: &AccountId) -> Result<(), GrantError> {
        self.write(account, self.inner.deregister(owner, account))
            .await
    }

    async fn access(
        &self,
        user: &UserId,
        account: &AccountId,
    ) -> Result<Option<Access>, StoreError> {
        let state = &self.state;
        // Taken before the cache or the store is read.
        let generation = state.generation.load(Ordering::Acquire);
        if let Some(hit) = state.get(user, account) {
            return Ok(Some(hit));
        }
        let found = self.inner.access(user, account).await;
        if let Ok(Some(access)) = &found {
            state.put(user, account, *access, generation);
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
        self.write(account, self.inner.share(owner, account, share, now))
            .await
    }

    async fn revoke(
        &self,
        owner: &UserId,
        account: &AccountId,
        grantee: &UserId,
    ) -> Result<bool, GrantError> {
        self.write(account, self.inner.revoke(owner, account, grantee))
            .await
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
