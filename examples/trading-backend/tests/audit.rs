//! The audit trail end to end: a user's journey is in the log with the right codes and
//! shows in `GET /api/audit` (the user's own events only); `audit verify` passes on the
//! real log and names the record a database administrator edited, deleted, inserted or
//! reordered (SQLite here; PostgreSQL with `STRONGROOM_PG_URL`); no secret reaches the
//! log, the export or the service's output (canary); pruning keeps verification green.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::path::Path;

use common::{Server, cli, create_user, stderr, stdout};
use serde_json::{Value, json};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const ALICE_PW: &str = "CANARY-alice-password-5c1e";
const BOB_PW: &str = "bob-password-long-1";
const EXCH_KEY: &str = "CANARY-audit-exchange-key-77f0";
const EXCH_SECRET: &str = "CANARY-audit-exchange-secret-9ab3";
const SECRET_VALUE: &str = "CANARY-audit-user-secret-e42d";

/// What the journey left behind.
struct Journey {
    alice: String,
    alice_id: String,
    bob: String,
    bob_id: String,
    api_key: String,
}

/// Two users; alice: a failed login, a login, an API key created (used once) and
/// revoked, an exchange account created, shared with bob and unshared, a secret stored
/// and deleted, a withdrawal refused by the policy; bob: a login and a refused read of
/// alice's account.
async fn journey(server: &Server, env: &[(&str, &str)]) -> Journey {
    let dir = server.data_dir.clone();
    create_user(&dir, env, ALICE, Some(ALICE_PW), false);
    create_user(&dir, env, BOB, Some(BOB_PW), false);
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": ALICE, "password": "wrong-password-123"}),
        )
        .await;
    assert_eq!(status, 401);
    let alice = server.login(ALICE, ALICE_PW).await;
    let bob = server.login(BOB, BOB_PW).await;
    let alice_id = server.get("/api/auth/me", Some(&alice)).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_id = server.get("/api/auth/me", Some(&bob)).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, key) = server
        .post("/api/keys", Some(&alice), json!({"name": "bot"}))
        .await;
    assert_eq!(status, 201, "{key}");
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    assert_eq!(server.get("/api/keys", Some(&api_key)).await.0, 200);
    // A read-only key on a manage route and on a trade operation: refused by the route's
    // requirement (auth-core's layer, and the exchange route's own check), recorded.
    let (status, ro) = server
        .post(
            "/api/keys",
            Some(&alice),
            json!({"name": "ro", "scopes": ["read"]}),
        )
        .await;
    assert_eq!(status, 201, "{ro}");
    let ro_key = ro["api_key"].as_str().unwrap();
    assert_eq!(
        server.delete("/api/secrets/nothing", Some(ro_key)).await,
        403
    );
    let (status, body) = server
        .post(
            "/api/exchange/create_order",
            Some(ro_key),
            json!({"account_id": "nothing"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    let key_id = key["id"].as_str().unwrap();
    assert_eq!(
        server
            .delete(&format!("/api/keys/{key_id}"), Some(&alice))
            .await,
        204
    );

    let (status, account) = server
        .post(
            "/api/accounts",
            Some(&alice),
            json!({"exchange": "paper", "label": "main", "api_key": EXCH_KEY,
                   "secret": EXCH_SECRET, "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    // bob cannot see it yet: a policy denial in bob's log.
    let (status, _) = server
        .post(
            "/api/exchange/balance",
            Some(&bob),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, share) = server
        .post(
            &format!("/api/accounts/{account_id}/shares"),
            Some(&alice),
            json!({"email": BOB, "level": "read"}),
        )
        .await;
    assert_eq!(status, 201, "{share}");
    // bob may read, not trade: a policy denial (insufficient level) in bob's log.
    let (status, _) = server
        .post(
            "/api/exchange/create_order",
            Some(&bob),
            json!({"account_id": account_id, "symbol": "BTC/USDT", "side": "buy", "amount": "0.01"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        server
            .delete(
                &format!("/api/accounts/{account_id}/shares/{bob_id}"),
                Some(&alice)
            )
            .await,
        204
    );

    // A secret, with a request id given by the client.
    let res = server
        .http
        .post(server.url("/api/secrets"))
        .bearer_auth(&alice)
        .header("x-request-id", "journey-req-42")
        .json(&json!({"name": "note", "value": SECRET_VALUE}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], "journey-req-42");
    assert_eq!(server.delete("/api/secrets/note", Some(&alice)).await, 204);

    // An account alice cannot see: a policy denial in alice's log.
    let (status, _) = server
        .post(
            "/api/exchange/balance",
            Some(&alice),
            json!({"account_id": "acc_00000000000000000000000000000000"}),
        )
        .await;
    assert_eq!(status, 404);
    // A withdrawal: never allowed, whatever the grant; a policy denial too.
    let (status, _) = server
        .post(
            "/api/exchange/withdraw",
            Some(&alice),
            json!({"account_id": "acc_00000000000000000000000000000000"}),
        )
        .await;
    assert_eq!(status, 403);
    Journey {
        alice,
        alice_id,
        bob,
        bob_id,
        api_key,
    }
}

async fn my_events(server: &Server, session: &str) -> Vec<Value> {
    let (status, body) = server.get("/api/audit?limit=200", Some(session)).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn actions(events: &[Value]) -> Vec<String> {
    // Oldest first, for reading.
    events
        .iter()
        .rev()
        .map(|e| {
            format!(
                "{}:{}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journey_is_in_the_users_own_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let j = journey(&server, &[]).await;

    let events = my_events(&server, &j.alice).await;
    let got = actions(&events);
    let expected = [
        "cli.user.create:success",
        "login.failure:refused",
        "login.success:success",
        "api_key.create:success",
        "api_key.revoke:success",
        "account.create:success",
        "grant.register:success",
        "grant.share:success",
        "grant.revoke:success",
        "secret.put:success",
        "secret.delete:success",
        "policy.deny:refused",
    ];
    for code in expected {
        assert!(
            got.contains(&code.to_owned()),
            "{code} missing from {got:?}"
        );
    }
    assert!(
        events.iter().any(|e| e["action"] == "policy.deny"
            && e["target"] == "operation/withdraw"
            && e["reason"] == "grant.deny.never_allowed"),
        "withdrawal attempt not audited: {events:?}"
    );
    // Newest first, strictly.
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    // Only alice's events: actors are alice, the CLI operator, or anonymous (the
    // failed login), never bob.
    for e in &events {
        assert_ne!(e["actor"]["principal"], j.bob_id.as_str(), "{e}");
    }
    // Both scope refusals, with the key's actor, the path and the refusal's code.
    let scope: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "authz.scope_refused")
        .collect();
    let targets: Vec<&str> = scope
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["/api/exchange/create_order", "/api/secrets/nothing"],
        "{scope:?}"
    );
    for e in &scope {
        assert_eq!(e["outcome"], "refused", "{e}");
        assert_eq!(e["reason"], "scope.insufficient", "{e}");
        assert_eq!(e["actor"]["method"], "api_key", "{e}");
        assert_eq!(e["actor"]["principal"], j.alice_id.as_str(), "{e}");
    }
    let failure = events
        .iter()
        .find(|e| e["action"] == "login.failure")
        .unwrap();
    assert_eq!(failure["reason"], "invalid_credentials");
    assert_eq!(failure["actor"]["method"], "anonymous");
    let deny = events
        .iter()
        .find(|e| e["action"] == "policy.deny" && e["reason"] != "grant.deny.never_allowed")
        .unwrap();
    assert_eq!(deny["reason"], "grant.deny.not_visible");
    assert_eq!(
        deny["target"],
        "acc_00000000000000000000000000000000/balance"
    );
    assert_eq!(deny["actor"]["principal"], j.alice_id.as_str());
    assert_eq!(deny["actor"]["method"], "session");
    let put = events.iter().find(|e| e["action"] == "secret.put").unwrap();
    assert_eq!(put["request_id"], "journey-req-42");
    assert_eq!(put["target"], "note");
    let created = events
        .iter()
        .find(|e| e["action"] == "api_key.create")
        .unwrap();
    assert_eq!(created["actor"]["method"], "session");
    assert!(created["request_id"].as_str().unwrap().len() >= 16);

    // bob sees his own: his login and the denial, none of alice's.
    let bob_events = my_events(&server, &j.bob).await;
    let bob_got = actions(&bob_events);
    assert!(
        bob_got.contains(&"login.success:success".to_owned()),
        "{bob_got:?}"
    );
    assert!(
        bob_got.contains(&"policy.deny:refused".to_owned()),
        "{bob_got:?}"
    );
    assert!(
        !bob_got
            .iter()
            .any(|a| a.starts_with("api_key") || a.starts_with("secret")),
        "{bob_got:?}"
    );
    let bob_denials: Vec<&Value> = bob_events
        .iter()
        .filter(|e| e["action"] == "policy.deny")
        .map(|e| &e["reason"])
        .collect();
    assert_eq!(
        bob_denials,
        [
            &json!("grant.deny.insufficient_level"),
            &json!("grant.deny.not_visible")
        ]
    );

    // limit bounds.
    assert_eq!(
        server.get("/api/audit?limit=0", Some(&j.alice)).await.0,
        400
    );
    assert_eq!(
        server.get("/api/audit?limit=201", Some(&j.alice)).await.0,
        400
    );
    let (status, body) = server.get("/api/audit?limit=2", Some(&j.alice)).await;
    assert_eq!((status, body["events"].as_array().unwrap().len()), (200, 2));
    assert_eq!(server.get("/api/audit", None).await.0, 401);
    // A READ-scoped key may read it too.
    let (status, _) = server.get("/api/audit", Some(&j.api_key)).await;
    assert_eq!(status, 403, "the key was revoked");

    // The whole log verifies.
    let out = cli(dir.path(), &[], &["audit", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("intact"), "{}", stdout(&out));
}

/// The audit tables of the service's SQLite file, as a database administrator who
/// drops the append-only triggers first.
async fn sqlite_admin(data_dir: &Path, sql: &str) {
    use sqlx::Connection as _;
    let path = data_dir.join("strongroom.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_prefix_delete; \
         DROP TRIGGER audit_head_no_delete; DROP TRIGGER audit_head_forward;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

const EDIT: &str = "UPDATE audit_records SET target = 'elsewhere' WHERE seq = 5";
const DELETE: &str = "DELETE FROM audit_records WHERE seq = 5";
const INSERT: &str = "UPDATE audit_records SET seq = -seq WHERE seq >= 5; \
     UPDATE audit_records SET seq = 1 - seq WHERE seq < 0; \
     INSERT INTO audit_records (seq, at, principal, method, action, target, subject, \
       outcome, reason, request_id, prev_mac, mac) \
     SELECT 5, at, principal, method, 'user.register', target, subject, outcome, reason, \
       request_id, prev_mac, mac FROM audit_records WHERE seq = 6";
/// Reordering is named "moved (reordered)" by audit-trail; the test matches the start.
const REORDER: &str = "UPDATE audit_records SET seq = -1 WHERE seq = 5; \
     UPDATE audit_records SET seq = 5 WHERE seq = 6; \
     UPDATE audit_records SET seq = 6 WHERE seq = -1";

/// A fresh service with a journey in its log, stopped; the tampering; `audit verify`
/// must fail naming record 5 and the kind.
async fn tampered_sqlite(sql: &str, kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let j = journey(&server, &[]).await;
    my_events(&server, &j.alice).await; // flushes the log
    server.stop();
    let out = cli(dir.path(), &[], &["audit", "verify"]);
    assert!(out.status.success(), "{}", stderr(&out));
    sqlite_admin(dir.path(), sql).await;
    let out = cli(dir.path(), &[], &["audit", "verify"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let expected = format!("audit record 5 was {kind}");
    let fault = stdout(&out)
        .lines()
        .find(|l| l.starts_with("FAULT: "))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        fault.contains(&expected) && stderr(&out).contains(&fault[7..]),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_edit_is_named() {
    tampered_sqlite(EDIT, "edited").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_delete_is_named() {
    tampered_sqlite(DELETE, "deleted").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_insert_is_named() {
    tampered_sqlite(INSERT, "inserted").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_reorder_is_named() {
    tampered_sqlite(REORDER, "moved").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_log_the_export_or_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let j = journey(&server, &[]).await;
    // A failed login with the password typed into the email field, too.
    let _ = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": ALICE_PW, "password": ALICE_PW}),
        )
        .await;
    my_events(&server, &j.alice).await;
    server.stop();
    let export = cli(dir.path(), &[], &["audit", "export", "--since", "0"]);
    assert!(export.status.success(), "{}", stderr(&export));
    let lines = stdout(&export);
    assert!(lines.lines().count() >= 12, "{lines}");
    for line in lines.lines() {
        let _: Value = serde_json::from_str(line).unwrap();
    }
    let verify = cli(dir.path(), &[], &["audit", "verify"]);
    let db = dir.path().join("strongroom.db");
    // The audit rows, dumped as text.
    let dump = {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        // Every text column of every row, one line each.
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT coalesce(principal, '') || '|' || method || '|' || action || '|' || \
             coalesce(target, '') || '|' || coalesce(subject, '') || '|' || \
             outcome || '|' || coalesce(reason, '') || '|' || coalesce(request_id, '') \
             FROM audit_records",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(rows.len() >= 12, "{rows:?}");
        conn.close().await.unwrap();
        format!("{rows:?}")
    };
    for canary in [
        ALICE_PW,
        EXCH_KEY,
        EXCH_SECRET,
        SECRET_VALUE,
        j.api_key.as_str(),
        j.alice.as_str(),
    ] {
        for (what, text) in [
            ("audit table", &dump),
            ("export", &lines),
            ("verify output", &(stdout(&verify) + &stderr(&verify))),
            ("service logs", &server.logs()),
        ] {
            assert!(!text.contains(canary), "{what} holds a secret");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_leaves_verify_green() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let j = journey(&server, &[]).await;
    my_events(&server, &j.alice).await;
    server.stop();
    // Everything so far is older than "now + 1 s".
    let before = (common::now() + 1).to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = cli(dir.path(), &[], &["audit", "prune", "--before", &before]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("behind a checkpoint"),
        "{}",
        stdout(&out)
    );
    let out = cli(dir.path(), &[], &["audit", "verify"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("checkpoint: "), "{}", stdout(&out));
    // Bad times are input errors.
    let out = cli(
        dir.path(),
        &[],
        &["audit", "export", "--since", "yesterday"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
    // And every one of those commands is itself on record.
    let out = cli(dir.path(), &[], &["audit", "export", "--since", &before]);
    let text = stdout(&out);
    assert!(text.contains("cli.audit.prune"), "{text}");
    assert!(text.contains("cli.audit.verify"), "{text}");
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    fn pg_url() -> String {
        std::env::var("STRONGROOM_PG_URL").expect("STRONGROOM_PG_URL must be set for this test")
    }

    /// A fresh schema: the service's `DATABASE_URL` with `search_path` set to it.
    async fn fresh_schema() -> (String, String) {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
        let mut bytes = [0u8; 6];
        aws_lc_rs::rand::fill(&mut bytes).unwrap();
        let schema = format!("audit_{}", base16ct::lower::encode_string(&bytes));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if pg_url().contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}options=-csearch_path%3D{schema}", pg_url());
        (schema, url)
    }

    async fn pg_admin(url: &str, sql: &str) {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(
            "ALTER TABLE audit_records DISABLE TRIGGER USER; \
             ALTER TABLE audit_head DISABLE TRIGGER USER;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    async fn tampered_pg(sql: &str, kind: &str) {
        let (schema, url) = fresh_schema().await;
        let env = [("DATABASE_URL", url.as_str())];
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start(dir.path(), &env);
        let j = journey(&server, &env).await;
        my_events(&server, &j.alice).await;
        server.stop();
        let out = cli(dir.path(), &env, &["audit", "verify"]);
        assert!(out.status.success(), "{}", stderr(&out));
        pg_admin(&url, sql).await;
        let out = cli(dir.path(), &env, &["audit", "verify"]);
        assert!(!out.status.success(), "{}", stdout(&out));
        let expected = format!("audit record 5 was {kind}");
        assert!(
            stdout(&out)
                .lines()
                .any(|l| l.starts_with("FAULT: ") && l.contains(&expected)),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
    async fn pg_edit_is_named() {
        tampered_pg(EDIT, "edited").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
    async fn pg_delete_is_named() {
        tampered_pg(DELETE, "deleted").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
    async fn pg_insert_is_named() {
        tampered_pg(INSERT, "inserted").await;
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs PostgreSQL: set STRONGROOM_PG_URL"]
    async fn pg_reorder_is_named() {
        tampered_pg(REORDER, "moved").await;
    }
}
