//! Fuzz the OpenID Connect discovery document parser
//! (`auth_core::sso::ProviderMetadata::from_json`): the document comes from the network.
//!
//! Input: byte 0 picks the configured issuer (even: without a trailing slash, odd: with
//! one); the rest is the response body. Oracle: nothing panics, and an accepted document
//! names exactly the configured issuer and an `https://` `jwks_uri` with a host.
#![no_main]

use auth_core::sso::ProviderMetadata;
use libfuzzer_sys::fuzz_target;

const ISSUERS: [&str; 2] = [
    "https://login.example.com/realms/fuzz",
    "https://login.example.com/realms/fuzz/",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let issuer = ISSUERS[usize::from(selector % 2)];
    if let Ok(metadata) = ProviderMetadata::from_json(body, issuer) {
        assert_eq!(metadata.issuer(), issuer, "accepted another issuer");
        let uri = metadata.jwks_uri();
        assert!(uri.starts_with("https://"), "accepted a non-https jwks_uri");
        assert!(
            uri.len() > "https://".len(),
            "accepted a jwks_uri without host"
        );
    }
});
