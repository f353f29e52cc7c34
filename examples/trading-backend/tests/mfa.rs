//! The TOTP second factor over HTTP: enrol, confirm, login in two steps, replay,
//! recovery codes, the wrong-code throttle, step-up on sensitive routes, disable, and no
//! secret in the server's log. Codes are computed here with an independent RFC 6238
//! (HMAC-SHA1 over the base32 secret), not with auth-core.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, enable_mfa as enable, now, totp};
use serde_json::{Value, json};

const PW: &str = "correct horse battery staple 1";

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("REGISTRATION_OPEN", "1")]);
    (dir, server)
}

async fn register(s: &Server, email: &str) -> String {
    let (status, body) = s
        .post(
            "/api/auth/register",
            None,
            json!({ "email": email, "password": PW }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    s.login(email, PW).await
}

/// Enrols and confirms with the previous step's code (the current and next steps stay
/// free). Returns (base32 secret, recovery codes).
/// The password step: asserts the `mfa_required` answer (no token) and returns the
/// `mfa_token`.
async fn first_step(s: &Server, email: &str) -> String {
    let (status, body) = s
        .post(
            "/api/auth/login",
            None,
            json!({ "email": email, "password": PW }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(
        body.get("token").is_none(),
        "no session before the second step"
    );
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn create_key(s: &Server, session: &str) -> (u16, Value) {
    s.post("/api/keys", Some(session), json!({ "name": "bot" }))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn second_factor_journey_and_canary() {
    let (_dir, mut s) = server();
    let email = "mfa.user@example.com";
    let first_session = register(&s, email).await;
    let (secret, recovery) = enable(&s, &first_session).await;
    // Confirming twice: nothing pending any more.
    let (status, _) = s
        .post(
            "/api/auth/mfa/confirm",
            Some(&first_session),
            json!({ "code": totp(&secret, now()) }),
        )
        .await;
    assert_eq!(status, 409);

    // Login now stops after the password; the mfa_token is no credential.
    let mfa_token = first_step(&s, email).await;
    // (No resolver claims it: refused like any unknown credential.)
    let status = s.get("/api/auth/me", Some(&mfa_token)).await.0;
    assert!(matches!(status, 401 | 403), "{status}");
    // A wrong code spends the token: the right code afterwards is refused too.
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": mfa_token, "code": "000000" }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_second_factor"))
    );
    let code = totp(&secret, now());
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": mfa_token, "code": code }),
        )
        .await;
    assert_eq!(status, 401);

    // The second step with a fresh token and a code: a session, same shape as login.
    let mfa_token = first_step(&s, email).await;
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": mfa_token, "code": code }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let session = body["token"].as_str().unwrap().to_owned();
    assert!(body["expires_at"].as_i64().unwrap() > 0);
    assert_eq!(s.get("/api/auth/me", Some(&session)).await.0, 200);

    // Replay: the same code again (another login) is refused.
    let again = first_step(&s, email).await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": again, "code": code }),
        )
        .await;
    assert_eq!(status, 401, "a TOTP code is accepted once");

    // Step-up: the session that just passed the factor may create an API key and
    // register an exchange account; the session from before the factor may not, until
    // it verifies. Sharing needs the check at trade level only.
    assert_eq!(create_key(&s, &session).await.0, 201);
    let (status, account) = s
        .post(
            "/api/accounts",
            Some(&session),
            json!({ "exchange": "paper", "label": "main", "api_key": "k-1", "secret": "s-1", "read_only": false }),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let account_id = account["id"].as_str().unwrap().to_owned();
    register(&s, "grantee@example.com").await;
    let share = |level: &'static str| json!({ "email": "grantee@example.com", "level": level });
    let path = format!("/api/accounts/{account_id}/shares");
    let (status, body) = s.post(&path, Some(&first_session), share("trade")).await;
    assert_eq!((status, body), (403, json!({ "error": "mfa_required" })));
    assert_eq!(
        s.post(&path, Some(&first_session), share("read")).await.0,
        201
    );
    assert_eq!(s.post(&path, Some(&session), share("trade")).await.0, 201);
    let (status, body) = create_key(&s, &first_session).await;
    assert_eq!((status, body), (403, json!({ "error": "mfa_required" })));
    // Registering an exchange account and disabling need it too.
    let (status, body) = s
        .post(
            "/api/accounts",
            Some(&first_session),
            json!({ "exchange": "paper", "label": "x", "api_key": "k", "secret": "s", "read_only": false }),
        )
        .await;
    assert_eq!((status, body), (403, json!({ "error": "mfa_required" })));
    let (status, body) = s
        .post(
            "/api/auth/mfa/disable",
            Some(&first_session),
            json!({ "password": PW, "code": recovery[5] }),
        )
        .await;
    assert_eq!((status, body), (403, json!({ "error": "mfa_required" })));
    // Step-up with a recovery code (single use).
    let (status, _) = s
        .post(
            "/api/auth/mfa/verify",
            Some(&first_session),
            json!({ "code": recovery[0] }),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(create_key(&s, &first_session).await.0, 201);
    let (status, body) = s
        .post(
            "/api/auth/mfa/verify",
            Some(&first_session),
            json!({ "code": recovery[0] }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("invalid_code"))
    );
    // A recovery code also finishes a login, once.
    let t = first_step(&s, email).await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": t, "code": recovery[1].to_uppercase() }),
        )
        .await;
    assert_eq!(status, 200);
    let t = first_step(&s, email).await;
    let (status, _) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": t, "code": recovery[1] }),
        )
        .await;
    assert_eq!(status, 401);

    // Disable needs the password and a code (and the recent step-up it has).
    let (status, body) = s
        .post(
            "/api/auth/mfa/disable",
            Some(&first_session),
            json!({ "password": "wrong password here", "code": recovery[2] }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("invalid_credentials"))
    );
    let (status, body) = s
        .post(
            "/api/auth/mfa/disable",
            Some(&first_session),
            json!({ "password": PW, "code": "123456" }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("invalid_code"))
    );
    let (status, _) = s
        .post(
            "/api/auth/mfa/disable",
            Some(&first_session),
            json!({ "password": PW }),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .post(
            "/api/auth/mfa/disable",
            Some(&first_session),
            json!({ "password": PW, "code": recovery[2] }),
        )
        .await;
    assert_eq!(status, 204);
    // Password-only login again; step-up no longer asked.
    let plain = s.login(email, PW).await;
    assert_eq!(create_key(&s, &plain).await.0, 201);

    // Canary: no TOTP secret, recovery code or mfa_token in the server's output.
    s.stop();
    let logs = s.logs();
    assert!(logs.contains("mfa.verified"), "the log was captured");
    assert!(!logs.contains(&secret), "TOTP secret in the log");
    assert!(!logs.to_lowercase().contains(&secret.to_lowercase()));
    for c in &recovery {
        assert!(!logs.contains(c.as_str()), "recovery code in the log");
        assert!(
            !logs.contains(&c.replace('-', "")),
            "recovery code in the log"
        );
    }
    assert!(!logs.contains(&mfa_token), "mfa_token in the log");
    assert!(
        !logs.contains(&mfa_token["mfa_".len()..]),
        "mfa_token in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_code_flood_is_throttled() {
    let (_dir, s) = server();
    let email = "flood@example.com";
    let session = register(&s, email).await;
    let (secret, _) = enable(&s, &session).await;
    // A login waiting for its second step (the password step is slow in debug builds;
    // done before the flood so that the backoff is still running when it is used).
    let t = first_step(&s, email).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let res = s
            .http
            .post(s.url("/api/auth/mfa/verify"))
            .bearer_auth(&session)
            .json(&json!({ "code": "000000" }))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let secs: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            retry_after = Some(secs);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body, json!({ "error": "too_many_attempts" }));
        }
    }
    assert_eq!(&statuses[..3], &[403, 403, 403], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.unwrap() >= 1);
    // The same per-user limit holds on the login's second step, even with the right code.
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": t, "code": totp(&secret, now()) }),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_attempts"))
    );
}

/// A login begun at `POST /api/auth/token` finishes into a token pair, never a session;
/// an access token steps up by `/verify`, which answers a new pair.
#[tokio::test(flavor = "multi_thread")]
async fn token_login_finishes_into_a_token_pair_and_steps_up() {
    let (_dir, s) = server();
    let email = "mfa.tokens@example.com";
    let session = register(&s, email).await;
    // An access token from before the factor (amr ["pwd"]) ...
    let (status, body) = s
        .post(
            "/api/auth/token",
            None,
            json!({ "email": email, "password": PW }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let pwd_only = body["access_token"].as_str().unwrap().to_owned();
    let (secret, recovery) = enable(&s, &session).await;
    // ... is refused by the step-up once the factor is active.
    let (status, body) = create_key(&s, &pwd_only).await;
    assert_eq!((status, body), (403, json!({ "error": "mfa_required" })));

    // Password-only credentials from before the factor: a token pair without `otp`.
    let (status, body) = s
        .post(
            "/api/auth/token",
            None,
            json!({ "email": email, "password": PW }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none());
    let mfa_token = body["mfa_token"].as_str().unwrap().to_owned();
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": mfa_token, "code": totp(&secret, now()) }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body.get("token").is_none(), "not a session answer: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert!(body["refresh_token"].as_str().is_some());
    // The access token carries the second factor: step-up satisfied.
    assert_eq!(create_key(&s, &access).await.0, 201);
    let (status, body) = s.get("/api/auth/me", Some(&access)).await;
    assert_eq!(
        (status, body["auth_method"].as_str()),
        (200, Some("access_token"))
    );

    // A login begun at /api/auth/login finishes into a session (not a pair).
    let t = first_step(&s, email).await;
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": t, "code": recovery[0] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"].as_str().is_some() && body.get("access_token").is_none());

    // Refreshed tokens keep the factor's time (auth_time); a step-up by /verify with an
    // access token answers a new pair.
    let (status, body) = s
        .post(
            "/api/auth/mfa/verify",
            Some(&access),
            json!({ "code": recovery[1] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(fresh, access);
    assert_eq!(create_key(&s, &fresh).await.0, 201);
}
