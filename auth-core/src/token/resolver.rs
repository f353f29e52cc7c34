//! [`AccessTokenResolver`]: this service's own access tokens in the resolver chain.

use core::fmt;
use std::sync::Arc;

use super::issuer::{AccessTokenClaims, Check, Issuer};
use super::wire;
use crate::chain::{Refusal, Resolution, ResolveFuture, Resolver};
use crate::credential::{Credential, CredentialKind};
use crate::principal::{AuthMethod, Principal};
use crate::user::{Admission, EpochKind, UserStore, admit};

/// Unavailable: the user store failed during the epoch check (503).
pub const ACCESS_TOKEN_USER_STORE_UNAVAILABLE: Refusal =
    Refusal::new("access_token.user_store_unavailable");

/// Resolves bearer credentials that are access tokens of one [`Issuer`].
///
/// * Passes ([`Resolution::Pass`]) every bearer that is not a compact JWS with a `kid`,
///   and every JWS whose `kid` is unknown and whose (unverified) `iss` is not ours: so
///   sessions, API keys and external SSO tokens go on to their own resolvers. No I/O on
///   that path.
/// * Verifies the rest with [`Issuer::verify`]'s checks; a refusal is
///   [`Resolution::Invalid`] with an `access_token.*` code (to tracing, never the token),
///   a key store that cannot be read for an unknown `kid` is [`Resolution::Unavailable`].
/// * Yields `Principal::new(sub, AuthMethod::AccessToken)` with the credential id `sid`
///   (or `jti` without one), the session epoch `sr_epoch`, `mfa_at = auth_time` when
///   `amr` holds `"otp"`, and the scopes of `scope`.
/// * Optionally ([`with_epoch_check`](Self::with_epoch_check)) reads the user and
///   refuses the token when the user is unknown or disabled or the session epoch has
///   moved on (password change, sign-out-everywhere, disable): one
///   [`UserStore::user_by_id`] per request. A store failure is `Unavailable`, never an
///   allow.
#[derive(Clone)]
pub struct AccessTokenResolver {
    issuer: Issuer,
    users: Option<Arc<dyn UserStore>>,
}

impl AccessTokenResolver {
    /// A resolver for `issuer`'s tokens, without the epoch check: a token stays valid
    /// until its `exp` (at most the access-token lifetime) whatever happens to the user.
    #[must_use]
    pub fn new(issuer: Issuer) -> Self {
        Self {
            issuer,
            users: None,
        }
    }

    /// Turns on the epoch check against `users` (see the type's documentation).
    #[must_use]
    pub fn with_epoch_check(mut self, users: Arc<dyn UserStore>) -> Self {
        self.users = Some(users);
        self
    }

    /// Whether the epoch check is on.
    #[must_use]
    pub fn checks_epoch(&self) -> bool {
        self.users.is_some()
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    fn principal(claims: AccessTokenClaims) -> Principal {
        let mfa_at = claims
            .amr()
            .iter()
            .any(|m| m == "otp")
            .then_some(claims.auth_time());
        let credential_id = claims.sid().unwrap_or(claims.jti());
        let mut p = Principal::new(claims.subject(), AuthMethod::AccessToken)
            .with_credential_id(credential_id)
            .with_session_epoch(claims.session_epoch())
            .with_mfa_at(mfa_at);
        if let Some(scope) = claims.scope() {
            let scopes: Vec<String> = scope.split_ascii_whitespace().map(str::to_owned).collect();
            if !scopes.is_empty() {
                p = p.with_scopes(scopes);
            }
        }
        p
    }

    fn refused(refusal: Refusal) -> Resolution {
        tracing::info!(code = refusal.code(), "access token refused");
        Resolution::Invalid(refusal)
    }

    async fn admit_user(&self, users: &dyn UserStore, claims: AccessTokenClaims) -> Resolution {
        let user = match users.user_by_id(claims.subject()).await {
            Ok(u) => u,
            Err(e) => {
                let code = ACCESS_TOKEN_USER_STORE_UNAVAILABLE.code();
                tracing::warn!(code, error = %e, "access token user lookup failed");
                return Resolution::Unavailable(ACCESS_TOKEN_USER_STORE_UNAVAILABLE);
            }
        };
        let state = user.map(|u| u.state(EpochKind::Session));
        match admit(state.as_ref(), claims.session_epoch()) {
            Ok(Admission::Full) => Resolution::Authenticated(Self::principal(claims)),
            Ok(_) => Resolution::Authenticated(Self::principal(claims).with_restricted(true)),
            Err(refusal) => Self::refused(refusal),
        }
    }

    async fn slow(&self, token: &str) -> Resolution {
        let claims = match self.issuer.verify_inner(token).await {
            None => return Resolution::Pass,
            Some(Ok(c)) => c,
            Some(Err(r)) if r.is_unavailable() => return Resolution::Unavailable(r.refusal()),
            Some(Err(r)) => return Self::refused(r.refusal()),
        };
        match &self.users {
            None => Resolution::Authenticated(Self::principal(claims)),
            Some(users) => self.admit_user(users.as_ref(), claims).await,
        }
    }
}

impl fmt::Debug for AccessTokenResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenResolver")
            .field("issuer", &self.issuer.issuer())
            .field("epoch_check", &self.users.is_some())
            .finish_non_exhaustive()
    }
}

impl Resolver for AccessTokenResolver {
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        let token = cred.expose_secret();
        if cred.kind() != CredentialKind::Bearer || wire::split(token).is_none() {
            return ResolveFuture::ready(Resolution::Pass);
        }
        if self.issuer.reload_due() {
            return ResolveFuture::boxed(self.slow(token));
        }
        match self.issuer.check(token) {
            Check::NotMine => ResolveFuture::ready(Resolution::Pass),
            Check::Refused(r) => ResolveFuture::ready(Self::refused(r)),
            Check::UnknownKid => ResolveFuture::boxed(self.slow(token)),
            Check::Valid(claims) => match &self.users {
                None => ResolveFuture::ready(Resolution::Authenticated(Self::principal(claims))),
                Some(users) => ResolveFuture::boxed(self.admit_user(users.as_ref(), claims)),
            },
        }
    }
}
