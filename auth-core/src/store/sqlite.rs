//! SQLite store (feature `sqlite`).

use std::str::FromStr as _;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// Users, sessions and API keys in SQLite (tables `auth_*`, migrations 20001 and up).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Wraps an existing pool (run [`SqliteStore::migrate`] once).
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Opens (creating if missing) the database at `url` (e.g. `sqlite://auth.db`) and
    /// applies the migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] or [`StoreError::Migrate`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true);
        // An embedded file cannot go stale: no ping (a round trip to the connection's
        // worker thread) before each use.
        let pool = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Applies auth-core's migrations, ignoring other crates' migrations in the same
    /// database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migrate`].
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(Box::new(e)))
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

super::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite);

super::sql_mfa::impl_sql_mfa_store!(SqliteStore, sqlx::Sqlite);
super::sql_refresh::impl_sql_refresh_store!(SqliteStore, sqlx::Sqlite, "BEGIN IMMEDIATE");
