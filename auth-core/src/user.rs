//! Users: the record, email normalisation and the [`UserStore`] extension point.

use core::fmt;

use async_trait::async_trait;

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
    /// Set on admin-created users: login refuses until the password is changed.
    pub must_change_password: bool,
    /// A disabled user cannot log in, and its sessions and keys do not resolve.
    pub disabled: bool,
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
            created_at,
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
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
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

/// Normalises an email: trims surrounding whitespace and lower-cases the ASCII letters
/// `A`-`Z` only, then checks it is `local@domain` without whitespace or control
/// characters. Every store lookup uses the normalised form, so `" Alice@Example.COM "` and
/// `"alice@example.com"` are one user.
///
/// Every non-ASCII character is kept exactly as given: no Unicode case mapping, no
/// compatibility or canonical normalisation. Unicode lower-casing would merge different
/// mailboxes (U+212A KELVIN SIGN lower-cases to ASCII `k`, U+0130 to `i` plus a combining
/// dot, ...), and a merged email lets one person's verified SSO email adopt another
/// person's account. So the mapping is injective: two addresses that differ in anything
/// but the case of ASCII letters (and surrounding whitespace) never normalise to the same
/// string. The price is that two spellings of one internationalised mailbox (NFC and NFD,
/// say) are two accounts, never one.
///
/// # Errors
///
/// An [`EmailError`].
pub fn normalize_email(raw: &str) -> Result<String, EmailError> {
    let trimmed = raw.trim();
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

    /// Replaces the user's password hash and must-change flag. Returns `false` if there is
    /// no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        must_change_password: bool,
    ) -> Result<bool, StoreError>;

    /// Enables or disables the user. Returns `false` if there is no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`].
    async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError>;

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

    /// Binds `identity` to an existing user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] `{ field: "identity" }` if the identity is bound or the
    /// user already has one; [`StoreError::Backend`].
    async fn bind_identity(&self, user_id: &str, identity: &SsoIdentity) -> Result<(), StoreError>;
}
