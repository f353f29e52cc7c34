//! [`MfaStore`] for [`MemoryStore`]: every operation runs under one mutex, so each
//! single-use step (the replay guard, a recovery code, a challenge) is atomic.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{MemoryStore, StoreError};
use crate::mfa::{ChallengeRecord, MfaRecord, MfaState, MfaStore, SealedTotpSecret};
use crate::secret::Digest;

/// The MFA tables of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct MfaTables {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    factors: HashMap<String, MfaRecord>,
    /// Per user: recovery-code digest and whether it was used.
    recovery: HashMap<String, Vec<(Digest, bool)>>,
    /// Challenge, and whether it was consumed.
    challenges: HashMap<Digest, (ChallengeRecord, bool)>,
}

impl MfaTables {
    fn lock(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl MfaStore for MemoryStore {
    async fn put_pending(&self, record: &MfaRecord) -> Result<bool, StoreError> {
        let mut t = self.mfa.lock()?;
        if t.factors
            .get(&record.user_id)
            .is_some_and(|r| r.state == MfaState::Active)
        {
            return Ok(false);
        }
        let mut record = record.clone();
        record.state = MfaState::Pending;
        t.factors.insert(record.user_id.clone(), record);
        Ok(true)
    }

    async fn mfa_record(&self, user_id: &str) -> Result<Option<MfaRecord>, StoreError> {
        Ok(self.mfa.lock()?.factors.get(user_id).cloned())
    }

    async fn activate(
        &self,
        user_id: &str,
        enrollment_id: &str,
        step: i64,
        recovery_digests: &[Digest],
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut t = self.mfa.lock()?;
        match t.factors.get_mut(user_id) {
            Some(r) if r.state == MfaState::Pending && r.enrollment_id == enrollment_id => {
                r.state = MfaState::Active;
                r.last_step = Some(step);
                r.activated_at = Some(now);
            }
            _ => return Ok(false),
        }
        t.recovery.insert(
            user_id.to_owned(),
            recovery_digests.iter().map(|d| (*d, false)).collect(),
        );
        Ok(true)
    }

    async fn accept_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let mut t = self.mfa.lock()?;
        match t.factors.get_mut(user_id) {
            Some(r) if r.state == MfaState::Active && r.last_step.is_none_or(|s| s < step) => {
                r.last_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &Digest,
        _now: i64,
    ) -> Result<bool, StoreError> {
        let mut t = self.mfa.lock()?;
        let Some(codes) = t.recovery.get_mut(user_id) else {
            return Ok(false);
        };
        // Compare every stored digest in constant time; no exit at the first match.
        let mut hit = None;
        for (i, (d, _)) in codes.iter().enumerate() {
            if crate::secret::digest_eq(d, digest) {
                hit = Some(i);
            }
        }
        match hit.and_then(|i| codes.get_mut(i)) {
            Some((_, used)) if !*used => {
                *used = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn recovery_codes_left(&self, user_id: &str) -> Result<u64, StoreError> {
        let t = self.mfa.lock()?;
        let n = t
            .recovery
            .get(user_id)
            .map_or(0, |c| c.iter().filter(|(_, used)| !used).count());
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }

    async fn delete_mfa(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut t = self.mfa.lock()?;
        let removed = t.factors.remove(user_id).is_some();
        t.recovery.remove(user_id);
        t.challenges.retain(|_, (c, _)| c.user_id != user_id);
        Ok(removed)
    }

    async fn insert_challenge(&self, record: &ChallengeRecord) -> Result<(), StoreError> {
        let mut t = self.mfa.lock()?;
        if t.challenges.contains_key(&record.token_digest) {
            return Err(StoreError::Conflict { field: "id" });
        }
        t.challenges
            .insert(record.token_digest, (record.clone(), false));
        Ok(())
    }

    async fn consume_challenge(
        &self,
        digest: &Digest,
        now: i64,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        let mut t = self.mfa.lock()?;
        match t.challenges.get_mut(digest) {
            Some((c, consumed)) if !*consumed && now < c.expires_at => {
                *consumed = true;
                Ok(Some(c.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn delete_expired_challenges(&self, now: i64) -> Result<u64, StoreError> {
        let mut t = self.mfa.lock()?;
        let before = t.challenges.len();
        t.challenges
            .retain(|_, (c, consumed)| !*consumed && now < c.expires_at);
        Ok(u64::try_from(before - t.challenges.len()).unwrap_or(u64::MAX))
    }

    async fn sealed_secrets_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SealedTotpSecret>, StoreError> {
        let t = self.mfa.lock()?;
        let mut page: Vec<&MfaRecord> = t
            .factors
            .values()
            .filter(|r| after.is_none_or(|a| r.user_id.as_str() > a))
            .collect();
        page.sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(page
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|r| SealedTotpSecret {
                user_id: r.user_id.clone(),
                sealed_secret: r.sealed_secret.clone(),
            })
            .collect())
    }

    async fn replace_sealed_secret(
        &self,
        user_id: &str,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let mut t = self.mfa.lock()?;
        match t.factors.get_mut(user_id) {
            Some(r) if r.sealed_secret == old => {
                new.clone_into(&mut r.sealed_secret);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
