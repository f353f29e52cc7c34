//! One way every error a handler returns says its HTTP status: `status()`, an
//! `http::StatusCode`, beside its stable `code()`. The whole table, variant by variant.

use cred_cache::FetchError;
use http::StatusCode;

#[test]
fn fetch_errors() {
    let table = [
        (
            FetchError::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "cred_cache.unavailable",
        ),
        (
            FetchError::NotFound,
            StatusCode::NOT_FOUND,
            "cred_cache.not_found",
        ),
        (
            FetchError::Refused,
            StatusCode::FORBIDDEN,
            "cred_cache.level_refused",
        ),
        (
            FetchError::Backend,
            StatusCode::SERVICE_UNAVAILABLE,
            "cred_cache.backend",
        ),
        (
            FetchError::InvalidResponse,
            StatusCode::SERVICE_UNAVAILABLE,
            "cred_cache.invalid_response",
        ),
        (
            FetchError::Storage,
            StatusCode::SERVICE_UNAVAILABLE,
            "cred_cache.storage",
        ),
        (
            FetchError::Contended,
            StatusCode::SERVICE_UNAVAILABLE,
            "cred_cache.contended",
        ),
        (
            FetchError::Misconfigured,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cred_cache.misconfigured",
        ),
    ];
    for (e, status, code) in table {
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
    }
}
