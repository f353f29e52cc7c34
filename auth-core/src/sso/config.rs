//! Configuration: one [`IssuerConfig`] per trusted identity provider, a [`CachePolicy`]
//! for its JWKS, and the verifier-wide [`Limits`].

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::error::SsoConfigError;

/// How an issuer's JWKS is cached and fetched.
///
/// Defaults: TTL from `Cache-Control: max-age` clamped to 5 min ..= 24 h (1 h when the
/// header is absent); at most one refresh per 30 s cooldown; 5 s timeout for the whole
/// fetch; 64 KiB body cap; 100 keys; last good keys served for up to 7 days while the
/// endpoint is down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) default_ttl: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_keys: usize,
    pub(crate) max_stale: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(5 * 60),
            max_ttl: Duration::from_secs(24 * 60 * 60),
            default_ttl: Duration::from_secs(60 * 60),
            cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            max_keys: 100,
            max_stale: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

impl CachePolicy {
    /// Bounds applied to the `Cache-Control: max-age` of the JWKS response.
    #[must_use]
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// TTL used when the response has no usable `max-age` (then clamped to the bounds).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Minimum time between two fetch attempts (successful or not) triggered by unknown
    /// `kid`s or expiry. Bounds what an attacker sending random `kid`s can make us fetch.
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Timeout for one whole fetch (connect, headers and body).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest JWKS body read; reading stops (and the fetch fails) past it.
    #[must_use]
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Most keys accepted in one JWKS.
    #[must_use]
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// How long after the last successful fetch the keys keep serving while every refresh
    /// fails. Past it, tokens get `Unavailable` (503) until a fetch succeeds.
    #[must_use]
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    fn check(&self) -> Result<(), SsoConfigError> {
        let oor = |field| Err(SsoConfigError::OutOfRange { field });
        if self.min_ttl > self.max_ttl {
            return oor("cache.ttl_bounds");
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(120) {
            return oor("cache.timeout");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return oor("cache.max_body_bytes");
        }
        if !(1..=10_000).contains(&self.max_keys) {
            return oor("cache.max_keys");
        }
        Ok(())
    }

    /// The TTL for a response with this `max-age` (if any).
    pub(crate) fn ttl_for(&self, max_age: Option<Duration>) -> Duration {
        max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub(crate) enum KeySource {
    /// Fetched from this URL (https unless plain http was explicitly allowed).
    Remote { url: reqwest::Url, allow_http: bool },
    /// Fetched from the `jwks_uri` of the issuer's OpenID Connect discovery document at
    /// this URL (`{issuer}/.well-known/openid-configuration`).
    Discovery { url: reqwest::Url, allow_http: bool },
    /// A fixed JWKS document given at configuration time (never fetched, never expires).
    Pinned(String),
}

/// One trusted identity provider. Build with [`IssuerConfig::remote`] or
/// [`IssuerConfig::pinned`].
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    pub(crate) issuer: String,
    pub(crate) source: KeySource,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: u64,
    pub(crate) cache: CachePolicy,
    /// Longest accepted token lifetime, in seconds (`exp - iat`, and `exp - now`).
    pub(crate) max_lifetime: u64,
    /// Required header `typ` (without an `application/` prefix, lower case), if any.
    pub(crate) typ: Option<String>,
    /// Accepted `azp` values; empty: `azp` is not checked.
    pub(crate) authorized_parties: Vec<String>,
}

impl IssuerConfig {
    /// An issuer whose JWKS is fetched from `jwks_url` (must be `https://`; see
    /// [`danger::allow_plain_http`](super::danger::allow_plain_http) for tests).
    ///
    /// `issuer` is compared byte for byte with the token's `iss`.
    pub fn remote(issuer: impl Into<String>, jwks_url: impl Into<String>) -> IssuerConfigBuilder {
        IssuerConfigBuilder::new(issuer.into(), Source::Remote(jwks_url.into()))
    }

    /// An issuer whose JWKS URL comes from its OpenID Connect discovery document
    /// (OpenID Connect Discovery 1.0 section 4): `{issuer}/.well-known/openid-configuration`
    /// (one trailing `/` of the issuer removed first), fetched once, before the first key
    /// fetch. The document's `issuer` must equal `issuer` byte for byte (no trailing-slash
    /// or case normalisation) and its `jwks_uri` must be `https://`; otherwise no key is
    /// ever fetched and tokens get `Unavailable` (the refusal code goes to tracing).
    ///
    /// `issuer` must be an `https://` URL without query or fragment (plain `http://` only
    /// through [`danger::allow_plain_http`](super::danger::allow_plain_http), which then
    /// also allows an `http://` `jwks_uri`).
    pub fn discover(issuer: impl Into<String>) -> IssuerConfigBuilder {
        IssuerConfigBuilder::new(issuer.into(), Source::Discovery)
    }

    /// An issuer with a fixed key set (a JWKS JSON document), never fetched: for
    /// air-gapped deployments, tests and fuzzing. Rotation needs a new configuration.
    pub fn pinned(issuer: impl Into<String>, jwks_json: impl Into<String>) -> IssuerConfigBuilder {
        IssuerConfigBuilder::new(issuer.into(), Source::Pinned(jwks_json.into()))
    }

    /// The issuer identifier (`iss`).
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

#[derive(Debug)]
enum Source {
    Remote(String),
    Discovery,
    Pinned(String),
}

/// Default longest token lifetime: 24 hours.
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest [`IssuerConfigBuilder::max_token_lifetime`] accepted without `danger`: 30 days.
const MAX_MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Builder for [`IssuerConfig`].
#[derive(Debug)]
#[must_use]
pub struct IssuerConfigBuilder {
    issuer: String,
    source: Source,
    allow_http: bool,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    cache: CachePolicy,
    max_lifetime: Duration,
    long_lived_allowed: bool,
    typ: Option<String>,
    authorized_parties: Vec<String>,
}

impl IssuerConfigBuilder {
    fn new(issuer: String, source: Source) -> Self {
        Self {
            issuer,
            source,
            allow_http: false,
            audiences: Vec::new(),
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(60),
            cache: CachePolicy::default(),
            max_lifetime: DEFAULT_MAX_LIFETIME,
            long_lived_allowed: false,
            typ: None,
            authorized_parties: Vec::new(),
        }
    }

    /// Adds an accepted audience (at least one is required; `aud` must contain one of
    /// them).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Replaces the algorithm allowlist (default `[RS256]`). `HS*` is refused at
    /// [`build`](Self::build). A token's `alg` must also fit its key's type.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 60 s, at most 10 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// JWKS cache and fetch policy.
    pub fn cache_policy(mut self, policy: CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    /// Longest accepted token lifetime (default 24 h, at most 30 days): a token is
    /// refused (`jwt.lifetime_too_long`) when `exp - iat` exceeds it, or when `exp` is
    /// further than this (plus the leeway) from now, which also covers tokens without
    /// `iat`. Catches an `exp` written in milliseconds (a year around 58 000).
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// Requires the header `typ` to be this media type (RFC 9068 section 4: `at+jwt` for
    /// OAuth 2.0 access tokens). Compared case-insensitively, with or without the
    /// `application/` prefix (RFC 7515 section 4.1.9). Unset (the default): `typ` is not
    /// checked.
    pub fn token_type(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Adds an accepted `azp` (authorized party, OpenID Connect Core 1.0 section 2). Once
    /// one is configured, `azp` is required and must equal one of them exactly. None
    /// configured (the default): `azp` is not checked.
    pub fn authorized_party(mut self, client_id: impl Into<String>) -> Self {
        self.authorized_parties.push(client_id.into());
        self
    }

    pub(crate) fn set_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    pub(crate) fn set_long_lived(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self.long_lived_allowed = true;
        self
    }

    /// Checks and builds the configuration.
    ///
    /// # Errors
    ///
    /// An [`SsoConfigError`] naming the issuer and the field: empty issuer, no audience,
    /// empty or symmetric algorithm list, a JWKS URL that is not `https://` (unless
    /// allowed through [`danger`](super::danger)), an issuer that is not an `https://` URL
    /// without query or fragment when discovery is used, an invalid `typ` or `azp`, or
    /// out-of-range cache settings or token lifetime.
    pub fn build(self) -> Result<IssuerConfig, SsoConfigError> {
        let issuer = self.issuer;
        if issuer.is_empty() {
            return Err(SsoConfigError::EmptyIssuer);
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(SsoConfigError::NoAudience { issuer });
        }
        if self.algorithms.is_empty() {
            return Err(SsoConfigError::NoAlgorithm { issuer });
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|a| a.family() == AlgorithmFamily::Hmac)
        {
            return Err(SsoConfigError::SymmetricAlgorithm {
                issuer,
                alg: format!("{alg:?}"),
            });
        }
        if self.leeway > Duration::from_secs(600) {
            return Err(SsoConfigError::OutOfRange { field: "leeway" });
        }
        if self.max_lifetime < Duration::from_secs(1)
            || (self.max_lifetime > MAX_MAX_LIFETIME && !self.long_lived_allowed)
        {
            return Err(SsoConfigError::OutOfRange {
                field: "max_token_lifetime",
            });
        }
        self.cache.check()?;
        let typ = match self.typ {
            None => None,
            Some(typ) => match normalize_typ(&typ) {
                Some(typ) => Some(typ),
                None => {
                    return Err(SsoConfigError::InvalidSetting {
                        issuer,
                        field: "typ",
                    });
                }
            },
        };
        if self.authorized_parties.iter().any(String::is_empty) {
            return Err(SsoConfigError::InvalidSetting {
                issuer,
                field: "azp",
            });
        }
        let source = match self.source {
            Source::Remote(url) => {
                let Ok(url) = reqwest::Url::parse(&url) else {
                    return Err(SsoConfigError::InvalidJwksUrl { issuer });
                };
                match url.scheme() {
                    "https" => {}
                    "http" if self.allow_http => {}
                    "http" => return Err(SsoConfigError::InsecureJwksUrl { issuer }),
                    _ => return Err(SsoConfigError::InvalidJwksUrl { issuer }),
                }
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(SsoConfigError::InvalidJwksUrl { issuer });
                }
                KeySource::Remote {
                    url,
                    allow_http: self.allow_http,
                }
            }
            Source::Discovery => KeySource::Discovery {
                url: discovery_url(&issuer, self.allow_http)?,
                allow_http: self.allow_http,
            },
            Source::Pinned(json) => KeySource::Pinned(json),
        };
        let mut algorithms = self.algorithms;
        algorithms.dedup();
        Ok(IssuerConfig {
            issuer,
            source,
            audiences: self.audiences,
            algorithms,
            leeway: self.leeway.as_secs(),
            cache: self.cache,
            max_lifetime: self.max_lifetime.as_secs(),
            typ,
            authorized_parties: self.authorized_parties,
        })
    }
}

/// The configured `typ` in the form compared with the header: without an `application/`
/// prefix, ASCII lower case; `None` if empty or not a plausible media type.
fn normalize_typ(typ: &str) -> Option<String> {
    let bare = strip_application(typ);
    let plausible = !bare.is_empty()
        && bare
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'"' && b != b'\\');
    plausible.then(|| bare.to_ascii_lowercase())
}

/// `typ` without a leading `application/` (any case), as RFC 7515 section 4.1.9 lets a
/// producer omit it.
pub(crate) fn strip_application(typ: &str) -> &str {
    const PREFIX: &str = "application/";
    match (typ.get(..PREFIX.len()), typ.get(PREFIX.len()..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(PREFIX) => rest,
        _ => typ,
    }
}

/// OpenID Connect Discovery 1.0 section 4: `{issuer}/.well-known/openid-configuration`,
/// one terminating `/` of the issuer removed first. The issuer must be an https URL
/// (http only when allowed) with a host and without query or fragment (OpenID Connect
/// Core 1.0 section 2, `iss`).
fn discovery_url(issuer: &str, allow_http: bool) -> Result<reqwest::Url, SsoConfigError> {
    let invalid = || SsoConfigError::InvalidIssuerUrl {
        issuer: issuer.to_owned(),
    };
    let parsed = reqwest::Url::parse(issuer).map_err(|_| invalid())?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(SsoConfigError::InsecureIssuerUrl {
                issuer: issuer.to_owned(),
            });
        }
        _ => return Err(invalid()),
    }
    if parsed.host_str().is_none_or(str::is_empty)
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || issuer.contains(['?', '#'])
    {
        return Err(invalid());
    }
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    reqwest::Url::parse(&format!("{base}/.well-known/openid-configuration")).map_err(|_| invalid())
}

/// Verifier-wide caps on untrusted input.
///
/// Defaults: token 8 KiB, `kid` 128 bytes, `sub` 255 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub(crate) max_token_len: usize,
    pub(crate) max_kid_len: usize,
    pub(crate) max_subject_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_token_len: 8 * 1024,
            max_kid_len: 128,
            max_subject_len: 255,
        }
    }
}

impl Limits {
    /// Longest token accepted, checked before any parsing (at most 64 KiB).
    #[must_use]
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Longest `kid` accepted, in the token and in the JWKS.
    #[must_use]
    pub fn max_kid_len(mut self, bytes: usize) -> Self {
        self.max_kid_len = bytes;
        self
    }

    /// Longest `sub` accepted.
    #[must_use]
    pub fn max_subject_len(mut self, bytes: usize) -> Self {
        self.max_subject_len = bytes;
        self
    }

    pub(crate) fn check(&self) -> Result<(), SsoConfigError> {
        if !(64..=64 * 1024).contains(&self.max_token_len) {
            return Err(SsoConfigError::OutOfRange {
                field: "limits.max_token_len",
            });
        }
        if !(1..=1024).contains(&self.max_kid_len) {
            return Err(SsoConfigError::OutOfRange {
                field: "limits.max_kid_len",
            });
        }
        if !(1..=4096).contains(&self.max_subject_len) {
            return Err(SsoConfigError::OutOfRange {
                field: "limits.max_subject_len",
            });
        }
        Ok(())
    }
}
