//! Login sessions: random bearer tokens stored only as SHA-256 digests.
//!
//! A session token is `ses_` followed by 43 base64url characters (256 random bits from
//! aws-lc-rs). The store keeps the token's SHA-256, a random non-secret session id, the
//! user id, the expiry and the user's session epoch at issue. A new token is issued at
//! every login (no fixation); logout deletes it. A password change, disable, SSO link or
//! sign-out-everywhere bumps the user's session epoch, which ends every older session at
//! once: the lookup reads the user row with the session (one query, one lock) and
//! [`admit`] refuses a session whose epoch differs. A sweep task
//! deletes expired and superseded rows.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::chain::{Refusal, Resolution, ResolveFuture, Resolver};
use crate::credential::{Credential, CredentialKind};
use crate::principal::{AuthMethod, Principal};
use crate::secret::{self, Digest, RandomError};
use crate::store::{StoreError, StoreFuture};
use crate::user::{Admission, User, WithUser, admit};

/// The prefix of every session token.
pub const SESSION_TOKEN_PREFIX: &str = "ses_";
/// Default session lifetime: 30 days.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default interval of the expired-session sweep: one hour.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Refusal: the session token is not (or no longer) in the store.
pub const SESSION_UNKNOWN: Refusal = Refusal::new("session.unknown");
/// Refusal: the session has expired.
pub const SESSION_EXPIRED: Refusal = Refusal::new("session.expired");
/// Refusal: the session store failed.
pub const SESSION_STORE_UNAVAILABLE: Refusal = Refusal::new("session.store_unavailable");

/// A freshly issued session token. Shown to the client once; only its digest is stored.
/// Wiped on drop; `Debug` prints the session id only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SessionToken {
    token: String,
    #[zeroize(skip)]
    session_id: String,
    #[zeroize(skip)]
    expires_at: i64,
}

impl SessionToken {
    /// The token to hand to the client (e.g. in a `Set-Cookie` or JSON body).
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.token
    }

    /// The non-secret session id (for listing and revoking).
    #[must_use]
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The session's expiry, Unix seconds (as stored: the session is invalid from this
    /// second on). What a client is told (`expires_at`, a cookie's `Max-Age`).
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("session_id", &self.session_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored session: the principal it authenticates (user id, session id), the SHA-256
/// of its token (never the token), creation and expiry.
///
/// The principal is built once, when the record is made; cloning a record (as the
/// in-memory store does on every lookup) and handing out its principal allocate nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    principal: Principal,
    token_digest: [u8; 32],
    created_at: i64,
    expires_at: i64,
    epoch: i64,
    mfa_at: Option<i64>,
}

impl SessionRecord {
    /// A record for session `id` (random, non-secret) of `user_id`, whose token has the
    /// SHA-256 `token_digest`, invalid from `expires_at` (Unix seconds) on.
    #[must_use]
    pub fn new(
        id: impl Into<Box<str>>,
        user_id: impl Into<Box<str>>,
        token_digest: [u8; 32],
        created_at: i64,
        expires_at: i64,
    ) -> Self {
        Self {
            principal: Principal::new(user_id, AuthMethod::Session)
                .with_credential_id(id)
                .with_session_epoch(0),
            token_digest,
            created_at,
            expires_at,
            epoch: 0,
            mfa_at: None,
        }
    }

    /// Sets when the session last passed a second-factor check (Unix seconds; `None`:
    /// never). Its principal carries it ([`Principal::mfa_at`]).
    #[must_use]
    pub fn with_mfa_at(mut self, mfa_at: Option<i64>) -> Self {
        self.mfa_at = mfa_at;
        self.principal = self.principal.with_mfa_at(mfa_at);
        self
    }

    /// When the session last passed a second-factor check (MFA login or step-up), Unix
    /// seconds.
    #[must_use]
    pub fn mfa_at(&self) -> Option<i64> {
        self.mfa_at
    }

    /// Sets the user's session epoch the session was issued at (see
    /// [`User::session_epoch`]).
    #[must_use]
    pub fn with_epoch(mut self, epoch: i64) -> Self {
        self.epoch = epoch;
        self.principal = self.principal.with_session_epoch(epoch);
        self
    }

    /// The user's session epoch at issue: the session resolves only while the user is
    /// still at this epoch.
    #[must_use]
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// The random non-secret session id (32 hex characters).
    #[must_use]
    pub fn id(&self) -> &str {
        // `new` always sets it.
        self.principal.credential_id().unwrap_or_default()
    }

    /// The user the session belongs to.
    #[must_use]
    pub fn user_id(&self) -> &str {
        self.principal.user_id()
    }

    /// SHA-256 of the token.
    #[must_use]
    pub fn token_digest(&self) -> &[u8; 32] {
        &self.token_digest
    }

    /// Creation time, Unix seconds.
    #[must_use]
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Expiry, Unix seconds: the session is invalid from this second on.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The principal a valid token of this session authenticates as.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &self.id())
            .field("user_id", &self.user_id())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where sessions live.
///
/// # Security contract
///
/// * Only digests are stored; a store never sees a token.
/// * Deletions are scoped: [`SessionStore::delete_session`] deletes only if the session
///   belongs to the named user.
/// * Errors are [`StoreError`]s, never "not found": the resolver turns them into 503.
///
/// [`SessionStore::session_by_digest`] runs on every request that presents a session
/// token, so it returns a [`StoreFuture`] instead of being an `async fn`: an in-process
/// store answers with [`StoreFuture::ready`] and costs no allocation; a database store
/// wraps its query in [`StoreFuture::boxed`].
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Inserts a session, only if its user exists, is enabled and is still at the
    /// record's [`SessionRecord::epoch`] (checked in the same statement).
    ///
    /// # Errors
    ///
    /// [`StoreError::UserRefused`] when that check fails (a concurrent password change,
    /// disable, link or sign-out-everywhere won); [`StoreError`].
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// The session whose token has this digest, with its user's state (disabled,
    /// must-change flag, current session epoch) read **in the same query or under the same
    /// lock**; the future fails with a [`StoreError`]. (The future may not borrow
    /// `digest`: a store that waits copies it, 32 bytes.)
    fn session_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreFuture<'_, Option<WithUser<SessionRecord>>>;

    /// Deletes the session whose token has this digest. Returns whether one was deleted.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn delete_session_by_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError>;

    /// Deletes session `session_id` if it belongs to `user_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn delete_session(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError>;

    /// Deletes all of the user's sessions; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Deletes sessions with `expires_at <= now`, and sessions whose epoch is no longer
    /// their user's; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError>;

    /// The user's sessions (for a "your devices" page).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError>;

    /// Records a second-factor check on session `session_id` of `user_id`: sets its
    /// [`SessionRecord::mfa_at`] to `at`. Returns whether such a session exists.
    ///
    /// The default fails closed (a store that cannot record a step-up never grants one).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn set_session_mfa_at(
        &self,
        user_id: &str,
        session_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let _ = (user_id, session_id, at);
        Err(StoreError::Backend(
            "this session store cannot record a second-factor check".into(),
        ))
    }
}

/// Session configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    ttl: Duration,
    sweep_interval: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_SESSION_TTL,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }
}

impl SessionConfig {
    /// Session lifetime (default 30 days).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Interval of [`Sessions::spawn_sweeper`] (default one hour; at least one second).
    #[must_use]
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval.max(Duration::from_secs(1));
        self
    }
}

/// Errors of session operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed; no token was issued.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Issues, resolves and revokes sessions; also the session [`Resolver`].
///
/// As a resolver it claims bearer tokens that start with `ses_` and passes everything
/// else, so a session store outage never touches JWT or static-token requests.
#[derive(Clone, Debug)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    config: SessionConfig,
}

impl Sessions {
    /// Sessions kept in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        Self { store, config }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Issues a new session for `user`, as read before its password was checked: the
    /// session is stamped with `user.session_epoch`, and the store refuses it if the user
    /// has moved on since (so a login racing a password change cannot leave a live
    /// session). Call it at every login: tokens are never reused.
    ///
    /// # Errors
    ///
    /// [`SessionError`]; [`StoreError::UserRefused`] inside it when the user changed.
    pub async fn issue(&self, user: &User) -> Result<SessionToken, SessionError> {
        self.issue_inner(user, None).await
    }

    /// As [`Sessions::issue`], for a login that passed a second-factor check at `mfa_at`
    /// (Unix seconds): the session's principal carries it ([`Principal::mfa_at`]), so a
    /// step-up check within the window succeeds without another code.
    ///
    /// # Errors
    ///
    /// As [`Sessions::issue`].
    pub async fn issue_with_mfa(
        &self,
        user: &User,
        mfa_at: i64,
    ) -> Result<SessionToken, SessionError> {
        self.issue_inner(user, Some(mfa_at)).await
    }

    async fn issue_inner(
        &self,
        user: &User,
        mfa_at: Option<i64>,
    ) -> Result<SessionToken, SessionError> {
        let user_id = user.id.as_str();
        let secret_part = secret::random_secret_b64()?;
        let mut token = String::with_capacity(SESSION_TOKEN_PREFIX.len() + secret_part.len());
        token.push_str(SESSION_TOKEN_PREFIX);
        token.push_str(&secret_part);
        let now = secret::now_unix();
        let ttl = i64::try_from(self.config.ttl.as_secs()).unwrap_or(i64::MAX);
        let session = SessionToken {
            token,
            session_id: secret::random_id()?,
            expires_at: now.saturating_add(ttl),
        };
        let record = SessionRecord::new(
            session.session_id.clone(),
            user_id,
            secret::sha256(session.token.as_bytes()),
            now,
            session.expires_at,
        )
        .with_epoch(user.session_epoch)
        .with_mfa_at(mfa_at);
        self.store.insert_session(&record).await?;
        tracing::info!(
            code = "session.issued",
            session_id = record.id(),
            user_id,
            "session issued"
        );
        Ok(session)
    }

    /// Records a step-up on session `session_id` of `user_id`: its last second-factor
    /// check becomes now. Call it right after
    /// [`Mfa::verify`](crate::mfa::Mfa::verify) accepted a code from that session's
    /// user. Returns whether the session exists.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`].
    pub async fn record_step_up(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<bool, SessionError> {
        let found = self
            .store
            .set_session_mfa_at(user_id, session_id, secret::now_unix())
            .await?;
        tracing::info!(
            code = "session.step_up",
            user_id,
            session_id,
            found,
            "second-factor check recorded on the session"
        );
        Ok(found)
    }

    /// Revokes the session holding `token` (logout). Returns whether one was revoked.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`].
    pub async fn revoke_token(&self, token: &str) -> Result<bool, SessionError> {
        let digest = secret::sha256(token.as_bytes());
        let revoked = self.store.delete_session_by_digest(&digest).await?;
        tracing::info!(
            code = "session.revoked",
            revoked,
            "session revoked by token"
        );
        Ok(revoked)
    }

    /// Revokes one session of `user_id` by id. Returns whether one was revoked.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`].
    pub async fn revoke(&self, user_id: &str, session_id: &str) -> Result<bool, SessionError> {
        let revoked = self.store.delete_session(user_id, session_id).await?;
        tracing::info!(
            code = "session.revoked",
            user_id,
            session_id,
            revoked,
            "session revoked"
        );
        Ok(revoked)
    }

    /// Deletes every session row of `user_id`; returns how many. To end a user's
    /// credentials atomically with respect to concurrent logins, use
    /// [`Accounts::sign_out_everywhere`](crate::Accounts::sign_out_everywhere) (an epoch
    /// bump) instead: a login that checked the password before this call can still insert
    /// a session after it.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`].
    pub async fn revoke_all(&self, user_id: &str) -> Result<u64, SessionError> {
        let n = self.store.delete_user_sessions(user_id).await?;
        tracing::info!(
            code = "session.revoked_all",
            user_id,
            count = n,
            "all sessions revoked"
        );
        Ok(n)
    }

    /// The user's sessions.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`].
    pub async fn list(&self, user_id: &str) -> Result<Vec<SessionRecord>, SessionError> {
        Ok(self.store.user_sessions(user_id).await?)
    }

    /// Deletes expired sessions once; returns how many.
    ///
    /// # Errors
    ///
    /// [`SessionError::Store`].
    pub async fn sweep(&self) -> Result<u64, SessionError> {
        let n = self
            .store
            .delete_expired_sessions(secret::now_unix())
            .await?;
        tracing::debug!(code = "session.swept", count = n, "expired sessions swept");
        Ok(n)
    }

    /// Starts the periodic sweep on the current tokio runtime (every
    /// [`SessionConfig::sweep_interval`], first run immediately). Abort the returned
    /// handle to stop it. Store errors are logged and retried at the next tick.
    #[must_use]
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.sweep().await {
                    tracing::warn!(code = "session.sweep_failed", error = %e, "session sweep failed");
                }
            }
        })
    }
}

impl Resolver for Sessions {
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        let token = cred.expose_secret();
        // A session token comes as a bearer token or in the session cookie.
        if !matches!(
            cred.kind(),
            CredentialKind::Bearer | CredentialKind::SessionCookie
        ) || !token.starts_with(SESSION_TOKEN_PREFIX)
        {
            return ResolveFuture::ready(Resolution::Pass);
        }
        let digest = secret::sha256(token.as_bytes());
        self.store
            .session_by_digest(&digest)
            .map(move |found| check_session(found, &digest))
    }
}

/// The decision on a session token whose digest is `digest`, given what the store found.
fn check_session(
    found: Result<Option<WithUser<SessionRecord>>, StoreError>,
    digest: &Digest,
) -> Resolution {
    match found {
        Err(e) => {
            tracing::warn!(code = SESSION_STORE_UNAVAILABLE.code(), error = %e, "session store failed");
            Resolution::Unavailable(SESSION_STORE_UNAVAILABLE)
        }
        Ok(None) => Resolution::Invalid(SESSION_UNKNOWN),
        Ok(Some(WithUser { record: rec, user })) => {
            // The store matched on the digest; compare again in constant time so a store
            // with a loose index can never authenticate a different token.
            if !secret::digest_eq(&rec.token_digest, digest) {
                return Resolution::Invalid(SESSION_UNKNOWN);
            }
            if secret::now_unix_for_expiry() >= rec.expires_at {
                return Resolution::Invalid(SESSION_EXPIRED);
            }
            match admit(user.as_ref(), rec.epoch) {
                Ok(Admission::Full) => Resolution::Authenticated(rec.principal),
                Ok(_) => Resolution::Authenticated(rec.principal.with_restricted(true)),
                Err(refusal) => Resolution::Invalid(refusal),
            }
        }
    }
}
