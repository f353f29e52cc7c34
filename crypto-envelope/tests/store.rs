//! The secret stores (memory, SQLite, PostgreSQL) behind `Secrets`: owner scoping,
//! resolution order, swapped rows, bulk re-wrap, and no plaintext at rest.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::key;
use crypto_envelope::{
    Envelope, Ephemeral, Error, LocalKeyRing, MemoryStore, Plaintext, Rewrapper, SecretRef,
    SecretStore, Secrets, SecretsError, Source, SqliteStore,
};

const CANARY: &str = "CANARY-5be21d-exchange-secret";

/// Key 1, or keys 1 and 2 with 2 primary (and 1 optionally retired).
fn ring_with(latest: u32, retire_v1: bool) -> LocalKeyRing {
    let mut builder = LocalKeyRing::builder().key(1, key(1));
    if latest == 2 {
        builder = builder.key(2, key(2));
    }
    if retire_v1 {
        builder = builder.retire(1);
    }
    builder.primary(latest).build().unwrap()
}

fn ring_v1() -> LocalKeyRing {
    ring_with(1, false)
}

fn ring_v2() -> LocalKeyRing {
    ring_with(2, false)
}

fn ring_v2_retired_v1() -> LocalKeyRing {
    ring_with(2, true)
}

fn secrets(store: Arc<dyn SecretStore>, ring: LocalKeyRing) -> Secrets {
    Secrets::new(Envelope::new(ring).unwrap(), store)
}

/// Every behaviour a store must show, run against each implementation.
async fn exercise(store: Arc<dyn SecretStore>) {
    let s = secrets(Arc::clone(&store), ring_v1());
    let alice_key = SecretRef::owner("alice", "BINANCE_SECRET").unwrap();
    let bob_key = SecretRef::owner("bob", "BINANCE_SECRET").unwrap();

    // Owner scoping.
    s.put(&alice_key, CANARY.as_bytes()).await.unwrap();
    assert_eq!(
        s.get(&alice_key).await.unwrap().unwrap().expose_secret(),
        CANARY.as_bytes()
    );
    assert!(s.get(&bob_key).await.unwrap().is_none());
    assert!(s.list("bob").await.unwrap().is_empty());
    assert!(!s.delete(&bob_key).await.unwrap());
    s.put(&bob_key, b"bob's own").await.unwrap();
    assert_eq!(
        s.get(&alice_key).await.unwrap().unwrap().expose_secret(),
        CANARY.as_bytes()
    );
    assert_eq!(
        s.get(&bob_key).await.unwrap().unwrap().expose_secret(),
        b"bob's own"
    );

    // Listing: names and metadata only.
    let listed = s.list("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "BINANCE_SECRET");
    assert!(listed[0].key.starts_with("local:mk-"));
    assert!(!format!("{listed:?}").contains(CANARY));

    // Replacing keeps created_at and moves updated_at forward (or equal within a second).
    let before = store.get(&alice_key).await.unwrap().unwrap();
    s.put(&alice_key, CANARY.as_bytes()).await.unwrap();
    let after = store.get(&alice_key).await.unwrap().unwrap();
    assert_eq!(before.meta.created_at, after.meta.created_at);
    assert!(after.meta.updated_at >= before.meta.updated_at);
    assert_ne!(before.sealed, after.sealed);

    // Two rows' blobs swapped: both refused.
    let a = store.get(&alice_key).await.unwrap().unwrap().sealed;
    let b = store.get(&bob_key).await.unwrap().unwrap().sealed;
    store.put(&alice_key, &b, "swapped", 0).await.unwrap();
    store.put(&bob_key, &a, "swapped", 0).await.unwrap();
    for k in [&alice_key, &bob_key] {
        assert!(matches!(
            s.get(k).await,
            Err(SecretsError::Envelope(Error::Refused))
        ));
    }
    store.put(&alice_key, &a, "restored", 0).await.unwrap();
    store.put(&bob_key, &b, "restored", 0).await.unwrap();

    // Resolution: ephemeral > scope override > owner > allowlisted environment.
    let s = s
        .with_env_allowlist(["FROM_ENV", "BINANCE_SECRET"])
        .with_env_lookup(|name| match name {
            "FROM_ENV" | "BINANCE_SECRET" | "NOT_ALLOWED" => Some(format!("env:{name}")),
            _ => None,
        });
    let bot = SecretRef::scoped("alice", "bot-7", "BINANCE_SECRET").unwrap();
    let none = Ephemeral::new();
    let r = s
        .resolve("alice", Some("bot-7"), "BINANCE_SECRET", &none)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.source, r.value.expose_secret()),
        (Source::Owner, CANARY.as_bytes())
    );
    s.put(&bot, b"bot override").await.unwrap();
    let r = s
        .resolve("alice", Some("bot-7"), "BINANCE_SECRET", &none)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.source, r.value.expose_secret()),
        (Source::Scope, &b"bot override"[..])
    );
    let r = s
        .resolve("alice", Some("bot-8"), "BINANCE_SECRET", &none)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.source, Source::Owner);
    let mut eph = Ephemeral::new();
    eph.insert("BINANCE_SECRET", Plaintext::from(&b"per call"[..]))
        .unwrap();
    let r = s
        .resolve("alice", Some("bot-7"), "BINANCE_SECRET", &eph)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.source, r.value.expose_secret()),
        (Source::Ephemeral, &b"per call"[..])
    );
    let r = s
        .resolve("carol", None, "FROM_ENV", &none)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.source, r.value.expose_secret()),
        (Source::Environment, &b"env:FROM_ENV"[..])
    );
    assert!(
        s.resolve("carol", None, "NOT_ALLOWED", &none)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.list("alice").await.unwrap().len(), 2);
    assert!(s.delete(&bot).await.unwrap());

    // Bulk re-wrap to key version 2, stopped after one batch and resumed.
    for i in 0..23 {
        let k = SecretRef::owner(&format!("user-{i}"), "API_SECRET").unwrap();
        s.put(&k, format!("{CANARY}-{i}").as_bytes()).await.unwrap();
    }
    let s2 = secrets(Arc::clone(&store), ring_v2());
    let mut first = Rewrapper::new(&s2).batch_size(10);
    let cursor = first.next_batch().await.unwrap().cursor;
    assert_eq!(first.progress().scanned, 10);
    let progress = Rewrapper::new(&s2)
        .resume_after(cursor)
        .batch_size(10)
        .run(|_| {})
        .await
        .unwrap();
    assert!(progress.done);
    assert!(progress.failed.is_empty(), "{progress:?}");
    assert_eq!(first.progress().rewrapped + progress.rewrapped, 25);
    // A second full run finds every row current.
    let again = Rewrapper::new(&s2).run(|_| {}).await.unwrap();
    assert_eq!((again.rewrapped, again.current), (0, 25));

    // Retire version 1: every row still opens.
    let s3 = secrets(Arc::clone(&store), ring_v2_retired_v1());
    assert_eq!(
        s3.get(&alice_key).await.unwrap().unwrap().expose_secret(),
        CANARY.as_bytes()
    );
    for i in 0..23 {
        let k = SecretRef::owner(&format!("user-{i}"), "API_SECRET").unwrap();
        let v = s3.get(&k).await.unwrap().unwrap();
        assert_eq!(v.expose_secret(), format!("{CANARY}-{i}").as_bytes());
    }
    assert!(store.list("user-3").await.unwrap()[0].key.ends_with("/v2"));
}

#[tokio::test]
async fn memory_store() {
    exercise(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn sqlite_store_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let store = SqliteStore::open(&path).await.unwrap();
    exercise(Arc::new(store.clone())).await;
    // The rows, as SQL sees them.
    let rows: Vec<RawRow> =
        sqlx::query_as("SELECT owner, scope, name, sealed, key_ref FROM strongroom_secrets")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_rows_hold_no_canary(&rows);
    // The raw files, journal included.
    store.pool().close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, b"CANARY"));
    }
}

#[tokio::test]
async fn logs_hold_no_secret() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let buf = Arc::clone(&buf);
        move || Capture(Arc::clone(&buf))
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .finish();
    // tracing caches each callsite's interest for the whole process, and while a single
    // dispatcher is registered it asks the *registering* thread's default: a test beside
    // this one, with no subscriber, could cache `never` for a line asserted here. A second
    // registered dispatcher makes the interest the union of both.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::subscriber::set_default(subscriber);
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    let s = secrets(Arc::clone(&store), ring_v1());
    let k = SecretRef::owner("alice", "K").unwrap();
    s.put(&k, CANARY.as_bytes()).await.unwrap();
    // A row that fails to re-wrap is logged (by id).
    let other = SecretRef::owner("bob", "K").unwrap();
    let sealed = store.get(&k).await.unwrap().unwrap().sealed;
    store.put(&other, &sealed, "copied", 0).await.unwrap();
    let progress = Rewrapper::new(&secrets(Arc::clone(&store), ring_v2()))
        .run(|_| {})
        .await
        .unwrap();
    assert_eq!(progress.failed.len(), 1);
    let logged = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("envelope.rewrap.row_refused"), "{logged}");
    assert!(!logged.contains(CANARY));
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// (owner, scope, name, sealed, key_ref) as a store's SQL returns them.
type RawRow = (String, String, String, Vec<u8>, String);

/// Every row `exercise` wrote is there, and none holds the canary in any column.
fn assert_rows_hold_no_canary(rows: &[RawRow]) {
    assert!(rows.len() >= 25);
    for row in rows {
        let all = format!("{} {} {} {}", row.0, row.1, row.2, row.4);
        assert!(!all.contains("CANARY"));
        assert!(!contains(&row.3, CANARY.as_bytes()));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn ids_are_checked() {
    assert!(SecretRef::owner("", "X").is_err());
    assert!(SecretRef::owner("alice", "bad name").is_err());
    assert!(SecretRef::owner("alice", &"x".repeat(256)).is_err());
    assert!(SecretRef::scoped("alice", "", "X").is_err());
    assert!(SecretRef::owner("al\nice", "X").is_err());
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::common::pg::PgSchema;
    use crypto_envelope::PgStore;

    /// Runs `test` on a pool whose search path is a fresh schema, then drops the schema
    /// (a test that panics leaves it behind for inspection).
    async fn with_isolated_pool<F: Future<Output = ()>>(test: impl FnOnce(sqlx::PgPool) -> F) {
        let schema = PgSchema::create("envelope_test", 4).await;
        test(schema.pool.clone()).await;
        schema.drop_schema().await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
    async fn postgres_store_holds_no_plaintext() {
        with_isolated_pool(|pool| async move {
            let store = PgStore::new(pool);
            store.migrate().await.unwrap();
            store.migrate().await.unwrap(); // idempotent
            exercise(Arc::new(store.clone())).await;
            let rows: Vec<RawRow> = sqlx::query_as(
                "SELECT owner, scope, name, sealed, key_ref FROM strongroom_secrets",
            )
            .fetch_all(store.pool())
            .await
            .unwrap();
            assert_rows_hold_no_canary(&rows);
        })
        .await;
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
    async fn postgres_outage_is_unavailable_not_empty() {
        with_isolated_pool(|pool| async move {
            let store = PgStore::new(pool.clone());
            store.migrate().await.unwrap();
            pool.close().await;
            let s = secrets(Arc::new(store), ring_v1());
            let err = s
                .get(&SecretRef::owner("alice", "K").unwrap())
                .await
                .unwrap_err();
            assert!(err.is_unavailable(), "{err:?}");
            let err = s.list("alice").await.unwrap_err();
            assert!(err.is_unavailable(), "{err:?}");
        })
        .await;
    }
}
