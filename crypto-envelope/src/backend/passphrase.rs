//! The passphrase backend: a KEK derived from a passphrase with Argon2id, for
//! self-hosters without a KMS or HSM.
//!
//! The key id written into every sealed value records the Argon2id parameters and the
//! salt (`argon2id-m65536-t3-p4-<salt in unpadded base64url>-<fingerprint>`), so the
//! passphrase alone recovers every value and an independent implementation knows how to
//! derive the KEK; the fingerprint (as a master key's) tells a wrong passphrase apart
//! from a tampered value.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use zeroize::Zeroizing;

use super::aes_wrap::AesKek;
use super::{KekBackend, KeyRef, Wrapped};
use crate::context::EncryptionContext;
use crate::error::{BackendError, ConfigError};
use crate::secret::DataKey;

/// The backend id this backend writes into sealed values.
pub const BACKEND_ID: &str = "passphrase";
/// The passphrase.
pub const ENV_PASSPHRASE: &str = "STRONGROOM_PASSPHRASE";
/// The salt: 16 to 64 bytes as unpadded base64url (see [`PassphraseKek::generate_salt`]).
pub const ENV_PASSPHRASE_SALT: &str = "STRONGROOM_PASSPHRASE_SALT";
/// Shortest passphrase accepted, in bytes.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// Argon2id cost parameters. Anything below OWASP's minimum (19 MiB, 2 passes, 1 lane)
/// is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's minimum for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// RFC 9106's second recommended option, the default: 64 MiB, 3 passes, 4 lanes.
    /// The derivation runs once at start-up, so it can afford more than a login hash.
    pub const RFC9106_LOW_MEMORY: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };

    fn check(self) -> Result<Params, ConfigError> {
        let weak = self.memory_kib < Self::OWASP_MINIMUM.memory_kib
            || self.iterations < Self::OWASP_MINIMUM.iterations
            || self.parallelism < 1;
        if weak {
            return Err(ConfigError::Invalid {
                field: "argon2id parameters".to_owned(),
                reason: "below OWASP's minimum (m=19456 KiB, t=2, p=1)",
            });
        }
        Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32)).map_err(|_| {
            ConfigError::Invalid {
                field: "argon2id parameters".to_owned(),
                reason: "out of Argon2's range",
            }
        })
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::RFC9106_LOW_MEMORY
    }
}

/// A KEK derived from a passphrase with Argon2id.
pub struct PassphraseKek {
    key_ref: KeyRef<'static>,
    kek: AesKek,
}

impl PassphraseKek {
    /// A fresh 16-byte salt as unpadded base64url, to store beside the configuration
    /// (it is not secret, but losing it loses every value sealed under it).
    ///
    /// # Errors
    /// [`BackendError::Random`] when the system generator fails.
    pub fn generate_salt() -> Result<String, BackendError> {
        use base64ct::Encoding;
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| BackendError::Random)?;
        Ok(base64ct::Base64UrlUnpadded::encode_string(&salt))
    }

    /// Derives the KEK. CPU and memory heavy by design (tens to hundreds of
    /// milliseconds): call it at start-up or from a blocking task.
    ///
    /// # Errors
    /// [`ConfigError`] for a passphrase shorter than [`MIN_PASSPHRASE_LEN`], a salt that
    /// is not 16 to 64 bytes of unpadded base64url, or weak parameters.
    pub fn derive(
        passphrase: &[u8],
        salt_b64url: &str,
        params: Argon2Params,
    ) -> Result<Self, ConfigError> {
        use base64ct::Encoding;
        if passphrase.len() < MIN_PASSPHRASE_LEN {
            return Err(ConfigError::Invalid {
                field: ENV_PASSPHRASE.to_owned(),
                reason: "shorter than 12 bytes",
            });
        }
        let bad_salt = || ConfigError::Invalid {
            field: ENV_PASSPHRASE_SALT.to_owned(),
            reason: "expected 16 to 64 bytes as unpadded base64url",
        };
        let salt = base64ct::Base64UrlUnpadded::decode_vec(salt_b64url).map_err(|_| bad_salt())?;
        if !(16..=64).contains(&salt.len()) {
            return Err(bad_salt());
        }
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.check()?);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, &salt, key.as_mut())
            .map_err(|_| ConfigError::Invalid {
                field: "argon2id parameters".to_owned(),
                reason: "derivation failed",
            })?;
        let kek = AesKek::new(&key).map_err(|_| ConfigError::Invalid {
            field: ENV_PASSPHRASE.to_owned(),
            reason: "the derived key could not be expanded",
        })?;
        let fingerprint = super::local::MasterKey::from_bytes(*key).fingerprint();
        let id = format!(
            "argon2id-m{}-t{}-p{}-{}-{}",
            params.memory_kib,
            params.iterations,
            params.parallelism,
            base64ct::Base64UrlUnpadded::encode_string(&salt),
            fingerprint.trim_start_matches("mk-"),
        );
        Ok(Self {
            key_ref: KeyRef::new(id, 1),
            kek,
        })
    }

    /// Derives the KEK from [`ENV_PASSPHRASE`] and [`ENV_PASSPHRASE_SALT`] with the
    /// given parameters.
    ///
    /// # Errors
    /// As [`PassphraseKek::derive`], and [`ConfigError::Missing`].
    pub fn from_env(params: Argon2Params) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            std::env::var_os(name)
                .map(|v| Zeroizing::new(v.to_string_lossy().into_owned()))
                .ok_or_else(|| ConfigError::Missing {
                    field: name.to_owned(),
                })
        };
        let passphrase = get(ENV_PASSPHRASE)?;
        let salt = get(ENV_PASSPHRASE_SALT)?;
        Self::derive(passphrase.as_bytes(), &salt, params)
    }
}

impl PassphraseKek {
    /// The derived key and its reference: for [`crate::hazmat`] test vectors only.
    pub(crate) fn parts(&self) -> (&KeyRef<'static>, &AesKek) {
        (&self.key_ref, &self.kek)
    }
}

impl fmt::Debug for PassphraseKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PassphraseKek")
            .field("key", &self.key_ref)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KekBackend for PassphraseKek {
    fn id(&self) -> &str {
        BACKEND_ID
    }

    fn primary_key(&self) -> KeyRef<'_> {
        self.key_ref.borrowed()
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        Ok(Wrapped {
            key: self.key_ref.clone(),
            bytes: self.kek.wrap(dek, aad)?,
        })
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        if *key != self.key_ref {
            return Err(BackendError::KeyNotFound {
                key: key.clone().into_owned(),
            });
        }
        self.kek.unwrap(wrapped, aad)
    }
}
