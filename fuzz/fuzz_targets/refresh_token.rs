//! Fuzz the refresh-token parser with untrusted text (what a client sends to the refresh
//! and revoke endpoints).
//!
//! Oracle: nothing panics; an accepted text is exactly `rft_` plus 43 base64url
//! characters, and parsing its exposed form again gives the same text and digest.
#![no_main]

use auth_core::RefreshToken;
use auth_core::refresh::{REFRESH_TOKEN_LEN, REFRESH_TOKEN_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(token) = RefreshToken::parse(text) else {
        return;
    };
    let exposed = token.expose_secret();
    assert_eq!(exposed, text);
    assert_eq!(exposed.len(), REFRESH_TOKEN_LEN);
    assert!(exposed.starts_with(REFRESH_TOKEN_PREFIX));
    assert!(
        exposed[REFRESH_TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let again = RefreshToken::parse(exposed).expect("an accepted token parses again");
    assert_eq!(again.digest(), token.digest());
    assert!(!format!("{token:?}").contains(exposed));
});
