//! The local master-key backend: a ring of 32-byte master keys, one primary for new
//! seals and the rest decrypt-only, read from the environment or given by the embedding
//! service.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::aes_wrap::AesKek;
use super::{KekBackend, KeyRef, Wrapped};
use crate::context::EncryptionContext;
use crate::error::{BackendError, ConfigError};
use crate::secret::DataKey;

/// The backend id this backend writes into sealed values.
pub const BACKEND_ID: &str = "local";

/// The primary master key, as 64 hex or 44 base64 characters.
pub const ENV_MASTER_KEY: &str = "STRONGROOM_MASTER_KEY";
/// The primary master key's version (default 1).
pub const ENV_MASTER_KEY_VERSION: &str = "STRONGROOM_MASTER_KEY_VERSION";
/// Decrypt-only older keys: comma-separated `version:key` entries.
pub const ENV_MASTER_KEYS_OLD: &str = "STRONGROOM_MASTER_KEYS_OLD";
/// The lowest key version that may still unwrap (default: every version held).
pub const ENV_MASTER_KEY_MIN_VERSION: &str = "STRONGROOM_MASTER_KEY_MIN_VERSION";

/// A 32-byte master key. Wiped on drop; `Debug` prints only its fingerprint id.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A fresh random key, for `gen-master-key` style tooling and development defaults.
    ///
    /// # Errors
    /// [`BackendError::Random`] when the system generator fails.
    pub fn generate() -> Result<Self, BackendError> {
        let mut key = Self([0; 32]);
        aws_lc_rs::rand::fill(&mut key.0).map_err(|_| BackendError::Random)?;
        Ok(key)
    }

    /// Parses a key given as exactly 64 hex characters (either case) or exactly 44
    /// standard base64 characters (with its one `=`). Anything else, stray whitespace
    /// included, is refused. `field` names the setting in the error; the value is never
    /// echoed. Decoding runs in constant time.
    ///
    /// # Errors
    /// [`ConfigError::BadKey`], or [`ConfigError::Invalid`] for an all-zero key.
    pub fn parse(field: &str, text: &str) -> Result<Self, ConfigError> {
        use base64ct::Encoding;
        let bad = || ConfigError::BadKey {
            field: field.to_owned(),
        };
        let mut key = Self([0; 32]);
        let decoded_len = match text.len() {
            64 => base16ct::mixed::decode(text, &mut key.0)
                .map_err(|_| bad())?
                .len(),
            44 => base64ct::Base64::decode(text, &mut key.0)
                .map_err(|_| bad())?
                .len(),
            _ => return Err(bad()),
        };
        if decoded_len != 32 {
            return Err(bad());
        }
        if key.0.iter().all(|b| *b == 0) {
            return Err(ConfigError::Invalid {
                field: field.to_owned(),
                reason: "the key is all zeros",
            });
        }
        Ok(key)
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub(crate) fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lowercase hex characters, for writing to a protected file. The
    /// returned string is wiped on drop.
    pub fn to_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(base16ct::lower::encode_string(&self.0))
    }

    /// The key as 44 standard base64 characters. The returned string is wiped on drop.
    pub fn to_base64(&self) -> zeroize::Zeroizing<String> {
        use base64ct::Encoding;
        zeroize::Zeroizing::new(base64ct::Base64::encode_string(&self.0))
    }

    /// The key's public fingerprint: `mk-` and 16 hex characters derived from the key
    /// with HKDF-SHA-256 (see `FORMAT.md`). It names the key in sealed values, so that a
    /// misconfigured ring says "key not held" rather than "refused".
    pub fn fingerprint(&self) -> String {
        use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
        struct Len8;
        impl KeyType for Len8 {
            fn len(&self) -> usize {
                8
            }
        }
        let mut id = [0u8; 8];
        let prk = Salt::new(HKDF_SHA256, b"strongroom master key id").extract(&self.0);
        // Expanding 8 bytes from a 32-byte PRK cannot fail.
        if let Ok(okm) = prk.expand(&[b"fingerprint v1"], Len8) {
            let _ = okm.fill(&mut id);
        }
        format!("mk-{}", base16ct::lower::encode_string(&id))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

struct RingEntry {
    key_ref: KeyRef<'static>,
    kek: AesKek,
    retired: bool,
}

/// A ring of master keys: the local KEK backend.
///
/// One version, the highest held, is primary and wraps every new data key; the others
/// only unwrap. Every version holds different key material (the sealed header that names
/// a version is not authenticated, so one key under two versions would let an edited
/// version pass a minimum version). Versions
/// below the minimum decryption version, and versions marked retired, unwrap nothing:
/// after a bulk re-wrap (see [`crate::rotation`]) an old key is retired and then removed.
pub struct LocalKeyRing {
    entries: BTreeMap<u32, RingEntry>,
    primary: KeyRef<'static>,
    min_version: u32,
}

impl LocalKeyRing {
    /// A ring builder.
    pub fn builder() -> LocalKeyRingBuilder {
        LocalKeyRingBuilder::default()
    }

    /// A ring of one key, version 1.
    ///
    /// # Errors
    /// [`ConfigError`] only on an internal fault.
    pub fn single(key: MasterKey) -> Result<Self, ConfigError> {
        Self::builder().key(1, key).primary(1).build()
    }

    /// A ring from the process environment: [`ENV_MASTER_KEY`],
    /// [`ENV_MASTER_KEY_VERSION`], [`ENV_MASTER_KEYS_OLD`] and
    /// [`ENV_MASTER_KEY_MIN_VERSION`].
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// As [`LocalKeyRing::from_env`], reading settings through `lookup`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the variable at fault, never its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let primary_text = lookup(ENV_MASTER_KEY)
            .map(zeroize::Zeroizing::new)
            .ok_or_else(|| ConfigError::Missing {
                field: ENV_MASTER_KEY.to_owned(),
            })?;
        let primary = MasterKey::parse(ENV_MASTER_KEY, &primary_text)?;
        let version = match lookup(ENV_MASTER_KEY_VERSION) {
            Some(v) => parse_version(ENV_MASTER_KEY_VERSION, &v)?,
            None => 1,
        };
        let mut builder = Self::builder().key(version, primary).primary(version);
        if let Some(old) = lookup(ENV_MASTER_KEYS_OLD).map(zeroize::Zeroizing::new) {
            for (i, entry) in old.split(',').enumerate() {
                let field = format!("{ENV_MASTER_KEYS_OLD} (entry {})", i + 1);
                let (v, key) = entry.split_once(':').ok_or_else(|| ConfigError::Invalid {
                    field: field.clone(),
                    reason: "expected version:key",
                })?;
                builder = builder.key(parse_version(&field, v)?, MasterKey::parse(&field, key)?);
            }
        }
        if let Some(min) = lookup(ENV_MASTER_KEY_MIN_VERSION) {
            builder = builder.min_version(parse_version(ENV_MASTER_KEY_MIN_VERSION, &min)?);
        }
        builder.build()
    }

    /// The versions held, with whether each may still unwrap.
    pub fn versions(&self) -> impl Iterator<Item = (&KeyRef<'static>, bool)> {
        self.entries.values().map(|e| {
            (
                &e.key_ref,
                !e.retired && e.key_ref.version >= self.min_version,
            )
        })
    }

    fn entry_for(&self, key: &KeyRef<'_>) -> Result<&RingEntry, BackendError> {
        let entry = self
            .entries
            .get(&key.version)
            .filter(|e| e.key_ref.id == key.id)
            .ok_or_else(|| BackendError::KeyNotFound {
                key: key.clone().into_owned(),
            })?;
        if entry.retired || key.version < self.min_version {
            return Err(BackendError::KeyRetired {
                key: key.clone().into_owned(),
            });
        }
        Ok(entry)
    }
}

fn parse_version(field: &str, text: &str) -> Result<u32, ConfigError> {
    let v: u32 = text.parse().map_err(|_| ConfigError::BadNumber {
        field: field.to_owned(),
        reason: "expected a whole number from 1 to 4294967295",
    })?;
    if v == 0 {
        return Err(ConfigError::BadNumber {
            field: field.to_owned(),
            reason: "versions start at 1",
        });
    }
    Ok(v)
}

impl fmt::Debug for LocalKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyRing")
            .field("primary", &self.primary)
            .field("versions", &self.entries.keys().collect::<Vec<_>>())
            .field("min_version", &self.min_version)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KekBackend for LocalKeyRing {
    fn id(&self) -> &str {
        BACKEND_ID
    }

    fn primary_key(&self) -> KeyRef<'_> {
        self.primary.borrowed()
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        let entry = self.entry_for(&self.primary)?;
        Ok(Wrapped {
            key: entry.key_ref.clone(),
            bytes: entry.kek.wrap(dek, aad)?,
        })
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        _context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        self.entry_for(key)?.kek.unwrap(wrapped, aad)
    }
}

/// Builds a [`LocalKeyRing`].
#[derive(Default)]
pub struct LocalKeyRingBuilder {
    keys: Vec<(u32, MasterKey)>,
    primary: Option<u32>,
    min_version: Option<u32>,
    retired: Vec<u32>,
}

impl fmt::Debug for LocalKeyRingBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyRingBuilder")
            .field(
                "versions",
                &self.keys.iter().map(|(v, _)| v).collect::<Vec<_>>(),
            )
            .field("primary", &self.primary)
            .finish_non_exhaustive()
    }
}

impl LocalKeyRingBuilder {
    /// Adds a key under `version` (1 or more).
    pub fn key(mut self, version: u32, key: MasterKey) -> Self {
        self.keys.push((version, key));
        self
    }

    /// Sets the version that wraps new data keys.
    pub fn primary(mut self, version: u32) -> Self {
        self.primary = Some(version);
        self
    }

    /// Sets the lowest version that may still unwrap.
    pub fn min_version(mut self, version: u32) -> Self {
        self.min_version = Some(version);
        self
    }

    /// Marks a version retired: it stays known (so errors name it) but unwraps nothing.
    pub fn retire(mut self, version: u32) -> Self {
        self.retired.push(version);
        self
    }

    /// Builds the ring.
    ///
    /// # Errors
    /// [`ConfigError`] when a version is 0 or repeats, when one key is given under two
    /// versions, when no primary is set or it is not held, retired, below the minimum
    /// version, or lower than another version held.
    pub fn build(self) -> Result<LocalKeyRing, ConfigError> {
        let min_version = self.min_version.unwrap_or(1);
        let mut entries = BTreeMap::new();
        for (version, key) in self.keys {
            let field = format!("master key version {version}");
            if version == 0 {
                return Err(ConfigError::BadNumber {
                    field,
                    reason: "versions start at 1",
                });
            }
            let kek = AesKek::new(&key.0).map_err(|_| ConfigError::Invalid {
                field: field.clone(),
                reason: "the key could not be expanded",
            })?;
            let fingerprint = key.fingerprint();
            // The header that names a key is not authenticated: were one key held under
            // two versions, editing a value's version would pass a minimum version.
            if entries
                .values()
                .any(|e: &RingEntry| e.key_ref.id == fingerprint)
            {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "the same key is already held under another version",
                });
            }
            let entry = RingEntry {
                key_ref: KeyRef::new(fingerprint, version),
                kek,
                retired: self.retired.contains(&version),
            };
            if entries.insert(version, entry).is_some() {
                return Err(ConfigError::Invalid {
                    field,
                    reason: "the version is given twice",
                });
            }
        }
        let primary_version = self.primary.ok_or_else(|| ConfigError::Missing {
            field: "primary master key version".to_owned(),
        })?;
        let field = || format!("master key version {primary_version}");
        let primary = entries
            .get(&primary_version)
            .ok_or_else(|| ConfigError::Invalid {
                field: field(),
                reason: "the primary version is not in the ring",
            })?;
        if primary.retired || primary_version < min_version {
            return Err(ConfigError::Invalid {
                field: field(),
                reason: "the primary version is retired or below the minimum version",
            });
        }
        if entries.keys().any(|v| *v > primary_version) {
            return Err(ConfigError::Invalid {
                field: field(),
                reason: "a higher version is held: the primary must be the highest version",
            });
        }
        Ok(LocalKeyRing {
            primary: primary.key_ref.clone(),
            entries,
            min_version,
        })
    }
}
