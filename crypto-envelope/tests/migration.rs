//! The migration scenario of `common::migration` (local master key to another backend,
//! killed and resumed, payloads unchanged) run against a stand-in remote backend, so
//! that the scenario itself is tested without a server. Each remote backend's own test
//! file runs it against the real server.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use crypto_envelope::{
    BackendError, DataKey, EncryptionContext, KekBackend, KeyRef, LocalKeyRing, MemoryStore,
    SecretStore, SqliteStore, Wrapped,
};

/// A local key ring under another backend id: what a remote backend looks like to the
/// envelope.
#[derive(Debug)]
struct StandIn(LocalKeyRing);

impl StandIn {
    fn shared() -> Arc<dyn KekBackend> {
        Arc::new(Self(common::ring(9)))
    }
}

#[async_trait]
impl KekBackend for StandIn {
    fn id(&self) -> &str {
        "stand-in"
    }

    fn primary_key(&self) -> KeyRef<'_> {
        self.0.primary_key()
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        self.0.wrap(dek, aad, context).await
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        self.0.unwrap(key, wrapped, aad, context).await
    }
}

#[tokio::test]
async fn local_to_another_backend_memory() {
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    common::migration::local_to(store, StandIn::shared()).await;
}

#[tokio::test]
async fn local_to_another_backend_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    common::migration::local_to(Arc::new(store), StandIn::shared()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn local_to_another_backend_postgres() {
    let schema = common::pg::PgSchema::create("envelope_migrate", 4).await;
    common::migration::local_to(Arc::new(schema.store().await), StandIn::shared()).await;
    schema.drop_schema().await;
}
