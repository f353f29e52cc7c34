//! audit-trail: the cost of auditing an authenticated request, beside the request's
//! own core.
//!
//! Goal (issue 12): the audit append costs under 10% of an authenticated request. The
//! request's core here is auth-core's session resolution on SQLite (a file database, as
//! deployed: token digest, one indexed read of the session and its user). Beside it:
//!
//! - `record_enqueue`: `AuditLog::record` as a handler calls it (stamp the time, send
//!   on the bounded queue); the queue is flushed outside the timed part, so this is the
//!   request path's cost while the writer keeps up.
//! - `record_amortised`: `record` with the flush inside the timed part: the enqueue
//!   plus the writer's batched, durable SQLite appends (`synchronous = FULL`), per
//!   event. This is the whole cost of auditing when events arrive faster than the
//!   writer can write one by one.
//! - `append_1`: `AuditLog::append`, one durable transaction per event (the CLI path).
//! - `append_batch_64`: one transaction of 64 events (throughput: elements).
//!
//! The ratios record/request and append/request are read off one run (README of
//! audit-trail and CHANGELOG carry the figures).
// Benchmark set-up: a failure must abort the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_trail::{Actor, AuditLog, Event, MacKey, Outcome, SqliteStore};
use auth_core::{
    Credential, CredentialKind, Resolution, Resolver, SessionConfig, Sessions, User, UserStore,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn event(i: u64) -> Event {
    Event::new(
        Actor::new("user-0001", "session"),
        "order.create",
        Outcome::Success,
    )
    .with_subject("user-0001")
    .with_target("account-7f3a9c")
    .with_request_id(format!("req-{i:016x}"))
}

fn audit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The authenticated request's core: a session resolved on SQLite.
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let auth = Arc::new(rt.block_on(auth_core::SqliteStore::connect(&url)).unwrap());
    let user = User::new("user-0001", "user-0001@bench.example", None, 1);
    rt.block_on(auth.create_user(&user)).unwrap();
    let sessions = Sessions::new(auth, SessionConfig::default());
    let token = rt.block_on(sessions.issue(&user)).unwrap();
    let cred = Credential::new(CredentialKind::Bearer, token.expose_secret()).unwrap();
    assert!(matches!(
        rt.block_on(sessions.resolve(&cred)),
        Resolution::Authenticated(_)
    ));

    // The audit log on its own SQLite file.
    let store = rt
        .block_on(SqliteStore::open(dir.path().join("audit.db")))
        .unwrap();
    let log = rt
        .block_on(AuditLog::new(store, MacKey::from_bytes([7; 32])))
        .unwrap();
    let mut n = 0u64;

    let mut g = c.benchmark_group("audit");
    g.bench_function("request_session_resolve_sqlite", |b| {
        b.iter(|| {
            matches!(
                rt.block_on(sessions.resolve(black_box(&cred))),
                Resolution::Authenticated(_)
            )
        })
    });
    g.bench_function("record_enqueue", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // Stay below the queue's capacity, so no call waits for the writer.
                let chunk = left.min(1024);
                let start = Instant::now();
                rt.block_on(async {
                    for _ in 0..chunk {
                        n += 1;
                        log.record(event(n)).await;
                    }
                });
                timed += start.elapsed();
                rt.block_on(log.flush()).unwrap();
                left -= chunk;
            }
            timed
        })
    });
    g.bench_function("record_amortised", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..iters {
                    n += 1;
                    log.record(event(n)).await;
                }
                log.flush().await.unwrap();
            });
            start.elapsed()
        })
    });
    g.bench_function("append_1", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(log.append(event(n))).unwrap().seq
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("append_batch_64", |b| {
        b.iter(|| {
            let events: Vec<Event> = (0..64)
                .map(|_| {
                    n += 1;
                    event(n)
                })
                .collect();
            rt.block_on(log.append_batch(events)).unwrap().len()
        })
    });
    g.finish();
    // The chain the benchmark wrote still verifies.
    let report = rt.block_on(log.verify()).unwrap();
    assert!(report.is_intact(), "{report}");
}

criterion_group!(benches, audit);
criterion_main!(benches);
