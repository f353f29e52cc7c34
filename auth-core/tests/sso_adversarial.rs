//! Adversarial SSO JWT suite: real RS256/ES256 keys, JWKS served by a real HTTP server on
//! 127.0.0.1, every hostile token refused with the expected reason code. Each test also
//! has a positive control so a refusal can never come from a broken fixture.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::sync::LazyLock;

use auth_core::sso::{Algorithm, IssuerConfig, JwtError, Reason, SsoVerifier, danger};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::RSA_PSS_SHA256;
use serde_json::{Value, json};
use sso_common::*;

struct Keys {
    a1: RsaSigner,
    b1: RsaSigner,
    b_ec: EcSigner,
    attacker: RsaSigner,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    a1: RsaSigner::generate("a1"),
    b1: RsaSigner::generate("b1"),
    b_ec: EcSigner::generate("b-ec"),
    attacker: RsaSigner::generate("x1"),
});

struct Fixture {
    a: JwksServer,
    b: JwksServer,
    verifier: SsoVerifier,
}

/// Issuer A (RS256 only, key `a1`) and issuer B (RS256 and ES256, keys `b1` and `b-ec`),
/// both fetched over http from local servers.
async fn fixture() -> Fixture {
    let k = &*KEYS;
    let a = JwksServer::serving(&[k.a1.jwk()]).await;
    let b = JwksServer::serving(&[k.b1.jwk(), k.b_ec.jwk()]).await;
    a.set_attacker_keys(&[
        k.attacker.jwk(),
        json!({"kty":"RSA","kid":"a1","n":b64(k.attacker.n()),"e":b64(k.attacker.e())}),
    ]);
    let verifier = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, a.url("/jwks")))
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_B, b.url("/jwks")))
                .audience(AUD)
                .algorithms([Algorithm::RS256, Algorithm::ES256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let f = Fixture { a, b, verifier };
    // Positive controls: a good token of each issuer verifies.
    let id = f
        .verifier
        .verify(&k.a1.token(&claims(ISS_A)))
        .await
        .unwrap();
    assert_eq!((id.issuer(), id.subject()), (ISS_A, "user-123"));
    assert!(id.email_verified());
    let id = f
        .verifier
        .verify(&k.b1.token(&claims(ISS_B)))
        .await
        .unwrap();
    assert_eq!(id.issuer(), ISS_B);
    f
}

async fn refused(f: &Fixture, token: &str) -> Reason {
    let err: JwtError = f
        .verifier
        .verify(token)
        .await
        .expect_err("hostile token must be refused");
    assert!(!err.is_unavailable(), "refusal, not outage: {err:?}");
    // The client-facing text never says which check failed.
    assert_eq!(err.to_string(), "SSO token refused");
    err.reason()
}

fn with(claims: Value, key: &str, value: Value) -> Value {
    let mut c = claims;
    c[key] = value;
    c
}

fn without(claims: Value, key: &str) -> Value {
    let mut c = claims;
    c.as_object_mut().unwrap().remove(key);
    c
}

fn a1_raw(header: &Value, payload: &Value) -> String {
    mint(&header.to_string(), &payload.to_string(), |m| {
        KEYS.a1.sign(m)
    })
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = fixture().await;
    let payload = claims(ISS_A).to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "kid": "a1"}).to_string();
        // Classic form: empty signature segment.
        let unsigned = format!("{}.{}.", b64(&header), b64(&payload));
        assert_eq!(refused(&f, &unsigned).await, Reason::Malformed, "{alg}");
        // With some signature bytes, so the shape check passes and the alg check decides.
        let with_sig = mint(&header, &payload, |_| vec![0u8; 32]);
        assert_eq!(refused(&f, &with_sig).await, Reason::AlgNotAllowed, "{alg}");
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let f = fixture().await;
    let k = &KEYS.a1;
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        {
            use base64ct::{Base64, Encoding};
            Base64::encode_string(&k.spki_der())
        }
    );
    let candidates: Vec<Vec<u8>> = vec![
        k.spki_der(),
        pem.into_bytes(),
        k.n(),
        k.jwk().to_string().into_bytes(),
    ];
    for alg in ["HS256", "HS384", "HS512"] {
        for secret in &candidates {
            let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
            let header = json!({"alg": alg, "kid": "a1"}).to_string();
            let token = mint(&header, &claims(ISS_A).to_string(), |m| {
                hmac::sign(&key, m).as_ref().to_vec()
            });
            assert_eq!(refused(&f, &token).await, Reason::AlgNotAllowed, "{alg}");
        }
    }
}

#[tokio::test]
async fn token_signed_by_an_unknown_key_is_refused() {
    let f = fixture().await;
    // The attacker's key, claiming the issuer's kid.
    let header = json!({"alg": "RS256", "kid": "a1"});
    let token = mint(&header.to_string(), &claims(ISS_A).to_string(), |m| {
        KEYS.attacker.sign(m)
    });
    assert_eq!(refused(&f, &token).await, Reason::BadSignature);
}

#[tokio::test]
async fn wrong_kid_is_refused() {
    let f = fixture().await;
    let before = f.a.hits();
    let header = json!({"alg": "RS256", "kid": "no-such-key"});
    assert_eq!(
        refused(&f, &a1_raw(&header, &claims(ISS_A))).await,
        Reason::UnknownKid
    );
    // An unknown kid may trigger at most one refresh (here: the cooldown has not passed
    // since the positive control's fetch, so none).
    assert_eq!(f.a.hits(), before);
    // kid missing: issuer A holds one RS256 key, which is then used (OpenID Connect
    // Core 10.1; the ambiguous cases are in sso_kidless.rs); but signed by another key,
    // refused.
    let no_kid = json!({"alg": "RS256"});
    let id = f
        .verifier
        .verify(&a1_raw(&no_kid, &claims(ISS_A)))
        .await
        .unwrap();
    assert_eq!(id.issuer(), ISS_A);
    let forged = mint(&no_kid.to_string(), &claims(ISS_A).to_string(), |m| {
        KEYS.attacker.sign(m)
    });
    assert_eq!(refused(&f, &forged).await, Reason::BadSignature);
    // kid empty or too long.
    let empty = json!({"alg": "RS256", "kid": ""});
    assert_eq!(
        refused(&f, &a1_raw(&empty, &claims(ISS_A))).await,
        Reason::KidMissing
    );
    let long = json!({"alg": "RS256", "kid": "k".repeat(129)});
    assert_eq!(
        refused(&f, &a1_raw(&long, &claims(ISS_A))).await,
        Reason::KidTooLong
    );
    let numeric = json!({"alg": "RS256", "kid": 7});
    assert_eq!(
        refused(&f, &a1_raw(&numeric, &claims(ISS_A))).await,
        Reason::Malformed
    );
}

#[tokio::test]
async fn kid_of_another_issuer_is_refused() {
    let f = fixture().await;
    let k = &*KEYS;
    // Issuer B's key and kid, claiming to be issuer A: B's key verifies, but B may only
    // speak for B.
    let header = json!({"alg": "RS256", "kid": "b1"});
    let token = mint(&header.to_string(), &claims(ISS_A).to_string(), |m| {
        k.b1.sign(m)
    });
    assert_eq!(refused(&f, &token).await, Reason::WrongIssuer);
    // A's key under B's kid: the signature does not verify under B's key.
    let token = mint(&header.to_string(), &claims(ISS_A).to_string(), |m| {
        k.a1.sign(m)
    });
    assert_eq!(refused(&f, &token).await, Reason::BadSignature);
}

#[tokio::test]
async fn expired_token_is_refused_and_leeway_is_honoured() {
    let f = fixture().await;
    let k = &KEYS.a1;
    let expired = with(claims(ISS_A), "exp", json!(now() - 3600));
    assert_eq!(refused(&f, &k.token(&expired)).await, Reason::Expired);
    // Beyond the 60 s leeway.
    let just_expired = with(claims(ISS_A), "exp", json!(now() - 90));
    assert_eq!(refused(&f, &k.token(&just_expired)).await, Reason::Expired);
    // Within the leeway: accepted.
    let skewed = with(claims(ISS_A), "exp", json!(now() - 20));
    f.verifier.verify(&k.token(&skewed)).await.unwrap();
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_refused() {
    let f = fixture().await;
    let k = &KEYS.a1;
    let future = with(claims(ISS_A), "nbf", json!(now() + 3600));
    assert_eq!(refused(&f, &k.token(&future)).await, Reason::NotYetValid);
    let iat = with(claims(ISS_A), "iat", json!(now() + 3600));
    assert_eq!(refused(&f, &k.token(&iat)).await, Reason::IssuedInFuture);
    // nbf within the leeway: accepted.
    let skewed = with(claims(ISS_A), "nbf", json!(now() + 20));
    f.verifier.verify(&k.token(&skewed)).await.unwrap();
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let f = fixture().await;
    let k = &KEYS.a1;
    for iss in [
        json!("https://evil.test"),
        json!(format!("{ISS_A}/")),
        json!(ISS_A.to_uppercase()),
    ] {
        let c = with(claims(ISS_A), "iss", iss.clone());
        assert_eq!(
            refused(&f, &k.token(&c)).await,
            Reason::WrongIssuer,
            "{iss}"
        );
    }
    // iss as an array containing the right issuer: wrong type, refused.
    let c = with(claims(ISS_A), "iss", json!([ISS_A]));
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::ClaimType);
    let c = without(claims(ISS_A), "iss");
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::MissingClaim);
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let f = fixture().await;
    let k = &KEYS.a1;
    let c = with(claims(ISS_A), "aud", json!("other-api"));
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::WrongAudience);
    let c = with(claims(ISS_A), "aud", json!(["other-api", "third"]));
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::WrongAudience);
    let c = with(claims(ISS_A), "aud", json!([]));
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::ClaimType);
    let c = with(claims(ISS_A), "aud", json!([AUD, 5]));
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::ClaimType);
    let c = without(claims(ISS_A), "aud");
    assert_eq!(refused(&f, &k.token(&c)).await, Reason::MissingClaim);
    // Our audience among others: accepted.
    let c = with(claims(ISS_A), "aud", json!(["other-api", AUD]));
    f.verifier.verify(&k.token(&c)).await.unwrap();
}

#[tokio::test]
async fn missing_exp_is_refused() {
    let f = fixture().await;
    let c = without(claims(ISS_A), "exp");
    assert_eq!(refused(&f, &KEYS.a1.token(&c)).await, Reason::MissingClaim);
    let c = without(claims(ISS_A), "sub");
    assert_eq!(refused(&f, &KEYS.a1.token(&c)).await, Reason::MissingClaim);
    let c = with(claims(ISS_A), "sub", json!(""));
    assert_eq!(refused(&f, &KEYS.a1.token(&c)).await, Reason::BadSubject);
}

#[tokio::test]
async fn exp_as_a_string_is_refused() {
    // CVE-2026-25537 class: a wrongly typed time claim must never count as absent.
    let f = fixture().await;
    let k = &KEYS.a1;
    let far = (now() + 3600).to_string();
    for (claim, value) in [
        ("exp", json!(far)),
        ("exp", json!("never")),
        ("exp", json!(null)),
        ("exp", json!(true)),
        ("exp", json!([now() + 3600])),
        ("exp", json!({"t": now() + 3600})),
        ("nbf", json!((now() + 3600).to_string())),
        ("nbf", json!("later")),
        ("iat", json!("now")),
    ] {
        let c = with(claims(ISS_A), claim, value.clone());
        assert_eq!(
            refused(&f, &k.token(&c)).await,
            Reason::ClaimType,
            "{claim}: {value}"
        );
    }
    // A repeated exp (number first, string second) is refused outright.
    let payload = format!(
        r#"{{"iss":"{ISS_A}","sub":"u","aud":"{AUD}","exp":{},"exp":"never"}}"#,
        now() + 3600
    );
    let header = json!({"alg": "RS256", "kid": "a1"}).to_string();
    let token = mint(&header, &payload, |m| k.sign(m));
    assert_eq!(refused(&f, &token).await, Reason::ClaimsMalformed);
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let f = fixture().await;
    let good = KEYS.a1.token(&claims(ISS_A));
    let parts: Vec<&str> = good.split('.').collect();
    let evil = with(claims(ISS_A), "sub", json!("admin"));
    let tampered = format!("{}.{}.{}", parts[0], b64(evil.to_string()), parts[2]);
    assert_eq!(refused(&f, &tampered).await, Reason::BadSignature);
    // Header swapped for one naming another algorithm of the same key type.
    let header = b64(json!({"alg": "PS256", "kid": "a1"}).to_string());
    let swapped = format!("{header}.{}.{}", parts[1], parts[2]);
    assert_eq!(refused(&f, &swapped).await, Reason::AlgNotAllowed);
    // One flipped signature byte.
    let mut sig = parts[2].as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    );
    assert_eq!(refused(&f, &flipped).await, Reason::BadSignature);
}

#[tokio::test]
async fn jku_x5u_jwk_x5c_never_pick_a_key_and_are_never_fetched() {
    let f = fixture().await;
    let k = &*KEYS;
    let attacker_jwks = f.a.url("/attacker/jwks");
    let c = claims(ISS_A).to_string();
    let headers = [
        json!({"alg": "RS256", "kid": "x1", "jku": attacker_jwks}),
        json!({"alg": "RS256", "kid": "a1", "jku": attacker_jwks}),
        json!({"alg": "RS256", "kid": "x1", "x5u": attacker_jwks}),
        json!({"alg": "RS256", "kid": "x1", "jwk": k.attacker.jwk()}),
        json!({"alg": "RS256", "kid": "a1", "jwk": k.attacker.jwk()}),
        json!({"alg": "RS256", "kid": "x1", "x5c": [b64(k.attacker.spki_der())]}),
        json!({"alg": "RS256", "kid": "a1", "crit": ["exp"]}),
        json!({"alg": "RS256", "kid": "a1", "b64": false, "crit": ["b64"]}),
    ];
    for header in &headers {
        let token = mint(&header.to_string(), &c, |m| k.attacker.sign(m));
        assert_eq!(
            refused(&f, &token).await,
            Reason::ForbiddenHeader,
            "{header}"
        );
        // Even signed by the real issuer key, a token carrying them is refused.
        let token = mint(&header.to_string(), &c, |m| k.a1.sign(m));
        assert_eq!(
            refused(&f, &token).await,
            Reason::ForbiddenHeader,
            "{header}"
        );
    }
    assert_eq!(f.a.attacker_hits(), 0, "the attacker's JWKS was fetched");
    assert_eq!(f.b.attacker_hits(), 0, "the attacker's JWKS was fetched");
}

#[tokio::test]
async fn oversized_token_is_refused_before_parsing() {
    let f = fixture().await;
    let hits = f.a.hits();
    let big = with(claims(ISS_A), "pad", json!("p".repeat(9 * 1024)));
    assert_eq!(refused(&f, &KEYS.a1.token(&big)).await, Reason::TooLong);
    let junk = "x".repeat(100_000);
    assert_eq!(refused(&f, &junk).await, Reason::TooLong);
    assert_eq!(f.a.hits(), hits);
    // Just under the cap: accepted.
    let mut c = claims(ISS_A);
    let base = KEYS.a1.token(&c).len();
    c["pad"] = json!("p".repeat((8 * 1024 - base - 20) * 3 / 4));
    let token = KEYS.a1.token(&c);
    assert!(token.len() <= 8 * 1024, "{}", token.len());
    f.verifier.verify(&token).await.unwrap();
}

#[tokio::test]
async fn malformed_base64_or_json_is_refused() {
    let f = fixture().await;
    let k = &KEYS.a1;
    let good = k.token(&claims(ISS_A));
    let p: Vec<&str> = good.split('.').collect();
    let header_ok = p[0];
    let malformed = [
        String::new(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{}.{}", p[0], p[1]),
        format!("{}..{}", p[0], p[2]),
        format!("{}.{}.{}.", p[0], p[1], p[2]),
        format!("{}+.{}.{}", p[0], p[1], p[2]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}.{}", "Zm9v", p[1], p[2]), // "foo": not JSON
        format!("{}.{}.{}", "e", p[1], p[2]),    // invalid base64 length
        format!(
            "{}.{}.{}",
            b64("{\"alg\":\"RS256\",\"kid\":\"a1\""),
            p[1],
            p[2]
        ),
        format!("{}.{}.{}", b64("[\"RS256\",\"a1\"]"), p[1], p[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","alg":"RS256","kid":"a1"}"#),
            p[1],
            p[2]
        ),
        format!(" {good}"),
        format!("{good}\n"),
        format!("Bearer {good}"),
        "\u{fe0f}.\u{fe0f}.\u{fe0f}".to_owned(),
    ];
    for token in &malformed {
        assert_eq!(refused(&f, token).await, Reason::Malformed, "{token:?}");
    }
    // Bad base64 in a correctly signed payload (alphabet fine, length impossible).
    let input = format!("{header_ok}.e");
    let bad_payload = format!("{input}.{}", b64(k.sign(input.as_bytes())));
    assert_eq!(refused(&f, &bad_payload).await, Reason::Malformed);
    // Correctly signed payloads that are not a JSON object.
    let header = json!({"alg": "RS256", "kid": "a1"}).to_string();
    for payload in ["not json", "[1,2,3]", "\"s\"", "{\"exp\":", "null"] {
        let token = mint(&header, payload, |m| k.sign(m));
        let reason = refused(&f, &token).await;
        assert!(
            matches!(reason, Reason::ClaimsMalformed | Reason::Malformed),
            "{payload}: {reason:?}"
        );
    }
}

#[tokio::test]
async fn algorithm_is_tied_to_the_key_type() {
    let f = fixture().await;
    let k = &*KEYS;
    // ES256 with B's EC key: accepted (B allows ES256).
    f.verifier
        .verify(&k.b_ec.token(&claims(ISS_B)))
        .await
        .unwrap();
    // ES256 naming B's RSA key: mismatch.
    let header = json!({"alg": "ES256", "kid": "b1"}).to_string();
    let token = mint(&header, &claims(ISS_B).to_string(), |m| k.b_ec.sign(m));
    assert_eq!(refused(&f, &token).await, Reason::AlgKeyMismatch);
    // RS256 naming B's EC key: mismatch.
    let header = json!({"alg": "RS256", "kid": "b-ec"}).to_string();
    let token = mint(&header, &claims(ISS_B).to_string(), |m| k.b1.sign(m));
    assert_eq!(refused(&f, &token).await, Reason::AlgKeyMismatch);
    // ES256 is not in A's allowlist even though B allows it: refused for A.
    let header = json!({"alg": "ES256", "kid": "a1"}).to_string();
    let token = mint(&header, &claims(ISS_A).to_string(), |m| k.b_ec.sign(m));
    assert_eq!(refused(&f, &token).await, Reason::AlgNotAllowed);
    // PS256 with A's RSA key: same key type, but not allowlisted (and the JWK says RS256).
    let header = json!({"alg": "PS256", "kid": "a1"}).to_string();
    let token = mint(&header, &claims(ISS_A).to_string(), |m| {
        k.a1.sign_with(&RSA_PSS_SHA256, m)
    });
    assert_eq!(refused(&f, &token).await, Reason::AlgNotAllowed);
}

#[tokio::test]
async fn jwk_alg_restricts_the_key() {
    // An issuer allowing RS256 and PS256, whose JWK declares RS256: PS256 is refused.
    let k = &*KEYS;
    let server = JwksServer::serving(&[k.a1.jwk()]).await;
    let v = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, server.url("/jwks")))
                .audience(AUD)
                .algorithms([Algorithm::RS256, Algorithm::PS256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let header = json!({"alg": "PS256", "kid": "a1"}).to_string();
    let token = mint(&header, &claims(ISS_A).to_string(), |m| {
        k.a1.sign_with(&RSA_PSS_SHA256, m)
    });
    assert_eq!(
        v.verify(&token).await.unwrap_err().reason(),
        Reason::AlgKeyMismatch
    );
    // Without a declared alg, PS256 is fine for an RSA key.
    server.set_keys(&[k.a1.jwk_without_alg()]);
    let v2 = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, server.url("/jwks")))
                .audience(AUD)
                .algorithms([Algorithm::RS256, Algorithm::PS256])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    v2.verify(&token).await.unwrap();
}

#[tokio::test]
async fn unknown_issuer_with_unknown_kid_is_refused_without_fetching() {
    let f = fixture().await;
    let (a, b) = (f.a.hits(), f.b.hits());
    let header = json!({"alg": "RS256", "kid": "zz"}).to_string();
    let token = mint(&header, &claims("https://nobody.test").to_string(), |m| {
        KEYS.attacker.sign(m)
    });
    assert_eq!(refused(&f, &token).await, Reason::UnknownIssuer);
    assert_eq!((f.a.hits(), f.b.hits()), (a, b));
}
