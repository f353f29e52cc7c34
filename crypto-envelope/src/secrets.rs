//! [`Secrets`]: an [`Envelope`] over a [`SecretStore`], with name resolution.
//!
//! Every secret is sealed under the context `strongroom.kind=secret, owner, scope, name`,
//! so a sealed blob opens only in the row it was written for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::context::EncryptionContext;
use crate::envelope::Envelope;
use crate::error::Error;
use crate::secret::Plaintext;
use crate::store::{SecretMeta, SecretRef, SecretStore, StoreError, check_name, key_label};

/// Why a [`Secrets`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// The store failed or refused an id.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Sealing or opening failed.
    #[error(transparent)]
    Envelope(#[from] Error),
}

impl SecretsError {
    /// Whether the caller should answer "unavailable" (HTTP 503): a store or backend
    /// outage.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Store(StoreError::Unavailable(_)) => true,
            Self::Envelope(e) => e.is_unavailable(),
            _ => false,
        }
    }

    /// Whether a stored value names a key or backend this envelope was not configured
    /// with ([`Error::is_configuration`]): the deployment's key configuration, not the
    /// value nor an outage, is at fault; an operator must act.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Envelope(e) if e.is_configuration())
    }

    /// A stable code for logs and audit: `secrets.store` for a store failure, else the
    /// envelope's [`Error::code`].
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(_) => "secrets.store",
            Self::Envelope(e) => e.code(),
        }
    }

    /// The HTTP status a service answers: the envelope's [`Error::status`] (500 for a
    /// configuration error, else 503), 503 for a store failure.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::Store(_) => http::StatusCode::SERVICE_UNAVAILABLE,
            Self::Envelope(e) => e.status(),
        }
    }
}

/// Where a resolved secret came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// An ephemeral per-call override: never stored.
    Ephemeral,
    /// The owner's override for the scope.
    Scope,
    /// The owner's own secret.
    Owner,
    /// The process environment (allowlisted names only).
    Environment,
}

/// A resolved secret and where it came from.
#[derive(Debug)]
pub struct Resolved {
    /// The value.
    pub value: Plaintext,
    /// Where it came from.
    pub source: Source,
}

/// Per-call overrides that win over everything stored and are never stored.
#[derive(Default)]
pub struct Ephemeral {
    values: BTreeMap<String, Plaintext>,
}

impl Ephemeral {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an override.
    ///
    /// # Errors
    /// [`StoreError::InvalidId`] for a malformed name.
    pub fn insert(&mut self, name: &str, value: Plaintext) -> Result<(), StoreError> {
        check_name(name)?;
        self.values.insert(name.to_owned(), value);
        Ok(())
    }
}

impl fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ephemeral")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Sealed secrets per owner, with scope overrides and resolution.
#[derive(Clone)]
pub struct Secrets {
    envelope: Envelope,
    store: Arc<dyn SecretStore>,
    env_allowlist: Arc<BTreeSet<String>>,
    env_lookup: Arc<EnvLookup>,
}

impl Secrets {
    /// Secrets sealed by `envelope` and kept in `store`. No environment fallback until
    /// [`Secrets::with_env_allowlist`] names some variables.
    pub fn new(envelope: Envelope, store: Arc<dyn SecretStore>) -> Self {
        Self {
            envelope,
            store,
            env_allowlist: Arc::new(BTreeSet::new()),
            env_lookup: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// Lets resolution fall back to the process environment, for these names only.
    pub fn with_env_allowlist<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env_allowlist = Arc::new(names.into_iter().map(Into::into).collect());
        self
    }

    /// Replaces how environment variables are read (for tests and embedding services
    /// with their own configuration source).
    pub fn with_env_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env_lookup = Arc::new(lookup);
        self
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    /// The encryption context a secret is sealed under.
    ///
    /// # Errors
    /// Only if the ids break the context limits, which [`SecretRef`] already enforces.
    pub fn context(secret: &SecretRef) -> Result<EncryptionContext, Error> {
        EncryptionContext::new()
            .with("strongroom.kind", "secret")
            .and_then(|c| c.with("owner", secret.owner_id()))
            .and_then(|c| c.with("scope", secret.scope().unwrap_or("")))
            .and_then(|c| c.with("name", secret.name()))
            .map_err(|_| Error::Malformed { field: "secret id" })
    }

    /// Seals and stores a secret, replacing any previous value.
    ///
    /// # Errors
    /// [`SecretsError`].
    pub async fn put(&self, secret: &SecretRef, value: &[u8]) -> Result<(), SecretsError> {
        let sealed = self.envelope.seal(value, &Self::context(secret)?).await?;
        let key = key_label(sealed.backend(), sealed.key());
        self.store
            .put(secret, &sealed.to_bytes(), &key, unix_now())
            .await?;
        Ok(())
    }

    /// Reads and opens one secret.
    ///
    /// # Errors
    /// [`SecretsError`]; a blob that does not open in this row is
    /// [`Error::Refused`].
    pub async fn get(&self, secret: &SecretRef) -> Result<Option<Plaintext>, SecretsError> {
        let Some(stored) = self.store.get(secret).await? else {
            return Ok(None);
        };
        let value = self
            .envelope
            .open(&stored.sealed, &Self::context(secret)?)
            .await?;
        Ok(Some(value))
    }

    /// Lists an owner's secrets: names and metadata, never values.
    ///
    /// # Errors
    /// [`SecretsError`].
    pub async fn list(&self, owner: &str) -> Result<Vec<SecretMeta>, SecretsError> {
        crate::store::check_id("owner", owner)?;
        Ok(self.store.list(owner).await?)
    }

    /// Deletes one secret; whether it existed.
    ///
    /// # Errors
    /// [`SecretsError`].
    pub async fn delete(&self, secret: &SecretRef) -> Result<bool, SecretsError> {
        Ok(self.store.delete(secret).await?)
    }

    /// Resolves `name` for `owner` (and `scope`, if given), in this order: an
    /// `ephemeral` override, the owner's override for the scope, the owner's own secret,
    /// then the process environment if the name is allowlisted. `None` when nothing has
    /// it.
    ///
    /// A stored value that fails to open is an error, never a fall-through to the next
    /// source.
    ///
    /// # Errors
    /// [`SecretsError`].
    pub async fn resolve(
        &self,
        owner: &str,
        scope: Option<&str>,
        name: &str,
        ephemeral: &Ephemeral,
    ) -> Result<Option<Resolved>, SecretsError> {
        let own = SecretRef::owner(owner, name)?;
        let scoped = scope
            .map(|s| SecretRef::scoped(owner, s, name))
            .transpose()?;
        if let Some(value) = ephemeral.values.get(name) {
            return Ok(Some(Resolved {
                value: value.clone(),
                source: Source::Ephemeral,
            }));
        }
        if let Some(scoped) = scoped
            && let Some(value) = self.get(&scoped).await?
        {
            return Ok(Some(Resolved {
                value,
                source: Source::Scope,
            }));
        }
        if let Some(value) = self.get(&own).await? {
            return Ok(Some(Resolved {
                value,
                source: Source::Owner,
            }));
        }
        if self.env_allowlist.contains(name)
            && let Some(value) = (self.env_lookup)(name)
        {
            return Ok(Some(Resolved {
                value: Plaintext::from(value.into_bytes()),
                source: Source::Environment,
            }));
        }
        Ok(None)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("envelope", &self.envelope)
            .field("store", &self.store)
            .field("env_allowlist", &self.env_allowlist)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
