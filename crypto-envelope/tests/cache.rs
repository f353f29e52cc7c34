//! The data-key cache: a counting backend shows which opens reach the backend.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crypto_envelope::{CacheLimits, ConfigError, DataKeyCache, Envelope, Error, Rewrap};

fn counting(limits: Option<CacheLimits>) -> (Envelope, Arc<AtomicU64>) {
    let backend = common::Renamed::new("counting", 7);
    let unwraps = Arc::clone(&backend.unwraps);
    let envelope = Envelope::new(backend).unwrap();
    let envelope = match limits {
        Some(limits) => envelope.with_data_key_cache(DataKeyCache::new(limits).unwrap()),
        None => envelope,
    };
    (envelope, unwraps)
}

#[tokio::test]
async fn without_a_cache_every_open_unwraps() {
    let (envelope, unwraps) = counting(None);
    let ctx = common::ctx("1", "api_secret");
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    for _ in 0..5 {
        envelope.open(&sealed, &ctx).await.unwrap();
    }
    assert_eq!(unwraps.load(Ordering::SeqCst), 5);
    assert!(envelope.data_key_cache().is_none());
}

#[tokio::test]
async fn a_hot_value_unwraps_once() {
    let (envelope, unwraps) = counting(Some(CacheLimits::default()));
    let ctx = common::ctx("1", "api_secret");
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    for _ in 0..10 {
        let opened = envelope.open(&sealed, &ctx).await.unwrap();
        assert_eq!(opened.expose_secret(), b"secret");
    }
    assert_eq!(unwraps.load(Ordering::SeqCst), 1);
    let stats = envelope.data_key_cache().unwrap().stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (9, 1, 1));
    // Clones share the cache.
    envelope.clone().open(&sealed, &ctx).await.unwrap();
    assert_eq!(unwraps.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn another_context_is_a_miss_and_still_refused() {
    let (envelope, unwraps) = counting(Some(CacheLimits::default()));
    let ctx = common::ctx("1", "api_secret");
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    envelope.open(&sealed, &ctx).await.unwrap();
    let other = common::ctx("2", "api_secret");
    assert!(matches!(
        envelope.open(&sealed, &other).await,
        Err(Error::Refused)
    ));
    assert_eq!(unwraps.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_tampered_payload_is_refused_on_a_hit_and_never_cached() {
    let (envelope, unwraps) = counting(Some(CacheLimits::default()));
    let ctx = common::ctx("1", "api_secret");
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    let mut tampered = sealed.clone();
    *tampered.last_mut().unwrap() ^= 1;
    // A failed open caches nothing.
    assert!(matches!(
        envelope.open(&tampered, &ctx).await,
        Err(Error::Refused)
    ));
    assert_eq!(envelope.data_key_cache().unwrap().stats().entries, 0);
    // After a good open the data key is cached, yet the tampered payload (same wrapped
    // key, a hit) is still refused: the tag is checked on every open.
    envelope.open(&sealed, &ctx).await.unwrap();
    assert!(matches!(
        envelope.open(&tampered, &ctx).await,
        Err(Error::Refused)
    ));
    assert_eq!(unwraps.load(Ordering::SeqCst), 2);
    assert_eq!(envelope.data_key_cache().unwrap().stats().hits, 1);
}

#[tokio::test]
async fn bounds_on_uses_bytes_age_and_entries() {
    let ctx = common::ctx("1", "api_secret");

    // Uses: three opens per entry, then the backend again.
    let (envelope, unwraps) = counting(Some(CacheLimits {
        max_uses: 3,
        ..CacheLimits::default()
    }));
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    for _ in 0..7 {
        envelope.open(&sealed, &ctx).await.unwrap();
    }
    assert_eq!(unwraps.load(Ordering::SeqCst), 3);

    // Bytes: 6 bytes of payload + 16 of tag per open, 50 bytes in all per entry: two
    // opens per entry.
    let (envelope, unwraps) = counting(Some(CacheLimits {
        max_bytes: 50,
        ..CacheLimits::default()
    }));
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    for _ in 0..6 {
        envelope.open(&sealed, &ctx).await.unwrap();
    }
    assert_eq!(unwraps.load(Ordering::SeqCst), 3);

    // Age.
    let (envelope, unwraps) = counting(Some(CacheLimits {
        max_age: Duration::from_millis(50),
        ..CacheLimits::default()
    }));
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    envelope.open(&sealed, &ctx).await.unwrap();
    envelope.open(&sealed, &ctx).await.unwrap();
    assert_eq!(unwraps.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    envelope.open(&sealed, &ctx).await.unwrap();
    assert_eq!(unwraps.load(Ordering::SeqCst), 2);

    // Entries: two entries, three values opened in turn: the oldest goes.
    let (envelope, unwraps) = counting(Some(CacheLimits {
        max_entries: 2,
        ..CacheLimits::default()
    }));
    let mut values = Vec::new();
    for i in 0..3 {
        values.push(
            envelope
                .seal(format!("secret {i}").as_bytes(), &ctx)
                .await
                .unwrap()
                .to_bytes(),
        );
    }
    for value in &values {
        envelope.open(value, &ctx).await.unwrap();
    }
    assert_eq!(envelope.data_key_cache().unwrap().stats().entries, 2);
    envelope.open(&values[2], &ctx).await.unwrap();
    assert_eq!(unwraps.load(Ordering::SeqCst), 3);
    envelope.open(&values[0], &ctx).await.unwrap();
    assert_eq!(unwraps.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn rewrap_and_seal_bypass_the_cache() {
    let (envelope, unwraps) = counting(Some(CacheLimits::default()));
    let ctx = common::ctx("1", "api_secret");
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    envelope.open(&sealed, &ctx).await.unwrap();
    assert!(matches!(
        envelope.rewrap(&sealed, &ctx).await.unwrap(),
        Rewrap::Current
    ));
    assert_eq!(unwraps.load(Ordering::SeqCst), 2);
    // Two seals of one plaintext draw two data keys.
    let a = envelope.seal(b"secret", &ctx).await.unwrap();
    let b = envelope.seal(b"secret", &ctx).await.unwrap();
    assert_ne!(a.to_bytes()[..60], b.to_bytes()[..60]);
}

#[tokio::test]
async fn clear_wipes_every_entry() {
    let (envelope, unwraps) = counting(Some(CacheLimits::default()));
    let ctx = common::ctx("1", "api_secret");
    let sealed = envelope.seal(b"secret", &ctx).await.unwrap().to_bytes();
    envelope.open(&sealed, &ctx).await.unwrap();
    envelope.data_key_cache().unwrap().clear();
    assert_eq!(envelope.data_key_cache().unwrap().stats().entries, 0);
    envelope.open(&sealed, &ctx).await.unwrap();
    assert_eq!(unwraps.load(Ordering::SeqCst), 2);
}

#[test]
fn limits_are_checked() {
    let bad = [
        CacheLimits {
            max_age: Duration::from_secs(301),
            ..CacheLimits::default()
        },
        CacheLimits {
            max_age: Duration::ZERO,
            ..CacheLimits::default()
        },
        CacheLimits {
            max_uses: 0,
            ..CacheLimits::default()
        },
        CacheLimits {
            max_bytes: 0,
            ..CacheLimits::default()
        },
        CacheLimits {
            max_entries: 0,
            ..CacheLimits::default()
        },
    ];
    for limits in bad {
        assert!(matches!(
            DataKeyCache::new(limits),
            Err(ConfigError::Invalid { .. })
        ));
    }
    assert!(
        DataKeyCache::new(CacheLimits {
            max_age: Duration::from_secs(300),
            ..CacheLimits::default()
        })
        .is_ok()
    );
}

#[tokio::test]
async fn concurrent_opens_of_one_value_all_succeed() {
    let (envelope, unwraps) = counting(Some(CacheLimits {
        max_uses: 10,
        ..CacheLimits::default()
    }));
    let ctx = common::ctx("1", "api_secret");
    let sealed = Arc::new(envelope.seal(b"secret", &ctx).await.unwrap().to_bytes());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (envelope, sealed, ctx) = (envelope.clone(), Arc::clone(&sealed), ctx.clone());
        tasks.push(tokio::spawn(async move {
            envelope
                .open(&sealed, &ctx)
                .await
                .map(|p| p.expose_secret() == b"secret")
        }));
    }
    for task in tasks {
        assert!(task.await.unwrap().unwrap());
    }
    // At most one unwrap per ten uses, plus concurrent misses.
    assert!(unwraps.load(Ordering::SeqCst) < 100);
}
