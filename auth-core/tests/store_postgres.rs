//! Every store suite against PostgreSQL, in a fresh schema per run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "postgres")]
use crate::support;

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_store_suites() {
    let pg = support::PgSchema::create("auth_core_test", 4).await;
    // Migrating twice is a no-op.
    pg.store.migrate().await.unwrap();
    support::run_all(Arc::new(pg.store.clone())).await;
    pg.drop_schema().await;
}
