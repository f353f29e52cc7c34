//! `POST /api/webhooks/copy-trading/{strategy_id}`: a strategy's signal, placed on every
//! follower account.
//!
//! No credential: the signature is the credential (auth-core's webhook scheme, header
//! `X-Strongroom-Signature`). In order, and nothing of a later step runs when an earlier
//! one refuses:
//!
//! 1. the body is read as raw bytes, at most [`MAX_WEBHOOK_BODY`] (413);
//! 2. the strategy's active secrets are opened (current, and the previous one within its
//!    grace); an unknown or malformed strategy id is verified against a random secret, so
//!    that it gets the same 401 as a bad signature (no enumeration);
//! 3. the signature over the raw bytes and the timestamp are verified, and the delivery is
//!    claimed in the replay guard (the service database: shared by every instance on
//!    PostgreSQL): 401 with an empty body for a missing, malformed or wrong signature or a
//!    stale timestamp; a delivery seen before is answered 200 `{"duplicate": true,
//!    "signal_id"}` with the first delivery's signal id and nothing runs;
//! 4. the delivery is recorded as a signal;
//! 5. the per-strategy limit (`throttle`, limiter `webhook.strategy`, shared store): 429
//!    with `Retry-After`; a limiter store failure 503 (fail closed);
//! 6. only now the JSON is parsed (400 naming the field);
//! 7. for each follower account, in its own task so that a client that hangs up cannot
//!    interrupt it half-way: the policy decision for the strategy principal
//!    (`create_order`), the follower's own maximum, the account owner's risk limits
//!    (grant-policy's `RiskGuard`: order maximum, daily cap reserved before the order and
//!    settled after, live-trading switch), the credential through cred-cache at trade
//!    level, the order at the venue. 202 `{signal_id, results}`.

use std::sync::Arc;
use std::time::Duration;

use audit_trail::{Actor, Outcome};
use auth_core::webhook;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use grant_policy::{Admission, Operation, RiskRefusal, UserId};
use serde_json::{Value, json};

use super::body::Body;
use super::error::ApiError;
use super::order::{Order, Placed, Price, place_reserved};
use super::strategies::{
    MAX_FOLLOWERS, new_signal_id, now, open_secrets, principal, valid_strategy_id,
};
use super::{AppState, Shared};
use crate::db::Db;
use crate::exchange::ExchangeError;
use crate::strategies::{Follower, Signal, WriteError};

/// Largest webhook body, bytes.
pub(crate) const MAX_WEBHOOK_BODY: usize = 16 * 1024;
/// How often expired replay claims are deleted (decisions never depend on it).
const SWEEP_EVERY: Duration = Duration::from_secs(600);
/// The per-strategy limiter's name in the shared throttle store.
const LIMITER: &str = "webhook.strategy";

/// Copy trading's part of the state: the verifier (with its replay guard), the
/// per-strategy limit, and how long a rotated-out secret keeps verifying.
#[derive(Debug)]
pub(crate) struct CopyTrading {
    pub(crate) verifier: webhook::Verifier,
    pub(crate) limiter: throttle::RateLimiter,
    /// The limiter's quota (named in a 429's `RateLimit-Policy`).
    pub(crate) quota: throttle::Quota,
    pub(crate) secret_grace: Duration,
}

impl CopyTrading {
    /// The replay guard in the service database (auth-core's table
    /// `auth_webhook_replay`: shared by every instance on PostgreSQL), with a task that
    /// deletes expired claims every [`SWEEP_EVERY`]; `signals_per_minute` per strategy,
    /// in `store` (shared across instances unless it is the memory store).
    pub(crate) fn new(
        db: &Db,
        store: &throttle::Store,
        signals_per_minute: u32,
        secret_grace: Duration,
    ) -> Result<Self, &'static str> {
        let guard: Arc<dyn webhook::ReplayGuard> = match db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => Arc::new(auth_core::SqliteStore::new(pool.clone())),
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => Arc::new(auth_core::PgStore::new(pool.clone())),
        };
        let verifier = webhook::Verifier::builder(guard)
            .build()
            .map_err(|_| "webhook verifier")?;
        let quota = throttle::Quota::new(signals_per_minute, Duration::from_secs(60))
            .map_err(|_| "webhook signal limit")?;
        let limiter = throttle::RateLimiter::new(store, LIMITER, quota)
            .map_err(|_| "webhook signal limit")?;
        let sweeper = verifier.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                if let Err(e) = sweeper.sweep(now()).await {
                    tracing::warn!(code = e.code(), "webhook replay guard sweep failed");
                }
            }
        });
        Ok(Self {
            verifier,
            limiter,
            quota,
            secret_grace,
        })
    }
}

/// The outcome for one follower account.
fn outcome(account: &str, status: &str, error: Option<&str>) -> Value {
    let mut v = json!({ "account_id": account, "status": status });
    if let Some(e) = error {
        v["error"] = json!(e);
    }
    v
}

fn refused(account: &str, error: &str) -> Value {
    outcome(account, "refused", Some(error))
}

fn failed(account: &str, error: &str) -> Value {
    outcome(account, "failed", Some(error))
}

/// One follower account: every check, then the order.
async fn place(state: &AppState, trader: &UserId, follower: &Follower, order: &Order) -> Value {
    let account_text = follower.account_id.as_str();
    let Ok(account) = grant_policy::AccountId::new(account_text) else {
        return refused(account_text, "not_permitted");
    };
    // The permit is the key of the credential fetch below: no decision, no credential.
    let permit = match state
        .policy
        .authorize(trader, &account, Operation::CreateOrder, None)
        .await
    {
        Ok(permit) => permit,
        Err(reason) if reason.status().is_server_error() => {
            return failed(account_text, "unavailable");
        }
        Err(_) => return refused(account_text, "not_permitted"),
    };
    let adapter = match state.adapter_for(account_text).await {
        Ok(a) => a,
        Err(_) => return failed(account_text, "unavailable"),
    };
    let notional = match order.value(adapter.as_ref(), true).await {
        Ok(n) => n,
        Err(ExchangeError::Unavailable) => return failed(account_text, "exchange_unavailable"),
        Err(ExchangeError::InvalidParameter { .. }) => {
            return refused(account_text, "unknown_symbol");
        }
        Err(_) => return refused(account_text, "no_reference_price"),
    };
    if let Some(max) = follower.max_order_notional
        && notional.minor_units() > max.unsigned_abs()
    {
        return refused(account_text, "follower_max_order_notional");
    }
    let reservation = match state.risk.admit(trader, &account, notional).await {
        Admission::Live(r) => r,
        Admission::DryRun => {
            let mut v = outcome(account_text, "placed", None);
            v["dry_run"] = json!(true);
            return v;
        }
        Admission::Refused(RiskRefusal::StoreUnavailable) => {
            return failed(account_text, "unavailable");
        }
        Admission::Refused(RiskRefusal::OrderTooLarge) => {
            return refused(account_text, "max_order_notional");
        }
        Admission::Refused(RiskRefusal::DailyCapExceeded) => {
            return refused(account_text, "daily_cap_exceeded");
        }
        Admission::Refused(_) => return refused(account_text, "not_permitted"),
    };
    match place_reserved(
        &state.risk,
        reservation,
        &state.cache,
        permit,
        adapter.as_ref(),
        &order.params(true),
    )
    .await
    {
        Placed::Ok(placed) => {
            let mut v = outcome(account_text, "placed", None);
            if let Some(id) = placed["order"]["id"].as_str() {
                v["order_id"] = json!(id);
            }
            v
        }
        Placed::NoCredential(_) => failed(account_text, "credential_unavailable"),
        Placed::VenueUnavailable => failed(account_text, "exchange_unavailable"),
        Placed::Refused(e) => failed(account_text, e.code()),
    }
}

/// Every follower account of the strategy, one after the other.
async fn execute(
    state: &AppState,
    strategy_id: &str,
    order: &Order,
) -> Result<Vec<(Follower, Value)>, ApiError> {
    let trader = principal(strategy_id)?;
    let followers = state
        .strategies
        .followers(strategy_id, MAX_FOLLOWERS)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?;
    let mut results = Vec::with_capacity(followers.len());
    for follower in followers {
        let result = place(state, &trader, &follower, order).await;
        tracing::info!(
            code = "copy.order",
            strategy_id = %strategy_id,
            account_id = %follower.account_id,
            status = result["status"].as_str().unwrap_or(""),
            error = result["error"].as_str().unwrap_or(""),
            "copy-trading order"
        );
        results.push((follower, result));
    }
    Ok(results)
}

async fn mark(state: &AppState, signal_id: &str, status: &str) {
    if state
        .strategies
        .finish_signal(signal_id, status, None, "[]", &[])
        .await
        .is_err()
    {
        tracing::warn!(
            code = "copy.signal_record_failed",
            signal_id,
            "signal status not recorded"
        );
    }
}

fn duplicate(signal_id: &str) -> Response {
    (
        StatusCode::OK,
        Json(json!({ "duplicate": true, "signal_id": signal_id })),
    )
        .into_response()
}

/// The handler (see the module docs for the order of the checks).
#[utoipa::path(
    post, operation_id = "copy_trading_webhook", path = "/api/webhooks/copy-trading/{strategy_id}", tag = "copy-trading",
    params(("strategy_id" = String, Path, description = "The strategy (`stg_` and 32 hex digits).")),
    request_body(content = super::openapi::SignalRequest, description = "The signal; signed with `X-Strongroom-Signature`, parsed only after the signature verified."),
    responses(
        (status = 202, description = "Placed on every follower account: `{signal_id, results}`.", body = super::openapi::SignalAccepted),
        (status = 200, description = "A replayed delivery: nothing ran.", body = super::openapi::SignalDuplicate),
        (status = 401, description = "Empty body: a missing, malformed or wrong signature, a stale timestamp, an unknown strategy."),
        (status = 429, description = "`{\"error\": \"rate_limited\"}` with `Retry-After`: the per-strategy limit, or the per-address limit.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn webhook(
    State(state): State<Shared>,
    Path(strategy_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, MAX_WEBHOOK_BODY)
        .await
        .map_err(|_| ApiError::Code(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"))?;
    let unauthorized = ApiError::Status(StatusCode::UNAUTHORIZED);
    // One signature header, visible ASCII (several, or bytes outside ASCII: 401).
    let mut values = headers.get_all(webhook::SIGNATURE_HEADER).iter();
    let header = match (values.next(), values.next()) {
        (None, _) => None,
        (Some(v), None) => Some(v.to_str().map_err(|_| unauthorized)?),
        (Some(_), Some(_)) => return Err(unauthorized),
    };
    let now = now();
    let secrets = if valid_strategy_id(&strategy_id) {
        let rows = state
            .strategies
            .active_secrets(&strategy_id, now)
            .await
            .map_err(|_| ApiError::UNAVAILABLE)?;
        open_secrets(&state, &strategy_id, rows).await?
    } else {
        None
    };
    // Unknown strategy: a random secret, so that it fails exactly as a wrong signature.
    let secrets = match secrets {
        Some(s) => s,
        None => webhook::ActiveSecrets::new(
            webhook::WebhookSecret::generate().map_err(|_| ApiError::UNAVAILABLE)?,
        ),
    };
    let signal_id = new_signal_id()?;
    let delivery = state
        .copy
        .verifier
        .verify(&strategy_id, header, &bytes, &secrets, now, &signal_id)
        .await;
    drop(secrets);
    let delivery_id = match delivery {
        Ok(webhook::Delivery::Accepted { delivery_id, .. }) => {
            state
                .audit_as(
                    Actor::new(format!("strategy:{strategy_id}"), "webhook"),
                    "webhook.accepted",
                    Outcome::Success,
                )
                .target(format!("{strategy_id}/{signal_id}"))
                .record()
                .await;
            delivery_id
        }
        Ok(webhook::Delivery::Duplicate { reference, .. }) => {
            tracing::info!(code = "webhook.duplicate", strategy_id = %strategy_id, signal_id = %reference, "replayed delivery: nothing executed");
            state
                .audit_as(
                    Actor::new(format!("strategy:{strategy_id}"), "webhook"),
                    "webhook.duplicate",
                    Outcome::Refused,
                )
                .target(format!("{strategy_id}/{reference}"))
                .reason("duplicate")
                .record()
                .await;
            return Ok(duplicate(&reference));
        }
        Err(e) => {
            tracing::info!(code = e.code(), strategy_id = %strategy_id, "webhook refused");
            // Not authenticated: the sender is anonymous; the target is the strategy
            // the URL names (a bounded, validated-or-not path segment, never a secret).
            state
                .audit(None, "webhook.refused", Outcome::Refused)
                .target(&strategy_id)
                .reason(e.code())
                .record()
                .await;
            return Err(ApiError::from_status(e.status()));
        }
    };
    let record = Signal {
        id: signal_id.clone(),
        strategy_id: strategy_id.clone(),
        created_at: now,
        status: "received".into(),
        request: None,
        results: "[]".into(),
    };
    match state.strategies.insert_signal(&record, &delivery_id).await {
        Ok(()) => {}
        // Defence in depth: the replay guard let through a delivery already recorded
        // (its claim was lost): still a duplicate, answered with the recorded signal.
        Err(WriteError::Conflict) => {
            let first = state
                .strategies
                .signal_of_delivery(&strategy_id, &delivery_id)
                .await
                .map_err(|_| ApiError::UNAVAILABLE)?
                .ok_or(ApiError::UNAVAILABLE)?;
            tracing::warn!(code = "webhook.duplicate_recorded", strategy_id = %strategy_id, signal_id = %first, "delivery already recorded: nothing executed");
            return Ok(duplicate(&first));
        }
        Err(WriteError::Down) => return Err(ApiError::UNAVAILABLE),
    }
    match state.copy.limiter.check(&strategy_id).await {
        Ok(throttle::Decision::Allow { .. }) => {}
        Ok(throttle::Decision::Deny { retry_after }) => {
            mark(&state, &signal_id, "rate_limited").await;
            tracing::info!(code = "webhook.rate_limited", strategy_id = %strategy_id, "signal over the strategy's limit");
            return Err(super::limits::strategy_refused(
                state.copy.quota,
                retry_after,
            ));
        }
        Err(e) => {
            mark(&state, &signal_id, "unavailable").await;
            tracing::warn!(
                code = "webhook.limiter_unavailable",
                store = e.store(),
                "signal limiter store unavailable"
            );
            return Err(ApiError::UNAVAILABLE);
        }
    }
    let order = match Body::parse(&bytes).and_then(|body| Order::parse(&body, Price::Always)) {
        Ok(order) => order,
        Err(e) => {
            mark(&state, &signal_id, "invalid").await;
            return Err(e);
        }
    };
    let request = order.summary().to_string();
    // Its own task: a sender that hangs up does not cancel the loop half-way, nor the
    // recording of its results.
    let task = tokio::spawn(run(
        state.clone(),
        strategy_id,
        signal_id.clone(),
        order,
        request,
    ));
    let results = task.await.map_err(|_| ApiError::UNAVAILABLE)??;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "signal_id": signal_id, "results": results })),
    )
        .into_response())
}

/// Executes the signal and records its results (all of them, and each follower's own).
async fn run(
    state: Shared,
    strategy_id: String,
    signal_id: String,
    order: Order,
    request: String,
) -> Result<Vec<Value>, ApiError> {
    let executed = execute(&state, &strategy_id, &order).await?;
    let per_account: Vec<(String, String, String)> = executed
        .iter()
        .map(|(f, r)| (f.account_id.clone(), f.follower_id.clone(), r.to_string()))
        .collect();
    let results: Vec<Value> = executed.into_iter().map(|(_, r)| r).collect();
    let all = Value::Array(results.clone()).to_string();
    if state
        .strategies
        .finish_signal(&signal_id, "executed", Some(&request), &all, &per_account)
        .await
        .is_err()
    {
        // The orders are placed: the sender still gets the truth.
        tracing::warn!(code = "copy.signal_record_failed", signal_id = %signal_id, "signal results not recorded");
    }
    Ok(results)
}
