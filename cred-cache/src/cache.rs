//! [`CredCache`]: the cache itself, its builder and its maintenance task.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;

use crate::credential::ExchangeCredential;
use crate::error::{ConfigError, FetchError, PublishError};
use access_types::{AccessPermit, AccountId, Level, UserId};

use crate::ids::CacheKey;
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
/// One scope an invalidation can name, other than everything.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ScopeKey {
    User(UserId),
    Credential(AccountId),
    Pair(UserId, AccountId),
}

impl ScopeKey {
    /// The three scopes `key` belongs to (besides everything).
    fn of(key: &CacheKey) -> [Self; 3] {
        [
            Self::User(key.user().clone()),
            Self::Credential(key.credential().clone()),
            Self::Pair(key.user().clone(), key.credential().clone()),
        ]
    }

    /// The scope `invalidation` names; `None` for everything.
    fn named_by(invalidation: &Invalidation) -> Option<Self> {
        match invalidation {
            Invalidation::All => None,
            Invalidation::User(user) => Some(Self::User(user.clone())),
            Invalidation::Credential(credential) => Some(Self::Credential(credential.clone())),
            Invalidation::UserCredential(user, credential) => {
                Some(Self::Pair(user.clone(), credential.clone()))
            }
        }
    }
}

/// The generations of one key's four scopes (everything, its user, its
/// credential, its user and credential) read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    all: u64,
    scopes: [u64; 3],
}

/// A scope some fetch in flight belongs to.
#[derive(Debug)]
struct ScopeEntry {
    /// Moves (to a new, higher value) on every invalidation of this scope
    /// while the entry exists.
    generation: u64,
    /// Lookups on the miss path that registered this scope and have not
    /// finished yet. The entry is removed when this reaches 0.
    in_flight: usize,
}

#[derive(Debug, Default)]
struct GenerationState {
    /// Bumped by [`Invalidation::All`].
    all: u64,
    /// Bumped by every other invalidation, whether or not its scope is in
    /// flight: the source of every scope generation, so generations only grow
    /// and a scope entry created anew never repeats a value it had before.
    sequence: u64,
    /// Exactly the scopes of the lookups in flight (miss path): never more
    /// entries than three per lookup in flight, whatever ids invalidations
    /// name. The map's hasher is std's per-map random keying.
    in_flight: HashMap<ScopeKey, ScopeEntry>,
}

/// Invalidation generations, exact per scope: an invalidation moves the
/// generation of the one scope it names (or of everything) and nothing else.
///
/// A lookup that misses registers its key's three scopes ([`Registration`])
/// before it fetches, and holds them until it returns (or is cancelled, or
/// panics: the registration is a drop guard). Its value is confirmed only if
/// the stamp read at the start of the fetch still holds after the value was
/// inserted (see [`Inner::confirm`]). An invalidation bumps a scope's
/// generation only if a lookup of that scope is in flight; otherwise there is
/// no fetch for it to discard (values already cached are dropped by
/// [`CredCache::invalidate_local`]'s predicate and sweep), and it leaves no
/// trace, so invalidations of made-up ids cannot grow memory or disturb anyone
/// else's lookups.
#[derive(Debug, Default)]
struct Generations {
    state: Mutex<GenerationState>,
}

impl Generations {
    fn lock(&self) -> std::sync::MutexGuard<'_, GenerationState> {
        // No code panics while holding the lock (map insertion aside, which
        // leaves the map consistent): a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a lookup of `key` in flight until the result is dropped.
    fn register(&self, key: &CacheKey) -> Registration<'_> {
        let scopes = ScopeKey::of(key);
        let mut state = self.lock();
        let sequence = state.sequence;
        for scope in &scopes {
            state
                .in_flight
                .entry(scope.clone())
                .or_insert(ScopeEntry {
                    generation: sequence,
                    in_flight: 0,
                })
                .in_flight += 1;
        }
        drop(state);
        Registration {
            generations: self,
            scopes,
        }
    }

    /// The current generations of `scopes`. A scope with no lookup in flight
    /// reads as the current sequence number: equal to a stamp's only if no
    /// invalidation at all happened since, so a value whose lookup ended
    /// without confirming it (cancelled) is served only when that is certain
    /// to be safe, and otherwise fetched again.
    fn stamp(&self, scopes: &[ScopeKey; 3]) -> Stamp {
        let state = self.lock();
        let generation = |scope: &ScopeKey| {
            state
                .in_flight
                .get(scope)
                .map_or(state.sequence, |entry| entry.generation)
        };
        Stamp {
            all: state.all,
            scopes: [
                generation(&scopes[0]),
                generation(&scopes[1]),
                generation(&scopes[2]),
            ],
        }
    }

    /// Bumps the generation of the scope `invalidation` names, if a lookup of
    /// it is in flight (of everything: always).
    fn bump(&self, invalidation: &Invalidation) {
        let mut state = self.lock();
        match ScopeKey::named_by(invalidation) {
            None => state.all += 1,
            Some(scope) => {
                state.sequence += 1;
                let sequence = state.sequence;
                if let Some(entry) = state.in_flight.get_mut(&scope) {
                    entry.generation = sequence;
                }
            }
        }
    }

    /// Scopes with a lookup in flight (for tests of the memory bound).
    #[cfg(test)]
    fn scopes_in_flight(&self) -> usize {
        self.lock().in_flight.len()
    }
}

/// One lookup's hold on its key's scopes in [`Generations`]; released on drop.
struct Registration<'a> {
    generations: &'a Generations,
    scopes: [ScopeKey; 3],
}

impl Registration<'_> {
    fn stamp(&self) -> Stamp {
        self.generations.stamp(&self.scopes)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut state = self.generations.lock();
        for scope in &self.scopes {
            if let Some(entry) = state.in_flight.get_mut(scope) {
                entry.in_flight -= 1;
                if entry.in_flight == 0 {
                    state.in_flight.remove(scope);
                }
            }
        }
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
    /// The key's scopes in [`Generations`].
    scopes: [ScopeKey; 3],
    /// The key's invalidation generations read before the fetch started.
    stamp: Stamp,
    /// Set once a caller saw that no invalidation happened between the start
    /// of the fetch and the insertion of this slot.
    confirmed: AtomicBool,
    /// Uses handed out so far (only counted with `max_uses`).
    uses: AtomicU64,
}

impl Slot {
    fn new(credential: Arc<ExchangeCredential>, scopes: [ScopeKey; 3], stamp: Stamp) -> Self {
        Self {
            credential: Mutex::new(Some(credential)),
            scopes,
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
    /// Every slot this cache made that may still be alive, so that dropping
    /// the cache reaches the ones moka hides from iteration (expired, not yet
    /// removed by a maintenance pass).
    issued: Mutex<Issued>,
}

/// Weak references to the slots a cache made; dead ones are pruned as it
/// grows, so its length stays within twice the live slots (plus a constant).
#[derive(Default)]
struct Issued {
    slots: Vec<Weak<Slot>>,
    prune_at: usize,
}

impl Issued {
    /// The smallest length at which dead references are pruned.
    const MIN_PRUNE_AT: usize = 64;

    fn push(&mut self, slot: &Arc<Slot>) {
        self.slots.push(Arc::downgrade(slot));
        if self.slots.len() >= self.prune_at.max(Self::MIN_PRUNE_AT) {
            self.slots.retain(|w| w.strong_count() > 0);
            self.prune_at = self.slots.len().saturating_mul(2);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.maintenance.abort();
        // The aborted task still holds a handle on moka's cache until the
        // runtime drops it, and moka frees some of its copies through
        // crossbeam-epoch: release every cached value now instead. (Entries
        // hidden from iteration were wiped when hidden; expired ones below.)
        for (_, slot) in &self.cache {
            slot.wipe();
        }
        // Expired entries are hidden from iteration until a maintenance pass
        // removes them, and that pass will not come: wipe them through the
        // slots this cache made.
        let issued = self
            .issued
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for slot in issued.slots.drain(..) {
            if let Some(slot) = slot.upgrade() {
                slot.wipe();
            }
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
                generations: Generations::default(),
                max_uses,
                ttl: self.ttl,
                max_capacity: self.max_capacity,
                maintenance_interval: self.maintenance_interval,
                instance_id: new_instance_id(),
                maintenance: task.abort_handle(),
                issued: Mutex::new(Issued::default()),
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

    /// The credential that `permit` authorises, for use at `level`: from the
    /// cache when a live entry exists, otherwise from the source, with one fetch
    /// for any number of callers missing the same key at the same time. A fetch
    /// error reaches every waiting caller and is not cached (the next call
    /// fetches again).
    ///
    /// The key is ([`permit.user()`](AccessPermit::user),
    /// [`permit.account()`](AccessPermit::account), `level`) ([`CacheKey::new`]):
    /// nothing is looked up that the policy did not allow, and `level` must be
    /// covered by the permit's level (a read permit never fetches a credential
    /// for trading). The permit is consumed: one permit, one lookup; the next
    /// request asks the policy again, and so sees a revoke made in between. A
    /// credential whose key is read-only is never returned for
    /// [`Level::Trade`].
    ///
    /// # Errors
    ///
    /// [`FetchError::Refused`] when `level` is above the permit's level, or for
    /// Trade on a read-only key; the source's [`FetchError`];
    /// [`FetchError::InvalidResponse`] when the source returned another
    /// credential; [`FetchError::Contended`] when concurrent invalidations kept
    /// discarding the fetched value.
    pub async fn get_or_fetch<P: AccessPermit>(
        &self,
        permit: P,
        level: Level,
    ) -> Result<Arc<ExchangeCredential>, FetchError> {
        let key = CacheKey::new(&permit, level)?;
        drop(permit);
        self.lookup(&key).await
    }

    /// [`get_or_fetch`](Self::get_or_fetch) for a key already made from a permit.
    async fn lookup(&self, key: &CacheKey) -> Result<Arc<ExchangeCredential>, FetchError> {
        let inner = &*self.inner;
        if let Some(slot) = inner.cache.get(key).await
            && inner.is_fresh(&slot)
            && let Use::Served(credential) = inner.take_use(key, &slot).await
        {
            Counters::bump(&inner.counters.hits);
            return Ok(credential);
        }
        Counters::bump(&inner.counters.misses);
        // Held until this call returns or is dropped: while it is held, every
        // invalidation of one of the key's scopes moves the stamp (and no
        // other invalidation does).
        let registration = inner.generations.register(key);
        let (mut raced, mut used_up) = (0, 0);
        while raced < MAX_RACED_FETCHES && used_up < MAX_USED_UP {
            let stamp = registration.stamp();
            // Set when this call runs the fetch (rather than waiting for
            // another caller's): its own reference to what it fetched.
            let fetched = OnceLock::new();
            let slot = inner
                .cache
                .try_get_with_by_ref(key, inner.fetch(key, stamp, &fetched))
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
    pub async fn invalidate_credential(&self, credential: &AccountId) -> Result<(), PublishError> {
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
        credential: &AccountId,
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
        // Order matters: bump the scope's generation first (it moves only if
        // a lookup of that exact scope is in flight), register the predicate
        // second (see `Inner::confirm`).
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
        stamp: Stamp,
        fetched: &OnceLock<Arc<ExchangeCredential>>,
    ) -> Result<Arc<Slot>, FetchError> {
        Counters::bump(&self.counters.fetches);
        let result = self.source.fetch(key).await.and_then(|credential| {
            if credential.credential_id() != key.credential() {
                Err(FetchError::InvalidResponse)
            } else if credential.is_read_only() && key.level() == Level::Trade {
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
                let slot = Arc::new(Slot::new(credential, ScopeKey::of(key), stamp));
                self.issued
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(&slot);
                Ok(slot)
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
        slot.confirmed.load(Ordering::Acquire) || slot.stamp == self.generations.stamp(&slot.scopes)
    }

    /// Whether no invalidation of a scope of `slot`'s key happened since its
    /// fetch started (a wiped slot whose stamp did not move was removed by
    /// moka, not by an invalidation).
    fn stamp_unmoved(&self, slot: &Slot) -> bool {
        slot.stamp == self.generations.stamp(&slot.scopes)
    }

    /// Counts one use of `slot` without reading its credential; `false` when
    /// its `max_uses` are spent.
    fn count_use(&self, slot: &Slot) -> bool {
        self.max_uses
            .is_none_or(|max| slot.uses.fetch_add(1, Ordering::AcqRel) < max.get())
    }

    /// Called after `try_get_with` returned `slot` (inserted by now), by a
    /// caller that holds a [`Registration`] of `key`'s scopes.
    ///
    /// Why this closes the fetch-versus-revoke race, for an invalidation `I`
    /// that matches `key` (so it names everything or one of `key`'s three
    /// scopes). `I` first bumps its scope's generation, then registers its
    /// predicate and sweeps ([`CredCache::invalidate_local`]). The fetch
    /// stamped its scopes after registering them, before reading the source;
    /// the registrations (this caller's, and the fetching caller's, which
    /// began before this caller joined the fetch) are held from before the
    /// stamp until after this check, so the scope entries live throughout and
    /// `I`'s bump, whenever it falls in that window, moves the stamp:
    /// - bump before the stamp: the fetch read the source after the change
    ///   `I` announces; its value is current.
    /// - bump after the stamp, before this check: the check sees the moved
    ///   stamp; the value is removed and `false` returned (fetch again).
    /// - bump after this check: `I`'s predicate is registered after the bump,
    ///   hence after the insertion, and so covers this value.
    ///
    /// An invalidation of any other scope moves no generation of this key's
    /// (exact scopes, no shared counters), so it never discards this fetch.
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
        crate::ids::tests::key(user, credential, Level::Read)
    }

    proptest! {
        /// While a lookup of a key is registered, an invalidation that
        /// matches the key always moves its stamp, so no matching
        /// invalidation can be missed by a fetch in flight; an invalidation
        /// of any other id never moves it.
        #[test]
        fn exactly_the_matching_invalidations_move_the_stamp(
            user in "[!-~]{1,16}",
            credential in "[!-~]{1,16}",
            other in "[!-~]{1,16}",
        ) {
            let generations = Generations::default();
            let k = key(&user, &credential);
            let registration = generations.register(&k);
            for invalidation in [
                Invalidation::User(k.user().clone()),
                Invalidation::Credential(k.credential().clone()),
                Invalidation::UserCredential(k.user().clone(), k.credential().clone()),
                Invalidation::All,
            ] {
                let before = registration.stamp();
                generations.bump(&invalidation);
                prop_assert_ne!(before, registration.stamp());
            }
            let before = registration.stamp();
            let user_id = UserId::new(&other).unwrap();
            let credential_id = AccountId::new(&other).unwrap();
            for stranger in [
                Invalidation::User(user_id.clone()),
                Invalidation::Credential(credential_id.clone()),
                Invalidation::UserCredential(user_id, k.credential().clone()),
                Invalidation::UserCredential(k.user().clone(), credential_id),
            ] {
                generations.bump(&stranger);
            }
            let moved = before != registration.stamp();
            prop_assert_eq!(moved, other == user || other == credential);
        }
    }

    /// Invalidations of ids nobody looks up leave nothing behind, and every
    /// registration is released when its lookup ends: memory is bounded by
    /// the lookups in flight.
    #[test]
    fn only_lookups_in_flight_hold_scopes() {
        let generations = Generations::default();
        for n in 0..10_000 {
            let id = UserId::new(&format!("made-up-{n}")).unwrap();
            generations.bump(&Invalidation::User(id));
        }
        assert_eq!(generations.scopes_in_flight(), 0);
        let a = generations.register(&key("u1", "acct-1"));
        let b = generations.register(&key("u1", "acct-1"));
        let c = generations.register(&key("u1", "acct-2"));
        // u1, acct-1, (u1, acct-1), acct-2, (u1, acct-2).
        assert_eq!(generations.scopes_in_flight(), 5);
        drop(a);
        assert_eq!(generations.scopes_in_flight(), 5);
        drop(b);
        assert_eq!(generations.scopes_in_flight(), 3);
        drop(c);
        assert_eq!(generations.scopes_in_flight(), 0);
    }

    /// A value whose lookup ended without confirming it (cancelled) is
    /// judged against the sequence number once its scopes are released: any
    /// invalidation since its stamp makes it stale, never fresh.
    #[test]
    fn a_released_scope_never_reads_as_unmoved_after_an_invalidation() {
        let generations = Generations::default();
        let k = key("u1", "acct-1");
        let scopes = ScopeKey::of(&k);
        let stamp = generations.register(&k).stamp();
        assert_eq!(stamp, generations.stamp(&scopes));
        generations.bump(&Invalidation::User(k.user().clone()));
        // A new lookup registers the scope again: it must not read as before.
        let again = generations.register(&k);
        assert_ne!(stamp, again.stamp());
        drop(again);
        assert_ne!(stamp, generations.stamp(&scopes));
    }

    /// A source whose fetches never finish.
    #[derive(Debug)]
    struct Pending;

    #[async_trait::async_trait]
    impl CredentialSource for Pending {
        async fn fetch(&self, _key: &CacheKey) -> Result<ExchangeCredential, FetchError> {
            std::future::pending().await
        }
    }

    /// A lookup cancelled in the middle of its fetch releases its scopes (the
    /// registration is a drop guard).
    #[tokio::test]
    async fn a_cancelled_lookup_releases_its_scopes() {
        let cache = CredCache::builder(Arc::new(Pending)).build().unwrap();
        let lookup = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.lookup(&key("u1", "acct-1")).await })
        };
        while cache.stats().fetches == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(cache.inner.generations.scopes_in_flight(), 3);
        lookup.abort();
        assert!(lookup.await.unwrap_err().is_cancelled());
        assert_eq!(cache.inner.generations.scopes_in_flight(), 0);
    }

    /// The weak references kept for the drop stay within twice the live
    /// slots plus a constant, however many slots were made and dropped.
    #[test]
    fn issued_slots_are_pruned_as_they_die() {
        let k = key("u1", "acct-1");
        let make = || {
            let credential = ExchangeCredential::new(
                k.credential().clone(),
                zeroize::Zeroizing::new("k".to_owned()),
                zeroize::Zeroizing::new("s".to_owned()),
                None,
                false,
            )
            .unwrap();
            let scopes = ScopeKey::of(&k);
            let stamp = Generations::default().stamp(&scopes);
            Arc::new(Slot::new(Arc::new(credential), scopes, stamp))
        };
        let mut issued = Issued::default();
        let live: Vec<Arc<Slot>> = (0..10).map(|_| make()).collect();
        for slot in &live {
            issued.push(slot);
        }
        for _ in 0..10_000 {
            issued.push(&make());
            assert!(issued.slots.len() <= 2 * live.len() + Issued::MIN_PRUNE_AT);
        }
        assert_eq!(
            issued.slots.iter().filter(|w| w.strong_count() > 0).count(),
            live.len()
        );
    }
}
