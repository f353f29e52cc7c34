//! The one place where handler failures become HTTP responses.
//!
//! Refusals (401/403/404/503 from authentication or grants) have an empty body: the
//! reason went to tracing with a stable code. Client mistakes (400) name the field and
//! never echo its value.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// A status with an empty body.
    Status(StatusCode),
    /// A status with `{"error": code}`.
    Code(StatusCode, &'static str),
    /// 400 with `{"error": "invalid_field", "field": field}`.
    Field(&'static str),
    /// 429 with `{"error": "too_many_attempts"}` and `Retry-After` (whole seconds).
    TooMany(u64),
    /// 429 with `{"error": "rate_limited"}`, `Retry-After` and the `RateLimit` fields
    /// (module `limits`).
    RateLimited(super::limits::Refused),
    /// 403 `{"error": "risk_limit", "limit": limit}`: the account owner's risk limit
    /// (`max_order_notional` or `daily_cap`) refused the order.
    RiskLimit(&'static str),
    /// 403 from a route's requirement, answered by auth-core (the refusal rides in the
    /// response's extensions, for the audit trail).
    Scope(auth_core::ScopeRefusal),
}

impl ApiError {
    pub(crate) const UNAVAILABLE: Self = Self::Status(StatusCode::SERVICE_UNAVAILABLE);
    pub(crate) const NOT_FOUND: Self = Self::Status(StatusCode::NOT_FOUND);
    pub(crate) const FORBIDDEN: Self = Self::Status(StatusCode::FORBIDDEN);
    /// 500 `{"error": "key_not_held"}`: a stored value was sealed under a master key (or
    /// a key-encryption backend) this service was not started with. The service's own
    /// configuration is at fault, not the request, and no retry helps until an operator
    /// configures the key the data was sealed under; the key's id went to the log, never
    /// to the body. (Start-up refuses such a configuration, `key_check.rs`; this is what
    /// a value that escaped that probe answers.)
    pub(crate) const KEY_NOT_HELD: Self =
        Self::Code(StatusCode::INTERNAL_SERVER_ERROR, "key_not_held");

    /// The HTTP status.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::Status(s) | Self::Code(s, _) => s,
            Self::Scope(_) | Self::RiskLimit(_) => StatusCode::FORBIDDEN,
            Self::Field(_) => StatusCode::BAD_REQUEST,
            Self::TooMany(_) | Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable reason code (the body's `error`, or one named after the status), for
    /// the metrics (module `metrics`).
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::Status(s) => super::metrics::status_code_name(s),
            Self::Code(_, code) => code,
            Self::Field(_) => "invalid_field",
            Self::TooMany(_) => "too_many_attempts",
            Self::RateLimited(_) => "rate_limited",
            Self::Scope(refusal) => refusal.code(),
            Self::RiskLimit(_) => "risk_limit",
        }
    }

    /// From the status a library error says it means (every Strongroom error's
    /// `status()`); anything that is not an error status fails closed as 503.
    pub(crate) fn from_status(status: StatusCode) -> Self {
        if status.is_client_error() || status.is_server_error() {
            Self::Status(status)
        } else {
            Self::UNAVAILABLE
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self {
            Self::Status(status) => status.into_response(),
            Self::Code(status, code) => (status, Json(json!({ "error": code }))).into_response(),
            Self::Field(field) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "invalid_field", "field": field })),
            )
                .into_response(),
            Self::TooMany(secs) => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({ "error": "too_many_attempts" })),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                r
            }
            Self::RateLimited(refused) => refused.response(),
            Self::Scope(refusal) => refusal.into_response(),
            Self::RiskLimit(limit) => (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "risk_limit", "limit": limit })),
            )
                .into_response(),
        };
        response
            .extensions_mut()
            .insert(super::metrics::ReasonCode(self.code()));
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Every 503 says when to retry, as auth-core's layer does.
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(auth_core::http::RETRY_AFTER_SECS),
            );
        }
        response
    }
}

impl From<auth_core::ScopeRefusal> for ApiError {
    /// 403 with the stable code (`insufficient_scope`, `interactive_session_required`).
    fn from(refusal: auth_core::ScopeRefusal) -> Self {
        Self::Scope(refusal)
    }
}

impl From<auth_core::http::AuthRejection> for ApiError {
    fn from(rejection: auth_core::http::AuthRejection) -> Self {
        match rejection {
            auth_core::http::AuthRejection::Scope(refusal) => refusal.into(),
            // A restricted principal (must change the password) on a route that declares
            // its requirement in the handler (the exchange route): 403, as the extractor.
            auth_core::http::AuthRejection::PasswordChangeRequired => Self::Code(
                StatusCode::FORBIDDEN,
                auth_core::http::PASSWORD_CHANGE_REQUIRED,
            ),
            // A wiring mistake (route without the auth layer): fail closed.
            _ => {
                tracing::error!(code = "auth.layer_missing", "route without the auth layer");
                Self::Status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<cred_cache::FetchError> for ApiError {
    /// cred-cache's status (404, 403, 503), except a credential sealed under a key this
    /// service does not hold: [`ApiError::KEY_NOT_HELD`] (cred-cache logged it with its
    /// code), never a bare 500.
    fn from(e: cred_cache::FetchError) -> Self {
        match e {
            cred_cache::FetchError::Misconfigured => Self::KEY_NOT_HELD,
            other => Self::from_status(other.status()),
        }
    }
}

/// What a handler answers when the envelope (or the secret store over it) could not
/// seal or open a value: [`ApiError::KEY_NOT_HELD`] for a configuration error, logged at
/// ERROR with the code `kek.key_not_held` and the envelope's message (the key's id and
/// version; never key material); 503 for everything else (an outage, or a value that
/// does not open, which the caller logs with its own code).
pub(crate) fn envelope_error(e: &crypto_envelope::Error, what: &'static str) -> ApiError {
    if e.is_configuration() {
        tracing::error!(code = "kek.key_not_held", what, error = %e, "a stored value was sealed under a key this service does not hold");
        ApiError::KEY_NOT_HELD
    } else {
        ApiError::UNAVAILABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_under_a_key_not_held_is_a_coded_500() {
        let e = ApiError::from(cred_cache::FetchError::Misconfigured);
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code(), "key_not_held");
        assert_eq!(
            ApiError::from(cred_cache::FetchError::Storage),
            ApiError::UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(cred_cache::FetchError::NotFound),
            ApiError::NOT_FOUND
        );
        let e = envelope_error(
            &crypto_envelope::Error::KeyNotHeld {
                key: crypto_envelope::KeyRef::new("mk-00", 1),
            },
            "test",
        );
        assert_eq!(e, ApiError::KEY_NOT_HELD);
        assert_eq!(
            envelope_error(&crypto_envelope::Error::Refused, "test"),
            ApiError::UNAVAILABLE
        );
    }
}
