//! grant-policy's grant cache in the service (on with `STRONGROOM_VALIDITY_CACHE_MS`):
//! repeated exchange requests are decided from memory, and every grant change made
//! through this instance (unshare, re-share at another level, account deletion) is seen
//! by the very next request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, create_user, metric};
use serde_json::json;

const ALICE: &str = "grant-cache-alice@example.com";
const BOB: &str = "grant-cache-bob@example.com";
const PASSWORD: &str = "grant-cache-password-4b7e";

async fn grant_hits(server: &Server) -> f64 {
    let text = server
        .http
        .get(server.metrics_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric(&text, "strongroom_grant_cache_hits_total").unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_change_on_this_instance_is_seen_by_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], ALICE, Some(PASSWORD), false);
    create_user(dir.path(), &[], BOB, Some(PASSWORD), false);
    // A TTL of a whole second: a change that left a stale entry would answer for it.
    let server = Server::start(
        dir.path(),
        &[
            ("METRICS_ADDR", "127.0.0.1:0"),
            ("STRONGROOM_VALIDITY_CACHE_MS", "1000"),
        ],
    );
    let alice = server.login(ALICE, PASSWORD).await;
    let bob = server.login(BOB, PASSWORD).await;
    let (status, account) = server
        .post(
            "/api/accounts",
            Some(&alice),
            json!({"exchange": "paper", "label": "shared", "api_key": "gc-key", "secret": "gc-secret", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let id = account["id"].as_str().unwrap().to_owned();
    let body = json!({ "account_id": id });
    let shares = format!("/api/accounts/{id}/shares");
    let share = |level: &'static str| {
        server.post(&shares, Some(&alice), json!({"email": BOB, "level": level}))
    };
    let order = json!({"account_id": id, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"});

    assert_eq!(share("read").await.0, 201);
    let bob_id = server.get("/api/auth/me", Some(&bob)).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Bob's balance twice: the second decision is answered from memory.
    let hits = grant_hits(&server).await;
    for _ in 0..2 {
        let (status, balance) = server
            .post("/api/exchange/balance", Some(&bob), body.clone())
            .await;
        assert_eq!(status, 200, "{balance}");
    }
    assert!(grant_hits(&server).await > hits, "no grant cache hit");
    // Read only: an order is refused, from memory too.
    for _ in 0..2 {
        let (status, _) = server
            .post("/api/exchange/create_order", Some(&bob), order.clone())
            .await;
        assert_eq!(status, 403);
    }

    // Raised to trade: the next order is decided on the new share (dry run: no limits).
    assert_eq!(share("trade").await.0, 201);
    let (status, placed) = server
        .post("/api/exchange/create_order", Some(&bob), order.clone())
        .await;
    assert_eq!(status, 200, "{placed}");

    // Unshared: the very next request is refused, though the entry was fresh.
    assert_eq!(
        server
            .post("/api/exchange/balance", Some(&bob), body.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .delete(&format!("/api/accounts/{id}/shares/{bob_id}"), Some(&alice))
            .await,
        204
    );
    assert_eq!(
        server
            .post("/api/exchange/balance", Some(&bob), body.clone())
            .await
            .0,
        404,
        "a revoked share was honoured on the instance that revoked it"
    );

    // The account deleted: refused to its owner at once as well.
    assert_eq!(
        server
            .post("/api/exchange/balance", Some(&alice), body.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .delete(&format!("/api/accounts/{id}"), Some(&alice))
            .await,
        204
    );
    assert_eq!(
        server
            .post("/api/exchange/balance", Some(&alice), body)
            .await
            .0,
        404
    );
}
