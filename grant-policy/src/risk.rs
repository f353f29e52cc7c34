//! Risk limits: live trading switch, maximum order notional, daily notional cap.
//!
//! The limits are the account owner's: they govern every order on the owner's accounts,
//! whoever places it (the owner or a grantee with a `Trade` share). The daily cap is one
//! budget per owner across all of their accounts; the live-trading switch is per account
//! and only the owner turns it on or off.
//!
//! Money is exact: a [`Notional`] is a whole number of minor units (for example cents, or
//! 1e-8 of a coin) chosen by the embedding service per deployment, held as a `u64` no
//! larger than `i64::MAX` so that it fits a SQL `BIGINT`. No floating point anywhere.
//!
//! The daily cap holds under concurrency through reserve / commit / release: an order is
//! admitted only after [`RiskGuard::admit`] atomically reserves its notional in the store;
//! when the order is done the reservation is committed (what was really spent) or
//! released. The day is `floor(unix_seconds / 86400)`, so it resets at UTC midnight;
//! a reservation settles against the day it was taken on.

use core::fmt;
use std::sync::Arc;

use http::StatusCode;

use crate::audit::{AuditSink, RiskEvent, TracingAuditSink};
use crate::clock::{Clock, SystemClock};
use crate::error::{NotionalError, RiskError, StoreError};
use crate::store::{GrantStore, RiskStore};
use access_types::Level;
use access_types::{AccountId, UserId};

/// Seconds in a UTC day (unix time has no leap seconds).
pub const SECONDS_PER_DAY: i64 = 86_400;

/// The UTC day (days since 1970-01-01) containing `unix_seconds`.
#[must_use]
pub const fn utc_day(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(SECONDS_PER_DAY)
}

/// An exact amount of money in integer minor units, `0 ..= i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Notional(u64);

impl Notional {
    /// Zero.
    pub const ZERO: Notional = Notional(0);
    /// The largest amount (`i64::MAX` minor units).
    pub const MAX: Notional = Notional(i64::MAX as u64);

    /// An amount of `minor_units`.
    ///
    /// # Errors
    ///
    /// [`NotionalError`] naming `notional` above [`Notional::MAX`].
    pub const fn from_minor_units(minor_units: u64) -> Result<Self, NotionalError> {
        if minor_units > i64::MAX as u64 {
            Err(NotionalError::new("notional"))
        } else {
            Ok(Notional(minor_units))
        }
    }

    /// The amount in minor units.
    #[must_use]
    pub const fn minor_units(self) -> u64 {
        self.0
    }

    /// The amount as a SQL `BIGINT`; lossless by construction.
    #[must_use]
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) const fn as_i64(self) -> i64 {
        self.0 as i64
    }

    /// Reads a stored amount; negative values are corrupt.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn from_stored(v: i64, column: &'static str) -> Result<Self, StoreError> {
        u64::try_from(v)
            .map(Notional)
            .map_err(|_| StoreError::Corrupt { column })
    }

    /// `self + rhs`, or `None` above [`Notional::MAX`].
    #[must_use]
    pub const fn checked_add(self, rhs: Notional) -> Option<Notional> {
        match self.0.checked_add(rhs.0) {
            Some(v) if v <= i64::MAX as u64 => Some(Notional(v)),
            _ => None,
        }
    }

    /// `self - rhs`, or `None` below zero.
    #[must_use]
    pub const fn checked_sub(self, rhs: Notional) -> Option<Notional> {
        match self.0.checked_sub(rhs.0) {
            Some(v) => Some(Notional(v)),
            None => None,
        }
    }
}

impl fmt::Display for Notional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An account owner's limits. They govern every order on every account the owner owns,
/// whoever places it (the owner, or a grantee with a `Trade` share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RiskLimits {
    /// The largest notional a single order may have.
    pub max_order_notional: Notional,
    /// The most that may be traded on the owner's accounts, all of them together, in one
    /// UTC day (committed plus reserved), whoever trades.
    pub daily_cap: Notional,
}

/// Committed and reserved notional for one account owner and one UTC day, over all of the
/// owner's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Usage {
    /// Spent by settled orders.
    pub used: Notional,
    /// Held by orders in flight.
    pub reserved: Notional,
}

/// Whether the embedding service has exchange credentials on file for an account.
///
/// The answer comes from the caller (the credential store is not a dependency of this
/// crate); pass what the credential store says at the moment of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialsOnFile {
    /// Credentials are stored for the account.
    Present,
    /// No credentials are stored for the account.
    Absent,
}

/// Why an order was refused by the risk limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RiskRefusal {
    /// A zero notional: the caller must bound every order's value.
    ZeroNotional,
    /// The trader may not trade the account: it does not exist, or they neither own it
    /// nor hold a live `Trade` share of it, or its key is read-only. The policy should
    /// have refused first; the guard checks again and fails closed.
    NoAccess,
    /// Above the owner's maximum order notional.
    OrderTooLarge,
    /// Would take the owner's day's used plus reserved notional above the cap.
    DailyCapExceeded,
    /// A store failed: never an admission.
    StoreUnavailable,
}

impl RiskRefusal {
    /// The stable reason code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            RiskRefusal::ZeroNotional => "risk.refuse.zero_notional",
            RiskRefusal::NoAccess => "risk.refuse.no_access",
            RiskRefusal::OrderTooLarge => "risk.refuse.order_too_large",
            RiskRefusal::DailyCapExceeded => "risk.refuse.daily_cap_exceeded",
            RiskRefusal::StoreUnavailable => "risk.refuse.store_unavailable",
        }
    }

    /// The HTTP status the embedding service answers with (`NoAccess` is 404, as the
    /// policy answers for an account the caller cannot see).
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            RiskRefusal::ZeroNotional => StatusCode::BAD_REQUEST,
            RiskRefusal::NoAccess => StatusCode::NOT_FOUND,
            RiskRefusal::OrderTooLarge | RiskRefusal::DailyCapExceeded => StatusCode::FORBIDDEN,
            RiskRefusal::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The status as a number.
    #[deprecated(since = "0.1.0", note = "use `status()`, an `http::StatusCode`")]
    #[must_use]
    pub const fn http_status(self) -> u16 {
        self.status().as_u16()
    }
}

/// Notional held for one live order until it is committed or released.
///
/// Not `Clone`: committing or releasing consumes it, so it settles at most once. A
/// reservation that is dropped unsettled stays reserved until the day ends, which fails
/// closed (less room under the cap, never more).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation must be committed or released, or it holds the cap all day"]
pub struct Reservation {
    trader: UserId,
    owner: UserId,
    account: AccountId,
    day: i64,
    amount: Notional,
}

impl Reservation {
    /// Who placed the order.
    #[must_use]
    pub fn trader(&self) -> &UserId {
        &self.trader
    }

    /// Whose cap it counts against: the account's owner.
    #[must_use]
    pub fn owner(&self) -> &UserId {
        &self.owner
    }

    /// The account traded.
    #[must_use]
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The UTC day it counts against.
    #[must_use]
    pub const fn day(&self) -> i64 {
        self.day
    }

    /// The amount held.
    #[must_use]
    pub const fn amount(&self) -> Notional {
        self.amount
    }
}

/// The outcome of [`RiskGuard::admit`].
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// Send the order to the exchange; settle the reservation afterwards.
    Live(Reservation),
    /// Live trading is off for this account (or its owner set no limits): simulate the
    /// order, send nothing.
    DryRun,
    /// Do not place the order.
    Refused(RiskRefusal),
}

/// Applies the account owner's risk limits: the per-account live-trading switch, the
/// order maximum and the daily cap. Reads grants (who owns an account, who may trade it)
/// from a [`GrantStore`].
#[derive(Debug, Clone)]
pub struct RiskGuard {
    store: Arc<dyn RiskStore>,
    grants: Arc<dyn GrantStore>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`RiskGuard`].
#[derive(Debug)]
pub struct RiskGuardBuilder {
    store: Arc<dyn RiskStore>,
    grants: Arc<dyn GrantStore>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl RiskGuardBuilder {
    /// Where audit records go (default: [`TracingAuditSink`]).
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// The clock (default: [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The guard.
    #[must_use]
    pub fn build(self) -> RiskGuard {
        RiskGuard {
            store: self.store,
            grants: self.grants,
            audit: self.audit,
            clock: self.clock,
        }
    }
}

impl RiskGuard {
    /// A builder over `store` (limits, switches, usage) and `grants` (the grant store the
    /// [`Policy`](crate::Policy) decides from: the same store object for the bundled
    /// stores).
    #[must_use]
    pub fn builder(store: Arc<dyn RiskStore>, grants: Arc<dyn GrantStore>) -> RiskGuardBuilder {
        RiskGuardBuilder {
            store,
            grants,
            audit: Arc::new(TracingAuditSink),
            clock: Arc::new(SystemClock),
        }
    }

    fn event(
        &self,
        user: &UserId,
        account: Option<&AccountId>,
        code: &'static str,
        n: Option<Notional>,
        at: i64,
    ) {
        self.audit.risk(&RiskEvent {
            user,
            account,
            code,
            notional: n.map(Notional::minor_units),
            at,
        });
    }

    /// `owner`'s limits, if any.
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn limits(&self, owner: &UserId) -> Result<Option<RiskLimits>, RiskError> {
        Ok(self.store.limits(owner).await?)
    }

    /// Sets `owner`'s limits, which govern every account `owner` owns, whoever trades it.
    /// Live-trading switches are unchanged (every account starts in dry-run).
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn set_limits(&self, owner: &UserId, limits: RiskLimits) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        self.store.set_limits(owner, limits, now).await?;
        self.event(owner, None, "risk.limits.set", Some(limits.daily_cap), now);
        Ok(())
    }

    /// Whether live trading is on for `account` (off for an unknown account).
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn live_trading(&self, account: &AccountId) -> Result<bool, RiskError> {
        match self.grants.owner(account).await? {
            Some(owner) => Ok(self.store.live_trading(&owner, account).await?),
            None => Ok(false),
        }
    }

    /// Turns live trading on for `account`, and only for it. Only the account's owner may
    /// (a grantee, even with a `Trade` share, may not put the owner's money at risk), the
    /// owner must have limits, and credentials must be on file for the account.
    ///
    /// # Errors
    ///
    /// [`RiskError::NotFound`] when `caller` does not own `account` (or it does not
    /// exist); [`RiskError::NoCredentials`] when `on_file` is `Absent`;
    /// [`RiskError::NoProfile`] when the owner set no limits; [`RiskError::Store`] on a
    /// store failure.
    pub async fn enable_live_trading(
        &self,
        caller: &UserId,
        account: &AccountId,
        on_file: CredentialsOnFile,
    ) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        self.check_owner(caller, account, now).await?;
        if on_file != CredentialsOnFile::Present {
            self.event(
                caller,
                Some(account),
                "risk.refuse.no_credentials",
                None,
                now,
            );
            return Err(RiskError::NoCredentials);
        }
        if !self
            .store
            .set_live_trading(caller, account, true, now)
            .await?
        {
            self.event(caller, Some(account), "risk.refuse.no_profile", None, now);
            return Err(RiskError::NoProfile);
        }
        // Ownership again, after the write: a deregistration that ran since the first
        // check (and so may have cleared the switch before it was written) must not leave
        // the switch on for when the account id is registered again.
        if let Err(e) = self.check_owner(caller, account, now).await {
            self.store
                .set_live_trading(caller, account, false, now)
                .await?;
            return Err(e);
        }
        self.event(
            caller,
            Some(account),
            "risk.live_trading.enabled",
            None,
            now,
        );
        Ok(())
    }

    /// Turns live trading off for `account` (back to dry-run). Only the owner may. Doing
    /// so for an owner without limits is not an error: the account is in dry-run already.
    ///
    /// # Errors
    ///
    /// [`RiskError::NotFound`] when `caller` does not own `account`; [`RiskError::Store`]
    /// on a store failure.
    pub async fn disable_live_trading(
        &self,
        caller: &UserId,
        account: &AccountId,
    ) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        self.check_owner(caller, account, now).await?;
        self.store
            .set_live_trading(caller, account, false, now)
            .await?;
        self.event(
            caller,
            Some(account),
            "risk.live_trading.disabled",
            None,
            now,
        );
        Ok(())
    }

    async fn check_owner(
        &self,
        caller: &UserId,
        account: &AccountId,
        now: i64,
    ) -> Result<(), RiskError> {
        if self.grants.owner(account).await?.as_ref() == Some(caller) {
            return Ok(());
        }
        self.event(caller, Some(account), "risk.refuse.not_owner", None, now);
        Err(RiskError::NotFound)
    }

    /// Decides whether `trader`'s order of `notional` on `account` may go live now,
    /// reserving it under the account owner's daily cap if so. Every outcome is audited.
    ///
    /// In order: zero notional is refused; a trader who may not trade the account (no
    /// owner, no live `Trade` share, read-only key, or the account changed owner while its
    /// access was read) is refused; the owner's limits apply
    /// from here on, whoever trades: no limits or live trading off for this account is a
    /// dry run (an existing order maximum still applies); above the order maximum is
    /// refused; otherwise the store atomically reserves it under the owner's cap (shared
    /// by all of the owner's accounts) or refuses. A store failure refuses (503), never
    /// admits.
    pub async fn admit(
        &self,
        trader: &UserId,
        account: &AccountId,
        notional: Notional,
    ) -> Admission {
        let now = self.clock.now_unix();
        let outcome = self.admit_at(trader, account, notional, now).await;
        let code = match &outcome {
            Admission::Live(_) => "risk.admit.live",
            Admission::DryRun => "risk.admit.dry_run",
            Admission::Refused(r) => r.code(),
        };
        self.event(trader, Some(account), code, Some(notional), now);
        outcome
    }

    async fn admit_at(
        &self,
        trader: &UserId,
        account: &AccountId,
        notional: Notional,
        now: i64,
    ) -> Admission {
        if notional == Notional::ZERO {
            return Admission::Refused(RiskRefusal::ZeroNotional);
        }
        // The owner is read before and after the trader's access: the access must have
        // been granted under the same owner's registration whose limits apply. Otherwise
        // an account id deregistered and registered again by another user in between
        // would let the old owner's grantee trade the new owner's account.
        let owner = match self.grants.owner(account).await {
            Ok(Some(owner)) => owner,
            Ok(None) => return Admission::Refused(RiskRefusal::NoAccess),
            Err(_) => return Admission::Refused(RiskRefusal::StoreUnavailable),
        };
        match self.grants.access(trader, account).await {
            Ok(Some(access)) if access.effective_at(now) == Some(Level::Trade) => {}
            Ok(_) => return Admission::Refused(RiskRefusal::NoAccess),
            Err(_) => return Admission::Refused(RiskRefusal::StoreUnavailable),
        }
        match self.grants.owner(account).await {
            Ok(Some(again)) if again == owner => {}
            Ok(_) => return Admission::Refused(RiskRefusal::NoAccess),
            Err(_) => return Admission::Refused(RiskRefusal::StoreUnavailable),
        }
        let limits = match self.store.limits(&owner).await {
            Ok(Some(l)) => l,
            Ok(None) => return Admission::DryRun,
            Err(_) => return Admission::Refused(RiskRefusal::StoreUnavailable),
        };
        if notional > limits.max_order_notional {
            return Admission::Refused(RiskRefusal::OrderTooLarge);
        }
        match self.store.live_trading(&owner, account).await {
            Ok(true) => {}
            Ok(false) => return Admission::DryRun,
            Err(_) => return Admission::Refused(RiskRefusal::StoreUnavailable),
        }
        if notional > limits.daily_cap {
            return Admission::Refused(RiskRefusal::DailyCapExceeded);
        }
        let day = utc_day(now);
        match self
            .store
            .reserve(&owner, day, notional, limits.daily_cap)
            .await
        {
            Ok(true) => Admission::Live(Reservation {
                trader: trader.clone(),
                owner,
                account: account.clone(),
                day,
                amount: notional,
            }),
            Ok(false) => Admission::Refused(RiskRefusal::DailyCapExceeded),
            Err(_) => Admission::Refused(RiskRefusal::StoreUnavailable),
        }
    }

    /// Settles a live order: releases its reservation and records `spent` (what was
    /// really filled, which may be less, or with slippage more, than reserved) against
    /// the owner's day.
    ///
    /// # Errors
    ///
    /// [`RiskError::UnknownReservation`] when the store holds less than the reservation
    /// (state changed out of band); [`RiskError::Store`] on a store failure, in which case
    /// the notional stays reserved (fails closed).
    pub async fn commit(&self, reservation: Reservation, spent: Notional) -> Result<(), RiskError> {
        self.settle(reservation, spent, "risk.commit").await
    }

    /// Releases a reservation whose order was not placed or was cancelled unfilled.
    ///
    /// # Errors
    ///
    /// As [`RiskGuard::commit`].
    pub async fn release(&self, reservation: Reservation) -> Result<(), RiskError> {
        self.settle(reservation, Notional::ZERO, "risk.release")
            .await
    }

    async fn settle(
        &self,
        r: Reservation,
        spent: Notional,
        code: &'static str,
    ) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        let done = self.store.settle(&r.owner, r.day, r.amount, spent).await?;
        if !done {
            self.event(
                &r.trader,
                Some(&r.account),
                "risk.settle.unknown_reservation",
                Some(r.amount),
                now,
            );
            return Err(RiskError::UnknownReservation);
        }
        let code = if spent > r.amount {
            "risk.commit.overspent"
        } else {
            code
        };
        self.event(&r.trader, Some(&r.account), code, Some(spent), now);
        Ok(())
    }

    /// `owner`'s usage for the current UTC day, over all of their accounts and traders.
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn usage_today(&self, owner: &UserId) -> Result<Usage, RiskError> {
        let day = utc_day(self.clock.now_unix());
        Ok(self.store.usage(owner, day).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notional_bounds() {
        assert_eq!(
            Notional::from_minor_units(i64::MAX as u64),
            Ok(Notional::MAX)
        );
        assert_eq!(
            Notional::from_minor_units(i64::MAX as u64 + 1)
                .unwrap_err()
                .field(),
            "notional"
        );
        assert_eq!(Notional::MAX.checked_add(Notional(1)), None);
        assert_eq!(Notional(1).checked_sub(Notional(2)), None);
        assert!(Notional::from_stored(-1, "used").is_err());
    }

    #[test]
    fn day_boundaries_are_utc_midnight() {
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(86_399), 0);
        assert_eq!(utc_day(86_400), 1);
        assert_eq!(utc_day(-1), -1);
        // 2026-11-22T00:00:00Z
        assert_eq!(utc_day(1_795_305_600), 20_779);
        assert_eq!(utc_day(1_795_305_599), 20_778);
    }
}
