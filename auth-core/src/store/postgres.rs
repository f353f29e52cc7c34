//! PostgreSQL store (feature `postgres`).

use sqlx::postgres::{PgPool, PgPoolOptions};

/// Users, sessions and API keys in PostgreSQL (tables `auth_*`, migrations 20001 and up).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Wraps an existing pool (run [`PgStore::migrate`] once).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects to `url` and applies the migrations.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] or [`StoreError::Migrate`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().connect(url).await?;
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
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(Box::new(e)))
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

super::sql::impl_sql_store!(PgStore, sqlx::Postgres);

super::sql_mfa::impl_sql_mfa_store!(PgStore, sqlx::Postgres);
super::sql_refresh::impl_sql_refresh_store!(PgStore, sqlx::Postgres, "BEGIN");
