//! Chain semantics, the static token resolver and the internal secret resolver.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auth_core::internal::INTERNAL_UNCONFIGURED;
use auth_core::{
    AuthMethod, Chain, ConfigError, Credential, CredentialKind, InternalSecretResolver, Outcome,
    Principal, Refusal, Resolution, ResolveFuture, Resolver, StaticTokenResolver,
};
use http::{HeaderMap, HeaderValue};

/// A resolver that always answers the same and counts calls; with `waits` it answers
/// through a boxed future that is pending once (as a database-backed resolver would).
#[derive(Debug)]
struct Fixed {
    answer: Resolution,
    calls: Arc<AtomicUsize>,
    waits: bool,
}

fn fixed(answer: Resolution) -> (Fixed, Arc<AtomicUsize>) {
    fixed_with(answer, false)
}

fn fixed_with(answer: Resolution, waits: bool) -> (Fixed, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (
        Fixed {
            answer,
            calls: calls.clone(),
            waits,
        },
        calls,
    )
}

impl Resolver for Fixed {
    fn resolve<'a>(&'a self, _cred: &'a Credential) -> ResolveFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.waits {
            ResolveFuture::boxed(async move {
                tokio::task::yield_now().await;
                self.answer.clone()
            })
        } else {
            ResolveFuture::ready(self.answer.clone())
        }
    }
}

fn alice() -> Principal {
    Principal::new("alice", AuthMethod::Session)
}

fn bearer(t: &str) -> Credential {
    Credential::new(CredentialKind::Bearer, t).unwrap()
}

const DOWN: Refusal = Refusal::new("test.down");
const BAD: Refusal = Refusal::new("test.bad");

#[tokio::test]
async fn no_credential_is_missing() {
    let (r, calls) = fixed(Resolution::Authenticated(alice()));
    let chain = Chain::builder().resolver(r).build();
    assert_eq!(chain.resolve(None).await, Outcome::Missing);
    assert_eq!(
        chain.resolve_headers(&HeaderMap::new()).await,
        Outcome::Missing
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn order_and_outcomes() {
    // Resolvers that answer at once and resolvers that wait follow the same rules.
    for waits in [false, true] {
        // Pass, then Authenticated: authenticated; later resolvers not asked.
        let (a, _) = fixed_with(Resolution::Pass, waits);
        let (b, _) = fixed_with(Resolution::Authenticated(alice()), waits);
        let (c, c_calls) = fixed_with(Resolution::Invalid(BAD), waits);
        let chain = Chain::builder().resolver(a).resolver(b).resolver(c).build();
        assert_eq!(chain.len(), 3);
        assert_eq!(
            chain.resolve(Some(&bearer("x"))).await,
            Outcome::Authenticated(alice())
        );
        assert_eq!(c_calls.load(Ordering::SeqCst), 0);

        // Invalid stops the chain.
        let (a, _) = fixed_with(Resolution::Invalid(BAD), waits);
        let (b, b_calls) = fixed_with(Resolution::Authenticated(alice()), waits);
        let chain = Chain::builder().resolver(a).resolver(b).build();
        assert_eq!(
            chain.resolve(Some(&bearer("x"))).await,
            Outcome::Invalid(BAD)
        );
        assert_eq!(b_calls.load(Ordering::SeqCst), 0);

        // Nobody claims it: invalid (403), not missing.
        let (a, _) = fixed_with(Resolution::Pass, waits);
        let chain = Chain::builder().resolver(a).build();
        assert!(matches!(
            chain.resolve(Some(&bearer("x"))).await,
            Outcome::Invalid(r) if r.code() == "credential.unclaimed"
        ));
        // An empty chain refuses everything.
        let empty = Chain::builder().build();
        assert!(empty.is_empty());
        assert!(matches!(
            empty.resolve(Some(&bearer("x"))).await,
            Outcome::Invalid(_)
        ));
    }
}

#[tokio::test]
async fn unavailable_is_never_success_by_default() {
    // Resolvers that answer at once and resolvers that wait follow the same rules.
    for waits in [false, true] {
        // Unavailable, then nobody claims: 503.
        let (a, _) = fixed_with(Resolution::Unavailable(DOWN), waits);
        let (b, _) = fixed_with(Resolution::Pass, waits);
        let chain = Chain::builder().resolver(a).resolver(b).build();
        assert_eq!(
            chain.resolve(Some(&bearer("x"))).await,
            Outcome::Unavailable(DOWN)
        );
        // Unavailable, then a later refusal: still 503 (the first might have accepted).
        let (a, _) = fixed_with(Resolution::Unavailable(DOWN), waits);
        let (b, _) = fixed_with(Resolution::Invalid(BAD), waits);
        let chain = Chain::builder().resolver(a).resolver(b).build();
        assert_eq!(
            chain.resolve(Some(&bearer("x"))).await,
            Outcome::Unavailable(DOWN)
        );
        // Unavailable, then a resolver that proves the credential on its own: authenticated.
        let (a, _) = fixed_with(Resolution::Unavailable(DOWN), waits);
        let (b, _) = fixed_with(Resolution::Authenticated(alice()), waits);
        let chain = Chain::builder().resolver(a).resolver(b).build();
        assert_eq!(
            chain.resolve(Some(&bearer("x"))).await,
            Outcome::Authenticated(alice())
        );
    }
}

#[tokio::test]
async fn extraction_errors_are_invalid() {
    let (a, calls) = fixed(Resolution::Authenticated(alice()));
    let chain = Chain::builder().resolver(a).build();
    let mut h = HeaderMap::new();
    h.append("authorization", HeaderValue::from_static("Bearer a"));
    h.append("authorization", HeaderValue::from_static("Bearer b"));
    assert!(matches!(
        chain.resolve_headers(&h).await,
        Outcome::Invalid(r) if r.code() == "credential.duplicate"
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

const STATIC: &str = "static-token-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn static_token() {
    let r = StaticTokenResolver::new(STATIC, "bootstrap").unwrap();
    match r.resolve(&bearer(STATIC)).await {
        Resolution::Authenticated(p) => {
            assert_eq!(p.user_id(), "bootstrap");
            assert_eq!(p.method(), AuthMethod::StaticToken);
            assert_eq!(p.credential_id(), None);
        }
        other => panic!("expected authenticated, got {other:?}"),
    }
    // Prefix, extension, one byte off: passed on (may be a session or JWT).
    for t in [
        &STATIC[..10],
        &format!("{STATIC}x"),
        &STATIC.replace('0', "1"),
    ] {
        assert_eq!(r.resolve(&bearer(t)).await, Resolution::Pass);
    }
    // Other headers are not static tokens.
    let api = Credential::new(CredentialKind::ApiKey, STATIC).unwrap();
    assert_eq!(r.resolve(&api).await, Resolution::Pass);
    // Configuration checks.
    assert!(matches!(
        StaticTokenResolver::new("short", "u"),
        Err(ConfigError::SecretTooShort { .. })
    ));
    assert!(matches!(
        StaticTokenResolver::new(&format!("{STATIC} with space"), "u"),
        Err(ConfigError::SecretMalformed { .. })
    ));
    assert!(matches!(
        StaticTokenResolver::new(STATIC, ""),
        Err(ConfigError::EmptyUserId { .. })
    ));
    assert!(!format!("{r:?}").contains(STATIC));
    // In a chain through headers.
    let chain = Chain::builder().resolver(r).build();
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {STATIC}")).unwrap(),
    );
    assert!(matches!(
        chain.resolve_headers(&h).await,
        Outcome::Authenticated(_)
    ));
}

const INTERNAL: &str = "internal-secret-0123456789abcdef0123456789";

#[tokio::test]
async fn internal_secret() {
    let r = InternalSecretResolver::new(Some(INTERNAL))
        .unwrap()
        .with_user_id("billing-service")
        .unwrap();
    assert!(r.is_configured());
    let good = Credential::new(CredentialKind::InternalSecret, INTERNAL).unwrap();
    match r.resolve(&good).await {
        Resolution::Authenticated(p) => {
            assert_eq!(p.user_id(), "billing-service");
            assert_eq!(p.method(), AuthMethod::InternalService);
        }
        other => panic!("expected authenticated, got {other:?}"),
    }
    let bad = Credential::new(CredentialKind::InternalSecret, "nope").unwrap();
    assert!(matches!(r.resolve(&bad).await, Resolution::Invalid(_)));
    // A bearer token equal to the secret is not the internal header.
    assert_eq!(r.resolve(&bearer(INTERNAL)).await, Resolution::Pass);
    assert!(!format!("{r:?}").contains(INTERNAL));
}

#[tokio::test]
async fn unconfigured_internal_routes_answer_unavailable() {
    let r = InternalSecretResolver::new(None).unwrap();
    assert!(!r.is_configured());
    let chain = Chain::builder().resolver(r).build();
    // With the header, without it, with another credential: all 503.
    let mut h = HeaderMap::new();
    h.insert(
        "x-internal-secret",
        HeaderValue::from_static("anything-at-all"),
    );
    assert_eq!(
        chain.resolve_headers(&h).await,
        Outcome::Unavailable(INTERNAL_UNCONFIGURED)
    );
    assert_eq!(
        chain.resolve_headers(&HeaderMap::new()).await,
        Outcome::Unavailable(INTERNAL_UNCONFIGURED)
    );
    // The main chain (without the internal resolver) is unaffected.
    let main = Chain::builder()
        .resolver(StaticTokenResolver::new(STATIC, "bootstrap").unwrap())
        .build();
    assert!(matches!(
        main.resolve(Some(&bearer(STATIC))).await,
        Outcome::Authenticated(_)
    ));
}
