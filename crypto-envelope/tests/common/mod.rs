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

use crypto_envelope::{EncryptionContext, Envelope, LocalKeyRing, MasterKey};

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
