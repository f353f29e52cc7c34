//! Prometheus metrics: `GET /metrics` in the Prometheus text exposition format (version
//! 0.0.4), served only on the separate listener `METRICS_ADDR`, never on the service's
//! own address (see the README, "Metrics").
//!
//! Two kinds of series:
//!
//! * per request, counted by the [`track`] middleware: requests by method, matched route
//!   (the route's pattern, such as `/api/exchange/{operation}`, never the raw path, so
//!   that the number of series stays bounded; `unmatched` for a path without a route)
//!   and status; latency histograms by method and route; refusals by stable reason code;
//! * read at each scrape from the libraries' own counters ([`Probes`]): cred-cache's
//!   hits, misses, fetches and invalidations, the password hashing queue, the audit
//!   writer's events, batches and time spent appending, and the process's CPU time
//!   (which the load bench divides by requests).
//!
//! Every name starts with `strongroom_`; counters end in `_total` (added by the encoder).

use std::sync::Arc;
use std::time::Instant;

use audit_trail::AuditLog;
use auth_core::PasswordHasher;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cred_cache::CredCache;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency buckets, in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

/// The route label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// The stable reason code of a refused request, carried in the response's extensions by
/// whoever refused it (`ApiError`), for [`track`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReasonCode(pub(crate) &'static str);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    code: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The registry and the per-request series. Cheap to share (`Arc`).
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    refusals: Family<RefusalLabels, Counter>,
}

impl Metrics {
    /// The registry with the per-request series and the scrape-time `probes`.
    pub(crate) fn new(probes: Probes) -> Arc<Self> {
        let mut registry = Registry::with_prefix("strongroom");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from the request reaching the router to the response head, by method and route",
            latency.clone(),
        );
        registry.register(
            "refusals",
            "Requests answered 4xx or 5xx, by stable reason code",
            refusals.clone(),
        );
        registry.register_collector(Box::new(probes));
        Arc::new(Self {
            registry,
            requests,
            latency,
            refusals,
        })
    }

    /// The exposition text.
    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn observe(&self, method: &'static str, route: String, response: &Response, started: Instant) {
        let status = response.status();
        self.latency
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status: status.as_u16(),
            })
            .inc();
        if status.is_client_error() || status.is_server_error() {
            self.refusals
                .get_or_create(&RefusalLabels {
                    code: reason_code(response),
                })
                .inc();
        }
    }
}

/// The method as a bounded label: the standard ones by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The reason code of a refused response: the service's own ([`ReasonCode`]),
/// auth-core's credential refusal or scope refusal, else one named after the status.
fn reason_code(response: &Response) -> &'static str {
    let extensions = response.extensions();
    if let Some(ReasonCode(code)) = extensions.get::<ReasonCode>() {
        return code;
    }
    if let Some(refusal) = extensions.get::<auth_core::Refusal>() {
        return refusal.code();
    }
    if let Some(refusal) = extensions.get::<auth_core::ScopeRefusal>() {
        return refusal.code();
    }
    status_code_name(response.status())
}

/// A code named after a status, for refusals that carry none.
pub(crate) fn status_code_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        500 => "internal_error",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "timeout",
        _ if status.is_client_error() => "client_error",
        _ => "server_error",
    }
}

/// Middleware (outermost, after routing): counts and times every request.
pub(crate) async fn track(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe(method, route, &response, started);
    response
}

/// The router of the metrics listener: `GET /metrics`, nothing else.
pub(crate) fn router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                match metrics.render() {
                    Ok(text) => {
                        let mut response = text.into_response();
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static(
                                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                            ),
                        );
                        response
                    }
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    )
}

/// The libraries' own counters, read at each scrape.
#[derive(Debug)]
pub(crate) struct Probes {
    pub(crate) cache: CredCache,
    pub(crate) hasher: PasswordHasher,
    pub(crate) audit: AuditLog,
    /// auth-core's validity cache, when `STRONGROOM_VALIDITY_CACHE_MS` is not 0.
    pub(crate) validity: Option<crate::db::ValidityStats>,
    /// grant-policy's grant cache, on with the validity cache.
    pub(crate) grant_cache: Option<crate::db::GrantCacheStats>,
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// CPU time used by this process (every thread, user and system), in seconds.
fn process_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    // Seconds and nanoseconds of a process's CPU clock are never negative.
    u64::try_from(t.tv_sec).unwrap_or(0) as f64
        + u64::try_from(t.tv_nsec).unwrap_or(0) as f64 * 1e-9
}

impl Collector for Probes {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // The process collector's usual series, under this registry's prefix
        // (`strongroom_process_cpu_seconds_total`).
        let cpu = ConstCounter::new(process_cpu_seconds());
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "CPU time used by the process, user and system, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let cache = self.cache.stats();
        counter(
            &mut encoder,
            "cred_cache_hits",
            "Credential lookups answered from the cache",
            cache.hits,
        )?;
        counter(
            &mut encoder,
            "cred_cache_misses",
            "Credential lookups that found no usable entry",
            cache.misses,
        )?;
        counter(
            &mut encoder,
            "cred_cache_fetches",
            "Fetches from the credential source (one per key for concurrent misses)",
            cache.fetches,
        )?;
        counter(
            &mut encoder,
            "cred_cache_fetch_errors",
            "Fetches from the credential source that failed",
            cache.fetch_errors,
        )?;
        counter(
            &mut encoder,
            "cred_cache_invalidations",
            "Entries removed by invalidation (local or from another instance) or use count",
            cache.invalidations,
        )?;
        counter(
            &mut encoder,
            "cred_cache_evictions",
            "Entries removed because their TTL passed or the cache was full",
            cache.evictions,
        )?;
        if let Some(validity) = &self.validity {
            let v = validity.read();
            counter(
                &mut encoder,
                "validity_cache_hits",
                "Session, API key and user lookups answered from auth-core's validity cache",
                v.hits,
            )?;
            counter(
                &mut encoder,
                "validity_cache_misses",
                "Session, API key and user lookups that went to the database",
                v.misses,
            )?;
            counter(
                &mut encoder,
                "validity_cache_invalidations",
                "Times the validity cache was emptied (a credential write, or full)",
                v.invalidations,
            )?;
        }
        if let Some(grants) = &self.grant_cache {
            let g = grants.read();
            counter(
                &mut encoder,
                "grant_cache_hits",
                "Grant lookups (user, account) answered from grant-policy's grant cache",
                g.hits,
            )?;
            counter(
                &mut encoder,
                "grant_cache_misses",
                "Grant lookups that went to the database",
                g.misses,
            )?;
            counter(
                &mut encoder,
                "grant_cache_invalidations",
                "Times grant cache entries were dropped (a grant write, or full)",
                g.invalidations,
            )?;
        }
        let waiting =
            ConstGauge::new(i64::try_from(self.hasher.waiting_operations()).unwrap_or(i64::MAX));
        waiting.encode(encoder.encode_descriptor(
            "password_hash_queue_depth",
            "Password hash and verify operations waiting for a permit",
            None,
            waiting.metric_type(),
        )?)?;
        counter(
            &mut encoder,
            "password_hash_operations",
            "Password hash and verify operations completed (dummy ones included)",
            self.hasher.completed_operations(),
        )?;
        let audit = self.audit.writer_stats();
        counter(
            &mut encoder,
            "audit_events_enqueued",
            "Audit events queued for the writer",
            audit.enqueued,
        )?;
        counter(
            &mut encoder,
            "audit_events_written",
            "Audit events made durable",
            audit.written,
        )?;
        counter(
            &mut encoder,
            "audit_batches",
            "Audit batches (one transaction each) written",
            audit.batches,
        )?;
        counter(
            &mut encoder,
            "audit_append_failures",
            "Failed audit append attempts (retried)",
            audit.failures,
        )?;
        let busy = ConstCounter::new(audit.busy.as_secs_f64());
        busy.encode(encoder.encode_descriptor(
            "audit_append_seconds",
            "Wall-clock time the audit writer spent appending, commit waits included",
            None,
            busy.metric_type(),
        )?)?;
        let commit = ConstCounter::new(audit.commit.as_secs_f64());
        commit.encode(encoder.encode_descriptor(
            "audit_commit_seconds",
            "Of the append time, the wait for commits to be durable (disk, not work)",
            None,
            commit.metric_type(),
        )?)
    }
}
