//! Fuzz the `mfa_token` parser with untrusted input (the second login step's body).
//!
//! Oracle: nothing panics; a token that parses is exactly `mfa_` and 43 base64url
//! characters, its digest is the SHA-256 of the text, and any one-byte change of it
//! either fails to parse or yields another digest.
#![no_main]

use auth_core::mfa::{MFA_TOKEN_LEN, MFA_TOKEN_PREFIX, MfaToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = MfaToken::parse(text) else {
        return;
    };
    assert_eq!(text.len(), MFA_TOKEN_LEN);
    assert!(text.starts_with(MFA_TOKEN_PREFIX));
    assert!(
        text[MFA_TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let digest = *token.digest();
    let mut flipped = text.as_bytes().to_vec();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ASCII");
    if let Ok(other) = MfaToken::parse(&flipped) {
        assert_ne!(*other.digest(), digest);
    }
});
