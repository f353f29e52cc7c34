//! `KekBackend::rewrap`: a backend that re-wraps inside itself (Transit `rewrap`, KMS
//! `ReEncrypt`) is asked by `Envelope::rewrap` for its own values under an older key, and
//! what it answers is checked like any wrap.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use crypto_envelope::{
    BackendError, DataKey, EncryptionContext, Envelope, Error, KekBackend, KeyRef, LocalKeyRing,
    Rewrap, Wrapped,
};

/// A two-version key ring that re-wraps "inside the backend" and counts it.
#[derive(Debug)]
struct InBackend {
    ring: LocalKeyRing,
    rewraps: AtomicU64,
    /// Answer an empty wrapped key (a misbehaving backend).
    broken: bool,
}

impl InBackend {
    fn new(primary: u32, broken: bool) -> Self {
        // The ring at version 1 holds only key 1 (a ring refuses a key newer than its
        // primary); at version 2 it holds both.
        let mut builder = LocalKeyRing::builder().key(1, common::key(1));
        if primary >= 2 {
            builder = builder.key(2, common::key(2));
        }
        let ring = builder.primary(primary).build().unwrap();
        Self {
            ring,
            rewraps: AtomicU64::new(0),
            broken,
        }
    }
}

#[async_trait]
impl KekBackend for InBackend {
    fn id(&self) -> &str {
        "in-backend"
    }

    fn primary_key(&self) -> KeyRef<'_> {
        self.ring.primary_key()
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        self.ring.wrap(dek, aad, context).await
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        self.ring.unwrap(key, wrapped, aad, context).await
    }

    async fn rewrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Option<Wrapped>, BackendError> {
        self.rewraps.fetch_add(1, Ordering::SeqCst);
        let dek = self.ring.unwrap(key, wrapped, aad, context).await?;
        let mut out = self.ring.wrap(&dek, aad, context).await?;
        if self.broken {
            out.bytes.clear();
        }
        Ok(Some(out))
    }
}

#[tokio::test]
async fn an_older_key_is_rewrapped_inside_the_backend() {
    let ctx = common::ctx("1", "api_secret");
    let old = Envelope::new(InBackend::new(1, false)).unwrap();
    let sealed = old.seal(b"secret", &ctx).await.unwrap();
    assert_eq!(sealed.key().version, 1);

    let backend = std::sync::Arc::new(InBackend::new(2, false));
    let envelope = Envelope::from_arc(backend.clone()).unwrap();
    let Rewrap::Rewrapped(moved) = envelope.rewrap(&sealed.to_bytes(), &ctx).await.unwrap() else {
        panic!("a value under version 1 must be re-wrapped");
    };
    assert_eq!(backend.rewraps.load(Ordering::SeqCst), 1);
    assert_eq!(moved.key().version, 2);
    assert_eq!(moved.ciphertext(), sealed.ciphertext());
    assert_eq!(
        envelope
            .open_sealed(&moved, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"secret"
    );
    // Current values are not sent to the backend again.
    assert!(matches!(
        envelope.rewrap(&moved.to_bytes(), &ctx).await.unwrap(),
        Rewrap::Current
    ));
    assert_eq!(backend.rewraps.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn another_backends_values_are_wrapped_afresh() {
    let ctx = common::ctx("1", "api_secret");
    let local = common::envelope(9);
    let sealed = local.seal(b"secret", &ctx).await.unwrap();
    let backend = std::sync::Arc::new(InBackend::new(2, false));
    let envelope = Envelope::from_arc(backend.clone())
        .unwrap()
        .with_decrypt_only(common::ring(9))
        .unwrap();
    let Rewrap::Rewrapped(moved) = envelope.rewrap(&sealed.to_bytes(), &ctx).await.unwrap() else {
        panic!("a local value must move to the primary backend");
    };
    assert_eq!(moved.backend(), "in-backend");
    assert_eq!(backend.rewraps.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_misbehaving_in_backend_rewrap_is_refused() {
    let ctx = common::ctx("1", "api_secret");
    let old = Envelope::new(InBackend::new(1, false)).unwrap();
    let sealed = old.seal(b"secret", &ctx).await.unwrap();
    let envelope = Envelope::new(InBackend::new(2, true)).unwrap();
    assert!(matches!(
        envelope.rewrap(&sealed.to_bytes(), &ctx).await,
        Err(Error::Backend(BackendError::Misbehaved { .. }))
    ));
}
