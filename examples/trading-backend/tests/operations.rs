//! Operating the service (module `app::edge`, README "Operating it"): the body limit
//! before the body is read, the request timeout, the access log with request ids and
//! without credentials, `LOG_FORMAT=json`, an empty body where every field is optional,
//! and `SIGTERM` draining in-flight requests within a bounded time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, create_user};
use serde_json::{Value, json};

const PASSWORD: &str = "operations-password-canary-5d1e";
const TOKEN_CANARY: &str = "operations-query-token-canary-77ab";

/// Opens a raw connection to the server (to send what an HTTP client library will not:
/// a body shorter than declared, a huge declared length).
fn connect(server: &Server) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads one response (headers and a `Content-Length` body) from a raw connection.
fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let (status, body, _) = read_response_head(stream);
    (status, body)
}

/// [`read_response`], with the header block (lower case).
fn read_response_head(stream: &mut TcpStream) -> (u16, Value, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = &text[..end];
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                let body =
                    serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                return (status, body, head.to_ascii_lowercase());
            }
        }
    }
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // 10 MB declared, nothing sent: an answer can only come before reading.
    let mut stream = connect(&server);
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 10000000\r\n\r\n",
        )
        .unwrap();
    let started = Instant::now();
    let (status, body, head) = read_response_head(&mut stream);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "body_too_large");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The unread body makes the connection unusable: the client is told to drop it.
    assert!(head.contains("connection: close"), "{head}");

    // Chunked, no length declared: refused once reading passes 64 KiB.
    let mut stream = connect(&server);
    let chunk = vec![b' '; 70 * 1024];
    let mut request = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    stream.write_all(&request).unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "body_too_large");

    // At the limit, the body is read (and refused for what it says, not its size).
    let padded = format!(
        "{{\"email\":\"a@example.com\",\"password\":\"x\"}}{}",
        " ".repeat(1000)
    );
    let response = server
        .http
        .post(server.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_ne!(response.status().as_u16(), 413);
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_is_answered_503_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("REQUEST_TIMEOUT_SECS", "1")]);
    // 100 bytes declared, 10 sent: the handler waits for the rest until the timeout.
    let mut stream = connect(&server);
    stream
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"email\":",
        )
        .unwrap();
    let started = Instant::now();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "timeout");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A quick request is untouched.
    assert_eq!(server.get("/healthz", None).await.0, 200);
    for bad in ["0", "301", "soon"] {
        let out = common::cli(dir.path(), &[("REQUEST_TIMEOUT_SECS", bad)], &["serve"]);
        assert!(!out.status.success());
        let err = common::stderr(&out);
        assert!(err.contains("REQUEST_TIMEOUT_SECS"), "{err}");
    }
}

#[tokio::test]
async fn the_access_log_has_a_line_per_request_with_its_id_and_no_credential() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "ops@example.com", Some(PASSWORD), false);
    let mut server = Server::start(dir.path(), &[("RUST_LOG", "info")]);
    let session = server.login("ops@example.com", PASSWORD).await;
    let response = server
        .http
        .get(server.url("/api/auth/me"))
        .bearer_auth(&session)
        .header("x-request-id", "ops-request-4242")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "ops-request-4242");
    // A credential in a query string (accepted only on /ws) never reaches the log.
    let path = format!("/ws?token={TOKEN_CANARY}");
    let _ = server.get(&path, None).await;
    let (status, _) = server.get("/no/such/route", None).await;
    assert_eq!(status, 404);
    server.stop();
    let logs = server.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("ops-request-4242") && l.contains("finished processing request"))
        .unwrap_or_else(|| panic!("no access log line for the request: {logs}"));
    for field in [
        "status=200",
        "latency=",
        "route=\"/api/auth/me\"",
        "method=GET",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert!(
        logs.lines()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("status=404")),
        "{logs}"
    );
    for secret in [session.as_str(), PASSWORD, TOKEN_CANARY] {
        assert!(!logs.contains(secret), "a credential in the log");
    }
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[("RUST_LOG", "info"), ("LOG_FORMAT", "json")]);
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "json-request-17")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop();
    let logs = server.logs();
    let objects: Vec<Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let access = objects
        .iter()
        .find(|o| o["span"]["request_id"] == "json-request-17")
        .unwrap_or_else(|| panic!("no JSON access line: {logs}"));
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["span"]["route"], "/healthz");
    // Every log line is JSON; only the start-up banners (stdout/stderr prints) are not.
    for line in logs.lines().filter(|l| !l.starts_with('{')) {
        assert!(
            !(line.contains(" INFO ") || line.contains(" WARN ") || line.contains(" DEBUG ")),
            "a text log line with LOG_FORMAT=json: {line}"
        );
    }
    let out = common::cli(dir.path(), &[("LOG_FORMAT", "xml")], &["serve"]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("LOG_FORMAT"));
}

#[tokio::test]
async fn an_empty_body_is_the_empty_object() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "empty@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &[]);
    let session = server.login("empty@example.com", PASSWORD).await;
    // Every field of POST /api/keys is optional.
    let response = server
        .http
        .post(server.url("/api/keys"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(body["api_key"].is_string(), "{body}");
    // A required field is still refused by name.
    let response = server
        .http
        .post(server.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("  ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"error": "invalid_field", "field": "email"}));
    // Not an object: still invalid JSON.
    let response = server
        .http
        .post(server.url("/api/keys"))
        .bearer_auth(&session)
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    // A request that finishes inside the grace period is answered.
    let mut server = Server::start(
        dir.path(),
        &[("SHUTDOWN_GRACE_SECS", "5"), ("REQUEST_TIMEOUT_SECS", "60")],
    );
    let mut stream = connect(&server);
    let body = br#"{"email":"nobody@example.com","password":"wrong-password"}"#;
    stream
        .write_all(
            format!(
                "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    stream.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    std::thread::sleep(Duration::from_millis(500));
    stream.write_all(&body[10..]).unwrap();
    let (status, answer) = read_response(&mut stream);
    assert_eq!(status, 401, "{answer}");
    let exit = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server stopped after draining");
    assert!(exit.success(), "{exit:?}: {}", server.logs());
    assert!(server.logs().contains("server.shutdown"));

    // A request that never finishes does not hold the server past the grace period.
    let mut server = Server::start(
        dir.path(),
        &[("SHUTDOWN_GRACE_SECS", "1"), ("REQUEST_TIMEOUT_SECS", "60")],
    );
    let mut stalled = connect(&server);
    stalled
        .write_all(
            b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.terminate();
    let exit = server
        .wait_exit(Duration::from_secs(15))
        .expect("the server stopped within its grace period");
    assert!(exit.success(), "{exit:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    assert!(
        server.logs().contains("server.drain_timeout"),
        "{}",
        server.logs()
    );
}

#[tokio::test]
async fn readyz_checks_the_database_the_limiter_store_and_the_key_backend() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready,
        json!({"status": "ready", "checks": {"database": "ok", "key_backend": "ok"}})
    );
    drop(server);
    // A Redis that does not answer (nothing listens on port 9; it holds the limiter
    // state and carries the cache invalidations): not ready, while liveness answers.
    let server = Server::start(dir.path(), &[("REDIS_URL", "redis://127.0.0.1:9")]);
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready,
        json!({"status": "unavailable", "checks": {
            "database": "ok", "limiter_store": "down", "cache_invalidation": "down",
            "key_backend": "ok"
        }})
    );
    // Like every 503 of the service, it says when to retry (the OpenAPI document requires
    // the header on every 503; this one lacked it).
    let res = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(server.get("/healthz", None).await.0, 200);
}

#[tokio::test]
async fn secrets_from_files_and_the_production_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let token = "file-api-token-canary-Zq8Wm3Kx7Lp2Vn5Rt9Yb4";
    let token_file = secrets.path().join("api_token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let key = common::stdout(&common::cli(dir.path(), &[], &["gen-master-key"]))
        .trim()
        .to_owned();
    let key_file = secrets.path().join("master_key");
    std::fs::write(&key_file, &key).unwrap();
    let token_path = token_file.to_str().unwrap();
    let key_path = key_file.to_str().unwrap();
    let production = [
        ("STRONGROOM_ENV", "production"),
        ("STRONGROOM_ISSUER", "https://api.example.com"),
    ];

    // Production with both secrets from files: starts, authenticates the token, and no
    // development key is ever written.
    let mut env = production.to_vec();
    env.extend([
        ("API_TOKEN_FILE", token_path),
        ("STRONGROOM_MASTER_KEY_FILE", key_path),
    ]);
    let mut server = Server::start(dir.path(), &env);
    let (status, me) = server.get("/api/auth/me", Some(token)).await;
    assert_eq!(status, 200, "{me}");
    server.stop();
    assert!(!dir.path().join("dev-master.key").exists());
    for secret in [token, key.as_str()] {
        assert!(!server.logs().contains(secret), "a secret in the log");
    }

    // Production without a master key: refused, naming it, and still no development key.
    let out = common::cli(dir.path(), &production, &["serve"]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("STRONGROOM_MASTER_KEY"), "{err}");
    assert!(!dir.path().join("dev-master.key").exists());

    // A variable and its file together, or a file that is not there: refused by name.
    for (env, named) in [
        (
            vec![("API_TOKEN", token), ("API_TOKEN_FILE", token_path)],
            "API_TOKEN_FILE",
        ),
        (
            vec![("INTERNAL_SECRET_FILE", "/nonexistent/secret")],
            "INTERNAL_SECRET_FILE",
        ),
    ] {
        let out = common::cli(dir.path(), &env, &["serve"]);
        assert!(!out.status.success());
        let err = common::stderr(&out);
        assert!(err.contains(named), "{err}");
        assert!(!err.contains(token), "{err}");
    }
}

#[test]
fn serve_help_lists_every_variable_and_secrets_stay_off_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::cli(
        dir.path(),
        &[("API_TOKEN", "help-canary-token-value-0123456789")],
        &["serve", "--help"],
    );
    assert!(out.status.success());
    let help = common::stdout(&out);
    for var in [
        "LISTEN_ADDR",
        "DATABASE_URL_FILE",
        "STRONGROOM_MASTER_KEY",
        "VAULT_TOKEN_FILE",
        "STRONGROOM_PKCS11_PIN",
        "SSO_JWKS_URL",
        "STRONGROOM_RATE_LIMIT_ADDRESS",
        "REQUEST_TIMEOUT_SECS",
        "LOG_FORMAT",
    ] {
        assert!(
            help.contains(&format!("[env: {var}]")),
            "{var} missing:\n{help}"
        );
    }
    assert!(
        !help.contains("help-canary"),
        "an environment value in --help"
    );
    // A flag is read like its variable (and checked the same way), also by the
    // modules that read their variable themselves (the audit retention).
    for (flag, var) in [
        ("--request-timeout-secs", "REQUEST_TIMEOUT_SECS"),
        (
            "--strongroom-audit-retention-days",
            "STRONGROOM_AUDIT_RETENTION_DAYS",
        ),
    ] {
        let out = common::cli(dir.path(), &[], &["serve", flag, "0"]);
        assert!(!out.status.success(), "{flag}");
        assert!(
            common::stderr(&out).contains(var),
            "{flag}: {}",
            common::stderr(&out)
        );
    }
    // A secret as a flag is refused, naming it and not echoing it.
    let out = common::cli(
        dir.path(),
        &[],
        &["serve", "--api-token", "flag-canary-token-value-0123456789"],
    );
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(err.contains("API_TOKEN") && err.contains("_FILE"), "{err}");
    assert!(!err.contains("flag-canary"), "{err}");
}
