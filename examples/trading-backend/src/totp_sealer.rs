//! The reference backend's [`TotpSealer`]: TOTP secrets sealed with crypto-envelope
//! under the service's key ring (the same [`Envelope`] as the stored secrets).
//!
//! The encryption context is `{"purpose": "totp", "user_id": <id>}`: it is bound into
//! both the wrapped data key and the payload, so a sealed secret copied to another user's
//! row, or a value sealed for another purpose (an exchange credential), does not open.
//! Every failure is the same opaque [`SealError`] (no oracle, no secret).

use async_trait::async_trait;
use auth_core::mfa::SealError;
use auth_core::{TotpSealer, TotpSecret};
use crypto_envelope::{EncryptionContext, Envelope};

/// The context's purpose value.
const PURPOSE: &str = "totp";

/// Seals TOTP secrets with crypto-envelope, bound to the user.
#[derive(Debug, Clone)]
pub(crate) struct EnvelopeSealer {
    envelope: Envelope,
}

impl EnvelopeSealer {
    pub(crate) fn new(envelope: Envelope) -> Self {
        Self { envelope }
    }
}

/// The encryption context of `user_id`'s sealed secret (also rebuilt by `rewrap`, through
/// `sealed.rs`).
pub(crate) fn context(user_id: &str) -> Result<EncryptionContext, SealError> {
    EncryptionContext::new()
        .with("purpose", PURPOSE)
        .and_then(|c| c.with("user_id", user_id))
        .map_err(|_| SealError::opaque())
}

#[async_trait]
impl TotpSealer for EnvelopeSealer {
    async fn seal(&self, user_id: &str, secret: &TotpSecret) -> Result<Vec<u8>, SealError> {
        let sealed = self
            .envelope
            .seal(secret.expose_secret(), &context(user_id)?)
            .await
            .map_err(|_| SealError::opaque())?;
        Ok(sealed.to_bytes())
    }

    async fn open(&self, user_id: &str, sealed: &[u8]) -> Result<TotpSecret, SealError> {
        let plain = self
            .envelope
            .open(sealed, &context(user_id)?)
            .await
            .map_err(|_| SealError::opaque())?;
        TotpSecret::from_bytes(plain.expose_secret()).map_err(|_| SealError::opaque())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_envelope::{LocalKeyRing, MasterKey};

    fn sealer() -> EnvelopeSealer {
        let ring = LocalKeyRing::single(MasterKey::generate().unwrap()).unwrap();
        EnvelopeSealer::new(Envelope::new(ring).unwrap())
    }

    #[tokio::test]
    async fn opens_for_its_user_only() {
        let s = sealer();
        let secret = TotpSecret::from_bytes(&[7u8; 20]).unwrap();
        let sealed = s.seal("alice", &secret).await.unwrap();
        assert!(!sealed.windows(20).any(|w| w == [7u8; 20]));
        let opened = s.open("alice", &sealed).await.unwrap();
        assert_eq!(opened.expose_secret(), secret.expose_secret());
        // Copied to another user's row: refused.
        assert!(s.open("bob", &sealed).await.is_err());
        // Tampered: refused.
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(s.open("alice", &bad).await.is_err());
        // Another key ring: refused.
        assert!(sealer().open("alice", &sealed).await.is_err());
    }
}
