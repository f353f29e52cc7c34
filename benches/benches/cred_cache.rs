//! cred-cache: a hit through `CredCache::get_or_fetch` beside a raw moka `get` on the
//! same key type, and a miss through the local envelope source beside raw moka single
//! flight (`try_get_with`) around the same fetch, and the fetch alone (open the sealed
//! record, decode it).
//!
//! Goal (issue "cred-cache"): a hit at most 1.5x a raw moka `get` with the same cache
//! configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Benchmarks may unwrap, like tests.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cred_cache::local::LocalSource;
use cred_cache::{
    AccessPermit, AccountId, CacheKey, CredCache, CredentialSource, ExchangeCredential, Level,
    OwnerPermit, UserId,
};
use criterion::{Criterion, criterion_group, criterion_main};
use crypto_envelope::{Envelope, LocalKeyRing, MasterKey, MemoryStore, Secrets};
use tokio::runtime::Runtime;
use zeroize::Zeroizing;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn credential(id: &AccountId) -> ExchangeCredential {
    ExchangeCredential::new(
        id.clone(),
        Zeroizing::new("k".repeat(64)),
        Zeroizing::new("s".repeat(88)),
        Some(Zeroizing::new("passphrase".into())),
        false,
    )
    .unwrap()
}

async fn local_source() -> Arc<LocalSource> {
    let key = MasterKey::parse("bench", &"5a".repeat(32)).unwrap();
    let envelope = Envelope::new(LocalKeyRing::single(key).unwrap()).unwrap();
    let source = Arc::new(LocalSource::new(Secrets::new(
        envelope,
        Arc::new(MemoryStore::new()),
    )));
    let owner = BenchOwner(
        UserId::new("owner").unwrap(),
        AccountId::new("acct-1").unwrap(),
    );
    source.put(&owner, &credential(&owner.1)).await.unwrap();
    source
}

/// The bench's own policy engine: a permit for (user, acct-1, Trade). Lent by
/// reference (`&BenchPermit` is a permit too), so that the hit measures the cache, not
/// the making of a permit (a service makes one per request, with its decision).
#[derive(Debug)]
struct BenchPermit(UserId, AccountId);

impl AccessPermit for &BenchPermit {
    fn user(&self) -> &UserId {
        &self.0
    }
    fn account(&self) -> &AccountId {
        &self.1
    }
    fn level(&self) -> Level {
        Level::Trade
    }
}

#[derive(Debug)]
struct BenchOwner(UserId, AccountId);

impl OwnerPermit for BenchOwner {
    fn owner(&self) -> &UserId {
        &self.0
    }
    fn account(&self) -> &AccountId {
        &self.1
    }
}

fn permit(user: &str) -> BenchPermit {
    BenchPermit(
        UserId::new(user).unwrap(),
        AccountId::new("acct-1").unwrap(),
    )
}

fn key(user: &str) -> CacheKey {
    CacheKey::new(&&permit(user), Level::Trade).unwrap()
}

/// Times `iters` awaits of `f` inside one `block_on`, so the runtime's entry cost is
/// not part of each sample.
fn timed<F, Fut>(rt: &Runtime, iters: u64, mut f: F) -> Duration
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            f(i).await;
        }
        start.elapsed()
    })
}

fn hit(c: &mut Criterion) {
    let rt = runtime();
    let source = rt.block_on(local_source());
    let cache = rt.block_on(async { CredCache::builder(source as _).build().unwrap() });
    let p = permit("user-7");
    let k = key("user-7");
    rt.block_on(cache.get_or_fetch(&p, Level::Trade)).unwrap();

    // The raw primitive, configured like the cache's own moka instance.
    let listener_count = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&listener_count);
    let raw_same: moka::future::Cache<CacheKey, Arc<ExchangeCredential>> =
        moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(60))
            .support_invalidation_closures()
            .eviction_listener(move |_, _, _| {
                counted.fetch_add(1, Ordering::Relaxed);
            })
            .build();
    // And moka with its defaults plus the TTL.
    let raw_plain: moka::future::Cache<CacheKey, Arc<ExchangeCredential>> =
        moka::future::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(60))
            .build();
    let value = Arc::new(credential(k.credential()));
    rt.block_on(raw_same.insert(k.clone(), Arc::clone(&value)));
    rt.block_on(raw_plain.insert(k.clone(), value));

    let mut group = c.benchmark_group("cred_cache/hit");
    group.bench_function("cred_cache_get_or_fetch", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| async {
                black_box(
                    cache
                        .get_or_fetch(black_box(&p), Level::Trade)
                        .await
                        .unwrap(),
                );
            })
        })
    });
    group.bench_function("raw_moka_get_same_config", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| async {
                black_box(raw_same.get(black_box(&k)).await.unwrap());
            })
        })
    });
    group.bench_function("raw_moka_get_plain", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| async {
                black_box(raw_plain.get(black_box(&k)).await.unwrap());
            })
        })
    });
    group.finish();
}

fn miss(c: &mut Criterion) {
    let rt = runtime();
    let source = rt.block_on(local_source());
    let cache = rt.block_on(async {
        CredCache::builder(Arc::clone(&source) as _)
            .max_capacity(100_000)
            .build()
            .unwrap()
    });
    let next_user = AtomicU64::new(0);

    let mut group = c.benchmark_group("cred_cache/miss_local_envelope");
    // A new user each time: a miss, one fetch (open + decode), one insertion.
    group.bench_function("cred_cache_get_or_fetch_miss", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| {
                let p = permit(&format!("u{}", next_user.fetch_add(1, Ordering::Relaxed)));
                let cache = &cache;
                async move {
                    black_box(cache.get_or_fetch(&p, Level::Trade).await.unwrap());
                }
            })
        })
    });
    // Raw moka single flight with the same configuration and the same fetch.
    let raw: moka::future::Cache<CacheKey, Arc<ExchangeCredential>> =
        moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(60))
            .support_invalidation_closures()
            .eviction_listener(|_, _, _| {})
            .build();
    let raw_next_user = AtomicU64::new(0);
    group.bench_function("raw_moka_try_get_with_same_fetch", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| {
                let k = key(&format!(
                    "u{}",
                    raw_next_user.fetch_add(1, Ordering::Relaxed)
                ));
                let (raw, source) = (&raw, &source);
                async move {
                    let value = raw
                        .try_get_with_by_ref(&k, async { source.fetch(&k).await.map(Arc::new) })
                        .await
                        .unwrap();
                    black_box(value);
                }
            })
        })
    });
    // The fetch alone: the raw cost a miss is built on.
    let k = key("user-7");
    group.bench_function("local_source_fetch", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| async {
                black_box(source.fetch(black_box(&k)).await.unwrap());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, hit, miss);
criterion_main!(benches);
