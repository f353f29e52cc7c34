//! The policy: grant decisions and grant management, audited.

use std::sync::Arc;

use crate::audit::{AuditSink, DecisionEvent, GrantEvent, TracingAuditSink};
use crate::clock::{Clock, SystemClock};
use crate::decision::{Decision, DenyReason};
use crate::error::{GrantError, StoreError};
use crate::grant::{Access, Role, Share};
use crate::operation::{Operation, Requirement};
use crate::permit::{Ownership, Permit};
use crate::store::GrantStore;
use access_types::Level;
use access_types::{AccountId, UserId};

/// Decides whether a user may run an operation on an exchange account, and lets owners
/// share and revoke. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Policy {
    store: Arc<dyn GrantStore>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

/// Builds a [`Policy`].
#[derive(Debug)]
pub struct PolicyBuilder {
    store: Arc<dyn GrantStore>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl PolicyBuilder {
    /// Where audit records go (default: [`TracingAuditSink`]).
    #[must_use]
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = audit;
        self
    }

    /// The clock for share expiry (default: [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy.
    #[must_use]
    pub fn build(self) -> Policy {
        Policy {
            store: self.store,
            audit: self.audit,
            clock: self.clock,
        }
    }
}

fn outcome_code(e: &GrantError) -> &'static str {
    match e {
        GrantError::NotFound => "not_found",
        GrantError::AlreadyRegistered => "already_registered",
        GrantError::SelfShare => "self_share",
        GrantError::ExpiryInPast => "expiry_in_past",
        GrantError::Store(_) => "store_unavailable",
    }
}

/// An account a user may use now ([`Policy::accounts_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccountAccess {
    /// The account.
    pub account: AccountId,
    /// The level the user has on it now: the key's capability for its owner, the share
    /// capped by the key for a grantee.
    pub level: Level,
    /// Whether the user owns it (else it is shared with the user).
    pub owned: bool,
}

impl Policy {
    /// A builder over `store`.
    #[must_use]
    pub fn builder(store: Arc<dyn GrantStore>) -> PolicyBuilder {
        PolicyBuilder {
            store,
            audit: Arc::new(TracingAuditSink),
            clock: Arc::new(SystemClock),
        }
    }

    /// Decides whether `user` may run `operation` on `account`, and audits the decision.
    ///
    /// `want` is a level the caller asks for on top of the operation's own (a `want`
    /// field in a request body, say); it can only raise the requirement. A store failure
    /// is a `StoreUnavailable` deny, never an allow. See [`Decision::evaluate`] for the
    /// order of the checks.
    pub async fn decide(
        &self,
        user: &UserId,
        account: &AccountId,
        operation: Operation,
        want: Option<Level>,
    ) -> Decision {
        let requirement = operation.required_with(want);
        let now = self.clock.now_unix();
        let decision = match requirement {
            // Never-allowed operations are refused without a lookup: the same answer
            // for every account id, and no load on the store.
            Requirement::Never => Decision::evaluate(requirement, None, now),
            Requirement::AtLeast(_) => match self.store.access(user, account).await {
                Ok(access) => Decision::evaluate(requirement, access.as_ref(), now),
                Err(_) => Decision::Deny {
                    reason: DenyReason::StoreUnavailable,
                },
            },
        };
        self.audit.decision(&DecisionEvent {
            user,
            account,
            operation,
            want,
            decision,
            at: now,
        });
        decision
    }

    /// Decides as [`Policy::decide`] (and audits the decision the same way), and for an
    /// allowed decision issues the [`Permit`] that proves it: what cred-cache takes to
    /// fetch the account's credential. The permit's level is the level the operation
    /// required, raised by `want`; it is for this request only (not `Clone`).
    ///
    /// # Errors
    ///
    /// The [`DenyReason`] of a denied decision: no permit is made for it. Answer with
    /// [`DenyReason::http_status`].
    pub async fn authorize(
        &self,
        user: &UserId,
        account: &AccountId,
        operation: Operation,
        want: Option<Level>,
    ) -> Result<Permit, DenyReason> {
        match self.decide(user, account, operation, want).await {
            Decision::Allow { .. } => match operation.required_with(want) {
                Requirement::AtLeast(level) => {
                    Ok(Permit::new(user.clone(), account.clone(), level))
                }
                // `decide` never allows these; refuse anyway (fail closed).
                Requirement::Never => Err(DenyReason::NeverAllowed),
            },
            Decision::Deny { reason } => Err(reason),
        }
    }

    /// Proof that `owner` owns `account` now ([`Ownership`]), read from the store: what
    /// storing, replacing or deleting the account's credential requires. A grantee,
    /// however high their share, gets no proof.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns `account` (the same answer as for an
    /// account that does not exist); [`GrantError::Store`] on a store failure.
    pub async fn ownership(
        &self,
        owner: &UserId,
        account: &AccountId,
    ) -> Result<Ownership, GrantError> {
        match self.store.access(owner, account).await? {
            Some(Access {
                role: Role::Owner, ..
            }) => Ok(Ownership::new(owner.clone(), account.clone())),
            _ => Err(GrantError::NotFound),
        }
    }

    /// The accounts `user` may use now: each owned account at its key's capability and
    /// each share in effect at its effective level (the share, capped by the key),
    /// ordered by account id. An expired share is left out. What a service lists as
    /// "my accounts"; each use still goes through [`Policy::decide`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store fails (fail closed: no partial list).
    pub async fn accounts_for(&self, user: &UserId) -> Result<Vec<AccountAccess>, StoreError> {
        let now = self.clock.now_unix();
        Ok(self
            .store
            .accessible(user)
            .await?
            .into_iter()
            .filter_map(|(account, access)| {
                let level = access.effective_at(now)?;
                let owned = matches!(access.role, Role::Owner);
                Some(AccountAccess {
                    account,
                    level,
                    owned,
                })
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn audit_change(
        &self,
        actor: &UserId,
        account: &AccountId,
        grantee: Option<&UserId>,
        level: Option<Level>,
        expires_at: Option<i64>,
        action: &'static str,
        result: &Result<(), GrantError>,
        at: i64,
    ) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(e) => outcome_code(e),
        };
        self.audit.grant(&GrantEvent {
            actor,
            account,
            grantee,
            level,
            expires_at,
            action,
            outcome,
            at,
        });
    }

    /// Registers `account` as owned by `owner`, whose exchange key has `capability`.
    /// Re-registering by the same owner updates the capability. Returns the proof of
    /// ownership ([`Ownership`]) that storing the account's credential requires: claim
    /// the id here first, then store the credential, so that nobody can overwrite the
    /// credential of an account someone else owns.
    ///
    /// # Errors
    ///
    /// [`GrantError::AlreadyRegistered`] when another user owns the id;
    /// [`GrantError::Store`] on a store failure.
    pub async fn register_account(
        &self,
        owner: &UserId,
        account: &AccountId,
        capability: Level,
    ) -> Result<Ownership, GrantError> {
        let now = self.clock.now_unix();
        let r = self.store.register(owner, account, capability, now).await;
        self.audit_change(
            owner,
            account,
            None,
            Some(capability),
            None,
            "grant.register",
            &r,
            now,
        );
        r.map(|()| Ownership::new(owner.clone(), account.clone()))
    }

    /// Removes `account` and every share of it.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns it; [`GrantError::Store`] on failure.
    pub async fn deregister_account(
        &self,
        owner: &UserId,
        account: &AccountId,
    ) -> Result<(), GrantError> {
        let now = self.clock.now_unix();
        let r = self.store.deregister(owner, account).await;
        self.audit_change(
            owner,
            account,
            None,
            None,
            None,
            "grant.deregister",
            &r,
            now,
        );
        r
    }

    /// Shares `account` with `grantee` at `level` until `expires_at` (unix seconds;
    /// `None` for no expiry), replacing any earlier share. Only the owner may share. The
    /// key's capability still caps what the grantee gets.
    ///
    /// # Errors
    ///
    /// [`GrantError::SelfShare`] when `grantee` is `owner`; [`GrantError::ExpiryInPast`]
    /// when `expires_at` is not in the future; [`GrantError::NotFound`] unless `owner`
    /// owns the account; [`GrantError::Store`] on a store failure.
    pub async fn share(
        &self,
        owner: &UserId,
        account: &AccountId,
        grantee: &UserId,
        level: Level,
        expires_at: Option<i64>,
    ) -> Result<(), GrantError> {
        let now = self.clock.now_unix();
        let r = if grantee == owner {
            Err(GrantError::SelfShare)
        } else if expires_at.is_some_and(|at| at <= now) {
            Err(GrantError::ExpiryInPast)
        } else {
            let share = Share {
                grantee: grantee.clone(),
                level,
                expires_at,
            };
            self.store.share(owner, account, &share, now).await
        };
        self.audit_change(
            owner,
            account,
            Some(grantee),
            Some(level),
            expires_at,
            "grant.share",
            &r,
            now,
        );
        r
    }

    /// Revokes `grantee`'s share of `account`. Revoking a share that does not exist is
    /// not an error. Only the owner may revoke.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns the account; [`GrantError::Store`]
    /// on a store failure.
    pub async fn revoke(
        &self,
        owner: &UserId,
        account: &AccountId,
        grantee: &UserId,
    ) -> Result<(), GrantError> {
        let now = self.clock.now_unix();
        let r = self.store.revoke(owner, account, grantee).await.map(|_| ());
        self.audit_change(
            owner,
            account,
            Some(grantee),
            None,
            None,
            "grant.revoke",
            &r,
            now,
        );
        r
    }

    /// The shares of `account`, for its owner.
    ///
    /// # Errors
    ///
    /// [`GrantError::NotFound`] unless `owner` owns the account; [`GrantError::Store`]
    /// on a store failure.
    pub async fn shares(
        &self,
        owner: &UserId,
        account: &AccountId,
    ) -> Result<Vec<Share>, GrantError> {
        self.store.shares(owner, account).await
    }
}
