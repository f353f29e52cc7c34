//! Operator user commands against a running server: disabling a user ends the user's
//! sessions and API keys at once (hardening A4: an API key of a disabled user used to
//! resolve and could mint new keys), sign-out-everywhere and password reset do too.
//! An operator command is another process: the running server sees its write within its
//! validity cache's TTL (500 ms by default), so the first check after each command polls
//! for up to a second.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, cli, create_user, stderr};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_end_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    create_user(
        dir.path(),
        &[],
        "dave@example.com",
        Some("dave-password-123"),
        false,
    );
    let session = server.login("dave@example.com", "dave-password-123").await;
    let (status, key) = server
        .post("/api/keys", Some(&session), json!({"name": "bot"}))
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["api_key"].as_str().unwrap().to_owned();
    assert_eq!(server.get("/api/keys", Some(&key)).await.0, 200);

    // Disable: login 401, the session and the key 403, and the key cannot mint keys.
    let out = cli(dir.path(), &[], &["disable-user", "dave@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, _) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "dave@example.com", "password": "dave-password-123"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        server
            .get_within_1s("/api/auth/me", Some(&session), 403)
            .await,
        403
    );
    assert_eq!(server.get("/api/keys", Some(&key)).await.0, 403);
    let (status, _) = server
        .post("/api/keys", Some(&key), json!({"name": "more"}))
        .await;
    assert_eq!(status, 403);

    // Enable: new logins work; what the disable ended stays ended.
    let out = cli(dir.path(), &[], &["enable-user", "dave@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.get("/api/keys", Some(&key)).await.0, 403);
    let session = server.login("dave@example.com", "dave-password-123").await;
    assert_eq!(server.get("/api/auth/me", Some(&session)).await.0, 200);

    // Sign out everywhere.
    let out = cli(
        dir.path(),
        &[],
        &["sign-out-everywhere", "dave@example.com"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        server
            .get_within_1s("/api/auth/me", Some(&session), 403)
            .await,
        403
    );

    // Reset: the new password gives a restricted session.
    let session = server.login("dave@example.com", "dave-password-123").await;
    let out = cli(
        dir.path(),
        &[],
        &[
            "reset-password",
            "dave@example.com",
            "--password",
            "operator-reset-12",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        server
            .get_within_1s("/api/auth/me", Some(&session), 403)
            .await,
        403
    );
    let (status, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": "dave@example.com", "password": "operator-reset-12"}),
        )
        .await;
    assert_eq!(
        (status, &body["password_change_required"]),
        (200, &json!(true))
    );
    let restricted = body["token"].as_str().unwrap();
    let (status, body) = server.get("/api/auth/me", Some(restricted)).await;
    assert_eq!(
        (status, body),
        (403, json!({"error": "password_change_required"}))
    );
    // Unknown users are named as input errors.
    let out = cli(dir.path(), &[], &["disable-user", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such user"));
}
