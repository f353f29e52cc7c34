//! Users: the record, email normalisation and the [`UserStore`] extension point.

use core::fmt;

use async_trait::async_trait;

use crate::chain::Refusal;
use crate::store::StoreError;

/// Longest accepted email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// A local user.
///
/// `Debug` leaves out the password hash and the email (personal data).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// The user id: 32 lower-case hex characters, random.
    pub id: String,
    /// The normalised email (see [`normalize_email`]).
    pub email: String,
    /// The password's PHC string (`$argon2id$...` or legacy `$2b$...`); `None` for users
    /// who only sign in through SSO.
    pub password_hash: Option<String>,
    /// Set on admin-created users: login issues a restricted session (see
    /// [`Principal::is_restricted`](crate::Principal::is_restricted)) until the password
    /// is changed.
    pub must_change_password: bool,
    /// A disabled user cannot log in, and its sessions and keys do not resolve.
    pub disabled: bool,
    /// Whether the email is proven to belong to the user: created by an operator, by SSO
    /// from a verified email, or marked verified by the service. Only such users are
    /// adopted by an SSO sign-in with the same email.
    pub email_verified: bool,
    /// The user's session epoch: sessions (and every session-like token) issued at another
    /// epoch do not resolve. Bumped by [`RevokeScope::Sessions`] and [`RevokeScope::All`].
    pub session_epoch: i64,
    /// The user's API key epoch: keys stamped with another epoch do not resolve. Bumped by
    /// [`RevokeScope::All`] only.
    pub key_epoch: i64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl User {
    /// A new enabled user.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        email: impl Into<String>,
        password_hash: Option<String>,
        created_at: i64,
    ) -> Self {
        Self {
            id: id.into(),
            email: email.into(),
            password_hash,
            must_change_password: false,
            disabled: false,
            email_verified: false,
            session_epoch: 0,
            key_epoch: 0,
            created_at,
        }
    }

    /// Sets the email-verified flag.
    #[must_use]
    pub fn with_email_verified(mut self, flag: bool) -> Self {
        self.email_verified = flag;
        self
    }

    /// What a credential lookup of kind `kind` reads of this user.
    #[must_use]
    pub fn state(&self, kind: EpochKind) -> UserState {
        UserState {
            disabled: self.disabled,
            must_change_password: self.must_change_password,
            epoch: match kind {
                EpochKind::Session => self.session_epoch,
                EpochKind::ApiKey => self.key_epoch,
            },
        }
    }

    /// Sets the must-change-password flag.
    #[must_use]
    pub fn with_must_change_password(mut self, flag: bool) -> Self {
        self.must_change_password = flag;
        self
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("must_change_password", &self.must_change_password)
            .field("disabled", &self.disabled)
            .field("email_verified", &self.email_verified)
            .field("session_epoch", &self.session_epoch)
            .field("key_epoch", &self.key_epoch)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Which of a user's credentials a state change ends. Every change of user state that
/// ends credentials bumps the matching epoch(s) **in the same statement** (or under the
/// same lock) as the change itself, so a login that verified against the old state can
/// never leave a live credential behind.
///
/// | Change | Scope |
/// |---|---|
/// | password change, admin reset | [`RevokeScope::Sessions`] (reset: [`RevokeScope::All`]) |
/// | rehash on login | [`RevokeScope::None`] |
/// | disable, SSO link, sign out everywhere | [`RevokeScope::All`] |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeScope {
    /// Nothing ends (a rehash of the same password).
    None,
    /// Sessions and every session-like token (bumps the session epoch).
    Sessions,
    /// Sessions, session-like tokens and API keys (bumps both epochs).
    All,
}

impl RevokeScope {
    /// How much the session epoch grows (0 or 1).
    #[must_use]
    pub const fn session_bump(self) -> i64 {
        match self {
            Self::None => 0,
            Self::Sessions | Self::All => 1,
        }
    }

    /// How much the API key epoch grows (0 or 1).
    #[must_use]
    pub const fn key_bump(self) -> i64 {
        match self {
            Self::None | Self::Sessions => 0,
            Self::All => 1,
        }
    }
}

/// Which epoch of the user a credential kind is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EpochKind {
    /// Sessions and session-like tokens ([`User::session_epoch`]).
    Session,
    /// API keys ([`User::key_epoch`]).
    ApiKey,
}

/// What a credential lookup read of the credential's user, in the same query (or under
/// the same lock) as the credential itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserState {
    /// [`User::disabled`].
    pub disabled: bool,
    /// [`User::must_change_password`].
    pub must_change_password: bool,
    /// The user's current epoch of the credential's [`EpochKind`].
    pub epoch: i64,
}

/// A credential found by a request-path lookup, with its user's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithUser<R> {
    /// The credential record.
    pub record: R,
    /// The user's state; `None` when the user row does not exist.
    pub user: Option<UserState>,
}

/// How far a user may go with a credential that [`admit`] accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Admission {
    /// Every route.
    Full,
    /// Only routes that opt in (the password change and logout): the user must change the
    /// password first.
    Restricted,
}

/// Refusal: the credential's user does not exist.
pub const USER_UNKNOWN: Refusal = Refusal::new("user.unknown");
/// Refusal: the credential's user is disabled.
pub const USER_DISABLED: Refusal = Refusal::new("user.disabled");
/// Refusal: the credential was issued before a password change, disable, SSO link or
/// sign-out-everywhere of its user.
pub const CREDENTIAL_SUPERSEDED: Refusal = Refusal::new("user.credential_superseded");

/// The one decision whether a user may authenticate with a credential issued at
/// `issued_epoch`, given the user's state read in the same lookup. Every resolver that
/// yields a user principal (sessions, API keys, SSO) goes through it.
///
/// # Errors
///
/// [`USER_UNKNOWN`], [`USER_DISABLED`] or [`CREDENTIAL_SUPERSEDED`].
pub fn admit(user: Option<&UserState>, issued_epoch: i64) -> Result<Admission, Refusal> {
    let Some(user) = user else {
        return Err(USER_UNKNOWN);
    };
    if user.disabled {
        return Err(USER_DISABLED);
    }
    if user.epoch != issued_epoch {
        return Err(CREDENTIAL_SUPERSEDED);
    }
    Ok(if user.must_change_password {
        Admission::Restricted
    } else {
        Admission::Full
    })
}

/// An SSO identity bound to a user: `(issuer, subject)`, compared exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SsoIdentity {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The subject at that issuer (`sub`).
    pub subject: String,
}

impl SsoIdentity {
    /// An identity.
    #[must_use]
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }
}

/// Why an email address was refused. Names the field, never the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// Empty after trimming.
    #[error("email is empty")]
    Empty,
    /// Longer than [`MAX_EMAIL_LEN`].
    #[error("email is longer than {MAX_EMAIL_LEN} bytes")]
    TooLong,
    /// Not `local@domain`, or contains whitespace or control characters.
    #[error("email is not a valid address")]
    Invalid,
}

/// Normalises an email: trims surrounding ASCII whitespace and lower-cases the ASCII letters
/// `A`-`Z` only, then checks it is `local@domain` without whitespace or control
/// characters. Every store lookup uses the normalised form, so `" Alice@Example.COM "` and
/// `"alice@example.com"` are one user.
///
/// Every non-ASCII character is kept exactly as given: no Unicode case mapping, no
/// compatibility or canonical normalisation. Unicode lower-casing would merge different
/// mailboxes (U+212A KELVIN SIGN lower-cases to ASCII `k`, U+0130 to `i` plus a combining
/// dot, ...), and a merged email lets one person's verified SSO email adopt another
/// person's account. So the mapping is injective: two addresses that differ in anything
/// but the case of ASCII letters (and surrounding ASCII whitespace) never normalise to the same
/// string. The price is that two spellings of one internationalised mailbox (NFC and NFD,
/// say) are two accounts, never one.
///
/// # Errors
///
/// An [`EmailError`].
pub fn normalize_email(raw: &str) -> Result<String, EmailError> {
    // ASCII whitespace only: Unicode whitespace (U+00A0, U+3000, ...) is kept and then
    // refused below, never trimmed into another mailbox.
    let trimmed = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(EmailError::Empty);
    }
    if trimmed.len() > MAX_EMAIL_LEN {
        return Err(EmailError::TooLong);
    }
    // ASCII only: the length in bytes is unchanged and no two inputs that differ other
    // than by ASCII case can meet.
    let lower = trimmed.to_ascii_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return Err(EmailError::Invalid);
    };
    if local.is_empty()
        || domain.is_empty()
        || lower.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(EmailError::Invalid);
    }
    Ok(lower)
}

/// Where users live.
///
/// # Security contract
///
/// * Emails arrive normalised ([`normalize_email`]); the store compares them exactly and
///   enforces uniqueness (a second user with the same email is
///   [`StoreError::Conflict`] `{ field: "email" }`).
/// * `(issuer, subject)` is unique, and a user has at most one SSO identity: a second
///   binding of either side is [`StoreError::Conflict`] `{ field: "identity" }`.
/// * Every write is scoped by the user id it names; no call touches another user's rows.
/// * Errors are [`StoreError`]s, never a default value: a failed lookup must not look like
///   "no such user".
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug {
    /// Inserts a new user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if the id or email exists; [`StoreError::Backend`].
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;

    /// Inserts a new user bound to `identity`, atomically.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if the id, email or identity exists; [`StoreError::Backend`].
    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &SsoIdentity,
    ) -> Result<(), StoreError>;

    /// The user with this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError>;

    /// The user with this normalised email.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;

    /// Compare-and-set of the password: replaces the hash and the must-change flag only if
    /// the stored hash is still `expected` (`None`: no password), and bumps the epochs
    /// named by `revoke` in the same statement. Returns `false` if there is no such user
    /// or the hash changed since it was read (the caller lost a race: a rehash drops its
    /// write, a password change reads again).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn set_password(
        &self,
        user_id: &str,
        expected: Option<&str>,
        password_hash: &str,
        must_change_password: bool,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError>;

    /// Enables or disables the user. Disabling bumps both epochs in the same statement
    /// (so re-enabling never brings old credentials back). Returns `false` if there is no
    /// such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError>;

    /// Bumps the user's epochs named by `revoke`: every credential of those kinds issued
    /// before ends (sign out everywhere; later token kinds reuse it). Returns `false` if
    /// there is no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn revoke_credentials(
        &self,
        user_id: &str,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError>;

    /// Marks the user's email as proven (after the service's own verification). Returns
    /// `false` if there is no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn set_email_verified(&self, user_id: &str) -> Result<bool, StoreError>;

    /// The user bound to `identity`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn user_by_identity(&self, identity: &SsoIdentity) -> Result<Option<User>, StoreError>;

    /// The SSO identity bound to this user, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn identity_of(&self, user_id: &str) -> Result<Option<SsoIdentity>, StoreError>;

    /// Binds `identity` to an existing user and, in the same transaction, bumps both of the
    /// user's epochs ([`RevokeScope::All`]): every credential the account had before the
    /// link ends.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] `{ field: "identity" }` if the identity is bound or the
    /// user already has one; [`StoreError::Backend`].
    async fn bind_identity(&self, user_id: &str, identity: &SsoIdentity) -> Result<(), StoreError>;
}
