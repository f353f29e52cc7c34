//! Canary: the signing key (PKCS#8 bytes in every encoding), the HS256 secret and issued
//! tokens never appear in Debug output, error messages or captured tracing output (TRACE
//! level), through issue, rotation, success and every refusal path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::capture;
use capture::Capture;

use std::sync::Arc;

use auth_core::token::{
    AccessTokenRequest, AccessTokenResolver, Issuer, MemorySigningKeyStore, SigningKeyStore,
};
use auth_core::{Chain, Credential, CredentialKind, MemoryStore};
use base64ct::{Base64, Base64UrlUnpadded, Encoding};

const CANARY_HS256: &str = "CANARYHS256SECRET-7f3a9c1e5b2d4f6a8c0e";
const CANARY_SHORT: &str = "CANARYSHORT-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_and_tokens_never_leak() {
    let capture = Capture::install();

    let mut out = String::new();
    let store = MemorySigningKeyStore::new();
    let issuer = Issuer::builder("https://auth.strongroom.test", "api")
        .reload_cooldown(std::time::Duration::ZERO)
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    issuer.rotate().await.unwrap();
    let users = Arc::new(MemoryStore::new());
    let resolver = AccessTokenResolver::new(issuer.clone()).with_epoch_check(users);
    let chain = Chain::builder().resolver(resolver.clone()).build();
    out += &format!("{issuer:?}{resolver:?}{chain:?}{store:?}");

    let mut secrets: Vec<String> = Vec::new();
    for key in store.signing_keys().await.unwrap() {
        out += &format!("{key:?}");
        let der = key.expose_secret();
        secrets.push(Base64::encode_string(der));
        secrets.push(Base64UrlUnpadded::encode_string(der));
        secrets.push(base16(der));
        // The 32-byte private scalar/seed alone (the last 32 bytes of a PKCS#8 v1
        // Ed25519 key, somewhere inside any PKCS#8 key).
        secrets.push(base16(&der[16..48]));
        let listed = format!("{:?}", &der[16..24]);
        secrets.push(listed.trim_matches(['[', ']']).to_owned());
    }

    let token = issuer
        .issue(&AccessTokenRequest::new("user-1", 0, ["pwd"], 0).with_sid("s-1"))
        .await
        .unwrap();
    out += &format!("{token:?}");
    let t = token.expose_secret().to_owned();
    secrets.push(t.clone());
    secrets.push(t.rsplit('.').next().unwrap().to_owned());

    // Success, refusal (unknown user with the epoch check), tampered, unknown kid,
    // store outage.
    for presented in [
        t.clone(),
        format!("{t}x"),
        format!("{}.AAAA", &t[..t.rfind('.').unwrap()]),
    ] {
        let cred = Credential::new(CredentialKind::Bearer, &presented).unwrap();
        let outcome = chain.resolve(Some(&cred)).await;
        out += &format!("{outcome:?}{cred:?}");
        if let Err(e) = issuer.verify(&presented).await {
            out += &format!("{e:?}{e}");
        }
    }
    store.set_failing(true);
    if let Err(e) = issuer.rotate().await {
        out += &format!("{e:?}{e}");
    }
    if let Err(e) = issuer.reload().await {
        out += &format!("{e:?}{e}");
    }
    store.set_failing(false);

    // HS256: a short secret's error, and a valid issuer's Debug and tokens.
    let e = Issuer::builder("https://auth.strongroom.test", "api")
        .build_hs256(CANARY_SHORT.as_bytes())
        .unwrap_err();
    out += &format!("{e:?}{e}");
    let hs = Issuer::builder("https://auth.strongroom.test", "api")
        .build_hs256(CANARY_HS256.as_bytes())
        .unwrap();
    let hs_token = hs
        .issue(&AccessTokenRequest::new("user-1", 0, ["pwd"], 0))
        .await
        .unwrap();
    out += &format!("{hs:?}{hs_token:?}");
    let hs_resolver = AccessTokenResolver::new(hs.clone());
    let bad = format!("{}x", hs_token.expose_secret());
    let cred = Credential::new(CredentialKind::Bearer, &bad).unwrap();
    out += &format!(
        "{:?}",
        Chain::builder()
            .resolver(hs_resolver)
            .build()
            .resolve(Some(&cred))
            .await
    );
    secrets.push(hs_token.expose_secret().to_owned());
    secrets.push(CANARY_HS256.to_owned());
    secrets.push(CANARY_SHORT.to_owned());
    secrets.push(Base64::encode_string(CANARY_HS256.as_bytes()));

    let logs = capture.text();
    assert!(
        logs.contains("access_token."),
        "refusals were not logged: {logs}"
    );
    assert!(out.contains("SigningKey"), "debug output missing");
    for s in &secrets {
        assert!(!out.contains(s.as_str()), "secret in Debug/errors: {s}");
        assert!(!logs.contains(s.as_str()), "secret in tracing output: {s}");
    }
}

fn base16(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
