//! The SQLite store (feature `sqlite`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::StoreError;

use super::sql::sql_store_impls;

/// Grants and risk state in SQLite.
///
/// Open it with [`SqliteStore::builder`] (WAL, a busy timeout, `synchronous = FULL`, a
/// pool of several connections) or wrap a pool you configured with
/// [`SqliteStore::new`]. Run [`SqliteStore::migrate`] once at start-up.
///
/// A reservation is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statement: SQLite
/// runs it under the database write lock, so concurrent reservations from any number of
/// connections (or processes sharing the file) serialise and the cap holds.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Opens a [`SqliteStore`] on a database file.
#[derive(Debug, Clone)]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    max_connections: u32,
    busy_timeout: Duration,
}

impl SqliteStoreBuilder {
    /// Pool size (default 8).
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a connection waits for the write lock before failing (default 10 s).
    /// A timeout is a store failure: the decision denies, the order is refused.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens (creating if missing) the database and applies the migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the file cannot be opened;
    /// [`StoreError::Migration`] when the migrations fail.
    pub async fn open(self) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(&self.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed reservation survives power loss, so a crash cannot hand
            // back room under the cap that was already spent.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(self.busy_timeout);
        let pool = SqlitePoolOptions::new()
            // An embedded file cannot go stale: no ping (a round trip to the connection's
            // worker thread) before each use.
            .test_before_acquire(false)
            .max_connections(self.max_connections)
            .connect_with(options)
            .await?;
        let store = SqliteStore::new(pool);
        store.migrate().await?;
        Ok(store)
    }
}

impl SqliteStore {
    /// A builder for a store in the database file at `path`.
    #[must_use]
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_path_buf(),
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
        }
    }

    /// Wraps an existing pool (shared with other crates, say). Set a busy timeout on it:
    /// without one, concurrent writers fail instead of waiting.
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        SqliteStore { pool }
    }

    /// Wraps an existing pool: the old name of [`SqliteStore::new`].
    #[deprecated(
        since = "0.1.0",
        note = "use `SqliteStore::new`, as in every Strongroom crate"
    )]
    #[must_use]
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self::new(pool)
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies the shipped migrations (versions 30001 and up). Migrations of other crates
    /// in the same database are left alone.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migration`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }
}

sql_store_impls!(SqliteStore, sqlx::Sqlite);
