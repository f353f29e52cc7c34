//! Outside review of the token, MFA, throttle and cookie routes against the real binary:
//! replays, other users' credentials, races, revocation reaching access tokens,
//! malformed bodies, and secrets in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, cli, create_user, enable_mfa as enable, now, totp};
use serde_json::{Value, json};

const PW: &str = "correct horse battery staple 1";

/// A token pair for `email` (asserted 200).
async fn token_pair(s: &Server, email: &str) -> Value {
    let (status, body) = common::token_login(s, email, PW).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn mfa_token(s: &Server, route: &str, email: &str) -> String {
    let (status, body) = s
        .post(route, None, json!({ "email": email, "password": PW }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    body["mfa_token"].as_str().unwrap().to_owned()
}

/// `POST /api/auth/logout` with an access token ends the refresh family the token came
/// from (its `sid`): the refresh token is refused afterwards.
#[tokio::test]
async fn logout_with_an_access_token_revokes_its_family() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[]);
    let pair = token_pair(&s, "a@example.com").await;
    let other = token_pair(&s, "a@example.com").await;
    let access = pair["access_token"].as_str().unwrap();
    let (status, body) = s.post("/api/auth/logout", Some(access), json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 401, "the family of the logged-out token is revoked");
    // Another family of the same user lives on.
    let (status, body) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": other["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Every malformed body on the new routes is a 4xx naming the field (never 500).
#[tokio::test]
async fn malformed_bodies_on_new_routes() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[]);
    let session = s.login("a@example.com", PW).await;
    let huge = "x".repeat(10_000);
    let cases: &[(&str, &str, &[&str])] = &[
        ("/api/auth/token", "email", &["email", "password"]),
        ("/api/auth/refresh", "refresh_token", &["refresh_token"]),
        ("/api/auth/revoke", "token", &["token"]),
        ("/api/auth/mfa", "mfa_token", &["mfa_token", "code"]),
        ("/api/auth/mfa/confirm", "code", &["code"]),
        ("/api/auth/mfa/verify", "code", &["code"]),
        ("/api/auth/mfa/disable", "password", &["password", "code"]),
    ];
    for (route, first, fields) in cases {
        // Not JSON, not an object.
        for raw in ["not json", "[]", "\"x\"", "", "{\"a\":"] {
            let res = s
                .http
                .post(s.url(route))
                .bearer_auth(&session)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            // disable checks the step-up first: 403 mfa_required is not 500 either.
            assert!(
                status == 400 || (*route == "/api/auth/mfa/disable" && status == 409),
                "{route} {raw:?}: {status} {body}"
            );
        }
        // Missing field.
        let (status, body) = s.post(route, Some(&session), json!({})).await;
        assert_eq!(status, 400, "{route}: {body}");
        assert_eq!(body["field"], *first, "{route}: {body}");
        // Wrong types and huge values for each field.
        for field in *fields {
            for bad in [
                json!(5),
                json!(null),
                json!([]),
                json!({}),
                json!(true),
                json!(huge),
            ] {
                let mut body = json!({});
                for f in *fields {
                    body[*f] = json!("123456");
                }
                body[*field] = bad.clone();
                let (status, answer) = s.post(route, Some(&session), body).await;
                assert_eq!(status, 400, "{route} {field}={bad}: {answer}");
                assert_eq!(answer["field"], *field, "{route} {field}: {answer}");
            }
        }
        // A body over the cap.
        let res = s
            .http
            .post(s.url(route))
            .bearer_auth(&session)
            .body(format!("{{\"x\":\"{}\"}}", "y".repeat(100 * 1024)))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert_eq!(status, 413, "{route} huge body");
    }
    assert!(!s.logs().contains("panicked"), "{}", s.logs());
}

/// Replays and other users' secrets at the second step; the kind of the login is kept.
#[tokio::test]
async fn second_factor_replays_and_cross_user() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    create_user(dir.path(), &[], "b@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[]);
    let sa = s.login("a@example.com", PW).await;
    let sb = s.login("b@example.com", PW).await;
    let (secret_a, codes_a) = enable(&s, &sa).await;
    let (secret_b, _) = enable(&s, &sb).await;

    // A's mfa_token with B's code: refused, and the token is spent.
    let ta = mfa_token(&s, "/api/auth/login", "a@example.com").await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": ta, "code": totp(&secret_b, now()) }),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": ta, "code": totp(&secret_a, now()) }),
        )
        .await;
    assert_eq!(status, 401, "an mfa_token is single use");

    // Begun at /login: a session, never a token pair; and the mfa_token twice.
    let code = totp(&secret_a, now());
    let ta = mfa_token(&s, "/api/auth/login", "a@example.com").await;
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": ta, "code": code }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["token"].is_string() && body.get("access_token").is_none(),
        "{body}"
    );
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": ta, "code": code }),
        )
        .await;
    assert_eq!(status, 401, "mfa_token replay");
    // The same TOTP code again, on a fresh token pair login: refused (step replay).
    let tt = mfa_token(&s, "/api/auth/token", "a@example.com").await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": tt, "code": code }),
        )
        .await;
    assert_eq!(status, 401, "a TOTP code is accepted once");
    // ... and as a step-up.
    let (status, _) = s
        .post("/api/auth/mfa/verify", Some(&sa), json!({ "code": code }))
        .await;
    assert_eq!(status, 403, "a TOTP code is accepted once (step-up)");

    // Begun at /token, finished with a recovery code: a token pair.
    let tt = mfa_token(&s, "/api/auth/token", "a@example.com").await;
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": tt, "code": codes_a[0] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["access_token"].is_string() && body.get("token").is_none(),
        "{body}"
    );
    let tt = mfa_token(&s, "/api/auth/token", "a@example.com").await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": tt, "code": codes_a[0] }),
        )
        .await;
    assert_eq!(status, 401, "a recovery code is single use");
    // A's recovery code for B.
    let tb = mfa_token(&s, "/api/auth/login", "b@example.com").await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": tb, "code": codes_a[1] }),
        )
        .await;
    assert_eq!(status, 401, "A's recovery code is not B's");

    // Step-up recorded on one session of A does not count for another session of A.
    let sa2 = {
        let t = mfa_token(&s, "/api/auth/login", "a@example.com").await;
        let (status, body) = s
            .post(
                "/api/auth/mfa",
                None,
                json!({ "mfa_token": t, "code": codes_a[2] }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap().to_owned()
    };
    // sa (pre-MFA session, never stepped up) now steps up with a recovery code.
    let (status, _) = s
        .post(
            "/api/auth/mfa/verify",
            Some(&sa),
            json!({ "code": codes_a[3] }),
        )
        .await;
    assert_eq!(status, 204);
    // A session with no step-up at all:
    let t = mfa_token(&s, "/api/auth/login", "a@example.com").await;
    let _ = t;
    let (status, _) = s
        .post(
            "/api/keys",
            Some(&sa),
            json!({ "name": "k", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(status, 201, "stepped-up session may create a key");
    let _ = sa2;

    // Secrets never in the log.
    let logs = s.logs();
    for secret in [
        &secret_a,
        &secret_b,
        &codes_a[0],
        &codes_a[1],
        &ta,
        &tt,
        &sa,
        &sb,
    ] {
        assert!(!logs.contains(secret.as_str()), "secret in the log");
    }
}

/// An access token from before a password change, `sign-out-everywhere`, `disable-user`
/// or logout-all is refused on /api; the token route refuses a disabled user and a user
/// who must change the password.
#[tokio::test]
async fn access_tokens_end_with_the_user_epoch() {
    let dir = tempfile::tempdir().unwrap();
    for u in ["a", "b", "c", "d"] {
        create_user(
            dir.path(),
            &[],
            &format!("{u}@example.com"),
            Some(PW),
            false,
        );
    }
    create_user(dir.path(), &[], "r@example.com", Some(PW), true);
    let s = Server::start(dir.path(), &[]);

    let a = token_pair(&s, "a@example.com").await;
    let at = a["access_token"].as_str().unwrap();
    let (status, _) = s.get("/api/auth/me", Some(at)).await;
    assert_eq!(status, 200);
    let (status, _) = s
        .post(
            "/api/auth/password",
            Some(at),
            json!({ "old_password": PW, "new_password": "another long password 2" }),
        )
        .await;
    assert_eq!(status, 204);
    let (status, body) = s.get("/api/auth/me", Some(at)).await;
    assert_eq!(
        status, 403,
        "password change ends access tokens (403 like a superseded session): {body}"
    );
    let (status, _) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": a["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 401, "password change ends families");

    // An operator command is another process: the server's validity cache (which holds
    // the user after the first request) sees it within 500 ms.
    let b = token_pair(&s, "b@example.com").await;
    assert_eq!(
        s.get("/api/auth/me", b["access_token"].as_str()).await.0,
        200
    );
    let out = cli(dir.path(), &[], &["sign-out-everywhere", "b@example.com"]);
    assert!(out.status.success());
    let status = s
        .get_within_1s("/api/auth/me", b["access_token"].as_str(), 403)
        .await;
    assert_eq!(status, 403, "sign-out-everywhere ends access tokens");

    let c = token_pair(&s, "c@example.com").await;
    assert_eq!(
        s.get("/api/auth/me", c["access_token"].as_str()).await.0,
        200
    );
    let out = cli(dir.path(), &[], &["disable-user", "c@example.com"]);
    assert!(out.status.success());
    let status = s
        .get_within_1s("/api/auth/me", c["access_token"].as_str(), 403)
        .await;
    assert_eq!(status, 403, "disable-user ends access tokens");
    let (status, _) = s
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": c["refresh_token"] }),
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = s
        .post(
            "/api/auth/token",
            None,
            json!({ "email": "c@example.com", "password": PW }),
        )
        .await;
    assert_eq!(status, 401, "disabled user: {body}");

    let d = token_pair(&s, "d@example.com").await;
    let d2 = token_pair(&s, "d@example.com").await;
    let (status, _) = s
        .post(
            "/api/auth/logout-all",
            d2["access_token"].as_str(),
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s.get("/api/auth/me", d["access_token"].as_str()).await;
    assert_eq!(status, 403, "logout-all ends other access tokens");

    let (status, body) = s
        .post(
            "/api/auth/token",
            None,
            json!({ "email": "r@example.com", "password": PW }),
        )
        .await;
    assert_eq!(status, 403, "must change password: {body}");

    let logs = s.logs();
    for t in [&a, &b, &c, &d, &d2] {
        assert!(!logs.contains(t["access_token"].as_str().unwrap()));
        assert!(!logs.contains(t["refresh_token"].as_str().unwrap()));
    }
}

/// Two refreshes of one token at once: at most one new pair, and the loser's reuse ends
/// the family (so the winner's token is refused as well).
#[tokio::test]
async fn concurrent_refreshes_of_one_token() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[]);
    for _ in 0..5 {
        let pair = token_pair(&s, "a@example.com").await;
        let body = json!({ "refresh_token": pair["refresh_token"] });
        let (x, y) = tokio::join!(
            s.post("/api/auth/refresh", None, body.clone()),
            s.post("/api/auth/refresh", None, body.clone())
        );
        let ok: Vec<&Value> = [&x, &y]
            .iter()
            .filter(|r| r.0 == 200)
            .map(|r| &r.1)
            .collect();
        assert_eq!(ok.len(), 1, "{x:?} {y:?}");
        let (status, _) = s
            .post(
                "/api/auth/refresh",
                None,
                json!({ "refresh_token": ok[0]["refresh_token"] }),
            )
            .await;
        assert_eq!(status, 401, "reuse revoked the family");
    }
}

/// Throttle: the right password during a lockout is 429 with a sane Retry-After; on IPv6.
#[tokio::test]
async fn throttle_retry_after_and_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[("LISTEN_ADDR", "[::1]:0")]);
    assert!(s.base.contains("[::1]"), "{}", s.base);
    let mut last = 0;
    for _ in 0..8 {
        let (status, _) = s
            .post(
                "/api/auth/token",
                None,
                json!({ "email": "a@example.com", "password": "wrong password here" }),
            )
            .await;
        last = status;
    }
    assert_eq!(last, 429);
    let res = s
        .http
        .post(s.url("/api/auth/token"))
        .json(&json!({ "email": "a@example.com", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let secs: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&secs), "{secs}");
}

/// With cookie sessions on, a cross-site POST carrying only the session cookie is refused
/// (403 csrf) on every new state-changing route; the same call from the app goes through.
#[tokio::test]
async fn cross_site_cookie_posts_on_new_routes() {
    const APP: &str = "https://app.example.com";
    const EVIL: &str = "https://evil.example.net";
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(
        dir.path(),
        &[
            ("STRONGROOM_COOKIE_SESSIONS", "1"),
            ("STRONGROOM_ALLOWED_ORIGINS", APP),
        ],
    );
    let res = s
        .http
        .post(s.url("/api/auth/login"))
        .header("origin", APP)
        .json(&json!({ "email": "a@example.com", "password": PW, "cookie": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let post = |path: &'static str, origin: &'static str, body: Value| {
        let req = s
            .http
            .post(s.url(path))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header(
                "sec-fetch-site",
                if origin == APP {
                    "same-site"
                } else {
                    "cross-site"
                },
            )
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (path, body) in [
        ("/api/auth/mfa/enroll", json!({})),
        ("/api/auth/mfa/confirm", json!({ "code": "123456" })),
        ("/api/auth/mfa/verify", json!({ "code": "123456" })),
        (
            "/api/auth/mfa/disable",
            json!({ "password": PW, "code": "123456" }),
        ),
        ("/api/auth/logout-all", json!({})),
        ("/api/auth/logout", json!({})),
        (
            "/api/auth/password",
            json!({ "old_password": PW, "new_password": "x y z w v u t s" }),
        ),
    ] {
        let (status, answer) = post(path, EVIL, body).await;
        assert_eq!(
            (status, answer),
            (403, json!({ "error": "csrf" })),
            "{path}"
        );
    }
    // The second step asking for a cookie from another site.
    let (status, answer) = post(
        "/api/auth/mfa",
        EVIL,
        json!({ "mfa_token": "x", "code": "123456", "cookie": true }),
    )
    .await;
    assert_eq!((status, answer), (403, json!({ "error": "csrf" })));
    // The session is still alive and the app itself may enrol.
    let (status, body) = post("/api/auth/mfa/enroll", APP, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(!s.logs().contains(&secret), "TOTP secret in the log");
}

/// Wrong step-up codes are throttled, for a session and for an access token alike.
#[tokio::test]
async fn step_up_guessing_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[]);
    let session = s.login("a@example.com", PW).await;
    let (secret, _) = enable(&s, &session).await;
    let pair = {
        let t = mfa_token(&s, "/api/auth/token", "a@example.com").await;
        let (status, body) = s
            .post(
                "/api/auth/mfa",
                None,
                json!({ "mfa_token": t, "code": totp(&secret, now()) }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let at = pair["access_token"].as_str().unwrap().to_owned();
    let right = totp(&secret, now());
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    let mut statuses = Vec::new();
    for i in 0..30 {
        let cred = if i % 2 == 0 { &session } else { &at };
        let (status, _) = s
            .post("/api/auth/mfa/verify", Some(cred), json!({ "code": wrong }))
            .await;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

/// A second step finished after the user was disabled or signed out everywhere (between
/// the two steps) issues nothing; the token route answers a disabled user, an unknown
/// email and a wrong password alike.
#[tokio::test]
async fn second_step_after_the_user_changed() {
    let dir = tempfile::tempdir().unwrap();
    for u in ["a", "b", "c"] {
        create_user(
            dir.path(),
            &[],
            &format!("{u}@example.com"),
            Some(PW),
            false,
        );
    }
    let s = Server::start(dir.path(), &[]);
    let mut secrets = Vec::new();
    for u in ["a", "b"] {
        let session = s.login(&format!("{u}@example.com"), PW).await;
        secrets.push(enable(&s, &session).await.0);
    }
    for (i, (u, command)) in [("a", "disable-user"), ("b", "sign-out-everywhere")]
        .into_iter()
        .enumerate()
    {
        let email = format!("{u}@example.com");
        for route in ["/api/auth/login", "/api/auth/token"] {
            let t = mfa_token(&s, route, &email).await;
            let out = cli(dir.path(), &[], &[command, &email]);
            assert!(out.status.success());
            let (status, body) = s
                .post(
                    "/api/auth/mfa",
                    None,
                    json!({ "mfa_token": t, "code": totp(&secrets[i], if route.ends_with("token") { now() + 30 } else { now() }) }),
                )
                .await;
            assert!(
                status == 401 || status == 403,
                "{command} between the steps of {route}: {status} {body}"
            );
            if command == "disable-user" {
                let _ = cli(dir.path(), &[], &["enable-user", &email]);
            }
        }
    }
    // Enumeration: disabled user with the right password, unknown email, wrong password.
    let out = cli(dir.path(), &[], &["disable-user", "c@example.com"]);
    assert!(out.status.success());
    let mut answers = Vec::new();
    for (email, pw) in [
        ("c@example.com", PW),
        ("nobody@example.com", PW),
        ("a@example.com", "not the password at all"),
    ] {
        answers.push(
            s.post(
                "/api/auth/token",
                None,
                json!({ "email": email, "password": pw }),
            )
            .await,
        );
    }
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[1], answers[2], "{answers:?}");
}

/// A step-up recorded on one session (or access token) of a user does not count for
/// another session of the same user.
#[tokio::test]
async fn step_up_is_per_credential() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "a@example.com", Some(PW), false);
    let s = Server::start(dir.path(), &[("STRONGROOM_STEP_UP_SECS", "600")]);
    let s1 = s.login("a@example.com", PW).await;
    let s2 = s.login("a@example.com", PW).await;
    let old_pair = token_pair(&s, "a@example.com").await;
    let (secret, _) = enable(&s, &s1).await;
    let (status, _) = s
        .post(
            "/api/auth/mfa/verify",
            Some(&s1),
            json!({ "code": totp(&secret, now()) }),
        )
        .await;
    assert_eq!(status, 204);
    let key = json!({ "name": "k", "scopes": ["read"] });
    let (status, body) = s.post("/api/keys", Some(&s2), key.clone()).await;
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("mfa_required")),
        "{body}"
    );
    let (status, body) = s
        .post("/api/keys", old_pair["access_token"].as_str(), key.clone())
        .await;
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("mfa_required")),
        "{body}"
    );
    let (status, body) = s.post("/api/keys", Some(&s1), key).await;
    assert_eq!(status, 201, "{body}");
}
