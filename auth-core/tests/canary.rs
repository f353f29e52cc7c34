//! Canary: a recognisable token, password and API key go through every path (success,
//! refusal, errors, Debug) with a capturing tracing subscriber installed at TRACE level;
//! none of them may appear in the captured output or in any Debug/Display string.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use crate::capture;
use capture::Capture;

use std::sync::Arc;

use auth_core::SsoBinder;
use auth_core::password::PasswordConfig;
use auth_core::sso::{IdentityBinder as _, VerifiedIdentity};
use auth_core::{
    Accounts, ApiKeys, Chain, Credential, CredentialKind, InternalSecretResolver, MemoryStore,
    Outcome, Password, PasswordHasher, SessionConfig, Sessions, StaticTokenResolver,
};
use http::{HeaderMap, HeaderValue};

const CANARY_TOKEN: &str = "CANARYTOKEN-7f3a9c1e5b2d4f6a8c0e2a4c6e8f0a1b";
const CANARY_PASSWORD: &str = "CANARYPASSWORD-c4n4ry-p4ss";
const CANARY_INTERNAL: &str = "CANARYINTERNAL-0123456789abcdef0123456789";

fn bearer_headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_never_leak() {
    let capture = Capture::install();

    let mut debug_out = String::new();
    let store = Arc::new(MemoryStore::new());
    let hasher = PasswordHasher::new(auth_core::danger::weak_password_params(
        PasswordConfig::default(),
        256,
        1,
        1,
    ))
    .unwrap();
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions.clone(), hasher.clone());
    let keys = ApiKeys::new(store.clone());
    let static_resolver = StaticTokenResolver::new(CANARY_TOKEN, "bootstrap").unwrap();
    debug_out += &format!("{static_resolver:?}");
    let chain = Chain::builder()
        .resolver(static_resolver)
        .resolver(sessions.clone())
        .resolver(keys.clone())
        .build();
    debug_out += &format!("{chain:?}");

    // Static token: success and near misses.
    for t in [CANARY_TOKEN, &format!("{CANARY_TOKEN}x")] {
        let outcome = chain.resolve_headers(&bearer_headers(t)).await;
        debug_out += &format!("{outcome:?}");
    }
    let cred = Credential::new(CredentialKind::Bearer, CANARY_TOKEN).unwrap();
    debug_out += &format!("{cred:?}");
    // Extraction errors carrying the canary.
    let mut h = bearer_headers(CANARY_TOKEN);
    h.insert("x-api-key", HeaderValue::from_static(CANARY_TOKEN));
    let e = Credential::from_headers(&h).unwrap_err();
    debug_out += &format!("{e:?} {e}");
    debug_out += &format!("{:?}", chain.resolve_headers(&h).await);
    let long = format!("{CANARY_TOKEN}{}", "x".repeat(9000));
    let e = Credential::from_headers(&bearer_headers(&long)).unwrap_err();
    debug_out += &format!("{e:?} {e}");

    // Password: register, login ok, login wrong, change.
    let pw = Password::new(CANARY_PASSWORD);
    debug_out += &format!("{pw:?}");
    let user = accounts.register("canary@example.com", &pw).await.unwrap();
    debug_out += &format!("{user:?}");
    let login = accounts
        .login("canary@example.com", &pw)
        .await
        .unwrap()
        .into_session()
        .unwrap();
    debug_out += &format!("{login:?}");
    let session_token = login.token.expose_secret().to_owned();
    let outcome = chain.resolve_headers(&bearer_headers(&session_token)).await;
    assert!(matches!(outcome, Outcome::Authenticated(_)));
    debug_out += &format!("{outcome:?}");
    let wrong = Password::new(format!("{CANARY_PASSWORD}-wrong"));
    let e = accounts
        .login("canary@example.com", &wrong)
        .await
        .unwrap_err();
    debug_out += &format!("{e:?} {e}");
    let e = accounts.login("nobody@example.com", &pw).await.unwrap_err();
    debug_out += &format!("{e:?} {e}");
    let e = accounts.register(CANARY_PASSWORD, &pw).await.unwrap_err();
    debug_out += &format!("{e:?} {e}");
    let e = accounts
        .register("short@example.com", &Password::new("CANARYPASSWORD"))
        .await
        .map(|_| ());
    debug_out += &format!("{e:?}");
    let new_pw = Password::new(format!("{CANARY_PASSWORD}-new"));
    accounts
        .change_password(&user.id, &pw, &new_pw)
        .await
        .unwrap();
    let hash_err = hasher.verify(&pw, "not-a-hash").await.unwrap_err();
    debug_out += &format!("{hash_err:?} {hash_err}");
    debug_out += &format!("{accounts:?} {hasher:?} {sessions:?}");

    // API key: create, use, misuse, revoke.
    let key = keys
        .create(&user.id, "canary key", vec!["read".into()])
        .await
        .unwrap();
    let raw_key = key.expose_secret().to_owned();
    debug_out += &format!("{key:?}");
    let mut h = HeaderMap::new();
    h.insert("x-api-key", HeaderValue::from_str(&raw_key).unwrap());
    let outcome = chain.resolve_headers(&h).await;
    assert!(matches!(outcome, Outcome::Authenticated(_)));
    debug_out += &format!("{outcome:?}");
    let mut bad = raw_key.clone();
    bad.pop();
    bad.push('!');
    h.insert("x-api-key", HeaderValue::from_str(&bad).unwrap());
    debug_out += &format!("{:?}", chain.resolve_headers(&h).await);
    debug_out += &format!("{:?}", keys.list(&user.id).await.unwrap());
    keys.revoke(&user.id, key.key_id()).await.unwrap();
    h.insert("x-api-key", HeaderValue::from_str(&raw_key).unwrap());
    debug_out += &format!("{:?}", chain.resolve_headers(&h).await);
    debug_out += &format!("{:?}", sessions.list(&user.id).await.unwrap());
    accounts.sign_out_everywhere(&user.id).await.unwrap();

    // Internal secret.
    let internal = InternalSecretResolver::new(Some(CANARY_INTERNAL)).unwrap();
    debug_out += &format!("{internal:?}");
    let internal_chain = Chain::builder().resolver(internal).build();
    let mut h = HeaderMap::new();
    h.insert(
        "x-internal-secret",
        HeaderValue::from_static(CANARY_INTERNAL),
    );
    debug_out += &format!("{:?}", internal_chain.resolve_headers(&h).await);
    let e = InternalSecretResolver::new(Some("CANARYSHORT")).unwrap_err();
    debug_out += &format!("{e:?} {e}");

    // SSO binding audit events.
    let binder = SsoBinder::new(store.clone());
    let id = |sub: &str| {
        VerifiedIdentity::new(
            "https://idp.example",
            sub,
            Some("sso-canary@example.com".to_owned()),
            true,
            4_000_000_000,
        )
    };
    binder.bind(&id("sub-1")).await.unwrap();
    binder.bind(&id("sub-1")).await.unwrap();
    binder.bind(&id("sub-2")).await.unwrap_err();

    let logged = capture.text();
    // The capture works: the codes of the paths above are there.
    for code in [
        "login.ok",
        "login.bad_password",
        "login.unknown_user",
        "api_key.created",
        "account.signed_out_everywhere",
        "account.password_changed",
        "sso.bind.provisioned",
        "sso.bind.existing",
        "sso.email_bound_elsewhere",
    ] {
        assert!(logged.contains(code), "missing {code} in captured logs");
    }
    let session_secret = &session_token[4..];
    let key_secret = &raw_key[raw_key.len() - 43..];
    for canary in [
        CANARY_TOKEN,
        "CANARYTOKEN",
        CANARY_PASSWORD,
        "CANARYPASSWORD",
        CANARY_INTERNAL,
        "CANARYINTERNAL",
        "CANARYSHORT",
        session_secret,
        key_secret,
    ] {
        assert!(!logged.contains(canary), "canary {canary} leaked into logs");
        assert!(
            !debug_out.contains(canary),
            "canary {canary} leaked into Debug output"
        );
    }
}
