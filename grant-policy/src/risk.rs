//! Risk limits: live trading switch, maximum order notional, daily notional cap.
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

use crate::audit::{AuditSink, RiskEvent, TracingAuditSink};
use crate::clock::{Clock, SystemClock};
use crate::error::{NotionalError, RiskError, StoreError};
use crate::id::{AccountId, UserId};
use crate::store::RiskStore;

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

/// A user's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RiskLimits {
    /// The largest notional a single order may have.
    pub max_order_notional: Notional,
    /// The most a user may trade in one UTC day (committed plus reserved).
    pub daily_cap: Notional,
}

/// A user's risk profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RiskProfile {
    /// Orders go to the exchange only when this is on; until then they are dry runs.
    pub allow_live_trading: bool,
    /// The limits.
    pub limits: RiskLimits,
}

/// Committed and reserved notional for one user and one UTC day.
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
    /// Above the profile's maximum order notional.
    OrderTooLarge,
    /// Would take the day's used plus reserved notional above the cap.
    DailyCapExceeded,
    /// The risk store failed: never an admission.
    StoreUnavailable,
}

impl RiskRefusal {
    /// The stable reason code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            RiskRefusal::ZeroNotional => "risk.refuse.zero_notional",
            RiskRefusal::OrderTooLarge => "risk.refuse.order_too_large",
            RiskRefusal::DailyCapExceeded => "risk.refuse.daily_cap_exceeded",
            RiskRefusal::StoreUnavailable => "risk.refuse.store_unavailable",
        }
    }

    /// The HTTP status the embedding service answers with.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            RiskRefusal::ZeroNotional => 400,
            RiskRefusal::OrderTooLarge | RiskRefusal::DailyCapExceeded => 403,
            RiskRefusal::StoreUnavailable => 503,
        }
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
    user: UserId,
    day: i64,
    amount: Notional,
}

impl Reservation {
    /// Whose.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
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
    /// Live trading is off for this user: simulate the order, send nothing.
    DryRun,
    /// Do not place the order.
    Refused(RiskRefusal),
}

/// Applies risk profiles: the live-trading switch, the order maximum and the daily cap.
#[derive(Debug, Clone)]
pub struct RiskGuard {
    store: Arc<dyn RiskStore>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`RiskGuard`].
#[derive(Debug)]
pub struct RiskGuardBuilder {
    store: Arc<dyn RiskStore>,
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
            audit: self.audit,
            clock: self.clock,
        }
    }
}

impl RiskGuard {
    /// A builder over `store`.
    #[must_use]
    pub fn builder(store: Arc<dyn RiskStore>) -> RiskGuardBuilder {
        RiskGuardBuilder {
            store,
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

    /// `user`'s profile, if any.
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn profile(&self, user: &UserId) -> Result<Option<RiskProfile>, RiskError> {
        Ok(self.store.profile(user).await?)
    }

    /// Sets `user`'s limits; a new profile starts in dry-run.
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn set_limits(&self, user: &UserId, limits: RiskLimits) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        self.store.set_limits(user, limits, now).await?;
        self.event(user, None, "risk.limits.set", Some(limits.daily_cap), now);
        Ok(())
    }

    /// Turns live trading on for `user`. Requires credentials on file for `account`
    /// (the account the user is about to trade) and an existing profile.
    ///
    /// # Errors
    ///
    /// [`RiskError::NoCredentials`] when `on_file` is `Absent`; [`RiskError::NoProfile`]
    /// when no limits were set; [`RiskError::Store`] on a store failure.
    pub async fn enable_live_trading(
        &self,
        user: &UserId,
        account: &AccountId,
        on_file: CredentialsOnFile,
    ) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        if on_file != CredentialsOnFile::Present {
            self.event(user, Some(account), "risk.refuse.no_credentials", None, now);
            return Err(RiskError::NoCredentials);
        }
        if !self.store.set_live_trading(user, true, now).await? {
            self.event(user, Some(account), "risk.refuse.no_profile", None, now);
            return Err(RiskError::NoProfile);
        }
        self.event(user, Some(account), "risk.live_trading.enabled", None, now);
        Ok(())
    }

    /// Turns live trading off for `user` (back to dry-run). Doing so for a user without
    /// a profile is not an error: they are already in dry-run.
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn disable_live_trading(&self, user: &UserId) -> Result<(), RiskError> {
        let now = self.clock.now_unix();
        self.store.set_live_trading(user, false, now).await?;
        self.event(user, None, "risk.live_trading.disabled", None, now);
        Ok(())
    }

    /// Decides whether an order of `notional` may go live now, reserving it under the
    /// daily cap if so. Every outcome is audited.
    ///
    /// In order: zero notional is refused; no profile or live trading off is a dry run
    /// (an existing profile's order maximum still applies); above the order maximum is
    /// refused; otherwise the store atomically reserves it under the cap or refuses.
    /// A store failure refuses (503), never admits.
    pub async fn admit(&self, user: &UserId, notional: Notional) -> Admission {
        let now = self.clock.now_unix();
        let outcome = self.admit_at(user, notional, now).await;
        let code = match &outcome {
            Admission::Live(_) => "risk.admit.live",
            Admission::DryRun => "risk.admit.dry_run",
            Admission::Refused(r) => r.code(),
        };
        self.event(user, None, code, Some(notional), now);
        outcome
    }

    async fn admit_at(&self, user: &UserId, notional: Notional, now: i64) -> Admission {
        if notional == Notional::ZERO {
            return Admission::Refused(RiskRefusal::ZeroNotional);
        }
        let profile = match self.store.profile(user).await {
            Ok(Some(p)) => p,
            Ok(None) => return Admission::DryRun,
            Err(_) => return Admission::Refused(RiskRefusal::StoreUnavailable),
        };
        if notional > profile.limits.max_order_notional {
            return Admission::Refused(RiskRefusal::OrderTooLarge);
        }
        if !profile.allow_live_trading {
            return Admission::DryRun;
        }
        if notional > profile.limits.daily_cap {
            return Admission::Refused(RiskRefusal::DailyCapExceeded);
        }
        let day = utc_day(now);
        match self
            .store
            .reserve(user, day, notional, profile.limits.daily_cap)
            .await
        {
            Ok(true) => Admission::Live(Reservation {
                user: user.clone(),
                day,
                amount: notional,
            }),
            Ok(false) => Admission::Refused(RiskRefusal::DailyCapExceeded),
            Err(_) => Admission::Refused(RiskRefusal::StoreUnavailable),
        }
    }

    /// Settles a live order: releases its reservation and records `spent` (what was
    /// really filled, which may be less, or with slippage more, than reserved).
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
        let done = self.store.settle(&r.user, r.day, r.amount, spent).await?;
        if !done {
            self.event(
                &r.user,
                None,
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
        self.event(&r.user, None, code, Some(spent), now);
        Ok(())
    }

    /// `user`'s usage for the current UTC day.
    ///
    /// # Errors
    ///
    /// [`RiskError::Store`] on a store failure.
    pub async fn usage_today(&self, user: &UserId) -> Result<Usage, RiskError> {
        let day = utc_day(self.clock.now_unix());
        Ok(self.store.usage(user, day).await?)
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
