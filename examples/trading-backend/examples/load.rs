//! A small load generator for a running `trading-backend` on loopback.
//!
//! It starts nothing itself. It logs in, registers a paper account, warms the credential
//! cache, then for each route runs `--connections` concurrent clients for `--seconds` and
//! prints requests per second and the ratio to `GET /healthz` (the floor: the same
//! server doing no work).
//!
//! ```sh
//! cargo run --release -p trading-backend -- serve &
//! cargo run --release -p trading-backend -- create-user load@example.com --password load-password-123 --no-reset
//! cargo run --release -p trading-backend --example load -- --email load@example.com --password load-password-123
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
}

fn args() -> Args {
    let mut out = Args {
        url: "http://127.0.0.1:8080".into(),
        email: String::new(),
        password: String::new(),
        seconds: 10,
        connections: 32,
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
            _ => panic!("unknown flag {flag}"),
        }
    }
    assert!(
        !out.email.is_empty() && !out.password.is_empty(),
        "--email and --password are required"
    );
    assert!(
        out.url.starts_with("http://127.0.0.1:")
            || out.url.starts_with("http://localhost:")
            || out.url.starts_with("http://[::1]:"),
        "--url: loopback only"
    );
    assert!((1..=300).contains(&out.seconds), "--seconds: 1..=300");
    assert!(
        (1..=1024).contains(&out.connections),
        "--connections: 1..=1024"
    );
    out
}

#[derive(Clone)]
enum Call {
    Health,
    Me(String),
    Balance(String, String),
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
        Call::Balance(token, account) => {
            client
                .post(format!("{base}/api/exchange/balance"))
                .bearer_auth(token)
                .json(&json!({ "account_id": account }))
                .send()
                .await
        }
    };
    match res {
        Ok(r) => {
            let ok = r.status().as_u16() == 200;
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

async fn run(
    client: &reqwest::Client,
    base: &str,
    call: Call,
    seconds: u64,
    connections: usize,
) -> (f64, u64) {
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
    let elapsed = start.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() {
    let args = args();
    let base = args.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .unwrap();

    let login: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": args.email, "password": args.password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("login failed (is the user created with --no-reset?)")
        .to_owned();
    let mut suffix = [0u8; 8];
    for (i, b) in suffix.iter_mut().enumerate() {
        *b = b'a' + u8::try_from((std::process::id() as usize + i * 7) % 26).unwrap();
    }
    let key = format!("load-key-{}", String::from_utf8_lossy(&suffix));
    let account: Value = client
        .post(format!("{base}/api/accounts"))
        .bearer_auth(&token)
        .json(&json!({ "exchange": "paper", "label": "load", "api_key": key, "secret": "load-secret", "read_only": false }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account_id = account["id"]
        .as_str()
        .expect("account registration failed")
        .to_owned();
    // Warm the credential cache and the connections.
    for call in [
        Call::Health,
        Call::Me(token.clone()),
        Call::Balance(token.clone(), account_id.clone()),
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
        (
            "POST /api/exchange/balance (cache warm)",
            Call::Balance(token, account_id),
        ),
    ];
    let mut floor = 0.0;
    for (name, call) in routes {
        let (rps, failed) = run(&client, &base, call, args.seconds, args.connections).await;
        if floor == 0.0 {
            floor = rps;
        }
        println!(
            "{name:<42} {rps:>10.0} req/s  {:>5.1}% of floor  ({failed} failed)",
            100.0 * rps / floor
        );
    }
}
