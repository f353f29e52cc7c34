//! Credential extraction from headers and WebSocket handshakes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use auth_core::credential::{MAX_API_KEY_LEN, MAX_BEARER_LEN};
use auth_core::{Credential, CredentialKind, ExtractError};
use http::{HeaderMap, HeaderValue, Uri};
use proptest::prelude::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn none_is_missing() {
    assert!(
        Credential::from_headers(&HeaderMap::new())
            .unwrap()
            .is_none()
    );
    let h = headers(&[("content-type", "text/plain")]);
    assert!(Credential::from_headers(&h).unwrap().is_none());
}

#[test]
fn each_header_kind() {
    let c = Credential::from_headers(&headers(&[("authorization", "Bearer abc.def")]))
        .unwrap()
        .unwrap();
    assert_eq!(c.kind(), CredentialKind::Bearer);
    assert_eq!(c.expose_secret(), "abc.def");
    // Scheme is case-insensitive, extra spaces tolerated.
    let c = Credential::from_headers(&headers(&[("authorization", "bearer   tok")]))
        .unwrap()
        .unwrap();
    assert_eq!(c.expose_secret(), "tok");
    let c = Credential::from_headers(&headers(&[("x-api-key", "ak_123")]))
        .unwrap()
        .unwrap();
    assert_eq!(c.kind(), CredentialKind::ApiKey);
    let c = Credential::from_headers(&headers(&[("X-Internal-Secret", "s3cr3t")]))
        .unwrap()
        .unwrap();
    assert_eq!(c.kind(), CredentialKind::InternalSecret);
    assert_eq!(c.expose_secret(), "s3cr3t");
}

#[test]
fn refusals_are_typed() {
    let cases: Vec<(HeaderMap, ExtractError)> = vec![
        (
            headers(&[("authorization", "Basic dXNlcjpwYXNz")]),
            ExtractError::UnsupportedScheme,
        ),
        (
            headers(&[("authorization", "Bearer")]),
            ExtractError::Empty {
                header: "authorization",
            },
        ),
        (
            headers(&[("authorization", "Bearer a b")]),
            ExtractError::Malformed {
                header: "authorization",
            },
        ),
        (
            headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
            ExtractError::Duplicate {
                header: "authorization",
            },
        ),
        (
            headers(&[("authorization", "Bearer a"), ("x-api-key", "b")]),
            ExtractError::Ambiguous,
        ),
        (
            headers(&[("x-api-key", "")]),
            ExtractError::Empty {
                header: "x-api-key",
            },
        ),
        (
            headers(&[("x-api-key", &"k".repeat(MAX_API_KEY_LEN + 1))]),
            ExtractError::TooLong {
                header: "x-api-key",
                max: MAX_API_KEY_LEN,
            },
        ),
        (
            headers(&[(
                "authorization",
                &format!("Bearer {}", "t".repeat(MAX_BEARER_LEN + 1)),
            )]),
            ExtractError::TooLong {
                header: "authorization",
                max: MAX_BEARER_LEN,
            },
        ),
    ];
    for (h, expected) in cases {
        assert_eq!(Credential::from_headers(&h).unwrap_err(), expected);
    }
    // Non-UTF-8 / obs-text bytes.
    let mut h = HeaderMap::new();
    h.insert(
        "x-api-key",
        HeaderValue::from_bytes(b"ak_\xff\xfe").unwrap(),
    );
    assert_eq!(
        Credential::from_headers(&h).unwrap_err(),
        ExtractError::Malformed {
            header: "x-api-key"
        }
    );
    // At the cap is fine.
    let h = headers(&[(
        "authorization",
        &format!("Bearer {}", "t".repeat(MAX_BEARER_LEN)),
    )]);
    assert!(Credential::from_headers(&h).unwrap().is_some());
}

#[test]
fn error_messages_name_the_header_not_the_value() {
    let h = headers(&[("x-api-key", "canary-value-XYZ extra")]);
    let e = Credential::from_headers(&h).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("x-api-key"));
    assert!(!text.contains("canary-value-XYZ"));
}

#[test]
fn websocket_handshake() {
    let uri: Uri = "/ws?room=1&token=ses_abc-DEF_123".parse().unwrap();
    let c = Credential::from_ws_handshake(&HeaderMap::new(), &uri)
        .unwrap()
        .unwrap();
    assert_eq!(c.kind(), CredentialKind::Bearer);
    assert_eq!(c.expose_secret(), "ses_abc-DEF_123");
    // Headers work the same on a handshake.
    let h = headers(&[("x-api-key", "ak_1")]);
    let c = Credential::from_ws_handshake(&h, &"/ws".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(c.kind(), CredentialKind::ApiKey);
    // Both: ambiguous. Twice: duplicate. Encoded or empty: refused.
    assert_eq!(
        Credential::from_ws_handshake(&h, &uri).unwrap_err(),
        ExtractError::Ambiguous
    );
    for (q, code) in [
        ("/ws?token=a&token=b", "credential.duplicate"),
        ("/ws?token=a%20b", "credential.malformed"),
        ("/ws?token=", "credential.empty"),
        ("/ws?token", "credential.empty"),
    ] {
        let e = Credential::from_ws_handshake(&HeaderMap::new(), &q.parse().unwrap()).unwrap_err();
        assert_eq!(e.code(), code, "{q}");
    }
    assert!(
        Credential::from_ws_handshake(&HeaderMap::new(), &"/ws?tokens=x".parse().unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn debug_shows_kind_only() {
    let c = Credential::new(CredentialKind::ApiKey, "ak_SECRETSECRET").unwrap();
    let d = format!("{c:?}");
    assert!(d.contains("ApiKey"));
    assert!(!d.contains("SECRET"));
}

proptest! {
    /// Any header bytes: extraction never panics, and whatever it accepts is visible ASCII
    /// within the cap.
    #[test]
    fn arbitrary_headers_never_panic(
        auth in proptest::collection::vec(any::<u8>(), 0..300),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    ) {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&auth) {
            h.insert("authorization", v);
        }
        if let Some(k) = key
            && let Ok(v) = HeaderValue::from_bytes(&k)
        {
            h.insert("x-api-key", v);
        }
        if let Ok(Some(c)) = Credential::from_headers(&h) {
            prop_assert!(!c.expose_secret().is_empty());
            prop_assert!(c.expose_secret().bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(c.expose_secret().len() <= c.kind().max_len());
        }
    }

    /// Round trip: a valid token put in a Bearer header comes back unchanged.
    #[test]
    fn bearer_round_trip(token in "[!-~]{1,200}") {
        let h = headers(&[("authorization", &format!("Bearer {token}"))]);
        let c = Credential::from_headers(&h).unwrap().unwrap();
        prop_assert_eq!(c.expose_secret(), token.as_str());
        let direct = Credential::new(CredentialKind::Bearer, &token).unwrap();
        prop_assert_eq!(direct.expose_secret(), c.expose_secret());
    }
}
