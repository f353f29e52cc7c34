//! The TOTP second factor: enrolment, confirmation, recovery codes, the replay guard,
//! the login challenge (`mfa_token`) and the step-up check.
//!
//! Built on the RFC 6238 core in [`crate::totp`]:
//!
//! * [`Mfa::enroll`] makes a fresh 160-bit secret, seals it through the embedder's
//!   [`TotpSealer`] (bound to the user id) and stores it **pending**; it returns the
//!   `otpauth://` URI and the base32 secret, shown once ([`Enrollment`]).
//! * [`Mfa::confirm`] activates the pending factor only with a valid code and returns ten
//!   single-use [`RecoveryCodes`], shown once and stored as SHA-256 digests.
//! * [`Mfa::verify`] accepts a code of the window (one step either side by default) at
//!   most once per user: the store advances the user's last accepted step with a
//!   compare-and-set ([`MfaStore::accept_step`]), so two instances cannot both accept the
//!   same code. A recovery code is accepted instead, once ([`MfaStore::use_recovery_code`]).
//! * [`Mfa::disable`] needs a [`PasswordVerified`] permit (only
//!   [`Accounts::verify_password`](crate::Accounts::verify_password) makes one) and a
//!   code.
//! * [`Mfa::begin_login`] / [`Mfa::complete_login`]: the login challenge behind
//!   [`Accounts::authenticate`](crate::Accounts::authenticate) and
//!   [`Accounts::complete_mfa`](crate::Accounts::complete_mfa). The `mfa_token` is 256
//!   random bits, stored as a digest, valid for five minutes by default, consumed by its
//!   first use (right or wrong code), bound to the user and the session epoch read by the
//!   password step.
//! * [`Mfa::require_recent`]: the step-up check (403 `{"error":"mfa_required"}` under the
//!   `axum` feature).
//!
//! Wrong codes are reported as [`MfaError::InvalidCode`] (and
//! [`AccountError::InvalidSecondFactor`](crate::AccountError::InvalidSecondFactor) in the
//! login flow): that is where a login throttle records a failed second-factor attempt.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base32ct::{Base32Unpadded, Encoding as _};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::principal::Principal;
use crate::secret::{self, Digest, RandomError};
use crate::store::StoreError;
use crate::throttle::{LoginThrottle, ThrottleError};
use crate::totp::{Totp, TotpAlgorithm, TotpConfig, TotpError, TotpSecret};
use crate::user::User;

/// The prefix of every `mfa_token`.
pub const MFA_TOKEN_PREFIX: &str = "mfa_";
/// Length of an `mfa_token`: the prefix and 43 base64url characters (256 bits).
pub const MFA_TOKEN_LEN: usize = MFA_TOKEN_PREFIX.len() + 43;
/// Default lifetime of a login challenge: five minutes.
pub const DEFAULT_CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// Default step-up window: a second-factor check within the last five minutes.
pub const DEFAULT_STEP_UP_WINDOW: Duration = Duration::from_secs(5 * 60);
/// How many recovery codes [`Mfa::confirm`] makes.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes in a recovery code (80 bits).
const RECOVERY_CODE_BYTES: usize = 10;
/// Base32 characters of a recovery code without its hyphens.
const RECOVERY_CODE_CHARS: usize = 16;
/// Longest code input looked at; anything longer is refused before any work.
const MAX_CODE_INPUT: usize = 64;
/// Longest account label accepted by [`Mfa::enroll`], in bytes.
pub const MAX_LABEL_LEN: usize = 256;

/// The `amr` of a password-only login (RFC 8176 `pwd`).
pub const AMR_PWD: &[&str] = &["pwd"];
/// The `amr` of a login with password and TOTP (RFC 8176 `pwd`, `otp`).
pub const AMR_PWD_OTP: &[&str] = &["pwd", "otp"];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Failures of second-factor operations. Never carries a code, secret or token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MfaError {
    /// The code (TOTP or recovery) is wrong, malformed, outside the window or already
    /// used. Deliberately one variant. **Report it to the login throttle** as a failed
    /// second-factor attempt.
    #[error("invalid second-factor code")]
    InvalidCode,
    /// The `mfa_token` is malformed, unknown, expired or already used (one variant).
    #[error("invalid or expired mfa_token")]
    InvalidToken,
    /// The user has no active second factor (for [`Mfa::verify`], [`Mfa::disable`]).
    #[error("no active second factor")]
    NotEnabled,
    /// The user already has an active second factor ([`Mfa::enroll`]).
    #[error("a second factor is already active")]
    AlreadyEnabled,
    /// [`Mfa::confirm`] without a pending enrolment (or a newer enrolment replaced it).
    #[error("no pending enrolment")]
    NoPendingEnrollment,
    /// `account_label`: empty, longer than [`MAX_LABEL_LEN`] or with control characters.
    #[error("account_label: must be 1 to 256 bytes without control characters")]
    Label,
    /// A stored factor has a configuration this crate refuses (`field` names it).
    #[error(transparent)]
    Config(#[from] TotpError),
    /// The sealer failed to seal or open the secret (503; fail closed).
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed; nothing was issued.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Too many wrong codes for this user ([`Mfa::with_throttle`]): no code was checked;
    /// try again after `retry_after` (HTTP 429 with `Retry-After`).
    #[error("too many second-factor attempts")]
    Throttled {
        /// The wait before the next attempt can succeed.
        retry_after: Duration,
    },
    /// The throttle's shared store failed (503; fail closed: no code was checked).
    #[error("second-factor throttle unavailable")]
    ThrottleUnavailable(#[source] ThrottleError),
}

impl From<ThrottleError> for MfaError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Throttled { retry_after } => Self::Throttled { retry_after },
            other => Self::ThrottleUnavailable(other),
        }
    }
}

/// The sealer could not seal or open a TOTP secret. Opaque: which check failed is not
/// said (no oracle).
#[derive(Debug, thiserror::Error)]
#[error("TOTP secret sealing failed")]
pub struct SealError(#[source] pub Option<Box<dyn std::error::Error + Send + Sync>>);

impl SealError {
    /// A seal error without a cause.
    #[must_use]
    pub fn opaque() -> Self {
        Self(None)
    }
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

/// Seals TOTP secrets at rest: the store only ever sees the sealed bytes.
///
/// # Security contract
///
/// * [`TotpSealer::seal`] must be authenticated encryption with `user_id` bound as
///   context (associated data or encryption context): a sealed secret copied to another
///   user's row must fail to open.
/// * [`TotpSealer::open`] gets bytes from the store (treat them as attacker controlled):
///   it must not panic and must return [`SealError`] on any mismatch.
/// * Neither may log the secret. Errors carry no secret.
///
/// The reference backend implements it with `crypto-envelope` (`Secrets`/`KekBackend`)
/// and an encryption context `{"purpose": "totp", "user_id": ...}`. [`MemorySealer`] is
/// an in-process AES-256-GCM sealer for tests, examples and single-instance tools.
#[async_trait]
pub trait TotpSealer: Send + Sync + fmt::Debug {
    /// Seals `secret` for `user_id`.
    ///
    /// # Errors
    /// [`SealError`].
    async fn seal(&self, user_id: &str, secret: &TotpSecret) -> Result<Vec<u8>, SealError>;

    /// Opens what [`TotpSealer::seal`] made for the same `user_id`.
    ///
    /// # Errors
    /// [`SealError`] for anything else (other user, tampered, wrong key).
    async fn open(&self, user_id: &str, sealed: &[u8]) -> Result<TotpSecret, SealError>;
}

/// An in-process sealer: AES-256-GCM (aws-lc-rs) under a key held in memory, a random
/// 96-bit nonce per seal, and `strongroom.totp.v1\0` followed by the user id as associated
/// data. Sealed form: nonce (12 bytes) then ciphertext and tag.
///
/// **For tests, examples and single-instance tools.** The key lives only in this value
/// (a [`MemorySealer::generate`]d key is lost at restart, and with it every enrolment);
/// a production service seals through its key management (the reference backend uses
/// `crypto-envelope`).
pub struct MemorySealer {
    key: RandomizedNonceKey,
}

impl MemorySealer {
    /// A sealer under a fresh random key.
    ///
    /// # Errors
    /// [`RandomError`] if the system random generator fails.
    pub fn generate() -> Result<Self, RandomError> {
        let bytes = secret::random_bytes::<32>()?;
        Self::from_key(&bytes).map_err(|_| RandomError)
    }

    /// A sealer under `key` (32 bytes).
    ///
    /// # Errors
    /// [`SealError`] if `key` is not 32 bytes.
    pub fn from_key(key: &[u8; 32]) -> Result<Self, SealError> {
        let key = RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| SealError::opaque())?;
        Ok(Self { key })
    }

    fn aad(user_id: &str) -> Vec<u8> {
        let mut aad = b"strongroom.totp.v1\0".to_vec();
        aad.extend_from_slice(user_id.as_bytes());
        aad
    }
}

impl fmt::Debug for MemorySealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySealer").finish_non_exhaustive()
    }
}

#[async_trait]
impl TotpSealer for MemorySealer {
    async fn seal(&self, user_id: &str, secret: &TotpSecret) -> Result<Vec<u8>, SealError> {
        let mut buf = Zeroizing::new(secret.expose_secret().to_vec());
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(Self::aad(user_id)), &mut *buf)
            .map_err(|_| SealError::opaque())?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&buf);
        Ok(out)
    }

    async fn open(&self, user_id: &str, sealed: &[u8]) -> Result<TotpSecret, SealError> {
        let (nonce, body) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or_else(SealError::opaque)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::opaque())?;
        let mut buf = Zeroizing::new(body.to_vec());
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(user_id)), &mut buf)
            .map_err(|_| SealError::opaque())?;
        TotpSecret::from_bytes(plain).map_err(|_| SealError::opaque())
    }
}

// ---------------------------------------------------------------------------------------
// Stored records and the store trait
// ---------------------------------------------------------------------------------------

/// Whether a user's factor is waiting for its confirming code or in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaState {
    /// Enrolled, not yet confirmed: login does not ask for it.
    Pending,
    /// Confirmed: login and step-up require it.
    Active,
}

impl MfaState {
    /// The stored text: `pending` or `active`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
        }
    }

    /// Inverse of [`MfaState::as_str`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "active" => Some(Self::Active),
            _ => None,
        }
    }
}

/// The name of `algorithm` in an `otpauth://` URI and in the stores (`SHA1`, `SHA256`,
/// `SHA512`).
#[must_use]
pub fn algorithm_name(algorithm: TotpAlgorithm) -> &'static str {
    match algorithm {
        TotpAlgorithm::Sha256 => "SHA256",
        TotpAlgorithm::Sha512 => "SHA512",
        _ => "SHA1",
    }
}

/// Inverse of [`algorithm_name`].
#[must_use]
pub fn algorithm_from_name(name: &str) -> Option<TotpAlgorithm> {
    match name {
        "SHA1" => Some(TotpAlgorithm::Sha1),
        "SHA256" => Some(TotpAlgorithm::Sha256),
        "SHA512" => Some(TotpAlgorithm::Sha512),
        _ => None,
    }
}

/// A user's stored second factor. The secret is only ever sealed here.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaRecord {
    /// The user.
    pub user_id: String,
    /// Random id of this enrolment: confirmation activates only the enrolment it checked
    /// the code against.
    pub enrollment_id: String,
    /// The TOTP secret as sealed by the [`TotpSealer`] (never plaintext).
    pub sealed_secret: Vec<u8>,
    /// Pending or active.
    pub state: MfaState,
    /// HMAC algorithm of this factor.
    pub algorithm: TotpAlgorithm,
    /// Digits of this factor (6 or 8).
    pub digits: u8,
    /// Time step of this factor, seconds.
    pub period: u64,
    /// The last accepted time step (the replay guard); `None` before confirmation.
    pub last_step: Option<i64>,
    /// Enrolment time, Unix seconds.
    pub created_at: i64,
    /// Confirmation time, Unix seconds.
    pub activated_at: Option<i64>,
}

impl fmt::Debug for MfaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaRecord")
            .field("user_id", &self.user_id)
            .field("enrollment_id", &self.enrollment_id)
            .field("sealed_len", &self.sealed_secret.len())
            .field("state", &self.state)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// What a login challenge finishes into: the credential the password step was asked for.
/// Stored with the challenge, so that a login begun for a session cannot be finished
/// into a token pair (or the other way round) by the client choosing another route or
/// field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginKind {
    /// An opaque session (`POST /api/auth/login` in the reference backend).
    Session,
    /// An access token and refresh token pair (`POST /api/auth/token`).
    TokenPair,
}

impl LoginKind {
    /// The stored name: `session` or `token_pair`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::TokenPair => "token_pair",
        }
    }

    /// The kind named `s` (as stored), if any.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(Self::Session),
            "token_pair" => Some(Self::TokenPair),
            _ => None,
        }
    }
}

/// A stored login challenge: the SHA-256 of its `mfa_token` (never the token), the user
/// and session epoch its password step read, what it finishes into, and its lifetime.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// SHA-256 of the `mfa_token`.
    pub token_digest: Digest,
    /// The user whose password was checked.
    pub user_id: String,
    /// The user's session epoch as read by that password check: the login completes only
    /// while the user is still at it.
    pub user_epoch: i64,
    /// What the login finishes into (the credential the password step was asked for).
    pub kind: LoginKind,
    /// When the password step succeeded, Unix seconds.
    pub created_at: i64,
    /// The challenge is invalid from this second on.
    pub expires_at: i64,
}

impl fmt::Debug for ChallengeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChallengeRecord")
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where second factors, recovery-code digests and login challenges live.
///
/// # Security contract
///
/// * Secrets are stored only as sealed by the [`TotpSealer`]; codes and tokens only as
///   SHA-256 digests.
/// * Every single-use operation is one atomic step in the store, so that it holds across
///   instances sharing it: [`MfaStore::accept_step`] is a compare-and-set,
///   [`MfaStore::use_recovery_code`] and [`MfaStore::consume_challenge`] mark a row used
///   only if it was not (`UPDATE ... WHERE used IS NULL`), [`MfaStore::activate`] only
///   the pending enrolment named.
/// * Errors are [`StoreError`]s; the service fails closed on every one of them.
#[async_trait]
pub trait MfaStore: Send + Sync + fmt::Debug {
    /// Stores `record` (state pending) as the user's enrolment, replacing a pending one.
    /// Returns `false` (and changes nothing) if the user has an active factor.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn put_pending(&self, record: &MfaRecord) -> Result<bool, StoreError>;

    /// The user's factor, pending or active.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn mfa_record(&self, user_id: &str) -> Result<Option<MfaRecord>, StoreError>;

    /// Activates enrolment `enrollment_id` of `user_id` if it is still pending, with
    /// `step` as the last accepted step, and replaces the user's recovery codes by
    /// `recovery_digests`, all in one transaction. Returns whether it activated.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn activate(
        &self,
        user_id: &str,
        enrollment_id: &str,
        step: i64,
        recovery_digests: &[Digest],
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The replay guard: sets the active factor's last accepted step to `step` only if it
    /// is greater than the stored one, atomically. Returns whether it did (`false`: the
    /// step, or a later one, was already accepted, or there is no active factor).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn accept_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError>;

    /// Marks the unused recovery code with this digest used, atomically. Returns whether
    /// one was (`false`: unknown or already used).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &Digest,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// How many unused recovery codes the user has.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn recovery_codes_left(&self, user_id: &str) -> Result<u64, StoreError>;

    /// Deletes the user's factor, recovery codes and login challenges. Returns whether a
    /// factor was deleted.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn delete_mfa(&self, user_id: &str) -> Result<bool, StoreError>;

    /// Stores a login challenge.
    ///
    /// # Errors
    /// [`StoreError`] ([`StoreError::Conflict`] on a digest collision).
    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError>;

    /// Consumes the challenge with this digest if it is unused and `now < expires_at`,
    /// atomically (`UPDATE ... RETURNING`), and returns it; `None` otherwise.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn consume_challenge(
        &self,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<ChallengeRecord>, StoreError>;

    /// Deletes challenges that expired before `now` or were used; returns how many.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn delete_expired_challenges(&self, now: i64) -> Result<u64, StoreError>;

    /// Key rotation: up to `limit` sealed secrets (pending and active factors alike) of
    /// the users whose id sorts after `after` (`None`: from the first), in ascending
    /// user-id order, so that a caller can walk every sealed secret in pages and re-wrap
    /// it under a new key (the reference backend's `rewrap`). What it returns is sealed,
    /// never a secret.
    ///
    /// # Errors
    /// [`StoreError`].
    async fn sealed_secrets_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SealedTotpSecret>, StoreError>;

    /// Key rotation: replaces the user's sealed secret by `new` only if it still holds
    /// exactly `old` (a compare-and-set), so that an enrolment that replaced it meanwhile
    /// is never overwritten. Returns whether it did (`false`: changed or deleted
    /// meanwhile; read it again). `new` must be the same secret sealed for the same user
    /// (nothing else of the factor changes: state, replay guard, recovery codes).
    ///
    /// # Errors
    /// [`StoreError`].
    async fn replace_sealed_secret(
        &self,
        user_id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
}

/// One user's sealed TOTP secret, as [`MfaStore::sealed_secrets_page`] lists it for a key
/// rotation. Holds no secret (the value is sealed by the [`TotpSealer`]).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTotpSecret {
    /// The user (the context the secret is sealed for).
    pub user_id: String,
    /// The sealed secret, as stored.
    pub sealed_secret: Vec<u8>,
}

impl fmt::Debug for SealedTotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedTotpSecret")
            .field("user_id", &self.user_id)
            .field("sealed_len", &self.sealed_secret.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Secrets shown once
// ---------------------------------------------------------------------------------------

/// A fresh enrolment: the `otpauth://` URI (for a QR code) and the base32 secret (for
/// manual entry). Show both once. Wiped on drop; `Debug` prints neither.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Enrollment {
    uri: String,
    secret: String,
}

impl Enrollment {
    /// The Key Uri Format URI:
    /// `otpauth://totp/{issuer}:{account}?secret=...&issuer=...&algorithm=...&digits=...&period=...`.
    #[must_use]
    pub fn otpauth_uri(&self) -> &str {
        &self.uri
    }

    /// The secret as unpadded upper-case RFC 4648 base32.
    #[must_use]
    pub fn secret_base32(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment").finish_non_exhaustive()
    }
}

/// The ten recovery codes made at confirmation. Show them once; only their digests are
/// stored. Wiped on drop; `Debug` prints the count only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct RecoveryCodes {
    codes: Vec<String>,
}

impl RecoveryCodes {
    /// The codes, e.g. `k3vq-7m2a-xxp4-9dfe` (see [`Mfa::confirm`] for the format).
    #[must_use]
    pub fn expose_secret(&self) -> &[String] {
        &self.codes
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("count", &self.codes.len())
            .finish_non_exhaustive()
    }
}

/// A login that needs its second step: the `mfa_token` to hand to the client
/// (`{"mfa_required": true, "mfa_token": "..."}`). Wiped on drop; `Debug` prints the
/// user id and expiry only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MfaChallenge {
    token: String,
    #[zeroize(skip)]
    user_id: String,
    #[zeroize(skip)]
    expires_at: i64,
}

impl MfaChallenge {
    /// The `mfa_token`: `mfa_` and 43 base64url characters.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.token
    }

    /// The user whose password was checked (do not tell the client).
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Expiry, Unix seconds.
    #[must_use]
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}

impl fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A syntactically valid `mfa_token` from untrusted input. `Debug` prints nothing of it.
pub struct MfaToken {
    digest: Digest,
}

impl MfaToken {
    /// Checks `text` (attacker controlled): exactly [`MFA_TOKEN_LEN`] bytes, the `mfa_`
    /// prefix, then only base64url characters. Never panics; the work does not depend on
    /// where a malformed token differs.
    ///
    /// # Errors
    /// [`MfaError::InvalidToken`].
    pub fn parse(text: &str) -> Result<Self, MfaError> {
        let bytes = text.as_bytes();
        if bytes.len() != MFA_TOKEN_LEN {
            return Err(MfaError::InvalidToken);
        }
        let (prefix, body) = bytes.split_at(MFA_TOKEN_PREFIX.len());
        let alphabet = body
            .iter()
            .fold(true, |ok, &b| ok & secret::is_base64url(b));
        if prefix != MFA_TOKEN_PREFIX.as_bytes() || !alphabet {
            return Err(MfaError::InvalidToken);
        }
        Ok(Self {
            digest: secret::sha256(bytes),
        })
    }

    /// SHA-256 of the token: what the store keeps.
    #[must_use]
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

impl fmt::Debug for MfaToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaToken").finish_non_exhaustive()
    }
}

/// What [`Mfa::verify`] accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecondFactor {
    /// A TOTP code, of this time step (now spent).
    Totp {
        /// The accepted step.
        step: i64,
    },
    /// A recovery code (now spent).
    RecoveryCode,
}

// ---------------------------------------------------------------------------------------
// Configuration and the service
// ---------------------------------------------------------------------------------------

/// Second-factor configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaConfig {
    issuer: String,
    totp: TotpConfig,
    challenge_ttl: Duration,
    step_up_window: Duration,
}

impl MfaConfig {
    /// The defaults with `issuer` (the service name shown by authenticator apps):
    /// [`TotpConfig::default`] (HMAC-SHA-1, 6 digits, 30 s, one step either side), a
    /// five-minute `mfa_token`, a five-minute step-up window.
    #[must_use]
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            totp: TotpConfig::default(),
            challenge_ttl: DEFAULT_CHALLENGE_TTL,
            step_up_window: DEFAULT_STEP_UP_WINDOW,
        }
    }

    /// The TOTP parameters of new enrolments (algorithm, digits, step) and the window of
    /// every check (skew). A factor keeps the algorithm, digits and step it was enrolled
    /// with.
    #[must_use]
    pub fn with_totp(mut self, totp: TotpConfig) -> Self {
        self.totp = totp;
        self
    }

    /// Lifetime of an `mfa_token` (default five minutes, at least one second).
    #[must_use]
    pub fn with_challenge_ttl(mut self, ttl: Duration) -> Self {
        self.challenge_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The default window of [`Mfa::require_step_up`] (default five minutes).
    #[must_use]
    pub fn with_step_up_window(mut self, window: Duration) -> Self {
        self.step_up_window = window;
        self
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The TOTP parameters.
    #[must_use]
    pub fn totp(&self) -> TotpConfig {
        self.totp
    }

    /// The `mfa_token` lifetime.
    #[must_use]
    pub fn challenge_ttl(&self) -> Duration {
        self.challenge_ttl
    }

    /// The default step-up window.
    #[must_use]
    pub fn step_up_window(&self) -> Duration {
        self.step_up_window
    }
}

/// Proof that a user's password was just checked. Only
/// [`Accounts::verify_password`](crate::Accounts::verify_password) makes one.
// Holds no secret: the user id only.
#[derive(Debug)]
pub struct PasswordVerified {
    user_id: String,
}

impl PasswordVerified {
    pub(crate) fn new(user_id: String) -> Self {
        Self { user_id }
    }

    /// The user whose password was checked.
    #[must_use]
    pub fn user_id(&self) -> &str {
        &self.user_id
    }
}

/// The second-factor service over a store and the embedder's sealer.
#[derive(Clone, Debug)]
pub struct Mfa {
    store: Arc<dyn MfaStore>,
    sealer: Arc<dyn TotpSealer>,
    config: MfaConfig,
    throttle: Option<LoginThrottle>,
}

impl Mfa {
    /// The service.
    #[must_use]
    pub fn new(store: Arc<dyn MfaStore>, sealer: Arc<dyn TotpSealer>, config: MfaConfig) -> Self {
        Self {
            store,
            sealer,
            config,
            throttle: None,
        }
    }

    /// Limits wrong codes per user with the login throttle's second-factor backoff
    /// ([`LoginThrottle::check_second_factor`]): every path that checks a code (the login's
    /// second step, step-up, disable) asks it first and reports the outcome. Without it,
    /// an attacker holding a session could try codes at full speed on the step-up route.
    #[must_use]
    pub fn with_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &MfaConfig {
        &self.config
    }

    /// Starts (or restarts) enrolment: a fresh 20-byte secret, sealed for `user_id` and
    /// stored **pending** (login does not ask for it until [`Mfa::confirm`]). Replaces an
    /// earlier pending enrolment. `account_label` is what the authenticator app shows
    /// under the issuer (usually the email).
    ///
    /// # Errors
    /// [`MfaError::AlreadyEnabled`], [`MfaError::Label`], [`MfaError::Seal`],
    /// [`MfaError::Store`], [`MfaError::Random`].
    pub async fn enroll(&self, user_id: &str, account_label: &str) -> Result<Enrollment, MfaError> {
        if account_label.is_empty()
            || account_label.len() > MAX_LABEL_LEN
            || account_label.chars().any(char::is_control)
        {
            return Err(MfaError::Label);
        }
        let secret = TotpSecret::generate()?;
        let sealed = self.sealer.seal(user_id, &secret).await?;
        let totp = self.config.totp;
        let record = MfaRecord {
            user_id: user_id.to_owned(),
            enrollment_id: secret::random_id()?,
            sealed_secret: sealed,
            state: MfaState::Pending,
            algorithm: totp.algorithm(),
            digits: totp.digits(),
            period: totp.step_secs(),
            last_step: None,
            created_at: secret::now_unix(),
            activated_at: None,
        };
        if !self.store.put_pending(&record).await? {
            tracing::info!(
                code = "mfa.enroll_refused_active",
                user_id,
                "enrolment refused: a second factor is active"
            );
            return Err(MfaError::AlreadyEnabled);
        }
        let base32 = secret.to_base32();
        let uri = otpauth_uri(&self.config.issuer, account_label, &base32, &totp);
        tracing::info!(
            code = "mfa.enrolled",
            user_id,
            "second factor enrolled (pending)"
        );
        Ok(Enrollment {
            uri,
            secret: base32.as_str().to_owned(),
        })
    }

    /// Confirms the pending enrolment with a valid `code` (its step becomes the last
    /// accepted one), activates it, and returns ten new recovery codes (shown once).
    ///
    /// Recovery code format: 10 random bytes (80 bits) as lower-case unpadded RFC 4648
    /// base32, 16 characters in four hyphen-separated groups of four
    /// (`abcd-efgh-ijkl-mnop`). Input is accepted in either case, with or without hyphens
    /// and spaces. Stored: SHA-256 of the canonical 16-character lower-case text.
    ///
    /// # Errors
    /// [`MfaError::NoPendingEnrollment`], [`MfaError::InvalidCode`], [`MfaError::Seal`],
    /// [`MfaError::Config`], [`MfaError::Store`], [`MfaError::Random`].
    pub async fn confirm(&self, user_id: &str, code: &str) -> Result<RecoveryCodes, MfaError> {
        let record = match self.store.mfa_record(user_id).await? {
            Some(r) if r.state == MfaState::Pending => r,
            _ => return Err(MfaError::NoPendingEnrollment),
        };
        let totp = self.totp_for(&record).await?;
        let Some(step) = check_totp(&totp, code) else {
            tracing::info!(
                code = "mfa.confirm_bad_code",
                user_id,
                "confirmation refused"
            );
            return Err(MfaError::InvalidCode);
        };
        let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
        let mut digests = Vec::with_capacity(RECOVERY_CODE_COUNT);
        for _ in 0..RECOVERY_CODE_COUNT {
            let bytes = secret::random_bytes::<RECOVERY_CODE_BYTES>()?;
            let text = Zeroizing::new(Base32Unpadded::encode_string(bytes.as_ref()));
            digests.push(secret::sha256(text.as_bytes()));
            codes.push(group_recovery_code(&text));
        }
        let codes = RecoveryCodes { codes };
        let activated = self
            .store
            .activate(
                user_id,
                &record.enrollment_id,
                step,
                &digests,
                secret::now_unix(),
            )
            .await?;
        if !activated {
            tracing::info!(
                code = "mfa.confirm_superseded",
                user_id,
                "enrolment changed during confirmation"
            );
            return Err(MfaError::NoPendingEnrollment);
        }
        tracing::info!(code = "mfa.activated", user_id, "second factor active");
        Ok(codes)
    }

    /// Whether the user has an active second factor (a pending enrolment does not count).
    ///
    /// # Errors
    /// [`MfaError::Store`].
    pub async fn is_enabled(&self, user_id: &str) -> Result<bool, MfaError> {
        Ok(self
            .store
            .mfa_record(user_id)
            .await?
            .is_some_and(|r| r.state == MfaState::Active))
    }

    /// Checks a second-factor `code` of an active factor: a TOTP code of the window
    /// whose step is later than the last accepted one (accepted at most once, atomically
    /// in the store), or else an unused recovery code (spent).
    ///
    /// # Errors
    /// [`MfaError::InvalidCode`] (counted by the throttle when one is set),
    /// [`MfaError::Throttled`], [`MfaError::ThrottleUnavailable`], [`MfaError::NotEnabled`],
    /// [`MfaError::Seal`], [`MfaError::Config`], [`MfaError::Store`].
    pub async fn verify(&self, user_id: &str, code: &str) -> Result<SecondFactor, MfaError> {
        let Some(throttle) = &self.throttle else {
            return self.verify_code(user_id, code).await;
        };
        throttle.check_second_factor(user_id).await?;
        let result = self.verify_code(user_id, code).await;
        match &result {
            Ok(_) => throttle.second_factor_success(user_id).await?,
            Err(MfaError::InvalidCode) => throttle.second_factor_failure(user_id).await?,
            Err(_) => {}
        }
        result
    }

    async fn verify_code(&self, user_id: &str, code: &str) -> Result<SecondFactor, MfaError> {
        let record = match self.store.mfa_record(user_id).await? {
            Some(r) if r.state == MfaState::Active => r,
            _ => return Err(MfaError::NotEnabled),
        };
        if code.len() > MAX_CODE_INPUT {
            tracing::info!(code = "mfa.bad_code", user_id, "second factor refused");
            return Err(MfaError::InvalidCode);
        }
        let digits = Zeroizing::new(code.replace(' ', ""));
        if digits.len() == usize::from(record.digits) && digits.bytes().all(|b| b.is_ascii_digit())
        {
            let totp = self.totp_for(&record).await?;
            let Some(step) = check_totp(&totp, &digits) else {
                tracing::info!(code = "mfa.bad_code", user_id, "second factor refused");
                return Err(MfaError::InvalidCode);
            };
            if !self.store.accept_step(user_id, step).await? {
                tracing::info!(
                    code = "mfa.replayed_code",
                    user_id,
                    "second factor refused: step already used"
                );
                return Err(MfaError::InvalidCode);
            }
            tracing::info!(code = "mfa.verified", user_id, "second factor accepted");
            return Ok(SecondFactor::Totp { step });
        }
        let Some(canonical) = canonical_recovery_code(code) else {
            tracing::info!(code = "mfa.bad_code", user_id, "second factor refused");
            return Err(MfaError::InvalidCode);
        };
        let digest = secret::sha256(canonical.as_bytes());
        if !self
            .store
            .use_recovery_code(user_id, &digest, secret::now_unix())
            .await?
        {
            tracing::info!(
                code = "mfa.bad_recovery_code",
                user_id,
                "recovery code refused"
            );
            return Err(MfaError::InvalidCode);
        }
        tracing::info!(
            code = "mfa.recovery_code_used",
            user_id,
            "recovery code accepted"
        );
        Ok(SecondFactor::RecoveryCode)
    }

    /// How many unused recovery codes the user has.
    ///
    /// # Errors
    /// [`MfaError::Store`].
    pub async fn recovery_codes_left(&self, user_id: &str) -> Result<u64, MfaError> {
        Ok(self.store.recovery_codes_left(user_id).await?)
    }

    /// Disables the user's second factor: needs the password (the permit) and a valid
    /// code (TOTP or recovery, spent). Deletes the factor, its recovery codes and
    /// pending login challenges. Sessions stay.
    ///
    /// # Errors
    /// As [`Mfa::verify`].
    pub async fn disable(&self, password: &PasswordVerified, code: &str) -> Result<(), MfaError> {
        let user_id = password.user_id();
        self.verify(user_id, code).await?;
        self.store.delete_mfa(user_id).await?;
        tracing::info!(code = "mfa.disabled", user_id, "second factor disabled");
        Ok(())
    }

    /// Cancels a pending enrolment or removes a factor without checks: for operators
    /// (lost device and recovery codes, after out-of-band identity proof). Returns
    /// whether a factor was removed.
    ///
    /// # Errors
    /// [`MfaError::Store`].
    pub async fn admin_remove(&self, user_id: &str) -> Result<bool, MfaError> {
        let removed = self.store.delete_mfa(user_id).await?;
        tracing::info!(
            code = "mfa.admin_removed",
            user_id,
            removed,
            "second factor removed by an operator"
        );
        Ok(removed)
    }

    /// The second step of a login: after `user`'s password was checked (as read before
    /// the check), stores a challenge and returns its `mfa_token`.
    ///
    /// # Errors
    /// [`MfaError::Store`], [`MfaError::Random`].
    pub async fn begin_login(&self, user: &User) -> Result<MfaChallenge, MfaError> {
        self.begin_login_for(user, LoginKind::Session).await
    }

    /// [`Mfa::begin_login`] for a login that finishes into `kind` (stored with the
    /// challenge and returned by [`Mfa::complete_login`]).
    ///
    /// # Errors
    /// [`MfaError::Store`], [`MfaError::Random`].
    pub async fn begin_login_for(
        &self,
        user: &User,
        kind: LoginKind,
    ) -> Result<MfaChallenge, MfaError> {
        let body = secret::random_secret_b64()?;
        let mut token = String::with_capacity(MFA_TOKEN_LEN);
        token.push_str(MFA_TOKEN_PREFIX);
        token.push_str(&body);
        let now = secret::now_unix();
        let ttl = i64::try_from(self.config.challenge_ttl.as_secs()).unwrap_or(i64::MAX);
        let record = ChallengeRecord {
            token_digest: secret::sha256(token.as_bytes()),
            user_id: user.id.clone(),
            user_epoch: user.session_epoch,
            kind,
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        self.store.insert_challenge(&record).await?;
        tracing::info!(
            code = "mfa.challenge_issued",
            user_id = %user.id,
            "second factor required"
        );
        Ok(MfaChallenge {
            token,
            user_id: user.id.clone(),
            expires_at: record.expires_at,
        })
    }

    /// Completes a login challenge: consumes the `mfa_token` (single use, whatever the
    /// code) and checks `code` against **the token's user**. Returns the challenge (its
    /// user and session epoch).
    ///
    /// # Errors
    /// [`MfaError::InvalidToken`], [`MfaError::InvalidCode`] (report it to the
    /// throttle), [`MfaError::Seal`], [`MfaError::Store`].
    pub async fn complete_login(
        &self,
        mfa_token: &str,
        code: &str,
    ) -> Result<ChallengeRecord, MfaError> {
        let Ok(token) = MfaToken::parse(mfa_token) else {
            tracing::info!(code = "mfa.token_malformed", "mfa_token refused");
            return Err(MfaError::InvalidToken);
        };
        let Some(challenge) = self
            .store
            .consume_challenge(token.digest(), secret::now_unix())
            .await?
        else {
            tracing::info!(
                code = "mfa.token_unknown",
                "mfa_token refused: unknown, expired or used"
            );
            return Err(MfaError::InvalidToken);
        };
        // Constant-time re-check: a store with a loose index must not hand back another
        // challenge.
        if !secret::digest_eq(&challenge.token_digest, token.digest()) {
            return Err(MfaError::InvalidToken);
        }
        match self.verify(&challenge.user_id, code).await {
            Ok(_) => Ok(challenge),
            Err(MfaError::NotEnabled) => Err(MfaError::InvalidToken),
            Err(e) => Err(e),
        }
    }

    /// Deletes expired and used challenges once; returns how many.
    ///
    /// # Errors
    /// [`MfaError::Store`].
    pub async fn sweep(&self) -> Result<u64, MfaError> {
        Ok(self
            .store
            .delete_expired_challenges(secret::now_unix())
            .await?)
    }

    /// The step-up check for a sensitive operation: `Ok` if the principal's user has no
    /// active second factor, or if the principal's last second-factor check
    /// ([`Principal::mfa_at`]) is within `window` of now.
    ///
    /// # Errors
    /// [`StepUpError::Required`] (403 `{"error":"mfa_required"}`),
    /// [`StepUpError::Unavailable`] when the store fails (503; fail closed).
    pub async fn require_recent(
        &self,
        principal: &Principal,
        window: Duration,
    ) -> Result<(), StepUpError> {
        let user_id = principal.user_id();
        let enabled = match self.is_enabled(user_id).await {
            Ok(enabled) => enabled,
            Err(e) => {
                tracing::warn!(code = "mfa.store_unavailable", error = %e, "step-up check failed");
                return Err(StepUpError::Unavailable);
            }
        };
        if !enabled {
            return Ok(());
        }
        let now = secret::now_unix();
        let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
        match principal.mfa_at() {
            Some(at) if now.saturating_sub(at) <= window => Ok(()),
            _ => {
                tracing::info!(
                    code = "mfa.step_up_required",
                    user_id,
                    "recent second-factor check required"
                );
                Err(StepUpError::Required)
            }
        }
    }

    /// [`Mfa::require_recent`] with the configured window
    /// ([`MfaConfig::with_step_up_window`]).
    ///
    /// # Errors
    /// As [`Mfa::require_recent`].
    pub async fn require_step_up(&self, principal: &Principal) -> Result<(), StepUpError> {
        self.require_recent(principal, self.config.step_up_window)
            .await
    }

    async fn totp_for(&self, record: &MfaRecord) -> Result<Totp, MfaError> {
        let secret = self
            .sealer
            .open(&record.user_id, &record.sealed_secret)
            .await?;
        let config = TotpConfig::new()
            .with_algorithm(record.algorithm)
            .with_digits(record.digits)?
            .with_step_secs(record.period)?
            .with_skew(self.config.totp.skew())?;
        Ok(Totp::new(&secret, config))
    }
}

/// The step-up check refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StepUpError {
    /// The user has a second factor and this credential has not passed it recently:
    /// 403 `{"error":"mfa_required"}`.
    #[error("a recent second-factor check is required")]
    Required,
    /// The second-factor store failed: 503.
    #[error("second-factor store unavailable")]
    Unavailable,
}

impl StepUpError {
    /// The stable code for logs and audit: `mfa.step_up_required` or
    /// `mfa.step_up_unavailable`.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::Required => "mfa.step_up_required",
            Self::Unavailable => "mfa.step_up_unavailable",
        }
    }

    /// The HTTP status to answer: 403 for [`Required`](Self::Required), 503 for
    /// [`Unavailable`](Self::Unavailable).
    #[must_use]
    pub const fn status(self) -> http::StatusCode {
        match self {
            Self::Required => http::StatusCode::FORBIDDEN,
            Self::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for StepUpError {
    /// 403 `{"error":"mfa_required"}` or 503 (empty), `Cache-Control: no-store`.
    fn into_response(self) -> axum::response::Response {
        use http::{HeaderValue, header};
        let mut response = match self {
            Self::Required => (self.status(), r#"{"error":"mfa_required"}"#).into_response(),
            Self::Unavailable => self.status().into_response(),
        };
        let headers = response.headers_mut();
        if self == Self::Required {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The matched step of `code` now, as a stored step.
fn check_totp(totp: &Totp, code: &str) -> Option<i64> {
    let now = u64::try_from(secret::now_unix()).ok()?;
    let step = totp.verify(code, now)?;
    i64::try_from(step).ok()
}

/// `abcdefghijklmnop` as `abcd-efgh-ijkl-mnop`.
fn group_recovery_code(text: &str) -> String {
    let mut out = String::with_capacity(RECOVERY_CODE_CHARS + 3);
    for (i, c) in text.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// The canonical form of a typed recovery code (hyphens and spaces dropped, lower case),
/// if it has the shape of one; `None` otherwise.
fn canonical_recovery_code(input: &str) -> Option<Zeroizing<String>> {
    if input.len() > MAX_CODE_INPUT {
        return None;
    }
    let canonical: Zeroizing<String> = Zeroizing::new(
        input
            .chars()
            .filter(|c| *c != '-' && *c != ' ')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    let ok = canonical.len() == RECOVERY_CODE_CHARS
        && canonical
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    ok.then_some(canonical)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// The Key Uri Format URI of a factor.
fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str, config: &TotpConfig) -> String {
    let mut uri = String::with_capacity(128 + issuer.len() * 2 + account.len());
    uri.push_str("otpauth://totp/");
    percent_encode(issuer, &mut uri);
    uri.push(':');
    percent_encode(account, &mut uri);
    uri.push_str("?secret=");
    uri.push_str(secret_b32);
    uri.push_str("&issuer=");
    percent_encode(issuer, &mut uri);
    uri.push_str("&algorithm=");
    uri.push_str(algorithm_name(config.algorithm()));
    uri.push_str("&digits=");
    uri.push_str(&config.digits().to_string());
    uri.push_str("&period=");
    uri.push_str(&config.step_secs().to_string());
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encodes_label_and_issuer() {
        let c = TotpConfig::default();
        let uri = otpauth_uri("Strong Room", "a+b@x.com", "JBSWY3DPEHPK3PXP", &c);
        assert_eq!(
            uri,
            "otpauth://totp/Strong%20Room:a%2Bb%40x.com?secret=JBSWY3DPEHPK3PXP&issuer=Strong%20Room&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_code_canonical_forms() {
        let c = canonical_recovery_code("ABCD-efgh ijkl-mn23").unwrap();
        assert_eq!(c.as_str(), "abcdefghijklmn23");
        assert!(canonical_recovery_code("abcd-efgh-ijkl-mn1").is_none());
        assert!(canonical_recovery_code("abcd-efgh-ijkl-mn01").is_none());
        assert!(canonical_recovery_code("abcd-efgh-ijkl-mnop-q").is_none());
        assert!(canonical_recovery_code("").is_none());
        assert_eq!(
            group_recovery_code("abcdefghijklmnop"),
            "abcd-efgh-ijkl-mnop"
        );
    }

    #[test]
    fn token_parser_refuses_bad_shapes() {
        let good = format!("mfa_{}", "A".repeat(43));
        assert!(MfaToken::parse(&good).is_ok());
        for bad in [
            String::new(),
            "mfa_".into(),
            format!("mfx_{}", "A".repeat(43)),
            format!("mfa_{}", "A".repeat(42)),
            format!("mfa_{}", "A".repeat(44)),
            format!("mfa_{}=", "A".repeat(42)),
            format!("mfa_{}é", "A".repeat(41)),
        ] {
            assert!(MfaToken::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
