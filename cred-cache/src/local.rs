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
//! [`FetchError::Backend`]; a missing record is [`FetchError::NotFound`]; a
//! record sealed under a key (or backend) the envelope was not configured with
//! (the service started with another master key) is
//! [`FetchError::Misconfigured`], logged at `ERROR` with the code
//! `cred_cache.misconfigured` and the envelope's message (which names the key
//! id and version, never key material) the first time, at `WARN` afterwards.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use crypto_envelope::{SecretRef, Secrets};

use crate::credential::ExchangeCredential;
use crate::error::{ConfigError, FetchError};
use access_types::{AccountId, Level, OwnerPermit};

use crate::ids::CacheKey;
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
    /// Whether a configuration failure was already logged at `ERROR` (shared by
    /// clones, so that the operator is told loudly once per source, not per
    /// fetch).
    misconfiguration_logged: Arc<AtomicBool>,
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
            misconfiguration_logged: Arc::default(),
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
            misconfiguration_logged: Arc::default(),
        })
    }

    fn secret_ref(&self, credential: &AccountId) -> Result<SecretRef, FetchError> {
        SecretRef::scoped(&self.namespace, credential.as_str(), SECRET_NAME)
            .map_err(|_| FetchError::Storage)
    }

    /// Seals and stores `credential` for the account that `owner` proves to own,
    /// **replacing any previous record of that account**. Call
    /// [`CredCache::invalidate_credential`](crate::CredCache::invalidate_credential)
    /// afterwards when replacing a live credential.
    ///
    /// Records are stored by account id, so whoever may call this for an account
    /// may replace its exchange key with one of their own choosing (every later
    /// order of every user of the account would be signed with it). It therefore
    /// takes an [`OwnerPermit`], the policy engine's proof that the caller owns the
    /// account (grant-policy's `Ownership`, from `Policy::register_account` or
    /// `Policy::ownership`), and refuses a credential for any other account.
    /// Register (claim) the account first, then store its credential.
    ///
    /// # Errors
    ///
    /// [`FetchError::Refused`] when `credential` is not for `owner`'s account;
    /// [`FetchError::Backend`] for a store or KEK outage,
    /// [`FetchError::Misconfigured`] when the key-encryption backend no longer
    /// holds its configured primary key, [`FetchError::Storage`] for any other
    /// failure.
    pub async fn put<O: OwnerPermit + ?Sized>(
        &self,
        owner: &O,
        credential: &ExchangeCredential,
    ) -> Result<(), FetchError> {
        if owner.account() != credential.credential_id() {
            tracing::warn!(
                code = FetchError::Refused.code(),
                owner = %owner.owner(),
                owned = %owner.account(),
                credential = %credential.credential_id(),
                "credential for an account the owner proof does not name refused"
            );
            return Err(FetchError::Refused);
        }
        let reference = self.secret_ref(credential.credential_id())?;
        let record = record::encode(credential);
        self.secrets
            .put(&reference, &record)
            .await
            .map_err(|e| self.storage_error(credential.credential_id(), &e))
    }

    /// Deletes the record of the account that `owner` proves to own; whether one
    /// existed. Invalidate the cache afterwards. Takes the proof for the same
    /// reason as [`put`](Self::put): a record is addressed by account id only.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    pub async fn delete<O: OwnerPermit + ?Sized>(&self, owner: &O) -> Result<bool, FetchError> {
        let credential = owner.account();
        let reference = self.secret_ref(credential)?;
        self.secrets
            .delete(&reference)
            .await
            .map_err(|e| self.storage_error(credential, &e))
    }

    /// The fetch error for a failure of the secret store or the envelope, logged
    /// with its code.
    fn storage_error(
        &self,
        credential: &AccountId,
        e: &crypto_envelope::SecretsError,
    ) -> FetchError {
        let error = if e.is_unavailable() {
            FetchError::Backend
        } else if e.is_configuration() {
            FetchError::Misconfigured
        } else {
            FetchError::Storage
        };
        // The envelope's errors name parts, kinds and key ids, never values.
        if error == FetchError::Misconfigured
            && !self.misconfiguration_logged.swap(true, Ordering::Relaxed)
        {
            tracing::error!(
                code = error.code(),
                credential = %credential,
                error = %e,
                "the credential store cannot be opened with the configured keys: every \
                 credential sealed under that key fails until the key it was sealed under is \
                 configured again (logged once)"
            );
        } else {
            tracing::warn!(code = error.code(), credential = %credential, error = %e, "secret store failed");
        }
        error
    }
}

#[async_trait]
impl CredentialSource for LocalSource {
    async fn fetch(&self, key: &CacheKey) -> Result<ExchangeCredential, FetchError> {
        let reference = self.secret_ref(key.credential())?;
        let plaintext = self
            .secrets
            .get(&reference)
            .await
            .map_err(|e| self.storage_error(key.credential(), &e))?
            .ok_or(FetchError::NotFound)?;
        let credential = record::decode(key.credential().clone(), plaintext.expose_secret()).map_err(|e| {
            tracing::warn!(code = "cred_cache.local.bad_record", credential = %key.credential(), error = %e,
                "sealed record does not decode");
            FetchError::Storage
        })?;
        if credential.is_read_only() && key.level() == Level::Trade {
            return Err(FetchError::Refused);
        }
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests: a panic is a failed test.

    use std::io;
    use std::sync::Mutex;

    use crypto_envelope::{Envelope, LocalKeyRing, MasterKey, MemoryStore};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// A source whose ring does not hold the records' key says so at ERROR once, with
    /// the stable code and the key's id (a fingerprint), then at WARN; no key material
    /// and no credential in any line.
    #[test]
    fn a_misconfiguration_is_logged_loudly_once_without_key_material() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(captured.clone())
            .finish();
        // tracing caches each callsite's interest for the whole process, and while a single
        // dispatcher is registered it asks the *registering* thread's default: a test beside
        // this one, with no subscriber, could cache `never` for a line asserted here. A second
        // registered dispatcher makes the interest the union of both.
        let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
        let _guard = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (key_a, key_b) = (
            MasterKey::generate().unwrap(),
            MasterKey::generate().unwrap(),
        );
        let fingerprint_a = key_a.fingerprint();
        let material: Vec<String> = [&key_a, &key_b]
            .iter()
            .flat_map(|k| {
                [
                    k.to_hex().as_str().to_owned(),
                    k.to_base64().as_str().to_owned(),
                ]
            })
            .collect();
        let store = Arc::new(MemoryStore::new());
        let with = |key: MasterKey| {
            Secrets::new(
                Envelope::new(LocalKeyRing::single(key).unwrap()).unwrap(),
                Arc::clone(&store) as _,
            )
        };
        let ring_a = LocalSource::new(with(key_a));
        let ring_b = LocalSource::new(with(key_b));
        let credential = ExchangeCredential::new(
            AccountId::new("acct-1").unwrap(),
            zeroize::Zeroizing::new("AK-canary-31".to_owned()),
            zeroize::Zeroizing::new("sk-canary-31".to_owned()),
            None,
            false,
        )
        .unwrap();
        let key = crate::ids::tests::key("u", "acct-1", Level::Read);
        runtime.block_on(async {
            ring_a
                .put(&crate::ids::tests::owns("u", "acct-1"), &credential)
                .await
                .unwrap();
            // Clones share the flag: still one ERROR.
            for source in [&ring_b, &ring_b.clone(), &ring_b] {
                assert_eq!(
                    source.fetch(&key).await.unwrap_err(),
                    FetchError::Misconfigured
                );
            }
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines = |level: &str| {
            logs.lines()
                .filter(|l| l.contains(level) && l.contains("cred_cache.misconfigured"))
                .count()
        };
        assert_eq!(lines("ERROR"), 1, "{logs}");
        assert_eq!(lines("WARN"), 2, "{logs}");
        assert!(logs.contains(&fingerprint_a), "{logs}");
        assert!(logs.contains("started with another key"), "{logs}");
        for text in material
            .iter()
            .map(String::as_str)
            .chain(["AK-canary", "sk-canary"])
        {
            assert!(!logs.contains(text), "{logs}");
        }
    }
}
