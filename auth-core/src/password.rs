//! Password hashing: Argon2id PHC strings, legacy bcrypt verification, bounded
//! concurrency off the async runtime.
//!
//! * New hashes are Argon2id (version 0x13) with at least OWASP's minimum parameters
//!   (m = 19456 KiB, t = 2, p = 1), a 16-byte random salt from aws-lc-rs, as PHC strings.
//! * Legacy bcrypt hashes (`$2a$`, `$2b$`, `$2y$`) verify, and report that a rehash is due
//!   so the next successful login upgrades them. So do Argon2 hashes with weaker
//!   parameters than configured.
//! * bcrypt reads only the first [`BCRYPT_MAX_PASSWORD_LEN`] (72) bytes of a password. A
//!   password longer than that never matches a bcrypt hash ([`Verification::Mismatch`],
//!   after the same bcrypt work): otherwise anyone knowing the first 72 bytes could log
//!   in with any suffix, and the rehash would store *their* string as the new password.
//!   A legacy user whose real password is longer than 72 bytes has to reset it.
//! * Every hash and verify runs in [`tokio::task::spawn_blocking`] behind a semaphore:
//!   at most [`PasswordConfig::max_concurrent`] run at once and the rest wait
//!   asynchronously, so a login flood cannot starve the runtime threads that resolve
//!   tokens.
//! * [`PasswordHasher::verify_dummy`] does the same work as a real verification against
//!   a hash made at start-up, for logins with an unknown email.

use core::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::secret;

/// OWASP minimum Argon2id memory cost in KiB.
pub const MIN_M_COST_KIB: u32 = 19_456;
/// OWASP minimum Argon2id iterations.
pub const MIN_T_COST: u32 = 2;
/// Argon2id parallelism.
pub const MIN_P_COST: u32 = 1;
/// Shortest password accepted by [`PasswordPolicy::check`] by default.
pub const DEFAULT_MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted anywhere (bounds the work an attacker can ask for).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// bcrypt uses only this many bytes of a password; a longer one never matches a bcrypt
/// hash (see the module docs).
pub const BCRYPT_MAX_PASSWORD_LEN: usize = 72;

/// A password. Wiped on drop; `Debug` prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    #[must_use]
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Password").finish_non_exhaustive()
    }
}

/// Password hashing failures. Never contains the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Argon2 parameters below the OWASP minimum, or rejected by the argon2 crate.
    #[error(
        "argon2 parameters are invalid or below m={MIN_M_COST_KIB} KiB, t={MIN_T_COST}, p={MIN_P_COST}"
    )]
    WeakParams,
    /// `max_concurrent` is zero.
    #[error("max_concurrent must be at least 1")]
    ZeroConcurrency,
    /// The stored hash is neither a PHC Argon2 string nor a bcrypt hash.
    #[error("stored password hash has an unknown format")]
    UnknownHashFormat,
    /// The password is longer than [`MAX_PASSWORD_LEN`].
    #[error("password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    /// The system random generator failed.
    #[error(transparent)]
    Random(#[from] secret::RandomError),
    /// Hashing failed inside argon2 or bcrypt.
    #[error("password hashing failed")]
    Hash,
    /// The blocking task was cancelled or panicked, or the limiter closed.
    #[error("password hashing task failed")]
    Task,
}

/// Configuration of [`PasswordHasher`].
// Holds no secret: Argon2 costs and a concurrency limit only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordConfig {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    max_concurrent: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            m_cost_kib: MIN_M_COST_KIB,
            t_cost: MIN_T_COST,
            p_cost: MIN_P_COST,
            max_concurrent: default_max_concurrent(),
        }
    }
}

/// One fewer than the CPUs this process may use, at least 1: a flood of logins (wrong
/// passwords at full speed) then keeps every CPU but one for the requests that do not
/// hash. On two cores, all CPUs hashing raised the p99 of token-authenticated requests
/// beside a flood to 2.6 times their p99 alone.
fn default_max_concurrent() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_sub(1)
        .max(1)
}

impl PasswordConfig {
    /// Argon2id parameters; refused below the OWASP minimum.
    ///
    /// # Errors
    ///
    /// [`PasswordError::WeakParams`].
    pub fn argon2_params(
        mut self,
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
    ) -> Result<Self, PasswordError> {
        if m_cost_kib < MIN_M_COST_KIB || t_cost < MIN_T_COST || p_cost < MIN_P_COST {
            return Err(PasswordError::WeakParams);
        }
        Params::new(m_cost_kib, t_cost, p_cost, None).map_err(|_| PasswordError::WeakParams)?;
        self.m_cost_kib = m_cost_kib;
        self.t_cost = t_cost;
        self.p_cost = p_cost;
        Ok(self)
    }

    /// Most hash or verify operations running at once (default: one fewer than the CPUs
    /// this process may use, at least 1, so that a login flood leaves a CPU to requests
    /// that do not hash). Each holds `m_cost` of memory while it runs.
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Parameters without the minimum check (see [`crate::danger`]).
    pub(crate) fn unchecked_params(mut self, m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Self {
        self.m_cost_kib = m_cost_kib;
        self.t_cost = t_cost;
        self.p_cost = p_cost;
        self
    }
}

/// Result of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// The password matches; if `needs_rehash`, store a fresh hash of it.
    Match {
        /// The stored hash is legacy bcrypt or weaker than the current parameters.
        needs_rehash: bool,
    },
    /// The password does not match.
    Mismatch,
}

/// Hashes and verifies passwords off the async runtime. Cheap to clone (shared).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    limiter: Arc<Semaphore>,
    dummy_hash: String,
    completed: AtomicU64,
    /// Operations waiting for a permit.
    waiting: AtomicUsize,
}

/// Counts one operation as waiting for a permit until dropped (also when the caller's
/// future is dropped while it waits).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost_kib", &self.inner.params.m_cost())
            .field("t_cost", &self.inner.params.t_cost())
            .field("p_cost", &self.inner.params.p_cost())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher. Computes one dummy hash synchronously (tens of milliseconds): build it at
    /// start-up, not per request.
    ///
    /// # Errors
    ///
    /// [`PasswordError::WeakParams`], [`PasswordError::ZeroConcurrency`], or a failure
    /// computing the dummy hash.
    pub fn new(config: PasswordConfig) -> Result<Self, PasswordError> {
        if config.max_concurrent == 0 {
            return Err(PasswordError::ZeroConcurrency);
        }
        let params = Params::new(config.m_cost_kib, config.t_cost, config.p_cost, None)
            .map_err(|_| PasswordError::WeakParams)?;
        let dummy_password = secret::random_secret_b64()?;
        let dummy_hash = hash_sync(&params, dummy_password.as_bytes())?;
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                limiter: Arc::new(Semaphore::new(config.max_concurrent)),
                dummy_hash,
                completed: AtomicU64::new(0),
                waiting: AtomicUsize::new(0),
            }),
        })
    }

    /// Hashes `password` into an Argon2id PHC string.
    ///
    /// # Errors
    ///
    /// [`PasswordError`].
    pub async fn hash(&self, password: &Password) -> Result<String, PasswordError> {
        if password.0.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong);
        }
        let params = self.inner.params.clone();
        let password = password.clone();
        self.run(move || hash_sync(&params, password.0.as_bytes()))
            .await
    }

    /// Verifies `password` against a stored PHC (Argon2) or bcrypt hash.
    ///
    /// # Errors
    ///
    /// [`PasswordError::UnknownHashFormat`] for a hash of no known format (treat as a
    /// failed login and alert), or a task failure.
    pub async fn verify(
        &self,
        password: &Password,
        stored: &str,
    ) -> Result<Verification, PasswordError> {
        if password.0.len() > MAX_PASSWORD_LEN {
            // Same work as a real check, then refuse.
            self.verify_dummy(password).await?;
            return Ok(Verification::Mismatch);
        }
        let params = self.inner.params.clone();
        let password = password.clone();
        let stored = stored.to_owned();
        self.run(move || verify_sync(&params, &password, &stored))
            .await
    }

    /// Does the work of one verification against a hash of a random password and
    /// discards the result: for logins with an unknown email, so that they cost what a
    /// known email costs.
    ///
    /// # Errors
    ///
    /// A task failure.
    pub async fn verify_dummy(&self, password: &Password) -> Result<(), PasswordError> {
        let params = self.inner.params.clone();
        let mut truncated = password.clone();
        truncated.0.truncate(MAX_PASSWORD_LEN);
        let dummy = self.inner.dummy_hash.clone();
        self.run(move || verify_sync(&params, &truncated, &dummy).map(|_| ()))
            .await
    }

    /// Runs `f` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let waiting = Waiting::enter(&self.inner.waiting);
        let permit = Arc::clone(&self.inner.limiter)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Task)?;
        drop(waiting);
        let result = tokio::task::spawn_blocking(move || {
            let result = f();
            drop(permit);
            result
        })
        .await
        .map_err(|_| PasswordError::Task)?;
        self.inner.completed.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// How many hash or verify operations (dummy ones included) have completed. For
    /// metrics, and for tests that check an unknown email costs the same work.
    #[must_use]
    pub fn completed_operations(&self) -> u64 {
        self.inner.completed.load(Ordering::Relaxed)
    }

    /// How many operations are queued for a permit right now (the hashing queue depth:
    /// a login flood shows here before it shows in latency). For metrics.
    #[must_use]
    pub fn waiting_operations(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// How many more operations could start right now without waiting.
    #[must_use]
    pub fn available_permits(&self) -> usize {
        self.inner.limiter.available_permits()
    }
}

fn hash_sync(params: &Params, password: &[u8]) -> Result<String, PasswordError> {
    let salt_bytes = secret::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(salt_bytes.as_ref()).map_err(|_| PasswordError::Hash)?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

fn verify_sync(
    params: &Params,
    password: &Password,
    stored: &str,
) -> Result<Verification, PasswordError> {
    if is_bcrypt(stored) {
        let bytes = password.0.as_bytes();
        // bcrypt ignores everything after byte 72: a longer password is refused (after
        // the same work, on its first 72 bytes) so that no suffix can ever match.
        let too_long = bytes.len() > BCRYPT_MAX_PASSWORD_LEN;
        let head = bytes.get(..BCRYPT_MAX_PASSWORD_LEN).unwrap_or(bytes);
        return match bcrypt::verify(head, stored) {
            Ok(true) if !too_long => Ok(Verification::Match { needs_rehash: true }),
            Ok(_) => Ok(Verification::Mismatch),
            Err(_) => Err(PasswordError::UnknownHashFormat),
        };
    }
    let hash = PasswordHash::new(stored).map_err(|_| PasswordError::UnknownHashFormat)?;
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err(PasswordError::UnknownHashFormat);
    }
    let algorithm =
        Algorithm::try_from(hash.algorithm).map_err(|_| PasswordError::UnknownHashFormat)?;
    let stored_params = Params::try_from(&hash).map_err(|_| PasswordError::UnknownHashFormat)?;
    // The verifier uses the parameters recorded in the hash.
    let verifier = Argon2::new(algorithm, Version::V0x13, stored_params.clone());
    match verifier.verify_password(password.0.as_bytes(), &hash) {
        Ok(()) => {
            let weaker = algorithm != Algorithm::Argon2id
                || hash.version != Some(u32::from(Version::V0x13))
                || stored_params.m_cost() < params.m_cost()
                || stored_params.t_cost() < params.t_cost()
                || stored_params.p_cost() < params.p_cost();
            Ok(Verification::Match {
                needs_rehash: weaker,
            })
        }
        Err(argon2::password_hash::Error::Password) => Ok(Verification::Mismatch),
        Err(_) => Err(PasswordError::UnknownHashFormat),
    }
}

/// Password rules for registration and password changes.
// Holds no secret: a minimum length only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_len: DEFAULT_MIN_PASSWORD_LEN,
        }
    }
}

/// Why a new password was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Fewer characters than the minimum.
    #[error("password must be at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than [`MAX_PASSWORD_LEN`] bytes.
    #[error("password must be at most {MAX_PASSWORD_LEN} bytes")]
    TooLong,
}

impl PasswordPolicy {
    /// Sets the minimum length in characters (at least 8).
    #[must_use]
    pub fn min_len(mut self, min_len: usize) -> Self {
        self.min_len = min_len.max(8);
        self
    }

    /// Checks a new password.
    ///
    /// # Errors
    ///
    /// [`PolicyError`].
    pub fn check(&self, password: &Password) -> Result<(), PolicyError> {
        if password.0.len() > MAX_PASSWORD_LEN {
            return Err(PolicyError::TooLong);
        }
        if password.0.chars().count() < self.min_len {
            return Err(PolicyError::TooShort { min: self.min_len });
        }
        Ok(())
    }
}
