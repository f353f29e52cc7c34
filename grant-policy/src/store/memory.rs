//! The in-memory store.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;

use crate::error::{GrantError, StoreError};
use crate::grant::{Access, Role, Share};
use crate::risk::{Notional, RiskLimits, Usage};
use access_types::Level;
use access_types::{AccountId, UserId};

use super::{GrantStore, RiskStore};

#[derive(Debug)]
struct AccountEntry {
    owner: UserId,
    capability: Level,
    shares: HashMap<UserId, (Level, Option<i64>)>,
}

#[derive(Debug, Default)]
struct Profiles {
    limits: HashMap<UserId, RiskLimits>,
    live: HashSet<(UserId, AccountId)>,
}

/// Grants and risk state in process memory.
///
/// Grants sit behind a read-write lock (decisions only read); risk usage behind a mutex,
/// which makes each reservation's check-and-add one critical section. Nothing is kept
/// across restarts, and nothing is shared between instances: use SQLite or PostgreSQL
/// for that.
#[derive(Debug, Default)]
pub struct MemoryStore {
    accounts: RwLock<HashMap<AccountId, AccountEntry>>,
    /// Limits per owner, and the (owner, account) pairs with live trading on: one lock,
    /// so that switching on checks the limits and writes in one critical section.
    profiles: Mutex<Profiles>,
    usage: Mutex<HashMap<(UserId, i64), Usage>>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// [`GrantStore::access`] without the async wrapper: one read lock and at most two
    /// hash lookups, no allocation.
    ///
    /// # Errors
    ///
    /// [`StoreError::Poisoned`] when a panic poisoned the lock.
    pub fn access_now(
        &self,
        user: &UserId,
        account: &AccountId,
    ) -> Result<Option<Access>, StoreError> {
        let accounts = self.accounts.read().map_err(|_| StoreError::Poisoned)?;
        let Some(entry) = accounts.get(account) else {
            return Ok(None);
        };
        if entry.owner == *user {
            return Ok(Some(Access {
                capability: entry.capability,
                role: Role::Owner,
            }));
        }
        Ok(entry.shares.get(user).map(|&(level, expires_at)| Access {
            capability: entry.capability,
            role: Role::Grantee { level, expires_at },
        }))
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn register(
        &self,
        owner: &UserId,
        account: &AccountId,
        capability: Level,
        _now: i64,
    ) -> Result<(), GrantError> {
        let mut accounts = self.accounts.write().map_err(|_| StoreError::Poisoned)?;
        match accounts.get_mut(account) {
            Some(entry) if entry.owner == *owner => {
                entry.capability = capability;
                Ok(())
            }
            Some(_) => Err(GrantError::AlreadyRegistered),
            None => {
                accounts.insert(
                    account.clone(),
                    AccountEntry {
                        owner: owner.clone(),
                        capability,
                        shares: HashMap::new(),
                    },
                );
                Ok(())
            }
        }
    }

    async fn deregister(&self, owner: &UserId, account: &AccountId) -> Result<(), GrantError> {
        let mut accounts = self.accounts.write().map_err(|_| StoreError::Poisoned)?;
        match accounts.get(account) {
            Some(entry) if entry.owner == *owner => {
                accounts.remove(account);
                // A deregistered account comes back in dry-run if it is registered again.
                // The accounts lock is held, so no admission sees the account half gone.
                let mut profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
                profiles.live.remove(&(owner.clone(), account.clone()));
                Ok(())
            }
            _ => Err(GrantError::NotFound),
        }
    }

    async fn access(
        &self,
        user: &UserId,
        account: &AccountId,
    ) -> Result<Option<Access>, StoreError> {
        self.access_now(user, account)
    }

    async fn accessible(&self, user: &UserId) -> Result<Vec<(AccountId, Access)>, StoreError> {
        let accounts = self.accounts.read().map_err(|_| StoreError::Poisoned)?;
        let mut out: Vec<(AccountId, Access)> = accounts
            .iter()
            .filter_map(|(id, entry)| {
                let role = if entry.owner == *user {
                    Role::Owner
                } else {
                    let &(level, expires_at) = entry.shares.get(user)?;
                    Role::Grantee { level, expires_at }
                };
                let access = Access {
                    capability: entry.capability,
                    role,
                };
                Some((id.clone(), access))
            })
            .collect();
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(out)
    }

    async fn share(
        &self,
        owner: &UserId,
        account: &AccountId,
        share: &Share,
        _now: i64,
    ) -> Result<(), GrantError> {
        let mut accounts = self.accounts.write().map_err(|_| StoreError::Poisoned)?;
        match accounts.get_mut(account) {
            Some(entry) if entry.owner == *owner => {
                entry
                    .shares
                    .insert(share.grantee.clone(), (share.level, share.expires_at));
                Ok(())
            }
            _ => Err(GrantError::NotFound),
        }
    }

    async fn revoke(
        &self,
        owner: &UserId,
        account: &AccountId,
        grantee: &UserId,
    ) -> Result<bool, GrantError> {
        let mut accounts = self.accounts.write().map_err(|_| StoreError::Poisoned)?;
        match accounts.get_mut(account) {
            Some(entry) if entry.owner == *owner => Ok(entry.shares.remove(grantee).is_some()),
            _ => Err(GrantError::NotFound),
        }
    }

    async fn shares(&self, owner: &UserId, account: &AccountId) -> Result<Vec<Share>, GrantError> {
        let accounts = self.accounts.read().map_err(|_| StoreError::Poisoned)?;
        match accounts.get(account) {
            Some(entry) if entry.owner == *owner => {
                let mut out: Vec<Share> = entry
                    .shares
                    .iter()
                    .map(|(grantee, &(level, expires_at))| Share {
                        grantee: grantee.clone(),
                        level,
                        expires_at,
                    })
                    .collect();
                out.sort_by(|a, b| a.grantee.cmp(&b.grantee));
                Ok(out)
            }
            _ => Err(GrantError::NotFound),
        }
    }

    async fn owner(&self, account: &AccountId) -> Result<Option<UserId>, StoreError> {
        let accounts = self.accounts.read().map_err(|_| StoreError::Poisoned)?;
        Ok(accounts.get(account).map(|entry| entry.owner.clone()))
    }
}

#[async_trait]
impl RiskStore for MemoryStore {
    async fn limits(&self, user: &UserId) -> Result<Option<RiskLimits>, StoreError> {
        let profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(profiles.limits.get(user).copied())
    }

    async fn set_limits(
        &self,
        user: &UserId,
        limits: RiskLimits,
        _now: i64,
    ) -> Result<(), StoreError> {
        let mut profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
        profiles.limits.insert(user.clone(), limits);
        Ok(())
    }

    async fn set_live_trading(
        &self,
        owner: &UserId,
        account: &AccountId,
        enabled: bool,
        _now: i64,
    ) -> Result<bool, StoreError> {
        let mut profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
        if !profiles.limits.contains_key(owner) {
            return Ok(false);
        }
        let pair = (owner.clone(), account.clone());
        if enabled {
            profiles.live.insert(pair);
        } else {
            profiles.live.remove(&pair);
        }
        Ok(true)
    }

    async fn live_trading(&self, owner: &UserId, account: &AccountId) -> Result<bool, StoreError> {
        let profiles = self.profiles.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(profiles.live.contains(&(owner.clone(), account.clone())))
    }

    async fn reserve(
        &self,
        user: &UserId,
        day: i64,
        amount: Notional,
        cap: Notional,
    ) -> Result<bool, StoreError> {
        let mut usage = self.usage.lock().map_err(|_| StoreError::Poisoned)?;
        let u = usage.entry((user.clone(), day)).or_default();
        let fits = u
            .used
            .checked_add(u.reserved)
            .and_then(|held| held.checked_add(amount))
            .is_some_and(|total| total <= cap);
        if fits {
            // Cannot overflow: total <= cap <= Notional::MAX.
            u.reserved = u.reserved.checked_add(amount).unwrap_or(Notional::MAX);
        }
        Ok(fits)
    }

    async fn settle(
        &self,
        user: &UserId,
        day: i64,
        reserved_amount: Notional,
        used_amount: Notional,
    ) -> Result<bool, StoreError> {
        let mut usage = self.usage.lock().map_err(|_| StoreError::Poisoned)?;
        let Some(u) = usage.get_mut(&(user.clone(), day)) else {
            return Ok(false);
        };
        let Some(reserved) = u.reserved.checked_sub(reserved_amount) else {
            return Ok(false);
        };
        u.reserved = reserved;
        // Saturate: an absurd spend pins usage at the maximum, which blocks further
        // reservations (fails closed).
        u.used = u.used.checked_add(used_amount).unwrap_or(Notional::MAX);
        Ok(true)
    }

    async fn usage(&self, user: &UserId, day: i64) -> Result<Usage, StoreError> {
        let usage = self.usage.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(usage.get(&(user.clone(), day)).copied().unwrap_or_default())
    }
}
