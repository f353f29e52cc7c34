//! `GET /readyz`: whether this instance can serve requests now. `/healthz` stays a
//! liveness check (the process answers); `/readyz` checks what every request depends on,
//! so that a load balancer takes an instance out of rotation while its database, its
//! shared limiter store or its key-encryption backend is down.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crypto_envelope::{EncryptionContext, Envelope};
use serde_json::{Map, Value, json};

use super::Shared;
use super::metrics::ReasonCode;
use crate::db::Db;

/// Longest time one check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The encryption context of the probe value (sealed, then dropped: never stored).
const PROBE_PURPOSE: &str = "trading-backend.readiness-probe";

/// What `/readyz` checks.
#[derive(Debug)]
pub(crate) struct Readiness {
    /// The service database (`SELECT 1`).
    pub(crate) db: Db,
    /// The shared limiter store (`PING` / `SELECT 1`); `None` when it lives in memory.
    pub(crate) limiter: Option<throttle::Store>,
    /// The key-encryption backend: a throwaway value is sealed (one wrap).
    pub(crate) envelope: Envelope,
    /// cred-cache's subscription to the other instances' invalidations (`REDIS_URL`);
    /// held here for the life of the service. While it is down the cache keeps nothing
    /// (cred-cache fails closed), so it counts as not ready.
    pub(crate) invalidation: Option<Arc<cred_cache::redis::Subscription>>,
}

impl Readiness {
    /// The shared limiter store, or `None` for one in this process's memory.
    pub(crate) fn shared_store(store: &throttle::Store) -> Option<throttle::Store> {
        match store {
            throttle::Store::Memory(_) => None,
            other => Some(other.clone()),
        }
    }
}

async fn within<F, E>(check: F) -> bool
where
    F: Future<Output = Result<(), E>>,
{
    matches!(tokio::time::timeout(CHECK_TIMEOUT, check).await, Ok(Ok(())))
}

async fn database(db: &Db) -> Result<(), sqlx::Error> {
    match db {
        #[cfg(feature = "sqlite")]
        Db::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
        #[cfg(feature = "postgres")]
        Db::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
    }
}

async fn key_backend(envelope: &Envelope) -> Result<(), ()> {
    let context = EncryptionContext::new()
        .with("purpose", PROBE_PURPOSE)
        .map_err(|_| ())?;
    envelope
        .seal(b"ready", &context)
        .await
        .map(|_| ())
        .map_err(|_| ())
}

/// `GET /readyz`: 200 `{"status":"ready","checks":{...}}` when every check passes, else
/// 503 `{"status":"unavailable","checks":{...}}` (code `not_ready`); each check is
/// `"ok"` or `"down"` (never an error text), within 2 s, run concurrently. The 503 carries
/// `Retry-After`, as every 503 of the service.
#[utoipa::path(
    get, operation_id = "ready_readyz", path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Every check passed.", body = super::openapi::Readiness),
        (status = 503, description = "A check failed: `{\"status\": \"unavailable\", \"checks\": ...}`.", body = super::openapi::Readiness),
    )
)]
pub(crate) async fn readyz(State(state): State<Shared>) -> Response {
    let ready = &state.readiness;
    let limiter = async {
        match &ready.limiter {
            Some(store) => Some(within(store.ping()).await),
            None => None,
        }
    };
    let (db, limiter, kek) = tokio::join!(
        within(database(&ready.db)),
        limiter,
        within(key_backend(&ready.envelope)),
    );
    let invalidation = ready
        .invalidation
        .as_ref()
        .map(|subscription| subscription.is_connected());
    let mut checks = Map::new();
    let word = |ok: bool| Value::from(if ok { "ok" } else { "down" });
    checks.insert("database".into(), word(db));
    if let Some(ok) = limiter {
        checks.insert("limiter_store".into(), word(ok));
    }
    if let Some(ok) = invalidation {
        checks.insert("cache_invalidation".into(), word(ok));
    }
    checks.insert("key_backend".into(), word(kek));
    let all = db && limiter.unwrap_or(true) && invalidation.unwrap_or(true) && kek;
    if all {
        Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        for (check, _) in checks.iter().filter(|(_, v)| *v == "down") {
            tracing::warn!(code = "ready.check_failed", check = %check, "readiness check failed");
        }
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "checks": checks })),
        )
            .into_response();
        response.extensions_mut().insert(ReasonCode("not_ready"));
        // Every 503 of the service says when to retry (as `ApiError` and auth-core do).
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(auth_core::http::RETRY_AFTER_SECS),
        );
        response
    }
}
