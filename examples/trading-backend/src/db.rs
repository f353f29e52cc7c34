//! One database for the whole service: a SQLite file (default) or PostgreSQL. One pool is
//! shared by every crate's store; each crate applies its own migrations (version ranges
//! 10001.. crypto-envelope, 20001.. auth-core, 30001.. grant-policy, 50001.. this crate, 60001.. audit-trail).

use std::sync::Arc;
use std::time::Duration;

use crate::config::DatabaseTarget;

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("enable at least one of the features `sqlite` and `postgres`");

/// The shared pool.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Why the database could not be opened. Never holds the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DbError {
    /// The database could not be reached or opened.
    #[error("database unavailable ({0})")]
    Unavailable(&'static str),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(&'static str),
    /// This build lacks the feature for the configured database.
    #[error(
        "DATABASE_URL names {0}, but this build lacks the `{0}` feature (cargo build --features {0})"
    )]
    #[cfg_attr(all(feature = "sqlite", feature = "postgres"), allow(dead_code))]
    NotBuilt(&'static str),
}

/// Runs `$body` with `$pool` bound to whichever pool `$db` holds.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            $crate::db::Db::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The stores of the four crates over the one pool.
#[derive(Debug, Clone)]
pub(crate) struct Stores {
    pub(crate) db: Db,
    pub(crate) users: Arc<dyn auth_core::UserStore>,
    pub(crate) sessions: Arc<dyn auth_core::SessionStore>,
    pub(crate) api_keys: Arc<dyn auth_core::ApiKeyStore>,
    pub(crate) secrets: Arc<dyn crypto_envelope::SecretStore>,
    pub(crate) grants: Arc<dyn grant_policy::store::GrantStore>,
    /// Second factors, recovery codes and login challenges (auth-core's tables).
    pub(crate) mfa: Arc<dyn auth_core::MfaStore>,
    /// Refresh-token families (auth-core's tables).
    pub(crate) refresh: Arc<dyn auth_core::RefreshStore>,
    /// The validity cache's counters, when it is on.
    pub(crate) validity: Option<ValidityStats>,
    /// The grant cache's counters, when it is on (with the validity cache).
    pub(crate) grant_cache: Option<GrantCacheStats>,
}

/// Reads the counters of the validity cache in front of `users`, `sessions` and
/// `api_keys` (its store type stays private to [`Db::stores`]).
#[derive(Clone)]
pub(crate) struct ValidityStats(Arc<dyn Fn() -> auth_core::ValidityCacheStats + Send + Sync>);

impl ValidityStats {
    pub(crate) fn read(&self) -> auth_core::ValidityCacheStats {
        (self.0)()
    }
}

impl std::fmt::Debug for ValidityStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ValidityStats").field(&self.read()).finish()
    }
}

/// Reads the counters of grant-policy's `GrantCache` in front of `grants`.
#[derive(Clone)]
pub(crate) struct GrantCacheStats(
    Arc<dyn Fn() -> grant_policy::store::GrantCacheStats + Send + Sync>,
);

impl GrantCacheStats {
    pub(crate) fn read(&self) -> grant_policy::store::GrantCacheStats {
        (self.0)()
    }
}

impl std::fmt::Debug for GrantCacheStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GrantCacheStats")
            .field(&self.read())
            .finish()
    }
}

impl Db {
    /// Opens the pool (creating the SQLite file and its directory if needed).
    pub(crate) async fn open(target: &DatabaseTarget) -> Result<Self, DbError> {
        match target {
            #[cfg(feature = "sqlite")]
            DatabaseTarget::Sqlite(path) => {
                use sqlx::sqlite::{
                    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
                };
                if let Some(dir) = path.parent()
                    && !dir.as_os_str().is_empty()
                {
                    crate::keyring::create_private_dir(dir)
                        .map_err(|_| DbError::Unavailable("cannot create the data directory"))?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                let pool = SqlitePoolOptions::new()
                    // An embedded file cannot go stale: no ping (a round trip to the connection's
                    // worker thread) before each use.
                    .test_before_acquire(false)
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await
                    .map_err(|_| DbError::Unavailable("cannot open the SQLite file"))?;
                Ok(Self::Sqlite(pool))
            }
            #[cfg(not(feature = "sqlite"))]
            DatabaseTarget::Sqlite(_) => Err(DbError::NotBuilt("sqlite")),
            #[cfg(feature = "postgres")]
            DatabaseTarget::Postgres(url) => {
                use std::str::FromStr as _;
                let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|_| {
                    DbError::Unavailable("DATABASE_URL is not a valid PostgreSQL URL")
                })?;
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_with(options)
                    .await
                    .map_err(|_| DbError::Unavailable("cannot connect to PostgreSQL"))?;
                Ok(Self::Postgres(pool))
            }
            #[cfg(not(feature = "postgres"))]
            DatabaseTarget::Postgres(_) => Err(DbError::NotBuilt("postgres")),
        }
    }

    /// Applies every crate's migrations, then this crate's.
    pub(crate) async fn migrate(
        &self,
        validity_cache: Option<auth_core::ValidityCacheConfig>,
    ) -> Result<Stores, DbError> {
        let stores = self.stores(validity_cache);
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => {
                crypto_envelope::SqliteStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("crypto-envelope"))?;
                auth_core::SqliteStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("auth-core"))?;
                grant_policy::store::SqliteStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("grant-policy"))?;
                audit_trail::SqliteStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("audit-trail"))?;
                let mut own = sqlx::migrate!("./migrations/sqlite");
                own.set_ignore_missing(true);
                own.run(pool)
                    .await
                    .map_err(|_| DbError::Migration("trading-backend"))?;
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                crypto_envelope::PgStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("crypto-envelope"))?;
                auth_core::PgStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("auth-core"))?;
                grant_policy::store::PgStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("grant-policy"))?;
                // The login throttle's shared state (used when REDIS_URL is not set).
                throttle::PgStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("throttle"))?;
                audit_trail::PgStore::new(pool.clone())
                    .migrate()
                    .await
                    .map_err(|_| DbError::Migration("audit-trail"))?;
                let mut own = sqlx::migrate!("./migrations/postgres");
                own.set_ignore_missing(true);
                own.run(pool)
                    .await
                    .map_err(|_| DbError::Migration("trading-backend"))?;
            }
        }
        Ok(stores)
    }

    fn stores(&self, validity_cache: Option<auth_core::ValidityCacheConfig>) -> Stores {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(pool) => {
                let auth = Arc::new(auth_core::SqliteStore::new(pool.clone()));
                let (users, sessions, api_keys, validity) = credentials(&auth, validity_cache);
                let (grants, grant_cache) = grants(
                    grant_policy::store::SqliteStore::new(pool.clone()),
                    validity_cache,
                );
                Stores {
                    db: self.clone(),
                    users,
                    sessions,
                    api_keys,
                    refresh: auth.clone(),
                    mfa: auth,
                    validity,
                    secrets: Arc::new(crypto_envelope::SqliteStore::new(pool.clone())),
                    grants,
                    grant_cache,
                }
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(pool) => {
                let auth = Arc::new(auth_core::PgStore::new(pool.clone()));
                let (users, sessions, api_keys, validity) = credentials(&auth, validity_cache);
                let (grants, grant_cache) = grants(
                    grant_policy::store::PgStore::new(pool.clone()),
                    validity_cache,
                );
                Stores {
                    db: self.clone(),
                    users,
                    sessions,
                    api_keys,
                    refresh: auth.clone(),
                    mfa: auth,
                    validity,
                    secrets: Arc::new(crypto_envelope::PgStore::new(pool.clone())),
                    grants,
                    grant_cache,
                }
            }
        }
    }
}

/// The user, session and API key stores: `auth` itself, or one `ValidityCache` in front
/// of it for all three (so that every write through any of them empties the cache).
type CredentialStores = (
    Arc<dyn auth_core::UserStore>,
    Arc<dyn auth_core::SessionStore>,
    Arc<dyn auth_core::ApiKeyStore>,
    Option<ValidityStats>,
);

fn credentials<S>(
    auth: &Arc<S>,
    validity_cache: Option<auth_core::ValidityCacheConfig>,
) -> CredentialStores
where
    S: auth_core::UserStore + auth_core::SessionStore + auth_core::ApiKeyStore + Clone + 'static,
{
    match validity_cache {
        None => (auth.clone(), auth.clone(), auth.clone(), None),
        Some(config) => {
            let cached = Arc::new(auth_core::ValidityCache::new(S::clone(auth), config));
            let stats = {
                let cached = cached.clone();
                ValidityStats(Arc::new(move || cached.stats()))
            };
            (cached.clone(), cached.clone(), cached, Some(stats))
        }
    }
}

/// The grant store: `store` itself, or grant-policy's `GrantCache` in front of it with
/// the validity cache's TTL (one setting, `STRONGROOM_VALIDITY_CACHE_MS`, bounds how long
/// another instance's logout and its revoke may take to show). The policy, the risk guard
/// and every handler share this one object, so each grant write through it is seen by
/// the next decision on this instance.
fn grants<S>(
    store: S,
    validity_cache: Option<auth_core::ValidityCacheConfig>,
) -> (
    Arc<dyn grant_policy::store::GrantStore>,
    Option<GrantCacheStats>,
)
where
    S: grant_policy::store::GrantStore + 'static,
{
    use grant_policy::store::{GrantCache, GrantCacheConfig};
    // Both caches bound their TTL by one second, so this conversion cannot fail; if it
    // ever did, the grants would be read uncached (never a longer TTL).
    let config = validity_cache
        .and_then(|v| GrantCacheConfig::new(v.ttl(), GrantCacheConfig::default().capacity()).ok());
    match config {
        None => (Arc::new(store), None),
        Some(config) => {
            let cached = Arc::new(GrantCache::new(store, config));
            let stats = {
                let cached = cached.clone();
                GrantCacheStats(Arc::new(move || cached.stats()))
            };
            (cached, Some(stats))
        }
    }
}

/// Opens the database and applies the migrations.
/// With `validity_cache`, user, session and API key operations go through auth-core's
/// `ValidityCache` with that TTL, and grant reads through grant-policy's `GrantCache`.
pub(crate) async fn open(
    target: &DatabaseTarget,
    validity_cache: Option<auth_core::ValidityCacheConfig>,
) -> Result<Stores, DbError> {
    Db::open(target).await?.migrate(validity_cache).await
}
