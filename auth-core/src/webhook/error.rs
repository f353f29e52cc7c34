//! The two error types of the webhook module: refusals of a delivery, and refusals of a
//! configuration (a secret text, a tolerance).

use http::StatusCode;

use crate::store::StoreError;

/// A delivery was not accepted.
///
/// Every signature problem answers 401 with nothing in the body: which check failed goes
/// only to logs and audit, as the stable [`code`](Self::code) (and, for
/// [`Malformed`](Self::Malformed), the field), so a sender probing the endpoint learns
/// nothing beyond "refused". The `Display` text names the code and field only; it never
/// holds the header, the body, a signature or a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// `webhook.missing`: the request has no `X-Strongroom-Signature` header.
    #[error("webhook refused: no signature header")]
    Missing,
    /// `webhook.malformed`: the header does not follow the grammar of `WEBHOOKS.md`;
    /// `field` is `"header"` (length, structure, an unknown key's shape), `"t"` or
    /// `"v1"`.
    #[error("webhook refused: signature header malformed ({field})")]
    Malformed {
        /// The part of the header that is malformed: `"header"`, `"t"` or `"v1"`.
        field: &'static str,
    },
    /// `webhook.stale`: `t` is more than the tolerance away from the receiver's clock
    /// (either side).
    #[error("webhook refused: timestamp outside the tolerance window")]
    Stale,
    /// `webhook.bad_signature`: no `v1` entry is the HMAC of the delivery under any
    /// active secret (wrong secret, expired previous secret, altered body or `t`).
    #[error("webhook refused: no signature matches")]
    BadSignature,
    /// `webhook.unavailable`: the replay guard failed, so whether the delivery was
    /// already executed is unknown (503; fail closed: the sender retries).
    #[error("webhook replay guard unavailable")]
    Unavailable(#[source] StoreError),
}

impl WebhookError {
    /// The stable code for logs and audit, for example `"webhook.stale"`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Missing => "webhook.missing",
            Self::Malformed { .. } => "webhook.malformed",
            Self::Stale => "webhook.stale",
            Self::BadSignature => "webhook.bad_signature",
            Self::Unavailable(_) => "webhook.unavailable",
        }
    }

    /// The HTTP status to answer: 401 for every signature problem, 503 for
    /// [`Unavailable`](Self::Unavailable).
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Missing | Self::Malformed { .. } | Self::Stale | Self::BadSignature => {
                StatusCode::UNAUTHORIZED
            }
        }
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for WebhookError {
    /// [`status`](WebhookError::status) with an empty body and `Cache-Control: no-store`
    /// (no hint of which check failed).
    fn into_response(self) -> axum::response::Response {
        use http::{HeaderValue, header};
        let mut response = self.status().into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A webhook configuration value was refused. Names the field, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// `secret`: the text does not start with `whsec_`.
    #[error("webhook secret: must start with whsec_")]
    SecretPrefix,
    /// `secret`: after the prefix, not unpadded base64url (RFC 4648 §5) of 32 bytes in
    /// its one canonical form.
    #[error("webhook secret: not unpadded base64url")]
    SecretEncoding,
    /// `secret`: not 32 bytes (43 base64url characters after the prefix).
    #[error("webhook secret: must be 32 bytes")]
    SecretLength,
    /// `tolerance`: not a whole number of seconds from 1 to 3600.
    #[error("webhook tolerance: must be whole seconds from 1 to 3600")]
    Tolerance,
}

impl WebhookConfigError {
    /// The field that was refused: `"secret"` or `"tolerance"`.
    #[must_use]
    pub const fn field(self) -> &'static str {
        match self {
            Self::SecretPrefix | Self::SecretEncoding | Self::SecretLength => "secret",
            Self::Tolerance => "tolerance",
        }
    }
}
