//! In-memory store: users, sessions and API keys in `HashMap`s behind one read-write lock
//! (resolutions only read, so concurrent requests do not queue behind each other). A
//! lookup reads the credential and its user's state under the same read guard, and every
//! state change with its epoch bump happens under one write guard, so the store is exactly
//! as atomic as the SQL ones. The
//! lookups on the request path answer without waiting ([`StoreFuture::ready`]) and hand
//! out records whose text is shared, so a resolution allocates nothing.
//!
//! The user's state is not looked up by user id on the request path: each session and API
//! key is stored beside a shared pointer to its user's state cell, which every change of
//! the user rewrites under the write guard, so a lookup reads the state with one pointer
//! dereference instead of a second hash probe.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::{StoreError, StoreFuture};
use crate::api_key::{ApiKeyRecord, ApiKeyStore};
use crate::session::{SessionRecord, SessionStore};
use crate::user::{EpochKind, RevokeScope, SsoIdentity, User, UserState, UserStore, WithUser};

#[path = "memory_refresh.rs"]
mod refresh;

/// An in-process store for tests, benchmarks and single-instance tools. Data is lost when
/// it is dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    /// Second factors, recovery codes and login challenges (their own lock: no MFA
    /// operation reads the users' state).
    pub(super) mfa: super::memory_mfa::MfaTables,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed like the API keys (user ids are chosen by this crate too). Users are never
    /// removed (no operation of [`UserStore`] deletes one), so a cell held by a session
    /// or key always belongs to a user that exists. An operation that removes a user must
    /// remove its sessions and keys under the same write guard, or lookups would not fail
    /// closed (`user: None`).
    users: HashMap<String, UserEntry, BuildHasherDefault<IdHasher>>,
    identities: HashMap<SsoIdentity, String>,
    /// Each session beside its user's cell (taken when the session was inserted, which
    /// requires the user to exist).
    sessions: HashMap<[u8; 32], (SessionRecord, Arc<UserCell>), BuildHasherDefault<DigestHasher>>,
    /// Session id -> token digest, so that an insert checks id uniqueness and a revoke by
    /// id finds its session without scanning every session.
    session_ids: HashMap<Box<str>, [u8; 32]>,
    /// Each key beside its user's cell, like the sessions.
    api_keys: HashMap<Arc<str>, (ApiKeyRecord, Arc<UserCell>), BuildHasherDefault<IdHasher>>,
    /// Refresh-token families and their token digests (see `memory_refresh.rs`).
    refresh: refresh::Tables,
}

/// A user and the copy of its request-path state that its credentials point to.
#[derive(Debug)]
struct UserEntry {
    user: User,
    cell: Arc<UserCell>,
}

/// What a credential lookup reads of a user ([`UserState`]), shared by the user's entry
/// and every session and API key of the user.
///
/// The fields are atomics only so that they can be rewritten through the shared pointer
/// without `unsafe`; the store's lock orders them. They are written only under the write
/// guard (always right after the [`User`] itself changes, by [`Inner::update`] and
/// [`Inner::insert_user`]) and read only under a guard, so `Relaxed` suffices: the lock's
/// release and acquire make every write of a state change visible to each later lookup,
/// and no lookup runs while a change is half written.
#[derive(Debug, Default)]
struct UserCell {
    disabled: AtomicBool,
    must_change_password: AtomicBool,
    session_epoch: AtomicI64,
    key_epoch: AtomicI64,
}

impl UserCell {
    fn new(user: &User) -> Arc<Self> {
        let cell = Arc::new(Self::default());
        cell.publish(user);
        cell
    }

    /// Copies the user's request-path state into the cell. Call under the write guard.
    fn publish(&self, user: &User) {
        self.disabled.store(user.disabled, Ordering::Relaxed);
        self.must_change_password
            .store(user.must_change_password, Ordering::Relaxed);
        self.session_epoch
            .store(user.session_epoch, Ordering::Relaxed);
        self.key_epoch.store(user.key_epoch, Ordering::Relaxed);
    }

    fn session_epoch(&self) -> i64 {
        self.session_epoch.load(Ordering::Relaxed)
    }

    /// What [`User::state`] gives for the user the cell was last published from. Call
    /// under a guard.
    fn state(&self, kind: EpochKind) -> UserState {
        UserState {
            disabled: self.disabled.load(Ordering::Relaxed),
            must_change_password: self.must_change_password.load(Ordering::Relaxed),
            epoch: match kind {
                EpochKind::Session => self.session_epoch(),
                EpochKind::ApiKey => self.key_epoch.load(Ordering::Relaxed),
            },
        }
    }
}

/// Hashes a SHA-256 digest key by taking 8 of its bytes. The digests are uniformly
/// distributed and an attacker cannot choose preimages, so no keyed hash (SipHash) is
/// needed to keep buckets balanced.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as a length prefix (via `write_usize`) then the bytes.
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }

    fn write_usize(&mut self, _len: usize) {}
}

/// Hashes an API key id or a user id. Ids are chosen by this crate when a key or user is
/// created (128 random bits), never by a client: a presented key id only probes the table
/// and cannot lengthen a bucket, and a user id is never presented at all, so no keyed hash
/// (SipHash, three times slower here) is needed. The hash is unkeyed: a caller that
/// inserts records itself
/// ([`ApiKeyStore::insert_api_key`](crate::ApiKeyStore::insert_api_key),
/// [`UserStore::create_user`](crate::UserStore::create_user)) must give them random ids
/// too, never ids a client chose. Every byte is mixed in, so ids of another shape
/// (`"k-1"`, `"k-2"`) spread as well.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl IdHasher {
    /// An odd constant with well-spread bits (2^64 / golden ratio).
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The multiplications push entropy upwards; fold it back into the low bits, which
        // pick the bucket.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        let (words, tail) = bytes.as_chunks::<8>();
        for word in words {
            self.mix(u64::from_le_bytes(*word));
        }
        if !tail.is_empty() {
            let mut last = [0u8; 8];
            last[..tail.len()].copy_from_slice(tail);
            self.mix(u64::from_le_bytes(last));
        }
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>, StoreError> {
        // A poisoned lock means a panic mid-update: refuse rather than serve torn data.
        self.inner.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>, StoreError> {
        self.inner.write().map_err(|_| poisoned())
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("memory store lock poisoned".into())
}

impl Inner {
    /// After a bulk removal of sessions: forget the ids of the removed ones.
    fn drop_stale_session_ids(&mut self) {
        let Self {
            sessions,
            session_ids,
            ..
        } = self;
        session_ids.retain(|_, digest| sessions.contains_key(digest));
    }

    fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        if self.users.contains_key(&user.id) {
            return Err(StoreError::Conflict { field: "id" });
        }
        if self.users.values().any(|e| e.user.email == user.email) {
            return Err(StoreError::Conflict { field: "email" });
        }
        let entry = UserEntry {
            user: user.clone(),
            cell: UserCell::new(user),
        };
        self.users.insert(user.id.clone(), entry);
        Ok(())
    }

    /// The one way to change a stored user: applies `change` and republishes the user's
    /// cell, so the credentials' view can never lag the user. `None` if there is no such
    /// user. Takes `&mut self`, so it runs under the write guard.
    fn update<R>(&mut self, user_id: &str, change: impl FnOnce(&mut User) -> R) -> Option<R> {
        let entry = self.users.get_mut(user_id)?;
        let out = change(&mut entry.user);
        entry.cell.publish(&entry.user);
        Some(out)
    }

    /// Applies `revoke` to the user's epochs; `false` if there is no such user.
    fn bump(&mut self, user_id: &str, revoke: RevokeScope) -> bool {
        self.update(user_id, |user| bump_epochs(user, revoke))
            .is_some()
    }
}

fn bump_epochs(user: &mut User, revoke: RevokeScope) {
    user.session_epoch = user.session_epoch.saturating_add(revoke.session_bump());
    user.key_epoch = user.key_epoch.saturating_add(revoke.key_bump());
}

/// A stored credential with its user's state, read through the stored cell (no probe of
/// the user map). Every stored credential has a cell (its user existed at insert and users
/// are never removed), so `user` is always `Some` here; a credential without a user cannot
/// be stored, and a lookup that finds none returns `None` for the whole record.
fn with_cell<R: Clone>(stored: &(R, Arc<UserCell>), kind: EpochKind) -> WithUser<R> {
    WithUser {
        record: stored.0.clone(),
        user: Some(stored.1.state(kind)),
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.write()?.insert_user(user)
    }

    async fn create_user_with_identity(
        &self,
        user: &User,
        identity: &SsoIdentity,
    ) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        if inner.identities.contains_key(identity) {
            return Err(StoreError::Conflict { field: "identity" });
        }
        inner.insert_user(user)?;
        inner.identities.insert(identity.clone(), user.id.clone());
        Ok(())
    }

    async fn user_by_id(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.read()?.users.get(user_id).map(|e| e.user.clone()))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .read()?
            .users
            .values()
            .find(|e| e.user.email == email)
            .map(|e| e.user.clone()))
    }

    async fn set_password(
        &self,
        user_id: &str,
        expected: Option<&str>,
        password_hash: &str,
        must_change_password: bool,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError> {
        let changed = self.write()?.update(user_id, |user| {
            if user.password_hash.as_deref() != expected {
                return false;
            }
            user.password_hash = Some(password_hash.to_owned());
            user.must_change_password = must_change_password;
            bump_epochs(user, revoke);
            true
        });
        Ok(changed == Some(true))
    }

    async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError> {
        let found = self.write()?.update(user_id, |user| {
            user.disabled = disabled;
            if disabled {
                bump_epochs(user, RevokeScope::All);
            }
        });
        Ok(found.is_some())
    }

    async fn revoke_credentials(
        &self,
        user_id: &str,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError> {
        Ok(self.write()?.bump(user_id, revoke))
    }

    async fn set_email_verified(&self, user_id: &str) -> Result<bool, StoreError> {
        let found = self
            .write()?
            .update(user_id, |user| user.email_verified = true);
        Ok(found.is_some())
    }

    async fn user_by_identity(&self, identity: &SsoIdentity) -> Result<Option<User>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .identities
            .get(identity)
            .and_then(|id| inner.users.get(id))
            .map(|e| e.user.clone()))
    }

    async fn identity_of(&self, user_id: &str) -> Result<Option<SsoIdentity>, StoreError> {
        Ok(self
            .read()?
            .identities
            .iter()
            .find(|(_, u)| u.as_str() == user_id)
            .map(|(i, _)| i.clone()))
    }

    async fn bind_identity(&self, user_id: &str, identity: &SsoIdentity) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        if inner.identities.contains_key(identity)
            || inner.identities.values().any(|u| u == user_id)
        {
            return Err(StoreError::Conflict { field: "identity" });
        }
        if !inner.users.contains_key(user_id) {
            return Err(StoreError::Corrupt { field: "user_id" });
        }
        inner
            .identities
            .insert(identity.clone(), user_id.to_owned());
        inner.bump(user_id, RevokeScope::All);
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        let cell = match inner.users.get(record.user_id()) {
            Some(e) if !e.user.disabled && e.user.session_epoch == record.epoch() => {
                Arc::clone(&e.cell)
            }
            _ => return Err(StoreError::UserRefused),
        };
        if inner.sessions.contains_key(record.token_digest())
            || inner.session_ids.contains_key(record.id())
        {
            return Err(StoreError::Conflict { field: "id" });
        }
        inner
            .sessions
            .insert(*record.token_digest(), (record.clone(), cell));
        inner
            .session_ids
            .insert(record.id().into(), *record.token_digest());
        Ok(())
    }

    fn session_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreFuture<'_, Option<WithUser<SessionRecord>>> {
        StoreFuture::ready(self.read().map(|inner| {
            inner
                .sessions
                .get(digest)
                .map(|s| with_cell(s, EpochKind::Session))
        }))
    }

    async fn delete_session_by_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let Some((record, _)) = inner.sessions.remove(digest) else {
            return Ok(false);
        };
        inner.session_ids.remove(record.id());
        Ok(true)
    }

    async fn delete_session(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let Some(digest) = inner.session_ids.get(session_id).copied() else {
            return Ok(false);
        };
        if inner
            .sessions
            .get(&digest)
            .is_none_or(|(s, _)| s.user_id() != user_id)
        {
            return Ok(false);
        }
        inner.sessions.remove(&digest);
        inner.session_ids.remove(session_id);
        Ok(true)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let before = inner.sessions.len();
        inner.sessions.retain(|_, (s, _)| s.user_id() != user_id);
        inner.drop_stale_session_ids();
        Ok(u64::try_from(before - inner.sessions.len()).unwrap_or(u64::MAX))
    }

    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let before = inner.sessions.len();
        inner
            .sessions
            .retain(|_, (s, cell)| s.expires_at() > now && cell.session_epoch() == s.epoch());
        inner.drop_stale_session_ids();
        Ok(u64::try_from(before - inner.sessions.len()).unwrap_or(u64::MAX))
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut v: Vec<_> = self
            .read()?
            .sessions
            .values()
            .filter(|(s, _)| s.user_id() == user_id)
            .map(|(s, _)| s.clone())
            .collect();
        v.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(a.id().cmp(b.id())));
        Ok(v)
    }

    async fn set_session_mfa_at(
        &self,
        user_id: &str,
        session_id: &str,
        at: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let Some((record, _)) = inner
            .sessions
            .values_mut()
            .find(|(s, _)| s.id() == session_id && s.user_id() == user_id)
        else {
            return Ok(false);
        };
        *record = record.clone().with_mfa_at(Some(at));
        Ok(true)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        let (epoch, cell) = match inner.users.get(record.user_id()) {
            Some(UserEntry { user: u, cell })
                if !u.disabled
                    && record
                        .creator_session_epoch()
                        .is_none_or(|e| e == u.session_epoch) =>
            {
                (u.key_epoch, Arc::clone(cell))
            }
            _ => return Err(StoreError::UserRefused),
        };
        if inner.api_keys.contains_key(record.id()) {
            return Err(StoreError::Conflict { field: "id" });
        }
        inner
            .api_keys
            .insert(record.id().into(), (record.clone().with_epoch(epoch), cell));
        Ok(())
    }

    fn api_key<'a>(&'a self, key_id: &'a str) -> StoreFuture<'a, Option<WithUser<ApiKeyRecord>>> {
        StoreFuture::ready(self.read().map(|inner| {
            inner
                .api_keys
                .get(key_id)
                .map(|k| with_cell(k, EpochKind::ApiKey))
        }))
    }

    async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
        if let Some((k, _)) = self.write()?.api_keys.get_mut(key_id) {
            k.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn revoke_api_key(
        &self,
        user_id: &str,
        key_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        match inner.api_keys.get_mut(key_id) {
            Some((k, _)) if k.user_id() == user_id && k.revoked_at.is_none() => {
                k.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn user_api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut v: Vec<_> = self
            .read()?
            .api_keys
            .values()
            .filter(|(k, _)| k.user_id() == user_id)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(a.id().cmp(b.id())));
        Ok(v)
    }
}
