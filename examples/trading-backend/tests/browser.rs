//! Browser sessions against the real binary: login into the `__Host-` cookie, the cookie
//! as a credential, the CSRF defence (cross-site POSTs refused), logout clearing it, and
//! the RFC 6750 answers option.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, create_user};
use serde_json::{Value, json};

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.net";
const EMAIL: &str = "browser@example.com";
const PASSWORD: &str = "browser-password-123";

const COOKIES_ON: [(&str, &str); 3] = [
    ("STRONGROOM_COOKIE_SESSIONS", "1"),
    ("STRONGROOM_ALLOWED_ORIGINS", APP),
    ("STRONGROOM_BEARER_CHALLENGE", "1"),
];

/// Sends `method path` with extra headers and an optional JSON body; status, headers,
/// body.
async fn send(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = server.http.request(method, server.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_login_and_cross_site_posts_refused() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], EMAIL, Some(PASSWORD), false);
    let mut server = Server::start(dir.path(), &COOKIES_ON);
    let login = json!({"email": EMAIL, "password": PASSWORD, "cookie": true});
    use reqwest::Method;

    // Login CSRF: another site cannot sign the browser in.
    let (s, h, body) = send(
        &server,
        Method::POST,
        "/api/auth/login",
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")],
        Some(login.clone()),
    )
    .await;
    assert_eq!((s, body), (403, json!({"error": "csrf"})));
    assert!(h.get("set-cookie").is_none());

    // From the front end: the session goes into the cookie, not the body.
    let (s, h, body) = send(
        &server,
        Method::POST,
        "/api/auth/login",
        &[("origin", APP), ("sec-fetch-site", "same-site")],
        Some(login),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["cookie"], json!(true));
    assert!(body.get("token").is_none(), "{body}");
    assert!(body["expires_at"].is_i64());
    let set = h.get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-strongroom-session=ses_"), "{set}");
    for attr in [
        "; Path=/",
        "; Secure",
        "; HttpOnly",
        "; SameSite=Lax",
        "; Max-Age=2592000",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="));
    let pair = set.split(';').next().unwrap().to_owned();
    let token = pair.split_once('=').unwrap().1.to_owned();

    // The cookie authenticates reads.
    let (s, _, me) = send(
        &server,
        Method::GET,
        "/api/auth/me",
        &[("cookie", &pair)],
        None,
    )
    .await;
    assert_eq!((s, me["email"].as_str()), (200, Some(EMAIL)));
    assert_eq!(me["auth_method"], "session");

    // A cross-site POST with only the cookie is refused before the handler runs.
    for extra in [
        &[("origin", EVIL), ("sec-fetch-site", "cross-site")][..],
        &[("origin", EVIL)][..],
        &[][..],
    ] {
        let mut hs = vec![("cookie", pair.as_str())];
        hs.extend_from_slice(extra);
        let (s, _, body) = send(
            &server,
            Method::POST,
            "/api/keys",
            &hs,
            Some(json!({"name": "stolen", "scopes": ["trade"]})),
        )
        .await;
        assert_eq!((s, body), (403, json!({"error": "csrf"})), "{extra:?}");
    }
    let (s, _, keys) = send(
        &server,
        Method::GET,
        "/api/keys",
        &[("cookie", &pair)],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(0), "{keys}");

    // The same POST from the front end's own origin goes through.
    let (s, _, body) = send(
        &server,
        Method::POST,
        "/api/keys",
        &[("cookie", &pair), ("sec-fetch-site", "same-origin")],
        Some(json!({"name": "mine", "scopes": ["read"]})),
    )
    .await;
    assert!(s == 200 || s == 201, "{s} {body}");

    // Logout clears the cookie; the old cookie then answers 401 invalid_token (RFC 6750).
    let (s, h, _) = send(
        &server,
        Method::POST,
        "/api/auth/logout",
        &[("cookie", &pair), ("origin", APP)],
        None,
    )
    .await;
    assert_eq!(s, 204);
    let cleared = h.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cleared.starts_with("__Host-strongroom-session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (s, h, _) = send(
        &server,
        Method::GET,
        "/api/auth/me",
        &[("cookie", &pair)],
        None,
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(
        h.get("www-authenticate").unwrap(),
        r#"Bearer error="invalid_token""#
    );

    // Bearer logins are unchanged and need no origin.
    let bearer = server.login(EMAIL, PASSWORD).await;
    let (s, _, _) = send(
        &server,
        Method::POST,
        "/api/auth/logout",
        &[("authorization", &format!("Bearer {bearer}"))],
        None,
    )
    .await;
    assert_eq!(s, 204);

    server.stop();
    let logs = server.logs();
    assert!(logs.contains("csrf.cross_site"), "{logs}");
    assert!(
        !logs.contains(&token),
        "the session cookie leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_are_off_by_default() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], EMAIL, Some(PASSWORD), false);
    let server = Server::start(dir.path(), &[]);
    let (s, body) = server
        .post(
            "/api/auth/login",
            None,
            json!({"email": EMAIL, "password": PASSWORD, "cookie": true}),
        )
        .await;
    assert_eq!(
        (s, body),
        (400, json!({"error": "cookie_sessions_disabled"}))
    );
    // A session token in the cookie is no credential; refused tokens stay 403.
    let token = server.login(EMAIL, PASSWORD).await;
    let cookie = format!("__Host-strongroom-session={token}");
    let (s, h, _) = send(
        &server,
        reqwest::Method::GET,
        "/api/auth/me",
        &[("cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(s, 401);
    assert_eq!(h.get("www-authenticate").unwrap(), "Bearer");
    let (s, h, _) = server_get_with_bearer(&server, "ses_unknown").await;
    assert_eq!(s, 403);
    assert!(h.get("www-authenticate").is_none());
}

async fn server_get_with_bearer(
    server: &Server,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    send(
        server,
        reqwest::Method::GET,
        "/api/auth/me",
        &[("authorization", &format!("Bearer {token}"))],
        None,
    )
    .await
}

#[test]
fn cookie_configuration_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    for env in [
        &[("STRONGROOM_COOKIE_SESSIONS", "1")][..],
        &[
            ("STRONGROOM_COOKIE_SESSIONS", "1"),
            ("STRONGROOM_ALLOWED_ORIGINS", "https://app.example.com/path"),
        ][..],
        &[("STRONGROOM_ALLOWED_ORIGINS", APP)][..],
    ] {
        let out = common::cli(dir.path(), env, &["serve"]);
        assert!(!out.status.success(), "{env:?} accepted");
        let err = common::stderr(&out);
        assert!(err.contains("STRONGROOM_"), "{err}");
    }
}
