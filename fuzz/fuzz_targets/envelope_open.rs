//! Arbitrary bytes, as a binary sealed value and as text, through parsing and opening
//! with a fixed key ring: must never panic, and must never open.
#![no_main]

use std::sync::LazyLock;

use crypto_envelope::{EncryptionContext, Envelope, LocalKeyRing, MasterKey, Sealed};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;

static ENVELOPE: LazyLock<Envelope> = LazyLock::new(|| {
    let key = MasterKey::parse("fuzz", &"3c".repeat(32)).expect("fixed key");
    Envelope::new(LocalKeyRing::single(key).expect("ring")).expect("envelope")
});

fuzz_target!(|data: &[u8]| {
    let context = EncryptionContext::new();
    if let Ok(sealed) = Sealed::from_bytes(data) {
        // What parses re-encodes to the same bytes.
        assert_eq!(sealed.to_bytes(), data);
    }
    assert!(block_on(ENVELOPE.open(data, &context)).is_err());
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Sealed::from_text(text);
        assert!(block_on(ENVELOPE.open_text(text, &context)).is_err());
    }
});
