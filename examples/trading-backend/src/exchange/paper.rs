//! The adapter for the paper exchange: **the file to copy for a real exchange.**
//!
//! An adapter is thin: it turns one [`ExchangeAdapter`] call into one signed request to
//! the venue and the venue's answer (or refusal) into a JSON value or an
//! [`ExchangeError`]. It keeps no state of the venue (balances and orders are the
//! venue's; here the simulated venue of [`super::simulator`], which keeps them in the
//! service's database, shared by every instance) and decides no access (grant-policy
//! and the risk limits have already decided).
//!
//! # Writing an adapter for a real exchange
//!
//! Copy this file to `src/exchange/<venue>.rs`, declare it in `src/exchange/mod.rs` and
//! register the adapter beside the paper one in `app::build` (`exchanges.insert(...)`).
//! Then change, and only change:
//!
//! 1. **The handle.** [`PaperExchange`] holds the simulated venue; yours holds an HTTP
//!    client (`reqwest`, with a timeout) and the venue's base URL.
//! 2. [`ExchangeAdapter::name`]: the name clients give as `exchange` (`"binance"`).
//! 3. [`sign`]: the venue's signing scheme (which bytes, which MAC, which headers),
//!    from its API documentation.
//! 4. `send`: the transport. Here a function call into the simulator; yours sends the
//!    signed request over HTTPS, maps the venue's HTTP status and error codes to
//!    [`ExchangeError`] (a refused key or signature `Unauthenticated`, a refused
//!    permission `PermissionDenied`, insufficient funds `Rejected` with a stable code,
//!    a network error or timeout `Unavailable`), and never puts the response body,
//!    the key or the secret in the error.
//! 5. The operations: `call` sends the [`Operation`]'s name, which the paper venue
//!    understands; map each operation to the venue's endpoint, and its answers to the
//!    shapes the service answers (`{"balances": ...}`, `{"order": {..., "amount",
//!    "price"}}`: the risk limits read the placed order's `amount` and `price`, module
//!    `app::order`).
//! 6. [`ExchangeAdapter::reference_price`]: the venue's public ticker (no credential).
//! 7. Delete `register_at_venue` and its two calls: they stand for the user creating
//!    the key on the venue's web site, which only the simulation needs.
//!
//! The security contract of [`ExchangeAdapter`] applies: use the credential only to
//! sign the request being made, keep no copy, log nothing of it.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::hmac;
use cred_cache::ExchangeCredential;
use grant_policy::Operation;
use serde_json::{Map, Value};

use super::simulator::{PaperVenue, SignedRequest, mark_price, now_ms, signing_payload};
use super::{ExchangeAdapter, ExchangeError};

/// Signs a request with `secret`: `hex(HMAC-SHA256(secret, timestamp "\n" operation "\n"
/// body))`, what a client of the paper venue does. A real adapter signs as its venue's
/// API documentation says.
#[must_use]
pub fn sign(
    api_key: &str,
    secret: &str,
    timestamp_ms: i64,
    operation: &str,
    body: String,
) -> SignedRequest {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, &signing_payload(timestamp_ms, operation, &body));
    SignedRequest {
        api_key: api_key.to_owned(),
        timestamp_ms,
        operation: operation.to_owned(),
        body,
        signature: base16ct::lower::encode_string(tag.as_ref()),
    }
}

/// The adapter for the paper venue: signs every call with the stored key and secret and
/// sends it to the venue.
#[derive(Debug, Clone)]
pub struct PaperExchange {
    venue: Arc<PaperVenue>,
}

impl PaperExchange {
    /// An adapter over `venue`.
    #[must_use]
    pub fn new(venue: Arc<PaperVenue>) -> Self {
        Self { venue }
    }

    /// The venue behind the adapter.
    #[must_use]
    pub fn venue(&self) -> &Arc<PaperVenue> {
        &self.venue
    }

    /// The signed request for one operation, stamped now.
    fn signed(
        credential: &ExchangeCredential,
        operation: &str,
        params: &Map<String, Value>,
    ) -> SignedRequest {
        let body = Value::Object(params.clone()).to_string();
        sign(
            credential.expose_api_key(),
            credential.expose_secret(),
            now_ms(),
            operation,
            body,
        )
    }

    /// The transport: one request to the venue, its answer or refusal.
    async fn send(&self, request: &SignedRequest) -> Result<Value, ExchangeError> {
        self.venue.handle(request).await
    }

    /// Simulation only (a real adapter deletes this): the user opened this key at the
    /// venue with the permission it was registered with. The venue keeps the account in
    /// the database; this hands the key's secret to this process's venue, as the venue
    /// of a real exchange would already hold it.
    async fn register_at_venue(
        &self,
        credential: &ExchangeCredential,
    ) -> Result<(), ExchangeError> {
        self.venue
            .open_key(
                credential.expose_api_key(),
                credential.expose_secret(),
                !credential.is_read_only(),
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl ExchangeAdapter for PaperExchange {
    fn name(&self) -> &'static str {
        "paper"
    }

    async fn verify(&self, credential: &ExchangeCredential) -> Result<(), ExchangeError> {
        self.register_at_venue(credential).await?;
        self.send(&Self::signed(credential, "ping", &Map::new()))
            .await
            .map(|_| ())
    }

    async fn call(
        &self,
        credential: &ExchangeCredential,
        operation: Operation,
        params: &Map<String, Value>,
    ) -> Result<Value, ExchangeError> {
        self.register_at_venue(credential).await?;
        self.send(&Self::signed(credential, operation.as_str(), params))
            .await
    }

    async fn reference_price(&self, symbol: &str) -> Result<u64, ExchangeError> {
        mark_price(symbol).ok_or(ExchangeError::InvalidParameter { field: "symbol" })
    }
}
