//! `SsoResolver` in the chain: what it claims, what it passes, and how verification and
//! binding outcomes map to `Resolution`s.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use auth_core::sso::{BindError, IssuerConfig, SsoResolver, SsoVerifier, danger};
use auth_core::{
    AuthMethod, Chain, Credential, CredentialKind, Outcome, Refusal, Resolution, Resolver,
};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use sso_common::*;

static K1: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("k1"));

async fn setup(binder: MemoryBinder) -> (JwksServer, SsoResolver, Arc<MemoryBinder>) {
    let server = JwksServer::serving(&[K1.jwk()]).await;
    let verifier = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, server.url("/jwks")))
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let binder = Arc::new(binder);
    let resolver = SsoResolver::new(Arc::new(verifier), binder.clone());
    (server, resolver, binder)
}

fn bearer(token: &str) -> Credential {
    Credential::new(CredentialKind::Bearer, token).unwrap()
}

#[tokio::test]
async fn a_valid_token_resolves_to_the_bound_user() {
    let (_s, r, binder) = setup(MemoryBinder::with(ISS_A, "user-123", "u-1")).await;
    let res = r.resolve(&bearer(&K1.token(&claims(ISS_A)))).await;
    let Resolution::Authenticated(p) = res else {
        panic!("expected authenticated, got {res:?}")
    };
    assert_eq!(p.user_id(), "u-1");
    assert_eq!(p.method(), AuthMethod::Sso);
    assert_eq!(binder.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn non_jwt_credentials_are_passed_on() {
    let (s, r, binder) = setup(MemoryBinder::with(ISS_A, "user-123", "u-1")).await;
    let jwt = K1.token(&claims(ISS_A));
    // Other credential kinds, even JWT-shaped.
    for kind in [CredentialKind::ApiKey, CredentialKind::InternalSecret] {
        if let Ok(cred) = Credential::new(kind, &jwt) {
            assert_eq!(r.resolve(&cred).await, Resolution::Pass, "{kind:?}");
        }
        let cred = Credential::new(kind, "ak_abc.def").unwrap();
        assert_eq!(r.resolve(&cred).await, Resolution::Pass, "{kind:?}");
    }
    // Bearer values that are not three base64url segments: session or static tokens.
    for token in [
        "Xq3v9Zb0mJ8k2fQeR7tYw1uIoP4aSdFgHjKlZxCvBnM",
        "a.b",
        "a.b.c.d",
        "a..c",
        "st_live_0123456789",
        "a.b.c=",
    ] {
        assert_eq!(r.resolve(&bearer(token)).await, Resolution::Pass, "{token}");
    }
    assert_eq!(s.hits(), 0, "a passed credential caused a JWKS fetch");
    assert_eq!(binder.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn refused_tokens_are_invalid_and_never_reach_the_binder() {
    let (_s, r, binder) = setup(MemoryBinder::with(ISS_A, "user-123", "u-1")).await;
    let expired = {
        let mut c = claims(ISS_A);
        c["exp"] = json!(now() - 3600);
        K1.token(&c)
    };
    assert_eq!(
        r.resolve(&bearer(&expired)).await,
        Resolution::Invalid(Refusal::new("jwt.expired"))
    );
    let forged = mint(
        &json!({"alg": "RS256", "kid": "k1"}).to_string(),
        &claims(ISS_A).to_string(),
        |_| vec![1u8; 256],
    );
    assert_eq!(
        r.resolve(&bearer(&forged)).await,
        Resolution::Invalid(Refusal::new("jwt.bad_signature"))
    );
    assert_eq!(binder.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn binder_outcomes_map_to_resolutions() {
    let token = K1.token(&claims(ISS_A));
    // Unknown identity with provisioning off.
    let (_s, r, _b) = setup(MemoryBinder::default()).await;
    assert_eq!(
        r.resolve(&bearer(&token)).await,
        Resolution::Invalid(Refusal::new("sso.provisioning_disabled"))
    );
    // Email bound elsewhere.
    let (_s, r, b) = setup(MemoryBinder::default()).await;
    *b.fail_with.lock().unwrap() = Some(|| BindError::EmailBoundElsewhere);
    assert_eq!(
        r.resolve(&bearer(&token)).await,
        Resolution::Invalid(Refusal::new("sso.email_bound_elsewhere"))
    );
    // Store down: unavailable, never authenticated.
    *b.fail_with.lock().unwrap() = Some(|| BindError::Unavailable("db down".into()));
    assert_eq!(
        r.resolve(&bearer(&token)).await,
        Resolution::Unavailable(Refusal::new("sso.binding_unavailable"))
    );
}

#[tokio::test]
async fn jwks_outage_is_unavailable() {
    let (s, r, _b) = setup(MemoryBinder::with(ISS_A, "user-123", "u-1")).await;
    s.set_mode(Mode::Status(502));
    assert_eq!(
        r.resolve(&bearer(&K1.token(&claims(ISS_A)))).await,
        Resolution::Unavailable(Refusal::new("jwks.unavailable"))
    );
}

#[tokio::test]
async fn through_the_chain_from_headers() {
    let (_s, r, _b) = setup(MemoryBinder::with(ISS_A, "user-123", "u-1")).await;
    let chain = Chain::builder().resolver(r).build();
    let mut headers = HeaderMap::new();
    let value = format!("Bearer {}", K1.token(&claims(ISS_A)));
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&value).unwrap(),
    );
    let outcome = chain.resolve_headers(&headers).await;
    assert_eq!(outcome.principal().unwrap().user_id(), "u-1");
    assert_eq!(outcome.principal().unwrap().method(), AuthMethod::Sso);

    let mut c = claims(ISS_A);
    c["aud"] = json!("someone-else");
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", K1.token(&c))).unwrap(),
    );
    assert_eq!(
        chain.resolve_headers(&headers).await,
        Outcome::Invalid(Refusal::new("jwt.wrong_audience"))
    );
    assert_eq!(
        chain.resolve_headers(&HeaderMap::new()).await,
        Outcome::Missing
    );
}
