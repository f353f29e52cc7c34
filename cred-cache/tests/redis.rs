//! Cross-instance invalidation over a real Redis (ignored without
//! `STRONGROOM_REDIS_URL`), and the cache without Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![cfg(feature = "redis")]

use crate::common;

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestSource, key};
use cred_cache::redis::{RedisInvalidation, Subscription};
use cred_cache::{AccountId, CredCache, Level, PublishError, UserId};

fn redis_url() -> String {
    std::env::var("STRONGROOM_REDIS_URL")
        .expect("STRONGROOM_REDIS_URL must be set to run the Redis tests")
}

fn random_channel() -> String {
    let r = RandomState::new().hash_one(Instant::now());
    format!("strongroom-test:cred-cache:{r:016x}")
}

struct Instance {
    cache: CredCache,
    source: Arc<TestSource>,
    subscription: Subscription,
}

async fn instance(url: &str, channel: &str) -> Instance {
    let bus = RedisInvalidation::new(url, channel).unwrap();
    let source = TestSource::new(Duration::ZERO);
    let cache = CredCache::builder(Arc::clone(&source) as _)
        .publisher(bus.publisher())
        .build()
        .unwrap();
    let subscription = bus.subscribe(&cache);
    assert!(
        subscription.wait_connected(Duration::from_secs(5)).await,
        "not subscribed"
    );
    Instance {
        cache,
        source,
        subscription,
    }
}

/// Polls `instance` for `k` until it fetches again; returns how long that took.
async fn time_to_miss(instance: &Instance, k: &common::TestPermit, limit: Duration) -> Duration {
    let before = instance.source.fetches();
    let started = Instant::now();
    loop {
        instance.cache.get_or_fetch(k, k.level).await.unwrap();
        if instance.source.fetches() > before {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "no miss within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn a_revoke_through_one_instance_reaches_the_other_within_a_second() {
    let url = redis_url();
    let channel = random_channel();
    let a = instance(&url, &channel).await;
    let b = instance(&url, &channel).await;
    let k = key("alice", "acct-1", Level::Trade);
    let untouched = key("bob", "acct-2", Level::Read);
    for i in [&a, &b] {
        i.cache.get_or_fetch(&k, k.level).await.unwrap();
        i.cache.get_or_fetch(&k, k.level).await.unwrap();
        i.cache
            .get_or_fetch(&untouched, untouched.level)
            .await
            .unwrap();
        assert_eq!(i.source.fetches(), 2);
    }

    a.cache.invalidate_credential(k.credential()).await.unwrap();
    let took = time_to_miss(&b, &k, Duration::from_secs(1)).await;
    println!("credential revoke reached the other instance in {took:?}");
    // Other entries survive on both sides.
    b.cache
        .get_or_fetch(&untouched, untouched.level)
        .await
        .unwrap();
    assert_eq!(b.source.fetches(), 3);

    // By user, the other way round.
    b.cache
        .invalidate_user(&UserId::new("alice").unwrap())
        .await
        .unwrap();
    time_to_miss(&a, &k, Duration::from_secs(1)).await;

    // One user's entries of one credential (a share revoked).
    b.cache
        .invalidate_user_credential(k.user(), k.credential())
        .await
        .unwrap();
    time_to_miss(&a, &k, Duration::from_secs(1)).await;

    // Everything.
    a.cache.invalidate_all().await.unwrap();
    time_to_miss(&b, &untouched, Duration::from_secs(1)).await;
    assert!(a.subscription.is_connected() && b.subscription.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn an_undecodable_message_drops_everything() {
    let url = redis_url();
    let channel = random_channel();
    let b = instance(&url, &channel).await;
    let k = key("alice", "acct-1", Level::Read);
    b.cache.get_or_fetch(&k, k.level).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg("not a message")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    time_to_miss(&b, &k, Duration::from_secs(1)).await;
}

/// A TCP proxy in front of Redis whose connections the test can cut, and which can
/// refuse new ones (Redis unreachable).
struct Proxy {
    url: String,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    down: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(redis_url: &str) -> Self {
        let rest = redis_url.trim_start_matches("redis://");
        let host = rest
            .split('/')
            .next()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
            .to_owned();
        let upstream = if host.contains(':') {
            host
        } else {
            format!("{host}:6379")
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let list = Arc::clone(&connections);
        let down = Arc::new(AtomicBool::new(false));
        let refuse = Arc::clone(&down);
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if refuse.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                list.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            url,
            connections,
            down,
        }
    }

    /// Refuses (`true`) or accepts again (`false`) new connections.
    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn cut(&self) {
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn the_subscriber_reconnects_and_drops_everything_after_a_gap() {
    let url = redis_url();
    let channel = random_channel();
    let proxy = Proxy::start(&url).await;
    let a = instance(&url, &channel).await;
    let b = instance(&proxy.url, &channel).await;
    let k = key("alice", "acct-1", Level::Read);
    b.cache.get_or_fetch(&k, k.level).await.unwrap();
    assert_eq!(b.source.fetches(), 1);

    proxy.cut();
    // While B is cut off, A's revoke cannot reach it...
    a.cache.invalidate_credential(k.credential()).await.unwrap();
    // ...but B drops everything when it resubscribes, so it still misses.
    let started = Instant::now();
    while b.subscription.is_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "disconnect not noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        b.subscription.wait_connected(Duration::from_secs(10)).await,
        "no reconnect"
    );
    time_to_miss(&b, &k, Duration::from_secs(1)).await;

    // And messages flow again after the reconnect.
    a.cache
        .invalidate_credential(&AccountId::new("acct-1").unwrap())
        .await
        .unwrap();
    time_to_miss(&b, &k, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn while_redis_is_unreachable_no_entry_outlives_a_reconnection_attempt() {
    let url = redis_url();
    let channel = random_channel();
    let proxy = Proxy::start(&url).await;
    let b = instance(&proxy.url, &channel).await;
    let k = key("alice", "acct-1", Level::Read);
    b.cache.get_or_fetch(&k, k.level).await.unwrap();
    assert_eq!(b.source.fetches(), 1);

    proxy.set_down(true);
    proxy.cut();
    let started = Instant::now();
    while b.subscription.is_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "disconnect not noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dropped as soon as the loss is noticed, not only at the resubscription.
    time_to_miss(&b, &k, Duration::from_secs(1)).await;
    // Fetched again during the outage: dropped after the next failed attempt (the
    // longest backoff is 5 s plus up to 2.5 s of jitter), never kept for the TTL.
    time_to_miss(&b, &k, Duration::from_secs(9)).await;
    assert!(!b.subscription.is_connected());

    // Redis back: B resubscribes and caches normally again.
    proxy.set_down(false);
    assert!(
        b.subscription.wait_connected(Duration::from_secs(10)).await,
        "no reconnect"
    );
    b.cache.get_or_fetch(&k, k.level).await.unwrap();
    let before = b.source.fetches();
    b.cache.get_or_fetch(&k, k.level).await.unwrap();
    assert_eq!(b.source.fetches(), before, "a hit after the reconnect");
}

#[tokio::test]
async fn the_cache_works_without_redis() {
    // Nothing listens on port 1.
    let bus = RedisInvalidation::new("redis://127.0.0.1:1", "strongroom-test").unwrap();
    let source = TestSource::new(Duration::ZERO);
    let cache = CredCache::builder(Arc::clone(&source) as _)
        .publisher(bus.publisher())
        .build()
        .unwrap();
    let subscription = bus.subscribe(&cache);
    let k = key("alice", "acct-1", Level::Read);
    cache.get_or_fetch(&k, k.level).await.unwrap();
    cache.get_or_fetch(&k, k.level).await.unwrap();
    assert_eq!(source.fetches(), 1);
    // Publishing fails and says so, but the local invalidation happened.
    assert_eq!(
        cache
            .invalidate_credential(k.credential())
            .await
            .unwrap_err(),
        PublishError::Transport
    );
    cache.get_or_fetch(&k, k.level).await.unwrap();
    assert_eq!(source.fetches(), 2);
    assert!(!subscription.is_connected());
}

#[test]
fn bad_configuration_is_refused() {
    assert!(RedisInvalidation::new("redis://127.0.0.1:6379", "").is_err());
    assert!(RedisInvalidation::new("redis://127.0.0.1:6379", "has space").is_err());
    assert!(RedisInvalidation::new("not-a-url", "channel").is_err());
}

/// E19 over Redis: messages from another instance invalidating made-up users
/// every 5 ms, fetches of 20 ms: every lookup succeeds without a refetch (with
/// one global generation, every fetch was discarded and every lookup ended in
/// `Contended`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis: set STRONGROOM_REDIS_URL"]
async fn messages_for_made_up_users_fail_no_lookup() {
    let url = redis_url();
    let channel = random_channel();
    let bus = RedisInvalidation::new(&url, &channel).unwrap();
    let source = TestSource::new(Duration::from_millis(20));
    let cache = CredCache::builder(Arc::clone(&source) as _)
        .publisher(bus.publisher())
        .build()
        .unwrap();
    let subscription = bus.subscribe(&cache);
    assert!(subscription.wait_connected(Duration::from_secs(5)).await);
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let stop = Arc::clone(&stop);
        let channel = channel.clone();
        let client = redis::Client::open(url.as_str()).unwrap();
        tokio::spawn(async move {
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let message = format!(
                    r#"{{"v":1,"origin":"0123456789abcdef","scope":"user","id":"made-up-{n}"}}"#
                );
                let receivers: i64 = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(message)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert_eq!(receivers, 1);
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let mut ok = 0;
    for i in 0..10 {
        let k = key("alice", &format!("acct-{i}"), Level::Trade);
        if cache.get_or_fetch(&k, k.level).await.is_ok() {
            ok += 1;
        }
    }
    stop.store(true, Ordering::SeqCst);
    assert!(storm.await.unwrap() >= 20);
    assert_eq!(ok, 10);
    assert_eq!(source.fetches(), 10);
    assert!(subscription.is_connected());
}
