//! `POST /api/exchange/{operation}`: one exchange operation on one account.
//!
//! Order of checks, all before the body is read: the operation name (from the path,
//! never the body) gives the level; withdraw and transfer are refused (403); the
//! caller's scope must cover the level (`read` or `trade`, 403). Then, from the body:
//! `want` may raise the level (and the scope needed); grant-policy decides (404 not
//! visible, 403 too low or never allowed, 503 store down) and issues its permit; then the
//! account's request limit (429 `rate_limited`, module `limits`); only then is the
//! credential fetched through cred-cache, with the permit as the key, at the permit's
//! level; the adapter signs and runs the call.

use audit_trail::Outcome;
use auth_core::Principal;
use auth_core::http::{Authenticated, authorize};
use auth_core::scope::{Requires, Scope};
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use grant_policy::{Admission, Level, Operation, Permit, Requirement, RiskRefusal};
use serde_json::{Map, Value, json};

use super::Shared;
use super::accounts::{account_id, user_id};
use super::body::Body;
use super::error::ApiError;
use super::limits::Allowed;
use super::order::{Order, Placed, Price, place_reserved};
use super::risk::render_decimal;
use crate::exchange::ExchangeError;

fn exchange_error(e: &ExchangeError) -> ApiError {
    match e {
        ExchangeError::InvalidParameter { field } => ApiError::Field(field),
        ExchangeError::PermissionDenied => {
            ApiError::Code(StatusCode::FORBIDDEN, "exchange_permission_denied")
        }
        ExchangeError::Unauthenticated => {
            ApiError::Code(StatusCode::BAD_GATEWAY, "exchange_unauthenticated")
        }
        ExchangeError::Rejected { code } => ApiError::Code(StatusCode::UNPROCESSABLE_ENTITY, code),
        ExchangeError::Unsupported => {
            ApiError::Code(StatusCode::BAD_REQUEST, "unsupported_operation")
        }
        _ => ApiError::UNAVAILABLE,
    }
}

/// The scope an API key needs for a requirement; `None` for one never allowed.
fn scope_for(requirement: Requirement) -> Option<Scope> {
    match requirement {
        Requirement::AtLeast(Level::Read) => Some(Scope::Read),
        Requirement::AtLeast(_) => Some(Scope::Trade),
        _ => None,
    }
}

/// The operation named in the path, authorised before anything else: 400 for an unknown
/// name, 403 for withdraw and transfer, 403 when the caller's scopes do not cover its
/// level. It declares the route's requirement, so it must come before `Authenticated`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op(Operation);

impl FromRequestParts<Shared> for Op {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Field("operation"))?;
        let operation =
            Operation::parse_field(&name, "operation").map_err(|_| ApiError::Field("operation"))?;
        let Some(scope) = scope_for(operation.required()) else {
            tracing::info!(
                code = "exchange.never_allowed",
                operation = operation.as_str(),
                "operation refused"
            );
            // A withdrawal or transfer attempt is a policy denial: in the audit trail,
            // before any account is read (the target is the operation).
            let principal = parts.extensions.get::<Principal>().cloned();
            state
                .audit(principal.as_ref(), "policy.deny", Outcome::Refused)
                .target(format!("operation/{}", operation.as_str()))
                .reason("grant.deny.never_allowed")
                .record()
                .await;
            return Err(ApiError::FORBIDDEN);
        };
        authorize(parts, Requires::Scope(scope))?;
        Ok(Self(operation))
    }
}

/// Runs `{operation}` with body `{account_id, want?, ...parameters}`.
#[utoipa::path(
    post, operation_id = "exchange_run", path = "/api/exchange/{operation}", tag = "exchange",
    params(("operation" = String, Path, description = "`balance`, `open_orders`, `closed_orders`, `my_trades`, `positions`, `ledger` (scope `read`); `create_order`, `edit_order`, `cancel_order`, `cancel_all` (scope `trade`); `withdraw` and `transfer` are always refused (403).")),
    request_body = super::openapi::ExchangeRequest,
    responses(
        (status = 200, description = "The venue's answer.", body = super::openapi::ExchangeAnswer),
        (status = 403, description = "Refused by the grant (empty body), `{\"error\": \"insufficient_scope\"}`, `{\"error\": \"risk_limit\", \"limit\": ...}` or `exchange_permission_denied`."),
        (status = 404, description = "No such account visible to the caller (empty body)."),
        (status = 422, description = "`{\"error\": code}`: the venue refused the order.", body = super::openapi::ErrorBody),
        (status = 502, description = "`{\"error\": \"exchange_unauthenticated\"}`: the venue refused the stored key.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn run(
    State(state): State<Shared>,
    Op(operation): Op,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<(Allowed, Json<Value>), ApiError> {
    let want = body
        .opt_str("want", 8)?
        .map(|w| Level::parse_field(w, "want"))
        .transpose()
        .map_err(|_| ApiError::Field("want"))?;
    // `want` may raise the level; the scope follows it.
    let scope = scope_for(operation.required_with(want)).ok_or(ApiError::FORBIDDEN)?;
    Requires::Scope(scope)
        .check(&principal)
        .map_err(|refusal| {
            tracing::info!(
                code = refusal.code(),
                operation = operation.as_str(),
                "request refused: scope"
            );
            ApiError::from(refusal)
        })?;
    let account_text = body.str("account_id", 128)?;
    let user = user_id(principal.user_id())?;
    let account = account_id(account_text)?;
    // grant-policy's permit for (user, account, level) is the key of the credential
    // fetch: no decision, no credential.
    let permit = state
        .policy
        .authorize(&user, &account, operation, want)
        .await
        .map_err(|reason| ApiError::from_status(reason.status()))?;
    // Only a caller the grant allowed spends the account's quota.
    let limit = state.limits.account(account.as_str()).await?;
    let adapter = state.adapter_for(account.as_str()).await?;
    if operation == Operation::CreateOrder {
        let answer = create_order(&state, &principal, permit, &body, adapter).await?;
        return Ok((limit, Json(answer)));
    }
    // At the level the decision allowed for this operation.
    let level = permit.level();
    let credential = state.cache.get_or_fetch(permit, level).await.map_err(|e| {
        tracing::warn!(code = e.code(), account_id = %account, "credential fetch failed");
        ApiError::from(e)
    })?;
    let params: Map<String, Value> = body
        .0
        .iter()
        .filter(|(k, _)| k.as_str() != "account_id" && k.as_str() != "want")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let result = adapter.call(&credential, operation, &params).await;
    drop(credential);
    match result {
        Ok(value) => {
            tracing::info!(code = "exchange.ok", operation = operation.as_str(), account_id = %account, user_id = %principal.user_id(), "exchange call");
            Ok((
                limit,
                Json(
                    json!({ "operation": operation.as_str(), "account_id": account.as_str(), "result": value }),
                ),
            ))
        }
        Err(e) => {
            tracing::info!(code = e.code(), operation = operation.as_str(), account_id = %account, "exchange call refused");
            Err(exchange_error(&e))
        }
    }
}

/// `create_order` through the account owner's risk limits (grant-policy's
/// [`RiskGuard`](grant_policy::RiskGuard)): the order is valued ([`Order::value`]), then
/// admitted. Without limits or with live trading off for the account it is a dry run:
/// checked against every limit that is set, answered `{"dry_run": true, ...}`, nothing
/// sent to the venue and no credential opened. Over a limit: 403 `{"error":
/// "risk_limit", "limit": "max_order_notional" | "daily_cap"}`. Live: reserved under the
/// owner's daily cap, sent, then the reservation is committed with what the venue
/// reports as spent, released when the venue refused the order, and committed in full
/// when the venue could not be reached (the order may have gone through: fails closed).
async fn create_order(
    state: &Shared,
    principal: &Principal,
    permit: Permit,
    body: &Body,
    adapter: std::sync::Arc<dyn crate::exchange::ExchangeAdapter>,
) -> Result<Value, ApiError> {
    // The permit is spent on the credential fetch; the account id stays for the answer.
    let account = &permit.account().clone();
    let order = Order::parse(body, Price::ForLimit)?;
    let value = order
        .value(adapter.as_ref(), false)
        .await
        .map_err(|e| match e {
            ExchangeError::InvalidParameter { field } => ApiError::Field(field),
            ExchangeError::Unavailable => ApiError::UNAVAILABLE,
            // No reference price to value it: refused (fails closed).
            _ => ApiError::Field("symbol"),
        })?;
    let answer = |result: Value, dry_run: bool| {
        json!({
            "operation": Operation::CreateOrder.as_str(),
            "account_id": account.as_str(),
            "dry_run": dry_run,
            "result": result,
        })
    };
    let reservation = match state.risk.admit(permit.user(), account, value).await {
        Admission::Live(reservation) => reservation,
        Admission::DryRun => {
            let mut simulated = order.summary();
            simulated["notional"] = json!(render_decimal(value.minor_units()));
            simulated["status"] = json!("dry_run");
            tracing::info!(code = "exchange.dry_run", account_id = %account, "order simulated");
            return Ok(answer(json!({ "order": simulated }), true));
        }
        Admission::Refused(RiskRefusal::OrderTooLarge) => {
            return Err(ApiError::RiskLimit("max_order_notional"));
        }
        Admission::Refused(RiskRefusal::DailyCapExceeded) => {
            return Err(ApiError::RiskLimit("daily_cap"));
        }
        Admission::Refused(RiskRefusal::StoreUnavailable) => return Err(ApiError::UNAVAILABLE),
        Admission::Refused(_) => return Err(ApiError::FORBIDDEN),
    };
    match place_reserved(
        &state.risk,
        reservation,
        &state.cache,
        permit,
        adapter.as_ref(),
        &order.params(false),
    )
    .await
    {
        Placed::Ok(placed) => {
            tracing::info!(code = "exchange.ok", operation = "create_order", account_id = %account, user_id = %principal.user_id(), "exchange call");
            Ok(answer(placed, false))
        }
        Placed::NoCredential(e) => Err(ApiError::from(e)),
        Placed::VenueUnavailable => Err(ApiError::UNAVAILABLE),
        Placed::Refused(e) => {
            tracing::info!(code = e.code(), operation = "create_order", account_id = %account, "exchange call refused");
            Err(exchange_error(&e))
        }
    }
}
