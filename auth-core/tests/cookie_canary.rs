//! Canary: a recognisable session cookie value goes through every cookie path (extracted,
//! refused as unknown, refused by the CSRF check, malformed, duplicated, built into a
//! `Set-Cookie`) with a capturing tracing subscriber at TRACE level; it must appear in
//! none of the captured output, `Debug` strings or error messages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "axum")]

use crate::capture;
use capture::Capture;

use std::sync::Arc;

use auth_core::cookie::DEFAULT_SESSION_COOKIE;
use auth_core::http::{AuthLayer, Challenge};
use auth_core::{
    Chain, CsrfGuard, MemoryStore, SessionConfig, SessionCookie, Sessions, User, UserStore as _,
};
use axum::Router;
use axum::body::Body;
use axum::routing::post;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use tower::ServiceExt as _;

/// Shaped like a session token so that it reaches the session resolver.
const CANARY: &str = "ses_CANARYCOOKIEqZ7x1vN3bT5mK8pL0wR2yU4iO6aS9d";
/// The distinctive part, searched for in the output.
const NEEDLE: &str = "CANARYCOOKIE";

/// A request (method, headers) and the status it must get.
type Case = (Method, Vec<(&'static str, String)>, StatusCode);

async fn me() -> &'static str {
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_never_leaks() {
    let capture = Capture::install();
    let mut seen = String::new();

    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let chain = Chain::builder().resolver(sessions.clone()).build();
    let jar = SessionCookie::default();
    let guard = CsrfGuard::new(["https://app.example.com"]).unwrap();
    let router = Router::new().route("/me", post(me).get(me)).route_layer(
        AuthLayer::new(chain)
            .with_session_cookie(jar.clone(), guard.clone())
            .with_challenge(Challenge::rfc6750()),
    );

    let cookie = format!("{DEFAULT_SESSION_COOKIE}={CANARY}");
    let cases: Vec<Case> = vec![
        // Unknown session: refused after the lookup.
        (
            Method::GET,
            vec![("cookie", cookie.clone())],
            StatusCode::UNAUTHORIZED,
        ),
        // Cross-site POST: refused by the CSRF check.
        (
            Method::POST,
            vec![
                ("cookie", cookie.clone()),
                ("origin", "https://evil.example".into()),
            ],
            StatusCode::FORBIDDEN,
        ),
        // Duplicated, quoted: malformed.
        (
            Method::GET,
            vec![("cookie", format!("{cookie}; {cookie}"))],
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            vec![("cookie", format!("{DEFAULT_SESSION_COOKIE}=\"{CANARY}\""))],
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (method, headers, status) in cases {
        let mut b = Request::builder().method(method).uri("/me");
        for (k, v) in &headers {
            b = b.header(*k, v);
        }
        let resp = router
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        seen += &format!("{resp:?}");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        seen += &String::from_utf8_lossy(&body);
    }

    // Extraction results and errors.
    let mut h = HeaderMap::new();
    h.insert("cookie", HeaderValue::from_str(&cookie).unwrap());
    let cred = jar.extract(&h).unwrap().unwrap();
    assert_eq!(cred.expose_secret(), CANARY);
    seen += &format!("{cred:?} {jar:?} {guard:?}");
    for bad in [
        format!("{cookie}; {cookie}"),
        format!("{DEFAULT_SESSION_COOKIE}=\"{CANARY}\""),
        format!("{DEFAULT_SESSION_COOKIE}={CANARY}{}", "x".repeat(2000)),
    ] {
        h.insert("cookie", HeaderValue::from_str(&bad).unwrap());
        let e = jar.extract(&h).unwrap_err();
        seen += &format!("{e:?} {e} {}", e.code());
    }

    // A real session handed out in a Set-Cookie.
    let user = User::new("u1", "u1@example.com", None, 1);
    store.create_user(&user).await.unwrap();
    let token = sessions.issue(&user).await.unwrap();
    let set = jar.set_cookie(&token).unwrap();
    seen += &format!("{set:?} {token:?}");
    assert!(!seen.contains(token.expose_secret()));

    let logs = capture.text();
    assert!(
        logs.contains("csrf.origin"),
        "the refusals were logged: {logs}"
    );
    assert!(logs.contains("session.unknown"), "{logs}");
    for out in [&seen, &logs] {
        assert!(!out.contains(NEEDLE), "canary leaked: {out}");
        assert!(
            !out.contains(token.expose_secret()),
            "session token leaked: {out}"
        );
    }
}
