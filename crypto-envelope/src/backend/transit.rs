//! The Transit backend: data keys wrapped by the Transit secrets engine of OpenBao or
//! HashiCorp Vault, so the KEK never leaves the Transit server.
//!
//! # Shape
//! - Backend id `transit`. Key id `<mount>/<key name>` (`transit/strongroom`); key
//!   version the Transit key version (`N` of `vault:vN:`).
//! - The Transit key must be an `aes256-gcm96` key created with `derived=true`. Every
//!   wrap and unwrap sends `context` = base64(SHA-256(aad)), where `aad` is the
//!   envelope's associated data (format version, suite, encryption context): Transit
//!   derives a key per context (HKDF-SHA-256 from the key version) and encrypts the data
//!   key with AES-256-GCM under it, so a wrapped key moved to another context does not
//!   decrypt. Why a derived key and not `associated_data`: OpenBao 2.7.2's `rewrap`
//!   refuses ciphertexts bound with `associated_data`, and rotation uses `rewrap`.
//! - Wrapped bytes: the base64 part of the Transit ciphertext, decoded (nonce 12 bytes,
//!   ciphertext 32, tag 16 for `aes256-gcm96`). The `vault:vN:` prefix is rebuilt from
//!   the value's key version, so the header is the one place the version lives.
//! - Rotation: rotate the key in Transit (`POST <mount>/keys/<name>/rotate`); new wraps
//!   use the latest version; [`Envelope::rewrap`](crate::Envelope::rewrap) moves older
//!   values with Transit's `rewrap`, so the data key never leaves the server. Raising the
//!   key's `min_decryption_version` then retires the old versions
//!   ([`BackendError::KeyRetired`]).
//!
//! # Errors
//! - A ciphertext Transit does not authenticate (wrong context, tampered bytes): 400
//!   with `message authentication failed` or `invalid ciphertext length`,
//!   [`BackendError::Refused`]. No other answer refuses a value.
//! - A key or key version the server does not have: [`BackendError::KeyNotFound`]; a
//!   version below `min_decryption_version`: [`BackendError::KeyRetired`].
//! - A transport error, a timeout, 412, 429 or 5xx: retried with backoff up to
//!   `max_attempts` times, then [`BackendError::Unavailable`]. A 403 (token expired or
//!   revoked) is retried once after a fresh AppRole login, then also `Unavailable`: the
//!   service answers 503 and recovers when the token is fixed, and no value is ever
//!   marked as refused because of it.
//! - Any other error answer (a route or namespace not found, a key type that cannot
//!   decrypt, text from a proxy): [`BackendError::Unavailable`], a fault of the
//!   deployment.
//! - A 200 answer that does not parse, or a key that is not a derived `aes256-gcm96` key,
//!   is exportable, allows a plaintext backup, or was deleted and re-created under the
//!   same name (its versions' creation times changed): [`BackendError::Misbehaved`].
//!
//! # Secrets
//! The Vault token, the AppRole secret id and every data key are held in wiping
//! buffers, never printed by `Debug` and never put into errors or logs; the token header
//! is marked sensitive. The HTTP stack's own buffers (the request body holding the
//! base64 data key, hyper's read buffers, TLS records) are not wiped by this crate.
//!
//! API reference: the OpenBao/Vault Transit secrets engine HTTP API (`encrypt`,
//! `decrypt`, `rewrap`, `keys`), the AppRole auth method (`login`).

pub mod response;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::digest::{SHA256, digest};
use base64ct::{Base64, Encoding};
use zeroize::Zeroizing;

use self::response::{Ciphertext, ErrorKind, ResponseError};
use super::{KekBackend, KeyRef, Wrapped};
use crate::context::EncryptionContext;
use crate::error::{BackendError, ConfigError};
use crate::secret::DataKey;

/// The backend id this backend writes into sealed values.
pub const BACKEND_ID: &str = "transit";
/// The server's address, `https://host:port` (plain `http` only to a loopback address).
pub const ENV_ADDR: &str = "VAULT_ADDR";
/// A Vault token.
pub const ENV_TOKEN: &str = "VAULT_TOKEN";
/// A file holding a Vault token (one trailing newline is ignored).
pub const ENV_TOKEN_FILE: &str = "VAULT_TOKEN_FILE";
/// A PEM file of the CA certificates that verify the server; replaces the system roots.
pub const ENV_CACERT: &str = "VAULT_CACERT";
/// The namespace (`X-Vault-Namespace`), if any.
pub const ENV_NAMESPACE: &str = "VAULT_NAMESPACE";
/// The Transit key name.
pub const ENV_KEY: &str = "STRONGROOM_TRANSIT_KEY";
/// The Transit mount path, default `transit`.
pub const ENV_MOUNT: &str = "STRONGROOM_TRANSIT_MOUNT";
/// AppRole role id (instead of a token).
pub const ENV_ROLE_ID: &str = "STRONGROOM_TRANSIT_ROLE_ID";
/// AppRole secret id.
pub const ENV_SECRET_ID: &str = "STRONGROOM_TRANSIT_SECRET_ID";
/// A file holding the AppRole secret id.
pub const ENV_SECRET_ID_FILE: &str = "STRONGROOM_TRANSIT_SECRET_ID_FILE";
/// The AppRole mount path, default `approle`.
pub const ENV_APPROLE_MOUNT: &str = "STRONGROOM_TRANSIT_APPROLE_MOUNT";

/// Default timeout of one attempt (connect, send, read the answer).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default number of attempts of one call.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Largest answer read from the server, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Backoff before the second attempt; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// How the backend authenticates to the server.
enum Auth {
    Token(Zeroizing<String>),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Zeroizing<String>,
    },
}

impl Auth {
    fn kind(&self) -> &'static str {
        match self {
            Self::Token(_) => "token",
            Self::AppRole { .. } => "approle",
        }
    }
}

/// Configures a [`TransitKek`].
pub struct TransitBuilder {
    addr: String,
    mount: String,
    key: String,
    auth: Option<Auth>,
    ca_pem: Option<Vec<u8>>,
    namespace: Option<String>,
    attempt_timeout: Duration,
    max_attempts: u32,
}

impl fmt::Debug for TransitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The address is not checked yet and may (wrongly) hold user info: show its
        // scheme, host and port only.
        let addr = reqwest::Url::parse(&self.addr).map_or_else(
            |_| "<not a URL>".to_owned(),
            |u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            },
        );
        f.debug_struct("TransitBuilder")
            .field("addr", &addr)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .field("auth", &self.auth.as_ref().map(Auth::kind))
            .field("custom_ca", &self.ca_pem.is_some())
            .field("namespace", &self.namespace)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

pub use crate::error::ConnectError;

fn invalid(field: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason,
    }
}

fn read_secret_file(field: &str, path: &str) -> Result<Zeroizing<String>, ConfigError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|_| invalid(field, "the file cannot be read"))?,
    );
    let trimmed = text.strip_suffix('\n').unwrap_or(&text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    Ok(Zeroizing::new(trimmed.to_owned()))
}

fn check_token(field: &str, token: &str) -> Result<(), ConfigError> {
    if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(field, "not 1 to 1024 visible ASCII characters"));
    }
    Ok(())
}

fn check_path_segment(field: &str, segment: &str) -> Result<(), ConfigError> {
    let ok = !segment.is_empty()
        && segment.len() <= 120
        && !segment.starts_with('/')
        && !segment.ends_with('/')
        && !segment.contains("//")
        && segment.split('/').all(|part| part != "." && part != "..")
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            "not 1 to 120 characters of A-Z, a-z, 0-9, '-', '_', '.' and inner '/'",
        ))
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl TransitBuilder {
    /// Starts configuring a backend for the server at `addr` and the Transit key `key`
    /// under the mount `transit`.
    #[must_use]
    pub fn new(addr: &str, key: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            mount: "transit".to_owned(),
            key: key.to_owned(),
            auth: None,
            ca_pem: None,
            namespace: None,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Reads [`ENV_ADDR`], [`ENV_KEY`], [`ENV_MOUNT`], [`ENV_TOKEN`] or
    /// [`ENV_TOKEN_FILE`] (or the AppRole variables [`ENV_ROLE_ID`] with
    /// [`ENV_SECRET_ID`] or [`ENV_SECRET_ID_FILE`], and [`ENV_APPROLE_MOUNT`]),
    /// [`ENV_CACERT`] and [`ENV_NAMESPACE`] from the environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable that is missing, conflicting or unusable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`TransitBuilder::from_env`], reading settings through `lookup`.
    ///
    /// # Errors
    /// As [`TransitBuilder::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Missing {
                    field: name.to_owned(),
                })
        };
        let mut builder = Self::new(&required(ENV_ADDR)?, &required(ENV_KEY)?);
        if let Some(mount) = lookup(ENV_MOUNT) {
            builder = builder.mount(&mount);
        }
        let token = lookup(ENV_TOKEN).map(Zeroizing::new);
        let token_file = lookup(ENV_TOKEN_FILE);
        match (token, token_file, lookup(ENV_ROLE_ID)) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    ENV_TOKEN_FILE,
                    "set only one of it and VAULT_TOKEN",
                ));
            }
            (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
                return Err(invalid(
                    ENV_ROLE_ID,
                    "set either a token or an AppRole, not both",
                ));
            }
            (Some(token), None, None) => {
                check_token(ENV_TOKEN, &token)?;
                builder.auth = Some(Auth::Token(token));
            }
            (None, Some(path), None) => {
                let token = read_secret_file(ENV_TOKEN_FILE, &path)?;
                check_token(ENV_TOKEN_FILE, &token)?;
                builder.auth = Some(Auth::Token(token));
            }
            (None, None, Some(role_id)) => {
                let secret_id = match (lookup(ENV_SECRET_ID), lookup(ENV_SECRET_ID_FILE)) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            ENV_SECRET_ID_FILE,
                            "set only one of it and STRONGROOM_TRANSIT_SECRET_ID",
                        ));
                    }
                    (Some(secret), None) => Zeroizing::new(secret),
                    (None, Some(path)) => read_secret_file(ENV_SECRET_ID_FILE, &path)?,
                    (None, None) => {
                        return Err(ConfigError::Missing {
                            field: ENV_SECRET_ID.to_owned(),
                        });
                    }
                };
                builder.auth = Some(Auth::AppRole {
                    mount: lookup(ENV_APPROLE_MOUNT).unwrap_or_else(|| "approle".to_owned()),
                    role_id,
                    secret_id,
                });
            }
            (None, None, None) => {
                return Err(ConfigError::Missing {
                    field: ENV_TOKEN.to_owned(),
                });
            }
        }
        if let Some(path) = lookup(ENV_CACERT) {
            let pem =
                std::fs::read(&path).map_err(|_| invalid(ENV_CACERT, "the file cannot be read"))?;
            builder.ca_pem = Some(pem);
        }
        if let Some(namespace) = lookup(ENV_NAMESPACE).filter(|n| !n.is_empty()) {
            builder.namespace = Some(namespace);
        }
        Ok(builder)
    }

    /// The Transit mount path. Default `transit`.
    #[must_use]
    pub fn mount(mut self, mount: &str) -> Self {
        mount.clone_into(&mut self.mount);
        self
    }

    /// Authenticates with a Vault token.
    #[must_use]
    pub fn token(mut self, token: &str) -> Self {
        self.auth = Some(Auth::Token(Zeroizing::new(token.to_owned())));
        self
    }

    /// Authenticates with AppRole (`POST auth/<mount>/login`, mount `approle`); the
    /// token it gives is renewed by a fresh login before its lease ends.
    #[must_use]
    pub fn approle(mut self, role_id: &str, secret_id: &str) -> Self {
        self.auth = Some(Auth::AppRole {
            mount: "approle".to_owned(),
            role_id: role_id.to_owned(),
            secret_id: Zeroizing::new(secret_id.to_owned()),
        });
        self
    }

    /// The CA certificates (PEM) that verify the server, instead of the system roots.
    #[must_use]
    pub fn ca_pem(mut self, pem: &[u8]) -> Self {
        self.ca_pem = Some(pem.to_vec());
        self
    }

    /// The namespace sent as `X-Vault-Namespace`.
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Timeout of one attempt. Default [`DEFAULT_ATTEMPT_TIMEOUT`]; 10 ms to 60 s.
    #[must_use]
    pub const fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Attempts per call, 1 to 10. Default [`DEFAULT_MAX_ATTEMPTS`].
    #[must_use]
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Checks the configuration, logs in (AppRole), and reads the key: it must be a
    /// derived `aes256-gcm96` key.
    ///
    /// # Errors
    /// [`ConnectError::Config`] naming the setting at fault;
    /// [`ConnectError::Backend`] when the server cannot be reached
    /// ([`BackendError::Unavailable`]), does not hold the key
    /// ([`BackendError::KeyNotFound`]), or the key is of the wrong kind
    /// ([`BackendError::Misbehaved`]).
    pub async fn connect(self) -> Result<TransitKek, ConnectError> {
        let addr = reqwest::Url::parse(&self.addr)
            .map_err(|_| invalid(ENV_ADDR, "not an absolute URL"))?;
        let plain_ok = addr.scheme() == "http" && is_loopback(&addr);
        if !(addr.scheme() == "https" || plain_ok) {
            return Err(invalid(
                ENV_ADDR,
                "must be https (plain http only to a loopback address)",
            )
            .into());
        }
        if !addr.username().is_empty()
            || addr.password().is_some()
            || addr.query().is_some()
            || addr.fragment().is_some()
            || !(addr.path().is_empty() || addr.path() == "/")
        {
            return Err(invalid(
                ENV_ADDR,
                "must be scheme, host and port only (no user, path or query)",
            )
            .into());
        }
        check_path_segment(ENV_MOUNT, &self.mount)?;
        check_path_segment(ENV_KEY, &self.key)?;
        if self.key.contains('/') {
            return Err(invalid(ENV_KEY, "a key name holds no '/'").into());
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&self.attempt_timeout) {
            return Err(invalid("attempt_timeout", "must be 10 ms to 60 s").into());
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err(invalid("max_attempts", "must be 1 to 10").into());
        }
        let auth = self.auth.ok_or_else(|| ConfigError::Missing {
            field: ENV_TOKEN.to_owned(),
        })?;
        let token = match &auth {
            Auth::Token(token) => {
                check_token(ENV_TOKEN, token)?;
                Some(
                    sensitive_header(token)
                        .ok_or_else(|| invalid(ENV_TOKEN, "not a header value"))?,
                )
            }
            Auth::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                check_path_segment(ENV_APPROLE_MOUNT, mount)?;
                check_token(ENV_ROLE_ID, role_id)?;
                check_token(ENV_SECRET_ID, secret_id)?;
                None
            }
        };
        let namespace = match &self.namespace {
            Some(ns) => {
                check_path_segment(ENV_NAMESPACE, ns)?;
                Some(
                    http::HeaderValue::from_str(ns)
                        .map_err(|_| invalid(ENV_NAMESPACE, "not a header value"))?,
                )
            }
            None => None,
        };
        let mut client = reqwest::Client::builder()
            .timeout(self.attempt_timeout)
            .connect_timeout(self.attempt_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!plain_ok)
            .user_agent(concat!(
                "strongroom-crypto-envelope/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(pem) = &self.ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| invalid(ENV_CACERT, "not a PEM certificate bundle"))?;
            if roots.is_empty() {
                return Err(invalid(ENV_CACERT, "holds no certificate").into());
            }
            client = client.tls_certs_only(roots);
        }
        let client = client
            .build()
            .map_err(|_| invalid(ENV_ADDR, "the HTTP client cannot be built"))?;
        let base = addr.as_str().trim_end_matches('/').to_owned();
        let kek = TransitKek {
            client,
            key_id: format!("{}/{}", self.mount, self.key),
            base,
            mount: self.mount,
            key: self.key,
            auth,
            token: Mutex::new(token.map(|value| CurrentToken {
                value,
                renew_at: None,
                expires_at: None,
            })),
            login: tokio::sync::Mutex::new(()),
            versions: Mutex::new(BTreeMap::new()),
            namespace,
            max_attempts: self.max_attempts,
            attempt_timeout: self.attempt_timeout,
            latest: AtomicU32::new(0),
        };
        kek.refresh().await?;
        Ok(kek)
    }
}

/// The Transit `context` sent with every wrap, unwrap and rewrap: standard base64 (with
/// padding) of SHA-256 over `aad`, the envelope's associated data of the wrap (FORMAT.md,
/// section 6, `transit`).
pub fn transit_context(aad: &[u8]) -> String {
    Base64::encode_string(digest(&SHA256, aad).as_ref())
}

fn sensitive_header(token: &str) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(token).ok()?;
    // Keeps it out of reqwest's and hyper's Debug output and HPACK tables.
    value.set_sensitive(true);
    Some(value)
}

/// A token in use: an AppRole token is renewed after four fifths of its lease
/// (`renew_at`) and used no longer than its lease (`expires_at`); `None`: never.
struct CurrentToken {
    value: http::HeaderValue,
    renew_at: Option<Instant>,
    expires_at: Option<Instant>,
}

/// The longest lease taken from a login answer: a year (a larger one, up to `u64::MAX`
/// seconds, is the server's to give but must not overflow the clock arithmetic).
const MAX_LEASE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A key-encryption backend on a Transit key of OpenBao or Vault. See the module
/// documentation for the shapes and errors.
pub struct TransitKek {
    client: reqwest::Client,
    base: String,
    mount: String,
    key: String,
    key_id: String,
    auth: Auth,
    token: Mutex<Option<CurrentToken>>,
    /// Held while logging in, so that concurrent calls wait for one login.
    login: tokio::sync::Mutex<()>,
    /// The key's versions and their creation times, as first read.
    versions: Mutex<BTreeMap<u32, i64>>,
    namespace: Option<http::HeaderValue>,
    max_attempts: u32,
    attempt_timeout: Duration,
    /// The key's latest version as last seen (read at connect, raised by every wrap).
    latest: AtomicU32,
}

impl fmt::Debug for TransitKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransitKek")
            .field("addr", &self.base)
            .field("key_id", &self.key_id)
            .field("latest_version", &self.latest.load(Ordering::Relaxed))
            .field("auth", &self.auth.kind())
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .finish_non_exhaustive()
    }
}

/// `POST auth/<mount>/login`, borrowing the secret id (no unwiped copy).
#[derive(serde::Serialize)]
struct LoginRequest<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

/// `POST <mount>/encrypt/<key>`, borrowing the base64 data key (no unwiped copy).
#[derive(serde::Serialize)]
struct EncryptRequest<'a> {
    plaintext: &'a str,
    context: &'a str,
}

/// `POST <mount>/decrypt/<key>` and `<mount>/rewrap/<key>`.
#[derive(serde::Serialize)]
struct CiphertextRequest<'a> {
    ciphertext: &'a str,
    context: &'a str,
}

/// An answer read in full: status and body (wiped on drop).
struct Answer {
    status: u16,
    body: Zeroizing<Vec<u8>>,
}

impl TransitKek {
    /// Starts configuring a backend; see [`TransitBuilder`].
    #[must_use]
    pub fn builder(addr: &str, key: &str) -> TransitBuilder {
        TransitBuilder::new(addr, key)
    }

    /// The key id written into sealed values: `<mount>/<key name>`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Reads the key again from the server, to learn a rotation made there since (a
    /// re-wrap run calls it first, so that "current" means the latest version).
    ///
    /// # Errors
    /// [`BackendError::Unavailable`] on an outage; [`BackendError::KeyNotFound`] when
    /// the key is gone; [`BackendError::Misbehaved`] when it is not a derived
    /// `aes256-gcm96` key.
    pub async fn refresh(&self) -> Result<(), BackendError> {
        let path = format!("/v1/{}/keys/{}", self.mount, self.key);
        let answer = self.call(reqwest::Method::GET, &path, None).await?;
        match answer.status {
            200 => {}
            // A key that does not exist: 404 with no message (a missing mount or namespace
            // says so, and is a fault of the deployment).
            404 if answer.body.trim_ascii() == br#"{"errors":[]}"#.as_slice() => {
                return Err(self.not_found(1));
            }
            status => return Err(self.unexpected(status)),
        }
        let info = response::parse_key_info(&answer.body)
            .map_err(|_| self.misbehaved("malformed key answer"))?;
        if info.key_type != "aes256-gcm96" || !info.derived {
            return Err(self.misbehaved("the Transit key is not a derived aes256-gcm96 key"));
        }
        if info.exportable || info.allow_plaintext_backup {
            return Err(self.misbehaved(
                "the Transit key is exportable or allows a plaintext backup: it can leave the server",
            ));
        }
        {
            let mut known = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
            let recreated = info.latest_version < self.latest.load(Ordering::Relaxed)
                || info
                    .versions
                    .iter()
                    .any(|(v, created)| known.get(v).is_some_and(|k| k != created));
            if recreated {
                return Err(self
                    .misbehaved("the Transit key was deleted and re-created under the same name"));
            }
            known.extend(info.versions);
        }
        self.latest
            .fetch_max(info.latest_version, Ordering::Relaxed);
        Ok(())
    }

    fn unavailable(&self, reason: &str) -> BackendError {
        BackendError::Unavailable {
            backend: BACKEND_ID.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn misbehaved(&self, reason: &'static str) -> BackendError {
        BackendError::Misbehaved {
            backend: BACKEND_ID.to_owned(),
            reason,
        }
    }

    fn not_found(&self, version: u32) -> BackendError {
        BackendError::KeyNotFound {
            key: KeyRef::new(self.key_id.clone(), version),
        }
    }

    /// The token held, if it is not yet due for renewal (`fresh`) or not yet expired.
    fn held_token(&self, fresh: bool) -> Option<http::HeaderValue> {
        let guard = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        let token = guard.as_ref()?;
        let until = if fresh {
            token.renew_at
        } else {
            token.expires_at
        };
        until
            .is_none_or(|at| Instant::now() < at)
            .then(|| token.value.clone())
    }

    /// The token to send, logging in first (AppRole) when there is none or it is due.
    /// One login at a time; if a renewal fails, the old token serves until it expires.
    async fn current_token(&self) -> Result<http::HeaderValue, BackendError> {
        if let Some(value) = self.held_token(true) {
            return Ok(value);
        }
        let _login = self.login.lock().await;
        // Another call may have logged in while this one waited.
        if let Some(value) = self.held_token(true) {
            return Ok(value);
        }
        match self.login().await {
            Ok(value) => Ok(value),
            Err(e) => self.held_token(false).ok_or(e),
        }
    }

    /// An AppRole login (`POST auth/<mount>/login`).
    async fn login(&self) -> Result<http::HeaderValue, BackendError> {
        let Auth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.auth
        else {
            // A static token is never dropped; reaching here means it was.
            return Err(self.unavailable("no token"));
        };
        let body = Zeroizing::new(
            serde_json::to_vec(&LoginRequest {
                role_id,
                secret_id: secret_id.as_str(),
            })
            .map_err(|_| self.unavailable("login request cannot be encoded"))?,
        );
        let url = format!("{}/v1/auth/{mount}/login", self.base);
        let answer = self
            .send_once(reqwest::Method::POST, &url, None, Some(&body))
            .await?;
        if answer.status != 200 {
            return Err(self.unavailable("AppRole login refused"));
        }
        let login = response::parse_login(&answer.body)
            .map_err(|_| self.unavailable("malformed AppRole login answer"))?;
        let value = sensitive_header(&login.token)
            .ok_or_else(|| self.unavailable("malformed AppRole token"))?;
        let now = Instant::now();
        let lease = Duration::from_secs(login.lease_seconds).min(MAX_LEASE);
        let (renew_at, expires_at) = if lease.is_zero() {
            (None, None)
        } else {
            (now.checked_add(lease / 5 * 4), now.checked_add(lease))
        };
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(CurrentToken {
            value: value.clone(),
            renew_at,
            expires_at,
        });
        Ok(value)
    }

    fn forget_token(&self) {
        if matches!(self.auth, Auth::AppRole { .. }) {
            *self.token.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// One request, one attempt.
    async fn send_once(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&http::HeaderValue>,
        body: Option<&[u8]>,
    ) -> Result<Answer, BackendError> {
        let mut request = self
            .client
            .request(method, url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.clone());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.clone());
        }
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let mut answer = request.send().await.map_err(|e| {
            tracing::warn!(
                code = "envelope.transit.transport",
                timeout = e.is_timeout(),
                connect = e.is_connect(),
                "Transit request failed"
            );
            self.unavailable(if e.is_timeout() {
                "timed out"
            } else {
                "cannot reach the server"
            })
        })?;
        let status = answer.status().as_u16();
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|_| self.unavailable("answer cut short"))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(self.misbehaved("answer too large"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }

    /// A call with bounded retries: transport errors, timeouts, 412, 429 and 5xx are
    /// retried with doubling backoff; a 403 is retried once after a fresh login.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, BackendError> {
        let url = format!("{}{path}", self.base);
        let mut backoff = FIRST_BACKOFF;
        let mut relogged = false;
        let mut last = self.unavailable("no attempt made");
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let token = match self.current_token().await {
                Ok(token) => token,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match self
                .send_once(method.clone(), &url, Some(&token), body)
                .await
            {
                Ok(answer) => match answer.status {
                    403 => {
                        tracing::warn!(
                            code = "envelope.transit.forbidden",
                            "Transit refused the token"
                        );
                        last = self.unavailable("permission denied (token)");
                        if matches!(self.auth, Auth::AppRole { .. }) && !relogged {
                            relogged = true;
                            self.forget_token();
                            continue;
                        }
                        return Err(last);
                    }
                    412 | 429 | 500..=599 => {
                        tracing::warn!(
                            code = "envelope.transit.status",
                            status = answer.status,
                            "Transit answered with a transient status"
                        );
                        last = self.unavailable(if answer.status == 503 {
                            "server sealed or in standby"
                        } else {
                            "transient server error"
                        });
                    }
                    _ => return Ok(answer),
                },
                Err(e @ BackendError::Unavailable { .. }) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Sends a value's wrapped key to `operation` (`decrypt` or `rewrap`) with its
    /// context, after checking that it names this backend's key.
    async fn post_ciphertext(
        &self,
        operation: &str,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Result<Answer, BackendError> {
        if key.id != self.key_id || key.version == 0 {
            return Err(BackendError::KeyNotFound {
                key: key.borrowed().into_owned(),
            });
        }
        let body = serde_json::to_vec(&CiphertextRequest {
            ciphertext: &Ciphertext::encode(key.version, wrapped),
            context: &transit_context(aad),
        })
        .map_err(|_| self.misbehaved("request cannot be encoded"))?;
        let path = format!("/v1/{}/{operation}/{}", self.mount, self.key);
        self.call(reqwest::Method::POST, &path, Some(&body)).await
    }

    /// Maps a 4xx answer to decrypt or rewrap a value under `key`.
    fn refusal(&self, key: &KeyRef<'_>, answer: &Answer) -> BackendError {
        let key = || key.borrowed().into_owned();
        match (answer.status, response::classify_error(&answer.body)) {
            (400 | 404, ErrorKind::KeyNotFound | ErrorKind::VersionUnknown) => {
                BackendError::KeyNotFound { key: key() }
            }
            (400, ErrorKind::VersionRetired) => BackendError::KeyRetired { key: key() },
            (400, ErrorKind::NotAuthentic) => BackendError::Refused,
            // A route or namespace not found, a key that can no longer decrypt, a proxy's
            // answer: a fault of the deployment, never a verdict on the value.
            (status, _) => self.unexpected(status),
        }
    }

    fn unexpected(&self, status: u16) -> BackendError {
        tracing::warn!(
            code = "envelope.transit.unexpected",
            status,
            "Transit answered with an error this backend does not recognise"
        );
        self.unavailable("unexpected Transit answer")
    }

    fn wrapped(&self, parsed: Result<Ciphertext, ResponseError>) -> Result<Wrapped, BackendError> {
        let parsed = parsed.map_err(|_| self.misbehaved("malformed encrypt answer"))?;
        self.latest.fetch_max(parsed.version, Ordering::Relaxed);
        Ok(Wrapped {
            key: KeyRef::new(self.key_id.clone(), parsed.version),
            bytes: parsed.bytes,
        })
    }
}

#[async_trait]
impl KekBackend for TransitKek {
    fn id(&self) -> &str {
        BACKEND_ID
    }

    fn primary_key(&self) -> KeyRef<'_> {
        KeyRef::new(self.key_id.as_str(), self.latest.load(Ordering::Relaxed))
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        let plaintext = Zeroizing::new(Base64::encode_string(dek.expose_secret()));
        let body = Zeroizing::new(
            serde_json::to_vec(&EncryptRequest {
                plaintext: plaintext.as_str(),
                context: &transit_context(aad),
            })
            .map_err(|_| self.misbehaved("encrypt request cannot be encoded"))?,
        );
        let path = format!("/v1/{}/encrypt/{}", self.mount, self.key);
        let answer = self.call(reqwest::Method::POST, &path, Some(&body)).await?;
        match answer.status {
            200 => self.wrapped(response::parse_encrypt(&answer.body)),
            400 | 404 if response::classify_error(&answer.body) == ErrorKind::KeyNotFound => {
                Err(self.not_found(self.latest.load(Ordering::Relaxed)))
            }
            status => Err(self.unexpected(status)),
        }
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        let answer = self.post_ciphertext("decrypt", key, wrapped, aad).await?;
        match answer.status {
            200 => response::parse_decrypt(&answer.body).map_err(|e| match e {
                // Decrypted, but not to a data key: not one of ours.
                ResponseError::Malformed { field: "plaintext" } => BackendError::Refused,
                _ => self.misbehaved("malformed decrypt answer"),
            }),
            _ => Err(self.refusal(key, &answer)),
        }
    }

    async fn rewrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<Option<Wrapped>, BackendError> {
        let answer = self.post_ciphertext("rewrap", key, wrapped, aad).await?;
        match answer.status {
            200 => self
                .wrapped(response::parse_encrypt(&answer.body))
                .map(Some),
            _ => Err(self.refusal(key, &answer)),
        }
    }
}
