//! Request limits over HTTP (module `app::limits`): 429 `rate_limited` with
//! `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` fields after the burst;
//! per principal (every credential of a user, independent between users), per exchange
//! account (only callers the grant allowed spend it), per client address on the
//! unauthenticated routes; two instances share one limit through Redis; Redis stopped
//! mid-test: unauthenticated routes fail closed (503), authenticated ones are limited
//! per instance, and the shared store is used again once Redis is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, create_user};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

const ALICE_PW: &str = "alice-password-0123";
const BOB_PW: &str = "bob-password-0123";

/// The limit variables, all set (values inherited from the environment never apply).
fn limits(principal: &str, account: &str, address: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STRONGROOM_RATE_LIMITS", "1".to_owned()),
        ("STRONGROOM_RATE_LIMIT_PRINCIPAL", principal.to_owned()),
        ("STRONGROOM_RATE_LIMIT_ACCOUNT", account.to_owned()),
        ("STRONGROOM_RATE_LIMIT_ADDRESS", address.to_owned()),
    ]
}

fn start(dir: &std::path::Path, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start(dir, &env)
}

/// One answer: status, headers, JSON body (or null).
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// Every line of a header, in order.
    fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `RateLimit` item of `policy`: (r, t).
    fn limit(&self, policy: &str) -> Option<(u64, u64)> {
        let prefix = format!("\"{policy}\";");
        self.all("ratelimit").iter().find_map(|item| {
            let params = item.strip_prefix(&prefix)?;
            let mut r = None;
            let mut t = None;
            for p in params.split(';') {
                match p.split_once('=') {
                    Some(("r", v)) => r = Some(v.parse().unwrap()),
                    Some(("t", v)) => t = Some(v.parse().unwrap()),
                    _ => panic!("unexpected parameter in {item}"),
                }
            }
            Some((r.unwrap(), t.unwrap()))
        })
    }

    fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A 429 of `policy`: the body, `Retry-After` (whole seconds, at least 1, at most
    /// `max`), and `RateLimit` with r=0 and t equal to `Retry-After`.
    fn assert_limited(&self, policy: &str, max: u64) {
        assert_eq!(self.status, 429, "{policy}: {}", self.body);
        assert_eq!(self.body, json!({ "error": "rate_limited" }));
        let secs = self.retry_after();
        assert!((1..=max).contains(&secs), "Retry-After {secs}");
        assert_eq!(self.limit(policy), Some((0, secs)), "{:?}", self.headers);
        assert!(
            self.all("ratelimit-policy")
                .iter()
                .any(|p| p.starts_with(&format!("\"{policy}\";q="))),
            "{:?}",
            self.headers
        );
    }
}

async fn send(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = s.http.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

async fn me(s: &Server, token: &str) -> Answer {
    send(s, reqwest::Method::GET, "/api/auth/me", Some(token), None).await
}

async fn login(s: &Server, email: &str, password: &str) -> Answer {
    send(
        s,
        reqwest::Method::POST,
        "/api/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

async fn balance(s: &Server, token: &str, account: &str) -> Answer {
    send(
        s,
        reqwest::Method::POST,
        "/api/exchange/balance",
        Some(token),
        Some(json!({ "account_id": account })),
    )
    .await
}

async fn new_account(s: &Server, session: &str, label: &str) -> String {
    let a = send(
        s,
        reqwest::Method::POST,
        "/api/accounts",
        Some(session),
        Some(json!({"exchange": "paper", "label": label, "api_key": "k-1", "secret": "s-1", "read_only": false})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

/// Every authenticated route is under the per-principal limit, including the ones added
/// to the router last (a `route_layer` wraps only the routes added before it: the risk,
/// strategy and signal routes once came after the limit's layer and were unlimited).
#[tokio::test(flavor = "multi_thread")]
async fn every_authenticated_route_carries_the_principal_limit() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    let s = start(dir.path(), &limits("1000/60", "1000/60", "1000/60"));
    let alice = s.login("alice@example.com", ALICE_PW).await;
    for path in [
        "/api/auth/me",
        "/api/keys",
        "/api/accounts",
        "/api/secrets",
        "/api/audit",
        "/api/risk",
        "/api/strategies",
        "/api/following/signals",
    ] {
        let a = send(&s, reqwest::Method::GET, path, Some(&alice), None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(
            a.all("ratelimit-policy"),
            ["\"principal\";q=1000;w=60"],
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn principal_limit_answers_429_with_the_fields_and_users_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    create_user(dir.path(), &[], "bob@example.com", Some(BOB_PW), false);
    let s = start(dir.path(), &limits("5/60", "1000/60", "1000/60"));
    let alice = s.login("alice@example.com", ALICE_PW).await;
    let bob = s.login("bob@example.com", BOB_PW).await;
    // One request of the quota creates an API key: every credential of the user shares
    // the one limit (keyed by the user, not the credential).
    let key = send(
        &s,
        reqwest::Method::POST,
        "/api/keys",
        Some(&alice),
        Some(json!({"name": "bot", "scopes": ["read"]})),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.body);
    assert_eq!(key.limit("principal").unwrap().0, 4);
    let key = key.body["api_key"].as_str().unwrap().to_owned();
    for left in [3, 2, 1, 0] {
        let a = me(&s, &alice).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.all("ratelimit-policy"), ["\"principal\";q=5;w=60"]);
        let (r, t) = a.limit("principal").unwrap();
        assert_eq!(r, left);
        // t: seconds until the quota is full again (one request back every 12 s).
        assert!((1..=60).contains(&t), "t={t}");
    }
    let refused = me(&s, &alice).await;
    refused.assert_limited("principal", 12);
    assert_eq!(refused.headers["cache-control"], "no-store");
    me(&s, &key).await.assert_limited("principal", 12);
    // Bob's quota is his own.
    let b = me(&s, &bob).await;
    assert_eq!(b.status, 200);
    assert_eq!(b.limit("principal").unwrap().0, 4);
    // A refused request is refused before the handler: logging out does not happen.
    let out = send(
        &s,
        reqwest::Method::POST,
        "/api/auth/logout",
        Some(&alice),
        Some(json!({})),
    )
    .await;
    out.assert_limited("principal", 12);
    assert!(s.logs().contains("rate_limit.exceeded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn account_limit_is_per_account_and_spent_only_by_allowed_callers() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    create_user(dir.path(), &[], "bob@example.com", Some(BOB_PW), false);
    create_user(
        dir.path(),
        &[],
        "carol@example.com",
        Some("carol-password-0123"),
        false,
    );
    let s = start(dir.path(), &limits("1000/60", "3/60", "1000/60"));
    let alice = s.login("alice@example.com", ALICE_PW).await;
    let bob = s.login("bob@example.com", BOB_PW).await;
    let carol = s.login("carol@example.com", "carol-password-0123").await;
    let main = new_account(&s, &alice, "main").await;
    let other = new_account(&s, &alice, "other").await;
    let share = send(
        &s,
        reqwest::Method::POST,
        &format!("/api/accounts/{main}/shares"),
        Some(&alice),
        Some(json!({"email": "bob@example.com", "level": "read"})),
    )
    .await;
    assert!(share.status < 300, "{}", share.body);
    // Carol cannot see the account: 404, and her calls leave its quota alone.
    for _ in 0..5 {
        let c = balance(&s, &carol, &main).await;
        assert_eq!(c.status, 404);
        assert_eq!(c.limit("account"), None);
    }
    // Alice and Bob share the account's quota.
    for (who, left) in [(&alice, 2), (&bob, 1), (&alice, 0)] {
        let a = balance(&s, who, &main).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.limit("account").unwrap().0, left);
        // The principal's item is there too: two items, one list per field.
        assert!(a.limit("principal").is_some());
        assert_eq!(
            a.all("ratelimit-policy"),
            ["\"account\";q=3;w=60", "\"principal\";q=1000;w=60"]
        );
    }
    balance(&s, &bob, &main).await.assert_limited("account", 20);
    balance(&s, &alice, &main)
        .await
        .assert_limited("account", 20);
    // Another account has its own quota.
    let a = balance(&s, &alice, &other).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.limit("account").unwrap().0, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn address_limit_covers_the_unauthenticated_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    let mut env = limits("1000/60", "1000/60", "3/60");
    env.push(("REGISTRATION_OPEN", "1".to_owned()));
    let s = start(dir.path(), &env);
    let ok = login(&s, "alice@example.com", ALICE_PW).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.all("ratelimit-policy"), ["\"address\";q=3;w=60"]);
    assert_eq!(ok.limit("address").unwrap().0, 2);
    let session = ok.body["token"].as_str().unwrap().to_owned();
    let wrong = login(&s, "alice@example.com", "wrong password, again").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.limit("address").unwrap().0, 1);
    let unknown = login(&s, "nobody@example.com", "wrong password, again").await;
    assert_eq!(unknown.status, 401);
    // The fourth is refused before the password is looked at, even the right one.
    login(&s, "alice@example.com", ALICE_PW)
        .await
        .assert_limited("address", 20);
    // One limit for every unauthenticated route of the address.
    for (path, body) in [
        (
            "/api/auth/register",
            json!({"email": "new@example.com", "password": "a-new-password-0123"}),
        ),
        (
            "/api/auth/token",
            json!({"email": "alice@example.com", "password": ALICE_PW}),
        ),
        ("/api/auth/refresh", json!({"refresh_token": "x"})),
        ("/api/auth/revoke", json!({"token": "x"})),
        ("/api/auth/mfa", json!({"mfa_token": "x", "code": "123456"})),
    ] {
        send(&s, reqwest::Method::POST, path, None, Some(body))
            .await
            .assert_limited("address", 20);
    }
    // Not limited: health, the JWKS and discovery, and authenticated routes (their own
    // per-principal limit).
    for path in [
        "/healthz",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let a = send(&s, reqwest::Method::GET, path, None, None).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(a.all("ratelimit").is_empty(), "{path}");
    }
    let a = me(&s, &session).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.all("ratelimit-policy"), ["\"principal\";q=1000;w=60"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_off_sends_no_fields_and_refuses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    let s = start(dir.path(), &[("STRONGROOM_RATE_LIMITS", "0".to_owned())]);
    let session = s.login("alice@example.com", ALICE_PW).await;
    for _ in 0..3 {
        let a = me(&s, &session).await;
        assert_eq!(a.status, 200);
        assert!(a.all("ratelimit").is_empty() && a.all("ratelimit-policy").is_empty());
    }
    let a = login(&s, "alice@example.com", ALICE_PW).await;
    assert_eq!(a.status, 200);
    assert!(a.all("ratelimit").is_empty());
}

fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    base16ct::lower::encode_string(&bytes)
}

/// Two backend processes on one data directory and one Redis: requests alternate
/// between them and the user's quota (6) still holds in total, because the limiter
/// state is in Redis. With per-instance memory each would allow 6 (12 in all).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Redis (STRONGROOM_REDIS_URL)"]
async fn two_instances_share_one_limit_through_redis() {
    let url = common::redis_url();
    let dir = tempfile::tempdir().unwrap();
    // A new user id on every run: the shared Redis keeps other runs' keys a minute.
    let email = format!("shared-{}@example.com", random_hex());
    create_user(dir.path(), &[], &email, Some(ALICE_PW), false);
    let mut env = limits("6/60", "1000/60", "1000/60");
    env.push(("REDIS_URL", url));
    let a = start(dir.path(), &env);
    let b = start(dir.path(), &env);
    let session = a.login(&email, ALICE_PW).await;
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for i in 0..10 {
        let s = if i % 2 == 0 { &a } else { &b };
        let answer = me(s, &session).await;
        statuses.push(answer.status);
        if answer.status == 429 {
            answer.assert_limited("principal", 10);
        } else {
            remaining.push(answer.limit("principal").unwrap().0);
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    // One count across both instances.
    assert_eq!(remaining, [5, 4, 3, 2, 1, 0]);
}

/// A private `redis-server` on a free loopback port (never the shared one): killed and
/// restarted by the test.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command(&["PING"]).as_deref() != Some("+PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command in RESP; the first line of the reply (`None`: no server).
    fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            if stream.read(&mut byte).ok()? == 0 {
                return None;
            }
            reply.push(byte[0]);
        }
        Some(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Redis stopped mid-test. Before: decisions in Redis. While it is down: the
/// unauthenticated routes answer 503 `rate_limiter_unavailable` (fail closed, before
/// any password work); authenticated routes go on under this instance's memory limit
/// (still a limit: 429 after the burst). After a restart on the same port: the service
/// uses Redis again without a restart of its own.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Redis (redis-server on PATH)"]
async fn redis_stopped_mid_test_fails_closed_unauthenticated_and_recovers() {
    let mut redis = PrivateRedis::start();
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    let mut env = limits("5/60", "1000/60", "1000/60");
    env.push(("REDIS_URL", redis.url()));
    env.push(("REGISTRATION_OPEN", "1".to_owned()));
    let s = start(dir.path(), &env);
    let session = s.login("alice@example.com", ALICE_PW).await;
    let first = me(&s, &session).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.limit("principal").unwrap().0, 4);
    let user_id = first.body["user_id"].as_str().unwrap().to_owned();
    let key = format!("throttle:request.principal:{user_id}");
    assert_eq!(redis.command(&["EXISTS", &key]).as_deref(), Some(":1"));
    assert_eq!(me(&s, &session).await.limit("principal").unwrap().0, 3);

    redis.kill();
    for (path, body) in [
        (
            "/api/auth/login",
            json!({"email": "alice@example.com", "password": ALICE_PW}),
        ),
        (
            "/api/auth/register",
            json!({"email": "new@example.com", "password": "a-new-password-0123"}),
        ),
        (
            "/api/auth/token",
            json!({"email": "alice@example.com", "password": ALICE_PW}),
        ),
    ] {
        let a = send(&s, reqwest::Method::POST, path, None, Some(body)).await;
        assert_eq!(a.status, 503, "{path}: {}", a.body);
        assert_eq!(a.body, json!({ "error": "rate_limiter_unavailable" }));
        assert!(a.headers.contains_key("retry-after"));
    }
    // Authenticated: this instance's memory, same quota (a fresh count), still limited.
    for left in [4, 3, 2, 1, 0] {
        let a = me(&s, &session).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.limit("principal").unwrap().0, left);
    }
    me(&s, &session).await.assert_limited("principal", 12);
    let logs = s.logs();
    assert!(logs.contains("rate_limit.store_unavailable"), "{logs}");
    assert!(!logs.contains(&redis.url()), "the Redis URL is logged");

    // Back on the same port (empty: `--save ''`): the service finds it by itself.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = login(&s, "alice@example.com", ALICE_PW).await;
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 503, "{}", a.body);
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Decided by Redis again: a fresh count there (memory would refuse).
    let a = me(&s, &session).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.limit("principal").unwrap().0, 4);
    assert_eq!(redis.command(&["EXISTS", &key]).as_deref(), Some(":1"));
    assert!(s.logs().contains("rate_limit.store_recovered"));
}
