//! [`RefreshStore`] for [`MemoryStore`]: families beside their user's state cell, like
//! sessions, and two digest maps (current tokens, spent tokens). Every operation runs
//! under the store's one write guard, so a rotation reads the user's epoch and moves the
//! family's current token in one critical section: exactly as atomic as the SQL
//! statement.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use async_trait::async_trait;

use super::{DigestHasher, IdHasher, MemoryStore, UserCell};
use crate::refresh::{FamilyRecord, NextToken, RefreshStore, Rotation};
use crate::store::StoreError;
use crate::user::{EpochKind, WithUser};

/// The refresh tables of [`MemoryStore`].
#[derive(Debug, Default)]
pub(super) struct Tables {
    /// Each family (by id) beside its user's cell.
    families: HashMap<String, (FamilyRecord, Arc<UserCell>), BuildHasherDefault<IdHasher>>,
    /// Digest of each family's current token to the family id.
    current: HashMap<[u8; 32], String, BuildHasherDefault<DigestHasher>>,
    /// Digest of every spent (rotated) token to its family id.
    spent: HashMap<[u8; 32], String, BuildHasherDefault<DigestHasher>>,
}

impl Tables {
    fn revoke(&mut self, family_id: &str, now: i64) -> Option<FamilyRecord> {
        let (family, _) = self.families.get_mut(family_id)?;
        if family.revoked_at().is_none() {
            *family = family.clone().with_revoked_at(Some(now));
        }
        Some(family.clone())
    }
}

/// Whether `family` may rotate at `now` given its user's cell (the same conditions as
/// the SQL statement's `WHERE`).
fn may_rotate(family: &FamilyRecord, cell: &UserCell, now: i64) -> bool {
    let user = cell.state(EpochKind::Session);
    family.revoked_at().is_none()
        && now < family.expires_at()
        && now < family.idle_expires_at()
        && !user.disabled
        && user.epoch == family.epoch()
}

#[async_trait]
impl RefreshStore for MemoryStore {
    async fn insert_family(
        &self,
        family: &FamilyRecord,
        token_digest: &[u8; 32],
    ) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        let cell = match inner.users.get(family.user_id()) {
            Some(e) if !e.user.disabled && e.user.session_epoch == family.epoch() => {
                Arc::clone(&e.cell)
            }
            _ => return Err(StoreError::UserRefused),
        };
        let tables = &mut inner.refresh;
        if tables.families.contains_key(family.id()) {
            return Err(StoreError::Conflict { field: "id" });
        }
        if tables.current.contains_key(token_digest) || tables.spent.contains_key(token_digest) {
            return Err(StoreError::Conflict {
                field: "token_digest",
            });
        }
        tables.current.insert(*token_digest, family.id().to_owned());
        tables
            .families
            .insert(family.id().to_owned(), (family.clone(), cell));
        Ok(())
    }

    async fn rotate(&self, presented: &[u8; 32], next: &NextToken) -> Result<Rotation, StoreError> {
        let mut inner = self.write()?;
        let tables = &mut inner.refresh;
        if let Some(family_id) = tables.current.get(presented).cloned() {
            let Some((family, cell)) = tables.families.get_mut(&family_id) else {
                return Err(StoreError::Corrupt { field: "family_id" });
            };
            if !may_rotate(family, cell, next.now) {
                return Ok(Rotation::Refused(WithUser {
                    record: family.clone(),
                    user: Some(cell.state(EpochKind::Session)),
                }));
            }
            if tables.current.contains_key(&next.digest) || tables.spent.contains_key(&next.digest)
            {
                return Err(StoreError::Conflict {
                    field: "token_digest",
                });
            }
            *family = family.clone().with_rotation(
                family.generation().saturating_add(1),
                next.now,
                next.idle_expires_at,
            );
            let rotated = family.clone();
            tables.current.remove(presented);
            tables.current.insert(next.digest, family_id.clone());
            tables.spent.insert(*presented, family_id);
            return Ok(Rotation::Rotated(rotated));
        }
        if let Some(family_id) = tables.spent.get(presented).cloned() {
            return match tables.revoke(&family_id, next.now) {
                Some(family) => Ok(Rotation::Reused(family)),
                None => Err(StoreError::Corrupt { field: "family_id" }),
            };
        }
        Ok(Rotation::Unknown)
    }

    async fn revoke_by_digest(
        &self,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<FamilyRecord>, StoreError> {
        let mut inner = self.write()?;
        let tables = &mut inner.refresh;
        let family_id = tables
            .current
            .get(digest)
            .or_else(|| tables.spent.get(digest))
            .cloned();
        Ok(family_id.and_then(|id| tables.revoke(&id, now)))
    }

    async fn revoke_user_families(&self, user_id: &str, now: i64) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let mut n = 0u64;
        for (family, _) in inner.refresh.families.values_mut() {
            if family.user_id() == user_id && family.revoked_at().is_none() {
                *family = family.clone().with_revoked_at(Some(now));
                n += 1;
            }
        }
        Ok(n)
    }

    async fn revoke_family(
        &self,
        user_id: &str,
        family_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        match inner.refresh.families.get_mut(family_id) {
            Some((family, _)) if family.user_id() == user_id && family.revoked_at().is_none() => {
                *family = family.clone().with_revoked_at(Some(now));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_auth_time(
        &self,
        user_id: &str,
        family_id: &str,
        auth_time: i64,
        amr: &[String],
    ) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        match inner.refresh.families.get_mut(family_id) {
            Some((family, _)) if family.user_id() == user_id && family.revoked_at().is_none() => {
                *family = family.clone().with_auth(amr.to_vec(), auth_time);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn user_families(&self, user_id: &str) -> Result<Vec<FamilyRecord>, StoreError> {
        let mut v: Vec<_> = self
            .read()?
            .refresh
            .families
            .values()
            .filter(|(f, _)| f.user_id() == user_id)
            .map(|(f, _)| f.clone())
            .collect();
        v.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(a.id().cmp(b.id())));
        Ok(v)
    }

    async fn delete_expired_families(&self, now: i64) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let tables = &mut inner.refresh;
        let before = tables.families.len();
        tables.families.retain(|_, (f, cell)| {
            f.revoked_at().is_none()
                && now < f.expires_at()
                && now < f.idle_expires_at()
                && cell.session_epoch() == f.epoch()
        });
        let families = &tables.families;
        tables.current.retain(|_, id| families.contains_key(id));
        tables.spent.retain(|_, id| families.contains_key(id));
        Ok(u64::try_from(before - families.len()).unwrap_or(u64::MAX))
    }
}
