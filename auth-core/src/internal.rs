//! The internal service secret (`X-Internal-Secret`), for internal routes only.
//!
//! Mount a chain holding only an [`InternalSecretResolver`] on the internal routes. When
//! the service has no secret configured, the resolver reports itself not ready, so those
//! routes answer 503 while the rest of the service keeps working.

use core::fmt;

use async_trait::async_trait;

use crate::chain::{Refusal, Resolution, Resolver};
use crate::config::{ConfigError, check_configured_secret};
use crate::credential::{Credential, CredentialKind, MAX_INTERNAL_SECRET_LEN};
use crate::principal::{AuthMethod, Principal};
use crate::secret::{self, Digest};

/// The user id of principals authenticated by the internal secret, unless configured.
pub const DEFAULT_INTERNAL_USER_ID: &str = "internal-service";

/// Refusal: no internal secret is configured (503).
pub const INTERNAL_UNCONFIGURED: Refusal = Refusal::new("internal.unconfigured");
/// Refusal: the presented secret does not match.
pub const INTERNAL_MISMATCH: Refusal = Refusal::new("internal.mismatch");

/// Resolves `X-Internal-Secret` by a constant-time comparison of SHA-256 digests.
pub struct InternalSecretResolver {
    digest: Option<Digest>,
    user_id: String,
}

impl InternalSecretResolver {
    /// A resolver for `secret`; `None` (not configured) makes every internal request 503.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming `internal_secret` when the secret is too short or malformed.
    pub fn new(secret: Option<&str>) -> Result<Self, ConfigError> {
        let digest = match secret {
            None => None,
            Some(s) => {
                check_configured_secret("internal_secret", s, MAX_INTERNAL_SECRET_LEN)?;
                Some(secret::sha256(s.as_bytes()))
            }
        };
        Ok(Self {
            digest,
            user_id: DEFAULT_INTERNAL_USER_ID.to_owned(),
        })
    }

    /// Sets the user id of authenticated internal callers.
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyUserId`].
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Result<Self, ConfigError> {
        let user_id = user_id.into();
        if user_id.is_empty() {
            return Err(ConfigError::EmptyUserId {
                field: "internal_user_id",
            });
        }
        self.user_id = user_id;
        Ok(self)
    }

    /// Whether a secret is configured.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.digest.is_some()
    }
}

impl fmt::Debug for InternalSecretResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalSecretResolver")
            .field("configured", &self.digest.is_some())
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Resolver for InternalSecretResolver {
    fn ready(&self) -> Result<(), Refusal> {
        if self.digest.is_some() {
            Ok(())
        } else {
            Err(INTERNAL_UNCONFIGURED)
        }
    }

    async fn resolve(&self, cred: &Credential) -> Resolution {
        if cred.kind() != CredentialKind::InternalSecret {
            return Resolution::Pass;
        }
        let Some(expected) = &self.digest else {
            return Resolution::Unavailable(INTERNAL_UNCONFIGURED);
        };
        let presented = secret::sha256(cred.expose_secret().as_bytes());
        if secret::digest_eq(expected, &presented) {
            Resolution::Authenticated(Principal::new(
                self.user_id.clone(),
                AuthMethod::InternalService,
            ))
        } else {
            Resolution::Invalid(INTERNAL_MISMATCH)
        }
    }
}
