//! Exchange adapters: the [`ExchangeAdapter`] extension point and the built-in paper
//! exchange.
//!
//! The paper exchange is two modules, so that an adapter for a real exchange copies only
//! one of them:
//!
//! * [`paper`]: the thin adapter ([`paper::PaperExchange`], this trait's
//!   implementation: sign, send, map the answer). **Copy this file** for a real
//!   exchange; its module docs list what to change.
//! * [`simulator`]: the simulated venue itself ([`simulator::PaperVenue`]: signature
//!   checks, matching and fills, balances and orders in the service's database so that
//!   every instance sees one venue). A real exchange is this part; an adapter for one
//!   needs nothing from it.

pub mod paper;
pub mod simulator;

use std::fmt;

use async_trait::async_trait;
use cred_cache::ExchangeCredential;
use grant_policy::Operation;
use serde_json::{Map, Value};

/// Why an exchange call failed. Names a field or a stable code, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The venue did not accept the key or its signature (HTTP 502 for a stored key,
    /// 422 when registering one).
    #[error("the exchange refused the key or its signature")]
    Unauthenticated,
    /// The venue refused the call for this key (a read-only key placing an order, a
    /// withdrawal): HTTP 403.
    #[error("the exchange refused this operation for this key")]
    PermissionDenied,
    /// A parameter is missing or invalid: HTTP 400.
    #[error("invalid parameter: {field}")]
    InvalidParameter {
        /// The parameter.
        field: &'static str,
    },
    /// The venue rejected the request (insufficient funds, unknown order): HTTP 422.
    #[error("rejected by the exchange: {code}")]
    Rejected {
        /// A stable code.
        code: &'static str,
    },
    /// The venue does not offer this operation: HTTP 400.
    #[error("operation not supported by this exchange")]
    Unsupported,
    /// The venue cannot be reached: HTTP 503.
    #[error("exchange unavailable")]
    Unavailable,
}

impl ExchangeError {
    /// A stable code for logs and the JSON error body.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "exchange_unauthenticated",
            Self::PermissionDenied => "exchange_permission_denied",
            Self::InvalidParameter { .. } => "invalid_field",
            Self::Rejected { code } => code,
            Self::Unsupported => "unsupported_operation",
            Self::Unavailable => "exchange_unavailable",
        }
    }
}

/// One trading venue.
///
/// # Security contract
///
/// - `credential` is decrypted key material: an adapter uses it only to sign the
///   request it is making, keeps no copy beyond the call, and never logs it or puts it
///   in an error (errors carry stable codes only).
/// - An adapter never decides access: the service has already asked grant-policy, and
///   the credential came from cred-cache at the level the operation needs. The venue's
///   own refusal (a read-only key placing an order) is reported as
///   [`ExchangeError::PermissionDenied`], never retried with other credentials.
/// - `params` is untrusted client input: bounded parsing, no panics, unknown members are
///   ignored, a bad value is [`ExchangeError::InvalidParameter`] naming the field.
/// - Network failures and timeouts are [`ExchangeError::Unavailable`] (fail closed).
#[async_trait]
pub trait ExchangeAdapter: Send + Sync + fmt::Debug {
    /// The venue's name as clients give it (`"paper"`).
    fn name(&self) -> &'static str;

    /// Checks a key with the venue (one signed call) before it is stored.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::Unauthenticated`] when the venue refuses the key.
    async fn verify(&self, credential: &ExchangeCredential) -> Result<(), ExchangeError>;

    /// Runs one operation with the account's credential.
    ///
    /// # Errors
    ///
    /// An [`ExchangeError`].
    async fn call(
        &self,
        credential: &ExchangeCredential,
        operation: Operation,
        params: &Map<String, Value>,
    ) -> Result<Value, ExchangeError>;

    /// The venue's current price of `symbol` (units of the quote asset per unit of the
    /// base asset, in minor units of 1e-8), from its public market data: no credential.
    ///
    /// The service values an order with it when the order's price is a third party's
    /// claim (a copy-trading signal): a sell is bounded by nothing else, since it fills
    /// at the venue's price or better.
    ///
    /// # Errors
    ///
    /// [`ExchangeError::InvalidParameter`] (`symbol`) for a market the venue does not
    /// list, [`ExchangeError::Unavailable`] when the venue cannot be reached, and
    /// [`ExchangeError::Unsupported`] (the default) when the adapter has no price feed:
    /// the service then refuses such orders (fails closed).
    async fn reference_price(&self, symbol: &str) -> Result<u64, ExchangeError> {
        let _ = symbol;
        Err(ExchangeError::Unsupported)
    }
}
