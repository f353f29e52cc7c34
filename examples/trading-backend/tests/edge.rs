//! The HTTP edge against the real binary: API-key scopes and interactive-only routes,
//! query-string credentials (WebSocket route only), WebSocket re-checks after logout and
//! password change (also across instances), authorisation before the body, and 404 for
//! unknown routes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::time::{Duration, Instant};

use common::{Server, create_user};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

const ALICE_PW: &str = "alice-password-0123";
const BOB_PW: &str = "bob-password-456789";
const INTERNAL: &str = "internal-service-secret-0123456789abcdef";

/// A request with an `X-API-Key` header: (status, JSON body or null).
async fn with_key(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method, server.url(path))
        .header("x-api-key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A request with WebSocket upgrade headers and an optional bearer header.
async fn upgrade_like(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
) -> u16 {
    let mut req = server
        .http
        .request(method, server.url(path))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Alice (owner of a trade account) and Bob, logged in; the account id.
struct World {
    server: Server,
    _dir: tempfile::TempDir,
    alice: String,
    bob: String,
    account: String,
}

async fn world(env: &[(&str, &str)]) -> World {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(ALICE_PW), false);
    create_user(dir.path(), &[], "bob@example.com", Some(BOB_PW), false);
    create_user(
        dir.path(),
        &[],
        "carol@example.com",
        Some("carol-password-0123"),
        false,
    );
    let server = Server::start(dir.path(), env);
    let alice = server.login("alice@example.com", ALICE_PW).await;
    let bob = server.login("bob@example.com", BOB_PW).await;
    let (status, account) = server
        .post(
            "/api/accounts",
            Some(&alice),
            json!({"exchange": "paper", "label": "main", "api_key": "k-1", "secret": "s-1", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let account = account["id"].as_str().unwrap().to_owned();
    World {
        server,
        _dir: dir,
        alice,
        bob,
        account,
    }
}

async fn new_key(server: &Server, session: &str, scopes: Value) -> String {
    let (status, key) = server
        .post(
            "/api/keys",
            Some(session),
            json!({"name": "bot", "scopes": scopes}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    key["api_key"].as_str().unwrap().to_owned()
}

fn order(account: &str) -> Value {
    json!({"account_id": account, "symbol": "BTC/USDT", "side": "buy", "type": "market", "amount": "0.01"})
}

const INSUFFICIENT: &str = "insufficient_scope";
const INTERACTIVE: &str = "interactive_session_required";

#[tokio::test(flavor = "multi_thread")]
async fn a_read_key_reads_and_is_refused_everything_else() {
    use reqwest::Method;
    let w = world(&[]).await;
    let s = &w.server;
    let read = new_key(s, &w.alice, json!(["read"])).await;
    let acc = w.account.as_str();

    // What `read` covers still works.
    assert_eq!(
        with_key(s, Method::GET, "/api/auth/me", &read, None)
            .await
            .0,
        200
    );
    assert_eq!(
        with_key(s, Method::GET, "/api/accounts", &read, None)
            .await
            .0,
        200
    );
    assert_eq!(
        with_key(s, Method::GET, "/api/keys", &read, None).await.0,
        200
    );
    assert_eq!(
        with_key(s, Method::GET, "/api/secrets", &read, None)
            .await
            .0,
        200
    );
    let (status, body) = with_key(
        s,
        Method::POST,
        "/api/exchange/balance",
        &read,
        Some(json!({"account_id": acc})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Everything else is 403 with a stable code, before the body is looked at.
    let insufficient: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/exchange/create_order".into(),
            Some(order(acc)),
        ),
        (
            Method::POST,
            "/api/exchange/cancel_all".into(),
            Some(json!({"account_id": acc})),
        ),
        // `want` raises a read operation to trade: the scope follows.
        (
            Method::POST,
            "/api/exchange/balance".into(),
            Some(json!({"account_id": acc, "want": "trade"})),
        ),
        (
            Method::POST,
            "/api/exchange/create_order".into(),
            Some(json!("not an object")),
        ),
        (
            Method::POST,
            "/api/secrets".into(),
            Some(json!({"name": "n", "value": "v"})),
        ),
        (Method::DELETE, "/api/secrets/n".into(), None),
        (
            Method::DELETE,
            "/api/keys/0123456789abcdef0123456789abcdef".into(),
            None,
        ),
    ];
    for (method, path, body) in insufficient {
        let (status, got) = with_key(s, method.clone(), &path, &read, body).await;
        assert_eq!(
            (status, got),
            (403, json!({"error": INSUFFICIENT})),
            "{method} {path}"
        );
    }
    let interactive: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/keys".into(), Some(json!({}))),
        (
            Method::POST,
            "/api/keys".into(),
            Some(json!({"scopes": ["read"]})),
        ),
        (
            Method::POST,
            "/api/accounts".into(),
            Some(
                json!({"exchange": "paper", "label": "x", "api_key": "k", "secret": "s", "read_only": true}),
            ),
        ),
        (Method::DELETE, format!("/api/accounts/{acc}"), None),
        (
            Method::POST,
            format!("/api/accounts/{acc}/shares"),
            Some(json!({"email": "bob@example.com", "level": "read"})),
        ),
        (
            Method::DELETE,
            format!("/api/accounts/{acc}/shares/someone"),
            None,
        ),
        (
            Method::POST,
            "/api/auth/password".into(),
            Some(json!({"old_password": ALICE_PW, "new_password": "another-password-1"})),
        ),
        (Method::POST, "/api/auth/logout".into(), Some(json!({}))),
    ];
    for (method, path, body) in interactive {
        let (status, got) = with_key(s, method.clone(), &path, &read, body).await;
        assert_eq!(
            (status, got),
            (403, json!({"error": INTERACTIVE})),
            "{method} {path}"
        );
    }
    // Nothing happened: the account is still there and trades with the session.
    let (status, list) = s.get("/api/accounts", Some(&w.alice)).await;
    assert_eq!(status, 200);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    let (_, keys) = s.get("/api/keys", Some(&w.alice)).await;
    assert_eq!(
        keys["keys"].as_array().unwrap().len(),
        1,
        "no key was minted"
    );
    let (status, body) = s
        .post("/api/exchange/create_order", Some(&w.alice), order(acc))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_are_independent_and_unscoped_keys_are_not_interactive() {
    use reqwest::Method;
    let w = world(&[]).await;
    let s = &w.server;
    let acc = w.account.as_str();

    // `trade` alone places orders but reads nothing.
    let trade = new_key(s, &w.alice, json!(["trade"])).await;
    let (status, body) = with_key(
        s,
        Method::POST,
        "/api/exchange/create_order",
        &trade,
        Some(order(acc)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = with_key(s, Method::GET, "/api/auth/me", &trade, None).await;
    assert_eq!((status, body), (403, json!({"error": INSUFFICIENT})));

    // `manage` stores secrets and revokes keys.
    let manage = new_key(s, &w.alice, json!(["manage"])).await;
    let (status, _) = with_key(
        s,
        Method::POST,
        "/api/secrets",
        &manage,
        Some(json!({"name": "n", "value": "v"})),
    )
    .await;
    assert_eq!(status, 201);

    // An unscoped key has the user's rights, except the interactive-only actions.
    let full = new_key(s, &w.alice, json!([])).await;
    let (status, body) = with_key(
        s,
        Method::POST,
        "/api/exchange/create_order",
        &full,
        Some(order(acc)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (method, path, body) in [
        (Method::POST, "/api/keys".to_owned(), Some(json!({}))),
        (Method::DELETE, format!("/api/accounts/{acc}"), None),
    ] {
        let (status, got) = with_key(s, method.clone(), &path, &full, body).await;
        assert_eq!(
            (status, got),
            (403, json!({"error": INTERACTIVE})),
            "{method} {path}"
        );
    }

    // A scope outside the vocabulary is refused when the key is made.
    let (status, body) = s
        .post(
            "/api/keys",
            Some(&w.alice),
            json!({"name": "x", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("scopes")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_token_counts_only_on_the_websocket_route() {
    use reqwest::Method;
    let w = world(&[]).await;
    let s = &w.server;
    let t = &w.alice;
    // Ignored elsewhere, even with upgrade headers: no credential, 401.
    assert_eq!(
        upgrade_like(s, Method::GET, &format!("/api/auth/me?token={t}"), None).await,
        401
    );
    assert_eq!(
        upgrade_like(s, Method::POST, &format!("/api/keys?token={t}"), None).await,
        401
    );
    assert_eq!(
        upgrade_like(s, Method::GET, &format!("/api/accounts?token={t}"), None).await,
        401
    );
    let (_, keys) = s.get("/api/keys", Some(t)).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 0);
    // Plain requests never read it either.
    assert_eq!(s.get(&format!("/api/auth/me?token={t}"), None).await.0, 401);
    // The WebSocket route opts in.
    assert_eq!(
        upgrade_like(s, Method::GET, &format!("/ws?token={t}"), None).await,
        101
    );
    assert_eq!(upgrade_like(s, Method::GET, "/ws", Some(t)).await, 101);
    assert_eq!(upgrade_like(s, Method::GET, "/ws", None).await, 401);
    // With a header credential, `/api/auth/me` works as before.
    assert_eq!(
        upgrade_like(s, Method::GET, "/api/auth/me", Some(t)).await,
        200
    );
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
    let hello = next_text(&mut socket).await;
    assert_eq!(hello["type"], "hello");
    socket.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut socket).await, json!({"type": "pong"}));
    socket
}

async fn next_text(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("socket open")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Sends `ping` every 200 ms until the server closes; the close code and how long it took.
async fn wait_for_close(socket: &mut Socket) -> (Option<CloseCode>, Duration) {
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the socket outlived its credential by 10 s"
        );
        if socket.send(Message::text("ping")).await.is_err() {
            return (None, start.elapsed());
        }
        match tokio::time::timeout(Duration::from_millis(200), socket.next()).await {
            Err(_) => {}
            Ok(None | Some(Err(tungstenite::Error::ConnectionClosed))) => {
                return (None, start.elapsed());
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (frame.map(|f| f.code), start.elapsed());
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("socket error {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_closes_when_its_credential_ends_on_any_instance() {
    let w = world(&[("WS_RECHECK_SECS", "1")]).await;
    let s = &w.server;
    // A second instance on the same store.
    let other = Server::start(&w.server.data_dir, &[("WS_RECHECK_SECS", "1")]);

    // Logout on the other instance ends a socket opened with a query token here.
    let session = s.login("alice@example.com", ALICE_PW).await;
    let mut socket = open_ws(s, Some(&session), None).await;
    let mut untouched = open_ws(s, None, Some(&w.bob)).await;
    assert_eq!(
        other
            .post("/api/auth/logout", Some(&session), json!({}))
            .await
            .0,
        204
    );
    let (code, took) = wait_for_close(&mut socket).await;
    assert_eq!(code, Some(CloseCode::Policy));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");

    // A password change ends a socket opened with a bearer header.
    let mut socket = open_ws(s, None, Some(&w.alice)).await;
    let (status, _) = s
        .post(
            "/api/auth/password",
            Some(&w.alice),
            json!({"old_password": ALICE_PW, "new_password": "alice-new-password-1"}),
        )
        .await;
    assert_eq!(status, 204);
    let (code, _) = wait_for_close(&mut socket).await;
    assert_eq!(code, Some(CloseCode::Policy));

    // Bob's socket, whose credential is alive, still answers.
    untouched.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut untouched).await, json!({"type": "pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_path_and_the_operation_are_authorised_before_the_body() {
    use reqwest::Method;
    let w = world(&[]).await;
    let s = &w.server;
    let acc = &w.account;
    // A non-owner learns nothing about emails: the same 404 for a registered address, an
    // unknown one and a malformed body.
    let mut answers = Vec::new();
    for body in [
        json!({"email": "carol@example.com", "level": "read"}),
        json!({"email": "nobody@example.com", "level": "read"}),
        json!({"email": 7}),
    ] {
        answers.push(
            s.post(&format!("/api/accounts/{acc}/shares"), Some(&w.bob), body)
                .await,
        );
    }
    for answer in &answers {
        assert_eq!(answer, &(404, Value::Null), "{answers:?}");
    }
    // The owner still gets the field errors.
    let (status, body) = s
        .post(
            &format!("/api/accounts/{acc}/shares"),
            Some(&w.alice),
            json!({"email": "nobody@example.com", "level": "read"}),
        )
        .await;
    assert_eq!((status, body), (404, json!({"error": "user_not_found"})));

    // Withdraw and transfer: 403 whatever the body.
    for op in ["withdraw", "transfer"] {
        for body in [json!({}), json!({"account_id": acc}), json!("nope")] {
            let (status, _) = s
                .post(&format!("/api/exchange/{op}"), Some(&w.alice), body.clone())
                .await;
            assert_eq!(status, 403, "{op} {body}");
        }
        let res = s
            .http
            .post(s.url(&format!("/api/exchange/{op}")))
            .bearer_auth(&w.alice)
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{op} with a broken body");
    }
    // Closed registration is refused whatever the body.
    for body in [json!("nope"), json!({}), json!({"email": "x@example.com"})] {
        let (status, got) = s.post("/api/auth/register", None, body.clone()).await;
        assert_eq!(
            (status, got),
            (403, json!({"error": "registration_closed"})),
            "{body}"
        );
    }
    // A key without the scope is refused before its body is parsed.
    let read = new_key(s, &w.alice, json!(["read"])).await;
    let (status, _) = with_key(
        s,
        Method::POST,
        "/api/exchange/create_order",
        &read,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_are_404_with_or_without_a_credential() {
    for env in [vec![], vec![("INTERNAL_SECRET", INTERNAL)]] {
        let w = world(&env).await;
        let s = &w.server;
        for path in [
            "/nonexistent",
            "/api/nonexistent",
            "/api/keys/a/b",
            "/internal/nonexistent",
            "/healthz/x",
        ] {
            assert_eq!(s.get(path, None).await.0, 404, "{path} {env:?}");
            assert_eq!(s.get(path, Some(&w.alice)).await.0, 404, "{path} {env:?}");
            assert_eq!(
                s.post(path, Some("garbage"), json!({})).await.0,
                404,
                "{path} {env:?}"
            );
        }
        // Known routes are unchanged.
        assert_eq!(s.get("/healthz", None).await.0, 200);
        assert_eq!(s.get("/api/accounts", None).await.0, 401);
        let internal = s
            .http
            .post(s.url("/internal/exchange-credentials"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(internal, if env.is_empty() { 503 } else { 401 });
    }
}

/// A client that stops reading must not keep its socket past the credential: the server
/// is then blocked writing replies, and the re-check still has to run.
#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_that_stops_reading_still_closes_when_its_credential_ends() {
    let w = world(&[("WS_RECHECK_SECS", "1")]).await;
    let s = &w.server;
    let session = s.login("alice@example.com", ALICE_PW).await;
    let socket = open_ws(s, Some(&session), None).await;
    // Keep the reading half unread; flood `ping` until the server stops taking them
    // (its replies fill both socket buffers, so it is blocked writing).
    let (mut sink, _unread) = socket.split();
    let started = Instant::now();
    // (Bounded, so that a slow machine ends the flood rather than the test.)
    while started.elapsed() < Duration::from_secs(60) {
        let mut batch = 0;
        let stalled = loop {
            if batch == 2000 {
                break false;
            }
            let sent =
                tokio::time::timeout(Duration::from_millis(500), sink.feed(Message::text("ping")))
                    .await;
            match sent {
                Err(_) => break true,
                Ok(Ok(())) => batch += 1,
                Ok(Err(_)) => panic!("the server closed the socket while it was valid"),
            }
        };
        if stalled
            || tokio::time::timeout(Duration::from_millis(500), sink.flush())
                .await
                .is_err()
        {
            break;
        }
    }
    // The credential ends while the server is stuck writing to this client.
    assert_eq!(
        s.post("/api/auth/logout", Some(&session), json!({}))
            .await
            .0,
        204
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while !s
        .logs()
        .contains("websocket closed: credential no longer valid")
    {
        assert!(
            Instant::now() < deadline,
            "a socket whose client stopped reading outlived its credential"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
