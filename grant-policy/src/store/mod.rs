//! Storage for grants and risk state: one trait each, three backends.
//!
//! - [`MemoryStore`]: in-process, for tests, single-instance services, and the fastest
//!   decision path ([`MemoryStore::access_now`] is synchronous and allocation-free).
//! - `SqliteStore` (feature `sqlite`, default): embedded, WAL, one conditional statement
//!   per reservation.
//! - `PostgresStore` (feature `postgres`): shared between instances.
//!
//! Every query names the user it is for: a grant lookup is keyed by (user, account),
//! share and revoke by (owner, account), risk state by user. No call reads or writes
//! another user's rows.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

use core::fmt::Debug;

use async_trait::async_trait;

use crate::error::{GrantError, StoreError};
use crate::grant::{Access, Share};
use crate::id::{AccountId, UserId};
use crate::operation::Level;
use crate::risk::{Notional, RiskLimits, RiskProfile, Usage};

/// Where grants live.
///
/// # Security contract
///
/// - [`access`](GrantStore::access) returns `Some` only when `user` owns `account` or
///   holds a share of it (expired shares included: expiry is decided by the caller, so
///   that an expired share can be told apart in the audit trail). It must never return
///   another user's share.
/// - Any failure is an `Err`, never `Ok(None)` or a default grant: the policy turns an
///   error into a 503 deny.
/// - [`share`](GrantStore::share), [`revoke`](GrantStore::revoke) and
///   [`deregister`](GrantStore::deregister) act only when `owner` owns `account`,
///   checked in the same statement (or under the same lock) as the write, and answer
///   [`GrantError::NotFound`] otherwise, whether or not the account exists.
#[async_trait]
pub trait GrantStore: Send + Sync + Debug {
    /// Registers `account` as owned by `owner` with key `capability`. Re-registering by
    /// the same owner updates the capability (a key rotated to read-only, say).
    ///
    /// # Errors
    ///
    /// [`GrantError::AlreadyRegistered`] when another user owns the id;
    /// [`GrantError::Store`] on a store failure.
    async fn register(
        &self,
        owner: &UserId,
        account: &AccountId,
        capability: Level,
        now: i64,
    ) -> Result<(), GrantError>;

    /// Removes `account` and every share of it.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns it; [`GrantError::Store`] on failure.
    async fn deregister(&self, owner: &UserId, account: &AccountId) -> Result<(), GrantError>;

    /// `user`'s relation to `account`, or `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on any failure, including an unreadable row.
    async fn access(
        &self,
        user: &UserId,
        account: &AccountId,
    ) -> Result<Option<Access>, StoreError>;

    /// Creates or replaces `share.grantee`'s share of `account`.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns it; [`GrantError::Store`] on failure.
    async fn share(
        &self,
        owner: &UserId,
        account: &AccountId,
        share: &Share,
        now: i64,
    ) -> Result<(), GrantError>;

    /// Deletes `grantee`'s share of `account`. `Ok(false)` when there was none.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns it; [`GrantError::Store`] on failure.
    async fn revoke(
        &self,
        owner: &UserId,
        account: &AccountId,
        grantee: &UserId,
    ) -> Result<bool, GrantError>;

    /// The shares of `account`, for its owner, ordered by grantee.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns it; [`GrantError::Store`] on failure.
    async fn shares(&self, owner: &UserId, account: &AccountId) -> Result<Vec<Share>, GrantError>;
}

/// Where risk profiles and daily usage live.
///
/// # Security contract
///
/// - [`reserve`](RiskStore::reserve) is atomic: among any number of concurrent calls for
///   one (user, day), the sum of successful reservations plus what was already used and
///   reserved never exceeds `cap`. It succeeds only if `used + reserved + amount <= cap`.
/// - [`settle`](RiskStore::settle) never drives `reserved` below zero.
/// - Failures are `Err`, never a successful reservation.
#[async_trait]
pub trait RiskStore: Send + Sync + Debug {
    /// `user`'s profile, if one was set.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn profile(&self, user: &UserId) -> Result<Option<RiskProfile>, StoreError>;

    /// Sets `user`'s limits. A new profile starts with live trading off; an existing one
    /// keeps its live-trading flag.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn set_limits(
        &self,
        user: &UserId,
        limits: RiskLimits,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Switches live trading on or off. `Ok(false)` when `user` has no profile.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn set_live_trading(
        &self,
        user: &UserId,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Atomically reserves `amount` on `user`'s usage for `day` (days since the epoch,
    /// UTC) if `used + reserved + amount <= cap`. `Ok(false)` when it does not fit.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn reserve(
        &self,
        user: &UserId,
        day: i64,
        amount: Notional,
        cap: Notional,
    ) -> Result<bool, StoreError>;

    /// Settles a reservation in one atomic step: `reserved -= reserved_amount`,
    /// `used += used_amount`. `used_amount` is what was really spent and may exceed the
    /// reservation (slippage); it is recorded as is, so later reservations see it.
    /// Nothing changes and the answer is `Ok(false)` when fewer than `reserved_amount`
    /// are reserved for (user, day).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn settle(
        &self,
        user: &UserId,
        day: i64,
        reserved_amount: Notional,
        used_amount: Notional,
    ) -> Result<bool, StoreError>;

    /// `user`'s usage for `day`; zero when nothing was reserved that day.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn usage(&self, user: &UserId, day: i64) -> Result<Usage, StoreError>;
}
