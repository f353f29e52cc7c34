//! The operational layers around every route, from tower-http: the access log, the
//! request timeout, the body size limit (enforced before the body is read) and the
//! headers marked sensitive. See the README, "Operating it".
//!
//! Order, outermost first: request id (module `audit`), sensitive headers, access log,
//! typed edge errors, timeout, body limit, metrics, routes. The access log therefore
//! sees the request id and every answer, including a timeout or an oversized body.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::audit::RequestId;
use super::error::ApiError;
use super::metrics::ReasonCode;

/// Largest accepted request body, in bytes (64 KiB). A declared `Content-Length` over it
/// is refused before anything is read; a body without one stops being read at the limit.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The status tower-http's timeout answers with; [`typed_errors`] gives it a JSON body.
const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// Request headers that carry credentials, marked sensitive so that no layer that prints
/// headers (a `Debug` of the request, tower-http's trace with headers on) shows their
/// values: `Authorization`, `Cookie`, `X-API-Key`, `X-Internal-Secret`, the webhook
/// signature and `Proxy-Authorization`.
pub(crate) fn sensitive_request_headers() -> SetSensitiveRequestHeadersLayer {
    SetSensitiveRequestHeadersLayer::new([
        header::AUTHORIZATION,
        header::COOKIE,
        HeaderName::from_static("x-api-key"),
        HeaderName::from_static("x-internal-secret"),
        HeaderName::from_static("x-strongroom-signature"),
        header::PROXY_AUTHORIZATION,
    ])
}

/// Response headers that carry credentials: `Set-Cookie` (the session cookie).
pub(crate) fn sensitive_response_headers() -> SetSensitiveResponseHeadersLayer {
    SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE])
}

/// tower-http's trace layer as [`access_log`] configures it.
pub(crate) type AccessLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> tracing::Span,
    (),
    DefaultOnResponse,
>;

/// The access log: one span per request (method, path without its query, matched route,
/// request id) and one `INFO` line when the answer is sent, with its status and latency
/// in microseconds (target `tower_http::trace::on_response`). The query string is never
/// logged: `/ws?token=` carries a credential.
pub(crate) fn access_log() -> AccessLog {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> tracing::Span)
        .on_request(())
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(tower_http::LatencyUnit::Micros),
        )
}

fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.0.as_str());
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        route,
        request_id = id,
    )
}

/// The timeout layer: a request still running after `timeout` is dropped and answered
/// 503 `{"error":"timeout"}`.
pub(crate) fn timeout(timeout: Duration) -> tower_http::timeout::TimeoutLayer {
    tower_http::timeout::TimeoutLayer::with_status_code(TIMEOUT_STATUS, timeout)
}

/// The body limit: a declared `Content-Length` over [`MAX_BODY`] is answered 413 before
/// the body is read; a longer body without one fails when reading passes the limit.
pub(crate) fn body_limit() -> tower_http::limit::RequestBodyLimitLayer {
    tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY)
}

/// Middleware (just outside the timeout and body limit): gives their bare answers the
/// service's JSON error body and reason code, like every other refusal (an answer that
/// already carries a reason code, any [`ApiError`] or an auth-core refusal, is kept), and
/// closes the connection after a body refused for its size or a timed-out request: their
/// bodies were not read to the end, so the connection cannot carry another request, and
/// a client must be told (`Connection: close`, RFC 9110 section 9.6) or it would reuse it.
pub(crate) async fn typed_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let explained = response.extensions().get::<ReasonCode>().is_some()
        || response.extensions().get::<auth_core::Refusal>().is_some();
    let mut response = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE if explained => response,
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::Code(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").into_response()
        }
        TIMEOUT_STATUS if !explained => ApiError::Code(TIMEOUT_STATUS, "timeout").into_response(),
        _ => return response,
    };
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
