//! Instance B trusts instance A as its SSO issuer: A serves its JWKS and discovery
//! document on 127.0.0.1 (axum), B verifies A's access tokens with auth-core's own
//! `SsoVerifier` configured by discovery, unchanged; after A rotates, B picks up the new
//! kid.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use std::sync::Arc;
use std::time::Duration;

use auth_core::sso::{Algorithm, CachePolicy, IssuerConfig, SsoVerifier, danger};
use auth_core::token::{AccessTokenRequest, Issuer, MemorySigningKeyStore, SigningAlgorithm};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const AUD: &str = "trading-api";

async fn jwks(State(issuer): State<Issuer>) -> impl IntoResponse {
    issuer.reload_if_due().await;
    (
        [(header::CONTENT_TYPE, "application/json")],
        issuer.jwks_json(),
    )
}

async fn discovery(State(issuer): State<Issuer>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        issuer.discovery_json(),
    )
}

/// Starts instance A on 127.0.0.1 and returns it with its issuer URL.
async fn start_a(alg: SigningAlgorithm) -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let iss = format!("http://{}", listener.local_addr().unwrap());
    let a = Issuer::builder(iss, AUD)
        .algorithm(alg)
        .build(Arc::new(MemorySigningKeyStore::new()))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(a.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    a
}

fn verifier_b(a: &Issuer, alg: Algorithm) -> SsoVerifier {
    SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::discover(a.issuer()))
                .audience(AUD)
                .algorithms([alg])
                .token_type("at+jwt")
                .cache_policy(CachePolicy::default().cooldown(Duration::from_millis(50)))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn trust(alg: SigningAlgorithm, jwt_alg: Algorithm) {
    let a = start_a(alg).await;
    let b = verifier_b(&a, jwt_alg);
    let req = AccessTokenRequest::new("user-42", 0, ["pwd"], 1_700_000_000);
    let t1 = a.issue(&req).await.unwrap();
    let id = b.verify(t1.expose_secret()).await.unwrap();
    assert_eq!(id.issuer(), a.issuer());
    assert_eq!(id.subject(), "user-42");

    // A rotates: B fetches the JWKS again for the unknown kid and verifies the new
    // token; the old token still verifies (its key is still published).
    let old_kid = t1.kid().to_owned();
    let new_kid = a.rotate().await.unwrap();
    assert_ne!(old_kid, new_kid);
    tokio::time::sleep(Duration::from_millis(60)).await; // past B's refetch cooldown
    let t2 = a.issue(&req).await.unwrap();
    assert_eq!(t2.kid(), new_kid);
    assert_eq!(
        b.verify(t2.expose_secret()).await.unwrap().subject(),
        "user-42"
    );
    assert_eq!(
        b.verify(t1.expose_secret()).await.unwrap().subject(),
        "user-42"
    );
    assert_eq!(b.cached_key_count(a.issuer()), 2);

    // B refuses a tampered token of A.
    let mut forged = t2.expose_secret().to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert!(b.verify(&forged).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_b_trusts_instance_a_eddsa() {
    trust(SigningAlgorithm::EdDsa, Algorithm::EdDSA).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_b_trusts_instance_a_es256() {
    trust(SigningAlgorithm::Es256, Algorithm::ES256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b_refuses_a_token_without_at_jwt_typ_from_a() {
    // B requires typ at+jwt: a token of A's key with another typ is refused, proving the
    // check is on (and A's tokens pass it above).
    let store = MemorySigningKeyStore::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let iss = format!("http://{}", listener.local_addr().unwrap());
    let a = Issuer::builder(iss.clone(), AUD)
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(a.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let b = verifier_b(&a, Algorithm::EdDSA);
    use auth_core::token::SigningKeyStore as _;
    let key = store.signing_keys().await.unwrap().remove(0);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let mut h = jsonwebtoken::Header::new(Algorithm::EdDSA);
    h.kid = Some(key.kid().to_owned());
    h.typ = Some("JWT".to_owned());
    let claims = serde_json::json!({"iss": iss, "sub": "u", "aud": AUD, "exp": now + 60,
        "iat": now, "jti": "j", "amr": ["pwd"], "auth_time": now, "sr_epoch": 0});
    let t = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(key.expose_secret()),
    )
    .unwrap();
    let err = b.verify(&t).await.unwrap_err();
    assert_eq!(err.reason().code(), "jwt.wrong_typ");
}
