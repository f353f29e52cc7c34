//! The PostgreSQL store (feature `postgres`).

use sqlx::postgres::PgPool;

use crate::error::StoreError;

use super::sql::sql_store_impls;

/// Grants and risk state in PostgreSQL, shared by every instance of the service.
///
/// Wrap a pool with [`PgStore::new`] and run [`PgStore::migrate`] once
/// at start-up. A reservation is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE`
/// statement: PostgreSQL locks the (user, day) row and evaluates the condition against
/// its latest committed version, so concurrent reservations from any number of
/// connections and instances serialise and the cap holds (at `READ COMMITTED`, the
/// default, and above).
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

    /// Wraps a pool: the old name of [`PgStore::new`].
    #[deprecated(
        since = "0.1.0",
        note = "use `PgStore::new`, as in every Strongroom crate"
    )]
    #[must_use]
    pub fn from_pool(pool: PgPool) -> Self {
        Self::new(pool)
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the shipped migrations (versions 30001 and up). Migrations of other crates
    /// in the same database are left alone.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migration`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }
}

sql_store_impls!(PgStore, sqlx::Postgres);

/// The old name of [`PgStore`].
#[deprecated(
    since = "0.1.0",
    note = "renamed `PgStore`, as in every Strongroom crate"
)]
pub type PostgresStore = PgStore;
