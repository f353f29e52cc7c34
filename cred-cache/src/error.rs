//! Error types.
//!
//! Every error here is about configuration, identifiers or a backend: none of
//! them ever carries a secret value, only the name of the field or the kind of
//! failure. [`FetchError`] maps to the HTTP status the embedding service should
//! answer with ([`FetchError::status`]) and to a stable code for its audit
//! trail ([`FetchError::code`]).

use std::time::Duration;

use http::StatusCode;

/// A field of an [`ExchangeCredential`](crate::ExchangeCredential) was refused.
/// The value itself is never part of the error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The field is empty.
    #[error("{field} is empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// The field is longer than allowed.
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The field holds a character outside visible ASCII.
    #[error("{field} holds a character other than visible ASCII")]
    InvalidCharacter {
        /// The field.
        field: &'static str,
    },
}

/// The cache or a source was configured wrongly. Returned by builders.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `ttl` is above the hard maximum of 60 seconds.
    #[error("ttl is above the maximum of {max:?}")]
    TtlTooLong {
        /// The maximum, [`MAX_TTL`](crate::MAX_TTL).
        max: Duration,
    },
    /// `ttl` is zero.
    #[error("ttl is zero")]
    ZeroTtl,
    /// `max_capacity` is zero.
    #[error("max_capacity is zero")]
    ZeroCapacity,
    /// `max_uses` is zero.
    #[error("max_uses is zero")]
    ZeroMaxUses,
    /// `maintenance_interval` is outside the accepted range.
    #[error("maintenance_interval is outside {min:?}..={max:?}")]
    MaintenanceInterval {
        /// Smallest accepted interval.
        min: Duration,
        /// Largest accepted interval.
        max: Duration,
    },
    /// The cache was built outside a Tokio runtime, so its maintenance task
    /// cannot be started.
    #[error("no Tokio runtime: build the cache from inside a runtime")]
    NoRuntime,
    /// A field of a source's configuration is invalid.
    #[error("{field} is invalid: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// Why, in words that never include the value.
        reason: &'static str,
    },
    /// The endpoint is not `https://` and plain HTTP was not allowed through
    /// the `danger` module.
    #[error("endpoint must use https")]
    InsecureEndpoint,
    /// The HTTP client could not be built (TLS configuration).
    #[error("the HTTP client could not be built")]
    HttpClient,
}

/// A credential could not be produced. Returned by
/// [`CredentialSource::fetch`](crate::CredentialSource::fetch) and
/// [`CredCache::get_or_fetch`](crate::CredCache::get_or_fetch).
///
/// Cheap to clone: one fetch error is handed to every caller that waited on
/// the same fetch. Never cached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The source is not configured (the remote vault has no internal secret,
    /// say). The embedding service answers 503 for calls that need it and keeps
    /// serving everything else.
    #[error("credential source is not configured")]
    Unavailable,
    /// No such credential. Answer 404.
    #[error("credential not found")]
    NotFound,
    /// The credential exists but does not allow the requested level (Trade on a
    /// read-only key). Answer 403.
    #[error("credential does not allow the requested access level")]
    Refused,
    /// The backend could not be reached, timed out or answered with an
    /// unexpected status. Answer 503.
    #[error("credential backend failed")]
    Backend,
    /// The backend answered, but the answer failed strict parsing, was too
    /// large, or was for another credential. Answer 503.
    #[error("credential backend sent an invalid response")]
    InvalidResponse,
    /// The local store or the envelope layer failed (including a record that
    /// does not decrypt or decode). Answer 503.
    #[error("credential store failed")]
    Storage,
    /// Concurrent invalidations (or exhausted use counts) kept discarding the
    /// fetched value; the cache gave up rather than serve a revoked credential.
    /// Answer 503; a retry normally succeeds.
    #[error("credential was invalidated during every fetch attempt")]
    Contended,
    /// The service's key configuration cannot open the stored record: it was
    /// sealed under a master key (or a key-encryption backend) that the service
    /// was not configured with, typically because it was started with another
    /// key (`crypto_envelope::Error::is_configuration`). Not the record's fault
    /// and not transient: no retry helps until an operator configures the key
    /// the data was sealed under. Answer 500 (see [`FetchError::status`]).
    #[error(
        "credential store is misconfigured: the record was sealed under a key the service does not hold"
    )]
    Misconfigured,
}

impl FetchError {
    /// The HTTP status an embedding service should answer with.
    ///
    /// [`FetchError::Misconfigured`] is 500, every other server-side failure
    /// 503: 503 (with `Retry-After`) tells clients and load balancers that
    /// waiting helps, which is true of an outage or contention but not of a
    /// service started with the wrong key, where every instance with that
    /// configuration gives the same answer until an operator acts. A 500 is
    /// what monitoring pages on as the service's own fault.
    #[must_use]
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Refused => StatusCode::FORBIDDEN,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable
            | Self::Backend
            | Self::InvalidResponse
            | Self::Storage
            | Self::Contended => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The status as a number.
    #[deprecated(since = "0.1.0", note = "use `status()`, an `http::StatusCode`")]
    #[must_use]
    pub const fn http_status(&self) -> u16 {
        self.status().as_u16()
    }

    /// A stable code for the audit trail and tracing (never for HTTP bodies).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Unavailable => "cred_cache.unavailable",
            Self::NotFound => "cred_cache.not_found",
            Self::Refused => "cred_cache.level_refused",
            Self::Backend => "cred_cache.backend",
            Self::InvalidResponse => "cred_cache.invalid_response",
            Self::Storage => "cred_cache.storage",
            Self::Contended => "cred_cache.contended",
            Self::Misconfigured => "cred_cache.misconfigured",
        }
    }
}

/// An invalidation could not be published to the other instances. The local
/// cache has already been invalidated when this is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bus (Redis) could not be reached or refused the message. Other
    /// instances keep their copies until the TTL (at most 60 s) expires or a
    /// retry succeeds.
    #[error("invalidation could not be published")]
    Transport,
}
