//! [`CredCache`]: the cache itself, its builder and its maintenance task.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;

use crate::credential::ExchangeCredential;
use crate::error::{ConfigError, FetchError, PublishError};
use crate::ids::{AccessLevel, CacheKey, CredentialId, UserId};
use crate::invalidation::{Invalidation, InvalidationMessage, InvalidationPublisher};
use crate::source::CredentialSource;
use crate::stats::{CacheStats, Counters};

/// Hard upper bound on the time to live: 60 seconds. A longer `ttl` is refused
/// with [`ConfigError::TtlTooLong`].
pub const MAX_TTL: Duration = Duration::from_secs(60);
/// Default time to live: [`MAX_TTL`].
pub const DEFAULT_TTL: Duration = MAX_TTL;
/// Default capacity, in entries.
pub const DEFAULT_MAX_CAPACITY: u64 = 10_000;
/// Default period of the maintenance task that drops expired entries.
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest accepted maintenance interval.
pub const MIN_MAINTENANCE_INTERVAL: Duration = Duration::from_millis(10);
/// Longest accepted maintenance interval.
pub const MAX_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);

/// How many times one `get_or_fetch` call fetches again after an invalidation
/// raced with its fetch, before it gives up with [`FetchError::Contended`].
const MAX_RACED_FETCHES: usize = 4;
/// How many used-up values (with `max_uses`) one `get_or_fetch` call skips
/// before it gives up with [`FetchError::Contended`]. Every round serves
/// `max_uses` callers, so this bounds the wait of the last of
/// `max_uses * MAX_USED_UP` concurrent callers.
const MAX_USED_UP: usize = 64;
/// Upper bound on moka maintenance passes per tick (each pass evicts a batch).
const MAX_MAINTENANCE_PASSES: usize = 16;
/// Invalidation generation counters per scope kind (users, credentials,
/// (user, credential) pairs): fixed tables, so that invalidations of made-up
/// ids cannot grow memory (3 x 4096 x 8 bytes = 96 KiB per cache). Ids share a counter when their
/// keyed hashes collide; a collision only makes a fetch of one id retry after
/// an invalidation of the other, it never hides an invalidation.
const GENERATION_BUCKETS: usize = 4096;

/// Where a key's scopes keep their invalidation generations: its user's, its
/// credential's and its (user, credential) pair's bucket in [`Generations`].
#[derive(Clone, Copy, Debug)]
struct Buckets {
    user: usize,
    credential: usize,
    pair: usize,
}

/// The generations of one key's four scopes (everything, its user, its
/// credential, its user and credential) read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    all: u64,
    user: u64,
    credential: u64,
    pair: u64,
}

/// Invalidation generations, one counter per scope: bumped by every
/// invalidation of that scope before the invalidation is registered with
/// moka. A fetch reads the counters of the scopes its key belongs to before it
/// starts and its value is confirmed only if none of them moved, so only an
/// invalidation that may match the key discards its fetch (see
/// [`Inner::confirm`]).
struct Generations {
    /// Bumped by [`Invalidation::All`].
    all: AtomicU64,
    /// Bumped by [`Invalidation::User`], indexed by the user's bucket.
    users: Box<[AtomicU64]>,
    /// Bumped by [`Invalidation::Credential`], indexed by the credential's bucket.
    credentials: Box<[AtomicU64]>,
    /// Bumped by [`Invalidation::UserCredential`], indexed by the pair's bucket.
    pairs: Box<[AtomicU64]>,
    /// Keyed per cache from the OS's randomness, so that nobody can choose ids
    /// that share a victim's bucket.
    hasher: std::hash::RandomState,
}

impl Generations {
    fn new() -> Self {
        let table = || (0..GENERATION_BUCKETS).map(|_| AtomicU64::new(0)).collect();
        Self {
            all: AtomicU64::new(0),
            users: table(),
            credentials: table(),
            pairs: table(),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn bucket<T: std::hash::Hash>(&self, id: &T) -> usize {
        use std::hash::BuildHasher;
        // The remainder is below GENERATION_BUCKETS, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let bucket = (self.hasher.hash_one(id) % GENERATION_BUCKETS as u64) as usize;
        bucket
    }

    fn buckets(&self, key: &CacheKey) -> Buckets {
        Buckets {
            user: self.bucket(key.user()),
            credential: self.bucket(key.credential()),
            pair: self.bucket(&(key.user(), key.credential())),
        }
    }

    /// The current generations of the scopes at `buckets`.
    fn stamp(&self, buckets: Buckets) -> Stamp {
        Stamp {
            all: self.all.load(Ordering::SeqCst),
            user: self.users[buckets.user].load(Ordering::SeqCst),
            credential: self.credentials[buckets.credential].load(Ordering::SeqCst),
            pair: self.pairs[buckets.pair].load(Ordering::SeqCst),
        }
    }

    /// Bumps the generation of the scope `invalidation` names.
    fn bump(&self, invalidation: &Invalidation) {
        match invalidation {
            Invalidation::All => &self.all,
            Invalidation::User(user) => &self.users[self.bucket(user)],
            Invalidation::Credential(credential) => &self.credentials[self.bucket(credential)],
            Invalidation::UserCredential(user, credential) => {
                &self.pairs[self.bucket(&(user, credential))]
            }
        }
        .fetch_add(1, Ordering::SeqCst);
    }
}

/// One cached credential and its bookkeeping.
///
/// The cache's reference to the credential lives in `credential` and is taken
/// out ([`Slot::wipe`]) the moment the entry stops being servable: when an
/// invalidation matches it, and when moka reports its removal (expiry, size
/// eviction, explicit removal, replacement). The `Slot` itself may outlive
/// that moment inside moka (pending operation logs, and removed hash-table
/// buckets whose drop crossbeam-epoch defers until every thread of the
/// process has left its pinned section), but it then holds no secret. A wiped
/// slot is never served.
struct Slot {
    /// `None` once wiped. A `Mutex` rather than a lock-free cell: the
    /// critical section is one reference-count increment, uncontended except
    /// on one hot key.
    credential: Mutex<Option<Arc<ExchangeCredential>>>,
    /// The key's buckets in [`Generations`].
    buckets: Buckets,
    /// The key's invalidation generations read before the fetch started.
    stamp: Stamp,
    /// Set once a caller saw that no invalidation happened between the start
    /// of the fetch and the insertion of this slot.
    confirmed: AtomicBool,
    /// Uses handed out so far (only counted with `max_uses`).
    uses: AtomicU64,
}

impl Slot {
    fn new(credential: Arc<ExchangeCredential>, buckets: Buckets, stamp: Stamp) -> Self {
        Self {
            credential: Mutex::new(Some(credential)),
            buckets,
            stamp,
            confirmed: AtomicBool::new(false),
            uses: AtomicU64::new(0),
        }
    }

    /// The credential, or `None` once wiped.
    fn credential(&self) -> Option<Arc<ExchangeCredential>> {
        // A poisoned lock still holds a consistent `Option` (no code panics
        // while holding it); reading it is safe, and a wiped slot reads `None`.
        self.credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops the cache's reference to the credential now: its bytes are wiped
    /// at once unless a caller still borrows it (then when the last one drops
    /// it). Idempotent.
    fn wipe(&self) {
        let taken = self
            .credential
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // Dropped after the lock is released.
        drop(taken);
    }
}

/// Whether `invalidation` names `key`.
fn matches(invalidation: &Invalidation, key: &CacheKey) -> bool {
    match invalidation {
        Invalidation::All => true,
        Invalidation::User(user) => key.user() == user,
        Invalidation::Credential(credential) => key.credential() == credential,
        Invalidation::UserCredential(user, credential) => {
            key.user() == user && key.credential() == credential
        }
    }
}

/// What [`Inner::take_use`] found in a slot.
enum Use {
    /// One use of the credential.
    Served(Arc<ExchangeCredential>),
    /// The slot has been wiped (an invalidation or a removal got there
    /// first); it has been removed from the cache.
    Wiped,
    /// The slot's `max_uses` are spent; it has been removed from the cache.
    UsedUp,
}

/// A cache of decrypted exchange credentials keyed by (user, credential,
/// level). Cheap to clone (all clones share one cache); see the crate
/// documentation for the design.
#[derive(Clone)]
pub struct CredCache {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Cache<CacheKey, Arc<Slot>>,
    source: Arc<dyn CredentialSource>,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
    counters: Arc<Counters>,
    /// Per-scope invalidation generations.
    generations: Generations,
    max_uses: Option<NonZeroU64>,
    ttl: Duration,
    max_capacity: u64,
    maintenance_interval: Duration,
    instance_id: String,
    maintenance: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.maintenance.abort();
        // The aborted task still holds a handle on moka's cache until the
        // runtime drops it, and moka frees some of its copies through
        // crossbeam-epoch: release every cached value now instead. (Entries
        // hidden from iteration were wiped when hidden, or have expired.)
        for (_, slot) in &self.cache {
            slot.wipe();
        }
    }
}

/// Configures a [`CredCache`]. Obtain one from [`CredCache::builder`].
pub struct CredCacheBuilder {
    source: Arc<dyn CredentialSource>,
    ttl: Duration,
    max_capacity: u64,
    max_uses: Option<u64>,
    maintenance_interval: Duration,
    publisher: Option<Arc<dyn InvalidationPublisher>>,
}

impl fmt::Debug for CredCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredCacheBuilder")
            .field("source", &self.source)
            .field("ttl", &self.ttl)
            .field("max_capacity", &self.max_capacity)
            .field("max_uses", &self.max_uses)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("publisher", &self.publisher)
            .finish()
    }
}

impl CredCacheBuilder {
    /// Time to live of an entry, counted from its insertion (never extended by
    /// reads). Default and maximum: 60 s.
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Maximum number of entries; the least useful entries are evicted beyond
    /// it. Default [`DEFAULT_MAX_CAPACITY`].
    #[must_use]
    pub const fn max_capacity(mut self, entries: u64) -> Self {
        self.max_capacity = entries;
        self
    }

    /// Hands out each fetched value at most `uses` times; the next lookup
    /// misses and fetches again. Default: unlimited (the TTL still applies).
    #[must_use]
    pub const fn max_uses(mut self, uses: u64) -> Self {
        self.max_uses = Some(uses);
        self
    }

    /// Period of the maintenance task that drops expired entries. An expired
    /// value is dropped by the cache within `ttl + maintenance_interval` of its
    /// insertion (plus the duration of one maintenance pass). Default 1 s,
    /// accepted from 10 ms to 5 s.
    #[must_use]
    pub const fn maintenance_interval(mut self, interval: Duration) -> Self {
        self.maintenance_interval = interval;
        self
    }

    /// Publishes every invalidation made through this cache to other instances
    /// (see the `redis` module, feature `redis`). Without one, invalidations stay local.
    #[must_use]
    pub fn publisher(mut self, publisher: Arc<dyn InvalidationPublisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// Builds the cache and starts its maintenance task on the current Tokio
    /// runtime. The task stops when the last clone of the cache is dropped.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a zero or too long `ttl` (above [`MAX_TTL`]), a zero
    /// capacity or use count, a maintenance interval out of range, or no
    /// running Tokio runtime.
    pub fn build(self) -> Result<CredCache, ConfigError> {
        if self.ttl.is_zero() {
            return Err(ConfigError::ZeroTtl);
        }
        if self.ttl > MAX_TTL {
            return Err(ConfigError::TtlTooLong { max: MAX_TTL });
        }
        if self.max_capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        let max_uses = match self.max_uses {
            None => None,
            Some(n) => Some(NonZeroU64::new(n).ok_or(ConfigError::ZeroMaxUses)?),
        };
        if !(MIN_MAINTENANCE_INTERVAL..=MAX_MAINTENANCE_INTERVAL)
            .contains(&self.maintenance_interval)
        {
            return Err(ConfigError::MaintenanceInterval {
                min: MIN_MAINTENANCE_INTERVAL,
                max: MAX_MAINTENANCE_INTERVAL,
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ConfigError::NoRuntime)?;

        let counters = Arc::new(Counters::default());
        let listener_counters = Arc::clone(&counters);
        let cache = Cache::builder()
            .max_capacity(self.max_capacity)
            .time_to_live(self.ttl)
            .support_invalidation_closures()
            .eviction_listener(move |_key, slot: Arc<Slot>, cause| {
                // Whatever moka still holds of the entry after this call
                // (operation logs, epoch-deferred buckets), it holds no secret.
                slot.wipe();
                match cause {
                    RemovalCause::Expired | RemovalCause::Size => {
                        Counters::bump(&listener_counters.evictions);
                    }
                    RemovalCause::Explicit => Counters::bump(&listener_counters.invalidations),
                    RemovalCause::Replaced => {}
                }
            })
            .build();
        let task = runtime.spawn(maintain(cache.clone(), self.maintenance_interval));
        Ok(CredCache {
            inner: Arc::new(Inner {
                cache,
                source: self.source,
                publisher: self.publisher,
                counters,
                generations: Generations::new(),
                max_uses,
                ttl: self.ttl,
                max_capacity: self.max_capacity,
                maintenance_interval: self.maintenance_interval,
                instance_id: new_instance_id(),
                maintenance: task.abort_handle(),
            }),
        })
    }
}

/// The periodic maintenance: makes moka drop expired, evicted and invalidated
/// entries now rather than at some later write.
async fn maintain(cache: Cache<CacheKey, Arc<Slot>>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        run_pending(&cache).await;
    }
}

async fn run_pending(cache: &Cache<CacheKey, Arc<Slot>>) {
    for _ in 0..MAX_MAINTENANCE_PASSES {
        let before = cache.entry_count();
        cache.run_pending_tasks().await;
        if cache.entry_count() == before {
            break;
        }
    }
}

/// 16 lowercase hex digits, distinct per cache instance.
fn new_instance_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // RandomState is keyed from the operating system's randomness once per
    // thread; mixing in the process id, the time and a counter makes two
    // instances of a fleet collide with negligible probability.
    let value = RandomState::new().hash_one((
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    format!("{value:016x}")
}

impl fmt::Debug for CredCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("CredCache")
            .field("instance_id", &inner.instance_id)
            .field("source", &inner.source)
            .field("ttl", &inner.ttl)
            .field("max_capacity", &inner.max_capacity)
            .field("max_uses", &inner.max_uses)
            .field("maintenance_interval", &inner.maintenance_interval)
            .field("entries", &inner.cache.entry_count())
            .field("publisher", &inner.publisher)
            .finish_non_exhaustive()
    }
}

impl CredCache {
    /// Starts configuring a cache over `source`.
    #[must_use]
    pub fn builder(source: Arc<dyn CredentialSource>) -> CredCacheBuilder {
        CredCacheBuilder {
            source,
            ttl: DEFAULT_TTL,
            max_capacity: DEFAULT_MAX_CAPACITY,
            max_uses: None,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            publisher: None,
        }
    }

    /// The credential for `key`: from the cache when a live entry exists,
    /// otherwise from the source, with one fetch for any number of callers
    /// missing the same key at the same time. A fetch error reaches every
    /// waiting caller and is not cached (the next call fetches again).
    ///
    /// The caller must have authorised `key` (user, credential and level)
    /// before calling. A credential whose key is read-only is never returned
    /// for [`AccessLevel::Trade`].
    ///
    /// # Errors
    ///
    /// The source's [`FetchError`]; [`FetchError::Refused`] for Trade on a
    /// read-only key; [`FetchError::InvalidResponse`] when the source returned
    /// another credential; [`FetchError::Contended`] when concurrent
    /// invalidations kept discarding the fetched value.
    pub async fn get_or_fetch(
        &self,
        key: &CacheKey,
    ) -> Result<Arc<ExchangeCredential>, FetchError> {
        let inner = &*self.inner;
        if let Some(slot) = inner.cache.get(key).await
            && inner.is_fresh(&slot)
            && let Use::Served(credential) = inner.take_use(key, &slot).await
        {
            Counters::bump(&inner.counters.hits);
            return Ok(credential);
        }
        Counters::bump(&inner.counters.misses);
        let buckets = inner.generations.buckets(key);
        let (mut raced, mut used_up) = (0, 0);
        while raced < MAX_RACED_FETCHES && used_up < MAX_USED_UP {
            let stamp = inner.generations.stamp(buckets);
            // Set when this call runs the fetch (rather than waiting for
            // another caller's): its own reference to what it fetched.
            let fetched = OnceLock::new();
            let slot = inner
                .cache
                .try_get_with_by_ref(key, inner.fetch(key, buckets, stamp, &fetched))
                .await
                .map_err(|e| FetchError::clone(&e))?;
            if !inner.confirm(key, &slot).await {
                raced += 1;
                continue;
            }
            match inner.take_use(key, &slot).await {
                Use::Served(credential) => return Ok(credential),
                Use::Wiped if inner.stamp_unmoved(&slot) => {
                    // No invalidation matched since the fetch started: the
                    // value left the cache (size eviction, often right at
                    // insertion, or expiry) before this caller used it. The
                    // caller that fetched it still gets it, once.
                    if let Some(credential) = fetched.get()
                        && slot.stamp == stamp
                        && inner.count_use(&slot)
                    {
                        return Ok(Arc::clone(credential));
                    }
                    used_up += 1;
                }
                // Wiped by an invalidation that raced with this call.
                Use::Wiped => raced += 1,
                Use::UsedUp => used_up += 1,
            }
        }
        tracing::warn!(
            code = FetchError::Contended.code(),
            user = %key.user(),
            credential = %key.credential(),
            level = %key.level(),
            raced,
            used_up,
            "credential lookup gave up after repeated invalidations or used-up values"
        );
        Err(FetchError::Contended)
    }

    /// Drops what `invalidation` names from this cache, then publishes it to
    /// the other instances when a publisher is configured. The cache's own
    /// references to the matching values are dropped before the local part
    /// returns (a value nobody borrows is wiped then); values still borrowed
    /// by callers are wiped when those callers drop them.
    ///
    /// # Errors
    ///
    /// [`PublishError`] when publishing failed; the local cache has been
    /// invalidated anyway. Retry, or rely on the TTL (at most 60 s) for the
    /// other instances.
    pub async fn invalidate(&self, invalidation: Invalidation) -> Result<(), PublishError> {
        self.invalidate_local(&invalidation).await;
        if let Some(publisher) = &self.inner.publisher {
            let message = InvalidationMessage {
                origin: self.inner.instance_id.clone(),
                invalidation,
            };
            if let Err(e) = publisher.publish(&message).await {
                tracing::warn!(
                    code = "cred_cache.publish_failed",
                    "invalidation applied locally but not published"
                );
                return Err(e);
            }
        }
        Ok(())
    }

    /// [`invalidate`](Self::invalidate) every entry of `user`.
    ///
    /// # Errors
    ///
    /// As [`invalidate`](Self::invalidate).
    pub async fn invalidate_user(&self, user: &UserId) -> Result<(), PublishError> {
        self.invalidate(Invalidation::User(user.clone())).await
    }

    /// [`invalidate`](Self::invalidate) every entry of `credential` (every
    /// user, every level): call it on revoke, rotation or deletion.
    ///
    /// # Errors
    ///
    /// As [`invalidate`](Self::invalidate).
    pub async fn invalidate_credential(
        &self,
        credential: &CredentialId,
    ) -> Result<(), PublishError> {
        self.invalidate(Invalidation::Credential(credential.clone()))
            .await
    }

    /// [`invalidate`](Self::invalidate) the entries of `user` for `credential`
    /// (every level): call it when a share of that account with that user is
    /// changed or revoked. Narrower than
    /// [`invalidate_user`](Self::invalidate_user): the user's lookups of other
    /// credentials are not disturbed.
    ///
    /// # Errors
    ///
    /// As [`invalidate`](Self::invalidate).
    pub async fn invalidate_user_credential(
        &self,
        user: &UserId,
        credential: &CredentialId,
    ) -> Result<(), PublishError> {
        self.invalidate(Invalidation::UserCredential(
            user.clone(),
            credential.clone(),
        ))
        .await
    }

    /// [`invalidate`](Self::invalidate) everything.
    ///
    /// # Errors
    ///
    /// As [`invalidate`](Self::invalidate).
    pub async fn invalidate_all(&self) -> Result<(), PublishError> {
        self.invalidate(Invalidation::All).await
    }

    /// Drops what `invalidation` names from this cache only, without
    /// publishing: what a subscriber does with a message from another
    /// instance. After it returns, no lookup returns a value fetched before the
    /// call, including values whose fetch was in flight during the call, and
    /// the cache holds no reference to any matching value that was cached when
    /// the call started (those not borrowed by a caller are wiped by then).
    pub async fn invalidate_local(&self, invalidation: &Invalidation) {
        let inner = &*self.inner;
        // Order matters: bump the scope's generation first, register the
        // predicate second (see `Inner::confirm`).
        inner.generations.bump(invalidation);
        // "Wiped at once" must not depend on when moka drops its own copies
        // of an entry: `invalidate` leaves the removed value in the write-op
        // log until a maintenance pass, and the hash table's buckets are freed
        // by crossbeam-epoch only once every thread of the process has
        // unpinned, which under load can take any time. So every matching slot
        // is wiped here, explicitly.
        //
        // 1. Wipe what is visible now, and collect its keys for removal.
        let mut matching: Vec<Arc<CacheKey>> = Vec::new();
        for (k, slot) in &inner.cache {
            if matches(invalidation, &k) {
                slot.wipe();
                matching.push(k);
            }
        }
        // 2. Register the predicate: moka hides and later removes every
        //    matching entry inserted up to now. It wipes what it matches, so
        //    an entry is wiped the first time moka looks at it.
        let scope = invalidation.clone();
        let registered = inner.cache.invalidate_entries_if(move |k, slot| {
            let hit = matches(&scope, k);
            if hit {
                slot.wipe();
            }
            hit
        });
        if registered.is_err() {
            // Cannot happen (closures are enabled at build); fail closed anyway.
            for (_, slot) in &inner.cache {
                slot.wipe();
            }
            inner.cache.invalidate_all();
        }
        // 3. Sweep: iterating applies the predicate to every entry inserted
        //    before it was registered, including one inserted after step 1
        //    read its part of the table, and so wipes it. An entry inserted
        //    since is visible: wipe it if its fetch started before the bump
        //    (no lookup would serve it anyway).
        for (k, slot) in &inner.cache {
            if matches(invalidation, &k) && !inner.is_fresh(&slot) {
                slot.wipe();
            }
        }
        if *invalidation == Invalidation::All {
            // Lets moka's maintenance drop everything at once.
            inner.cache.invalidate_all();
        }
        for k in matching {
            inner.cache.invalidate(&*k).await;
        }
        match invalidation {
            Invalidation::User(u) => {
                tracing::info!(code = "cred_cache.invalidated", scope = "user", user = %u);
            }
            Invalidation::Credential(c) => {
                tracing::info!(code = "cred_cache.invalidated", scope = "credential", credential = %c);
            }
            Invalidation::UserCredential(u, c) => {
                tracing::info!(code = "cred_cache.invalidated", scope = "user_credential", user = %u, credential = %c);
            }
            Invalidation::All => tracing::info!(code = "cred_cache.invalidated", scope = "all"),
        }
        // Free the (wiped) entries now rather than at the next maintenance tick.
        run_pending(&inner.cache).await;
    }

    /// Applies a message received from the bus: ignored when this instance
    /// sent it, otherwise [`invalidate_local`](Self::invalidate_local).
    pub async fn apply_message(&self, message: &InvalidationMessage) {
        if message.origin != self.inner.instance_id {
            self.invalidate_local(&message.invalidation).await;
        }
    }

    /// Runs the maintenance the background task runs every
    /// `maintenance_interval`, now.
    pub async fn run_maintenance(&self) {
        run_pending(&self.inner.cache).await;
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// Approximate number of entries (exact after maintenance).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// This instance's id, the `origin` of the messages it publishes.
    #[must_use]
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The configured time to live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }
}

impl Inner {
    /// One call to the source, with the cache's own checks on the result.
    async fn fetch(
        &self,
        key: &CacheKey,
        buckets: Buckets,
        stamp: Stamp,
        fetched: &OnceLock<Arc<ExchangeCredential>>,
    ) -> Result<Arc<Slot>, FetchError> {
        Counters::bump(&self.counters.fetches);
        let result = self.source.fetch(key).await.and_then(|credential| {
            if credential.credential_id() != key.credential() {
                Err(FetchError::InvalidResponse)
            } else if credential.is_read_only() && key.level() == AccessLevel::Trade {
                Err(FetchError::Refused)
            } else {
                Ok(credential)
            }
        });
        match result {
            Ok(credential) => {
                let credential = Arc::new(credential);
                // Set once per call: each loop round has its own cell.
                let _ = fetched.set(Arc::clone(&credential));
                Ok(Arc::new(Slot::new(credential, buckets, stamp)))
            }
            Err(e) => {
                Counters::bump(&self.counters.fetch_errors);
                tracing::warn!(
                    code = e.code(),
                    user = %key.user(),
                    credential = %key.credential(),
                    level = %key.level(),
                    "credential fetch failed"
                );
                Err(e)
            }
        }
    }

    /// Whether a slot found by a plain lookup may be served: either it was
    /// confirmed, or no invalidation of its key's scopes happened since its
    /// fetch started.
    fn is_fresh(&self, slot: &Slot) -> bool {
        slot.confirmed.load(Ordering::Acquire) || slot.stamp == self.generations.stamp(slot.buckets)
    }

    /// Whether no invalidation of a scope of `slot`'s key happened since its
    /// fetch started (a wiped slot whose stamp did not move was removed by
    /// moka, not by an invalidation).
    fn stamp_unmoved(&self, slot: &Slot) -> bool {
        slot.stamp == self.generations.stamp(slot.buckets)
    }

    /// Counts one use of `slot` without reading its credential; `false` when
    /// its `max_uses` are spent.
    fn count_use(&self, slot: &Slot) -> bool {
        self.max_uses
            .is_none_or(|max| slot.uses.fetch_add(1, Ordering::AcqRel) < max.get())
    }

    /// Called after `try_get_with` returned `slot` (inserted by now). If no
    /// invalidation of a scope its key belongs to (everything, its user, its
    /// credential, its user and credential) happened since its fetch started, any later invalidation
    /// matching it bumps one of those generations after this check and is
    /// registered after the bump, hence after the insertion, and therefore
    /// covers it: mark it confirmed. Otherwise an invalidation that may match
    /// raced with the fetch and may have missed it: remove it and report
    /// `false` (fetch again). Invalidations of other users and credentials
    /// move other counters (or, on a hash collision, cause one spurious
    /// refetch).
    async fn confirm(&self, key: &CacheKey, slot: &Arc<Slot>) -> bool {
        if self.is_fresh(slot) {
            slot.confirmed.store(true, Ordering::Release);
            return true;
        }
        self.remove_if_same(key, slot).await;
        false
    }

    /// Counts one use of `slot`'s credential. A wiped or used-up slot serves
    /// nothing and is removed from the cache.
    async fn take_use(&self, key: &CacheKey, slot: &Arc<Slot>) -> Use {
        let Some(credential) = slot.credential() else {
            self.remove_if_same(key, slot).await;
            // The last use wipes its slot: that is a used-up slot, not a race.
            let spent = self
                .max_uses
                .is_some_and(|max| slot.uses.load(Ordering::Acquire) >= max.get());
            return if spent { Use::UsedUp } else { Use::Wiped };
        };
        let Some(max) = self.max_uses else {
            return Use::Served(credential);
        };
        let used = slot.uses.fetch_add(1, Ordering::AcqRel);
        if used >= max.get() {
            drop(credential);
            self.remove_if_same(key, slot).await;
            return Use::UsedUp;
        }
        if used + 1 == max.get() {
            // Last use handed out: drop the cache's reference now.
            self.remove_if_same(key, slot).await;
        }
        Use::Served(credential)
    }

    /// Removes `key` only if it still maps to `slot` (a newer value stays),
    /// and wipes `slot` either way: every caller means "this slot is done".
    async fn remove_if_same(&self, key: &CacheKey, slot: &Arc<Slot>) {
        slot.wipe();
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|entry| {
                let same = entry.is_some_and(|e| Arc::ptr_eq(e.value(), slot));
                async move { if same { Op::Remove } else { Op::Nop } }
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(user: &str, credential: &str) -> CacheKey {
        CacheKey::new(
            UserId::new(user).unwrap(),
            CredentialId::new(credential).unwrap(),
            AccessLevel::Read,
        )
    }

    proptest! {
        /// An invalidation that matches a key always moves that key's stamp
        /// (whatever the hash buckets), so no matching invalidation can be
        /// missed by a fetch in flight.
        #[test]
        fn a_matching_invalidation_always_moves_the_stamp(
            user in "[!-~]{1,16}",
            credential in "[!-~]{1,16}",
            other in "[!-~]{1,16}",
        ) {
            let generations = Generations::new();
            let k = key(&user, &credential);
            let buckets = generations.buckets(&k);
            for invalidation in [
                Invalidation::User(k.user().clone()),
                Invalidation::Credential(k.credential().clone()),
                Invalidation::UserCredential(k.user().clone(), k.credential().clone()),
                Invalidation::All,
            ] {
                let before = generations.stamp(buckets);
                generations.bump(&invalidation);
                prop_assert_ne!(before, generations.stamp(buckets));
            }
            // An invalidation of another id moves the stamp only on a bucket
            // collision.
            let before = generations.stamp(buckets);
            let stranger = UserId::new(&other).unwrap();
            generations.bump(&Invalidation::User(stranger.clone()));
            let collides = generations.bucket(&stranger) == buckets.user;
            prop_assert_eq!(before != generations.stamp(buckets), collides || other == user);
        }
    }

    #[test]
    fn the_tables_have_a_fixed_size() {
        let generations = Generations::new();
        for n in 0..10_000 {
            let id = UserId::new(&format!("made-up-{n}")).unwrap();
            generations.bump(&Invalidation::User(id));
        }
        assert_eq!(generations.users.len(), GENERATION_BUCKETS);
        let total: u64 = generations
            .users
            .iter()
            .map(|g| g.load(Ordering::SeqCst))
            .sum();
        assert_eq!(total, 10_000);
    }
}
