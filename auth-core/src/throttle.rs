//! Login throttling over the `throttle` crate: failed password attempts are limited per
//! account (a growing-delay backoff keyed by the normalised email) and per client
//! address (a GCRA rate limit keyed by the IPv4 address or the IPv6 /64), and failed
//! second-factor codes per user (a backoff keyed by the user id). OWASP Authentication
//! Cheat Sheet, "Login Throttling".
//!
//! * An unknown email is keyed and answered exactly like a known one: the key is the
//!   SHA-256 of the normalised email whether or not an account exists (an address that
//!   does not normalise is keyed by the SHA-256 of its raw text, in its own namespace),
//!   and every check happens before any password work.
//! * No email appears in the shared store: keys are digests.
//! * A store error is [`ThrottleError::Unavailable`]: the caller answers 503, never lets
//!   the attempt through unlimited.
//!
//! Defaults ([`LoginThrottleConfig::default`]) and why:
//!
//! | limit | default | worst case for an attacker | worst case for the owner |
//! | --- | --- | --- | --- |
//! | per account | 5 free failures, then 1 s doubling to 30 s, forgotten 15 min after the last failure | 120 guesses an hour per account, from any number of addresses | after an attack stops, the next attempt waits at most 30 s (a success resets) |
//! | per client address | 20 attempts at once, then 1 every 30 s (GCRA, 20 per 10 min) | 120 guesses an hour per address over all accounts | an office behind one NAT shares it; raise it there |
//! | second factor per user | 3 free failures, then 2 s doubling to 5 min, forgotten after 1 h | 12 codes an hour: a 6-digit code with a window of ±1 step is guessed with probability about 3.6e-5 an hour | at most 5 min after repeated wrong codes (the attacker already had the password) |

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ::throttle::{Backoff, BackoffPolicy, Clock, Decision, Quota, RateLimiter, Store, Unavailable};
use aws_lc_rs::digest::{SHA256, digest};

use crate::user::normalize_email;

/// A refused or undecidable attempt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// Too many attempts: try again after `retry_after` (HTTP 429 with `Retry-After`,
    /// RFC 6585 §4, in whole seconds rounded up).
    #[error("too many attempts; retry after {} s", retry_after.as_secs_f64().ceil())]
    Throttled {
        /// The wait.
        retry_after: Duration,
    },
    /// The limiter's store did not answer: refuse the attempt (HTTP 503).
    #[error("login throttle unavailable")]
    Unavailable(#[source] Unavailable),
}

impl ThrottleError {
    /// The stable code for logs and audit: `throttle.throttled` or
    /// `throttle.unavailable`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Throttled { .. } => "throttle.throttled",
            Self::Unavailable(_) => "throttle.unavailable",
        }
    }

    /// The HTTP status to answer: 429 for [`Throttled`](Self::Throttled) (with
    /// `Retry-After`), 503 for [`Unavailable`](Self::Unavailable).
    #[must_use]
    pub const fn status(&self) -> http::StatusCode {
        match self {
            Self::Throttled { .. } => http::StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<Unavailable> for ThrottleError {
    fn from(e: Unavailable) -> Self {
        Self::Unavailable(e)
    }
}

/// The three limits of a [`LoginThrottle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginThrottleConfig {
    /// Failed passwords per account (normalised email).
    pub account: BackoffPolicy,
    /// Password attempts per client address (IPv4 address, IPv6 /64); every attempt
    /// counts, success or not.
    pub address: Quota,
    /// Failed second-factor codes per user id.
    pub second_factor: BackoffPolicy,
}

impl Default for LoginThrottleConfig {
    /// The defaults of the module documentation.
    #[allow(clippy::unwrap_used)] // Constant, valid settings (checked by a test).
    fn default() -> Self {
        Self {
            account: BackoffPolicy::new(
                5,
                Duration::from_secs(1),
                Duration::from_secs(30),
                Duration::from_secs(15 * 60),
            )
            .unwrap(),
            address: Quota::new(20, Duration::from_secs(600)).unwrap(),
            second_factor: BackoffPolicy::new(
                3,
                Duration::from_secs(2),
                Duration::from_secs(300),
                Duration::from_secs(3600),
            )
            .unwrap(),
        }
    }
}

/// Login throttling (see the module documentation). Cheap to clone.
#[derive(Clone, Debug)]
pub struct LoginThrottle {
    account: Arc<Backoff>,
    address: Arc<RateLimiter>,
    second_factor: Arc<Backoff>,
}

impl LoginThrottle {
    /// Throttling on `store` (limiter names `login.account`, `login.address`,
    /// `login.mfa`): [`Store::memory`] for one instance, PostgreSQL or Redis to share
    /// the limits across instances.
    #[must_use]
    #[allow(clippy::missing_panics_doc)] // The names are constant and valid.
    pub fn new(store: &Store, config: LoginThrottleConfig) -> Self {
        #[allow(clippy::unwrap_used)]
        Self {
            account: Arc::new(Backoff::new(store, "login.account", config.account).unwrap()),
            address: Arc::new(RateLimiter::new(store, "login.address", config.address).unwrap()),
            second_factor: Arc::new(
                Backoff::new(store, "login.mfa", config.second_factor).unwrap(),
            ),
        }
    }

    /// In-process throttling with the default settings.
    #[must_use]
    pub fn memory() -> Self {
        Self::new(&Store::memory(), LoginThrottleConfig::default())
    }

    /// The same limits on `clock` (tests). Call before sharing: a memory limiter starts
    /// empty.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let unwrap_backoff = |b: Arc<Backoff>| Arc::try_unwrap(b);
        match (
            unwrap_backoff(self.account),
            Arc::try_unwrap(self.address),
            unwrap_backoff(self.second_factor),
        ) {
            (Ok(a), Ok(r), Ok(s)) => Self {
                account: Arc::new(a.with_clock(clock.clone())),
                address: Arc::new(r.with_clock(clock.clone())),
                second_factor: Arc::new(s.with_clock(clock)),
            },
            (a, r, s) => {
                tracing::warn!(
                    code = "throttle.clock_ignored",
                    "with_clock on a shared LoginThrottle"
                );
                Self {
                    account: a.map_or_else(|a| a, Arc::new),
                    address: r.map_or_else(|r| r, Arc::new),
                    second_factor: s.map_or_else(|s| s, Arc::new),
                }
            }
        }
    }

    /// May this password attempt go ahead? Call before any password work. Charges the
    /// client address's rate limit and counts the attempt as a failed one for the account
    /// at once (a correct password then resets it through [`LoginThrottle::success`]), so
    /// parallel attempts cannot all pass inside the account's free failures.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Throttled`], [`ThrottleError::Unavailable`].
    pub async fn check(&self, email: &str, client: Option<IpAddr>) -> Result<(), ThrottleError> {
        if let Some(addr) = client
            && let Decision::Deny { retry_after } =
                self.address.check(&throttle::address_key(addr)).await?
        {
            tracing::info!(
                code = "login.throttled_address",
                "login refused: address limit"
            );
            return Err(ThrottleError::Throttled { retry_after });
        }
        if let Decision::Deny { retry_after } = self.account.acquire(&account_key(email)).await? {
            tracing::info!(
                code = "login.throttled_account",
                "login refused: account backoff"
            );
            return Err(ThrottleError::Throttled { retry_after });
        }
        Ok(())
    }

    /// A failed password: nothing more to count ([`LoginThrottle::check`] counted the
    /// attempt as a failure before it ran, and charged the address). Kept so that callers
    /// report every outcome.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Unavailable`].
    pub async fn failure(
        &self,
        _email: &str,
        _client: Option<IpAddr>,
    ) -> Result<(), ThrottleError> {
        Ok(())
    }

    /// Forgets the account's failures after a correct password (the address limit is a
    /// rate and needs no reset).
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Unavailable`].
    pub async fn success(&self, email: &str, _client: Option<IpAddr>) -> Result<(), ThrottleError> {
        self.account.reset(&account_key(email)).await?;
        Ok(())
    }

    /// May this user try a second-factor code now? Counts the attempt as a wrong code at
    /// once (a correct one then resets it through
    /// [`LoginThrottle::second_factor_success`]), so parallel attempts cannot all pass
    /// inside the free failures.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Throttled`], [`ThrottleError::Unavailable`].
    pub async fn check_second_factor(&self, user_id: &str) -> Result<(), ThrottleError> {
        if let Decision::Deny { retry_after } = self.second_factor.acquire(user_id).await? {
            tracing::info!(
                code = "mfa.throttled",
                user_id,
                "second factor refused: backoff"
            );
            return Err(ThrottleError::Throttled { retry_after });
        }
        Ok(())
    }

    /// A wrong second-factor code: nothing more to count
    /// ([`LoginThrottle::check_second_factor`] counted it before it ran).
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Unavailable`].
    pub async fn second_factor_failure(&self, _user_id: &str) -> Result<(), ThrottleError> {
        Ok(())
    }

    /// Forgets the user's wrong codes after a correct one.
    ///
    /// # Errors
    ///
    /// [`ThrottleError::Unavailable`].
    pub async fn second_factor_success(&self, user_id: &str) -> Result<(), ThrottleError> {
        self.second_factor.reset(user_id).await?;
        Ok(())
    }
}

/// The account key: SHA-256 of the normalised email (hex), or of the raw text in a
/// namespace of its own when it does not normalise. Existence is never consulted.
fn account_key(email: &str) -> String {
    let (tag, text) = match normalize_email(email) {
        Ok(n) => ("e", n),
        Err(_) => ("r", email.to_owned()),
    };
    format!(
        "{tag}{}",
        base16ct::lower::encode_string(digest(&SHA256, text.as_bytes()).as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            account_key(" Alice@Example.COM "),
            account_key("alice@example.com")
        );
        assert_ne!(
            account_key("alice@example.com"),
            account_key("bob@example.com")
        );
        assert_ne!(account_key("not an email"), account_key("not an email2"));
        let _ = LoginThrottleConfig::default();
    }
}
