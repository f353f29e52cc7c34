//! Known-answer vectors: fixed tokens against a fixed (pinned) JWKS, no network.
//!
//! `tests/data/jwt_jwks.json` holds the public keys (RSA `kat-rsa-1`, P-256 `kat-ec-1`);
//! `jwt_vectors_pass.json` tokens must verify to the listed identity, and every
//! `jwt_vectors_fail.json` token must be refused with the listed reason code. The tokens
//! expire in 2100; the private keys were thrown away after signing.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_core::sso::{Algorithm, IssuerConfig, SsoVerifier};
use serde_json::Value;

const JWKS: &str = include_str!("data/jwt_jwks.json");
const PASS: &str = include_str!("data/jwt_vectors_pass.json");
const FAIL: &str = include_str!("data/jwt_vectors_fail.json");

fn verifier(doc: &Value) -> SsoVerifier {
    SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(doc["issuer"].as_str().unwrap(), JWKS)
                .audience(doc["audience"].as_str().unwrap())
                .algorithms([Algorithm::RS256, Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
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
