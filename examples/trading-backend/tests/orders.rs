//! `create_order` through the account owner's risk limits (README "Risk limits and live
//! trading"): dry run by default, live only with limits and the switch on, 403
//! `risk_limit` naming the limit, a venue refusal releasing its reservation, the owner's
//! limits governing a grantee, decimals sent as JSON numbers read exactly, and (with
//! PostgreSQL) the daily cap held by two instances under 200 concurrent orders.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, create_user};
use serde_json::{Value, json};

const PASSWORD: &str = "orders-password-5f2a";

async fn paper_account(s: &Server, token: &str, key: &str) -> String {
    let (status, body) = s
        .post(
            "/api/accounts",
            Some(token),
            json!({"exchange": "paper", "label": key, "api_key": key, "secret": format!("{key}-secret"), "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A market buy of `amount` BTC (paper price 50000 USDT).
async fn buy(s: &Server, token: &str, account: &str, amount: Value) -> (u16, Value) {
    s.post(
        "/api/exchange/create_order",
        Some(token),
        json!({"account_id": account, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": amount}),
    )
    .await
}

async fn usage(s: &Server, token: &str) -> (String, String) {
    let (status, risk) = s.get("/api/risk", Some(token)).await;
    assert_eq!(status, 200, "{risk}");
    (
        risk["used_today"].as_str().unwrap().to_owned(),
        risk["reserved_today"].as_str().unwrap().to_owned(),
    )
}

async fn trades(s: &Server, token: &str, account: &str) -> usize {
    let (status, body) = s
        .post(
            "/api/exchange/my_trades",
            Some(token),
            json!({ "account_id": account }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["result"]["trades"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn orders_are_dry_runs_until_live_trading_and_then_held_to_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "owner@example.com", Some(PASSWORD), false);
    create_user(dir.path(), &[], "trader@example.com", Some(PASSWORD), false);
    let s = Server::start(dir.path(), &[]);
    let owner = s.login("owner@example.com", PASSWORD).await;
    let trader = s.login("trader@example.com", PASSWORD).await;
    let account = paper_account(&s, &owner, "orders-key").await;

    // No limits: a dry run, and nothing reaches the venue.
    let (status, order) = buy(&s, &owner, &account, json!("0.01")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["dry_run"], true);
    assert_eq!(trades(&s, &owner, &account).await, 0);

    // Decimals as JSON numbers are read as the digits they spell (serde_json, like
    // JavaScript, writes 0.00000001 as `1e-8`); a negative, a ninth decimal place or
    // zero is refused by name.
    let (status, order) = buy(&s, &owner, &account, json!(0.00000001)).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["result"]["order"]["amount"], "0.00000001");
    for bad in [json!(-1), json!(0.000000001), json!(0)] {
        let (status, body) = buy(&s, &owner, &account, bad.clone()).await;
        assert_eq!(
            (status, body.clone()),
            (400, json!({"error": "invalid_field", "field": "amount"})),
            "{bad}"
        );
    }

    // Live trading refused without limits (409), then on: limits apply from here.
    let (status, body) = s
        .put(
            &format!("/api/accounts/{account}/live-trading"),
            Some(&owner),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("no_risk_limits"))
    );
    s.go_live(&owner, &account, "1000", "1600").await;

    // Limits set but a dry-run order is still checked against the order maximum.
    let (status, body) = buy(&s, &owner, &account, json!("0.03")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        json!({"error": "risk_limit", "limit": "max_order_notional"})
    );

    // Live: placed and counted.
    let (status, order) = buy(&s, &owner, &account, json!("0.01")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["dry_run"], false);
    assert_eq!(order["result"]["order"]["status"], "closed");
    assert_eq!(usage(&s, &owner).await, ("500".into(), "0".into()));

    // A grantee with a trade share trades under the owner's limits and budget.
    let (status, body) = s
        .post(
            &format!("/api/accounts/{account}/shares"),
            Some(&owner),
            json!({"email": "trader@example.com", "level": "trade"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, order) = buy(&s, &trader, &account, json!("0.01")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["dry_run"], false);
    assert_eq!(usage(&s, &owner).await, ("1000".into(), "0".into()));
    let (status, body) = buy(&s, &trader, &account, json!("0.02")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body, json!({"error": "risk_limit", "limit": "daily_cap"}));

    // Off again: the next order is a dry run.
    let (status, body) = s
        .put(
            &format!("/api/accounts/{account}/live-trading"),
            Some(&owner),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = trades(&s, &owner, &account).await;
    let (status, order) = buy(&s, &owner, &account, json!("0.001")).await;
    assert_eq!(
        (status, order["dry_run"].as_bool()),
        (200, Some(true)),
        "{order}"
    );
    assert_eq!(trades(&s, &owner, &account).await, before);

    // The venue refuses an order within the limits (10 BTC = 500000 USDT, more than the
    // paper balance of 100000): its reservation is released, nothing is counted.
    create_user(dir.path(), &[], "large@example.com", Some(PASSWORD), false);
    let large = s.login("large@example.com", PASSWORD).await;
    let big = paper_account(&s, &large, "orders-large-key").await;
    s.go_live(&large, &big, "1000000", "1000000").await;
    let (status, body) = buy(&s, &large, &big, json!("10")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(usage(&s, &large).await, ("0".into(), "0".into()));
    assert_eq!(trades(&s, &large, &big).await, 0);
}

/// 200 concurrent orders of 50 USDT through two instances on one PostgreSQL database,
/// under a daily cap of 1000: exactly 20 are placed, every other is refused by the cap.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn the_daily_cap_holds_across_two_instances_under_concurrency() {
    let schema = common::pg_fresh_schema("orders").await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", schema.database_url.as_str()),
        ("STRONGROOM_RATE_LIMITS", "0"),
    ];
    let one = Server::start(dir.path(), &env);
    let two = Server::start(dir.path(), &env);
    create_user(
        dir.path(),
        &env,
        "pg-owner@example.com",
        Some(PASSWORD),
        false,
    );
    let owner = one.login("pg-owner@example.com", PASSWORD).await;
    let account = paper_account(&one, &owner, "orders-pg-key").await;
    one.go_live(&owner, &account, "100", "1000").await;

    let order = json!({"account_id": account, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.001"});
    let answers = common::orders_across(&one, &two, &owner, 200, &order).await;
    let mut placed = 0;
    for (status, body) in answers {
        match status {
            200 => {
                assert_eq!(body["dry_run"], false, "{body}");
                placed += 1;
            }
            403 => assert_eq!(body, json!({"error": "risk_limit", "limit": "daily_cap"})),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(placed, 20);
    assert_eq!(usage(&two, &owner).await, ("1000".into(), "0".into()));
    drop((one, two));
    schema.drop_schema().await;
}
