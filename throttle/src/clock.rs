//! Clocks: the system's real-time clock, and a manual one for tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time as a span since the Unix epoch. Shared stores compare
/// times taken by several instances, so instances must keep their clocks in step (NTP):
/// a clock ahead by `d` lets its instance spend up to `d / interval` extra requests of a
/// rate limit, and shortens backoff delays by `d`.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, since the Unix epoch.
    fn now(&self) -> Duration;
}

/// The system's real-time clock (a time before the epoch reads as the epoch).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that moves only when told (tests). Clones share one time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `at` since the epoch.
    #[must_use]
    pub fn new(at: Duration) -> Self {
        let clock = Self::default();
        clock.set(at);
        clock
    }

    /// Sets the time.
    pub fn set(&self, at: Duration) {
        let n = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.store(n, Ordering::SeqCst);
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: Duration) {
        let n = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(n, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}
