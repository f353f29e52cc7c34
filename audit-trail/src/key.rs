//! The MAC key of the chain.

use std::fmt;

use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::AuditError;
use crate::record::DOMAIN;

/// Length of a [`MacKey`] in bytes.
pub const KEY_LEN: usize = 32;

/// HKDF-SHA256 salt of [`MacKey::derive`] (FORMAT.md, "Key").
pub(crate) const HKDF_SALT: &[u8] = b"strongroom-audit-v1";
/// HKDF-SHA256 info of [`MacKey::derive`].
pub(crate) const HKDF_INFO: &[u8] = b"strongroom-audit-v1 mac key";

/// The 32-byte HMAC-SHA256 key that seals every record and checkpoint.
///
/// Whoever holds it can write records that verify; whoever can only write the database
/// cannot. Derive it from the key-encryption key ([`MacKey::derive`]) or keep a random one
/// ([`MacKey::generate`]) sealed under it. The bytes are wiped on drop, `Debug` prints
/// only [`MacKey::id`], and the bytes come out only through
/// [`MacKey::expose_secret`].
pub struct MacKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    hmac: hmac::Key,
    id: String,
}

struct Len32;

impl KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

impl MacKey {
    /// Wraps 32 key bytes (wipe your copy afterwards).
    #[must_use]
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let bytes = Zeroizing::new(bytes);
        let hmac = hmac::Key::new(hmac::HMAC_SHA256, bytes.as_ref());
        // The id: the first 8 bytes of HMAC(K, DOMAIN || 0x03), in hex. It names the key
        // (in the head row, in logs) without revealing anything about it.
        let mut msg = DOMAIN.to_vec();
        msg.push(0x03);
        let tag = hmac::sign(&hmac, &msg);
        let id = base16ct::lower::encode_string(&tag.as_ref()[..8]);
        MacKey { bytes, hmac, id }
    }

    /// A new random key from the system generator.
    ///
    /// # Errors
    ///
    /// [`AuditError::Random`] when the system generator fails.
    pub fn generate() -> Result<Self, AuditError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| AuditError::Random)?;
        Ok(Self::from_bytes(*bytes))
    }

    /// The audit key derived from other key material (the key-encryption key's bytes):
    /// HKDF-SHA256 (RFC 5869) with salt `"strongroom-audit-v1"` and info
    /// `"strongroom-audit-v1 mac key"`, 32 bytes out. `ikm` must hold at least 32 bytes
    /// of secret entropy.
    ///
    /// # Errors
    ///
    /// [`AuditError::WeakKeyMaterial`] when `ikm` is shorter than 32 bytes.
    pub fn derive(ikm: &[u8]) -> Result<Self, AuditError> {
        if ikm.len() < KEY_LEN {
            return Err(AuditError::WeakKeyMaterial);
        }
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        Salt::new(HKDF_SHA256, HKDF_SALT)
            .extract(ikm)
            .expand(&[HKDF_INFO], Len32)
            .and_then(|okm| okm.fill(out.as_mut()))
            .map_err(|_| AuditError::WeakKeyMaterial)?;
        let key = Self::from_bytes(*out);
        out.zeroize();
        Ok(key)
    }

    /// A non-secret name of the key: 16 lowercase hex digits (FORMAT.md, "Key id"). The
    /// head row keeps the id of the key that writes the chain, so that a log opened with
    /// another key is refused up front ([`AuditError::WrongKey`]).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes, to seal them for storage.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    pub(crate) fn hmac(&self) -> &hmac::Key {
        &self.hmac
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
