//! The OpenAPI 3.1 document of every route: `GET /openapi.json`, committed as
//! `examples/trading-backend/openapi.json` (a test regenerates it and fails when it
//! differs; `STRONGROOM_UPDATE_OPENAPI=1` rewrites it).
//!
//! Each handler carries its own `#[utoipa::path]` (request body, the answers only it
//! gives). What every route of one kind answers, and which credentials it takes, is added
//! here from [`ROUTES`], the list of the router's routes with the requirement each is
//! mounted with: a unit test checks that list against the router's source, and that every
//! route in it is in the document.
//!
//! The request and answer bodies below are schemas only: the handlers read bodies field
//! by field ([`Body`](super::body::Body), which names the field in a refusal and wipes
//! secrets) and write them with `json!`. The schemathesis step of `.ci/run` checks every
//! real answer of a running server against this document.
//!
//! Refusals by authentication, grants and lookups (401, 403, 404, 503) may have an empty
//! body (the reason goes to the log, never to the caller) or `{"error": code}`: those
//! answers are documented without a media type, since either may come.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response as Answer, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

/// How a route is mounted: which credentials it takes and what its layers answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// No credential, no limit (health, readiness, JWKS, discovery, this document).
    Open,
    /// No credential; limited per client address (login, register, token routes).
    Address,
    /// The copy-trading webhook: the signature header is the credential; per address.
    Signature,
    /// Authenticated, scope `read` for API keys.
    Read,
    /// Authenticated, scope `manage` for API keys.
    Manage,
    /// Authenticated, interactive credentials only (session, access token, SSO JWT).
    Interactive,
    /// Authenticated; the scope follows the operation in the path (`read` or `trade`).
    Operation,
    /// The WebSocket: also a `token` query parameter; scope `read`.
    WebSocket,
    /// `X-Internal-Secret` only.
    Internal,
}

/// Every route of the router (`mod.rs`), as (method, path, how it is mounted). A unit
/// test reads the router's source and fails when this list and the router differ.
pub(crate) const ROUTES: &[(&str, &str, Access)] = &[
    ("get", "/healthz", Access::Open),
    ("get", "/readyz", Access::Open),
    ("get", "/openapi.json", Access::Open),
    ("get", "/.well-known/jwks.json", Access::Open),
    ("get", "/.well-known/openid-configuration", Access::Open),
    ("post", "/api/auth/register", Access::Address),
    ("post", "/api/auth/login", Access::Address),
    ("post", "/api/auth/mfa", Access::Address),
    ("post", "/api/auth/token", Access::Address),
    ("post", "/api/auth/refresh", Access::Address),
    ("post", "/api/auth/revoke", Access::Address),
    (
        "post",
        "/api/webhooks/copy-trading/{strategy_id}",
        Access::Signature,
    ),
    ("post", "/api/auth/logout", Access::Interactive),
    ("get", "/api/auth/me", Access::Read),
    ("post", "/api/auth/logout-all", Access::Interactive),
    ("post", "/api/auth/password", Access::Interactive),
    ("post", "/api/keys", Access::Interactive),
    ("post", "/api/auth/mfa/enroll", Access::Interactive),
    ("post", "/api/auth/mfa/confirm", Access::Interactive),
    ("post", "/api/auth/mfa/verify", Access::Interactive),
    ("post", "/api/auth/mfa/disable", Access::Interactive),
    ("get", "/api/keys", Access::Read),
    ("delete", "/api/keys/{id}", Access::Manage),
    ("post", "/api/accounts", Access::Interactive),
    ("get", "/api/accounts", Access::Read),
    ("delete", "/api/accounts/{id}", Access::Interactive),
    ("post", "/api/accounts/{id}/shares", Access::Interactive),
    (
        "delete",
        "/api/accounts/{id}/shares/{user_id}",
        Access::Interactive,
    ),
    ("post", "/api/exchange/{operation}", Access::Operation),
    ("post", "/api/secrets", Access::Manage),
    ("get", "/api/secrets", Access::Read),
    ("delete", "/api/secrets/{name}", Access::Manage),
    ("get", "/api/audit", Access::Read),
    ("get", "/api/risk", Access::Read),
    ("put", "/api/risk", Access::Interactive),
    (
        "put",
        "/api/accounts/{id}/live-trading",
        Access::Interactive,
    ),
    ("get", "/api/strategies", Access::Read),
    ("post", "/api/strategies", Access::Interactive),
    ("post", "/api/strategies/{id}/secret", Access::Interactive),
    (
        "post",
        "/api/strategies/{id}/followers",
        Access::Interactive,
    ),
    (
        "delete",
        "/api/strategies/{id}/followers/{account_id}",
        Access::Interactive,
    ),
    ("get", "/api/strategies/{id}/signals", Access::Read),
    ("get", "/api/following/signals", Access::Read),
    ("get", "/ws", Access::WebSocket),
    ("post", "/internal/exchange-credentials", Access::Internal),
];

/// The document's generator.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Strongroom trading backend",
        description = "The Strongroom reference service (examples/trading-backend). Generated from the code: see the README, \"OpenAPI document\"."
    ),
    paths(
        super::healthz,
        super::ready::readyz,
        serve,
        super::tokens::jwks,
        super::tokens::discovery,
        super::auth::register,
        super::auth::login,
        super::mfa::complete,
        super::tokens::token,
        super::tokens::refresh,
        super::tokens::revoke,
        super::copy_trading::webhook,
        super::auth::logout,
        super::auth::me,
        super::tokens::logout_all,
        super::auth::change_password,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::mfa::enroll,
        super::mfa::confirm,
        super::mfa::verify,
        super::mfa::disable,
        super::accounts::create,
        super::accounts::list,
        super::accounts::remove,
        super::accounts::share,
        super::accounts::unshare,
        super::risk::live_trading,
        super::exchange::run,
        super::secrets::put,
        super::secrets::list,
        super::secrets::remove,
        super::audit::mine,
        super::risk::get,
        super::risk::put,
        super::strategies::list,
        super::strategies::create,
        super::strategies::rotate,
        super::strategies::follow,
        super::strategies::unfollow,
        super::strategies::signals,
        super::strategies::following_signals,
        super::ws::upgrade,
        super::internal::credentials,
    ),
    modifiers(&Mounted),
    tags(
        (name = "operations", description = "Health, readiness and this document."),
        (name = "auth", description = "Users, sessions, access and refresh tokens, the second factor."),
        (name = "keys", description = "The caller's API keys."),
        (name = "accounts", description = "Exchange accounts, their sharing and live-trading switch."),
        (name = "exchange", description = "Operations on an exchange account."),
        (name = "secrets", description = "The caller's sealed secrets."),
        (name = "audit", description = "The caller's audit events."),
        (name = "risk", description = "The caller's risk limits."),
        (name = "copy-trading", description = "Strategies, followers, signals and the signal webhook."),
        (name = "internal", description = "Service-to-service routes."),
    )
)]
pub(crate) struct ApiDoc;

/// The document as pretty JSON with a final newline, as committed.
///
/// # Errors
///
/// Never in practice: serialising the document's own types into a string.
pub(crate) fn json() -> Result<String, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    require_retry_after(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc)?;
    text.push('\n');
    Ok(text)
}

/// Marks every documented `Retry-After` header `required` (utoipa's header object has no
/// such field): every 429 and 503 of the service carries it.
fn require_retry_after(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut().filter_map(Value::as_object_mut) {
        for operation in item.values_mut() {
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for answer in responses.values_mut() {
                if let Some(header) = answer.pointer_mut("/headers/Retry-After") {
                    header["required"] = Value::Bool(true);
                }
            }
        }
    }
}

/// `GET /openapi.json`: this document (unauthenticated, like `/healthz`).
#[utoipa::path(
    get, operation_id = "openapi",
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document of this service.", body = Object, content_type = "application/json"))
)]
pub(crate) async fn serve() -> Response {
    static DOCUMENT: OnceLock<Option<String>> = OnceLock::new();
    match DOCUMENT.get_or_init(|| json().ok()) {
        Some(text) => {
            let mut response = text.clone().into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        None => super::error::ApiError::UNAVAILABLE.into_response(),
    }
}

/// Adds the security schemes, and to each route what its kind of mounting answers.
struct Mounted;

const SESSION: &str = "sessionToken";
const COOKIE: &str = "sessionCookie";
const ACCESS_TOKEN: &str = "accessToken";
const SSO: &str = "ssoToken";
const STATIC_TOKEN: &str = "staticToken";
const API_KEY: &str = "apiKey";
const API_KEY_BEARER: &str = "apiKeyBearer";
const WS_TOKEN: &str = "wsQueryToken";
const INTERNAL: &str = "internalSecret";
const SIGNATURE: &str = "webhookSignature";

fn bearer(format: Option<&str>, description: &str) -> SecurityScheme {
    let mut http = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(description));
    if let Some(format) = format {
        http = http.bearer_format(format);
    }
    SecurityScheme::Http(http.build())
}

fn api_key(key: ApiKey) -> SecurityScheme {
    SecurityScheme::ApiKey(key)
}

fn schemes() -> Vec<(&'static str, SecurityScheme)> {
    vec![
        (
            SESSION,
            bearer(
                None,
                "A session token from `POST /api/auth/login` (or `POST /api/auth/mfa`).",
            ),
        ),
        (
            COOKIE,
            api_key(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-strongroom-session",
                "The session in the browser cookie (`STRONGROOM_COOKIE_SESSIONS=1`, login with `\"cookie\": true`); a state-changing request must pass the CSRF check (`Origin` in `STRONGROOM_ALLOWED_ORIGINS`, else 403 `{\"error\":\"csrf\"}`).",
            ))),
        ),
        (
            ACCESS_TOKEN,
            bearer(
                Some("JWT"),
                "An access token of this service (`POST /api/auth/token`, `POST /api/auth/refresh`), verified with `/.well-known/jwks.json`.",
            ),
        ),
        (
            SSO,
            bearer(
                Some("JWT"),
                "A JWT of the configured SSO issuer (`SSO_ISSUER`, `SSO_JWKS_URL` or `SSO_DISCOVERY`, `SSO_AUDIENCE`).",
            ),
        ),
        (
            STATIC_TOKEN,
            bearer(
                None,
                "The bootstrap `API_TOKEN` (server to server; user `bootstrap-admin`).",
            ),
        ),
        (
            API_KEY,
            api_key(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (`POST /api/keys`), limited to its scopes (`read`, `trade`, `manage`).",
            ))),
        ),
        (
            API_KEY_BEARER,
            bearer(
                None,
                "An API key given as `Authorization: Bearer <key>` instead of `X-API-Key`.",
            ),
        ),
        (
            WS_TOKEN,
            api_key(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "`GET /ws` only (browsers cannot set headers on a WebSocket): any bearer credential as the `token` query parameter.",
            ))),
        ),
        (
            INTERNAL,
            api_key(ApiKey::Header(ApiKeyValue::with_description(
                "X-Internal-Secret",
                "The `INTERNAL_SECRET` of `/internal/*` (without it configured, 503).",
            ))),
        ),
        (
            SIGNATURE,
            api_key(ApiKey::Header(ApiKeyValue::with_description(
                "X-Strongroom-Signature",
                "The copy-trading webhook's signature over the raw body and a timestamp, with the strategy's webhook secret (auth-core's webhook scheme).",
            ))),
        ),
    ]
}

/// The credentials a route of kind `access` takes (each one alone is enough).
fn security(access: Access) -> Vec<SecurityRequirement> {
    let one = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    let interactive = [SESSION, COOKIE, ACCESS_TOKEN, SSO];
    let scoped = [
        SESSION,
        COOKIE,
        ACCESS_TOKEN,
        SSO,
        STATIC_TOKEN,
        API_KEY,
        API_KEY_BEARER,
    ];
    match access {
        Access::Open | Access::Address => Vec::new(),
        Access::Signature => vec![one(SIGNATURE)],
        Access::Interactive => interactive.into_iter().map(one).collect(),
        Access::Read | Access::Manage | Access::Operation => scoped.into_iter().map(one).collect(),
        Access::WebSocket => scoped.into_iter().chain([WS_TOKEN]).map(one).collect(),
        Access::Internal => vec![one(INTERNAL)],
    }
}

/// `Retry-After` in whole seconds.
fn retry_after() -> utoipa::openapi::header::Header {
    utoipa::openapi::header::HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ))
        .description(Some("Seconds to wait before trying again."))
        .build()
}

/// The JSON error body (`ApiError`).
fn error_content(description: &str) -> Answer {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                ))))
                .build(),
        )
        .build()
}

/// What the layers of a route of kind `access` may answer, whatever the handler does.
fn layer_answers(access: Access, has_body: bool) -> Vec<(&'static str, Answer, bool)> {
    // (status, answer, mixed: may also come without a body).
    let mut out = Vec::new();
    let authenticated = matches!(
        access,
        Access::Read
            | Access::Manage
            | Access::Interactive
            | Access::Operation
            | Access::WebSocket
            | Access::Internal
    );
    if authenticated {
        out.push((
            "401",
            ResponseBuilder::new()
                .description("No credential (empty body, `WWW-Authenticate: Bearer`); with `STRONGROOM_BEARER_CHALLENGE=1` also an invalid, expired or revoked one.")
                .build(),
            true,
        ));
        out.push((
            "403",
            ResponseBuilder::new()
                .description("Refused: an invalid, expired or revoked credential (empty body), or `{\"error\": code}` with `insufficient_scope`, `interactive_session_required`, `password_change_required` or `csrf`.")
                .build(),
            true,
        ));
    }
    if access != Access::Open && access != Access::Internal {
        let mut limited = error_content(
            "`{\"error\": \"rate_limited\"}` with `Retry-After` and the `RateLimit-Policy` / `RateLimit` fields: the request limits.",
        );
        limited
            .headers
            .insert("Retry-After".to_owned(), RefOr::T(retry_after()));
        out.push(("429", limited, false));
    }
    if has_body {
        out.push((
            "400",
            error_content(
                "`{\"error\": \"invalid_json\"}` (not a JSON object), or `{\"error\": \"invalid_field\", \"field\": name}` naming the first refused field.",
            ),
            false,
        ));
        out.push((
            "413",
            error_content("`{\"error\": \"body_too_large\"}`: more than 64 KiB."),
            false,
        ));
    }
    if authenticated {
        out.push((
            "500",
            error_content(
                "`{\"error\": \"key_not_held\"}`: a stored value (an exchange credential, a user or webhook secret) sealed under a key-encryption key this service does not hold: a configuration error, which start-up refuses when its probe meets one.",
            ),
            false,
        ));
    }
    out.push((
        "503",
        ResponseBuilder::new()
            .description("Unavailable (a store or backend did not answer; `Retry-After`): an empty body, or `{\"error\": code}` with `timeout` or `rate_limiter_unavailable`.")
            .header("Retry-After", retry_after())
            .build(),
        true,
    ));
    out
}

fn operation_mut<'a>(item: &'a mut PathItem, method: &str) -> Option<&'a mut Operation> {
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "put" => item.put.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }
}

/// Merges `layer` into the handler's answer for the same status: both descriptions, and no
/// media type when either may come without a body.
fn merge(own: &mut RefOr<Answer>, layer: Answer, mixed: bool) {
    if let RefOr::T(own) = own {
        if !own.description.contains(&layer.description) {
            own.description = format!("{} Or: {}", own.description, layer.description);
        }
        for (name, header) in layer.headers {
            own.headers.entry(name).or_insert(header);
        }
        if mixed {
            own.content.clear();
        } else if own.content.is_empty() {
            own.content = layer.content;
        }
    }
}

impl Modify for Mounted {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, scheme) in schemes() {
            components.add_security_scheme(name, scheme);
        }
        components
            .schemas
            .insert("ErrorBody".to_owned(), ErrorBody::schema());
        components
            .schemas
            .insert("Decimal".to_owned(), Decimal::schema());
        for (method, path, access) in ROUTES {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let Some(operation) = operation_mut(item, method) else {
                continue;
            };
            let has_body = operation.request_body.is_some();
            for (status, answer, mixed) in layer_answers(*access, has_body) {
                match operation.responses.responses.get_mut(status) {
                    Some(own) => merge(own, answer, mixed),
                    None => {
                        operation
                            .responses
                            .responses
                            .insert(status.to_owned(), RefOr::T(answer));
                    }
                }
            }
            let security = security(*access);
            operation.security = Some(if security.is_empty() {
                // Explicitly none: no credential is read.
                vec![SecurityRequirement::default()]
            } else {
                security
            });
        }
    }
}

/// Every error body: `{"error": code}`, with `field` (400 `invalid_field`) or `limit`
/// (403 `risk_limit`).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only: ApiError writes this body")]
pub(crate) struct ErrorBody {
    /// The stable reason code (`invalid_field`, `invalid_json`, `rate_limited`, ...).
    error: String,
    /// With `invalid_field`: the refused field's name (never its value).
    field: Option<String>,
    /// With `risk_limit`: `max_order_notional` or `daily_cap`.
    limit: Option<String>,
}

/// A positive decimal amount: a string of digits with at most 8 places (`"0.5"`,
/// `"1500.12345678"`), or a JSON number read exactly from its digits (`0.001`, `1e-8`).
pub(crate) struct Decimal;

impl PartialSchema for Decimal {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^[0-9]+(\.[0-9]{1,8})?$"))
                    .max_length(Some(32))
                    .build(),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0.0))
                    .build(),
            )
            .description(Some(
                "A positive decimal: a string of digits with at most 8 places, or a JSON number read exactly from its digits.",
            ))
            .into()
    }
}

impl ToSchema for Decimal {}

// Request and answer bodies (schemas only; see the module docs).

/// `GET /readyz`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(example = "ready")]
    status: String,
    /// Each check: `ok` or `down`.
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    checks: Value,
}

/// `POST /api/auth/register`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Credentials {
    /// The user's email.
    #[schema(max_length = 254)]
    email: String,
    /// The password (1 to 1024 bytes; auth-core's password policy applies).
    #[schema(max_length = 1024, format = Password)]
    password: String,
}

/// `POST /api/auth/login`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct LoginRequest {
    /// The user's email.
    #[schema(max_length = 254)]
    email: String,
    /// The password.
    #[schema(max_length = 1024, format = Password)]
    password: String,
    /// `true`: the session in the `__Host-` cookie instead of the body (only with
    /// `STRONGROOM_COOKIE_SESSIONS=1`).
    cookie: Option<bool>,
}

/// `201` of `POST /api/auth/register`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Registered {
    /// The new user's id.
    user_id: String,
    /// The normalised email.
    email: String,
}

/// A session: the token in the body, or (`cookie: true`) in `Set-Cookie` only.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct SessionAnswer {
    /// The session token (absent when it went into the cookie).
    token: Option<String>,
    /// When the session ends, unix seconds.
    expires_at: i64,
    /// Present and `true` when the session is in the cookie.
    cookie: Option<bool>,
    /// Present and `true`: a restricted session, good only for
    /// `POST /api/auth/password` and logout until the password is changed.
    password_change_required: Option<bool>,
}

/// A login of a user with a second factor: finish it with `POST /api/auth/mfa`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct MfaRequired {
    /// Always `true`.
    mfa_required: bool,
    /// The challenge to send back with a code.
    mfa_token: String,
}

/// A session, or a second step to take.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) enum LoginAnswer {
    /// The session.
    Session(SessionAnswer),
    /// The second factor is required.
    Mfa(MfaRequired),
}

/// An access token and its refresh token (RFC 6749 section 5.1).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct TokenPair {
    /// The access token (a JWT).
    access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// The refresh token (single use: `POST /api/auth/refresh`).
    refresh_token: String,
}

/// The token pair, or a second step to take.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) enum TokenAnswer {
    /// The pair.
    Pair(TokenPair),
    /// The second factor is required.
    Mfa(MfaRequired),
}

/// What `POST /api/auth/mfa` finishes into: the answer of the login it continues.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) enum MfaAnswer {
    /// A login begun at `POST /api/auth/login`.
    Session(SessionAnswer),
    /// A login begun at `POST /api/auth/token`.
    Pair(TokenPair),
}

/// `POST /api/auth/mfa`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct MfaCompleteRequest {
    /// From the first step's answer.
    #[schema(max_length = 512)]
    mfa_token: String,
    /// A TOTP code or a recovery code.
    #[schema(max_length = 64)]
    code: String,
    /// As for login.
    cookie: Option<bool>,
}

/// `POST /api/auth/refresh`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct RefreshRequest {
    /// The current refresh token.
    #[schema(max_length = 4096)]
    refresh_token: String,
}

/// `POST /api/auth/revoke` (RFC 7009).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct RevokeRequest {
    /// A refresh token (anything else is accepted and ignored).
    #[schema(max_length = 4096)]
    token: String,
}

/// `GET /api/auth/me`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Me {
    /// The user id.
    user_id: String,
    /// The email; `null` for the static token and internal callers.
    email: Option<String>,
    /// How the request authenticated (`session`, `api_key`, `access_token`, ...).
    auth_method: String,
}

/// `POST /api/auth/password`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct PasswordChange {
    /// The current password.
    #[schema(max_length = 1024, format = Password)]
    old_password: String,
    /// The new one (must differ).
    #[schema(max_length = 1024, format = Password)]
    new_password: String,
}

/// `POST /api/auth/mfa/enroll`: shown once.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Enrollment {
    /// For an authenticator app's QR code.
    otpauth_uri: String,
    /// The TOTP secret, base32.
    secret: String,
}

/// A second-factor code.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct CodeRequest {
    /// A TOTP code (or, for verify, a recovery code).
    #[schema(max_length = 64)]
    code: String,
}

/// `POST /api/auth/mfa/confirm`: shown once.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct RecoveryCodes {
    /// Ten single-use recovery codes.
    recovery_codes: Vec<String>,
}

/// `POST /api/auth/mfa/disable`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct MfaDisable {
    /// The password.
    #[schema(max_length = 1024, format = Password)]
    password: String,
    /// A TOTP or recovery code.
    #[schema(max_length = 64)]
    code: String,
}

/// `POST /api/keys`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct NewKey {
    /// A label (default `default`).
    #[schema(max_length = 64)]
    name: Option<String>,
    /// `read`, `trade`, `manage`; none: unscoped (as the creator).
    scopes: Option<Vec<String>>,
}

/// `201` of `POST /api/keys`: the key is shown once.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct CreatedKey {
    /// The key's id.
    id: String,
    /// The key (for `X-API-Key`).
    api_key: String,
}

/// One API key's metadata.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct KeyInfo {
    /// The key's id.
    id: String,
    /// Its label.
    name: String,
    /// Its scopes (empty: unscoped).
    scopes: Vec<String>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds, or `null`.
    last_used_at: Option<i64>,
    /// Unix seconds, or `null`.
    revoked_at: Option<i64>,
}

/// `GET /api/keys`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct KeyList {
    /// The caller's keys.
    keys: Vec<KeyInfo>,
}

/// `POST /api/accounts`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct NewAccount {
    /// The venue (`paper`).
    #[schema(max_length = 32, example = "paper")]
    exchange: String,
    /// A label, no control characters.
    #[schema(max_length = 64)]
    label: String,
    /// The exchange API key.
    #[schema(max_length = 1024)]
    api_key: String,
    /// The exchange API secret.
    #[schema(max_length = 1024, format = Password)]
    secret: String,
    /// The exchange passphrase, for venues that have one.
    #[schema(max_length = 1024, format = Password)]
    passphrase: Option<String>,
    /// `true`: the key may only read.
    read_only: bool,
}

/// An exchange account's metadata.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Account {
    /// `acc_` and 32 hex digits.
    id: String,
    /// The venue.
    exchange: String,
    /// The label.
    label: String,
    /// The credential may only read.
    read_only: bool,
    /// The caller's level on it: `read` or `trade`.
    access_level: String,
    /// `true` when shared with the caller (not owned).
    shared: bool,
    /// Unix seconds.
    created_at: i64,
}

/// `GET /api/accounts`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct AccountList {
    /// Owned and shared accounts.
    accounts: Vec<Account>,
}

/// `POST /api/accounts/{id}/shares`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct NewShare {
    /// The grantee's email.
    #[schema(max_length = 254)]
    email: String,
    /// `read` or `trade`.
    #[schema(example = "read")]
    level: String,
    /// When the share ends, unix seconds (in the future).
    expires_at: Option<i64>,
}

/// `201` of `POST /api/accounts/{id}/shares`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Share {
    /// The account.
    account_id: String,
    /// The grantee.
    user_id: String,
    /// `read` or `trade`.
    level: String,
    /// Unix seconds, or `null`.
    expires_at: Option<i64>,
}

/// `PUT /api/accounts/{id}/live-trading`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct LiveTradingRequest {
    /// The switch.
    enabled: bool,
}

/// `200` of `PUT /api/accounts/{id}/live-trading`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct LiveTrading {
    /// The account.
    account_id: String,
    /// The switch, as now stored.
    live_trading: bool,
}

/// `POST /api/exchange/{operation}`: the account, and the operation's parameters
/// (for `create_order`: `symbol`, `side` `buy`/`sell`, `type` `market`/`limit`, `amount`,
/// `price`, amounts as [`Decimal`]s).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct ExchangeRequest {
    /// The account.
    #[schema(max_length = 128)]
    account_id: String,
    /// `read` or `trade`: the level to act at (may raise the operation's).
    want: Option<String>,
}

/// `200` of `POST /api/exchange/{operation}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct ExchangeAnswer {
    /// The operation.
    operation: String,
    /// The account.
    account_id: String,
    /// `create_order` only: `true` when the order was simulated (no limits, or live
    /// trading off).
    dry_run: Option<bool>,
    /// The venue's answer.
    result: Value,
}

/// `POST /api/secrets`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct NewSecret {
    /// The secret's name.
    #[schema(max_length = 128)]
    name: String,
    /// The value (at most 16 KiB), sealed at rest.
    #[schema(max_length = 16384, format = Password)]
    value: String,
}

/// `201` of `POST /api/secrets`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct StoredSecret {
    /// The name.
    name: String,
}

/// One secret's metadata (never its value).
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct SecretInfo {
    /// The name.
    name: String,
    /// The key-encryption key it is sealed under.
    key: String,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    updated_at: i64,
}

/// `GET /api/secrets`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct SecretList {
    /// The caller's secrets.
    secrets: Vec<SecretInfo>,
}

/// Who did it.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct AuditActor {
    /// The principal (a user id, `strategy:<id>`, ...), or `null` when anonymous.
    principal: Option<String>,
    /// How it authenticated.
    method: Option<String>,
}

/// One audit event.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct AuditEvent {
    /// Position in the log.
    seq: i64,
    /// Unix milliseconds.
    at: i64,
    /// What was done (`login.success`, `api_key.create`, ...).
    action: String,
    /// `success`, `refused` or `failed`.
    outcome: String,
    /// The reason code of a refusal or failure.
    reason: Option<String>,
    /// What it was done to.
    target: Option<String>,
    /// Who.
    actor: AuditActor,
    /// The request's id.
    request_id: Option<String>,
}

/// `GET /api/audit`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct AuditList {
    /// Newest first.
    events: Vec<AuditEvent>,
}

/// `GET /api/risk` and the answer of `PUT /api/risk`: decimal strings.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct RiskLimits {
    /// The largest order's notional; `null` when never set (every order a dry run).
    max_order_notional: Option<String>,
    /// The daily cap of notional; `null` when never set.
    daily_cap: Option<String>,
    /// Committed today.
    used_today: String,
    /// Reserved by orders in flight today.
    reserved_today: String,
}

/// `PUT /api/risk`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct RiskLimitsRequest {
    /// The largest order's notional.
    max_order_notional: Decimal,
    /// The daily cap.
    daily_cap: Decimal,
}

/// `POST /api/strategies`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct NewStrategy {
    /// The strategy's name.
    #[schema(max_length = 64)]
    name: String,
}

/// `201` of `POST /api/strategies`: the webhook secret is shown once.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct CreatedStrategy {
    /// `stg_` and 32 hex digits.
    id: String,
    /// The name.
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// The webhook secret.
    webhook_secret: String,
}

/// `200` of `POST /api/strategies/{id}/secret`: the new secret is shown once.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct RotatedSecret {
    /// The strategy.
    id: String,
    /// The new current secret.
    webhook_secret: String,
    /// Until when the previous secret still verifies, unix seconds (`null`: no grace).
    previous_valid_until: Option<i64>,
}

/// One strategy.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct StrategyInfo {
    /// The strategy.
    id: String,
    /// Its name.
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// Follower accounts.
    followers: i64,
}

/// `GET /api/strategies`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct StrategyList {
    /// The caller's strategies.
    strategies: Vec<StrategyInfo>,
}

/// `201` of `POST /api/strategies/{id}/followers`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Follower {
    /// The strategy.
    strategy_id: String,
    /// The account.
    account_id: String,
    /// A decimal string, or `null`.
    max_order_notional: Option<String>,
    /// Unix seconds, or `null`.
    expires_at: Option<i64>,
}

/// One signal, as its strategy's owner sees it.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct Signal {
    /// `sig_` and 32 hex digits.
    id: String,
    /// Unix seconds.
    created_at: i64,
    /// `received`, `executed`, `rate_limited` or `invalid`.
    status: String,
    /// The parsed request, or `null`.
    request: Value,
    /// The per-account results as answered to the sender.
    results: Value,
}

/// `GET /api/strategies/{id}/signals`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct SignalList {
    /// Newest first, at most 100.
    signals: Vec<Signal>,
}

/// One signal that touched the caller's accounts.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct FollowedSignal {
    /// The signal.
    id: String,
    /// Its strategy.
    strategy_id: String,
    /// Unix seconds.
    created_at: i64,
    /// The parsed request, or `null`.
    request: Value,
    /// The results of the caller's own accounts.
    results: Vec<Value>,
}

/// `GET /api/following/signals`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct FollowedSignalList {
    /// Newest first, at most 100.
    signals: Vec<FollowedSignal>,
}

/// `202` of the webhook.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct SignalAccepted {
    /// The signal's id.
    signal_id: String,
    /// Per follower account: `{account_id, status, error?, order_id?, dry_run?}`.
    results: Vec<Value>,
}

/// `200` of the webhook for a replayed delivery: nothing ran.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct SignalDuplicate {
    /// Always `true`.
    duplicate: bool,
    /// The first delivery's signal id.
    signal_id: String,
}

/// `POST /internal/exchange-credentials`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub(crate) struct CredentialRequest {
    /// The account.
    #[schema(max_length = 128)]
    account_id: String,
    /// The user on whose behalf.
    #[schema(max_length = 128)]
    user_id: String,
    /// `read` or `trade`.
    want: String,
}

/// Bodies with an optional [`Decimal`]: utoipa's derive names `Decimal` by a qualified
/// path in its impl, which the workspace's `unused_qualifications` refuses.
#[allow(
    unused_qualifications,
    reason = "utoipa's derive writes `Option<Decimal>` with a qualified path"
)]
mod optional_amounts {
    use super::{Decimal, ToSchema};

    /// `POST /api/strategies/{id}/followers`.
    #[derive(ToSchema)]
    #[allow(dead_code, reason = "a schema only")]
    pub(crate) struct NewFollower {
        /// The caller's own account.
        #[schema(max_length = 128)]
        account_id: String,
        /// Caps each of the strategy's orders on the account.
        max_order_notional: Option<Decimal>,
        /// When the subscription ends, unix seconds.
        expires_at: Option<i64>,
    }

    /// The webhook's signal: one order, placed on every follower account.
    #[derive(ToSchema)]
    #[allow(dead_code, reason = "a schema only")]
    pub(crate) struct SignalRequest {
        /// The market (`BTC/USDT`).
        symbol: String,
        /// `buy` or `sell`.
        side: String,
        /// `market` (default) or `limit`.
        #[schema(rename = "type")]
        kind: Option<String>,
        /// The amount.
        amount: Decimal,
        /// The limit price (`limit` orders).
        price: Option<Decimal>,
    }
}

pub(crate) use optional_amounts::{NewFollower, SignalRequest};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The (method, path) of every `.route(...)` in the router's source.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let mut out = BTreeSet::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let text = rest.trim_start();
            let Some(text) = text.strip_prefix('"') else {
                continue;
            };
            let Some(end) = text.find('"') else { continue };
            let path = &text[..end];
            let after = text[end + 1..]
                .trim_start()
                .trim_start_matches(',')
                .trim_start();
            let method = after
                .split('(')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            out.insert((method, path.to_owned()));
        }
        out
    }

    /// The requirement a route is mounted with in the router's source, if any.
    fn requirement_in_source(method: &str, path: &str) -> Option<&'static str> {
        let source = include_str!("mod.rs");
        let needle = format!("\"{path}\"");
        source.match_indices(&needle).find_map(|(at, _)| {
            let tail = &source[at + needle.len()..];
            let call = tail.trim_start().trim_start_matches(',').trim_start();
            if !call.starts_with(&format!("{method}(")) {
                return None;
            }
            let end = call.find(")\n").unwrap_or(call.len());
            let call = &call[..end.min(200)];
            ["READ", "MANAGE", "INTERACTIVE"]
                .into_iter()
                .find(|r| call.contains(&format!("route_layer({r})")))
                .or(Some("none"))
        })
    }

    #[test]
    fn the_route_list_is_the_router() {
        let listed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        let routed = routes_in_source();
        assert!(
            routed.len() > 40,
            "the router's source was not read: {routed:?}"
        );
        let missing: Vec<_> = routed.difference(&listed).collect();
        let extra: Vec<_> = listed.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "openapi::ROUTES and the router differ: routed but not listed {missing:?}, listed but not routed {extra:?}"
        );
        for (method, path, access) in ROUTES {
            let declared = requirement_in_source(method, path);
            let expected = match access {
                Access::Read | Access::WebSocket => "READ",
                Access::Manage => "MANAGE",
                Access::Interactive => "INTERACTIVE",
                _ => "none",
            };
            assert_eq!(
                declared,
                Some(expected),
                "{method} {path}: listed as {access:?}, the router mounts it with {declared:?}"
            );
        }
    }

    #[test]
    fn every_route_is_in_the_document() {
        let doc = ApiDoc::openapi();
        let mut missing = Vec::new();
        for (method, path, _) in ROUTES {
            let found = doc
                .paths
                .paths
                .get(*path)
                .is_some_and(|item| match *method {
                    "get" => item.get.is_some(),
                    "post" => item.post.is_some(),
                    "put" => item.put.is_some(),
                    "delete" => item.delete.is_some(),
                    _ => false,
                });
            if !found {
                missing.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document (add #[utoipa::path] to the handler and list it in ApiDoc's paths): {missing:?}"
        );
        let documented: usize = doc
            .paths
            .paths
            .values()
            .map(|i| {
                [
                    i.get.is_some(),
                    i.post.is_some(),
                    i.put.is_some(),
                    i.delete.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count()
            })
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "the document has operations no route serves"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_security_on_every_operation() {
        let doc: Value = serde_json::from_str(&json().unwrap()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = BTreeSet::new();
        for (method, path, _) in ROUTES {
            let op = &doc["paths"][path][method];
            assert!(op["security"].is_array(), "{method} {path}: no security");
            assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                ids.insert(id.to_owned()),
                "{method} {path}: operationId {id:?} missing or not unique"
            );
        }
    }

    /// The committed `openapi.json` is the document the code generates.
    #[test]
    fn the_committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = json().unwrap();
        if std::env::var_os("STRONGROOM_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is not the document the code generates. Regenerate it with\n\n    \
             STRONGROOM_UPDATE_OPENAPI=1 cargo test -p trading-backend --all-features --lib openapi::\n\n\
             and commit the result.",
            path.display()
        );
    }
}
