//! Wrapping a data key with AES-256-GCM under a local KEK: the cipher the master-key
//! and passphrase backends share. Wrapped form: nonce (12) || ciphertext (32) || tag (16).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::BackendError;
use crate::secret::{DATA_KEY_LEN, DataKey};

/// Length of a wrapped data key.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + DATA_KEY_LEN + 16;

/// An AES-256-GCM key-encryption key, expanded once.
pub(crate) struct AesKek(LessSafeKey);

impl AesKek {
    pub(crate) fn new(key: &[u8; 32]) -> Result<Self, BackendError> {
        // 32 bytes is always a valid AES-256 key; a failure here is an internal fault,
        // reported without the key.
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| BackendError::Random)?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    pub(crate) fn wrap(&self, dek: &DataKey, aad: &[u8]) -> Result<Vec<u8>, BackendError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| BackendError::Random)?;
        self.wrap_with_nonce(dek, nonce, aad)
    }

    /// Wraps under a caller-chosen nonce: for [`crate::hazmat`] test vectors only.
    pub(crate) fn wrap_with_nonce(
        &self,
        dek: &DataKey,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
    ) -> Result<Vec<u8>, BackendError> {
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(dek.expose_secret());
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| BackendError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    pub(crate) fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<DataKey, BackendError> {
        if wrapped.len() != WRAPPED_LEN {
            return Err(BackendError::Refused);
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| BackendError::Refused)?;
        let mut buf = Zeroizing::new([0u8; DATA_KEY_LEN + 16]);
        buf.copy_from_slice(sealed);
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| BackendError::Refused)?;
        DataKey::from_slice(plain)
    }
}
