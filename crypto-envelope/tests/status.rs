//! One way every error a handler returns says its HTTP status: `status()`, an
//! `http::StatusCode`, beside its stable `code()`. The whole table, variant by variant:
//! 500 only for the service's own key configuration, 503 for everything else (an outage,
//! or a stored value that does not open), never a success and never a 4xx (a stored
//! value is not the client's fault).

use crypto_envelope::{BackendError, Error, KeyRef, SecretsError, StoreError};
use http::StatusCode;

fn table() -> Vec<(Error, StatusCode, &'static str)> {
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    vec![
        (Error::Refused, unavailable, "envelope.refused"),
        (
            Error::Malformed { field: "header" },
            unavailable,
            "envelope.malformed",
        ),
        (
            Error::UnsupportedVersion { version: 9 },
            unavailable,
            "envelope.unsupported_version",
        ),
        (
            Error::UnsupportedSuite { suite: 9 },
            unavailable,
            "envelope.unsupported_suite",
        ),
        (
            Error::UnknownBackend {
                backend: "hsm".into(),
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "envelope.unknown_backend",
        ),
        (
            Error::KeyNotHeld {
                key: KeyRef::new("mk-00", 1),
            },
            StatusCode::INTERNAL_SERVER_ERROR,
            "envelope.key_not_held",
        ),
        (
            Error::Backend(BackendError::Unavailable {
                backend: "transit".into(),
                reason: "timeout".into(),
            }),
            unavailable,
            "envelope.backend_unavailable",
        ),
        (
            Error::Backend(BackendError::KeyRetired {
                key: KeyRef::new("mk-00", 1),
            }),
            unavailable,
            "envelope.backend",
        ),
        (
            Error::Backend(BackendError::Random),
            unavailable,
            "envelope.backend",
        ),
    ]
}

#[test]
fn envelope_errors() {
    for (e, status, code) in table() {
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
    }
}

#[test]
fn secrets_errors() {
    for (e, status, code) in table() {
        let e = SecretsError::Envelope(e);
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
    }
    for e in [
        StoreError::InvalidId {
            field: "owner",
            reason: "empty",
        },
        StoreError::Unavailable("down".into()),
        StoreError::Corrupt { field: "blob" },
    ] {
        let e = SecretsError::Store(e);
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "secrets.store"),
            "{e:?}"
        );
    }
}
