//! The service restarted with another master key.
//!
//! * Start with key A, store sealed values (a signing key, the audit key, an exchange
//!   credential, a TOTP secret), stop; start with key B: the process exits non-zero
//!   before sealing anything, and stderr names `STRONGROOM_MASTER_KEY`, says the data was
//!   sealed under another key and names A's fingerprint, with neither key's value
//!   anywhere; an operator command refuses the same way; with key A again everything
//!   still works (nothing was replaced under B).
//! * A fresh database starts with any key.
//! * A credential sealed under a key the running service does not hold (written behind
//!   its back) is a 500 with the code `key_not_held`, not a bare 500 or a 503.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Server, cli, create_user, enable_mfa, stderr, stdout, token_login};
use crypto_envelope::{
    Envelope, LocalKeyRing, MasterKey, SecretRef, SecretStore, Secrets, SqliteStore,
};
use serde_json::json;

const EMAIL: &str = "keyheld@example.com";
const PASSWORD: &str = "keyheld-password-1";

fn gen_key(dir: &std::path::Path) -> String {
    let out = cli(dir, &[], &["gen-master-key"]);
    assert!(out.status.success());
    stdout(&out).trim().to_owned()
}

fn fingerprint(hex: &str) -> String {
    MasterKey::parse("test", hex).unwrap().fingerprint()
}

/// Runs `serve` and waits up to 60 s for it to exit (a service that does not refuse would
/// run forever): its status, stdout and stderr.
fn serve_expecting_exit(dir: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut child = common::command(dir, env)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "serve did not refuse to start: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), stdout(&out), stderr(&out))
}

async fn signing_key_rows(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("strongroom.db").display()))
            .await
            .unwrap();
    let rows = sqlx::query_as("SELECT kid, sealed FROM tb_signing_keys ORDER BY kid")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_with_another_master_key_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (a, b) = (gen_key(dir), gen_key(dir));
    let issuer = ("STRONGROOM_ISSUER", "https://strongroom.test");
    let with_a = [("STRONGROOM_MASTER_KEY", a.as_str()), issuer];
    let with_b = [("STRONGROOM_MASTER_KEY", b.as_str()), issuer];

    // Under A: a fresh database starts; sealed rows of every kind are written.
    create_user(dir, &with_a, EMAIL, Some(PASSWORD), false);
    let mut s = Server::start(dir, &with_a);
    let (status, body) = token_login(&s, EMAIL, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    let session = s.login(EMAIL, PASSWORD).await;
    let (status, account) = s
        .post(
            "/api/accounts",
            Some(&session),
            json!({"exchange": "paper", "label": "main", "api_key": "kh-key",
                   "secret": "kh-secret", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    enable_mfa(&s, &session).await;
    s.stop();
    let signing_keys = signing_key_rows(dir).await;
    assert!(!signing_keys.is_empty());

    // Under B: refused, before anything is sealed.
    let (ok, out, err) = serve_expecting_exit(dir, &with_b);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("STRONGROOM_MASTER_KEY"), "{err}");
    assert!(err.contains("sealed under another key"), "{err}");
    assert!(err.contains(&fingerprint(&a)), "{err}");
    assert!(err.contains("kek.key_not_held"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
    for text in [&out, &err] {
        assert!(
            !text.contains(&a) && !text.contains(&b),
            "a key value in the output"
        );
        assert!(!text.contains("kh-secret"), "a secret in the output");
    }
    assert_eq!(
        signing_key_rows(dir).await,
        signing_keys,
        "a signing key was sealed under the wrong master key"
    );

    // An operator command refuses the same way (the audit key, the credentials).
    let out = cli(dir, &with_b, &["issue-api-key", EMAIL]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("STRONGROOM_MASTER_KEY") && err.contains("sealed under another key"),
        "{err}"
    );
    assert!(!stdout(&out).contains("api key:"), "{}", stdout(&out));
    assert!(!err.contains(&a) && !err.contains(&b));

    // Under A again: nothing was replaced, the token issued before still verifies.
    let mut s = Server::start(dir, &with_a);
    let (status, body) = s.get("/api/auth/me", Some(&access_token)).await;
    assert_eq!(status, 200, "{body}\n{}", s.logs());
    assert!(!s.logs().contains("kek.key_not_held"), "{}", s.logs());
    s.stop();
}

/// A fresh database has nothing sealed: any key starts it.
#[test]
fn a_fresh_database_starts_with_any_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen_key(dir.path());
    let mut s = Server::start(dir.path(), &[("STRONGROOM_MASTER_KEY", key.as_str())]);
    assert!(s.logs().contains("kek.checked"), "{}", s.logs());
    s.stop();
}

/// A credential sealed under a key the running service does not hold: 500
/// `{"error":"key_not_held"}`, logged at ERROR with cred-cache's code.
#[tokio::test(flavor = "multi_thread")]
async fn a_credential_under_a_key_not_held_is_a_coded_500() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (a, c) = (gen_key(dir), gen_key(dir));
    let env = [("STRONGROOM_MASTER_KEY", a.as_str())];
    create_user(dir, &env, EMAIL, Some(PASSWORD), false);
    let s = Server::start(dir, &env);
    let session = s.login(EMAIL, PASSWORD).await;
    let (status, account) = s
        .post(
            "/api/accounts",
            Some(&session),
            json!({"exchange": "paper", "label": "main", "api_key": "kh-key",
                   "secret": "kh-secret", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();

    // Behind the service's back: the credential re-sealed under key C.
    let ring =
        LocalKeyRing::from_lookup(|name| (name == "STRONGROOM_MASTER_KEY").then(|| c.clone()))
            .unwrap();
    let store: Arc<dyn SecretStore> =
        Arc::new(SqliteStore::open(&dir.join("strongroom.db")).await.unwrap());
    let row = SecretRef::scoped(
        cred_cache::local::DEFAULT_NAMESPACE,
        &account_id,
        cred_cache::local::SECRET_NAME,
    )
    .unwrap();
    let credential = cred_cache::ExchangeCredential::new(
        cred_cache::AccountId::new(&account_id).unwrap(),
        zeroize::Zeroizing::new("kh-key".to_owned()),
        zeroize::Zeroizing::new("kh-secret".to_owned()),
        None,
        false,
    )
    .unwrap();
    Secrets::new(Envelope::new(ring).unwrap(), store)
        .put(&row, &cred_cache::record::encode(&credential))
        .await
        .unwrap();

    let (status, body) = s
        .post(
            "/api/exchange/balance",
            Some(&session),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(status, 500, "{body}\n{}", s.logs());
    assert_eq!(body, json!({"error": "key_not_held"}));
    // The log arrives through a pipe: wait for it (up to 10 s under load).
    let logged = |logs: &str| {
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("cred_cache.misconfigured"))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged(&s.logs()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = s.logs();
    assert!(logged(&logs), "{logs}");
    assert!(logs.contains(&fingerprint(&c)), "{logs}");
    assert!(!logs.contains(&a) && !logs.contains(&c) && !logs.contains("kh-secret"));
}
