//! auth-core SSO: RS256 JWT resolution through `SsoVerifier` with a warm key cache, beside
//! plain `jsonwebtoken::decode` with the same key (the raw primitive), in one group.
//!
//! Goal (issue "auth-core", item 13): verifier at most 1.10x plain decode.
//!
//! * `jsonwebtoken_decode`: `decode::<Claims>` with a prebuilt `DecodingKey` (from the same
//!   JWK) and a prebuilt `Validation` (RS256, iss, aud, exp): what a hand-written
//!   integration would do at best.
//! * `sso_verifier/remote_warm`: the full verifier, keys fetched once over HTTP from a
//!   local JWKS endpoint and then cached (the production path: shape and header checks,
//!   `kid` lookup, freshness check, decode, our own claim checks).
//! * `sso_verifier/pinned`: the same with a pinned key set (no freshness check).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark setup: a failure must abort the run"
)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::sso::{IssuerConfig, SsoVerifier, danger};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64ct::{Base64UrlUnpadded, Encoding};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

const ISS: &str = "https://login.example.com/realms/trading";
const AUD: &str = "trading-backend";

/// The claims a plain integration would read: the same ones the verifier returns.
#[derive(Debug, Deserialize)]
#[allow(dead_code, reason = "fields are decoded, as in a real integration")]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    email: Option<String>,
    email_verified: Option<bool>,
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

struct Fixture {
    jwks: String,
    token: String,
}

fn fixture() -> Fixture {
    let kp = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let pk = kp.public_key();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"bench-1","use":"sig","alg":"RS256","n":"{}","e":"{}"}}]}}"#,
        b64(pk.modulus().big_endian_without_leading_zero()),
        b64(pk.exponent().big_endian_without_leading_zero())
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // A typical OIDC access token's size and shape.
    let header = r#"{"alg":"RS256","typ":"JWT","kid":"bench-1"}"#;
    let payload = format!(
        r#"{{"iss":"{ISS}","sub":"f1c3a9e2-55d4-4b8e-9a51-3f0c2d7e8b61","aud":"{AUD}","exp":{},"iat":{now},"email":"trader@example.com","email_verified":true,"azp":"web","scope":"openid email profile","sid":"0b5e8a0c-7d1f-4e2a-b9c3-5a6d7e8f9012"}}"#,
        now + 24 * 3600
    );
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    Fixture {
        jwks,
        token: format!("{input}.{}", b64(&sig)),
    }
}

/// A one-route HTTP/1.1 server on 127.0.0.1 that answers every request with `body`.
fn serve_jwks(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=86400\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}/jwks")
}

fn bench(c: &mut Criterion) {
    let f = fixture();

    // Plain jsonwebtoken, best case: key and validation built once.
    let set: JwkSet = serde_json::from_str(&f.jwks).unwrap();
    let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[ISS]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    jsonwebtoken::decode::<Claims>(&f.token, &key, &validation).unwrap();

    // The verifier, warm: keys fetched once over HTTP, then cached.
    let url = serve_jwks(f.jwks.clone());
    let remote = SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS, url))
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(remote.prefetch()), 1);
    block_on(remote.verify(&f.token)).unwrap();

    let pinned = SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(ISS, f.jwks.clone())
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    block_on(pinned.verify(&f.token)).unwrap();

    let mut g = c.benchmark_group("auth_jwt/rs256");
    g.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<Claims>(black_box(&f.token), &key, &validation)
                .unwrap()
                .claims
        });
    });
    g.bench_function("sso_verifier/remote_warm", |b| {
        b.iter(|| block_on(remote.verify(black_box(&f.token))).unwrap());
    });
    g.bench_function("sso_verifier/pinned", |b| {
        b.iter(|| block_on(pinned.verify(black_box(&f.token))).unwrap());
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
