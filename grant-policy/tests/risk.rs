//! Risk limits: live-trading switch, order maximum, the daily cap under concurrency,
//! the UTC-midnight reset; on every store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod common;

use std::sync::Arc;

use common::{RecordingSink, acct, user};
use grant_policy::store::{MemoryStore, RiskStore};
use grant_policy::{
    Admission, CredentialsOnFile, ManualClock, Notional, RiskError, RiskGuard, RiskLimits,
    RiskRefusal, Usage,
};

const T0: i64 = 1_795_305_600; // 2026-11-22T00:00:00Z

fn n(v: u64) -> Notional {
    Notional::from_minor_units(v).unwrap()
}

fn live(a: Admission) -> grant_policy::Reservation {
    match a {
        Admission::Live(r) => r,
        other => panic!("expected a live admission, got {other:?}"),
    }
}

async fn life_cycle(store: Arc<dyn RiskStore>) {
    let clock = Arc::new(ManualClock::new(T0 + 12 * 3600));
    let sink = Arc::new(RecordingSink::default());
    let guard = RiskGuard::builder(store)
        .clock(clock.clone())
        .audit(sink.clone())
        .build();
    let alice = user("alice");
    let bob = user("bob");
    let account = acct("acct-1");

    // No profile: dry run; enabling needs a profile and credentials on file.
    assert_eq!(guard.admit(&alice, n(100)).await, Admission::DryRun);
    assert!(matches!(
        guard
            .enable_live_trading(&alice, &account, CredentialsOnFile::Present)
            .await,
        Err(RiskError::NoProfile)
    ));
    let limits = RiskLimits {
        max_order_notional: n(1_000),
        daily_cap: n(2_500),
    };
    guard.set_limits(&alice, limits).await.unwrap();
    let p = guard.profile(&alice).await.unwrap().unwrap();
    assert!(!p.allow_live_trading, "a new profile starts in dry-run");
    assert_eq!(p.limits, limits);
    assert_eq!(guard.admit(&alice, n(100)).await, Admission::DryRun);
    // The order maximum applies to dry runs too.
    assert_eq!(
        guard.admit(&alice, n(1_001)).await,
        Admission::Refused(RiskRefusal::OrderTooLarge)
    );
    assert!(matches!(
        guard
            .enable_live_trading(&alice, &account, CredentialsOnFile::Absent)
            .await,
        Err(RiskError::NoCredentials)
    ));
    assert!(
        !guard
            .profile(&alice)
            .await
            .unwrap()
            .unwrap()
            .allow_live_trading
    );
    guard
        .enable_live_trading(&alice, &account, CredentialsOnFile::Present)
        .await
        .unwrap();

    // Changing limits keeps the switch.
    guard.set_limits(&alice, limits).await.unwrap();
    assert!(
        guard
            .profile(&alice)
            .await
            .unwrap()
            .unwrap()
            .allow_live_trading
    );

    assert_eq!(
        guard.admit(&alice, Notional::ZERO).await,
        Admission::Refused(RiskRefusal::ZeroNotional)
    );
    assert_eq!(
        guard.admit(&alice, n(1_001)).await,
        Admission::Refused(RiskRefusal::OrderTooLarge)
    );

    let r1 = live(guard.admit(&alice, n(1_000)).await);
    let r2 = live(guard.admit(&alice, n(1_000)).await);
    assert_eq!(
        guard.admit(&alice, n(501)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded)
    );
    assert_eq!(
        guard.usage_today(&alice).await.unwrap(),
        Usage {
            used: Notional::ZERO,
            reserved: n(2_000)
        }
    );
    // Other users are untouched.
    assert_eq!(guard.usage_today(&bob).await.unwrap(), Usage::default());

    // Commit a partial fill, release the other: room comes back.
    guard.commit(r1, n(400)).await.unwrap();
    guard.release(r2).await.unwrap();
    assert_eq!(
        guard.usage_today(&alice).await.unwrap(),
        Usage {
            used: n(400),
            reserved: Notional::ZERO
        }
    );
    let r3 = live(guard.admit(&alice, n(1_000)).await);
    let r4 = live(guard.admit(&alice, n(1_000)).await);
    assert_eq!(
        guard.admit(&alice, n(101)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded)
    );
    let r5 = live(guard.admit(&alice, n(100)).await);
    assert_eq!(
        guard.usage_today(&alice).await.unwrap(),
        Usage {
            used: n(400),
            reserved: n(2_100)
        }
    );

    // Midnight UTC: a new day, a fresh cap. The old reservations settle on their own day.
    clock.set(T0 + 86_399);
    assert_eq!(
        guard.admit(&alice, n(1)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded)
    );
    clock.set(T0 + 86_400);
    assert_eq!(guard.usage_today(&alice).await.unwrap(), Usage::default());
    let r6 = live(guard.admit(&alice, n(1_000)).await);
    assert_eq!(r6.day(), r5.day() + 1);
    guard.commit(r3, n(1_000)).await.unwrap();
    guard.release(r4).await.unwrap();
    guard.commit(r5, n(150)).await.unwrap(); // slippage: recorded as spent
    assert_eq!(
        guard.usage_today(&alice).await.unwrap(),
        Usage {
            used: Notional::ZERO,
            reserved: n(1_000)
        }
    );
    guard.release(r6).await.unwrap();

    // Switching off goes back to dry run.
    guard.disable_live_trading(&alice).await.unwrap();
    assert_eq!(guard.admit(&alice, n(10)).await, Admission::DryRun);

    let risk = sink.risk.lock().unwrap();
    assert!(risk.contains(&("alice".into(), "risk.refuse.daily_cap_exceeded")));
    assert!(risk.contains(&("alice".into(), "risk.refuse.no_credentials")));
    assert!(risk.contains(&("alice".into(), "risk.commit.overspent")));
    assert!(risk.contains(&("alice".into(), "risk.live_trading.enabled")));
}

/// Starts 200 orders of 7 919 at once; returns the admitted ones and the refusal count.
async fn admit_200(
    guard: &RiskGuard,
    trader: &grant_policy::UserId,
) -> (Vec<grant_policy::Reservation>, usize) {
    let start = Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (guard, trader, start) = (guard.clone(), trader.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            guard.admit(&trader, n(7_919)).await
        }));
    }
    let mut admitted = Vec::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Admission::Live(r) => admitted.push(r),
            Admission::Refused(RiskRefusal::DailyCapExceeded) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    (admitted, refused)
}

/// 200 concurrent orders against a cap that fits exactly 50: exactly 50 go live.
async fn concurrent_cap(store: Arc<dyn RiskStore>) {
    let guard = RiskGuard::builder(store)
        .clock(Arc::new(ManualClock::new(T0 + 60)))
        .build();
    let trader = user("trader");
    let other = user("other");
    let limits = RiskLimits {
        max_order_notional: n(10_000),
        daily_cap: n(50 * 7_919),
    };
    for u in [&trader, &other] {
        guard.set_limits(u, limits).await.unwrap();
        guard
            .enable_live_trading(u, &acct("acct"), CredentialsOnFile::Present)
            .await
            .unwrap();
    }
    // Another user's usage on the same day must not count against this one.
    let theirs = live(guard.admit(&other, n(7_919)).await);

    let (admitted, refused) = admit_200(&guard, &trader).await;
    assert_eq!(admitted.len(), 50, "exactly 50 orders fit the cap");
    assert_eq!(refused, 150);
    assert_eq!(
        guard.usage_today(&trader).await.unwrap(),
        Usage {
            used: Notional::ZERO,
            reserved: n(50 * 7_919)
        }
    );

    // Release them all concurrently: the cap is whole again.
    let mut tasks = Vec::new();
    for r in admitted {
        let guard = guard.clone();
        tasks.push(tokio::spawn(async move { guard.release(r).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(guard.usage_today(&trader).await.unwrap(), Usage::default());
    guard.release(theirs).await.unwrap();
}

#[tokio::test]
async fn memory_life_cycle() {
    life_cycle(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_200_concurrent_orders_admit_exactly_50() {
    concurrent_cap(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_life_cycle() {
    let (store, _dir) = common::sqlite_store().await;
    life_cycle(Arc::new(store)).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_200_concurrent_orders_admit_exactly_50() {
    let (store, _dir) = common::sqlite_store().await;
    concurrent_cap(Arc::new(store)).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_cap_holds_across_two_pools_on_one_file() {
    // Two independent pools on one file: as two service instances sharing a database.
    let (a, dir) = common::sqlite_store().await;
    let b = grant_policy::store::SqliteStore::builder(dir.path().join("grants.db"))
        .max_connections(4)
        .open()
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let ga = RiskGuard::builder(Arc::new(a)).clock(clock.clone()).build();
    let gb = RiskGuard::builder(Arc::new(b)).clock(clock).build();
    let u = user("u");
    ga.set_limits(
        &u,
        RiskLimits {
            max_order_notional: n(10),
            daily_cap: n(100),
        },
    )
    .await
    .unwrap();
    gb.enable_live_trading(&u, &acct("x"), CredentialsOnFile::Present)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let g = if i % 2 == 0 { ga.clone() } else { gb.clone() };
        let u = u.clone();
        tasks.push(tokio::spawn(async move { g.admit(&u, n(10)).await }));
    }
    let mut live_count = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Admission::Live(_)) {
            live_count += 1;
        }
    }
    assert_eq!(live_count, 10);
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
async fn postgres_life_cycle() {
    common::with_pg_store(|store| life_cycle(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
async fn postgres_200_concurrent_orders_admit_exactly_50() {
    common::with_pg_store(|store| concurrent_cap(store)).await;
}

/// A deliberately broken store that checks, waits for every other order to check too,
/// then writes (a lost-update race, made deterministic by the barrier). Shows the
/// concurrency test can fail: such a store admits more than the cap allows.
#[derive(Debug)]
struct Racy(MemoryStore, tokio::sync::Barrier);

#[async_trait::async_trait]
impl RiskStore for Racy {
    async fn profile(
        &self,
        u: &grant_policy::UserId,
    ) -> Result<Option<grant_policy::RiskProfile>, grant_policy::StoreError> {
        self.0.profile(u).await
    }
    async fn set_limits(
        &self,
        u: &grant_policy::UserId,
        l: RiskLimits,
        now: i64,
    ) -> Result<(), grant_policy::StoreError> {
        self.0.set_limits(u, l, now).await
    }
    async fn set_live_trading(
        &self,
        u: &grant_policy::UserId,
        on: bool,
        now: i64,
    ) -> Result<bool, grant_policy::StoreError> {
        self.0.set_live_trading(u, on, now).await
    }
    async fn reserve(
        &self,
        u: &grant_policy::UserId,
        day: i64,
        amount: Notional,
        cap: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        let seen = self.0.usage(u, day).await?;
        self.1.wait().await;
        let fits = seen
            .used
            .checked_add(seen.reserved)
            .and_then(|h| h.checked_add(amount))
            .is_some_and(|t| t <= cap);
        if fits {
            self.0.reserve(u, day, amount, Notional::MAX).await?;
        }
        Ok(fits)
    }
    async fn settle(
        &self,
        u: &grant_policy::UserId,
        day: i64,
        r: Notional,
        s: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        self.0.settle(u, day, r, s).await
    }
    async fn usage(
        &self,
        u: &grant_policy::UserId,
        day: i64,
    ) -> Result<Usage, grant_policy::StoreError> {
        self.0.usage(u, day).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racy_store_is_caught_by_the_concurrency_test() {
    let guard = RiskGuard::builder(Arc::new(Racy(
        MemoryStore::new(),
        tokio::sync::Barrier::new(200),
    )))
    .clock(Arc::new(ManualClock::new(T0)))
    .build();
    let trader = user("trader");
    guard
        .set_limits(
            &trader,
            RiskLimits {
                max_order_notional: n(10_000),
                daily_cap: n(50 * 7_919),
            },
        )
        .await
        .unwrap();
    guard
        .enable_live_trading(&trader, &acct("a"), CredentialsOnFile::Present)
        .await
        .unwrap();
    let (admitted, _) = admit_200(&guard, &trader).await;
    assert_eq!(admitted.len(), 200, "every racing order saw an empty day");
}

/// A risk store that always fails.
#[derive(Debug)]
struct Down;

#[async_trait::async_trait]
impl RiskStore for Down {
    async fn profile(
        &self,
        _: &grant_policy::UserId,
    ) -> Result<Option<grant_policy::RiskProfile>, grant_policy::StoreError> {
        Err(grant_policy::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
    async fn set_limits(
        &self,
        _: &grant_policy::UserId,
        _: RiskLimits,
        _: i64,
    ) -> Result<(), grant_policy::StoreError> {
        Err(grant_policy::StoreError::Poisoned)
    }
    async fn set_live_trading(
        &self,
        _: &grant_policy::UserId,
        _: bool,
        _: i64,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(grant_policy::StoreError::Poisoned)
    }
    async fn reserve(
        &self,
        _: &grant_policy::UserId,
        _: i64,
        _: Notional,
        _: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(grant_policy::StoreError::Poisoned)
    }
    async fn settle(
        &self,
        _: &grant_policy::UserId,
        _: i64,
        _: Notional,
        _: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(grant_policy::StoreError::Poisoned)
    }
    async fn usage(
        &self,
        _: &grant_policy::UserId,
        _: i64,
    ) -> Result<Usage, grant_policy::StoreError> {
        Err(grant_policy::StoreError::Poisoned)
    }
}

#[tokio::test]
async fn store_failure_refuses_with_503_never_admits() {
    let guard = RiskGuard::builder(Arc::new(Down)).build();
    let u = user("alice");
    let got = guard.admit(&u, n(1)).await;
    assert_eq!(got, Admission::Refused(RiskRefusal::StoreUnavailable));
    assert_eq!(RiskRefusal::StoreUnavailable.http_status(), 503);
    assert!(matches!(
        guard
            .enable_live_trading(&u, &acct("a"), CredentialsOnFile::Present)
            .await,
        Err(RiskError::Store(_))
    ));
    assert!(matches!(
        guard.usage_today(&u).await,
        Err(RiskError::Store(_))
    ));
}
