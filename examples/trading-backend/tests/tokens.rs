//! Access and refresh tokens through the real binary: the token route, refresh rotation
//! and reuse detection, revocation (RFC 7009), logout-all with the epoch check, access
//! tokens on `/ws`, JWKS and discovery, a second instance (B) that trusts instance A as
//! its SSO issuer across a `rotate-signing-key`, the sealed signing key at rest, and no
//! token in the server's output.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::time::{Duration, Instant};

#[cfg(feature = "postgres")]
use common::pg_fresh_schema;
use common::{Server, cli, create_user, file_contains, stderr, stdout, token_login};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const PASSWORD: &str = "correct horse battery staple";

/// Unpadded base64url decoding (RFC 4648 section 5), enough for JWS parts and JWKs.
fn b64d(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn b64d_matches_rfc_4648_vectors() {
    for (text, expected) in [
        ("", ""),
        ("Zg", "f"),
        ("Zm9v", "foo"),
        ("Zm9vYmFy", "foobar"),
    ] {
        assert_eq!(b64d(text), expected.as_bytes());
    }
    assert_eq!(b64d("-_8"), [0xfb, 0xff]);
}

/// The JOSE header of a compact JWS.
fn jws_header(token: &str) -> Value {
    serde_json::from_slice(&b64d(token.split('.').next().unwrap())).unwrap()
}

/// A token pair for a user: (access, refresh).
async fn pair(server: &Server, email: &str) -> (String, String) {
    let (status, body) = token_login(server, email, PASSWORD).await;
    assert_eq!(status, 200, "{body}\n{}", server.logs());
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(server: &Server, token: &str) -> (u16, Value) {
    server
        .post("/api/auth/refresh", None, json!({ "refresh_token": token }))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn token_refresh_reuse_and_revoke_journey() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "ann@example.com", Some(PASSWORD), false);
    create_user(dir.path(), &[], "new@example.com", Some(PASSWORD), true);
    let server = Server::start(dir.path(), &[]);
    let mut seen = Vec::new();

    // The pair, with the RFC 6749 section 5.1 shape and headers.
    let res = server
        .http
        .post(server.url("/api/auth/token"))
        .json(&json!({ "email": "ann@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let at1 = body["access_token"].as_str().unwrap().to_owned();
    let rt1 = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(rt1.starts_with("rft_"), "{rt1}");
    let header = jws_header(&at1);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    seen.extend([at1.clone(), rt1.clone()]);

    // The access token is a bearer credential.
    let (status, me) = server.get("/api/auth/me", Some(&at1)).await;
    assert_eq!(status, 200, "{me}\n{}", server.logs());
    assert_eq!(me["auth_method"], "access_token");
    assert_eq!(me["email"], "ann@example.com");
    // ... on other routes too (read and interactive ones).
    assert_eq!(server.get("/api/accounts", Some(&at1)).await.0, 200);
    let (status, key) = server
        .post("/api/keys", Some(&at1), json!({ "name": "from-at" }))
        .await;
    assert_eq!(status, 201, "{key}");
    seen.push(key["api_key"].as_str().unwrap().to_owned());

    // Refresh rotates: a new pair.
    let (status, body) = refresh(&server, &rt1).await;
    assert_eq!(status, 200, "{body}");
    let at2 = body["access_token"].as_str().unwrap().to_owned();
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    assert_eq!(server.get("/api/auth/me", Some(&at2)).await.0, 200);
    seen.extend([at2.clone(), rt2.clone()]);

    // The old refresh token again: reuse. The family is revoked: the new one is dead too.
    let (status, body) = refresh(&server, &rt1).await;
    assert_eq!((status, body), (401, json!({ "error": "invalid_grant" })));
    assert_eq!(refresh(&server, &rt2).await.0, 401);
    assert!(server.logs().contains("refresh.reuse_detected"));
    // Unknown and malformed tokens: the same answer.
    assert_eq!(refresh(&server, "rft_nope").await.0, 401);
    assert_eq!(
        refresh(&server, &format!("rft_{}", "A".repeat(43))).await.0,
        401
    );

    // Revocation: 200 whatever the token; a real one's family ends.
    for garbage in ["garbage", "rft_x", at2.as_str()] {
        let (status, _) = server
            .post("/api/auth/revoke", None, json!({ "token": garbage }))
            .await;
        assert_eq!(status, 200);
    }
    let (_, rt3) = pair(&server, "ann@example.com").await;
    seen.push(rt3.clone());
    let (status, _) = server
        .post("/api/auth/revoke", None, json!({ "token": rt3 }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&server, &rt3).await.0, 401);

    // Refusals: wrong password; a user who must change the password first.
    let (status, _) = token_login(&server, "ann@example.com", "wrong password here").await;
    assert_eq!(status, 401);
    let (status, body) = token_login(&server, "new@example.com", PASSWORD).await;
    assert_eq!(
        (status, body),
        (403, json!({ "error": "password_change_required" }))
    );

    // No access or refresh token (or API key) in the server's output.
    let logs = server.logs();
    for secret in &seen {
        assert!(!logs.contains(secret.as_str()), "a token in the logs");
        // Nor the signature part of an access token alone.
        if let Some(sig) = secret.rsplit('.').next().filter(|_| secret.contains('.')) {
            assert!(!logs.contains(sig), "a token signature in the logs");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_all_ends_sessions_keys_families_and_access_tokens() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "bo@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &[("WS_RECHECK_SECS", "1")]);
    let session = server.login("bo@example.com", PASSWORD).await;
    let (status, key) = server
        .post("/api/keys", Some(&session), json!({ "name": "k" }))
        .await;
    assert_eq!(status, 201);
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let (at, rt) = pair(&server, "bo@example.com").await;
    let (at_other, rt_other) = pair(&server, "bo@example.com").await;

    // An access token opens /ws (header and query parameter).
    let mut socket = open_ws(&server, Some(&at_other), None).await;
    let _header_socket = open_ws(&server, None, Some(&at_other)).await;

    // An API key cannot log out everywhere (not interactive).
    assert_eq!(
        server
            .post("/api/auth/logout-all", Some(&api_key), json!({}))
            .await
            .0,
        403
    );
    let (status, _) = server
        .post("/api/auth/logout-all", Some(&at), json!({}))
        .await;
    assert_eq!(status, 204, "{}", server.logs());

    // Refused credentials answer 403 (401 with STRONGROOM_BEARER_CHALLENGE=1).
    for credential in [&session, &api_key, &at, &at_other] {
        assert_eq!(
            server.get("/api/auth/me", Some(credential)).await.0,
            403,
            "a credential survived logout-all"
        );
    }
    for token in [&rt, &rt_other] {
        assert_eq!(refresh(&server, token).await.0, 401);
    }
    // The socket opened with an access token closes at its next re-check.
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "socket outlived logout-all"
        );
        if socket.send(Message::text("ping")).await.is_err() {
            break;
        }
        if let Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) =
            tokio::time::timeout(Duration::from_millis(200), socket.next()).await
        {
            break;
        }
    }
    // A new login works.
    let (at_new, _) = pair(&server, "bo@example.com").await;
    assert_eq!(server.get("/api/auth/me", Some(&at_new)).await.0, 200);
    // No token in the output, not even the one sent as `/ws?token=`.
    let logs = server.logs();
    for secret in [&at, &rt, &at_other, &rt_other, &at_new, &session, &api_key] {
        assert!(!logs.contains(secret.as_str()), "a credential in the logs");
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_ws(server: &Server, query_token: Option<&str>, bearer: Option<&str>) -> Socket {
    let base = server.base.replacen("http://", "ws://", 1);
    let url = match query_token {
        Some(t) => format!("{base}/ws?token={t}"),
        None => format!("{base}/ws"),
    };
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(t) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(hello["type"], "hello");
    socket
}

/// Instance A issues; instance B trusts A as its SSO issuer (discovery, `typ: at+jwt`,
/// plain http for the test) and accepts A's access token; after `rotate-signing-key` on
/// A, a token signed by the new key verifies on B and the old one still does. A's
/// signing keys are sealed at rest.
#[tokio::test(flavor = "multi_thread")]
async fn instance_b_trusts_instance_a_across_a_key_rotation() {
    let dir_a = tempfile::tempdir().unwrap();
    let env_a = [("STRONGROOM_TOKEN_KEY_RELOAD_SECS", "1")];
    create_user(
        dir_a.path(),
        &env_a,
        "ann@example.com",
        Some(PASSWORD),
        false,
    );
    let a = Server::start(dir_a.path(), &env_a);

    // Discovery and JWKS.
    let res = a
        .http
        .get(a.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["issuer"], a.base.as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/.well-known/jwks.json", a.base).as_str()
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/api/auth/token", a.base).as_str()
    );
    let (status, jwks) = a.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!(keys[0]["kty"], "OKP");
    assert!(keys[0].get("d").is_none(), "private part published");

    // The key is sealed at rest: the row's blob and the database files do not hold the
    // public key (PKCS#8 v2 carries it next to the private key) nor the Ed25519 OID.
    let x = b64d(keys[0]["x"].as_str().unwrap());
    let db = dir_a.path().join("strongroom.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT kid, sealed FROM tb_signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, keys[0]["kid"].as_str().unwrap());
    let ed25519_oid = [0x06, 0x03, 0x2b, 0x65, 0x70];
    for needle in [&x[..], &ed25519_oid[..]] {
        assert!(
            !rows[0].1.windows(needle.len()).any(|w| w == needle),
            "key material in clear in the sealed column"
        );
        for file in ["strongroom.db", "strongroom.db-wal"] {
            assert!(!file_contains(&dir_a.path().join(file), needle), "{file}");
        }
    }

    // Instance B: A is its SSO issuer.
    let dir_b = tempfile::tempdir().unwrap();
    let env_b = [
        ("SSO_ISSUER", a.base.as_str()),
        ("SSO_DISCOVERY", "1"),
        ("SSO_AUDIENCE", "trading-backend"),
        ("SSO_TYP", "at+jwt"),
        ("SSO_ALGORITHMS", "EdDSA"),
        ("SSO_DANGER_ALLOW_HTTP", "1"),
        // B refetches A's JWKS for an unknown kid at most every 2 s (default 30 s).
        ("SSO_JWKS_COOLDOWN_SECS", "2"),
    ];
    create_user(
        dir_b.path(),
        &env_b,
        "ann.b@example.com",
        Some(PASSWORD),
        false,
    );
    let b = Server::start(dir_b.path(), &env_b);
    let (at1, _) = pair(&a, "ann@example.com").await;
    let sub = a.get("/api/auth/me", Some(&at1)).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // B's account for A's user: bound as a first SSO sign-in carrying a verified email
    // would bind it (A's access tokens carry no email).
    let session_b = b.login("ann.b@example.com", PASSWORD).await;
    let user_b = b.get("/api/auth/me", Some(&session_b)).await.1["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pool_b = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir_b.path().join("strongroom.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_sso_identities (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, 0)",
    )
    .bind(a.base.as_str())
    .bind(&sub)
    .bind(&user_b)
    .execute(&pool_b)
    .await
    .unwrap();

    let (status, me) = b.get("/api/auth/me", Some(&at1)).await;
    assert_eq!(status, 200, "{me}\n{}", b.logs());
    assert_eq!(me["auth_method"], "sso");
    assert_eq!(me["user_id"], user_b.as_str());

    // Rotation on A (the CLI, through the same sealed store).
    let out = cli(dir_a.path(), &env_a, &["rotate-signing-key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let new_kid = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("new signing key: "))
        .unwrap()
        .to_owned();
    assert_ne!(new_kid, jws_header(&at1)["kid"].as_str().unwrap());
    // A picks the new key up at its next reload (1 s here).
    let start = Instant::now();
    let at2 = loop {
        let (at, _) = pair(&a, "ann@example.com").await;
        if jws_header(&at)["kid"] == new_kid.as_str() {
            break at;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "A never signed with the new key"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (_, jwks) = a.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
    // B fetches A's JWKS again for the unknown kid (after its 2 s refetch cooldown).
    let start = Instant::now();
    loop {
        let (status, me) = b.get("/api/auth/me", Some(&at2)).await;
        if status == 200 {
            assert_eq!(me["user_id"], user_b.as_str());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "B never accepted the rotated key: {status}\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The old token still verifies on both (its key is still published).
    assert_eq!(b.get("/api/auth/me", Some(&at1)).await.0, 200);
    assert_eq!(a.get("/api/auth/me", Some(&at1)).await.0, 200);
    // Both rows sealed.
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT sealed FROM tb_signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (sealed,) in rows {
        assert!(!sealed.windows(5).any(|w| w == ed25519_oid));
    }
    // No token in either server's output.
    for logs in [a.logs(), b.logs()] {
        for t in [&at1, &at2] {
            assert!(!logs.contains(t.as_str()));
        }
    }
}

/// The same flow on PostgreSQL: the signing key is created, sealed and read back from
/// `tb_signing_keys` there; refresh rotation and reuse detection run on PostgreSQL.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn tokens_on_postgres() {
    let common::PgSchema {
        name: schema,
        database_url,
        admin,
    } = pg_fresh_schema("tb_tok").await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", database_url.as_str())];
    create_user(dir.path(), &env, "pg@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &env);
    let (at, rt) = pair(&server, "pg@example.com").await;
    assert_eq!(server.get("/api/auth/me", Some(&at)).await.0, 200);
    let (status, body) = refresh(&server, &rt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refresh(&server, &rt).await.0, 401);
    let rt2 = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&server, rt2).await.0, 401, "family not revoked");
    let sealed: Vec<(Vec<u8>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sealed FROM {schema}.tb_signing_keys"
    )))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(sealed.len(), 1);
    assert!(
        !sealed[0]
            .0
            .windows(5)
            .any(|w| w == [0x06, 0x03, 0x2b, 0x65, 0x70])
    );
    drop(server);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .unwrap();
}

/// A sealed key is bound to its row: two rows whose sealed values are swapped open
/// neither (context `kid`), sign nothing and are not published; the instance makes a
/// fresh key. `rotate-signing-key` works without a running server.
#[tokio::test(flavor = "multi_thread")]
async fn a_sealed_key_moved_to_another_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = cli(dir.path(), &[], &["rotate-signing-key"]);
        assert!(out.status.success(), "{}", stderr(&out));
        // The CLI prints the kid only, never key material.
        assert!(!stdout(&out).contains("BEGIN") && stdout(&out).len() < 100);
    }
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("strongroom.db").display()
    ))
    .await
    .unwrap();
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, sealed FROM tb_signing_keys ORDER BY kid")
            .fetch_all(&pool)
            .await
            .unwrap();
    // The first key (made by the first run) plus one per rotation.
    assert_eq!(
        rows.len(),
        3,
        "{:?}",
        rows.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    // Swap every sealed value one row along.
    for (i, (kid, _)) in rows.iter().enumerate() {
        let other = &rows[(i + 1) % rows.len()].1;
        sqlx::query("UPDATE tb_signing_keys SET sealed = $1 WHERE kid = $2")
            .bind(other)
            .bind(kid)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    create_user(dir.path(), &[], "sw@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &[]);
    let (_, jwks) = server.get("/.well-known/jwks.json", None).await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(published.len(), 1, "{jwks}");
    assert!(rows.iter().all(|(kid, _)| kid != published[0]));
    assert!(server.logs().contains("signing_key.unseal_refused"));
    // The fresh key signs and verifies.
    let (at, _) = pair(&server, "sw@example.com").await;
    assert_eq!(jws_header(&at)["kid"], published[0]);
    assert_eq!(server.get("/api/auth/me", Some(&at)).await.0, 200);
}

/// HS256 mode: tokens signed with the configured secret work as credentials; nothing is
/// published, nothing is stored, there is no rotation; the secret never shows.
#[tokio::test(flavor = "multi_thread")]
async fn hs256_mode() {
    let secret = "a7".repeat(32);
    let env = [("STRONGROOM_TOKEN_HS256_SECRET", secret.as_str())];
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &env, "hs@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &env);
    let (at, rt) = pair(&server, "hs@example.com").await;
    assert_eq!(jws_header(&at)["alg"], "HS256");
    let (status, me) = server.get("/api/auth/me", Some(&at)).await;
    assert_eq!((status, &me["auth_method"]), (200, &json!("access_token")));
    assert_eq!(refresh(&server, &rt).await.0, 200);
    assert_eq!(
        server.get("/.well-known/jwks.json", None).await.1,
        json!({ "keys": [] })
    );
    // A token signed with another secret is refused.
    let other = [("STRONGROOM_TOKEN_HS256_SECRET", &*"b8".repeat(32))];
    let dir2 = tempfile::tempdir().unwrap();
    create_user(dir2.path(), &other, "hs@example.com", Some(PASSWORD), false);
    let server2 = Server::start(dir2.path(), &other);
    assert_eq!(server2.get("/api/auth/me", Some(&at)).await.0, 403);
    let out = cli(dir.path(), &env, &["rotate-signing-key"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HS256"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&secret));
    assert!(!server.logs().contains(&secret) && !server.logs().contains(&at));
    assert!(!file_contains(
        &dir.path().join("strongroom.db"),
        &[0xa7; 32]
    ));
}
