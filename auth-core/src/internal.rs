//! The internal service secret (`X-Internal-Secret`), for internal routes only.
//!
//! Mount a chain holding only an [`InternalSecretResolver`] on the internal routes. When
//! the service has no secret configured, the resolver reports itself not ready, so those
//! routes answer 503 while the rest of the service keeps working.

use core::fmt;

use crate::chain::{Refusal, Resolution, ResolveFuture, Resolver};
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
    /// The internal caller, built once and shared by every resolution.
    principal: Principal,
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
            principal: Principal::new(DEFAULT_INTERNAL_USER_ID, AuthMethod::InternalService),
        })
    }

    /// Sets the user id of authenticated internal callers.
    ///
    /// # Errors
    ///
    /// [`ConfigError::EmptyUserId`].
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Result<Self, ConfigError> {
        let user_id: String = user_id.into();
        if user_id.is_empty() {
            return Err(ConfigError::EmptyUserId {
                field: "internal_user_id",
            });
        }
        self.principal = Principal::new(user_id, AuthMethod::InternalService);
        Ok(self)
    }

    /// Whether a secret is configured.
    #[must_use]
    pub fn is_configured(&self) -> bool {
        self.digest.is_some()
    }

    /// The decision on `cred`: nothing here waits.
    fn decide(&self, cred: &Credential) -> Resolution {
        if cred.kind() != CredentialKind::InternalSecret {
            return Resolution::Pass;
        }
        let Some(expected) = &self.digest else {
            return Resolution::Unavailable(INTERNAL_UNCONFIGURED);
        };
        let presented = secret::sha256(cred.expose_secret().as_bytes());
        if secret::digest_eq(expected, &presented) {
            Resolution::Authenticated(self.principal.clone())
        } else {
            Resolution::Invalid(INTERNAL_MISMATCH)
        }
    }
}

impl fmt::Debug for InternalSecretResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalSecretResolver")
            .field("configured", &self.digest.is_some())
            .field("user_id", &self.principal.user_id())
            .finish_non_exhaustive()
    }
}

impl Resolver for InternalSecretResolver {
    fn ready(&self) -> Result<(), Refusal> {
        if self.digest.is_some() {
            Ok(())
        } else {
            Err(INTERNAL_UNCONFIGURED)
        }
    }

    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        ResolveFuture::ready(self.decide(cred))
    }
}
