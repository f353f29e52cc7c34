//! Tokens without `kid` (hardening item C13). OpenID Connect Core 1.0 section 10.1
//! requires `kid` only when the JWKS holds several keys; a provider with one key may
//! omit it (and may omit `kid` from the JWK too, RFC 7517 section 4.5). Rule: a token
//! without `kid` verifies when exactly one of its issuer's keys fits its `alg` and key
//! type; otherwise it is refused with `jwt.kid_missing`.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::sync::LazyLock;

use auth_core::sso::{Algorithm, IssuerConfig, Reason, SsoVerifier, danger};
use serde_json::{Value, json};
use sso_common::*;

static RSA1: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("rsa-1"));
static RSA2: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("rsa-2"));
static EC1: LazyLock<EcSigner> = LazyLock::new(|| EcSigner::generate("ec-1"));

fn without_kid(jwk: Value) -> Value {
    let mut jwk = jwk;
    jwk.as_object_mut().unwrap().remove("kid");
    jwk
}

fn rs256_no_kid(signer: &RsaSigner, claims: &Value) -> String {
    mint(r#"{"alg":"RS256","typ":"JWT"}"#, &claims.to_string(), |m| {
        signer.sign(m)
    })
}

fn es256_no_kid(signer: &EcSigner, claims: &Value) -> String {
    mint(r#"{"alg":"ES256"}"#, &claims.to_string(), |m| {
        signer.sign(m)
    })
}

async fn remote(keys: &[Value]) -> (JwksServer, SsoVerifier) {
    let server = JwksServer::serving(keys).await;
    let verifier = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, server.url("/jwks")))
                .audience(AUD)
                .algorithms([Algorithm::RS256, Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    (server, verifier)
}

#[tokio::test]
async fn one_key_in_the_set_verifies_a_token_without_kid() {
    // A cold cache: the kid-less token triggers the first fetch, then verifies.
    let (server, v) = remote(&[RSA1.jwk()]).await;
    let id = v
        .verify(&rs256_no_kid(&RSA1, &claims(ISS_A)))
        .await
        .unwrap();
    assert_eq!((id.issuer(), id.subject()), (ISS_A, "user-123"));
    assert_eq!(server.hits(), 1);
    // Signed by another key: the one key does not verify it.
    let err = v
        .verify(&rs256_no_kid(&RSA2, &claims(ISS_A)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::BadSignature);
    // Tokens with a kid keep working as before.
    v.verify(&RSA1.token(&claims(ISS_A))).await.unwrap();
}

#[tokio::test]
async fn a_jwk_without_kid_serves_tokens_without_kid_only() {
    let (_server, v) = remote(&[without_kid(RSA1.jwk())]).await;
    v.verify(&rs256_no_kid(&RSA1, &claims(ISS_A)))
        .await
        .unwrap();
    let err = v.verify(&RSA1.token(&claims(ISS_A))).await.unwrap_err();
    assert_eq!(err.reason(), Reason::UnknownKid);
}

#[tokio::test]
async fn the_key_must_fit_the_algorithm_and_be_the_only_one() {
    // One RSA and one EC key: each algorithm has exactly one key.
    let (_server, v) = remote(&[RSA1.jwk(), EC1.jwk()]).await;
    v.verify(&rs256_no_kid(&RSA1, &claims(ISS_A)))
        .await
        .unwrap();
    v.verify(&es256_no_kid(&EC1, &claims(ISS_A))).await.unwrap();

    // Two RSA keys: a kid-less RS256 token is ambiguous, even correctly signed by one.
    let (server, v) = remote(&[RSA1.jwk(), RSA2.jwk()]).await;
    v.verify(&RSA1.token(&claims(ISS_A))).await.unwrap();
    let before = server.hits();
    for signer in [&*RSA1, &*RSA2] {
        let err = v
            .verify(&rs256_no_kid(signer, &claims(ISS_A)))
            .await
            .unwrap_err();
        assert!(!err.is_unavailable());
        assert_eq!(err.reason(), Reason::KidMissing);
    }
    // Ambiguity is not a reason to fetch again.
    assert_eq!(server.hits(), before);

    // One RSA key with its own `alg: RS256` and another without: both fit RS256.
    let (_server, v) = remote(&[RSA1.jwk(), RSA2.jwk_without_alg()]).await;
    let err = v
        .verify(&rs256_no_kid(&RSA1, &claims(ISS_A)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::KidMissing);

    // No key fits the algorithm: refused.
    let (_server, v) = remote(&[RSA1.jwk()]).await;
    v.verify(&RSA1.token(&claims(ISS_A))).await.unwrap();
    let err = v
        .verify(&es256_no_kid(&EC1, &claims(ISS_A)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::KidMissing);
    // An empty kid is not an absent one.
    let empty = mint(
        r#"{"alg":"RS256","kid":""}"#,
        &claims(ISS_A).to_string(),
        |m| RSA1.sign(m),
    );
    assert_eq!(
        v.verify(&empty).await.unwrap_err().reason(),
        Reason::KidMissing
    );
}

#[tokio::test]
async fn with_several_issuers_iss_picks_the_key_set() {
    let a = JwksServer::serving(&[RSA1.jwk()]).await;
    let b = JwksServer::serving(&[RSA2.jwk()]).await;
    let v = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, a.url("/jwks")))
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_B, b.url("/jwks")))
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(
        v.verify(&rs256_no_kid(&RSA1, &claims(ISS_A)))
            .await
            .unwrap()
            .issuer(),
        ISS_A
    );
    assert_eq!(
        v.verify(&rs256_no_kid(&RSA2, &claims(ISS_B)))
            .await
            .unwrap()
            .issuer(),
        ISS_B
    );
    // A's key claiming to be B: checked against B's only key, which does not verify it.
    let err = v
        .verify(&rs256_no_kid(&RSA1, &claims(ISS_B)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::BadSignature);
    // An iss naming no configured issuer: refused without any fetch.
    let (ha, hb) = (a.hits(), b.hits());
    let err = v
        .verify(&rs256_no_kid(&RSA1, &claims("https://other.test")))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::UnknownIssuer);
    assert_eq!((a.hits(), b.hits()), (ha, hb));
    // An algorithm the chosen issuer does not allow: refused without a fetch.
    let err = v
        .verify(&es256_no_kid(&EC1, &claims(ISS_A)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::AlgNotAllowed);
    assert_eq!((a.hits(), b.hits()), (ha, hb));
}

#[tokio::test]
async fn pinned_set_with_one_key_verifies_a_token_without_kid() {
    let v = SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(ISS_A, jwks(&[EC1.jwk()]))
                .audience(AUD)
                .algorithms([Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    v.verify(&es256_no_kid(&EC1, &claims(ISS_A))).await.unwrap();
    // The header may still carry other members.
    let token = mint(
        &json!({"alg": "ES256", "typ": "JWT", "cty": "x"}).to_string(),
        &claims(ISS_A).to_string(),
        |m| EC1.sign(m),
    );
    v.verify(&token).await.unwrap();
}
