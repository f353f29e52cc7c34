//! Helpers shared by the crypto-envelope tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use crypto_envelope::{EncryptionContext, Envelope, LocalKeyRing, MasterKey};

pub fn key(byte: u8) -> MasterKey {
    MasterKey::parse("test key", &format!("{byte:02x}").repeat(32)).unwrap()
}

pub fn ring(byte: u8) -> LocalKeyRing {
    LocalKeyRing::single(key(byte)).unwrap()
}

pub fn envelope(byte: u8) -> Envelope {
    Envelope::new(ring(byte)).unwrap()
}

pub fn ctx(owner: &str, field: &str) -> EncryptionContext {
    EncryptionContext::new()
        .with("owner", owner)
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", field)
        .unwrap()
}

/// Runs a future that completes without waiting (the local backends never wait).
pub fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}
