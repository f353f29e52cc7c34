//! Login throttling: known and unknown emails answered alike and refused before any
//! hashing, per-address limits, owner lockout bound, second factor, fail closed, and
//! two instances sharing the limits on PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::{
    AccountError, Accounts, LoginThrottle, LoginThrottleConfig, MemoryStore, Password,
    PasswordConfig, PasswordHasher, SessionConfig, Sessions, ThrottleError,
};
use throttle::{ManualClock, Store};

const T0: Duration = Duration::from_secs(1_800_000_000);
const GOOD: &str = "correct horse battery staple";

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

/// Accounts with the default (real-cost) hasher and `throttle`, and user alice.
async fn accounts(throttle: LoginThrottle, hasher: PasswordHasher) -> Accounts {
    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store, sessions, hasher).with_throttle(throttle);
    accounts
        .register("alice@example.com", &Password::new(GOOD))
        .await
        .unwrap();
    accounts
}

fn fast_hasher() -> PasswordHasher {
    let config = auth_core::danger::weak_password_params(PasswordConfig::default(), 256, 1, 1);
    PasswordHasher::new(config).unwrap()
}

fn outcome(r: &Result<auth_core::LoginStep, AccountError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(AccountError::Throttled { retry_after }) => format!("throttled {retry_after:?}"),
        Err(e) => format!("{e}"),
    }
}

#[tokio::test]
async fn unknown_and_known_emails_get_identical_answers() {
    let clock = ManualClock::new(T0);
    let throttle = LoginThrottle::memory().with_clock(Arc::new(clock.clone()));
    let accounts = accounts(throttle, fast_hasher()).await;
    let bad = Password::new("wrong password 123");
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..12 {
        // A different address per attempt: only the per-account backoff speaks.
        known.push(outcome(
            &accounts
                .login_from("alice@example.com", &bad, ip(&format!("192.0.2.{i}")))
                .await,
        ));
        unknown.push(outcome(
            &accounts
                .login_from("nobody@example.com", &bad, ip(&format!("198.51.100.{i}")))
                .await,
        ));
        clock.advance(Duration::from_millis(700));
    }
    assert_eq!(known, unknown);
    assert!(
        known.iter().any(|o| o.starts_with("throttled")),
        "{known:?}"
    );
}

#[tokio::test]
async fn refusal_comes_before_any_hashing_for_known_and_unknown_emails() {
    let clock = ManualClock::new(T0);
    let throttle = LoginThrottle::memory().with_clock(Arc::new(clock.clone()));
    // The real Argon2id parameters: a hash costs milliseconds.
    let accounts = accounts(
        throttle,
        PasswordHasher::new(PasswordConfig::default()).unwrap(),
    )
    .await;
    let bad = Password::new("wrong password 123");
    let started = Instant::now();
    for email in ["alice@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            assert!(matches!(
                accounts.login_from(email, &bad, None).await,
                Err(AccountError::InvalidCredentials)
            ));
        }
    }
    let per_hash = started.elapsed() / 10;
    // Both are now past their free failures and inside a delay: even the right
    // password is refused, and fast (no hash).
    for (email, password) in [("alice@example.com", GOOD), ("nobody@example.com", GOOD)] {
        let t = Instant::now();
        let r = accounts
            .login_from(email, &Password::new(password), None)
            .await;
        let took = t.elapsed();
        assert!(
            matches!(r, Err(AccountError::Throttled { retry_after }) if retry_after == Duration::from_secs(1)),
            "{email}: {}",
            outcome(&r)
        );
        assert!(
            took * 10 < per_hash,
            "{email}: {took:?} vs a hash {per_hash:?}"
        );
    }
}

#[tokio::test]
async fn the_owner_gets_back_in_within_the_cap_after_an_attack() {
    let clock = ManualClock::new(T0);
    let throttle = LoginThrottle::memory().with_clock(Arc::new(clock.clone()));
    let accounts = accounts(throttle, fast_hasher()).await;
    let cap = LoginThrottleConfig::default().account.max_delay();
    let bad = Password::new("wrong password 123");
    // An attack from many addresses, as fast as the backoff lets it, for an hour.
    let mut i = 0u32;
    let end = clock.now_for_test() + Duration::from_secs(3600);
    while clock.now_for_test() < end {
        i += 1;
        let from = ip(&format!(
            "10.{}.{}.{}",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        ));
        match accounts.login_from("alice@example.com", &bad, from).await {
            Err(AccountError::Throttled { retry_after }) => {
                assert!(retry_after <= cap, "{retry_after:?}");
                clock.advance(retry_after);
            }
            Err(AccountError::InvalidCredentials) => {}
            r => panic!("{}", outcome(&r)),
        }
    }
    // Guesses per hour stay near 3600 / cap.
    assert!(
        i < 2 * 3600 / u32::try_from(cap.as_secs()).unwrap() + 20,
        "{i} attempts"
    );
    // The attack stops; the owner, from their own address, is in within the cap.
    let owner = ip("203.0.113.7");
    let mut waited = Duration::ZERO;
    loop {
        match accounts
            .login_from("Alice@Example.com", &Password::new(GOOD), owner)
            .await
        {
            Ok(_) => break,
            Err(AccountError::Throttled { retry_after }) => {
                waited += retry_after;
                clock.advance(retry_after);
            }
            r => panic!("{}", outcome(&r)),
        }
    }
    assert!(waited <= cap, "owner waited {waited:?}");
    // The success reset the account: the next wrong password costs no delay.
    assert!(matches!(
        accounts.login_from("alice@example.com", &bad, owner).await,
        Err(AccountError::InvalidCredentials)
    ));
}

#[tokio::test]
async fn one_address_is_limited_across_accounts_and_ipv6_by_64() {
    let clock = ManualClock::new(T0);
    let throttle = LoginThrottle::memory().with_clock(Arc::new(clock.clone()));
    let burst = LoginThrottleConfig::default().address.burst();
    for i in 0..burst {
        throttle
            .check(
                &format!("user{i}@example.com"),
                ip(&format!("2001:db8:0:1::{i:x}")),
            )
            .await
            .unwrap();
    }
    // Same /64, another account: refused with the GCRA wait (one interval, 30 s).
    match throttle
        .check("fresh@example.com", ip("2001:db8:0:1:ffff::1"))
        .await
    {
        Err(ThrottleError::Throttled { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(30));
        }
        r => panic!("{r:?}"),
    }
    // Another /64 is not affected; nor is a login without an address.
    throttle
        .check("fresh@example.com", ip("2001:db8:0:2::1"))
        .await
        .unwrap();
    throttle.check("fresh@example.com", None).await.unwrap();
}

#[tokio::test]
async fn second_factor_backoff_grows_and_success_resets() {
    let clock = ManualClock::new(T0);
    let throttle = LoginThrottle::memory().with_clock(Arc::new(clock.clone()));
    for _ in 0..3 {
        throttle.check_second_factor("u1").await.unwrap();
        throttle.second_factor_failure("u1").await.unwrap();
    }
    let mut waits = Vec::new();
    for _ in 0..3 {
        let Err(ThrottleError::Throttled { retry_after }) =
            throttle.check_second_factor("u1").await
        else {
            panic!("not throttled")
        };
        waits.push(retry_after.as_secs());
        clock.advance(retry_after);
        throttle.check_second_factor("u1").await.unwrap();
        throttle.second_factor_failure("u1").await.unwrap();
    }
    assert_eq!(waits, [2, 4, 8]);
    throttle.check_second_factor("u2").await.unwrap();
    clock.advance(Duration::from_secs(16));
    throttle.check_second_factor("u1").await.unwrap();
    throttle.second_factor_success("u1").await.unwrap();
    throttle.check_second_factor("u1").await.unwrap();
}

/// Attempts in flight at once: every one passed the gate before any outcome was
/// recorded (parallel requests). Only the free failures may pass; the rest wait, for
/// the password backoff and for the second factor alike. (Before the fix, all 50 passed:
/// a burst of parallel guesses every time the key was fresh.)
#[tokio::test]
async fn parallel_attempts_cannot_share_the_free_failures() {
    let clock = ManualClock::new(T0);
    let throttle = LoginThrottle::memory().with_clock(Arc::new(clock.clone()));
    let passed = |rs: Vec<Result<(), ThrottleError>>| {
        for r in &rs {
            assert!(
                matches!(r, Ok(()) | Err(ThrottleError::Throttled { .. })),
                "{r:?}"
            );
        }
        rs.iter().filter(|r| r.is_ok()).count()
    };
    let mut mfa = Vec::new();
    for _ in 0..50 {
        mfa.push(throttle.check_second_factor("u1").await);
    }
    assert_eq!(passed(mfa), 3, "second factor: 3 free failures");
    let mut pwd = Vec::new();
    for _ in 0..50 {
        pwd.push(throttle.check("victim@example.com", None).await);
    }
    assert_eq!(passed(pwd), 5, "password: 5 free failures");
    // The outcomes arrive: all wrong. The next attempt waits; a success still resets.
    for _ in 0..3 {
        throttle.second_factor_failure("u1").await.unwrap();
    }
    assert!(matches!(
        throttle.check_second_factor("u1").await,
        Err(ThrottleError::Throttled { .. })
    ));
    clock.advance(Duration::from_secs(3600));
    throttle.check_second_factor("u1").await.unwrap();
    throttle.second_factor_success("u1").await.unwrap();
    throttle.check_second_factor("u1").await.unwrap();
}

trait NowForTest {
    fn now_for_test(&self) -> Duration;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> Duration {
        throttle::Clock::now(self)
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sqlx::postgres::PgPoolOptions;
    use throttle::PgStore;

    #[tokio::test]
    async fn a_store_that_is_down_fails_closed() {
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy("postgres://postgres@127.0.0.1:9/none")
            .unwrap();
        let throttle = LoginThrottle::new(
            &Store::Postgres(PgStore::new(pool)),
            LoginThrottleConfig::default(),
        );
        let accounts = accounts(throttle.clone(), fast_hasher()).await;
        for email in ["alice@example.com", "nobody@example.com"] {
            assert!(matches!(
                accounts
                    .login_from(email, &Password::new(GOOD), ip("192.0.2.1"))
                    .await,
                Err(AccountError::Unavailable(_))
            ));
        }
        assert!(matches!(
            throttle.check_second_factor("u").await,
            Err(ThrottleError::Unavailable(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
    async fn two_instances_on_one_postgres_share_the_limit() {
        let pg = support::PgSchema::create("auth_throttle", 1).await;
        let mut throttles = Vec::new();
        for _ in 0..2 {
            let store = PgStore::new(pg.pool(4).await);
            store.migrate().await.unwrap();
            throttles.push(LoginThrottle::new(
                &Store::Postgres(store),
                LoginThrottleConfig::default(),
            ));
        }
        shared(&throttles[0], &throttles[1]).await;
        pg.drop_schema().await;
    }
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn two_instances_on_one_redis_share_the_limit() {
    let url = std::env::var("STRONGROOM_REDIS_URL").expect("STRONGROOM_REDIS_URL");
    let a = LoginThrottle::new(
        &Store::Redis(throttle::RedisStore::open(&url).unwrap()),
        LoginThrottleConfig::default(),
    );
    let b = LoginThrottle::new(
        &Store::Redis(throttle::RedisStore::open(&url).unwrap()),
        LoginThrottleConfig::default(),
    );
    shared(&a, &b).await;
}

/// Failures through two instances add up; a success on one resets both; the address
/// limit is shared too. Keys are unique per run (real clock).
#[allow(dead_code)]
async fn shared(a: &LoginThrottle, b: &LoginThrottle) {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let email = format!("victim{run}@example.com");
    for i in 0..5 {
        let t = if i % 2 == 0 { a } else { b };
        t.check(&email, None).await.unwrap();
        t.failure(&email, None).await.unwrap();
    }
    // Five failures split over two instances: both now impose the delay.
    assert!(matches!(
        a.check(&email, None).await,
        Err(ThrottleError::Throttled { .. })
    ));
    assert!(matches!(
        b.check(&email, None).await,
        Err(ThrottleError::Throttled { .. })
    ));
    b.success(&email, None).await.unwrap();
    a.check(&email, None).await.unwrap();
    // The address limit: 20 attempts spread over both, the 21st refused on either.
    let addr = Some(IpAddr::from([
        10,
        (run % 250) as u8,
        ((run >> 8) % 250) as u8,
        ((run >> 16) % 250) as u8,
    ]));
    for i in 0..20 {
        let t = if i % 2 == 0 { a } else { b };
        t.check(&format!("u{i}-{run}@example.com"), addr)
            .await
            .unwrap();
    }
    assert!(matches!(
        a.check("x@example.com", addr).await,
        Err(ThrottleError::Throttled { .. })
    ));
    assert!(matches!(
        b.check("x@example.com", addr).await,
        Err(ThrottleError::Throttled { .. })
    ));
    // 40 second-factor attempts at once through both instances: only the 3 free ones
    // pass (the count is taken atomically in the store).
    let user = format!("parallel-{run}");
    let attempts = (0..40).map(|i| {
        let t = if i % 2 == 0 { a.clone() } else { b.clone() };
        let user = user.clone();
        tokio::spawn(async move { t.check_second_factor(&user).await })
    });
    let mut passed = 0;
    for h in futures::future::join_all(attempts).await {
        match h.unwrap() {
            Ok(()) => passed += 1,
            Err(ThrottleError::Throttled { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(passed, 3);
}
