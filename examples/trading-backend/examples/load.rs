//! A small load generator for a running `trading-backend` on loopback.
//!
//! It starts nothing itself. It logs in (a session and an access token), registers a
//! paper account, issues a read-scoped API key, warms the credential cache, then for each route runs `--connections`
//! concurrent clients for `--seconds` and prints requests per second and the ratio to
//! `GET /healthz` (the floor: the same server doing no work).
//!
//! The audit trail's cost is measured as the difference between two twin requests that
//! do the same work (an API key resolved, the exchange route's operation checked) except
//! that one of them records an audit event: a read-scoped key asking for a trade
//! (refused 403, recorded as `authz.scope_refused`) and the same key naming an unknown
//! operation (400, nothing recorded). The share is `1 - audited / twin` of their
//! requests per second: the whole cost of one audit event (enqueue, the writer's
//! sealing, SQL and commits, all competing for the same cores) as a share of an
//! authenticated request that records one, the worst case (most requests record none).
//!
//! With `--flood <connections>` it last measures the p50 and p99 latency of
//! `GET /api/auth/me` with an access token on 4 connections, alone and then while that
//! many connections send wrong-password logins (for random addresses) at full speed.
//!
//! With `--peer <url>` (repeatable) it also measures a peer built the way axum users
//! build this today, `benches/peer` (axum-login 0.18, tower-sessions 0.14 on SQLite): it
//! logs in to the peer once (`--peer-email`, `--peer-password`, default the peer's own
//! bench user), then for `--rounds` rounds measures Strongroom's `GET /api/auth/me` with
//! a session and each peer's `GET /api/auth/me` with its cookie, alternately, on the same
//! connections for the same time, and prints the ratio Strongroom / peer.
//!
//! With `--metrics <url>` (the server's `METRICS_ADDR`) it also reads the audit writer's
//! counters before and after each route and prints events per request and the writer's
//! wall-clock time per event (work and commit wait; inflated by waiting for a CPU while
//! the machine is saturated, so not a cost by itself).
//!
//! ```sh
//! METRICS_ADDR=127.0.0.1:9464 STRONGROOM_RATE_LIMITS=0 cargo run --release -p trading-backend -- serve &
//! cargo run --release -p trading-backend -- create-user load@example.com --password load-password-123 --no-reset
//! cargo run --release -p trading-backend --example load -- --email load@example.com --password load-password-123 --metrics http://127.0.0.1:9464/metrics
//! ```
//!
//! Beside the peer (`benches/peer/README.md`), one instance per session store:
//!
//! ```sh
//! cargo run --release --manifest-path benches/peer/Cargo.toml -- --store cached --port 8091 &
//! cargo run --release --manifest-path benches/peer/Cargo.toml -- --store sqlite --port 8092 &
//! cargo run --release -p trading-backend --example load -- --email load@example.com --password load-password-123 \
//!     --peer http://127.0.0.1:8091 --peer http://127.0.0.1:8092
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // A tool: a panic is a clear failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Args {
    url: String,
    email: String,
    password: String,
    seconds: u64,
    connections: usize,
    metrics: Option<String>,
    rounds: u32,
    /// `--flood <connections>`: also measure the latency of token-authenticated requests
    /// alone and beside a flood of wrong-password logins on that many connections.
    flood: usize,
    /// `--peer <url>`, repeatable: the axum-login peers (`benches/peer`) to compare with.
    peers: Vec<String>,
    peer_email: String,
    peer_password: String,
}

fn args() -> Args {
    let mut out = Args {
        url: "http://127.0.0.1:8080".into(),
        email: String::new(),
        password: String::new(),
        seconds: 10,
        connections: 32,
        metrics: None,
        rounds: 3,
        flood: 0,
        peers: Vec::new(),
        peer_email: "peer@example.com".into(),
        peer_password: "peer-password-123".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => out.url = value,
            "--email" => out.email = value,
            "--password" => out.password = value,
            "--seconds" => out.seconds = value.parse().expect("--seconds: a number"),
            "--connections" => out.connections = value.parse().expect("--connections: a number"),
            "--metrics" => out.metrics = Some(value),
            "--rounds" => out.rounds = value.parse().expect("--rounds: a number"),
            "--flood" => out.flood = value.parse().expect("--flood: a number"),
            "--peer" => out.peers.push(value.trim_end_matches('/').to_owned()),
            "--peer-email" => out.peer_email = value,
            "--peer-password" => out.peer_password = value,
            _ => panic!("unknown flag {flag}"),
        }
    }
    assert!(
        !out.email.is_empty() && !out.password.is_empty(),
        "--email and --password are required"
    );
    let loopback = |u: &str| {
        u.starts_with("http://127.0.0.1:")
            || u.starts_with("http://localhost:")
            || u.starts_with("http://[::1]:")
    };
    assert!(loopback(&out.url), "--url: loopback only");
    assert!(
        out.metrics.as_deref().is_none_or(loopback),
        "--metrics: loopback only"
    );
    assert!(
        out.peers.iter().all(|p| loopback(p)),
        "--peer: loopback only"
    );
    assert!((1..=300).contains(&out.seconds), "--seconds: 1..=300");
    assert!((1..=20).contains(&out.rounds), "--rounds: 1..=20");
    assert!(
        (1..=1024).contains(&out.connections),
        "--connections: 1..=1024"
    );
    assert!(out.flood <= 1024, "--flood: 0..=1024");
    out
}

#[derive(Clone)]
enum Call {
    Health,
    Me(String),
    /// `GET /api/auth/me` with a session cookie (the axum-login peer).
    CookieMe(String),
    Balance(String, String),
    /// A trade asked with a read-scoped API key: 403, one audit event.
    Refused(String, String),
    /// The same key naming an unknown operation: 400, no audit event (the twin).
    Unknown(String, String),
    /// A login with a wrong password for a random address: 401, or 429 once throttled.
    WrongLogin,
}

async fn once(client: &reqwest::Client, base: &str, call: &Call) -> bool {
    let res = match call {
        Call::Health => client.get(format!("{base}/healthz")).send().await,
        Call::Me(token) => {
            client
                .get(format!("{base}/api/auth/me"))
                .bearer_auth(token)
                .send()
                .await
        }
        Call::CookieMe(cookie) => {
            client
                .get(format!("{base}/api/auth/me"))
                .header("cookie", cookie)
                .send()
                .await
        }
        Call::Balance(token, account) => {
            client
                .post(format!("{base}/api/exchange/balance"))
                .bearer_auth(token)
                .json(&json!({ "account_id": account }))
                .send()
                .await
        }
        Call::Refused(key, account) | Call::Unknown(key, account) => {
            let operation = if matches!(call, Call::Refused(..)) {
                "create_order"
            } else {
                "no_such_operation"
            };
            client
                .post(format!("{base}/api/exchange/{operation}"))
                .header("x-api-key", key)
                .json(&json!({ "account_id": account, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.001" }))
                .send()
                .await
        }
        Call::WrongLogin => {
            let n = NEXT_FLOOD.fetch_add(1, Ordering::Relaxed);
            client
                .post(format!("{base}/api/auth/login"))
                .json(&json!({ "email": format!("flood-{n}@example.com"), "password": "not the password" }))
                .send()
                .await
        }
    };
    let expected: &[u16] = match call {
        Call::Refused(..) => &[403],
        Call::Unknown(..) => &[400],
        Call::WrongLogin => &[401, 429],
        _ => &[200],
    };
    match res {
        Ok(r) => {
            let ok = expected.contains(&r.status().as_u16());
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// Numbers the flood's addresses.
static NEXT_FLOOD: AtomicU64 = AtomicU64::new(0);

/// Every request's latency over `seconds` on `connections` connections (failures count).
async fn latencies(
    client: &reqwest::Client,
    base: &str,
    call: &Call,
    seconds: u64,
    connections: usize,
) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, base, call) = (client.clone(), base.to_owned(), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                let _ = once(&client, &base, &call).await;
                seen.push(start.elapsed());
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all
}

/// The `q` quantile (0 to 1) of sorted latencies, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// p50 and p99 of `GET /api/auth/me` with an access token on 4 connections, alone and
/// while `flood` connections send wrong-password logins at full speed.
async fn flood_latency(
    client: &reqwest::Client,
    base: &str,
    seconds: u64,
    token: &str,
    flood: usize,
) {
    let probe = Call::Me(token.to_owned());
    let alone = latencies(client, base, &probe, seconds, 4).await;
    let flooding = {
        let (client, base) = (client.clone(), base.to_owned());
        tokio::spawn(async move { run(&client, &base, Call::WrongLogin, seconds, flood).await })
    };
    let beside = latencies(client, base, &probe, seconds, 4).await;
    let (answered, failed, secs) = flooding.await.unwrap();
    let (p50a, p99a) = (quantile_ms(&alone, 0.5), quantile_ms(&alone, 0.99));
    let (p50b, p99b) = (quantile_ms(&beside, 0.5), quantile_ms(&beside, 0.99));
    println!(
        "login flood: {:.0} wrong-password logins/s answered 401 or 429 on {flood} connections ({failed} other)",
        answered as f64 / secs
    );
    println!(
        "  GET /api/auth/me (access token), 4 connections: alone p50 {p50a:.2} ms p99 {p99a:.2} ms; beside the flood p50 {p50b:.2} ms p99 {p99b:.2} ms ({:.2}x p99)",
        p99b / p99a
    );
}

async fn run(
    client: &reqwest::Client,
    base: &str,
    call: Call,
    seconds: u64,
    connections: usize,
) -> (u64, u64, f64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, base, call, ok, failed) = (
            client.clone(),
            base.to_owned(),
            call.clone(),
            ok.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if once(&client, &base, &call).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

/// The server's counters: audit events written, audit writer seconds, of them commit
/// waits, and the process's CPU seconds.
async fn counters(client: &reqwest::Client, url: &str) -> [f64; 4] {
    let text = client
        .get(url)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    let read = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {url}"))
    };
    [
        read("strongroom_audit_events_written_total"),
        read("strongroom_audit_append_seconds_total"),
        read("strongroom_audit_commit_seconds_total"),
        read("strongroom_process_cpu_seconds_total"),
    ]
}

#[tokio::main]
async fn main() {
    let args = args();
    let base = args.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .unwrap();

    let login = post_json(
        &client,
        &format!("{base}/api/auth/login"),
        None,
        json!({ "email": args.email, "password": args.password }),
    )
    .await;
    let token = login["token"]
        .as_str()
        .expect("login failed (is the user created with --no-reset?)")
        .to_owned();
    let pair = post_json(
        &client,
        &format!("{base}/api/auth/token"),
        None,
        json!({ "email": args.email, "password": args.password }),
    )
    .await;
    let access_token = pair["access_token"]
        .as_str()
        .expect("token login failed")
        .to_owned();
    let mut suffix = [0u8; 8];
    for (i, b) in suffix.iter_mut().enumerate() {
        *b = b'a' + u8::try_from((std::process::id() as usize + i * 7) % 26).unwrap();
    }
    let key = format!("load-key-{}", String::from_utf8_lossy(&suffix));
    let account = post_json(
        &client,
        &format!("{base}/api/accounts"),
        Some(&token),
        json!({ "exchange": "paper", "label": "load", "api_key": key, "secret": "load-secret", "read_only": false }),
    )
    .await;
    let account_id = account["id"]
        .as_str()
        .expect("account registration failed")
        .to_owned();
    let key = post_json(
        &client,
        &format!("{base}/api/keys"),
        Some(&token),
        json!({ "name": "load-read", "scopes": ["read"] }),
    )
    .await;
    let read_key = key["api_key"]
        .as_str()
        .expect("API key issue failed")
        .to_owned();
    // Warm the credential cache and the connections.
    for call in [
        Call::Health,
        Call::Me(token.clone()),
        Call::Balance(token.clone(), account_id.clone()),
        Call::Refused(read_key.clone(), account_id.clone()),
        Call::Unknown(read_key.clone(), account_id.clone()),
    ] {
        assert!(once(&client, &base, &call).await, "warm-up call failed");
        run(&client, &base, call, 1, args.connections).await;
    }

    println!(
        "{} s per route, {} connections, {base}",
        args.seconds, args.connections
    );
    let routes = [
        ("GET /healthz (floor)", Call::Health),
        ("GET /api/auth/me (session)", Call::Me(token.clone())),
        ("GET /api/auth/me (API key)", Call::Me(read_key.clone())),
        (
            "GET /api/auth/me (access token)",
            Call::Me(access_token.clone()),
        ),
        (
            "POST /api/exchange/balance (cache warm)",
            Call::Balance(token.clone(), account_id.clone()),
        ),
    ];
    let mut floor = 0.0;
    for (name, call) in routes {
        let m = measure(&client, &base, &args, call).await;
        if floor == 0.0 {
            floor = m.rps;
        }
        println!("{}", m.line(name, floor));
    }
    if !args.peers.is_empty() {
        versus_peers(&client, &base, &args, &token, floor).await;
    }
    // The twins, alternated over several rounds so that a slow moment of the machine
    // does not land on one of them only.
    let twin = Call::Unknown(read_key.clone(), account_id.clone());
    let audited = Call::Refused(read_key, account_id);
    let (mut twin_total, mut audited_total) = (Measured::default(), Measured::default());
    for _ in 0..args.rounds {
        let m = measure(&client, &base, &args, twin.clone()).await;
        println!(
            "{}",
            m.line("POST no_such_operation, read key (400, twin)", floor)
        );
        twin_total.add(&m);
        let m = measure(&client, &base, &args, audited.clone()).await;
        println!(
            "{}",
            m.line("POST create_order, read key (403, audited)", floor)
        );
        audited_total.add(&m);
    }
    let (twin_rps, audited_rps) = (twin_total.rate(), audited_total.rate());
    println!(
        "audit event's share of an authenticated request that records one, over {} rounds:",
        args.rounds
    );
    println!(
        "  throughput: {:.1}% (1 - {audited_rps:.0} / {twin_rps:.0} req/s)",
        100.0 * (1.0 - audited_rps / twin_rps)
    );
    if let (Some(twin_cpu), Some(audited_cpu)) = (twin_total.cpu_us(), audited_total.cpu_us()) {
        println!(
            "  server CPU: {:.1}% ({audited_cpu:.1} - {twin_cpu:.1} us of CPU per request, over {audited_cpu:.1})",
            100.0 * (audited_cpu - twin_cpu) / audited_cpu
        );
    }
    if args.flood > 0 {
        flood_latency(&client, &base, args.seconds, &access_token, args.flood).await;
    }
}

/// Logs in to each `--peer`, then alternates Strongroom's `GET /api/auth/me` (session)
/// with each peer's for `--rounds` rounds, and prints Strongroom / peer.
async fn versus_peers(client: &reqwest::Client, base: &str, args: &Args, token: &str, floor: f64) {
    let mut peers = Vec::new();
    for peer in &args.peers {
        let health: Value = client
            .get(format!("{peer}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let store = health["store"]
            .as_str()
            .expect("not the peer's /healthz")
            .to_owned();
        let res = client
            .post(format!("{peer}/login"))
            .json(&json!({ "email": args.peer_email, "password": args.peer_password }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 204, "peer login failed at {peer}");
        let cookie = res.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let call = Call::CookieMe(cookie);
        assert!(once(client, peer, &call).await, "peer warm-up call failed");
        run(client, peer, call.clone(), 1, args.connections).await;
        peers.push((
            format!("peer {store} GET /api/auth/me ({peer})"),
            call,
            Measured::default(),
        ));
    }
    println!(
        "Strongroom vs the axum-login peers, alternated over {} rounds:",
        args.rounds
    );
    let ours = Call::Me(token.to_owned());
    let mut ours_total = Measured::default();
    for _ in 0..args.rounds {
        let m = measure(client, base, args, ours.clone()).await;
        println!("{}", m.line("GET /api/auth/me (session)", floor));
        ours_total.add(&m);
        for (peer, (name, call, total)) in args.peers.iter().zip(&mut peers) {
            // No `--metrics` here: those counters are Strongroom's.
            let (ok, failed, secs) =
                run(client, peer, call.clone(), args.seconds, args.connections).await;
            let m = Measured {
                ok,
                failed,
                secs,
                rps: ok as f64 / secs,
                counters: None,
            };
            println!("{}", m.line(name, floor));
            total.add(&m);
        }
    }
    for (name, _, total) in &peers {
        println!(
            "  Strongroom / {name}: {:.2}x ({:.0} / {:.0} req/s)",
            ours_total.rate() / total.rate(),
            ours_total.rate(),
            total.rate()
        );
    }
}

/// One measured route: requests, time, and the server's counters over the run.
#[derive(Default)]
struct Measured {
    ok: u64,
    failed: u64,
    secs: f64,
    rps: f64,
    /// From the metrics: (events, writer seconds, commit seconds, process CPU seconds).
    counters: Option<[f64; 4]>,
}

impl Measured {
    fn add(&mut self, other: &Measured) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.secs += other.secs;
        self.counters = match (self.counters, other.counters) {
            (None, c) => c,
            (Some(a), Some(b)) => Some([a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]),
            (Some(_), None) => None,
        };
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    /// Server CPU per request, in microseconds.
    fn cpu_us(&self) -> Option<f64> {
        self.counters
            .map(|c| 1e6 * c[3] / (self.ok + self.failed).max(1) as f64)
    }

    fn line(&self, name: &str, floor: f64) -> String {
        let mut out = format!(
            "{name:<44} {:>8.0} req/s {:>5.1}% of floor ({} failed)",
            self.rps,
            100.0 * self.rps / floor,
            self.failed
        );
        if let (Some(c), Some(cpu)) = (self.counters, self.cpu_us()) {
            let requests = (self.ok + self.failed).max(1) as f64;
            out.push_str(&format!(
                "  CPU {cpu:>6.1} us/req  audit {:.2} events/req",
                c[0] / requests
            ));
            if c[0] > 0.0 {
                out.push_str(&format!(
                    " (writer per event: {:.1} us work, {:.1} us commit wait)",
                    1e6 * (c[1] - c[2]) / c[0],
                    1e6 * c[2] / c[0]
                ));
            }
        }
        out
    }
}

async fn measure(client: &reqwest::Client, base: &str, args: &Args, call: Call) -> Measured {
    let before = match &args.metrics {
        Some(url) => Some(counters(client, url).await),
        None => None,
    };
    let (ok, failed, secs) = run(client, base, call, args.seconds, args.connections).await;
    let counters = match (&args.metrics, before) {
        (Some(url), Some(b)) => {
            // Let the audit writer drain what this route queued (its CPU counts too).
            tokio::time::sleep(Duration::from_millis(300)).await;
            let a = counters(client, url).await;
            Some([a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3]])
        }
        _ => None,
    };
    Measured {
        ok,
        failed,
        secs,
        rps: ok as f64 / secs,
        counters,
    }
}

/// POSTs a JSON body (with a bearer token if given) and reads the JSON answer.
async fn post_json(client: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> Value {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}
