//! The tower layer, the axum extractor and the one outcome-to-HTTP mapping.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![cfg(feature = "axum")]

use std::sync::Arc;

use auth_core::http::{AuthLayer, Authenticated, refusal_response, status_for};
use auth_core::{
    ApiKeys, Chain, InternalSecretResolver, MemoryStore, Outcome, Refusal, SessionConfig, Sessions,
    StaticTokenResolver,
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
        .route("/me", get(me))
        .route("/ws", get(me))
        .layer(AuthLayer::new(chain))
        .merge(
            Router::new()
                .route("/internal/me", get(me))
                .layer(AuthLayer::new(internal)),
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
    assert_eq!((s, body.as_str()), (StatusCode::OK, "carol:session"));
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
    assert_eq!(
        status_for(&Outcome::Missing),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        status_for(&Outcome::Invalid(code)),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        status_for(&Outcome::Unavailable(code)),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    let p = auth_core::Principal::new("u", auth_core::AuthMethod::Session);
    assert_eq!(status_for(&Outcome::Authenticated(p.clone())), None);
    assert!(refusal_response::<String>(&Outcome::Authenticated(p)).is_none());
    let r = refusal_response::<String>(&Outcome::Unavailable(code)).unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body().is_empty());
    assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
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
