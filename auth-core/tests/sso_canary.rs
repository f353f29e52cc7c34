//! Canary: an SSO token (and the email it carries) never appears in captured tracing
//! output (every level, every crate) or in any `Debug` output, on success or refusal.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use auth_core::sso::{BindError, IssuerConfig, SsoResolver, SsoVerifier, danger};
use auth_core::{Chain, Credential, CredentialKind, Resolver};
use serde_json::json;
use sso_common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CANARY_EMAIL: &str = "canary.9f2c4e@example.com";

/// Long, unique fragments of a token: the whole, the payload and the signature segments.
fn fragments(token: &str) -> Vec<String> {
    let mut out = vec![token.to_owned()];
    out.extend(token.split('.').skip(1).map(str::to_owned));
    out
}

#[tokio::test]
async fn tokens_never_reach_logs_or_debug_output() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    // tracing caches each callsite's interest for the whole process, and while a single
    // dispatcher is registered it asks the *registering* thread's default: a test beside
    // this one, with no subscriber, could cache `never` for a line asserted here. A second
    // registered dispatcher makes the interest the union of both.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = RsaSigner::generate("canary-kid");
    let server = JwksServer::serving(&[key.jwk()]).await;
    let verifier = Arc::new(
        SsoVerifier::builder()
            .issuer(
                danger::allow_plain_http(IssuerConfig::remote(ISS_A, server.url("/jwks")))
                    .audience(AUD)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    );
    let binder = Arc::new(MemoryBinder::with(ISS_A, "user-123", "u-1"));
    let resolver = SsoResolver::new(Arc::clone(&verifier), binder.clone());

    let mut c = claims(ISS_A);
    c["email"] = json!(CANARY_EMAIL);
    let valid = key.token(&c);
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 7200);
    let header = |extra: serde_json::Value| {
        let mut h = json!({"alg": "RS256", "kid": "canary-kid"});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        h.to_string()
    };
    let tokens = vec![
        valid.clone(),
        key.token(&expired),
        mint(&header(json!({})), &c.to_string(), |_| vec![9u8; 256]),
        mint(
            &header(json!({"kid": "unknown-kid"})),
            &c.to_string(),
            |m| key.sign(m),
        ),
        mint(
            &header(json!({"jku": server.url("/attacker/jwks")})),
            &c.to_string(),
            |m| key.sign(m),
        ),
        mint(&header(json!({"alg": "HS256"})), &c.to_string(), |_| {
            vec![3u8; 32]
        }),
    ];

    let mut debug_output = String::new();
    for token in &tokens {
        let cred = Credential::new(CredentialKind::Bearer, token).unwrap();
        debug_output += &format!("{cred:?}\n");
        let resolution = resolver.resolve(&cred).await;
        debug_output += &format!("{resolution:?}\n");
        let verified = verifier.verify(token).await;
        debug_output += &format!("{verified:?}\n");
        if let Err(e) = &verified {
            debug_output += &format!("{e}\n");
        }
    }
    // Binder failure and JWKS outage paths too.
    *binder.fail_with.lock().unwrap() = Some(|| BindError::EmailBoundElsewhere);
    let cred = Credential::new(CredentialKind::Bearer, &valid).unwrap();
    debug_output += &format!("{:?}\n", resolver.resolve(&cred).await);
    server.set_mode(Mode::Status(500));
    let other = RsaSigner::generate("rotated").token(&c);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let cred = Credential::new(CredentialKind::Bearer, &other).unwrap();
    debug_output += &format!("{:?}\n", resolver.resolve(&cred).await);
    let chain = Chain::builder().resolver(resolver.clone()).build();
    debug_output += &format!("{resolver:?}\n{verifier:?}\n{chain:?}\n");
    debug_output += &format!("{:?}\n", chain.resolve(Some(&cred)).await);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the refusal codes and the JWKS fetch were logged.
    for expected in [
        "jwt.expired",
        "jwt.bad_signature",
        "jwt.forbidden_header",
        "jwks refreshed",
    ] {
        assert!(
            logs.contains(expected),
            "missing {expected:?} in captured logs"
        );
    }
    for token in tokens.iter().chain([&other]) {
        for fragment in fragments(token) {
            assert!(!logs.contains(&fragment), "token fragment in logs");
            assert!(
                !debug_output.contains(&fragment),
                "token fragment in Debug output"
            );
        }
    }
    assert!(!logs.contains(CANARY_EMAIL), "email in logs");
    assert!(
        !debug_output.contains(CANARY_EMAIL),
        "email in Debug output"
    );
}
