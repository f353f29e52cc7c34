//! PostgreSQL store: the suites, two "instances" (two pools) sharing one limit, and a
//! store that is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "postgres")]
use crate::common;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use throttle::{Backoff, PgStore, Quota, RateLimiter, Store};

/// A fresh schema per run, and `n` stores (separate pools) on it.
async fn schema(n: usize) -> (sqlx::PgPool, String, Vec<Store>) {
    let url = std::env::var("STRONGROOM_PG_URL")
        .expect("STRONGROOM_PG_URL must be set to run the PostgreSQL tests");
    let schema = format!(
        "throttle_test_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let mut stores = Vec::new();
    for _ in 0..n {
        let options: PgConnectOptions = url.parse().unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap();
        let store = PgStore::new(pool);
        store.migrate().await.unwrap();
        stores.push(Store::Postgres(store));
    }
    (admin, schema, stores)
}

async fn drop_schema(admin: &sqlx::PgPool, schema: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_suites_and_two_instances_share_the_limit() {
    let (admin, name, stores) = schema(2).await;
    common::gcra_suite(&stores[0], "g").await;
    common::backoff_suite(&stores[0], "b").await;
    common::shared_suite(&stores[0], &stores[1], "s").await;
    common::concurrent_suite(&stores[0], &stores[1], "c").await;
    stores[0].ping().await.unwrap();
    let Store::Postgres(pg) = &stores[0] else {
        unreachable!()
    };
    // Migrating twice is a no-op; purge drops what counts as absent.
    pg.migrate().await.unwrap();
    assert!(
        pg.purge_expired(common::T0 + Duration::from_secs(86_400))
            .await
            .unwrap()
            > 0
    );
    drop_schema(&admin, &name).await;
}

#[tokio::test]
async fn postgres_down_fails_closed() {
    // A closed port: nothing listens on 127.0.0.1:9.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:9/none")
        .unwrap();
    let store = Store::Postgres(PgStore::new(pool));
    let q = Quota::new(5, Duration::from_secs(1)).unwrap();
    let err = RateLimiter::new(&store, "d", q)
        .unwrap()
        .check("k")
        .await
        .unwrap_err();
    assert_eq!(err.store(), "postgres");
    let b = Backoff::new(&store, "d", common::policy()).unwrap();
    assert_eq!(b.check("k").await.unwrap_err().store(), "postgres");
    assert!(b.record_failure("k").await.is_err());
    assert!(b.reset("k").await.is_err());
    assert_eq!(store.ping().await.unwrap_err().store(), "postgres");
}
