//! Access and refresh tokens: `POST /api/auth/token`, `/api/auth/refresh`,
//! `/api/auth/revoke`, `/api/auth/logout-all`, the JWKS and the discovery document.
//!
//! A login at the token route starts a refresh-token family (auth-core `RefreshTokens`)
//! and mints a short-lived access token (auth-core `Issuer`, JWT `typ: at+jwt`, RFC 9068)
//! whose `sid` is the family id. Every refresh rotates the family's token and mints a new
//! access token from the family record (user, session epoch, `amr`, `auth_time`).

use std::sync::Arc;

use audit_trail::{Actor, Outcome};
use auth_core::http::AllowRestricted;
use auth_core::token::{AccessTokenRequest, AccessTokenResolver, Issuer, IssuerError};
use auth_core::{
    Authentication, FirstFactor, Password, RefreshConfig, RefreshError, RefreshToken,
    RefreshTokens, StoreError,
};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crypto_envelope::Envelope;
use serde_json::json;

use super::auth::account_error;
use super::body::Body;
use super::error::ApiError;
use super::mfa::ClientAddr;
use super::{AppState, BuildError, Shared};
use crate::config::TokenSettings;
use crate::db::Stores;
use crate::signing_keys::SealedSigningKeyStore;

/// Longest refresh token or token text read from a body (a refresh token is 47 bytes;
/// an access token a few hundred).
const MAX_TOKEN: usize = 4096;
const MAX_PASSWORD: usize = 1024;
const MAX_EMAIL: usize = 254;

/// The token side of the service: the access-token issuer and the refresh-token families.
// Holds no secret in clear: `Issuer` and `RefreshTokens` print key ids and settings only.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) issuer: Issuer,
    pub(crate) refresh: RefreshTokens,
}

/// `Cache-Control: no-store` and `Pragma: no-cache` on every answer holding a token
/// (RFC 6749 section 5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The RFC 6749 section 5.2 error answer for a refused grant: 401 `invalid_grant`
/// (every refusal alike: unknown, reused, revoked, expired, user moved on).
const INVALID_GRANT: ApiError = ApiError::Code(StatusCode::UNAUTHORIZED, "invalid_grant");

fn refresh_error(e: &RefreshError) -> ApiError {
    match e {
        RefreshError::Unknown
        | RefreshError::Reused
        | RefreshError::Revoked
        | RefreshError::Expired
        | RefreshError::UserRefused { .. }
        | RefreshError::Store(StoreError::UserRefused) => INVALID_GRANT,
        _ => {
            tracing::warn!(code = "token.refresh_unavailable", error = %e, "refresh store failed");
            ApiError::UNAVAILABLE
        }
    }
}

fn issue_error(e: &IssuerError) -> ApiError {
    tracing::error!(code = "token.issue_failed", error = %e, "access token issue failed");
    ApiError::UNAVAILABLE
}

/// Starts a refresh-token family for a completed authentication and answers the token
/// pair: `{access_token, token_type: "Bearer", expires_in, refresh_token}` with
/// `Cache-Control: no-store` (RFC 6749 section 5.1). Used by `POST /api/auth/token` and
/// by the second step of a login that began there (`POST /api/auth/mfa`).
///
/// # Errors
///
/// 401 `invalid_grant` when the user changed (password, disable, sign-out-everywhere)
/// since the password was checked; 503 when a store fails.
pub(crate) async fn token_pair(
    state: &AppState,
    auth: Authentication,
) -> Result<Response, ApiError> {
    let amr: Vec<String> = auth.amr.iter().map(|m| (*m).to_owned()).collect();
    let (refresh_token, family) = state
        .tokens
        .refresh
        .issue(&auth.user, amr.clone(), auth.auth_time)
        .await
        .map_err(|e| refresh_error(&e))?;
    let request = AccessTokenRequest::new(family.user_id(), family.epoch(), amr, auth.auth_time)
        .with_sid(family.id());
    let access = state
        .tokens
        .issuer
        .issue(&request)
        .await
        .map_err(|e| issue_error(&e))?;
    tracing::info!(
        code = "token.issued",
        user_id = family.user_id(),
        family_id = family.id(),
        "token pair issued"
    );
    Ok(no_store(
        Json(json!({
            "access_token": access.expose_secret(),
            "token_type": "Bearer",
            "expires_in": access.expires_in(),
            "refresh_token": refresh_token.expose_secret(),
        }))
        .into_response(),
    ))
}

impl Tokens {
    /// Builds the issuer over the sealed signing-key store (creating a first key when
    /// there is none) and the refresh-token service.
    pub(crate) async fn build(
        settings: &TokenSettings,
        stores: &Stores,
        envelope: Envelope,
    ) -> Result<Self, BuildError> {
        if settings.issuer_defaulted {
            tracing::warn!(
                code = "token.issuer_defaulted",
                iss = %settings.issuer,
                "STRONGROOM_ISSUER is not set: access tokens name the development default; set it to the public URL of the service"
            );
        }
        let builder = Issuer::builder(settings.issuer.clone(), settings.audience.clone())
            .algorithm(settings.alg)
            .lifetime(settings.access_ttl)
            .reload_interval(settings.key_reload)
            .token_endpoint(format!("{}/api/auth/token", settings.issuer));
        let issuer = match &settings.hs256 {
            // HS256: one shared secret from configuration; nothing in the key table.
            Some(secret) => builder.build_hs256(secret.expose_secret()).map_err(|_| {
                BuildError::Component("STRONGROOM_TOKEN_HS256_SECRET / token settings")
            })?,
            None => builder
                .build(Arc::new(SealedSigningKeyStore::new(
                    stores.db.clone(),
                    envelope,
                )))
                .await
                .map_err(|e| match e {
                    IssuerError::Config(_) => {
                        BuildError::Component("STRONGROOM_ISSUER / token settings")
                    }
                    _ => BuildError::Component("access-token signing keys (store unavailable)"),
                })?,
        };
        let refresh = RefreshTokens::new(
            stores.refresh.clone(),
            RefreshConfig::default()
                .absolute_lifetime(settings.refresh_absolute)
                .idle_lifetime(settings.refresh_idle),
        );
        Ok(Self { issuer, refresh })
    }

    /// The chain resolver for this service's access tokens (with the epoch check when
    /// configured).
    pub(crate) fn resolver(
        &self,
        settings: &TokenSettings,
        stores: &Stores,
    ) -> AccessTokenResolver {
        let resolver = AccessTokenResolver::new(self.issuer.clone());
        if settings.epoch_check {
            resolver.with_epoch_check(stores.users.clone())
        } else {
            resolver
        }
    }
}

/// `POST /api/auth/token` {email, password}: the token pair, or
/// `{"mfa_required": true, "mfa_token": "..."}` for a user with a second factor (finish
/// with `POST /api/auth/mfa`). A user who must change the password is refused (403
/// `password_change_required`: use the session login, which allows the change).
#[utoipa::path(
    post, operation_id = "tokens_token", path = "/api/auth/token", tag = "auth",
    request_body = super::openapi::Credentials,
    responses(
        (status = 200, description = "The token pair (`Cache-Control: no-store`), or the second step to take.", body = super::openapi::TokenAnswer),
        (status = 401, description = "`{\"error\": \"invalid_credentials\"}`, or `invalid_grant`.", body = super::openapi::ErrorBody),
        (status = 403, description = "`{\"error\": \"password_change_required\"}`: use the session login.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn token(
    State(state): State<Shared>,
    ClientAddr(client): ClientAddr,
    body: Body,
) -> Result<Response, ApiError> {
    let email = body.str("email", MAX_EMAIL)?;
    let password = Password::new(body.str("password", MAX_PASSWORD)?);
    let first = match state
        .accounts
        // The kind is stored with a second-factor challenge: `POST /api/auth/mfa`
        // then finishes this login into a token pair, never a session.
        .authenticate_for(email, &password, client, auth_core::LoginKind::TokenPair)
        .await
    {
        Ok(first) => first,
        Err(e) => {
            super::auth::audit_login_refused(&state, email, &e, "token").await;
            return Err(account_error(&e, "password"));
        }
    };
    match first {
        FirstFactor::Complete(auth) => {
            if auth.user.must_change_password {
                state
                    .audit_as(
                        Actor::new(&auth.user.id, "password"),
                        "login.failure",
                        Outcome::Refused,
                    )
                    .subject(&auth.user.id)
                    .target("token")
                    .reason(auth_core::http::PASSWORD_CHANGE_REQUIRED)
                    .record()
                    .await;
                tracing::info!(
                    code = "token.password_change_required",
                    user_id = %auth.user.id,
                    "token login refused: the password must be changed first"
                );
                return Err(ApiError::Code(
                    StatusCode::FORBIDDEN,
                    auth_core::http::PASSWORD_CHANGE_REQUIRED,
                ));
            }
            super::auth::audit_login(&state, &auth.user.id, auth.amr, "token").await;
            token_pair(&state, auth).await
        }
        FirstFactor::SecondFactorRequired(challenge) => {
            state
                .audit_as(
                    Actor::new(challenge.user_id(), "password"),
                    "login.mfa_required",
                    Outcome::Success,
                )
                .subject(challenge.user_id())
                .target("token")
                .record()
                .await;
            Ok(no_store(
                Json(json!({
                    "mfa_required": true,
                    "mfa_token": challenge.expose_secret(),
                }))
                .into_response(),
            ))
        }
    }
}

/// `POST /api/auth/refresh` {refresh_token}: rotates the refresh token and answers a new
/// pair. Every refusal (malformed, unknown, expired, revoked, reused: the reuse revokes
/// the whole family, RFC 9700 section 4.14) is 401 `{"error": "invalid_grant"}`.
#[utoipa::path(
    post, operation_id = "tokens_refresh", path = "/api/auth/refresh", tag = "auth",
    request_body = super::openapi::RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the refresh token presented is spent.", body = super::openapi::TokenPair),
        (status = 401, description = "`{\"error\": \"invalid_grant\"}`: every refusal alike (a reused token revokes its family).", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn refresh(State(state): State<Shared>, body: Body) -> Result<Response, ApiError> {
    let presented = RefreshToken::parse(body.str("refresh_token", MAX_TOKEN)?).map_err(|_| {
        tracing::info!(
            code = "refresh.malformed",
            "malformed refresh token presented"
        );
        INVALID_GRANT
    })?;
    let (next, family) = match state.tokens.refresh.rotate(&presented).await {
        Ok(rotated) => rotated,
        Err(e) => {
            // A reuse revoked the whole family (a stolen token in two hands): its own
            // code. auth-core does not say whose family it was, so no subject.
            let (action, outcome, reason) = match &e {
                RefreshError::Reused => ("token.refresh_reuse", Outcome::Refused, "reused"),
                RefreshError::Unknown => ("token.refresh", Outcome::Refused, "unknown"),
                RefreshError::Revoked => ("token.refresh", Outcome::Refused, "revoked"),
                RefreshError::Expired => ("token.refresh", Outcome::Refused, "expired"),
                RefreshError::UserRefused { code } => ("token.refresh", Outcome::Refused, *code),
                RefreshError::Store(StoreError::UserRefused) => {
                    ("token.refresh", Outcome::Refused, "user_refused")
                }
                _ => ("token.refresh", Outcome::Failed, "unavailable"),
            };
            state
                .audit(None, action, outcome)
                .reason(reason)
                .record()
                .await;
            return Err(refresh_error(&e));
        }
    };
    state
        .audit_as(
            Actor::new(family.user_id(), "refresh_token"),
            "token.refresh",
            Outcome::Success,
        )
        .subject(family.user_id())
        .target(family.id())
        .record()
        .await;
    let request = AccessTokenRequest::new(
        family.user_id(),
        family.epoch(),
        family.amr().iter().cloned(),
        family.auth_time(),
    )
    .with_sid(family.id());
    let access = state
        .tokens
        .issuer
        .issue(&request)
        .await
        .map_err(|e| issue_error(&e))?;
    Ok(no_store(
        Json(json!({
            "access_token": access.expose_secret(),
            "token_type": "Bearer",
            "expires_in": access.expires_in(),
            "refresh_token": next.expose_secret(),
        }))
        .into_response(),
    ))
}

/// `POST /api/auth/revoke` {token}: 200 whatever the token (RFC 7009 section 2.2); a
/// refresh token's family is revoked (its access tokens run to their `exp`, or end at
/// once with `POST /api/auth/logout-all` and the epoch check). 503 only when the store
/// fails (RFC 7009 section 2.2.1 allows `temporarily_unavailable`).
#[utoipa::path(
    post, operation_id = "tokens_revoke", path = "/api/auth/revoke", tag = "auth",
    request_body = super::openapi::RevokeRequest,
    responses((status = 200, description = "Whatever the token (RFC 7009 section 2.2); empty body."))
)]
pub(crate) async fn revoke(State(state): State<Shared>, body: Body) -> Result<Response, ApiError> {
    // A missing or oversized field is still 400: the request itself is malformed.
    let token = body.str("token", MAX_TOKEN)?;
    let revoked = state.tokens.refresh.revoke(token).await;
    // Anonymous by design (RFC 7009: whoever holds the token may revoke it); the
    // outcome says whether a family was found.
    let (outcome, reason) = match &revoked {
        Ok(true) => (Outcome::Success, None),
        Ok(false) => (Outcome::Refused, Some("unknown")),
        Err(_) => (Outcome::Failed, Some("unavailable")),
    };
    state
        .audit(None, "token.revoke", outcome)
        .maybe_reason(reason)
        .record()
        .await;
    revoked.map_err(|e| refresh_error(&e))?;
    Ok(no_store(StatusCode::OK.into_response()))
}

/// `POST /api/auth/logout-all` (interactive credential: session, access token, SSO JWT):
/// ends every session, API key and refresh-token family of the user (and, with the epoch
/// check, every access token): 204. A restricted session (must change the password) may
/// too.
#[utoipa::path(
    post, operation_id = "tokens_logout_all", path = "/api/auth/logout-all", tag = "auth",
    responses((status = 204, description = "Every session, API key and refresh family of the user ended."))
)]
pub(crate) async fn logout_all(
    State(state): State<Shared>,
    AllowRestricted(principal): AllowRestricted,
) -> Result<Response, ApiError> {
    let user_id = principal.user_id();
    let result = async {
        state
            .accounts
            .sign_out_everywhere(user_id)
            .await
            .map_err(|e| account_error(&e, "password"))?;
        state
            .tokens
            .refresh
            .revoke_user(user_id)
            .await
            .map_err(|e| refresh_error(&e))
    }
    .await;
    state
        .audit_result(Some(&principal), "logout_all", &result)
        .record()
        .await;
    result?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = super::browser::clear_cookie(state.browser.as_ref()) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(no_store(response))
}

/// `GET /.well-known/jwks.json`: the public signing keys (RFC 7517), reloaded from the
/// store when due so that keys made by another instance are published.
#[utoipa::path(
    get, operation_id = "tokens_jwks", path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "The public signing keys (RFC 7517 JWK set).", body = Object, content_type = "application/json"))
)]
pub(crate) async fn jwks(State(state): State<Shared>) -> Response {
    state.tokens.issuer.reload_if_due().await;
    public_json(state.tokens.issuer.jwks_json(), "public, max-age=300")
}

/// `GET /.well-known/openid-configuration`: the discovery document (OpenID Connect
/// Discovery 1.0 section 3).
#[utoipa::path(
    get, operation_id = "tokens_discovery", path = "/.well-known/openid-configuration", tag = "auth",
    responses((status = 200, description = "The discovery document (OpenID Connect Discovery 1.0).", body = Object, content_type = "application/json"))
)]
pub(crate) async fn discovery(State(state): State<Shared>) -> Response {
    state.tokens.issuer.reload_if_due().await;
    public_json(state.tokens.issuer.discovery_json(), "public, max-age=3600")
}

fn public_json(body: Vec<u8>, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
