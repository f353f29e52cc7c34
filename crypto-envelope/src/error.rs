//! Errors. Opening a sealed value fails with [`Error::Refused`] for every cryptographic
//! reason alike; structure, configuration and backend failures are typed and name the
//! field at fault, never a secret.

use http::StatusCode;

use crate::backend::KeyRef;

/// Why [`Envelope`](crate::Envelope) could not seal, open or re-wrap a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The value does not open: a wrong context, a wrong or substituted key, a tampered
    /// or swapped blob. Deliberately says no more, so that no caller learns which check
    /// failed.
    #[error("sealed value refused")]
    Refused,
    /// The bytes are not a well-formed sealed value; `field` names the part at fault.
    #[error("malformed sealed value: {field}")]
    Malformed {
        /// The part of the format that could not be read.
        field: &'static str,
    },
    /// The format version is not one this build reads.
    #[error("unsupported sealed value format version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The cipher suite is not one this build reads.
    #[error("unsupported cipher suite {suite}")]
    UnsupportedSuite {
        /// The suite byte found.
        suite: u8,
    },
    /// The value names a key-encryption backend this envelope was not given.
    #[error("no key-encryption backend {backend:?} is configured")]
    UnknownBackend {
        /// The backend id found in the value.
        backend: String,
    },
    /// The value was sealed under a key that no configured key-encryption backend holds
    /// (its backend answered [`BackendError::KeyNotFound`]): almost always a
    /// configuration mistake, the service started with another master key (or without
    /// the old one after a rotation), not a fault of the value. Nothing about the value
    /// was checked, so this says nothing about its authenticity either.
    ///
    /// The header naming the key is not authenticated (FORMAT.md, section 4): whoever
    /// can write a row can make one value report this. When every value does, the
    /// configuration is wrong. On [`Envelope::seal`](crate::Envelope::seal) (rare: a
    /// remote backend no longer holds its configured primary key) `key` is that
    /// primary key.
    ///
    /// [`Error::is_configuration`] is true. `key` is the key id and version written in
    /// the value (a fingerprint, a label, an ARN): never key material.
    #[error(
        "sealed under key {key}, which no configured key-encryption backend holds: the \
         service was started with another key (or without this one); configure the key \
         the data was sealed under (as a decrypt-only key if it is no longer the primary)"
    )]
    KeyNotHeld {
        /// The key the value names.
        key: KeyRef<'static>,
    },
    /// The backend could not unwrap, or was not asked to: see the source. Never
    /// [`BackendError::KeyNotFound`] (that is [`Error::KeyNotHeld`]) nor
    /// [`BackendError::Refused`] (that is [`Error::Refused`]).
    #[error("key-encryption backend failed")]
    Backend(#[source] BackendError),
}

impl From<BackendError> for Error {
    /// A backend's failure as the envelope reports it: a refusal stays the one opaque
    /// [`Error::Refused`], a key the backend does not hold is the configuration error
    /// [`Error::KeyNotHeld`], everything else is [`Error::Backend`]. Every path (open,
    /// re-wrap, seal) goes through here, so no caller ever sees
    /// `Backend(KeyNotFound)`.
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Refused => Self::Refused,
            BackendError::KeyNotFound { key } => Self::KeyNotHeld { key },
            other => Self::Backend(other),
        }
    }
}

impl Error {
    /// Whether the failure is transient (a backend outage) and the caller should answer
    /// "unavailable" (HTTP 503) rather than "refused".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Backend(BackendError::Unavailable { .. }))
    }

    /// Whether the failure is the configuration's, not the value's nor a passing
    /// outage: the value names a key ([`Error::KeyNotHeld`]) or a backend
    /// ([`Error::UnknownBackend`]) that this envelope was not configured with. Retrying
    /// does not help and the value is not known to be bad; an operator must fix the
    /// key configuration. A service refuses to start on it, and otherwise answers it as
    /// its own fault (logged loudly with a stable code), never as "refused".
    ///
    /// [`BackendError::KeyRetired`] is not included: the key is held, and the
    /// configuration says on purpose that values under it no longer open (a raised
    /// minimum version, a retired or disabled key, which may be an incident's
    /// kill switch). That is the configuration working as written, and a service should
    /// keep running and refuse those values, not treat the deployment as broken.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::KeyNotHeld { .. } | Self::UnknownBackend { .. })
    }

    /// A stable code for logs and audit (never for an HTTP body): `envelope.refused`,
    /// `envelope.malformed`, `envelope.unsupported_version`, `envelope.unsupported_suite`,
    /// `envelope.unknown_backend`, `envelope.key_not_held`, `envelope.backend_unavailable`
    /// or `envelope.backend`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused => "envelope.refused",
            Self::Malformed { .. } => "envelope.malformed",
            Self::UnsupportedVersion { .. } => "envelope.unsupported_version",
            Self::UnsupportedSuite { .. } => "envelope.unsupported_suite",
            Self::UnknownBackend { .. } => "envelope.unknown_backend",
            Self::KeyNotHeld { .. } => "envelope.key_not_held",
            Self::Backend(BackendError::Unavailable { .. }) => "envelope.backend_unavailable",
            Self::Backend(_) => "envelope.backend",
        }
    }

    /// The HTTP status a service answers when a request needed this value: 500 for a
    /// configuration error ([`is_configuration`](Self::is_configuration): the service's
    /// own fault, no retry helps), 503 for everything else (an outage, or a stored value
    /// that does not open: never the client's fault, and never a success). The body
    /// says no more than the status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        if self.is_configuration() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// A key-encryption backend's failure.
///
/// Backends must not put key material, data keys or plaintext into any variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The wrapped key does not unwrap under the named key and context. Opaque on purpose.
    #[error("wrapped data key refused")]
    Refused,
    /// The backend does not hold the named key (a different key ring, a key from another
    /// deployment, a typo in configuration).
    #[error("key {key} is not held by this backend")]
    KeyNotFound {
        /// The key the value names.
        key: KeyRef<'static>,
    },
    /// The key is held but retired, or below the minimum decryption version.
    #[error("key {key} is retired")]
    KeyRetired {
        /// The key the value names.
        key: KeyRef<'static>,
    },
    /// The backend cannot be reached or answered with a transient error (an HSM session
    /// lost, a KMS timeout). Retry later; never treat as success.
    #[error("key-encryption backend {backend} is unavailable: {reason}")]
    Unavailable {
        /// The backend id.
        backend: String,
        /// What went wrong, without secrets.
        reason: String,
    },
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// The backend returned something the format cannot hold (a key id or wrapped key
    /// out of range): a bug or misconfiguration of the backend.
    #[error("key-encryption backend {backend} misbehaved: {reason}")]
    Misbehaved {
        /// The backend id.
        backend: String,
        /// What was wrong.
        reason: &'static str,
    },
}

/// Why an [`EncryptionContext`](crate::EncryptionContext) pair was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A pair's name is empty.
    #[error("encryption context: empty name")]
    EmptyName,
    /// A name is longer than [`MAX_NAME_LEN`](crate::context::MAX_NAME_LEN).
    #[error("encryption context: name too long")]
    NameTooLong,
    /// A value is longer than [`MAX_VALUE_LEN`](crate::context::MAX_VALUE_LEN).
    #[error("encryption context: value of {name:?} too long")]
    ValueTooLong {
        /// The pair's name.
        name: String,
    },
    /// The same name was given twice.
    #[error("encryption context: duplicate name {name:?}")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// More than [`MAX_PAIRS`](crate::context::MAX_PAIRS) pairs.
    #[error("encryption context: too many pairs")]
    TooManyPairs,
}

/// Why key-encryption-key configuration was refused. Names the setting, never its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("{field} is not set")]
    Missing {
        /// The setting (environment variable or builder field).
        field: String,
    },
    /// A key is neither 64 hex characters nor 44 base64 characters, or holds other
    /// characters (whitespace included).
    #[error("{field} is not a 32-byte key as 64 hex or 44 base64 characters")]
    BadKey {
        /// The setting holding the key.
        field: String,
    },
    /// A number (key version, Argon2 parameter) does not parse or is out of range.
    #[error("{field} is not a valid number: {reason}")]
    BadNumber {
        /// The setting.
        field: String,
        /// Why, without the value.
        reason: &'static str,
    },
    /// A setting is present but unusable for a stated reason.
    #[error("{field}: {reason}")]
    Invalid {
        /// The setting.
        field: String,
        /// Why, without the value.
        reason: &'static str,
    },
}

/// Why a remote key-encryption backend could not be set up (`connect` of the Transit and
/// AWS KMS backends).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A setting is missing or unusable; names the setting, never its value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The service could not be reached, refused the credentials, does not hold a
    /// configured key, or holds one unfit for use.
    #[error(transparent)]
    Backend(#[from] BackendError),
}
