//! Risk limits: live-trading switch, order maximum, the daily cap under concurrency,
//! the UTC-midnight reset, the owner's limits on shared accounts; on every store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::sync::Arc;

use common::{RecordingSink, acct, user};
use grant_policy::store::{GrantStore, MemoryStore, RiskStore};
use grant_policy::{
    AccountId, Admission, CredentialsOnFile, Level, ManualClock, Notional, RiskError, RiskGuard,
    RiskGuardBuilder, RiskLimits, RiskRefusal, Share, Usage, UserId,
};

const T0: i64 = 1_795_305_600; // 2026-11-22T00:00:00Z

fn n(v: u64) -> Notional {
    Notional::from_minor_units(v).unwrap()
}

/// A guard over one store holding both grants and risk state (as every bundled store).
fn guard_over<S: RiskStore + GrantStore + 'static>(store: &Arc<S>) -> RiskGuardBuilder {
    RiskGuard::builder(store.clone(), store.clone())
}

async fn register(store: &dyn GrantStore, owner: &UserId, account: &AccountId) {
    store
        .register(owner, account, Level::Trade, T0)
        .await
        .unwrap();
}

async fn share(
    store: &dyn GrantStore,
    owner: &UserId,
    account: &AccountId,
    grantee: &UserId,
    level: Level,
    expires_at: Option<i64>,
) {
    let share = Share {
        grantee: grantee.clone(),
        level,
        expires_at,
    };
    store.share(owner, account, &share, T0).await.unwrap();
}

fn live(a: Admission) -> grant_policy::Reservation {
    match a {
        Admission::Live(r) => r,
        other => panic!("expected a live admission, got {other:?}"),
    }
}

async fn life_cycle<S: RiskStore + GrantStore + 'static>(store: Arc<S>) {
    let clock = Arc::new(ManualClock::new(T0 + 12 * 3600));
    let sink = Arc::new(RecordingSink::default());
    let guard = guard_over(&store)
        .clock(clock.clone())
        .audit(sink.clone())
        .build();
    let alice = user("alice");
    let bob = user("bob");
    let account = acct("acct-1");
    register(&*store, &alice, &account).await;

    // No profile: dry run; enabling needs a profile and credentials on file.
    assert_eq!(
        guard.admit(&alice, &account, n(100)).await,
        Admission::DryRun
    );
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
    assert_eq!(guard.limits(&alice).await.unwrap(), Some(limits));
    assert!(
        !guard.live_trading(&account).await.unwrap(),
        "a new profile starts in dry-run"
    );
    assert_eq!(
        guard.admit(&alice, &account, n(100)).await,
        Admission::DryRun
    );
    // The order maximum applies to dry runs too.
    assert_eq!(
        guard.admit(&alice, &account, n(1_001)).await,
        Admission::Refused(RiskRefusal::OrderTooLarge)
    );
    assert!(matches!(
        guard
            .enable_live_trading(&alice, &account, CredentialsOnFile::Absent)
            .await,
        Err(RiskError::NoCredentials)
    ));
    assert!(!guard.live_trading(&account).await.unwrap());
    guard
        .enable_live_trading(&alice, &account, CredentialsOnFile::Present)
        .await
        .unwrap();

    // Changing limits keeps the switch.
    guard.set_limits(&alice, limits).await.unwrap();
    assert!(guard.live_trading(&account).await.unwrap());

    assert_eq!(
        guard.admit(&alice, &account, Notional::ZERO).await,
        Admission::Refused(RiskRefusal::ZeroNotional)
    );
    assert_eq!(
        guard.admit(&alice, &account, n(1_001)).await,
        Admission::Refused(RiskRefusal::OrderTooLarge)
    );

    let r1 = live(guard.admit(&alice, &account, n(1_000)).await);
    let r2 = live(guard.admit(&alice, &account, n(1_000)).await);
    assert_eq!(
        guard.admit(&alice, &account, n(501)).await,
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
    let r3 = live(guard.admit(&alice, &account, n(1_000)).await);
    let r4 = live(guard.admit(&alice, &account, n(1_000)).await);
    assert_eq!(
        guard.admit(&alice, &account, n(101)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded)
    );
    let r5 = live(guard.admit(&alice, &account, n(100)).await);
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
        guard.admit(&alice, &account, n(1)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded)
    );
    clock.set(T0 + 86_400);
    assert_eq!(guard.usage_today(&alice).await.unwrap(), Usage::default());
    let r6 = live(guard.admit(&alice, &account, n(1_000)).await);
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
    guard.disable_live_trading(&alice, &account).await.unwrap();
    assert_eq!(
        guard.admit(&alice, &account, n(10)).await,
        Admission::DryRun
    );

    let risk = sink.risk.lock().unwrap();
    assert!(risk.contains(&("alice".into(), "risk.refuse.daily_cap_exceeded")));
    assert!(risk.contains(&("alice".into(), "risk.refuse.no_credentials")));
    assert!(risk.contains(&("alice".into(), "risk.commit.overspent")));
    assert!(risk.contains(&("alice".into(), "risk.live_trading.enabled")));
}

/// Starts 200 orders of 7 919 at once; returns the admitted ones and the refusal count.
/// The orders alternate between the `traders`.
async fn admit_200(
    guard: &RiskGuard,
    traders: &[&UserId],
    account: &AccountId,
) -> (Vec<grant_policy::Reservation>, usize) {
    let start = Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let trader = traders[i % traders.len()].clone();
        let (guard, account, start) = (guard.clone(), account.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            guard.admit(&trader, &account, n(7_919)).await
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

/// 200 concurrent orders against a cap that fits exactly 50, half by the owner, half by
/// a grantee with a `Trade` share (whose own cap is far higher): exactly 50 go live.
async fn concurrent_cap<S: RiskStore + GrantStore + 'static>(store: Arc<S>) {
    let guard = guard_over(&store)
        .clock(Arc::new(ManualClock::new(T0 + 60)))
        .build();
    let trader = user("trader");
    let other = user("other");
    let account = acct("acct");
    let others = acct("other-acct");
    register(&*store, &trader, &account).await;
    register(&*store, &other, &others).await;
    share(&*store, &trader, &account, &other, Level::Trade, None).await;
    let limits = RiskLimits {
        max_order_notional: n(10_000),
        daily_cap: n(50 * 7_919),
    };
    for (u, a, cap) in [(&trader, &account, 50), (&other, &others, 1_000)] {
        let limits = RiskLimits {
            daily_cap: n(cap * 7_919),
            ..limits
        };
        guard.set_limits(u, limits).await.unwrap();
        guard
            .enable_live_trading(u, a, CredentialsOnFile::Present)
            .await
            .unwrap();
    }
    // Another owner's usage on the same day must not count against this one.
    let theirs = live(guard.admit(&other, &others, n(7_919)).await);

    let (admitted, refused) = admit_200(&guard, &[&trader, &other], &account).await;
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
    let (a, b) = (Arc::new(a), Arc::new(b));
    let ga = guard_over(&a).clock(clock.clone()).build();
    let gb = guard_over(&b).clock(clock).build();
    let u = user("u");
    register(&*a, &u, &acct("x")).await;
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
        tasks.push(tokio::spawn(
            async move { g.admit(&u, &acct("x"), n(10)).await },
        ));
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
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_life_cycle() {
    common::with_pg_store(life_cycle::<grant_policy::store::PgStore>).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_200_concurrent_orders_admit_exactly_50() {
    common::with_pg_store(concurrent_cap::<grant_policy::store::PgStore>).await;
}

/// A deliberately broken store that checks, waits for every other order to check too,
/// then writes (a lost-update race, made deterministic by the barrier). Shows the
/// concurrency test can fail: such a store admits more than the cap allows.
#[derive(Debug)]
struct Racy(MemoryStore, tokio::sync::Barrier);

#[async_trait::async_trait]
impl RiskStore for Racy {
    async fn limits(&self, u: &UserId) -> Result<Option<RiskLimits>, grant_policy::StoreError> {
        self.0.limits(u).await
    }
    async fn set_limits(
        &self,
        u: &UserId,
        l: RiskLimits,
        now: i64,
    ) -> Result<(), grant_policy::StoreError> {
        self.0.set_limits(u, l, now).await
    }
    async fn set_live_trading(
        &self,
        u: &UserId,
        a: &AccountId,
        on: bool,
        now: i64,
    ) -> Result<bool, grant_policy::StoreError> {
        self.0.set_live_trading(u, a, on, now).await
    }
    async fn live_trading(
        &self,
        u: &UserId,
        a: &AccountId,
    ) -> Result<bool, grant_policy::StoreError> {
        self.0.live_trading(u, a).await
    }
    async fn reserve(
        &self,
        u: &UserId,
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
        u: &UserId,
        day: i64,
        r: Notional,
        s: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        self.0.settle(u, day, r, s).await
    }
    async fn usage(&self, u: &UserId, day: i64) -> Result<Usage, grant_policy::StoreError> {
        self.0.usage(u, day).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_racy_store_is_caught_by_the_concurrency_test() {
    let grants = Arc::new(MemoryStore::new());
    let trader = user("trader");
    register(&*grants, &trader, &acct("a")).await;
    let guard = RiskGuard::builder(
        Arc::new(Racy(MemoryStore::new(), tokio::sync::Barrier::new(200))),
        grants,
    )
    .clock(Arc::new(ManualClock::new(T0)))
    .build();
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
    let (admitted, _) = admit_200(&guard, &[&trader], &acct("a")).await;
    assert_eq!(admitted.len(), 200, "every racing order saw an empty day");
}

/// A risk and grant store that always fails.
#[derive(Debug)]
struct Down;

fn down() -> grant_policy::StoreError {
    grant_policy::StoreError::Unavailable("connection refused".into())
}

#[async_trait::async_trait]
impl RiskStore for Down {
    async fn limits(&self, _: &UserId) -> Result<Option<RiskLimits>, grant_policy::StoreError> {
        Err(down())
    }
    async fn set_limits(
        &self,
        _: &UserId,
        _: RiskLimits,
        _: i64,
    ) -> Result<(), grant_policy::StoreError> {
        Err(down())
    }
    async fn set_live_trading(
        &self,
        _: &UserId,
        _: &AccountId,
        _: bool,
        _: i64,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(down())
    }
    async fn live_trading(
        &self,
        _: &UserId,
        _: &AccountId,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(down())
    }
    async fn reserve(
        &self,
        _: &UserId,
        _: i64,
        _: Notional,
        _: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(down())
    }
    async fn settle(
        &self,
        _: &UserId,
        _: i64,
        _: Notional,
        _: Notional,
    ) -> Result<bool, grant_policy::StoreError> {
        Err(down())
    }
    async fn usage(&self, _: &UserId, _: i64) -> Result<Usage, grant_policy::StoreError> {
        Err(down())
    }
}

#[async_trait::async_trait]
impl GrantStore for Down {
    async fn register(
        &self,
        _: &UserId,
        _: &AccountId,
        _: Level,
        _: i64,
    ) -> Result<(), grant_policy::GrantError> {
        Err(down().into())
    }
    async fn deregister(&self, _: &UserId, _: &AccountId) -> Result<(), grant_policy::GrantError> {
        Err(down().into())
    }
    async fn access(
        &self,
        _: &UserId,
        _: &AccountId,
    ) -> Result<Option<grant_policy::Access>, grant_policy::StoreError> {
        Err(down())
    }
    async fn share(
        &self,
        _: &UserId,
        _: &AccountId,
        _: &Share,
        _: i64,
    ) -> Result<(), grant_policy::GrantError> {
        Err(down().into())
    }
    async fn revoke(
        &self,
        _: &UserId,
        _: &AccountId,
        _: &UserId,
    ) -> Result<bool, grant_policy::GrantError> {
        Err(down().into())
    }
    async fn shares(
        &self,
        _: &UserId,
        _: &AccountId,
    ) -> Result<Vec<Share>, grant_policy::GrantError> {
        Err(down().into())
    }
    async fn owner(&self, _: &AccountId) -> Result<Option<UserId>, grant_policy::StoreError> {
        Err(down())
    }
    async fn accessible(
        &self,
        _: &UserId,
    ) -> Result<Vec<(AccountId, grant_policy::Access)>, grant_policy::StoreError> {
        Err(down())
    }
}

#[tokio::test]
async fn store_failure_refuses_with_503_never_admits() {
    let u = user("alice");
    let a = acct("a");
    // The risk store down, the grants fine.
    let grants = Arc::new(MemoryStore::new());
    register(&*grants, &u, &a).await;
    let guard = RiskGuard::builder(Arc::new(Down), grants).build();
    let got = guard.admit(&u, &a, n(1)).await;
    assert_eq!(got, Admission::Refused(RiskRefusal::StoreUnavailable));
    assert_eq!(RiskRefusal::StoreUnavailable.status().as_u16(), 503);
    assert!(matches!(
        guard
            .enable_live_trading(&u, &a, CredentialsOnFile::Present)
            .await,
        Err(RiskError::Store(_))
    ));
    assert!(matches!(
        guard.usage_today(&u).await,
        Err(RiskError::Store(_))
    ));
    // The grant store down, the risk store fine (and willing).
    let risk = Arc::new(MemoryStore::new());
    let limits = RiskLimits {
        max_order_notional: n(10),
        daily_cap: n(10),
    };
    risk.set_limits(&u, limits, T0).await.unwrap();
    risk.set_live_trading(&u, &a, true, T0).await.unwrap();
    let guard = RiskGuard::builder(risk, Arc::new(Down)).build();
    assert_eq!(
        guard.admit(&u, &a, n(1)).await,
        Admission::Refused(RiskRefusal::StoreUnavailable)
    );
    assert!(matches!(
        guard
            .enable_live_trading(&u, &a, CredentialsOnFile::Present)
            .await,
        Err(RiskError::Store(_))
    ));
    assert!(matches!(
        guard.disable_live_trading(&u, &a).await,
        Err(RiskError::Store(_))
    ));
}

/// F20: the account owner's limits govern every order on the owner's account, whoever
/// places it; only the owner switches live trading, and only for the account named.
/// On the old code limits, usage and the switch were the trader's own: bob traded
/// alice's account under bob's (higher) cap, `enable_live_trading` accepted an account
/// bob does not own, and alice's switch on one account put all her accounts live.
async fn owner_limits_govern_shared_accounts<S: RiskStore + GrantStore + 'static>(store: Arc<S>) {
    let clock = Arc::new(ManualClock::new(T0 + 3600));
    let sink = Arc::new(RecordingSink::default());
    let guard = guard_over(&store)
        .clock(clock.clone())
        .audit(sink.clone())
        .build();
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let (a, b, bobs, unknown) = (
        acct("alice-a"),
        acct("alice-b"),
        acct("bob-1"),
        acct("nobody"),
    );
    register(&*store, &alice, &a).await;
    register(&*store, &alice, &b).await;
    register(&*store, &bob, &bobs).await;
    share(&*store, &alice, &a, &bob, Level::Trade, None).await;
    share(&*store, &alice, &b, &bob, Level::Trade, None).await;
    share(&*store, &alice, &a, &carol, Level::Read, None).await;
    share(&*store, &alice, &a, &dave, Level::Trade, Some(T0 + 7200)).await;
    let small = RiskLimits {
        max_order_notional: n(1_000),
        daily_cap: n(1_500),
    };
    let big = RiskLimits {
        max_order_notional: n(1_000_000),
        daily_cap: n(1_000_000),
    };
    guard.set_limits(&alice, small).await.unwrap();
    guard.set_limits(&bob, big).await.unwrap();

    // Only the owner switches an account, and only that account.
    for (who, account) in [(&bob, &a), (&carol, &a), (&dave, &a), (&bob, &unknown)] {
        assert!(
            matches!(
                guard
                    .enable_live_trading(who, account, CredentialsOnFile::Present)
                    .await,
                Err(RiskError::NotFound)
            ),
            "{who} switched {account} on"
        );
    }
    assert!(!guard.live_trading(&a).await.unwrap());
    assert_eq!(guard.admit(&bob, &a, n(100)).await, Admission::DryRun);
    guard
        .enable_live_trading(&alice, &a, CredentialsOnFile::Present)
        .await
        .unwrap();
    guard
        .enable_live_trading(&bob, &bobs, CredentialsOnFile::Present)
        .await
        .unwrap();
    assert!(guard.live_trading(&a).await.unwrap());
    assert!(
        !guard.live_trading(&b).await.unwrap(),
        "A's switch enabled B"
    );
    assert_eq!(guard.admit(&alice, &b, n(100)).await, Admission::DryRun);
    assert_eq!(guard.admit(&bob, &b, n(100)).await, Admission::DryRun);

    // Bob trades alice's account under alice's limits, not his own.
    assert_eq!(
        guard.admit(&bob, &a, n(5_000)).await,
        Admission::Refused(RiskRefusal::OrderTooLarge)
    );
    let r1 = live(guard.admit(&bob, &a, n(1_000)).await);
    assert_eq!((r1.trader(), r1.owner(), r1.account()), (&bob, &alice, &a));
    assert_eq!(
        guard.admit(&bob, &a, n(1_000)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded),
        "a grantee exceeded the owner's daily cap"
    );
    // One budget for the owner, whoever trades.
    assert_eq!(
        guard.admit(&alice, &a, n(501)).await,
        Admission::Refused(RiskRefusal::DailyCapExceeded)
    );
    let r2 = live(guard.admit(&dave, &a, n(500)).await);
    assert_eq!(
        guard.usage_today(&alice).await.unwrap(),
        Usage {
            used: Notional::ZERO,
            reserved: n(1_500)
        }
    );
    assert_eq!(guard.usage_today(&bob).await.unwrap(), Usage::default());
    // Bob's own account: bob's limits.
    let r3 = live(guard.admit(&bob, &bobs, n(5_000)).await);
    assert_eq!(r3.owner(), &bob);

    // No trade right: refused, whatever the switch says.
    for (who, account) in [(&carol, &a), (&alice, &bobs), (&bob, &unknown)] {
        assert_eq!(
            guard.admit(who, account, n(1)).await,
            Admission::Refused(RiskRefusal::NoAccess),
            "{who} on {account}"
        );
    }
    guard.release(r1).await.unwrap();
    guard.commit(r2, n(500)).await.unwrap();
    guard.release(r3).await.unwrap();
    // An expired share: refused.
    clock.set(T0 + 7200);
    assert_eq!(
        guard.admit(&dave, &a, n(1)).await,
        Admission::Refused(RiskRefusal::NoAccess)
    );
    // A revoked share: refused.
    store.revoke(&alice, &a, &bob).await.unwrap();
    assert_eq!(
        guard.admit(&bob, &a, n(1)).await,
        Admission::Refused(RiskRefusal::NoAccess)
    );

    // Only the owner switches off; a deregistered account comes back in dry-run.
    assert!(matches!(
        guard.disable_live_trading(&bob, &a).await,
        Err(RiskError::NotFound)
    ));
    assert!(guard.live_trading(&a).await.unwrap());
    store.deregister(&alice, &a).await.unwrap();
    assert!(!guard.live_trading(&a).await.unwrap());
    register(&*store, &alice, &a).await;
    assert!(!guard.live_trading(&a).await.unwrap());
    assert_eq!(guard.admit(&alice, &a, n(1)).await, Admission::DryRun);
    // Nor does an account id registered anew by someone else inherit the switch.
    guard
        .enable_live_trading(&alice, &a, CredentialsOnFile::Present)
        .await
        .unwrap();
    store.deregister(&alice, &a).await.unwrap();
    register(&*store, &bob, &a).await;
    assert!(!guard.live_trading(&a).await.unwrap());

    let risk = sink.risk.lock().unwrap();
    assert!(risk.contains(&("bob".into(), "risk.refuse.not_owner")));
    assert!(risk.contains(&("carol".into(), "risk.refuse.no_access")));
}

#[tokio::test]
async fn memory_owner_limits_govern_shared_accounts() {
    owner_limits_govern_shared_accounts(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_owner_limits_govern_shared_accounts() {
    let (store, _dir) = common::sqlite_store().await;
    owner_limits_govern_shared_accounts(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_owner_limits_govern_shared_accounts() {
    common::with_pg_store(owner_limits_govern_shared_accounts::<grant_policy::store::PgStore>)
        .await;
}

/// A grant store whose account changes hands once, right after a trader's access is read
/// (or, with `on_owner`, right after its owner is first read): the owner deregisters it
/// and, if `new_owner` is set, another user registers the same account id, with live
/// trading on. The interleaving a concurrent deregister/register can produce.
#[derive(Debug)]
struct ChangesHands {
    store: Arc<MemoryStore>,
    old_owner: UserId,
    new_owner: Option<UserId>,
    account: AccountId,
    on_owner: bool,
    done: std::sync::atomic::AtomicBool,
}

impl ChangesHands {
    async fn change_hands_once(&self) {
        if self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        self.store
            .deregister(&self.old_owner, &self.account)
            .await
            .unwrap();
        if let Some(new_owner) = &self.new_owner {
            register(&*self.store, new_owner, &self.account).await;
            self.store
                .set_live_trading(new_owner, &self.account, true, T0)
                .await
                .unwrap();
        }
    }
}

#[async_trait::async_trait]
impl GrantStore for ChangesHands {
    async fn register(
        &self,
        o: &UserId,
        a: &AccountId,
        c: Level,
        now: i64,
    ) -> Result<(), grant_policy::GrantError> {
        self.store.register(o, a, c, now).await
    }
    async fn deregister(&self, o: &UserId, a: &AccountId) -> Result<(), grant_policy::GrantError> {
        self.store.deregister(o, a).await
    }
    async fn access(
        &self,
        u: &UserId,
        a: &AccountId,
    ) -> Result<Option<grant_policy::Access>, grant_policy::StoreError> {
        let seen = self.store.access(u, a).await;
        if !self.on_owner {
            self.change_hands_once().await;
        }
        seen
    }
    async fn share(
        &self,
        o: &UserId,
        a: &AccountId,
        s: &Share,
        now: i64,
    ) -> Result<(), grant_policy::GrantError> {
        self.store.share(o, a, s, now).await
    }
    async fn revoke(
        &self,
        o: &UserId,
        a: &AccountId,
        g: &UserId,
    ) -> Result<bool, grant_policy::GrantError> {
        self.store.revoke(o, a, g).await
    }
    async fn shares(
        &self,
        o: &UserId,
        a: &AccountId,
    ) -> Result<Vec<Share>, grant_policy::GrantError> {
        self.store.shares(o, a).await
    }
    async fn owner(&self, a: &AccountId) -> Result<Option<UserId>, grant_policy::StoreError> {
        let seen = self.store.owner(a).await;
        if self.on_owner {
            self.change_hands_once().await;
        }
        seen
    }
    async fn accessible(
        &self,
        u: &UserId,
    ) -> Result<Vec<(AccountId, grant_policy::Access)>, grant_policy::StoreError> {
        self.store.accessible(u).await
    }
}

#[tokio::test]
async fn a_grantee_of_the_old_owner_cannot_trade_a_re_registered_account_id() {
    let store = Arc::new(MemoryStore::new());
    let (old_owner, new_owner, trader) = (user("old-owner"), user("new-owner"), user("trader"));
    let x = acct("x");
    register(&*store, &old_owner, &x).await;
    share(&*store, &old_owner, &x, &trader, Level::Trade, None).await;
    let limits = RiskLimits {
        max_order_notional: n(1_000),
        daily_cap: n(5_000),
    };
    store.set_limits(&new_owner, limits, T0).await.unwrap();
    let grants = Arc::new(ChangesHands {
        store: store.clone(),
        old_owner,
        new_owner: Some(new_owner.clone()),
        account: x.clone(),
        on_owner: false,
        done: std::sync::atomic::AtomicBool::new(false),
    });
    let guard = RiskGuard::builder(store.clone(), grants)
        .clock(Arc::new(ManualClock::new(T0)))
        .build();
    // The trader's share was on the old owner's registration; the new owner never
    // shared the account with them.
    assert_eq!(
        guard.admit(&trader, &x, n(100)).await,
        Admission::Refused(RiskRefusal::NoAccess)
    );
    assert_eq!(
        guard.usage_today(&new_owner).await.unwrap(),
        Usage::default()
    );
}

#[tokio::test]
async fn live_trading_enabled_while_the_account_is_deregistered_does_not_survive() {
    let store = Arc::new(MemoryStore::new());
    let owner = user("owner");
    let x = acct("x");
    register(&*store, &owner, &x).await;
    let limits = RiskLimits {
        max_order_notional: n(1_000),
        daily_cap: n(5_000),
    };
    store.set_limits(&owner, limits, T0).await.unwrap();
    // The owner deregisters the account while their own request to switch it live is
    // between its ownership check and its write.
    let grants = Arc::new(ChangesHands {
        store: store.clone(),
        old_owner: owner.clone(),
        new_owner: None,
        account: x.clone(),
        on_owner: true,
        done: std::sync::atomic::AtomicBool::new(false),
    });
    let guard = RiskGuard::builder(store.clone(), grants)
        .clock(Arc::new(ManualClock::new(T0)))
        .build();
    assert!(matches!(
        guard
            .enable_live_trading(&owner, &x, CredentialsOnFile::Present)
            .await,
        Err(RiskError::NotFound)
    ));
    // Registered again, the account starts in dry-run.
    register(&*store, &owner, &x).await;
    assert!(!guard.live_trading(&x).await.unwrap());
    assert_eq!(guard.admit(&owner, &x, n(100)).await, Admission::DryRun);
}
