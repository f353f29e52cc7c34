//! [`Issuer`]: mints RFC 9068 access tokens, rotates and shares signing keys, publishes
//! them (JWKS, discovery) and verifies its own tokens.

use core::fmt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::keys::{PublicKey, SigningAlgorithm, SigningKey, SigningKeyStore};
use super::wire;
use crate::chain::Refusal;
use crate::secret::{self, RandomError};
use crate::store::StoreError;

/// Default access-token lifetime: 15 minutes.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Longest access-token lifetime the builder accepts: 24 hours.
pub const MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default clock-skew leeway for `exp`, `nbf` and `iat`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default interval at which an instance re-reads the key store: 60 seconds.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// Default least time between two reloads triggered by an unknown `kid`: 5 seconds.
pub const DEFAULT_RELOAD_COOLDOWN: Duration = Duration::from_secs(5);
/// Shortest HS256 secret accepted: 32 bytes (256 bits, RFC 7518 section 3.2).
pub const MIN_HS256_SECRET_LEN: usize = 32;
/// The `kid` of the single HS256 key.
pub const HS256_KID: &str = "hs256";
/// The header `typ` of every access token (RFC 9068 section 2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The private claim carrying the user's session epoch at issue (RFC 7519 section 4.3).
pub const SESSION_EPOCH_CLAIM: &str = "sr_epoch";

/// Refusal: the `kid` is not one of the issuer's keys (after a reload).
pub const ACCESS_TOKEN_UNKNOWN_KID: Refusal = Refusal::new("access_token.unknown_kid");
/// Refusal: the key that signed the token has been retired.
pub const ACCESS_TOKEN_KEY_RETIRED: Refusal = Refusal::new("access_token.key_retired");
/// Refusal: the header `alg` is not the algorithm of the key named by `kid`.
pub const ACCESS_TOKEN_ALG_MISMATCH: Refusal = Refusal::new("access_token.alg_mismatch");
/// Refusal: the header carries `jku`, `jwk`, `x5u`, `x5c`, `crit` or `b64`.
pub const ACCESS_TOKEN_FORBIDDEN_HEADER: Refusal = Refusal::new("access_token.forbidden_header");
/// Refusal: the header `typ` is not `at+jwt`.
pub const ACCESS_TOKEN_WRONG_TYP: Refusal = Refusal::new("access_token.wrong_typ");
/// Refusal: the signature does not verify.
pub const ACCESS_TOKEN_BAD_SIGNATURE: Refusal = Refusal::new("access_token.bad_signature");
/// Refusal: `exp` is past (beyond the leeway).
pub const ACCESS_TOKEN_EXPIRED: Refusal = Refusal::new("access_token.expired");
/// Refusal: `nbf` or `iat` is in the future (beyond the leeway).
pub const ACCESS_TOKEN_NOT_YET_VALID: Refusal = Refusal::new("access_token.not_yet_valid");
/// Refusal: `iss` is not this issuer.
pub const ACCESS_TOKEN_WRONG_ISSUER: Refusal = Refusal::new("access_token.wrong_issuer");
/// Refusal: `aud` is not this issuer's audience.
pub const ACCESS_TOKEN_WRONG_AUDIENCE: Refusal = Refusal::new("access_token.wrong_audience");
/// Refusal: a required claim is absent, has the wrong type, or is repeated.
pub const ACCESS_TOKEN_CLAIMS_MALFORMED: Refusal = Refusal::new("access_token.claims_malformed");
/// Refusal: `exp - iat` is longer than the configured lifetime.
pub const ACCESS_TOKEN_LIFETIME_TOO_LONG: Refusal = Refusal::new("access_token.lifetime_too_long");
/// Refusal: the token is not from this issuer (for [`Issuer::verify`]; the resolver
/// passes such tokens on instead).
pub const ACCESS_TOKEN_NOT_OURS: Refusal = Refusal::new("access_token.not_ours");
/// Refusal: refused by `jsonwebtoken` for a reason without a finer code.
pub const ACCESS_TOKEN_REJECTED: Refusal = Refusal::new("access_token.rejected");
/// Unavailable: the key store could not be read to look up an unknown `kid` (503).
pub const ACCESS_TOKEN_KEYS_UNAVAILABLE: Refusal = Refusal::new("access_token.keys_unavailable");

/// A configuration value was refused. Names the field, never the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenConfigError {
    /// A secret is shorter than the minimum.
    #[error("{field} must be at least {min_bytes} bytes")]
    SecretTooShort {
        /// The configuration field.
        field: &'static str,
        /// Minimum length in bytes.
        min_bytes: usize,
    },
    /// A required value is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The configuration field.
        field: &'static str,
    },
    /// A value is outside its documented range.
    #[error("{field} is out of range")]
    OutOfRange {
        /// The configuration field.
        field: &'static str,
    },
    /// A URL does not parse, is not http(s), has no host, or has a query or fragment.
    #[error("{field} is not a valid URL")]
    InvalidUrl {
        /// The configuration field.
        field: &'static str,
    },
}

/// Errors of [`Issuer`] construction, issuance and rotation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] TokenConfigError),
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator (or key generation) failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// No usable signing key (every stored key failed its checks).
    #[error("no usable signing key")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing the access token failed")]
    Signing,
    /// A request field is empty or malformed (named, never shown).
    #[error("access token request: {field} is invalid")]
    InvalidRequest {
        /// The request field.
        field: &'static str,
    },
    /// Rotation was asked of an HS256 issuer (its one key comes from configuration).
    #[error("an HS256 issuer has no key rotation")]
    RotationUnsupported,
}

/// What to put in an access token. Build with [`AccessTokenRequest::new`].
// Holds no secret: ids, an epoch, method names and times.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessTokenRequest {
    /// The user id (`sub`).
    pub user_id: String,
    /// The user's session epoch the credential behind this token was issued at (the
    /// session's or refresh family's), claim `sr_epoch`.
    pub session_epoch: i64,
    /// Authentication methods (`amr`, RFC 8176): `"pwd"`, `"otp"`.
    pub amr: Vec<String>,
    /// Unix seconds of the last authentication step (`auth_time`); when `amr` holds
    /// `"otp"`, the time of the last second-factor check.
    pub auth_time: i64,
    /// The refresh-token family id (`sid`), if the token came from one.
    pub sid: Option<String>,
    /// Space-separated scopes (`scope`, RFC 9068 section 2.2.3), if any.
    pub scope: Option<String>,
}

impl AccessTokenRequest {
    /// A request for `user_id` at `session_epoch`, authenticated by `amr` at
    /// `auth_time`.
    #[must_use]
    pub fn new(
        user_id: impl Into<String>,
        session_epoch: i64,
        amr: impl IntoIterator<Item = impl Into<String>>,
        auth_time: i64,
    ) -> Self {
        Self {
            user_id: user_id.into(),
            session_epoch,
            amr: amr.into_iter().map(Into::into).collect(),
            auth_time,
            sid: None,
            scope: None,
        }
    }

    /// Sets the refresh-token family id.
    #[must_use]
    pub fn with_sid(mut self, sid: impl Into<String>) -> Self {
        self.sid = Some(sid.into());
        self
    }

    /// Sets the space-separated scopes.
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// The claims of an access token (RFC 9068 section 2.2), as issued and as verified.
// Holds no secret: the signed, public part of a token (the token itself is the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    amr: Vec<String>,
    auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(rename = "sr_epoch")]
    session_epoch: i64,
}

impl AccessTokenClaims {
    /// `iss`.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.iss
    }
    /// `sub`: the user id.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.sub
    }
    /// `aud`.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.aud
    }
    /// `exp`, Unix seconds.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.exp
    }
    /// `iat`, Unix seconds.
    #[must_use]
    pub fn issued_at(&self) -> i64 {
        self.iat
    }
    /// `jti`: 32 hex characters, random.
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// `amr`.
    #[must_use]
    pub fn amr(&self) -> &[String] {
        &self.amr
    }
    /// `auth_time`, Unix seconds.
    #[must_use]
    pub fn auth_time(&self) -> i64 {
        self.auth_time
    }
    /// `sid`: the refresh-token family id, if any.
    #[must_use]
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }
    /// `scope`, if any.
    #[must_use]
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
    /// `client_id`, if the issuer sets one.
    #[must_use]
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }
    /// `sr_epoch`: the user's session epoch at issue.
    #[must_use]
    pub fn session_epoch(&self) -> i64 {
        self.session_epoch
    }
}

/// A freshly issued access token. A secret: wiped on drop, `Debug` prints the `jti`,
/// `kid` and lifetime only; the token comes out only through
/// [`AccessToken::expose_secret`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct AccessToken {
    token: String,
    #[zeroize(skip)]
    jti: String,
    #[zeroize(skip)]
    kid: String,
    #[zeroize(skip)]
    expires_in: u64,
    #[zeroize(skip)]
    expires_at: i64,
}

impl AccessToken {
    /// The compact JWS to hand to the client.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.token
    }
    /// Seconds until expiry (the `expires_in` of an OAuth 2.0 token response, RFC 6749
    /// section 5.1).
    #[must_use]
    pub fn expires_in(&self) -> u64 {
        self.expires_in
    }
    /// Expiry, Unix seconds.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
    /// The token id (`jti`).
    #[must_use]
    pub fn jti(&self) -> &str {
        &self.jti
    }
    /// The `kid` of the signing key.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("jti", &self.jti)
            .field("kid", &self.kid)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why [`Issuer::verify`] did not accept a token: a stable code for logs, and whether
/// the cause was an outage (503) rather than a refusal (401/403). Never holds the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenRefusal {
    refusal: Refusal,
    unavailable: bool,
}

impl TokenRefusal {
    /// The refusal (stable code).
    #[must_use]
    pub const fn refusal(&self) -> Refusal {
        self.refusal
    }
    /// The stable code, e.g. `"access_token.expired"`.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        self.refusal.code()
    }
    /// Whether no decision could be made (key store down): map to 503, never allow.
    #[must_use]
    pub const fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl fmt::Debug for TokenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRefusal")
            .field("code", &self.refusal.code())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unavailable {
            f.write_str("access token could not be verified: key store unavailable")
        } else {
            f.write_str("access token refused")
        }
    }
}

impl std::error::Error for TokenRefusal {}

/// One verification key of the ring.
struct RingKey {
    kid: Box<str>,
    alg: Algorithm,
    decoding: DecodingKey,
    validation: Validation,
    retire_at: Option<i64>,
    /// The public JWK (`None` for the HS256 secret, which is never published).
    jwk: Option<serde_json::Value>,
}

/// The key that signs.
struct Signer {
    kid: Box<str>,
    alg: Algorithm,
    key: EncodingKey,
}

/// Tokens whose signature a ring has verified, at most this many (then the set is
/// emptied and refilled).
const VERIFIED_CAPACITY: usize = 10_000;

/// The keys an instance currently knows.
#[derive(Default)]
struct Ring {
    keys: Vec<RingKey>,
    signer: Option<Signer>,
    /// The claims of tokens whose signature verified under this ring, by the SHA-256 of
    /// the whole token. Only the signature check is remembered: every claim check (expiry
    /// first) runs again on each use. It lives and dies with the ring, so a reload that
    /// drops or retires a key also drops what was verified with it.
    verified: RwLock<HashMap<secret::Digest, AccessTokenClaims>>,
}

impl Ring {
    fn key(&self, kid: &str) -> Option<&RingKey> {
        self.keys.iter().find(|k| &*k.kid == kid)
    }

    fn verified(&self, digest: &secret::Digest) -> Option<AccessTokenClaims> {
        self.verified
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    fn remember(&self, digest: secret::Digest, claims: &AccessTokenClaims) {
        let mut verified = self
            .verified
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(digest, claims.clone());
    }
}

enum Mode {
    Store(Arc<dyn SigningKeyStore>),
    Hs256,
}

struct Inner {
    iss: String,
    aud: String,
    alg: Algorithm,
    signing_alg: SigningAlgorithm,
    lifetime: i64,
    leeway: i64,
    reload_interval: Duration,
    reload_cooldown: Duration,
    jwks_uri: String,
    token_endpoint: Option<String>,
    client_id: Option<String>,
    mode: Mode,
    ring: RwLock<Arc<Ring>>,
    /// Origin of the millisecond counters below.
    origin: Instant,
    /// Milliseconds since `origin` at which the next interval reload is due.
    next_reload_ms: AtomicU64,
    /// When the last reload for an unknown `kid` started.
    last_forced: Mutex<Option<Instant>>,
    /// Single flight for reloads.
    reload_lock: tokio::sync::Mutex<()>,
}

/// What a synchronous check of a bearer against the current key ring says.
#[allow(
    clippy::large_enum_variant,
    reason = "returned by value once per request; boxing the claims would add an allocation"
)]
pub(crate) enum Check {
    /// Not shaped like a token of ours, or a `kid` we do not know with another `iss`.
    NotMine,
    /// A `kid` we do not know, with our `iss`: reload the keys and look again.
    UnknownKid,
    /// Ours and refused.
    Refused(Refusal),
    /// Ours and valid.
    Valid(AccessTokenClaims),
}

/// The token issuer: signs access tokens, rotates keys, publishes JWKS and discovery,
/// and verifies its own tokens. Cheap to clone (shared).
///
/// Build with [`Issuer::builder`].
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

/// Builder for [`Issuer`].
#[derive(Debug)]
#[must_use]
pub struct IssuerBuilder {
    iss: String,
    aud: String,
    alg: SigningAlgorithm,
    lifetime: Duration,
    leeway: Duration,
    reload_interval: Duration,
    reload_cooldown: Duration,
    jwks_uri: Option<String>,
    token_endpoint: Option<String>,
    client_id: Option<String>,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// An absolute http(s) URL with a host and no query or fragment (parsed by `http`, so
/// the `access-token` feature needs no URL or HTTP client crate).
fn check_url(url: &str, field: &'static str) -> Result<(), TokenConfigError> {
    if url.contains(['?', '#']) {
        return Err(TokenConfigError::InvalidUrl { field });
    }
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| TokenConfigError::InvalidUrl { field })?;
    if !matches!(parsed.scheme_str(), Some("https" | "http"))
        || parsed.host().is_none_or(str::is_empty)
    {
        return Err(TokenConfigError::InvalidUrl { field });
    }
    Ok(())
}

impl IssuerBuilder {
    /// The signing algorithm of new keys (default [`SigningAlgorithm::EdDsa`]).
    pub fn algorithm(mut self, alg: SigningAlgorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Access-token lifetime (default 15 min; 1 s to 24 h).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 30 s; at most 5 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How often an instance re-reads the key store to pick up keys another instance
    /// created or retired (default 60 s; at most 1 h). Part of every retiring key's grace
    /// period, so keep it short.
    pub fn reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Least time between two reloads triggered by a token with an unknown `kid` and our
    /// `iss` (default 5 s): bounds the store reads an attacker can cause.
    pub fn reload_cooldown(mut self, cooldown: Duration) -> Self {
        self.reload_cooldown = cooldown;
        self
    }

    /// The `jwks_uri` the discovery document announces (default
    /// `{iss}/.well-known/jwks.json`).
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// The `token_endpoint` the discovery document announces (default: none).
    pub fn token_endpoint(mut self, uri: impl Into<String>) -> Self {
        self.token_endpoint = Some(uri.into());
        self
    }

    /// A `client_id` claim to put in every token (RFC 9068 section 2.2; default: none,
    /// first-party tokens have no OAuth client).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    fn check(&self) -> Result<String, TokenConfigError> {
        if self.iss.is_empty() {
            return Err(TokenConfigError::Empty { field: "iss" });
        }
        check_url(&self.iss, "iss")?;
        if self.aud.is_empty() {
            return Err(TokenConfigError::Empty { field: "aud" });
        }
        if self.lifetime < Duration::from_secs(1) || self.lifetime > MAX_ACCESS_TOKEN_LIFETIME {
            return Err(TokenConfigError::OutOfRange { field: "lifetime" });
        }
        if self.leeway > Duration::from_secs(300) {
            return Err(TokenConfigError::OutOfRange { field: "leeway" });
        }
        if self.reload_interval > Duration::from_secs(3600) {
            return Err(TokenConfigError::OutOfRange {
                field: "reload_interval",
            });
        }
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => uri.clone(),
            None => format!(
                "{}/.well-known/jwks.json",
                self.iss.strip_suffix('/').unwrap_or(&self.iss)
            ),
        };
        check_url(&jwks_uri, "jwks_uri")?;
        if let Some(t) = &self.token_endpoint {
            check_url(t, "token_endpoint")?;
        }
        if self.client_id.as_deref().is_some_and(str::is_empty) {
            return Err(TokenConfigError::Empty { field: "client_id" });
        }
        Ok(jwks_uri)
    }

    fn into_inner(self, jwks_uri: String, mode: Mode, alg: Algorithm, ring: Ring) -> Inner {
        Inner {
            iss: self.iss,
            aud: self.aud,
            alg,
            signing_alg: self.alg,
            lifetime: secs(self.lifetime),
            leeway: secs(self.leeway),
            reload_interval: self.reload_interval,
            reload_cooldown: self.reload_cooldown,
            jwks_uri,
            token_endpoint: self.token_endpoint,
            client_id: self.client_id,
            mode,
            ring: RwLock::new(Arc::new(ring)),
            origin: Instant::now(),
            next_reload_ms: AtomicU64::new(0),
            last_forced: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Builds an asymmetric issuer over `store`: loads the keys, and creates (and
    /// stores) a first key if there is no current key of the configured algorithm.
    ///
    /// # Errors
    ///
    /// [`IssuerError::Config`] naming the field; [`IssuerError::Store`];
    /// [`IssuerError::Random`].
    pub async fn build(self, store: Arc<dyn SigningKeyStore>) -> Result<Issuer, IssuerError> {
        let jwks_uri = self.check()?;
        let alg = self.alg.jwt_algorithm();
        let issuer = Issuer {
            inner: Arc::new(self.into_inner(jwks_uri, Mode::Store(store), alg, Ring::default())),
        };
        issuer.reload().await?;
        if issuer.ring().signer.is_none() {
            issuer.rotate().await?;
        }
        Ok(issuer)
    }

    /// Builds an HS256 issuer for a single service that both issues and verifies:
    /// `secret` (at least 32 bytes, from a CSPRNG) signs and verifies. No key is
    /// published ([`Issuer::jwks`] is empty) and there is no rotation. Asymmetric keys
    /// ([`build`](Self::build)) are the default and the only choice when another service
    /// verifies the tokens.
    ///
    /// # Errors
    ///
    /// [`TokenConfigError::SecretTooShort`] `{ field: "hs256_secret" }` under 32 bytes;
    /// other [`TokenConfigError`]s naming the field.
    pub fn build_hs256(self, secret: &[u8]) -> Result<Issuer, TokenConfigError> {
        if secret.len() < MIN_HS256_SECRET_LEN {
            return Err(TokenConfigError::SecretTooShort {
                field: "hs256_secret",
                min_bytes: MIN_HS256_SECRET_LEN,
            });
        }
        let jwks_uri = self.check()?;
        let validation = validation(Algorithm::HS256, &self.iss, &self.aud, secs(self.leeway));
        let ring = Ring {
            keys: vec![RingKey {
                kid: HS256_KID.into(),
                alg: Algorithm::HS256,
                decoding: DecodingKey::from_secret(secret),
                validation,
                retire_at: None,
                jwk: None,
            }],
            signer: Some(Signer {
                kid: HS256_KID.into(),
                alg: Algorithm::HS256,
                key: EncodingKey::from_secret(secret),
            }),
            verified: RwLock::default(),
        };
        Ok(Issuer {
            inner: Arc::new(self.into_inner(jwks_uri, Mode::Hs256, Algorithm::HS256, ring)),
        })
    }
}

/// The `jsonwebtoken` validation of one key: its algorithm only, `iss`, `aud`, `exp`,
/// `nbf`, the leeway, and the registered claims required.
fn validation(alg: Algorithm, iss: &str, aud: &str, leeway: i64) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = u64::try_from(leeway).unwrap_or(0);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.set_audience(&[aud]);
    v.set_issuer(&[iss]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v
}

impl Issuer {
    /// Starts a builder for tokens with issuer `iss` (an http(s) URL: the discovery
    /// document and JWKS live under it) and audience `aud`.
    pub fn builder(iss: impl Into<String>, aud: impl Into<String>) -> IssuerBuilder {
        IssuerBuilder {
            iss: iss.into(),
            aud: aud.into(),
            alg: SigningAlgorithm::default(),
            lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            leeway: DEFAULT_LEEWAY,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            reload_cooldown: DEFAULT_RELOAD_COOLDOWN,
            jwks_uri: None,
            token_endpoint: None,
            client_id: None,
        }
    }

    /// The issuer identifier (`iss`).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.iss
    }

    /// The audience (`aud`).
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.inner.aud
    }

    /// The access-token lifetime.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.inner.lifetime).unwrap_or(0))
    }

    /// Whether this is an HS256 issuer.
    #[must_use]
    pub fn is_hs256(&self) -> bool {
        matches!(self.inner.mode, Mode::Hs256)
    }

    /// The `kid` of the key that currently signs.
    #[must_use]
    pub fn current_kid(&self) -> Option<String> {
        self.ring().signer.as_ref().map(|s| s.kid.to_string())
    }

    /// The `kid`s this instance currently accepts (current and retiring keys).
    #[must_use]
    pub fn kids(&self) -> Vec<String> {
        let now = secret::now_unix();
        self.ring()
            .keys
            .iter()
            .filter(|k| k.retire_at.is_none_or(|r| r > now))
            .map(|k| k.kid.to_string())
            .collect()
    }

    /// How long a replaced key stays published and accepted after a rotation: the
    /// access-token lifetime, plus the leeway, plus the reload interval (an instance
    /// that has not reloaded yet may still sign with the old key for that long).
    #[must_use]
    pub fn retire_grace(&self) -> Duration {
        let s = self
            .inner
            .lifetime
            .saturating_add(self.inner.leeway)
            .saturating_add(secs(self.inner.reload_interval));
        Duration::from_secs(u64::try_from(s).unwrap_or(0))
    }

    fn ring(&self) -> Arc<Ring> {
        Arc::clone(
            &self
                .inner
                .ring
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether the interval reload is due (always `false` for HS256).
    pub(crate) fn reload_due(&self) -> bool {
        matches!(self.inner.mode, Mode::Store(_))
            && self.elapsed_ms() >= self.inner.next_reload_ms.load(Ordering::Relaxed)
    }

    /// Re-reads the key store now and replaces the key ring. No-op for HS256.
    ///
    /// # Errors
    ///
    /// [`StoreError`]; the previous keys stay in use.
    pub async fn reload(&self) -> Result<(), StoreError> {
        let Mode::Store(store) = &self.inner.mode else {
            return Ok(());
        };
        let _guard = self.inner.reload_lock.lock().await;
        let interval = u64::try_from(self.inner.reload_interval.as_millis()).unwrap_or(u64::MAX);
        self.inner.next_reload_ms.store(
            self.elapsed_ms().saturating_add(interval),
            Ordering::Relaxed,
        );
        let keys = store.signing_keys().await?;
        let ring = self.build_ring(&keys);
        *self
            .inner
            .ring
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// Reloads if the interval has passed (single flight: if another task is reloading,
    /// returns at once). A failure is logged and the current keys stay in use.
    pub async fn reload_if_due(&self) {
        if !self.reload_due() {
            return;
        }
        if let Err(e) = self.reload().await {
            tracing::warn!(code = "token.keys_reload_failed", error = %e, "signing key reload failed");
        }
    }

    /// Reload for a token with an unknown `kid` and our `iss`: `Some(Ok)` when reloaded,
    /// `None` within the cooldown, `Some(Err)` when the store failed.
    async fn reload_for_unknown_kid(&self) -> Option<Result<(), StoreError>> {
        if !matches!(self.inner.mode, Mode::Store(_)) {
            return None;
        }
        {
            let mut last = self
                .inner
                .last_forced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < self.inner.reload_cooldown) {
                return None;
            }
            *last = Some(Instant::now());
        }
        Some(self.reload().await)
    }

    fn build_ring(&self, keys: &[SigningKey]) -> Ring {
        let now = secret::now_unix();
        let mut ring = Ring::default();
        let mut primary: Option<&SigningKey> = None;
        for k in keys {
            if k.retire_at().is_some_and(|r| r <= now) {
                continue;
            }
            let public = PublicKey::from_pkcs8(k.alg(), k.expose_secret());
            let Some(public) = public.filter(|p| p.thumbprint() == k.kid()) else {
                tracing::warn!(
                    code = "token.signing_key_rejected",
                    kid = k.kid(),
                    "stored signing key does not parse or does not match its kid; ignored"
                );
                continue;
            };
            let alg = k.alg().jwt_algorithm();
            ring.keys.push(RingKey {
                kid: k.kid().into(),
                alg,
                decoding: match k.alg() {
                    SigningAlgorithm::EdDsa => DecodingKey::from_ed_der(public.raw()),
                    SigningAlgorithm::Es256 => DecodingKey::from_ec_der(public.raw()),
                },
                validation: validation(alg, &self.inner.iss, &self.inner.aud, self.inner.leeway),
                retire_at: k.retire_at(),
                jwk: Some(public.jwk(k.kid(), k.alg())),
            });
            if k.retire_at().is_none()
                && k.alg() == self.inner.signing_alg
                && primary.is_none_or(|p| (k.created_at(), k.kid()) > (p.created_at(), p.kid()))
            {
                primary = Some(k);
            }
        }
        ring.signer = primary.map(|k| Signer {
            kid: k.kid().into(),
            alg: k.alg().jwt_algorithm(),
            key: match k.alg() {
                SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(k.expose_secret()),
                SigningAlgorithm::Es256 => EncodingKey::from_ec_der(k.expose_secret()),
            },
        });
        ring
    }

    /// Makes a new primary key: generates it, stores it, gives every older current key
    /// a retirement time of now plus [`retire_grace`](Self::retire_grace), deletes keys
    /// whose retirement time has passed, and reloads. Returns the new `kid`.
    ///
    /// Retired keys stay in the JWKS and keep verifying until their retirement time, so
    /// every token they signed expires first. Safe to run on several instances at once:
    /// each retires only keys older than its own new key, so the newest key wins
    /// everywhere.
    ///
    /// # Errors
    ///
    /// [`IssuerError::RotationUnsupported`] for HS256; [`IssuerError::Store`];
    /// [`IssuerError::Random`].
    pub async fn rotate(&self) -> Result<String, IssuerError> {
        let Mode::Store(store) = &self.inner.mode else {
            return Err(IssuerError::RotationUnsupported);
        };
        let now = secret::now_unix();
        // Strictly newer than every key seen, so the new key is the primary even when an
        // older one was made in the same second (ties between concurrent rotations go to
        // the larger kid, on every instance alike).
        let newest = store
            .signing_keys()
            .await?
            .iter()
            .map(SigningKey::created_at)
            .max()
            .unwrap_or(i64::MIN);
        let key = SigningKey::generate(self.inner.signing_alg, now.max(newest.saturating_add(1)))?;
        store.insert_signing_key(&key).await?;
        let retire_at = now.saturating_add(secs(self.retire_grace()));
        for k in store.signing_keys().await? {
            if k.kid() == key.kid() {
                continue;
            }
            if k.retire_at().is_some_and(|r| r <= now) {
                store.delete_signing_key(k.kid()).await?;
            } else if k.retire_at().is_none()
                && (k.created_at(), k.kid()) < (key.created_at(), key.kid())
            {
                store.retire_signing_key(k.kid(), retire_at).await?;
            }
        }
        self.reload().await?;
        tracing::info!(
            code = "token.key_rotated",
            kid = key.kid(),
            retire_at,
            "signing key rotated"
        );
        Ok(key.kid().to_owned())
    }

    /// Issues an access token for `req`, signed by the current key (after a reload if
    /// one is due).
    ///
    /// # Errors
    ///
    /// [`IssuerError::InvalidRequest`] for an empty user id or `amr` entry;
    /// [`IssuerError::NoSigningKey`]; [`IssuerError::Random`]; [`IssuerError::Signing`].
    pub async fn issue(&self, req: &AccessTokenRequest) -> Result<AccessToken, IssuerError> {
        self.reload_if_due().await;
        self.issue_now(req)
    }

    /// [`issue`](Self::issue) without the reload check.
    fn issue_now(&self, req: &AccessTokenRequest) -> Result<AccessToken, IssuerError> {
        if req.user_id.is_empty() || req.user_id.len() > 255 {
            return Err(IssuerError::InvalidRequest { field: "user_id" });
        }
        if req.amr.iter().any(String::is_empty) {
            return Err(IssuerError::InvalidRequest { field: "amr" });
        }
        if req.sid.as_deref().is_some_and(str::is_empty) {
            return Err(IssuerError::InvalidRequest { field: "sid" });
        }
        let ring = self.ring();
        let signer = ring.signer.as_ref().ok_or(IssuerError::NoSigningKey)?;
        let now = secret::now_unix();
        let exp = now.saturating_add(self.inner.lifetime);
        let claims = AccessTokenClaims {
            iss: self.inner.iss.clone(),
            sub: req.user_id.clone(),
            aud: self.inner.aud.clone(),
            exp,
            iat: now,
            nbf: None,
            jti: secret::random_id()?,
            client_id: self.inner.client_id.clone(),
            amr: req.amr.clone(),
            auth_time: req.auth_time,
            sid: req.sid.clone(),
            scope: req.scope.clone(),
            session_epoch: req.session_epoch,
        };
        let mut header = Header::new(signer.alg);
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(signer.kid.to_string());
        let token = jsonwebtoken::encode(&header, &claims, &signer.key)
            .map_err(|_| IssuerError::Signing)?;
        tracing::debug!(
            code = "access_token.issued",
            jti = claims.jti,
            kid = &*signer.kid,
            user_id = claims.sub,
            "access token issued"
        );
        Ok(AccessToken {
            token,
            jti: claims.jti,
            kid: signer.kid.to_string(),
            expires_in: u64::try_from(self.inner.lifetime).unwrap_or(0),
            expires_at: exp,
        })
    }

    /// Checks `token` against the current key ring, without I/O.
    pub(crate) fn check(&self, token: &str) -> Check {
        let Some(seg) = wire::split(token) else {
            return Check::NotMine;
        };
        let mut buf = wire::header_buf();
        let Some(header) = wire::parse_header(seg.header, &mut buf) else {
            return Check::NotMine;
        };
        let Some(kid) = header.kid.as_deref() else {
            return Check::NotMine;
        };
        let ring = self.ring();
        let Some(key) = ring.key(kid) else {
            return if wire::peek_issuer(seg.payload).as_deref() == Some(self.inner.iss.as_str()) {
                Check::UnknownKid
            } else {
                Check::NotMine
            };
        };
        if header.forbidden {
            return Check::Refused(ACCESS_TOKEN_FORBIDDEN_HEADER);
        }
        // The algorithm is pinned to the key: the header may only repeat it.
        if header.alg != key.alg.as_str_name() {
            return Check::Refused(ACCESS_TOKEN_ALG_MISMATCH);
        }
        if !header.typ.as_deref().is_some_and(wire::is_at_jwt) {
            return Check::Refused(ACCESS_TOKEN_WRONG_TYP);
        }
        let now = secret::now_unix();
        if key.retire_at.is_some_and(|r| r <= now) {
            return Check::Refused(ACCESS_TOKEN_KEY_RETIRED);
        }
        // The same bytes verified under this ring before: skip the signature (most of a
        // request's CPU), never the claims.
        let digest = secret::sha256(token.as_bytes());
        if let Some(claims) = ring.verified(&digest) {
            return match self.check_claims(&claims, now) {
                Ok(()) => Check::Valid(claims),
                Err(r) => Check::Refused(r),
            };
        }
        let data = match jsonwebtoken::decode::<AccessTokenClaims>(
            token,
            &key.decoding,
            &key.validation,
        ) {
            Ok(d) => d,
            Err(e) => return Check::Refused(refusal_of(e.kind())),
        };
        if data.header.alg != key.alg || data.header.kid.as_deref() != Some(kid) {
            return Check::Refused(ACCESS_TOKEN_ALG_MISMATCH);
        }
        match self.check_claims(&data.claims, now) {
            Ok(()) => {
                ring.remember(digest, &data.claims);
                Check::Valid(data.claims)
            }
            Err(r) => Check::Refused(r),
        }
    }

    /// Our own claim checks, behind `jsonwebtoken`'s.
    fn check_claims(&self, c: &AccessTokenClaims, now: i64) -> Result<(), Refusal> {
        let leeway = self.inner.leeway;
        if c.iss != self.inner.iss {
            return Err(ACCESS_TOKEN_WRONG_ISSUER);
        }
        if c.aud != self.inner.aud {
            return Err(ACCESS_TOKEN_WRONG_AUDIENCE);
        }
        if now > c.exp.saturating_add(leeway) {
            return Err(ACCESS_TOKEN_EXPIRED);
        }
        if c.iat > now.saturating_add(leeway)
            || c.nbf.is_some_and(|n| n > now.saturating_add(leeway))
        {
            return Err(ACCESS_TOKEN_NOT_YET_VALID);
        }
        if c.exp.saturating_sub(c.iat) > self.inner.lifetime {
            return Err(ACCESS_TOKEN_LIFETIME_TOO_LONG);
        }
        // `auth_time` after `iat` cannot be true: a token claiming a second-factor check
        // from the future would pass every step-up window until then.
        if c.sub.is_empty()
            || c.sub.len() > 255
            || c.jti.is_empty()
            || c.auth_time > c.iat.saturating_add(leeway)
        {
            return Err(ACCESS_TOKEN_CLAIMS_MALFORMED);
        }
        Ok(())
    }

    /// The verification core: the current ring, then one reload (rate limited) for an
    /// unknown `kid` with our `iss`. `None`: not ours.
    pub(crate) async fn verify_inner(
        &self,
        token: &str,
    ) -> Option<Result<AccessTokenClaims, TokenRefusal>> {
        self.reload_if_due().await;
        let mut check = self.check(token);
        if matches!(check, Check::UnknownKid) {
            match self.reload_for_unknown_kid().await {
                Some(Ok(())) => check = self.check(token),
                Some(Err(e)) => {
                    tracing::warn!(code = ACCESS_TOKEN_KEYS_UNAVAILABLE.code(), error = %e, "signing key reload failed");
                    return Some(Err(TokenRefusal {
                        refusal: ACCESS_TOKEN_KEYS_UNAVAILABLE,
                        unavailable: true,
                    }));
                }
                None => {}
            }
        }
        match check {
            Check::NotMine => None,
            Check::UnknownKid => Some(Err(TokenRefusal {
                refusal: ACCESS_TOKEN_UNKNOWN_KID,
                unavailable: false,
            })),
            Check::Refused(refusal) => Some(Err(TokenRefusal {
                refusal,
                unavailable: false,
            })),
            Check::Valid(c) => Some(Ok(c)),
        }
    }

    /// Verifies one of this issuer's access tokens: shape, `kid` (reloading the key
    /// store once, rate limited, for an unknown one), `alg` pinned to the key, `typ`
    /// `at+jwt`, signature, `iss`, `aud`, `exp`/`nbf`/`iat` with the leeway, lifetime and
    /// required claims. Does not check the user's epoch (the resolver does, if asked).
    ///
    /// # Errors
    ///
    /// A [`TokenRefusal`] with a stable code; [`TokenRefusal::is_unavailable`] when the
    /// key store could not be read.
    pub async fn verify(&self, token: &str) -> Result<AccessTokenClaims, TokenRefusal> {
        self.verify_inner(token).await.unwrap_or(Err(TokenRefusal {
            refusal: ACCESS_TOKEN_NOT_OURS,
            unavailable: false,
        }))
    }

    /// The JWKS (RFC 7517 section 5) to serve at `/.well-known/jwks.json`: the public key
    /// of every current and retiring key (`kty`, `crv`, `x`[, `y`], `kid`, `use: sig`,
    /// `alg`). Empty (`{"keys":[]}`) for an HS256 issuer. Call
    /// [`reload_if_due`](Self::reload_if_due) before serving it so that keys another
    /// instance created are published.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        let now = secret::now_unix();
        let keys: Vec<serde_json::Value> = self
            .ring()
            .keys
            .iter()
            .filter(|k| k.retire_at.is_none_or(|r| r > now))
            .filter_map(|k| k.jwk.clone())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// [`jwks`](Self::jwks) as JSON bytes (`Content-Type: application/json`).
    #[must_use]
    pub fn jwks_json(&self) -> Vec<u8> {
        self.jwks().to_string().into_bytes()
    }

    /// The OpenID Connect discovery document (OpenID Connect Discovery 1.0 section 3) to
    /// serve at `{iss}/.well-known/openid-configuration`: `issuer`, `jwks_uri`,
    /// `id_token_signing_alg_values_supported` (the signing algorithm),
    /// `response_types_supported` (`["token"]`), `subject_types_supported`
    /// (`["public"]`), and `token_endpoint` when configured.
    #[must_use]
    pub fn discovery(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "issuer": self.inner.iss,
            "jwks_uri": self.inner.jwks_uri,
            "id_token_signing_alg_values_supported": [self.inner.alg.as_str_name()],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
        });
        if let (Some(t), Some(obj)) = (&self.inner.token_endpoint, doc.as_object_mut()) {
            obj.insert(
                "token_endpoint".to_owned(),
                serde_json::Value::from(t.as_str()),
            );
        }
        doc
    }

    /// [`discovery`](Self::discovery) as JSON bytes.
    #[must_use]
    pub fn discovery_json(&self) -> Vec<u8> {
        self.discovery().to_string().into_bytes()
    }
}

/// The JOSE name of an algorithm.
trait AlgName {
    fn as_str_name(&self) -> &'static str;
}

impl AlgName for Algorithm {
    fn as_str_name(&self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::EdDSA => "EdDSA",
            // Not an algorithm of ours: a name no header can match.
            _ => "\u{0}",
        }
    }
}

fn refusal_of(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::InvalidSignature => ACCESS_TOKEN_BAD_SIGNATURE,
        ErrorKind::ExpiredSignature => ACCESS_TOKEN_EXPIRED,
        ErrorKind::ImmatureSignature => ACCESS_TOKEN_NOT_YET_VALID,
        ErrorKind::InvalidIssuer => ACCESS_TOKEN_WRONG_ISSUER,
        ErrorKind::InvalidAudience => ACCESS_TOKEN_WRONG_AUDIENCE,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => ACCESS_TOKEN_ALG_MISMATCH,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_)
        | ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Utf8(_) => ACCESS_TOKEN_CLAIMS_MALFORMED,
        _ => ACCESS_TOKEN_REJECTED,
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.inner.iss)
            .field("aud", &self.inner.aud)
            .field("alg", &self.inner.alg)
            .field("lifetime", &self.inner.lifetime)
            .field("current_kid", &self.current_kid())
            .finish_non_exhaustive()
    }
}
