//! The audit trail, HTTP side: request ids, the one helper every handler records with,
//! grant-policy's audit sink, and `GET /api/audit` (the caller's own events).
//!
//! * [`request_id`] (outermost layer): takes `X-Request-Id` from the request when it is
//!   well formed (1..=64 of `A-Z a-z 0-9 . _ : -`), else makes one (32 hex digits), keeps
//!   it in a task-local context for the request, and sets it on the response.
//! * [`capture_principal`] (inside the auth layer): notes who authenticated, and how, in
//!   that context, for events raised where no principal is at hand (grant-policy's sink).
//! * [`AppState::audit`]: `state.audit(Some(&principal), "api_key.create",
//!   Outcome::Success).target(id).record().await` fills the actor (user id and
//!   auth-core's method name), the subject (whose `GET /api/audit` shows it: by default
//!   the principal's user) and the request id.
//! * [`PolicyAudit`]: grant-policy's [`AuditSink`] (sync, on the decision path): denials
//!   and grant changes are queued with `try_send` to a task that records them; a full
//!   queue drops the event, counts it and warns (`audit.policy_queue_full`).
//!
//! Action codes are listed in the README ("Audit trail").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use audit_trail::{Actor, AuditLog, Event, Outcome};
use auth_core::http::Authenticated;
use auth_core::{Principal, ScopeRefusal};
use axum::Json;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use grant_policy::{AuditSink, Decision, DecisionEvent, GrantEvent, RiskEvent};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::{AppState, Shared};

/// The request id header, read and written.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest accepted `X-Request-Id`.
const MAX_REQUEST_ID: usize = 64;

/// Capacity of the queue between grant-policy's sink and the task that records.
const POLICY_QUEUE: usize = 1024;

/// `GET /api/audit`: default and largest `limit`.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

/// What one request's events share.
#[derive(Debug)]
struct RequestContext {
    id: String,
    /// The authenticated principal's user id and method, once the auth layer ran.
    actor: OnceLock<(String, &'static str)>,
}

tokio::task_local! {
    static CONTEXT: Arc<RequestContext>;
}

/// The current request's id, if called inside [`request_id`].
pub(crate) fn current_request_id() -> Option<String> {
    CONTEXT.try_with(|c| c.id.clone()).ok()
}

fn well_formed(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A fresh request id: 16 random bytes in hex; a process counter if the system random
/// generator fails (an id need only be unique, not secret).
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_ok() {
        return base16ct::lower::encode_string(&bytes);
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("local-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The request's id, in its extensions for the layers inside [`request_id`] (the access
/// log).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// Middleware (outermost): the request id in the context, in the request's extensions
/// ([`RequestId`]) and on the response.
pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(new_request_id, str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let context = Arc::new(RequestContext {
        id: id.clone(),
        actor: OnceLock::new(),
    });
    let mut response = CONTEXT.scope(context, next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Middleware (inside the auth layer): notes the principal in the request's context.
pub(crate) async fn capture_principal(request: Request, next: Next) -> Response {
    if let Some(p) = request.extensions().get::<Principal>() {
        let _ = CONTEXT.try_with(|c| {
            c.actor
                .set((p.user_id().to_owned(), p.method().as_str()))
                .ok()
        });
    }
    next.run(request).await
}

/// Middleware (inside [`capture_principal`], around every route's requirement): records
/// each refusal by a route's declared requirement (auth-core's [`ScopeRefusal`]: an API
/// key without the scope, a non-interactive credential on an interactive route) as
/// `authz.scope_refused`, reason the refusal's code, target the path. grant-policy's
/// denials are recorded by its own sink ([`PolicyAudit`]).
pub(crate) async fn record_scope_refusals(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let target = request.uri().path().to_owned();
    let response = next.run(request).await;
    if let Some(refusal) = response.extensions().get::<ScopeRefusal>().copied() {
        let actor = CONTEXT.try_with(|c| c.actor.get().cloned()).ok().flatten();
        if let Some((user, method)) = actor {
            state
                .audit_as(
                    Actor::new(&user, method),
                    "authz.scope_refused",
                    Outcome::Refused,
                )
                .subject(&user)
                .target(&target)
                .reason(refusal.code())
                .record()
                .await;
        }
    }
    response
}

/// The actor of an event raised without a principal at hand: the request's authenticated
/// principal when it is `user`, else `user` with method `unknown`.
fn context_actor(user: &str) -> Actor {
    let method = CONTEXT
        .try_with(|c| c.actor.get().filter(|(u, _)| u == user).map(|(_, m)| *m))
        .ok()
        .flatten()
        .unwrap_or("unknown");
    Actor::new(user, method)
}

enum SinkMessage {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

/// The service's audit log and the queue from grant-policy's sink.
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    pub(crate) log: AuditLog,
    sink: mpsc::Sender<SinkMessage>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for SinkMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkMessage")
    }
}

impl Audit {
    /// Wraps `log` and starts the task that records grant-policy's events.
    pub(crate) fn new(log: AuditLog) -> Self {
        let (sink, mut rx) = mpsc::channel(POLICY_QUEUE);
        let writer = log.clone();
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                match message {
                    SinkMessage::Event(event) => writer.record(event).await,
                    SinkMessage::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self {
            log,
            sink,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// grant-policy's sink, feeding this log.
    pub(crate) fn policy_sink(&self) -> Arc<dyn AuditSink> {
        Arc::new(PolicyAudit {
            sink: self.sink.clone(),
            dropped: self.dropped.clone(),
        })
    }

    /// Waits until everything recorded before (handlers and the policy sink) is durable.
    ///
    /// # Errors
    ///
    /// The log's error when the store failed (the writer keeps the events and retries).
    pub(crate) async fn flush(&self) -> Result<(), audit_trail::AuditError> {
        let (done, wait) = oneshot::channel();
        if self.sink.send(SinkMessage::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
        self.log.flush().await
    }
}

/// An event being built by a handler; [`Pending::record`] queues it.
#[must_use = "an audit event is recorded only by `.record().await`"]
#[derive(Debug)]
pub(crate) struct Pending<'a> {
    log: &'a AuditLog,
    event: Event,
}

impl Pending<'_> {
    /// What the action was done to (a key id, an account id, a secret name).
    pub(crate) fn target(mut self, target: impl AsRef<str>) -> Self {
        self.event = self.event.with_target(target);
        self
    }

    /// Whose log the event belongs in (default: the principal's user).
    pub(crate) fn subject(mut self, subject: impl AsRef<str>) -> Self {
        self.event = self.event.with_subject(subject);
        self
    }

    /// The stable reason code of a refusal or failure.
    pub(crate) fn reason(mut self, reason: impl AsRef<str>) -> Self {
        self.event = self.event.with_reason(reason);
        self
    }

    /// The outcome's reason, when there is one.
    pub(crate) fn maybe_reason(self, reason: Option<&str>) -> Self {
        match reason {
            Some(reason) => self.reason(reason),
            None => self,
        }
    }

    /// Queues the event (never fails the request).
    pub(crate) async fn record(self) {
        self.log.record(self.event).await;
    }
}

impl AppState {
    /// Starts an audit event: `principal` did `action` (a stable code, README) with
    /// `outcome`. `None` for an unauthenticated caller (actor `anonymous`, no subject
    /// unless set). The request id is the current request's.
    pub(crate) fn audit(
        &self,
        principal: Option<&Principal>,
        action: &str,
        outcome: Outcome,
    ) -> Pending<'_> {
        match principal {
            Some(p) => self
                .audit_as(
                    Actor::new(p.user_id(), p.method().as_str()),
                    action,
                    outcome,
                )
                .subject(p.user_id()),
            None => self.audit_as(Actor::anonymous(), action, outcome),
        }
    }

    /// [`AppState::audit`] with the outcome and reason of a handler's `result`.
    pub(crate) fn audit_result<T>(
        &self,
        principal: Option<&Principal>,
        action: &str,
        result: &Result<T, ApiError>,
    ) -> Pending<'_> {
        let (outcome, reason) = api_outcome(result);
        self.audit(principal, action, outcome).maybe_reason(reason)
    }

    /// [`AppState::audit`] for an actor that is not a resolved principal (a user who just
    /// proved a password: method `password`, or `password+otp`).
    pub(crate) fn audit_as(&self, actor: Actor, action: &str, outcome: Outcome) -> Pending<'_> {
        let mut event = Event::new(actor, action, outcome);
        if let Some(id) = current_request_id() {
            event = event.with_request_id(id);
        }
        Pending {
            log: &self.audit.log,
            event,
        }
    }
}

/// The outcome and stable reason code of a handler's answer: success, or the error's
/// code (`Failed` for a 5xx).
pub(crate) fn api_outcome<T>(result: &Result<T, ApiError>) -> (Outcome, Option<&'static str>) {
    let Err(e) = result else {
        return (Outcome::Success, None);
    };
    let reason = match e {
        ApiError::Code(_, code) => code,
        ApiError::Field(_) => "invalid_field",
        ApiError::TooMany(_) => "throttled",
        ApiError::RateLimited(_) => "rate_limited",
        ApiError::RiskLimit(_) => "risk_limit",
        ApiError::Scope(refusal) => refusal.error(),
        ApiError::Status(s) if s.is_server_error() => "unavailable",
        ApiError::Status(s) => match s.as_u16() {
            401 => "unauthenticated",
            403 => "forbidden",
            404 => "not_found",
            _ => "refused",
        },
    };
    let outcome = if e.status().is_server_error() {
        Outcome::Failed
    } else {
        Outcome::Refused
    };
    (outcome, Some(reason))
}

/// The outcome and stable reason code of a failed auth-core account call.
pub(crate) fn account_refusal(e: &auth_core::AccountError) -> (Outcome, &'static str) {
    use auth_core::AccountError as E;
    let reason = match e {
        E::InvalidCredentials => "invalid_credentials",
        E::InvalidSecondFactor => "invalid_second_factor",
        E::Throttled { .. } => "throttled",
        E::EmailTaken => "email_taken",
        E::Email(_) => "invalid_email",
        E::Policy(_) => "password_policy",
        E::UserNotFound => "user_not_found",
        E::SamePassword => "same_password",
        E::Conflict => "conflict",
        E::SecondFactorNotEnabled => "mfa_not_enabled",
        _ => return (Outcome::Failed, "unavailable"),
    };
    (Outcome::Refused, reason)
}

/// The id of the user with this email, for the subject of a refused login (so that the
/// user sees attempts on the account); `None` when unknown or unreadable. The email is
/// never recorded (a password typed into it would be).
pub(crate) async fn user_for_email(state: &AppState, email: &str) -> Option<String> {
    let email = auth_core::normalize_email(email).ok()?;
    state
        .users
        .user_by_email(&email)
        .await
        .ok()
        .flatten()
        .map(|u| u.id)
}

/// grant-policy's [`AuditSink`] into the audit log: denials (`policy.deny`, reason the
/// deny code, target `account/operation`) and grant changes (`grant.register`,
/// `grant.deregister`, `grant.share`, `grant.revoke`; target the account, or
/// `account/grantee`). Allows are not recorded (every trade would be). Never blocks:
/// a full queue drops the event, counted and warned.
#[derive(Debug)]
pub(crate) struct PolicyAudit {
    sink: mpsc::Sender<SinkMessage>,
    dropped: Arc<AtomicU64>,
}

impl PolicyAudit {
    fn send(&self, mut event: Event) {
        if let Some(id) = current_request_id() {
            event = event.with_request_id(id);
        }
        let action = event.action().to_owned();
        if self.sink.try_send(SinkMessage::Event(event)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    code = "audit.policy_queue_full",
                    dropped = n,
                    action,
                    "grant-policy audit events dropped: the queue to the audit log is full"
                );
            }
        }
    }
}

impl AuditSink for PolicyAudit {
    fn decision(&self, e: &DecisionEvent<'_>) {
        let Decision::Deny { reason } = e.decision else {
            return;
        };
        let user = e.user.as_str();
        self.send(
            Event::new(context_actor(user), "policy.deny", Outcome::Refused)
                .with_subject(user)
                .with_target(format!("{}/{}", e.account.as_str(), e.operation.as_str()))
                .with_reason(reason.code()),
        );
    }

    fn grant(&self, e: &GrantEvent<'_>) {
        let actor = e.actor.as_str();
        let outcome = match e.outcome {
            "ok" => Outcome::Success,
            "store_unavailable" => Outcome::Failed,
            _ => Outcome::Refused,
        };
        let target = match e.grantee {
            Some(grantee) => format!("{}/{}", e.account.as_str(), grantee.as_str()),
            None => e.account.as_str().to_owned(),
        };
        let mut event = Event::new(context_actor(actor), e.action, outcome)
            .with_subject(actor)
            .with_target(target);
        if outcome != Outcome::Success {
            event = event.with_reason(e.outcome);
        }
        self.send(event);
    }

    /// Risk refusals and live-trading switches (`risk.refuse.*`, `risk.live_trading.*`);
    /// admissions are not recorded (every order would be).
    fn risk(&self, e: &RiskEvent<'_>) {
        let outcome = if e.code.starts_with("risk.refuse") {
            Outcome::Refused
        } else if e.code.starts_with("risk.live_trading") {
            Outcome::Success
        } else {
            return;
        };
        let user = e.user.as_str();
        let mut event = Event::new(context_actor(user), e.code, outcome).with_subject(user);
        if let Some(account) = e.account {
            event = event.with_target(account.as_str());
        }
        self.send(event);
    }
}

/// `GET /api/audit?limit=N` (scope `read`; `limit` 1..=200, default 50): the caller's own
/// events, newest first:
/// `{"events": [{seq, at (unix ms), action, outcome, reason, target, actor: {principal,
/// method}, request_id}]}`. 400 `limit` out of range; 503 when the log cannot be read
/// or a record does not verify (logged `audit.read_failed` with the code).
#[utoipa::path(
    get, operation_id = "audit_mine", path = "/api/audit", tag = "audit",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "How many events, newest first (default 50).")),
    responses(
        (status = 200, description = "The caller's own events.", body = super::openapi::AuditList),
        (status = 400, description = "`{\"error\": \"invalid_field\", \"field\": \"limit\"}`.", body = super::openapi::ErrorBody),
    )
)]
pub(crate) async fn mine(
    State(state): State<Shared>,
    Authenticated(principal): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    for pair in query.as_deref().unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("limit=") {
            limit = value
                .parse()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or(ApiError::Field("limit"))?;
        }
    }
    // What this user just did is in the log before it is read back.
    if let Err(e) = state.audit.flush().await {
        tracing::warn!(
            code = "audit.flush_failed",
            error = e.code(),
            "audit flush failed"
        );
    }
    let records = state
        .audit
        .log
        .for_subject(principal.user_id(), limit)
        .await
        .map_err(|e| {
            tracing::error!(
                code = "audit.read_failed",
                error = e.code(),
                "audit log read failed"
            );
            ApiError::UNAVAILABLE
        })?;
    let events: Vec<Value> = records
        .iter()
        .map(|r| {
            let e = &r.event;
            json!({
                "seq": r.seq,
                "at": r.at,
                "action": e.action(),
                "outcome": e.outcome().as_str(),
                "reason": e.reason(),
                "target": e.target(),
                "actor": {"principal": e.actor().principal(), "method": e.actor().method()},
                "request_id": e.request_id(),
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(well_formed("abc-123_x.y:z"));
        assert!(!well_formed(""));
        assert!(!well_formed("a b"));
        assert!(!well_formed("a\nb"));
        assert!(!well_formed(&"a".repeat(65)));
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(well_formed(&id));
    }
}
