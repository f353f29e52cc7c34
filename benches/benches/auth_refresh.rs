//! auth-core refresh tokens: one rotation (`RefreshTokens::rotate`: new random token,
//! SHA-256, the store's atomic compare-and-set with the user's epoch check, the spent
//! digest recorded) beside one session issue (`Sessions::issue`: new random token,
//! SHA-256, one insert with the user's epoch check) on the same store, in memory and on
//! SQLite (a file database, as deployed). Goal (issue 10): rotate within 3x of a session
//! issue on the same store.
//!
//! The rotation benchmark rotates one chain: each iteration presents the token the
//! previous one returned, so every iteration is a successful rotation.
// Benchmark set-up: a failure must abort the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use auth_core::{
    MemoryStore, RefreshConfig, RefreshToken, RefreshTokens, SessionConfig, Sessions, User,
    UserStore,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// Polls a future that completes without waiting (the memory store never waits) once.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory store unexpectedly waited"),
    }
}

fn bench_user(id: &str) -> User {
    User::new(id, format!("{id}@bench.example"), None, 1)
}

fn pwd() -> Vec<String> {
    vec!["pwd".to_owned()]
}

fn memory(c: &mut Criterion) {
    let store = Arc::new(MemoryStore::new());
    let user = bench_user("bench-refresh");
    block_on(store.create_user(&user)).unwrap();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let refresh = RefreshTokens::new(store, RefreshConfig::default());
    let (first, _) = block_on(refresh.issue(&user, pwd(), 1)).unwrap();
    let current: RefCell<RefreshToken> = RefCell::new(first);

    let mut g = c.benchmark_group("auth_refresh");
    g.bench_function("memory/session_issue", |b| {
        b.iter(|| block_on(sessions.issue(&user)).unwrap())
    });
    g.bench_function("memory/refresh_rotate", |b| {
        b.iter(|| {
            let (next, family) = block_on(refresh.rotate(&current.borrow())).unwrap();
            *current.borrow_mut() = next;
            family.generation()
        })
    });
    g.bench_function("memory/refresh_issue", |b| {
        b.iter(|| block_on(refresh.issue(&user, pwd(), 1)).unwrap().1)
    });
    g.finish();
}

fn sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Arc::new(rt.block_on(auth_core::SqliteStore::connect(&url)).unwrap());
    let user = bench_user("bench-refresh-sqlite");
    rt.block_on(store.create_user(&user)).unwrap();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let refresh = RefreshTokens::new(store, RefreshConfig::default());
    let (first, _) = rt.block_on(refresh.issue(&user, pwd(), 1)).unwrap();
    let current: RefCell<RefreshToken> = RefCell::new(first);

    let mut g = c.benchmark_group("auth_refresh");
    g.bench_function("sqlite/session_issue", |b| {
        b.iter(|| rt.block_on(sessions.issue(&user)).unwrap())
    });
    g.bench_function("sqlite/refresh_rotate", |b| {
        b.iter(|| {
            let (next, family) = rt.block_on(refresh.rotate(&current.borrow())).unwrap();
            *current.borrow_mut() = next;
            family.generation()
        })
    });
    g.finish();
}

criterion_group!(benches, memory, sqlite);
criterion_main!(benches);
