//! Hazardous building blocks, for test vectors and independent implementations only.
//!
//! These functions take the randomness that [`Envelope::seal`](crate::Envelope::seal)
//! draws itself (the data key and both nonces) as arguments. Reusing a data key or a
//! nonce across two values destroys AES-GCM's confidentiality and integrity: never call
//! them with anything but fixed test inputs.

use crate::backend::aes_wrap::AesKek;
use crate::backend::local::MasterKey;
use crate::backend::passphrase::PassphraseKek;
use crate::context::EncryptionContext;
use crate::envelope;
use crate::error::Error;
use crate::format::{COMMITMENT_LEN, NONCE_LEN, Sealed, Suite};
use crate::secret::DataKey;

/// The associated data the payload is sealed with.
pub fn payload_aad(context: &EncryptionContext) -> Vec<u8> {
    envelope::payload_aad(context)
}

/// The associated data a backend binds the wrapped data key to.
pub fn wrap_aad(context: &EncryptionContext) -> Vec<u8> {
    envelope::wrap_aad(context)
}

/// The key commitment of a data key under suite 1.
///
/// # Errors
/// Only on an internal fault of the HKDF.
pub fn commitment(dek: &DataKey) -> Result<[u8; COMMITMENT_LEN], Error> {
    Ok(envelope::derive(dek)?.1)
}

/// Seals with the local backend and caller-chosen randomness: the value
/// [`Envelope::seal`](crate::Envelope::seal) would produce had it drawn `dek`,
/// `wrap_nonce` and `payload_nonce`.
///
/// # Errors
/// As [`Envelope::seal`](crate::Envelope::seal).
pub fn seal_local_with(
    master_key: &MasterKey,
    key_version: u32,
    dek: &DataKey,
    wrap_nonce: [u8; NONCE_LEN],
    payload_nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Sealed, Error> {
    let kek = AesKek::new(master_key.expose_secret())?;
    let wrapped_key = kek.wrap_with_nonce(dek, wrap_nonce, &wrap_aad(context))?;
    let (commitment, ciphertext) = envelope::seal_payload(dek, payload_nonce, plaintext, context)?;
    Ok(Sealed {
        suite: Suite::Aes256GcmHkdfSha256Commit,
        backend: crate::backend::local::BACKEND_ID.to_owned(),
        key: crate::KeyRef::new(master_key.fingerprint(), key_version),
        wrapped_key,
        nonce: payload_nonce,
        commitment,
        ciphertext,
    })
}

/// Seals with the passphrase backend and caller-chosen randomness: the value
/// [`Envelope::seal`](crate::Envelope::seal) would produce over `kek` had it drawn `dek`,
/// `wrap_nonce` and `payload_nonce`.
///
/// # Errors
/// As [`Envelope::seal`](crate::Envelope::seal).
pub fn seal_passphrase_with(
    kek: &PassphraseKek,
    dek: &DataKey,
    wrap_nonce: [u8; NONCE_LEN],
    payload_nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<Sealed, Error> {
    let (key, aes) = kek.parts();
    let wrapped_key = aes.wrap_with_nonce(dek, wrap_nonce, &wrap_aad(context))?;
    let (commitment, ciphertext) = envelope::seal_payload(dek, payload_nonce, plaintext, context)?;
    Ok(Sealed {
        suite: Suite::Aes256GcmHkdfSha256Commit,
        backend: crate::backend::passphrase::BACKEND_ID.to_owned(),
        key: key.clone(),
        wrapped_key,
        nonce: payload_nonce,
        commitment,
        ciphertext,
    })
}
