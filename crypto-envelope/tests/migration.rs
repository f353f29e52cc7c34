//! The migration scenario of `common::migration` (local master key to another backend,
//! killed and resumed, payloads unchanged) run against a stand-in remote backend, so
//! that the scenario itself is tested without a server. Each remote backend's own test
//! file runs it against the real server.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::sync::Arc;

use crypto_envelope::{KekBackend, MemoryStore, SecretStore, SqliteStore};

fn stand_in() -> Arc<dyn KekBackend> {
    Arc::new(common::Renamed::new("stand-in", 9))
}

#[tokio::test]
async fn local_to_another_backend_memory() {
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    common::migration::local_to(store, stand_in()).await;
}

#[tokio::test]
async fn local_to_another_backend_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    common::migration::local_to(Arc::new(store), stand_in()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn local_to_another_backend_postgres() {
    let schema = common::pg::PgSchema::create("envelope_migrate", 4).await;
    common::migration::local_to(Arc::new(schema.store().await), stand_in()).await;
    schema.drop_schema().await;
}
