//! Helpers shared by the crypto-envelope tests.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]
// Each test file uses only some of the helpers.
#![allow(dead_code)]

pub(crate) mod migration;
#[cfg(feature = "transit")]
pub(crate) mod openbao;
#[cfg(feature = "postgres")]
pub(crate) mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use crypto_envelope::{
    BackendError, DataKey, EncryptionContext, Envelope, KekBackend, KeyRef, LocalKeyRing,
    MasterKey, Wrapped,
};

/// A master key of 32 equal bytes.
pub(crate) fn key(byte: u8) -> MasterKey {
    MasterKey::parse("test key", &format!("{byte:02x}").repeat(32)).unwrap()
}

/// A one-key ring.
pub(crate) fn ring(byte: u8) -> LocalKeyRing {
    LocalKeyRing::single(key(byte)).unwrap()
}

/// An envelope over a one-key ring.
pub(crate) fn envelope(byte: u8) -> Envelope {
    Envelope::new(ring(byte)).unwrap()
}

/// A context naming owner, venue and field.
pub(crate) fn ctx(owner: &str, field: &str) -> EncryptionContext {
    EncryptionContext::new()
        .with("owner", owner)
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", field)
        .unwrap()
}

/// Runs a future that completes without waiting (the local backends never wait).
pub(crate) fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Connects `builder`, which must fail with a backend error (not a configuration error),
/// and returns that error.
#[cfg(feature = "transit")]
pub(crate) async fn connect_refused(builder: crypto_envelope::TransitBuilder) -> BackendError {
    match builder.connect().await {
        Err(crypto_envelope::ConnectError::Backend(e)) => e,
        other => panic!("expected a backend error, got {other:?}"),
    }
}

/// A local key ring under another backend id, counting its unwraps: what a remote backend
/// (an HSM, a KMS, Transit) looks like to the envelope, without a server.
#[derive(Debug)]
pub(crate) struct Renamed {
    /// The backend id it reports.
    pub(crate) id: &'static str,
    /// The ring that wraps and unwraps.
    pub(crate) ring: LocalKeyRing,
    /// Unwraps so far.
    pub(crate) unwraps: Arc<AtomicU64>,
}

impl Renamed {
    /// A one-key ring of `byte` under the backend id `id`.
    pub(crate) fn new(id: &'static str, byte: u8) -> Self {
        Self {
            id,
            ring: ring(byte),
            unwraps: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[async_trait]
impl KekBackend for Renamed {
    fn id(&self) -> &str {
        self.id
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
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.ring.unwrap(key, wrapped, aad, context).await
    }
}
