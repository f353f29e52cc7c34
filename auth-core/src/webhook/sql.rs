//! [`ReplayGuard`] for the SQL stores (table `auth_webhook_replay`, migration 20040).
//!
//! A claim is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`: the row is inserted,
//! or an expired row is replaced, or an unexpired row is left as it is (the update writes
//! back its own values) and returned. The statement carries a fresh random `claim_id`;
//! the caller won exactly when the returned row holds its `claim_id`. PostgreSQL locks
//! the conflicting row and re-evaluates the update on the committed version, SQLite
//! serialises writers, so of concurrent claims exactly one inserts (or replaces) and the
//! others see its row.

use async_trait::async_trait;
use sqlx::Row as _;

use super::{Claim, ReplayGuard};
use crate::secret::random_id;
use crate::store::StoreError;

const CLAIM: &str = "INSERT INTO auth_webhook_replay \
     (sender, delivery_id, reference, claim_id, expires_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (sender, delivery_id) DO UPDATE SET \
     reference = CASE WHEN auth_webhook_replay.expires_at < $6 \
         THEN excluded.reference ELSE auth_webhook_replay.reference END, \
     claim_id = CASE WHEN auth_webhook_replay.expires_at < $6 \
         THEN excluded.claim_id ELSE auth_webhook_replay.claim_id END, \
     expires_at = CASE WHEN auth_webhook_replay.expires_at < $6 \
         THEN excluded.expires_at ELSE auth_webhook_replay.expires_at END \
     RETURNING reference, claim_id";

const DELETE_EXPIRED: &str = "DELETE FROM auth_webhook_replay WHERE expires_at < $1";

/// Implements `ReplayGuard` for `$store` (which has `pool() -> &sqlx::Pool<_>`).
macro_rules! impl_sql_replay_guard {
    ($store:ty) => {
        #[async_trait]
        impl ReplayGuard for $store {
            async fn claim(
                &self,
                sender: &str,
                delivery_id: &str,
                reference: &str,
                expires_at: i64,
                now: i64,
            ) -> Result<Claim, StoreError> {
                let claim_id = random_id().map_err(|e| StoreError::Backend(Box::new(e)))?;
                let row = sqlx::query(CLAIM)
                    .bind(sender)
                    .bind(delivery_id)
                    .bind(reference)
                    .bind(&claim_id)
                    .bind(expires_at)
                    .bind(now)
                    .fetch_one(self.pool())
                    .await?;
                let won: String = row.try_get("claim_id")?;
                if won == claim_id {
                    Ok(Claim::First)
                } else {
                    Ok(Claim::Duplicate {
                        reference: row.try_get("reference")?,
                    })
                }
            }

            async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(DELETE_EXPIRED)
                    .bind(now)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

#[cfg(feature = "sqlite")]
impl_sql_replay_guard!(crate::store::SqliteStore);
#[cfg(feature = "postgres")]
impl_sql_replay_guard!(crate::store::PgStore);
