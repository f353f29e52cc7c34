//! Outside review of copy trading, the request limits and the webhook scheme: each test
//! is one attack from the outside, against the real binary.
//!
//! The sender is independent of the service: it decodes `whsec_…` itself and computes
//! `HMAC-SHA256(secret, "<t>." || body)` with aws-lc-rs's `hmac` directly, as
//! `WEBHOOKS.md` documents.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aws_lc_rs::hmac;
use common::{Server, create_user, now};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const TOKEN: &str = "static-bootstrap-token-0123456789abcdef";
const PASSWORD: &str = "attack-copy-password-canary-1";

// ---------------------------------------------------------------------------------
// The independent sender.

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

fn secret_bytes(text: &str) -> Vec<u8> {
    let key = base64url(text.strip_prefix("whsec_").expect("whsec_ prefix"));
    assert_eq!(key.len(), 32);
    key
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `v1` for `body` at `t` (any decimal text) under `secret_text`.
fn v1(secret_text: &str, t: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret_bytes(secret_text));
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    hex(hmac::sign(&key, &message).as_ref())
}

fn header(secret_text: &str, t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    format!("t={t},v1={}", v1(secret_text, &t, body))
}

fn now_i() -> i64 {
    i64::try_from(now()).unwrap()
}

fn order(amount: &str) -> Vec<u8> {
    json!({"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": amount, "price": "50000"})
        .to_string()
        .into_bytes()
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// POSTs raw `body` to the strategy's webhook with the given signature header lines.
async fn deliver_lines(s: &Server, strategy: &str, lines: &[&str], body: &[u8]) -> Answer {
    let mut req = s
        .http
        .post(s.url(&format!("/api/webhooks/copy-trading/{strategy}")))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for line in lines {
        req = req.header("X-Strongroom-Signature", *line);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        text,
    }
}

async fn deliver(s: &Server, strategy: &str, sig: &str, body: &[u8]) -> Answer {
    deliver_lines(s, strategy, &[sig], body).await
}

// ---------------------------------------------------------------------------------
// The service side of the scene.

struct User {
    email: String,
    token: String,
}

async fn user(s: &Server, email: &str) -> User {
    create_user(&s.data_dir, &[], email, Some(PASSWORD), false);
    User {
        email: email.to_owned(),
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

async fn strategy(s: &Server, u: &User, name: &str) -> (String, String) {
    let (status, body) = s
        .post("/api/strategies", Some(&u.token), json!({ "name": name }))
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["webhook_secret"].as_str().unwrap().to_owned(),
    )
}

async fn follow(s: &Server, u: &User, strategy: &str, body: Value) -> (u16, Value) {
    s.post(
        &format!("/api/strategies/{strategy}/followers"),
        Some(&u.token),
        body,
    )
    .await
}

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

fn start(dir: &std::path::Path, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("API_TOKEN", TOKEN)];
    env.extend_from_slice(extra);
    Server::start(dir, &env)
}

/// A strategy with one live follower (alice): (owner, id, secret, alice, alice's account).
async fn scene(s: &Server, cap: &str) -> (User, String, String, User, String) {
    let owner = user(s, "owner@example.com").await;
    let (id, secret) = strategy(s, &owner, "target").await;
    let alice = user(s, "alice@example.com").await;
    let a = account(s, &alice, "alice-key", false).await;
    s.go_live(&alice.token, &a, "1000", cap).await;
    let (status, body) = follow(s, &alice, &id, json!({ "account_id": a })).await;
    assert_eq!(status, 201, "{body}");
    (owner, id, secret, alice, a)
}

// ---------------------------------------------------------------------------------
// Probes.

/// Replays of one delivery: the same bytes, the signature entries reordered, an extra
/// `v1` entry, upper-case hex, an unknown element added. Every one is the same delivery
/// (id = SHA-256 of `"<t>." || body`): it runs once.
#[tokio::test]
async fn replay_variants_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (owner, id, secret, alice, a) = scene(&s, "10000").await;
    let body = order("0.01");
    let t = now_i().to_string();
    let good = v1(&secret, &t, &body);
    let first = deliver(&s, &id, &format!("t={t},v1={good}"), &body).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let signal_id = first.json()["signal_id"].clone();
    let junk = hex(&[7u8; 32]);
    let variants = [
        format!("t={t},v1={good}"),
        format!("v1={good},t={t}"),
        format!("t={t},v1={junk},v1={good}"),
        format!("t={t},v1={good},v1={junk}"),
        format!("t={t},v1={}", good.to_uppercase()),
        format!("t={t},v1={good},v0=anything"),
        format!("zz=1,t={t},v1={good}"),
    ];
    for sig in &variants {
        let again = deliver(&s, &id, sig, &body).await;
        assert_eq!(again.status, 200, "{sig}: {}", again.text);
        assert_eq!(
            again.json(),
            json!({"duplicate": true, "signal_id": signal_id}),
            "{sig}"
        );
    }
    assert_eq!(trades(&s, &alice, &a).await, 1);
    let (_, list) = s
        .get(&format!("/api/strategies/{id}/signals"), Some(&owner.token))
        .await;
    assert_eq!(list["signals"].as_array().unwrap().len(), 1);
}

/// A signature from another strategy's secret, and another strategy's valid delivery
/// replayed to this strategy: 401, nothing runs.
#[tokio::test]
async fn another_strategys_secret_or_delivery_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (owner, id, _secret, alice, a) = scene(&s, "10000").await;
    let (other, other_secret) = strategy(&s, &owner, "other").await;
    let body = order("0.01");
    let sig = header(&other_secret, now_i(), &body);
    let r = deliver(&s, &id, &sig, &body).await;
    assert_eq!((r.status, r.text.as_str()), (401, ""));
    // Valid for `other` (no followers), then replayed to `id`.
    let ok = deliver(&s, &other, &sig, &body).await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    let r = deliver(&s, &id, &sig, &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(trades(&s, &alice, &a).await, 0);
}

/// The timestamp window (300 s, inclusive): just inside either side is accepted, just
/// outside either side refused; non-canonical or huge `t` refused without a crash.
#[tokio::test]
async fn timestamp_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "10000").await;
    let n = now_i();
    for (what, t) in [("stale", n - 302), ("future", n + 302)] {
        let body = order("0.01");
        let r = deliver(&s, &id, &header(&secret, t, &body), &body).await;
        assert_eq!(r.status, 401, "{what}");
    }
    for (i, t) in [n - 295, n + 295].into_iter().enumerate() {
        let body = order(&format!("0.0{}", i + 1));
        let r = deliver(&s, &id, &header(&secret, t, &body), &body).await;
        assert_eq!(r.status, 202, "{t}: {}", r.text);
    }
    let body = order("0.05");
    let n = now_i().to_string();
    for t in [
        format!("0{n}"),
        format!("+{n}"),
        format!("{n}.0"),
        "-1".to_owned(),
        i64::MAX.to_string(),
        "9223372036854775808".to_owned(),
        "99999999999999999999999".to_owned(),
    ] {
        let sig = format!("t={t},v1={}", v1(&secret, &t, &body));
        let r = deliver(&s, &id, &sig, &body).await;
        assert_eq!(r.status, 401, "t={t}");
    }
    assert_eq!(trades(&s, &alice, &a).await, 2);
}

/// Huge, repeated, non-ASCII or over-full headers: refused (4xx), never a crash, and
/// the server keeps answering.
#[tokio::test]
async fn huge_and_malformed_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "10000").await;
    let body = order("0.01");
    let t = now_i().to_string();
    let good = v1(&secret, &t, &body);
    let junk = hex(&[1u8; 32]);
    let pad = format!(",pad={}", "x".repeat(1100));
    let nine = format!("t={t}{},v1={good}", format!(",v1={junk}").repeat(8));
    let eight = format!("t={t}{},v1={good}", format!(",v1={junk}").repeat(7));
    let cases = [
        format!("t={t},v1={good}{pad}"),
        nine,
        format!("t={t},t={t},v1={good}"),
        format!("t={t},v1={good},"),
        format!("t={t}, v1={good}"),
        format!("t={t},v1={}", &good[..63]),
        format!("t={t},v1={good}0"),
        format!("t={t},V1={good}"),
        format!("t={t},v1={good},BAD=1"),
        format!("t={t},v1"),
        format!("t={t},v1={good}{}", ",x=y".repeat(20_000)),
        String::new(),
    ];
    for sig in &cases {
        let r = deliver(&s, &id, sig, &body).await;
        assert!(
            (400..500).contains(&r.status),
            "{}: {}",
            &sig[..sig.len().min(80)],
            r.status
        );
        assert_ne!(r.status, 202);
    }
    // Non-ASCII bytes in the value; the header twice.
    let r = s
        .http
        .post(s.url(&format!("/api/webhooks/copy-trading/{id}")))
        .header(
            "X-Strongroom-Signature",
            reqwest::header::HeaderValue::from_bytes(
                format!("t={t},v1={good},x=\u{e9}").as_bytes(),
            )
            .unwrap(),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let good_line = format!("t={t},v1={good}");
    let r = deliver_lines(&s, &id, &[&good_line, &good_line], &body).await;
    assert_eq!(r.status, 401);
    assert_eq!(trades(&s, &alice, &a).await, 0);
    // Eight entries (the limit) with the good one last: accepted.
    let r = deliver(&s, &id, &eight, &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(trades(&s, &alice, &a).await, 1);
}

/// Another user's strategy id / account id: subscribe someone else's account, read
/// another owner's signals, rotate another's secret, unsubscribe another's account.
#[tokio::test]
async fn another_users_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (owner, id, secret, alice, a) = scene(&s, "10000").await;
    let mallory = user(&s, "mallory@example.com").await;
    let (mine, _) = strategy(&s, &mallory, "mine").await;
    let m = account(&s, &mallory, "mallory-key", false).await;
    // A read grant and a trade grant of alice's accounts to mallory.
    let traded = account(&s, &alice, "alice-shared", false).await;
    for (acc, level) in [(&a, "read"), (&traded, "trade")] {
        let (status, body) = s
            .post(
                &format!("/api/accounts/{acc}/shares"),
                Some(&alice.token),
                json!({"email": mallory.email, "level": level}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for acc in [&a, &traded] {
        let (status, body) = follow(&s, &mallory, &mine, json!({ "account_id": acc })).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("not_account_owner"))
        );
    }
    // An account mallory cannot see.
    let hidden = account(&s, &alice, "alice-hidden", false).await;
    assert_eq!(
        follow(&s, &mallory, &mine, json!({ "account_id": hidden }))
            .await
            .0,
        404
    );
    // A read-only account of one's own.
    let ro = account(&s, &mallory, "mallory-ro", true).await;
    let (status, body) = follow(&s, &mallory, &mine, json!({ "account_id": ro })).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("read_only_account"))
    );
    // Owner-only strategy operations.
    assert_eq!(
        s.post(
            &format!("/api/strategies/{id}/secret"),
            Some(&mallory.token),
            json!({})
        )
        .await
        .0,
        404
    );
    assert_eq!(
        s.get(
            &format!("/api/strategies/{id}/signals"),
            Some(&mallory.token)
        )
        .await
        .0,
        404
    );
    // Unsubscribing alice's account from the owner's strategy: 404, and it still trades.
    for who in [&mallory, &owner] {
        assert_eq!(
            s.delete(
                &format!("/api/strategies/{id}/followers/{a}"),
                Some(&who.token)
            )
            .await,
            404
        );
        // Nor through the shares API.
        assert_ne!(
            s.delete(
                &format!("/api/accounts/{a}/shares/strategy:{id}"),
                Some(&who.token)
            )
            .await,
            204
        );
    }
    // Mallory's own account to the owner's strategy is fine (her choice).
    assert_eq!(
        follow(&s, &mallory, &id, json!({ "account_id": m }))
            .await
            .0,
        201
    );
    let body = order("0.01");
    let r = deliver(&s, &id, &header(&secret, now_i(), &body), &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(trades(&s, &alice, &a).await, 1);
    // Mallory's follower view holds her own account only.
    let (_, mine_view) = s.get("/api/following/signals", Some(&mallory.token)).await;
    let text = mine_view.to_string();
    assert!(!text.contains(&a), "{text}");
    assert!(text.contains(&m), "{text}");
    // The strategy owner cannot read alice's account through the exchange API.
    let (status, _) = s
        .post(
            "/api/exchange/my_trades",
            Some(&owner.token),
            json!({ "account_id": a }),
        )
        .await;
    assert_eq!(status, 404);
}

/// A follower who revoked the strategy's share (shares API), or whose subscription
/// expired, is not traded.
#[tokio::test]
async fn revoked_or_expired_follower_is_not_traded() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "10000").await;
    let bob = user(&s, "bob@example.com").await;
    let b = account(&s, &bob, "bob-key", false).await;
    s.go_live(&bob.token, &b, "1000", "10000").await;
    let soon = now_i() + 2;
    assert_eq!(
        follow(
            &s,
            &bob,
            &id,
            json!({ "account_id": b, "expires_at": soon })
        )
        .await
        .0,
        201
    );
    assert_eq!(
        s.delete(
            &format!("/api/accounts/{a}/shares/strategy:{id}"),
            Some(&alice.token)
        )
        .await,
        204
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let body = order("0.01");
    let r = deliver(&s, &id, &header(&secret, now_i(), &body), &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for res in r.json()["results"].as_array().unwrap() {
        assert_eq!(res["status"], "refused", "{res}");
    }
    assert_eq!(trades(&s, &alice, &a).await, 0);
    assert_eq!(trades(&s, &bob, &b).await, 0);
}

/// Two (ten) concurrent deliveries of the same signal: exactly one executes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_same_delivery_executes_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "10000").await;
    let body = order("0.01");
    let sig = header(&secret, now_i(), &body);
    let answers = futures::future::join_all((0..10).map(|_| deliver(&s, &id, &sig, &body))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 200),
        "{statuses:?}"
    );
    assert_eq!(trades(&s, &alice, &a).await, 1);
}

/// A follower's daily cap under concurrent distinct signals: never exceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn daily_cap_holds_under_concurrent_signals() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    // Each order is 500; the cap 1000: at most two.
    let (_owner, id, secret, alice, a) = scene(&s, "1000").await;
    let bodies: Vec<Vec<u8>> = (1..=8)
        .map(|i| {
            json!({"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": format!("50000.0000000{i}")})
                .to_string()
                .into_bytes()
        })
        .collect();
    let t = now_i();
    let sigs: Vec<String> = bodies.iter().map(|b| header(&secret, t, b)).collect();
    let answers = futures::future::join_all(
        bodies
            .iter()
            .zip(&sigs)
            .map(|(b, sig)| deliver(&s, &id, sig, b)),
    )
    .await;
    let mut placed = 0;
    for r in &answers {
        assert_eq!(r.status, 202, "{}", r.text);
        if r.json()["results"][0]["status"] == "placed" {
            placed += 1;
        }
    }
    assert!(placed <= 1, "placed {placed}");
    assert!(trades(&s, &alice, &a).await <= 1);
    let (_, risk) = s.get("/api/risk", Some(&alice.token)).await;
    let used: f64 = risk["used_today"].as_str().unwrap().parse().unwrap();
    assert!(used <= 1000.0, "{risk}");
}

/// Rate-limit keys: one user's session and API key share the principal limit; IPv6
/// clients are keyed by /64, IPv4 (also mapped into IPv6) by the full address.
#[tokio::test]
async fn rate_limit_keys_are_not_confused() {
    let k = throttle::address_key;
    let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        k(v6("2001:db8:1:2:aaaa::1")),
        k(v6("2001:db8:1:2:ffff:ffff:ffff:ffff"))
    );
    assert_ne!(k(v6("2001:db8:1:2::1")), k(v6("2001:db8:1:3::1")));
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    assert_eq!(k(v6("::ffff:192.0.2.7")), k(v4));
    assert_ne!(k(v6("::ffff:192.0.2.8")), k(v4));
    assert_ne!(k(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8))), k(v4));
    // An IPv6 key never equals an IPv4 one.
    assert_ne!(k(v6("::c000:207")), k(v4));

    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[
            ("STRONGROOM_RATE_LIMITS", "1"),
            ("STRONGROOM_RATE_LIMIT_PRINCIPAL", "4/60"),
            ("STRONGROOM_RATE_LIMIT_ACCOUNT", "1000/60"),
            ("STRONGROOM_RATE_LIMIT_ADDRESS", "1000/60"),
        ],
    );
    let alice = user(&s, "alice@example.com").await;
    let bob = user(&s, "bob@example.com").await;
    let (status, key) = s.post("/api/keys", Some(&alice.token), json!({})).await;
    assert_eq!(status, 201, "{key}");
    let key = key["api_key"].as_str().unwrap().to_owned();
    let me = |t: String| {
        let s = &s;
        async move {
            s.http
                .get(s.url("/api/auth/me"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    let mut statuses = Vec::new();
    for t in [&key, &alice.token, &key, &alice.token, &key] {
        statuses.push(me(t.clone()).await.status().as_u16());
    }
    // The key creation spent one: three more, then 429 whichever credential.
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let refused = me(alice.token.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15).contains(&retry), "{retry}");
    let limit: Vec<&str> = refused
        .headers()
        .get_all("ratelimit")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(limit, [format!("\"principal\";r=0;t={retry}")]);
    assert_eq!(me(bob.token.clone()).await.status(), 200);
}

/// A 429 from the per-strategy webhook limit speaks as every other 429 of the service
/// (`{"error":"rate_limited"}`, `Retry-After`, and a `RateLimit` item with `r=0` for the
/// policy that refused), never a `RateLimit` that claims room left.
#[tokio::test]
async fn webhook_429_carries_correct_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        dir.path(),
        &[
            ("STRONGROOM_WEBHOOK_SIGNALS_PER_MIN", "1"),
            ("STRONGROOM_RATE_LIMITS", "1"),
            ("STRONGROOM_RATE_LIMIT_PRINCIPAL", "1000/60"),
            ("STRONGROOM_RATE_LIMIT_ACCOUNT", "1000/60"),
            ("STRONGROOM_RATE_LIMIT_ADDRESS", "1000/60"),
        ],
    );
    let owner = user(&s, "owner@example.com").await;
    let (id, secret) = strategy(&s, &owner, "busy").await;
    let b1 = order("0.01");
    assert_eq!(
        deliver(&s, &id, &header(&secret, now_i(), &b1), &b1)
            .await
            .status,
        202
    );
    let b2 = order("0.02");
    let r = deliver(&s, &id, &header(&secret, now_i(), &b2), &b2).await;
    assert_eq!(r.status, 429, "{}", r.text);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.json()["error"], "rate_limited", "{}", r.text);
    let items: Vec<&str> = r
        .headers
        .get_all("ratelimit")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        items
            .iter()
            .any(|i| i.ends_with(&format!(";r=0;t={retry}"))),
        "no r=0 item for the refusing policy: {items:?}"
    );
}

/// No secret (webhook secrets current and rotated, passwords right and wrong) in the
/// log (at `trace`) or in any error body.
#[tokio::test]
async fn no_secret_in_logs_or_error_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), &[]);
    let (owner, id, secret, _alice, _a) = scene(&s, "10000").await;
    let (status, rotated) = s
        .post(
            &format!("/api/strategies/{id}/secret"),
            Some(&owner.token),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["webhook_secret"].as_str().unwrap().to_owned();
    let wrong_pw = "wrong-password-canary-7f3a9c";
    let mut bodies = Vec::new();
    for pw in [wrong_pw, PASSWORD] {
        let (st, b) = s
            .post(
                "/api/auth/login",
                None,
                json!({"email": "nobody@example.com", "password": pw}),
            )
            .await;
        assert_eq!(st, 401);
        bodies.push(b.to_string());
        let (_, b) = s
            .post(
                "/api/auth/login",
                None,
                json!({"email": owner.email, "password": wrong_pw}),
            )
            .await;
        bodies.push(b.to_string());
    }
    // Deliveries refused for each reason, one signed with the secret as the body.
    let t = now_i();
    for (sig, body) in [
        (header(&secret, t - 1000, b"x"), secret.as_bytes().to_vec()),
        (header(&second, t, b"{"), b"{".to_vec()),
        (format!("t={t},v1={secret}"), b"{}".to_vec()),
        (format!("t={t},v1=0,k={second}"), b"{}".to_vec()),
        (
            header(&second, t, second.as_bytes()),
            second.as_bytes().to_vec(),
        ),
    ] {
        let r = deliver(&s, &id, &sig, &body).await;
        bodies.push(r.text);
    }
    // A strategy name and follow body carrying the secret.
    let (_, b) = s
        .post(
            "/api/strategies",
            Some(&owner.token),
            json!({"name": format!("{second}\u{1}")}),
        )
        .await;
    bodies.push(b.to_string());
    s.stop();
    let logs = s.logs();
    for canary in [
        secret.clone(),
        second.clone(),
        hex(&secret_bytes(&secret)),
        hex(&secret_bytes(&second)),
        wrong_pw.to_owned(),
        PASSWORD.to_owned(),
        secret["whsec_".len()..].to_owned(),
        second["whsec_".len()..].to_owned(),
    ] {
        assert!(!logs.contains(&canary), "log holds a secret");
        for b in &bodies {
            assert!(!b.contains(&canary), "error body holds a secret: {b}");
        }
    }
}

/// A market order's `price` is the strategy's own claim: it bounds the risk check, so
/// the venue must never be sent an order that can cost more than it. A "market" buy of
/// 1 BTC claiming a price of 0.00000001 passes every limit as a notional of 0.00000001;
/// sent as a market order it fills at the venue's mark (50 000), 50 times the
/// follower's maximum order. It must not spend more than the admitted notional.
#[tokio::test]
async fn a_market_order_cannot_spend_past_its_claimed_price() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "10000").await;
    let body = json!({"symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "1", "price": "0.00000001"})
        .to_string()
        .into_bytes();
    let r = deliver(&s, &id, &header(&secret, now_i(), &body), &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    // Whatever the outcome, nothing filled above the admitted value.
    assert_eq!(trades(&s, &alice, &a).await, 0, "{}", r.text);
    let (_, risk) = s.get("/api/risk", Some(&alice.token)).await;
    let used: f64 = risk["used_today"].as_str().unwrap().parse().unwrap();
    let reserved: f64 = risk["reserved_today"].as_str().unwrap().parse().unwrap();
    assert!(used + reserved <= 1000.0, "{risk}");
    // The paper account starts with 1 BTC: still 1, nothing bought.
    let (_, bal) = s
        .post(
            "/api/exchange/balance",
            Some(&alice.token),
            json!({ "account_id": a }),
        )
        .await;
    assert_eq!(bal["result"]["balances"]["BTC"]["total"], "1", "{bal}");
}

/// The sell side of the same attack: a "sell" claiming a tiny price would be admitted as
/// a tiny notional while the venue fills it at its own (higher) price. A sell is valued
/// at the venue's reference price when that is higher than the claim: 0.1 BTC (5000 at
/// the paper venue's 50 000) is over the follower's order maximum (1000) and refused;
/// 0.01 BTC (500) is placed and counts 500 against the daily cap, not 1e-8.
#[tokio::test]
async fn a_sell_cannot_trade_past_the_followers_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "100000").await;
    let sell = |amount: &str| {
        json!({"symbol": "BTC/USDT", "side": "sell", "type": "market", "amount": amount, "price": "0.00000001"})
            .to_string()
            .into_bytes()
    };
    let body = sell("0.1");
    let r = deliver(&s, &id, &header(&secret, now_i(), &body), &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["results"][0]["status"], "refused", "{}", r.text);
    assert_eq!(
        r.json()["results"][0]["error"],
        "max_order_notional",
        "{}",
        r.text
    );
    assert_eq!(trades(&s, &alice, &a).await, 0, "{}", r.text);
    // The risk guard's refusal is in the audit trail (its sink is wired; the writer
    // batches, so give it a moment).
    let mut exported = String::new();
    for _ in 0..50 {
        let export = common::cli(dir.path(), &[], &["audit", "export", "--since", "0"]);
        assert!(export.status.success(), "{}", common::stderr(&export));
        exported = common::stdout(&export);
        if exported.contains("\"risk.refuse.order_too_large\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        exported.contains("\"risk.refuse.order_too_large\""),
        "{exported}"
    );

    let body = sell("0.01");
    let r = deliver(&s, &id, &header(&secret, now_i(), &body), &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["results"][0]["status"], "placed", "{}", r.text);
    assert_eq!(trades(&s, &alice, &a).await, 1, "{}", r.text);
    let (status, risk) = s.get("/api/risk", Some(&alice.token)).await;
    assert_eq!(status, 200, "{risk}");
    assert_eq!(risk["used_today"], "500", "{risk}");
}

/// A sell on a market the venue does not list has no reference price: refused, nothing
/// traded (the claimed price alone never values a sell).
#[tokio::test]
async fn a_sell_without_a_reference_price_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (_owner, id, secret, alice, a) = scene(&s, "100000").await;
    let body = json!({"symbol": "DOGE/USDT", "side": "sell", "type": "limit", "amount": "1", "price": "0.1"})
        .to_string()
        .into_bytes();
    let r = deliver(&s, &id, &header(&secret, now_i(), &body), &body).await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["results"][0]["status"], "refused", "{}", r.text);
    assert_eq!(
        r.json()["results"][0]["error"],
        "unknown_symbol",
        "{}",
        r.text
    );
    assert_eq!(trades(&s, &alice, &a).await, 0, "{}", r.text);
}

/// Concurrent rotations: each answers 200 (a secret that verifies now) or a clean
/// refusal; never a 5xx other than 503, and the newest secret shown verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_leave_a_working_secret() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let (owner, id, _secret, alice, a) = scene(&s, "10000").await;
    let path = format!("/api/strategies/{id}/secret");
    let answers =
        futures::future::join_all((0..4).map(|_| s.post(&path, Some(&owner.token), json!({}))))
            .await;
    let mut shown = Vec::new();
    for (status, body) in &answers {
        assert!([200, 409, 503].contains(status), "{status} {body}");
        if *status == 200 {
            shown.push(body["webhook_secret"].as_str().unwrap().to_owned());
        }
    }
    assert!(!shown.is_empty(), "{answers:?}");
    let mut ok = 0;
    for (i, sec) in shown.iter().enumerate() {
        let body = order(&format!("0.0{}", i + 1));
        if deliver(&s, &id, &header(sec, now_i(), &body), &body)
            .await
            .status
            == 202
        {
            ok += 1;
        }
    }
    assert!(ok >= 1, "no shown secret verifies");
    assert!(trades(&s, &alice, &a).await >= 1);
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    /// Two instances on one PostgreSQL: the same delivery raced to both executes once,
    /// and distinct concurrent signals split across both never pass the daily cap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
    async fn races_across_two_instances() {
        let database_url = common::pg_fresh_schema("tb_attack").await.database_url;
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("API_TOKEN", TOKEN),
            ("DATABASE_URL", database_url.as_str()),
        ];
        let one = Server::start(dir.path(), &env);
        let two = Server::start(dir.path(), &env);
        for email in ["owner@example.com", "alice@example.com"] {
            create_user(dir.path(), &env, email, Some(PASSWORD), false);
        }
        let owner = User {
            email: "owner@example.com".into(),
            token: one.login("owner@example.com", PASSWORD).await,
        };
        let alice = User {
            email: "alice@example.com".into(),
            token: one.login("alice@example.com", PASSWORD).await,
        };
        let (id, secret) = strategy(&one, &owner, "raced").await;
        let a = account(&one, &alice, "alice-pg", false).await;
        one.go_live(&alice.token, &a, "1000", "1000").await;
        assert_eq!(
            follow(&one, &alice, &id, json!({ "account_id": a }))
                .await
                .0,
            201
        );
        let body = order("0.001"); // 50
        let sig = header(&secret, now_i(), &body);
        let answers = futures::future::join_all((0..12).map(|i| {
            let s = if i % 2 == 0 { &one } else { &two };
            deliver(s, &id, &sig, &body)
        }))
        .await;
        let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 202).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| *s == 202 || *s == 200),
            "{statuses:?}"
        );
        // Used 50 of 1000; orders of 500.00000001: at most one more fits.
        let bodies: Vec<Vec<u8>> = (1..=8)
            .map(|i| {
                json!({"symbol": "BTC/USDT", "side": "buy", "type": "limit", "amount": "0.01", "price": format!("50000.0000000{i}")})
                    .to_string()
                    .into_bytes()
            })
            .collect();
        let t = now_i();
        let sigs: Vec<String> = bodies.iter().map(|b| header(&secret, t, b)).collect();
        let answers =
            futures::future::join_all(bodies.iter().zip(&sigs).enumerate().map(|(i, (b, sig))| {
                let s = if i % 2 == 0 { &one } else { &two };
                deliver(s, &id, sig, b)
            }))
            .await;
        let placed = answers
            .iter()
            .filter(|r| r.json()["results"][0]["status"] == "placed")
            .count();
        assert!(placed <= 1, "placed {placed}");
        assert!(trades(&one, &alice, &a).await <= 2);
        let (_, risk) = one.get("/api/risk", Some(&alice.token)).await;
        let used: f64 = risk["used_today"].as_str().unwrap().parse().unwrap();
        assert!(used <= 1000.0, "{risk}");
    }
}
