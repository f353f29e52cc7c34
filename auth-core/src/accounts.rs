//! Accounts: register, login, logout, me and change-password as library calls.
//!
//! The HTTP handlers of the embedding service call these and map the errors: every login
//! refusal is the opaque [`AccountError::InvalidCredentials`] (unknown email, wrong
//! password and disabled user look the same and cost the same Argon2 work).

use std::sync::Arc;

use crate::password::{
    Password, PasswordError, PasswordHasher, PasswordPolicy, PolicyError, Verification,
};
use crate::principal::Principal;
use crate::secret::{self, RandomError};
use crate::session::{SessionError, SessionToken, Sessions};
use crate::store::StoreError;
use crate::user::{EmailError, User, UserStore, normalize_email};

/// Failures of account calls. Login refusals are deliberately one opaque variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Unknown email, wrong password or disabled user (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password was right, but it must be changed before a session is issued (call
    /// [`Accounts::change_password`] with it).
    #[error("password must be changed before login")]
    PasswordChangeRequired {
        /// The user whose password must change.
        user_id: String,
    },
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
}

/// Account operations over a user store, sessions and a password hasher.
#[derive(Clone, Debug)]
pub struct Accounts {
    users: Arc<dyn UserStore>,
    sessions: Sessions,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
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
        }
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

    /// Registers a user with a password.
    ///
    /// # Errors
    ///
    /// [`AccountError::Email`], [`AccountError::Policy`], [`AccountError::EmailTaken`],
    /// [`AccountError::Unavailable`].
    pub async fn register(&self, email: &str, password: &Password) -> Result<User, AccountError> {
        self.create(email, password, false).await
    }

    /// Creates a user on an administrator's behalf; the user must change `password` at
    /// first login.
    ///
    /// # Errors
    ///
    /// As [`Accounts::register`].
    pub async fn admin_create_user(
        &self,
        email: &str,
        password: &Password,
    ) -> Result<User, AccountError> {
        self.create(email, password, true).await
    }

    async fn create(
        &self,
        email: &str,
        password: &Password,
        must_change: bool,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        self.policy.check(password)?;
        let hash = self.hasher.hash(password).await?;
        let user = User::new(secret::random_id()?, email, Some(hash), secret::now_unix())
            .with_must_change_password(must_change);
        self.users.create_user(&user).await?;
        tracing::info!(code = "account.registered", user_id = %user.id, must_change, "user created");
        Ok(user)
    }

    /// Checks email and password and returns the user, doing the same Argon2 work whether
    /// or not the email exists. Upgrades legacy or weak hashes.
    async fn check_password(&self, email: &str, password: &Password) -> Result<User, AccountError> {
        let Ok(email) = normalize_email(email) else {
            self.hasher.verify_dummy(password).await?;
            tracing::info!(code = "login.bad_email", "login refused");
            return Err(AccountError::InvalidCredentials);
        };
        let user = self.users.user_by_email(&email).await?;
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
                    self.rehash(&user, password).await;
                }
                Ok(user)
            }
        }
    }

    /// Stores a fresh Argon2id hash; failure is logged and the login goes on.
    async fn rehash(&self, user: &User, password: &Password) {
        let result = match self.hasher.hash(password).await {
            Ok(hash) => self
                .users
                .set_password(&user.id, &hash, user.must_change_password)
                .await
                .map(|_| ())
                .map_err(AccountError::from),
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => {
                tracing::info!(code = "login.rehashed", user_id = %user.id, "password hash upgraded")
            }
            Err(e) => {
                tracing::warn!(code = "login.rehash_failed", user_id = %user.id, error = %e, "password hash upgrade failed")
            }
        }
    }

    /// Logs in: on success a new session (never a reused one).
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] (opaque), [`AccountError::PasswordChangeRequired`]
    /// (right password, flagged user: no session issued), [`AccountError::Unavailable`].
    pub async fn login(&self, email: &str, password: &Password) -> Result<Login, AccountError> {
        let user = self.check_password(email, password).await?;
        if user.must_change_password {
            tracing::info!(code = "login.must_change_password", user_id = %user.id, "password change required");
            return Err(AccountError::PasswordChangeRequired { user_id: user.id });
        }
        let token = self.sessions.issue(&user.id).await?;
        tracing::info!(code = "login.ok", user_id = %user.id, session_id = token.session_id(), "login");
        Ok(Login { user, token })
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
    /// must-change flag and revokes every session of the user (log in again afterwards).
    ///
    /// # Errors
    ///
    /// [`AccountError::InvalidCredentials`] when `current` is wrong or the user is
    /// unknown or disabled, [`AccountError::Policy`], [`AccountError::Unavailable`].
    pub async fn change_password(
        &self,
        user_id: &str,
        current: &Password,
        new: &Password,
    ) -> Result<(), AccountError> {
        self.policy.check(new)?;
        let Some(user) = self.users.user_by_id(user_id).await? else {
            self.hasher.verify_dummy(current).await?;
            return Err(AccountError::InvalidCredentials);
        };
        // Re-check through the email path so that the same rules apply.
        let user = self.check_password(&user.email, current).await?;
        let hash = self.hasher.hash(new).await?;
        if !self.users.set_password(&user.id, &hash, false).await? {
            return Err(AccountError::UserNotFound);
        }
        let revoked = self.sessions.revoke_all(&user.id).await?;
        tracing::info!(code = "account.password_changed", user_id = %user.id, sessions_revoked = revoked, "password changed");
        Ok(())
    }

    /// Disables or enables a user; disabling also revokes all the user's sessions.
    ///
    /// # Errors
    ///
    /// [`AccountError::UserNotFound`], [`AccountError::Unavailable`].
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<(), AccountError> {
        if !self.users.set_disabled(user_id, disabled).await? {
            return Err(AccountError::UserNotFound);
        }
        if disabled {
            self.sessions.revoke_all(user_id).await?;
        }
        tracing::info!(
            code = "account.disabled_changed",
            user_id,
            disabled,
            "user disabled flag changed"
        );
        Ok(())
    }
}
