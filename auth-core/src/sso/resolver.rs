//! [`SsoResolver`]: the SSO JWT link of the resolver chain.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::identity::IdentityBinder;
use super::verifier::SsoVerifier;
use super::wire;
use crate::chain::{Refusal, Resolution, Resolver};
use crate::credential::{Credential, CredentialKind};
use crate::principal::{AuthMethod, Principal};

/// Resolves `Authorization: Bearer` credentials that are JWTs: verifies them with an
/// [`SsoVerifier`], then binds `(iss, sub)` to a local user with an [`IdentityBinder`].
///
/// * Claims only bearer credentials shaped like a compact JWS (three non-empty base64url
///   segments separated by dots); everything else is [`Resolution::Pass`].
/// * A refused token is [`Resolution::Invalid`]; a JWKS outage with no key to decide with,
///   or a binder store failure, is [`Resolution::Unavailable`]. The refusal code
///   (`jwt.*`, `jwks.*`, `sso.*`) goes to tracing; the token never does.
#[derive(Clone)]
pub struct SsoResolver {
    verifier: Arc<SsoVerifier>,
    binder: Arc<dyn IdentityBinder>,
}

impl SsoResolver {
    /// A resolver over a shared verifier and binder.
    #[must_use]
    pub fn new(verifier: Arc<SsoVerifier>, binder: Arc<dyn IdentityBinder>) -> Self {
        Self { verifier, binder }
    }

    /// The verifier.
    #[must_use]
    pub fn verifier(&self) -> &Arc<SsoVerifier> {
        &self.verifier
    }
}

impl fmt::Debug for SsoResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoResolver")
            .field("issuers", &self.verifier.issuers().collect::<Vec<_>>())
            .field("binder", &self.binder)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Resolver for SsoResolver {
    async fn resolve(&self, cred: &Credential) -> Resolution {
        if cred.kind() != CredentialKind::Bearer {
            return Resolution::Pass;
        }
        let token = cred.expose_secret();
        if !wire::looks_like_jwt(token) {
            return Resolution::Pass;
        }
        let identity = match self.verifier.verify(token).await {
            Ok(identity) => identity,
            Err(e) => {
                let code = e.reason().code();
                tracing::info!(code, "sso token refused");
                let refusal = Refusal::new(code);
                return if e.is_unavailable() {
                    Resolution::Unavailable(refusal)
                } else {
                    Resolution::Invalid(refusal)
                };
            }
        };
        match self.binder.bind(&identity).await {
            Ok(user) => {
                tracing::debug!(
                    issuer = identity.issuer(),
                    subject = identity.subject(),
                    binding = user.kind.as_str(),
                    "sso identity bound"
                );
                Resolution::Authenticated(Principal::new(user.user_id, AuthMethod::Sso))
            }
            Err(e) => {
                let code = e.code();
                tracing::info!(code, issuer = identity.issuer(), "sso identity not bound");
                let refusal = Refusal::new(code);
                if e.is_unavailable() {
                    Resolution::Unavailable(refusal)
                } else {
                    Resolution::Invalid(refusal)
                }
            }
        }
    }
}
