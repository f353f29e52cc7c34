#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod clock;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use clock::{Clock, ManualClock, SystemClock};
pub use memory::MemoryOptions;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;

/// Longest backoff delay, quota period and memory span accepted (one day for delays,
/// a year for periods): keeps every store's arithmetic far from overflow.
const MAX_DELAY: Duration = Duration::from_secs(86_400);
const MAX_FORGET: Duration = Duration::from_secs(30 * 86_400);
const MAX_PERIOD: Duration = Duration::from_secs(365 * 86_400);

/// A rate-limit quota: `burst` requests at once, refilled evenly over `period` (one
/// request every `period / burst`). This is the GCRA of ITU-T I.371 with an emission
/// interval of `period / burst` and room for `burst` cells; in the terms of the IETF
/// `RateLimit-Policy` field, `q = burst` and `w = period` (seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    burst: u32,
    period: Duration,
    interval_us: u64,
}

impl Quota {
    /// `burst` requests per `period`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `burst` is zero, `period` is over a year, or
    /// `period / burst` is under one microsecond.
    pub fn new(burst: u32, period: Duration) -> Result<Self, ConfigError> {
        if burst == 0 {
            return Err(ConfigError::new("burst", "must be at least 1"));
        }
        if period > MAX_PERIOD {
            return Err(ConfigError::new("period", "must be at most 365 days"));
        }
        let interval_us = micros(period) / u64::from(burst);
        if interval_us == 0 {
            return Err(ConfigError::new(
                "period",
                "period / burst must be at least one microsecond",
            ));
        }
        Ok(Self {
            burst,
            period,
            interval_us,
        })
    }

    /// The burst (requests accepted at once from a fresh state).
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The period over which `burst` requests are refilled.
    #[must_use]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The emission interval: one request is refilled every `interval`.
    #[must_use]
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    #[cfg(any(feature = "postgres", feature = "redis"))]
    fn span_us(&self) -> u64 {
        self.interval_us * u64::from(self.burst)
    }
}

/// A growing-delay failure backoff (OWASP Authentication Cheat Sheet, "Login
/// Throttling"): `free_failures` failures cost nothing, then each further attempt must
/// wait `base_delay`, doubling per failure up to `max_delay`, counted from the last
/// failure. A success ([`Backoff::reset`]) clears the count; a key whose last failure is
/// older than `forget_after` starts again from zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    free_failures: u32,
    base_us: u64,
    cap_us: u64,
    forget_us: u64,
}

impl BackoffPolicy {
    /// A policy.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] unless `1 µs <= base_delay <= max_delay <= 1 day` and
    /// `max_delay <= forget_after <= 30 days`.
    pub fn new(
        free_failures: u32,
        base_delay: Duration,
        max_delay: Duration,
        forget_after: Duration,
    ) -> Result<Self, ConfigError> {
        let (base_us, cap_us, forget_us) =
            (micros(base_delay), micros(max_delay), micros(forget_after));
        if base_us == 0 {
            return Err(ConfigError::new(
                "base_delay",
                "must be at least one microsecond",
            ));
        }
        if max_delay < base_delay || max_delay > MAX_DELAY {
            return Err(ConfigError::new(
                "max_delay",
                "must lie between base_delay and one day",
            ));
        }
        if forget_after < max_delay || forget_after > MAX_FORGET {
            return Err(ConfigError::new(
                "forget_after",
                "must lie between max_delay and 30 days",
            ));
        }
        Ok(Self {
            free_failures,
            base_us,
            cap_us,
            forget_us,
        })
    }

    /// Failures that cost no delay.
    #[must_use]
    pub fn free_failures(&self) -> u32 {
        self.free_failures
    }

    /// The first delay.
    #[must_use]
    pub fn base_delay(&self) -> Duration {
        Duration::from_micros(self.base_us)
    }

    /// The longest delay.
    #[must_use]
    pub fn max_delay(&self) -> Duration {
        Duration::from_micros(self.cap_us)
    }

    /// How long after its last failure a key is forgotten.
    #[must_use]
    pub fn forget_after(&self) -> Duration {
        Duration::from_micros(self.forget_us)
    }

    /// The wait imposed after `failures` consecutive failures: zero below
    /// `max(free_failures, 1)`, then `base_delay * 2^(failures - max(free_failures, 1))`,
    /// at most `max_delay`. The PostgreSQL function `throttle_backoff_wait` and the Redis
    /// scripts compute the same.
    #[must_use]
    pub fn delay_after(&self, failures: u64) -> Duration {
        Duration::from_micros(self.wait_us(failures))
    }

    fn wait_us(&self, failures: u64) -> u64 {
        let free = u64::from(self.free_failures.max(1));
        if failures < free {
            return 0;
        }
        let shift = (failures - free).min(32);
        self.base_us.saturating_mul(1 << shift).min(self.cap_us)
    }
}

/// A decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Go ahead.
    Allow {
        /// Rate limit: requests left in the burst after this one. Backoff: failures left
        /// before delays start.
        remaining: u32,
        /// Rate limit: time until the bucket is full again (an upper bound, at most one
        /// interval above the exact figure in memory). Backoff: time until the key's
        /// failures are forgotten (zero when it has none).
        reset: Duration,
    },
    /// Not now.
    Deny {
        /// The earliest time, from now, at which the same request can succeed (the
        /// `Retry-After` of RFC 9110 §10.2.3, rounded up to whole seconds by the caller).
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the decision is [`Decision::Allow`].
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The wait of a [`Decision::Deny`].
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Allow { .. } => None,
            Self::Deny { retry_after } => Some(*retry_after),
        }
    }
}

/// The limiter's store could not decide (connection, time-out, query, or the memory
/// store's key bound). The caller must fail closed: refuse the request (503), never let
/// it through unlimited.
#[derive(Debug, thiserror::Error)]
#[error("limiter store unavailable ({store})")]
pub struct Unavailable {
    store: &'static str,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Unavailable {
    pub(crate) fn new(
        store: &'static str,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { store, source }
    }

    /// Which store failed: `"memory"` (key bound reached), `"postgres"` or `"redis"`.
    #[must_use]
    pub fn store(&self) -> &'static str {
        self.store
    }

    /// The stable code for logs and audit: `throttle.unavailable`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        "throttle.unavailable"
    }

    /// The HTTP status to answer: 503 (fail closed; never let the request through
    /// unlimited).
    #[must_use]
    pub const fn status(&self) -> http::StatusCode {
        http::StatusCode::SERVICE_UNAVAILABLE
    }
}

/// A refused setting: names the field, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: &'static str,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }

    /// The refused field.
    #[must_use]
    pub fn field(&self) -> &'static str {
        self.field
    }
}

/// Where limiter state lives. Clone it to build several limiters on one store; give
/// each limiter its own name.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// This process only (each limiter keeps its own map).
    Memory(MemoryOptions),
    /// PostgreSQL, shared by every instance on the database.
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
    /// Redis, shared by every instance on the server.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl Store {
    /// In-process state with the default [`MemoryOptions`].
    #[must_use]
    pub fn memory() -> Self {
        Self::Memory(MemoryOptions::default())
    }

    /// Whether the store answers now, for a readiness probe: memory always does;
    /// PostgreSQL runs `SELECT 1`, Redis `PING`, each within the store's 2 s time-out.
    /// Decisions do not depend on it (each one fails closed on its own).
    ///
    /// # Errors
    ///
    /// [`Unavailable`] naming the store.
    pub async fn ping(&self) -> Result<(), Unavailable> {
        match self {
            Self::Memory(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.ping().await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.ping().await,
        }
    }
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, '.', '_', '-'",
        ))
    }
}

enum RateBackend {
    Memory(memory::MemoryGcra),
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

/// A keyed GCRA rate limit. Every [`RateLimiter::check`] that is allowed spends one
/// request of the key's quota.
pub struct RateLimiter {
    name: Arc<str>,
    quota: Quota,
    clock: Arc<dyn Clock>,
    options: MemoryOptions,
    backend: RateBackend,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter named `name` (its keys' namespace in a shared store) on `store`, on the
    /// system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a name outside `[a-z0-9._-]{1,64}`.
    pub fn new(store: &Store, name: &str, quota: Quota) -> Result<Self, ConfigError> {
        check_name(name)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (options, backend) = match store {
            Store::Memory(options) => (
                *options,
                RateBackend::Memory(memory::MemoryGcra::new(quota, clock.clone(), *options)),
            ),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => (MemoryOptions::default(), RateBackend::Postgres(pg.clone())),
            #[cfg(feature = "redis")]
            Store::Redis(r) => (MemoryOptions::default(), RateBackend::Redis(r.clone())),
        };
        Ok(Self {
            name: name.into(),
            quota,
            clock,
            options,
            backend,
        })
    }

    /// The same limiter on another clock (tests); a memory limiter starts empty.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        if matches!(self.backend, RateBackend::Memory(_)) {
            self.backend = RateBackend::Memory(memory::MemoryGcra::new(
                self.quota,
                clock.clone(),
                self.options,
            ));
        }
        self.clock = clock;
        self
    }

    /// The quota.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The limiter's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Spends one request of `key`'s quota if there is one left.
    ///
    /// # Errors
    ///
    /// [`Unavailable`]: the store did not answer; refuse the request.
    pub async fn check(&self, key: &str) -> Result<Decision, Unavailable> {
        match &self.backend {
            RateBackend::Memory(m) => m.check(key),
            #[cfg(feature = "postgres")]
            RateBackend::Postgres(pg) => {
                pg.gcra(&self.name, key, self.clock.now(), &self.quota)
                    .await
            }
            #[cfg(feature = "redis")]
            RateBackend::Redis(r) => r.gcra(&self.name, key, self.clock.now(), &self.quota).await,
        }
    }
}

enum BackoffBackend {
    Memory(memory::MemoryBackoff),
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

/// A keyed growing-delay failure backoff (see [`BackoffPolicy`]).
///
/// Use: [`Backoff::check`] before the attempt; on failure [`Backoff::record_failure`],
/// on success [`Backoff::reset`]; or, where attempts may run in parallel (logins),
/// [`Backoff::acquire`] before the attempt and [`Backoff::reset`] on success. Once a key is past its free failures, an allowed
/// `check` takes the slot (the next attempt waits as if this one had failed), so
/// parallel attempts cannot share one opening.
pub struct Backoff {
    name: Arc<str>,
    policy: BackoffPolicy,
    clock: Arc<dyn Clock>,
    backend: BackoffBackend,
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Backoff {
    /// A backoff named `name` (its keys' namespace in a shared store) on `store`, on the
    /// system clock.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a name outside `[a-z0-9._-]{1,64}`.
    pub fn new(store: &Store, name: &str, policy: BackoffPolicy) -> Result<Self, ConfigError> {
        check_name(name)?;
        let backend = match store {
            Store::Memory(options) => {
                BackoffBackend::Memory(memory::MemoryBackoff::new(policy, *options))
            }
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => BackoffBackend::Postgres(pg.clone()),
            #[cfg(feature = "redis")]
            Store::Redis(r) => BackoffBackend::Redis(r.clone()),
        };
        Ok(Self {
            name: name.into(),
            policy,
            clock: Arc::new(SystemClock),
            backend,
        })
    }

    /// The same backoff on another clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> BackoffPolicy {
        self.policy
    }

    /// May `key` try now? Past the free failures, an allowed check takes the slot.
    ///
    /// # Errors
    ///
    /// [`Unavailable`]: the store did not answer; refuse the attempt.
    pub async fn check(&self, key: &str) -> Result<Decision, Unavailable> {
        let now = micros(self.clock.now());
        let state = self.check_state(key, now).await?;
        Ok(state.decision(now, &self.policy))
    }

    /// [`check`](Self::check), and when it allows, counts this attempt as a failure at
    /// once (atomically in the store), before its outcome is known: of any number of
    /// attempts in flight at the same time, at most `max(free_failures, 1)` pass while
    /// the key is in its free failures (with `check` then `record_failure`, all of them
    /// would). On success call [`reset`](Self::reset); on failure do **not** call
    /// [`record_failure`](Self::record_failure) again (the attempt is already counted).
    /// A refused attempt may have been counted too (it raced others).
    ///
    /// # Errors
    ///
    /// [`Unavailable`]: the store did not answer; refuse the attempt.
    pub async fn acquire(&self, key: &str) -> Result<Decision, Unavailable> {
        let now = micros(self.clock.now());
        let checked = self.check_state(key, now).await?;
        if !checked.allowed {
            return Ok(checked.decision(now, &self.policy));
        }
        let counted = self.failure_state(key, now).await?;
        let first = u64::from(self.policy.free_failures.max(1));
        // In the free failures the check took nothing: the count just taken orders the
        // attempts in flight, and only the first `first` of them may go on. Past them,
        // the check itself took the only opening.
        if checked.failures < first && counted.failures > first {
            return Ok(Decision::Deny {
                retry_after: Duration::from_micros(counted.next_at.saturating_sub(now)),
            });
        }
        Ok(checked.decision(now, &self.policy))
    }

    async fn check_state(&self, key: &str, now: u64) -> Result<BackoffState, Unavailable> {
        Ok(match &self.backend {
            BackoffBackend::Memory(m) => m.check(key, now)?,
            #[cfg(feature = "postgres")]
            BackoffBackend::Postgres(pg) => {
                pg.backoff_check(&self.name, key, now, &self.policy).await?
            }
            #[cfg(feature = "redis")]
            BackoffBackend::Redis(r) => r.backoff_check(&self.name, key, now, &self.policy).await?,
        })
    }

    /// Counts a failure of `key`; returns what the next attempt would get now.
    ///
    /// # Errors
    ///
    /// [`Unavailable`]: the store did not answer (the failure may not be counted; the
    /// caller refuses the attempt anyway).
    pub async fn record_failure(&self, key: &str) -> Result<Decision, Unavailable> {
        let now = micros(self.clock.now());
        let state = self.failure_state(key, now).await?;
        Ok(state.next_decision(now, &self.policy))
    }

    async fn failure_state(&self, key: &str, now: u64) -> Result<BackoffState, Unavailable> {
        Ok(match &self.backend {
            BackoffBackend::Memory(m) => m.failure(key, now)?,
            #[cfg(feature = "postgres")]
            BackoffBackend::Postgres(pg) => {
                pg.backoff_failure(&self.name, key, now, &self.policy)
                    .await?
            }
            #[cfg(feature = "redis")]
            BackoffBackend::Redis(r) => {
                r.backoff_failure(&self.name, key, now, &self.policy)
                    .await?
            }
        })
    }

    /// Forgets `key`'s failures (after a success).
    ///
    /// # Errors
    ///
    /// [`Unavailable`]: the store did not answer.
    pub async fn reset(&self, key: &str) -> Result<(), Unavailable> {
        match &self.backend {
            BackoffBackend::Memory(m) => {
                m.reset(key);
                Ok(())
            }
            #[cfg(feature = "postgres")]
            BackoffBackend::Postgres(pg) => pg.backoff_reset(&self.name, key).await,
            #[cfg(feature = "redis")]
            BackoffBackend::Redis(r) => r.backoff_reset(&self.name, key).await,
        }
    }
}

/// A backoff key's state as a store reports it (times in µs since the epoch).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BackoffState {
    /// Whether the check allowed the attempt (unused after a failure).
    pub(crate) allowed: bool,
    pub(crate) failures: u64,
    pub(crate) next_at: u64,
    pub(crate) expires_at: u64,
}

impl BackoffState {
    fn decision(&self, now: u64, policy: &BackoffPolicy) -> Decision {
        if self.allowed {
            self.allow(now, policy)
        } else {
            Decision::Deny {
                retry_after: Duration::from_micros(self.next_at.saturating_sub(now)),
            }
        }
    }

    fn next_decision(&self, now: u64, policy: &BackoffPolicy) -> Decision {
        if self.next_at > now {
            Decision::Deny {
                retry_after: Duration::from_micros(self.next_at - now),
            }
        } else {
            self.allow(now, policy)
        }
    }

    fn allow(&self, now: u64, policy: &BackoffPolicy) -> Decision {
        let free = u64::from(policy.free_failures);
        Decision::Allow {
            remaining: u32::try_from(free.saturating_sub(self.failures)).unwrap_or(u32::MAX),
            reset: if self.failures == 0 {
                Duration::ZERO
            } else {
                Duration::from_micros(self.expires_at.saturating_sub(now))
            },
        }
    }
}

/// The GCRA answer from a shared store's new or current tat (µs since the epoch).
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) fn gcra_decision(allowed: bool, tat: u64, now: u64, quota: &Quota) -> Decision {
    let span = quota.span_us();
    if allowed {
        let left = (now + span).saturating_sub(tat) / quota.interval_us;
        Decision::Allow {
            remaining: u32::try_from(left).unwrap_or(u32::MAX),
            reset: Duration::from_micros(tat.saturating_sub(now)),
        }
    } else {
        Decision::Deny {
            retry_after: Duration::from_micros(
                (tat + quota.interval_us).saturating_sub(now + span),
            ),
        }
    }
}

/// The key of a client address for a per-address limit: `4:<dotted quad>` for an IPv4
/// address (an IPv4-mapped IPv6 address included), `6:<first four groups>::/64` for
/// any other IPv6 address. One subscriber usually holds a whole IPv6 /64 (RFC 6177), so
/// keying on the full address would give a single client 2^64 separate limits.
#[must_use]
pub fn address_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("4:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("4:{v4}"),
            None => {
                let s = v6.segments();
                format!("6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Microseconds of `d`, saturating.
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod status_tests {
    use super::Unavailable;

    #[test]
    fn a_store_failure_is_503_with_a_stable_code() {
        for store in ["memory", "postgres", "redis"] {
            let e = Unavailable::new(store, None);
            assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.code(), "throttle.unavailable");
        }
    }
}
