//! Every store suite against PostgreSQL, in a fresh schema per run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "postgres")]
mod support;

use std::sync::Arc;

use auth_core::PgStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
async fn postgres_store_suites() {
    let url = std::env::var("STRONGROOM_PG_URL")
        .expect("STRONGROOM_PG_URL must be set to run the PostgreSQL tests");
    let schema = format!(
        "auth_core_test_{}",
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
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let store = PgStore::new(pool);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    support::run_all(Arc::new(store)).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}
