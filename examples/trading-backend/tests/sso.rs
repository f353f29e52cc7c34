//! An SSO JWT as a bearer credential, end to end: a real JWKS server on 127.0.0.1 (plain
//! http through `SSO_DANGER_ALLOW_HTTP=1`), RS256 tokens signed with aws-lc-rs keys, and
//! the real binary answering `GET /api/auth/me`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use common::{Server, command, stderr};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.test/realms/main";
const AUDIENCE: &str = "strongroom-trading";
const KID: &str = "idp-key-1";

/// Unpadded base64url (RFC 4648 §5), as JWS needs.
fn b64(bytes: impl AsRef<[u8]>) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = bytes.as_ref();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[test]
fn b64_matches_rfc_4648_vectors() {
    for (input, expected) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64(input), expected);
    }
    assert_eq!(b64([0xfb, 0xff]), "-_8");
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// An RSA-2048 signing key with its `kid`.
struct Signer {
    kid: &'static str,
    key: RsaKeyPair,
}

impl Signer {
    fn generate(kid: &'static str) -> Self {
        Self {
            kid,
            key: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    /// The public JWK.
    fn jwk(&self) -> Value {
        let public = self.key.public_key();
        json!({
            "kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// A compact RS256 JWS over these claims.
    fn token(&self, claims: &Value) -> String {
        self.token_with(
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// A compact RS256 JWS with this header.
    fn token_with(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", b64(signature))
    }
}

/// Claims of a valid token for `sub`, valid for an hour.
fn claims(sub: &str, email: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub,
        "iat": now(), "exp": now() + 3600,
        "email": email, "email_verified": true,
    })
}

/// A real HTTP server on 127.0.0.1 serving `GET /jwks`; counts its requests.
struct JwksServer {
    url: String,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> Self {
        #[derive(Clone)]
        struct St {
            body: Arc<String>,
            hits: Arc<AtomicUsize>,
        }
        async fn jwks(State(st): State<St>) -> impl IntoResponse {
            st.hits.fetch_add(1, Ordering::SeqCst);
            (
                [(header::CONTENT_TYPE, "application/json")],
                st.body.as_str().to_owned(),
            )
        }
        let hits = Arc::new(AtomicUsize::new(0));
        let state = St {
            body: Arc::new(json!({ "keys": keys }).to_string()),
            hits: hits.clone(),
        };
        let app = axum::Router::new()
            .route("/jwks", axum::routing::get(jwks))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/jwks"),
            hits,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sso_jwt_is_a_bearer_credential() {
    let idp = Signer::generate(KID);
    let jwks = JwksServer::start(vec![idp.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("SSO_ISSUER", ISSUER),
            ("SSO_JWKS_URL", &jwks.url),
            ("SSO_AUDIENCE", AUDIENCE),
            ("SSO_DANGER_ALLOW_HTTP", "1"),
        ],
    );
    assert!(
        server.logs().contains("SSO_DANGER_ALLOW_HTTP=1"),
        "no loud warning: {}",
        server.logs()
    );

    // No credential: 401.
    assert_eq!(server.get("/api/auth/me", None).await.0, 401);

    // A valid token for a subject never seen, with a verified email: the service's binder
    // (auth-core `SsoBinder::new`, auto-provisioning on) creates and binds a user.
    let valid = idp.token(&claims("sso-subject-42", "Trader@Example.com"));
    let (status, me) = server.get("/api/auth/me", Some(&valid)).await;
    assert_eq!(status, 200, "{me}\n{}", server.logs());
    assert_eq!(me["auth_method"], "sso");
    assert_eq!(me["email"], "trader@example.com");
    let user_id = me["user_id"].as_str().unwrap().to_owned();
    assert!(!user_id.is_empty());
    assert!(jwks.hits.load(Ordering::SeqCst) >= 1, "JWKS never fetched");
    // The same identity again is the same user, not a second one.
    let again = idp.token(&claims("sso-subject-42", "trader@example.com"));
    let (status, me) = server.get("/api/auth/me", Some(&again)).await;
    assert_eq!((status, me["user_id"].as_str()), (200, Some(&*user_id)));
    // The provisioned user is a real user: it works on other routes too.
    let (status, keys) = server.get("/api/keys", Some(&valid)).await;
    assert_eq!((status, &keys["keys"]), (200, &json!([])));

    // The same token with a tampered payload (another subject), signature kept: 403.
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    parts[1] = b64(claims("sso-subject-43", "trader@example.com").to_string());
    let tampered = parts.join(".");
    assert_eq!(server.get("/api/auth/me", Some(&tampered)).await.0, 403);
    // A token signed by another key with the issuer's `kid`: 403.
    let forger = Signer::generate(KID);
    let forged = forger.token(&claims("sso-subject-42", "trader@example.com"));
    assert_eq!(server.get("/api/auth/me", Some(&forged)).await.0, 403);
    // ... and with a `kid` of its own that the issuer does not publish: 403.
    let stranger = Signer::generate("not-published");
    let unknown = stranger.token(&claims("sso-subject-42", "trader@example.com"));
    assert_eq!(server.get("/api/auth/me", Some(&unknown)).await.0, 403);
    // An expired token (well past the leeway): 403.
    let mut old = claims("sso-subject-42", "trader@example.com");
    old["iat"] = json!(now() - 7200);
    old["exp"] = json!(now() - 3600);
    assert_eq!(
        server.get("/api/auth/me", Some(&idp.token(&old))).await.0,
        403
    );
    // Another audience or issuer: 403.
    let mut aud = claims("sso-subject-42", "trader@example.com");
    aud["aud"] = json!("someone-else");
    assert_eq!(
        server.get("/api/auth/me", Some(&idp.token(&aud))).await.0,
        403
    );
    let mut iss = claims("sso-subject-42", "trader@example.com");
    iss["iss"] = json!("https://evil.example.test");
    assert_eq!(
        server.get("/api/auth/me", Some(&idp.token(&iss))).await.0,
        403
    );
    // A new subject whose email is not verified is not provisioned: 403.
    let mut unverified = claims("sso-subject-44", "other@example.com");
    unverified["email_verified"] = json!(false);
    assert_eq!(
        server
            .get("/api/auth/me", Some(&idp.token(&unverified)))
            .await
            .0,
        403
    );

    // The valid token still works after all that, and no token reached the log.
    assert_eq!(server.get("/api/auth/me", Some(&valid)).await.0, 200);
    let logs = server.logs();
    for token in [&valid, &tampered, &forged] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token signature was logged");
    }
}

#[test]
fn plain_http_jwks_is_refused_without_the_danger_flag() {
    let dir = tempfile::tempdir().unwrap();
    let sso = [
        ("SSO_ISSUER", ISSUER),
        ("SSO_JWKS_URL", "http://127.0.0.1:9/jwks"),
        ("SSO_AUDIENCE", AUDIENCE),
    ];
    // `sweep-sessions` reads the same configuration and exits: it succeeds if accepted.
    let run = |env: &[(&str, &str)]| {
        let mut cmd = command(dir.path(), &[]);
        cmd.env_remove("SSO_DANGER_ALLOW_HTTP");
        cmd.envs(env.iter().copied());
        cmd.arg("sweep-sessions").output().unwrap()
    };
    let out = run(&sso);
    assert!(!out.status.success(), "plain http JWKS accepted");
    assert!(stderr(&out).contains("SSO_JWKS_URL"), "{}", stderr(&out));
    let mut bad = sso.to_vec();
    bad.push(("SSO_DANGER_ALLOW_HTTP", "true"));
    let out = run(&bad);
    assert!(!out.status.success(), "SSO_DANGER_ALLOW_HTTP=true accepted");
    assert!(
        stderr(&out).contains("SSO_DANGER_ALLOW_HTTP"),
        "{}",
        stderr(&out)
    );
}

/// `SSO_DISCOVERY`, `SSO_MAX_TOKEN_LIFETIME_SECS`, `SSO_TYP` and `SSO_AZP` reach the
/// verifier: the JWKS URL comes from the issuer's discovery document on 127.0.0.1, and
/// each option refuses what it should.
#[tokio::test(flavor = "multi_thread")]
async fn sso_discovery_lifetime_typ_and_azp_from_the_environment() {
    #[derive(Clone)]
    struct St {
        issuer: Arc<String>,
        jwks: Arc<String>,
        hits: Arc<AtomicUsize>,
    }
    async fn discovery(State(st): State<St>) -> impl IntoResponse {
        let doc = json!({"issuer": *st.issuer, "jwks_uri": format!("{}/jwks", st.issuer)});
        (
            [(header::CONTENT_TYPE, "application/json")],
            doc.to_string(),
        )
    }
    async fn jwks(State(st): State<St>) -> impl IntoResponse {
        st.hits.fetch_add(1, Ordering::SeqCst);
        (
            [(header::CONTENT_TYPE, "application/json")],
            st.jwks.as_str().to_owned(),
        )
    }
    let idp = Signer::generate(KID);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let state = St {
        issuer: Arc::new(issuer.clone()),
        jwks: Arc::new(json!({ "keys": [idp.jwk()] }).to_string()),
        hits: hits.clone(),
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(discovery),
        )
        .route("/jwks", axum::routing::get(jwks))
        .with_state(state);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("SSO_ISSUER", &issuer),
            ("SSO_DISCOVERY", "1"),
            ("SSO_AUDIENCE", AUDIENCE),
            ("SSO_MAX_TOKEN_LIFETIME_SECS", "1800"),
            ("SSO_TYP", "at+jwt"),
            ("SSO_AZP", "web,cli"),
            ("SSO_DANGER_ALLOW_HTTP", "1"),
        ],
    );
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": KID});
    let claims = |exp: i64, azp: &str| {
        json!({
            "iss": issuer, "aud": AUDIENCE, "sub": "sso-options-1",
            "iat": now(), "exp": exp, "azp": azp,
            "email": "options@example.com", "email_verified": true,
        })
    };
    let good = idp.token_with(&header, &claims(now() + 1200, "web"));
    let (status, me) = server.get("/api/auth/me", Some(&good)).await;
    assert_eq!(status, 200, "{me}\n{}", server.logs());
    assert!(
        hits.load(Ordering::SeqCst) >= 1,
        "discovered JWKS never fetched"
    );
    // Longer than SSO_MAX_TOKEN_LIFETIME_SECS, or exp in milliseconds: 403.
    for exp in [now() + 3600, (now() + 1200) * 1000] {
        let long = idp.token_with(&header, &claims(exp, "web"));
        assert_eq!(server.get("/api/auth/me", Some(&long)).await.0, 403);
    }
    // typ other than at+jwt: 403.
    let jwt = idp.token(&claims(now() + 1200, "web"));
    assert_eq!(server.get("/api/auth/me", Some(&jwt)).await.0, 403);
    // azp not listed: 403.
    let other = idp.token_with(&header, &claims(now() + 1200, "other"));
    assert_eq!(server.get("/api/auth/me", Some(&other)).await.0, 403);
    assert_eq!(server.get("/api/auth/me", Some(&good)).await.0, 200);
}

/// Account pre-hijacking (hardening A6): with registration open, an attacker registers
/// the victim's email with their own password and keeps a session and an API key. The
/// victim's first SSO sign-in must not adopt that account (403), and the attacker's
/// credentials stay on the attacker's own, unlinked account. An operator-created account
/// is adopted, and the link ends every credential it had.
#[tokio::test(flavor = "multi_thread")]
async fn sso_never_adopts_a_self_registered_account() {
    let idp = Signer::generate(KID);
    let jwks = JwksServer::start(vec![idp.jwk()]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SSO_ISSUER", ISSUER),
        ("SSO_JWKS_URL", jwks.url.as_str()),
        ("SSO_AUDIENCE", AUDIENCE),
        ("SSO_DANGER_ALLOW_HTTP", "1"),
        ("REGISTRATION_OPEN", "true"),
    ];
    let server = Server::start(dir.path(), &env);
    let (status, body) = server
        .post(
            "/api/auth/register",
            None,
            json!({"email": "victim@example.com", "password": "attacker-password-1"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let squatted = body["user_id"].as_str().unwrap().to_owned();
    let attacker = server
        .login("victim@example.com", "attacker-password-1")
        .await;
    let (status, key) = server
        .post("/api/keys", Some(&attacker), json!({"name": "bot"}))
        .await;
    assert_eq!(status, 201, "{key}");
    let attacker_key = key["api_key"].as_str().unwrap().to_owned();

    // The victim's first SSO sign-in: new subject, verified email. Refused.
    let victim = idp.token(&claims("victim-subject", "victim@example.com"));
    let (status, _) = server.get("/api/auth/me", Some(&victim)).await;
    assert_eq!(status, 403, "{}", server.logs());
    assert!(server.logs().contains("sso.email_unproven"));
    // The attacker's session and key still reach only the unlinked account.
    let (status, me) = server.get("/api/auth/me", Some(&attacker)).await;
    assert_eq!((status, me["user_id"].as_str()), (200, Some(&*squatted)));
    assert_eq!(me["auth_method"], "session");
    let (status, _) = server.get("/api/keys", Some(&attacker_key)).await;
    assert_eq!(status, 200);

    // An operator-created account is adopted by the first SSO sign-in, and every
    // credential it had before the link ends.
    common::create_user(
        dir.path(),
        &env,
        "staff@example.com",
        Some("staff-password-12"),
        false,
    );
    let before = server.login("staff@example.com", "staff-password-12").await;
    let (status, me) = server.get("/api/auth/me", Some(&before)).await;
    assert_eq!(status, 200);
    let staff = me["user_id"].as_str().unwrap().to_owned();
    let (status, key) = server
        .post("/api/keys", Some(&before), json!({"name": "bot"}))
        .await;
    assert_eq!(status, 201, "{key}");
    let staff_key = key["api_key"].as_str().unwrap().to_owned();
    let sso = idp.token(&claims("staff-subject", "staff@example.com"));
    let (status, me) = server.get("/api/auth/me", Some(&sso)).await;
    assert_eq!((status, me["user_id"].as_str()), (200, Some(&*staff)));
    assert_eq!(server.get("/api/auth/me", Some(&before)).await.0, 403);
    assert_eq!(server.get("/api/keys", Some(&staff_key)).await.0, 403);
}
