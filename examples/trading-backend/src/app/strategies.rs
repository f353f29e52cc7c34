//! Copy-trading strategies: `/api/strategies*` (create, rotate the webhook secret, list,
//! subscribe and unsubscribe follower accounts, signals) and `GET /api/following/signals`.
//!
//! A strategy is a grant-policy principal, `strategy:<id>` (user ids of this service are
//! 32 hex digits or `bootstrap-admin`, so the prefix cannot collide). Subscribing an
//! account is its owner sharing it at `trade` level with that principal: the policy, the
//! share's expiry and its revocation (also through `DELETE /api/accounts/{id}/shares/
//! strategy:<id>`) govern every order the strategy places.
//!
//! Webhook secrets are 32 random bytes, shown once (`whsec_…`), and sealed at rest by
//! crypto-envelope under `{purpose: "trading-backend.webhook-secret", strategy_id, slot}`
//! (`slot` is the secret's generation, 1, 2, …): a sealed secret moved to another
//! strategy's row or another slot does not open.

use auth_core::http::Authenticated;
use auth_core::webhook;
use axum::Json;
use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crypto_envelope::EncryptionContext;
use grant_policy::{Access, AccountId, GrantError, Level, Role, UserId};
use serde_json::{Value, json};

use super::Shared;
use super::accounts::{account_id, user_id};
use super::body::Body;
use super::error::ApiError;
use crate::strategies::{Follower, SealedSecret, StoreDown, Strategy, WriteError};

/// Prefix of a strategy's grant-policy principal.
const PRINCIPAL_PREFIX: &str = "strategy:";
/// Longest strategy name, bytes.
const MAX_NAME: usize = 64;
/// Strategies one user may own.
const MAX_STRATEGIES: usize = 50;
/// Follower accounts one strategy may have (bounds the work of one signal).
pub(crate) const MAX_FOLLOWERS: i64 = 200;
/// Signals one listing answers (newest first).
const SIGNALS_LISTED: i64 = 100;

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `stg_` and 32 lowercase hex digits.
pub(crate) fn valid_strategy_id(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("stg_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The grant-policy principal of strategy `id`.
pub(crate) fn principal(id: &str) -> Result<UserId, ApiError> {
    UserId::new(&format!("{PRINCIPAL_PREFIX}{id}")).map_err(|_| ApiError::NOT_FOUND)
}

fn random_hex(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiError::UNAVAILABLE)?;
    Ok(format!(
        "{prefix}{}",
        base16ct::lower::encode_string(&bytes)
    ))
}

/// A new signal id (`sig_` and 32 hex digits).
pub(crate) fn new_signal_id() -> Result<String, ApiError> {
    random_hex("sig_")
}

fn down(_: StoreDown) -> ApiError {
    ApiError::UNAVAILABLE
}

fn context(strategy_id: &str, slot: i64) -> Result<EncryptionContext, ApiError> {
    crate::strategies::secret_context(strategy_id, slot).ok_or(ApiError::UNAVAILABLE)
}

async fn seal(
    state: &Shared,
    strategy_id: &str,
    slot: i64,
    secret: &webhook::WebhookSecret,
) -> Result<Vec<u8>, ApiError> {
    let sealed = state
        .secrets
        .envelope()
        .seal(secret.expose_secret(), &context(strategy_id, slot)?)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?;
    Ok(sealed.to_bytes())
}

/// Opens the strategy's active secrets (newest first). A row that does not open under
/// its context (tampered, moved, or under a retired key) is skipped with a warning; a
/// row sealed under a key this service does not hold is 500 `key_not_held`; a
/// master-key backend outage is 503. `Ok(None)` when none is
/// left.
pub(crate) async fn open_secrets(
    state: &Shared,
    strategy_id: &str,
    rows: Vec<SealedSecret>,
) -> Result<Option<webhook::ActiveSecrets>, ApiError> {
    let mut current = None;
    let mut previous = None;
    for row in rows {
        let ctx = context(strategy_id, row.slot)?;
        let secret = match state.secrets.envelope().open(&row.sealed, &ctx).await {
            Ok(plain) => webhook::WebhookSecret::from_bytes(plain.expose_secret())
                .map_err(|_| ApiError::UNAVAILABLE)?,
            Err(e) if e.is_unavailable() => return Err(ApiError::UNAVAILABLE),
            // Sealed under a key this service was not started with: not the row's fault.
            Err(e) if e.is_configuration() => {
                return Err(super::error::envelope_error(&e, "webhook secret"));
            }
            Err(_) => {
                tracing::warn!(
                    code = "webhook.secret_unseal_refused",
                    strategy_id,
                    slot = row.slot,
                    "stored webhook secret does not open under its context; ignored"
                );
                continue;
            }
        };
        match row.expires_at {
            None if current.is_none() => current = Some(secret),
            Some(until) if previous.is_none() => previous = Some((secret, until)),
            _ => {}
        }
    }
    Ok(match (current, previous) {
        (Some(c), Some((p, until))) => Some(webhook::ActiveSecrets::new(c).with_previous(p, until)),
        (Some(c), None) => Some(webhook::ActiveSecrets::new(c)),
        // Only the previous one opens: it keeps verifying until its own expiry.
        (None, Some((p, until))) => Some(
            webhook::ActiveSecrets::new(
                webhook::WebhookSecret::generate().map_err(|_| ApiError::UNAVAILABLE)?,
            )
            .with_previous(p, until),
        ),
        (None, None) => None,
    })
}

/// The answer that shows a secret: `Cache-Control: no-store` (set for every answer of
/// the service's error path too).
fn shown_once(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The strategy `id` if `owner` owns it; 404 otherwise (whether or not it exists).
async fn owned(state: &Shared, id: &str, owner: &str) -> Result<Strategy, ApiError> {
    if !valid_strategy_id(id) {
        return Err(ApiError::NOT_FOUND);
    }
    match state.strategies.get(id).await.map_err(down)? {
        Some(s) if s.owner_id == owner => Ok(s),
        _ => Err(ApiError::NOT_FOUND),
    }
}

/// `POST /api/strategies {name}` (interactive + step-up): 201 `{id, name, created_at,
/// webhook_secret}`, the secret shown once (`no-store`). 409 `too_many_strategies`.
#[utoipa::path(
    post, operation_id = "strategies_create", path = "/api/strategies", tag = "copy-trading",
    request_body = super::openapi::NewStrategy,
    responses(
        (status = 201, description = "Created; the webhook secret is shown once (`Cache-Control: no-store`).", body = super::openapi::CreatedStrategy),
        (status = 403, description = "`{\"error\": \"mfa_required\"}` (step-up)."),
        (status = 409, description = "`{\"error\": \"too_many_strategies\"}`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let name = body.str("name", MAX_NAME)?;
    if name.chars().any(char::is_control) {
        return Err(ApiError::Field("name"));
    }
    state.step_up(&principal).await?;
    let owner = principal.user_id();
    if state.strategies.owned_by(owner).await.map_err(down)?.len() >= MAX_STRATEGIES {
        return Err(ApiError::Code(StatusCode::CONFLICT, "too_many_strategies"));
    }
    let strategy = Strategy {
        id: random_hex("stg_")?,
        owner_id: owner.to_owned(),
        name: name.to_owned(),
        created_at: now(),
    };
    let secret = webhook::WebhookSecret::generate().map_err(|_| ApiError::UNAVAILABLE)?;
    let sealed = seal(&state, &strategy.id, 1, &secret).await?;
    state
        .strategies
        .create(&strategy, &sealed)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?;
    tracing::info!(code = "strategy.created", strategy_id = %strategy.id, user_id = %owner, "strategy created");
    Ok(shown_once(
        StatusCode::CREATED,
        json!({
            "id": strategy.id,
            "name": strategy.name,
            "created_at": strategy.created_at,
            "webhook_secret": secret.to_text().as_str(),
        }),
    ))
}

/// `POST /api/strategies/{id}/secret` (interactive + step-up; owner only, others 404):
/// 200 `{id, webhook_secret, previous_valid_until}`: a new current secret, shown once;
/// the one it replaces keeps verifying until `previous_valid_until` (unix seconds,
/// `STRONGROOM_WEBHOOK_SECRET_GRACE_SECS` from now); an older previous one stops now.
/// 409 `rotation_conflict` when another rotation ran at the same moment.
#[utoipa::path(
    post, operation_id = "strategies_rotate", path = "/api/strategies/{id}/secret", tag = "copy-trading",
    params(("id" = String, Path, description = "The caller's strategy.")),
    responses(
        (status = 200, description = "A new current secret, shown once.", body = super::openapi::RotatedSecret),
        (status = 403, description = "`{\"error\": \"mfa_required\"}` (step-up)."),
        (status = 404, description = "Not the caller's strategy (empty body)."),
        (status = 409, description = "`{\"error\": \"rotation_conflict\"}`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn rotate(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let strategy = owned(&state, &id, principal.user_id()).await?;
    state.step_up(&principal).await?;
    let slot = state
        .strategies
        .next_slot(&strategy.id)
        .await
        .map_err(down)?;
    let secret = webhook::WebhookSecret::generate().map_err(|_| ApiError::UNAVAILABLE)?;
    let sealed = seal(&state, &strategy.id, slot, &secret).await?;
    let now = now();
    let until =
        now.saturating_add(i64::try_from(state.copy.secret_grace.as_secs()).unwrap_or(i64::MAX));
    match state
        .strategies
        .rotate(&strategy.id, slot, &sealed, now, until)
        .await
    {
        Ok(()) => {}
        Err(WriteError::Conflict) => {
            return Err(ApiError::Code(StatusCode::CONFLICT, "rotation_conflict"));
        }
        Err(WriteError::Down) => return Err(ApiError::UNAVAILABLE),
    }
    tracing::info!(code = "strategy.secret_rotated", strategy_id = %strategy.id, slot, "webhook secret rotated");
    Ok(shown_once(
        StatusCode::OK,
        json!({
            "id": strategy.id,
            "webhook_secret": secret.to_text().as_str(),
            "previous_valid_until": until,
        }),
    ))
}

/// `GET /api/strategies` (`read`): the caller's strategies, metadata only:
/// `{strategies: [{id, name, created_at, followers}]}`.
#[utoipa::path(
    get, operation_id = "strategies_list", path = "/api/strategies", tag = "copy-trading",
    responses((status = 200, description = "The caller's strategies.", body = super::openapi::StrategyList))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let mut out = Vec::new();
    for s in state
        .strategies
        .owned_by(principal.user_id())
        .await
        .map_err(down)?
    {
        let followers = state.strategies.follower_count(&s.id).await.map_err(down)?;
        out.push(json!({
            "id": s.id, "name": s.name, "created_at": s.created_at, "followers": followers,
        }));
    }
    Ok(Json(json!({ "strategies": out })))
}

/// `POST /api/strategies/{id}/followers {account_id, max_order_notional?, expires_at?}`
/// (interactive + step-up): 201 `{strategy_id, account_id, max_order_notional,
/// expires_at}`. The caller must own the account: a share grantee (whatever its level)
/// gets 403 `not_account_owner`, a read-only key 403 `read_only_account`, an account the
/// caller cannot see 404; an unknown strategy 404. The account is shared at `trade` level
/// with the strategy's principal (until `expires_at`, unix seconds, if given);
/// `max_order_notional` (a decimal string) caps each of the strategy's orders on it, on
/// top of the owner's risk limits. Subscribing again replaces both.
#[utoipa::path(
    post, operation_id = "strategies_follow", path = "/api/strategies/{id}/followers", tag = "copy-trading",
    params(("id" = String, Path, description = "The strategy.")),
    request_body = super::openapi::NewFollower,
    responses(
        (status = 201, description = "Subscribed (again: both values replaced).", body = super::openapi::Follower),
        (status = 403, description = "`{\"error\": code}`: `not_account_owner`, `read_only_account`, `mfa_required`."),
        (status = 404, description = "An unknown strategy, or an account the caller cannot see (empty body)."),
    )
)]
pub(crate) async fn follow(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    if !valid_strategy_id(&id) || state.strategies.get(&id).await.map_err(down)?.is_none() {
        return Err(ApiError::NOT_FOUND);
    }
    let body = Body::from_request(request, &state).await?;
    let account_text = body.str("account_id", 128)?;
    let max_order = match body.opt_str("max_order_notional", 32)? {
        None => None,
        Some(_) => Some(body.positive_decimal("max_order_notional")?),
    };
    let max_order = max_order
        .map(i64::try_from)
        .transpose()
        .map_err(|_| ApiError::Field("max_order_notional"))?;
    let expires_at = body.opt_i64("expires_at")?;
    let owner = user_id(principal.user_id())?;
    let account = account_id(account_text)?;
    match state.grants.access(&owner, &account).await {
        Ok(Some(Access {
            role: Role::Owner,
            capability: Level::Trade,
        })) => {}
        Ok(Some(Access {
            role: Role::Owner, ..
        })) => return Err(ApiError::Code(StatusCode::FORBIDDEN, "read_only_account")),
        Ok(Some(_)) => return Err(ApiError::Code(StatusCode::FORBIDDEN, "not_account_owner")),
        Ok(None) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    // Sharing at trade level: the same step-up as `POST /api/accounts/{id}/shares`.
    state.step_up(&principal).await?;
    let strategy_principal = principal_of(&id)?;
    match state
        .policy
        .share(
            &owner,
            &account,
            &strategy_principal,
            Level::Trade,
            expires_at,
        )
        .await
    {
        Ok(()) => {}
        Err(GrantError::NotFound) => return Err(ApiError::NOT_FOUND),
        Err(GrantError::ExpiryInPast) => return Err(ApiError::Field("expires_at")),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    let follower = Follower {
        account_id: account.as_str().to_owned(),
        follower_id: owner.as_str().to_owned(),
        max_order_notional: max_order,
        created_at: now(),
    };
    if state.strategies.put_follower(&id, &follower).await.is_err() {
        // Undo the grant: nothing half-written stays behind.
        let _ = state
            .policy
            .revoke(&owner, &account, &strategy_principal)
            .await;
        return Err(ApiError::UNAVAILABLE);
    }
    forget_cached(&state, &strategy_principal, &account).await;
    tracing::info!(code = "strategy.follow", strategy_id = %id, account_id = %account, user_id = %owner, "account subscribed to a strategy");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "strategy_id": id,
            "account_id": account.as_str(),
            "max_order_notional": max_order.map(|m| super::risk::render_decimal(m.unsigned_abs())),
            "expires_at": expires_at,
        })),
    )
        .into_response())
}

fn principal_of(id: &str) -> Result<UserId, ApiError> {
    principal(id).map_err(|_| ApiError::UNAVAILABLE)
}

/// The strategy principal's cached credential of `account` goes now, not at its TTL.
async fn forget_cached(state: &Shared, strategy_principal: &UserId, account: &AccountId) {
    let _ = state
        .cache
        .invalidate_user_credential(strategy_principal, account)
        .await;
}

/// `DELETE /api/strategies/{id}/followers/{account_id}` (interactive; the account's
/// owner): 204. The strategy's share is revoked first (it can place no further order),
/// then the follower row goes. 404 when the caller does not own the account or it does
/// not follow the strategy.
#[utoipa::path(
    delete, operation_id = "strategies_unfollow", path = "/api/strategies/{id}/followers/{account_id}", tag = "copy-trading",
    params(
        ("id" = String, Path, description = "The strategy."),
        ("account_id" = String, Path, description = "The caller's follower account."),
    ),
    responses(
        (status = 204, description = "Unsubscribed: the strategy's share is revoked."),
        (status = 404, description = "Not the caller's account, or it does not follow the strategy (empty body)."),
    )
)]
pub(crate) async fn unfollow(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path((id, account_text)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !valid_strategy_id(&id) {
        return Err(ApiError::NOT_FOUND);
    }
    let owner = user_id(principal.user_id())?;
    let account = account_id(&account_text)?;
    let strategy_principal = principal_of(&id)?;
    match state
        .policy
        .revoke(&owner, &account, &strategy_principal)
        .await
    {
        Ok(()) => {}
        Err(GrantError::NotFound) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    forget_cached(&state, &strategy_principal, &account).await;
    let removed = state
        .strategies
        .delete_follower(&id, account.as_str(), owner.as_str())
        .await
        .map_err(down)?;
    if !removed {
        return Err(ApiError::NOT_FOUND);
    }
    tracing::info!(code = "strategy.unfollow", strategy_id = %id, account_id = %account, "account unsubscribed from a strategy");
    Ok(StatusCode::NO_CONTENT)
}

fn parse_json(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// `GET /api/strategies/{id}/signals` (`read`; the strategy's owner, others 404): the
/// newest 100 signals, `{signals: [{id, created_at, status, request, results}]}`;
/// `status` is `received` (running, or interrupted), `executed`, `rate_limited` or
/// `invalid`; `results` as answered to the sender.
#[utoipa::path(
    get, operation_id = "strategies_signals", path = "/api/strategies/{id}/signals", tag = "copy-trading",
    params(("id" = String, Path, description = "The caller's strategy.")),
    responses(
        (status = 200, description = "The newest 100 signals.", body = super::openapi::SignalList),
        (status = 404, description = "Not the caller's strategy (empty body)."),
    )
)]
pub(crate) async fn signals(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let strategy = owned(&state, &id, principal.user_id()).await?;
    let out: Vec<Value> = state
        .strategies
        .signals(&strategy.id, SIGNALS_LISTED)
        .await
        .map_err(down)?
        .into_iter()
        .map(|s| {
            json!({
                "id": s.id,
                "created_at": s.created_at,
                "status": s.status,
                "request": parse_json(s.request.as_deref()),
                "results": parse_json(Some(&s.results)),
            })
        })
        .collect();
    Ok(Json(json!({ "signals": out })))
}

/// `GET /api/following/signals` (`read`): the newest signals that touched the caller's
/// accounts, `{signals: [{id, strategy_id, created_at, request, results}]}`, with the
/// results of the caller's own accounts only.
#[utoipa::path(
    get, operation_id = "strategies_following_signals", path = "/api/following/signals", tag = "copy-trading",
    responses((status = 200, description = "Signals that touched the caller's accounts.", body = super::openapi::FollowedSignalList))
)]
pub(crate) async fn following_signals(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let rows = state
        .strategies
        .signals_for_follower(principal.user_id(), SIGNALS_LISTED * 4)
        .await
        .map_err(down)?;
    let mut out: Vec<Value> = Vec::new();
    let mut last: Option<String> = None;
    for row in rows {
        let result = parse_json(Some(&row.results));
        if last.as_deref() == Some(row.id.as_str()) {
            if let Some(Value::Array(results)) = out.last_mut().and_then(|v| v.get_mut("results")) {
                results.push(result);
            }
            continue;
        }
        if out.len() >= usize::try_from(SIGNALS_LISTED).unwrap_or(100) {
            break;
        }
        last = Some(row.id.clone());
        out.push(json!({
            "id": row.id,
            "strategy_id": row.strategy_id,
            "created_at": row.created_at,
            "request": parse_json(row.request.as_deref()),
            "results": [result],
        }));
    }
    Ok(Json(json!({ "signals": out })))
}
