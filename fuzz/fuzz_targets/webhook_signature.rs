//! Fuzz the signed-webhook verifier with untrusted input: the `X-Strongroom-Signature`
//! header value and the raw body, as a sender (or anyone) sends them.
//!
//! Input: a header value and a body separated by the first `\n`. Oracle: nothing panics;
//! a header that parses has 1 to `MAX_SIGNATURES` signatures and a non-negative `t`; a
//! delivery accepted under the fixed secret carries, among its `v1` entries, exactly the
//! signature the signer makes for its `t` and body (no fuzzer-made signature verifies).
#![no_main]

use std::sync::{Arc, OnceLock};

use auth_core::webhook::{
    ActiveSecrets, MAX_SIGNATURES, MemoryReplayGuard, SignatureHeader, Signer, Verifier,
    WebhookSecret,
};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    verifier: Verifier,
    secrets: ActiveSecrets,
    signer: Signer,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = [0x42u8; 32];
        Fixture {
            verifier: Verifier::builder(Arc::new(MemoryReplayGuard::default()))
                .build()
                .expect("verifier"),
            secrets: ActiveSecrets::new(WebhookSecret::from_bytes(&key).expect("secret")),
            signer: Signer::new(WebhookSecret::from_bytes(&key).expect("secret")),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let f = fixture();
    // The receiver's clock: far from most t (the window check), and at t itself so that
    // the HMAC comparison is reached.
    let mut clocks = vec![1_700_000_000i64];
    if let Ok(parsed) = SignatureHeader::parse(header) {
        assert!(parsed.timestamp() >= 0);
        assert!((1..=MAX_SIGNATURES).contains(&parsed.signatures().len()));
        clocks.push(parsed.timestamp());
    }
    for now in clocks {
        if let Ok(verified) = f
            .verifier
            .verify_signature(Some(header), body, &f.secrets, now)
        {
            let t = u64::try_from(verified.timestamp()).expect("t is non-negative");
            let expected = f.signer.sign(t, body);
            let (_, sig) = expected.split_once(",v1=").expect("one v1");
            let lower = header.to_ascii_lowercase();
            assert!(
                lower.split(',').any(|e| e == format!("v1={sig}")),
                "a fuzzer-made signature verified"
            );
        }
    }
});
