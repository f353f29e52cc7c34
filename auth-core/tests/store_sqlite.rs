//! Every store suite against SQLite (a fresh database file per test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "sqlite")]
use crate::support;

use std::sync::Arc;

use auth_core::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_suites() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    // Migrations are idempotent.
    store.migrate().await.unwrap();
    support::run_all(Arc::new(store)).await;
}
