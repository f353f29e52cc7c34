//! Storage back ends for users, sessions, API keys and refresh-token families.
//!
//! Each back end implements the store traits ([`UserStore`](crate::user::UserStore),
//! [`SessionStore`](crate::session::SessionStore),
//! [`ApiKeyStore`](crate::api_key::ApiKeyStore),
//! [`RefreshStore`](crate::refresh::RefreshStore)) over one connection pool:
//!
//! * [`MemoryStore`]: in-process, for tests and single-instance tools;
//! * `SqliteStore` (feature `sqlite`, on by default);
//! * `PgStore` (feature `postgres`);
//! * [`ValidityCache`]: in front of any of them, answers repeated session and API key
//!   lookups from memory for at most a second ([`validity`]).
//!
//! The SQL stores ship their migrations in `migrations/{sqlite,postgres}/` (versions
//! 20001 and up) and run them with [`sqlx`]'s migrator, ignoring other crates'
//! migrations in the same database. Timestamps are Unix seconds.

mod memory;
mod memory_mfa;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_mfa;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_refresh;
#[cfg(feature = "sqlite")]
mod sqlite;
pub mod validity;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use validity::{ValidityCache, ValidityCacheConfig, ValidityCacheStats};

use crate::future::MaybeReady;

/// The future of a store lookup on the request path
/// ([`SessionStore::session_by_digest`](crate::session::SessionStore::session_by_digest),
/// [`ApiKeyStore::api_key`](crate::api_key::ApiKeyStore::api_key)): an in-process store
/// answers with [`StoreFuture::ready`] (no allocation), a database store with
/// [`StoreFuture::boxed`].
pub type StoreFuture<'a, T> = MaybeReady<'a, Result<T, StoreError>>;

/// A storage failure. The chain turns any of these into `Unavailable` (503); the account
/// calls report them as [`AccountError::Unavailable`](crate::accounts::AccountError).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A uniqueness constraint failed; `field` names it (e.g. `"email"`), never a value.
    #[error("{field} is already in use")]
    Conflict {
        /// The unique field that conflicted.
        field: &'static str,
    },
    /// The database or driver failed.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Applying the shipped migrations failed.
    #[error("applying auth-core migrations failed")]
    Migrate(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The credential was not stored: its user does not exist, is disabled, or has moved
    /// to another epoch since it was read (a concurrent password change, disable, link or
    /// sign-out-everywhere won the race).
    #[error("the user may not receive this credential")]
    UserRefused,
    /// A stored row does not have the expected shape (`field` names the column).
    #[error("stored {field} is malformed")]
    Corrupt {
        /// The column that is malformed.
        field: &'static str,
    },
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            {
                let msg = db.message().to_ascii_lowercase();
                let constraint = db.constraint().unwrap_or_default().to_ascii_lowercase();
                let field = if msg.contains("email") || constraint.contains("email") {
                    "email"
                } else if msg.contains("identit") || constraint.contains("identit") {
                    "identity"
                } else if msg.contains("user_id") || constraint.contains("user") {
                    "user_id"
                } else {
                    "id"
                };
                return Self::Conflict { field };
            }
        }
        Self::Backend(Box::new(e))
    }
}

/// Converts a stored digest column into a fixed array.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn digest_from_column(v: &[u8]) -> Result<crate::secret::Digest, StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt { field: "digest" })
}

/// Scopes are stored as one space-separated string (scopes never contain spaces).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn scopes_to_column(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// Inverse of [`scopes_to_column`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn scopes_from_column(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
