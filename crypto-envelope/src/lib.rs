#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod cache;
mod context;
mod envelope;
mod error;
pub mod format;
pub mod hazmat;
pub mod rotation;
mod secret;
mod secrets;
pub mod store;

#[cfg(feature = "awskms")]
pub use backend::awskms::{AwsKms, AwsKmsBuilder};
pub use backend::local::{LocalKeyRing, MasterKey};
pub use backend::passphrase::{Argon2Params, PassphraseKek};
#[cfg(feature = "pkcs11")]
pub use backend::pkcs11::{Pkcs11Kek, Pkcs11KekBuilder};
#[cfg(feature = "transit")]
pub use backend::transit::{TransitBuilder, TransitKek};
pub use backend::{KekBackend, KeyRef, Wrapped};
pub use cache::{CacheLimits, CacheStats, DataKeyCache};
pub use context::EncryptionContext;
pub use envelope::{Envelope, Rewrap};
pub use error::{BackendError, ConfigError, ConnectError, ContextError, Error};
pub use format::Sealed;
pub use rotation::{RewrapFailure, RewrapFailureReason, RewrapProgress, Rewrapper};
pub use secret::{DATA_KEY_LEN, DataKey, Plaintext};
pub use secrets::{Ephemeral, Resolved, Secrets, SecretsError, Source};
#[cfg(feature = "postgres")]
pub use store::PgStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use store::{KeyCount, MemoryStore, SecretMeta, SecretRef, SecretStore, StoreError};

/// Limits of an [`EncryptionContext`].
pub mod context_limits {
    pub use crate::context::{MAX_NAME_LEN, MAX_PAIRS, MAX_VALUE_LEN};
}
