//! Configuration, registration, the static token, the internal vault route and the
//! operator CLI, each against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, cli, create_user, stderr, stdout};
use serde_json::json;

const TOKEN: &str = "static-bootstrap-token-0123456789abcdef";
const INTERNAL: &str = "internal-service-secret-0123456789abcdef";

#[test]
fn bad_configuration_names_the_variable_never_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("LISTEN_ADDR", "CANARY-not-an-address"),
        ("API_TOKEN", "CANARY-short"),
        (
            "INTERNAL_SECRET",
            "CANARY short with spaces 0123456789abcdef",
        ),
        ("REGISTRATION_OPEN", "CANARY-maybe"),
        ("DATABASE_URL", "mysql://CANARY@localhost/db"),
        ("STRONGROOM_MASTER_KEY", "CANARY-not-a-key"),
        ("SSO_JWKS_URL", "https://CANARY.example/jwks"),
    ];
    for (var, value) in cases {
        let out = cli(dir.path(), &[(var, value)], &["serve"]);
        assert!(!out.status.success(), "{var} accepted");
        let err = stderr(&out);
        assert!(
            err.contains(var) || (var == "SSO_JWKS_URL" && err.contains("SSO_ISSUER")),
            "{var}: {err}"
        );
        assert!(!err.contains("CANARY"), "{var} echoed: {err}");
        assert!(!stdout(&out).contains("CANARY"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_is_closed_by_default_and_opens_by_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"email": "new@example.com", "password": "a-long-enough-password"});
    {
        let server = Server::start(dir.path(), &[]);
        let (status, err) = server.post("/api/auth/register", None, body.clone()).await;
        assert_eq!(
            (status, err),
            (403, json!({"error": "registration_closed"}))
        );
    }
    let server = Server::start(dir.path(), &[("REGISTRATION_OPEN", "true")]);
    let (status, user) = server.post("/api/auth/register", None, body.clone()).await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["email"], "new@example.com");
    assert_eq!(server.post("/api/auth/register", None, body).await.0, 409);
    let (status, err) = server
        .post(
            "/api/auth/register",
            None,
            json!({"email": "not-an-email", "password": "a-long-enough-password"}),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("email")));
    let (status, err) = server
        .post(
            "/api/auth/register",
            None,
            json!({"email": "x@example.com", "password": "short"}),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("password")));
    assert_eq!(
        server
            .post("/api/auth/register", None, json!("nope"))
            .await
            .0,
        400
    );
    // A registered user is not forced to change the password.
    let token = server
        .login("new@example.com", "a-long-enough-password")
        .await;
    assert_eq!(server.get("/api/auth/me", Some(&token)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn static_token_and_internal_vault_route() {
    let dir = tempfile::tempdir().unwrap();
    create_user(
        dir.path(),
        &[],
        "owner@example.com",
        Some("owner-password-123"),
        false,
    );
    // Without an internal secret the internal route answers 503, the rest works.
    {
        let server = Server::start(dir.path(), &[("API_TOKEN", TOKEN)]);
        let (status, me) = server.get("/api/auth/me", Some(TOKEN)).await;
        assert_eq!(status, 200);
        assert_eq!(me["auth_method"], "static_token");
        assert_eq!(me["user_id"], "bootstrap-admin");
        let res = server
            .http
            .post(server.url("/internal/exchange-credentials"))
            .header("x-internal-secret", INTERNAL)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 503);
    }
    let server = Server::start(dir.path(), &[("INTERNAL_SECRET", INTERNAL)]);
    let owner = server
        .login("owner@example.com", "owner-password-123")
        .await;
    let (_, me) = server.get("/api/auth/me", Some(&owner)).await;
    let owner_id = me["user_id"].as_str().unwrap().to_owned();
    let (status, account) = server
        .post(
            "/api/accounts",
            Some(&owner),
            json!({"exchange": "paper", "label": "vault", "api_key": "vault-key", "secret": "vault-secret", "read_only": true}),
        )
        .await;
    assert_eq!(status, 201);
    let account_id = account["id"].as_str().unwrap().to_owned();
    let call = |secret: Option<&'static str>, body: serde_json::Value| {
        let mut req = server
            .http
            .post(server.url("/internal/exchange-credentials"))
            .json(&body);
        if let Some(s) = secret {
            req = req.header("x-internal-secret", s);
        }
        req.send()
    };
    let read = json!({"account_id": account_id, "user_id": owner_id, "want": "read"});
    assert_eq!(
        call(None, read.clone()).await.unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        call(
            Some("wrong-secret-0123456789abcdef-0123456789"),
            read.clone()
        )
        .await
        .unwrap()
        .status()
        .as_u16(),
        403
    );
    // A user token is not an internal credential (no internal resolver claims it).
    let res = server
        .http
        .post(server.url("/internal/exchange-credentials"))
        .bearer_auth(&owner)
        .json(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = call(Some(INTERNAL), read).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"credential_id": account_id, "api_key": "vault-key", "secret": "vault-secret", "passphrase": null, "read_only": true})
    );
    // Trade on a read-only key, an unknown user, an unknown account: refused.
    let trade = json!({"account_id": account_id, "user_id": owner_id, "want": "trade"});
    assert_eq!(
        call(Some(INTERNAL), trade).await.unwrap().status().as_u16(),
        403
    );
    let stranger = json!({"account_id": account_id, "user_id": "0123456789abcdef0123456789abcdef", "want": "read"});
    assert_eq!(
        call(Some(INTERNAL), stranger)
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let missing = json!({"account_id": "acc_missing", "user_id": owner_id, "want": "read"});
    assert_eq!(
        call(Some(INTERNAL), missing)
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

#[test]
fn cli_commands() {
    let dir = tempfile::tempdir().unwrap();
    // gen-master-key: 64 hex or 44 base64 characters, different each time.
    let hex = stdout(&cli(dir.path(), &[], &["gen-master-key"]));
    let hex2 = stdout(&cli(dir.path(), &[], &["gen-master-key"]));
    assert_eq!(hex.trim().len(), 64);
    assert!(hex.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(hex, hex2);
    let b64 = stdout(&cli(dir.path(), &[], &["gen-master-key", "--base64"]));
    assert_eq!(b64.trim().len(), 44);

    // create-user: a generated password printed once; duplicates and bad input refused.
    let out = cli(dir.path(), &[], &["create-user", "ops@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("must change the password"));
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap();
    assert_eq!(password.len(), 20);
    let out = cli(
        dir.path(),
        &[],
        &[
            "create-user",
            "ops@example.com",
            "--password",
            "another-password-1",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already registered"));
    let out = cli(dir.path(), &[], &["create-user", "not an email"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("email"));
    let out = cli(
        dir.path(),
        &[],
        &["create-user", "weak@example.com", "--password", "CANARY1"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("password") && !stderr(&out).contains("CANARY1"));
    // Nothing half-written: the refused user does not exist.
    let out = cli(dir.path(), &[], &["issue-api-key", "weak@example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such user"));

    // issue-api-key and sweep-sessions.
    let out = cli(
        dir.path(),
        &[],
        &["issue-api-key", "ops@example.com", "--name", "deploy"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("api key: ").map(str::to_owned))
        .unwrap();
    assert!(key.starts_with("ak_"));
    let out = cli(dir.path(), &[], &["sweep-sessions"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("expired session"));
    let out = cli(dir.path(), &[], &["no-such-command"]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_key_is_reused_and_rewrap_moves_to_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    create_user(
        dir.path(),
        &[],
        "r@example.com",
        Some("rotate-password-123"),
        false,
    );
    let account_id;
    {
        let server = Server::start(dir.path(), &[]);
        assert!(server.logs().contains("DEVELOPMENT master key"));
        let token = server.login("r@example.com", "rotate-password-123").await;
        let (status, account) = server
            .post("/api/accounts", Some(&token), json!({"exchange": "paper", "label": "r", "api_key": "rk", "secret": "rs", "read_only": false}))
            .await;
        assert_eq!(status, 201);
        account_id = account["id"].as_str().unwrap().to_owned();
        server
            .post(
                "/api/secrets",
                Some(&token),
                json!({"name": "s1", "value": "v1"}),
            )
            .await;
    }
    let dev_key = std::fs::read_to_string(dir.path().join("dev-master.key")).unwrap();
    let new_key = stdout(&cli(dir.path(), &[], &["gen-master-key"]))
        .trim()
        .to_owned();
    let old = format!("1:{}", dev_key.trim());
    let rotated = [
        ("STRONGROOM_MASTER_KEY", new_key.as_str()),
        ("STRONGROOM_MASTER_KEY_VERSION", "2"),
        ("STRONGROOM_MASTER_KEYS_OLD", old.as_str()),
    ];
    let out = cli(dir.path(), &rotated, &["rewrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        // The two stored secrets, and the access-token signing key and the audit key
        // made at start.
        stdout(&out).contains("rewrap complete: 4 re-wrapped"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("rewrap: scanned 2"));
    let again = cli(dir.path(), &rotated, &["rewrap"]);
    assert!(
        stdout(&again).contains("0 re-wrapped, 4 already current"),
        "{}",
        stdout(&again)
    );
    // The new key alone now opens everything.
    let server = Server::start(
        dir.path(),
        &[
            ("STRONGROOM_MASTER_KEY", new_key.as_str()),
            ("STRONGROOM_MASTER_KEY_VERSION", "2"),
        ],
    );
    assert!(!server.logs().contains("DEVELOPMENT master key"));
    let token = server.login("r@example.com", "rotate-password-123").await;
    let (status, _) = server
        .post(
            "/api/exchange/balance",
            Some(&token),
            json!({"account_id": account_id}),
        )
        .await;
    assert_eq!(status, 200);
}
