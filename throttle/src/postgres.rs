//! PostgreSQL store (feature `postgres`): each decision is one call of one function of
//! migration 40001 (one statement, one round trip), atomic through the key's row lock.

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::{BackoffPolicy, BackoffState, Decision, Quota, Unavailable, gcra_decision, micros};

/// Longest wait for one decision (pool acquisition included) before it counts as
/// [`Unavailable`].
const TIMEOUT: Duration = Duration::from_secs(2);

/// Limiter state in PostgreSQL (tables `throttle_*`, migration 40001).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Unavailable {
    Unavailable::new("postgres", Some(Box::new(e)))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgStore {
    /// Wraps an existing pool (run [`PgStore::migrate`] once).
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Connects to `url` and applies the migration.
    ///
    /// # Errors
    ///
    /// [`Unavailable`] when the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, Unavailable> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(TIMEOUT)
            .connect(url)
            .await
            .map_err(unavailable)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the throttle migration, ignoring other crates' migrations in the same
    /// database.
    ///
    /// # Errors
    ///
    /// [`Unavailable`].
    pub async fn migrate(&self) -> Result<(), Unavailable> {
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await.map_err(unavailable)
    }

    /// `SELECT 1` within the 2 s time-out (see [`crate::Store::ping`]).
    ///
    /// # Errors
    ///
    /// [`Unavailable`].
    pub async fn ping(&self) -> Result<(), Unavailable> {
        tokio::time::timeout(TIMEOUT, sqlx::query("SELECT 1").execute(&self.pool))
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
            .map(|_| ())
    }

    /// Deletes rows that count as absent (rate limits back at a full bucket, backoff keys
    /// past `forget_after`). Decisions never depend on it; call it now and then to keep
    /// the tables small. Returns the number of rows deleted.
    ///
    /// # Errors
    ///
    /// [`Unavailable`].
    pub async fn purge_expired(&self, now: Duration) -> Result<u64, Unavailable> {
        let now = to_i64(micros(now));
        let a = sqlx::query("DELETE FROM throttle_gcra WHERE tat < $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        let b = sqlx::query("DELETE FROM throttle_backoff WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(a.rows_affected() + b.rows_affected())
    }

    /// The pool.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn gcra(
        &self,
        name: &str,
        key: &str,
        now: Duration,
        quota: &Quota,
    ) -> Result<Decision, Unavailable> {
        let now = micros(now);
        let query = sqlx::query("SELECT allowed, tat FROM throttle_gcra_check($1, $2, $3, $4)")
            .bind(format!("{name}:{key}"))
            .bind(to_i64(now))
            .bind(to_i64(quota.interval_us))
            .bind(to_i64(quota.span_us()))
            .fetch_one(&self.pool);
        let row = tokio::time::timeout(TIMEOUT, query)
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        let allowed: bool = row.try_get("allowed").map_err(unavailable)?;
        let tat: i64 = row.try_get("tat").map_err(unavailable)?;
        Ok(gcra_decision(allowed, to_u64(tat), now, quota))
    }

    pub(crate) async fn backoff_check(
        &self,
        name: &str,
        key: &str,
        now: u64,
        policy: &BackoffPolicy,
    ) -> Result<BackoffState, Unavailable> {
        let query = sqlx::query(
            "SELECT allowed, failures, next_at, expires_at \
             FROM throttle_backoff_check($1, $2, $3, $4, $5, $6)",
        );
        let row = self.backoff_call(query, name, key, now, policy).await?;
        Ok(BackoffState {
            allowed: row.try_get("allowed").map_err(unavailable)?,
            failures: to_u64(row.try_get("failures").map_err(unavailable)?),
            next_at: to_u64(row.try_get("next_at").map_err(unavailable)?),
            expires_at: to_u64(row.try_get("expires_at").map_err(unavailable)?),
        })
    }

    pub(crate) async fn backoff_failure(
        &self,
        name: &str,
        key: &str,
        now: u64,
        policy: &BackoffPolicy,
    ) -> Result<BackoffState, Unavailable> {
        let query = sqlx::query(
            "SELECT failures, next_at, expires_at \
             FROM throttle_backoff_failure($1, $2, $3, $4, $5, $6)",
        );
        let row = self.backoff_call(query, name, key, now, policy).await?;
        Ok(BackoffState {
            allowed: false,
            failures: to_u64(row.try_get("failures").map_err(unavailable)?),
            next_at: to_u64(row.try_get("next_at").map_err(unavailable)?),
            expires_at: to_u64(row.try_get("expires_at").map_err(unavailable)?),
        })
    }

    async fn backoff_call<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        name: &str,
        key: &str,
        now: u64,
        policy: &BackoffPolicy,
    ) -> Result<sqlx::postgres::PgRow, Unavailable> {
        let query = query
            .bind(format!("{name}:{key}"))
            .bind(to_i64(now))
            .bind(i64::from(policy.free_failures))
            .bind(to_i64(policy.base_us))
            .bind(to_i64(policy.cap_us))
            .bind(to_i64(policy.forget_us))
            .fetch_one(&self.pool);
        tokio::time::timeout(TIMEOUT, query)
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }

    pub(crate) async fn backoff_reset(&self, name: &str, key: &str) -> Result<(), Unavailable> {
        let query = sqlx::query("DELETE FROM throttle_backoff WHERE key = $1")
            .bind(format!("{name}:{key}"))
            .execute(&self.pool);
        tokio::time::timeout(TIMEOUT, query)
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(())
    }
}
