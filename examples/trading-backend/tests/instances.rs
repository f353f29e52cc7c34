//! Two instances of the real binary on one PostgreSQL database and one Redis (README
//! "Several instances"): what one instance ends, the other refuses at once (sessions,
//! keys and grants are read from the shared database on every request), and what one
//! instance's credential cache drops, the other's drops within 1 s (cred-cache's Redis
//! invalidation channel).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![cfg(feature = "postgres")]

use crate::common;

use std::time::{Duration, Instant};

use common::{Server, create_user, metric};
use serde_json::json;

const PASSWORD: &str = "instances-password-8c1d";

async fn scrape(server: &Server, series: &str) -> f64 {
    let text = server
        .http
        .get(server.metrics_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(&text, series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and Redis (STRONGROOM_PG_URL, STRONGROOM_REDIS_URL)"]
async fn two_instances_share_sessions_revocations_and_cache_invalidations() {
    let schema = common::pg_fresh_schema("instances").await;
    let redis = common::redis_url();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", schema.database_url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ];
    // One data directory: both instances use its development master key.
    let a = Server::start(dir.path(), &env);
    let b = Server::start(dir.path(), &env);
    for server in [&a, &b] {
        let (status, ready) = server.get("/readyz", None).await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["checks"]["cache_invalidation"], "ok", "{ready}");
    }
    create_user(dir.path(), &env, "multi@example.com", Some(PASSWORD), false);

    // A login on A works on B; a logout on A is refused on B within 1 s (B answered the
    // session from its validity cache, which lives 500 ms).
    let first = a.login("multi@example.com", PASSWORD).await;
    assert_eq!(b.get("/api/auth/me", Some(&first)).await.0, 200);
    assert_eq!(
        a.post("/api/auth/logout", Some(&first), json!({})).await.0,
        204
    );
    assert_eq!(
        b.get_within_1s("/api/auth/me", Some(&first), 403).await,
        403
    );

    // A password change on A ends B's view of every session of the user.
    let session = a.login("multi@example.com", PASSWORD).await;
    let other = b.login("multi@example.com", PASSWORD).await;
    assert_eq!(b.get("/api/auth/me", Some(&other)).await.0, 200);
    let (status, body) = a
        .post(
            "/api/auth/password",
            Some(&session),
            json!({"old_password": PASSWORD, "new_password": "instances-password-9e2f"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        b.get_within_1s("/api/auth/me", Some(&other), 403).await,
        403
    );
    let session = b
        .login("multi@example.com", "instances-password-9e2f")
        .await;

    // Sign-out everywhere on A: B refuses the session too.
    assert_eq!(b.get("/api/auth/me", Some(&session)).await.0, 200);
    let spare = a
        .login("multi@example.com", "instances-password-9e2f")
        .await;
    assert_eq!(
        a.post("/api/auth/logout-all", Some(&spare), json!({}))
            .await
            .0,
        204
    );
    assert_eq!(
        b.get_within_1s("/api/auth/me", Some(&session), 403).await,
        403
    );
    let token = a
        .login("multi@example.com", "instances-password-9e2f")
        .await;

    // An account used through B (its credential now in B's cache), deleted on A: B's
    // cache drops it within 1 s, and B refuses the account at once.
    let (status, account) = a
        .post(
            "/api/accounts",
            Some(&token),
            json!({"exchange": "paper", "label": "multi", "api_key": "multi-key", "secret": "multi-secret", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let id = account["id"].as_str().unwrap().to_owned();
    let balance = json!({ "account_id": id });
    assert_eq!(
        b.post("/api/exchange/balance", Some(&token), balance.clone())
            .await
            .0,
        200
    );
    let series = "strongroom_cred_cache_invalidations_total";
    let before = scrape(&b, series).await;
    assert_eq!(
        a.delete(&format!("/api/accounts/{id}"), Some(&token)).await,
        204
    );
    let started = Instant::now();
    loop {
        if scrape(&b, series).await > before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B's cache still held the deleted account's credential after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        b.post("/api/exchange/balance", Some(&token), balance)
            .await
            .0,
        404
    );

    drop((a, b));
    schema.drop_schema().await;
}
