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
}

impl IssuerConfig {
    /// An issuer whose JWKS is fetched from `jwks_url` (must be `https://`; see
    /// [`danger::allow_plain_http`](super::danger::allow_plain_http) for tests).
    ///
    /// `issuer` is compared byte for byte with the token's `iss`.
    pub fn remote(issuer: impl Into<String>, jwks_url: impl Into<String>) -> IssuerConfigBuilder {
        IssuerConfigBuilder::new(issuer.into(), Source::Remote(jwks_url.into()))
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
    Pinned(String),
}

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

    pub(crate) fn set_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Checks and builds the configuration.
    ///
    /// # Errors
    ///
    /// An [`SsoConfigError`] naming the issuer and the field: empty issuer, no audience,
    /// empty or symmetric algorithm list, a JWKS URL that is not `https://` (unless
    /// allowed through [`danger`](super::danger)), or out-of-range cache settings.
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
        self.cache.check()?;
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
        })
    }
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
