//! Known-answer vectors: fixed tokens against a fixed (pinned) JWKS, no network.
//!
//! `tests/data/jwt_jwks.json` holds the public keys (RSA `kat-rsa-1`, P-256 `kat-ec-1`);
//! `jwt_vectors_pass.json` tokens must verify to the listed identity, and every
//! `jwt_vectors_fail.json` token must be refused with the listed reason code. The tokens
//! were issued in 2020 and expire in 2100; the private keys were thrown away after
//! signing. Such a lifetime is far beyond the default maximum (24 h), so these tests
//! raise it through `danger::allow_long_lived_tokens`, and one test checks that the
//! default refuses every pass vector for its lifetime.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_core::sso::{Algorithm, IssuerConfig, IssuerConfigBuilder, Reason, SsoVerifier, danger};
use serde_json::{Value, json};

const JWKS: &str = include_str!("data/jwt_jwks.json");
const PASS: &str = include_str!("data/jwt_vectors_pass.json");
const FAIL: &str = include_str!("data/jwt_vectors_fail.json");

/// A century: enough for the vectors' 2020-2100 lifetime.
const CENTURY: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

fn issuer(doc: &Value, jwks: &str) -> IssuerConfigBuilder {
    IssuerConfig::pinned(doc["issuer"].as_str().unwrap(), jwks)
        .audience(doc["audience"].as_str().unwrap())
        .algorithms([Algorithm::RS256, Algorithm::ES256])
}

fn build(issuer: IssuerConfigBuilder) -> SsoVerifier {
    SsoVerifier::builder()
        .issuer(issuer.build().unwrap())
        .build()
        .unwrap()
}

fn verifier(doc: &Value) -> SsoVerifier {
    build(danger::allow_long_lived_tokens(issuer(doc, JWKS), CENTURY))
}

#[tokio::test]
async fn pass_vectors_verify_to_their_identity() {
    let doc: Value = serde_json::from_str(PASS).unwrap();
    let v = verifier(&doc);
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for case in vectors {
        let name = case["name"].as_str().unwrap();
        let id = v
            .verify(case["token"].as_str().unwrap())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(id.issuer(), doc["issuer"].as_str().unwrap(), "{name}");
        assert_eq!(id.subject(), case["sub"].as_str().unwrap(), "{name}");
        assert_eq!(id.email(), case["email"].as_str(), "{name}");
        assert_eq!(
            id.email_verified(),
            case["email_verified"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(id.expires_at(), case["exp"].as_i64().unwrap(), "{name}");
    }
}

#[tokio::test]
async fn fail_vectors_are_refused_with_their_reason() {
    let doc: Value = serde_json::from_str(FAIL).unwrap();
    let v = verifier(&doc);
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 20);
    for case in vectors {
        let name = case["name"].as_str().unwrap();
        let err = v
            .verify(case["token"].as_str().unwrap())
            .await
            .expect_err(name);
        assert!(!err.is_unavailable(), "{name}");
        assert_eq!(
            err.reason().code(),
            case["reason"].as_str().unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn default_lifetime_cap_refuses_the_century_long_vectors() {
    let doc: Value = serde_json::from_str(PASS).unwrap();
    let v = build(issuer(&doc, JWKS));
    for case in doc["vectors"].as_array().unwrap() {
        let err = v.verify(case["token"].as_str().unwrap()).await.unwrap_err();
        assert_eq!(err.reason(), Reason::LifetimeTooLong, "{}", case["name"]);
    }
}

#[tokio::test]
async fn token_without_kid_is_refused_when_two_keys_fit() {
    let doc: Value = serde_json::from_str(PASS).unwrap();
    let case = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with("no kid"))
        .unwrap();
    // The same RSA key published twice under two kids: two keys fit RS256, so a token
    // without kid cannot say which one it means.
    let mut jwks: Value = serde_json::from_str(JWKS).unwrap();
    let keys = jwks["keys"].as_array_mut().unwrap();
    let mut copy = keys.iter().find(|k| k["kty"] == "RSA").unwrap().clone();
    copy["kid"] = json!("kat-rsa-1-copy");
    keys.push(copy);
    let v = build(danger::allow_long_lived_tokens(
        issuer(&doc, &jwks.to_string()),
        CENTURY,
    ));
    let err = v.verify(case["token"].as_str().unwrap()).await.unwrap_err();
    assert_eq!(err.reason(), Reason::KidMissing);
}
