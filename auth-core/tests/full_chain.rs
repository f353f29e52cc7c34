//! The default chain end to end: static token, session, SSO JWT (real RS256 key, pinned
//! JWKS) bound to local users by `SsoBinder`, and API keys, on every store back end the
//! build has.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use crate::sso_common;

use std::sync::Arc;

use auth_core::api_key::ApiKeyStore;
use auth_core::session::SessionStore;
use auth_core::sso::{IssuerConfig, SsoResolver, SsoVerifier};
use auth_core::user::UserStore;
use auth_core::{
    ApiKeys, AuthMethod, Chain, Credential, CredentialKind, MemoryStore, Outcome, SessionConfig,
    Sessions, SsoBinder, StaticTokenResolver,
};
use sso_common::{AUD, ISS_A, RsaSigner, claims, jwks};

const STATIC: &str = "static-token-0123456789abcdef0123456789abcdef";

fn bearer(t: &str) -> Credential {
    Credential::new(CredentialKind::Bearer, t).unwrap()
}

async fn run<S: UserStore + SessionStore + ApiKeyStore + 'static>(store: Arc<S>) {
    let signer = RsaSigner::generate("k1");
    let verifier = SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(ISS_A, jwks(&[signer.jwk()]))
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let binder = SsoBinder::new(store.clone());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let keys = ApiKeys::new(store.clone());
    let chain = Chain::builder()
        .resolver(StaticTokenResolver::new(STATIC, "bootstrap").unwrap())
        .resolver(sessions.clone())
        .resolver(SsoResolver::new(Arc::new(verifier), Arc::new(binder)))
        .resolver(keys.clone())
        .build();

    // First SSO login provisions a user; the second finds the same one.
    let token = signer.token(&claims(ISS_A));
    let first = match chain.resolve(Some(&bearer(&token))).await {
        Outcome::Authenticated(p) => p,
        other => panic!("expected authenticated, got {other:?}"),
    };
    assert_eq!(first.method(), AuthMethod::Sso);
    let user = store.user_by_id(first.user_id()).await.unwrap().unwrap();
    assert_eq!(user.email, "alice@example.com");
    let again = chain.resolve(Some(&bearer(&token))).await;
    assert_eq!(
        again.principal().map(|p| p.user_id()),
        Some(first.user_id())
    );

    // Another subject claiming the same email is refused (403), not merged.
    let mut other = claims(ISS_A);
    other["sub"] = "someone-else".into();
    let refused = chain.resolve(Some(&bearer(&signer.token(&other)))).await;
    assert!(matches!(refused, Outcome::Invalid(r) if r.code() == "sso.email_bound_elsewhere"));

    // Tampered and foreign tokens are refused.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = sso_common::b64(other.to_string());
    parts[1] = &forged_payload;
    let tampered = parts.join(".");
    assert!(matches!(
        chain.resolve(Some(&bearer(&tampered))).await,
        Outcome::Invalid(_)
    ));
    let stranger = RsaSigner::generate("k1");
    assert!(matches!(
        chain
            .resolve(Some(&bearer(&stranger.token(&claims(ISS_A)))))
            .await,
        Outcome::Invalid(_)
    ));

    // The other resolvers of the default chain still answer.
    let first_user = store.user_by_id(first.user_id()).await.unwrap().unwrap();
    let s = sessions.issue(&first_user).await.unwrap();
    let p = chain.resolve(Some(&bearer(s.expose_secret()))).await;
    assert_eq!(p.principal().map(|p| p.method()), Some(AuthMethod::Session));
    let p = chain.resolve(Some(&bearer(STATIC))).await;
    assert_eq!(
        p.principal().map(|p| p.method()),
        Some(AuthMethod::StaticToken)
    );
    let k = keys.create(first.user_id(), "bot", vec![]).await.unwrap();
    let p = chain.resolve(Some(&bearer(k.expose_secret()))).await;
    assert_eq!(p.principal().map(|p| p.method()), Some(AuthMethod::ApiKey));
    assert!(matches!(
        chain.resolve(Some(&bearer("neither-jwt-nor-session"))).await,
        Outcome::Invalid(r) if r.code() == "credential.unclaimed"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_on_memory_store() {
    run(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_chain_on_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("auth.db").display());
    run(Arc::new(
        auth_core::SqliteStore::connect(&url).await.unwrap(),
    ))
    .await;
}
