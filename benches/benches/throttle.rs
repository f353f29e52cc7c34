//! throttle: the memory GCRA check and the memory backoff check beside a raw governor
//! keyed check (the primitive) on the same key. Goal (issue 10): a throttle check in
//! memory under 300 ns. With `STRONGROOM_REDIS_URL` (or `REDIS_URL`) set, the same group
//! also has the Redis GCRA check (the backend's request limit across instances) beside a
//! raw `PING` on one connection (the primitive: one round trip); without it those two are skipped, with a
//! line on stderr saying so (CI without Redis still runs `cargo bench -- --test`).
// Benchmark set-up: a failure must abort the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use throttle::{Backoff, BackoffPolicy, Quota, RateLimiter, Store};

/// Polls a future that never waits (memory stores) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("throttle");
    // A quota that never refuses during the run: every check takes the allow path.
    let quota = Quota::new(u32::MAX, Duration::from_micros(u64::from(u32::MAX))).unwrap();
    let limiter = RateLimiter::new(&Store::memory(), "bench", quota).unwrap();
    group.bench_function("gcra_memory_check", |b| {
        b.iter(|| block_on(limiter.check(black_box("203.0.113.7"))).unwrap())
    });
    let policy = BackoffPolicy::new(
        5,
        Duration::from_secs(1),
        Duration::from_secs(30),
        Duration::from_secs(900),
    )
    .unwrap();
    let backoff = Backoff::new(&Store::memory(), "bench", policy).unwrap();
    // A key with failures on record (the map lookup path, not the empty shortcut).
    let _ = block_on(backoff.record_failure("e3b0c44298fc1c149afbf4c8996fb924")).unwrap();
    group.bench_function("backoff_memory_check", |b| {
        b.iter(|| block_on(backoff.check(black_box("e3b0c44298fc1c149afbf4c8996fb924"))).unwrap())
    });
    // The system monotonic clock (std Instant), as cheap as the limiter's real-time one.
    let raw = governor::RateLimiter::dashmap_with_clock(
        governor::Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap()),
        governor::clock::MonotonicClock,
    );
    group.bench_function("raw_governor_check_key", |b| {
        b.iter(|| raw.check_key(&black_box("203.0.113.7").to_owned()))
    });
    redis_checks(&mut group, quota);
    group.finish();
}

/// The Redis GCRA check (one `EVALSHA`) and a raw `PING` on one multiplexed connection.
fn redis_checks(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    quota: Quota,
) {
    let Ok(url) = std::env::var("STRONGROOM_REDIS_URL").or_else(|_| std::env::var("REDIS_URL"))
    else {
        eprintln!(
            "throttle: STRONGROOM_REDIS_URL is not set: gcra_redis_check and raw_redis_ping skipped"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = throttle::RedisStore::open(&url).expect("STRONGROOM_REDIS_URL: a redis:// URL");
    let limiter = RateLimiter::new(&Store::Redis(store), "bench", quota).unwrap();
    // Connects and loads the script once, outside the measurement.
    let first = rt.block_on(limiter.check("bench.user-7"));
    assert!(
        first
            .expect("STRONGROOM_REDIS_URL is set but Redis does not answer")
            .is_allowed()
    );
    group.bench_function("gcra_redis_check", |b| {
        b.iter(|| {
            rt.block_on(limiter.check(black_box("bench.user-7")))
                .unwrap()
        })
    });
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    group.bench_function("raw_redis_ping", |b| {
        b.iter(|| {
            rt.block_on(redis::cmd("PING").query_async::<String>(&mut conn))
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
