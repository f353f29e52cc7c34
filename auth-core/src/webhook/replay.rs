//! The replay guard: remembers accepted deliveries until their signatures go stale.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::store::StoreError;

/// The outcome of a [`ReplayGuard::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller is the first to claim the delivery (or the earlier claim had
    /// expired): execute it.
    First,
    /// An unexpired claim exists: do not execute it again.
    Duplicate {
        /// The `reference` of the claim that won.
        reference: String,
    },
}

/// Where accepted deliveries are remembered, shared by every instance that receives the
/// same senders' webhooks.
///
/// Security contract: [`claim`](Self::claim) is atomic and first-writer-wins across every
/// instance using the same storage: of any number of concurrent claims of one `(sender,
/// delivery_id)`, exactly one sees [`Claim::First`] while the claim is unexpired. A claim
/// is unexpired while `now <= expires_at`; an expired claim may be replaced by a new one.
/// A failure is an error, never a `First` (fail closed). Implemented by
/// [`MemoryReplayGuard`] and by the SQL stores `SqliteStore` and `PgStore` (table
/// `auth_webhook_replay`, migration 20040).
#[async_trait]
pub trait ReplayGuard: Send + Sync + fmt::Debug {
    /// Claims `(sender, delivery_id)` for `reference` until `expires_at` (Unix seconds,
    /// inclusive), at `now`.
    ///
    /// # Errors
    /// [`StoreError`] if the storage fails (or, for the memory guard, is full).
    async fn claim(
        &self,
        sender: &str,
        delivery_id: &str,
        reference: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Claim, StoreError>;

    /// Deletes the claims expired at `now` (`expires_at < now`); returns how many.
    ///
    /// # Errors
    /// [`StoreError`] if the storage fails.
    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError>;
}

/// Default number of unexpired claims a [`MemoryReplayGuard`] holds.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// An in-process replay guard for a single instance (or tests): a map under one mutex,
/// bounded to `capacity` claims.
///
/// When full, a claim first drops every expired entry; if the map is still full, the
/// claim fails ([`StoreError::Backend`], so the verifier answers 503) rather than forget
/// an unexpired claim, which would let a replay through. Every claim is of a delivery
/// whose signature verified, so only a sender holding a secret can fill it.
pub struct MemoryReplayGuard {
    capacity: usize,
    claims: Mutex<Claims>,
}

/// `(sender, delivery id)` -> the claim.
type Claims = HashMap<(String, String), Entry>;

#[derive(Debug)]
struct Entry {
    reference: String,
    expires_at: i64,
}

impl MemoryReplayGuard {
    /// A guard holding at most `capacity` unexpired claims (at least 1).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            claims: Mutex::new(HashMap::new()),
        }
    }

    /// How many claims are held (expired ones included until they are swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.claims.lock().map_or(0, |c| c.len())
    }

    /// Whether no claim is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<MutexGuard<'_, Claims>, StoreError> {
        self.claims
            .lock()
            .map_err(|_| StoreError::Backend("webhook replay guard lock poisoned".into()))
    }
}

impl Default for MemoryReplayGuard {
    /// [`DEFAULT_REPLAY_CAPACITY`] claims.
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl fmt::Debug for MemoryReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayGuard")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

#[async_trait]
impl ReplayGuard for MemoryReplayGuard {
    async fn claim(
        &self,
        sender: &str,
        delivery_id: &str,
        reference: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Claim, StoreError> {
        let mut claims = self.lock()?;
        let key = (sender.to_owned(), delivery_id.to_owned());
        let entry = Entry {
            reference: reference.to_owned(),
            expires_at,
        };
        if let Some(existing) = claims.get_mut(&key) {
            if existing.expires_at >= now {
                return Ok(Claim::Duplicate {
                    reference: existing.reference.clone(),
                });
            }
            *existing = entry;
            return Ok(Claim::First);
        }
        if claims.len() >= self.capacity {
            claims.retain(|_, e| e.expires_at >= now);
            if claims.len() >= self.capacity {
                return Err(StoreError::Backend("webhook replay guard full".into()));
            }
        }
        claims.insert(key, entry);
        Ok(Claim::First)
    }

    async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut claims = self.lock()?;
        let before = claims.len();
        claims.retain(|_, e| e.expires_at >= now);
        Ok(u64::try_from(before - claims.len()).unwrap_or(u64::MAX))
    }
}
