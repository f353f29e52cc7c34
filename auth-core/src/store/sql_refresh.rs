//! [`RefreshStore`](crate::refresh::RefreshStore) for the SQL stores (tables
//! `auth_refresh_families` and `auth_refresh_tokens`, migration 20020). Both dialects
//! accept `$N` placeholders and `RETURNING`; the one difference is how a writing
//! transaction starts, passed in as `$begin`: SQLite takes the write lock up front
//! (`BEGIN IMMEDIATE`, so that concurrent rotations queue on the busy timeout instead of
//! failing a lock upgrade), PostgreSQL uses a plain `BEGIN` (the rotation's `UPDATE` locks
//! the family row; a concurrent rotation of the same token waits for it, then finds the
//! token no longer current).

/// Implements `RefreshStore` for `$store` (a struct with a `pool: sqlx::Pool<$db>` field).
macro_rules! impl_sql_refresh_store {
    ($store:ty, $db:ty, $begin:literal) => {
        mod refresh_sql {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use super::*;
            use crate::refresh::{FamilyRecord, NextToken, RefreshStore, Rotation};
            use crate::store::{StoreError, scopes_from_column, scopes_to_column};
            use crate::user::{UserState, WithUser};

            type DbRow = <$db as sqlx::Database>::Row;

            /// The family columns every query returns, in this order.
            const FAMILY_COLUMNS: &str = "id, user_id, user_epoch, created_at, expires_at, \
                idle_expires_at, last_used_at, generation, amr, auth_time, revoked_at";

            fn family_from_row(row: &DbRow) -> Result<FamilyRecord, StoreError> {
                let amr: String = row.try_get("amr")?;
                Ok(FamilyRecord::new(
                    row.try_get::<String, _>("id")?,
                    row.try_get::<String, _>("user_id")?,
                    row.try_get::<i64, _>("user_epoch")?,
                    row.try_get::<i64, _>("created_at")?,
                    row.try_get::<i64, _>("expires_at")?,
                    row.try_get::<i64, _>("idle_expires_at")?,
                )
                .with_auth(scopes_from_column(&amr), row.try_get::<i64, _>("auth_time")?)
                .with_rotation(
                    row.try_get::<i64, _>("generation")?,
                    row.try_get::<i64, _>("last_used_at")?,
                    row.try_get::<i64, _>("idle_expires_at")?,
                )
                .with_revoked_at(row.try_get::<Option<i64>, _>("revoked_at")?))
            }

            /// The user columns of the LEFT JOIN (`NULL` when the user row is missing).
            fn user_from_row(row: &DbRow) -> Result<Option<UserState>, StoreError> {
                let disabled = row.try_get::<Option<bool>, _>("u_disabled")?;
                let must_change = row.try_get::<Option<bool>, _>("u_must_change")?;
                let epoch = row.try_get::<Option<i64>, _>("u_epoch")?;
                Ok(match (disabled, must_change, epoch) {
                    (Some(disabled), Some(must_change_password), Some(epoch)) => {
                        Some(UserState {
                            disabled,
                            must_change_password,
                            epoch,
                        })
                    }
                    _ => None,
                })
            }

            /// Rotates in one statement: the family's current digest moves on only while
            /// the family is live at `$2` and its user (read in the same statement) is
            /// enabled and at the family's epoch.
            const ROTATE: &str = "UPDATE auth_refresh_families SET token_digest = $1, \
                generation = generation + 1, last_used_at = $2, idle_expires_at = $3 \
                WHERE token_digest = $4 AND revoked_at IS NULL \
                AND expires_at > $2 AND idle_expires_at > $2 \
                AND EXISTS (SELECT 1 FROM auth_users u WHERE u.id = auth_refresh_families.user_id \
                    AND u.session_epoch = auth_refresh_families.user_epoch AND NOT u.disabled) \
                RETURNING id, user_id, user_epoch, created_at, expires_at, idle_expires_at, \
                last_used_at, generation, amr, auth_time, revoked_at";

            /// The family whose current token has digest `$1`, with its user's state.
            const CURRENT_WITH_USER: &str = "SELECT f.id, f.user_id, f.user_epoch, \
                f.created_at, f.expires_at, f.idle_expires_at, f.last_used_at, f.generation, \
                f.amr, f.auth_time, f.revoked_at, u.disabled AS u_disabled, \
                u.must_change_password AS u_must_change, u.session_epoch AS u_epoch \
                FROM auth_refresh_families f LEFT JOIN auth_users u ON u.id = f.user_id \
                WHERE f.token_digest = $1";

            /// Which families the sweep deletes (`$1` is now).
            const ENDED: &str = "revoked_at IS NOT NULL OR expires_at <= $1 \
                OR idle_expires_at <= $1 OR NOT EXISTS (SELECT 1 FROM auth_users u \
                WHERE u.id = auth_refresh_families.user_id \
                AND u.session_epoch = auth_refresh_families.user_epoch)";

            #[async_trait]
            impl RefreshStore for $store {
                async fn insert_family(
                    &self,
                    family: &FamilyRecord,
                    token_digest: &[u8; 32],
                ) -> Result<(), StoreError> {
                    // Inserted only while the user is enabled and still at the epoch the
                    // login read: one statement, like a session insert.
                    let done = sqlx::query(
                        "INSERT INTO auth_refresh_families \
                         (id, user_id, user_epoch, token_digest, generation, created_at, \
                          expires_at, idle_expires_at, last_used_at, amr, auth_time) \
                         SELECT $1, u.id, u.session_epoch, $3, $4, $5, $6, $7, $8, $9, $10 \
                         FROM auth_users u \
                         WHERE u.id = $2 AND u.session_epoch = $11 AND NOT u.disabled",
                    )
                    .bind(family.id())
                    .bind(family.user_id())
                    .bind(&token_digest[..])
                    .bind(family.generation())
                    .bind(family.created_at())
                    .bind(family.expires_at())
                    .bind(family.idle_expires_at())
                    .bind(family.last_used_at())
                    .bind(scopes_to_column(family.amr()))
                    .bind(family.auth_time())
                    .bind(family.epoch())
                    .execute(&self.pool)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::UserRefused);
                    }
                    Ok(())
                }

                async fn rotate(
                    &self,
                    presented: &[u8; 32],
                    next: &NextToken,
                ) -> Result<Rotation, StoreError> {
                    let mut tx = self.pool.begin_with($begin).await?;
                    let rotated = sqlx::query(ROTATE)
                        .bind(&next.digest[..])
                        .bind(next.now)
                        .bind(next.idle_expires_at)
                        .bind(&presented[..])
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = rotated {
                        let family = family_from_row(&row)?;
                        // The spent digest, for reuse detection; same transaction.
                        sqlx::query(
                            "INSERT INTO auth_refresh_tokens (token_digest, family_id, rotated_at) \
                             VALUES ($1, $2, $3)",
                        )
                        .bind(&presented[..])
                        .bind(family.id())
                        .bind(next.now)
                        .execute(&mut *tx)
                        .await?;
                        tx.commit().await?;
                        return Ok(Rotation::Rotated(family));
                    }
                    // Not rotated: current but refused, spent (reuse), or unknown.
                    let current = sqlx::query(CURRENT_WITH_USER)
                        .bind(&presented[..])
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = current {
                        let found = WithUser {
                            record: family_from_row(&row)?,
                            user: user_from_row(&row)?,
                        };
                        tx.commit().await?;
                        return Ok(Rotation::Refused(found));
                    }
                    let spent = sqlx::query(
                        "SELECT family_id FROM auth_refresh_tokens WHERE token_digest = $1",
                    )
                    .bind(&presented[..])
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(spent) = spent else {
                        tx.commit().await?;
                        return Ok(Rotation::Unknown);
                    };
                    let family_id: String = spent.try_get("family_id")?;
                    let revoked = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE auth_refresh_families SET revoked_at = COALESCE(revoked_at, $1) \
                         WHERE id = $2 RETURNING {FAMILY_COLUMNS}"
                    )))
                    .bind(next.now)
                    .bind(&family_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(match revoked {
                        Some(row) => Rotation::Reused(family_from_row(&row)?),
                        // A spent digest left behind by a sweep without foreign keys.
                        None => Rotation::Unknown,
                    })
                }

                async fn revoke_by_digest(
                    &self,
                    digest: &[u8; 32],
                    now: i64,
                ) -> Result<Option<FamilyRecord>, StoreError> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE auth_refresh_families SET revoked_at = COALESCE(revoked_at, $1) \
                         WHERE token_digest = $2 OR id = (SELECT family_id FROM \
                         auth_refresh_tokens WHERE token_digest = $2) \
                         RETURNING {FAMILY_COLUMNS}"
                    )))
                    .bind(now)
                    .bind(&digest[..])
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(family_from_row)
                    .transpose()
                }

                async fn revoke_user_families(
                    &self,
                    user_id: &str,
                    now: i64,
                ) -> Result<u64, StoreError> {
                    let done = sqlx::query(
                        "UPDATE auth_refresh_families SET revoked_at = $1 \
                         WHERE user_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected())
                }

                async fn revoke_family(
                    &self,
                    user_id: &str,
                    family_id: &str,
                    now: i64,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE auth_refresh_families SET revoked_at = $1 \
                         WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(family_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn set_auth_time(
                    &self,
                    user_id: &str,
                    family_id: &str,
                    auth_time: i64,
                    amr: &[String],
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(
                        "UPDATE auth_refresh_families SET auth_time = $1, amr = $2 \
                         WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
                    )
                    .bind(auth_time)
                    .bind(scopes_to_column(amr))
                    .bind(family_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn user_families(
                    &self,
                    user_id: &str,
                ) -> Result<Vec<FamilyRecord>, StoreError> {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {FAMILY_COLUMNS} FROM auth_refresh_families WHERE user_id = $1 \
                         ORDER BY created_at DESC, id ASC"
                    )))
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(family_from_row)
                    .collect()
                }

                async fn delete_expired_families(&self, now: i64) -> Result<u64, StoreError> {
                    let mut tx = self.pool.begin_with($begin).await?;
                    // Spent digests first: a SQLite pool opened without foreign keys does
                    // not cascade.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM auth_refresh_tokens WHERE family_id IN \
                         (SELECT id FROM auth_refresh_families WHERE {ENDED})"
                    )))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM auth_refresh_families WHERE {ENDED}"
                    )))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(done.rows_affected())
                }
            }
        }
    };
}

pub(crate) use impl_sql_refresh_store;
