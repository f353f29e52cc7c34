//! PostgreSQL: the same service on `DATABASE_URL=postgres://...`, in a fresh schema, with
//! the database reached through a TCP proxy that the test can cut. A stopped or
//! unreachable database must answer 503, never 200.
//!
//! Run with `STRONGROOM_PG_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p
//! trading-backend --all-features -- --ignored`.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Server, cli, create_user, pg_url, stderr};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const TOKEN: &str = "static-bootstrap-token-0123456789abcdef";

/// Splits `postgres://auth@host:port/db?query` into (prefix up to `@`, host:port, rest).
fn split_url(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = rest.rsplit_once('@').map_or(("", rest), |(a, r)| (a, r));
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = &rest[..cut];
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let prefix = if auth.is_empty() {
        format!("{scheme}://")
    } else {
        format!("{scheme}://{auth}@")
    };
    (prefix, host, rest[cut..].to_owned())
}

/// A TCP proxy that can be cut (every connection closed, new ones refused) and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (flag, tx) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    break;
                };
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = tx.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy { port, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_outage_is_503_never_200() {
    let url = pg_url();
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let schema = format!("tb_e2e_{}", base16ct::lower::encode_string(&bytes));
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();

    let (prefix, upstream, rest) = split_url(&url);
    let proxy = Proxy::start(upstream).await;
    let sep = if rest.contains('?') { '&' } else { '?' };
    let database_url = format!(
        "{prefix}127.0.0.1:{}{rest}{sep}options=-csearch_path%3D{schema}",
        proxy.port
    );
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("API_TOKEN", TOKEN),
    ];

    create_user(
        dir.path(),
        &env,
        "pg@example.com",
        Some("postgres-password-1"),
        false,
    );
    let server = Server::start(dir.path(), &env);
    let token = server.login("pg@example.com", "postgres-password-1").await;
    let (status, account) = server
        .post("/api/accounts", Some(&token), json!({"exchange": "paper", "label": "pg", "api_key": "pg-key", "secret": "pg-secret", "read_only": false}))
        .await;
    assert_eq!(status, 201, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    let balance = json!({"account_id": account_id});
    assert_eq!(
        server
            .post("/api/exchange/balance", Some(&token), balance.clone())
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .post("/api/exchange/balance", Some(TOKEN), balance.clone())
            .await
            .0,
        404
    );
    assert_eq!(server.get("/api/auth/me", Some(&token)).await.0, 200);
    // The tables really are in the test's schema.
    let n: (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {schema}.tb_accounts"
    )))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(n.0, 1);

    // Database down: every route that needs it is 503 (the credential cache is warm:
    // still 503). The validity cache answers a session it looked up less than its TTL
    // (500 ms) ago without the database, like the request just before the cut; past the
    // TTL the session needs the database again.
    proxy.cut();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let checks = [
        server.get("/api/auth/me", Some(&token)).await.0,
        server
            .post("/api/exchange/balance", Some(&token), balance.clone())
            .await
            .0,
        server
            .post("/api/exchange/balance", Some(TOKEN), balance.clone())
            .await
            .0,
        server.get("/api/accounts", Some(TOKEN)).await.0,
        server.get("/api/secrets", Some(TOKEN)).await.0,
        server
            .post(
                "/api/auth/login",
                None,
                json!({"email": "pg@example.com", "password": "postgres-password-1"}),
            )
            .await
            .0,
    ];
    assert_eq!(checks, [503; 6]);
    // Health does not touch the database; readiness does (and the limiter store, which
    // is this database here).
    assert_eq!(server.get("/healthz", None).await.0, 200);
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["database"], "down", "{ready}");
    assert_eq!(ready["checks"]["limiter_store"], "down", "{ready}");
    assert_eq!(ready["checks"]["key_backend"], "ok", "{ready}");

    // Back up: served again.
    proxy.restore();
    let mut recovered = false;
    for _ in 0..20 {
        if server
            .post("/api/exchange/balance", Some(&token), balance.clone())
            .await
            .0
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        recovered,
        "service did not recover after the database came back"
    );
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    drop(server);

    // Unreachable at start: refused with a clear error, the URL (and its password) never
    // printed.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let bad = format!("postgres://postgres:CANARY-pw@127.0.0.1:{closed_port}/test");
    let out = cli(dir.path(), &[("DATABASE_URL", bad.as_str())], &["serve"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot connect to PostgreSQL"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("CANARY"));

    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}
