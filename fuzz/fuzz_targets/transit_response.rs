//! Fuzz the Transit backend's parsers of what the server answers
//! (`crypto_envelope::backend::transit::response`).
//!
//! Input: byte 0 picks the parser (encrypt/rewrap answer, decrypt answer, key answer,
//! login answer, error answer, bare ciphertext); the rest is the body. Oracle: nothing
//! panics, and whatever is accepted is within the documented shapes: a ciphertext's
//! version is at least 1 and its bytes are 1 to 4096 long and encode back to the same
//! text; a login token is visible ASCII.
#![no_main]

use crypto_envelope::backend::transit::response::{
    Ciphertext, MAX_WRAPPED_LEN, classify_error, parse_ciphertext, parse_decrypt, parse_encrypt,
    parse_key_info, parse_login,
};
use libfuzzer_sys::fuzz_target;

fn check(parsed: &Ciphertext) {
    assert!(parsed.version >= 1);
    assert!(!parsed.bytes.is_empty() && parsed.bytes.len() <= MAX_WRAPPED_LEN);
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, body)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => {
            if let Ok(parsed) = parse_encrypt(body) {
                check(&parsed);
            }
        }
        1 => {
            let _ = parse_decrypt(body);
        }
        2 => {
            if let Ok(info) = parse_key_info(body) {
                assert!(info.latest_version >= 1);
            }
        }
        3 => {
            if let Ok(login) = parse_login(body) {
                assert!(!login.token.is_empty());
                assert!(login.token.bytes().all(|b| b.is_ascii_graphic()));
            }
        }
        4 => {
            let _ = classify_error(body);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                if let Ok(parsed) = parse_ciphertext(text) {
                    check(&parsed);
                    assert_eq!(Ciphertext::encode(parsed.version, &parsed.bytes), text);
                }
            }
        }
    }
});
