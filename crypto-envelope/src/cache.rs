//! The data-key cache: unwrapped data keys kept for a bounded time, number of uses and
//! bytes, so that a value opened often does not cost a remote backend call per open.
//!
//! Off by default; see [`Envelope::with_data_key_cache`](crate::Envelope::with_data_key_cache)
//! and the crate README ("Data-key cache") for when it is worth it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{Context, SHA256};

use crate::backend::KeyRef;
use crate::error::ConfigError;
use crate::secret::DataKey;

/// The longest time a data key may stay cached: 5 minutes.
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(300);

/// Bounds of a [`DataKeyCache`]. An entry leaves the cache (and its data key is wiped)
/// at the first bound it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// How long an entry lives after the open that cached it. At most
    /// [`MAX_AGE_LIMIT`]; default 60 s.
    pub max_age: Duration,
    /// How many opens one entry serves, the open that cached it included. Default 1000.
    pub max_uses: u64,
    /// How many ciphertext bytes (payload and tag) one entry may open in all. Default
    /// 64 MiB.
    pub max_bytes: u64,
    /// How many entries the cache holds; the oldest is evicted first. Default 1000.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(60),
            max_uses: 1000,
            max_bytes: 64 << 20,
            max_entries: 1000,
        }
    }
}

/// Counters of a [`DataKeyCache`], for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Opens served from the cache.
    pub hits: u64,
    /// Opens that had to ask the backend.
    pub misses: u64,
    /// Entries removed because they reached a bound or made room.
    pub evictions: u64,
    /// Entries held now.
    pub entries: usize,
}

/// A cache of unwrapped data keys, shared by the clones of one
/// [`Envelope`](crate::Envelope).
///
/// An entry is keyed by SHA-256 over the backend id, the key reference, the wrapped data
/// key and the wrap's associated data (which encodes the encryption context), so a hit
/// needs the very same wrapped key under the very same context. Only opens use it: every
/// seal still draws a fresh data key, and [`Envelope::rewrap`](crate::Envelope::rewrap)
/// always asks the backend. A data key is cached only after the value it came from
/// opened in full (commitment and payload tag checked). Evicted keys are wiped.
pub struct DataKeyCache {
    limits: CacheLimits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<[u8; 32], Entry>,
    /// Insertion order, for evicting the oldest entry when the cache is full. Holds
    /// stale fingerprints of entries already removed; they are skipped.
    order: VecDeque<([u8; 32], Instant)>,
    stats: CacheStats,
}

struct Entry {
    key: Arc<DataKey>,
    inserted: Instant,
    uses: u64,
    bytes: u64,
}

/// The fingerprint a cache entry is found by. Not secret.
#[derive(Clone, Copy)]
pub(crate) struct Fingerprint([u8; 32]);

impl DataKeyCache {
    /// A cache with these bounds.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the bound when `max_age` is zero or above
    /// [`MAX_AGE_LIMIT`], or another bound is zero.
    pub fn new(limits: CacheLimits) -> Result<Self, ConfigError> {
        let invalid = |field: &str, reason| ConfigError::Invalid {
            field: format!("data-key cache {field}"),
            reason,
        };
        if limits.max_age.is_zero() || limits.max_age > MAX_AGE_LIMIT {
            return Err(invalid(
                "max_age",
                "must be above zero and at most 5 minutes",
            ));
        }
        if limits.max_uses == 0 {
            return Err(invalid("max_uses", "must be at least 1"));
        }
        if limits.max_bytes == 0 {
            return Err(invalid("max_bytes", "must be at least 1"));
        }
        if limits.max_entries == 0 {
            return Err(invalid("max_entries", "must be at least 1"));
        }
        Ok(Self {
            limits,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The bounds.
    pub fn limits(&self) -> CacheLimits {
        self.limits
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            entries: inner.entries.len(),
            ..inner.stats
        }
    }

    /// Removes every entry, wiping its data key (once no open in flight still holds it).
    pub fn clear(&self) {
        let mut inner = self.lock();
        let removed = inner.entries.len() as u64;
        inner.entries.clear();
        inner.order.clear();
        inner.stats.evictions += removed;
    }

    /// The fingerprint of a wrapped key under its associated data.
    pub(crate) fn fingerprint(
        backend: &str,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Fingerprint {
        let mut digest = Context::new(&SHA256);
        // Every variable-length field is length-prefixed, so no two inputs share an
        // encoding.
        for part in [backend.as_bytes(), key.id.as_bytes(), wrapped, aad] {
            digest.update(&(part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update(&key.version.to_be_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.finish().as_ref());
        Fingerprint(out)
    }

    /// The cached data key for `fingerprint`, counting this use of `bytes` ciphertext
    /// bytes; `None` (a miss) when absent or when this use would pass a bound.
    pub(crate) fn get(&self, fingerprint: &Fingerprint, bytes: usize) -> Option<Arc<DataKey>> {
        let now = Instant::now();
        let mut inner = self.lock();
        let limits = self.limits;
        let outcome = match inner.entries.get_mut(&fingerprint.0) {
            None => None,
            Some(entry) => {
                let bytes = entry.bytes.saturating_add(bytes as u64);
                if now.duration_since(entry.inserted) >= limits.max_age
                    || entry.uses >= limits.max_uses
                    || bytes > limits.max_bytes
                {
                    Some(None)
                } else {
                    entry.uses += 1;
                    entry.bytes = bytes;
                    let key = Arc::clone(&entry.key);
                    let spent = entry.uses >= limits.max_uses || bytes >= limits.max_bytes;
                    Some(Some((key, spent)))
                }
            }
        };
        match outcome {
            None => {
                inner.stats.misses += 1;
                None
            }
            Some(None) => {
                inner.entries.remove(&fingerprint.0);
                inner.stats.evictions += 1;
                inner.stats.misses += 1;
                None
            }
            Some(Some((key, spent))) => {
                if spent {
                    inner.entries.remove(&fingerprint.0);
                    inner.stats.evictions += 1;
                }
                inner.stats.hits += 1;
                Some(key)
            }
        }
    }

    /// Caches `key` after an open of `bytes` ciphertext bytes under it succeeded in full.
    pub(crate) fn insert(&self, fingerprint: Fingerprint, key: Arc<DataKey>, bytes: usize) {
        let limits = self.limits;
        let bytes = bytes as u64;
        if limits.max_uses <= 1 || bytes >= limits.max_bytes {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.evict_expired(now, limits.max_age);
        while inner.entries.len() >= limits.max_entries {
            if !inner.evict_oldest() {
                break;
            }
        }
        let entry = Entry {
            key,
            inserted: now,
            uses: 1,
            bytes,
        };
        if inner.entries.insert(fingerprint.0, entry).is_some() {
            // Two concurrent misses of one value: the second replaces the first.
            inner.stats.evictions += 1;
        }
        inner.order.push_back((fingerprint.0, now));
        if inner.order.len() > limits.max_entries.saturating_mul(2) {
            inner.compact_order();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections hold no invariant a panic could break half-way (each
        // counter and map update is one step), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Evicts entries at the front of the insertion order whose age has run out.
    fn evict_expired(&mut self, now: Instant, max_age: Duration) {
        while let Some((fingerprint, inserted)) = self.order.front().copied() {
            if now.duration_since(inserted) < max_age {
                break;
            }
            self.order.pop_front();
            self.remove_if_inserted_at(&fingerprint, inserted);
        }
    }

    /// Drops the fingerprints of entries already removed from the insertion order, so
    /// that it stays within twice the entry bound.
    fn compact_order(&mut self) {
        let entries = &self.entries;
        self.order.retain(|(fingerprint, inserted)| {
            entries
                .get(fingerprint)
                .is_some_and(|entry| entry.inserted == *inserted)
        });
    }

    /// Evicts the oldest live entry; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some((fingerprint, inserted)) = self.order.pop_front() {
            if self.remove_if_inserted_at(&fingerprint, inserted) {
                return true;
            }
        }
        false
    }

    /// Removes the entry for `fingerprint` if it is the one inserted at `inserted` (and
    /// not a later re-insertion of the same value).
    fn remove_if_inserted_at(&mut self, fingerprint: &[u8; 32], inserted: Instant) -> bool {
        if self
            .entries
            .get(fingerprint)
            .is_some_and(|entry| entry.inserted == inserted)
        {
            self.entries.remove(fingerprint);
            self.stats.evictions += 1;
            true
        } else {
            false
        }
    }
}

impl fmt::Debug for DataKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyCache")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}
