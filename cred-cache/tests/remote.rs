//! The remote vault source against a real HTTP server on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![cfg(feature = "remote")]

use crate::common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{ck, key, z};
use cred_cache::remote::RemoteVaultSource;
use cred_cache::{ConfigError, CredCache, CredentialSource, FetchError, Level, danger};

const SECRET: &str = "internal-secret-0123456789";

#[derive(Default)]
struct Seen {
    hits: AtomicU64,
    bodies: Mutex<Vec<serde_json::Value>>,
    chunks_sent: AtomicU64,
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn credential(id: &str, read_only: bool) -> serde_json::Value {
    serde_json::json!({
        "credential_id": id, "api_key": format!("AK-{id}"), "secret": "sk-value",
        "passphrase": "pp", "read_only": read_only,
    })
}

async fn vault(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    if headers
        .get("x-internal-secret")
        .and_then(|v| v.to_str().ok())
        != Some(SECRET)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    seen.bodies.lock().unwrap().push(body.clone());
    let account = body["account_id"].as_str().unwrap_or_default().to_owned();
    let want = body["want"].as_str().unwrap_or_default();
    match account.as_str() {
        "acct-ok" => json(StatusCode::OK, credential(&account, false)),
        "acct-ro" => json(StatusCode::OK, credential(&account, true)),
        "acct-ro-server-checks" if want == "trade" => StatusCode::FORBIDDEN.into_response(),
        "acct-missing" => StatusCode::NOT_FOUND.into_response(),
        "acct-other" => json(StatusCode::OK, credential("acct-ok", false)),
        "acct-text" => (StatusCode::OK, credential(&account, false).to_string()).into_response(),
        "acct-redirect" => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "/vault")],
        )
            .into_response(),
        "acct-error" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "acct-slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json(StatusCode::OK, credential(&account, false))
        }
        "acct-big-declared" => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            vec![b' '; 100_000],
        )
            .into_response(),
        "acct-endless" => {
            let seen = Arc::clone(&seen);
            let stream = futures::stream::repeat_with(move || {
                seen.chunks_sent.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(Bytes::from_static(&[b' '; 1024]))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn server() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/vault", post(vault))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/vault"), seen)
}

fn source(url: &str) -> RemoteVaultSource {
    danger::allow_plain_http(RemoteVaultSource::builder(url))
        .internal_secret(z(SECRET))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test]
async fn fetches_a_credential_with_the_documented_request() {
    let (url, seen) = server().await;
    let source = source(&url);
    let c = source
        .fetch(&ck("user-7", "acct-ok", Level::Trade))
        .await
        .unwrap();
    assert_eq!(c.expose_api_key(), "AK-acct-ok");
    assert_eq!(c.expose_secret(), "sk-value");
    assert_eq!(c.expose_passphrase(), Some("pp"));
    assert!(!c.is_read_only());
    assert_eq!(
        seen.bodies.lock().unwrap()[0],
        serde_json::json!({"account_id": "acct-ok", "user_id": "user-7", "want": "trade"})
    );
}

#[tokio::test]
async fn no_secret_configured_is_unavailable_and_the_rest_keeps_working() {
    let (url, seen) = server().await;
    let unconfigured = danger::allow_plain_http(RemoteVaultSource::builder(&url))
        .build()
        .unwrap();
    assert!(!unconfigured.is_configured());
    let remote_cache = CredCache::builder(Arc::new(unconfigured)).build().unwrap();
    let e = remote_cache
        .get_or_fetch(key("u", "acct-ok", Level::Read), Level::Read)
        .await
        .unwrap_err();
    assert_eq!(
        (e.clone(), e.status().as_u16()),
        (FetchError::Unavailable, 503)
    );
    assert_eq!(
        seen.hits.load(Ordering::SeqCst),
        0,
        "no request without a secret"
    );
    // Another cache (another source) in the same service is unaffected.
    let other = CredCache::builder(common::TestSource::new(Duration::ZERO))
        .build()
        .unwrap();
    assert!(
        other
            .get_or_fetch(key("u", "acct-ok", Level::Read), Level::Read)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn trade_on_a_read_only_response_is_refused() {
    let (url, _) = server().await;
    let source = source(&url);
    assert!(
        source
            .fetch(&ck("u", "acct-ro", Level::Read))
            .await
            .unwrap()
            .is_read_only()
    );
    assert_eq!(
        source
            .fetch(&ck("u", "acct-ro", Level::Trade))
            .await
            .unwrap_err(),
        FetchError::Refused
    );
    assert_eq!(
        source
            .fetch(&ck("u", "acct-ro-server-checks", Level::Trade))
            .await
            .unwrap_err(),
        FetchError::Refused
    );
}

#[tokio::test]
async fn statuses_map_to_typed_errors() {
    let (url, _) = server().await;
    let source = source(&url);
    let fetch = |account: &'static str| {
        let source = &source;
        async move {
            source
                .fetch(&ck("u", account, Level::Read))
                .await
                .unwrap_err()
        }
    };
    assert_eq!(fetch("acct-missing").await, FetchError::NotFound);
    assert_eq!(fetch("acct-error").await, FetchError::Backend);
    assert_eq!(
        fetch("acct-redirect").await,
        FetchError::Backend,
        "redirects are not followed"
    );
    assert_eq!(fetch("acct-text").await, FetchError::InvalidResponse);
    assert_eq!(fetch("acct-other").await, FetchError::InvalidResponse);
    // Wrong secret: the server answers 401.
    let wrong = danger::allow_plain_http(RemoteVaultSource::builder(&url))
        .internal_secret(z("another-secret-0123456789"))
        .build()
        .unwrap();
    assert_eq!(
        wrong
            .fetch(&ck("u", "acct-ok", Level::Read))
            .await
            .unwrap_err(),
        FetchError::Backend
    );
}

#[tokio::test]
async fn the_timeout_bounds_a_slow_vault() {
    let (url, _) = server().await;
    let source = danger::allow_plain_http(RemoteVaultSource::builder(&url))
        .internal_secret(z(SECRET))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = source
        .fetch(&ck("u", "acct-slow", Level::Read))
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::Backend);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_size_cap_stops_reading() {
    let (url, seen) = server().await;
    let source = danger::allow_plain_http(RemoteVaultSource::builder(&url))
        .internal_secret(z(SECRET))
        .timeout(Duration::from_secs(10))
        .max_response_bytes(8 * 1024)
        .build()
        .unwrap();
    // Declared too large: refused before reading.
    assert_eq!(
        source
            .fetch(&ck("u", "acct-big-declared", Level::Read))
            .await
            .unwrap_err(),
        FetchError::InvalidResponse
    );
    // Endless body: refused once past the cap, long before the timeout.
    let started = Instant::now();
    assert_eq!(
        source
            .fetch(&ck("u", "acct-endless", Level::Read))
            .await
            .unwrap_err(),
        FetchError::InvalidResponse
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Without the cap this stream never ends; with it the server produced a
    // bounded number of chunks (socket buffers account for the excess).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(seen.chunks_sent.load(Ordering::SeqCst) < 10_000);
}

#[tokio::test]
async fn configuration_is_checked() {
    let http = RemoteVaultSource::builder("http://127.0.0.1:1/vault").internal_secret(z(SECRET));
    assert_eq!(http.build().unwrap_err(), ConfigError::InsecureEndpoint);
    let b = |url: &str| RemoteVaultSource::builder(url).internal_secret(z(SECRET));
    assert!(matches!(
        b("ftp://vault.internal/").build().unwrap_err(),
        ConfigError::InvalidField {
            field: "endpoint",
            ..
        }
    ));
    assert!(matches!(
        b("not a url").build().unwrap_err(),
        ConfigError::InvalidField {
            field: "endpoint",
            ..
        }
    ));
    assert!(matches!(
        b("https://user:pw@vault.internal/").build().unwrap_err(),
        ConfigError::InvalidField {
            field: "endpoint",
            ..
        }
    ));
    assert!(matches!(
        RemoteVaultSource::builder("https://vault.internal/")
            .internal_secret(z("short"))
            .build(),
        Err(ConfigError::InvalidField {
            field: "internal_secret",
            ..
        })
    ));
    assert!(matches!(
        b("https://vault.internal/")
            .timeout(Duration::from_secs(120))
            .build(),
        Err(ConfigError::InvalidField {
            field: "timeout",
            ..
        })
    ));
    assert!(matches!(
        b("https://vault.internal/").max_response_bytes(0).build(),
        Err(ConfigError::InvalidField {
            field: "max_response_bytes",
            ..
        })
    ));
    assert!(matches!(
        b("https://vault.internal/")
            .root_certificates_pem(b"garbage")
            .build(),
        Err(ConfigError::InvalidField {
            field: "root_certificates_pem",
            ..
        })
    ));
    assert!(
        b("https://vault.internal/credentials")
            .build()
            .unwrap()
            .is_configured()
    );
}

/// The https client refuses a plain-http server even if the URL was https
/// (no downgrade): pointing https at our plain server fails the handshake.
#[tokio::test]
async fn https_endpoint_does_not_fall_back_to_plain_http() {
    let (url, seen) = server().await;
    let https = url.replace("http://", "https://");
    let source = RemoteVaultSource::builder(&https)
        .internal_secret(z(SECRET))
        .build()
        .unwrap();
    assert_eq!(
        source
            .fetch(&ck("u", "acct-ok", Level::Read))
            .await
            .unwrap_err(),
        FetchError::Backend
    );
    assert_eq!(seen.hits.load(Ordering::SeqCst), 0);
}
