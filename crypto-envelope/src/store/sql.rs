//! The SQLite and PostgreSQL stores. Both run the same SQL (sqlx accepts `$N`
//! placeholders on either), so one macro writes both implementations.

use async_trait::async_trait;

use super::{KeyCount, RewrapRow, SecretMeta, SecretRef, SecretStore, StoreError, StoredSecret};

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

const PUT: &str = "INSERT INTO strongroom_secrets \
     (owner, scope, name, sealed, key_ref, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (owner, scope, name) DO UPDATE SET \
     sealed = excluded.sealed, key_ref = excluded.key_ref, updated_at = excluded.updated_at";
const GET: &str = "SELECT sealed, key_ref, created_at, updated_at FROM strongroom_secrets \
     WHERE owner = $1 AND scope = $2 AND name = $3";
const LIST: &str = "SELECT name, scope, key_ref, created_at, updated_at FROM strongroom_secrets \
     WHERE owner = $1 ORDER BY scope, name";
const DELETE: &str = "DELETE FROM strongroom_secrets WHERE owner = $1 AND scope = $2 AND name = $3";
const PAGE: &str = "SELECT id, owner, scope, name, sealed, key_ref FROM strongroom_secrets \
     WHERE id > $1 ORDER BY id LIMIT $2";
const COUNT_BY_KEY: &str = "SELECT key_ref, COUNT(*) FROM strongroom_secrets \
     GROUP BY key_ref ORDER BY key_ref";
const REPLACE: &str = "UPDATE strongroom_secrets SET sealed = $1, key_ref = $2, updated_at = $3 \
     WHERE id = $4 AND sealed = $5";

fn scope_from_column(scope: String) -> Option<String> {
    (!scope.is_empty()).then_some(scope)
}

/// The secret a row names, or `None` when its columns do not read or do not validate.
fn secret_from_columns(
    owner: Option<&str>,
    scope: Option<&str>,
    name: Option<&str>,
) -> Option<SecretRef> {
    let (owner, scope, name) = (owner?, scope?, name?);
    let secret = if scope.is_empty() {
        SecretRef::owner(owner, name)
    } else {
        SecretRef::scoped(owner, scope, name)
    };
    secret.ok()
}

macro_rules! sql_store {
    ($(#[$doc:meta])* $store:ident, $db:ty, $pool:ty, $migrations:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $store {
            pool: $pool,
        }

        impl $store {
            /// A store over an existing pool. Call [`Self::migrate`] once at start-up.
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// A store over an existing pool: the old name of [`Self::new`].
            #[deprecated(since = "0.1.0", note = "use `new`, as in every Strongroom crate")]
            pub fn from_pool(pool: $pool) -> Self {
                Self::new(pool)
            }

            /// The pool, for sharing with other stores.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// Applies this crate's migrations (versions 10001 and up). Migrations of
            /// other crates in the same database are left alone.
            ///
            /// # Errors
            /// [`StoreError::Unavailable`] when the database refuses them.
            pub async fn migrate(&self) -> Result<(), StoreError> {
                let mut migrator = sqlx::migrate!($migrations);
                migrator.set_ignore_missing(true);
                migrator.run(&self.pool).await.map_err(unavailable)
            }
        }

        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store)).finish_non_exhaustive()
            }
        }

        #[async_trait]
        impl SecretStore for $store {
            async fn put(
                &self,
                secret: &SecretRef,
                sealed: &[u8],
                key: &str,
                now: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(PUT)
                    .bind(&secret.owner)
                    .bind(secret.scope_column())
                    .bind(&secret.name)
                    .bind(sealed)
                    .bind(key)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            }

            async fn get(&self, secret: &SecretRef) -> Result<Option<StoredSecret>, StoreError> {
                let row: Option<(Vec<u8>, String, i64, i64)> = sqlx::query_as(GET)
                    .bind(&secret.owner)
                    .bind(secret.scope_column())
                    .bind(&secret.name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(row.map(|(sealed, key, created_at, updated_at)| StoredSecret {
                    meta: SecretMeta {
                        name: secret.name.clone(),
                        scope: secret.scope.clone(),
                        key,
                        created_at,
                        updated_at,
                    },
                    sealed,
                }))
            }

            async fn list(&self, owner: &str) -> Result<Vec<SecretMeta>, StoreError> {
                let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(LIST)
                    .bind(owner)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(rows
                    .into_iter()
                    .map(|(name, scope, key, created_at, updated_at)| SecretMeta {
                        name,
                        scope: scope_from_column(scope),
                        key,
                        created_at,
                        updated_at,
                    })
                    .collect())
            }

            async fn delete(&self, secret: &SecretRef) -> Result<bool, StoreError> {
                let done = sqlx::query(DELETE)
                    .bind(&secret.owner)
                    .bind(secret.scope_column())
                    .bind(&secret.name)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected() > 0)
            }

            async fn rewrap_page(&self, after: i64, limit: u32) -> Result<Vec<RewrapRow>, StoreError> {
                let rows = sqlx::query(PAGE)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                // Read column by column, so that a column of the wrong type or encoding
                // spoils only its own row (reported by id), never the page.
                rows.iter()
                    .map(|row| {
                        use sqlx::Row as _;
                        let row_id: i64 = row
                            .try_get(0)
                            .map_err(|_| StoreError::Corrupt { field: "id" })?;
                        let text = |i: usize| row.try_get::<String, _>(i).ok();
                        let (owner, scope, name) = (text(1), text(2), text(3));
                        Ok(RewrapRow {
                            row_id,
                            secret: secret_from_columns(
                                owner.as_deref(),
                                scope.as_deref(),
                                name.as_deref(),
                            ),
                            sealed: row.try_get::<Vec<u8>, _>(4).unwrap_or_default(),
                            key: text(5).unwrap_or_default(),
                        })
                    })
                    .collect()
            }

            async fn count_by_key(&self) -> Result<Vec<KeyCount>, StoreError> {
                let rows = sqlx::query(COUNT_BY_KEY)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable)?;
                // A label that does not read as text counts as the empty label: never
                // the primary key, so the run reports it instead of failing.
                rows.iter()
                    .map(|row| {
                        use sqlx::Row as _;
                        let count: i64 = row
                            .try_get(1)
                            .map_err(|_| StoreError::Corrupt { field: "count" })?;
                        Ok(KeyCount {
                            key: row.try_get::<String, _>(0).unwrap_or_default(),
                            rows: u64::try_from(count).unwrap_or(0),
                        })
                    })
                    .collect()
            }

            async fn replace_sealed(
                &self,
                row_id: i64,
                expected: &[u8],
                sealed: &[u8],
                key: &str,
                now: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(REPLACE)
                    .bind(sealed)
                    .bind(key)
                    .bind(now)
                    .bind(row_id)
                    .bind(expected)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
sql_store!(
    /// A [`SecretStore`] in SQLite: the embedded default.
    SqliteStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    "migrations/sqlite"
);

#[cfg(feature = "sqlite")]
impl SqliteStore {
    /// Opens (creating if needed) a SQLite database file with WAL journaling and a busy
    /// timeout, and applies the migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file cannot be opened or migrated.
    pub async fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            // An embedded file cannot go stale: no ping (a round trip to the connection's
            // worker thread) before each use.
            .test_before_acquire(false)
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }
}

#[cfg(feature = "postgres")]
sql_store!(
    /// A [`SecretStore`] in PostgreSQL.
    PgStore,
    sqlx::Postgres,
    sqlx::PgPool,
    "migrations/postgres"
);

#[cfg(feature = "postgres")]
impl PgStore {
    /// Connects to `url` and applies the migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(unavailable)?;
        let store = Self::new(pool);
        store.migrate().await?;
        Ok(store)
    }
}
