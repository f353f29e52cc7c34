//! The static server-to-server token from configuration.
//!
//! Only the token's SHA-256 is kept. A presented bearer token is hashed and the digests
//! are compared in constant time, so neither the content nor the length of the configured
//! token leaks through timing. A match is the configured bootstrap user; anything else is
//! passed to the next resolver (it may be a session token or a JWT).

use core::fmt;

use crate::chain::{Resolution, ResolveFuture, Resolver};
use crate::config::{ConfigError, check_configured_secret};
use crate::credential::{Credential, CredentialKind, MAX_BEARER_LEN};
use crate::principal::{AuthMethod, Principal};
use crate::secret::{self, Digest};

/// Resolves the configured static token to the bootstrap user.
pub struct StaticTokenResolver {
    digest: Digest,
    /// The bootstrap user, built once and shared by every resolution.
    principal: Principal,
}

impl StaticTokenResolver {
    /// A resolver for `token` (at least 32 visible ASCII characters) that authenticates as
    /// `bootstrap_user_id`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the field (`static_token` or `bootstrap_user_id`).
    pub fn new(token: &str, bootstrap_user_id: impl Into<String>) -> Result<Self, ConfigError> {
        check_configured_secret("static_token", token, MAX_BEARER_LEN)?;
        let user_id: String = bootstrap_user_id.into();
        if user_id.is_empty() {
            return Err(ConfigError::EmptyUserId {
                field: "bootstrap_user_id",
            });
        }
        Ok(Self {
            digest: secret::sha256(token.as_bytes()),
            principal: Principal::new(user_id, AuthMethod::StaticToken),
        })
    }
}

impl fmt::Debug for StaticTokenResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokenResolver")
            .field("user_id", &self.principal.user_id())
            .finish_non_exhaustive()
    }
}

impl Resolver for StaticTokenResolver {
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        if cred.kind() != CredentialKind::Bearer {
            return ResolveFuture::ready(Resolution::Pass);
        }
        let presented = secret::sha256(cred.expose_secret().as_bytes());
        ResolveFuture::ready(if secret::digest_eq(&self.digest, &presented) {
            Resolution::Authenticated(self.principal.clone())
        } else {
            Resolution::Pass
        })
    }
}
