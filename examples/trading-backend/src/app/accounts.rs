//! `/api/accounts`: exchange accounts (credentials sealed at rest) and their sharing.

use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::http::Authenticated;
use auth_core::{Principal, normalize_email};
use axum::Json;
use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cred_cache::{CredentialError, ExchangeCredential};
use grant_policy::{Access, AccountId, GrantError, Level, Role, UserId};
use serde_json::{Value, json};

use super::Shared;
use super::body::Body;
use super::error::ApiError;
use crate::accounts::AccountMeta;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(super) fn user_id(id: &str) -> Result<UserId, ApiError> {
    UserId::new(id).map_err(|_| ApiError::FORBIDDEN)
}

/// A path or body account id: anything that cannot be an id is simply not visible.
pub(super) fn account_id(id: &str) -> Result<AccountId, ApiError> {
    AccountId::new(id).map_err(|_| ApiError::NOT_FOUND)
}

fn new_account_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiError::UNAVAILABLE)?;
    Ok(format!("acc_{}", base16ct::lower::encode_string(&bytes)))
}

fn level_str(level: Level) -> &'static str {
    level.as_str()
}

fn meta_json(meta: &AccountMeta, level: Level, shared: bool) -> Value {
    json!({
        "id": meta.id,
        "exchange": meta.exchange,
        "label": meta.label,
        "read_only": meta.read_only,
        "access_level": level_str(level),
        "shared": shared,
        "created_at": meta.created_at,
    })
}

fn credential_field(e: &CredentialError) -> &'static str {
    match e {
        CredentialError::Empty { field }
        | CredentialError::TooLong { field, .. }
        | CredentialError::InvalidCharacter { field } => field,
        _ => "credential",
    }
}

/// `POST /api/accounts` {exchange, label, api_key, secret, passphrase?, read_only}:
/// 201 with metadata only. Step-up: a user with a second factor needs a recent check
/// (403 `mfa_required`).
#[utoipa::path(
    post, operation_id = "accounts_create", path = "/api/accounts", tag = "accounts",
    request_body = super::openapi::NewAccount,
    responses(
        (status = 201, description = "Registered; metadata only.", body = super::openapi::Account),
        (status = 403, description = "`{\"error\": \"mfa_required\"}` (step-up)."),
        (status = 409, description = "`{\"error\": \"already_registered\"}`.", body = super::openapi::ErrorBody),
        (status = 422, description = "`{\"error\": \"exchange_rejected_credentials\"}`: the venue refused the key.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let result = create_inner(&state, &principal, body).await;
    let mut event = state.audit_result(Some(&principal), "account.create", &result);
    if let Ok((_, id)) = &result {
        event = event.target(id);
    }
    event.record().await;
    result.map(|(response, _)| response)
}

/// The answer and the new account's id.
async fn create_inner(
    state: &Shared,
    principal: &Principal,
    body: Body,
) -> Result<(Response, String), ApiError> {
    state.step_up(principal).await?;
    let exchange_name = body.str("exchange", 32)?;
    let adapter = state
        .exchanges
        .get(exchange_name)
        .cloned()
        .ok_or(ApiError::Field("exchange"))?;
    let label = body.str("label", 64)?;
    if label.chars().any(char::is_control) {
        return Err(ApiError::Field("label"));
    }
    let read_only = body.bool("read_only")?;
    let api_key = body.secret("api_key", 1024)?;
    let secret = body.secret("secret", 1024)?;
    let passphrase = body
        .opt_str("passphrase", 1024)?
        .map(|p| zeroize::Zeroizing::new(p.to_owned()));
    let owner = user_id(principal.user_id())?;
    let id = new_account_id()?;
    let account = account_id(&id)?;
    let credential =
        ExchangeCredential::new(account.clone(), api_key, secret, passphrase, read_only)
            .map_err(|e| ApiError::Field(credential_field(&e)))?;
    // The venue checks the key (one signed call) before anything is stored.
    if let Err(e) = adapter.verify(&credential).await {
        tracing::info!(
            code = "account.exchange_refused",
            exchange = adapter.name(),
            reason = e.code(),
            "exchange refused the key"
        );
        return Err(match e {
            crate::exchange::ExchangeError::Unavailable => ApiError::UNAVAILABLE,
            _ => ApiError::Code(
                StatusCode::UNPROCESSABLE_ENTITY,
                "exchange_rejected_credentials",
            ),
        });
    }
    let meta = AccountMeta {
        id: id.clone(),
        owner_id: principal.user_id().to_owned(),
        exchange: adapter.name().to_owned(),
        label: label.to_owned(),
        read_only,
        created_at: now(),
    };
    let capability = if read_only { Level::Read } else { Level::Trade };
    // The grant first: it claims the id for the owner (another owner's id is refused,
    // never overwritten) and gives the proof of ownership that storing the sealed
    // credential requires; then the credential, then the metadata. Undone in reverse on
    // failure so that nothing half-written stays behind.
    let ownership = match state
        .policy
        .register_account(&owner, &account, capability)
        .await
    {
        Ok(ownership) => ownership,
        Err(GrantError::AlreadyRegistered) => {
            return Err(ApiError::Code(StatusCode::CONFLICT, "already_registered"));
        }
        Err(_) => return Err(ApiError::UNAVAILABLE),
    };
    let stored = state.source.put(&ownership, &credential).await;
    drop(credential);
    if let Err(e) = stored {
        let _ = state.policy.deregister_account(&owner, &account).await;
        return Err(ApiError::from(e));
    }
    if state.account_store.insert(&meta).await.is_err() {
        let _ = state.source.delete(&ownership).await;
        let _ = state.policy.deregister_account(&owner, &account).await;
        return Err(ApiError::UNAVAILABLE);
    }
    tracing::info!(code = "account.registered", account_id = %id, user_id = %principal.user_id(), read_only, "exchange account registered");
    Ok((
        (
            StatusCode::CREATED,
            Json(meta_json(&meta, capability, false)),
        )
            .into_response(),
        id,
    ))
}

/// `GET /api/accounts`: the caller's own accounts and those shared with the caller
/// (live shares only), metadata only.
#[utoipa::path(
    get, operation_id = "accounts_list", path = "/api/accounts", tag = "accounts",
    responses((status = 200, description = "Owned accounts and live shares, metadata only.", body = super::openapi::AccountList))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let user = user_id(principal.user_id())?;
    let mut out = Vec::new();
    for meta in state
        .account_store
        .owned_by(principal.user_id())
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?
    {
        let level = if meta.read_only {
            Level::Read
        } else {
            Level::Trade
        };
        out.push(meta_json(&meta, level, false));
    }
    // grant-policy says which accounts are shared with the caller now (live shares only,
    // at their effective level).
    for shared in state
        .policy
        .accounts_for(&user)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?
        .into_iter()
        .filter(|a| !a.owned)
    {
        let meta = state
            .account_store
            .get(shared.account.as_str())
            .await
            .map_err(|_| ApiError::UNAVAILABLE)?;
        if let Some(meta) = meta {
            out.push(meta_json(&meta, shared.level, true));
        }
    }
    Ok(Json(json!({ "accounts": out })))
}

/// `DELETE /api/accounts/{id}`: 204 (owner only; anyone else gets 404).
#[utoipa::path(
    delete, operation_id = "accounts_remove", path = "/api/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "The account.")),
    responses(
        (status = 204, description = "Deleted with its credential and shares."),
        (status = 404, description = "Not the caller's own account (empty body)."),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = remove_inner(&state, &principal, &id).await;
    state
        .audit_result(Some(&principal), "account.delete", &result)
        .target(&id)
        .record()
        .await;
    result
}

async fn remove_inner(
    state: &Shared,
    principal: &Principal,
    id: &str,
) -> Result<StatusCode, ApiError> {
    let id = id.to_owned();
    let owner = user_id(principal.user_id())?;
    let account = account_id(&id)?;
    // The proof of ownership that deleting the sealed credential requires, taken while
    // the account is still registered.
    let ownership = match state.policy.ownership(&owner, &account).await {
        Ok(ownership) => ownership,
        Err(GrantError::NotFound) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    };
    match state.policy.deregister_account(&owner, &account).await {
        Ok(()) => {}
        Err(GrantError::NotFound) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    // From here the account is invisible to everyone; the rest is clean-up.
    let _ = state.cache.invalidate_credential(&account).await;
    state.forget_account(&id);
    let deleted = state.source.delete(&ownership).await;
    let removed = state.account_store.delete(principal.user_id(), &id).await;
    if deleted.is_err() || removed.is_err() {
        tracing::warn!(code = "account.cleanup_incomplete", account_id = %id, "account deregistered, clean-up incomplete");
        return Err(ApiError::UNAVAILABLE);
    }
    tracing::info!(code = "account.deleted", account_id = %id, "exchange account deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/accounts/{id}/shares` {email, level, expires_at?}: 201.
///
/// The path's account is authorised first (anyone but its owner: 404 with an empty
/// body, whatever the body says); only then is the body read and the email looked up.
/// Step-up: `level` `trade` needs a recent second-factor check (403 `mfa_required`).
#[utoipa::path(
    post, operation_id = "accounts_share", path = "/api/accounts/{id}/shares", tag = "accounts",
    params(("id" = String, Path, description = "The caller's account.")),
    request_body = super::openapi::NewShare,
    responses(
        (status = 201, description = "Shared.", body = super::openapi::Share),
        (status = 403, description = "`{\"error\": \"mfa_required\"}` (step-up, `trade` level)."),
        (status = 404, description = "Not the caller's own account (empty body, before the body is read), or `{\"error\": \"user_not_found\"}`."),
    )
)]
pub(crate) async fn share(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let owner = user_id(principal.user_id())?;
    let account = account_id(&id)?;
    match state.grants.access(&owner, &account).await {
        Ok(Some(Access {
            role: Role::Owner, ..
        })) => {}
        Ok(_) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    let body = Body::from_request(request, &state).await?;
    let email = normalize_email(body.str("email", 254)?).map_err(|_| ApiError::Field("email"))?;
    let level =
        Level::parse_field(body.str("level", 8)?, "level").map_err(|_| ApiError::Field("level"))?;
    let expires_at = body.opt_i64("expires_at")?;
    // Step-up: sharing at trade level needs a recent second-factor check.
    if level == Level::Trade {
        state.step_up(&principal).await?;
    }
    let grantee = state
        .users
        .user_by_email(&email)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?
        .ok_or(ApiError::Code(StatusCode::NOT_FOUND, "user_not_found"))?;
    let grantee_id = user_id(&grantee.id)?;
    match state
        .policy
        .share(&owner, &account, &grantee_id, level, expires_at)
        .await
    {
        Ok(()) => {}
        Err(GrantError::NotFound) => return Err(ApiError::NOT_FOUND),
        Err(GrantError::SelfShare) => return Err(ApiError::Field("email")),
        Err(GrantError::ExpiryInPast) => return Err(ApiError::Field("expires_at")),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    // A downgrade must not leave a trade-level entry behind in the cache. Only this
    // (grantee, account) pair: the grantee's other accounts are not disturbed.
    let _ = state
        .cache
        .invalidate_user_credential(&grantee_id, &account)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "account_id": id,
            "user_id": grantee.id,
            "level": level.as_str(),
            "expires_at": expires_at,
        })),
    )
        .into_response())
}

/// `DELETE /api/accounts/{id}/shares/{user_id}`: 204 (owner only).
#[utoipa::path(
    delete, operation_id = "accounts_unshare", path = "/api/accounts/{id}/shares/{user_id}", tag = "accounts",
    params(
        ("id" = String, Path, description = "The caller's account."),
        ("user_id" = String, Path, description = "The grantee."),
    ),
    responses(
        (status = 204, description = "The share is revoked."),
        (status = 404, description = "No such account of the caller's, or no such share (empty body)."),
    )
)]
pub(crate) async fn unshare(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path((id, grantee)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let owner = user_id(principal.user_id())?;
    let account = account_id(&id)?;
    let grantee_id = UserId::new(&grantee).map_err(|_| ApiError::NOT_FOUND)?;
    match state.policy.revoke(&owner, &account, &grantee_id).await {
        Ok(()) => {}
        Err(GrantError::NotFound) => return Err(ApiError::NOT_FOUND),
        Err(_) => return Err(ApiError::UNAVAILABLE),
    }
    // The revoked user's cached credentials of this account go now, not in 60 s. Only
    // this pair: any owner may revoke any user id from their own account, and a
    // user-wide invalidation would let them keep that user's other lookups failing.
    let _ = state
        .cache
        .invalidate_user_credential(&grantee_id, &account)
        .await;
    Ok(StatusCode::NO_CONTENT)
}
