//! Fuzz credential extraction from arbitrary headers (and WebSocket query strings), then
//! run whatever is extracted through a chain of the store-backed resolvers.
//!
//! Input: segments separated by `\n`. In each segment byte 0 picks the header name
//! (`authorization`, `x-api-key`, `x-internal-secret`, `upgrade`, or an unrelated one)
//! and the rest is the raw value; the last segment is also used as the query of a
//! WebSocket handshake URI. Oracle: nothing panics, an accepted credential is visible
//! ASCII within its cap, and no credential the fuzzer can invent authenticates.
#![no_main]

use std::sync::{Arc, LazyLock};

use auth_core::{
    ApiKeys, Chain, Credential, InternalSecretResolver, MemoryStore, Outcome, SessionConfig,
    Sessions, StaticTokenResolver,
};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 5] = [
    "authorization",
    "x-api-key",
    "x-internal-secret",
    "upgrade",
    "x-other",
];

static CHAIN: LazyLock<Chain> = LazyLock::new(|| {
    let store = Arc::new(MemoryStore::new());
    // 64 random-looking characters: not something libFuzzer will produce.
    let static_token = "fz-static-9b1c7e3a5d2f4b6c8e0a1c3e5f7b9d2a4c6e8f0b1d3f5a7c9e1b3d5f7a9c";
    let internal = "fz-internal-2c4e6a8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c";
    Chain::builder()
        .resolver(InternalSecretResolver::new(Some(internal)).unwrap_or_else(|_| unreachable!()))
        .resolver(
            StaticTokenResolver::new(static_token, "bootstrap").unwrap_or_else(|_| unreachable!()),
        )
        .resolver(Sessions::new(store.clone(), SessionConfig::default()))
        .resolver(ApiKeys::new(store))
        .build()
});

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut last: &[u8] = &[];
    for segment in data.split(|b| *b == b'\n') {
        last = segment;
        let Some((&pick, value)) = segment.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(pick) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    check(Credential::from_headers(&headers));
    let uri = std::str::from_utf8(last)
        .ok()
        .and_then(|q| format!("/ws?{q}").parse::<Uri>().ok());
    if let Some(uri) = &uri {
        check(Credential::from_ws_handshake(&headers, uri));
    }
    let outcome = futures::executor::block_on(async {
        match &uri {
            Some(uri) => CHAIN.resolve_ws_handshake(&headers, uri).await,
            None => CHAIN.resolve_headers(&headers).await,
        }
    });
    assert!(
        !matches!(outcome, Outcome::Authenticated(_)),
        "a fuzzer-made credential authenticated"
    );
});

fn check(result: Result<Option<Credential>, auth_core::ExtractError>) {
    match result {
        Ok(Some(c)) => {
            let v = c.expose_secret();
            assert!(!v.is_empty());
            assert!(v.len() <= c.kind().max_len());
            assert!(v.bytes().all(|b| b.is_ascii_graphic()));
        }
        Ok(None) => {}
        Err(e) => {
            // Errors name a field and a code, never a value.
            let _ = (e.code(), e.to_string());
        }
    }
}
