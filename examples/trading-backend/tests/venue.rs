//! The paper venue shared by two instances of the real binary on one database (README
//! "Several instances"): orders of one account sent to both instances at once are
//! filled against one balance, none lost and none spending the same funds twice.
//!
//! 40 market sells of 0.05 BTC from an account holding 1 BTC, half through each
//! instance, at once: exactly 20 fill, the other 20 are refused `insufficient_funds`,
//! and both instances then report 0 BTC, 150 000 USDT and 20 trades. With a venue per
//! process each instance would fill 20 of its own (40 in all); with a lost update more
//! than 20 would fill, or the balances would not add up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, create_user};
use serde_json::json;

const PASSWORD: &str = "venue-password-3b7e";

async fn concurrent_sells_on_two_instances(dir: &std::path::Path, env: &[(&str, &str)]) {
    let one = Server::start(dir, env);
    let two = Server::start(dir, env);
    create_user(dir, env, "venue@example.com", Some(PASSWORD), false);
    let owner = one.login("venue@example.com", PASSWORD).await;
    let (status, account) = one
        .post(
            "/api/accounts",
            Some(&owner),
            json!({"exchange": "paper", "label": "shared", "api_key": "venue-key", "secret": "venue-secret", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let account = account["id"].as_str().unwrap().to_owned();
    one.go_live(&owner, &account, "100000", "1000000").await;

    let order = json!({"account_id": account, "symbol": "BTC/USDT", "side": "sell", "type": "market", "amount": "0.05"});
    let answers = common::orders_across(&one, &two, &owner, 40, &order).await;
    let mut filled = 0;
    for (status, body) in answers {
        match status {
            200 => {
                assert_eq!(body["dry_run"], false, "{body}");
                assert_eq!(body["result"]["order"]["status"], "closed", "{body}");
                filled += 1;
            }
            422 => assert_eq!(body, json!({"error": "insufficient_funds"})),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(filled, 20, "1 BTC holds exactly 20 sells of 0.05");

    let body = json!({ "account_id": account });
    let mut seen = Vec::new();
    for server in [&one, &two] {
        let (status, balance) = server
            .post("/api/exchange/balance", Some(&owner), body.clone())
            .await;
        assert_eq!(status, 200, "{balance}");
        let balances = balance["result"]["balances"].clone();
        assert_eq!(balances["BTC"]["total"], "0", "{balances}");
        assert_eq!(balances["USDT"]["total"], "150000", "{balances}");
        let (status, trades) = server
            .post("/api/exchange/my_trades", Some(&owner), body.clone())
            .await;
        assert_eq!(status, 200, "{trades}");
        assert_eq!(trades["result"]["trades"].as_array().unwrap().len(), 20);
        seen.push(balances);
    }
    assert_eq!(seen[0], seen[1], "both instances report one balance");
}

/// Two instances on one SQLite file (one data directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_on_one_account_across_two_instances_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_sells_on_two_instances(dir.path(), &[("STRONGROOM_RATE_LIMITS", "0")]).await;
}

/// Two instances on one PostgreSQL schema.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn concurrent_orders_on_one_account_across_two_instances_on_postgres() {
    let schema = common::pg_fresh_schema("venue").await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", schema.database_url.as_str()),
        ("STRONGROOM_RATE_LIMITS", "0"),
    ];
    concurrent_sells_on_two_instances(dir.path(), &env).await;
    schema.drop_schema().await;
}
