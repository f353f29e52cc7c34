//! The SQLite store (feature `sqlite`).

use std::path::Path;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::AuditError;

use super::sql::{sql_store_impls, unavailable};

/// The audit chain in SQLite (tables `audit_*`, migration 60001).
///
/// Appends and pruning run in `BEGIN IMMEDIATE` transactions: SQLite's single writer
/// lock serialises them across connections and processes sharing the file, so sequence
/// numbers are assigned one after the other from the head row. Open it with
/// [`SqliteStore::open`] (WAL, `synchronous = FULL`, a 10 s busy timeout) or wrap a pool
/// you configured with [`SqliteStore::new`] (give it a busy timeout), then run
/// [`SqliteStore::migrate`] once.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Wraps a pool (shared with other crates, say).
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        SqliteStore { pool }
    }

    /// Opens (creating if missing) the database file at `path` and applies the
    /// migration.
    ///
    /// # Errors
    ///
    /// [`AuditError::Unavailable`] when the file cannot be opened;
    /// [`AuditError::Migration`] when the migration fails.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a record reported durable survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            // An embedded file cannot go stale: no ping (a round trip to the connection's
            // worker thread) before each use.
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(unavailable("open"))?;
        let store = SqliteStore::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies the shipped migration (version 60001). Migrations of other crates in the
    /// same database are left alone.
    ///
    /// # Errors
    ///
    /// [`AuditError::Migration`] when the migration fails.
    pub async fn migrate(&self) -> Result<(), AuditError> {
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| AuditError::Migration(Box::new(e)))
    }
}

sql_store_impls!(SqliteStore, sqlx::Sqlite, "BEGIN IMMEDIATE", "");
