//! The PostgreSQL store (feature `postgres`).

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::error::AuditError;

use super::sql::{sql_store_impls, unavailable};

/// The audit chain in PostgreSQL (tables `audit_*`, migration 60001), shared by every
/// instance of the service.
///
/// Appends and pruning lock the one head row (`SELECT ... FOR UPDATE`) for the length of
/// their transaction, so instances writing at once form one chain: each batch takes the
/// next sequence numbers after the head it locked. Wrap a pool with [`PgStore::new`]
/// and run [`PgStore::migrate`] once, or use [`PgStore::connect`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Wraps a pool.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        PgStore { pool }
    }

    /// Connects to `url` (a 5 s acquire timeout) and applies the migration.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`] when the database cannot be reached;
    /// [`AuditError::Migration`] when the migration fails.
    pub async fn connect(url: &str) -> Result<Self, AuditError> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(unavailable("connect"))?;
        let store = PgStore::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the shipped migration (version 60001). Migrations of other crates in the
    /// same database are left alone.
    ///
    /// # Errors
    ///
    /// [`AuditError::Migration`] when the migration fails.
    pub async fn migrate(&self) -> Result<(), AuditError> {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| AuditError::Migration(Box::new(e)))
    }
}

sql_store_impls!(PgStore, sqlx::Postgres, "BEGIN", " FOR UPDATE");
