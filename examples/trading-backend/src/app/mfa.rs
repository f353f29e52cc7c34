//! `/api/auth/mfa*`: TOTP second factor (enrol, confirm, the login's second step,
//! step-up, disable), the step-up check of sensitive routes, and the client address the
//! login throttle keys on.
//!
//! The login's second step finishes into what the first step was asked for: the kind
//! (`session` for `POST /api/auth/login`, `token_pair` for `POST /api/auth/token`) is
//! stored with the challenge by auth-core ([`auth_core::LoginKind`]), never taken from
//! the client.

use std::net::{IpAddr, SocketAddr};

use auth_core::http::Authenticated;
use auth_core::{AccountError, AuthMethod, LoginKind, MfaError, Password, Principal, StepUpError};
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::body::Body;
use super::error::ApiError;
use super::{AppState, Shared, auth, browser};

/// Longest code accepted in a body (a recovery code with separators fits).
const MAX_CODE: usize = 64;
/// Longest `mfa_token` accepted in a body.
const MAX_MFA_TOKEN: usize = 128;
const MAX_PASSWORD: usize = 1024;

/// The TCP peer address of the request (from `serve`'s connect info), for the login
/// throttle's per-address limit. No proxy header is trusted: behind a reverse proxy every
/// client has the proxy's address (see the README).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// 429 answers: `Retry-After` in whole seconds, rounded up (at least 1).
pub(crate) fn retry_secs(retry_after: std::time::Duration) -> u64 {
    let secs = retry_after.as_secs();
    let secs = if retry_after.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

/// Second-factor failures as HTTP answers. Names no code, secret or token.
pub(crate) fn mfa_error(e: &MfaError) -> ApiError {
    match e {
        MfaError::InvalidCode => ApiError::Code(StatusCode::FORBIDDEN, "invalid_code"),
        MfaError::InvalidToken => ApiError::Code(StatusCode::UNAUTHORIZED, "invalid_mfa_token"),
        MfaError::NotEnabled => ApiError::Code(StatusCode::CONFLICT, "mfa_not_enabled"),
        MfaError::AlreadyEnabled => ApiError::Code(StatusCode::CONFLICT, "mfa_already_enabled"),
        MfaError::NoPendingEnrollment => {
            ApiError::Code(StatusCode::CONFLICT, "no_pending_enrollment")
        }
        MfaError::Label => ApiError::Field("email"),
        MfaError::Throttled { retry_after } => ApiError::TooMany(retry_secs(*retry_after)),
        _ => {
            tracing::warn!(code = "mfa.unavailable", error = %e, "second-factor backend unavailable");
            ApiError::UNAVAILABLE
        }
    }
}

impl AppState {
    /// The step-up check of a sensitive operation: `Ok` when the user has no active
    /// second factor or this credential passed one within `STRONGROOM_STEP_UP_SECS`;
    /// else 403 `{"error":"mfa_required"}` (503 when the store fails).
    pub(crate) async fn step_up(&self, principal: &Principal) -> Result<(), ApiError> {
        self.mfa
            .require_recent(principal, self.step_up_window)
            .await
            .map_err(|e| match e {
                StepUpError::Required => ApiError::Code(StatusCode::FORBIDDEN, "mfa_required"),
                _ => ApiError::UNAVAILABLE,
            })
    }
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /api/auth/mfa/enroll` (interactive): 200 `{otpauth_uri, secret}`, shown once
/// (`Cache-Control: no-store`). The factor is pending until confirmed; enrolling again
/// replaces a pending one. 409 `mfa_already_enabled` when one is active.
#[utoipa::path(
    post, operation_id = "mfa_enroll", path = "/api/auth/mfa/enroll", tag = "auth",
    responses(
        (status = 200, description = "A pending factor, shown once (`Cache-Control: no-store`).", body = super::openapi::Enrollment),
        (status = 409, description = "`{\"error\": \"mfa_already_enabled\"}`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn enroll(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    let result = enroll_inner(&state, &principal).await;
    state
        .audit_result(Some(&principal), "mfa.enroll", &result)
        .record()
        .await;
    result
}

async fn enroll_inner(state: &Shared, principal: &Principal) -> Result<Response, ApiError> {
    let user = state
        .accounts
        .me(principal)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?;
    let enrollment = state
        .mfa
        .enroll(principal.user_id(), &user.email)
        .await
        .map_err(|e| mfa_error(&e))?;
    Ok(no_store(
        Json(json!({
            "otpauth_uri": enrollment.otpauth_uri(),
            "secret": enrollment.secret_base32(),
        }))
        .into_response(),
    ))
}

/// `POST /api/auth/mfa/confirm {code}` (interactive): 200 `{recovery_codes}` (ten,
/// shown once); the factor is active from now on. 403 `invalid_code`, 409
/// `no_pending_enrollment`.
#[utoipa::path(
    post, operation_id = "mfa_confirm", path = "/api/auth/mfa/confirm", tag = "auth",
    request_body = super::openapi::CodeRequest,
    responses(
        (status = 200, description = "Active from now on; ten recovery codes, shown once.", body = super::openapi::RecoveryCodes),
        (status = 403, description = "`{\"error\": \"invalid_code\"}`."),
        (status = 409, description = "`{\"error\": \"no_pending_enrollment\"}` or `mfa_already_enabled`.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn confirm(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let result = confirm_inner(&state, &principal, body).await;
    state
        .audit_result(Some(&principal), "mfa.confirm", &result)
        .record()
        .await;
    result
}

async fn confirm_inner(
    state: &Shared,
    principal: &Principal,
    body: Body,
) -> Result<Response, ApiError> {
    let code = body.str("code", MAX_CODE)?;
    let codes = state
        .mfa
        .confirm(principal.user_id(), code)
        .await
        .map_err(|e| mfa_error(&e))?;
    Ok(no_store(
        Json(json!({ "recovery_codes": codes.expose_secret() })).into_response(),
    ))
}

/// `POST /api/auth/mfa {mfa_token, code, cookie?}`: finishes a login that answered
/// `mfa_required`, into what that login was begun for: the session answer of
/// `POST /api/auth/login`, or the token pair of `POST /api/auth/token`. The `mfa_token`
/// is spent whatever the outcome. 401 `invalid_second_factor` (wrong code, or unknown,
/// expired or used token: one answer), 429 `too_many_attempts` with `Retry-After`.
#[utoipa::path(
    post, operation_id = "mfa_complete", path = "/api/auth/mfa", tag = "auth",
    request_body = super::openapi::MfaCompleteRequest,
    responses(
        (status = 200, description = "What the login was begun for: a session, or the token pair.", body = super::openapi::MfaAnswer),
        (status = 401, description = "`{\"error\": \"invalid_second_factor\"}` (wrong code; unknown, expired or used token), or `invalid_grant`.", body = super::openapi::ErrorBody),
        (status = 403, description = "`{\"error\": \"password_change_required\"}`: a token login of a user who must change the password.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn complete(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cookie = browser::wants_cookie(state.browser.as_ref(), &headers, &body)?;
    let mfa_token = body.str("mfa_token", MAX_MFA_TOKEN)?;
    let code = body.str("code", MAX_CODE)?;
    let authentication = match state.accounts.complete_mfa(mfa_token, code).await {
        Ok(authentication) => authentication,
        Err(e) => {
            let (outcome, reason) = super::audit::account_refusal(&e);
            state
                .audit(None, "mfa.complete", outcome)
                .reason(reason)
                .record()
                .await;
            return Err(auth::account_error(&e, "password"));
        }
    };
    let kind = match authentication.kind {
        LoginKind::Session => "session",
        _ => "token",
    };
    auth::audit_login(&state, &authentication.user.id, authentication.amr, kind).await;
    match authentication.kind {
        LoginKind::Session => {
            let login = state
                .accounts
                .issue_session(authentication)
                .await
                .map_err(|e| auth::account_error(&e, "password"))?;
            auth::token_response(&login.token, login.password_change_required, cookie)
        }
        _ => finish_token_pair(&state, authentication).await,
    }
}

/// A second step for a login begun at `POST /api/auth/token`: the token pair, with the
/// same refusal as the one-step token login for a user who must change the password.
async fn finish_token_pair(
    state: &Shared,
    authentication: auth_core::Authentication,
) -> Result<Response, ApiError> {
    if authentication.user.must_change_password {
        tracing::info!(code = "token.password_change_required", user_id = %authentication.user.id, "token login refused: the password must be changed first");
        return Err(ApiError::Code(
            StatusCode::FORBIDDEN,
            auth_core::http::PASSWORD_CHANGE_REQUIRED,
        ));
    }
    super::tokens::token_pair(state, authentication).await
}

/// `POST /api/auth/mfa/verify {code}` (interactive): the step-up. Checks a code (TOTP or
/// recovery) and records the check on the credential:
/// * a session: its `mfa_at` is now (`Sessions::record_step_up`); 204;
/// * an access token (which cannot be changed): 200 with a new token pair whose `amr`
///   holds `otp` and whose `auth_time` is now (the same shape as `POST /api/auth/token`);
///   use it for the sensitive call.
///
/// 403 `invalid_code`, 409 `mfa_not_enabled`, 429 `too_many_attempts`.
#[utoipa::path(
    post, operation_id = "mfa_verify", path = "/api/auth/mfa/verify", tag = "auth",
    request_body = super::openapi::CodeRequest,
    responses(
        (status = 204, description = "A session: the step-up is recorded on it."),
        (status = 200, description = "An access token: a new pair whose `amr` holds `otp`.", body = super::openapi::TokenPair),
        (status = 400, description = "`{\"error\": \"not_a_session\"}`.", body = super::openapi::ErrorBody),
        (status = 401, description = "The credential ended while the request ran."),
        (status = 403, description = "`{\"error\": \"invalid_code\"}`."),
        (status = 409, description = "`{\"error\": \"mfa_not_enabled\"}`.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn verify(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let result = verify_inner(&state, &principal, body).await;
    state
        .audit_result(Some(&principal), "mfa.verify", &result)
        .record()
        .await;
    result
}

async fn verify_inner(
    state: &Shared,
    principal: &Principal,
    body: Body,
) -> Result<Response, ApiError> {
    let code = body.str("code", MAX_CODE)?;
    let user_id = principal.user_id();
    match principal.method() {
        AuthMethod::Session => {
            let session_id = principal.credential_id().ok_or(ApiError::FORBIDDEN)?;
            state
                .mfa
                .verify(user_id, code)
                .await
                .map_err(|e| mfa_error(&e))?;
            let found = state
                .sessions
                .record_step_up(user_id, session_id)
                .await
                .map_err(|_| ApiError::UNAVAILABLE)?;
            if !found {
                return Err(ApiError::Status(StatusCode::UNAUTHORIZED));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        AuthMethod::AccessToken => {
            let authentication = state
                .accounts
                .step_up(user_id, code)
                .await
                .map_err(|e| auth::account_error(&e, "password"))?;
            super::tokens::token_pair(state, authentication).await
        }
        _ => Err(ApiError::Code(StatusCode::BAD_REQUEST, "not_a_session")),
    }
}

/// `POST /api/auth/mfa/disable {password, code}` (interactive, and a step-up within the
/// window): 204; the factor and its recovery codes are deleted. 403
/// `invalid_credentials` (password), 403 `invalid_code`, 403 `mfa_required` (no recent
/// check), 409 `mfa_not_enabled`, 429 `too_many_attempts`.
#[utoipa::path(
    post, operation_id = "mfa_disable", path = "/api/auth/mfa/disable", tag = "auth",
    request_body = super::openapi::MfaDisable,
    responses(
        (status = 204, description = "The factor and its recovery codes are deleted."),
        (status = 403, description = "`{\"error\": code}`: `invalid_credentials` (password), `invalid_code`, `mfa_required` (no recent step-up)."),
        (status = 409, description = "`{\"error\": \"mfa_not_enabled\"}`.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn disable(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    body: Body,
) -> Result<Response, ApiError> {
    let result = disable_inner(&state, &principal, body).await;
    state
        .audit_result(Some(&principal), "mfa.disable", &result)
        .record()
        .await;
    result
}

async fn disable_inner(
    state: &Shared,
    principal: &Principal,
    body: Body,
) -> Result<Response, ApiError> {
    state.step_up(principal).await?;
    let password = Password::new(body.str("password", MAX_PASSWORD)?);
    let code = body.str("code", MAX_CODE)?;
    match state
        .accounts
        .disable_mfa(principal.user_id(), &password, code)
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(AccountError::InvalidCredentials) => {
            Err(ApiError::Code(StatusCode::FORBIDDEN, "invalid_credentials"))
        }
        Err(AccountError::InvalidSecondFactor) => {
            Err(ApiError::Code(StatusCode::FORBIDDEN, "invalid_code"))
        }
        Err(e) => Err(auth::account_error(&e, "password")),
    }
}
