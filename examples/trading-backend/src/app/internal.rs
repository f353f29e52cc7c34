//! `POST /internal/exchange-credentials`: the vault role for other instances (cred-cache's
//! `RemoteVaultSource` speaks to it). Authenticated by `X-Internal-Secret` only; 503 when
//! no internal secret is configured. The same grant decision as the public API is made
//! for the named user before any credential leaves.

use auth_core::AuthMethod;
use auth_core::http::Authenticated;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use grant_policy::{Level, Operation};

use super::Shared;
use super::accounts::{account_id, user_id};
use super::body::Body;
use super::error::ApiError;

/// Body `{account_id, user_id, want}`; answer: cred-cache's vault response format v1.
#[utoipa::path(
    post, operation_id = "internal_credentials", path = "/internal/exchange-credentials", tag = "internal",
    request_body = super::openapi::CredentialRequest,
    responses(
        (status = 200, description = "cred-cache's vault response format v1.", body = Object, content_type = "application/json"),
        (status = 404, description = "No such account or user, or no grant (empty body)."),
    )
)]
pub(crate) async fn credentials(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    request: Request,
) -> Result<Response, ApiError> {
    // The caller's kind is checked before the body is read.
    if principal.method() != AuthMethod::InternalService {
        return Err(ApiError::FORBIDDEN);
    }
    let body = Body::from_request(request, &state).await?;
    let account = account_id(body.str("account_id", 128)?)?;
    let user_text = body.str("user_id", 128)?;
    let user = user_id(user_text).map_err(|_| ApiError::NOT_FOUND)?;
    let want =
        Level::parse_field(body.str("want", 8)?, "want").map_err(|_| ApiError::Field("want"))?;
    // Balance needs Read; `want` raises it to the level asked for. The permit is the
    // key of the fetch, at that level.
    let permit = state
        .policy
        .authorize(&user, &account, Operation::Balance, Some(want))
        .await
        .map_err(|reason| ApiError::from_status(reason.status()))?;
    let credential = state
        .cache
        .get_or_fetch(permit, want)
        .await
        .map_err(ApiError::from)?;
    // cred-cache's own encoder of the format its `RemoteVaultSource` parses.
    let body = cred_cache::remote::encode_response(&credential).map_err(|e| {
        tracing::warn!(code = "internal.unencodable", error = %e, account_id = %account, "credential cannot be served in the vault format");
        ApiError::UNAVAILABLE
    })?;
    drop(credential);
    tracing::info!(code = "internal.credentials_served", account_id = %account, user_id = user_text, "credential served to an internal caller");
    let mut response = (StatusCode::OK, body.to_vec()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
