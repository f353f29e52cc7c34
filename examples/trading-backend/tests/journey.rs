//! The whole journey against the real binary: CLI user creation, forced password change,
//! exchange accounts, paper orders, sharing and revocation, withdrawals, API keys,
//! secrets, WebSocket authentication, logout; then the raw SQLite files and the captured
//! logs are scanned for every canary secret.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, create_user, file_contains};
use serde_json::json;

const ALICE_PW: &str = "CANARY-alice-initial-pw-5b1e";
const ALICE_NEW_PW: &str = "CANARY-alice-new-pw-77c2d";
const BOB_PW: &str = "CANARY-bob-pw-0d9a3e1";
const EXCH_KEY: &str = "CANARY-exchange-key-a1b2c3";
const EXCH_SECRET: &str = "CANARY-exchange-secret-d4e5f6";
const RO_SECRET: &str = "CANARY-readonly-secret-9f8e7d";
const USER_SECRET: &str = "CANARY-user-secret-value-3c4d";

async fn ws_status(server: &Server, query: &str, bearer: Option<&str>) -> u16 {
    let mut req = server
        .http
        .get(server.url(&format!("/ws{query}")))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_journey_and_no_canary_at_rest_or_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_user(&data, &[], "alice@example.com", Some(ALICE_PW), true);
    create_user(&data, &[], "bob@example.com", Some(BOB_PW), false);
    let mut server = Server::start(&data, &[]);
    let mut seen = Vec::new();

    // Health needs nothing; the API needs a credential.
    assert_eq!(server.get("/healthz", None).await.0, 200);
    assert_eq!(server.get("/api/auth/me", None).await.0, 401);
    assert_eq!(server.get("/api/auth/me", Some("not-a-token")).await.0, 403);
    assert_eq!(server.get("/api/accounts", Some("ses_forged")).await.0, 403);
    assert_eq!(
        server
            .post("/api/exchange/balance", None, json!({}))
            .await
            .0,
        401
    );

    // Forced password change.
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "alice@example.com", "password": "wrong-password-123"}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "alice@example.com", "password": ALICE_PW}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["password_change_required"], true);
    assert!(body["expires_at"].as_i64().unwrap() > 0);
    let restricted = body["token"].as_str().unwrap().to_owned();
    for (i, (status, body)) in [
        server.get("/api/auth/me", Some(&restricted)).await,
        server.get("/api/accounts", Some(&restricted)).await,
        server.post("/api/keys", Some(&restricted), json!({})).await,
        // Every other route a restricted session might try (review).
        server.get("/api/keys", Some(&restricted)).await,
        server
            .post(
                "/api/accounts",
                Some(&restricted),
                json!({"exchange": "paper", "label": "x", "api_key": "k", "api_secret": "s"}),
            )
            .await,
        server
            .post(
                "/api/accounts/a-1/shares",
                Some(&restricted),
                json!({"user_id": "u-1", "level": "read"}),
            )
            .await,
        server
            .post(
                "/api/exchange/balance",
                Some(&restricted),
                json!({"account_id": "a-1"}),
            )
            .await,
        server
            .post(
                "/api/exchange/create_order",
                Some(&restricted),
                json!({"account_id": "a-1"}),
            )
            .await,
        server
            .post(
                "/api/secrets",
                Some(&restricted),
                json!({"name": "n", "value": "v"}),
            )
            .await,
        server.get("/api/secrets", Some(&restricted)).await,
        server.get("/ws", Some(&restricted)).await,
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(status, 403, "request {i}: {body}");
        assert_eq!(
            body,
            json!({"error": "password_change_required"}),
            "request {i}"
        );
    }
    // Not a WebSocket handshake: the query token is not even read.
    assert_eq!(
        server.get(&format!("/ws?token={restricted}"), None).await.0,
        401
    );
    for path in [
        "/api/keys/k-1",
        "/api/accounts/a-1",
        "/api/accounts/a-1/shares/u-1",
        "/api/secrets/n",
    ] {
        assert_eq!(server.delete(path, Some(&restricted)).await, 403, "{path}");
    }
    let (status, _) = server
        .post(
            "/api/auth/password",
            Some(&restricted),
            json!({"old_password": "wrong-password-123", "new_password": ALICE_NEW_PW}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = server
        .post(
            "/api/auth/password",
            Some(&restricted),
            json!({"old_password": ALICE_PW, "new_password": "short"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("new_password"))
    );
    // The forced change must change the password.
    let (status, body) = server
        .post(
            "/api/auth/password",
            Some(&restricted),
            json!({"old_password": ALICE_PW, "new_password": ALICE_PW}),
        )
        .await;
    assert_eq!((status, body), (400, json!({"error": "same_password"})));
    let (status, _) = server
        .post(
            "/api/auth/password",
            Some(&restricted),
            json!({"old_password": ALICE_PW, "new_password": ALICE_NEW_PW}),
        )
        .await;
    assert_eq!(status, 204);
    // Changing the password revoked every session, the restricted one included.
    assert_eq!(server.get("/api/auth/me", Some(&restricted)).await.0, 403);
    let alice = server.login("alice@example.com", ALICE_NEW_PW).await;
    let (status, me) = server.get("/api/auth/me", Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["auth_method"], "session");
    let alice_id = me["user_id"].as_str().unwrap().to_owned();

    // Register an exchange account: metadata only comes back.
    let (status, account) = server
        .post(
            "/api/accounts",
            Some(&alice),
            json!({"exchange": "paper", "label": "main", "api_key": EXCH_KEY, "secret": EXCH_SECRET, "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    seen.push(account.to_string());
    assert_eq!(account["access_level"], "trade");
    assert_eq!(account["shared"], false);
    assert_eq!(account["read_only"], false);
    let account_id = account["id"].as_str().unwrap().to_owned();
    // Bad input names the field.
    let (status, body) = server
        .post("/api/accounts", Some(&alice), json!({"exchange": "nowhere", "label": "x", "api_key": "k", "secret": "s", "read_only": false}))
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("exchange")));
    let (status, body) = server
        .post("/api/accounts", Some(&alice), json!({"exchange": "paper", "label": "x", "api_key": "k", "secret": "with space", "read_only": false}))
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("secret")));
    // The same venue key with another secret is refused by the venue.
    let (status, body) = server
        .post("/api/accounts", Some(&alice), json!({"exchange": "paper", "label": "x", "api_key": EXCH_KEY, "secret": "other-secret", "read_only": false}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("exchange_rejected_credentials"))
    );

    // Balance, then a paper order.
    let (status, balance) = server
        .post(
            "/api/exchange/balance",
            Some(&alice),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["result"]["balances"]["USDT"]["free"], "100000");
    // A new user starts in dry run: the order is checked and simulated, the venue never
    // sees it. The amount may be a JSON number, read exactly as the digits it spells.
    let (status, order) = server
        .post(
            "/api/exchange/create_order",
            Some(&alice),
            json!({"account_id": account_id, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": 0.01}),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["dry_run"], true, "{order}");
    assert_eq!(order["result"]["order"]["status"], "dry_run");
    assert_eq!(order["result"]["order"]["amount"], "0.01");
    assert_eq!(order["result"]["order"]["notional"], "500");
    // Live trading: limits, then the switch (the venue accepts the credential).
    server.go_live(&alice, &account_id, "1000", "1200").await;
    let (status, order) = server
        .post(
            "/api/exchange/create_order",
            Some(&alice),
            json!({"account_id": account_id, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"}),
        )
        .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["dry_run"], false, "{order}");
    assert_eq!(order["result"]["order"]["status"], "closed");
    // Over the order maximum (0.05 BTC = 2500), then over what is left of the daily cap
    // (1200 - 500 spent = 700 < 0.02 BTC = 1000): refused by name, nothing placed.
    for (amount, limit) in [("0.05", "max_order_notional"), ("0.02", "daily_cap")] {
        let (status, body) = server
            .post(
                "/api/exchange/create_order",
                Some(&alice),
                json!({"account_id": account_id, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": amount}),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body, json!({"error": "risk_limit", "limit": limit}));
    }
    let (_, balance) = server
        .post(
            "/api/exchange/balance",
            Some(&alice),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(balance["result"]["balances"]["USDT"]["free"], "99500");
    assert_eq!(balance["result"]["balances"]["BTC"]["free"], "1.01");
    let (status, body) = server
        .post(
            "/api/exchange/create_order",
            Some(&alice),
            json!({"account_id": account_id, "symbol": "BTC/USDT", "side": "buy", "amount": "-1"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("amount")));
    for op in ["open_orders", "my_trades", "positions", "ledger"] {
        let (status, body) = server
            .post(
                &format!("/api/exchange/{op}"),
                Some(&alice),
                json!({"account_id": account_id}),
            )
            .await;
        assert_eq!(status, 200, "{op}: {body}");
    }
    let (status, body) = server
        .post(
            "/api/exchange/teleport",
            Some(&alice),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("operation")));
    // Withdrawals: never, not even for the owner of a trade key.
    for op in ["withdraw", "transfer"] {
        let (status, body) = server
            .post(
                &format!("/api/exchange/{op}"),
                Some(&alice),
                json!({"account_id": account_id, "amount": "1"}),
            )
            .await;
        assert_eq!((status, body), (403, serde_json::Value::Null), "{op}");
    }

    // A read-only key: reads work, trading is refused.
    let (status, ro) = server
        .post(
            "/api/accounts",
            Some(&alice),
            json!({"exchange": "paper", "label": "ro", "api_key": "ro-key-1", "secret": RO_SECRET, "read_only": true}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(ro["access_level"], "read");
    let ro_id = ro["id"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .post(
                "/api/exchange/balance",
                Some(&alice),
                json!({"account_id": ro_id})
            )
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .post(
                "/api/exchange/create_order",
                Some(&alice),
                json!({"account_id": ro_id, "symbol": "BTC/USDT", "side": "buy", "amount": "0.01"})
            )
            .await
            .0,
        403
    );

    // Sharing read-only with Bob.
    let bob = server.login("bob@example.com", BOB_PW).await;
    let (_, bob_me) = server.get("/api/auth/me", Some(&bob)).await;
    let bob_id = bob_me["user_id"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .post(
                "/api/exchange/balance",
                Some(&bob),
                json!({"account_id": account_id})
            )
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .post(
                &format!("/api/accounts/{account_id}/shares"),
                Some(&bob),
                json!({"email": "alice@example.com", "level": "read"})
            )
            .await
            .0,
        404,
        "only the owner shares"
    );
    let (status, share) = server
        .post(
            &format!("/api/accounts/{account_id}/shares"),
            Some(&alice),
            json!({"email": "bob@example.com", "level": "read"}),
        )
        .await;
    assert_eq!(status, 201, "{share}");
    assert_eq!(share["user_id"], bob_id.as_str());
    let (status, list) = server.get("/api/accounts", Some(&bob)).await;
    assert_eq!(status, 200);
    seen.push(list.to_string());
    let accounts = list["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["id"], account_id.as_str());
    assert_eq!(accounts[0]["shared"], true);
    assert_eq!(accounts[0]["access_level"], "read");
    let (status, balance) = server
        .post(
            "/api/exchange/balance",
            Some(&bob),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(balance["result"]["balances"]["USDT"]["free"], "99500");
    assert_eq!(
        server
            .post("/api/exchange/create_order", Some(&bob), json!({"account_id": account_id, "symbol": "BTC/USDT", "side": "buy", "amount": "0.01"}))
            .await
            .0,
        403
    );
    // The level comes from the operation; `want` can only raise it.
    assert_eq!(
        server
            .post(
                "/api/exchange/balance",
                Some(&bob),
                json!({"account_id": account_id, "want": "trade"})
            )
            .await
            .0,
        403
    );
    assert_eq!(
        server
            .post(
                "/api/exchange/withdraw",
                Some(&bob),
                json!({"account_id": account_id})
            )
            .await
            .0,
        403
    );
    assert_eq!(
        server
            .delete(&format!("/api/accounts/{account_id}"), Some(&bob))
            .await,
        404
    );

    // Revoke: Bob no longer sees the account at all.
    assert_eq!(
        server
            .delete(
                &format!("/api/accounts/{account_id}/shares/{bob_id}"),
                Some(&alice)
            )
            .await,
        204
    );
    assert_eq!(
        server
            .post(
                "/api/exchange/balance",
                Some(&bob),
                json!({"account_id": account_id})
            )
            .await
            .0,
        404
    );
    let (_, list) = server.get("/api/accounts", Some(&bob)).await;
    assert_eq!(list["accounts"].as_array().unwrap().len(), 0);
    let (_, list) = server.get("/api/accounts", Some(&alice)).await;
    seen.push(list.to_string());
    assert_eq!(list["accounts"].as_array().unwrap().len(), 2);

    // API keys.
    let (status, key) = server
        .post("/api/keys", Some(&alice), json!({"name": "bot"}))
        .await;
    assert_eq!(status, 201);
    let key_id = key["id"].as_str().unwrap().to_owned();
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    assert!(api_key.starts_with("ak_"));
    let res = server
        .http
        .get(server.url("/api/auth/me"))
        .header("x-api-key", &api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (me["user_id"].as_str(), me["auth_method"].as_str()),
        (Some(alice_id.as_str()), Some("api_key"))
    );
    let (status, _) = server
        .post(
            "/api/exchange/balance",
            Some(&api_key),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(status, 200, "an ak_ key works as a bearer credential");
    let (_, keys) = server.get("/api/keys", Some(&alice)).await;
    assert!(!keys.to_string().contains(&api_key[10..]));
    assert_eq!(keys["keys"][0]["id"], key_id.as_str());
    assert_eq!(
        server
            .delete(&format!("/api/keys/{key_id}"), Some(&bob))
            .await,
        404
    );
    assert_eq!(
        server
            .delete(&format!("/api/keys/{key_id}"), Some(&alice))
            .await,
        204
    );
    assert_eq!(server.get("/api/auth/me", Some(&api_key)).await.0, 403);

    // Secrets: sealed at rest, names only in listings.
    let (status, _) = server
        .post(
            "/api/secrets",
            Some(&alice),
            json!({"name": "telegram_token", "value": USER_SECRET}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .post(
            "/api/secrets",
            Some(&alice),
            json!({"name": "bad name!", "value": "x"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("name")));
    let (status, list) = server.get("/api/secrets", Some(&alice)).await;
    assert_eq!(status, 200);
    seen.push(list.to_string());
    assert_eq!(list["secrets"][0]["name"], "telegram_token");
    assert_eq!(
        server.get("/api/secrets", Some(&bob)).await.1["secrets"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // WebSocket: authenticated before the upgrade.
    assert_eq!(ws_status(&server, "", None).await, 401);
    assert_eq!(ws_status(&server, "?token=ses_forged", None).await, 403);
    assert_eq!(ws_status(&server, "", Some("garbage")).await, 403);
    assert_eq!(
        ws_status(&server, &format!("?token={alice}"), None).await,
        101
    );
    assert_eq!(ws_status(&server, "", Some(&alice)).await, 101);

    // Deleting an account: gone for everyone.
    assert_eq!(
        server
            .delete(&format!("/api/accounts/{ro_id}"), Some(&alice))
            .await,
        204
    );
    assert_eq!(
        server
            .post(
                "/api/exchange/balance",
                Some(&alice),
                json!({"account_id": ro_id})
            )
            .await
            .0,
        404
    );

    // Logout: the old token is refused.
    assert_eq!(
        server
            .post("/api/auth/logout", Some(&alice), json!({}))
            .await
            .0,
        204
    );
    assert_eq!(server.get("/api/auth/me", Some(&alice)).await.0, 403);
    assert_eq!(
        server
            .post(
                "/api/exchange/balance",
                Some(&alice),
                json!({"account_id": account_id})
            )
            .await
            .0,
        403
    );

    // No canary in any response body we kept, in the raw database files, or in the logs.
    let canaries = [
        ALICE_PW,
        ALICE_NEW_PW,
        BOB_PW,
        EXCH_KEY,
        EXCH_SECRET,
        RO_SECRET,
        USER_SECRET,
    ];
    let files = ["strongroom.db", "strongroom.db-wal", "strongroom.db-shm"].map(|f| data.join(f));
    assert!(files[0].exists());
    let scan = |when: &str| {
        for file in &files {
            for canary in canaries {
                assert!(
                    !file_contains(file, canary.as_bytes()),
                    "{canary} in {} ({when})",
                    file.display()
                );
            }
        }
    };
    scan("running");
    server.stop();
    scan("stopped");
    let logs = server.logs();
    assert!(logs.contains("exchange.ok"), "logs were captured");
    for canary in canaries {
        assert!(!logs.contains(canary), "{canary} in the server's output");
        for body in &seen {
            assert!(!body.contains(canary), "{canary} in a response body");
        }
    }
    // And the positive control: the scanner does find what is there (in the main file,
    // or still in the write-ahead log if SQLite had not checkpointed it yet).
    assert!(files.iter().any(|f| file_contains(f, b"tb_accounts")));
}
