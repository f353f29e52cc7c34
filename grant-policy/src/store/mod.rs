//! Storage for grants and risk state: one trait each, three backends.
//!
//! - [`MemoryStore`]: in-process, for tests, single-instance services, and the fastest
//!   decision path ([`MemoryStore::access_now`] is synchronous and allocation-free).
//! - `SqliteStore` (feature `sqlite`, default): embedded, WAL, one conditional statement
//!   per reservation.
//! - `PgStore` (feature `postgres`): shared between instances.
//! - [`GrantCache`]: in front of any of them, answers repeated access lookups from memory
//!   for at most a second; every write through it is seen by the next decision.
//!
//! Every query names the user it is for: a grant lookup is keyed by (user, account),
//! share and revoke by (owner, account), risk limits and daily usage by the account
//! owner, the live-trading switch by (owner, account). No call reads or writes another
//! user's rows, except [`GrantStore::owner`], which answers whose account an id is so
//! that the owner's risk limits govern it.

mod cache;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use cache::{GrantCache, GrantCacheConfig, GrantCacheStats};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[allow(deprecated)] // The old name, kept one release.
pub use postgres::{PgStore, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, SqliteStoreBuilder};

use core::fmt::Debug;

use async_trait::async_trait;

use crate::error::{GrantError, StoreError};
use crate::grant::{Access, Share};
use crate::risk::{Notional, RiskLimits, Usage};
use access_types::Level;
use access_types::{AccountId, UserId};

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

    /// Every account `user` owns or holds a share of, with `user`'s relation to it,
    /// ordered by account id. Expired shares are included: the caller decides on the
    /// time ([`crate::Policy::accounts_for`] keeps those in effect).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on any failure, including an unreadable row.
    async fn accessible(&self, user: &UserId) -> Result<Vec<(AccountId, Access)>, StoreError>;

    /// The owner of `account`, or `None` when it is not registered. Used by the risk
    /// guard, whose limits are the owner's whoever trades the account; never shown to a
    /// caller who has no access to the account.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on any failure.
    async fn owner(&self, account: &AccountId) -> Result<Option<UserId>, StoreError>;
}

/// Where risk limits, live-trading switches and daily usage live.
///
/// Limits and usage are kept per account owner (`user` below is always the owner of the
/// accounts being traded: the [`RiskGuard`](crate::RiskGuard) resolves it), the switch
/// per (owner, account).
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
    /// `user`'s limits, if they were set.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn limits(&self, user: &UserId) -> Result<Option<RiskLimits>, StoreError>;

    /// Sets `user`'s limits. Live-trading switches are not touched (every account starts
    /// with it off).
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

    /// Switches live trading on or off for `owner`'s `account` only. `Ok(false)`, and
    /// nothing written, when `owner` has no limits. The caller has checked that `owner`
    /// owns `account`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn set_live_trading(
        &self,
        owner: &UserId,
        account: &AccountId,
        enabled: bool,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Whether live trading is on for `owner`'s `account` (off when never set).
    ///
    /// # Errors
    ///
    /// [`StoreError`] on failure.
    async fn live_trading(&self, owner: &UserId, account: &AccountId) -> Result<bool, StoreError>;

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
