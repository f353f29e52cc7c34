//! The HTTP service: shared state, the router and its layers, and `serve`.

mod accounts;
pub(crate) mod audit;
mod auth;
mod body;
mod browser;
mod copy_trading;
mod edge;
mod error;
mod exchange;
mod housekeeping;
mod internal;
mod keys;
mod limits;
mod metrics;
mod mfa;
pub(crate) mod openapi;
mod order;
mod ready;
mod risk;
mod secrets;
mod strategies;
mod tokens;
mod ws;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use auth_core::http::AuthLayer;
use auth_core::scope::{Requires, Scope};
use auth_core::sso::{IssuerConfig, SsoResolver, SsoVerifier, danger};
use auth_core::{
    Accounts, ApiKeys, Chain, InternalSecretResolver, PasswordConfig, PasswordHasher,
    SessionConfig, Sessions, SsoBinder, StaticTokenResolver, UserStore,
};
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post, put};
use cred_cache::CredCache;
use cred_cache::local::LocalSource;
use crypto_envelope::{Envelope, Secrets};
use grant_policy::Policy;
use grant_policy::store::GrantStore;

use crate::accounts::AccountStore;
use crate::config::Config;
use crate::db::Stores;
use crate::exchange::ExchangeAdapter;
use crate::exchange::paper::PaperExchange;
use crate::exchange::simulator::PaperVenue;
use error::ApiError;

/// The user id the `API_TOKEN` authenticates as.
pub(crate) const BOOTSTRAP_USER: &str = "bootstrap-admin";

/// Session lifetime (auth-core's default, named here so that login can report it).
pub(crate) const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) accounts: Accounts,
    pub(crate) sessions: Sessions,
    pub(crate) api_keys: ApiKeys,
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) policy: Policy,
    pub(crate) grants: Arc<dyn GrantStore>,
    pub(crate) cache: CredCache,
    pub(crate) source: Arc<LocalSource>,
    pub(crate) secrets: Secrets,
    pub(crate) exchanges: BTreeMap<&'static str, Arc<dyn ExchangeAdapter>>,
    pub(crate) account_store: AccountStore,
    pub(crate) registration_open: bool,
    /// How often an open WebSocket re-checks its credential.
    pub(crate) ws_recheck: std::time::Duration,
    /// Browser sessions in a cookie (`STRONGROOM_COOKIE_SESSIONS=1`).
    pub(crate) browser: Option<browser::Browser>,
    /// The second factor (also inside `accounts`, for the login): enrolment, step-up.
    pub(crate) mfa: auth_core::Mfa,
    /// `STRONGROOM_STEP_UP_SECS`.
    pub(crate) step_up_window: std::time::Duration,
    /// Access tokens and refresh-token families (module `tokens`).
    pub(crate) tokens: tokens::Tokens,
    /// The audit log (module `audit`).
    pub(crate) audit: audit::Audit,
    /// Request limits (module `limits`).
    pub(crate) limits: limits::Limits,
    /// The account owners' risk limits (grant-policy, module `risk`).
    pub(crate) risk: grant_policy::RiskGuard,
    /// Copy-trading strategies, followers, signals (modules `strategies`, `copy_trading`).
    pub(crate) strategies: crate::strategies::StrategyStore,
    pub(crate) copy: copy_trading::CopyTrading,
    /// What `GET /readyz` checks (module `ready`).
    pub(crate) readiness: ready::Readiness,
    /// Account id -> exchange name (immutable once the account exists).
    exchange_of: RwLock<HashMap<String, &'static str>>,
}

pub(crate) type Shared = Arc<AppState>;

/// Why the service could not be assembled. Names the setting, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum BuildError {
    /// An auth-core setting was refused.
    #[error("{var}: {source}")]
    Auth {
        /// The variable.
        var: &'static str,
        /// The refusal (auth-core's messages never hold the value).
        #[source]
        source: auth_core::ConfigError,
    },
    /// The SSO settings were refused.
    #[error("SSO_* settings: {0}")]
    Sso(String),
    /// The envelope or cache could not be built.
    #[error("{0}")]
    Component(&'static str),
    /// The login throttle's store could not be set up (names the variable).
    #[error("{0}: the login throttle store could not be set up")]
    Throttle(&'static str),
    /// The request limits could not be set up (names the variable).
    #[error("{0}: the request limits could not be set up")]
    Limits(&'static str),
}

/// The account-facing parts (used by the CLI too).
pub(crate) struct Core {
    pub(crate) accounts: Accounts,
    /// The second factor (already in `accounts`, without a throttle).
    pub(crate) mfa: auth_core::Mfa,
    pub(crate) sessions: Sessions,
    pub(crate) api_keys: ApiKeys,
    pub(crate) secrets: Secrets,
    /// The password hasher (already in `accounts`), for its queue depth.
    pub(crate) hasher: PasswordHasher,
}

/// The Redis channel of cred-cache's cross-instance invalidations (`REDIS_URL`).
const INVALIDATION_CHANNEL: &str = "strongroom:cred-cache";

/// The issuer shown by authenticator apps (`otpauth://` URI).
const MFA_ISSUER: &str = "Strongroom";

/// The store of every limiter (login throttle, webhook signals): Redis when `REDIS_URL`
/// is set, else PostgreSQL when the database is PostgreSQL (shared by every instance on
/// it), else memory (this process only: each instance counts on its own). Store errors
/// fail closed (503).
fn throttle_store(config: &Config, stores: &Stores) -> Result<throttle::Store, BuildError> {
    Ok(if let Some(url) = &config.redis_url {
        throttle::Store::Redis(
            throttle::RedisStore::open(url)
                .map_err(|_| BuildError::Throttle(crate::config::ENV_REDIS_URL))?,
        )
    } else {
        match &stores.db {
            #[cfg(feature = "postgres")]
            crate::db::Db::Postgres(pool) => {
                throttle::Store::Postgres(throttle::PgStore::new(pool.clone()))
            }
            #[cfg(feature = "sqlite")]
            crate::db::Db::Sqlite(_) => throttle::Store::memory(),
        }
    })
}

pub(crate) fn core(stores: &Stores, envelope: Envelope) -> Result<Core, BuildError> {
    let sessions = Sessions::new(
        stores.sessions.clone(),
        SessionConfig::default().ttl(SESSION_TTL),
    );
    let hasher = PasswordHasher::new(PasswordConfig::default())
        .map_err(|_| BuildError::Component("password hasher"))?;
    // TOTP secrets sealed under the same key ring, bound to the user (totp_sealer.rs).
    let mfa = auth_core::Mfa::new(
        stores.mfa.clone(),
        Arc::new(crate::totp_sealer::EnvelopeSealer::new(envelope.clone())),
        auth_core::MfaConfig::new(MFA_ISSUER),
    );
    let accounts =
        Accounts::new(stores.users.clone(), sessions.clone(), hasher.clone()).with_mfa(mfa.clone());
    Ok(Core {
        accounts,
        mfa,
        sessions,
        api_keys: ApiKeys::new(stores.api_keys.clone()),
        secrets: Secrets::new(envelope, stores.secrets.clone()),
        hasher,
    })
}

/// `trading-backend rotate-signing-key`: makes a new primary access-token signing key in
/// the shared store (the previous one stays published until its last token expired);
/// returns the new `kid`.
pub(crate) async fn rotate_signing_key(
    config: &Config,
    stores: &Stores,
    core: &Core,
) -> Result<String, BuildError> {
    let envelope = core.secrets.envelope().clone();
    let tokens = tokens::Tokens::build(&config.tokens, stores, envelope).await?;
    tokens.issuer.rotate().await.map_err(|e| match e {
        auth_core::token::IssuerError::RotationUnsupported => BuildError::Component(
            "STRONGROOM_TOKEN_HS256_SECRET is set: HS256 has no signing keys to rotate",
        ),
        _ => BuildError::Component("access-token signing keys (store unavailable)"),
    })
}

/// What `serve` runs.
#[derive(Debug)]
pub(crate) struct Service {
    /// The service's router.
    pub(crate) app: Router,
    /// The router of the metrics listener (`METRICS_ADDR`): `GET /metrics` only.
    pub(crate) metrics: Router,
    /// The audit log, to flush at shutdown.
    pub(crate) audit: audit::Audit,
}

/// Builds the state and the routers for a service listening on `bound`.
pub(crate) async fn build(
    config: &Config,
    stores: &Stores,
    envelope: Envelope,
    bound: std::net::SocketAddr,
) -> Result<Service, BuildError> {
    let Core {
        accounts,
        mfa,
        sessions,
        api_keys,
        secrets,
        hasher,
    } = core(stores, envelope)?;
    // Second factor with its step-up window; wrong codes and passwords throttled.
    let limiter_store = throttle_store(config, stores)?;
    let throttle =
        auth_core::LoginThrottle::new(&limiter_store, auth_core::LoginThrottleConfig::default());
    let mfa = mfa.with_throttle(throttle.clone());
    let accounts = accounts.with_throttle(throttle).with_mfa(mfa.clone());
    // Access tokens: the issuer over the sealed signing keys, and refresh families.
    let token_settings = config.tokens.bound_to(bound);
    let tokens = tokens::Tokens::build(&token_settings, stores, secrets.envelope().clone()).await?;
    // Expired sessions, refresh families, challenges and limiter rows, hourly.
    housekeeping::Housekeeping {
        sessions: sessions.clone(),
        refresh: tokens.refresh.clone(),
        mfa: mfa.clone(),
        limiters: limiter_store.clone(),
    }
    .spawn();
    let source = Arc::new(LocalSource::new(secrets.clone()));
    // With REDIS_URL, invalidations reach every instance (cred-cache's Redis channel);
    // without it, each instance's copies end with their TTL (at most 60 s).
    let bus = config
        .redis_url
        .as_ref()
        .map(|url| cred_cache::redis::RedisInvalidation::new(url, INVALIDATION_CHANNEL))
        .transpose()
        .map_err(|_| {
            BuildError::Component("REDIS_URL: the credential cache's invalidation channel")
        })?;
    let mut cache = CredCache::builder(source.clone()).max_capacity(10_000);
    if let Some(bus) = &bus {
        cache = cache.publisher(bus.publisher());
    }
    let cache = cache
        .build()
        .map_err(|_| BuildError::Component("credential cache"))?;
    let invalidation = bus.map(|bus| bus.subscribe(&cache));
    let grants = stores.grants.clone();
    // The audit log (sealed key, retention) and grant-policy's sink into it.
    let audit = audit::Audit::new(crate::audit::open(&stores.db, secrets.envelope()).await?);
    if let Some(retention) = crate::audit::retention_from_env().map_err(|_| {
        BuildError::Component("STRONGROOM_AUDIT_RETENTION_DAYS: a whole number of days, 1..=36500")
    })? {
        crate::audit::spawn_retention(audit.log.clone(), retention);
    }
    let policy = Policy::builder(grants.clone())
        .audit(audit.policy_sink())
        .build();
    let copy = copy_trading::CopyTrading::new(
        &stores.db,
        &limiter_store,
        config.webhook_signals_per_min,
        config.webhook_secret_grace,
    )
    .map_err(BuildError::Component)?;
    // The paper venue keeps its state in the service's database: every instance on it
    // sees the same balances and orders.
    let venue = Arc::new(PaperVenue::new(stores.db.clone()));
    let paper: Arc<dyn ExchangeAdapter> = Arc::new(PaperExchange::new(venue));
    let mut exchanges = BTreeMap::new();
    exchanges.insert(paper.name(), paper);

    // The chain, in order: static token, session, access token, SSO JWT, API key.
    let mut chain = Chain::builder();
    if let Some(token) = &config.api_token {
        chain = chain.resolver(StaticTokenResolver::new(token, BOOTSTRAP_USER).map_err(
            |source| BuildError::Auth {
                var: crate::config::ENV_API_TOKEN,
                source,
            },
        )?);
    }
    chain = chain.resolver(sessions.clone());
    // This service's own access tokens (before SSO: it passes every token not its own).
    chain = chain.resolver(tokens.resolver(&token_settings, stores));
    if let Some(sso) = &config.sso {
        let mut issuer = match &sso.jwks_url {
            Some(url) => IssuerConfig::remote(sso.issuer.clone(), url.clone()),
            None => IssuerConfig::discover(sso.issuer.clone()),
        }
        .audience(sso.audience.clone());
        if let Some(lifetime) = sso.max_token_lifetime {
            issuer = issuer.max_token_lifetime(lifetime);
        }
        if let Some(typ) = &sso.typ {
            issuer = issuer.token_type(typ.clone());
        }
        if !sso.algorithms.is_empty() {
            issuer = issuer.algorithms(sso.algorithms.iter().copied());
        }
        for azp in &sso.azp {
            issuer = issuer.authorized_party(azp.clone());
        }
        if let Some(cooldown) = sso.jwks_cooldown {
            issuer = issuer.cache_policy(auth_core::sso::CachePolicy::default().cooldown(cooldown));
        }
        if sso.danger_allow_http {
            warn_sso_plain_http();
            issuer = danger::allow_plain_http(issuer);
        }
        let issuer = issuer.build().map_err(|e| BuildError::Sso(e.to_string()))?;
        let verifier = SsoVerifier::builder()
            .issuer(issuer)
            .build()
            .map_err(|e| BuildError::Sso(e.to_string()))?;
        chain = chain.resolver(SsoResolver::new(
            Arc::new(verifier),
            Arc::new(SsoBinder::new(stores.users.clone())),
        ));
    }
    chain = chain.resolver(api_keys.clone());
    let chain = chain.build();
    let internal = Chain::builder()
        .resolver(
            InternalSecretResolver::new(config.internal_secret.as_ref().map(|s| s.as_str()))
                .map_err(|source| BuildError::Auth {
                    var: crate::config::ENV_INTERNAL_SECRET,
                    source,
                })?,
        )
        .build();

    let readiness = ready::Readiness {
        invalidation: invalidation.map(Arc::new),
        db: stores.db.clone(),
        limiter: ready::Readiness::shared_store(&limiter_store),
        envelope: secrets.envelope().clone(),
    };
    let state = Arc::new(AppState {
        accounts,
        sessions,
        api_keys,
        users: stores.users.clone(),
        policy,
        grants,
        cache,
        source,
        secrets,
        exchanges,
        account_store: AccountStore::new(stores.db.clone()),
        registration_open: config.registration_open,
        ws_recheck: config.ws_recheck,
        browser: browser::Browser::from_config(config),
        mfa,
        step_up_window: config.step_up_window,
        tokens,
        audit: audit.clone(),
        limits: limits::Limits::build(
            config.rate_limits.as_ref(),
            config.redis_url.as_ref().map(|u| u.as_str()),
        )
        .map_err(BuildError::Limits)?,
        risk: risk::guard(&stores.db, stores.grants.clone(), audit.policy_sink()),
        strategies: crate::strategies::StrategyStore::new(stores.db.clone()),
        copy,
        readiness,
        exchange_of: RwLock::new(HashMap::new()),
    });
    let metrics = metrics::Metrics::new(metrics::Probes {
        cache: state.cache.clone(),
        hasher,
        audit: audit.log.clone(),
        validity: stores.validity.clone(),
        grant_cache: stores.grant_cache.clone(),
    });
    let rfc6750 = config.bearer_challenge;
    // Layers, innermost first (module `edge`): the body limit and the timeout around the
    // routes, their bare answers typed, metrics, the access log, sensitive headers, and
    // outermost the request id, so that every layer inside sees it.
    let app = router(state, chain, internal, rfc6750)
        .layer(edge::body_limit())
        .layer(edge::timeout(config.request_timeout))
        .layer(axum::middleware::from_fn(edge::typed_errors))
        .layer(from_fn_with_state(metrics.clone(), metrics::track))
        .layer(edge::access_log())
        .layer(edge::sensitive_request_headers())
        .layer(edge::sensitive_response_headers())
        .layer(axum::middleware::from_fn(audit::request_id));
    Ok(Service {
        app,
        metrics: metrics::router(metrics),
        audit,
    })
}

/// `SSO_DANGER_ALLOW_HTTP=1`: said loudly at start, on stderr and in the log.
fn warn_sso_plain_http() {
    let line = "=".repeat(78);
    eprintln!(
        "{line}\nWARNING: SSO_DANGER_ALLOW_HTTP=1. The SSO JWKS may be fetched over plain http://.\n\
         Anyone on the network path can substitute the issuer's keys and sign in as any\n\
         user. For tests and local development only; NEVER set it in production.\n{line}"
    );
    tracing::warn!(
        code = "sso.danger_allow_http",
        "SSO_DANGER_ALLOW_HTTP=1: the SSO JWKS may be fetched over plain http (tests and development only)"
    );
}

/// The routes. Every authenticated route declares what it requires
/// ([`Requires`]: a scope for API keys, or an interactive session); the exchange route
/// declares per operation (its `Op` extractor). Authentication and requirements are mounted
/// with `route_layer`, so they run on matched routes only: any other path is 404, with or
/// without a credential. Only `/ws` reads a `token` query parameter.
fn router(state: Shared, chain: Chain, internal: Chain, rfc6750: bool) -> Router {
    // Cookie sessions and RFC 6750 answers, when configured (module `browser`).
    let layer = |l| browser::configure(l, state.browser.as_ref(), rfc6750);
    const READ: Requires = Requires::Scope(Scope::Read);
    const MANAGE: Requires = Requires::Scope(Scope::Manage);
    const INTERACTIVE: Requires = Requires::Interactive;
    let api = Router::new()
        .route(
            "/api/auth/logout",
            post(auth::logout).route_layer(INTERACTIVE),
        )
        .route("/api/auth/me", get(auth::me).route_layer(READ))
        .route(
            "/api/auth/logout-all",
            post(tokens::logout_all).route_layer(INTERACTIVE),
        )
        .route(
            "/api/auth/password",
            post(auth::change_password).route_layer(INTERACTIVE),
        )
        .route("/api/keys", post(keys::create).route_layer(INTERACTIVE))
        // Second factor (module `mfa`).
        .route(
            "/api/auth/mfa/enroll",
            post(mfa::enroll).route_layer(INTERACTIVE),
        )
        .route(
            "/api/auth/mfa/confirm",
            post(mfa::confirm).route_layer(INTERACTIVE),
        )
        .route(
            "/api/auth/mfa/verify",
            post(mfa::verify).route_layer(INTERACTIVE),
        )
        .route(
            "/api/auth/mfa/disable",
            post(mfa::disable).route_layer(INTERACTIVE),
        )
        .route("/api/keys", get(keys::list).route_layer(READ))
        .route("/api/keys/{id}", delete(keys::revoke).route_layer(MANAGE))
        .route(
            "/api/accounts",
            post(accounts::create).route_layer(INTERACTIVE),
        )
        .route("/api/accounts", get(accounts::list).route_layer(READ))
        .route(
            "/api/accounts/{id}",
            delete(accounts::remove).route_layer(INTERACTIVE),
        )
        .route(
            "/api/accounts/{id}/shares",
            post(accounts::share).route_layer(INTERACTIVE),
        )
        .route(
            "/api/accounts/{id}/shares/{user_id}",
            delete(accounts::unshare).route_layer(INTERACTIVE),
        )
        // `read` or `trade` by operation, declared by the handler's `Op` extractor.
        .route("/api/exchange/{operation}", post(exchange::run))
        .route("/api/secrets", post(secrets::put).route_layer(MANAGE))
        .route("/api/secrets", get(secrets::list).route_layer(READ))
        .route(
            "/api/secrets/{name}",
            delete(secrets::remove).route_layer(MANAGE),
        )
        .route("/api/audit", get(audit::mine).route_layer(READ))
        // Risk limits and copy trading (modules `risk`, `strategies`).
        .route("/api/risk", get(risk::get).route_layer(READ))
        .route("/api/risk", put(risk::put).route_layer(INTERACTIVE))
        .route(
            "/api/accounts/{id}/live-trading",
            put(risk::live_trading).route_layer(INTERACTIVE),
        )
        .route("/api/strategies", get(strategies::list).route_layer(READ))
        .route(
            "/api/strategies",
            post(strategies::create).route_layer(INTERACTIVE),
        )
        .route(
            "/api/strategies/{id}/secret",
            post(strategies::rotate).route_layer(INTERACTIVE),
        )
        .route(
            "/api/strategies/{id}/followers",
            post(strategies::follow).route_layer(INTERACTIVE),
        )
        .route(
            "/api/strategies/{id}/followers/{account_id}",
            delete(strategies::unfollow).route_layer(INTERACTIVE),
        )
        .route(
            "/api/strategies/{id}/signals",
            get(strategies::signals).route_layer(READ),
        )
        .route(
            "/api/following/signals",
            get(strategies::following_signals).route_layer(READ),
        )
        // Who authenticated, for audit events (inside the auth layer).
        // Layers last: a `route_layer` wraps only the routes added before it. Refusals by
        // a route's requirement to the audit trail; the per-principal limit; both inside
        // the auth layer (after authentication).
        .route_layer(from_fn_with_state(
            state.clone(),
            audit::record_scope_refusals,
        ))
        .route_layer(from_fn_with_state(state.clone(), limits::per_principal))
        .route_layer(axum::middleware::from_fn(audit::capture_principal))
        .route_layer(layer(AuthLayer::new(chain.clone())));
    // The one route that accepts `?token=` (browsers cannot set headers on a WebSocket).
    let ws = Router::new()
        .route("/ws", get(ws::upgrade).route_layer(READ))
        .route_layer(from_fn_with_state(state.clone(), limits::per_principal))
        .route_layer(axum::middleware::from_fn(audit::capture_principal))
        .route_layer(layer(AuthLayer::websocket(chain)));
    // Only the internal secret resolves here; the handler also checks the method.
    let internal = Router::new()
        .route(
            "/internal/exchange-credentials",
            post(internal::credentials),
        )
        .route_layer(axum::middleware::from_fn(audit::capture_principal))
        .route_layer(AuthLayer::new(internal));
    // Unauthenticated routes: limited per client address (fail closed).
    let public = Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/mfa", post(mfa::complete))
        .route("/api/auth/token", post(tokens::token))
        .route("/api/auth/refresh", post(tokens::refresh))
        .route("/api/auth/revoke", post(tokens::revoke))
        // No credential: the signature is the credential (module `copy_trading`).
        .route(
            "/api/webhooks/copy-trading/{strategy_id}",
            post(copy_trading::webhook),
        )
        .route_layer(from_fn_with_state(state.clone(), limits::per_address));
    // Not limited: static answers from memory, polled by probes and token verifiers.
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::serve))
        .route("/readyz", get(ready::readyz))
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route("/.well-known/openid-configuration", get(tokens::discovery))
        .merge(public)
        .merge(api)
        .merge(ws)
        .merge(internal)
        .with_state(state)
}

#[utoipa::path(
    get, operation_id = "healthz", path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up: `ok`.", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

impl AppState {
    /// The adapter serving an account, from the memo or the metadata store.
    pub(crate) async fn adapter_for(
        &self,
        account_id: &str,
    ) -> Result<Arc<dyn ExchangeAdapter>, ApiError> {
        let known = self
            .exchange_of
            .read()
            .ok()
            .and_then(|m| m.get(account_id).copied());
        let name = match known {
            Some(name) => name,
            None => {
                let meta = self
                    .account_store
                    .get(account_id)
                    .await
                    .map_err(|_| ApiError::UNAVAILABLE)?
                    .ok_or(ApiError::NOT_FOUND)?;
                let name = self
                    .exchanges
                    .keys()
                    .copied()
                    .find(|n| *n == meta.exchange)
                    .ok_or(ApiError::UNAVAILABLE)?;
                if let Ok(mut m) = self.exchange_of.write() {
                    m.insert(account_id.to_owned(), name);
                }
                name
            }
        };
        self.exchanges
            .get(name)
            .cloned()
            .ok_or(ApiError::UNAVAILABLE)
    }

    pub(crate) fn forget_account(&self, account_id: &str) {
        if let Ok(mut m) = self.exchange_of.write() {
            m.remove(account_id);
        }
    }
}

/// Serves until Ctrl-C / SIGTERM, then lets in-flight requests finish for at most
/// `grace` (`SHUTDOWN_GRACE_SECS`) before it returns anyway; with `metrics`, the metrics
/// router on its own listener until then too.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    metrics: Option<(tokio::net::TcpListener, Router)>,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop.send(true);
    });
    let signalled = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone: stop too.
        let _ = stopped.wait_for(|s| *s).await;
    };
    let metrics = metrics.map(|(listener, router)| {
        tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(signalled(stopped.clone()))
                .into_future(),
        )
    });
    // The peer address reaches the handlers (login throttle per client address).
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signalled(stopped.clone()));
    let bound = async {
        signalled(stopped).await;
        tokio::time::sleep(grace).await;
    };
    let served = tokio::select! {
        served = served.into_future() => served,
        () = bound => {
            tracing::warn!(
                code = "server.drain_timeout",
                grace_secs = grace.as_secs(),
                "requests still in flight after the shutdown grace period: stopping anyway"
            );
            Ok(())
        }
    };
    if let Some(task) = metrics {
        task.abort();
    }
    served
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!(
        code = "server.shutdown",
        "shutting down: draining in-flight requests"
    );
}
