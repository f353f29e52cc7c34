//! `/api/secrets`: the caller's own secrets, sealed at rest by crypto-envelope (owner =
//! the user id). Listings show names and metadata only; values never leave the store
//! through this API.

use auth_core::Principal;
use auth_core::http::Authenticated;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crypto_envelope::{SecretRef, StoreError};
use serde_json::{Value, json};

use super::Shared;
use super::body::Body;
use super::error::ApiError;

const MAX_VALUE: usize = 16 * 1024;

fn reference(owner: &str, name: &str) -> Result<SecretRef, ApiError> {
    SecretRef::owner(owner, name).map_err(|e| match e {
        StoreError::InvalidId { field: "owner", .. } => ApiError::FORBIDDEN,
        _ => ApiError::Field("name"),
    })
}

fn secrets_error(e: &crypto_envelope::SecretsError) -> ApiError {
    if let crypto_envelope::SecretsError::Envelope(inner) = e
        && inner.is_configuration()
    {
        return super::error::envelope_error(inner, "user secret");
    }
    tracing::warn!(
        code = "secrets.failed",
        unavailable = e.is_unavailable(),
        "secret store call failed"
    );
    ApiError::UNAVAILABLE
}

/// `POST /api/secrets` {name, value}: 201 {name}.
#[utoipa::path(
    post, operation_id = "secrets_put", path = "/api/secrets", tag = "secrets",
    request_body = super::openapi::NewSecret,
    responses((status = 201, description = "Stored (sealed).", body = super::openapi::StoredSecret))
)]
pub(crate) async fn put(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let name = body.str("name", 128)?;
    let result = put_inner(&state, &principal, &body, name).await;
    state
        .audit_result(Some(&principal), "secret.put", &result)
        .target(name)
        .record()
        .await;
    result
}

async fn put_inner(
    state: &Shared,
    principal: &Principal,
    body: &Body,
    name: &str,
) -> Result<Response, ApiError> {
    let secret = reference(principal.user_id(), name)?;
    let value = body.secret("value", MAX_VALUE)?;
    state
        .secrets
        .put(&secret, value.as_bytes())
        .await
        .map_err(|e| secrets_error(&e))?;
    tracing::info!(code = "secrets.stored", user_id = %principal.user_id(), name, "secret stored");
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))).into_response())
}

/// `GET /api/secrets`: names and metadata only.
#[utoipa::path(
    get, operation_id = "secrets_list", path = "/api/secrets", tag = "secrets",
    responses((status = 200, description = "Names and metadata only.", body = super::openapi::SecretList))
)]
pub(crate) async fn list(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let metas = state
        .secrets
        .list(principal.user_id())
        .await
        .map_err(|e| secrets_error(&e))?;
    let out: Vec<Value> = metas
        .into_iter()
        .filter(|m| m.scope.is_none())
        .map(|m| {
            json!({
                "name": m.name,
                "key": m.key,
                "created_at": m.created_at,
                "updated_at": m.updated_at,
            })
        })
        .collect();
    Ok(Json(json!({ "secrets": out })))
}

/// `DELETE /api/secrets/{name}`: 204, or 404.
#[utoipa::path(
    delete, operation_id = "secrets_remove", path = "/api/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "The secret's name.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such secret (empty body)."),
    )
)]
pub(crate) async fn remove(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = match reference(principal.user_id(), &name) {
        Err(_) => Err(ApiError::NOT_FOUND),
        Ok(secret) => match state.secrets.delete(&secret).await {
            Ok(true) => Ok(StatusCode::NO_CONTENT),
            Ok(false) => Err(ApiError::NOT_FOUND),
            Err(e) => Err(secrets_error(&e)),
        },
    };
    state
        .audit_result(Some(&principal), "secret.delete", &result)
        .target(&name)
        .record()
        .await;
    result
}
