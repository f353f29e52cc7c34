//! Test harness: runs the real `trading-backend` binary on a free loopback port with a
//! temporary data directory, captures its stdout and stderr, and drives it over HTTP.

#![allow(dead_code, unreachable_pub)] // Shared by every test module, each using a part.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_trading-backend");

/// The service's configuration variables without a `STRONGROOM_`, `SSO_`, `VAULT_` or
/// `AWS_` prefix.
/// Every inherited configuration variable is removed from a server the tests start (a
/// fixed list of names went stale each time a variable was added: the tests then ran
/// with whatever the developer's shell held).
const OWN_VARS: &[&str] = &[
    "REDIS_URL",
    "DATABASE_URL",
    "LISTEN_ADDR",
    "API_TOKEN",
    "INTERNAL_SECRET",
    "REGISTRATION_OPEN",
    "WS_RECHECK_SECS",
    "METRICS_ADDR",
    "REQUEST_TIMEOUT_SECS",
    "SHUTDOWN_GRACE_SECS",
    "LOG_FORMAT",
    "API_TOKEN_FILE",
    "INTERNAL_SECRET_FILE",
    "DATABASE_URL_FILE",
    "REDIS_URL_FILE",
];

/// Whether the variable `name` configures the service (removed when inherited).
fn configures_the_service(name: &str) -> bool {
    // VAULT_ and AWS_: the key-encryption backends' variables (STRONGROOM_KEK).
    ["STRONGROOM_", "SSO_", "VAULT_", "AWS_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || OWN_VARS.contains(&name)
}

pub fn command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(configures_the_service) {
            cmd.env_remove(name);
        }
    }
    cmd.env("STRONGROOM_DATA_DIR", data_dir)
        .env("RUST_LOG", "trace")
        .env("LISTEN_ADDR", "127.0.0.1:0");
    // Request limits (never inherited, above): the per-address limit (60 a minute by
    // default) would refuse the volume of unauthenticated requests that some tests send
    // from 127.0.0.1 on purpose; the tests of the limits (tests/limits.rs) set their own.
    if !env
        .iter()
        .any(|(k, _)| k.starts_with("STRONGROOM_RATE_LIMIT"))
    {
        cmd.env("STRONGROOM_RATE_LIMIT_ADDRESS", "100000/60");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a CLI subcommand to completion.
pub fn cli(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    command(data_dir, env).args(args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Creates a user through the CLI; its generated password (or the given one).
pub fn create_user(
    data_dir: &Path,
    env: &[(&str, &str)],
    email: &str,
    password: Option<&str>,
    reset: bool,
) -> String {
    let mut args = vec!["create-user", email];
    if let Some(p) = password {
        args.extend(["--password", p]);
    }
    if !reset {
        args.push("--no-reset");
    }
    let out = cli(data_dir, env, &args);
    assert!(out.status.success(), "create-user failed: {}", stderr(&out));
    match password {
        Some(p) => p.to_owned(),
        None => stdout(&out)
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .expect("generated password printed")
            .to_owned(),
    }
}

/// A running server.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut child = command(data_dir, env)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let err = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut out = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut buf = String::new();
            let _ = out.read_to_string(&mut buf);
            sink.lock().unwrap().push_str(&buf);
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", logs.lock().unwrap());
            }
        };
        Server {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
            logs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The `/metrics` URL the server printed (started with `METRICS_ADDR`).
    pub fn metrics_url(&self) -> String {
        for _ in 0..100 {
            if let Some(url) = self
                .logs()
                .lines()
                .find_map(|l| l.strip_prefix("metrics on ").map(str::to_owned))
            {
                return url;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no metrics address printed: {}", self.logs());
    }

    /// Sends `SIGTERM` (what an orchestrator sends to stop a service).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `timeout` for the server to exit; its exit status, or `None` if it is
    /// still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits for it, so that the log is complete.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, body).await
    }

    /// A JSON request: the status and the JSON answer (`Null` when not JSON).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sets the risk limits of the user holding `token` and turns live trading on for
    /// `account` (the venue must accept the account's credential).
    pub async fn go_live(&self, token: &str, account: &str, max_order: &str, daily_cap: &str) {
        let (status, body) = self
            .put(
                "/api/risk",
                Some(token),
                json!({"max_order_notional": max_order, "daily_cap": daily_cap}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self
            .put(
                &format!("/api/accounts/{account}/live-trading"),
                Some(token),
                json!({"enabled": true}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The status of `GET path`, polled every 25 ms until it is `expected` or one second
    /// has passed. A write made by another process (an operator command, another
    /// instance) reaches this server's validity cache within its TTL (500 ms by default).
    pub async fn get_within_1s(&self, path: &str, token: Option<&str>, expected: u16) -> u16 {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let status = self.get(path, token).await.0;
            if status == expected || std::time::Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The status of `POST path` with `body`, polled every 25 ms until it is `expected`
    /// or one second has passed (as [`Server::get_within_1s`]: another instance's grant
    /// change reaches this server's grant cache within its TTL).
    pub async fn post_within_1s(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
        expected: u16,
    ) -> u16 {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let status = self.post(path, token, body.clone()).await.0;
            if status == expected || std::time::Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> u16 {
        let mut req = self.http.delete(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// Logs in; the session token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/api/auth/login",
                None,
                json!({ "email": email, "password": password }),
            )
            .await;
        assert_eq!(status, 200, "login {email}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `needle` occurs anywhere in the file's raw bytes (missing file: false).
pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path)
        .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        .unwrap_or(false)
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// RFC 4648 base32 (no padding) to bytes: the tests decode the enrolment secret
/// themselves, independent of auth-core.
pub fn base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 TOTP, SHA-1, 6 digits, 30 s, at Unix time `t` (an independent HMAC, not
/// auth-core's).
pub fn totp(secret_b32: &str, t: u64) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &base32(secret_b32));
    let mac = hmac::sign(&key, &(t / 30).to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", bin % 1_000_000)
}

/// Enrols the second factor of `session`'s user and confirms it with the previous step's
/// code (checking the enrolment answer's shape); returns (base32 secret, recovery codes).
pub async fn enable_mfa(s: &Server, session: &str) -> (String, Vec<String>) {
    let res = s
        .http
        .post(s.url("/api/auth/mfa/enroll"))
        .bearer_auth(session)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let secret = body["secret"].as_str().unwrap().to_owned();
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Strongroom:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")));
    let (status, body) = s
        .post(
            "/api/auth/mfa/confirm",
            Some(session),
            json!({ "code": totp(&secret, now() - 30) }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

/// `POST /api/auth/token` with a password: (status, body).
pub async fn token_login(server: &Server, email: &str, password: &str) -> (u16, Value) {
    server
        .post(
            "/api/auth/token",
            None,
            json!({ "email": email, "password": password }),
        )
        .await
}

/// The PostgreSQL test server (`STRONGROOM_PG_URL`, which `.ci/run` sets).
#[cfg(feature = "postgres")]
pub fn pg_url() -> String {
    std::env::var("STRONGROOM_PG_URL").expect("STRONGROOM_PG_URL must be set for this test")
}

/// A fresh schema of the PostgreSQL test server, one per test.
#[cfg(feature = "postgres")]
pub struct PgSchema {
    /// `<prefix>_<12 hex>`.
    pub name: String,
    /// The `DATABASE_URL` that puts the schema first on the search path.
    pub database_url: String,
    /// A pool on the server's default search path, for the test's own queries.
    pub admin: sqlx::PgPool,
}

impl PgSchema {
    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

/// Creates a fresh schema `<prefix>_<12 hex>` on the test server, so that each test has
/// its own tables.
#[cfg(feature = "postgres")]
pub async fn pg_fresh_schema(prefix: &str) -> PgSchema {
    let url = pg_url();
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let name = format!("{prefix}_{}", base16ct::lower::encode_string(&bytes));
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    PgSchema {
        database_url: format!("{url}{sep}options=-csearch_path%3D{name}"),
        name,
        admin,
    }
}

/// The value of the Prometheus series `series` (name and exact label text) in `text`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The shared Redis of the test environment (`STRONGROOM_REDIS_URL`, as `.ci/run` sets
/// it, else `REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("STRONGROOM_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .expect("STRONGROOM_REDIS_URL must be set to run the Redis tests")
}

/// Places `n` copies of `order` (a `create_order` body) at once, alternating between
/// `one` and `two`; every answer's status and JSON body.
pub async fn orders_across(
    one: &Server,
    two: &Server,
    token: &str,
    n: usize,
    order: &Value,
) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let server = if i % 2 == 0 { one } else { two };
        let (http, url) = (
            server.http.clone(),
            server.url("/api/exchange/create_order"),
        );
        let (token, order) = (token.to_owned(), order.clone());
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&order)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}
