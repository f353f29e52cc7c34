//! The resolver chain: credential in, [`Outcome`] out.
//!
//! The embedding service builds a [`Chain`] of [`Resolver`]s in the order it wants them
//! tried (the usual order is static token, session, SSO JWT). For each request the chain
//! hands the credential to each resolver in turn:
//!
//! * [`Resolution::Pass`]: "not mine", the next resolver is asked;
//! * [`Resolution::Authenticated`]: done, the request is that principal;
//! * [`Resolution::Invalid`]: the resolver recognised the credential and refuses it
//!   (expired, revoked, bad signature): the chain stops with [`Outcome::Invalid`];
//! * [`Resolution::Unavailable`]: the resolver could not decide (store or JWKS outage).
//!   The chain keeps asking the later resolvers, because one of them may positively prove
//!   the credential on its own; if none does, the outcome is [`Outcome::Unavailable`]
//!   (503), never a success and never a plain refusal.
//!
//! A resolver that is not [ready](Resolver::ready) (e.g. the internal secret resolver
//! without a configured secret) makes every request on that chain
//! [`Outcome::Unavailable`]. No credential at all is [`Outcome::Missing`] (401). A credential no resolver claims,
//! or one that could not be extracted (duplicated headers, too long...), is
//! [`Outcome::Invalid`] (403).

use core::fmt;
use std::sync::Arc;

use http::{HeaderMap, Uri};

use crate::credential::Credential;
use crate::future::MaybeReady;
use crate::principal::Principal;

/// Why a credential was refused or could not be checked: a stable, machine-readable code
/// such as `"session.expired"` that goes to tracing and audit logs, never into an HTTP
/// body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Refusal {
    code: &'static str,
}

impl Refusal {
    /// A refusal with a stable code (`"<area>.<reason>"`, lower case, no secret data).
    #[must_use]
    pub const fn new(code: &'static str) -> Self {
        Self { code }
    }

    /// The stable code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Refusal").field(&self.code).finish()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// What one resolver says about one credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Not a credential this resolver handles; ask the next one.
    Pass,
    /// The credential proves this principal.
    Authenticated(Principal),
    /// The credential is this resolver's kind but is refused (403).
    Invalid(Refusal),
    /// The resolver could not decide because a backend failed (503 unless a later
    /// resolver proves the credential on its own).
    Unavailable(Refusal),
}

/// The future [`Resolver::resolve`] returns: [`ResolveFuture::ready`] for a decision made
/// without waiting (no allocation), [`ResolveFuture::boxed`] for one that waits on I/O.
pub type ResolveFuture<'a> = MaybeReady<'a, Resolution>;

/// One way of turning a credential into a principal.
///
/// # Security contract
///
/// * `cred` is attacker controlled. `resolve` must not panic on any value, must compare
///   secrets in constant time (over digests, so that lengths do not leak either) and must
///   never log, return or store the secret; log a [`Refusal`] code instead.
/// * Return [`Resolution::Pass`] only for credentials that are plainly not this
///   resolver's kind (wrong header, wrong prefix, unknown token in a store that is only
///   one of several places tokens live). Anything that looks like yours and fails a check
///   is [`Resolution::Invalid`].
/// * Any backend error is [`Resolution::Unavailable`], never `Pass` and never
///   `Authenticated`: fail closed.
///
/// # Writing one
///
/// `resolve` returns a [`ResolveFuture`] rather than being an `async fn`, so that a
/// resolver that decides without waiting (every built-in one over an in-process store)
/// costs no allocation per request. A resolver that waits wraps its async work in
/// [`ResolveFuture::boxed`], which is what `async_trait` would do:
///
/// ```
/// use auth_core::{Credential, ResolveFuture, Resolution, Resolver};
///
/// #[derive(Debug)]
/// struct Remote;
///
/// impl Remote {
///     async fn ask(&self, _cred: &Credential) -> Resolution {
///         Resolution::Pass // e.g. an HTTP call to an introspection endpoint
///     }
/// }
///
/// impl Resolver for Remote {
///     fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
///         ResolveFuture::boxed(self.ask(cred))
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + fmt::Debug {
    /// Whether the resolver can work at all. A chain with a resolver that is not ready
    /// answers [`Outcome::Unavailable`] to every request, with or without a credential
    /// (used by the internal secret resolver when no secret is configured). The default
    /// is ready.
    ///
    /// # Errors
    ///
    /// The refusal code to log when not ready.
    fn ready(&self) -> Result<(), Refusal> {
        Ok(())
    }

    /// Decides about `cred`.
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a>;
}

impl<R: Resolver + ?Sized> Resolver for Arc<R> {
    fn ready(&self) -> Result<(), Refusal> {
        (**self).ready()
    }

    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        (**self).resolve(cred)
    }
}

impl<R: Resolver + ?Sized> Resolver for Box<R> {
    fn ready(&self) -> Result<(), Refusal> {
        (**self).ready()
    }

    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        (**self).resolve(cred)
    }
}

/// The result of running the chain on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated as this principal.
    Authenticated(Principal),
    /// No credential presented: 401 with `WWW-Authenticate: Bearer`.
    Missing,
    /// A credential was presented and refused: 403. The refusal is for logs only.
    Invalid(Refusal),
    /// The chain could not decide (backend outage): 503. The refusal is for logs only.
    Unavailable(Refusal),
}

impl Outcome {
    /// The principal, if authenticated.
    #[must_use]
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Authenticated(p) => Some(p),
            _ => None,
        }
    }

    /// The stable code for logs: `"authenticated"`, `"credential.missing"` or the
    /// refusal code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Authenticated(_) => "authenticated",
            Self::Missing => "credential.missing",
            Self::Invalid(r) | Self::Unavailable(r) => r.code(),
        }
    }

    /// The HTTP status of the outcome under the default mapping: 200 when
    /// authenticated (the handler runs), 401 for a missing credential, 403 for a refused
    /// one, 503 when the chain could not decide. (`http::Challenge` with RFC 6750
    /// answers turns 403 into 401.)
    #[must_use]
    pub const fn status(&self) -> http::StatusCode {
        match self {
            Self::Authenticated(_) => http::StatusCode::OK,
            Self::Missing => http::StatusCode::UNAUTHORIZED,
            Self::Invalid(_) => http::StatusCode::FORBIDDEN,
            Self::Unavailable(_) => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Refusal code when a credential is present but no resolver claims it.
pub const UNCLAIMED: Refusal = Refusal::new("credential.unclaimed");

/// An ordered list of resolvers. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Chain {
    resolvers: Arc<[Arc<dyn Resolver>]>,
}

impl Chain {
    /// Starts a builder.
    #[must_use]
    pub fn builder() -> ChainBuilder {
        ChainBuilder::default()
    }

    /// The number of resolvers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.resolvers.len()
    }

    /// Whether the chain has no resolvers (it then refuses every credential).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.resolvers.is_empty()
    }

    /// Runs the chain on a credential (or its absence).
    pub async fn resolve(&self, cred: Option<&Credential>) -> Outcome {
        for resolver in self.resolvers.iter() {
            if let Err(r) = resolver.ready() {
                return Outcome::Unavailable(r);
            }
        }
        let Some(cred) = cred else {
            return Outcome::Missing;
        };
        let mut unavailable: Option<Refusal> = None;
        for resolver in self.resolvers.iter() {
            match resolver.resolve(cred).await {
                Resolution::Pass => {}
                Resolution::Authenticated(p) => return Outcome::Authenticated(p),
                Resolution::Invalid(r) => {
                    // A resolver that could not decide earlier might have accepted the
                    // credential: we cannot rule, so the answer is 503, not 403.
                    return match unavailable {
                        Some(u) => Outcome::Unavailable(u),
                        None => Outcome::Invalid(r),
                    };
                }
                Resolution::Unavailable(r) => {
                    unavailable.get_or_insert(r);
                }
            }
        }
        match unavailable {
            Some(u) => Outcome::Unavailable(u),
            None => Outcome::Invalid(UNCLAIMED),
        }
    }

    /// Extracts the credential from `headers` and runs the chain.
    pub async fn resolve_headers(&self, headers: &HeaderMap) -> Outcome {
        match Credential::from_headers(headers) {
            Ok(cred) => self.resolve(cred.as_ref()).await,
            Err(e) => Outcome::Invalid(Refusal::new(e.code())),
        }
    }

    /// Extracts the credential of a WebSocket handshake (headers, or the `token` query
    /// parameter) and runs the chain.
    pub async fn resolve_ws_handshake(&self, headers: &HeaderMap, uri: &Uri) -> Outcome {
        match Credential::from_ws_handshake(headers, uri) {
            Ok(cred) => self.resolve(cred.as_ref()).await,
            Err(e) => Outcome::Invalid(Refusal::new(e.code())),
        }
    }
}

/// Builder for [`Chain`]: resolvers are tried in the order they are added.
#[derive(Debug, Default)]
pub struct ChainBuilder {
    resolvers: Vec<Arc<dyn Resolver>>,
}

impl ChainBuilder {
    /// Appends a resolver.
    #[must_use]
    pub fn resolver(mut self, resolver: impl Resolver + 'static) -> Self {
        self.resolvers.push(Arc::new(resolver));
        self
    }

    /// Appends a shared resolver.
    #[must_use]
    pub fn shared(mut self, resolver: Arc<dyn Resolver>) -> Self {
        self.resolvers.push(resolver);
        self
    }

    /// Builds the chain.
    #[must_use]
    pub fn build(self) -> Chain {
        Chain {
            resolvers: self.resolvers.into(),
        }
    }
}
