//! Browser sessions through the tower layer: the `__Host-` session cookie, the CSRF
//! defence of cookie-authenticated requests, the RFC 6750 answers and `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::cookie::{DEFAULT_SESSION_COOKIE, MAX_COOKIE_HEADER_LEN};
use auth_core::http::{AllowRestricted, AuthLayer, Challenge, RETRY_AFTER_SECS, Recheck};
use auth_core::{
    Chain, Credential, CredentialKind, CsrfGuard, ExtractError, MemoryStore, Requires,
    ResolveFuture, Resolver, SameSite, SessionConfig, SessionCookie, Sessions, StaticTokenResolver,
    User, UserStore as _,
};
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use tower::ServiceExt as _;

const STATIC: &str = "static-token-0123456789abcdef0123456789abcdef";
const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.net";

async fn me(AllowRestricted(p): AllowRestricted) -> String {
    format!("{}:{}", p.user_id(), p.method())
}

async fn ws(AllowRestricted(p): AllowRestricted, recheck: Recheck) -> String {
    let now = match recheck.check().await {
        Ok(()) => "valid",
        Err(_) => "ended",
    };
    format!("{}:{}:{now}", p.user_id(), p.method())
}

/// Counts the lookups that reach the session resolver (a CSRF refusal must cost none).
#[derive(Debug)]
struct Counting {
    inner: Sessions,
    calls: Arc<AtomicUsize>,
}

impl Resolver for Counting {
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.resolve(cred)
    }
}

struct App {
    router: Router,
    sessions: Sessions,
    store: Arc<MemoryStore>,
    lookups: Arc<AtomicUsize>,
}

impl App {
    async fn token(&self, id: &str) -> String {
        let user = match self.store.user_by_id(id).await.unwrap() {
            Some(u) => u,
            None => {
                let u = User::new(id, format!("{id}@example.com"), None, 1);
                self.store.create_user(&u).await.unwrap();
                u
            }
        };
        self.sessions
            .issue(&user)
            .await
            .unwrap()
            .expose_secret()
            .to_owned()
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

/// `cookies`: whether the layer accepts the session cookie; `challenge`: its answers.
fn app(cookies: bool, challenge: Challenge) -> App {
    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let lookups = Arc::new(AtomicUsize::new(0));
    let chain = Chain::builder()
        .resolver(StaticTokenResolver::new(STATIC, "bootstrap").unwrap())
        .resolver(Counting {
            inner: sessions.clone(),
            calls: lookups.clone(),
        })
        .build();
    let guard = CsrfGuard::new([APP]).unwrap();
    let mut layer = AuthLayer::new(chain.clone()).with_challenge(challenge.clone());
    let mut ws_layer = AuthLayer::websocket(chain).with_challenge(challenge);
    if cookies {
        layer = layer.with_session_cookie(SessionCookie::default(), guard.clone());
        ws_layer = ws_layer.with_session_cookie(SessionCookie::default(), guard);
    }
    let router = Router::new()
        .route(
            "/me",
            get(me)
                .post(me)
                .put(me)
                .delete(me)
                .patch(me)
                .route_layer(Requires::Interactive),
        )
        .route_layer(layer)
        .merge(
            Router::new()
                .route("/ws", get(ws).route_layer(Requires::Interactive))
                .route_layer(ws_layer),
        );
    App {
        router,
        sessions,
        store,
        lookups,
    }
}

fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn cookie(token: &str) -> String {
    format!("theme=dark; {DEFAULT_SESSION_COOKIE}={token}; lang=en")
}

#[tokio::test]
async fn the_cookie_resolves_a_session() {
    let app = app(true, Challenge::default());
    let token = app.token("alice").await;
    let c = cookie(&token);
    let (s, _, body) = call(&app.router, req(Method::GET, "/me", &[("cookie", &c)])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, "alice:session");
    // Split over two Cookie fields (HTTP/2 may do that): still found.
    let (s, _, body) = call(
        &app.router,
        req(
            Method::GET,
            "/me",
            &[
                ("cookie", "theme=dark"),
                ("cookie", &format!("{DEFAULT_SESSION_COOKIE}={token}")),
            ],
        ),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "alice:session"));
    // A revoked session in the cookie is refused like the same bearer token.
    app.sessions.revoke_token(&token).await.unwrap();
    let (s, _, _) = call(&app.router, req(Method::GET, "/me", &[("cookie", &c)])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Only the session resolver takes a cookie: a static token in it is unclaimed.
    let c = cookie(STATIC);
    let (s, _, _) = call(&app.router, req(Method::GET, "/me", &[("cookie", &c)])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Other cookies only, or a cleared (empty) session cookie: no credential, 401.
    for c in ["theme=dark", &format!("{DEFAULT_SESSION_COOKIE}=")] {
        let (s, _, _) = call(&app.router, req(Method::GET, "/me", &[("cookie", c)])).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{c}");
    }
}

#[tokio::test]
async fn a_header_wins_over_the_cookie() {
    let app = app(true, Challenge::default());
    let alice = app.token("alice").await;
    let bob = app.token("bob").await;
    let c = cookie(&alice);
    let bearer = format!("Bearer {bob}");
    let (s, _, body) = call(
        &app.router,
        req(
            Method::GET,
            "/me",
            &[("cookie", &c), ("authorization", &bearer)],
        ),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "bob:session"));
    // A refused header is not rescued by a valid cookie.
    let (s, _, _) = call(
        &app.router,
        req(
            Method::GET,
            "/me",
            &[("cookie", &c), ("authorization", "Bearer unknown")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A bearer POST carrying the cookie too needs no CSRF check (the header is the
    // credential, and a browser never attaches it by itself).
    let (s, _, body) = call(
        &app.router,
        req(
            Method::POST,
            "/me",
            &[
                ("cookie", &c),
                ("authorization", &bearer),
                ("sec-fetch-site", "cross-site"),
                ("origin", EVIL),
            ],
        ),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "bob:session"));
}

#[tokio::test]
async fn cross_site_cookie_posts_are_refused_before_any_lookup() {
    let app = app(true, Challenge::default());
    let token = app.token("alice").await;
    let c = cookie(&token);
    let refused: [&[(&str, &str)]; 7] = [
        &[("sec-fetch-site", "cross-site"), ("origin", EVIL)],
        &[("sec-fetch-site", "cross-site")],
        // A sibling subdomain not on the list is refused too.
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://blog.example.com"),
        ],
        &[("origin", EVIL)],
        &[("origin", "null")],
        // Neither header: only a non-browser client does that; it must use a bearer token.
        &[],
        // A header present twice counts as absent.
        &[
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-site", "same-origin"),
        ],
    ];
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        for extra in refused {
            let mut hs = vec![("cookie", c.as_str())];
            hs.extend_from_slice(extra);
            let before = app.lookups();
            let (s, h, body) = call(&app.router, req(method.clone(), "/me", &hs)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {extra:?}");
            assert_eq!(body, r#"{"error":"csrf"}"#, "{method} {extra:?}");
            assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
            assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
            assert_eq!(
                app.lookups(),
                before,
                "a refused request looked up its credential"
            );
        }
    }
}

#[tokio::test]
async fn same_origin_and_allowed_origin_posts_and_gets_pass() {
    let app = app(true, Challenge::default());
    let token = app.token("alice").await;
    let c = cookie(&token);
    let passing: [(Method, &[(&str, &str)]); 8] = [
        (Method::POST, &[("sec-fetch-site", "same-origin")]),
        (Method::DELETE, &[("sec-fetch-site", "none")]),
        (Method::POST, &[("origin", APP)]),
        // An allowed front end on a sibling origin: same-site, from a listed origin.
        (
            Method::POST,
            &[("sec-fetch-site", "same-site"), ("origin", APP)],
        ),
        (
            Method::PUT,
            &[("sec-fetch-site", "same-origin"), ("origin", APP)],
        ),
        // Safe methods need no check at all.
        (
            Method::GET,
            &[("sec-fetch-site", "cross-site"), ("origin", EVIL)],
        ),
        (Method::GET, &[]),
        (Method::HEAD, &[("sec-fetch-site", "cross-site")]),
    ];
    for (method, extra) in passing {
        let mut hs = vec![("cookie", c.as_str())];
        hs.extend_from_slice(extra);
        let (s, _, body) = call(&app.router, req(method.clone(), "/me", &hs)).await;
        assert_eq!(s, StatusCode::OK, "{method} {extra:?}");
        if method != Method::HEAD {
            assert_eq!(body, "alice:session");
        }
    }
}

#[tokio::test]
async fn bearer_posts_need_no_origin() {
    let app = app(true, Challenge::default());
    let token = app.token("alice").await;
    let bearer = format!("Bearer {token}");
    let (s, _, body) = call(
        &app.router,
        req(Method::POST, "/me", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "alice:session"));
}

#[tokio::test]
async fn the_cookie_is_ignored_when_the_option_is_off() {
    let app = app(false, Challenge::default());
    let token = app.token("alice").await;
    let c = cookie(&token);
    for method in [Method::GET, Method::POST] {
        let (s, h, body) = call(
            &app.router,
            req(
                method,
                "/me",
                &[("cookie", &c), ("sec-fetch-site", "same-origin")],
            ),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(h.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        assert!(body.is_empty());
    }
    // Even a cross-site POST is just "no credential" (not a csrf answer).
    let (s, _, body) = call(
        &app.router,
        req(
            Method::POST,
            "/me",
            &[("cookie", &c), ("sec-fetch-site", "cross-site")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.is_empty());
    assert_eq!(app.lookups(), 0);
}

#[tokio::test]
async fn malformed_cookies_are_refused_without_a_lookup() {
    let app = app(true, Challenge::default());
    let token = app.token("alice").await;
    let twice = format!("{DEFAULT_SESSION_COOKIE}={token}; {DEFAULT_SESSION_COOKIE}={token}");
    let quoted = format!("{DEFAULT_SESSION_COOKIE}=\"{token}\"");
    let long_value = format!("{DEFAULT_SESSION_COOKIE}=ses_{}", "A".repeat(2000));
    let huge = format!(
        "{}; {DEFAULT_SESSION_COOKIE}={token}",
        "x=y".repeat(MAX_COOKIE_HEADER_LEN / 3 + 1)
    );
    for c in [&twice, &quoted, &long_value, &huge] {
        let (s, _, body) = call(&app.router, req(Method::GET, "/me", &[("cookie", c)])).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{}", &c[..40]);
        assert!(body.is_empty());
    }
    assert_eq!(app.lookups(), 0);
}

#[test]
fn extraction_is_typed() {
    let jar = SessionCookie::default();
    let mut h = HeaderMap::new();
    assert_eq!(jar.extract(&h).unwrap().map(|c| c.kind()), None);
    h.insert(
        header::COOKIE,
        HeaderValue::from_bytes(b"a=\xff\xfe; __Host-strongroom-session=ses_abc").unwrap(),
    );
    // Non-UTF-8 bytes in another cookie are skipped, not a failure.
    let c = jar.extract(&h).unwrap().unwrap();
    assert_eq!(c.kind(), CredentialKind::SessionCookie);
    assert_eq!(c.expose_secret(), "ses_abc");
    h.insert(
        header::COOKIE,
        HeaderValue::from_bytes(b"__Host-strongroom-session=ses_\xff").unwrap(),
    );
    assert_eq!(
        jar.extract(&h).unwrap_err(),
        ExtractError::Malformed { header: "cookie" }
    );
    // Names are case-sensitive: another name is another cookie.
    h.insert(
        header::COOKIE,
        HeaderValue::from_static("__host-strongroom-session=ses_abc"),
    );
    assert!(jar.extract(&h).unwrap().is_none());
    // A configured name.
    let custom = SessionCookie::default().named("__Host-app").unwrap();
    h.insert(header::COOKIE, HeaderValue::from_static("__Host-app=ses_x"));
    assert_eq!(
        custom.extract(&h).unwrap().unwrap().expose_secret(),
        "ses_x"
    );
    assert!(jar.extract(&h).unwrap().is_none());
    assert!(SessionCookie::default().named("app-session").is_err());
}

#[tokio::test]
async fn set_and_clear_cookie_values() {
    let app = app(true, Challenge::default());
    let store = app.store.clone();
    let user = User::new("carol", "carol@example.com", None, 1);
    store.create_user(&user).await.unwrap();
    let token = app.sessions.issue(&user).await.unwrap();
    let jar = SessionCookie::new(Duration::from_secs(3600));
    let set = jar.set_cookie(&token).unwrap();
    assert!(set.is_sensitive());
    assert!(!format!("{set:?}").contains(token.expose_secret()));
    assert_eq!(
        set.to_str().unwrap(),
        format!(
            "__Host-strongroom-session={}; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax",
            token.expose_secret()
        )
    );
    let strict = jar.clone().same_site(SameSite::Strict);
    assert!(
        strict
            .set_cookie(&token)
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("; SameSite=Strict")
    );
    assert!(
        !set.to_str()
            .unwrap()
            .to_ascii_lowercase()
            .contains("domain")
    );
    assert_eq!(
        jar.clear_cookie(),
        "__Host-strongroom-session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"
    );
    // What the browser sends back after set_cookie resolves the session.
    let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
    let (s, _, body) = call(&app.router, req(Method::GET, "/me", &[("cookie", &pair)])).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "carol:session"));
}

#[tokio::test]
async fn websocket_handshakes_with_the_cookie_check_the_origin() {
    let app = app(true, Challenge::default());
    let token = app.token("alice").await;
    let c = cookie(&token);
    let upgrade = [("upgrade", "websocket"), ("connection", "upgrade")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut hs: Vec<(&str, &str)> = vec![("cookie", c.as_str())];
        hs.extend_from_slice(&upgrade);
        hs.extend_from_slice(extra);
        hs.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let run = |hs: Vec<(String, String)>| {
        let router = app.router.clone();
        async move {
            let mut b = Request::builder().uri("/ws");
            for (k, v) in &hs {
                b = b.header(k, v);
            }
            call(&router, b.body(Body::empty()).unwrap()).await
        }
    };
    // From the allowed origin: authenticated, with a Recheck that works on the cookie.
    let (s, _, body) = run(with(&[("origin", APP)])).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "alice:session:valid"));
    // Cross-Site WebSocket Hijacking: another origin, or none, is refused.
    let before = app.lookups();
    for extra in [
        &[("origin", EVIL)][..],
        &[][..],
        &[("origin", "null")][..],
        &[("sec-fetch-site", "same-origin")][..],
    ] {
        let (s, _, body) = run(with(extra)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{extra:?}");
        assert_eq!(body, r#"{"error":"csrf"}"#);
    }
    assert_eq!(app.lookups(), before);
    // The ?token= parameter is explicit and needs no origin.
    let uri = format!("/ws?token={token}");
    let (s, _, body) = call(
        &app.router,
        req(
            Method::GET,
            &uri,
            &[("upgrade", "websocket"), ("origin", EVIL)],
        ),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "alice:session:valid"));
    // Plain `AuthLayer::new` routes check a cookie WebSocket handshake too.
    let mut hs = vec![("cookie", c.as_str()), ("origin", EVIL)];
    hs.extend_from_slice(&upgrade);
    let (s, _, body) = call(&app.router, req(Method::GET, "/me", &hs)).await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::FORBIDDEN, r#"{"error":"csrf"}"#)
    );
}

#[tokio::test]
async fn rfc6750_answers_only_when_on() {
    let off = app(true, Challenge::default());
    let on = app(true, Challenge::rfc6750());
    let realm = app(false, Challenge::rfc6750().realm("strongroom").unwrap());
    let expired = [(
        "authorization",
        "Bearer ses_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )];
    // Off: 401 Bearer when missing, 403 without a challenge when refused.
    let (s, h, _) = call(&off.router, req(Method::GET, "/me", &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    let (s, h, _) = call(&off.router, req(Method::GET, "/me", &expired)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get(header::WWW_AUTHENTICATE).is_none());
    // On: 401 Bearer when missing, 401 invalid_token when refused.
    let (s, h, _) = call(&on.router, req(Method::GET, "/me", &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    for hs in [
        &expired[..],
        &[("authorization", "Bearer unknown")][..],
        &[("cookie", "__Host-strongroom-session=ses_gone")][..],
    ] {
        let (s, h, body) = call(&on.router, req(Method::GET, "/me", hs)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{hs:?}");
        assert_eq!(
            h.get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer error="invalid_token""#
        );
        assert!(body.is_empty());
    }
    // CSRF stays 403 with the option on.
    let token = on.token("alice").await;
    let (s, h, _) = call(
        &on.router,
        req(
            Method::POST,
            "/me",
            &[("cookie", &cookie(&token)), ("origin", EVIL)],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.get(header::WWW_AUTHENTICATE).is_none());
    // With a realm.
    let (_, h, _) = call(&realm.router, req(Method::GET, "/me", &[])).await;
    assert_eq!(
        h.get(header::WWW_AUTHENTICATE).unwrap(),
        r#"Bearer realm="strongroom""#
    );
    let (s, h, _) = call(&realm.router, req(Method::GET, "/me", &expired)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.get(header::WWW_AUTHENTICATE).unwrap(),
        r#"Bearer realm="strongroom", error="invalid_token""#
    );
    for bad in ["", "a\"b", "a\\b", "caf\u{e9}", &"r".repeat(129)] {
        assert!(Challenge::rfc6750().realm(bad).is_err(), "{bad:?}");
    }
}

/// A session store that always fails.
#[derive(Debug)]
struct DownStore;

fn down<T>() -> Result<T, auth_core::StoreError> {
    Err(auth_core::StoreError::Backend("down".into()))
}

#[async_trait::async_trait]
impl auth_core::SessionStore for DownStore {
    async fn insert_session(
        &self,
        _: &auth_core::SessionRecord,
    ) -> Result<(), auth_core::StoreError> {
        down()
    }
    fn session_by_digest(
        &self,
        _: &[u8; 32],
    ) -> auth_core::StoreFuture<'_, Option<auth_core::user::WithUser<auth_core::SessionRecord>>>
    {
        auth_core::StoreFuture::ready(down())
    }
    async fn delete_session_by_digest(&self, _: &[u8; 32]) -> Result<bool, auth_core::StoreError> {
        down()
    }
    async fn delete_session(&self, _: &str, _: &str) -> Result<bool, auth_core::StoreError> {
        down()
    }
    async fn delete_user_sessions(&self, _: &str) -> Result<u64, auth_core::StoreError> {
        down()
    }
    async fn delete_expired_sessions(&self, _: i64) -> Result<u64, auth_core::StoreError> {
        down()
    }
    async fn user_sessions(
        &self,
        _: &str,
    ) -> Result<Vec<auth_core::SessionRecord>, auth_core::StoreError> {
        down()
    }
}

#[tokio::test]
async fn every_503_carries_retry_after() {
    for challenge in [Challenge::default(), Challenge::rfc6750()] {
        let sessions = Sessions::new(Arc::new(DownStore), SessionConfig::default());
        let chain = Chain::builder().resolver(sessions).build();
        let router = Router::new()
            .route("/me", post(me).route_layer(Requires::Interactive))
            .route_layer(
                AuthLayer::new(chain)
                    .with_challenge(challenge)
                    .with_session_cookie(SessionCookie::default(), CsrfGuard::default()),
            );
        let token = format!("ses_{}", "A".repeat(43));
        let bearer = format!("Bearer {token}");
        let c = cookie(&token);
        for hs in [
            vec![("authorization", bearer.as_str())],
            vec![("cookie", c.as_str()), ("sec-fetch-site", "same-origin")],
        ] {
            let (s, h, body) = call(&router, req(Method::POST, "/me", &hs)).await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                h.get(header::RETRY_AFTER).unwrap(),
                RETRY_AFTER_SECS.to_string().as_str()
            );
            assert!(body.is_empty());
        }
    }
    // The free function too.
    let r = auth_core::http::refusal_response::<String>(&auth_core::Outcome::Unavailable(
        auth_core::Refusal::new("x.y"),
    ))
    .unwrap();
    assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "5");
    let r = auth_core::http::refusal_response::<String>(&auth_core::Outcome::Missing).unwrap();
    assert!(r.headers().get(header::RETRY_AFTER).is_none());
}

#[test]
fn guard_checks_directly() {
    let g = CsrfGuard::new([APP]).unwrap();
    let mut h = HeaderMap::new();
    assert!(g.check(&Method::GET, &h).is_ok());
    assert_eq!(
        g.check(&Method::POST, &h).unwrap_err().code(),
        "csrf.no_origin"
    );
    h.insert("origin", HeaderValue::from_static(EVIL));
    assert_eq!(
        g.check(&Method::POST, &h).unwrap_err().code(),
        "csrf.origin"
    );
    h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    assert_eq!(
        g.check(&Method::POST, &h).unwrap_err().code(),
        "csrf.cross_site"
    );
    h.insert("origin", HeaderValue::from_static(APP));
    assert!(g.check(&Method::POST, &h).is_ok());
    // An extension method is state-changing.
    let purge = Method::from_bytes(b"PURGE").unwrap();
    h.remove("origin");
    assert!(g.check(&purge, &h).is_err());
    assert_eq!(g.check_websocket(&h).unwrap_err().code(), "csrf.ws_origin");
}
