//! Copy trading end to end: strategies, followers, risk limits, and the signed signal
//! webhook, against the real binary.
//!
//! The webhook sender here is written from the documented scheme only (auth-core
//! `WEBHOOKS.md`): header `X-Strongroom-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>." || raw body)>`, the secret being the 32 bytes behind
//! `whsec_` + base64url without padding. The HMAC is aws-lc-rs's, called directly; the
//! base64url decoder is the test's own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use aws_lc_rs::hmac;
use common::{Server, create_user, enable_mfa, now};
use serde_json::{Value, json};

const TOKEN: &str = "static-bootstrap-token-0123456789abcdef";
const PASSWORD: &str = "copy-trading-password-1";

/// RFC 4648 §5 base64url without padding, decoded by hand (independent of the service).
fn base64url(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64url") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// The secret bytes of a `whsec_…` text.
fn secret_bytes(text: &str) -> Vec<u8> {
    let key = base64url(text.strip_prefix("whsec_").expect("whsec_ prefix"));
    assert_eq!(key.len(), 32, "a webhook secret is 32 bytes");
    key
}

/// `v1` for `body` at `t` under `secret_text`.
fn v1(secret_text: &str, t: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret_bytes(secret_text));
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    hmac::sign(&key, &message)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header(secret_text: &str, t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", v1(secret_text, t, body))
}

fn order(amount: &str) -> Vec<u8> {
    json!({"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": amount, "price": "50000"})
        .to_string()
        .into_bytes()
}

/// POSTs a raw body to the strategy's webhook: (status, Retry-After, body).
async fn deliver(
    s: &Server,
    strategy: &str,
    signature: Option<&str>,
    body: &[u8],
) -> (u16, Option<String>, Value) {
    let mut req = s
        .http
        .post(s.url(&format!("/api/webhooks/copy-trading/{strategy}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(sig) = signature {
        req = req.header("X-Strongroom-Signature", sig);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Signs `body` now with `secret` and delivers it.
async fn signal(s: &Server, strategy: &str, secret: &str, body: &[u8]) -> (u16, Value) {
    let (status, _, v) = deliver(s, strategy, Some(&header(secret, now(), body)), body).await;
    (status, v)
}

struct User {
    token: String,
}

async fn user(s: &Server, email: &str) -> User {
    user_with(s, &[], email).await
}

/// [`user`] for a server started with `env` (the CLI needs the same master key: it
/// opens the audit log, sealed under it, to record the command).
async fn user_with(s: &Server, env: &[(&str, &str)], email: &str) -> User {
    create_user(&s.data_dir, env, email, Some(PASSWORD), false);
    User {
        token: s.login(email, PASSWORD).await,
    }
}

async fn account(s: &Server, u: &User, key: &str, read_only: bool) -> String {
    let (status, body) = s
        .post(
            "/api/accounts",
            Some(&u.token),
            json!({"exchange": "paper", "label": key, "api_key": key, "secret": format!("{key}-secret"), "read_only": read_only}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// A new strategy of `u`: (id, webhook secret text).
async fn strategy(s: &Server, u: &User, name: &str) -> (String, String) {
    let res = s
        .http
        .post(s.url("/api/strategies"))
        .bearer_auth(&u.token)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let secret = body["webhook_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (body["id"].as_str().unwrap().to_owned(), secret)
}

async fn follow(s: &Server, u: &User, strategy: &str, body: Value) -> (u16, Value) {
    s.post(
        &format!("/api/strategies/{strategy}/followers"),
        Some(&u.token),
        body,
    )
    .await
}

/// The trades the venue holds for `account` (as its owner sees them).
async fn trades(s: &Server, u: &User, account: &str) -> usize {
    let (status, body) = s
        .post(
            "/api/exchange/my_trades",
            Some(&u.token),
            json!({ "account_id": account }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["result"]["trades"].as_array().unwrap().len()
}

fn result_for<'a>(answer: &'a Value, account: &str) -> &'a Value {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["account_id"] == account)
        .unwrap_or_else(|| panic!("no result for {account} in {answer}"))
}

fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("API_TOKEN", TOKEN)];
    env.extend_from_slice(extra);
    Server::start(dir, &env)
}

#[tokio::test]
async fn a_signal_trades_exactly_the_accounts_it_may() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let owner = user(&s, "owner@example.com").await;
    let (id, secret) = strategy(&s, &owner, "trend").await;

    // alice: live, within every limit.
    let alice = user(&s, "alice@example.com").await;
    let a = account(&s, &alice, "alice-key", false).await;
    s.go_live(&alice.token, &a, "1000", "10000").await;
    // bob: subscribed, then revokes the strategy's share through the shares API.
    let bob = user(&s, "bob@example.com").await;
    let b = account(&s, &bob, "bob-key", false).await;
    s.go_live(&bob.token, &b, "1000", "10000").await;
    // carol: live, but her daily cap is below the order.
    let carol = user(&s, "carol@example.com").await;
    let c = account(&s, &carol, "carol-key", false).await;
    s.go_live(&carol.token, &c, "1000", "400").await;
    // dave: no limits set: a dry run.
    let dave = user(&s, "dave@example.com").await;
    let d = account(&s, &dave, "dave-key", false).await;
    // erin: live, but her own maximum for this strategy is below the order.
    let erin = user(&s, "erin@example.com").await;
    let e = account(&s, &erin, "erin-key", false).await;
    s.go_live(&erin.token, &e, "1000", "10000").await;

    for (u, acc) in [(&alice, &a), (&bob, &b), (&carol, &c), (&dave, &d)] {
        let (status, body) = follow(&s, u, &id, json!({ "account_id": acc })).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = follow(
        &s,
        &erin,
        &id,
        json!({ "account_id": e, "max_order_notional": "100" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["max_order_notional"], "100");
    assert_eq!(
        s.delete(
            &format!("/api/accounts/{b}/shares/strategy:{id}"),
            Some(&bob.token)
        )
        .await,
        204
    );

    let (status, answer) = signal(&s, &id, &secret, &order("0.01")).await;
    assert_eq!(status, 202, "{answer}");
    assert!(answer["signal_id"].as_str().unwrap().starts_with("sig_"));
    assert_eq!(answer["results"].as_array().unwrap().len(), 5, "{answer}");
    let ra = result_for(&answer, &a);
    assert_eq!(ra["status"], "placed", "{answer}");
    assert!(ra["order_id"].as_str().unwrap().starts_with("paper-"));
    assert_eq!(result_for(&answer, &b)["status"], "refused");
    assert_eq!(result_for(&answer, &b)["error"], "not_permitted");
    assert_eq!(result_for(&answer, &c)["status"], "refused");
    assert_eq!(result_for(&answer, &c)["error"], "daily_cap_exceeded");
    assert_eq!(result_for(&answer, &d)["status"], "placed");
    assert_eq!(result_for(&answer, &d)["dry_run"], true);
    assert!(result_for(&answer, &d).get("order_id").is_none());
    assert_eq!(
        result_for(&answer, &e)["error"],
        "follower_max_order_notional"
    );

    // Exactly alice's account traded at the venue.
    assert_eq!(trades(&s, &alice, &a).await, 1);
    for (u, acc) in [(&bob, &b), (&carol, &c), (&dave, &d), (&erin, &e)] {
        assert_eq!(trades(&s, u, acc).await, 0, "{acc}");
    }
    // The order counts against alice's day: 0.01 BTC at 50000.
    let (_, risk) = s.get("/api/risk", Some(&alice.token)).await;
    assert_eq!(risk["used_today"], "500", "{risk}");
    assert_eq!(risk["reserved_today"], "0");

    // The owner sees every result; a follower only their own account.
    let (status, list) = s
        .get(&format!("/api/strategies/{id}/signals"), Some(&owner.token))
        .await;
    assert_eq!(status, 200);
    let sig = &list["signals"][0];
    assert_eq!(sig["id"], answer["signal_id"]);
    assert_eq!(sig["status"], "executed");
    assert_eq!(sig["request"]["notional"], "500");
    assert_eq!(sig["results"].as_array().unwrap().len(), 5);
    let (status, mine) = s.get("/api/following/signals", Some(&carol.token)).await;
    assert_eq!(status, 200);
    assert_eq!(mine["signals"][0]["id"], answer["signal_id"]);
    assert_eq!(mine["signals"][0]["strategy_id"], id.as_str());
    let results = mine["signals"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{mine}");
    assert_eq!(results[0]["account_id"], c.as_str());
    // Nobody else reads the strategy's signals.
    assert_eq!(
        s.get(&format!("/api/strategies/{id}/signals"), Some(&alice.token))
            .await
            .0,
        404
    );

    // Unsubscribing: the next signal no longer touches the account.
    assert_eq!(
        s.delete(
            &format!("/api/strategies/{id}/followers/{a}"),
            Some(&alice.token)
        )
        .await,
        204
    );
    let (status, answer) = signal(&s, &id, &secret, &order("0.02")).await;
    assert_eq!(status, 202, "{answer}");
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["account_id"] != a.as_str()),
        "{answer}"
    );
    assert_eq!(trades(&s, &alice, &a).await, 1);
}

#[tokio::test]
async fn bad_signatures_are_401_and_execute_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let owner = user(&s, "owner@example.com").await;
    let (id, secret) = strategy(&s, &owner, "guarded").await;
    let (other_id, other_secret) = strategy(&s, &owner, "other").await;
    let alice = user(&s, "alice@example.com").await;
    let a = account(&s, &alice, "alice-key", false).await;
    s.go_live(&alice.token, &a, "1000", "10000").await;
    assert_eq!(
        follow(&s, &alice, &id, json!({ "account_id": a })).await.0,
        201
    );

    let body = order("0.01");
    let t = now();
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'1').unwrap();
    tampered[at] = b'9';
    let wrong_secret = format!("whsec_{}", "A".repeat(43));
    let cases: Vec<(&str, Option<String>, Vec<u8>, String)> = vec![
        ("missing header", None, body.clone(), id.clone()),
        (
            "malformed header",
            Some("garbage".into()),
            body.clone(),
            id.clone(),
        ),
        (
            "wrong secret",
            Some(header(&wrong_secret, t, &body)),
            body.clone(),
            id.clone(),
        ),
        (
            "another strategy's secret",
            Some(header(&other_secret, t, &body)),
            body.clone(),
            id.clone(),
        ),
        (
            "stale timestamp",
            Some(header(&secret, t - 3600, &body)),
            body.clone(),
            id.clone(),
        ),
        (
            "future timestamp",
            Some(header(&secret, t + 3600, &body)),
            body.clone(),
            id.clone(),
        ),
        (
            "tampered body",
            Some(header(&secret, t, &body)),
            tampered.clone(),
            id.clone(),
        ),
        (
            "unknown strategy",
            Some(header(&secret, t, &body)),
            body.clone(),
            format!("stg_{}", "0".repeat(32)),
        ),
        (
            "malformed strategy id",
            Some(header(&secret, t, &body)),
            body.clone(),
            "x".into(),
        ),
        (
            "signature of another body",
            Some(header(&secret, t, b"{}")),
            body.clone(),
            id.clone(),
        ),
    ];
    for (what, sig, bytes, target) in &cases {
        let (status, _, answer) = deliver(&s, target, sig.as_deref(), bytes).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer, Value::Null, "{what}: the body says nothing");
    }
    // Authentication comes before parsing: unsigned junk is 401, signed junk 400.
    let junk = b"{not json";
    assert_eq!(deliver(&s, &id, None, junk).await.0, 401);
    let (status, _, answer) = deliver(&s, &id, Some(&header(&secret, now(), junk)), junk).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "invalid_json");
    // A market order without its reference price is refused: its value is unbounded.
    let unbounded =
        json!({"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "1"}).to_string();
    let (status, answer) = signal(&s, &id, &secret, unbounded.as_bytes()).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("price")));

    assert_eq!(trades(&s, &alice, &a).await, 0);
    let (_, list) = s
        .get(&format!("/api/strategies/{id}/signals"), Some(&owner.token))
        .await;
    let statuses: Vec<&str> = list["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["invalid", "invalid"],
        "only signed deliveries are recorded"
    );
    let (_, list) = s
        .get(
            &format!("/api/strategies/{other_id}/signals"),
            Some(&owner.token),
        )
        .await;
    assert_eq!(list["signals"], json!([]));

    // A valid one goes through (the cases above were refused for their fault only).
    let (status, answer) = signal(&s, &id, &secret, &body).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(trades(&s, &alice, &a).await, 1);

    // No secret in the log, nor in the database file in clear.
    assert!(!s.logs().contains(&secret), "secret in the log");
    let db = dir.path().join("strongroom.db");
    for path in [db.clone(), db.with_extension("db-wal")] {
        assert!(!common::file_contains(&path, secret.as_bytes()));
        assert!(!common::file_contains(&path, &secret_bytes(&secret)));
    }
}

#[tokio::test]
async fn a_replayed_delivery_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let owner = user(&s, "owner@example.com").await;
    let (id, secret) = strategy(&s, &owner, "once").await;
    let alice = user(&s, "alice@example.com").await;
    let a = account(&s, &alice, "alice-key", false).await;
    s.go_live(&alice.token, &a, "1000", "10000").await;
    assert_eq!(
        follow(&s, &alice, &id, json!({ "account_id": a })).await.0,
        201
    );
    let body = order("0.01");
    let sig = header(&secret, now(), &body);
    let (status, _, first) = deliver(&s, &id, Some(&sig), &body).await;
    assert_eq!(status, 202, "{first}");
    for _ in 0..3 {
        let (status, _, again) = deliver(&s, &id, Some(&sig), &body).await;
        assert_eq!(status, 200);
        assert_eq!(
            again,
            json!({"duplicate": true, "signal_id": first["signal_id"]})
        );
    }
    assert_eq!(trades(&s, &alice, &a).await, 1);
    // The same delivery under two signatures is still the same delivery.
    let t = sig[2..sig.find(',').unwrap()].parse::<u64>().unwrap();
    let both = format!("t={t},v1={},v1={}", "0".repeat(64), v1(&secret, t, &body));
    let (status, _, again) = deliver(&s, &id, Some(&both), &body).await;
    assert_eq!((status, &again["signal_id"]), (200, &first["signal_id"]));
    let (_, list) = s
        .get(&format!("/api/strategies/{id}/signals"), Some(&owner.token))
        .await;
    assert_eq!(list["signals"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn rotation_keeps_the_previous_secret_for_the_grace_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let owner = user(&s, "owner@example.com").await;
    let (id, first) = strategy(&s, &owner, "rotating").await;
    let rotate = |token: String| {
        let (s, id) = (&s, id.clone());
        async move {
            let res = s
                .http
                .post(s.url(&format!("/api/strategies/{id}/secret")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let no_store = res
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = res.json().await.unwrap_or(Value::Null);
            (status, no_store, body)
        }
    };
    // Only the owner rotates.
    let mallory = user(&s, "mallory@example.com").await;
    assert_eq!(rotate(mallory.token.clone()).await.0, 404);

    let (status, no_store, body) = rotate(owner.token.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(no_store.as_deref(), Some("no-store"));
    let second = body["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let until = body["previous_valid_until"].as_i64().unwrap();
    let grace = until - i64::try_from(now()).unwrap();
    assert!((86_390..=86_400).contains(&grace), "{grace}");

    // Overlap: both verify, each alone and together in one header.
    assert_eq!(signal(&s, &id, &first, &order("0.01")).await.0, 202);
    assert_eq!(signal(&s, &id, &second, &order("0.02")).await.0, 202);
    let body = order("0.03");
    let t = now();
    let both = format!(
        "t={t},v1={},v1={}",
        v1(&first, t, &body),
        v1(&second, t, &body)
    );
    assert_eq!(deliver(&s, &id, Some(&both), &body).await.0, 202);

    // A second rotation ends the first secret at once; the second is now the previous.
    let (status, _, body) = rotate(owner.token.clone()).await;
    assert_eq!(status, 200);
    let third = body["webhook_secret"].as_str().unwrap().to_owned();
    assert_eq!(signal(&s, &id, &first, &order("0.04")).await.0, 401);
    assert_eq!(signal(&s, &id, &second, &order("0.05")).await.0, 202);
    assert_eq!(signal(&s, &id, &third, &order("0.06")).await.0, 202);

    // The strategy listing is metadata only.
    let (status, list) = s.get("/api/strategies", Some(&owner.token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["strategies"][0],
        json!({"id": id, "name": "rotating", "created_at": list["strategies"][0]["created_at"], "followers": 0})
    );
    assert!(!list.to_string().contains("whsec_"));
}

#[tokio::test]
async fn with_no_grace_the_previous_secret_stops_at_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[("STRONGROOM_WEBHOOK_SECRET_GRACE_SECS", "0")]);
    let owner = user(&s, "owner@example.com").await;
    let (id, first) = strategy(&s, &owner, "strict").await;
    assert_eq!(signal(&s, &id, &first, &order("0.01")).await.0, 202);
    let (status, body) = s
        .post(
            &format!("/api/strategies/{id}/secret"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["webhook_secret"].as_str().unwrap();
    assert_eq!(signal(&s, &id, &first, &order("0.02")).await.0, 401);
    assert_eq!(signal(&s, &id, second, &order("0.03")).await.0, 202);
}

#[tokio::test]
async fn each_strategy_has_its_own_signal_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[("STRONGROOM_WEBHOOK_SIGNALS_PER_MIN", "2")]);
    let owner = user(&s, "owner@example.com").await;
    let (id, secret) = strategy(&s, &owner, "busy").await;
    let (other, other_secret) = strategy(&s, &owner, "quiet").await;
    assert_eq!(signal(&s, &id, &secret, &order("0.01")).await.0, 202);
    assert_eq!(signal(&s, &id, &secret, &order("0.02")).await.0, 202);
    let body = order("0.03");
    let (status, retry, answer) =
        deliver(&s, &id, Some(&header(&secret, now(), &body)), &body).await;
    assert_eq!(status, 429, "{answer}");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // The other strategy is not affected.
    assert_eq!(
        signal(&s, &other, &other_secret, &order("0.01")).await.0,
        202
    );
    let (_, list) = s
        .get(&format!("/api/strategies/{id}/signals"), Some(&owner.token))
        .await;
    let mut statuses: Vec<&str> = list["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["executed", "executed", "rate_limited"]);
}

#[tokio::test]
async fn only_an_owner_subscribes_a_trading_account() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let owner = user(&s, "owner@example.com").await;
    let (id, _) = strategy(&s, &owner, "picky").await;
    let alice = user(&s, "alice@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let a = account(&s, &alice, "alice-key", false).await;
    let ro = account(&s, &alice, "alice-read-key", true).await;
    let traded = account(&s, &alice, "alice-shared-key", false).await;
    let (status, _) = s
        .post(
            &format!("/api/accounts/{traded}/shares"),
            Some(&alice.token),
            json!({"email": "bob@example.com", "level": "trade"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = s
        .post(
            &format!("/api/accounts/{a}/shares"),
            Some(&alice.token),
            json!({"email": "bob@example.com", "level": "read"}),
        )
        .await;
    assert_eq!(status, 201);

    let (status, body) = follow(&s, &alice, &id, json!({ "account_id": ro })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("read_only_account"))
    );
    for acc in [&traded, &a] {
        let (status, body) = follow(&s, &bob, &id, json!({ "account_id": acc })).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("not_account_owner"))
        );
    }
    let (status, _) = follow(&s, &bob, &id, json!({ "account_id": "acc_nope" })).await;
    assert_eq!(status, 404);
    let missing = format!("stg_{}", "f".repeat(32));
    assert_eq!(
        follow(&s, &alice, &missing, json!({ "account_id": a }))
            .await
            .0,
        404
    );
    let (status, body) = follow(
        &s,
        &alice,
        &id,
        json!({ "account_id": a, "max_order_notional": "-1" }),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("max_order_notional"))
    );
    // Not with an API key, nor the bootstrap token: interactive only.
    let (status, key) = s.post("/api/keys", Some(&alice.token), json!({})).await;
    assert_eq!(status, 201);
    let key = key["api_key"].as_str().unwrap();
    let (status, body) = s
        .post(
            &format!("/api/strategies/{id}/followers"),
            Some(key),
            json!({ "account_id": a }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("interactive_session_required"))
    );
    assert_eq!(
        s.post("/api/strategies", Some(TOKEN), json!({"name": "x"}))
            .await
            .0,
        403
    );
    // A user with a second factor steps up first.
    let (_secret, _) = enable_mfa(&s, &alice.token).await;
    let (status, body) = follow(&s, &alice, &id, json!({ "account_id": a })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("mfa_required"))
    );
    let (status, body) = s
        .post("/api/strategies", Some(&alice.token), json!({"name": "x"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("mfa_required"))
    );
    // Nothing was granted along the way.
    let (_, strategies) = s.get("/api/strategies", Some(&owner.token)).await;
    assert_eq!(strategies["strategies"][0]["followers"], 0);
    // Unsubscribing what is not subscribed, or someone else's account: 404.
    assert_eq!(
        s.delete(
            &format!("/api/strategies/{id}/followers/{a}"),
            Some(&alice.token)
        )
        .await,
        404
    );
    assert_eq!(
        s.delete(
            &format!("/api/strategies/{id}/followers/{a}"),
            Some(&bob.token)
        )
        .await,
        404
    );
}

/// Master-key rotation: `rewrap` re-seals the webhook secrets (current and previous)
/// under the new key; with only the new key, both still verify. Fails when
/// `tb_strategy_secrets` is left out of `rewrap`.
#[tokio::test]
async fn webhook_secrets_survive_a_master_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let key = || {
        let out = common::cli(dir.path(), &[], &["gen-master-key"]);
        assert!(out.status.success());
        common::stdout(&out).trim().to_owned()
    };
    let (k1, k2) = (key(), key());
    let old = format!("1:{k1}");
    let issuer = ("STRONGROOM_ISSUER", "https://strongroom.test");
    let first = [("STRONGROOM_MASTER_KEY", k1.as_str()), issuer];
    let rotated = [
        ("STRONGROOM_MASTER_KEY", k2.as_str()),
        ("STRONGROOM_MASTER_KEY_VERSION", "2"),
        ("STRONGROOM_MASTER_KEYS_OLD", old.as_str()),
        issuer,
    ];
    let only_new = [
        ("STRONGROOM_MASTER_KEY", k2.as_str()),
        ("STRONGROOM_MASTER_KEY_VERSION", "2"),
        issuer,
    ];
    let mut s = start(dir.path(), &first);
    let owner = user_with(&s, &first, "owner@example.com").await;
    let (id, previous) = strategy(&s, &owner, "durable").await;
    let (status, body) = s
        .post(
            &format!("/api/strategies/{id}/secret"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let current = body["webhook_secret"].as_str().unwrap().to_owned();
    s.stop();

    let out = common::cli(dir.path(), &rotated, &["rewrap"]);
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    assert!(
        text.contains("tb_strategy_secrets (copy-trading webhook secrets): 2 re-wrapped"),
        "{text}"
    );
    assert!(!text.contains(&current) && !text.contains(&previous));

    let s = start(dir.path(), &only_new);
    assert_eq!(signal(&s, &id, &current, &order("0.01")).await.0, 202);
    assert_eq!(signal(&s, &id, &previous, &order("0.02")).await.0, 202);
    assert!(!s.logs().contains("webhook.secret_unseal_refused"));
}

/// Two instances on one PostgreSQL database (a fresh schema): the replay guard and the
/// per-strategy limit are shared.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use common::pg_fresh_schema;

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
    async fn replay_and_limit_hold_across_two_instances() {
        let database_url = pg_fresh_schema("tb_copy").await.database_url;
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("API_TOKEN", TOKEN),
            ("DATABASE_URL", database_url.as_str()),
            ("STRONGROOM_WEBHOOK_SIGNALS_PER_MIN", "3"),
        ];
        // One data directory: both instances use its development master key.
        let one = Server::start(dir.path(), &env);
        let two = Server::start(dir.path(), &env);
        create_user(dir.path(), &env, "owner@example.com", Some(PASSWORD), false);
        create_user(dir.path(), &env, "alice@example.com", Some(PASSWORD), false);
        let owner = User {
            token: one.login("owner@example.com", PASSWORD).await,
        };
        let alice = User {
            token: one.login("alice@example.com", PASSWORD).await,
        };
        let (id, secret) = strategy(&one, &owner, "shared").await;
        let a = account(&one, &alice, "alice-pg-key", false).await;
        one.go_live(&alice.token, &a, "5000", "10000").await;
        assert_eq!(
            follow(&one, &alice, &id, json!({ "account_id": a }))
                .await
                .0,
            201
        );

        // Delivered to one instance, replayed to the other: a duplicate, nothing runs.
        let body = order("0.01");
        let sig = header(&secret, now(), &body);
        let (status, _, first) = deliver(&one, &id, Some(&sig), &body).await;
        assert_eq!(status, 202, "{first}");
        assert_eq!(result_for(&first, &a)["status"], "placed");
        let (status, _, again) = deliver(&two, &id, Some(&sig), &body).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(
            again,
            json!({"duplicate": true, "signal_id": first["signal_id"]})
        );
        // One order in all: the paper venue is shared through the database, so both
        // instances list the order of the first delivery, and the replay placed none.
        assert_eq!(trades(&two, &alice, &a).await, 1);
        assert_eq!(trades(&one, &alice, &a).await, 1);

        // The limit (3 a minute) counts both instances' signals.
        for (s, amount) in [(&two, "0.02"), (&one, "0.03")] {
            let (status, answer) = signal(s, &id, &secret, &order(amount)).await;
            assert_eq!(status, 202, "{answer}");
            assert_eq!(result_for(&answer, &a)["status"], "placed", "{answer}");
        }
        let (status, answer) = signal(&two, &id, &secret, &order("0.04")).await;
        assert_eq!(status, 429, "{answer}");
        let (_, risk) = one.get("/api/risk", Some(&alice.token)).await;
        assert_eq!(risk["used_today"], "3000", "{risk}");
    }
}
