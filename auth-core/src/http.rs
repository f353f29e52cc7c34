//! tower and axum integration (feature `axum`).
//!
//! * [`AuthLayer`] runs the [`Chain`] on every request of the routes it is mounted on
//!   and either puts the [`Principal`] in the request's extensions and calls the inner
//!   service, or answers with [`refusal_response`]. It reads credential headers only;
//!   [`AuthLayer::websocket`], for the WebSocket route alone, also reads a `token` query
//!   parameter on handshakes and leaves a [`Recheck`] for the open socket.
//! * [`Requires`] (a route layer) and [`authorize`] (for extractors) enforce a route's
//!   declared requirement: scopes of API keys, interactive-only routes (module
//!   [`scope`](crate::scope)).
//! * [`Authenticated`] is the axum extractor for that principal; it refuses a restricted
//!   principal (must change the password: 403 `password_change_required`) unless the
//!   handler takes [`AllowRestricted`] instead, and API keys on a route that declared
//!   nothing. [`Requires::Scope`] and [`authorize`] refuse a restricted principal too.
//! * [`refusal_response`] (and [`Challenge::refusal_response`], which the layer uses) is
//!   the one place where outcomes become HTTP: 401 with `WWW-Authenticate: Bearer`, 403,
//!   503 with `Retry-After`; the body is empty, so it never says which check failed. The
//!   refusal code goes to `tracing` (target `auth_core::http`). [`Challenge::rfc6750`]
//!   switches invalid credentials to RFC 6750 answers (401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"`).
//! * [`AuthLayer::with_session_cookie`] also accepts a session token in a `__Host-`
//!   cookie (module [`cookie`](crate::cookie)), when no credential header is present, and
//!   refuses a state-changing request authenticated by the cookie alone that fails the
//!   [`CsrfGuard`] check: 403 `{"error":"csrf"}`, before any credential lookup.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response as AxumResponse};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};
use std::sync::Arc;
use std::time::Duration;

use crate::chain::{Chain, Outcome, Refusal};
use crate::config::ConfigError;
use crate::cookie::{CsrfGuard, SessionCookie};
use crate::credential::Credential;
use crate::principal::Principal;
use crate::scope::{Requires, ScopeRefusal};

/// The HTTP status for a refused outcome; `None` for an authenticated one: 401 for a
/// missing credential, 403 for a refused one, 503 when the chain could not decide. This is
/// the default mapping; [`Challenge::status_for`] gives the mapping of a configured
/// [`Challenge`].
#[deprecated(
    since = "0.1.0",
    note = "use `Outcome::status()`, the one way every auth-core type says its status"
)]
#[must_use]
pub fn status_for(outcome: &Outcome) -> Option<StatusCode> {
    default_status(outcome)
}

/// [`Outcome::status`], `None` when authenticated.
fn default_status(outcome: &Outcome) -> Option<StatusCode> {
    match outcome {
        Outcome::Authenticated(_) => None,
        other => Some(other.status()),
    }
}

/// The response for a refused outcome (`None` when authenticated) under the default
/// [`Challenge`]: the status from [`Outcome::status`], `WWW-Authenticate: Bearer` on 401,
/// `Retry-After: 5` ([`RETRY_AFTER_SECS`]) on 503, `Cache-Control: no-store`, and an
/// empty body. Logs the refusal code.
#[must_use]
pub fn refusal_response<B: Default>(outcome: &Outcome) -> Option<Response<B>> {
    DEFAULT_CHALLENGE.refusal_response(outcome)
}

/// The default challenge, shared by [`refusal_response`].
static DEFAULT_CHALLENGE: Challenge = Challenge {
    rfc6750: false,
    realm: None,
};

/// Seconds in the `Retry-After` header of every 503 the layer answers (RFC 9110 section
/// 10.2.3). A 503 here means a store or JWKS outage, usually short; five seconds lets a
/// client retry soon without hammering a recovering backend (clients should add jitter).
pub const RETRY_AFTER_SECS: u64 = 5;

/// The `error` value of the 403 body answered to a request refused by the CSRF defence.
pub const CSRF_ERROR: &str = "csrf";

/// Longest accepted realm in [`Challenge::realm`].
pub const MAX_REALM_LEN: usize = 128;

/// How refused requests are answered: the status of an invalid credential and the
/// `WWW-Authenticate` challenge.
///
/// * [`Challenge::default`] (today's contract): no credential is 401 with
///   `WWW-Authenticate: Bearer`, a refused credential is 403 without a challenge.
/// * [`Challenge::rfc6750`] (RFC 6750 section 3): no credential is 401 with
///   `WWW-Authenticate: Bearer` (section 3.1: no error code when the request carried no
///   credential), and a refused credential (unknown, expired, revoked, malformed) is 401
///   with `WWW-Authenticate: Bearer error="invalid_token"`, so that a client knows to
///   refresh or log in again. Refused scopes and CSRF stay 403.
///
/// Either way every 503 carries `Retry-After` ([`RETRY_AFTER_SECS`]), every refusal
/// `Cache-Control: no-store`, and the body is empty. An optional realm is added to every
/// challenge (`Bearer realm="..."`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    rfc6750: bool,
    realm: Option<Box<str>>,
}

impl Challenge {
    /// RFC 6750 answers: a refused credential is 401 `Bearer error="invalid_token"`.
    #[must_use]
    pub fn rfc6750() -> Self {
        Self {
            rfc6750: true,
            realm: None,
        }
    }

    /// Adds `realm="<realm>"` to every challenge.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] (field `realm`) unless `realm` is 1 to
    /// [`MAX_REALM_LEN`] bytes of visible ASCII or spaces, without `"` or a backslash.
    pub fn realm(mut self, realm: &str) -> Result<Self, ConfigError> {
        if realm.is_empty()
            || realm.len() > MAX_REALM_LEN
            || !realm
                .bytes()
                .all(|b| (b.is_ascii_graphic() || b == b' ') && b != b'"' && b != b'\\')
        {
            return Err(ConfigError::Invalid {
                field: "realm",
                expected: "1 to 128 visible ASCII characters without quotes or backslashes",
            });
        }
        self.realm = Some(realm.into());
        Ok(self)
    }

    /// Whether refused credentials get RFC 6750 answers.
    #[must_use]
    pub fn is_rfc6750(&self) -> bool {
        self.rfc6750
    }

    /// The HTTP status for a refused outcome; `None` for an authenticated one.
    #[must_use]
    pub fn status_for(&self, outcome: &Outcome) -> Option<StatusCode> {
        match outcome {
            Outcome::Invalid(_) if self.rfc6750 => Some(StatusCode::UNAUTHORIZED),
            other => default_status(other),
        }
    }

    /// The `WWW-Authenticate` value for `outcome`, if it gets one.
    fn www_authenticate(&self, outcome: &Outcome) -> Option<HeaderValue> {
        let error = match outcome {
            Outcome::Missing => None,
            Outcome::Invalid(_) if self.rfc6750 => Some(r#"error="invalid_token""#),
            _ => return None,
        };
        let value = match (&self.realm, error) {
            (None, None) => return Some(HeaderValue::from_static("Bearer")),
            (None, Some(_)) => {
                return Some(HeaderValue::from_static(r#"Bearer error="invalid_token""#));
            }
            (Some(realm), None) => format!(r#"Bearer realm="{realm}""#),
            (Some(realm), Some(error)) => format!(r#"Bearer realm="{realm}", {error}"#),
        };
        // The realm was checked to be visible ASCII; fall back to the bare challenge.
        Some(HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer")))
    }

    /// The response for a refused outcome (`None` when authenticated): the status from
    /// [`Challenge::status_for`], the challenge (see the type's docs), `Retry-After` on
    /// 503, `Cache-Control: no-store`, an empty body, and the outcome's code as a
    /// [`Refusal`] in the response's extensions (for an outer middleware's metrics or
    /// audit trail). Logs the refusal code.
    #[must_use]
    pub fn refusal_response<B: Default>(&self, outcome: &Outcome) -> Option<Response<B>> {
        let status = self.status_for(outcome)?;
        match outcome {
            Outcome::Unavailable(_) => tracing::warn!(
                target: "auth_core::http",
                code = outcome.code(),
                status = status.as_u16(),
                "request refused: authentication unavailable"
            ),
            _ => tracing::info!(
                target: "auth_core::http",
                code = outcome.code(),
                status = status.as_u16(),
                "request refused"
            ),
        }
        let mut response = Response::new(B::default());
        *response.status_mut() = status;
        // The code rides in the extensions for an outer middleware (metrics, audit).
        response
            .extensions_mut()
            .insert(Refusal::new(outcome.code()));
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate(outcome) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        Some(response)
    }
}

/// 403 `{"error":"csrf"}` for a request the CSRF defence refused; logs the code.
fn csrf_response<B: From<&'static str>>(refusal: Refusal, parts: &Parts) -> Response<B> {
    tracing::info!(
        target: "auth_core::http",
        code = refusal.code(),
        status = 403,
        method = parts.method.as_str(),
        "request refused: cookie credential failed the CSRF check"
    );
    let mut response = Response::new(B::from(r#"{"error":"csrf"}"#));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.extensions_mut().insert(refusal);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a request is a WebSocket handshake (`Upgrade: websocket`).
fn is_websocket_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Runs the chain on a request's head: the credential headers only. A `token` query
/// parameter is never read here (see [`AuthLayer::websocket`]).
pub async fn resolve_parts(chain: &Chain, parts: &Parts) -> Outcome {
    chain.resolve_headers(&parts.headers).await
}

/// A tower [`Layer`](tower_layer::Layer) that authenticates every request with a
/// [`Chain`].
///
/// [`AuthLayer::new`] reads the credential headers only. [`AuthLayer::websocket`] also
/// reads a `token` query parameter on WebSocket handshakes and keeps the credential for
/// [`Recheck`]; mount it on the WebSocket route alone, since query strings end up in
/// access logs and `Upgrade: websocket` is a header any client can send.
///
/// Options: [`AuthLayer::with_session_cookie`] (browser sessions in a `__Host-` cookie,
/// with the CSRF defence) and [`AuthLayer::with_challenge`] (RFC 6750 answers).
///
/// Mount it with `route_layer`, not `layer`, so that a request for a path no route
/// matches gets the router's 404 rather than an authentication answer.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    chain: Chain,
    websocket: bool,
    options: Arc<Options>,
}

/// The optional behaviour of an [`AuthLayer`], shared by its services.
#[derive(Clone, Debug, Default)]
struct Options {
    browser: Option<Browser>,
    challenge: Challenge,
}

/// Cookie sessions: the cookie and the CSRF guard that goes with it.
#[derive(Clone, Debug)]
struct Browser {
    cookie: SessionCookie,
    csrf: CsrfGuard,
}

impl AuthLayer {
    /// A layer running `chain` on the credential headers.
    #[must_use]
    pub fn new(chain: Chain) -> Self {
        Self {
            chain,
            websocket: false,
            options: Arc::default(),
        }
    }

    /// A layer for a WebSocket route: as [`AuthLayer::new`], and on a WebSocket handshake
    /// the credential may instead be a `token` query parameter (browsers cannot set
    /// headers on `new WebSocket(..)`). Every authenticated request also gets a
    /// [`Recheck`] in its extensions, so that the socket can re-check its credential.
    #[must_use]
    pub fn websocket(chain: Chain) -> Self {
        Self {
            chain,
            websocket: true,
            options: Arc::default(),
        }
    }

    /// Also accepts a session token in the session `cookie` (off by default).
    ///
    /// The cookie is read only when the request carries no credential header (and, on a
    /// WebSocket handshake of an [`AuthLayer::websocket`] route, no `token` parameter): an
    /// explicit credential always wins over the ambient cookie, which is then ignored
    /// entirely. A request authenticated by the cookie alone must then pass `csrf`
    /// before its credential is looked up:
    ///
    /// * any method but `GET`, `HEAD`, `OPTIONS`: [`CsrfGuard::check`]
    ///   (`Sec-Fetch-Site: same-origin`/`none`, or an allowed `Origin`);
    /// * a WebSocket handshake (`Upgrade: websocket`, on any route):
    ///   [`CsrfGuard::check_websocket`] (an allowed `Origin`).
    ///
    /// A refusal is 403 with the body `{"error":"csrf"}` ([`CSRF_ERROR`]) and the code
    /// (`csrf.*`) in tracing; the handler never runs and the store is not asked. The
    /// refusal needs a response body type that can be built from a `&'static str`
    /// (axum's `Body` can).
    #[must_use]
    pub fn with_session_cookie(mut self, cookie: SessionCookie, csrf: CsrfGuard) -> Self {
        Arc::make_mut(&mut self.options).browser = Some(Browser { cookie, csrf });
        self
    }

    /// Answers refusals as `challenge` says (default: [`Challenge::default`], today's
    /// contract; [`Challenge::rfc6750`] for RFC 6750 answers).
    #[must_use]
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        Arc::make_mut(&mut self.options).challenge = challenge;
        self
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            chain: self.chain.clone(),
            websocket: self.websocket,
            options: self.options.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    chain: Chain,
    websocket: bool,
    options: Arc<Options>,
}

/// The future of [`AuthService`] and [`RequireService`].
pub type AuthFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// What a request presents, before any lookup.
enum Presented {
    /// A credential (or none) that may be looked up.
    Credential(Option<Credential>),
    /// No credential could be extracted: refused without a lookup.
    Refused(Outcome),
    /// The cookie credential failed the CSRF check.
    Csrf(Refusal),
}

/// Takes the request's credential: the headers (or, on a WebSocket route's handshake,
/// the `token` query parameter), else the session cookie when enabled, which must then
/// pass the CSRF check.
fn presented(parts: &Parts, websocket: bool, browser: Option<&Browser>) -> Presented {
    let upgrade = is_websocket_upgrade(parts);
    let explicit = if websocket && upgrade {
        Credential::from_ws_handshake(&parts.headers, &parts.uri)
    } else {
        Credential::from_headers(&parts.headers)
    };
    match explicit {
        Err(e) => return Presented::Refused(Outcome::Invalid(Refusal::new(e.code()))),
        Ok(Some(credential)) => return Presented::Credential(Some(credential)),
        Ok(None) => {}
    }
    let Some(browser) = browser else {
        return Presented::Credential(None);
    };
    match browser.cookie.extract(&parts.headers) {
        Err(e) => Presented::Refused(Outcome::Invalid(Refusal::new(e.code()))),
        Ok(None) => Presented::Credential(None),
        Ok(Some(credential)) => {
            let checked = if upgrade {
                browser.csrf.check_websocket(&parts.headers)
            } else {
                browser.csrf.check(&parts.method, &parts.headers)
            };
            match checked {
                Ok(()) => Presented::Credential(Some(credential)),
                Err(refusal) => Presented::Csrf(refusal),
            }
        }
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for AuthService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + From<&'static str> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = AuthFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Use the service that was polled ready; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = core::mem::replace(&mut self.inner, clone);
        let chain = self.chain.clone();
        let websocket = self.websocket;
        let options = self.options.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let outcome = match presented(&parts, websocket, options.browser.as_ref()) {
                Presented::Csrf(refusal) => return Ok(csrf_response(refusal, &parts)),
                Presented::Refused(outcome) => outcome,
                Presented::Credential(credential) => {
                    let outcome = chain.resolve(credential.as_ref()).await;
                    // A WebSocket route keeps the credential for the open socket.
                    if websocket
                        && let (Outcome::Authenticated(principal), Some(credential)) =
                            (&outcome, credential)
                    {
                        parts.extensions.insert(Recheck {
                            chain: chain.clone(),
                            credential: Arc::new(credential),
                            principal: principal.clone(),
                        });
                    }
                    outcome
                }
            };
            match outcome {
                Outcome::Authenticated(principal) => {
                    parts.extensions.insert(principal);
                    inner.call(Request::from_parts(parts, body)).await
                }
                refused => Ok(options
                    .challenge
                    .refusal_response(&refused)
                    .unwrap_or_else(|| {
                        // Unreachable (only Authenticated has no response); refuse anyway.
                        let mut response = Response::new(ResBody::default());
                        *response.status_mut() = StatusCode::FORBIDDEN;
                        response
                    })),
            }
        })
    }
}

/// How often a long-lived connection should re-check its credential by default.
pub const DEFAULT_RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// WebSocket close code (RFC 6455 section 7.4.1) when the credential was refused on a
/// re-check: 1008, policy violation.
pub const CLOSE_CREDENTIAL_ENDED: u16 = 1008;
/// WebSocket close code when the re-check could not decide (backend outage): 1013, try
/// again later (IANA registry). Failing closed: the socket does not outlive an outage.
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Refusal when a re-check authenticated someone else than the socket's principal.
pub const RECHECK_PRINCIPAL_CHANGED: Refusal = Refusal::new("recheck.principal_changed");

/// The credential of a request on an [`AuthLayer::websocket`] route, kept so that a
/// long-lived connection can run it through the chain again.
///
/// A WebSocket that outlives its handshake must call [`Recheck::check`] at a bounded
/// interval ([`DEFAULT_RECHECK_INTERVAL`]) and close with [`Recheck::close_code`] when it
/// fails: logout, password change, revocation or expiry then end the socket within that
/// interval, on every instance that shares the store. The credential is held in memory
/// (wiped on drop, never printed) for as long as the handle lives.
#[derive(Clone)]
pub struct Recheck {
    chain: Chain,
    credential: Arc<Credential>,
    principal: Principal,
}

impl Recheck {
    /// The principal the credential authenticated at the handshake.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Runs the credential through the chain again.
    ///
    /// # Errors
    ///
    /// The refused outcome: `Invalid` when the credential ended (or now authenticates a
    /// different user, method or credential id, [`RECHECK_PRINCIPAL_CHANGED`]),
    /// `Unavailable` when the chain could not decide. Both must end the connection.
    pub async fn check(&self) -> Result<(), Outcome> {
        match self.chain.resolve(Some(&self.credential)).await {
            Outcome::Authenticated(now)
                if now.user_id() == self.principal.user_id()
                    && now.method() == self.principal.method()
                    && now.credential_id() == self.principal.credential_id() =>
            {
                Ok(())
            }
            Outcome::Authenticated(_) => Err(Outcome::Invalid(RECHECK_PRINCIPAL_CHANGED)),
            refused => Err(refused),
        }
    }

    /// The WebSocket close code for a failed [`Recheck::check`]:
    /// [`CLOSE_TRY_AGAIN_LATER`] for `Unavailable`, else [`CLOSE_CREDENTIAL_ENDED`].
    #[must_use]
    pub fn close_code(outcome: &Outcome) -> u16 {
        match outcome {
            Outcome::Unavailable(_) => CLOSE_TRY_AGAIN_LATER,
            _ => CLOSE_CREDENTIAL_ENDED,
        }
    }
}

impl fmt::Debug for Recheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recheck")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Recheck {
    type Rejection = LayerMissing;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Recheck>()
            .cloned()
            .ok_or(LayerMissing)
    }
}

/// Marks a request whose route requirement was checked; only this module makes one.
#[derive(Clone, Copy, Debug)]
struct Declared;

/// Checks the authenticated principal against `requires` and records that the route
/// declared a requirement (so that [`Authenticated`] lets an API key through). For
/// extractors that decide a route's requirement from the request (an operation named in
/// the path); a fixed requirement is declared with [`Requires`] as a route layer.
///
/// # Errors
///
/// [`AuthRejection::Scope`] when the principal may not use the route;
/// [`AuthRejection::PasswordChangeRequired`] for a restricted principal on any but an
/// interactive route; [`AuthRejection::LayerMissing`] when no [`AuthLayer`]
/// authenticated the request.
pub fn authorize(parts: &mut Parts, requires: Requires) -> Result<Principal, AuthRejection> {
    let principal = parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or(LayerMissing)?;
    // A restricted principal may only reach interactive routes, where the handler's
    // extractor ([`Authenticated`] or [`AllowRestricted`]) decides.
    if principal.is_restricted() && requires != Requires::Interactive {
        return Err(AuthRejection::PasswordChangeRequired);
    }
    requires.check(&principal).map_err(|refusal| {
        log_scope_refusal(refusal, &principal);
        AuthRejection::Scope(refusal)
    })?;
    parts.extensions.insert(Declared);
    Ok(principal)
}

fn log_scope_refusal(refusal: ScopeRefusal, principal: &Principal) {
    tracing::info!(
        target: "auth_core::http",
        code = refusal.code(),
        user_id = principal.user_id(),
        method = principal.method().as_str(),
        credential_id = principal.credential_id(),
        "request refused: scope"
    );
}

/// A route's declared requirement is a tower layer: `post(handler).route_layer(
/// Requires::Interactive)`. It runs after [`AuthLayer`] and before every extractor, so
/// a refused principal never gets its body parsed.
impl<S> tower_layer::Layer<S> for Requires {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            requires: *self,
        }
    }
}

/// The service made by the [`Requires`] layer.
#[derive(Clone, Debug)]
pub struct RequireService<S> {
    inner: S,
    requires: Requires,
}

impl<S, ReqBody> tower_service::Service<Request<ReqBody>> for RequireService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = AxumResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = AxumResponse;
    type Error = S::Error;
    type Future = AuthFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = core::mem::replace(&mut self.inner, clone);
        let (mut parts, body) = req.into_parts();
        let decided = authorize(&mut parts, self.requires);
        Box::pin(async move {
            match decided {
                Ok(_) => inner.call(Request::from_parts(parts, body)).await,
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

impl IntoResponse for ScopeRefusal {
    /// 403, `Cache-Control: no-store`, body `{"error": <ScopeRefusal::error>}`. The
    /// refusal itself rides in the response's extensions, so that an outer middleware
    /// can record it (an audit trail) without parsing the body.
    fn into_response(self) -> AxumResponse {
        let body = format!(r#"{{"error":"{}"}}"#, self.error());
        let mut response = (self.status(), body).into_response();
        response.extensions_mut().insert(self);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// axum extractor for the [`Principal`] that [`AuthLayer`] authenticated.
///
/// A restricted principal ([`Principal::is_restricted`]: the user must change the
/// password first) is refused with 403 `{"error":"password_change_required"}`
/// ([`AuthRejection::PasswordChangeRequired`]); only handlers that take
/// [`AllowRestricted`] instead (the password change, logout) see it.
///
/// On a route without the layer there is no principal: the extractor fails closed with
/// 500 (a wiring mistake, logged as `auth.layer_missing`), never an anonymous request.
/// On a route that declared no [`Requires`] (neither as a route layer nor through
/// [`authorize`]), every API key and every principal with scopes is refused with 403
/// ([`ScopeRefusal::Undeclared`]): fail closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated(pub Principal);

/// axum extractor like [`Authenticated`] that also accepts a restricted principal. Use it
/// only on the routes a user who must change the password may reach: the password change
/// and logout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowRestricted(pub Principal);

/// Rejection of [`Authenticated`]: the route is not behind [`AuthLayer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no authenticated principal: the route is not behind AuthLayer")]
pub struct LayerMissing;

impl LayerMissing {
    /// The stable code for logs: `auth.layer_missing`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        "auth.layer_missing"
    }

    /// The HTTP status to answer: 500 (a wiring mistake; fail closed).
    #[must_use]
    pub const fn status(self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl IntoResponse for LayerMissing {
    fn into_response(self) -> AxumResponse {
        tracing::error!(target: "auth_core::http", code = self.code(), "route without AuthLayer asked for a principal");
        self.status().into_response()
    }
}

/// Why [`Authenticated`], [`AllowRestricted`] or [`authorize`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The route is not behind [`AuthLayer`] (500).
    #[error(transparent)]
    LayerMissing(#[from] LayerMissing),
    /// The principal may not use the route: 403 (see [`ScopeRefusal`]).
    #[error(transparent)]
    Scope(#[from] ScopeRefusal),
    /// The principal is restricted and the route did not opt in (403
    /// `{"error":"password_change_required"}`).
    #[error("the password must be changed first")]
    PasswordChangeRequired,
}

/// The stable code (and JSON `error` value) of [`AuthRejection::PasswordChangeRequired`].
pub const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";

impl AuthRejection {
    /// The stable code for logs and audit: [`LayerMissing::code`],
    /// [`ScopeRefusal::code`] or [`PASSWORD_CHANGE_REQUIRED`].
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::LayerMissing(e) => e.code(),
            Self::Scope(e) => e.code(),
            Self::PasswordChangeRequired => PASSWORD_CHANGE_REQUIRED,
        }
    }

    /// The HTTP status to answer: 500 for [`LayerMissing`](Self::LayerMissing), 403
    /// otherwise.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Self::LayerMissing(e) => e.status(),
            Self::Scope(e) => e.status(),
            Self::PasswordChangeRequired => StatusCode::FORBIDDEN,
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> AxumResponse {
        match self {
            Self::LayerMissing(e) => e.into_response(),
            Self::Scope(e) => e.into_response(),
            Self::PasswordChangeRequired => {
                tracing::info!(target: "auth_core::http", code = PASSWORD_CHANGE_REQUIRED, status = 403, "restricted principal refused");
                let mut response = (
                    self.status(),
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":"password_change_required"}"#,
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(LayerMissing)?;
        if principal.is_restricted() {
            return Err(AuthRejection::PasswordChangeRequired);
        }
        if parts.extensions.get::<Declared>().is_none() {
            Requires::check_undeclared(&principal)
                .inspect_err(|&refusal| log_scope_refusal(refusal, &principal))?;
        }
        Ok(Self(principal))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AllowRestricted {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(LayerMissing)?;
        if parts.extensions.get::<Declared>().is_none() {
            Requires::check_undeclared(&principal)
                .inspect_err(|&refusal| log_scope_refusal(refusal, &principal))?;
        }
        Ok(Self(principal))
    }
}

impl fmt::Display for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.0.user_id(), self.0.method())
    }
}
