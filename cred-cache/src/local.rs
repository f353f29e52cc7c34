//! The local source: credentials sealed at rest by `crypto-envelope`.
//!
//! Each credential is one secret in a [`Secrets`] store, sealed with a fresh
//! data key (AES-256-GCM) under the configured key-encryption key:
//!
//! * reference: owner = the namespace (default [`DEFAULT_NAMESPACE`]), scope =
//!   the credential id, name = [`SECRET_NAME`]. `crypto-envelope` binds the
//!   sealed blob to exactly that row through its encryption context, so a blob
//!   copied to another credential's row does not open;
//! * value: one [`record`] (key, secret, optional passphrase,
//!   read-only flag).
//!
//! A Trade request for a read-only record is refused with
//! [`FetchError::Refused`]. A record that does not open or decode is
//! [`FetchError::Storage`]; a KEK backend or store outage is
//! [`FetchError::Backend`]; a missing record is [`FetchError::NotFound`].

use std::fmt;

use async_trait::async_trait;
use crypto_envelope::{SecretRef, Secrets};

use crate::credential::ExchangeCredential;
use crate::error::{ConfigError, FetchError};
use crate::ids::{AccessLevel, CacheKey, CredentialId};
use crate::record;
use crate::source::CredentialSource;

/// Default owner of the sealed records in the secret store.
pub const DEFAULT_NAMESPACE: &str = "strongroom.cred-cache";
/// Name of the sealed record within its credential's scope.
pub const SECRET_NAME: &str = "exchange_credential";

/// A [`CredentialSource`] reading sealed records from a [`Secrets`] store.
#[derive(Clone)]
pub struct LocalSource {
    secrets: Secrets,
    namespace: String,
}

impl fmt::Debug for LocalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSource")
            .field("namespace", &self.namespace)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl LocalSource {
    /// A source over `secrets`, in the [`DEFAULT_NAMESPACE`].
    #[must_use]
    pub fn new(secrets: Secrets) -> Self {
        Self {
            secrets,
            namespace: DEFAULT_NAMESPACE.to_owned(),
        }
    }

    /// A source over `secrets`, in `namespace` (several services sharing one
    /// store can keep their credentials apart).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidField`] when the store refuses `namespace` as an
    /// owner id.
    pub fn with_namespace(secrets: Secrets, namespace: &str) -> Result<Self, ConfigError> {
        SecretRef::scoped(namespace, "probe", SECRET_NAME).map_err(|_| {
            ConfigError::InvalidField {
                field: "namespace",
                reason: "not a valid secret store owner id",
            }
        })?;
        Ok(Self {
            secrets,
            namespace: namespace.to_owned(),
        })
    }

    fn secret_ref(&self, credential: &CredentialId) -> Result<SecretRef, FetchError> {
        SecretRef::scoped(&self.namespace, credential.as_str(), SECRET_NAME)
            .map_err(|_| FetchError::Storage)
    }

    /// Seals and stores `credential` (replacing any previous record). Call
    /// [`CredCache::invalidate_credential`](crate::CredCache::invalidate_credential)
    /// afterwards when replacing a live credential.
    ///
    /// # Errors
    ///
    /// [`FetchError::Backend`] for a store or KEK outage, [`FetchError::Storage`]
    /// for any other failure.
    pub async fn put(&self, credential: &ExchangeCredential) -> Result<(), FetchError> {
        let reference = self.secret_ref(credential.credential_id())?;
        let record = record::encode(credential);
        self.secrets
            .put(&reference, &record)
            .await
            .map_err(|e| storage_error(credential.credential_id(), &e))
    }

    /// Deletes the record of `credential`; whether one existed. Invalidate the
    /// cache afterwards.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    pub async fn delete(&self, credential: &CredentialId) -> Result<bool, FetchError> {
        let reference = self.secret_ref(credential)?;
        self.secrets
            .delete(&reference)
            .await
            .map_err(|e| storage_error(credential, &e))
    }
}

fn storage_error(credential: &CredentialId, e: &crypto_envelope::SecretsError) -> FetchError {
    let error = if e.is_unavailable() {
        FetchError::Backend
    } else {
        FetchError::Storage
    };
    // The envelope's errors name parts and kinds, never values.
    tracing::warn!(code = error.code(), credential = %credential, error = %e, "secret store failed");
    error
}

#[async_trait]
impl CredentialSource for LocalSource {
    async fn fetch(&self, key: &CacheKey) -> Result<ExchangeCredential, FetchError> {
        let reference = self.secret_ref(key.credential())?;
        let plaintext = self
            .secrets
            .get(&reference)
            .await
            .map_err(|e| storage_error(key.credential(), &e))?
            .ok_or(FetchError::NotFound)?;
        let credential = record::decode(key.credential().clone(), plaintext.expose_secret()).map_err(|e| {
            tracing::warn!(code = "cred_cache.local.bad_record", credential = %key.credential(), error = %e,
                "sealed record does not decode");
            FetchError::Storage
        })?;
        if credential.is_read_only() && key.level() == AccessLevel::Trade {
            return Err(FetchError::Refused);
        }
        Ok(credential)
    }
}
