//! Memory store: the shared suites, the schedule property, the key bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use throttle::{Backoff, BackoffPolicy, MemoryOptions, Quota, RateLimiter, Store};

#[tokio::test]
async fn gcra_allows_the_burst_then_refuses_with_the_exact_wait() {
    common::gcra_suite(&Store::memory(), "t").await;
}

#[tokio::test]
async fn backoff_grows_caps_resets_and_expires() {
    common::backoff_suite(&Store::memory(), "t").await;
}

#[tokio::test]
async fn a_memory_store_is_always_ready() {
    Store::memory().ping().await.unwrap();
}

#[tokio::test]
async fn one_memory_limiter_is_shared_by_its_users() {
    // In memory, "instances" are clones of the handle: one limiter.
    let clock = common::clock();
    let l = Arc::new(
        RateLimiter::new(
            &Store::memory(),
            "t",
            Quota::new(10, Duration::from_secs(3600)).unwrap(),
        )
        .unwrap()
        .with_clock(Arc::new(clock)),
    );
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let l = l.clone();
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

#[tokio::test]
async fn backoff_memory_is_bounded_and_fails_closed_when_full() {
    let clock = common::clock();
    let store = Store::Memory(MemoryOptions::new(1024));
    let b = Backoff::new(&store, "t", common::policy())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let mut refused = 0;
    for i in 0..4096 {
        if b.record_failure(&format!("k{i}")).await.is_err() {
            refused += 1;
        }
    }
    assert!(refused >= 4096 - 1024 - 32, "bound not enforced: {refused}");
    // Once the entries expire, room comes back.
    clock.advance(Duration::from_secs(61));
    assert!(b.record_failure("fresh").await.is_ok());
}

#[test]
fn config_is_validated() {
    assert_eq!(
        Quota::new(0, Duration::from_secs(1)).unwrap_err().field(),
        "burst"
    );
    assert_eq!(
        Quota::new(10, Duration::from_nanos(5)).unwrap_err().field(),
        "period"
    );
    let s = Duration::from_secs(1);
    assert_eq!(
        BackoffPolicy::new(1, Duration::ZERO, s, s)
            .unwrap_err()
            .field(),
        "base_delay"
    );
    assert_eq!(
        BackoffPolicy::new(1, s * 2, s, s).unwrap_err().field(),
        "max_delay"
    );
    assert_eq!(
        BackoffPolicy::new(1, s, s * 2, s).unwrap_err().field(),
        "forget_after"
    );
    assert_eq!(
        RateLimiter::new(&Store::memory(), "Bad:Name", Quota::new(1, s).unwrap())
            .unwrap_err()
            .field(),
        "name"
    );
}

proptest! {
    /// The schedule: nothing below max(free, 1) failures, then base doubling, never
    /// above the cap, never decreasing.
    #[test]
    fn backoff_schedule(free in 0u32..10, base_ms in 1u64..5_000, cap_factor in 1u64..100, f in 0u64..200) {
        let base = Duration::from_millis(base_ms);
        let cap = (base * u32::try_from(cap_factor).unwrap()).min(Duration::from_secs(86_400));
        let p = BackoffPolicy::new(free, base, cap, cap).unwrap();
        let d = p.delay_after(f);
        let first = u64::from(free.max(1));
        if f < first {
            prop_assert_eq!(d, Duration::ZERO);
        } else {
            prop_assert!(d >= base.min(cap) && d <= cap);
            prop_assert!(p.delay_after(f + 1) >= d);
            let exact = base_ms.saturating_mul(1u64 << (f - first).min(32));
            prop_assert_eq!(d, Duration::from_millis(exact).min(cap));
        }
    }
}

#[test]
fn address_keys_group_an_ipv6_slash_64_and_unmap_ipv4() {
    use std::net::IpAddr;
    let key = |s: &str| throttle::address_key(s.parse::<IpAddr>().unwrap());
    assert_eq!(key("192.0.2.1"), "4:192.0.2.1");
    assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
    assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
    // One /64 is one client; the next /64 is another.
    assert_eq!(key("2001:db8:1:2::1"), "6:2001:db8:1:2::/64");
    assert_eq!(
        key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
        key("2001:db8:1:2::1")
    );
    assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
}
