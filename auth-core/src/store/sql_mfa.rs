//! [`MfaStore`](crate::mfa::MfaStore) for the SQL stores (tables of migration 20030).
//! Every single-use step is one conditional statement: the replay guard an `UPDATE ...
//! WHERE last_step < $step`, a recovery code an `UPDATE ... WHERE used_at IS NULL`, a
//! challenge an `UPDATE ... WHERE consumed_at IS NULL ... RETURNING`; under concurrency
//! exactly one writer sees its row affected (PostgreSQL re-evaluates the condition on the
//! row a concurrent update committed; SQLite serialises writers).

/// Implements `MfaStore` for `$store` (a struct with a `pool: sqlx::Pool<$db>` field).
macro_rules! impl_sql_mfa_store {
    ($store:ty, $db:ty) => {
        mod mfa_sql_impl {
            #[allow(clippy::wildcard_imports)]
            use super::*;
            use async_trait::async_trait;

            use crate::mfa::{
                ChallengeRecord, LoginKind, MfaRecord, MfaState, MfaStore, SealedTotpSecret,
                algorithm_from_name, algorithm_name,
            };
            use crate::secret::Digest;
            use crate::store::{StoreError, digest_from_column};

            type DbRow = <$db as sqlx::Database>::Row;

            fn record_from_row(row: &DbRow) -> Result<MfaRecord, StoreError> {
                let state: String = row.try_get("state")?;
                let algorithm: String = row.try_get("algorithm")?;
                Ok(MfaRecord {
                    user_id: row.try_get("user_id")?,
                    enrollment_id: row.try_get("enrollment_id")?,
                    sealed_secret: row.try_get("sealed_secret")?,
                    state: MfaState::parse(&state).ok_or(StoreError::Corrupt { field: "state" })?,
                    algorithm: algorithm_from_name(&algorithm)
                        .ok_or(StoreError::Corrupt { field: "algorithm" })?,
                    digits: u8::try_from(row.try_get::<i64, _>("digits")?)
                        .map_err(|_| StoreError::Corrupt { field: "digits" })?,
                    period: u64::try_from(row.try_get::<i64, _>("period")?)
                        .map_err(|_| StoreError::Corrupt { field: "period" })?,
                    last_step: row.try_get("last_step")?,
                    created_at: row.try_get("created_at")?,
                    activated_at: row.try_get("activated_at")?,
                })
            }

            fn challenge_from_row(row: &DbRow) -> Result<ChallengeRecord, StoreError> {
                let digest: Vec<u8> = row.try_get("token_digest")?;
                let kind: String = row.try_get("kind")?;
                Ok(ChallengeRecord {
                    token_digest: digest_from_column(&digest)?,
                    user_id: row.try_get("user_id")?,
                    user_epoch: row.try_get("user_epoch")?,
                    kind: LoginKind::parse(&kind).ok_or(StoreError::Corrupt { field: "kind" })?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            }

            #[async_trait]
            impl MfaStore for $store {
                async fn put_pending(&self, record: &MfaRecord) -> Result<bool, StoreError> {
                    // Inserts, or replaces a pending enrolment; an active one is left alone
                    // (the conflict update's WHERE is false: no row affected).
                    let done = sqlx::query(
                        "INSERT INTO auth_mfa (user_id, enrollment_id, sealed_secret, state, \
                         algorithm, digits, period, last_step, created_at, activated_at) \
                         VALUES ($1, $2, $3, 'pending', $4, $5, $6, NULL, $7, NULL) \
                         ON CONFLICT (user_id) DO UPDATE SET \
                         enrollment_id = excluded.enrollment_id, \
                         sealed_secret = excluded.sealed_secret, state = 'pending', \
                         algorithm = excluded.algorithm, digits = excluded.digits, \
                         period = excluded.period, last_step = NULL, \
                         created_at = excluded.created_at, activated_at = NULL \
                         WHERE auth_mfa.state = 'pending'",
                    )
                    .bind(&record.user_id)
                    .bind(&record.enrollment_id)
                    .bind(&record.sealed_secret)
                    .bind(algorithm_name(record.algorithm))
                    .bind(i64::from(record.digits))
                    .bind(i64::try_from(record.period).map_err(|_| StoreError::Corrupt { field: "period" })?)
                    .bind(record.created_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn mfa_record(&self, user_id: &str) -> Result<Option<MfaRecord>, StoreError> {
                    sqlx::query(
                        "SELECT user_id, enrollment_id, sealed_secret, state, algorithm, digits, \
                         period, last_step, created_at, activated_at FROM auth_mfa WHERE user_id = $1",
                    )
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(record_from_row)
                    .transpose()
                }

                async fn activate(
                    &self,
                    user_id: &str,
                    enrollment_id: &str,
                    step: i64,
                    recovery_digests: &[Digest],
                    now: i64,
                ) -> Result<bool, StoreError> {
                    let mut tx = self.pool.begin().await?;
                    let done = sqlx::query(
                        "UPDATE auth_mfa SET state = 'active', last_step = $1, activated_at = $2 \
                         WHERE user_id = $3 AND enrollment_id = $4 AND state = 'pending'",
                    )
                    .bind(step)
                    .bind(now)
                    .bind(user_id)
                    .bind(enrollment_id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM auth_mfa_recovery WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    for digest in recovery_digests {
                        sqlx::query(
                            "INSERT INTO auth_mfa_recovery (user_id, code_digest, used_at) \
                             VALUES ($1, $2, NULL)",
                        )
                        .bind(user_id)
                        .bind(&digest[..])
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                }

                async fn accept_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
                    // The replay guard: a compare-and-set on the last accepted step.
                    let done = sqlx::query(
                        "UPDATE auth_mfa SET last_step = $1 WHERE user_id = $2 \
                         AND state = 'active' AND (last_step IS NULL OR last_step < $1)",
                    )
                    .bind(step)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn use_recovery_code(
                    &self,
                    user_id: &str,
                    digest: &Digest,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE auth_mfa_recovery SET used_at = $1 \
                         WHERE user_id = $2 AND code_digest = $3 AND used_at IS NULL",
                    )
                    .bind(now)
                    .bind(user_id)
                    .bind(&digest[..])
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn recovery_codes_left(&self, user_id: &str) -> Result<u64, StoreError> {
                    let n: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM auth_mfa_recovery \
                         WHERE user_id = $1 AND used_at IS NULL",
                    )
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                    u64::try_from(n).map_err(|_| StoreError::Corrupt { field: "count" })
                }

                async fn delete_mfa(&self, user_id: &str) -> Result<bool, StoreError> {
                    let mut tx = self.pool.begin().await?;
                    let done = sqlx::query("DELETE FROM auth_mfa WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM auth_mfa_recovery WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM auth_mfa_challenges WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
                    sqlx::query(
                        "INSERT INTO auth_mfa_challenges \
                         (token_digest, user_id, user_epoch, kind, created_at, expires_at, consumed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, NULL)",
                    )
                    .bind(&record.token_digest[..])
                    .bind(&record.user_id)
                    .bind(record.user_epoch)
                    .bind(record.kind.as_str())
                    .bind(record.created_at)
                    .bind(record.expires_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn consume_challenge(
                    &self,
                    digest: &Digest,
                    now: i64,
                ) -> Result<Option<ChallengeRecord>, StoreError> {
                    sqlx::query(
                        "UPDATE auth_mfa_challenges SET consumed_at = $1 \
                         WHERE token_digest = $2 AND consumed_at IS NULL AND expires_at > $1 \
                         RETURNING token_digest, user_id, user_epoch, kind, created_at, expires_at",
                    )
                    .bind(now)
                    .bind(&digest[..])
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(challenge_from_row)
                    .transpose()
                }

                async fn delete_expired_challenges(&self, now: i64) -> Result<u64, StoreError> {
                    let done = sqlx::query(
                        "DELETE FROM auth_mfa_challenges \
                         WHERE expires_at <= $1 OR consumed_at IS NOT NULL",
                    )
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn sealed_secrets_page(
                    &self,
                    after: Option<&str>,
                    limit: u32,
                ) -> Result<Vec<SealedTotpSecret>, StoreError> {
                    // `$1 IS NULL` starts from the first user; the primary key orders the
                    // walk (the same collation for the comparison and the order).
                    let rows = sqlx::query(
                        "SELECT user_id, sealed_secret FROM auth_mfa \
                         WHERE ($1 IS NULL OR user_id > $1) ORDER BY user_id LIMIT $2",
                    )
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            Ok(SealedTotpSecret {
                                user_id: row.try_get("user_id")?,
                                sealed_secret: row.try_get("sealed_secret")?,
                            })
                        })
                        .collect()
                }

                async fn replace_sealed_secret(
                    &self,
                    user_id: &str,
                    old: &[u8],
                    new: &[u8],
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE auth_mfa SET sealed_secret = $1 \
                         WHERE user_id = $2 AND sealed_secret = $3",
                    )
                    .bind(new)
                    .bind(user_id)
                    .bind(old)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }
            }
        }
    };
}

pub(crate) use impl_sql_mfa_store;
