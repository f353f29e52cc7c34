//! Fuzz credential extraction from arbitrary headers (and WebSocket query strings), then
//! run whatever is extracted through a chain of the store-backed resolvers.
//!
//! Input: segments separated by `\n`. In each segment byte 0 picks the header name
//! (`authorization`, `x-api-key`, `x-internal-secret`, `upgrade`, `cookie`, `origin`,
//! `sec-fetch-site`, or an unrelated one) and the rest is the raw value; the last segment
//! is also used as the query of a WebSocket handshake URI. The `Cookie` fields also go
//! through the session cookie parser and the CSRF guard. Oracle: nothing panics, an
//! accepted credential is visible ASCII within its cap (a cookie value also without `"`,
//! `,`, `;`, `\`), and no credential the fuzzer can invent authenticates.
#![no_main]

use std::sync::{Arc, LazyLock};

use auth_core::{
    ApiKeys, Chain, Credential, CsrfGuard, InternalSecretResolver, MemoryStore, Outcome,
    SessionConfig, SessionCookie, Sessions, StaticTokenResolver,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "authorization",
    "x-api-key",
    "x-internal-secret",
    "upgrade",
    "x-other",
    "cookie",
    "origin",
    "sec-fetch-site",
];

static JAR: LazyLock<SessionCookie> = LazyLock::new(SessionCookie::default);
static GUARD: LazyLock<CsrfGuard> = LazyLock::new(|| {
    CsrfGuard::new(["https://app.example.com", "http://localhost:3000"])
        .unwrap_or_else(|_| unreachable!())
});

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
    let from_cookie = JAR.extract(&headers);
    if let Ok(Some(c)) = &from_cookie {
        assert!(
            !c.expose_secret()
                .bytes()
                .any(|b| matches!(b, b'"' | b',' | b';' | b'\\'))
        );
        let outcome = futures::executor::block_on(CHAIN.resolve(Some(c)));
        assert!(
            !matches!(outcome, Outcome::Authenticated(_)),
            "a fuzzer-made cookie authenticated"
        );
    }
    check(from_cookie);
    for method in [Method::GET, Method::POST, Method::DELETE] {
        let passed = GUARD.check(&method, &headers).is_ok();
        // A state-changing request passes only from the same origin or an allowed one.
        if passed && method != Method::GET {
            let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
            let origin = headers.get("origin").map(HeaderValue::as_bytes);
            assert!(
                matches!(site, Some(b"same-origin" | b"none"))
                    || matches!(
                        origin,
                        Some(b"https://app.example.com" | b"http://localhost:3000")
                    )
            );
        }
    }
    if GUARD.check_websocket(&headers).is_ok() {
        assert!(headers.get("origin").is_some());
    }
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
