//! Counters the embedding service can read (export them to its metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a cache's counters, from [`CredCache::stats`](crate::CredCache::stats).
/// Every counter only grows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found no usable entry (absent, expired, used up, or
    /// invalidated while being fetched).
    pub misses: u64,
    /// Calls made to the [`CredentialSource`](crate::CredentialSource): with
    /// single flight, many misses of one key cost one fetch.
    pub fetches: u64,
    /// Fetches that returned an error (not cached).
    pub fetch_errors: u64,
    /// Entries removed because their TTL passed or the cache was full.
    pub evictions: u64,
    /// Entries removed explicitly: invalidations (local or from other
    /// instances) and entries whose use count ran out.
    pub invalidations: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) invalidations: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            fetches: self.fetches.load(Ordering::Relaxed),
            fetch_errors: self.fetch_errors.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }
}
