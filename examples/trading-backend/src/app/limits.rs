//! Request limits: GCRA quotas from the `throttle` crate, per principal, per exchange
//! account and per client address, answered with the fields of the IETF draft
//! "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers-11).
//!
//! | policy | key | routes | where | store down |
//! | --- | --- | --- | --- | --- |
//! | `principal` | the principal's user id | `/api/*` (authenticated), `/ws` | [`per_principal`], inside the auth layer | this instance's memory |
//! | `account` | the account id | `/api/exchange/*` | [`Limits::account`], in the handler once the grant allowed the call | this instance's memory |
//! | `address` | [`throttle::address_key`] of the TCP peer | the unauthenticated routes | [`per_address`] | 503 `rate_limiter_unavailable` |
//!
//! Apply [`per_address`] to a route group with
//! `.route_layer(axum::middleware::from_fn_with_state(state.clone(), limits::per_address))`
//! (the webhook routes take it the same way); [`per_principal`] goes in the same way
//! *before* the group's `AuthLayer` so that it runs after authentication.
//!
//! Answers: every limited response carries `RateLimit-Policy: "<policy>";q=<burst>;w=<period
//! s>` and `RateLimit: "<policy>";r=<remaining>;t=<seconds until the quota is full
//! again>` (several policies as several field lines, one list). A refusal is 429
//! `{"error":"rate_limited"}` with `Retry-After` (whole seconds, rounded up) and
//! `RateLimit: "<policy>";r=0;t=<the same seconds>`.
//!
//! State: Redis (`REDIS_URL`, shared by every instance, one script per decision) or this
//! process's memory. When Redis fails, the store counts as down for [`STORE_RETRY`]: the
//! requests in that time do not wait for it, then the next one tries again (recovery
//! needs no restart). While it is down, authenticated requests are limited by this
//! instance's memory with the same quotas (each instance counts on its own: `N`
//! instances let through up to `N` times the quota, never an unlimited number), so that an
//! outage of the limiter does not stop trading; unauthenticated requests are refused
//! (503, fail closed): they are the ones that guess passwords and tokens.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auth_core::Principal;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, IntoResponseParts, Response, ResponseParts};
use serde_json::json;
use throttle::{Decision, Quota, RateLimiter, Store, Unavailable};

use super::Shared;
use super::error::ApiError;
use super::mfa::{ClientAddr, retry_secs};
use crate::config::RateLimitSettings;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-11 §3).
pub(crate) const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-11 §4).
pub(crate) const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// The 503 code when the limiter cannot decide for an unauthenticated route.
pub(crate) const UNAVAILABLE: &str = "rate_limiter_unavailable";
/// How long a failed shared store is left alone before the next request tries it again.
pub(crate) const STORE_RETRY: Duration = Duration::from_secs(1);
/// The key of requests whose peer address is unknown (no connect info): one shared
/// limit, never none.
const UNKNOWN_ADDRESS: &str = "unknown";

/// Which limit; its name is the policy name in the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Principal,
    Account,
    Address,
    /// The per-strategy signal limit of the copy-trading webhook (module
    /// `copy_trading`, its own limiter `webhook.strategy`): only its refusals are
    /// answered here ([`strategy_refused`]).
    Strategy,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Self::Principal => "principal",
            Self::Account => "account",
            Self::Address => "address",
            Self::Strategy => "strategy",
        }
    }

    /// The limiter's name: its keys' namespace in Redis (`throttle:request.<policy>:<key>`).
    fn limiter(self) -> &'static str {
        match self {
            Self::Principal => "request.principal",
            Self::Account => "request.account",
            Self::Address => "request.address",
            Self::Strategy => "webhook.strategy",
        }
    }

    /// Whether requests under this limit fall back to memory when Redis is down (the
    /// authenticated ones), rather than being refused.
    fn degrades(self) -> bool {
        !matches!(self, Self::Address)
    }
}

/// A refusal: 429 with `Retry-After` and the fields. Built by [`Limits`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    policy: Policy,
    quota: Quota,
    retry_secs: u64,
}

impl Refused {
    /// The answer (`ApiError::RateLimited` calls it).
    pub(crate) fn response(self) -> Response {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({ "error": "rate_limited" })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_secs));
        append_fields(headers, self.policy, self.quota, 0, self.retry_secs);
        response
    }
}

/// The refusal of a copy-trading signal over its strategy's limit (`quota`, refused
/// for `retry_after`): the same 429 as every request limit (`{"error":"rate_limited"}`,
/// `Retry-After`, and a `"strategy"` item with `r=0`), so that a sender reading the
/// fields sees which quota is spent, never only the address item with room left.
pub(crate) fn strategy_refused(quota: Quota, retry_after: Duration) -> ApiError {
    ApiError::RateLimited(Refused {
        policy: Policy::Strategy,
        quota,
        retry_secs: retry_secs(retry_after),
    })
}

/// An allowed request's fields, added to its answer (nothing when limits are off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) struct Allowed(Option<Fields>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    policy: Policy,
    quota: Quota,
    remaining: u32,
    reset_secs: u64,
}

impl Allowed {
    fn add_to(self, headers: &mut HeaderMap) {
        if let Some(f) = self.0 {
            append_fields(headers, f.policy, f.quota, f.remaining, f.reset_secs);
        }
    }
}

impl IntoResponseParts for Allowed {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        self.add_to(res.headers_mut());
        Ok(res)
    }
}

/// Appends one item to each field (appended, not replaced: a response under two limits
/// carries both, as a list split over field lines, RFC 9651 §3.1).
fn append_fields(headers: &mut HeaderMap, policy: Policy, quota: Quota, r: u32, t: u64) {
    let name = policy.name();
    let (q, w) = (quota.burst(), quota.period().as_secs());
    // Policy names, integers and `;`/`=` only: always a valid header value.
    if let Ok(v) = HeaderValue::try_from(format!("\"{name}\";q={q};w={w}")) {
        headers.append(RATELIMIT_POLICY, v);
    }
    if let Ok(v) = HeaderValue::try_from(format!("\"{name}\";r={r};t={t}")) {
        headers.append(RATELIMIT, v);
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

struct Limit {
    policy: Policy,
    quota: Quota,
    limiter: RateLimiter,
    /// This instance's memory, used while the shared store is down (degrading limits
    /// on a shared store only).
    fallback: Option<RateLimiter>,
}

impl Limit {
    fn new(
        store: &Store,
        shared: bool,
        policy: Policy,
        quota: Quota,
    ) -> Result<Self, throttle::ConfigError> {
        let named = |store: &Store| RateLimiter::new(store, policy.limiter(), quota);
        let fallback = if shared && policy.degrades() {
            Some(named(&Store::memory())?)
        } else {
            None
        };
        Ok(Self {
            policy,
            quota,
            limiter: named(store)?,
            fallback,
        })
    }
}

/// The shared store's health: after a failure it is left alone for [`STORE_RETRY`].
struct Breaker {
    epoch: Instant,
    /// Milliseconds after `epoch` before which the store is not asked.
    down_until_ms: AtomicU64,
    /// Whether the last answer was a failure (logs the change, not every request).
    down: AtomicBool,
}

impl Breaker {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_open(&self) -> bool {
        self.down.load(Ordering::Relaxed)
            && self.now_ms() < self.down_until_ms.load(Ordering::Relaxed)
    }

    fn failed(&self, policy: Policy, e: &Unavailable) {
        let retry = u64::try_from(STORE_RETRY.as_millis()).unwrap_or(u64::MAX);
        self.down_until_ms
            .store(self.now_ms().saturating_add(retry), Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            // The message names the store only (never its URL).
            tracing::warn!(
                code = "rate_limit.store_unavailable",
                store = e.store(),
                policy = policy.name(),
                error = %e,
                "request limiter store unavailable: authenticated requests limited per instance, unauthenticated refused (503)"
            );
        }
    }

    fn answered(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(
                code = "rate_limit.store_recovered",
                "request limiter store answers again"
            );
        }
    }
}

struct Enabled {
    principal: Limit,
    account: Limit,
    address: Limit,
    breaker: Breaker,
}

/// The request limits of one instance (off with `STRONGROOM_RATE_LIMITS=0`).
pub(crate) struct Limits(Option<Enabled>);

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Limits(off)"),
            Some(e) => f
                .debug_struct("Limits")
                .field("principal", &e.principal.quota)
                .field("account", &e.account.quota)
                .field("address", &e.address.quota)
                .field("shared", &e.principal.fallback.is_some())
                .finish(),
        }
    }
}

impl Limits {
    /// The limits from the settings, on Redis when `redis_url` is set, else in memory.
    ///
    /// # Errors
    ///
    /// The variable whose setting was refused (the Redis URL by the client).
    pub(crate) fn build(
        settings: Option<&RateLimitSettings>,
        redis_url: Option<&str>,
    ) -> Result<Self, &'static str> {
        let Some(settings) = settings else {
            return Ok(Self(None));
        };
        let (store, shared) = match redis_url {
            Some(url) => (
                Store::Redis(
                    throttle::RedisStore::open(url).map_err(|_| crate::config::ENV_REDIS_URL)?,
                ),
                true,
            ),
            None => (Store::memory(), false),
        };
        Ok(Self(Some(Enabled {
            principal: Limit::new(&store, shared, Policy::Principal, settings.principal)
                .map_err(|_| crate::config::ENV_RATE_LIMIT_PRINCIPAL)?,
            account: Limit::new(&store, shared, Policy::Account, settings.account)
                .map_err(|_| crate::config::ENV_RATE_LIMIT_ACCOUNT)?,
            address: Limit::new(&store, shared, Policy::Address, settings.address)
                .map_err(|_| crate::config::ENV_RATE_LIMIT_ADDRESS)?,
            breaker: Breaker {
                epoch: Instant::now(),
                down_until_ms: AtomicU64::new(0),
                down: AtomicBool::new(false),
            },
        })))
    }

    /// The per-account limit of an exchange call on `account_id` (call it once the
    /// caller is known to have access to the account, so that nobody spends another
    /// user's account quota). `Ok` carries the fields to add to the answer.
    ///
    /// # Errors
    ///
    /// 429 ([`Refused`]), or 503 `rate_limiter_unavailable` when no store could decide.
    pub(crate) async fn account(&self, account_id: &str) -> Result<Allowed, ApiError> {
        match &self.0 {
            None => Ok(Allowed(None)),
            Some(e) => e.decide(&e.account, account_id).await,
        }
    }
}

impl Enabled {
    async fn decide(&self, limit: &Limit, key: &str) -> Result<Allowed, ApiError> {
        let shared = if self.breaker.is_open() {
            None
        } else {
            match limit.limiter.check(key).await {
                Ok(decision) => {
                    self.breaker.answered();
                    Some(decision)
                }
                Err(e) => {
                    if e.store() == "memory" {
                        // The memory store's key bound: nothing to fall back on.
                        tracing::warn!(code = "rate_limit.store_unavailable", store = e.store(), policy = limit.policy.name(), error = %e, "request limiter full");
                    } else {
                        self.breaker.failed(limit.policy, &e);
                    }
                    None
                }
            }
        };
        let decision = match (shared, &limit.fallback) {
            (Some(decision), _) => decision,
            (None, Some(memory)) => memory.check(key).await.map_err(|_| unavailable())?,
            (None, None) => {
                tracing::debug!(
                    code = "rate_limit.refused_unavailable",
                    policy = limit.policy.name(),
                    "request refused: the limiter cannot decide"
                );
                return Err(unavailable());
            }
        };
        match decision {
            Decision::Allow { remaining, reset } => Ok(Allowed(Some(Fields {
                policy: limit.policy,
                quota: limit.quota,
                remaining,
                reset_secs: ceil_secs(reset),
            }))),
            Decision::Deny { retry_after } => {
                tracing::info!(
                    code = "rate_limit.exceeded",
                    policy = limit.policy.name(),
                    "request refused: rate limit"
                );
                Err(ApiError::RateLimited(Refused {
                    policy: limit.policy,
                    quota: limit.quota,
                    retry_secs: retry_secs(retry_after),
                }))
            }
        }
    }
}

fn unavailable() -> ApiError {
    ApiError::Code(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
}

/// Middleware: the per-principal limit, keyed by the authenticated user's id (all of a
/// user's sessions, tokens and API keys share it). Mount it inside the auth layer.
pub(crate) async fn per_principal(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let Some(limits) = &state.limits.0 else {
        return next.run(request).await;
    };
    let decided = match request.extensions().get::<Principal>() {
        Some(principal) => limits.decide(&limits.principal, principal.user_id()).await,
        None => {
            // A wiring mistake (mounted outside the auth layer): fail closed.
            tracing::error!(
                code = "rate_limit.no_principal",
                "per-principal limit without a principal"
            );
            Err(ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR))
        }
    };
    finish(decided, request, next).await
}

/// Middleware: the per-address limit of unauthenticated routes, keyed by the TCP peer
/// address ([`ClientAddr`]; no proxy header is trusted: behind a reverse proxy every
/// client shares the proxy's limit).
pub(crate) async fn per_address(
    State(state): State<Shared>,
    ClientAddr(addr): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let Some(limits) = &state.limits.0 else {
        return next.run(request).await;
    };
    let key = addr.map_or_else(|| UNKNOWN_ADDRESS.to_owned(), throttle::address_key);
    let decided = limits.decide(&limits.address, &key).await;
    finish(decided, request, next).await
}

async fn finish(decided: Result<Allowed, ApiError>, request: Request, next: Next) -> Response {
    match decided {
        Ok(allowed) => {
            let mut response = next.run(request).await;
            allowed.add_to(response.headers_mut());
            response
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(burst: u32, secs: u64) -> Quota {
        Quota::new(burst, Duration::from_secs(secs)).unwrap()
    }

    #[test]
    fn fields_follow_the_draft_syntax_and_append() {
        let mut headers = HeaderMap::new();
        append_fields(&mut headers, Policy::Principal, quota(600, 60), 599, 1);
        append_fields(&mut headers, Policy::Account, quota(120, 60), 0, 3);
        let all = |name| {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            all(RATELIMIT_POLICY),
            ["\"principal\";q=600;w=60", "\"account\";q=120;w=60"]
        );
        assert_eq!(
            all(RATELIMIT),
            ["\"principal\";r=599;t=1", "\"account\";r=0;t=3"]
        );
    }

    #[test]
    fn refusal_is_429_with_retry_after_equal_to_t() {
        let r = Refused {
            policy: Policy::Address,
            quota: quota(60, 60),
            retry_secs: retry_secs(Duration::from_millis(1500)),
        }
        .response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()[RATELIMIT], "\"address\";r=0;t=2");
        assert_eq!(r.headers()[RATELIMIT_POLICY], "\"address\";q=60;w=60");
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(100)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2001)), 3);
    }

    #[tokio::test]
    async fn memory_limits_refuse_after_the_burst_and_keys_are_independent() {
        let settings = RateLimitSettings {
            principal: quota(2, 60),
            account: quota(1, 60),
            address: quota(1, 60),
        };
        let limits = Limits::build(Some(&settings), None).unwrap();
        let e = limits.0.as_ref().unwrap();
        assert!(e.principal.fallback.is_none());
        for left in [1, 0] {
            let Allowed(Some(f)) = e.decide(&e.principal, "alice").await.unwrap() else {
                panic!("no fields")
            };
            assert_eq!(f.remaining, left);
        }
        assert!(matches!(
            e.decide(&e.principal, "alice").await,
            Err(ApiError::RateLimited(Refused {
                policy: Policy::Principal,
                retry_secs: 30,
                ..
            }))
        ));
        assert!(e.decide(&e.principal, "bob").await.is_ok());
        // Each policy has its own namespace: the same key is another limit.
        assert!(limits.account("alice").await.is_ok());
        assert!(limits.account("alice").await.is_err());
        let off = Limits::build(None, None).unwrap();
        assert_eq!(off.account("alice").await, Ok(Allowed(None)));
    }

    #[tokio::test]
    async fn redis_down_degrades_authenticated_limits_and_refuses_the_others() {
        let settings = RateLimitSettings {
            principal: quota(2, 60),
            account: quota(2, 60),
            address: quota(2, 60),
        };
        // Nothing listens on port 1.
        let limits = Limits::build(Some(&settings), Some("redis://127.0.0.1:1/")).unwrap();
        let e = limits.0.as_ref().unwrap();
        assert_eq!(
            e.decide(&e.address, "4:192.0.2.1").await,
            Err(unavailable())
        );
        assert!(e.breaker.is_open());
        // Per-instance memory, same quota: still a limit.
        assert!(e.decide(&e.principal, "alice").await.is_ok());
        assert!(e.decide(&e.principal, "alice").await.is_ok());
        assert!(matches!(
            e.decide(&e.principal, "alice").await,
            Err(ApiError::RateLimited(_))
        ));
        assert!(limits.account("acct").await.is_ok());
        assert_eq!(
            e.decide(&e.address, "4:192.0.2.1").await,
            Err(unavailable())
        );
    }
}
