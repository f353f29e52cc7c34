//! Key-encryption-key (KEK) backends: the one extension point that wraps and unwraps
//! data keys. A master key from the environment and a passphrase are built in; an HSM
//! or a cloud KMS implements the same trait.

use std::borrow::Cow;
use std::fmt;

use async_trait::async_trait;

use crate::context::EncryptionContext;
use crate::error::BackendError;
use crate::secret::DataKey;

pub(crate) mod aes_wrap;
#[cfg(feature = "awskms")]
pub mod awskms;
pub mod local;
pub mod passphrase;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
#[cfg(feature = "transit")]
pub mod transit;

/// A key inside a backend: its id and version, as written in every sealed value.
///
/// The id is 1 to 255 bytes of visible ASCII (a KMS key ARN, a PKCS#11 label, a local
/// key's fingerprint); neither part is secret. Opening a value hands the backend a
/// `KeyRef` that borrows its id from the sealed bytes (no allocation on the hot path);
/// what is kept, in a [`Sealed`](crate::Sealed) or an error, is a `KeyRef<'static>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyRef<'a> {
    /// The key id.
    pub id: Cow<'a, str>,
    /// The key version.
    pub version: u32,
}

impl<'a> KeyRef<'a> {
    /// A key reference.
    pub fn new(id: impl Into<Cow<'a, str>>, version: u32) -> Self {
        Self {
            id: id.into(),
            version,
        }
    }

    /// The same reference, borrowing its id.
    pub fn borrowed(&self) -> KeyRef<'_> {
        KeyRef::new(self.id.as_ref(), self.version)
    }

    /// The same reference, owning its id.
    pub fn into_owned(self) -> KeyRef<'static> {
        KeyRef::new(self.id.into_owned(), self.version)
    }
}

impl fmt::Display for KeyRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/v{}", self.id, self.version)
    }
}

/// A data key wrapped by a backend, with the key that wrapped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapped {
    /// The key that wrapped the data key.
    pub key: KeyRef<'static>,
    /// The backend's wrapped form, 1 to 4096 bytes.
    pub bytes: Vec<u8>,
}

/// A key-encryption-key backend.
///
/// The envelope hands a backend every fresh data key to wrap, and every stored wrapped
/// key to unwrap. Besides the wrapped bytes, both calls receive `aad`, the canonical
/// associated data the wrap must be bound to (it encodes the format version, the suite
/// and the encryption context), and the `context` itself for backends whose service
/// takes an encryption context as pairs (a cloud KMS).
///
/// # Contract
/// - `unwrap` receives attacker-controlled `key`, `wrapped` and `aad`: it must not panic
///   on any input, must refuse (never guess) when the wrap does not authenticate under
///   `aad`, and must report every such failure as the one opaque
///   [`BackendError::Refused`], so that no caller learns why.
/// - A backend outage is [`BackendError::Unavailable`], never a refusal and never a
///   success: the caller answers "try later" to it.
/// - A key the backend does not hold is [`BackendError::KeyNotFound`]; one it holds but
///   will no longer unwrap with is [`BackendError::KeyRetired`].
/// - No error, log line or `Debug` output may hold key material or a data key.
/// - [`KekBackend::id`] is stable for the life of the data: it is written into every
///   sealed value and selects the backend on open.
#[async_trait]
pub trait KekBackend: Send + Sync + fmt::Debug {
    /// The backend's id: 1 to 32 bytes of `a-z`, `0-9` and `-`, such as `local`.
    fn id(&self) -> &str;

    /// The key that new wraps use.
    fn primary_key(&self) -> KeyRef<'_>;

    /// Wraps `dek` under the primary key, bound to `aad`.
    ///
    /// # Errors
    /// [`BackendError::Unavailable`] on an outage, [`BackendError::Random`] when
    /// randomness fails.
    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError>;

    /// Unwraps `wrapped`, which the sealed value says `key` wrapped, bound to `aad`.
    ///
    /// # Errors
    /// As the contract above says.
    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, BackendError>;

    /// Whether a value wrapped under `key` is already where a re-wrap would put it.
    fn is_current(&self, key: &KeyRef<'_>) -> bool {
        *key == self.primary_key()
    }

    /// Re-wraps, inside the backend, a data key this backend wrapped under an older key,
    /// so that it ends under the primary key without leaving the backend (Vault
    /// Transit's `rewrap` endpoint, a KMS `ReEncrypt`).
    ///
    /// [`Envelope::rewrap`](crate::Envelope::rewrap) calls it only for a value this
    /// backend wrapped, after the value has opened in full and [`KekBackend::is_current`]
    /// said no. `Ok(None)`, the default, means "not supported": the envelope then wraps
    /// the data key it unwrapped afresh with [`KekBackend::wrap`].
    ///
    /// # Errors
    /// As [`KekBackend::unwrap`].
    async fn rewrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Option<Wrapped>, BackendError> {
        let _ = (key, wrapped, aad, context);
        Ok(None)
    }
}
