//! Error types.
//!
//! Refusals of an operation are not errors: they are [`Decision::Deny`](crate::Decision)
//! values with a stable reason code. The errors here are for bad input, management calls
//! (share, revoke, limits) and store failures.

use std::error::Error as StdError;

/// A setting was outside its range (the [`GrantCache`](crate::store::GrantCache)'s TTL
/// or capacity).
///
/// Names the field, never echoes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: outside its allowed range")]
pub struct ConfigError {
    field: &'static str,
}

impl ConfigError {
    pub(crate) const fn new(field: &'static str) -> Self {
        ConfigError { field }
    }

    /// The name of the offending setting (`"ttl"` or `"capacity"`).
    #[must_use]
    pub const fn field(&self) -> &'static str {
        self.field
    }
}

/// A notional amount was out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: must be at most {max} minor units", max = i64::MAX)]
pub struct NotionalError {
    field: &'static str,
}

impl NotionalError {
    pub(crate) const fn new(field: &'static str) -> Self {
        NotionalError { field }
    }

    /// The name of the offending field.
    #[must_use]
    pub const fn field(&self) -> &'static str {
        self.field
    }
}

/// A grant or risk store failed. Every such failure makes a decision deny with
/// `StoreUnavailable` (HTTP 503); it is never read as an allow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached, timed out, or failed a query.
    #[error("grant-policy store unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync + 'static>),
    /// A stored row held a value this version does not understand (an unknown level,
    /// a negative amount). The row is treated as unusable, never as a grant.
    #[error("grant-policy store: unreadable value in column {column}")]
    Corrupt {
        /// The column whose value could not be read.
        column: &'static str,
    },
    /// Applying the shipped migrations failed.
    #[error("grant-policy store: migration failed")]
    Migration(#[source] Box<dyn StdError + Send + Sync + 'static>),
    /// An in-process lock was poisoned by a panic in another thread.
    #[error("grant-policy store: in-memory state poisoned")]
    Poisoned,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(Box::new(e))
    }
}

/// A management call on grants (register, share, revoke) was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The account does not exist or the caller does not own it. The two cases are
    /// deliberately indistinguishable, so a non-owner learns nothing about the account.
    #[error("account not found")]
    NotFound,
    /// The account id is already registered to another owner.
    #[error("account_id: already registered")]
    AlreadyRegistered,
    /// An owner tried to share an account with themselves.
    #[error("grantee: the owner cannot share an account with themselves")]
    SelfShare,
    /// The requested expiry is not in the future.
    #[error("expires_at: must be in the future")]
    ExpiryInPast,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A risk-limit management call was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RiskError {
    /// The user has no risk profile yet: set limits first.
    #[error("user_id: no risk profile")]
    NoProfile,
    /// The account does not exist or the caller does not own it (only the owner turns
    /// live trading on or off). The two cases are deliberately indistinguishable.
    #[error("account_id: account not found")]
    NotFound,
    /// Live trading cannot be enabled: no exchange credentials on file for the account.
    #[error("account_id: no exchange credentials on file")]
    NoCredentials,
    /// The store has no matching reservation to settle (it was already settled, or the
    /// state was changed out of band).
    #[error("reservation: not found in the store")]
    UnknownReservation,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
