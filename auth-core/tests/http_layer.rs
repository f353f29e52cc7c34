//! The tower layer, the axum extractor and the one outcome-to-HTTP mapping.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "axum")]

use std::sync::Arc;

use auth_core::http::{
    AuthLayer, Authenticated, CLOSE_CREDENTIAL_ENDED, CLOSE_TRY_AGAIN_LATER, Recheck,
    refusal_response,
};
use auth_core::{
    ApiKeys, Chain, InternalSecretResolver, MemoryStore, Outcome, Refusal, Requires, Scope,
    SessionConfig, Sessions, StaticTokenResolver,
};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use tower::ServiceExt as _;

const STATIC: &str = "static-token-0123456789abcdef0123456789abcdef";

async fn me(Authenticated(p): Authenticated) -> String {
    format!("{}:{}", p.user_id(), p.method())
}

/// Like `me`, and re-checks the credential kept for the socket.
async fn ws(Authenticated(p): Authenticated, recheck: Recheck) -> String {
    assert_eq!(recheck.principal(), &p);
    let now = match recheck.check().await {
        Ok(()) => "valid",
        Err(_) => "ended",
    };
    format!("{}:{}:{now}", p.user_id(), p.method())
}

struct App {
    router: Router,
    sessions: Sessions,
    keys: ApiKeys,
    store: Arc<MemoryStore>,
}

impl App {
    /// The user `id`, created if missing (credentials resolve only for existing users).
    async fn user(&self, id: &str) -> auth_core::User {
        use auth_core::UserStore as _;
        if let Some(u) = self.store.user_by_id(id).await.unwrap() {
            return u;
        }
        let u = auth_core::User::new(id, format!("{id}@example.com"), None, 1);
        self.store.create_user(&u).await.unwrap();
        u
    }
}

fn app(internal_secret: Option<&str>) -> App {
    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let keys = ApiKeys::new(store.clone());
    let chain = Chain::builder()
        .resolver(StaticTokenResolver::new(STATIC, "bootstrap").unwrap())
        .resolver(sessions.clone())
        .resolver(keys.clone())
        .build();
    let internal = Chain::builder()
        .resolver(InternalSecretResolver::new(internal_secret).unwrap())
        .build();
    let router = Router::new()
        .route("/me", get(me).route_layer(Requires::Scope(Scope::Read)))
        .route("/trade", get(me).route_layer(Requires::Scope(Scope::Trade)))
        .route("/keys", get(me).route_layer(Requires::Interactive))
        .route("/undeclared", get(me))
        .route_layer(AuthLayer::new(chain.clone()))
        .merge(
            Router::new()
                .route("/ws", get(ws).route_layer(Requires::Scope(Scope::Read)))
                .route_layer(AuthLayer::websocket(chain)),
        )
        .merge(
            Router::new()
                .route("/internal/me", get(me))
                .route_layer(AuthLayer::new(internal)),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/unguarded", get(me));
    App {
        router,
        sessions,
        keys,
        store,
    }
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, String) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get_req(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn statuses_and_bodies() {
    let app = app(None);
    // 401 with WWW-Authenticate and an empty body.
    let (s, h, body) = call(&app.router, get_req("/me", &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    assert!(body.is_empty());
    // 403 for any refused credential, same empty body whatever the reason.
    let forged_session = format!("Bearer ses_{}", "A".repeat(43));
    let forged_key = format!("ak_{}_{}", "0".repeat(32), "A".repeat(43));
    let reasons = [
        vec![("authorization", "Bearer unknown-token")],
        vec![("authorization", forged_session.as_str())],
        vec![("x-api-key", forged_key.as_str())],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer a"), ("x-api-key", "b")],
    ];
    for hs in reasons {
        let (s, h, body) = call(&app.router, get_req("/me", &hs)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{hs:?}");
        assert!(h.get(header::WWW_AUTHENTICATE).is_none());
        assert!(body.is_empty(), "{hs:?}: {body}");
    }
    // Static token, session and API key all reach the handler with their principal.
    let bearer = format!("Bearer {STATIC}");
    let (s, _, body) = call(&app.router, get_req("/me", &[("authorization", &bearer)])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, "bootstrap:static_token");
    let t = app.sessions.issue(&app.user("alice").await).await.unwrap();
    let bearer = format!("Bearer {}", t.expose_secret());
    let (s, _, body) = call(&app.router, get_req("/me", &[("authorization", &bearer)])).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "alice:session"));
    app.user("bob").await;
    let k = app.keys.create("bob", "bot", vec![]).await.unwrap();
    let (s, _, body) = call(
        &app.router,
        get_req("/me", &[("x-api-key", k.expose_secret())]),
    )
    .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "bob:api_key"));
    // Public route unaffected.
    let (s, _, _) = call(&app.router, get_req("/health", &[])).await;
    assert_eq!(s, StatusCode::OK);
    // A route asking for a principal without the layer fails closed.
    let (s, _, _) = call(
        &app.router,
        get_req("/unguarded", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn websocket_handshake_token_query() {
    let app = app(None);
    let t = app.sessions.issue(&app.user("carol").await).await.unwrap();
    let uri = format!("/ws?token={}", t.expose_secret());
    let ws = [("upgrade", "websocket"), ("connection", "upgrade")];
    let (s, _, body) = call(&app.router, get_req(&uri, &ws)).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "carol:session:valid"));
    // Only the route that opted in reads it: elsewhere, even on a handshake, the query
    // parameter is not a credential.
    for path in ["/me", "/undeclared", "/keys"] {
        let other = format!("{path}?token={}", t.expose_secret());
        let (s, _, _) = call(&app.router, get_req(&other, &ws)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Without the upgrade header the query parameter is not a credential.
    let (s, _, _) = call(&app.router, get_req(&uri, &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Same outcomes on handshakes.
    let (s, _, _) = call(&app.router, get_req("/ws", &ws)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&app.router, get_req("/ws?token=bogus", &ws)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn internal_routes() {
    const SECRET: &str = "internal-secret-0123456789abcdef0123456789";
    // Unconfigured: internal routes 503, the rest works.
    let app_off = app(None);
    for hs in [vec![], vec![("x-internal-secret", SECRET)]] {
        let (s, _, body) = call(&app_off.router, get_req("/internal/me", &hs)).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.is_empty());
    }
    let bearer = format!("Bearer {STATIC}");
    let (s, _, _) = call(
        &app_off.router,
        get_req("/me", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // Configured.
    let app_on = app(Some(SECRET));
    let (s, _, body) = call(
        &app_on.router,
        get_req("/internal/me", &[("x-internal-secret", SECRET)]),
    )
    .await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::OK, "internal-service:internal_service")
    );
    let (s, _, _) = call(
        &app_on.router,
        get_req("/internal/me", &[("x-internal-secret", "wrong")]),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A user credential does not open internal routes.
    let (s, _, _) = call(
        &app_on.router,
        get_req("/internal/me", &[("authorization", &bearer)]),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // And the internal secret does not open user routes.
    let (s, _, _) = call(
        &app_on.router,
        get_req("/me", &[("x-internal-secret", SECRET)]),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[test]
fn one_mapping() {
    let code = Refusal::new("x.y");
    assert_eq!(Outcome::Missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(Outcome::Invalid(code).status(), StatusCode::FORBIDDEN);
    assert_eq!(
        Outcome::Unavailable(code).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let p = auth_core::Principal::new("u", auth_core::AuthMethod::Session);
    assert_eq!(Outcome::Authenticated(p.clone()).status(), StatusCode::OK);
    assert!(refusal_response::<String>(&Outcome::Authenticated(p)).is_none());
    let r = refusal_response::<String>(&Outcome::Unavailable(code)).unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body().is_empty());
    assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
    // The code rides in the extensions, for an outer middleware (metrics, audit).
    assert_eq!(r.extensions().get::<Refusal>(), Some(&code));
    let missing = refusal_response::<String>(&Outcome::Missing).unwrap();
    assert_eq!(
        missing.extensions().get::<Refusal>().map(Refusal::code),
        Some("credential.missing")
    );
}

/// A store that always fails: the layer answers 503, never 200 and never 403. With
/// `waits`, the lookup fails only after being pending once (as a database would).
#[derive(Debug)]
struct DownStore {
    waits: bool,
}

#[async_trait::async_trait]
impl auth_core::SessionStore for DownStore {
    async fn insert_session(
        &self,
        _: &auth_core::SessionRecord,
    ) -> Result<(), auth_core::StoreError> {
        Err(auth_core::StoreError::Backend("down".into()))
    }
    fn session_by_digest(
        &self,
        _: &[u8; 32],
    ) -> auth_core::StoreFuture<'_, Option<auth_core::user::WithUser<auth_core::SessionRecord>>>
    {
        let down = || Err(auth_core::StoreError::Backend("down".into()));
        if self.waits {
            auth_core::StoreFuture::boxed(async move {
                tokio::task::yield_now().await;
                down()
            })
        } else {
            auth_core::StoreFuture::ready(down())
        }
    }
    async fn delete_session_by_digest(&self, _: &[u8; 32]) -> Result<bool, auth_core::StoreError> {
        Err(auth_core::StoreError::Backend("down".into()))
    }
    async fn delete_session(&self, _: &str, _: &str) -> Result<bool, auth_core::StoreError> {
        Err(auth_core::StoreError::Backend("down".into()))
    }
    async fn delete_user_sessions(&self, _: &str) -> Result<u64, auth_core::StoreError> {
        Err(auth_core::StoreError::Backend("down".into()))
    }
    async fn delete_expired_sessions(&self, _: i64) -> Result<u64, auth_core::StoreError> {
        Err(auth_core::StoreError::Backend("down".into()))
    }
    async fn user_sessions(
        &self,
        _: &str,
    ) -> Result<Vec<auth_core::SessionRecord>, auth_core::StoreError> {
        Err(auth_core::StoreError::Backend("down".into()))
    }
}

#[tokio::test]
async fn store_outage_is_503() {
    for waits in [false, true] {
        let sessions = Sessions::new(Arc::new(DownStore { waits }), SessionConfig::default());
        let chain = Chain::builder()
            .resolver(StaticTokenResolver::new(STATIC, "bootstrap").unwrap())
            .resolver(sessions)
            .build();
        let router = Router::new()
            .route("/me", get(me))
            .layer(AuthLayer::new(chain));
        let token = format!("Bearer ses_{}", "A".repeat(43));
        let (s, _, body) = call(&router, get_req("/me", &[("authorization", &token)])).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.is_empty());
        // The static token does not touch the store and still works.
        let bearer = format!("Bearer {STATIC}");
        let (s, _, _) = call(&router, get_req("/me", &[("authorization", &bearer)])).await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn declared_requirements_hold_for_scoped_keys_and_undeclared_routes_refuse_keys() {
    let app = app(None);
    app.user("bob").await;
    let read = app
        .keys
        .create("bob", "read", vec!["read".into()])
        .await
        .unwrap();
    let full = app.keys.create("bob", "full", vec![]).await.unwrap();
    let session = app.sessions.issue(&app.user("alice").await).await.unwrap();
    let session = format!("Bearer {}", session.expose_secret());
    let static_token = format!("Bearer {STATIC}");
    let insufficient = r#"{"error":"insufficient_scope"}"#;
    let interactive = r#"{"error":"interactive_session_required"}"#;
    let cases: [(&str, &str, &str, StatusCode, &str); 16] = [
        (
            "x-api-key",
            read.expose_secret(),
            "/me",
            StatusCode::OK,
            "bob:api_key",
        ),
        (
            "x-api-key",
            read.expose_secret(),
            "/trade",
            StatusCode::FORBIDDEN,
            insufficient,
        ),
        (
            "x-api-key",
            read.expose_secret(),
            "/keys",
            StatusCode::FORBIDDEN,
            interactive,
        ),
        (
            "x-api-key",
            read.expose_secret(),
            "/undeclared",
            StatusCode::FORBIDDEN,
            insufficient,
        ),
        (
            "x-api-key",
            full.expose_secret(),
            "/me",
            StatusCode::OK,
            "bob:api_key",
        ),
        (
            "x-api-key",
            full.expose_secret(),
            "/trade",
            StatusCode::OK,
            "bob:api_key",
        ),
        (
            "x-api-key",
            full.expose_secret(),
            "/keys",
            StatusCode::FORBIDDEN,
            interactive,
        ),
        (
            "x-api-key",
            full.expose_secret(),
            "/undeclared",
            StatusCode::FORBIDDEN,
            insufficient,
        ),
        (
            "authorization",
            &session,
            "/me",
            StatusCode::OK,
            "alice:session",
        ),
        (
            "authorization",
            &session,
            "/trade",
            StatusCode::OK,
            "alice:session",
        ),
        (
            "authorization",
            &session,
            "/keys",
            StatusCode::OK,
            "alice:session",
        ),
        (
            "authorization",
            &session,
            "/undeclared",
            StatusCode::OK,
            "alice:session",
        ),
        (
            "authorization",
            &static_token,
            "/me",
            StatusCode::OK,
            "bootstrap:static_token",
        ),
        (
            "authorization",
            &static_token,
            "/trade",
            StatusCode::OK,
            "bootstrap:static_token",
        ),
        (
            "authorization",
            &static_token,
            "/keys",
            StatusCode::FORBIDDEN,
            interactive,
        ),
        (
            "authorization",
            &static_token,
            "/undeclared",
            StatusCode::OK,
            "bootstrap:static_token",
        ),
    ];
    for (name, value, path, want_status, want_body) in cases {
        let (s, h, body) = call(&app.router, get_req(path, &[(name, value)])).await;
        assert_eq!(
            (s, body.as_str()),
            (want_status, want_body),
            "{name} {path}"
        );
        if s == StatusCode::FORBIDDEN {
            assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
            assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
        }
    }
}

#[tokio::test]
async fn unknown_paths_are_404_under_route_layers() {
    for app in [
        app(None),
        app(Some("internal-secret-0123456789abcdef0123456789")),
    ] {
        for path in ["/nope", "/internal/nope", "/me/x"] {
            let (s, _, _) = call(&app.router, get_req(path, &[])).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        }
    }
}

#[tokio::test]
async fn recheck_ends_with_the_credential() {
    let app = app(None);
    let t = app.sessions.issue(&app.user("dave").await).await.unwrap();
    let bearer = format!("Bearer {}", t.expose_secret());
    let ws = [("authorization", bearer.as_str())];
    let (s, _, body) = call(&app.router, get_req("/ws", &ws)).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "dave:session:valid"));

    // Keep the handle of a live request, then end the session behind its back.
    let (tx, rx) = tokio::sync::oneshot::channel::<Recheck>();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    let store = Arc::new(MemoryStore::new());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let chain = Chain::builder().resolver(sessions.clone()).build();
    let grab = Router::new()
        .route(
            "/ws",
            get(move |r: Recheck| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(r);
                }
                async { "ok" }
            })
            .route_layer(Requires::Scope(Scope::Read)),
        )
        .route_layer(AuthLayer::websocket(chain));
    let erin = auth_core::User::new("erin", "erin@example.com", None, 1);
    auth_core::UserStore::create_user(&*store, &erin)
        .await
        .unwrap();
    let t = sessions.issue(&erin).await.unwrap();
    let uri = format!("/ws?token={}", t.expose_secret());
    let upgrade = [("upgrade", "websocket"), ("connection", "upgrade")];
    assert_eq!(call(&grab, get_req(&uri, &upgrade)).await.0, StatusCode::OK);
    let recheck = rx.await.unwrap();
    assert_eq!(recheck.principal().user_id(), "erin");
    assert!(!format!("{recheck:?}").contains(t.expose_secret()));
    assert_eq!(recheck.check().await, Ok(()));
    sessions.revoke("erin", t.session_id()).await.unwrap();
    let ended = recheck.check().await.unwrap_err();
    assert!(matches!(ended, Outcome::Invalid(_)), "{ended:?}");
    assert_eq!(Recheck::close_code(&ended), CLOSE_CREDENTIAL_ENDED);
    assert_eq!(CLOSE_CREDENTIAL_ENDED, 1008);
    assert_eq!(
        Recheck::close_code(&Outcome::Unavailable(Refusal::new("x.y"))),
        CLOSE_TRY_AGAIN_LATER
    );
}
