//! API keys: `ak_<key id>_<secret>`, stored as the key id plus the secret's SHA-256.
//!
//! The key id is 32 lower-case hex characters (128 random bits, not secret); the secret
//! is 43 base64url characters (256 random bits). [`ApiKeys::create`] returns the full key
//! once; afterwards only its digest exists. Resolution looks the record up by id, then
//! compares the digest of the presented secret in constant time.

use core::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::chain::{Refusal, Resolution, ResolveFuture, Resolver};
use crate::credential::{Credential, CredentialKind};
use crate::principal::{AuthMethod, Principal};
use crate::secret::{self, Digest, RandomError};
use crate::store::{StoreError, StoreFuture};
use crate::user::{Admission, WithUser, admit};

/// The prefix of every API key.
pub const API_KEY_PREFIX: &str = "ak_";
/// Length of the hex key id.
pub const KEY_ID_LEN: usize = 32;
/// Length of the base64url secret.
pub const KEY_SECRET_LEN: usize = 43;
/// Longest accepted key name.
pub const MAX_KEY_NAME_LEN: usize = 100;
/// Most scopes on one key.
pub const MAX_SCOPES: usize = 32;
/// Longest scope.
pub const MAX_SCOPE_LEN: usize = 64;
/// Last-used times are written at most this often per key (seconds).
pub const LAST_USED_GRANULARITY: i64 = 60;

/// Refusal: not a well-formed `ak_` key.
pub const API_KEY_MALFORMED: Refusal = Refusal::new("api_key.malformed");
/// Refusal: no key with this id.
pub const API_KEY_UNKNOWN: Refusal = Refusal::new("api_key.unknown");
/// Refusal: the secret does not match.
pub const API_KEY_MISMATCH: Refusal = Refusal::new("api_key.mismatch");
/// Refusal: the key was revoked.
pub const API_KEY_REVOKED: Refusal = Refusal::new("api_key.revoked");
/// Refusal: the key store failed.
pub const API_KEY_STORE_UNAVAILABLE: Refusal = Refusal::new("api_key.store_unavailable");

/// A newly created API key, returned once. Wiped on drop; `Debug` prints the key id only.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct NewApiKey {
    key: String,
    #[zeroize(skip)]
    key_id: String,
}

impl NewApiKey {
    /// The full key to show the user once.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.key
    }

    /// The non-secret key id.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A stored API key: the principal it authenticates (user id, key id, scopes), a name,
/// the SHA-256 of the secret part (never the secret), creation, last-use and revocation
/// times.
///
/// The principal is built once, when the record is made; cloning a record (as the
/// in-memory store does on every lookup) and handing out its principal allocate nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    principal: Principal,
    name: Arc<str>,
    secret_digest: [u8; 32],
    created_at: i64,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) epoch: i64,
    creator_session_epoch: Option<i64>,
}

impl ApiKeyRecord {
    /// A new, never-used, unrevoked record: key `id` (32 hex characters) of `user_id`,
    /// labelled `name`, whose secret part has the SHA-256 `secret_digest`.
    #[must_use]
    pub fn new(
        id: impl Into<Box<str>>,
        user_id: impl Into<Box<str>>,
        name: impl Into<Arc<str>>,
        secret_digest: [u8; 32],
        scopes: impl Into<Box<[String]>>,
        created_at: i64,
    ) -> Self {
        Self {
            principal: Principal::new(user_id, AuthMethod::ApiKey)
                .with_credential_id(id)
                .with_scopes(scopes),
            name: name.into(),
            secret_digest,
            created_at,
            last_used_at: None,
            revoked_at: None,
            epoch: 0,
            creator_session_epoch: None,
        }
    }

    /// Requires, for the insert, that the user's session epoch is still `epoch` (the epoch
    /// of the session creating the key); not stored. See [`ApiKeys::create_for`].
    #[must_use]
    pub fn with_creator_session_epoch(mut self, epoch: i64) -> Self {
        self.creator_session_epoch = Some(epoch);
        self
    }

    /// The session epoch the insert requires, if any
    /// ([`ApiKeyRecord::with_creator_session_epoch`]).
    #[must_use]
    pub fn creator_session_epoch(&self) -> Option<i64> {
        self.creator_session_epoch
    }

    /// Sets the user's key epoch the key was stamped with (for stores loading a record).
    #[must_use]
    pub fn with_epoch(mut self, epoch: i64) -> Self {
        self.epoch = epoch;
        self
    }

    /// The user's API key epoch when the key was created (see
    /// [`User::key_epoch`](crate::User::key_epoch)): the key resolves only while the user
    /// is still at this epoch.
    #[must_use]
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Sets the last-use time (for stores loading a record).
    #[must_use]
    pub fn with_last_used_at(mut self, at: Option<i64>) -> Self {
        self.last_used_at = at;
        self
    }

    /// Sets the revocation time (for stores loading a record).
    #[must_use]
    pub fn with_revoked_at(mut self, at: Option<i64>) -> Self {
        self.revoked_at = at;
        self
    }

    /// The key id (32 hex characters).
    #[must_use]
    pub fn id(&self) -> &str {
        // `new` always sets it.
        self.principal.credential_id().unwrap_or_default()
    }

    /// The owning user.
    #[must_use]
    pub fn user_id(&self) -> &str {
        self.principal.user_id()
    }

    /// The label chosen by the user.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the secret part.
    #[must_use]
    pub fn secret_digest(&self) -> &[u8; 32] {
        &self.secret_digest
    }

    /// Scopes (empty: none).
    #[must_use]
    pub fn scopes(&self) -> &[String] {
        self.principal.scopes()
    }

    /// Creation time, Unix seconds.
    #[must_use]
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// Last successful use, Unix seconds (minute granularity).
    #[must_use]
    pub fn last_used_at(&self) -> Option<i64> {
        self.last_used_at
    }

    /// Revocation time, Unix seconds.
    #[must_use]
    pub fn revoked_at(&self) -> Option<i64> {
        self.revoked_at
    }

    /// The principal the key authenticates as (unless revoked).
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id())
            .field("user_id", &self.user_id())
            .field("scopes", &self.scopes())
            .field("last_used_at", &self.last_used_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Where API keys live.
///
/// # Security contract
///
/// * Only the secret's digest is stored.
/// * [`ApiKeyStore::revoke_api_key`] and [`ApiKeyStore::user_api_keys`] are scoped by the
///   owning user id.
/// * Errors are [`StoreError`]s, never "not found".
///
/// [`ApiKeyStore::api_key`] runs on every request that presents an API key, so it
/// returns a [`StoreFuture`] instead of being an `async fn`: an in-process store answers
/// with [`StoreFuture::ready`] and costs no allocation; a database store wraps its query
/// in [`StoreFuture::boxed`].
#[async_trait]
pub trait ApiKeyStore: Send + Sync + fmt::Debug {
    /// Inserts a key, stamped with its user's **current** key epoch read in the same
    /// statement (the record's own [`ApiKeyRecord::epoch`] is ignored), only if the user
    /// exists and is enabled, and, when [`ApiKeyRecord::creator_session_epoch`] is set,
    /// only if the user's session epoch still equals it (checked in the same statement). Its id must be random, as [`ApiKeys::create`] makes it,
    /// never one a client chose (stores may index ids with an unkeyed hash).
    ///
    /// # Errors
    ///
    /// [`StoreError::UserRefused`] for an unknown or disabled user, or a creator session
    /// that has ended; [`StoreError`].
    async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError>;

    /// The key with this id, with its user's state (disabled, must-change flag, current
    /// key epoch) read **in the same query or under the same lock**; the future fails
    /// with a [`StoreError`].
    fn api_key<'a>(&'a self, key_id: &'a str) -> StoreFuture<'a, Option<WithUser<ApiKeyRecord>>>;

    /// Records a use at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn touch_api_key(&self, key_id: &str, now: i64) -> Result<(), StoreError>;

    /// Revokes key `key_id` if it belongs to `user_id` and is not yet revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn revoke_api_key(
        &self,
        user_id: &str,
        key_id: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The user's keys, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    async fn user_api_keys(&self, user_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;
}

/// Why a key could not be created. Names the field, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The name is empty or too long.
    #[error("name must be 1 to {MAX_KEY_NAME_LEN} printable characters")]
    InvalidName,
    /// Too many scopes, or a scope outside the vocabulary
    /// ([`Scope`](crate::scope::Scope): `read`, `trade`, `manage`).
    #[error("scopes: at most {MAX_SCOPES}, each one of read, trade, manage")]
    InvalidScopes,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The random generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Creates, lists and revokes API keys; also the API key [`Resolver`].
///
/// As a resolver it claims `X-API-Key` credentials and bearer tokens starting with `ak_`.
#[derive(Clone, Debug)]
pub struct ApiKeys {
    store: Arc<dyn ApiKeyStore>,
}

impl ApiKeys {
    /// Keys kept in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        Self { store }
    }

    /// Creates a key for `user_id`. The returned [`NewApiKey`] is the only copy of the
    /// secret.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError`].
    pub async fn create(
        &self,
        user_id: &str,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<NewApiKey, ApiKeyError> {
        self.insert(user_id, None, name, scopes).await
    }

    /// Creates a key for the authenticated `principal`'s user. For a session principal the
    /// key is stored only while the user's session epoch is still the session's (in the
    /// same statement as the insert): a request whose session is ended (sign out
    /// everywhere, disable, password change or reset, SSO link) after it was
    /// authenticated but before the key is written gets
    /// [`StoreError::UserRefused`] instead of a key that outlives the session.
    ///
    /// # Errors
    ///
    /// [`ApiKeyError`].
    pub async fn create_for(
        &self,
        principal: &Principal,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<NewApiKey, ApiKeyError> {
        self.insert(principal.user_id(), principal.session_epoch(), name, scopes)
            .await
    }

    async fn insert(
        &self,
        user_id: &str,
        creator_session_epoch: Option<i64>,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<NewApiKey, ApiKeyError> {
        if name.is_empty()
            || name.chars().count() > MAX_KEY_NAME_LEN
            || name.chars().any(char::is_control)
        {
            return Err(ApiKeyError::InvalidName);
        }
        if scopes.len() > MAX_SCOPES || !scopes.iter().all(|s| valid_scope(s)) {
            return Err(ApiKeyError::InvalidScopes);
        }
        let key_id = secret::random_id()?;
        let secret_part = secret::random_secret_b64()?;
        let mut record = ApiKeyRecord::new(
            key_id.clone(),
            user_id,
            name,
            secret::sha256(secret_part.as_bytes()),
            scopes,
            secret::now_unix(),
        );
        if let Some(epoch) = creator_session_epoch {
            record = record.with_creator_session_epoch(epoch);
        }
        self.store.insert_api_key(&record).await?;
        let mut key = String::with_capacity(API_KEY_PREFIX.len() + KEY_ID_LEN + 1 + KEY_SECRET_LEN);
        key.push_str(API_KEY_PREFIX);
        key.push_str(&key_id);
        key.push('_');
        key.push_str(&secret_part);
        tracing::info!(code = "api_key.created", key_id = %key_id, user_id, "api key created");
        Ok(NewApiKey { key, key_id })
    }

    /// Revokes key `key_id` of `user_id`. Returns whether a key was revoked.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn revoke(&self, user_id: &str, key_id: &str) -> Result<bool, StoreError> {
        let revoked = self
            .store
            .revoke_api_key(user_id, key_id, secret::now_unix())
            .await?;
        tracing::info!(
            code = "api_key.revoked",
            key_id,
            user_id,
            revoked,
            "api key revoked"
        );
        Ok(revoked)
    }

    /// The user's keys (digests only).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn list(&self, user_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store.user_api_keys(user_id).await
    }

    /// Resolves a presented key: parse, hash the secret part, look the record up by id.
    fn check<'a>(&'a self, key: &'a str) -> ResolveFuture<'a> {
        let Some((key_id, secret_part)) = parse_key(key) else {
            return ResolveFuture::ready(Resolution::Invalid(API_KEY_MALFORMED));
        };
        let presented = secret::sha256(secret_part.as_bytes());
        self.store
            .api_key(key_id)
            .then(move |found| self.authorize(found, &presented))
    }

    /// The decision on a key whose secret part hashes to `presented`, given what the
    /// store found; records the use when the last one is older than
    /// [`LAST_USED_GRANULARITY`] (the only step that may wait).
    fn authorize(
        &self,
        found: Result<Option<WithUser<ApiKeyRecord>>, StoreError>,
        presented: &Digest,
    ) -> ResolveFuture<'_> {
        let WithUser { record, user } = match found {
            Err(e) => {
                tracing::warn!(code = API_KEY_STORE_UNAVAILABLE.code(), error = %e, "api key store failed");
                return ResolveFuture::ready(Resolution::Unavailable(API_KEY_STORE_UNAVAILABLE));
            }
            Ok(None) => return ResolveFuture::ready(Resolution::Invalid(API_KEY_UNKNOWN)),
            Ok(Some(r)) => r,
        };
        if !secret::digest_eq(&record.secret_digest, presented) {
            return ResolveFuture::ready(Resolution::Invalid(API_KEY_MISMATCH));
        }
        if record.revoked_at.is_some() {
            return ResolveFuture::ready(Resolution::Invalid(API_KEY_REVOKED));
        }
        let last_used_at = record.last_used_at;
        let principal = match admit(user.as_ref(), record.epoch) {
            Ok(Admission::Full) => record.principal,
            Ok(_) => record.principal.with_restricted(true),
            Err(refusal) => return ResolveFuture::ready(Resolution::Invalid(refusal)),
        };
        // The cheap clock decides whether to write; the rare write stamps the precise time.
        let recently_used = last_used_at.is_some_and(|t| {
            secret::now_unix_for_expiry().saturating_sub(t) < LAST_USED_GRANULARITY
        });
        if recently_used {
            return ResolveFuture::ready(Resolution::Authenticated(principal));
        }
        ResolveFuture::boxed(async move {
            // Bookkeeping only: a failed write does not change the decision.
            let key_id = principal.credential_id().unwrap_or_default();
            if let Err(e) = self.store.touch_api_key(key_id, secret::now_unix()).await {
                tracing::warn!(code = "api_key.touch_failed", key_id, error = %e, "last-used update failed");
            }
            Resolution::Authenticated(principal)
        })
    }
}

impl Resolver for ApiKeys {
    fn resolve<'a>(&'a self, cred: &'a Credential) -> ResolveFuture<'a> {
        match cred.kind() {
            CredentialKind::ApiKey => self.check(cred.expose_secret()),
            CredentialKind::Bearer if cred.expose_secret().starts_with(API_KEY_PREFIX) => {
                self.check(cred.expose_secret())
            }
            _ => ResolveFuture::ready(Resolution::Pass),
        }
    }
}

/// Splits `ak_<id>_<secret>`, checking lengths and alphabets.
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    if rest.len() != KEY_ID_LEN + 1 + KEY_SECRET_LEN {
        return None;
    }
    let (id, tail) = rest.split_at_checked(KEY_ID_LEN)?;
    let secret_part = tail.strip_prefix('_')?;
    let id_bytes: &[u8; KEY_ID_LEN] = id.as_bytes().try_into().ok()?;
    let secret_bytes: &[u8; KEY_SECRET_LEN] = secret_part.as_bytes().try_into().ok()?;
    // Every byte is checked (no early exit, so the time does not depend on where a bad
    // character is) with branch-free comparisons over fixed-size arrays, which the
    // compiler turns into vector code.
    let id_ok = id_bytes.iter().fold(true, |ok, &b| ok & is_hex_lower(b));
    let secret_ok = secret_bytes
        .iter()
        .fold(true, |ok, &b| ok & secret::is_base64url(b));
    (id_ok & secret_ok).then_some((id, secret_part))
}

/// `[0-9a-f]`, branch-free.
const fn is_hex_lower(b: u8) -> bool {
    (b.wrapping_sub(b'0') < 10) | (b.wrapping_sub(b'a') < 6)
}

/// A scope of the vocabulary ([`Scope`](crate::scope::Scope)): a key can only be given
/// scopes that some route can declare.
fn valid_scope(s: &str) -> bool {
    s.len() <= MAX_SCOPE_LEN && crate::scope::Scope::parse(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious byte-by-byte definition of a well-formed key, to check the table.
    fn reference(key: &str) -> Option<(&str, &str)> {
        let rest = key.strip_prefix(API_KEY_PREFIX)?;
        if rest.len() != KEY_ID_LEN + 1 + KEY_SECRET_LEN {
            return None;
        }
        let (id, tail) = rest.split_at_checked(KEY_ID_LEN)?;
        let secret_part = tail.strip_prefix('_')?;
        let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let secret_ok = secret_part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok).then_some((id, secret_part))
    }

    #[test]
    fn is_hex_lower_matches_its_definition_for_every_byte() {
        let mut hex = 0;
        for b in 0u8..=255 {
            assert_eq!(
                is_hex_lower(b),
                matches!(b, b'0'..=b'9' | b'a'..=b'f'),
                "byte {b}"
            );
            hex += usize::from(is_hex_lower(b));
        }
        assert_eq!(hex, 16);
    }

    #[test]
    fn parse_key_agrees_with_reference_for_every_byte_at_every_position() {
        let good = format!(
            "{API_KEY_PREFIX}{}_{}",
            "0123456789abcdef0123456789abcdef", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_0"
        );
        assert_eq!(
            parse_key(&good),
            Some((
                "0123456789abcdef0123456789abcdef",
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn-_0"
            ))
        );
        let mut accepted = 0usize;
        let mut refused = 0usize;
        for pos in 0..good.len() {
            for b in 0u8..=127 {
                let mut bytes = good.clone().into_bytes();
                bytes[pos] = b;
                let key = String::from_utf8(bytes).unwrap();
                let got = parse_key(&key);
                assert_eq!(got, reference(&key), "byte {b} at {pos}");
                if got.is_some() {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
        // Both outcomes occur (the comparison above is not vacuous).
        assert!(accepted > 0 && refused > 0);
        // Non-ASCII and wrong lengths are refused.
        assert_eq!(parse_key(&good.replacen('a', "é", 1)), None);
        assert_eq!(parse_key(&good[..good.len() - 1]), None);
        assert_eq!(parse_key(&format!("{good}A")), None);
    }
}
