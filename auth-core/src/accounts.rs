//! Accounts: register, login, logout, me and change-password as library calls.
//!
//! The HTTP handlers of the embedding service call these and map the errors: every login
//! refusal is the opaque [`AccountError::InvalidCredentials`] (unknown email, wrong
//! password and disabled user look the same and cost the same Argon2 work).
//!
//! With a second factor ([`Accounts::with_mfa`]), a login of a user whose factor is
//! active stops after the password: [`Accounts::login`] answers
//! [`LoginStep::SecondFactorRequired`] with an `mfa_token` and issues nothing;
//! [`Accounts::login_mfa`] finishes it with a code.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq as _;

use crate::mfa::{AMR_PWD, AMR_PWD_OTP, LoginKind, Mfa, MfaChallenge, MfaError, PasswordVerified};
use crate::password::{
    Password, PasswordError, PasswordHasher, PasswordPolicy, PolicyError, Verification,
};
use crate::principal::Principal;
use crate::secret::{self, RandomError};
use crate::session::{SessionError, SessionToken, Sessions};
use crate::store::StoreError;
use crate::throttle::{LoginThrottle, ThrottleError};
use crate::user::{EmailError, RevokeScope, User, UserStore, normalize_email};

/// How many times a password write retries a lost compare-and-set.
const CAS_ATTEMPTS: usize = 3;

/// Failures of account calls. Login refusals are deliberately one opaque variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Unknown email, wrong password or disabled user (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The new password equals the current one (a forced change must change it).
    #[error("new_password must differ from the current password")]
    SamePassword,
    /// Concurrent password writes kept winning the compare-and-set; nothing was changed
    /// (retry).
    #[error("the password was changed concurrently; try again")]
    Conflict,
    /// The email is already registered.
    #[error("email is already registered")]
    EmailTaken,
    /// The email is not a valid address.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// The new password breaks the policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The user does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The second step of a login, or an operation that needs a second-factor code,
    /// failed: wrong, malformed or already used code, or an unknown, expired or used
    /// `mfa_token` (never says which). **This is where a login throttle records a failed
    /// second-factor attempt.**
    #[error("invalid second factor")]
    InvalidSecondFactor,
    /// The operation needs an active second factor and the user has none.
    #[error("no active second factor")]
    SecondFactorNotEnabled,
    /// Too many login or second-factor attempts for this account or client address
    /// (HTTP 429 with `Retry-After`); answered before any password or code work, the
    /// same for unknown emails.
    #[error("too many attempts")]
    Throttled {
        /// The wait before the next attempt can succeed.
        retry_after: Duration,
    },
    /// A store, hashing or randomness failure (503).
    #[error("account backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field: "email" } => Self::EmailTaken,
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl From<ThrottleError> for AccountError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled { retry_after } => Self::Throttled { retry_after },
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl From<SessionError> for AccountError {
    fn from(e: SessionError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<PasswordError> for AccountError {
    fn from(e: PasswordError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<MfaError> for AccountError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::InvalidCode | MfaError::InvalidToken => Self::InvalidSecondFactor,
            MfaError::NotEnabled => Self::SecondFactorNotEnabled,
            MfaError::Throttled { retry_after } => Self::Throttled { retry_after },
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

impl From<RandomError> for AccountError {
    fn from(e: RandomError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// A successful login.
#[derive(Debug)]
#[non_exhaustive]
pub struct Login {
    /// The user.
    pub user: User,
    /// The new session token (show it to the client once).
    pub token: SessionToken,
    /// The user must change the password: the session is restricted to the password
    /// change and logout until then.
    pub password_change_required: bool,
    /// The authentication methods used (RFC 8176): `["pwd"]` or `["pwd", "otp"]`.
    pub amr: &'static [&'static str],
    /// When the login's last step succeeded, Unix seconds.
    pub auth_time: i64,
    /// When the session ends, Unix seconds (the session's stored expiry, the same as
    /// [`SessionToken::expires_at`]).
    pub expires_at: i64,
}

/// A user authenticated by every factor the account requires.
#[derive(Debug)]
#[non_exhaustive]
pub struct Authentication {
    /// The user (as read before the password check, or after the second step).
    pub user: User,
    /// The authentication methods used (RFC 8176): `["pwd"]` or `["pwd", "otp"]`.
    pub amr: &'static [&'static str],
    /// When the last step succeeded, Unix seconds (with `otp` in `amr`, the time of the
    /// second-factor check).
    pub auth_time: i64,
    /// What the login finishes into: the kind given to [`Accounts::authenticate_for`]
    /// (for a two-step login, as stored with the challenge).
    pub kind: LoginKind,
}

/// The answer of the password step ([`Accounts::authenticate`]).
#[derive(Debug)]
pub enum FirstFactor {
    /// No second factor is active: the user is authenticated.
    Complete(Authentication),
    /// The user has an active second factor: hand the challenge's `mfa_token` to the
    /// client (`{"mfa_required": true, "mfa_token": "..."}`) and finish with
    /// [`Accounts::complete_mfa`] or [`Accounts::login_mfa`]. Nothing was issued.
    SecondFactorRequired(MfaChallenge),
}

/// The answer of [`Accounts::login`].
#[derive(Debug)]
pub enum LoginStep {
    /// Logged in: a new session.
    Session(Login),
    /// The user has an active second factor: no session was issued; finish with
    /// [`Accounts::login_mfa`].
    SecondFactorRequired(MfaChallenge),
}

impl LoginStep {
    /// The session, if the login is complete.
    #[must_use]
    pub fn into_session(self) -> Option<Login> {
        match self {
            Self::Session(login) => Some(login),
            Self::SecondFactorRequired(_) => None,
        }
    }
}

/// Account operations over a user store, sessions and a password hasher.
#[derive(Clone, Debug)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Sessions,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    mfa: Option<Mfa>,
    throttle: Option<LoginThrottle>,
}

impl Accounts {
    /// Accounts over these parts, with the default [`PasswordPolicy`].
    #[must_use]
    pub fn new(users: Arc<dyn UserStore>, sessions: Sessions, hasher: PasswordHasher) -> Self {
        Self {
            users,
            sessions,
            hasher,
            policy: PasswordPolicy::default(),
            mfa: None,
            throttle: None,
        }
    }

    /// Throttles logins ([`LoginThrottle`]): every password check asks it first (before
    /// any hashing, on the email as given, whether or not it exists) and reports the
    /// outcome to it. Give the same throttle to [`Mfa::with_throttle`] so that
    /// second-factor codes are limited too.
    #[must_use]
    pub fn with_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Enables the second factor: logins of users with an active factor need a code.
    /// **Configure it whenever an [`Mfa`] service runs over the same store**: accounts
    /// without it do not look for second factors.
    #[must_use]
    pub fn with_mfa(mut self, mfa: Mfa) -> Self {
        self.mfa = Some(mfa);
        self
    }

    /// The second-factor service, if configured.
    #[must_use]
    pub fn mfa(&self) -> Option<&Mfa> {
        self.mfa.as_ref()
    }

    /// Replaces the password policy.
    #[must_use]
    pub fn with_policy(mut self, policy: PasswordPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The sessions (to build the session resolver from the same store).
    #[must_use]
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Registers a user with a password. The email is not proven
    /// ([`User::email_verified`] is `false`) until [`Accounts::mark_email_verified`]: an
    /// SSO sign-in never adopts such an account.
    ///
    /// # Errors
    ///
    /// [`AccountError::Email`], [`AccountError::Policy`], [`AccountError::EmailTaken`],
    /// [`AccountError::Unavailable`].
    pub async fn register(&self, email: &str, password: &Password) -> Result<User, AccountError> {
        self.create(email, password, false, false).await
    }

    /// Creates a user on an administrator's behalf; the user must change `password` at
    /// first login (until then every login gives a restricted session). The operator
    /// vouches for the email: it counts as proven.
    ///
    /// # Errors
    ///
    /// As [`Accounts::register`].
    pub async fn admin_create_user(
        &self,
        email: &str,
        password: &Password,
    ) -> Result<User, AccountError> {
        self.create(email, password, true, true).await
    }

    /// Creates a user on an administrator's behalf with a password the user keeps (no
    /// forced change). The email counts as proven.
    ///
    /// # Errors
    ///
    /// As [`Accounts::register`].
    pub async fn admin_create_user_keep_password(
        &self,
        email: &str,
        password: &Password,
    ) -> Result<User, AccountError> {
        self.create(email, password, false, true).await
    }

    async fn create(
        &self,
        email: &str,
        password: &Password,
        must_change: bool,
        email_verified: bool,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        self.policy.check(password)?;
        let hash = self.hasher.hash(password).await?;
        let user = User::new(secret::random_id()?, email, Some(hash), secret::now_unix())
            .with_must_change_password(must_change)
            .with_email_verified(email_verified);
        self.users.create_user(&user).await?;
        tracing::info!(code = "account.registered", user_id = %user.id, must_change, "user created");
        Ok(user)
    }

    /// Checks email and password and returns the user as read before the check, doing the
    /// same Argon2 work whether or not the email exists. Upgrades legacy or weak hashes.
    ///
    /// With a throttle, the throttle is asked first (before any hashing, on the email as
    /// given, whether or not it exists) and told the outcome.
    async fn check_password(
        &self,
        email: &str,
        password: &Password,
        client: Option<IpAddr>,
    ) -> Result<User, AccountError> {
        let Some(throttle) = &self.throttle else {
            return self.check_email_password(email, password).await;
        };
        throttle.check(email, client).await?;
        let result = self.check_email_password(email, password).await;
        match &result {
            Ok(_) => throttle.success(email, client).await?,
            Err(AccountError::InvalidCredentials) => throttle.failure(email, client).await?,
            Err(_) => {}
        }
        result
    }

    async fn check_email_password(
        &self,
        email: &str,
        password: &Password,
    ) -> Result<User, AccountError> {
        let Ok(email) = normalize_email(email) else {
            self.hasher.verify_dummy(password).await?;
            tracing::info!(code = "login.bad_email", "login refused");
            return Err(AccountError::InvalidCredentials);
        };
        let user = self.users.user_by_email(&email).await?;
        self.check_user_password(user, password).await
    }

    /// Checks `password` against `user` (as read just before): unknown, password-less
    /// and disabled users are refused after the same work. A legacy or weak hash is
    /// upgraded by a compare-and-set on the hash just verified.
    async fn check_user_password(
        &self,
        user: Option<User>,
        password: &Password,
    ) -> Result<User, AccountError> {
        let Some(user) = user else {
            self.hasher.verify_dummy(password).await?;
            tracing::info!(code = "login.unknown_user", "login refused");
            return Err(AccountError::InvalidCredentials);
        };
        let Some(stored) = user.password_hash.as_deref() else {
            self.hasher.verify_dummy(password).await?;
            tracing::info!(code = "login.no_password", user_id = %user.id, "login refused");
            return Err(AccountError::InvalidCredentials);
        };
        let verification = match self.hasher.verify(password, stored).await {
            Ok(v) => v,
            Err(PasswordError::UnknownHashFormat) => {
                tracing::error!(code = "login.unknown_hash_format", user_id = %user.id, "stored hash has an unknown format");
                return Err(AccountError::InvalidCredentials);
            }
            Err(e) => return Err(e.into()),
        };
        match verification {
            Verification::Mismatch => {
                tracing::info!(code = "login.bad_password", user_id = %user.id, "login refused");
                Err(AccountError::InvalidCredentials)
            }
            Verification::Match { .. } if user.disabled => {
                tracing::info!(code = "login.disabled", user_id = %user.id, "login refused");
                Err(AccountError::InvalidCredentials)
            }
            Verification::Match { needs_rehash } => {
                if needs_rehash {
                    self.rehash(&user, stored, password).await;
                }
                Ok(user)
            }
        }
    }

    /// Stores a fresh Argon2id hash in place of `verified` (the hash the password was just
    /// checked against), as a compare-and-set: if the hash changed meanwhile (a password
    /// change won the race), the upgrade is dropped, never written over the new password.
    /// Ends no credential. Failure is logged and the login goes on.
    async fn rehash(&self, user: &User, verified: &str, password: &Password) {
        let result = match self.hasher.hash(password).await {
            Ok(hash) => self
                .users
                .set_password(
                    &user.id,
                    Some(verified),
                    &hash,
                    user.must_change_password,
                    RevokeScope::None,
                )
                .await
                .map_err(AccountError::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(true) => {
                tracing::info!(code = "login.rehashed", user_id = %user.id, "password hash upgraded")
            }
            Ok(false) => {
                tracing::info!(code = "login.rehash_superseded", user_id = %user.id, "password changed meanwhile; upgrade dropped")
            }
            Err(e) => {
                tracing::warn!(code = "login.rehash_failed", user_id = %user.id, error = %e, "password hash upgrade failed")
            }
        }
    }

    /// The password step: checks email and password and answers either
    /// [`FirstFactor::Complete`] (`amr` `["pwd"]`) or, for a user with an active second
    /// factor, [`FirstFactor::SecondFactorRequired`] with a fresh `mfa_token`. Issues no
    /// credential.
    ///
    /// `client` is the caller's address, for the login throttle's per-address limit
    /// (without it, only the per-account limit applies).
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] (opaque), [`AccountError::Unavailable`].
    pub async fn authenticate(
        &self,
        email: &str,
        password: &Password,
        client: Option<IpAddr>,
    ) -> Result<FirstFactor, AccountError> {
        self.authenticate_for(email, password, client, LoginKind::Session)
            .await
    }

    /// [`Accounts::authenticate`] for a login that finishes into `kind`: the kind is
    /// stored with the second-factor challenge and comes back in
    /// [`Authentication::kind`] from [`Accounts::complete_mfa`], so the embedder issues
    /// the credential the login was begun for, whatever route the second step uses.
    ///
    /// # Errors
    ///
    /// As [`Accounts::authenticate`].
    pub async fn authenticate_for(
        &self,
        email: &str,
        password: &Password,
        client: Option<IpAddr>,
        kind: LoginKind,
    ) -> Result<FirstFactor, AccountError> {
        let user = self.check_password(email, password, client).await?;
        let auth_time = secret::now_unix();
        if let Some(mfa) = &self.mfa
            && mfa.is_enabled(&user.id).await?
        {
            let challenge = mfa.begin_login_for(&user, kind).await?;
            return Ok(FirstFactor::SecondFactorRequired(challenge));
        }
        Ok(FirstFactor::Complete(Authentication {
            user,
            amr: AMR_PWD,
            auth_time,
            kind,
        }))
    }

    /// The second step: consumes `mfa_token` (single use, whatever the code) and checks
    /// `code` (TOTP or recovery code) for the token's user, who must still be enabled and
    /// at the session epoch the password step read. Returns the user with `amr`
    /// `["pwd", "otp"]` and `auth_time` now. Issues no credential.
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidSecondFactor`] (bad code or token: report it to the
    /// throttle), [`AccountError::InvalidCredentials`] (the user changed or was disabled
    /// since the password step; no second factor configured), [`AccountError::Unavailable`].
    pub async fn complete_mfa(
        &self,
        mfa_token: &str,
        code: &str,
    ) -> Result<Authentication, AccountError> {
        let Some(mfa) = &self.mfa else {
            tracing::warn!(
                code = "login.mfa_unconfigured",
                "second step without a second factor service"
            );
            return Err(AccountError::InvalidCredentials);
        };
        let challenge = mfa.complete_login(mfa_token, code).await?;
        let user = match self.users.user_by_id(&challenge.user_id).await? {
            Some(u) if !u.disabled && u.session_epoch == challenge.user_epoch => u,
            _ => {
                tracing::info!(code = "login.superseded", user_id = %challenge.user_id, "user changed during the login");
                return Err(AccountError::InvalidCredentials);
            }
        };
        tracing::info!(code = "login.mfa_ok", user_id = %user.id, "second factor passed");
        Ok(Authentication {
            user,
            amr: AMR_PWD_OTP,
            auth_time: secret::now_unix(),
            kind: challenge.kind,
        })
    }

    /// Logs in: on success a new session (never a reused one). A user who must change the
    /// password gets a **restricted** session ([`Login::password_change_required`]): its
    /// principal is [`Principal::is_restricted`], which the axum extractor refuses except
    /// on the password change and logout.
    ///
    /// A user with an active second factor gets **no session**:
    /// [`LoginStep::SecondFactorRequired`] with the `mfa_token` for
    /// [`Accounts::login_mfa`].
    ///
    /// The session is stamped with the user's session epoch as read before the password
    /// check; if a password change, disable, link or sign-out-everywhere happens while the
    /// password is being verified, the session is refused (or never resolves).
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] (opaque; also when the user changed during
    /// the login), [`AccountError::Unavailable`].
    pub async fn login(&self, email: &str, password: &Password) -> Result<LoginStep, AccountError> {
        self.login_from(email, password, None).await
    }

    /// [`Accounts::login`] from the client address `client` (the throttle's per-address
    /// limit applies when it is given; without it, only the per-account limit).
    ///
    /// # Errors
    ///
    /// As [`Accounts::login`], and [`AccountError::Throttled`] with a throttle.
    pub async fn login_from(
        &self,
        email: &str,
        password: &Password,
        client: Option<IpAddr>,
    ) -> Result<LoginStep, AccountError> {
        match self.authenticate(email, password, client).await? {
            FirstFactor::Complete(auth) => Ok(LoginStep::Session(self.issue_session(auth).await?)),
            FirstFactor::SecondFactorRequired(challenge) => {
                Ok(LoginStep::SecondFactorRequired(challenge))
            }
        }
    }

    /// Finishes a login that answered [`LoginStep::SecondFactorRequired`]: checks the
    /// code as [`Accounts::complete_mfa`] and issues a session whose
    /// [`Principal::mfa_at`] is now.
    ///
    /// # Errors
    ///
    /// As [`Accounts::complete_mfa`].
    pub async fn login_mfa(&self, mfa_token: &str, code: &str) -> Result<Login, AccountError> {
        let auth = self.complete_mfa(mfa_token, code).await?;
        if auth.kind != LoginKind::Session {
            // Begun for another credential (a token pair): the token is spent, nothing
            // is issued.
            tracing::info!(code = "login.mfa_wrong_kind", user_id = %auth.user.id, kind = auth.kind.as_str(), "second step for another kind of login");
            return Err(AccountError::InvalidSecondFactor);
        }
        self.issue_session(auth).await
    }

    /// Issues a session for a completed authentication (from
    /// [`Accounts::authenticate_for`] or [`Accounts::complete_mfa`]), stamped with the
    /// user's session epoch as read by the password step; with `otp` in `amr`, the
    /// session's [`Principal::mfa_at`] is `auth_time`. For embedders that finish a login
    /// by [`Authentication::kind`] themselves: check the kind first.
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] (the user changed since), [`AccountError::Unavailable`].
    pub async fn issue_session(&self, auth: Authentication) -> Result<Login, AccountError> {
        let Authentication {
            user,
            amr,
            auth_time,
            ..
        } = auth;
        let issued = if amr.contains(&"otp") {
            self.sessions.issue_with_mfa(&user, auth_time).await
        } else {
            self.sessions.issue(&user).await
        };
        let token = match issued {
            Ok(token) => token,
            Err(SessionError::Store(StoreError::UserRefused)) => {
                tracing::info!(code = "login.superseded", user_id = %user.id, "user changed during the login");
                return Err(AccountError::InvalidCredentials);
            }
            Err(e) => return Err(e.into()),
        };
        let password_change_required = user.must_change_password;
        if password_change_required {
            tracing::info!(code = "login.restricted_session", user_id = %user.id, session_id = token.session_id(), "session limited to the password change");
        } else {
            tracing::info!(code = "login.ok", user_id = %user.id, session_id = token.session_id(), "login");
        }
        let expires_at = token.expires_at();
        Ok(Login {
            user,
            token,
            password_change_required,
            amr,
            auth_time,
            expires_at,
        })
    }

    /// A step-up for a credential that cannot record it (an access token): checks `code`
    /// (TOTP or recovery, throttled per user as every code) for `user_id`, who must be
    /// enabled, and returns an [`Authentication`] with `amr` `["pwd", "otp"]`,
    /// `auth_time` now and kind [`LoginKind::TokenPair`], from which the embedder issues
    /// a new credential. Sessions record a step-up in place
    /// ([`Sessions::record_step_up`]).
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidSecondFactor`], [`AccountError::SecondFactorNotEnabled`],
    /// [`AccountError::Throttled`], [`AccountError::InvalidCredentials`] (user gone or
    /// disabled), [`AccountError::Unavailable`].
    pub async fn step_up(&self, user_id: &str, code: &str) -> Result<Authentication, AccountError> {
        let Some(mfa) = &self.mfa else {
            return Err(AccountError::SecondFactorNotEnabled);
        };
        mfa.verify(user_id, code).await?;
        let user = match self.users.user_by_id(user_id).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(AccountError::InvalidCredentials),
        };
        Ok(Authentication {
            user,
            amr: AMR_PWD_OTP,
            auth_time: secret::now_unix(),
            kind: LoginKind::TokenPair,
        })
    }

    /// Checks the password of `user_id` (same work and same opaque refusal as a login)
    /// and returns the permit that [`Mfa::disable`] asks for.
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`], [`AccountError::Unavailable`].
    pub async fn verify_password(
        &self,
        user_id: &str,
        password: &Password,
    ) -> Result<PasswordVerified, AccountError> {
        let read = self.users.user_by_id(user_id).await?;
        let user = self.check_user_password(read, password).await?;
        Ok(PasswordVerified::new(user.id))
    }

    /// Disables the user's second factor: needs the password and a code (TOTP or
    /// recovery). See [`Mfa::disable`].
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] (password), [`AccountError::InvalidSecondFactor`]
    /// (code), [`AccountError::SecondFactorNotEnabled`], [`AccountError::Unavailable`].
    pub async fn disable_mfa(
        &self,
        user_id: &str,
        password: &Password,
        code: &str,
    ) -> Result<(), AccountError> {
        let Some(mfa) = &self.mfa else {
            return Err(AccountError::SecondFactorNotEnabled);
        };
        let permit = self.verify_password(user_id, password).await?;
        mfa.disable(&permit, code).await?;
        Ok(())
    }

    /// Logs out: revokes the session holding `token`. Returns whether one was revoked.
    ///
    /// # Errors
    ///
    /// [`AccountError::Unavailable`].
    pub async fn logout(&self, token: &str) -> Result<bool, AccountError> {
        Ok(self.sessions.revoke_token(token).await?)
    }

    /// The authenticated principal's user.
    ///
    /// # Errors
    ///
    /// [`AccountError::UserNotFound`], [`AccountError::Unavailable`].
    pub async fn me(&self, principal: &Principal) -> Result<User, AccountError> {
        self.users
            .user_by_id(principal.user_id())
            .await?
            .ok_or(AccountError::UserNotFound)
    }

    /// Changes the password of `user_id` after checking the current one, clears the
    /// must-change flag and ends every session of the user (log in again afterwards); API
    /// keys survive (see the crate README). The write is a compare-and-set on the hash that
    /// `current` was checked against, with the session-epoch bump in the same statement;
    /// if another write won meanwhile (e.g. a legacy hash upgraded by a login), it checks
    /// `current` again against what is stored now, up to three times.
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] when `current` is wrong or the user is
    /// unknown or disabled, [`AccountError::SamePassword`], [`AccountError::Policy`],
    /// [`AccountError::Conflict`] when concurrent changes kept winning,
    /// [`AccountError::Unavailable`].
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &Password,
        new: &Password,
    ) -> Result<(), AccountError> {
        self.policy.check(new)?;
        if bool::from(
            current
                .expose_secret()
                .as_bytes()
                .ct_eq(new.expose_secret().as_bytes()),
        ) {
            return Err(AccountError::SamePassword);
        }
        let hash = self.hasher.hash(new).await?;
        for _ in 0..CAS_ATTEMPTS {
            let read = self.users.user_by_id(user_id).await?;
            // The compare-and-set is on the hash `current` was checked against: if anything
            // replaced it meanwhile (even the rehash of this very check), check again.
            let user = self.check_user_password(read, current).await?;
            if self
                .users
                .set_password(
                    &user.id,
                    user.password_hash.as_deref(),
                    &hash,
                    false,
                    RevokeScope::Sessions,
                )
                .await?
            {
                tracing::info!(code = "account.password_changed", user_id = %user.id, "password changed; sessions ended");
                return Ok(());
            }
            tracing::info!(code = "account.password_change_retry", user_id = %user.id, "password hash changed meanwhile; checking again");
        }
        Err(AccountError::Conflict)
    }

    /// An operator sets a new password for `user_id` (the user must change it at next
    /// login); every session and API key of the user ends. A compare-and-set on the hash
    /// read, retried up to three times.
    ///
    /// # Errors
    ///
    /// [`AccountError::UserNotFound`], [`AccountError::Policy`],
    /// [`AccountError::Conflict`], [`AccountError::Unavailable`].
    pub async fn admin_reset_password(
        &self,
        user_id: &str,
        password: &Password,
    ) -> Result<(), AccountError> {
        self.policy.check(password)?;
        let hash = self.hasher.hash(password).await?;
        for _ in 0..CAS_ATTEMPTS {
            let Some(user) = self.users.user_by_id(user_id).await? else {
                return Err(AccountError::UserNotFound);
            };
            if self
                .users
                .set_password(
                    user_id,
                    user.password_hash.as_deref(),
                    &hash,
                    true,
                    RevokeScope::All,
                )
                .await?
            {
                tracing::info!(
                    code = "account.password_reset",
                    user_id,
                    "password reset by an operator; credentials ended"
                );
                return Ok(());
            }
        }
        Err(AccountError::Conflict)
    }

    /// Disables or enables a user. Disabling ends every session and API key of the user
    /// in the same statement (re-enabling does not bring them back); while disabled, no
    /// resolver yields the user.
    ///
    /// # Errors
    ///
    /// [`AccountError::UserNotFound`], [`AccountError::Unavailable`].
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<(), AccountError> {
        if !self.users.set_disabled(user_id, disabled).await? {
            return Err(AccountError::UserNotFound);
        }
        tracing::info!(
            code = "account.disabled_changed",
            user_id,
            disabled,
            "user disabled flag changed"
        );
        Ok(())
    }

    /// Signs the user out everywhere: every session, session-like token and API key
    /// issued before this call ends, atomically with respect to concurrent logins.
    ///
    /// # Errors
    ///
    /// [`AccountError::UserNotFound`], [`AccountError::Unavailable`].
    pub async fn sign_out_everywhere(&self, user_id: &str) -> Result<(), AccountError> {
        if !self
            .users
            .revoke_credentials(user_id, RevokeScope::All)
            .await?
        {
            return Err(AccountError::UserNotFound);
        }
        tracing::info!(
            code = "account.signed_out_everywhere",
            user_id,
            "every credential of the user ended"
        );
        Ok(())
    }

    /// Marks the user's email as proven (call it after the service's own email
    /// verification): from then on an SSO sign-in with that verified email may adopt the
    /// account.
    ///
    /// # Errors
    ///
    /// [`AccountError::UserNotFound`], [`AccountError::Unavailable`].
    pub async fn mark_email_verified(&self, user_id: &str) -> Result<(), AccountError> {
        if !self.users.set_email_verified(user_id).await? {
            return Err(AccountError::UserNotFound);
        }
        tracing::info!(
            code = "account.email_verified",
            user_id,
            "email marked verified"
        );
        Ok(())
    }
}
