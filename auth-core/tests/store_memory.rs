//! Every store suite against the in-memory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
mod support;

use std::sync::Arc;

use auth_core::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_suites() {
    support::run_all(Arc::new(MemoryStore::new())).await;
}
