//! tower and axum integration (feature `axum`).
//!
//! * [`AuthLayer`] runs the [`Chain`] on every request (WebSocket upgrades included:
//!   their `token` query parameter is honoured) and either puts the [`Principal`] in the
//!   request's extensions and calls the inner service, or answers with
//!   [`refusal_response`].
//! * [`Authenticated`] is the axum extractor for that principal; it refuses a restricted
//!   principal (must change the password: 403 `password_change_required`) unless the
//!   handler takes [`AllowRestricted`] instead.
//! * [`refusal_response`] is the one place where outcomes become HTTP: 401 with
//!   `WWW-Authenticate: Bearer`, 403, 503; the body is empty, so it never says which
//!   check failed. The refusal code goes to `tracing` (target `auth_core::http`).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response as AxumResponse};
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::chain::{Chain, Outcome};
use crate::principal::Principal;

/// The HTTP status for a refused outcome; `None` for an authenticated one.
#[must_use]
pub fn status_for(outcome: &Outcome) -> Option<StatusCode> {
    match outcome {
        Outcome::Authenticated(_) => None,
        Outcome::Missing => Some(StatusCode::UNAUTHORIZED),
        Outcome::Invalid(_) => Some(StatusCode::FORBIDDEN),
        Outcome::Unavailable(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// The response for a refused outcome (`None` when authenticated): the status from
/// [`status_for`], `WWW-Authenticate: Bearer` on 401, `Cache-Control: no-store`, and an
/// empty body. Logs the refusal code.
#[must_use]
pub fn refusal_response<B: Default>(outcome: &Outcome) -> Option<Response<B>> {
    let status = status_for(outcome)?;
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
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    Some(response)
}

/// Whether a request is a WebSocket handshake (`Upgrade: websocket`).
fn is_websocket_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Runs the chain on a request's head: headers, plus the `token` query parameter for
/// WebSocket handshakes.
pub async fn resolve_parts(chain: &Chain, parts: &Parts) -> Outcome {
    if is_websocket_upgrade(parts) {
        chain.resolve_ws_handshake(&parts.headers, &parts.uri).await
    } else {
        chain.resolve_headers(&parts.headers).await
    }
}

/// A tower [`Layer`](tower_layer::Layer) that authenticates every request with a
/// [`Chain`].
#[derive(Clone, Debug)]
pub struct AuthLayer {
    chain: Chain,
}

impl AuthLayer {
    /// A layer running `chain`.
    #[must_use]
    pub fn new(chain: Chain) -> Self {
        Self { chain }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            chain: self.chain.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    chain: Chain,
}

/// The future of [`AuthService`].
pub type AuthFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for AuthService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
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
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let outcome = resolve_parts(&chain, &parts).await;
            match outcome {
                Outcome::Authenticated(principal) => {
                    parts.extensions.insert(principal);
                    inner.call(Request::from_parts(parts, body)).await
                }
                refused => Ok(refusal_response(&refused).unwrap_or_else(|| {
                    // Unreachable (only Authenticated has no response); refuse anyway.
                    let mut response = Response::new(ResBody::default());
                    *response.status_mut() = StatusCode::FORBIDDEN;
                    response
                })),
            }
        })
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

impl IntoResponse for LayerMissing {
    fn into_response(self) -> AxumResponse {
        tracing::error!(target: "auth_core::http", code = "auth.layer_missing", "route without AuthLayer asked for a principal");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

/// Rejection of [`Authenticated`] and [`AllowRestricted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The route is not behind [`AuthLayer`] (500).
    #[error(transparent)]
    LayerMissing(#[from] LayerMissing),
    /// The principal is restricted and the route did not opt in (403
    /// `{"error":"password_change_required"}`).
    #[error("the password must be changed first")]
    PasswordChangeRequired,
}

/// The stable code (and JSON `error` value) of [`AuthRejection::PasswordChangeRequired`].
pub const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";

impl IntoResponse for AuthRejection {
    fn into_response(self) -> AxumResponse {
        match self {
            Self::LayerMissing(e) => e.into_response(),
            Self::PasswordChangeRequired => {
                tracing::info!(target: "auth_core::http", code = PASSWORD_CHANGE_REQUIRED, status = 403, "restricted principal refused");
                let mut response = (
                    StatusCode::FORBIDDEN,
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
        Ok(Self(principal))
    }
}

impl fmt::Display for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} via {}", self.0.user_id(), self.0.method())
    }
}
