//! The per-issuer JWKS cache: fetch, cache, refresh, single flight.
//!
//! * Keys are parsed once per fetch into [`VerifyKey`]s, held in an immutable
//!   [`KeySet`] snapshot behind an `RwLock<Arc<..>>`: the hot path is one read lock, one
//!   hash lookup by `kid` and one `Arc` clone.
//! * A refresh is triggered by expiry (TTL from `Cache-Control: max-age`, clamped) or by an
//!   unknown `kid`. Fetch attempts are spaced by a cooldown, and only one is ever in
//!   flight: concurrent misses wait for it (an async mutex) and then read its result
//!   rather than fetching again (a generation counter tells them it happened).
//! * Expiry does not block requests: the first request to see stale keys spawns one
//!   background refresh and is served from the current keys.
//! * A failed or garbage fetch never replaces good keys; they keep serving for up to
//!   `max_stale` past their expiry. A successful fetch replaces the whole set, so keys
//!   the issuer rotated out are dropped.

use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};

use super::config::{CachePolicy, IssuerConfig, KeySource};
use super::discovery::ProviderMetadata;
use super::error::SsoConfigError;
use super::keys::{KeySet, Sole, VerifyKey, parse_set};

/// What a token asks the cache for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Want<'a> {
    /// The key with this `kid`.
    Kid(&'a str),
    /// The token has no `kid`: the one key that fits this algorithm, if exactly one does.
    Sole(Algorithm),
}

/// The answer of the cache for one `kid` (or one algorithm, for a token without `kid`).
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The issuer's current key with this `kid` (or the only one for the algorithm).
    Found(Arc<VerifyKey>),
    /// The issuer's current key set (fetched successfully) has no such `kid` (or no key
    /// for the algorithm).
    Unknown,
    /// Token without `kid`, and several of the issuer's keys fit its algorithm.
    Ambiguous,
    /// No decision possible: no usable keys, or the `kid` is unknown and the latest fetch
    /// attempt failed.
    Unavailable,
}

/// Where the keys come from.
#[derive(Debug)]
struct Fetcher {
    client: reqwest::Client,
    /// The JWKS URL: configured, or learnt from the discovery document (then set once,
    /// by the first successful discovery).
    url: OnceLock<reqwest::Url>,
    /// `{issuer}/.well-known/openid-configuration`, when the JWKS URL is discovered.
    discovery: Option<reqwest::Url>,
    /// Plain `http://` was allowed through `danger` (for the discovered `jwks_uri` too).
    allow_http: bool,
}

#[derive(Debug)]
struct State {
    keys: Arc<KeySet>,
    /// When the current keys stop being fresh (`None`: pinned, always fresh).
    fresh_until: Option<Instant>,
    /// Whether keys were ever loaded.
    loaded: bool,
    last_attempt: Option<Instant>,
    last_failed: bool,
    /// Incremented by every completed fetch attempt.
    generation: u64,
    /// A background refresh is scheduled or running.
    refreshing: bool,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    fetcher: Option<Fetcher>,
    policy: CachePolicy,
    max_kid_len: usize,
    state: RwLock<State>,
    fetch_lock: tokio::sync::Mutex<()>,
}

/// One issuer's key cache. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub(crate) struct JwksCache {
    inner: Arc<Inner>,
}

impl JwksCache {
    pub(crate) fn new(cfg: &IssuerConfig, max_kid_len: usize) -> Result<Self, SsoConfigError> {
        let (fetcher, keys, loaded) = match &cfg.source {
            KeySource::Pinned(json) => {
                let set = parse_set(
                    json.as_bytes(),
                    &cfg.issuer,
                    cfg.cache.max_keys,
                    max_kid_len,
                )
                .map_err(|_| SsoConfigError::NoUsableKey {
                    issuer: cfg.issuer.clone(),
                })?;
                (None, set, true)
            }
            KeySource::Remote { url, allow_http } => {
                let fetcher = Fetcher::new(cfg, OnceLock::from(url.clone()), None, *allow_http)?;
                (Some(fetcher), KeySet::default(), false)
            }
            KeySource::Discovery { url, allow_http } => {
                let fetcher = Fetcher::new(cfg, OnceLock::new(), Some(url.clone()), *allow_http)?;
                (Some(fetcher), KeySet::default(), false)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: cfg.issuer.clone(),
                fetcher,
                policy: cfg.cache.clone(),
                max_kid_len,
                state: RwLock::new(State {
                    keys: Arc::new(keys),
                    fresh_until: None,
                    loaded,
                    last_attempt: None,
                    last_failed: false,
                    generation: 0,
                    refreshing: false,
                }),
                fetch_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The key for `kid` if the current keys are usable and hold it; never fetches in
    /// line, but schedules a background refresh when the keys are stale.
    pub(crate) fn cached(&self, kid: &str) -> Option<Arc<VerifyKey>> {
        self.cached_with(|keys| keys.get(kid).cloned())
    }

    /// For a token without `kid`: the answer of the current keys if they are usable and
    /// hold a key for `alg` (one, or several); never fetches in line.
    fn cached_sole(&self, alg: Algorithm) -> Option<Lookup> {
        self.cached_with(|keys| match keys.sole(alg) {
            Sole::None => None,
            Sole::One(key) => Some(Lookup::Found(Arc::clone(key))),
            Sole::Several => Some(Lookup::Ambiguous),
        })
    }

    fn cached_with<T>(&self, find: impl FnOnce(&KeySet) -> Option<T>) -> Option<T> {
        if self.inner.fetcher.is_none() {
            return find(&self.inner.read().keys);
        }
        let now = Instant::now();
        let st = self.inner.read();
        if !self.inner.usable(&st, now) {
            return None;
        }
        let key = find(&st.keys)?;
        let wants_refresh = st.fresh_until.is_some_and(|t| now >= t)
            && !st.refreshing
            && !self.inner.in_cooldown(&st, now);
        drop(st);
        if wants_refresh {
            self.spawn_refresh();
        }
        Some(key)
    }

    /// The key for `kid` (or the only key for an algorithm), fetching (once, for all
    /// concurrent callers, at most once per cooldown) when it is not cached.
    pub(crate) async fn key(&self, want: Want<'_>) -> Lookup {
        let hit = match want {
            Want::Kid(kid) => self.cached(kid).map(Lookup::Found),
            Want::Sole(alg) => self.cached_sole(alg),
        };
        if let Some(hit) = hit {
            return hit;
        }
        if self.inner.fetcher.is_none() {
            return Lookup::Unknown;
        }
        let seen = self.inner.read().generation;
        if self.inner.in_cooldown(&self.inner.read(), Instant::now()) {
            return self.inner.verdict(want);
        }
        let _flight = self.inner.fetch_lock.lock().await;
        {
            let st = self.inner.read();
            if st.generation != seen || self.inner.in_cooldown(&st, Instant::now()) {
                drop(st);
                return self.inner.verdict(want);
            }
        }
        self.inner.fetch_and_store().await;
        self.inner.verdict(want)
    }

    /// Fetches now (waiting for any fetch in flight first), ignoring the cooldown. For
    /// warm-up at start. Returns whether usable keys are loaded afterwards.
    pub(crate) async fn refresh_now(&self) -> bool {
        if self.inner.fetcher.is_some() {
            let _flight = self.inner.fetch_lock.lock().await;
            self.inner.fetch_and_store().await;
        }
        let st = self.inner.read();
        self.inner.usable(&st, Instant::now())
    }

    /// Number of keys currently cached.
    pub(crate) fn key_count(&self) -> usize {
        self.inner.read().keys.len()
    }

    fn spawn_refresh(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to refresh in the background: the keys keep serving until
            // `max_stale`, after which the next lookup fetches in line.
            return;
        };
        {
            let mut st = self.inner.write();
            if st.refreshing {
                return;
            }
            st.refreshing = true;
        }
        let inner = Arc::clone(&self.inner);
        handle.spawn(async move {
            let _reset = RefreshingReset(&inner);
            let _flight = inner.fetch_lock.lock().await;
            let stale_and_allowed = {
                let st = inner.read();
                let now = Instant::now();
                st.fresh_until.is_some_and(|t| now >= t) && !inner.in_cooldown(&st, now)
            };
            if stale_and_allowed {
                inner.fetch_and_store().await;
            }
        });
    }
}

/// Clears `refreshing` when the background task ends, however it ends.
struct RefreshingReset<'a>(&'a Inner);

impl Drop for RefreshingReset<'_> {
    fn drop(&mut self) {
        self.0.write().refreshing = false;
    }
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Nothing panics while holding the lock; if it ever did, the state is still a
        // consistent snapshot (every write replaces whole fields).
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keys may serve: pinned, or loaded and not more than `max_stale` past expiry.
    fn usable(&self, st: &State, now: Instant) -> bool {
        if !st.loaded {
            return false;
        }
        match st.fresh_until {
            None => true,
            Some(t) => now < t.checked_add(self.policy.max_stale).unwrap_or(t),
        }
    }

    fn in_cooldown(&self, st: &State, now: Instant) -> bool {
        st.last_attempt
            .is_some_and(|t| now.saturating_duration_since(t) < self.policy.cooldown)
    }

    fn verdict(&self, want: Want<'_>) -> Lookup {
        let st = self.read();
        if !self.usable(&st, Instant::now()) {
            return Lookup::Unavailable;
        }
        let found = match want {
            Want::Kid(kid) => st.keys.get(kid),
            Want::Sole(alg) => match st.keys.sole(alg) {
                Sole::One(key) => Some(key),
                Sole::Several => return Lookup::Ambiguous,
                Sole::None => None,
            },
        };
        match found {
            Some(key) => Lookup::Found(Arc::clone(key)),
            None if st.last_failed => Lookup::Unavailable,
            None => Lookup::Unknown,
        }
    }

    /// One fetch attempt; must be called with `fetch_lock` held.
    async fn fetch_and_store(&self) {
        let Some(fetcher) = &self.fetcher else {
            return;
        };
        let result = fetcher
            .fetch(&self.policy, &self.issuer, self.max_kid_len)
            .await;
        let now = Instant::now();
        let mut st = self.write();
        st.generation = st.generation.wrapping_add(1);
        st.last_attempt = Some(now);
        match result {
            Ok((keys, ttl)) => {
                let count = keys.len();
                st.keys = Arc::new(keys);
                st.fresh_until = Some(now.checked_add(ttl).unwrap_or(now));
                st.loaded = true;
                st.last_failed = false;
                drop(st);
                tracing::info!(
                    issuer = %self.issuer,
                    keys = count,
                    ttl_secs = ttl.as_secs(),
                    "jwks refreshed"
                );
            }
            Err(code) => {
                st.last_failed = true;
                let serving = st.keys.len();
                drop(st);
                tracing::warn!(
                    issuer = %self.issuer,
                    code,
                    serving_keys = serving,
                    "jwks fetch failed; last good keys keep serving"
                );
            }
        }
    }
}

/// Why one GET failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GetError {
    Timeout,
    Transport,
    HttpStatus,
    TooLarge,
}

impl GetError {
    const fn jwks_code(self) -> &'static str {
        match self {
            Self::Timeout => "jwks.timeout",
            Self::Transport => "jwks.transport",
            Self::HttpStatus => "jwks.http_status",
            Self::TooLarge => "jwks.too_large",
        }
    }

    const fn discovery_code(self) -> &'static str {
        match self {
            Self::Timeout => "discovery.timeout",
            Self::Transport => "discovery.transport",
            Self::HttpStatus => "discovery.http_status",
            Self::TooLarge => "discovery.too_large",
        }
    }
}

impl Fetcher {
    fn new(
        cfg: &IssuerConfig,
        url: OnceLock<reqwest::Url>,
        discovery: Option<reqwest::Url>,
        allow_http: bool,
    ) -> Result<Self, SsoConfigError> {
        let client = reqwest::Client::builder()
            .https_only(!allow_http)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.cache.timeout)
            .connect_timeout(cfg.cache.timeout)
            .user_agent(concat!("strongroom-auth-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SsoConfigError::HttpClient)?;
        Ok(Self {
            client,
            url,
            discovery,
            allow_http,
        })
    }

    /// GET the JWKS (discovering its URL first if needed) with the size cap; returns the
    /// parsed keys and their TTL, or a stable failure code.
    async fn fetch(
        &self,
        policy: &CachePolicy,
        issuer: &str,
        max_kid_len: usize,
    ) -> Result<(KeySet, Duration), &'static str> {
        let url = match self.url.get() {
            Some(url) => url.clone(),
            None => self.discover(policy, issuer).await?,
        };
        let (body, max_age) = self
            .get(url, "application/jwk-set+json, application/json", policy)
            .await
            .map_err(GetError::jwks_code)?;
        let keys = parse_set(&body, issuer, policy.max_keys, max_kid_len).map_err(|e| e.code())?;
        Ok((keys, policy.ttl_for(max_age)))
    }

    /// OpenID Connect Discovery 1.0 section 4: GET the provider metadata, check that its
    /// `issuer` is exactly the configured one, take its `jwks_uri` (https unless plain
    /// http was allowed) and keep it for every later fetch.
    async fn discover(
        &self,
        policy: &CachePolicy,
        issuer: &str,
    ) -> Result<reqwest::Url, &'static str> {
        let Some(discovery) = &self.discovery else {
            return Err("discovery.no_url");
        };
        let (body, _) = self
            .get(discovery.clone(), "application/json", policy)
            .await
            .map_err(GetError::discovery_code)?;
        let metadata =
            ProviderMetadata::parse(&body, issuer, self.allow_http).map_err(|e| e.code())?;
        let url = metadata.into_jwks_uri();
        tracing::info!(issuer, jwks_uri = %url, "oidc discovery: jwks_uri learnt");
        Ok(self.url.get_or_init(|| url).clone())
    }

    /// One GET with the body cap; returns the body and the `Cache-Control` max-age.
    async fn get(
        &self,
        url: reqwest::Url,
        accept: &'static str,
        policy: &CachePolicy,
    ) -> Result<(Vec<u8>, Option<Duration>), GetError> {
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                GetError::Timeout
            } else {
                GetError::Transport
            }
        };
        let mut resp = self
            .client
            .get(url)
            .header(ACCEPT, accept)
            .send()
            .await
            .map_err(failed)?;
        if resp.status() != StatusCode::OK {
            return Err(GetError::HttpStatus);
        }
        let cap = policy.max_body_bytes;
        if resp
            .content_length()
            .is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return Err(GetError::TooLarge);
        }
        let max_age = max_age(resp.headers());
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(GetError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// The `max-age` of the `Cache-Control` header(s); `no-store`/`no-cache` count as zero
/// (then clamped up to the minimum TTL).
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            if directive.eq_ignore_ascii_case("no-store")
                || directive.eq_ignore_ascii_case("no-cache")
            {
                return Some(Duration::ZERO);
            }
            if let Some((name, secs)) = directive.split_once('=')
                && name.trim().eq_ignore_ascii_case("max-age")
                && let Ok(secs) = secs.trim().trim_matches('"').parse::<u64>()
            {
                found = Some(Duration::from_secs(secs));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn cc(values: &[&str]) -> Option<Duration> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        max_age(&h)
    }

    #[test]
    fn cache_control_parsing() {
        assert_eq!(cc(&[]), None);
        assert_eq!(cc(&["public, max-age=600"]), Some(Duration::from_secs(600)));
        assert_eq!(cc(&["Max-Age = \"42\""]), Some(Duration::from_secs(42)));
        assert_eq!(cc(&["max-age=600, no-cache"]), Some(Duration::ZERO));
        assert_eq!(cc(&["max-age=abc"]), None);
        assert_eq!(cc(&["private", "max-age=7"]), Some(Duration::from_secs(7)));
    }

    #[test]
    fn ttl_is_clamped() {
        let p = CachePolicy::default();
        assert_eq!(p.ttl_for(None), Duration::from_secs(3600));
        assert_eq!(p.ttl_for(Some(Duration::ZERO)), Duration::from_secs(300));
        assert_eq!(
            p.ttl_for(Some(Duration::from_secs(10 * 86_400))),
            Duration::from_secs(86_400)
        );
    }
}
