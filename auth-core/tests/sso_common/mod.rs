//! Shared helpers for the SSO integration tests: real keys (aws-lc-rs), raw token minting
//! (so that hostile tokens can be built byte for byte) and a real JWKS HTTP server on
//! 127.0.0.1 (axum) that counts its requests.
// Test helpers: every failure must panic the calling test; not every test module uses
// every helper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::sso::{BindError, BindingKind, BoundUser, IdentityBinder, VerifiedIdentity};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaEncoding,
};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};

/// The issuers used across the tests.
pub const ISS_A: &str = "https://idp-a.test/realms/main";
pub const ISS_B: &str = "https://idp-b.test";
pub const AUD: &str = "strongroom-api";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    Base64UrlUnpadded::encode_string(bytes.as_ref())
}

pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// An RSA signing key with its `kid`.
pub struct RsaSigner {
    pub kid: String,
    kp: RsaKeyPair,
}

impl RsaSigner {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            kp: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    pub fn n(&self) -> Vec<u8> {
        self.kp
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    pub fn e(&self) -> Vec<u8> {
        self.kp
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    /// The public JWK (with `use: sig` and `alg: RS256`).
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
               "n": b64(self.n()), "e": b64(self.e())})
    }

    /// The public JWK without `alg` (so any RSA algorithm fits it).
    pub fn jwk_without_alg(&self) -> Value {
        json!({"kty": "RSA", "kid": self.kid, "n": b64(self.n()), "e": b64(self.e())})
    }

    /// The public key as X.509 SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> Vec<u8> {
        use aws_lc_rs::encoding::AsDer;
        self.kp.public_key().as_der().unwrap().as_ref().to_vec()
    }

    pub fn sign_with(&self, enc: &'static dyn RsaEncoding, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.kp.public_modulus_len()];
        self.kp
            .sign(enc, &SystemRandom::new(), msg, &mut sig)
            .unwrap();
        sig
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.sign_with(&RSA_PKCS1_SHA256, msg)
    }

    /// An RS256 token with `{"alg":"RS256","kid":<kid>}` and these claims.
    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        mint(&header.to_string(), &claims.to_string(), |m| self.sign(m))
    }
}

/// A P-256 ECDSA signing key with its `kid`.
pub struct EcSigner {
    pub kid: String,
    kp: EcdsaKeyPair,
}

impl EcSigner {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            kp: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let point = self.kp.public_key().as_ref();
        assert_eq!(point.len(), 65);
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
               "x": b64(&point[1..33]), "y": b64(&point[33..])})
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.kp
            .sign(&SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    pub fn token(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid});
        mint(&header.to_string(), &claims.to_string(), |m| self.sign(m))
    }
}

/// Builds `b64(header).b64(payload).b64(sign(signing input))` from raw JSON text.
pub fn mint(header_json: &str, payload_json: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header_json), b64(payload_json));
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(sig))
}

/// Valid claims for `iss`: sub, aud, exp in an hour, iat now.
pub fn claims(iss: &str) -> Value {
    json!({"iss": iss, "sub": "user-123", "aud": AUD, "exp": now() + 3600, "iat": now(),
           "email": "alice@example.com", "email_verified": true})
}

pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// What the JWKS endpoint answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with this body and optional `Cache-Control`.
    Json {
        body: String,
        cache_control: Option<String>,
    },
    /// This status, empty body.
    Status(u16),
    /// 200 with a body that is not a JWKS.
    Garbage,
    /// 200 with an endless chunked body (no `Content-Length`).
    Endless,
    /// 200 with a body of this many bytes and a `Content-Length`.
    Big(usize),
    /// Never answers (sleeps a minute).
    Hang,
}

#[derive(Debug)]
struct ServerState {
    mode: Mutex<Mode>,
    attacker: Mutex<String>,
    delay: Mutex<Duration>,
    hits: AtomicUsize,
    attacker_hits: AtomicUsize,
    discovery: Mutex<Option<String>>,
    discovery_hits: AtomicUsize,
}

/// A real HTTP server on 127.0.0.1 serving `/jwks` (controlled by [`Mode`]),
/// `/attacker/jwks` (an attacker's key set, which must never be fetched) and `/redirect`
/// (302 to `/jwks`).
#[derive(Clone, Debug)]
pub struct JwksServer {
    pub addr: std::net::SocketAddr,
    state: Arc<ServerState>,
}

impl JwksServer {
    pub async fn start(initial: Mode) -> Self {
        let state = Arc::new(ServerState {
            mode: Mutex::new(initial),
            attacker: Mutex::new(jwks(&[])),
            delay: Mutex::new(Duration::ZERO),
            hits: AtomicUsize::new(0),
            attacker_hits: AtomicUsize::new(0),
            discovery: Mutex::new(None),
            discovery_hits: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/attacker/jwks", get(serve_attacker))
            .route("/redirect", get(redirect))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .route(
                "/realms/main/.well-known/openid-configuration",
                get(serve_discovery),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, state }
    }

    pub async fn serving(keys: &[Value]) -> Self {
        Self::start(Mode::Json {
            body: jwks(keys),
            cache_control: None,
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn set_keys(&self, keys: &[Value]) {
        self.set_mode(Mode::Json {
            body: jwks(keys),
            cache_control: None,
        });
    }

    pub fn set_attacker_keys(&self, keys: &[Value]) {
        *self.state.attacker.lock().unwrap() = jwks(keys);
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Requests to `/jwks` so far.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// `http://127.0.0.1:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `doc` at `/.well-known/openid-configuration` and
    /// `/realms/main/.well-known/openid-configuration` (404 until set).
    pub fn set_discovery(&self, doc: &Value) {
        *self.state.discovery.lock().unwrap() = Some(doc.to_string());
    }

    /// Requests to the discovery document so far.
    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// Requests to `/attacker/jwks` so far.
    pub fn attacker_hits(&self) -> usize {
        self.state.attacker_hits.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(st): State<Arc<ServerState>>) -> Response {
    st.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *st.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mode = st.mode.lock().unwrap().clone();
    match mode {
        Mode::Json {
            body,
            cache_control,
        } => {
            let mut resp = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            if let Some(cc) = cache_control {
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_str(&cc).unwrap());
            }
            resp
        }
        Mode::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Mode::Garbage => "<html>502 Bad Gateway</html>".into_response(),
        Mode::Endless => {
            let chunk = Bytes::from(vec![b' '; 16 * 1024]);
            let stream = futures::stream::repeat_with(move || Ok::<_, Infallible>(chunk.clone()));
            Body::from_stream(stream).into_response()
        }
        Mode::Big(n) => {
            let mut body = String::from("{\"keys\":[],\"pad\":\"");
            body.push_str(&"a".repeat(n));
            body.push_str("\"}");
            body.into_response()
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn serve_discovery(State(st): State<Arc<ServerState>>) -> Response {
    st.discovery_hits.fetch_add(1, Ordering::SeqCst);
    match st.discovery.lock().unwrap().clone() {
        Some(doc) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            doc,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve_attacker(State(st): State<Arc<ServerState>>) -> Response {
    st.attacker_hits.fetch_add(1, Ordering::SeqCst);
    st.attacker.lock().unwrap().clone().into_response()
}

async fn redirect() -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, HeaderValue::from_static("/jwks"))],
    )
        .into_response()
}

/// An in-memory binder keyed by (issuer, subject), for resolver tests.
#[derive(Debug, Default)]
pub struct MemoryBinder {
    pub bound: Mutex<Vec<(String, String, String)>>,
    pub fail_with: Mutex<Option<fn() -> BindError>>,
    pub calls: AtomicUsize,
}

impl MemoryBinder {
    pub fn with(iss: &str, sub: &str, user: &str) -> Self {
        let b = Self::default();
        b.bound
            .lock()
            .unwrap()
            .push((iss.into(), sub.into(), user.into()));
        b
    }
}

#[async_trait::async_trait]
impl IdentityBinder for MemoryBinder {
    async fn bind(&self, identity: &VerifiedIdentity) -> Result<BoundUser, BindError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = *self.fail_with.lock().unwrap() {
            return Err(f());
        }
        let bound = self.bound.lock().unwrap();
        bound
            .iter()
            .find(|(i, s, _)| i == identity.issuer() && s == identity.subject())
            .map(|(_, _, u)| BoundUser::new(u.clone(), BindingKind::Existing))
            .ok_or(BindError::ProvisioningDisabled)
    }
}
