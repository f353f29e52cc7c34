//! The audit trail: every decision, grant change and risk outcome.

use core::fmt::Debug;

use crate::decision::Decision;
use access_types::Level;
use access_types::{AccountId, UserId};

use crate::operation::Operation;

/// One grant decision.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct DecisionEvent<'a> {
    /// Who asked.
    pub user: &'a UserId,
    /// Which account.
    pub account: &'a AccountId,
    /// Which operation.
    pub operation: Operation,
    /// The level the caller asked for on top of the operation's own, if any.
    pub want: Option<Level>,
    /// The outcome, with the effective level or the deny reason.
    pub decision: Decision,
    /// When (unix seconds).
    pub at: i64,
}

/// One grant management call.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct GrantEvent<'a> {
    /// The caller (the owner, if the call succeeded).
    pub actor: &'a UserId,
    /// Which account.
    pub account: &'a AccountId,
    /// The other user, for share and revoke.
    pub grantee: Option<&'a UserId>,
    /// The level shared, for share; the capability, for register.
    pub level: Option<Level>,
    /// The share expiry, for share.
    pub expires_at: Option<i64>,
    /// Stable code: `grant.register`, `grant.deregister`, `grant.share`, `grant.revoke`.
    pub action: &'static str,
    /// Stable outcome code: `ok`, or the error's code (`not_found`, `already_registered`,
    /// `self_share`, `expiry_in_past`, `store_unavailable`).
    pub outcome: &'static str,
    /// When (unix seconds).
    pub at: i64,
}

/// One risk-limit outcome.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RiskEvent<'a> {
    /// Whose limits.
    pub user: &'a UserId,
    /// The account, where the call names one (enabling live trading).
    pub account: Option<&'a AccountId>,
    /// Stable code, such as `risk.admit.live`, `risk.admit.dry_run`,
    /// `risk.refuse.daily_cap_exceeded`, `risk.live_trading.enabled`.
    pub code: &'static str,
    /// The notional involved, in minor units, where there is one.
    pub notional: Option<u64>,
    /// When (unix seconds).
    pub at: i64,
}

/// Where audit records go.
///
/// # Security contract
///
/// Implementations receive only ids, operation names, levels, amounts and stable codes:
/// no credential or secret is ever passed in. They must not block for long (they run on
/// the decision path: queue to a channel for slow sinks) and must not panic. A sink
/// cannot change a decision.
pub trait AuditSink: Send + Sync + Debug {
    /// Records a grant decision. Called for every decision, allow and deny.
    fn decision(&self, event: &DecisionEvent<'_>);

    /// Records a grant management call. The default does nothing.
    fn grant(&self, event: &GrantEvent<'_>) {
        let _ = event;
    }

    /// Records a risk-limit outcome. The default does nothing.
    fn risk(&self, event: &RiskEvent<'_>) {
        let _ = event;
    }
}

/// The default sink: one `tracing` event per record, target `grant_policy::audit`, with a
/// stable `code` field. Allows log at `INFO`, denials and refusals at `WARN`, store
/// failures at `ERROR`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingAuditSink;

const TARGET: &str = "grant_policy::audit";

impl AuditSink for TracingAuditSink {
    fn decision(&self, e: &DecisionEvent<'_>) {
        let code = e.decision.code();
        let user = e.user.as_str();
        let account = e.account.as_str();
        let operation = e.operation.as_str();
        let want = e.want.map(Level::as_str);
        match e.decision {
            Decision::Allow { effective } => tracing::info!(
                target: TARGET, code, user, account, operation, want,
                effective = effective.as_str(), at = e.at, "grant decision"
            ),
            Decision::Deny { reason } if reason.status().is_server_error() => tracing::error!(
                target: TARGET, code, user, account, operation, want, at = e.at,
                "grant decision"
            ),
            Decision::Deny { .. } => tracing::warn!(
                target: TARGET, code, user, account, operation, want, at = e.at,
                "grant decision"
            ),
        }
    }

    fn grant(&self, e: &GrantEvent<'_>) {
        let grantee = e.grantee.map(UserId::as_str);
        let level = e.level.map(Level::as_str);
        if e.outcome == "ok" {
            tracing::info!(
                target: TARGET, code = e.action, outcome = e.outcome, actor = e.actor.as_str(),
                account = e.account.as_str(), grantee, level, expires_at = e.expires_at,
                at = e.at, "grant change"
            );
        } else {
            tracing::warn!(
                target: TARGET, code = e.action, outcome = e.outcome, actor = e.actor.as_str(),
                account = e.account.as_str(), grantee, level, expires_at = e.expires_at,
                at = e.at, "grant change"
            );
        }
    }

    fn risk(&self, e: &RiskEvent<'_>) {
        let account = e.account.map(AccountId::as_str);
        if e.code.starts_with("risk.refuse") {
            tracing::warn!(
                target: TARGET, code = e.code, user = e.user.as_str(), account,
                notional = e.notional, at = e.at, "risk"
            );
        } else {
            tracing::info!(
                target: TARGET, code = e.code, user = e.user.as_str(), account,
                notional = e.notional, at = e.at, "risk"
            );
        }
    }
}
