//! Two instances of the real binary on one PostgreSQL database and one Redis (README
//! "Several instances"): what one instance ends (a session, a share), the other refuses
//! within 1 s (its validity and grant caches live 500 ms), and what one
//! instance's credential cache drops, the other's drops within 1 s (cred-cache's Redis
//! invalidation channel). The paper venue is one venue for both (its state is in the
//! database): orders placed on one are listed and cancelled on the other, and both
//! report the same balances.

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
    // cache drops it within 1 s, and B refuses the account within 1 s (its grant cache
    // may answer for up to 500 ms).
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

    // The paper venue is one venue for both instances (its state is in the database):
    // an order placed on A is listed on B, a resting order placed on B is cancelled on
    // A, and both report the same balances after each step.
    a.go_live(&token, &id, "100000", "1000000").await;
    let (status, placed) = a
        .post(
            "/api/exchange/create_order",
            Some(&token),
            json!({"account_id": id, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.1"}),
        )
        .await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["dry_run"], false, "{placed}");
    let order_id = placed["result"]["order"]["id"].as_str().unwrap().to_owned();
    let (status, closed) = b
        .post("/api/exchange/closed_orders", Some(&token), balance.clone())
        .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(
        closed["result"]["orders"],
        json!([placed["result"]["order"]]),
        "the order placed on A, as B lists it"
    );
    let (status, trades) = b
        .post("/api/exchange/my_trades", Some(&token), balance.clone())
        .await;
    assert_eq!(status, 200, "{trades}");
    assert_eq!(trades["result"]["trades"][0]["order_id"], order_id.as_str());
    let venue_balances = |server: &'static str, s: &Server| {
        let (http, url, token, body) = (
            s.http.clone(),
            s.url("/api/exchange/balance"),
            token.clone(),
            balance.clone(),
        );
        async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "balance on {server}");
            res.json::<serde_json::Value>().await.unwrap()["result"]["balances"].clone()
        }
    };
    let on_b = venue_balances("B", &b).await;
    assert_eq!(on_b["USDT"]["free"], "95000", "{on_b}");
    assert_eq!(on_b["BTC"]["free"], "1.1", "{on_b}");
    assert_eq!(venue_balances("A", &a).await, on_b);

    let (status, resting) = b
        .post(
            "/api/exchange/create_order",
            Some(&token),
            json!({"account_id": id, "symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.1", "price": "40000"}),
        )
        .await;
    assert_eq!(status, 200, "{resting}");
    assert_eq!(resting["result"]["order"]["status"], "open", "{resting}");
    let resting_id = resting["result"]["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        resting_id, order_id,
        "one order sequence for both instances"
    );
    let (status, open) = a
        .post("/api/exchange/open_orders", Some(&token), balance.clone())
        .await;
    assert_eq!(status, 200, "{open}");
    assert_eq!(open["result"]["orders"][0]["id"], resting_id.as_str());
    let on_a = venue_balances("A", &a).await;
    assert_eq!(on_a["USDT"]["used"], "4000", "{on_a}");
    assert_eq!(venue_balances("B", &b).await, on_a);
    let (status, canceled) = a
        .post(
            "/api/exchange/cancel_order",
            Some(&token),
            json!({"account_id": id, "order_id": resting_id}),
        )
        .await;
    assert_eq!(status, 200, "{canceled}");
    let (status, open) = b
        .post("/api/exchange/open_orders", Some(&token), balance.clone())
        .await;
    assert_eq!(status, 200, "{open}");
    assert_eq!(open["result"]["orders"], json!([]));
    let on_b = venue_balances("B", &b).await;
    assert_eq!(on_b["USDT"]["free"], "95000", "{on_b}");
    assert_eq!(on_b["USDT"]["used"], "0", "{on_b}");
    assert_eq!(venue_balances("A", &a).await, on_b);

    // A share made on A is used on B (B's grant cache now holds it); unshared on A, B
    // refuses it within 1 s (the cache's TTL, 500 ms).
    create_user(
        dir.path(),
        &env,
        "multi-bob@example.com",
        Some(PASSWORD),
        false,
    );
    let bob = b.login("multi-bob@example.com", PASSWORD).await;
    let bob_id = b.get("/api/auth/me", Some(&bob)).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, shared) = a
        .post(
            &format!("/api/accounts/{id}/shares"),
            Some(&token),
            json!({"email": "multi-bob@example.com", "level": "read"}),
        )
        .await;
    assert_eq!(status, 201, "{shared}");
    for _ in 0..2 {
        assert_eq!(
            b.post("/api/exchange/balance", Some(&bob), balance.clone())
                .await
                .0,
            200
        );
    }
    assert_eq!(
        a.delete(&format!("/api/accounts/{id}/shares/{bob_id}"), Some(&token))
            .await,
        204
    );
    assert_eq!(
        b.post_within_1s("/api/exchange/balance", Some(&bob), balance.clone(), 404)
            .await,
        404,
        "B still honoured the share 1 s after A revoked it"
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
        b.post_within_1s("/api/exchange/balance", Some(&token), balance, 404)
            .await,
        404
    );

    drop((a, b));
    schema.drop_schema().await;
}
