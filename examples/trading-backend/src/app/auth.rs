//! `/api/auth/*`: register, login, logout, me, password change.

use audit_trail::{Actor, Outcome};
use auth_core::http::{AllowRestricted, Authenticated};
use auth_core::{AccountError, AuthMethod, LoginStep, Password, SessionToken};
use axum::Json;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::audit::{account_refusal, user_for_email};
use super::body::Body;
use super::browser::{self, Browser};
use super::error::ApiError;
use super::mfa::ClientAddr;
use super::{AppState, Shared};

const MAX_PASSWORD: usize = 1024;
const MAX_EMAIL: usize = 254;

pub(crate) fn account_error(e: &AccountError, password_field: &'static str) -> ApiError {
    match e {
        AccountError::InvalidCredentials => {
            ApiError::Code(StatusCode::UNAUTHORIZED, "invalid_credentials")
        }
        AccountError::EmailTaken => ApiError::Code(StatusCode::CONFLICT, "email_taken"),
        AccountError::Email(_) => ApiError::Field("email"),
        AccountError::Policy(_) => ApiError::Field(password_field),
        AccountError::UserNotFound => ApiError::FORBIDDEN,
        AccountError::SamePassword => ApiError::Code(StatusCode::BAD_REQUEST, "same_password"),
        AccountError::Conflict => {
            ApiError::Code(StatusCode::CONFLICT, "password_changed_concurrently")
        }
        // Second factor and throttling (module `mfa`).
        AccountError::InvalidSecondFactor => {
            ApiError::Code(StatusCode::UNAUTHORIZED, "invalid_second_factor")
        }
        AccountError::SecondFactorNotEnabled => {
            ApiError::Code(StatusCode::CONFLICT, "mfa_not_enabled")
        }
        AccountError::Throttled { retry_after } => {
            ApiError::TooMany(super::mfa::retry_secs(*retry_after))
        }
        _ => {
            tracing::warn!(code = "account.unavailable", "account backend unavailable");
            ApiError::UNAVAILABLE
        }
    }
}

/// The login answer: `{token, expires_at}`, or, when the session goes into the cookie
/// (`browser`), `{expires_at, "cookie": true}` with a `Set-Cookie` and no token in the
/// body (page scripts must not be able to read it: that is the point of `HttpOnly`).
pub(crate) fn token_response(
    token: &SessionToken,
    change_required: bool,
    browser: Option<&Browser>,
) -> Result<Response, ApiError> {
    // The session's own stored expiry (auth-core), not a second computation of it.
    let mut body = json!({ "expires_at": token.expires_at() });
    match browser {
        Some(_) => body["cookie"] = json!(true),
        None => body["token"] = json!(token.expose_secret()),
    }
    if change_required {
        body["password_change_required"] = json!(true);
    }
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(browser) = browser {
        browser::set_cookie(browser, token, &mut response)?;
    }
    Ok(response)
}

/// `POST /api/auth/register` {email, password}: 201, only when registration is open
/// (checked before the body is read).
#[utoipa::path(
    post, operation_id = "auth_register", path = "/api/auth/register", tag = "auth",
    request_body = super::openapi::Credentials,
    responses(
        (status = 201, description = "Registered.", body = super::openapi::Registered),
        (status = 403, description = "`{\"error\": \"registration_closed\"}` (checked before the body is read).", body = super::openapi::ErrorBody),
        (status = 409, description = "`{\"error\": \"email_taken\"}`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn register(
    State(state): State<Shared>,
    request: Request,
) -> Result<Response, ApiError> {
    if !state.registration_open {
        state
            .audit(None, "user.register", Outcome::Refused)
            .reason("registration_closed")
            .record()
            .await;
        return Err(ApiError::Code(StatusCode::FORBIDDEN, "registration_closed"));
    }
    let body = Body::from_request(request, &state).await?;
    let email = body.str("email", MAX_EMAIL)?;
    let password = Password::new(body.str("password", MAX_PASSWORD)?);
    let user = match state.accounts.register(email, &password).await {
        Ok(user) => user,
        Err(e) => {
            let (outcome, reason) = account_refusal(&e);
            state
                .audit(None, "user.register", outcome)
                .reason(reason)
                .record()
                .await;
            return Err(account_error(&e, "password"));
        }
    };
    state
        .audit(None, "user.register", Outcome::Success)
        .target(&user.id)
        .subject(&user.id)
        .record()
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user_id": user.id, "email": user.email })),
    )
        .into_response())
}

/// `POST /api/auth/login` {email, password, cookie?}: {token, expires_at}, or
/// `{"mfa_required": true, "mfa_token": "..."}` for a user with an active second factor.
///
/// A user flagged must-change-password gets a restricted session, marked
/// `"password_change_required": true`: auth-core's extractor refuses it everywhere but
/// `POST /api/auth/password` and logout until the password is changed. With
/// `"cookie": true` (only when `STRONGROOM_COOKIE_SESSIONS=1`) the session is set in the
/// `__Host-` cookie instead of the body (see `browser`).
#[utoipa::path(
    post, operation_id = "auth_login", path = "/api/auth/login", tag = "auth",
    request_body = super::openapi::LoginRequest,
    responses(
        (status = 200, description = "A session (`Cache-Control: no-store`), or the second step to take.", body = super::openapi::LoginAnswer),
        (status = 401, description = "`{\"error\": \"invalid_credentials\"}`.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`: the login throttle.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn login(
    State(state): State<Shared>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let cookie = browser::wants_cookie(state.browser.as_ref(), &headers, &body)?;
    let email = body.str("email", MAX_EMAIL)?;
    let password = Password::new(body.str("password", MAX_PASSWORD)?);
    let step = match state.accounts.login_from(email, &password, client).await {
        Ok(step) => step,
        Err(e) => {
            audit_login_refused(&state, email, &e, "session").await;
            return Err(account_error(&e, "password"));
        }
    };
    match step {
        LoginStep::Session(login) => {
            audit_login(&state, &login.user.id, login.amr, "session").await;
            token_response(&login.token, login.password_change_required, cookie)
        }
        // The user has a second factor: no session yet; the client finishes the login
        // with the mfa_token and a code (`POST /api/auth/mfa`).
        LoginStep::SecondFactorRequired(challenge) => {
            state
                .audit_as(
                    Actor::new(challenge.user_id(), "password"),
                    "login.mfa_required",
                    Outcome::Success,
                )
                .subject(challenge.user_id())
                .target("session")
                .record()
                .await;
            let mut response = Json(json!({
                "mfa_required": true,
                "mfa_token": challenge.expose_secret(),
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
    }
}

/// Records a completed login (`login.success`; actor the user, method `password` or
/// `password+otp` from `amr`; target `session` or `token`).
pub(crate) async fn audit_login(state: &AppState, user_id: &str, amr: &[&str], kind: &str) {
    let method = if amr.contains(&"otp") {
        "password+otp"
    } else {
        "password"
    };
    state
        .audit_as(
            Actor::new(user_id, method),
            "login.success",
            Outcome::Success,
        )
        .subject(user_id)
        .target(kind)
        .record()
        .await;
}

/// Records a refused login: `login.throttled` or `login.failure` (`login.error` when a
/// store failed), in the log of the user the email names, if any.
pub(crate) async fn audit_login_refused(
    state: &AppState,
    email: &str,
    e: &AccountError,
    kind: &str,
) {
    let (outcome, reason) = account_refusal(e);
    let action = match (outcome, e) {
        (_, AccountError::Throttled { .. }) => "login.throttled",
        (Outcome::Failed, _) => "login.error",
        _ => "login.failure",
    };
    let mut pending = state
        .audit(None, action, outcome)
        .reason(reason)
        .target(kind);
    if let Some(user_id) = user_for_email(state, email).await {
        pending = pending.subject(user_id);
    }
    pending.record().await;
}

/// `POST /api/auth/logout`: 204; the session used is revoked (and the session cookie
/// cleared when cookie sessions are on). With an access token, the refresh-token family
/// it was minted from (its `sid`) is revoked: the refresh token is refused from now on,
/// the access token itself runs to its `exp` (use `POST /api/auth/logout-all` to end it
/// at once). 400 `not_a_session` for any other credential.
#[utoipa::path(
    post, operation_id = "auth_logout", path = "/api/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "The session (or the access token's refresh family) is revoked; the session cookie cleared."),
        (status = 400, description = "`{\"error\": \"not_a_session\"}`: another kind of credential.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn logout(
    State(state): State<Shared>,
    AllowRestricted(principal): AllowRestricted,
) -> Result<Response, ApiError> {
    if principal.method() == AuthMethod::AccessToken {
        let family_id = principal
            .credential_id()
            .ok_or(ApiError::Code(StatusCode::BAD_REQUEST, "not_a_session"))?;
        state
            .tokens
            .refresh
            .revoke_family(principal.user_id(), family_id)
            .await
            .map_err(|_| ApiError::UNAVAILABLE)?;
        state
            .audit(Some(&principal), "logout", Outcome::Success)
            .target(family_id)
            .record()
            .await;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if principal.method() != AuthMethod::Session {
        return Err(ApiError::Code(StatusCode::BAD_REQUEST, "not_a_session"));
    }
    let session_id = principal.credential_id().ok_or(ApiError::FORBIDDEN)?;
    state
        .sessions
        .revoke(principal.user_id(), session_id)
        .await
        .map_err(|_| ApiError::UNAVAILABLE)?;
    state
        .audit(Some(&principal), "logout", Outcome::Success)
        .target(session_id)
        .record()
        .await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(clear) = browser::clear_cookie(state.browser.as_ref()) {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}

/// `GET /api/auth/me`: {user_id, email, auth_method}.
#[utoipa::path(
    get, operation_id = "auth_me", path = "/api/auth/me", tag = "auth",
    responses((status = 200, description = "Who is calling.", body = super::openapi::Me))
)]
pub(crate) async fn me(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
) -> Result<Response, ApiError> {
    let email = match principal.method() {
        AuthMethod::StaticToken | AuthMethod::InternalService => None,
        _ => Some(
            state
                .accounts
                .me(&principal)
                .await
                .map_err(|e| account_error(&e, "password"))?
                .email,
        ),
    };
    Ok(Json(json!({
        "user_id": principal.user_id(),
        "email": email,
        "auth_method": principal.method().as_str(),
    }))
    .into_response())
}

/// `POST /api/auth/password` {old_password, new_password}: 204. Every session of the
/// user ends: log in again with the new password. The new password must differ from the
/// old one (400 `same_password`).
#[utoipa::path(
    post, operation_id = "auth_change_password", path = "/api/auth/password", tag = "auth",
    request_body = super::openapi::PasswordChange,
    responses(
        (status = 204, description = "Changed; every session of the user ended."),
        (status = 400, description = "`{\"error\": \"same_password\"}`.", body = super::openapi::ErrorBody),
        (status = 403, description = "`{\"error\": \"invalid_credentials\"}`: the old password is wrong."),
        (status = 409, description = "`{\"error\": \"password_changed_concurrently\"}`.", body = super::openapi::ErrorBody),
        (status = 429, description = "`{\"error\": \"too_many_attempts\"}` with `Retry-After`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn change_password(
    State(state): State<Shared>,
    AllowRestricted(principal): AllowRestricted,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let old = Password::new(body.str("old_password", MAX_PASSWORD)?);
    let new = Password::new(body.str("new_password", MAX_PASSWORD)?);
    let result = state
        .accounts
        .change_password(principal.user_id(), &old, &new)
        .await;
    let (outcome, reason) = match &result {
        Ok(()) => (Outcome::Success, None),
        Err(e) => {
            let (outcome, reason) = account_refusal(e);
            (outcome, Some(reason))
        }
    };
    let mut pending = state.audit(Some(&principal), "password.change", outcome);
    if let Some(reason) = reason {
        pending = pending.reason(reason);
    }
    pending.record().await;
    match result {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(AccountError::InvalidCredentials) => {
            Err(ApiError::Code(StatusCode::FORBIDDEN, "invalid_credentials"))
        }
        Err(e) => Err(account_error(&e, "new_password")),
    }
}
