//! Shared suites: every store must give the same answers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use throttle::{Backoff, BackoffPolicy, Decision, ManualClock, Quota, RateLimiter, Store};

pub(crate) const T0: Duration = Duration::from_secs(1_800_000_000);

pub(crate) fn clock() -> ManualClock {
    ManualClock::new(T0)
}

/// A burst of 3 per 3 s (one every second): three allowed, then refused with the
/// exact wait, then one more after that wait.
pub(crate) async fn gcra_suite(store: &Store, name: &str) {
    let clock = clock();
    let limiter = RateLimiter::new(store, name, Quota::new(3, Duration::from_secs(3)).unwrap())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    for left in [2, 1, 0] {
        match limiter.check("k").await.unwrap() {
            Decision::Allow { remaining, reset } => {
                assert_eq!(remaining, left);
                assert_eq!(reset, Duration::from_secs(u64::from(3 - left)));
            }
            d => panic!("burst refused: {d:?}"),
        }
    }
    assert_eq!(
        limiter.check("k").await.unwrap(),
        Decision::Deny {
            retry_after: Duration::from_secs(1)
        }
    );
    // Another key is independent.
    assert!(limiter.check("other").await.unwrap().is_allowed());
    clock.advance(Duration::from_millis(400));
    assert_eq!(
        limiter.check("k").await.unwrap().retry_after(),
        Some(Duration::from_millis(600))
    );
    clock.advance(Duration::from_millis(600));
    assert!(limiter.check("k").await.unwrap().is_allowed());
    assert!(!limiter.check("k").await.unwrap().is_allowed());
    // A long pause refills the whole burst, never more.
    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        assert!(limiter.check("k").await.unwrap().is_allowed());
    }
    assert!(!limiter.check("k").await.unwrap().is_allowed());
}

pub(crate) fn policy() -> BackoffPolicy {
    BackoffPolicy::new(
        2,
        Duration::from_secs(1),
        Duration::from_secs(8),
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Two free failures, then 1, 2, 4, 8, 8 s; success resets; expiry forgets.
pub(crate) async fn backoff_suite(store: &Store, name: &str) {
    let clock = clock();
    let b = Backoff::new(store, name, policy())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    assert_eq!(
        b.check("k").await.unwrap(),
        Decision::Allow {
            remaining: 2,
            reset: Duration::ZERO
        }
    );
    assert!(b.record_failure("k").await.unwrap().is_allowed());
    assert!(b.check("k").await.unwrap().is_allowed());
    // Second failure: the free ones are used up, the next attempt waits 1 s.
    assert_eq!(
        b.record_failure("k").await.unwrap().retry_after(),
        Some(Duration::from_secs(1))
    );
    let mut waited = Vec::new();
    for _ in 0..5 {
        let Some(wait) = b.check("k").await.unwrap().retry_after() else {
            panic!("attempt inside the delay allowed")
        };
        waited.push(wait.as_secs());
        clock.advance(wait);
        assert!(b.check("k").await.unwrap().is_allowed());
        // The slot is taken: a parallel attempt waits.
        assert!(!b.check("k").await.unwrap().is_allowed());
        let _ = b.record_failure("k").await.unwrap();
    }
    assert_eq!(waited, [1, 2, 4, 8, 8]);
    // Other keys are untouched.
    assert!(b.check("other").await.unwrap().is_allowed());
    // A success resets.
    clock.advance(Duration::from_secs(8));
    assert!(b.check("k").await.unwrap().is_allowed());
    b.reset("k").await.unwrap();
    assert_eq!(
        b.check("k").await.unwrap(),
        Decision::Allow {
            remaining: 2,
            reset: Duration::ZERO
        }
    );
    // Expiry: failures older than forget_after are forgotten.
    for _ in 0..4 {
        let _ = b.record_failure("e").await.unwrap();
    }
    assert!(!b.check("e").await.unwrap().is_allowed());
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        b.check("e").await.unwrap(),
        Decision::Allow {
            remaining: 2,
            reset: Duration::ZERO
        }
    );
    assert!(b.record_failure("e").await.unwrap().is_allowed());
}

/// Two limiters (two "instances") on one shared store spend one quota and one backoff.
pub(crate) async fn shared_suite(a: &Store, b: &Store, name: &str) {
    let clock = clock();
    let quota = Quota::new(4, Duration::from_secs(60)).unwrap();
    let la = RateLimiter::new(a, name, quota)
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let lb = RateLimiter::new(b, name, quota)
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    for _ in 0..2 {
        assert!(la.check("x").await.unwrap().is_allowed());
        assert!(lb.check("x").await.unwrap().is_allowed());
    }
    assert!(!la.check("x").await.unwrap().is_allowed());
    assert!(!lb.check("x").await.unwrap().is_allowed());

    let ba = Backoff::new(a, name, policy())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let bb = Backoff::new(b, name, policy())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let _ = ba.record_failure("y").await.unwrap();
    let _ = bb.record_failure("y").await.unwrap();
    assert!(!ba.check("y").await.unwrap().is_allowed());
    assert!(!bb.check("y").await.unwrap().is_allowed());
    bb.reset("y").await.unwrap();
    assert!(ba.check("y").await.unwrap().is_allowed());
}

/// Many concurrent checks of one key through two limiters: exactly the burst passes.
pub(crate) async fn concurrent_suite(a: &Store, b: &Store, name: &str) {
    let clock = clock();
    let quota = Quota::new(10, Duration::from_secs(3600)).unwrap();
    let la = Arc::new(
        RateLimiter::new(a, name, quota)
            .unwrap()
            .with_clock(Arc::new(clock.clone())),
    );
    let lb = Arc::new(
        RateLimiter::new(b, name, quota)
            .unwrap()
            .with_clock(Arc::new(clock.clone())),
    );
    let mut tasks = Vec::new();
    for i in 0..100 {
        let l = if i % 2 == 0 { la.clone() } else { lb.clone() };
        tasks.push(tokio::spawn(async move {
            l.check("race").await.unwrap().is_allowed()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 10);
}
