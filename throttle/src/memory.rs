//! In-process stores: governor's keyed GCRA, and a sharded map for the backoff.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;

use crate::{BackoffPolicy, BackoffState, Clock, Decision, Quota, Unavailable};

/// Shards of the backoff map (each behind its own lock).
const SHARDS: usize = 32;
/// Every this many checks, the memory rate limiter looks at its size.
const SIZE_CHECK_EVERY: u64 = 256;
/// Every this many checks, it drops keys that are back to a full bucket.
const SWEEP_EVERY: u64 = 1 << 16;

/// Bounds of the memory stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryOptions {
    max_keys: usize,
}

impl MemoryOptions {
    /// At most `max_keys` keys per limiter (at least 1024). When a limiter is full of keys
    /// that are all still limited, it answers [`Unavailable`] (fail closed) until some
    /// expire.
    #[must_use]
    pub fn new(max_keys: usize) -> Self {
        Self {
            max_keys: max_keys.max(1024),
        }
    }

    /// The key bound.
    #[must_use]
    pub fn max_keys(&self) -> usize {
        self.max_keys
    }
}

impl Default for MemoryOptions {
    /// One million keys per limiter (some 100 MB at worst).
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

/// governor's clock trait over ours.
#[derive(Clone, Debug)]
struct GovClock(Arc<dyn Clock>);

impl governor::clock::Clock for GovClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.now()
    }
}

type Gov =
    governor::RateLimiter<String, DashMapStateStore<String>, GovClock, StateInformationMiddleware>;

/// governor's keyed GCRA (DashMap), bounded in keys.
pub(crate) struct MemoryGcra {
    limiter: Gov,
    quota: Quota,
    max_keys: usize,
    calls: AtomicU64,
    full: AtomicBool,
    last_sweep_s: AtomicU64,
}

impl MemoryGcra {
    pub(crate) fn new(quota: Quota, clock: Arc<dyn Clock>, options: MemoryOptions) -> Self {
        let burst = std::num::NonZeroU32::MIN.saturating_add(quota.burst() - 1);
        // Quota::new checked period / burst >= 1 µs, so governor accepts it; the fallback
        // is never taken.
        let gov_quota = governor::Quota::with_period(quota.interval())
            .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
            .allow_burst(burst);
        let limiter = governor::RateLimiter::dashmap_with_clock(gov_quota, GovClock(clock))
            .with_middleware::<StateInformationMiddleware>();
        Self {
            limiter,
            quota,
            max_keys: options.max_keys,
            calls: AtomicU64::new(0),
            full: AtomicBool::new(false),
            last_sweep_s: AtomicU64::new(0),
        }
    }

    pub(crate) fn check(&self, key: &str) -> Result<Decision, Unavailable> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SIZE_CHECK_EVERY) || self.full.load(Ordering::Relaxed) {
            self.maintain(n.is_multiple_of(SWEEP_EVERY));
        }
        if self.full.load(Ordering::Relaxed) {
            return Err(Unavailable::new("memory", None));
        }
        match self.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = self.quota.burst().saturating_sub(remaining);
                Ok(Decision::Allow {
                    remaining,
                    reset: self.quota.interval() * used,
                })
            }
            Err(not_until) => Ok(Decision::Deny {
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            }),
        }
    }

    /// Drops keys back at a full bucket when asked or when over the bound (at most once
    /// a second), then marks the limiter full if it still is.
    fn maintain(&self, sweep: bool) {
        let over = self.limiter.len() >= self.max_keys;
        if sweep || over {
            let now_s = self.limiter.clock().now().as_secs();
            if self.last_sweep_s.swap(now_s, Ordering::Relaxed) != now_s || sweep {
                self.limiter.retain_recent();
                self.limiter.shrink_to_fit();
            }
        }
        self.full
            .store(self.limiter.len() >= self.max_keys, Ordering::Relaxed);
    }
}

type Shard = HashMap<Box<str>, Entry>;

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u64,
    next_at: u64,
    expires_at: u64,
}

/// The backoff in memory: a map in `SHARDS` shards, each behind a mutex, each holding at
/// most `max_keys / SHARDS` keys; expired keys are dropped when met and when a shard is
/// full.
pub(crate) struct MemoryBackoff {
    policy: BackoffPolicy,
    hasher: RandomState,
    per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl MemoryBackoff {
    pub(crate) fn new(policy: BackoffPolicy, options: MemoryOptions) -> Self {
        Self {
            policy,
            hasher: RandomState::new(),
            per_shard: options.max_keys.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        // The index is below SHARDS, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        // A panic never leaves an entry half-written (plain integer stores), so a
        // poisoned lock's map is still consistent.
        self.shards[i % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn check(&self, key: &str, now: u64) -> Result<BackoffState, Unavailable> {
        let mut shard = self.shard(key);
        let Some(e) = shard.get_mut(key) else {
            return Ok(clean(now));
        };
        if e.expires_at <= now {
            shard.remove(key);
            return Ok(clean(now));
        }
        if now < e.next_at {
            return Ok(BackoffState {
                allowed: false,
                failures: e.failures,
                next_at: e.next_at,
                expires_at: e.expires_at,
            });
        }
        if e.failures >= u64::from(self.policy.free_failures.max(1)) {
            e.next_at = now + self.policy.wait_us(e.failures + 1);
            e.expires_at = now + self.policy.forget_us;
        }
        Ok(BackoffState {
            allowed: true,
            failures: e.failures,
            next_at: e.next_at,
            expires_at: e.expires_at,
        })
    }

    pub(crate) fn failure(&self, key: &str, now: u64) -> Result<BackoffState, Unavailable> {
        let mut shard = self.shard(key);
        if !shard.contains_key(key) && shard.len() >= self.per_shard {
            shard.retain(|_, e| e.expires_at > now);
            if shard.len() >= self.per_shard {
                return Err(Unavailable::new("memory", None));
            }
        }
        let e = shard.entry(key.into()).or_insert(Entry {
            failures: 0,
            next_at: 0,
            expires_at: 0,
        });
        if e.expires_at <= now {
            *e = Entry {
                failures: 0,
                next_at: 0,
                expires_at: 0,
            };
        }
        e.failures += 1;
        e.next_at = e.next_at.max(now + self.policy.wait_us(e.failures));
        e.expires_at = now + self.policy.forget_us;
        Ok(BackoffState {
            allowed: false,
            failures: e.failures,
            next_at: e.next_at,
            expires_at: e.expires_at,
        })
    }

    pub(crate) fn reset(&self, key: &str) {
        self.shard(key).remove(key);
    }
}

fn clean(now: u64) -> BackoffState {
    BackoffState {
        allowed: true,
        failures: 0,
        next_at: 0,
        expires_at: now,
    }
}
