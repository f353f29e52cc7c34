//! `GET /metrics` (module `app::metrics`): only on its own listener (`METRICS_ADDR`), in
//! the Prometheus text format; requests by matched route (never the raw path) and
//! status, latency histograms, refusals by reason code, and the libraries' counters
//! (cred-cache, password hashing, audit writer); no secret in it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::time::Duration;

use common::{Server, create_user};
use serde_json::json;

const PASSWORD: &str = "metrics-password-canary-7f3a";
const VENUE_SECRET: &str = "metrics-venue-secret-canary-91c2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener_count_requests_refusals_and_libraries() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "m@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &[("METRICS_ADDR", "127.0.0.1:0")]);
    let url = server.metrics_url();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );

    // Not on the service's address (counted below as an unmatched 404).
    let (status, _) = server.get("/metrics", None).await;
    assert_eq!(status, 404);
    // Some traffic: a health check, a refusal, a path without a route, a login, a
    // balance twice (a cache miss, then a hit).
    assert_eq!(server.get("/healthz", None).await.0, 200);
    assert_eq!(server.get("/api/auth/me", None).await.0, 401);
    assert_eq!(server.get("/no/such/path-canary", None).await.0, 404);
    let token = server.login("m@example.com", PASSWORD).await;
    let (status, account) = server
        .post(
            "/api/accounts",
            Some(&token),
            json!({"exchange": "paper", "label": "m", "api_key": "metrics-key", "secret": VENUE_SECRET, "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let body = json!({"account_id": account["id"]});
    for _ in 0..2 {
        let (status, _) = server
            .post("/api/exchange/balance", Some(&token), body.clone())
            .await;
        assert_eq!(status, 200);
    }
    // The login's audit event is written by the writer task: wait for it.
    let mut text = String::new();
    for _ in 0..100 {
        let response = server.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        text = response.text().await.unwrap();
        if common::metric(&text, "strongroom_audit_events_written_total").is_some_and(|v| v >= 1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let series = |s: &str| common::metric(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(
        series(r#"strongroom_http_requests_total{method="GET",route="/healthz",status="200"}"#),
        1.0
    );
    assert_eq!(
        series(
            r#"strongroom_http_requests_total{method="POST",route="/api/exchange/{operation}",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        series(r#"strongroom_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        2.0
    );
    assert_eq!(
        series(r#"strongroom_http_request_duration_seconds_count{method="GET",route="/healthz"}"#),
        1.0
    );
    assert_eq!(
        series(
            r#"strongroom_http_request_duration_seconds_bucket{method="GET",route="/healthz",le="+Inf"}"#
        ),
        1.0
    );
    // Refusals by reason code: auth-core's, and one named after the status.
    assert_eq!(
        series(r#"strongroom_refusals_total{code="credential.missing"}"#),
        1.0
    );
    assert_eq!(
        series(r#"strongroom_refusals_total{code="not_found"}"#),
        2.0
    );
    // The libraries' counters.
    assert!(series("strongroom_cred_cache_hits_total") >= 1.0);
    assert!(series("strongroom_cred_cache_misses_total") >= 1.0);
    // auth-core's validity cache: the session was looked up for the account and both
    // balances (a hit or a miss each, depending on its 500 ms TTL), the first a miss.
    let (hits, misses) = (
        series("strongroom_validity_cache_hits_total"),
        series("strongroom_validity_cache_misses_total"),
    );
    assert!(misses >= 1.0 && hits + misses >= 3.0, "{hits} {misses}");
    // grant-policy's grant cache: the grant of (user, account) was read for both
    // balances (the first from the database: the account's registration had dropped its
    // entries, before and after the write).
    let (hits, misses) = (
        series("strongroom_grant_cache_hits_total"),
        series("strongroom_grant_cache_misses_total"),
    );
    assert!(misses >= 1.0 && hits + misses >= 2.0, "{hits} {misses}");
    assert!(series("strongroom_grant_cache_invalidations_total") >= 2.0);
    assert!(series("strongroom_password_hash_operations_total") >= 1.0);
    assert_eq!(series("strongroom_password_hash_queue_depth"), 0.0);
    assert!(series("strongroom_audit_events_written_total") >= 1.0);
    assert!(series("strongroom_audit_batches_total") >= 1.0);
    assert!(series("strongroom_audit_append_seconds_total") > 0.0);
    assert!(series("strongroom_audit_commit_seconds_total") > 0.0);
    assert!(
        series("strongroom_audit_commit_seconds_total")
            <= series("strongroom_audit_append_seconds_total")
    );
    // Never a raw path, a credential or a secret.
    for canary in ["path-canary", PASSWORD, VENUE_SECRET, token.as_str()] {
        assert!(!text.contains(canary), "{canary} in the metrics");
    }
}

#[test]
fn metrics_address_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["nine", "127.0.0.1", "127.0.0.1:8080"] {
        let out = common::cli(
            dir.path(),
            &[("METRICS_ADDR", bad), ("LISTEN_ADDR", "127.0.0.1:8080")],
            &["serve"],
        );
        assert!(!out.status.success(), "{bad} accepted");
        let err = common::stderr(&out);
        assert!(err.contains("METRICS_ADDR"), "{bad}: {err}");
    }
}
