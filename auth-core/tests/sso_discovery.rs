//! OpenID Connect discovery against a real HTTP server on 127.0.0.1 (hardening item C14):
//! the JWKS URL comes from `{issuer}/.well-known/openid-configuration`, whose `issuer`
//! must equal the configured issuer exactly. (Plain http here through
//! `danger::allow_plain_http`; the https requirement on `jwks_uri` is tested on the
//! parser, `ProviderMetadata::from_json`, below and in `src/sso/discovery.rs`.)

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::sync::LazyLock;
use std::time::Duration;

use auth_core::sso::{
    CachePolicy, DiscoveryError, IssuerConfig, ProviderMetadata, Reason, SsoVerifier, danger,
};
use serde_json::json;
use sso_common::*;

static KEY: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("d1"));

fn discovering(issuer: &str) -> SsoVerifier {
    SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::discover(issuer))
                .audience(AUD)
                .cache_policy(CachePolicy::default().cooldown(Duration::from_millis(50)))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn jwks_uri_is_taken_from_the_discovery_document() {
    for path in ["", "/realms/main"] {
        let server = JwksServer::serving(&[KEY.jwk()]).await;
        let issuer = format!("{}{path}", server.base());
        server.set_discovery(&json!({
            "issuer": issuer,
            "jwks_uri": server.url("/jwks"),
            "authorization_endpoint": format!("{issuer}/auth"),
            "id_token_signing_alg_values_supported": ["RS256"],
        }));
        let v = discovering(&issuer);
        let id = v.verify(&KEY.token(&claims(&issuer))).await.unwrap();
        assert_eq!(id.issuer(), issuer);
        assert_eq!((server.discovery_hits(), server.hits()), (1, 1), "{path}");
        // Later fetches reuse the discovered URL.
        tokio::time::sleep(Duration::from_millis(80)).await;
        let other = RsaSigner::generate("d-unknown");
        let _ = v.verify(&other.token(&claims(&issuer))).await;
        assert_eq!((server.discovery_hits(), server.hits()), (1, 2), "{path}");
        // A trailing slash on the configured issuer is removed before appending the
        // well-known path (the document's issuer must then carry the slash).
        let slashed = format!("{issuer}/");
        server.set_discovery(&json!({"issuer": slashed, "jwks_uri": server.url("/jwks")}));
        let v = discovering(&slashed);
        v.verify(&KEY.token(&claims(&slashed))).await.unwrap();
    }
}

#[tokio::test]
async fn issuer_mismatch_means_no_keys_and_no_jwks_fetch() {
    let server = JwksServer::serving(&[KEY.jwk()]).await;
    let issuer = format!("{}/realms/main", server.base());
    server.set_attacker_keys(&[KEY.jwk()]);
    for other in [
        format!("{issuer}/"),
        issuer.to_uppercase(),
        issuer.replace("main", "Main"),
        "https://idp-a.test/realms/main".to_owned(),
    ] {
        server.set_discovery(&json!({
            "issuer": other,
            "jwks_uri": server.url("/attacker/jwks"),
        }));
        let v = discovering(&issuer);
        let err = v.verify(&KEY.token(&claims(&issuer))).await.unwrap_err();
        assert!(err.is_unavailable(), "{other}");
        assert_eq!(err.reason(), Reason::JwksUnavailable);
        assert!(err.to_string().contains("unavailable"));
    }
    assert_eq!(server.attacker_hits(), 0);
    assert_eq!(server.hits(), 0);
    assert!(server.discovery_hits() >= 4);
}

#[tokio::test]
async fn failed_discovery_is_retried_after_the_cooldown() {
    let server = JwksServer::serving(&[KEY.jwk()]).await;
    let issuer = server.base();
    let v = discovering(&issuer);
    // No document yet (404), then garbage, then a jwks_uri that is not a URL.
    let token = KEY.token(&claims(&issuer));
    assert!(v.verify(&token).await.unwrap_err().is_unavailable());
    for doc in [
        json!(["not", "an", "object"]),
        json!({"issuer": issuer, "jwks_uri": "ftp://127.0.0.1/jwks"}),
        json!({"issuer": issuer}),
    ] {
        server.set_discovery(&doc);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            v.verify(&token).await.unwrap_err().is_unavailable(),
            "{doc}"
        );
    }
    assert_eq!(server.hits(), 0);
    server.set_discovery(&json!({"issuer": issuer, "jwks_uri": server.url("/jwks")}));
    tokio::time::sleep(Duration::from_millis(80)).await;
    v.verify(&token).await.unwrap();
    assert_eq!(v.prefetch().await, 1);
}

#[test]
fn discovery_document_parser_requires_https_and_the_exact_issuer() {
    let iss = "https://login.example.com/realms/trading";
    let doc = |issuer: &str, jwks: &str| json!({"issuer": issuer, "jwks_uri": jwks}).to_string();
    let ok =
        ProviderMetadata::from_json(doc(iss, &format!("{iss}/certs")).as_bytes(), iss).unwrap();
    assert_eq!(ok.jwks_uri(), format!("{iss}/certs"));
    assert_eq!(
        ProviderMetadata::from_json(doc(iss, "http://login.example.com/certs").as_bytes(), iss),
        Err(DiscoveryError::InsecureJwksUri)
    );
    assert_eq!(
        ProviderMetadata::from_json(
            doc(&format!("{iss}/"), "https://login.example.com/certs").as_bytes(),
            iss
        ),
        Err(DiscoveryError::IssuerMismatch)
    );
    let e = ProviderMetadata::from_json(b"{}", iss).unwrap_err();
    assert_eq!(e, DiscoveryError::MissingField { field: "issuer" });
    assert_eq!(e.code(), "discovery.missing_field");
    assert!(e.to_string().contains("issuer"));
}
