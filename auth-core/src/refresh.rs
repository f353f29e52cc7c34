//! Refresh tokens with rotation and reuse detection (OAuth 2.0 Security BCP, RFC 9700
//! §4.14.2).
//!
//! A refresh token is `rft_` followed by 43 base64url characters without padding: 256
//! random bits from aws-lc-rs, 47 ASCII characters in all. The store keeps only the
//! SHA-256 of the whole text form. Every token belongs to a *family*, started by one
//! login ([`RefreshTokens::issue`]) and stamped with the user's session epoch at that
//! login. Every use rotates the token ([`RefreshTokens::rotate`]): the presented token
//! dies and a new one of the same family is returned, in one atomic step of the store,
//! so exactly one of several concurrent rotations of the same token wins. Presenting a
//! token that has already been rotated is *reuse*: the whole family is revoked (the
//! newest token dies too) and `tracing` logs `code = "refresh.reuse_detected"` with the
//! family and user ids.
//!
//! A family ends at its absolute expiry ([`RefreshConfig::absolute_lifetime`], default
//! 30 days after the login), when it has not been used for its idle lifetime
//! ([`RefreshConfig::idle_lifetime`], default 7 days), when it is revoked (logout,
//! [`RefreshTokens::revoke_user`], reuse), and when its user's session epoch moves on
//! (password change, admin reset, disable, SSO link, sign-out-everywhere: see
//! [`UserStore::revoke_credentials`](crate::UserStore::revoke_credentials)). The epoch
//! check runs in the store's rotation statement (or under its lock), against the user
//! row, exactly as [`SessionStore::session_by_digest`](crate::SessionStore) does.
//!
//! There is no grace window: two rotations of one token, however close together, are
//! reuse (see the crate README, "Refresh tokens", for why).

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::chain::Refusal;
use crate::secret::{self, RandomError};
use crate::store::StoreError;
use crate::user::{User, WithUser, admit};

/// The prefix of every refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "rft_";
/// Length of a refresh token's text form: the prefix and 43 base64url characters.
pub const REFRESH_TOKEN_LEN: usize = REFRESH_TOKEN_PREFIX.len() + 43;
/// Default absolute lifetime of a family: 30 days from the login that started it.
pub const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default idle lifetime of a family: 7 days from its last rotation (or issue).
pub const DEFAULT_IDLE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most entries in a family's `amr` list.
pub const MAX_AMR_ENTRIES: usize = 8;
/// Longest `amr` entry, in bytes.
pub const MAX_AMR_LEN: usize = 32;

/// Refusal code: the token is not (or no longer) known.
pub const REFRESH_UNKNOWN: Refusal = Refusal::new("refresh.unknown");
/// Refusal code: an already rotated token was presented; the family is now revoked.
pub const REFRESH_REUSE_DETECTED: Refusal = Refusal::new("refresh.reuse_detected");
/// Refusal code: the family was revoked (logout, revoke-all, earlier reuse).
pub const REFRESH_REVOKED: Refusal = Refusal::new("refresh.revoked");
/// Refusal code: the family passed its absolute or idle expiry.
pub const REFRESH_EXPIRED: Refusal = Refusal::new("refresh.expired");
/// Refusal at issue: the user is disabled or must change the password (a restricted
/// login gets no refresh family: access tokens cannot carry the restriction).
pub const REFRESH_USER_RESTRICTED: Refusal = Refusal::new("refresh.user_restricted");

/// Why a presented refresh token's text was refused by [`RefreshToken::parse`]. Names
/// the field (`refresh_token`), never the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshTokenError {
    /// Not exactly [`REFRESH_TOKEN_LEN`] bytes long.
    #[error("refresh_token has the wrong length")]
    Length,
    /// Does not start with [`REFRESH_TOKEN_PREFIX`].
    #[error("refresh_token has the wrong prefix")]
    Prefix,
    /// The part after the prefix is not the canonical unpadded base64url form of 32
    /// bytes.
    #[error("refresh_token is not canonical base64url")]
    Encoding,
}

/// A refresh token: a bearer secret, shown to the client once, stored only as its
/// SHA-256. Wiped on drop; `Debug` prints no part of it; no `Clone`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RefreshToken {
    token: String,
}

impl RefreshToken {
    /// A fresh token: 256 bits from the system generator.
    fn generate() -> Result<Self, RandomError> {
        let secret_part = secret::random_secret_b64()?;
        let mut token = String::with_capacity(REFRESH_TOKEN_LEN);
        token.push_str(REFRESH_TOKEN_PREFIX);
        token.push_str(&secret_part);
        Ok(Self { token })
    }

    /// Parses an untrusted token text strictly: exactly [`REFRESH_TOKEN_LEN`] bytes,
    /// the prefix `rft_`, then the canonical unpadded base64url form of 32 bytes (upper
    /// and lower case are different tokens; no whitespace, no padding, no unused bits
    /// set). Parsing says nothing about whether the token is known.
    ///
    /// # Errors
    ///
    /// [`RefreshTokenError`].
    pub fn parse(text: &str) -> Result<Self, RefreshTokenError> {
        use base64ct::Encoding as _;

        if text.len() != REFRESH_TOKEN_LEN {
            return Err(RefreshTokenError::Length);
        }
        let Some(body) = text.strip_prefix(REFRESH_TOKEN_PREFIX) else {
            return Err(RefreshTokenError::Prefix);
        };
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        match base64ct::Base64UrlUnpadded::decode(body, bytes.as_mut()) {
            Ok(out) if out.len() == 32 => Ok(Self {
                token: text.to_owned(),
            }),
            _ => Err(RefreshTokenError::Encoding),
        }
    }

    /// The token to hand to the client.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.token
    }

    /// The SHA-256 of the token's text form: what a [`RefreshStore`] keeps. Not secret
    /// on its own (it does not give the token back).
    #[must_use]
    pub fn digest(&self) -> [u8; 32] {
        secret::sha256(self.token.as_bytes())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken").finish_non_exhaustive()
    }
}

/// A refresh-token family: one login's chain of rotated tokens, and what an access
/// token minted from it carries (user, session epoch, `amr`, `auth_time`, family id as
/// `sid`). Holds no token and no digest. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyRecord {
    id: String,
    user_id: String,
    epoch: i64,
    created_at: i64,
    expires_at: i64,
    idle_expires_at: i64,
    last_used_at: i64,
    generation: i64,
    amr: Vec<String>,
    auth_time: i64,
    revoked_at: Option<i64>,
}

impl FamilyRecord {
    /// A live family `id` (random, non-secret) of `user_id`, issued at the user's
    /// session epoch `epoch` at `created_at`, invalid from `expires_at` on (absolute) and
    /// from `idle_expires_at` on unless rotated before. Generation 0, last used at
    /// `created_at`, `auth_time` = `created_at`, no `amr`.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        user_id: impl Into<String>,
        epoch: i64,
        created_at: i64,
        expires_at: i64,
        idle_expires_at: i64,
    ) -> Self {
        Self {
            id: id.into(),
            user_id: user_id.into(),
            epoch,
            created_at,
            expires_at,
            idle_expires_at,
            last_used_at: created_at,
            generation: 0,
            amr: Vec::new(),
            auth_time: created_at,
            revoked_at: None,
        }
    }

    /// Sets the authentication methods (`amr`, e.g. `["pwd", "otp"]`) and the time of
    /// the last authentication step (`auth_time`, Unix seconds).
    #[must_use]
    pub fn with_auth(mut self, amr: Vec<String>, auth_time: i64) -> Self {
        self.amr = amr;
        self.auth_time = auth_time;
        self
    }

    /// Sets the rotation state: how many rotations happened, when the last one (or the
    /// issue) was, and the idle expiry that follows from it.
    #[must_use]
    pub fn with_rotation(
        mut self,
        generation: i64,
        last_used_at: i64,
        idle_expires_at: i64,
    ) -> Self {
        self.generation = generation;
        self.last_used_at = last_used_at;
        self.idle_expires_at = idle_expires_at;
        self
    }

    /// Sets the revocation time (`None`: live).
    #[must_use]
    pub fn with_revoked_at(mut self, revoked_at: Option<i64>) -> Self {
        self.revoked_at = revoked_at;
        self
    }

    /// The random non-secret family id (32 hex characters): the access token's `sid`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The user the family belongs to.
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The user's session epoch when the family was issued; the family rotates only while
    /// the user is still at it.
    #[must_use]
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// When the family was issued (the login).
    #[must_use]
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Absolute expiry: no token of the family rotates from this second on.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Idle expiry: the last use plus the idle lifetime; moved forward at every rotation.
    #[must_use]
    pub fn idle_expires_at(&self) -> i64 {
        self.idle_expires_at
    }

    /// The last rotation (or the issue).
    #[must_use]
    pub fn last_used_at(&self) -> i64 {
        self.last_used_at
    }

    /// How many times the family has been rotated.
    #[must_use]
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The authentication methods of the login (and step-ups), e.g. `["pwd", "otp"]`.
    #[must_use]
    pub fn amr(&self) -> &[String] {
        &self.amr
    }

    /// Unix seconds of the last authentication step (the login, or the last
    /// second-factor check: [`RefreshTokens::set_auth_time`]).
    #[must_use]
    pub fn auth_time(&self) -> i64 {
        self.auth_time
    }

    /// When the family was revoked; `None` while live.
    #[must_use]
    pub fn revoked_at(&self) -> Option<i64> {
        self.revoked_at
    }
}

/// What a rotation writes when it wins: the new token's digest, the time, and the new
/// idle expiry. `Debug` leaves the digest out (it is the stored lookup key).
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NextToken {
    /// SHA-256 of the new token.
    pub digest: [u8; 32],
    /// The time of the rotation, Unix seconds: the family must be valid at it.
    pub now: i64,
    /// The family's idle expiry after this rotation.
    pub idle_expires_at: i64,
}

impl fmt::Debug for NextToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextToken")
            .field("now", &self.now)
            .field("idle_expires_at", &self.idle_expires_at)
            .finish_non_exhaustive()
    }
}

/// What a store found when asked to rotate a token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The token was the family's current one and the family and its user allowed the
    /// rotation: the token is now spent and the new digest is current. The record is the
    /// family after the rotation.
    Rotated(FamilyRecord),
    /// The token had been rotated before: the store revoked the family (if it was not
    /// revoked yet) in the same transaction. The record is the family after that.
    Reused(FamilyRecord),
    /// The token is the family's current one but the family is revoked or expired at
    /// `now`, or its user is unknown, disabled or at another session epoch (read in the
    /// same statement or under the same lock). Nothing was changed.
    Refused(WithUser<FamilyRecord>),
    /// No family has ever held this token (or the family was swept).
    Unknown,
}

/// Where refresh-token families live.
///
/// # Security contract
///
/// * Only SHA-256 digests of tokens are stored; a store never sees a token.
/// * [`RefreshStore::rotate`] is atomic: of any number of concurrent rotations of one
///   token, exactly one returns [`Rotation::Rotated`]. It rotates only when, at that
///   moment, the token is its family's current one, the family is not revoked, `now` is
///   before both expiries, and the family's user exists, is enabled and is still at the
///   family's session epoch; the user row is read **in the same statement or under the
///   same lock** as the rotation, so a concurrent epoch bump either precedes it (refused)
///   or follows it (the family is superseded from then on).
/// * A spent (rotated) token stays known, so that presenting it again is detected as
///   reuse, until the family is swept.
/// * Revocation is final: nothing clears `revoked_at`.
/// * Errors are [`StoreError`]s, never "not found": callers fail closed.
#[async_trait]
pub trait RefreshStore: Send + Sync + fmt::Debug {
    /// Inserts a new family whose current token has `token_digest`, only if its user
    /// exists, is enabled and is still at the record's [`FamilyRecord::epoch`] (checked
    /// in the same statement).
    ///
    /// # Errors
    ///
    /// [`StoreError::UserRefused`] when that check fails; [`StoreError`].
    async fn insert_family(
        &self,
        family: &FamilyRecord,
        token_digest: &[u8; 32],
    ) -> Result<(), StoreError>;

    /// Rotates the token whose digest is `presented` to `next`, atomically (see the
    /// contract above); on reuse, revokes the family at `next.now` in the same
    /// transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn rotate(&self, presented: &[u8; 32], next: &NextToken) -> Result<Rotation, StoreError>;

    /// Revokes (at `now`) the family that holds or held the token with this digest.
    /// Returns the family, whether or not it was revoked before; `None` when the digest
    /// is unknown.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn revoke_by_digest(
        &self,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<FamilyRecord>, StoreError>;

    /// Revokes (at `now`) every live family of `user_id`; returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn revoke_user_families(&self, user_id: &str, now: i64) -> Result<u64, StoreError>;

    /// Revokes (at `now`) the live family `family_id` of `user_id` (a family of another
    /// user is left alone). Returns whether a family was revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn revoke_family(
        &self,
        user_id: &str,
        family_id: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Sets `auth_time` and `amr` of the live (not revoked) family `family_id` of
    /// `user_id`. Returns whether it was updated.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn set_auth_time(
        &self,
        user_id: &str,
        family_id: &str,
        auth_time: i64,
        amr: &[String],
    ) -> Result<bool, StoreError>;

    /// The user's families, newest first (for a "your devices" page), revoked ones
    /// included.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn user_families(&self, user_id: &str) -> Result<Vec<FamilyRecord>, StoreError>;

    /// Deletes families (and their spent token digests) that are revoked, past either
    /// expiry at `now`, or whose epoch is no longer their user's; returns how many
    /// families.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn delete_expired_families(&self, now: i64) -> Result<u64, StoreError>;
}

/// Refresh-token lifetimes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshConfig {
    absolute: Duration,
    idle: Duration,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            absolute: DEFAULT_ABSOLUTE_LIFETIME,
            idle: DEFAULT_IDLE_LIFETIME,
        }
    }
}

impl RefreshConfig {
    /// Absolute lifetime of a family from its login (default 30 days; at least one
    /// second). Rotation never extends it: the user logs in again after it.
    #[must_use]
    pub fn absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.absolute = lifetime.max(Duration::from_secs(1));
        self
    }

    /// Idle lifetime (default 7 days; at least one second): a family not rotated for this
    /// long ends.
    #[must_use]
    pub fn idle_lifetime(mut self, lifetime: Duration) -> Self {
        self.idle = lifetime.max(Duration::from_secs(1));
        self
    }

    /// The absolute lifetime.
    #[must_use]
    pub fn absolute(&self) -> Duration {
        self.absolute
    }

    /// The idle lifetime.
    #[must_use]
    pub fn idle(&self) -> Duration {
        self.idle
    }
}

/// Errors of refresh-token operations. Every refusal is one opaque "invalid grant" to a
/// client (RFC 6749 §5.2); the variants are for the caller's logs and tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The token is unknown (never issued, or swept).
    #[error("refresh_token is not valid")]
    Unknown,
    /// The token had been rotated already: its family is now revoked.
    #[error("refresh_token was already used; its family is revoked")]
    Reused,
    /// The family was revoked.
    #[error("refresh_token family is revoked")]
    Revoked,
    /// The family passed its absolute or idle expiry.
    #[error("refresh_token has expired")]
    Expired,
    /// The user is unknown, disabled, or moved to another session epoch (password
    /// change, reset, disable, SSO link, sign-out-everywhere). `code` is the refusal
    /// ([`admit`]'s code).
    #[error("refresh_token user refused ({code})")]
    UserRefused {
        /// The stable refusal code (`user.unknown`, `user.disabled`,
        /// `user.credential_superseded`).
        code: &'static str,
    },
    /// An `amr` entry is empty, too long, not printable ASCII without spaces, or there
    /// are more than [`MAX_AMR_ENTRIES`].
    #[error("amr is not a valid list of method names")]
    InvalidAmr,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed; no token was issued.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Issues, rotates and revokes refresh tokens over a [`RefreshStore`].
// Holds no secret: a store handle and lifetimes.
#[derive(Clone, Debug)]
pub struct RefreshTokens {
    store: Arc<dyn RefreshStore>,
    config: RefreshConfig,
}

impl RefreshTokens {
    /// Refresh tokens kept in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn RefreshStore>, config: RefreshConfig) -> Self {
        Self { store, config }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> RefreshConfig {
        self.config
    }

    /// Starts a new family for `user`, as read before its password (and second factor)
    /// was checked: the family is stamped with `user.session_epoch`, and the store
    /// refuses it if the user has moved on since. `amr` names the methods the login used
    /// (`"pwd"`, `"otp"`), `auth_time` is the Unix second of the last of them.
    ///
    /// # Errors
    ///
    /// [`RefreshError::InvalidAmr`]; [`RefreshError::UserRefused`] (code
    /// `refresh.user_restricted`) when `user` is disabled or must change the password;
    /// [`RefreshError::Store`] with
    /// [`StoreError::UserRefused`] when the user changed (or is disabled or unknown);
    /// [`RefreshError::Random`].
    pub async fn issue(
        &self,
        user: &User,
        amr: Vec<String>,
        auth_time: i64,
    ) -> Result<(RefreshToken, FamilyRecord), RefreshError> {
        check_amr(&amr)?;
        // An access token cannot carry the restriction of a user who must change the
        // password (only the resolver's optional epoch check would see it): no family.
        if user.disabled || user.must_change_password {
            let code = REFRESH_USER_RESTRICTED.code();
            tracing::info!(code, user_id = %user.id, "refresh token family refused");
            return Err(RefreshError::UserRefused { code });
        }
        let token = RefreshToken::generate()?;
        let now = secret::now_unix();
        let family = FamilyRecord::new(
            secret::random_id()?,
            user.id.as_str(),
            user.session_epoch,
            now,
            now.saturating_add(secs(self.config.absolute)),
            now.saturating_add(secs(self.config.idle)),
        )
        .with_auth(amr, auth_time);
        self.store.insert_family(&family, &token.digest()).await?;
        tracing::info!(
            code = "refresh.issued",
            family_id = family.id(),
            user_id = family.user_id(),
            "refresh token family issued"
        );
        Ok((token, family))
    }

    /// Rotates `presented`: on success the presented token is dead and the returned one
    /// replaces it; the record is the family to mint an access token from (user id,
    /// session epoch, `amr`, `auth_time`, family id as `sid`).
    ///
    /// Presenting an already rotated token revokes the whole family and logs
    /// `code = "refresh.reuse_detected"` (warn) with the family and user ids.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Unknown`], [`RefreshError::Reused`], [`RefreshError::Revoked`],
    /// [`RefreshError::Expired`], [`RefreshError::UserRefused`], [`RefreshError::Store`],
    /// [`RefreshError::Random`].
    pub async fn rotate(
        &self,
        presented: &RefreshToken,
    ) -> Result<(RefreshToken, FamilyRecord), RefreshError> {
        let next_token = RefreshToken::generate()?;
        let now = secret::now_unix();
        let next = NextToken {
            digest: next_token.digest(),
            now,
            idle_expires_at: now.saturating_add(secs(self.config.idle)),
        };
        let presented = presented.digest();
        match self.store.rotate(&presented, &next).await? {
            Rotation::Rotated(family) => {
                tracing::info!(
                    code = "refresh.rotated",
                    family_id = family.id(),
                    user_id = family.user_id(),
                    generation = family.generation(),
                    "refresh token rotated"
                );
                Ok((next_token, family))
            }
            Rotation::Reused(family) => {
                tracing::warn!(
                    code = REFRESH_REUSE_DETECTED.code(),
                    family_id = family.id(),
                    user_id = family.user_id(),
                    "a rotated refresh token was presented again; family revoked"
                );
                Err(RefreshError::Reused)
            }
            Rotation::Refused(found) => Err(refusal(&found, now)),
            Rotation::Unknown => {
                tracing::info!(
                    code = REFRESH_UNKNOWN.code(),
                    "unknown refresh token presented"
                );
                Err(RefreshError::Unknown)
            }
        }
    }

    /// Revokes the family of `presented` (logout, RFC 7009): answers `Ok` whatever the
    /// text (malformed, unknown, spent, already revoked), reporting whether a family was
    /// found.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Store`] only.
    pub async fn revoke(&self, presented: &str) -> Result<bool, RefreshError> {
        let Ok(token) = RefreshToken::parse(presented) else {
            tracing::info!(
                code = "refresh.revoke_malformed",
                "malformed refresh token presented for revocation"
            );
            return Ok(false);
        };
        let found = self
            .store
            .revoke_by_digest(&token.digest(), secret::now_unix())
            .await?;
        match &found {
            Some(family) => tracing::info!(
                code = "refresh.revoked",
                family_id = family.id(),
                user_id = family.user_id(),
                "refresh token family revoked"
            ),
            None => tracing::info!(
                code = "refresh.revoke_unknown",
                "unknown refresh token presented for revocation"
            ),
        }
        Ok(found.is_some())
    }

    /// Revokes every live family of `user_id`; returns how many. (The epoch bumps of
    /// [`Accounts`](crate::Accounts) already end every family; this is for a caller that
    /// wants the rows marked, e.g. on a "sign out of all apps" page.)
    ///
    /// # Errors
    ///
    /// [`RefreshError::Store`].
    pub async fn revoke_user(&self, user_id: &str) -> Result<u64, RefreshError> {
        let n = self
            .store
            .revoke_user_families(user_id, secret::now_unix())
            .await?;
        tracing::info!(
            code = "refresh.revoked_all",
            user_id,
            count = n,
            "every refresh token family of the user revoked"
        );
        Ok(n)
    }

    /// Revokes the family `family_id` of `user_id` (logout with an access token, whose
    /// `sid` is the family id): its refresh token is refused from now on; access tokens
    /// already minted from it run to their `exp`. Returns whether a live family of that
    /// user was found.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Store`].
    pub async fn revoke_family(
        &self,
        user_id: &str,
        family_id: &str,
    ) -> Result<bool, RefreshError> {
        let revoked = self
            .store
            .revoke_family(user_id, family_id, secret::now_unix())
            .await?;
        tracing::info!(
            code = "refresh.family_revoked",
            family_id,
            user_id,
            revoked,
            "refresh token family revoked by id"
        );
        Ok(revoked)
    }

    /// Records a step-up: sets the family's `auth_time` (Unix seconds of the
    /// second-factor check) and `amr`, so that access tokens minted at later rotations
    /// carry them. Only a live family of `user_id` is updated; returns whether it was.
    ///
    /// # Errors
    ///
    /// [`RefreshError::InvalidAmr`], [`RefreshError::Store`].
    pub async fn set_auth_time(
        &self,
        user_id: &str,
        family_id: &str,
        at: i64,
        amr: Vec<String>,
    ) -> Result<bool, RefreshError> {
        check_amr(&amr)?;
        let updated = self
            .store
            .set_auth_time(user_id, family_id, at, &amr)
            .await?;
        tracing::info!(
            code = "refresh.auth_time_set",
            family_id,
            user_id,
            updated,
            "refresh token family stepped up"
        );
        Ok(updated)
    }

    /// The user's families, newest first.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Store`].
    pub async fn list(&self, user_id: &str) -> Result<Vec<FamilyRecord>, RefreshError> {
        Ok(self.store.user_families(user_id).await?)
    }

    /// Deletes families that are revoked, expired at `now` (Unix seconds) or superseded;
    /// returns how many. A spent token of a swept family is then only unknown (no reuse
    /// alarm), which is harmless: its family is dead either way.
    ///
    /// # Errors
    ///
    /// [`RefreshError::Store`].
    pub async fn sweep(&self, now: i64) -> Result<u64, RefreshError> {
        let n = self.store.delete_expired_families(now).await?;
        tracing::debug!(
            code = "refresh.swept",
            count = n,
            "ended refresh token families swept"
        );
        Ok(n)
    }
}

/// Seconds of `d`, saturating.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `amr` entries: 1 to [`MAX_AMR_LEN`] bytes of printable ASCII without spaces (they are
/// stored space-separated), at most [`MAX_AMR_ENTRIES`] of them.
fn check_amr(amr: &[String]) -> Result<(), RefreshError> {
    let ok = amr.len() <= MAX_AMR_ENTRIES
        && amr.iter().all(|m| {
            (1..=MAX_AMR_LEN).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_graphic())
        });
    if ok {
        Ok(())
    } else {
        Err(RefreshError::InvalidAmr)
    }
}

/// Why the store refused to rotate the current token of `found` at `now`, logged.
fn refusal(found: &WithUser<FamilyRecord>, now: i64) -> RefreshError {
    let family = &found.record;
    let (code, error) = if family.revoked_at.is_some() {
        (REFRESH_REVOKED.code(), RefreshError::Revoked)
    } else if now >= family.expires_at || now >= family.idle_expires_at {
        (REFRESH_EXPIRED.code(), RefreshError::Expired)
    } else {
        match admit(found.user.as_ref(), family.epoch) {
            Err(refusal) => (
                refusal.code(),
                RefreshError::UserRefused {
                    code: refusal.code(),
                },
            ),
            // The store refused, yet nothing here explains it: fail closed.
            Ok(_) => (REFRESH_UNKNOWN.code(), RefreshError::Unknown),
        }
    };
    tracing::info!(
        code,
        family_id = family.id(),
        user_id = family.user_id(),
        "refresh token refused"
    );
    error
}
