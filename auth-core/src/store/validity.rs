//! [`ValidityCache`]: a short-lived, in-process cache of the request-path lookups (a
//! session by its token's digest, an API key by its id, a user by id: the epoch check of
//! access tokens and a service's "who am I") in front of any store.
//!
//! Every authenticated request otherwise makes one or two store round trips before the
//! handler answers; on SQLite through sqlx each costs far more CPU than the check itself.
//! The cache answers repeated lookups from memory for at most
//! [`ValidityCacheConfig::ttl`] (at most [`MAX_TTL`], one second).
//!
//! # What it guarantees
//!
//! * **Immediate on this instance.** Every write that can end or change a credential and
//!   goes through the cache (`set_password`, `set_disabled`, `revoke_credentials`,
//!   `bind_identity`, every session deletion, `revoke_api_key`) empties it, before the
//!   write starts and again after it ends. Writes that change one known entry drop only
//!   that entry, before and after: `set_session_mfa_at` the one session's entry,
//!   `set_email_verified` the one user's entry. Entries carry the cache's generation at
//!   the time their lookup *started*, and a lookup that raced a write (one that emptied
//!   the cache or dropped any entry) is not stored: once the write's call returns, no
//!   request on this instance is answered by the state before it.
//! * **Bounded elsewhere.** Another instance (or a process that writes the database
//!   without this cache, such as an operator command) is seen within the TTL plus one
//!   lookup. A service that wants it sooner calls [`ValidityCache::invalidate`] when it
//!   hears of a write on its invalidation channel (the reference backend does so over
//!   Redis, beside cred-cache's invalidations); the TTL still bounds a lost message.
//! * **Only what the store said.** A hit is the record and user state the store returned
//!   (expiry, revocation, the user's epoch and disabled flag): the resolvers decide on it
//!   exactly as on a fresh answer, so an expired session is refused from the cache too.
//!   Misses, refusals and store errors are never cached (an unknown token costs a lookup
//!   each time, so random tokens cannot fill the cache), and at [`capacity`] the cache is
//!   emptied instead of growing.
//!
//! Creating a user (`create_user`, `create_user_with_identity`) and inserting a session
//! or key pass straight through: nothing about a new user or credential can be in the
//! cache (a lookup that found nothing, or a credential whose user row did not exist, is
//! not stored), so a registration flood leaves the hits alone. Recording an API key's
//! use drops that key's entry, so the next lookup reads the new last-used time.
//!
//! [`capacity`]: ValidityCacheConfig::capacity

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::api_key::{ApiKeyRecord, ApiKeyStore};
use crate::config::ConfigError;
use crate::session::{SessionRecord, SessionStore};
use crate::store::{StoreError, StoreFuture};
use crate::user::{RevokeScope, SsoIdentity, User, UserStore, WithUser};

/// The longest [`ValidityCacheConfig::ttl`]: how stale another instance's view of a
/// revocation may be.
pub const MAX_TTL: Duration = Duration::from_secs(1);

/// [`ValidityCache`] settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityCacheConfig {
    ttl: Duration,
    capacity: usize,
}

impl Default for ValidityCacheConfig {
    /// 500 ms, 50 000 entries per kind (sessions, API keys).
    fn default() -> Self {
        Self {
            ttl: Duration::from_millis(500),
            capacity: 50_000,
        }
    }
}

impl ValidityCacheConfig {
    /// How long an entry answers (`0 < ttl <= MAX_TTL`) and how many entries of each kind
    /// are kept (at least 1).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] naming `ttl` or `capacity`.
    pub fn new(ttl: Duration, capacity: usize) -> Result<Self, ConfigError> {
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(ConfigError::Invalid {
                field: "ttl",
                expected: "more than 0 and at most 1 s",
            });
        }
        if capacity == 0 {
            return Err(ConfigError::Invalid {
                field: "capacity",
                expected: "at least 1",
            });
        }
        Ok(Self { ttl, capacity })
    }

    /// How long an entry answers.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Entries kept per kind before the cache empties itself.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Counters since the cache was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidityCacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that went to the store.
    pub misses: u64,
    /// Times the cache was emptied (writes, [`ValidityCache::invalidate`], capacity).
    pub invalidations: u64,
}

/// A cached answer and the generation its lookup started in.
struct Entry<V> {
    value: V,
    generation: u64,
    stored: Instant,
}

type Map<K, V> = RwLock<HashMap<K, Entry<V>>>;

/// What a lookup saw of the cache's counters when it started: its answer is stored only
/// if neither has moved since.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ticket {
    generation: u64,
    drops: u64,
}

/// State shared with the lookups in flight.
struct State {
    config: ValidityCacheConfig,
    /// Bumped by every emptying: entries of an older generation never answer.
    generation: AtomicU64,
    /// Bumped by every targeted drop ([`State::drop_where`]): a lookup that started
    /// before one may have read the state the dropped entry described.
    drops: AtomicU64,
    sessions: Map<[u8; 32], WithUser<SessionRecord>>,
    api_keys: Map<String, WithUser<ApiKeyRecord>>,
    users: Map<String, User>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

impl State {
    fn invalidate(&self) {
        // Bump first: from here on no entry (and no lookup that started earlier) answers.
        self.generation.fetch_add(1, Ordering::AcqRel);
        // A panic never happens under these locks, so a poisoned map is still whole.
        self.sessions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.api_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.users
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters at the start of a lookup (taken before the cache or store is read).
    fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation.load(Ordering::Acquire),
            drops: self.drops.load(Ordering::Acquire),
        }
    }

    /// Drops the entries of `map` that `stale` picks, without emptying the rest; a lookup
    /// in flight does not store its answer afterwards (whatever its key).
    fn drop_where<K, V>(&self, map: &Map<K, V>, stale: impl Fn(&K, &V) -> bool) {
        // Bump first, as `invalidate` does: a `put` that takes the lock after the removal
        // sees the new count and does not store.
        self.drops.fetch_add(1, Ordering::AcqRel);
        map.write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, e| !stale(k, &e.value));
    }

    /// Drops `key`'s entry from `map` (as [`State::drop_where`], without the scan).
    fn drop_key<K, Q, V>(&self, map: &Map<K, V>, key: &Q)
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.drops.fetch_add(1, Ordering::AcqRel);
        map.write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Drops the entry of session `session_id` of user `user_id`.
    fn drop_session(&self, user_id: &str, session_id: &str) {
        self.drop_where(&self.sessions, |_, v: &WithUser<SessionRecord>| {
            v.record.id() == session_id && v.record.user_id() == user_id
        });
    }

    fn get<K, Q, V>(&self, map: &Map<K, V>, key: &Q) -> Option<V>
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
        V: Clone,
    {
        let generation = self.generation.load(Ordering::Acquire);
        let found = map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .filter(|e| e.generation == generation && e.stored.elapsed() < self.config.ttl)
            .map(|e| e.value.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores `value`, read by a lookup that started with `ticket`, unless a write has
    /// emptied the cache or dropped an entry since.
    fn put<K, V>(&self, map: &Map<K, V>, key: K, value: V, ticket: Ticket)
    where
        K: std::hash::Hash + Eq,
    {
        let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `invalidate` clears and `drop_where` removes under:
        // either this insert sees the new count, or the removal that follows the bump
        // takes the entry out again.
        if self.ticket() != ticket {
            return;
        }
        let generation = ticket.generation;
        if map.len() >= self.config.capacity && !map.contains_key(&key) {
            map.clear();
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
        map.insert(
            key,
            Entry {
                value,
                generation,
                stored: Instant::now(),
            },
        );
    }
}

/// A store whose session and API key lookups are cached for at most a second (see the
/// [module documentation](self) for the guarantees).
///
/// Wrap the store once and use the wrapper for **every** user, session and API key
/// operation of the service: a write that bypasses it is seen only after the TTL.
/// Cloning shares the cache.
///
/// ```
/// # use std::sync::Arc;
/// use auth_core::store::{MemoryStore, ValidityCache, ValidityCacheConfig};
/// use auth_core::{SessionConfig, Sessions};
///
/// let store = Arc::new(ValidityCache::new(MemoryStore::new(), ValidityCacheConfig::default()));
/// let sessions = Sessions::new(store.clone(), SessionConfig::default());
/// # let _ = sessions;
/// ```
pub struct ValidityCache<S> {
    inner: S,
    state: Arc<State>,
}

impl<S: Clone> Clone for ValidityCache<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ValidityCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidityCache")
            .field("inner", &self.inner)
            .field("config", &self.state.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<S> ValidityCache<S> {
    /// Caches `inner`'s lookups.
    pub fn new(inner: S, config: ValidityCacheConfig) -> Self {
        Self {
            inner,
            state: Arc::new(State {
                config,
                generation: AtomicU64::new(0),
                drops: AtomicU64::new(0),
                sessions: RwLock::default(),
                api_keys: RwLock::default(),
                users: RwLock::default(),
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
    pub fn config(&self) -> ValidityCacheConfig {
        self.state.config
    }

    /// Empties the cache: call it when another instance reports a write (its effect is
    /// then seen at once instead of within the TTL).
    pub fn invalidate(&self) {
        self.state.invalidate();
    }

    /// Hit, miss and invalidation counts.
    pub fn stats(&self) -> ValidityCacheStats {
        ValidityCacheStats {
            hits: self.state.hits.load(Ordering::Relaxed),
            misses: self.state.misses.load(Ordering::Relaxed),
            invalidations: self.state.invalidations.load(Ordering::Relaxed),
        }
    }

    /// Runs a write with the cache emptied before it starts and after it ends.
    async fn write<T>(&self, op: impl Future<Output = T>) -> T {
        self.state.invalidate();
        let out = op.await;
        self.state.invalidate();
        out
    }

    /// Runs a write that changes only what `drop` drops, dropping it before the write
    /// starts and after it ends (the rest of the cache keeps answering).
    async fn write_dropping<T>(&self, drop: impl Fn(&State), op: impl Future<Output = T>) -> T {
        drop(&self.state);
        let out = op.await;
        drop(&self.state);
        out
    }
}

#[async_trait]
impl<S: UserStore> UserStore for ValidityCache<S> {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        // A new user is in no entry: lookups of it found nothing and were not stored, and
        // a credential whose user row was missing is not stored either.
        self.inner.create_user(user).await
    }

    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &SsoIdentity,
    ) -> Result<(), StoreError> {
        // As `create_user`; identity lookups are not cached.
        self.inner.create_user_with_identity(user, identity).await
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        let state = &self.state;
        let ticket = state.ticket();
        if let Some(hit) = state.get(&state.users, user_id) {
            return Ok(Some(hit));
        }
        let found = self.inner.user_by_id(user_id).await;
        if let Ok(Some(user)) = &found {
            state.put(&state.users, user_id.to_owned(), user.clone(), ticket);
        }
        found
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_email(email).await
    }

    async fn set_password(
        &self,
        user_id: &str,
        expected: Option<&str>,
        password_hash: &str,
        must_change_password: bool,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError> {
        self.write(self.inner.set_password(
            user_id,
            expected,
            password_hash,
            must_change_password,
            revoke,
        ))
        .await
    }

    async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError> {
        self.write(self.inner.set_disabled(user_id, disabled)).await
    }

    async fn revoke_credentials(
        &self,
        user_id: &str,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError> {
        self.write(self.inner.revoke_credentials(user_id, revoke))
            .await
    }

    async fn set_email_verified(&self, user_id: &str) -> Result<bool, StoreError> {
        // The flag is only in the user map's `User` (a credential's `UserState` does not
        // carry it), and setting it ends no credential: drop that user's entry only.
        self.write_dropping(
            |s| s.drop_key(&s.users, user_id),
            self.inner.set_email_verified(user_id),
        )
        .await
    }

    async fn user_by_identity(&self, identity: &SsoIdentity) -> Result<Option<User>, StoreError> {
        self.inner.user_by_identity(identity).await
    }

    async fn identity_of(&self, user_id: &str) -> Result<Option<SsoIdentity>, StoreError> {
        self.inner.identity_of(user_id).await
    }

    async fn bind_identity(&self, user_id: &str, identity: &SsoIdentity) -> Result<(), StoreError> {
        self.write(self.inner.bind_identity(user_id, identity))
            .await
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for ValidityCache<S> {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.inner.insert_session(record).await
    }

    fn session_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreFuture<'_, Option<WithUser<SessionRecord>>> {
        let state = &self.state;
        let ticket = state.ticket();
        if let Some(hit) = state.get(&state.sessions, digest) {
            return StoreFuture::ready(Ok(Some(hit)));
        }
        let digest = *digest;
        StoreFuture::boxed(async move {
            let found = self.inner.session_by_digest(&digest).await;
            // Without its user row the session is refused: not stored (a refusal).
            if let Ok(Some(value @ WithUser { user: Some(_), .. })) = &found {
                state.put(&state.sessions, digest, value.clone(), ticket);
            }
            found
        })
    }

    async fn delete_session_by_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        self.write(self.inner.delete_session_by_digest(digest))
            .await
    }

    async fn delete_session(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        self.write(self.inner.delete_session(user_id, session_id))
            .await
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        self.write(self.inner.delete_user_sessions(user_id)).await
    }

    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        self.write(self.inner.delete_expired_sessions(now)).await
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
        // Only this session's record changes.
        self.write_dropping(
            |s| s.drop_session(user_id, session_id),
            self.inner.set_session_mfa_at(user_id, session_id, at),
        )
        .await
    }
}

#[async_trait]
impl<S: ApiKeyStore> ApiKeyStore for ValidityCache<S> {
    async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        self.inner.insert_api_key(record).await
    }

    fn api_key<'a>(&'a self, key_id: &'a str) -> StoreFuture<'a, Option<WithUser<ApiKeyRecord>>> {
        let state = &self.state;
        let ticket = state.ticket();
        if let Some(hit) = state.get(&state.api_keys, key_id) {
            return StoreFuture::ready(Ok(Some(hit)));
        }
        StoreFuture::boxed(async move {
            let found = self.inner.api_key(key_id).await;
            // Without its user row the key is refused: not stored (a refusal).
            if let Ok(Some(value @ WithUser { user: Some(_), .. })) = &found {
                state.put(&state.api_keys, key_id.to_owned(), value.clone(), ticket);
            }
            found
        })
    }

    async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
        let out = self.inner.touch_api_key(key_id, now).await;
        // The next lookup reads the new last-used time (otherwise every request within
        // the TTL would write it again).
        // A lookup that raced the write is not stored either.
        self.state.drop_key(&self.state.api_keys, key_id);
        out
    }

    async fn revoke_api_key(
        &self,
        user_id: &str,
        key_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(self.inner.revoke_api_key(user_id, key_id, now))
            .await
    }

    async fn user_api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.inner.user_api_keys(user_id).await
    }
}
