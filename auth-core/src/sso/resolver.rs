//! [`SsoResolver`]: the SSO JWT link of the resolver chain.

use std::fmt;
use std::sync::Arc;

use super::identity::IdentityBinder;
use super::verifier::SsoVerifier;
use crate::chain::{Refusal, Resolution, ResolveFuture, Resolver};
use crate::credential::{Credential, CredentialKind};
use crate::jose as wire;
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

    /// Verifies a JWT-shaped bearer token and binds its identity to a local user.
    async fn verify_and_bind(&self, token: &str) -> Resolution {
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

impl fmt::Debug for SsoResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoResolver")
            .field("issuers", &self.verifier.issuers().collect::<Vec<_>>())
            .field("binder", &self.binder)
            .finish_non_exhaustive()
    }
}

impl Resolver for SsoResolver {
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        if cred.kind() != CredentialKind::Bearer || !wire::looks_like_jwt(cred.expose_secret()) {
            return ResolveFuture::ready(Resolution::Pass);
        }
        ResolveFuture::boxed(self.verify_and_bind(cred.expose_secret()))
    }
}
