//! `/api/keys`: the caller's API keys.

use auth_core::http::Authenticated;
use auth_core::scope::{DelegationError, check_delegation};
use auth_core::{Principal, ScopeRefusal};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::body::Body;
use super::error::ApiError;

/// `POST /api/keys` {name?, scopes?}: 201 {id, api_key}; the key is shown once.
///
/// Interactive sessions only (the route declares it). The scopes must be in auth-core's
/// vocabulary (`read`, `trade`, `manage`; 400 `scopes` otherwise) and within the
/// creator's own (a scoped creator cannot mint an unscoped key: 403). The key is stored
/// only while the creating session is still current (auth-core `ApiKeys::create_for`); a
/// session ended while the request ran gets 401 and no key. Step-up: a user with a
/// second factor needs a recent check (403 `mfa_required`).
#[utoipa::path(
    post, operation_id = "keys_create", path = "/api/keys", tag = "keys",
    request_body = super::openapi::NewKey,
    responses(
        (status = 201, description = "The key, shown once (`Cache-Control: no-store`).", body = super::openapi::CreatedKey),
        (status = 401, description = "The session ended while the request ran: no key."),
        (status = 403, description = "`{\"error\": \"insufficient_scope\"}` (scopes beyond the creator's) or `mfa_required` (step-up)."),
    )
)]
pub(crate) async fn create(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let result = create_inner(&state, &principal, body).await;
    let mut event = state.audit_result(Some(&principal), "api_key.create", &result);
    if let Ok((_, id)) = &result {
        event = event.target(id);
    }
    event.record().await;
    result.map(|(response, _)| response)
}

/// The answer and the new key's id.
async fn create_inner(
    state: &Shared,
    principal: &Principal,
    body: Body,
) -> Result<(Response, String), ApiError> {
    state.step_up(principal).await?;
    let name = body.opt_str("name", 64)?.unwrap_or("default").to_owned();
    let scopes = match body.0.get("scopes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or(ApiError::Field("scopes"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(ApiError::Field("scopes")),
    };
    check_delegation(principal, &scopes).map_err(|e| match e {
        DelegationError::Exceeds => ApiError::from(ScopeRefusal::Insufficient),
        _ => ApiError::Field("scopes"),
    })?;
    let key = state
        .api_keys
        .create_for(principal, &name, scopes)
        .await
        .map_err(|e| match e {
            auth_core::api_key::ApiKeyError::InvalidName => ApiError::Field("name"),
            auth_core::api_key::ApiKeyError::InvalidScopes => ApiError::Field("scopes"),
            // The session (or its user) ended while this request ran: no key.
            auth_core::api_key::ApiKeyError::Store(auth_core::StoreError::UserRefused) => {
                ApiError::Status(StatusCode::UNAUTHORIZED)
            }
            _ => ApiError::UNAVAILABLE,
        })?;
    let mut response = (
        StatusCode::CREATED,
        Json(json!({ "id": key.key_id(), "api_key": key.expose_secret() })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok((response, key.key_id().to_owned()))
}

/// `GET /api/keys`: metadata only.
#[utoipa::path(
    get, operation_id = "keys_list", path = "/api/keys", tag = "keys",
    responses((status = 200, description = "Metadata of the caller's keys.", body = super::openapi::KeyList))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let keys = state
        .api_keys
        .list(principal.user_id())
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id(),
                "name": k.name(),
                "scopes": k.scopes(),
                "created_at": k.created_at(),
                "last_used_at": k.last_used_at(),
                "revoked_at": k.revoked_at(),
            })
        })
        .collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /api/keys/{id}`: 204, or 404 when the caller has no such key.
#[utoipa::path(
    delete, operation_id = "keys_revoke", path = "/api/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "The caller has no such key (empty body)."),
    )
)]
pub(crate) async fn revoke(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = if id.len() > 64 {
        Err(ApiError::NOT_FOUND)
    } else {
        match state.api_keys.revoke(principal.user_id(), &id).await {
            Ok(true) => Ok(StatusCode::NO_CONTENT),
            Ok(false) => Err(ApiError::NOT_FOUND),
            Err(_) => Err(ApiError::UNAVAILABLE),
        }
    };
    state
        .audit_result(Some(&principal), "api_key.revoke", &result)
        .target(&id)
        .record()
        .await;
    result
}
