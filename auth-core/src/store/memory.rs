//! In-memory store: users, sessions and API keys in `HashMap`s behind one read-write lock
//! (resolutions only read, so concurrent requests do not queue behind each other). A
//! lookup reads the credential and its user under the same read guard, and every state
//! change with its epoch bump happens under one write guard, so the store is exactly as
//! atomic as the SQL ones. The
//! lookups on the request path answer without waiting ([`StoreFuture::ready`]) and hand
//! out records whose text is shared, so a resolution allocates nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use super::{StoreError, StoreFuture};
use crate::api_key::{ApiKeyRecord, ApiKeyStore};
use crate::session::{SessionRecord, SessionStore};
use crate::user::{EpochKind, RevokeScope, SsoIdentity, User, UserStore, WithUser};

/// An in-process store for tests, benchmarks and single-instance tools. Data is lost when
/// it is dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed like the API keys (user ids are chosen by this crate too): the session and
    /// API key lookups probe it on every request.
    users: HashMap<String, User, BuildHasherDefault<IdHasher>>,
    identities: HashMap<SsoIdentity, String>,
    sessions: HashMap<[u8; 32], SessionRecord, BuildHasherDefault<DigestHasher>>,
    api_keys: HashMap<Arc<str>, ApiKeyRecord, BuildHasherDefault<IdHasher>>,
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
    fn insert_user(&mut self, user: &User) -> Result<(), StoreError> {
        if self.users.contains_key(&user.id) {
            return Err(StoreError::Conflict { field: "id" });
        }
        if self.users.values().any(|u| u.email == user.email) {
            return Err(StoreError::Conflict { field: "email" });
        }
        self.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    /// Applies `revoke` to the user's epochs; `false` if there is no such user.
    fn bump(&mut self, user_id: &str, revoke: RevokeScope) -> bool {
        let Some(user) = self.users.get_mut(user_id) else {
            return false;
        };
        user.session_epoch = user.session_epoch.saturating_add(revoke.session_bump());
        user.key_epoch = user.key_epoch.saturating_add(revoke.key_bump());
        true
    }

    fn with_user<R>(&self, record: R, user_id: &str, kind: EpochKind) -> WithUser<R> {
        WithUser {
            record,
            user: self.users.get(user_id).map(|u| u.state(kind)),
        }
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
        Ok(self.read()?.users.get(user_id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .read()?
            .users
            .values()
            .find(|u| u.email == email)
            .cloned())
    }

    async fn set_password(
        &self,
        user_id: &str,
        expected: Option<&str>,
        password_hash: &str,
        must_change_password: bool,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let Some(user) = inner.users.get_mut(user_id) else {
            return Ok(false);
        };
        if user.password_hash.as_deref() != expected {
            return Ok(false);
        }
        user.password_hash = Some(password_hash.to_owned());
        user.must_change_password = must_change_password;
        Ok(inner.bump(user_id, revoke))
    }

    async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let Some(user) = inner.users.get_mut(user_id) else {
            return Ok(false);
        };
        user.disabled = disabled;
        if disabled {
            inner.bump(user_id, RevokeScope::All);
        }
        Ok(true)
    }

    async fn revoke_credentials(
        &self,
        user_id: &str,
        revoke: RevokeScope,
    ) -> Result<bool, StoreError> {
        Ok(self.write()?.bump(user_id, revoke))
    }

    async fn set_email_verified(&self, user_id: &str) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let Some(user) = inner.users.get_mut(user_id) else {
            return Ok(false);
        };
        user.email_verified = true;
        Ok(true)
    }

    async fn user_by_identity(&self, identity: &SsoIdentity) -> Result<Option<User>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .identities
            .get(identity)
            .and_then(|id| inner.users.get(id))
            .cloned())
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
        let admitted = inner
            .users
            .get(record.user_id())
            .is_some_and(|u| !u.disabled && u.session_epoch == record.epoch());
        if !admitted {
            return Err(StoreError::UserRefused);
        }
        if inner.sessions.contains_key(record.token_digest())
            || inner.sessions.values().any(|s| s.id() == record.id())
        {
            return Err(StoreError::Conflict { field: "id" });
        }
        inner
            .sessions
            .insert(*record.token_digest(), record.clone());
        Ok(())
    }

    fn session_by_digest(
        &self,
        digest: &[u8; 32],
    ) -> StoreFuture<'_, Option<WithUser<SessionRecord>>> {
        StoreFuture::ready(self.read().map(|inner| {
            inner.sessions.get(digest).map(|s| {
                let user_id = s.user_id();
                inner.with_user(s.clone(), user_id, EpochKind::Session)
            })
        }))
    }

    async fn delete_session_by_digest(&self, digest: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.write()?.sessions.remove(digest).is_some())
    }

    async fn delete_session(&self, user_id: &str, session_id: &str) -> Result<bool, StoreError> {
        let mut inner = self.write()?;
        let before = inner.sessions.len();
        inner
            .sessions
            .retain(|_, s| !(s.id() == session_id && s.user_id() == user_id));
        Ok(inner.sessions.len() < before)
    }

    async fn delete_user_sessions(&self, user_id: &str) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let before = inner.sessions.len();
        inner.sessions.retain(|_, s| s.user_id() != user_id);
        Ok(u64::try_from(before - inner.sessions.len()).unwrap_or(u64::MAX))
    }

    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let before = inner.sessions.len();
        let Inner {
            sessions, users, ..
        } = &mut *inner;
        sessions.retain(|_, s| {
            s.expires_at() > now
                && users
                    .get(s.user_id())
                    .is_some_and(|u| u.session_epoch == s.epoch())
        });
        Ok(u64::try_from(before - inner.sessions.len()).unwrap_or(u64::MAX))
    }

    async fn user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let mut v: Vec<_> = self
            .read()?
            .sessions
            .values()
            .filter(|s| s.user_id() == user_id)
            .cloned()
            .collect();
        v.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(a.id().cmp(b.id())));
        Ok(v)
    }
}

#[async_trait]
impl ApiKeyStore for MemoryStore {
    async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        let epoch = match inner.users.get(record.user_id()) {
            Some(u)
                if !u.disabled
                    && record
                        .creator_session_epoch()
                        .is_none_or(|e| e == u.session_epoch) =>
            {
                u.key_epoch
            }
            _ => return Err(StoreError::UserRefused),
        };
        if inner.api_keys.contains_key(record.id()) {
            return Err(StoreError::Conflict { field: "id" });
        }
        inner
            .api_keys
            .insert(record.id().into(), record.clone().with_epoch(epoch));
        Ok(())
    }

    fn api_key<'a>(&'a self, key_id: &'a str) -> StoreFuture<'a, Option<WithUser<ApiKeyRecord>>> {
        StoreFuture::ready(self.read().map(|inner| {
            inner.api_keys.get(key_id).map(|k| {
                let user_id = k.user_id();
                inner.with_user(k.clone(), user_id, EpochKind::ApiKey)
            })
        }))
    }

    async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
        if let Some(k) = self.write()?.api_keys.get_mut(key_id) {
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
            Some(k) if k.user_id() == user_id && k.revoked_at.is_none() => {
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
            .filter(|k| k.user_id() == user_id)
            .cloned()
            .collect();
        v.sort_by(|a, b| b.created_at().cmp(&a.created_at()).then(a.id().cmp(b.id())));
        Ok(v)
    }
}
