//! Fuzz the access-token resolver with untrusted bearer tokens: the shape check, the
//! header parser, the `iss` peek for unknown `kid`s, alg pinning and the claim checks.
//!
//! Input: the bytes as a bearer token, plus the same bytes spliced into a valid token's
//! header or payload position (so the later checks are reached). Oracle: nothing panics;
//! only the untouched valid token authenticates, and no fuzzer-made token does.
#![no_main]

use std::sync::{Arc, OnceLock};

use auth_core::token::{AccessTokenRequest, AccessTokenResolver, Issuer, MemorySigningKeyStore};
use auth_core::{Credential, CredentialKind, Resolution, Resolver};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    resolver: AccessTokenResolver,
    token: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let issuer = block_on(
            Issuer::builder("https://auth.fuzz.test", "api")
                .reload_interval(std::time::Duration::from_secs(3600))
                .build(Arc::new(MemorySigningKeyStore::new())),
        )
        .expect("issuer");
        let token = block_on(issuer.issue(&AccessTokenRequest::new("u", 0, ["pwd"], 0)))
            .expect("token")
            .expose_secret()
            .to_owned();
        Fixture {
            resolver: AccessTokenResolver::new(issuer),
            token,
        }
    })
}

fn check(f: &Fixture, candidate: &str) {
    let Ok(cred) = Credential::new(CredentialKind::Bearer, candidate) else {
        return;
    };
    let res = block_on(f.resolver.resolve(&cred));
    if let Resolution::Authenticated(_) = res {
        assert_eq!(candidate, f.token, "a fuzzer-made token authenticated");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    check(f, s);
    let parts: Vec<&str> = f.token.split('.').collect();
    check(f, &format!("{s}.{}.{}", parts[1], parts[2]));
    check(f, &format!("{}.{s}.{}", parts[0], parts[2]));
});
