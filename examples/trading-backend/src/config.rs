//! Configuration from environment variables.
//!
//! Every value is checked at start-up; a refused value is reported with the name of its
//! variable and never with its content (tokens and keys are secrets).

use std::net::SocketAddr;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// Data directory for the SQLite file and the development master key.
pub(crate) const ENV_DATA_DIR: &str = "STRONGROOM_DATA_DIR";
/// `postgres://...` switches the store to PostgreSQL.
pub(crate) const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// Listen address.
pub(crate) const ENV_LISTEN_ADDR: &str = "LISTEN_ADDR";
/// Where `GET /metrics` (Prometheus text format) is served: a listener of its own, never
/// the service's address. Unset: no metrics endpoint.
pub(crate) const ENV_METRICS_ADDR: &str = "METRICS_ADDR";
/// The bootstrap server-to-server token.
pub(crate) const ENV_API_TOKEN: &str = "API_TOKEN";
/// The internal service secret (`X-Internal-Secret`).
pub(crate) const ENV_INTERNAL_SECRET: &str = "INTERNAL_SECRET";
/// Whether `POST /api/auth/register` is open.
pub(crate) const ENV_REGISTRATION_OPEN: &str = "REGISTRATION_OPEN";
/// SSO issuer (`iss`).
pub(crate) const ENV_SSO_ISSUER: &str = "SSO_ISSUER";
/// SSO JWKS URL (https).
pub(crate) const ENV_SSO_JWKS_URL: &str = "SSO_JWKS_URL";
/// SSO audience (`aud`).
pub(crate) const ENV_SSO_AUDIENCE: &str = "SSO_AUDIENCE";
/// `1`: the JWKS URL comes from `{SSO_ISSUER}/.well-known/openid-configuration`.
pub(crate) const ENV_SSO_DISCOVERY: &str = "SSO_DISCOVERY";
/// Longest accepted SSO token lifetime, whole seconds (default 86400, at most 30 days).
pub(crate) const ENV_SSO_MAX_TOKEN_LIFETIME_SECS: &str = "SSO_MAX_TOKEN_LIFETIME_SECS";
/// Required JWT header `typ` (for example `at+jwt`, RFC 9068).
pub(crate) const ENV_SSO_TYP: &str = "SSO_TYP";
/// Accepted JWS algorithms of the SSO issuer, comma-separated (default `RS256`; e.g.
/// `EdDSA` for another Strongroom instance). `HS*` is refused.
pub(crate) const ENV_SSO_ALGORITHMS: &str = "SSO_ALGORITHMS";
/// Accepted `azp` values, comma-separated (then `azp` is required).
pub(crate) const ENV_SSO_AZP: &str = "SSO_AZP";
/// Least time between two fetches of the SSO issuer's JWKS, whole seconds (1 to 3600,
/// default 30): bounds the fetches that tokens with unknown `kid`s can cause.
pub(crate) const ENV_SSO_JWKS_COOLDOWN_SECS: &str = "SSO_JWKS_COOLDOWN_SECS";
/// DANGER, tests and local development only: `1` accepts a plain `http://` JWKS URL.
pub(crate) const ENV_SSO_DANGER_ALLOW_HTTP: &str = "SSO_DANGER_ALLOW_HTTP";

/// Seconds between re-checks of an open WebSocket's credential (1 to 300, default 5).
pub(crate) const ENV_WS_RECHECK_SECS: &str = "WS_RECHECK_SECS";
/// `development` (default) or `production`: production refuses the generated
/// development master key, plain-http SSO keys, weak shared secrets and a defaulted
/// token issuer.
pub(crate) const ENV_STRONGROOM_ENV: &str = "STRONGROOM_ENV";

/// The secret variables that may instead be read from a file, and the variable naming
/// that file (`API_TOKEN_FILE`, ...): the value is the file's content without one
/// trailing newline. Setting both is refused. (crypto-envelope reads its own `_FILE`
/// variables: `VAULT_TOKEN_FILE`, `STRONGROOM_PKCS11_PIN_FILE`,
/// `STRONGROOM_TRANSIT_SECRET_ID_FILE`, ...)
pub(crate) const FILE_VARS: [(&str, &str); 7] = [
    (ENV_API_TOKEN, "API_TOKEN_FILE"),
    (ENV_INTERNAL_SECRET, "INTERNAL_SECRET_FILE"),
    ("STRONGROOM_MASTER_KEY", "STRONGROOM_MASTER_KEY_FILE"),
    (
        "STRONGROOM_MASTER_KEYS_OLD",
        "STRONGROOM_MASTER_KEYS_OLD_FILE",
    ),
    (ENV_TOKEN_HS256_SECRET, "STRONGROOM_TOKEN_HS256_SECRET_FILE"),
    (ENV_DATABASE_URL, "DATABASE_URL_FILE"),
    (ENV_REDIS_URL, "REDIS_URL_FILE"),
];

/// The command line's settings and the [`FILE_VARS`] files, read once at start.
static ENVIRONMENT: std::sync::OnceLock<
    std::collections::HashMap<&'static str, Zeroizing<String>>,
> = std::sync::OnceLock::new();

/// Takes the values `given` on the command line (`serve`'s flags, which win over the
/// environment) and reads every `*_FILE` of [`FILE_VARS`] that is set; call once, before
/// any [`var`].
pub(crate) fn load_environment(given: &[(&'static str, &str)]) -> Result<(), ConfigError> {
    let mut values: std::collections::HashMap<&'static str, Zeroizing<String>> = given
        .iter()
        .map(|(name, value)| (*name, Zeroizing::new((*value).to_owned())))
        .collect();
    let lookup = |name: &str| {
        values
            .get(name)
            .map(|v| v.as_str().to_owned())
            .or_else(|| std::env::var(name).ok())
    };
    let files = read_secret_files(&lookup, &|path| {
        std::fs::read_to_string(path).ok().map(Zeroizing::new)
    })?;
    values.extend(files);
    let _ = ENVIRONMENT.set(values);
    Ok(())
}

/// The value of `name`: given on the command line, else from its file when `<name>_FILE`
/// named one, else from the environment.
pub(crate) fn var(name: &str) -> Option<String> {
    if let Some(value) = ENVIRONMENT.get().and_then(|files| files.get(name)) {
        return Some(value.as_str().to_owned());
    }
    std::env::var(name).ok()
}

/// The values of the [`FILE_VARS`] whose file variable is set, by variable name.
fn read_secret_files(
    lookup: &dyn Fn(&str) -> Option<String>,
    read: &dyn Fn(&str) -> Option<Zeroizing<String>>,
) -> Result<std::collections::HashMap<&'static str, Zeroizing<String>>, ConfigError> {
    let mut files = std::collections::HashMap::new();
    for (var, file_var) in FILE_VARS {
        let Some(path) = non_empty(lookup, file_var) else {
            continue;
        };
        if non_empty(lookup, var).is_some() {
            return Err(ConfigError::Invalid {
                var: file_var,
                reason: "set together with the variable it replaces: set only one",
            });
        }
        let text = read(&path).ok_or(ConfigError::Invalid {
            var: file_var,
            reason: "the file cannot be read as UTF-8 text",
        })?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        if value.is_empty() {
            return Err(ConfigError::Invalid {
                var: file_var,
                reason: "the file is empty",
            });
        }
        files.insert(var, Zeroizing::new(value.to_owned()));
    }
    Ok(files)
}

/// Whether `STRONGROOM_ENV` is `production`.
pub(crate) fn production(lookup: &dyn Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match non_empty(lookup, ENV_STRONGROOM_ENV).as_deref() {
        None | Some("development") => Ok(false),
        Some("production") => Ok(true),
        Some(_) => Err(ConfigError::Invalid {
            var: ENV_STRONGROOM_ENV,
            reason: "expected development or production",
        }),
    }
}

/// Fewest distinct characters a shared secret needs in production: a value drawn at
/// random (32 hex digits or more) has more; `aaaa...`, `1234567890...` or a repeated
/// word has fewer.
const MIN_DISTINCT_CHARS: usize = 10;

/// `STRONGROOM_ENV=production`: refuses a shared secret with too few distinct characters.
fn check_strength(var: &'static str, value: &str) -> Result<(), ConfigError> {
    let distinct: std::collections::BTreeSet<u8> = value.bytes().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Err(ConfigError::Invalid {
            var,
            reason: "too weak for STRONGROOM_ENV=production (a random value of at least 32 characters, such as from gen-master-key)",
        });
    }
    Ok(())
}

/// `text` (default) or `json`: the format of the log on stderr.
pub(crate) const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
/// Longest time a request may run before it is answered 503 `timeout` (1 to 300
/// seconds, default 30).
pub(crate) const ENV_REQUEST_TIMEOUT_SECS: &str = "REQUEST_TIMEOUT_SECS";
/// How long a session or API key lookup is answered from memory, in milliseconds (0
/// turns the cache off; at most 1000, default 500): auth-core's `ValidityCache`. A
/// logout or revocation made through another instance is seen within this time.
pub(crate) const ENV_VALIDITY_CACHE_MS: &str = "STRONGROOM_VALIDITY_CACHE_MS";
/// After `SIGTERM` or Ctrl-C, how long in-flight requests may finish before the server
/// stops anyway (0 to 300 seconds, default 10).
pub(crate) const ENV_SHUTDOWN_GRACE_SECS: &str = "SHUTDOWN_GRACE_SECS";

/// `1`: browser sessions in a `__Host-` cookie (login with `"cookie": true`), with the
/// CSRF defence. Off by default: bearer tokens only.
pub(crate) const ENV_COOKIE_SESSIONS: &str = "STRONGROOM_COOKIE_SESSIONS";
/// The origins of the browser front end, comma-separated (`https://host[:port]`):
/// required with `STRONGROOM_COOKIE_SESSIONS=1`.
pub(crate) const ENV_ALLOWED_ORIGINS: &str = "STRONGROOM_ALLOWED_ORIGINS";
/// `SameSite` of the session cookie: `lax` (default) or `strict`.
pub(crate) const ENV_COOKIE_SAMESITE: &str = "STRONGROOM_COOKIE_SAMESITE";
/// `1`: RFC 6750 answers (a refused token is 401 `WWW-Authenticate: Bearer
/// error="invalid_token"` instead of 403).
pub(crate) const ENV_BEARER_CHALLENGE: &str = "STRONGROOM_BEARER_CHALLENGE";

/// Step-up window for sensitive operations, seconds (default 300, 30 to 3600).
pub(crate) const ENV_STEP_UP_SECS: &str = "STRONGROOM_STEP_UP_SECS";
/// Redis for the login throttle's shared state (`redis://` or `rediss://`).
pub(crate) const ENV_REDIS_URL: &str = "REDIS_URL";
/// Default step-up window.
pub(crate) const DEFAULT_STEP_UP_SECS: u64 = 300;
/// Copy trading: signals one strategy may send per minute (1 to 6000), shared by every
/// instance on a shared throttle store.
pub(crate) const ENV_WEBHOOK_SIGNALS_PER_MIN: &str = "STRONGROOM_WEBHOOK_SIGNALS_PER_MIN";
/// Copy trading: seconds a rotated-out webhook secret keeps verifying (0 to 604800).
pub(crate) const ENV_WEBHOOK_SECRET_GRACE_SECS: &str = "STRONGROOM_WEBHOOK_SECRET_GRACE_SECS";
// --- Access and refresh tokens (module `app::tokens`) ---
/// The access-token issuer (`iss`), an http(s) URL under which the JWKS and discovery
/// document are served. Default `http://127.0.0.1:<port>` (with a warning): set it to
/// the public URL of the service in production.
pub(crate) const ENV_ISSUER: &str = "STRONGROOM_ISSUER";
/// The access-token audience (`aud`). Default `trading-backend`.
pub(crate) const ENV_TOKEN_AUDIENCE: &str = "STRONGROOM_TOKEN_AUDIENCE";
/// Access-token lifetime in seconds (60 to 3600, default 900).
pub(crate) const ENV_ACCESS_TOKEN_TTL_SECS: &str = "STRONGROOM_ACCESS_TOKEN_TTL_SECS";
/// Signing algorithm of new keys: `EdDSA` (default) or `ES256`.
pub(crate) const ENV_TOKEN_ALG: &str = "STRONGROOM_TOKEN_ALG";
/// `1` (default) / `0`: check the user's session epoch on every access token (one
/// primary-key read of the user per request).
pub(crate) const ENV_TOKEN_EPOCH_CHECK: &str = "STRONGROOM_TOKEN_EPOCH_CHECK";
/// Seconds between two reads of the signing-key table by a running instance, to pick
/// up keys another instance (or `rotate-signing-key`) made (1 to 3600, default 60).
pub(crate) const ENV_TOKEN_KEY_RELOAD_SECS: &str = "STRONGROOM_TOKEN_KEY_RELOAD_SECS";
/// Optional HS256 mode for a single service that issues and verifies its own tokens:
/// the shared secret, at least 64 hex characters (256 bits, from a CSPRNG, e.g.
/// `trading-backend gen-master-key`). No JWKS is published and no key rotates; another
/// service cannot verify the tokens. Excludes `STRONGROOM_TOKEN_ALG`.
pub(crate) const ENV_TOKEN_HS256_SECRET: &str = "STRONGROOM_TOKEN_HS256_SECRET";
/// Absolute lifetime of a refresh-token family in seconds (default 30 days).
pub(crate) const ENV_REFRESH_ABSOLUTE_SECS: &str = "STRONGROOM_REFRESH_ABSOLUTE_SECS";
/// Idle lifetime of a refresh-token family in seconds (default 7 days).
pub(crate) const ENV_REFRESH_IDLE_SECS: &str = "STRONGROOM_REFRESH_IDLE_SECS";
// --- Request limits (module `app::limits`) ---
/// `1` (default) / `0`: the request limits (per principal, per exchange account, per
/// client address). Off: no limit and no `RateLimit` fields (the login throttle stays).
pub(crate) const ENV_RATE_LIMITS: &str = "STRONGROOM_RATE_LIMITS";
/// Requests per principal (user) on the authenticated routes, `<requests>/<seconds>`
/// (default `600/60`).
pub(crate) const ENV_RATE_LIMIT_PRINCIPAL: &str = "STRONGROOM_RATE_LIMIT_PRINCIPAL";
/// Exchange calls per account on `/api/exchange/*`, `<requests>/<seconds>` (default
/// `120/60`).
pub(crate) const ENV_RATE_LIMIT_ACCOUNT: &str = "STRONGROOM_RATE_LIMIT_ACCOUNT";
/// Requests per client address on the unauthenticated routes, `<requests>/<seconds>`
/// (default `60/60`).
pub(crate) const ENV_RATE_LIMIT_ADDRESS: &str = "STRONGROOM_RATE_LIMIT_ADDRESS";

/// The default listen address: loopback only.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A configuration value was refused. Names the variable, never the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConfigError {
    /// The variable holds a value that is not accepted.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Why (never the value).
        reason: &'static str,
    },
    /// A variable needed by another one is missing.
    #[error("{var} is required when {because} is set")]
    Missing {
        /// The missing variable.
        var: &'static str,
        /// The variable that needs it.
        because: &'static str,
    },
}

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum DatabaseTarget {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (may hold a password: never printed).
    Postgres(Zeroizing<String>),
}

/// Prints the SQLite path, or only the word `Postgres` for a URL (it may hold a password).
impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.debug_tuple("Postgres").finish_non_exhaustive(),
        }
    }
}
/// Longest `SSO_MAX_TOKEN_LIFETIME_SECS` (30 days, auth-core's ceiling).
const MAX_SSO_LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// SSO settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SsoSettings {
    pub(crate) issuer: String,
    /// `SSO_JWKS_URL`; `None` with `SSO_DISCOVERY=1` (discovered from the issuer).
    pub(crate) jwks_url: Option<String>,
    pub(crate) audience: String,
    /// `SSO_MAX_TOKEN_LIFETIME_SECS`; `None`: auth-core's default (24 h).
    pub(crate) max_token_lifetime: Option<std::time::Duration>,
    /// `SSO_TYP`: required header `typ`.
    pub(crate) typ: Option<String>,
    /// `SSO_AZP`: accepted `azp` values (empty: not checked).
    pub(crate) azp: Vec<String>,
    /// `SSO_ALGORITHMS`: accepted `alg` values (empty: auth-core's default, RS256).
    pub(crate) algorithms: Vec<auth_core::sso::Algorithm>,
    /// `SSO_DANGER_ALLOW_HTTP=1`: the JWKS URL may be plain `http://` (anyone on the
    /// network path could then substitute the keys). Tests and local development only.
    pub(crate) danger_allow_http: bool,
    /// `SSO_JWKS_COOLDOWN_SECS`; `None`: auth-core's default (30 s).
    pub(crate) jwks_cooldown: Option<std::time::Duration>,
}

/// Browser session settings (`STRONGROOM_COOKIE_SESSIONS=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CookieSettings {
    /// `STRONGROOM_ALLOWED_ORIGINS`, checked and normalised.
    pub(crate) origins: auth_core::CsrfGuard,
    /// `STRONGROOM_COOKIE_SAMESITE`.
    pub(crate) same_site: auth_core::SameSite,
}

/// The request limits (`STRONGROOM_RATE_LIMIT_*`): each `burst` requests at once,
/// refilled evenly over the period (a GCRA quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimitSettings {
    /// Per principal (user id) on `/api/*` and `/ws`.
    pub(crate) principal: throttle::Quota,
    /// Per exchange account on `/api/exchange/*`.
    pub(crate) account: throttle::Quota,
    /// Per client address on the unauthenticated routes.
    pub(crate) address: throttle::Quota,
}

/// The service configuration.
pub(crate) struct Config {
    pub(crate) data_dir: PathBuf,
    pub(crate) database: DatabaseTarget,
    pub(crate) listen: SocketAddr,
    /// `METRICS_ADDR`: the metrics listener, if any.
    pub(crate) metrics_listen: Option<SocketAddr>,
    pub(crate) api_token: Option<Zeroizing<String>>,
    pub(crate) internal_secret: Option<Zeroizing<String>>,
    pub(crate) registration_open: bool,
    pub(crate) sso: Option<SsoSettings>,
    /// How often an open WebSocket re-checks its credential.
    pub(crate) ws_recheck: std::time::Duration,
    /// `STRONGROOM_ENV=production`.
    pub(crate) production: bool,
    /// `REQUEST_TIMEOUT_SECS`.
    pub(crate) request_timeout: std::time::Duration,
    /// `STRONGROOM_VALIDITY_CACHE_MS`; `None`: off.
    pub(crate) validity_cache: Option<auth_core::ValidityCacheConfig>,
    /// `SHUTDOWN_GRACE_SECS`.
    pub(crate) shutdown_grace: std::time::Duration,
    /// Browser sessions in a cookie; `None`: bearer tokens only.
    pub(crate) cookies: Option<CookieSettings>,
    /// `STRONGROOM_BEARER_CHALLENGE=1`: RFC 6750 answers.
    pub(crate) bearer_challenge: bool,
    /// `STRONGROOM_STEP_UP_SECS`: how recent a second-factor check must be for a
    /// sensitive operation.
    pub(crate) step_up_window: std::time::Duration,
    /// `REDIS_URL`: login throttle state in Redis (may hold a password: never printed).
    pub(crate) redis_url: Option<Zeroizing<String>>,
    /// Access and refresh tokens (`STRONGROOM_ISSUER` and the token variables).
    pub(crate) tokens: TokenSettings,
    /// Request limits; `None` with `STRONGROOM_RATE_LIMITS=0`.
    pub(crate) rate_limits: Option<RateLimitSettings>,
    /// `STRONGROOM_WEBHOOK_SIGNALS_PER_MIN` (default 60).
    pub(crate) webhook_signals_per_min: u32,
    /// `STRONGROOM_WEBHOOK_SECRET_GRACE_SECS` (default one day).
    pub(crate) webhook_secret_grace: std::time::Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &match self.database {
                    DatabaseTarget::Sqlite(_) => "sqlite",
                    DatabaseTarget::Postgres(_) => "postgres",
                },
            )
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("api_token", &self.api_token.is_some())
            .field("internal_secret", &self.internal_secret.is_some())
            .field("registration_open", &self.registration_open)
            .field("sso", &self.sso)
            .field("ws_recheck", &self.ws_recheck)
            .field("production", &self.production)
            .field("request_timeout", &self.request_timeout)
            .field("validity_cache", &self.validity_cache)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("cookies", &self.cookies)
            .field("bearer_challenge", &self.bearer_challenge)
            .field("step_up_window", &self.step_up_window)
            .field("redis", &self.redis_url.is_some())
            .field("tokens", &self.tokens)
            .field("rate_limits", &self.rate_limits)
            .field("webhook_signals_per_min", &self.webhook_signals_per_min)
            .field("webhook_secret_grace", &self.webhook_secret_grace)
            .finish_non_exhaustive()
    }
}

fn non_empty(lookup: &dyn Fn(&str) -> Option<String>, var: &str) -> Option<String> {
    lookup(var).filter(|v| !v.is_empty())
}

fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            var,
            reason: "expected true or false",
        }),
    }
}

fn check_secret(var: &'static str, value: &str, min: usize) -> Result<(), ConfigError> {
    if value.len() < min {
        return Err(ConfigError::Invalid {
            var,
            reason: "too short (at least 32 characters)",
        });
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Invalid {
            var,
            reason: "only visible ASCII characters are accepted",
        });
    }
    Ok(())
}

impl Config {
    /// Reads the configuration from the process environment.
    pub(crate) fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&var)
    }

    /// Reads the configuration through `lookup`.
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let data_dir =
            PathBuf::from(non_empty(lookup, ENV_DATA_DIR).unwrap_or_else(|| "./data".into()));
        let database = match non_empty(lookup, ENV_DATABASE_URL).map(Zeroizing::new) {
            None => DatabaseTarget::Sqlite(data_dir.join("strongroom.db")),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseTarget::Postgres(url)
            }
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                if path.is_empty() || path.contains('?') {
                    return Err(ConfigError::Invalid {
                        var: ENV_DATABASE_URL,
                        reason: "expected sqlite://<path> without options",
                    });
                }
                DatabaseTarget::Sqlite(PathBuf::from(path))
            }
            Some(_) => {
                return Err(ConfigError::Invalid {
                    var: ENV_DATABASE_URL,
                    reason: "expected a postgres:// or sqlite:// URL",
                });
            }
        };
        let listen = non_empty(lookup, ENV_LISTEN_ADDR)
            .unwrap_or_else(|| DEFAULT_LISTEN.into())
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Invalid {
                var: ENV_LISTEN_ADDR,
                reason: "expected ip:port, such as 127.0.0.1:8080",
            })?;
        let metrics_listen = non_empty(lookup, ENV_METRICS_ADDR)
            .map(|v| v.parse::<SocketAddr>())
            .transpose()
            .map_err(|_| ConfigError::Invalid {
                var: ENV_METRICS_ADDR,
                reason: "expected ip:port, such as 127.0.0.1:9464",
            })?;
        if metrics_listen.is_some_and(|m| m == listen && m.port() != 0) {
            return Err(ConfigError::Invalid {
                var: ENV_METRICS_ADDR,
                reason: "must differ from LISTEN_ADDR: metrics have a listener of their own",
            });
        }
        let api_token = non_empty(lookup, ENV_API_TOKEN).map(Zeroizing::new);
        if let Some(token) = &api_token {
            check_secret(ENV_API_TOKEN, token, 32)?;
        }
        let internal_secret = non_empty(lookup, ENV_INTERNAL_SECRET).map(Zeroizing::new);
        if let Some(secret) = &internal_secret {
            check_secret(ENV_INTERNAL_SECRET, secret, 32)?;
        }
        let registration_open = match non_empty(lookup, ENV_REGISTRATION_OPEN) {
            Some(v) => parse_bool(ENV_REGISTRATION_OPEN, &v)?,
            None => false,
        };
        let sso = sso_from(lookup)?;
        let ws_recheck = secs_in(
            lookup,
            ENV_WS_RECHECK_SECS,
            1..=300,
            auth_core::http::DEFAULT_RECHECK_INTERVAL.as_secs(),
            "expected whole seconds from 1 to 300",
        )?;
        let request_timeout = secs_in(
            lookup,
            ENV_REQUEST_TIMEOUT_SECS,
            1..=300,
            30,
            "expected whole seconds from 1 to 300",
        )?;
        let validity_cache = match non_empty(lookup, ENV_VALIDITY_CACHE_MS) {
            None => Some(auth_core::ValidityCacheConfig::default()),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => None,
                Ok(ms) => Some(
                    auth_core::ValidityCacheConfig::new(
                        std::time::Duration::from_millis(ms),
                        auth_core::ValidityCacheConfig::default().capacity(),
                    )
                    .map_err(|_| ConfigError::Invalid {
                        var: ENV_VALIDITY_CACHE_MS,
                        reason: "expected whole milliseconds from 0 (off) to 1000",
                    })?,
                ),
                Err(_) => {
                    return Err(ConfigError::Invalid {
                        var: ENV_VALIDITY_CACHE_MS,
                        reason: "expected whole milliseconds from 0 (off) to 1000",
                    });
                }
            },
        };
        let shutdown_grace = secs_in(
            lookup,
            ENV_SHUTDOWN_GRACE_SECS,
            0..=300,
            10,
            "expected whole seconds from 0 to 300",
        )?;
        let cookies = cookies_from(lookup)?;
        let bearer_challenge = match non_empty(lookup, ENV_BEARER_CHALLENGE) {
            Some(v) => parse_bool(ENV_BEARER_CHALLENGE, &v)?,
            None => false,
        };
        let step_up_window = secs_in(
            lookup,
            ENV_STEP_UP_SECS,
            30..=3600,
            DEFAULT_STEP_UP_SECS,
            "expected whole seconds from 30 to 3600",
        )?;
        let redis_url = non_empty(lookup, ENV_REDIS_URL).map(Zeroizing::new);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return Err(ConfigError::Invalid {
                var: ENV_REDIS_URL,
                reason: "expected a redis:// or rediss:// URL",
            });
        }
        let tokens = tokens_from(lookup, listen)?;
        let production = production(lookup)?;
        if production {
            for (var, secret) in [
                (ENV_API_TOKEN, &api_token),
                (ENV_INTERNAL_SECRET, &internal_secret),
            ] {
                if let Some(secret) = secret {
                    check_strength(var, secret)?;
                }
            }
            if non_empty(lookup, ENV_SSO_DANGER_ALLOW_HTTP).is_some() {
                return Err(ConfigError::Invalid {
                    var: ENV_SSO_DANGER_ALLOW_HTTP,
                    reason: "refused with STRONGROOM_ENV=production",
                });
            }
            if tokens.issuer_defaulted {
                return Err(ConfigError::Missing {
                    var: ENV_ISSUER,
                    because: ENV_STRONGROOM_ENV,
                });
            }
        }
        let rate_limits = rate_limits_from(lookup)?;
        let (webhook_signals_per_min, webhook_secret_grace) = webhook_from(lookup)?;
        Ok(Self {
            rate_limits,
            webhook_signals_per_min,
            webhook_secret_grace,
            step_up_window,
            redis_url,
            data_dir,
            database,
            listen,
            metrics_listen,
            api_token,
            internal_secret,
            registration_open,
            sso,
            ws_recheck,
            production,
            request_timeout,
            validity_cache,
            shutdown_grace,
            cookies,
            bearer_challenge,
            tokens,
        })
    }
}

/// `<requests>/<seconds>`: requests 1 to 1 000 000, seconds 1 to 86 400.
fn quota(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: (u32, u64),
) -> Result<throttle::Quota, ConfigError> {
    let invalid = || ConfigError::Invalid {
        var,
        reason: "expected <requests>/<seconds> such as 600/60 (requests 1 to 1000000, seconds 1 to 86400)",
    };
    let (requests, secs) = match non_empty(lookup, var) {
        None => default,
        Some(v) => {
            let (requests, secs) = v.split_once('/').ok_or_else(invalid)?;
            match (requests.parse::<u32>(), secs.parse::<u64>()) {
                (Ok(r @ 1..=1_000_000), Ok(s @ 1..=86_400)) => (r, s),
                _ => return Err(invalid()),
            }
        }
    };
    throttle::Quota::new(requests, std::time::Duration::from_secs(secs)).map_err(|_| {
        ConfigError::Invalid {
            var,
            reason: "the quota was refused",
        }
    })
}

fn rate_limits_from(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<RateLimitSettings>, ConfigError> {
    let enabled = match non_empty(lookup, ENV_RATE_LIMITS) {
        Some(v) => parse_bool(ENV_RATE_LIMITS, &v)?,
        None => true,
    };
    let quotas = [
        ENV_RATE_LIMIT_PRINCIPAL,
        ENV_RATE_LIMIT_ACCOUNT,
        ENV_RATE_LIMIT_ADDRESS,
    ];
    if !enabled {
        // A quota with the limits off is a mistake, not silently ignored.
        if let Some(var) = quotas.into_iter().find(|v| non_empty(lookup, v).is_some()) {
            return Err(ConfigError::Invalid {
                var,
                reason: "has no effect with STRONGROOM_RATE_LIMITS=0",
            });
        }
        return Ok(None);
    }
    Ok(Some(RateLimitSettings {
        principal: quota(lookup, ENV_RATE_LIMIT_PRINCIPAL, (600, 60))?,
        account: quota(lookup, ENV_RATE_LIMIT_ACCOUNT, (120, 60))?,
        address: quota(lookup, ENV_RATE_LIMIT_ADDRESS, (60, 60))?,
    }))
}

/// Copy-trading webhook settings: (signals per minute, secret grace).
fn webhook_from(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(u32, std::time::Duration), ConfigError> {
    let per_min = match non_empty(lookup, ENV_WEBHOOK_SIGNALS_PER_MIN) {
        None => 60,
        Some(v) => match v.parse::<u32>() {
            Ok(n @ 1..=6000) => n,
            _ => {
                return Err(ConfigError::Invalid {
                    var: ENV_WEBHOOK_SIGNALS_PER_MIN,
                    reason: "expected a whole number from 1 to 6000",
                });
            }
        },
    };
    let grace = secs_in(
        lookup,
        ENV_WEBHOOK_SECRET_GRACE_SECS,
        0..=604_800,
        86_400,
        "expected whole seconds from 0 to 604800",
    )?;
    Ok((per_min, grace))
}

fn cookies_from(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<CookieSettings>, ConfigError> {
    let enabled = match non_empty(lookup, ENV_COOKIE_SESSIONS) {
        Some(v) => parse_bool(ENV_COOKIE_SESSIONS, &v)?,
        None => false,
    };
    let origins = non_empty(lookup, ENV_ALLOWED_ORIGINS);
    let same_site = non_empty(lookup, ENV_COOKIE_SAMESITE);
    if !enabled {
        for (var, value) in [
            (ENV_ALLOWED_ORIGINS, &origins),
            (ENV_COOKIE_SAMESITE, &same_site),
        ] {
            if value.is_some() {
                return Err(ConfigError::Missing {
                    var: ENV_COOKIE_SESSIONS,
                    because: var,
                });
            }
        }
        return Ok(None);
    }
    let origins = origins.ok_or(ConfigError::Missing {
        var: ENV_ALLOWED_ORIGINS,
        because: ENV_COOKIE_SESSIONS,
    })?;
    let origins = auth_core::CsrfGuard::new(origins.split(',').map(str::trim)).map_err(|_| {
        ConfigError::Invalid {
            var: ENV_ALLOWED_ORIGINS,
            reason: "expected comma-separated origins such as https://app.example.com (scheme://host[:port], no path; http:// only for localhost)",
        }
    })?;
    let same_site = match same_site.map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("lax") => auth_core::SameSite::Lax,
        Some("strict") => auth_core::SameSite::Strict,
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: ENV_COOKIE_SAMESITE,
                reason: "expected lax or strict",
            });
        }
    };
    Ok(Some(CookieSettings { origins, same_site }))
}

fn sso_from(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<SsoSettings>, ConfigError> {
    let issuer = non_empty(lookup, ENV_SSO_ISSUER);
    let jwks_url = non_empty(lookup, ENV_SSO_JWKS_URL);
    let audience = non_empty(lookup, ENV_SSO_AUDIENCE);
    let discovery_var = non_empty(lookup, ENV_SSO_DISCOVERY);
    let discovery = match &discovery_var {
        Some(v) => parse_bool(ENV_SSO_DISCOVERY, v)?,
        None => false,
    };
    let max_lifetime_var = non_empty(lookup, ENV_SSO_MAX_TOKEN_LIFETIME_SECS);
    let typ = non_empty(lookup, ENV_SSO_TYP);
    let azp_var = non_empty(lookup, ENV_SSO_AZP);
    let algorithms_var = non_empty(lookup, ENV_SSO_ALGORITHMS);
    let cooldown_var = non_empty(lookup, ENV_SSO_JWKS_COOLDOWN_SECS);
    let danger_allow_http = match non_empty(lookup, ENV_SSO_DANGER_ALLOW_HTTP) {
        None => None,
        Some(v) if v == "1" => Some(v),
        Some(_) => {
            return Err(ConfigError::Invalid {
                var: ENV_SSO_DANGER_ALLOW_HTTP,
                reason: "the only accepted value is 1 (or leave it unset)",
            });
        }
    };
    let Some(issuer) = issuer else {
        for (var, value) in [
            (ENV_SSO_JWKS_URL, &jwks_url),
            (ENV_SSO_AUDIENCE, &audience),
            (ENV_SSO_DISCOVERY, &discovery_var),
            (ENV_SSO_MAX_TOKEN_LIFETIME_SECS, &max_lifetime_var),
            (ENV_SSO_TYP, &typ),
            (ENV_SSO_AZP, &azp_var),
            (ENV_SSO_ALGORITHMS, &algorithms_var),
            (ENV_SSO_JWKS_COOLDOWN_SECS, &cooldown_var),
            (ENV_SSO_DANGER_ALLOW_HTTP, &danger_allow_http),
        ] {
            if value.is_some() {
                return Err(ConfigError::Missing {
                    var: ENV_SSO_ISSUER,
                    because: var,
                });
            }
        }
        return Ok(None);
    };
    let danger_allow_http = danger_allow_http.is_some();
    let https_or_allowed = |url: &str| {
        url.starts_with("https://") || (danger_allow_http && url.starts_with("http://"))
    };
    let jwks_url = match (jwks_url, discovery) {
        (Some(_), true) => {
            return Err(ConfigError::Invalid {
                var: ENV_SSO_JWKS_URL,
                reason: "must be unset when SSO_DISCOVERY is on (the issuer's discovery document names the JWKS URL)",
            });
        }
        (None, true) => {
            if !https_or_allowed(&issuer) {
                return Err(ConfigError::Invalid {
                    var: ENV_SSO_ISSUER,
                    reason: "must be an https:// URL when SSO_DISCOVERY is on",
                });
            }
            None
        }
        (None, false) => {
            return Err(ConfigError::Missing {
                var: ENV_SSO_JWKS_URL,
                because: ENV_SSO_ISSUER,
            });
        }
        (Some(url), false) => {
            if !https_or_allowed(&url) {
                return Err(ConfigError::Invalid {
                    var: ENV_SSO_JWKS_URL,
                    reason: "must be an https:// URL",
                });
            }
            Some(url)
        }
    };
    let audience = audience.ok_or(ConfigError::Missing {
        var: ENV_SSO_AUDIENCE,
        because: ENV_SSO_ISSUER,
    })?;
    let max_token_lifetime = match max_lifetime_var {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(secs) if (1..=MAX_SSO_LIFETIME_SECS).contains(&secs) => {
                Some(std::time::Duration::from_secs(secs))
            }
            _ => {
                return Err(ConfigError::Invalid {
                    var: ENV_SSO_MAX_TOKEN_LIFETIME_SECS,
                    reason: "expected whole seconds from 1 to 2592000 (30 days)",
                });
            }
        },
    };
    let jwks_cooldown = match cooldown_var {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(secs) if (1..=3600).contains(&secs) => Some(std::time::Duration::from_secs(secs)),
            _ => {
                return Err(ConfigError::Invalid {
                    var: ENV_SSO_JWKS_COOLDOWN_SECS,
                    reason: "expected whole seconds from 1 to 3600",
                });
            }
        },
    };
    if let Some(typ) = &typ
        && !typ.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConfigError::Invalid {
            var: ENV_SSO_TYP,
            reason: "expected a media type such as at+jwt",
        });
    }
    let azp: Vec<String> = match azp_var {
        None => Vec::new(),
        Some(list) => {
            let ids: Vec<String> = list.split(',').map(|id| id.trim().to_owned()).collect();
            if ids.iter().any(String::is_empty) {
                return Err(ConfigError::Invalid {
                    var: ENV_SSO_AZP,
                    reason: "expected a comma-separated list of client ids",
                });
            }
            ids
        }
    };
    let algorithms = match algorithms_var {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|name| name.trim().parse::<auth_core::sso::Algorithm>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::Invalid {
                var: ENV_SSO_ALGORITHMS,
                reason: "expected comma-separated JWS algorithm names such as RS256,EdDSA",
            })?,
    };
    Ok(Some(SsoSettings {
        issuer,
        algorithms,
        jwks_url,
        audience,
        max_token_lifetime,
        typ,
        azp,
        danger_allow_http,
        jwks_cooldown,
    }))
}

/// Access and refresh token settings.
// Holds no secret in clear: the HS256 secret is an `Hs256Secret`, whose Debug prints
// nothing of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenSettings {
    /// `STRONGROOM_ISSUER`.
    pub(crate) issuer: String,
    /// Whether the issuer is the development default (a warning is logged at start).
    pub(crate) issuer_defaulted: bool,
    /// `STRONGROOM_TOKEN_AUDIENCE`.
    pub(crate) audience: String,
    /// `STRONGROOM_ACCESS_TOKEN_TTL_SECS`.
    pub(crate) access_ttl: std::time::Duration,
    /// `STRONGROOM_TOKEN_ALG`.
    pub(crate) alg: auth_core::token::SigningAlgorithm,
    /// `STRONGROOM_TOKEN_EPOCH_CHECK`.
    pub(crate) epoch_check: bool,
    /// `STRONGROOM_TOKEN_KEY_RELOAD_SECS`.
    pub(crate) key_reload: std::time::Duration,
    /// `STRONGROOM_TOKEN_HS256_SECRET`, decoded: HS256 mode instead of signing keys.
    pub(crate) hs256: Option<Hs256Secret>,
    /// `STRONGROOM_REFRESH_ABSOLUTE_SECS`.
    pub(crate) refresh_absolute: std::time::Duration,
    /// `STRONGROOM_REFRESH_IDLE_SECS`.
    pub(crate) refresh_idle: std::time::Duration,
}

/// The HS256 secret: wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Hs256Secret(Zeroizing<Vec<u8>>);

impl Hs256Secret {
    pub(crate) fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Hs256Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hs256Secret(..)")
    }
}

impl TokenSettings {
    /// The settings for a service bound to `addr`: the development default issuer names
    /// the bound port (`LISTEN_ADDR` may say port 0).
    pub(crate) fn bound_to(&self, addr: SocketAddr) -> Self {
        let mut settings = self.clone();
        if settings.issuer_defaulted {
            settings.issuer = default_issuer(addr);
        }
        settings
    }
}

fn default_issuer(listen: SocketAddr) -> String {
    let host = if listen.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        listen.ip()
    };
    format!("http://{}", SocketAddr::new(host, listen.port()))
}

/// Default access-token audience.
pub(crate) const DEFAULT_TOKEN_AUDIENCE: &str = "trading-backend";

/// `LOG_FORMAT`: `true` for JSON lines, `false` for text (the default). Read before the
/// rest of the configuration, since logging starts first.
pub(crate) fn log_format_json(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, ConfigError> {
    match non_empty(lookup, ENV_LOG_FORMAT).as_deref() {
        None | Some("text") => Ok(false),
        Some("json") => Ok(true),
        Some(_) => Err(ConfigError::Invalid {
            var: ENV_LOG_FORMAT,
            reason: "expected text or json",
        }),
    }
}

/// A duration in whole seconds within `range` (`default` when unset or empty).
fn secs_in(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
    reason: &'static str,
) -> Result<std::time::Duration, ConfigError> {
    match non_empty(lookup, var) {
        None => Ok(std::time::Duration::from_secs(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(secs) if range.contains(&secs) => Ok(std::time::Duration::from_secs(secs)),
            _ => Err(ConfigError::Invalid { var, reason }),
        },
    }
}

fn tokens_from(
    lookup: &dyn Fn(&str) -> Option<String>,
    listen: SocketAddr,
) -> Result<TokenSettings, ConfigError> {
    let (issuer, issuer_defaulted) = match non_empty(lookup, ENV_ISSUER) {
        Some(url) => {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(['?', '#'])
                && !url.ends_with('/');
            if !ok {
                return Err(ConfigError::Invalid {
                    var: ENV_ISSUER,
                    reason: "expected an http(s) URL without query, fragment or trailing slash",
                });
            }
            (url, false)
        }
        None => (default_issuer(listen), true),
    };
    let audience =
        non_empty(lookup, ENV_TOKEN_AUDIENCE).unwrap_or_else(|| DEFAULT_TOKEN_AUDIENCE.into());
    let access_ttl = secs_in(
        lookup,
        ENV_ACCESS_TOKEN_TTL_SECS,
        60..=3600,
        900,
        "expected whole seconds from 60 to 3600",
    )?;
    let alg = match non_empty(lookup, ENV_TOKEN_ALG) {
        None => auth_core::token::SigningAlgorithm::EdDsa,
        Some(v) => {
            auth_core::token::SigningAlgorithm::from_name(&v).ok_or(ConfigError::Invalid {
                var: ENV_TOKEN_ALG,
                reason: "expected EdDSA or ES256",
            })?
        }
    };
    let epoch_check = match non_empty(lookup, ENV_TOKEN_EPOCH_CHECK) {
        Some(v) => parse_bool(ENV_TOKEN_EPOCH_CHECK, &v)?,
        None => true,
    };
    let key_reload = secs_in(
        lookup,
        ENV_TOKEN_KEY_RELOAD_SECS,
        1..=3600,
        60,
        "expected whole seconds from 1 to 3600",
    )?;
    let hs256 = match non_empty(lookup, ENV_TOKEN_HS256_SECRET).map(Zeroizing::new) {
        None => None,
        Some(hex) => {
            if non_empty(lookup, ENV_TOKEN_ALG).is_some() {
                return Err(ConfigError::Invalid {
                    var: ENV_TOKEN_ALG,
                    reason: "must be unset with STRONGROOM_TOKEN_HS256_SECRET",
                });
            }
            let bytes = base16ct::mixed::decode_vec(hex.as_bytes())
                .map(Zeroizing::new)
                .map_err(|_| ConfigError::Invalid {
                    var: ENV_TOKEN_HS256_SECRET,
                    reason: "expected hex characters",
                })?;
            if bytes.len() < auth_core::token::MIN_HS256_SECRET_LEN {
                return Err(ConfigError::Invalid {
                    var: ENV_TOKEN_HS256_SECRET,
                    reason: "too short (at least 64 hex characters: 256 bits)",
                });
            }
            Some(Hs256Secret(bytes))
        }
    };
    let refresh_absolute = secs_in(
        lookup,
        ENV_REFRESH_ABSOLUTE_SECS,
        300..=365 * 24 * 3600,
        30 * 24 * 3600,
        "expected whole seconds from 300 to 31536000",
    )?;
    let refresh_idle = secs_in(
        lookup,
        ENV_REFRESH_IDLE_SECS,
        60..=365 * 24 * 3600,
        7 * 24 * 3600,
        "expected whole seconds from 60 to 31536000",
    )?;
    if refresh_idle > refresh_absolute {
        return Err(ConfigError::Invalid {
            var: ENV_REFRESH_IDLE_SECS,
            reason: "must not exceed STRONGROOM_REFRESH_ABSOLUTE_SECS",
        });
    }
    Ok(TokenSettings {
        issuer,
        issuer_defaulted,
        audience,
        access_ttl,
        alg,
        epoch_check,
        key_reload,
        hs256,
        refresh_absolute,
        refresh_idle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&move |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_embedded_and_closed() {
        let config = with(&[]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            config.database,
            DatabaseTarget::Sqlite(PathBuf::from("./data/strongroom.db"))
        );
        assert!(!config.registration_open);
        assert_eq!(config.ws_recheck, std::time::Duration::from_secs(5));
        assert_eq!(
            with(&[(ENV_WS_RECHECK_SECS, "1")]).unwrap().ws_recheck,
            std::time::Duration::from_secs(1)
        );
        for bad in ["0", "301", "-1", "1.5", "x"] {
            assert!(with(&[(ENV_WS_RECHECK_SECS, bad)]).is_err(), "{bad}");
        }
        assert!(config.api_token.is_none() && config.internal_secret.is_none());
        assert!(config.sso.is_none());
    }

    #[test]
    fn the_validity_cache_is_on_at_500_ms_and_bounded_by_a_second() {
        let ttl = |c: &Config| c.validity_cache.map(|v| v.ttl());
        assert_eq!(
            ttl(&with(&[]).unwrap()),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(ttl(&with(&[(ENV_VALIDITY_CACHE_MS, "0")]).unwrap()), None);
        assert_eq!(
            ttl(&with(&[(ENV_VALIDITY_CACHE_MS, "1000")]).unwrap()),
            Some(std::time::Duration::from_secs(1))
        );
        for bad in ["1001", "-1", "0.5", "fast"] {
            assert!(
                matches!(
                    with(&[(ENV_VALIDITY_CACHE_MS, bad)]),
                    Err(ConfigError::Invalid {
                        var: ENV_VALIDITY_CACHE_MS,
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn cookie_sessions_need_origins_and_are_off_by_default() {
        let config = with(&[]).unwrap();
        assert!(config.cookies.is_none() && !config.bearer_challenge);
        let on = with(&[
            (ENV_COOKIE_SESSIONS, "1"),
            (
                ENV_ALLOWED_ORIGINS,
                "https://App.example.com, http://localhost:3000",
            ),
            (ENV_BEARER_CHALLENGE, "1"),
        ])
        .unwrap();
        let cookies = on.cookies.unwrap();
        assert_eq!(
            cookies.origins.allowed_origins().collect::<Vec<_>>(),
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(cookies.same_site, auth_core::SameSite::Lax);
        assert!(on.bearer_challenge);
        let strict = with(&[
            (ENV_COOKIE_SESSIONS, "1"),
            (ENV_ALLOWED_ORIGINS, "https://app.example.com"),
            (ENV_COOKIE_SAMESITE, "Strict"),
        ])
        .unwrap();
        assert_eq!(
            strict.cookies.unwrap().same_site,
            auth_core::SameSite::Strict
        );
        let refused: [&[(&str, &str)]; 6] = [
            &[(ENV_COOKIE_SESSIONS, "1")],
            &[(ENV_ALLOWED_ORIGINS, "https://app.example.com")],
            &[
                (ENV_COOKIE_SESSIONS, "1"),
                (ENV_ALLOWED_ORIGINS, "https://app.example.com/"),
            ],
            &[
                (ENV_COOKIE_SESSIONS, "1"),
                (ENV_ALLOWED_ORIGINS, "http://app.example.com"),
            ],
            &[
                (ENV_COOKIE_SESSIONS, "1"),
                (ENV_ALLOWED_ORIGINS, "https://app.example.com"),
                (ENV_COOKIE_SAMESITE, "none"),
            ],
            &[(ENV_BEARER_CHALLENGE, "maybe")],
        ];
        for vars in refused {
            assert!(with(vars).is_err(), "{vars:?}");
        }
    }

    #[test]
    fn bad_values_name_the_variable_never_the_value() {
        let canary = "CANARY-not-an-address-9f8e7d";
        let cases: [(&str, &str); 5] = [
            (ENV_LISTEN_ADDR, canary),
            (ENV_API_TOKEN, "CANARY-short"),
            (ENV_INTERNAL_SECRET, "CANARY-short"),
            (ENV_REGISTRATION_OPEN, canary),
            (ENV_DATABASE_URL, "mysql://CANARY@host/db"),
        ];
        for (var, value) in cases {
            let message = with(&[(var, value)]).err().unwrap().to_string();
            assert!(message.contains(var), "{message}");
            assert!(!message.contains("CANARY"), "{message}");
        }
    }

    #[test]
    fn sso_needs_all_three_and_https() {
        assert!(matches!(
            with(&[(ENV_SSO_ISSUER, "https://idp")]),
            Err(ConfigError::Missing {
                var: ENV_SSO_JWKS_URL,
                ..
            })
        ));
        assert!(matches!(
            with(&[(ENV_SSO_AUDIENCE, "x")]),
            Err(ConfigError::Missing {
                var: ENV_SSO_ISSUER,
                ..
            })
        ));
        let plain = with(&[
            (ENV_SSO_ISSUER, "https://idp"),
            (ENV_SSO_JWKS_URL, "http://idp/jwks"),
            (ENV_SSO_AUDIENCE, "app"),
        ]);
        assert!(matches!(
            plain,
            Err(ConfigError::Invalid {
                var: ENV_SSO_JWKS_URL,
                ..
            })
        ));
        let ok = with(&[
            (ENV_SSO_ISSUER, "https://idp"),
            (ENV_SSO_JWKS_URL, "https://idp/jwks"),
            (ENV_SSO_AUDIENCE, "app"),
            (ENV_REGISTRATION_OPEN, "true"),
        ])
        .unwrap();
        assert!(ok.sso.is_some() && ok.registration_open);
    }

    #[test]
    fn plain_http_jwks_only_with_the_danger_flag_set_to_1() {
        let sso = [
            (ENV_SSO_ISSUER, "https://idp"),
            (ENV_SSO_JWKS_URL, "http://127.0.0.1:9/jwks"),
            (ENV_SSO_AUDIENCE, "app"),
        ];
        // Refused without the flag.
        assert!(matches!(
            with(&sso),
            Err(ConfigError::Invalid {
                var: ENV_SSO_JWKS_URL,
                ..
            })
        ));
        // Accepted with it, and the flag reaches the settings.
        let mut allowed = sso.to_vec();
        allowed.push((ENV_SSO_DANGER_ALLOW_HTTP, "1"));
        let settings = with(&allowed).unwrap().sso.unwrap();
        assert!(settings.danger_allow_http);
        assert_eq!(
            settings.jwks_url.as_deref(),
            Some("http://127.0.0.1:9/jwks")
        );
        // https keeps working with the flag; without it the flag is off.
        let mut https = allowed.clone();
        https[1] = (ENV_SSO_JWKS_URL, "https://idp/jwks");
        assert!(with(&https).unwrap().sso.unwrap().danger_allow_http);
        let mut plain = sso.to_vec();
        plain[1] = (ENV_SSO_JWKS_URL, "https://idp/jwks");
        assert!(!with(&plain).unwrap().sso.unwrap().danger_allow_http);
        // Other schemes stay refused even with the flag.
        let mut ftp = allowed.clone();
        ftp[1] = (ENV_SSO_JWKS_URL, "ftp://idp/jwks");
        assert!(matches!(
            with(&ftp),
            Err(ConfigError::Invalid {
                var: ENV_SSO_JWKS_URL,
                ..
            })
        ));
        // Any value but 1 is refused, naming the variable and not the value.
        for bad in ["0", "true", "yes", "CANARY", " 1"] {
            let mut vars = sso.to_vec();
            vars.push((ENV_SSO_DANGER_ALLOW_HTTP, bad));
            let err = with(&vars).err().unwrap();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        var: ENV_SSO_DANGER_ALLOW_HTTP,
                        ..
                    }
                ),
                "{bad}: {err}"
            );
            let message = err.to_string();
            assert!(message.contains(ENV_SSO_DANGER_ALLOW_HTTP), "{message}");
            assert!(!message.contains("CANARY"), "{message}");
        }
        // The flag alone (no SSO) is a mistake, not silently ignored.
        assert!(matches!(
            with(&[(ENV_SSO_DANGER_ALLOW_HTTP, "1")]),
            Err(ConfigError::Missing {
                var: ENV_SSO_ISSUER,
                because: ENV_SSO_DANGER_ALLOW_HTTP,
            })
        ));
    }

    #[test]
    fn postgres_url_switches_the_store_and_is_not_in_debug() {
        let config = with(&[(ENV_DATABASE_URL, "postgres://u:CANARY@h/db")]).unwrap();
        assert!(matches!(config.database, DatabaseTarget::Postgres(_)));
        assert!(!format!("{config:?}").contains("CANARY"));
    }

    #[test]
    fn debug_never_prints_the_database_url() {
        let canary = "CANARY-pg-password-5c1d";
        let url = format!("postgres://app:{canary}@db-host-canary:5432/db");
        let config = with(&[(ENV_DATABASE_URL, &url)]).unwrap();
        let target = format!("{:?}", config.database);
        assert!(target.starts_with("Postgres"), "{target}");
        for shown in [target, format!("{config:?}")] {
            assert!(!shown.contains(canary), "the database URL was printed");
            assert!(
                !shown.contains("db-host-canary"),
                "the database URL was printed"
            );
        }
        let sqlite = with(&[]).unwrap();
        assert!(format!("{:?}", sqlite.database).contains("strongroom.db"));
    }

    #[test]
    fn sso_discovery_lifetime_typ_and_azp() {
        let base = [
            (ENV_SSO_ISSUER, "https://idp/realms/main"),
            (ENV_SSO_AUDIENCE, "app"),
        ];
        let vars = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            with(&v)
        };
        // Discovery: no JWKS URL needed, and none accepted.
        let s = vars(&[(ENV_SSO_DISCOVERY, "1")]).unwrap().sso.unwrap();
        assert_eq!(s.jwks_url, None);
        assert!(matches!(
            vars(&[
                (ENV_SSO_DISCOVERY, "1"),
                (ENV_SSO_JWKS_URL, "https://idp/jwks")
            ]),
            Err(ConfigError::Invalid {
                var: ENV_SSO_JWKS_URL,
                ..
            })
        ));
        // Discovery off: the JWKS URL stays required.
        assert!(matches!(
            vars(&[(ENV_SSO_DISCOVERY, "0")]),
            Err(ConfigError::Missing {
                var: ENV_SSO_JWKS_URL,
                ..
            })
        ));
        assert!(matches!(
            vars(&[(ENV_SSO_DISCOVERY, "CANARY")]),
            Err(ConfigError::Invalid {
                var: ENV_SSO_DISCOVERY,
                ..
            })
        ));
        // Discovery needs an https issuer (http only with the danger flag).
        let http_issuer = [
            (ENV_SSO_ISSUER, "http://127.0.0.1:9"),
            (ENV_SSO_AUDIENCE, "app"),
            (ENV_SSO_DISCOVERY, "1"),
        ];
        assert!(matches!(
            with(&http_issuer),
            Err(ConfigError::Invalid {
                var: ENV_SSO_ISSUER,
                ..
            })
        ));
        let mut allowed = http_issuer.to_vec();
        allowed.push((ENV_SSO_DANGER_ALLOW_HTTP, "1"));
        assert!(with(&allowed).unwrap().sso.unwrap().danger_allow_http);
        // Lifetime, typ and azp reach the settings.
        let s = vars(&[
            (ENV_SSO_DISCOVERY, "true"),
            (ENV_SSO_MAX_TOKEN_LIFETIME_SECS, "3600"),
            (ENV_SSO_TYP, "at+jwt"),
            (ENV_SSO_AZP, "web, cli"),
            (ENV_SSO_JWKS_COOLDOWN_SECS, "2"),
        ])
        .unwrap()
        .sso
        .unwrap();
        assert_eq!(s.jwks_cooldown, Some(std::time::Duration::from_secs(2)));
        assert_eq!(
            s.max_token_lifetime,
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(s.typ.as_deref(), Some("at+jwt"));
        assert_eq!(s.azp, ["web", "cli"]);
        let defaults = vars(&[(ENV_SSO_DISCOVERY, "1")]).unwrap().sso.unwrap();
        assert_eq!(
            (
                defaults.max_token_lifetime,
                defaults.typ,
                defaults.azp.len(),
                defaults.jwks_cooldown
            ),
            (None, None, 0, None)
        );
        for (var, bad) in [
            (ENV_SSO_MAX_TOKEN_LIFETIME_SECS, "0"),
            (ENV_SSO_MAX_TOKEN_LIFETIME_SECS, "2592001"),
            (ENV_SSO_MAX_TOKEN_LIFETIME_SECS, "1h-CANARY"),
            (ENV_SSO_TYP, "at jwt CANARY"),
            (ENV_SSO_AZP, "web,,CANARY"),
            (ENV_SSO_AZP, " , "),
            (ENV_SSO_JWKS_COOLDOWN_SECS, "0"),
            (ENV_SSO_JWKS_COOLDOWN_SECS, "3601"),
            (ENV_SSO_JWKS_COOLDOWN_SECS, "30s-CANARY"),
        ] {
            let err = vars(&[(ENV_SSO_DISCOVERY, "1"), (var, bad)]).err().unwrap();
            let message = err.to_string();
            assert!(message.contains(var), "{message}");
            assert!(!message.contains("CANARY"), "{message}");
        }
        // Without SSO_ISSUER, each of them is a mistake.
        for var in [
            ENV_SSO_DISCOVERY,
            ENV_SSO_MAX_TOKEN_LIFETIME_SECS,
            ENV_SSO_TYP,
            ENV_SSO_AZP,
            ENV_SSO_JWKS_COOLDOWN_SECS,
        ] {
            assert!(matches!(
                with(&[(var, "1")]),
                Err(ConfigError::Missing {
                    var: ENV_SSO_ISSUER,
                    ..
                })
            ));
        }
    }

    #[test]
    fn step_up_window_and_redis_url() {
        let c = with(&[]).unwrap();
        assert_eq!(c.step_up_window, std::time::Duration::from_secs(300));
        assert!(c.redis_url.is_none());
        let c = with(&[
            (ENV_STEP_UP_SECS, "60"),
            (ENV_REDIS_URL, "redis://:pw@127.0.0.1:6379/0"),
        ])
        .unwrap();
        assert_eq!(c.step_up_window, std::time::Duration::from_secs(60));
        assert!(!format!("{c:?}").contains("pw@"));
        for bad in ["0", "29", "3601", "x", "-5"] {
            assert!(with(&[(ENV_STEP_UP_SECS, bad)]).is_err(), "{bad}");
        }
        let err = with(&[(ENV_REDIS_URL, "http://secret-host:6379")]).unwrap_err();
        assert!(!err.to_string().contains("secret-host"));
    }

    #[test]
    fn rate_limits_defaults_switch_and_refusals() {
        let q = |burst, secs| throttle::Quota::new(burst, std::time::Duration::from_secs(secs));
        let defaults = with(&[]).unwrap().rate_limits.unwrap();
        assert_eq!(defaults.principal, q(600, 60).unwrap());
        assert_eq!(defaults.account, q(120, 60).unwrap());
        assert_eq!(defaults.address, q(60, 60).unwrap());
        let set = with(&[
            (ENV_RATE_LIMITS, "1"),
            (ENV_RATE_LIMIT_PRINCIPAL, "5/1"),
            (ENV_RATE_LIMIT_ACCOUNT, "1000000/86400"),
            (ENV_RATE_LIMIT_ADDRESS, "1/60"),
        ])
        .unwrap()
        .rate_limits
        .unwrap();
        assert_eq!(set.principal, q(5, 1).unwrap());
        assert_eq!(set.account, q(1_000_000, 86_400).unwrap());
        assert_eq!(set.address, q(1, 60).unwrap());
        assert!(
            with(&[(ENV_RATE_LIMITS, "0")])
                .unwrap()
                .rate_limits
                .is_none()
        );
        for (var, bad) in [
            (ENV_RATE_LIMITS, "maybe"),
            (ENV_RATE_LIMIT_PRINCIPAL, "0/60"),
            (ENV_RATE_LIMIT_PRINCIPAL, "600"),
            (ENV_RATE_LIMIT_ACCOUNT, "1000001/60"),
            (ENV_RATE_LIMIT_ACCOUNT, "10/0"),
            (ENV_RATE_LIMIT_ADDRESS, "10/86401"),
            (ENV_RATE_LIMIT_ADDRESS, "CANARY/60"),
            (ENV_RATE_LIMIT_ADDRESS, " 10/60"),
        ] {
            let err = with(&[(var, bad)]).err().unwrap();
            assert!(err.to_string().contains(var), "{var}={bad}: {err}");
            assert!(!err.to_string().contains("CANARY"), "{err}");
        }
        // A quota with the limits off is refused, naming the quota's variable.
        let err = with(&[(ENV_RATE_LIMITS, "0"), (ENV_RATE_LIMIT_ADDRESS, "10/60")])
            .err()
            .unwrap();
        assert!(err.to_string().contains(ENV_RATE_LIMIT_ADDRESS), "{err}");
    }

    #[test]
    fn token_settings_defaults_and_refusals() {
        let t = with(&[]).unwrap().tokens;
        assert!(t.issuer_defaulted);
        assert_eq!(t.issuer, "http://127.0.0.1:8080");
        assert_eq!(t.audience, DEFAULT_TOKEN_AUDIENCE);
        assert_eq!(t.access_ttl, std::time::Duration::from_secs(900));
        assert_eq!(t.alg, auth_core::token::SigningAlgorithm::EdDsa);
        assert!(t.epoch_check);
        assert_eq!(t.key_reload, std::time::Duration::from_secs(60));
        assert_eq!(t.refresh_absolute.as_secs(), 30 * 24 * 3600);
        assert_eq!(t.refresh_idle.as_secs(), 7 * 24 * 3600);
        // The default issuer names the bound port; a configured one is kept.
        let bound: SocketAddr = "0.0.0.0:41234".parse().unwrap();
        assert_eq!(
            with(&[(ENV_LISTEN_ADDR, "0.0.0.0:0")])
                .unwrap()
                .tokens
                .bound_to(bound)
                .issuer,
            "http://127.0.0.1:41234"
        );
        let t = with(&[
            (ENV_ISSUER, "https://api.example.com"),
            (ENV_TOKEN_AUDIENCE, "trading"),
            (ENV_ACCESS_TOKEN_TTL_SECS, "300"),
            (ENV_TOKEN_ALG, "ES256"),
            (ENV_TOKEN_EPOCH_CHECK, "0"),
            (ENV_TOKEN_KEY_RELOAD_SECS, "5"),
            (ENV_REFRESH_ABSOLUTE_SECS, "86400"),
            (ENV_REFRESH_IDLE_SECS, "3600"),
        ])
        .unwrap()
        .tokens;
        assert_eq!(t.bound_to(bound).issuer, "https://api.example.com");
        assert!(!t.issuer_defaulted && !t.epoch_check);
        assert_eq!(t.alg, auth_core::token::SigningAlgorithm::Es256);
        assert_eq!(t.access_ttl.as_secs(), 300);
        assert_eq!(
            (t.refresh_absolute.as_secs(), t.refresh_idle.as_secs()),
            (86400, 3600)
        );
        for (var, bad) in [
            (ENV_ISSUER, "ftp://x"),
            (ENV_ISSUER, "https://api.example.com/"),
            (ENV_ISSUER, "https://api.example.com?x=1"),
            (ENV_ACCESS_TOKEN_TTL_SECS, "59"),
            (ENV_ACCESS_TOKEN_TTL_SECS, "3601"),
            (ENV_TOKEN_ALG, "HS256"),
            (ENV_TOKEN_ALG, "RS256"),
            (ENV_TOKEN_EPOCH_CHECK, "maybe"),
            (ENV_TOKEN_KEY_RELOAD_SECS, "0"),
            (ENV_REFRESH_ABSOLUTE_SECS, "10"),
            (ENV_REFRESH_IDLE_SECS, "10"),
        ] {
            let err = with(&[(var, bad)]).err().unwrap();
            assert!(err.to_string().contains(var), "{var}={bad}: {err}");
            // (Short numbers occur in the reasons' ranges.)
            if bad.len() > 3 {
                assert!(!err.to_string().contains(bad), "value echoed: {err}");
            }
        }
        // Idle longer than absolute.
        assert!(
            with(&[
                (ENV_REFRESH_ABSOLUTE_SECS, "3600"),
                (ENV_REFRESH_IDLE_SECS, "7200")
            ])
            .is_err()
        );
    }

    #[test]
    fn sso_algorithms_need_the_issuer_and_valid_names() {
        let base = [
            (ENV_SSO_ISSUER, "https://idp.example.com"),
            (ENV_SSO_JWKS_URL, "https://idp.example.com/jwks"),
            (ENV_SSO_AUDIENCE, "a"),
        ];
        let mut vars = base.to_vec();
        vars.push((ENV_SSO_ALGORITHMS, "EdDSA, ES256"));
        let sso = with(&vars).unwrap().sso.unwrap();
        assert_eq!(
            sso.algorithms,
            [
                auth_core::sso::Algorithm::EdDSA,
                auth_core::sso::Algorithm::ES256
            ]
        );
        assert!(with(&base).unwrap().sso.unwrap().algorithms.is_empty());
        vars.pop();
        vars.push((ENV_SSO_ALGORITHMS, "EdDSA,nope"));
        assert!(with(&vars).is_err());
        assert!(with(&[(ENV_SSO_ALGORITHMS, "EdDSA")]).is_err());
    }

    #[test]
    fn hs256_secret_is_256_bits_hex_and_never_printed() {
        let hex = "9f".repeat(32);
        let config = with(&[(ENV_TOKEN_HS256_SECRET, &hex)]).unwrap();
        let secret = config.tokens.hs256.clone().unwrap();
        assert_eq!(secret.expose_secret(), [0x9f; 32]);
        let printed = format!("{config:?}");
        assert!(
            !printed.contains(&hex) && !printed.contains("159"),
            "{printed}"
        );
        for bad in ["9f".repeat(31), "zz".repeat(32)] {
            let err = with(&[(ENV_TOKEN_HS256_SECRET, &bad)]).err().unwrap();
            assert!(err.to_string().contains(ENV_TOKEN_HS256_SECRET));
            assert!(!err.to_string().contains(&bad));
        }
        assert!(with(&[(ENV_TOKEN_HS256_SECRET, &hex), (ENV_TOKEN_ALG, "EdDSA")]).is_err());
    }

    #[test]
    fn secret_files_replace_their_variable() {
        let files: HashMap<String, String> = [
            ("/run/secrets/token", "file-token-value\n"),
            ("/run/secrets/crlf", "crlf-value\r\n"),
            ("/run/secrets/empty", "\n"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let read = move |path: &str| files.get(path).cloned().map(Zeroizing::new);
        let resolve = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            read_secret_files(&move |name| map.get(name).cloned(), &read)
        };
        let got = resolve(&[("API_TOKEN_FILE", "/run/secrets/token")]).unwrap();
        assert_eq!(got[ENV_API_TOKEN].as_str(), "file-token-value");
        let got = resolve(&[("REDIS_URL_FILE", "/run/secrets/crlf")]).unwrap();
        assert_eq!(got[ENV_REDIS_URL].as_str(), "crlf-value");
        assert!(resolve(&[]).unwrap().is_empty());
        for (vars, named) in [
            (
                &[
                    ("API_TOKEN_FILE", "/run/secrets/token"),
                    (ENV_API_TOKEN, "inline"),
                ][..],
                "API_TOKEN_FILE",
            ),
            (
                &[("INTERNAL_SECRET_FILE", "/missing")][..],
                "INTERNAL_SECRET_FILE",
            ),
            (
                &[("STRONGROOM_MASTER_KEY_FILE", "/run/secrets/empty")][..],
                "STRONGROOM_MASTER_KEY_FILE",
            ),
        ] {
            let err = resolve(vars).unwrap_err().to_string();
            assert!(err.starts_with(named), "{err}");
            assert!(!err.contains("file-token-value") && !err.contains("inline"));
        }
    }

    #[test]
    fn production_refuses_weak_secrets_plain_http_sso_and_a_defaulted_issuer() {
        let issuer = (ENV_ISSUER, "https://api.example.com");
        let prod = (ENV_STRONGROOM_ENV, "production");
        let strong = "k3J9vQ2xW7mZp4Lr8Tn6Yb1Hc5Fd0Ga2";
        assert!(
            with(&[prod, issuer, (ENV_API_TOKEN, strong)])
                .unwrap()
                .production
        );
        assert!(!with(&[]).unwrap().production);
        let cases: [(&[(&str, &str)], &str); 5] = [
            (
                &[
                    prod,
                    issuer,
                    (ENV_API_TOKEN, "abababababababababababababababab"),
                ],
                ENV_API_TOKEN,
            ),
            (
                &[
                    prod,
                    issuer,
                    (ENV_INTERNAL_SECRET, "passwordpasswordpasswordpassword"),
                ],
                ENV_INTERNAL_SECRET,
            ),
            (
                &[
                    prod,
                    issuer,
                    (ENV_SSO_ISSUER, "http://127.0.0.1:9"),
                    (ENV_SSO_JWKS_URL, "http://127.0.0.1:9/jwks.json"),
                    (ENV_SSO_AUDIENCE, "trading-backend"),
                    (ENV_SSO_DANGER_ALLOW_HTTP, "1"),
                ],
                ENV_SSO_DANGER_ALLOW_HTTP,
            ),
            (&[prod], ENV_ISSUER),
            (&[(ENV_STRONGROOM_ENV, "prod")], ENV_STRONGROOM_ENV),
        ];
        for (vars, named) in cases {
            let err = with(vars).unwrap_err().to_string();
            assert!(err.starts_with(named), "{err}");
            assert!(
                !err.contains("abababab") && !err.contains("password"),
                "{err}"
            );
        }
        // The same values pass in development.
        with(&[(ENV_API_TOKEN, "abababababababababababababababab")]).unwrap();
    }
}
