//! Redis store: the suites, two "instances" (two clients) sharing one limit, and a
//! store that is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "redis")]
use crate::common;

use std::time::Duration;

use throttle::{Backoff, Quota, RateLimiter, RedisStore, Store};

fn stores() -> (Store, Store, String) {
    let url = std::env::var("STRONGROOM_REDIS_URL")
        .expect("STRONGROOM_REDIS_URL must be set to run the Redis tests");
    // Unique names per run: keys never meet an earlier run's.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    (
        Store::Redis(RedisStore::open(&url).unwrap()),
        Store::Redis(RedisStore::open(&url).unwrap()),
        format!("t{run}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn redis_suites_and_two_instances_share_the_limit() {
    let (a, b, run) = stores();
    common::gcra_suite(&a, &format!("{run}-g")).await;
    common::backoff_suite(&a, &format!("{run}-b")).await;
    common::shared_suite(&a, &b, &format!("{run}-s")).await;
    common::concurrent_suite(&a, &b, &format!("{run}-c")).await;
    a.ping().await.unwrap();
}

#[tokio::test]
async fn redis_down_fails_closed() {
    let store = Store::Redis(RedisStore::open("redis://127.0.0.1:9").unwrap());
    let q = Quota::new(5, Duration::from_secs(1)).unwrap();
    let err = RateLimiter::new(&store, "d", q)
        .unwrap()
        .check("k")
        .await
        .unwrap_err();
    assert_eq!(err.store(), "redis");
    let b = Backoff::new(&store, "d", common::policy()).unwrap();
    assert_eq!(b.check("k").await.unwrap_err().store(), "redis");
    assert!(b.record_failure("k").await.is_err());
    assert!(b.reset("k").await.is_err());
    assert_eq!(store.ping().await.unwrap_err().store(), "redis");
}
