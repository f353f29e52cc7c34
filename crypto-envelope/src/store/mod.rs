//! Storage of sealed secrets: the [`SecretStore`] trait and its memory, SQLite and
//! PostgreSQL implementations. A store holds sealed blobs and metadata only; sealing,
//! opening and name resolution live in [`Secrets`](crate::Secrets).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "postgres")]
pub use sql::PgStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteStore;

/// Longest owner id, scope or secret name, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// Which secret: an owner's own (`scope` is `None`) or an owner's override for one
/// scope, such as one bot or agent.
// Holds no secret: owner, scope and name are ids, never the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    owner: String,
    scope: Option<String>,
    name: String,
}

impl SecretRef {
    /// An owner's own secret.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for an empty or over-long owner, or a name outside
    /// `A-Z a-z 0-9 _ . -`.
    pub fn owner(owner: &str, name: &str) -> Result<Self, StoreError> {
        Self::new(owner, None, name)
    }

    /// An owner's override of `name` for `scope`.
    ///
    /// # Errors
    /// As [`SecretRef::owner`], and for an empty or over-long scope.
    pub fn scoped(owner: &str, scope: &str, name: &str) -> Result<Self, StoreError> {
        Self::new(owner, Some(scope), name)
    }

    fn new(owner: &str, scope: Option<&str>, name: &str) -> Result<Self, StoreError> {
        check_id("owner", owner)?;
        if let Some(scope) = scope {
            check_id("scope", scope)?;
        }
        check_name(name)?;
        Ok(Self {
            owner: owner.to_owned(),
            scope: scope.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// The owner.
    pub fn owner_id(&self) -> &str {
        &self.owner
    }

    /// The scope, for an override.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The scope as stored: `''` for the owner's own secret.
    fn scope_column(&self) -> &str {
        self.scope.as_deref().unwrap_or("")
    }
}

pub(crate) fn check_id(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(StoreError::InvalidId {
            field,
            reason: "expected 1 to 255 bytes without control characters",
        });
    }
    Ok(())
}

pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_ID_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId {
            field: "name",
            reason: "expected 1 to 255 characters of A-Z a-z 0-9 _ . -",
        })
    }
}

/// What a listing shows of a secret: never its value.
// Holds no secret: name, scope, key label and timestamps only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMeta {
    /// The secret's name.
    pub name: String,
    /// The scope, for an override.
    pub scope: Option<String>,
    /// The backend and key that wrap its data key, as `backend:key-id/vN`.
    pub key: String,
    /// When it was first stored, in unix seconds.
    pub created_at: i64,
    /// When it was last replaced, in unix seconds.
    pub updated_at: i64,
}

/// A stored secret: its metadata and sealed bytes. The sealed bytes are ciphertext, but
/// `Debug` shows only their length, so logs never carry them.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    /// The metadata.
    pub meta: SecretMeta,
    /// The sealed binary form.
    pub sealed: Vec<u8>,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("meta", &self.meta)
            .field("sealed_len", &self.sealed.len())
            .finish()
    }
}

/// One row handed to a bulk re-wrap. `Debug` shows the sealed bytes' length only.
///
/// A row whose owner, scope or name no longer pass validation (written by an older
/// version, or by hand) is still handed over, with `secret` set to `None`, so that a
/// bulk re-wrap can report it by id and move past it instead of stopping at its page.
#[derive(Clone, PartialEq, Eq)]
pub struct RewrapRow {
    /// The row's position in the store's stable order: the resume cursor.
    pub row_id: i64,
    /// Which secret; `None` when the stored owner, scope or name fail validation.
    pub secret: Option<SecretRef>,
    /// The sealed bytes as read (empty when the column could not be read).
    pub sealed: Vec<u8>,
    /// The row's wrapping-key label as stored (`backend:key-id/vN`).
    pub key: String,
}

impl fmt::Debug for RewrapRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewrapRow")
            .field("row_id", &self.row_id)
            .field("secret", &self.secret)
            .field("sealed_len", &self.sealed.len())
            .field("key", &self.key)
            .finish()
    }
}

/// How many rows a store holds under one wrapping-key label: the answer of
/// [`SecretStore::count_by_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCount {
    /// The label as stored: `backend:key-id/vN` (see [`KeyCount::parse`]).
    pub key: String,
    /// Rows under it.
    pub rows: u64,
}

impl KeyCount {
    /// The backend id and key a label names: the backend id runs to the first `:`
    /// (backend ids hold no `:`), the version follows the last `/v`, and the key id is
    /// what lies between. `None` for a label that does not have this shape.
    pub fn parse(&self) -> Option<(&str, crate::KeyRef<'_>)> {
        let (backend, rest) = self.key.split_once(':')?;
        let (id, version) = rest.rsplit_once("/v")?;
        let canonical = !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
            && (version == "0" || !version.starts_with('0'));
        if !canonical
            || !crate::format::valid_backend_id(backend.as_bytes())
            || !crate::format::valid_key_id(id.as_bytes())
        {
            return None;
        }
        Some((backend, crate::KeyRef::new(id, version.parse().ok()?)))
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An owner, scope or name was refused before reaching the store.
    #[error("invalid {field}: {reason}")]
    InvalidId {
        /// Which part.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The store could not be reached or failed; retry later (HTTP 503).
    #[error("secret store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored row does not have the shape this version writes.
    #[error("secret store row is corrupt: {field}")]
    Corrupt {
        /// The column at fault.
        field: &'static str,
    },
}

/// Storage of sealed secrets, scoped by owner.
///
/// # Contract
/// - Every per-owner call touches only rows of the `owner` it is given: no owner can
///   read, list, overwrite or delete another's.
/// - Stores hold sealed bytes and metadata only; they never see plaintext.
/// - An outage is [`StoreError::Unavailable`], never an empty answer.
/// - [`SecretStore::rewrap_page`], [`SecretStore::replace_sealed`] and
///   [`SecretStore::count_by_key`] cross owners: they are operator maintenance for a bulk
///   re-wrap, not for request paths.
/// - The key label stored with a row is the one its writer gave ([`key_label`] of the
///   sealed value's header); a bulk re-wrap counts rows by it, and corrects it when it
///   disagrees with the sealed bytes.
#[async_trait]
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// Stores or replaces a sealed secret; `key` is the metadata label of its wrapping
    /// key; `now` is unix seconds.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn put(
        &self,
        secret: &SecretRef,
        sealed: &[u8],
        key: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Reads one sealed secret.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    async fn get(&self, secret: &SecretRef) -> Result<Option<StoredSecret>, StoreError>;

    /// Lists an owner's secrets and overrides, sorted by scope then name: metadata only.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    async fn list(&self, owner: &str) -> Result<Vec<SecretMeta>, StoreError>;

    /// Deletes one secret; whether it existed.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn delete(&self, secret: &SecretRef) -> Result<bool, StoreError>;

    /// Up to `limit` rows with a row id above `after`, in ascending row id order. A row
    /// whose ids or columns do not validate is returned all the same (see
    /// [`RewrapRow::secret`]): one bad row must never stop a page.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Corrupt`] only for a row id that does
    /// not read.
    async fn rewrap_page(&self, after: i64, limit: u32) -> Result<Vec<RewrapRow>, StoreError>;

    /// Replaces a row's sealed bytes only if they still equal `expected` (so that a
    /// concurrent update is never overwritten); whether it replaced them.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn replace_sealed(
        &self,
        row_id: i64,
        expected: &[u8],
        sealed: &[u8],
        key: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// How many rows the store holds under each wrapping-key label, every owner
    /// included, in ascending label order: the final check of a bulk re-wrap.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    async fn count_by_key(&self) -> Result<Vec<KeyCount>, StoreError>;
}

/// The metadata label of a wrapping key, as stores keep it: `backend:key-id/vN`.
pub fn key_label(backend: &str, key: &crate::KeyRef<'_>) -> String {
    format!("{backend}:{key}")
}

#[derive(Clone)]
struct MemoryRow {
    id: i64,
    sealed: Vec<u8>,
    key: String,
    created_at: i64,
    updated_at: i64,
}

/// An in-memory [`SecretStore`], for tests and single-process development.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    next_id: i64,
    rows: BTreeMap<SecretRef, MemoryRow>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

fn meta(secret: &SecretRef, row: &MemoryRow) -> SecretMeta {
    SecretMeta {
        name: secret.name.clone(),
        scope: secret.scope.clone(),
        key: row.key.clone(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn put(
        &self,
        secret: &SecretRef,
        sealed: &[u8],
        key: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.next_id += 1;
        let id = inner.next_id;
        inner
            .rows
            .entry(secret.clone())
            .and_modify(|row| {
                row.sealed = sealed.to_vec();
                row.key = key.to_owned();
                row.updated_at = now;
            })
            .or_insert_with(|| MemoryRow {
                id,
                sealed: sealed.to_vec(),
                key: key.to_owned(),
                created_at: now,
                updated_at: now,
            });
        Ok(())
    }

    async fn get(&self, secret: &SecretRef) -> Result<Option<StoredSecret>, StoreError> {
        Ok(self.lock()?.rows.get(secret).map(|row| StoredSecret {
            meta: meta(secret, row),
            sealed: row.sealed.clone(),
        }))
    }

    async fn list(&self, owner: &str) -> Result<Vec<SecretMeta>, StoreError> {
        let inner = self.lock()?;
        let mut out: Vec<SecretMeta> = inner
            .rows
            .iter()
            .filter(|(s, _)| s.owner == owner)
            .map(|(s, row)| meta(s, row))
            .collect();
        out.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
        Ok(out)
    }

    async fn delete(&self, secret: &SecretRef) -> Result<bool, StoreError> {
        Ok(self.lock()?.rows.remove(secret).is_some())
    }

    async fn rewrap_page(&self, after: i64, limit: u32) -> Result<Vec<RewrapRow>, StoreError> {
        let inner = self.lock()?;
        let mut rows: Vec<RewrapRow> = inner
            .rows
            .iter()
            .filter(|(_, row)| row.id > after)
            .map(|(s, row)| RewrapRow {
                row_id: row.id,
                secret: Some(s.clone()),
                sealed: row.sealed.clone(),
                key: row.key.clone(),
            })
            .collect();
        rows.sort_by_key(|r| r.row_id);
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn replace_sealed(
        &self,
        row_id: i64,
        expected: &[u8],
        sealed: &[u8],
        key: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let row = inner
            .rows
            .values_mut()
            .find(|row| row.id == row_id && row.sealed == expected);
        Ok(match row {
            Some(row) => {
                row.sealed = sealed.to_vec();
                row.key = key.to_owned();
                row.updated_at = now;
                true
            }
            None => false,
        })
    }

    async fn count_by_key(&self) -> Result<Vec<KeyCount>, StoreError> {
        let inner = self.lock()?;
        let mut counts = BTreeMap::<&str, u64>::new();
        for row in inner.rows.values() {
            *counts.entry(row.key.as_str()).or_default() += 1;
        }
        Ok(counts
            .into_iter()
            .map(|(key, rows)| KeyCount {
                key: key.to_owned(),
                rows,
            })
            .collect())
    }
}
