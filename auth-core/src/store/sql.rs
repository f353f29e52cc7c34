//! The SQL shared by the SQLite and PostgreSQL stores. Both dialects accept `$N`
//! placeholders and the migrations keep the column types equivalent, so one macro
//! implements the three store traits for each back end.

/// Implements `UserStore`, `SessionStore` and `ApiKeyStore` for `$store` (a struct with a
/// `pool: sqlx::Pool<$db>` field).
macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::api_key::{ApiKeyRecord, ApiKeyStore};
        use crate::session::{SessionRecord, SessionStore};
        use crate::store::{
            StoreError, StoreFuture, digest_from_column, scopes_from_column, scopes_to_column,
        };
        use crate::user::{RevokeScope, SsoIdentity, User, UserState, UserStore, WithUser};

        type DbRow = <$db as sqlx::Database>::Row;


        fn user_from_row(row: &DbRow) -> Result<User, StoreError> {
            let mut user = User::new(
                row.try_get::<String, _>("id")?,
                row.try_get::<String, _>("email")?,
                row.try_get::<Option<String>, _>("password_hash")?,
                row.try_get::<i64, _>("created_at")?,
            );
            user.must_change_password = row.try_get::<bool, _>("must_change_password")?;
            user.disabled = row.try_get::<bool, _>("disabled")?;
            user.email_verified = row.try_get::<bool, _>("email_verified")?;
            user.session_epoch = row.try_get::<i64, _>("session_epoch")?;
            user.key_epoch = row.try_get::<i64, _>("key_epoch")?;
            Ok(user)
        }

        /// The user columns of a credential lookup's LEFT JOIN (`NULL` when the user row
        /// is missing).
        fn user_state_from_row(row: &DbRow) -> Result<Option<UserState>, StoreError> {
            let disabled = row.try_get::<Option<bool>, _>("u_disabled")?;
            let must_change = row.try_get::<Option<bool>, _>("u_must_change")?;
            let epoch = row.try_get::<Option<i64>, _>("u_epoch")?;
            Ok(match (disabled, must_change, epoch) {
                (Some(disabled), Some(must_change_password), Some(epoch)) => Some(UserState {
                    disabled,
                    must_change_password,
                    epoch,
                }),
                _ => None,
            })
        }

        fn session_from_row(row: &DbRow) -> Result<SessionRecord, StoreError> {
            let digest: Vec<u8> = row.try_get("token_digest")?;
            Ok(SessionRecord::new(
                row.try_get::<String, _>("id")?,
                row.try_get::<String, _>("user_id")?,
                digest_from_column(&digest)?,
                row.try_get::<i64, _>("created_at")?,
                row.try_get::<i64, _>("expires_at")?,
            )
            .with_epoch(row.try_get::<i64, _>("user_epoch")?)
            .with_mfa_at(row.try_get::<Option<i64>, _>("mfa_at")?))
        }

        fn api_key_from_row(row: &DbRow) -> Result<ApiKeyRecord, StoreError> {
            let digest: Vec<u8> = row.try_get("secret_digest")?;
            let scopes: String = row.try_get("scopes")?;
            Ok(ApiKeyRecord::new(
                row.try_get::<String, _>("id")?,
                row.try_get::<String, _>("user_id")?,
                row.try_get::<String, _>("name")?,
                digest_from_column(&digest)?,
                scopes_from_column(&scopes),
                row.try_get::<i64, _>("created_at")?,
            )
            .with_last_used_at(row.try_get::<Option<i64>, _>("last_used_at")?)
            .with_revoked_at(row.try_get::<Option<i64>, _>("revoked_at")?)
            .with_epoch(row.try_get::<i64, _>("user_epoch")?))
        }

        const INSERT_USER: &str = "INSERT INTO auth_users \
            (id, email, password_hash, must_change_password, disabled, email_verified, \
             session_epoch, key_epoch, created_at) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

        /// Bumps the epochs of user `$3` by `$1` (sessions) and `$2` (keys).
        const BUMP_EPOCHS: &str = "UPDATE auth_users SET session_epoch = session_epoch + $1, \
            key_epoch = key_epoch + $2 WHERE id = $3";

        #[async_trait]
        impl UserStore for $store {
            async fn create_user(&self, user: &User) -> Result<(), StoreError> {
                sqlx::query(INSERT_USER)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .bind(user.must_change_password)
                    .bind(user.disabled)
                    .bind(user.email_verified)
                    .bind(user.session_epoch)
                    .bind(user.key_epoch)
                    .bind(user.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn create_user_with_identity(
                &self,
                user: &User,
                identity: &SsoIdentity,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(INSERT_USER)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .bind(user.must_change_password)
                    .bind(user.disabled)
                    .bind(user.email_verified)
                    .bind(user.session_epoch)
                    .bind(user.key_epoch)
                    .bind(user.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO auth_sso_identities (issuer, subject, user_id, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&identity.issuer)
                .bind(&identity.subject)
                .bind(&user.id)
                .bind(user.created_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
                sqlx::query("SELECT u.id, u.email, u.password_hash, u.must_change_password, u.disabled, u.email_verified, u.session_epoch, u.key_epoch, u.created_at FROM auth_users u WHERE u.id = $1")
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
                sqlx::query("SELECT u.id, u.email, u.password_hash, u.must_change_password, u.disabled, u.email_verified, u.session_epoch, u.key_epoch, u.created_at FROM auth_users u WHERE u.email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn set_password(
                &self,
                user_id: &str,
                expected: Option<&str>,
                password_hash: &str,
                must_change_password: bool,
                revoke: RevokeScope,
            ) -> Result<bool, StoreError> {
                // Compare-and-set on the hash read earlier; the epoch bump is part of the
                // same statement.
                let done = sqlx::query(
                    "UPDATE auth_users SET password_hash = $1, must_change_password = $2, \
                     session_epoch = session_epoch + $3, key_epoch = key_epoch + $4 \
                     WHERE id = $5 AND (password_hash = $6 OR (password_hash IS NULL AND $7))",
                )
                .bind(password_hash)
                .bind(must_change_password)
                .bind(revoke.session_bump())
                .bind(revoke.key_bump())
                .bind(user_id)
                .bind(expected)
                .bind(expected.is_none())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_disabled(
                &self,
                user_id: &str,
                disabled: bool,
            ) -> Result<bool, StoreError> {
                let bump = if disabled { RevokeScope::All } else { RevokeScope::None };
                let done = sqlx::query(
                    "UPDATE auth_users SET disabled = $1, \
                     session_epoch = session_epoch + $2, key_epoch = key_epoch + $3 \
                     WHERE id = $4",
                )
                .bind(disabled)
                .bind(bump.session_bump())
                .bind(bump.key_bump())
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_credentials(
                &self,
                user_id: &str,
                revoke: RevokeScope,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(BUMP_EPOCHS)
                    .bind(revoke.session_bump())
                    .bind(revoke.key_bump())
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_email_verified(&self, user_id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE auth_users SET email_verified = TRUE WHERE id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn user_by_identity(
                &self,
                identity: &SsoIdentity,
            ) -> Result<Option<User>, StoreError> {
                sqlx::query("SELECT u.id, u.email, u.password_hash, u.must_change_password, u.disabled, u.email_verified, u.session_epoch, u.key_epoch, u.created_at FROM auth_users u \
                     JOIN auth_sso_identities i ON i.user_id = u.id \
                     WHERE i.issuer = $1 AND i.subject = $2")
                    .bind(&identity.issuer)
                    .bind(&identity.subject)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn identity_of(&self, user_id: &str) -> Result<Option<SsoIdentity>, StoreError> {
                let row = sqlx::query(
                    "SELECT issuer, subject FROM auth_sso_identities WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(SsoIdentity::new(
                        r.try_get::<String, _>("issuer")?,
                        r.try_get::<String, _>("subject")?,
                    ))
                })
                .transpose()
            }

            async fn bind_identity(
                &self,
                user_id: &str,
                identity: &SsoIdentity,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                // The bump first: it locks the user row (PostgreSQL) for the transaction.
                let bumped = sqlx::query(BUMP_EPOCHS)
                    .bind(RevokeScope::All.session_bump())
                    .bind(RevokeScope::All.key_bump())
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                if bumped.rows_affected() == 0 {
                    return Err(StoreError::Corrupt { field: "user_id" });
                }
                sqlx::query(
                    "INSERT INTO auth_sso_identities (issuer, subject, user_id, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&identity.issuer)
                .bind(&identity.subject)
                .bind(user_id)
                .bind(crate::secret::now_unix())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }


        #[async_trait]
        impl SessionStore for $store {
            async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
                // Inserted only while the user is enabled and still at the epoch the login
                // read: one statement, so a concurrent bump either precedes it (no row) or
                // follows it (the row is superseded).
                let done = sqlx::query(
                    "INSERT INTO auth_sessions \
                     (token_digest, id, user_id, created_at, expires_at, user_epoch, mfa_at) \
                     SELECT $1, $2, u.id, $4, $5, u.session_epoch, $7 FROM auth_users u \
                     WHERE u.id = $3 AND u.session_epoch = $6 AND NOT u.disabled",
                )
                .bind(&record.token_digest()[..])
                .bind(record.id())
                .bind(record.user_id())
                .bind(record.created_at())
                .bind(record.expires_at())
                .bind(record.epoch())
                .bind(record.mfa_at())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::UserRefused);
                }
                Ok(())
            }

            fn session_by_digest(
                &self,
                digest: &[u8; 32],
            ) -> StoreFuture<'_, Option<WithUser<SessionRecord>>> {
                let digest = *digest;
                StoreFuture::boxed(async move {
                    // The user's state comes in the same query: no second round trip.
                    let row = sqlx::query(
                        "SELECT s.token_digest, s.id, s.user_id, s.created_at, s.expires_at, \
                         s.user_epoch, s.mfa_at, u.disabled AS u_disabled, \
                         u.must_change_password AS u_must_change, u.session_epoch AS u_epoch \
                         FROM auth_sessions s LEFT JOIN auth_users u ON u.id = s.user_id \
                         WHERE s.token_digest = $1",
                    )
                    .bind(&digest[..])
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref()
                        .map(|r| {
                            Ok(WithUser {
                                record: session_from_row(r)?,
                                user: user_state_from_row(r)?,
                            })
                        })
                        .transpose()
                })
            }

            async fn delete_session_by_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM auth_sessions WHERE token_digest = $1")
                    .bind(&digest[..])
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_session(
                &self,
                user_id: &str,
                session_id: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM auth_sessions WHERE id = $1 AND user_id = $2")
                    .bind(session_id)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM auth_sessions WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "DELETE FROM auth_sessions WHERE expires_at <= $1 OR NOT EXISTS \
                     (SELECT 1 FROM auth_users u WHERE u.id = auth_sessions.user_id \
                      AND u.session_epoch = auth_sessions.user_epoch)",
                )
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
                sqlx::query("SELECT token_digest, id, user_id, created_at, expires_at, user_epoch, mfa_at FROM auth_sessions WHERE user_id = $1 \
                     ORDER BY created_at DESC, id ASC")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(session_from_row)
                    .collect()
            }

            async fn set_session_mfa_at(
                &self,
                user_id: &str,
                session_id: &str,
                at: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE auth_sessions SET mfa_at = $1 WHERE id = $2 AND user_id = $3",
                )
                .bind(at)
                .bind(session_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }
        }


        #[async_trait]
        impl ApiKeyStore for $store {
            async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
                // Stamped with the user's current key epoch in the same statement; no row
                // for an unknown or disabled user, nor (when the creator is a session) once
                // the user's session epoch moved past the creator's.
                let done = sqlx::query(
                    "INSERT INTO auth_api_keys \
                     (id, user_id, name, secret_digest, scopes, created_at, last_used_at, \
                      revoked_at, user_epoch) \
                     SELECT $1, u.id, $3, $4, $5, $6, $7, $8, u.key_epoch FROM auth_users u \
                     WHERE u.id = $2 AND NOT u.disabled \
                     AND u.session_epoch = COALESCE($9, u.session_epoch)",
                )
                .bind(record.id())
                .bind(record.user_id())
                .bind(record.name())
                .bind(&record.secret_digest()[..])
                .bind(scopes_to_column(record.scopes()))
                .bind(record.created_at())
                .bind(record.last_used_at())
                .bind(record.revoked_at())
                .bind(record.creator_session_epoch())
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::UserRefused);
                }
                Ok(())
            }

            fn api_key<'a>(
                &'a self,
                key_id: &'a str,
            ) -> StoreFuture<'a, Option<WithUser<ApiKeyRecord>>> {
                StoreFuture::boxed(async move {
                    // The user's state comes in the same query: no second round trip.
                    let row = sqlx::query(
                        "SELECT k.id, k.user_id, k.name, k.secret_digest, k.scopes, \
                         k.created_at, k.last_used_at, k.revoked_at, k.user_epoch, \
                         u.disabled AS u_disabled, u.must_change_password AS u_must_change, \
                         u.key_epoch AS u_epoch \
                         FROM auth_api_keys k LEFT JOIN auth_users u ON u.id = k.user_id \
                         WHERE k.id = $1",
                    )
                    .bind(key_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref()
                        .map(|r| {
                            Ok(WithUser {
                                record: api_key_from_row(r)?,
                                user: user_state_from_row(r)?,
                            })
                        })
                        .transpose()
                })
            }

            async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
                sqlx::query("UPDATE auth_api_keys SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn revoke_api_key(
                &self,
                user_id: &str,
                key_id: &str,
                now: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE auth_api_keys SET revoked_at = $1 \
                     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(key_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn user_api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
                sqlx::query("SELECT id, user_id, name, secret_digest, scopes, created_at, last_used_at, revoked_at, user_epoch FROM auth_api_keys WHERE user_id = $1 \
                     ORDER BY created_at DESC, id ASC")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(api_key_from_row)
                    .collect()
            }
        }
    };
}

pub(crate) use impl_sql_store;
