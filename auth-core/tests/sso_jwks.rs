//! JWKS cache behaviour against a real HTTP server on 127.0.0.1: rotation, TTL refresh,
//! outages, size caps, timeouts, redirects, single flight under 1000 concurrent misses.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use auth_core::sso::{CachePolicy, IssuerConfig, Reason, SsoVerifier, danger};
use serde_json::json;
use sso_common::*;

static K1: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("k1"));
static K2: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("k2"));

fn verifier_for(url: String, policy: CachePolicy) -> SsoVerifier {
    SsoVerifier::builder()
        .issuer(
            danger::allow_plain_http(IssuerConfig::remote(ISS_A, url))
                .audience(AUD)
                .cache_policy(policy)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn verifier(server: &JwksServer, policy: CachePolicy) -> SsoVerifier {
    verifier_for(server.url("/jwks"), policy)
}

/// A token naming `kid` with a junk signature (for lookups that never reach the
/// signature check).
fn unsigned_with_kid(kid: &str) -> String {
    mint(
        &json!({"alg": "RS256", "kid": kid}).to_string(),
        &claims(ISS_A).to_string(),
        |_| vec![7u8; 256],
    )
}

async fn reason(v: &SsoVerifier, token: &str) -> Reason {
    v.verify(token).await.unwrap_err().reason()
}

async fn wait_for_hits(server: &JwksServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.hits() < n {
        assert!(
            Instant::now() < deadline,
            "expected {n} fetches, saw {}",
            server.hits()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn rotation_is_picked_up_and_rotated_out_keys_are_dropped() {
    let server = JwksServer::serving(&[K1.jwk()]).await;
    let v = verifier(
        &server,
        CachePolicy::default().cooldown(Duration::from_secs(1)),
    );
    let t1 = K1.token(&claims(ISS_A));
    let t2 = K2.token(&claims(ISS_A));
    v.verify(&t1).await.unwrap();
    assert_eq!(server.hits(), 1);

    // The issuer rotates: k2 in, k1 out.
    server.set_keys(&[K2.jwk()]);
    // Within the cooldown the unknown kid does not cause a fetch.
    assert_eq!(reason(&v, &t2).await, Reason::UnknownKid);
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // After it, the unknown kid triggers one refresh that finds k2.
    v.verify(&t2).await.unwrap();
    assert_eq!(server.hits(), 2);
    assert_eq!(v.cached_key_count(ISS_A), 1);
    // k1 was dropped with the refresh: its tokens are refused from now on.
    assert_eq!(reason(&v, &t1).await, Reason::UnknownKid);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(reason(&v, &t1).await, Reason::UnknownKid);
    assert_eq!(server.hits(), 3);
    v.verify(&t2).await.unwrap();
}

#[tokio::test]
async fn ttl_from_cache_control_triggers_a_background_refresh() {
    let server = JwksServer::start(Mode::Json {
        body: jwks(&[K1.jwk()]),
        cache_control: Some("public, max-age=1".into()),
    })
    .await;
    let policy = CachePolicy::default()
        .ttl_bounds(Duration::from_secs(1), Duration::from_secs(3600))
        .cooldown(Duration::from_millis(100));
    let v = verifier(&server, policy);
    let t1 = K1.token(&claims(ISS_A));
    v.verify(&t1).await.unwrap();
    assert_eq!(server.hits(), 1);
    // Fresh: no refetch.
    v.verify(&t1).await.unwrap();
    assert_eq!(server.hits(), 1);

    server.set_mode(Mode::Json {
        body: jwks(&[K1.jwk(), K2.jwk()]),
        cache_control: Some("max-age=3600".into()),
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stale: served from cache at once, one refresh runs in the background.
    v.verify(&t1).await.unwrap();
    wait_for_hits(&server, 2).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while v.cached_key_count(ISS_A) != 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // k2 now verifies without another fetch, and max-age=3600 keeps the keys fresh.
    v.verify(&K2.token(&claims(ISS_A))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    v.verify(&t1).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn cache_control_is_honoured_only_within_bounds() {
    // max-age=0 (and no-store) would mean a fetch per request: the minimum TTL wins.
    let server = JwksServer::start(Mode::Json {
        body: jwks(&[K1.jwk()]),
        cache_control: Some("no-store, max-age=0".into()),
    })
    .await;
    let policy = CachePolicy::default()
        .ttl_bounds(Duration::from_secs(60), Duration::from_secs(3600))
        .cooldown(Duration::ZERO);
    let v = verifier(&server, policy);
    let t1 = K1.token(&claims(ISS_A));
    for _ in 0..20 {
        v.verify(&t1).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    v.verify(&t1).await.unwrap();
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn outage_is_survived_with_the_last_good_keys() {
    let server = JwksServer::start(Mode::Json {
        body: jwks(&[K1.jwk()]),
        cache_control: Some("max-age=1".into()),
    })
    .await;
    let policy = CachePolicy::default()
        .ttl_bounds(Duration::from_secs(1), Duration::from_secs(3600))
        .cooldown(Duration::from_millis(100))
        .timeout(Duration::from_millis(500));
    let v = verifier(&server, policy);
    let t1 = K1.token(&claims(ISS_A));
    v.verify(&t1).await.unwrap();

    let outages = [
        Mode::Status(500),
        Mode::Status(404),
        Mode::Garbage,
        // A JWKS without any usable key, or where k1 became a symmetric key.
        Mode::Json {
            body: jwks(&[]),
            cache_control: None,
        },
        Mode::Json {
            body: jwks(&[json!({"kty": "oct", "kid": "k1", "k": b64("secret")})]),
            cache_control: None,
        },
        Mode::Big(200_000),
        Mode::Hang,
    ];
    for mode in outages {
        server.set_mode(mode.clone());
        let hits = server.hits();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // The keys are stale and every refresh fails: k1 keeps verifying.
        v.verify(&t1).await.unwrap();
        wait_for_hits(&server, hits + 1).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        v.verify(&t1).await.unwrap();
        assert_eq!(v.cached_key_count(ISS_A), 1, "{mode:?}");
        // An unknown kid cannot be ruled on while the endpoint fails: 503, not 403.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let err = v.verify(&unsigned_with_kid("new-key")).await.unwrap_err();
        assert!(err.is_unavailable(), "{mode:?}: {err:?}");
    }

    // The endpoint recovers with a rotated set.
    server.set_keys(&[K2.jwk()]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    v.verify(&K2.token(&claims(ISS_A))).await.unwrap();
    assert_eq!(reason(&v, &t1).await, Reason::UnknownKid);
}

#[tokio::test]
async fn stale_keys_stop_serving_after_max_stale() {
    let server = JwksServer::start(Mode::Json {
        body: jwks(&[K1.jwk()]),
        cache_control: Some("max-age=1".into()),
    })
    .await;
    let policy = CachePolicy::default()
        .ttl_bounds(Duration::from_secs(1), Duration::from_secs(3600))
        .cooldown(Duration::from_millis(100))
        .max_stale(Duration::from_secs(1));
    let v = verifier(&server, policy);
    let t1 = K1.token(&claims(ISS_A));
    v.verify(&t1).await.unwrap();
    server.set_mode(Mode::Status(503));
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let err = v.verify(&t1).await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(err.reason(), Reason::JwksUnavailable);
}

#[tokio::test]
async fn no_good_keys_means_unavailable_never_allowed() {
    let t1 = K1.token(&claims(ISS_A));
    // Endpoint answering errors from the start.
    let server = JwksServer::start(Mode::Status(503)).await;
    let v = verifier(&server, CachePolicy::default());
    let err = v.verify(&t1).await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(err.reason(), Reason::JwksUnavailable);
    assert_eq!(
        err.to_string(),
        "SSO token could not be verified: identity provider unavailable"
    );
    // Nothing listening at all.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let v = verifier_for(
        format!("http://127.0.0.1:{port}/jwks"),
        CachePolicy::default(),
    );
    assert!(v.verify(&t1).await.unwrap_err().is_unavailable());
    assert_eq!(v.prefetch().await, 0);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = JwksServer::serving(&[K1.jwk()]).await;
    let v = verifier_for(server.url("/redirect"), CachePolicy::default());
    let err = v.verify(&K1.token(&claims(ISS_A))).await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(server.hits(), 0, "the redirect target was fetched");
}

#[tokio::test]
async fn oversized_and_endless_bodies_are_cut_off() {
    let t1 = K1.token(&claims(ISS_A));
    let policy = CachePolicy::default()
        .max_body_bytes(16 * 1024)
        .timeout(Duration::from_secs(20));
    // With a Content-Length above the cap.
    let server = JwksServer::start(Mode::Big(100_000)).await;
    let v = verifier(&server, policy.clone());
    assert!(v.verify(&t1).await.unwrap_err().is_unavailable());
    // Endless chunked body: reading stops at the cap, long before the 20 s timeout.
    let server = JwksServer::start(Mode::Endless).await;
    let v = verifier(&server, policy.clone());
    let started = Instant::now();
    assert!(v.verify(&t1).await.unwrap_err().is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A body within the cap works with the same policy.
    let server = JwksServer::serving(&[K1.jwk()]).await;
    verifier(&server, policy).verify(&t1).await.unwrap();
}

#[tokio::test]
async fn a_hanging_endpoint_times_out() {
    let server = JwksServer::start(Mode::Hang).await;
    let v = verifier(
        &server,
        CachePolicy::default().timeout(Duration::from_millis(300)),
    );
    let started = Instant::now();
    let err = v.verify(&K1.token(&claims(ISS_A))).await.unwrap_err();
    assert!(err.is_unavailable());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_unknown_kids_cause_one_fetch_per_cooldown() {
    let server = JwksServer::serving(&[K1.jwk()]).await;
    // A slow endpoint, so that the misses really overlap the fetch.
    server.set_delay(Duration::from_millis(200));
    let v = Arc::new(verifier(
        &server,
        CachePolicy::default().cooldown(Duration::from_secs(5)),
    ));
    let wave = |tag: &'static str| {
        let v = Arc::clone(&v);
        async move {
            let tasks: Vec<_> = (0..1000)
                .map(|i| {
                    let v = Arc::clone(&v);
                    let token = unsigned_with_kid(&format!("{tag}-{i}"));
                    tokio::spawn(async move { v.verify(&token).await.unwrap_err().reason() })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), Reason::UnknownKid);
            }
        }
    };
    // Cold cache: 1000 concurrent misses, one fetch.
    wave("cold").await;
    assert_eq!(server.hits(), 1);
    // Again within the cooldown: no fetch.
    wave("again").await;
    assert_eq!(server.hits(), 1);
    // After the cooldown: exactly one more.
    tokio::time::sleep(Duration::from_millis(5100)).await;
    wave("later").await;
    assert_eq!(server.hits(), 2);
    // The real key still verifies without fetching.
    v.verify(&K1.token(&claims(ISS_A))).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn several_issuers_with_colliding_kids() {
    // Two issuers that both publish a key named "shared" (different keys).
    let a_key = RsaSigner::generate("shared");
    let b_key = RsaSigner::generate("shared");
    let a = JwksServer::serving(&[a_key.jwk()]).await;
    let b = JwksServer::serving(&[b_key.jwk()]).await;
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
    assert_eq!(v.prefetch().await, 2);
    let id = v.verify(&a_key.token(&claims(ISS_A))).await.unwrap();
    assert_eq!(id.issuer(), ISS_A);
    let id = v.verify(&b_key.token(&claims(ISS_B))).await.unwrap();
    assert_eq!(id.issuer(), ISS_B);
    // B's key cannot speak for A even under the shared kid.
    let forged = b_key.token(&claims(ISS_A));
    assert_eq!(reason(&v, &forged).await, Reason::BadSignature);
    assert_eq!((a.hits(), b.hits()), (1, 1));
}

#[tokio::test]
async fn https_is_required_and_a_failed_tls_handshake_is_unavailable() {
    let server = JwksServer::serving(&[K1.jwk()]).await;
    // Plain http without the danger option: a configuration error.
    let err = IssuerConfig::remote(ISS_A, server.url("/jwks"))
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, auth_core::sso::SsoConfigError::InsecureJwksUrl { .. }),
        "{err:?}"
    );
    // https to a server that does not speak TLS: the handshake fails, nothing is served,
    // and the token cannot be ruled on.
    let url = format!("https://{}/jwks", server.addr);
    let v = SsoVerifier::builder()
        .issuer(
            IssuerConfig::remote(ISS_A, url)
                .audience(AUD)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = v.verify(&K1.token(&claims(ISS_A))).await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(server.hits(), 0);
}
