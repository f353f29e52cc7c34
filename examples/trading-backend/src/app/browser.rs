//! Browser sessions (`STRONGROOM_COOKIE_SESSIONS=1`): the session cookie that login sets
//! and logout clears, and the layer options that read it.
//!
//! The cookie is `__Host-strongroom-session` (`HttpOnly; Secure; SameSite=Lax; Path=/`,
//! `Max-Age` the session lifetime). auth-core's layer reads it on every authenticated
//! route when no credential header is present, and refuses a state-changing request
//! carrying only the cookie unless the browser says it came from this origin
//! (`Sec-Fetch-Site: same-origin`) or from an allowed origin (`Origin`), with 403
//! `{"error":"csrf"}`. Login itself is guarded the same way when it sets the cookie
//! (login CSRF: another site must not sign the browser into the attacker's account).

use auth_core::http::{AuthLayer, Challenge};
use auth_core::{CsrfGuard, SessionCookie, SessionToken};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use super::body::Body;
use super::error::ApiError;
use crate::config::Config;

/// The session cookie and the CSRF guard that goes with it.
#[derive(Debug, Clone)]
pub(crate) struct Browser {
    cookie: SessionCookie,
    csrf: CsrfGuard,
}

impl Browser {
    /// From the configuration; `None` when cookie sessions are off.
    pub(crate) fn from_config(config: &Config) -> Option<Self> {
        config.cookies.as_ref().map(|c| Self {
            cookie: SessionCookie::new(super::SESSION_TTL).same_site(c.same_site),
            csrf: c.origins.clone(),
        })
    }
}

/// The configured options of an auth layer: the cookie (when on) and the RFC 6750
/// answers (`STRONGROOM_BEARER_CHALLENGE=1`).
pub(crate) fn configure(layer: AuthLayer, browser: Option<&Browser>, rfc6750: bool) -> AuthLayer {
    let layer = if rfc6750 {
        layer.with_challenge(Challenge::rfc6750())
    } else {
        layer
    };
    match browser {
        Some(b) => layer.with_session_cookie(b.cookie.clone(), b.csrf.clone()),
        None => layer,
    }
}

/// Whether a login asks for the cookie (`"cookie": true`): 400 `cookie_sessions_disabled`
/// when cookie sessions are off, 403 `csrf` when the request does not come from this or
/// an allowed origin.
pub(crate) fn wants_cookie<'a>(
    browser: Option<&'a Browser>,
    headers: &HeaderMap,
    body: &Body,
) -> Result<Option<&'a Browser>, ApiError> {
    match body.0.get("cookie") {
        None | Some(serde_json::Value::Null | serde_json::Value::Bool(false)) => return Ok(None),
        Some(serde_json::Value::Bool(true)) => {}
        Some(_) => return Err(ApiError::Field("cookie")),
    }
    let browser = browser.ok_or(ApiError::Code(
        StatusCode::BAD_REQUEST,
        "cookie_sessions_disabled",
    ))?;
    browser
        .csrf
        .check(&Method::POST, headers)
        .map_err(|refusal| {
            tracing::info!(code = refusal.code(), "login refused: CSRF check");
            ApiError::Code(StatusCode::FORBIDDEN, auth_core::http::CSRF_ERROR)
        })?;
    Ok(Some(browser))
}

/// Adds the `Set-Cookie` that hands `token` to the browser.
pub(crate) fn set_cookie(
    browser: &Browser,
    token: &SessionToken,
    response: &mut Response,
) -> Result<(), ApiError> {
    let value = browser.cookie.set_cookie(token).map_err(|_| {
        tracing::error!(
            code = "session.cookie_value",
            "session token not cookie-safe"
        );
        ApiError::UNAVAILABLE
    })?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}

/// The `Set-Cookie` value that removes the session cookie, when cookie sessions are on.
pub(crate) fn clear_cookie(browser: Option<&Browser>) -> Option<HeaderValue> {
    browser.map(|b| b.cookie.clear_cookie())
}
