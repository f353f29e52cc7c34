//! One way every error a handler returns says its HTTP status: `status()`, an
//! `http::StatusCode`, beside its stable `code()`. A table per type, variant by variant.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use std::time::Duration;

use auth_core::webhook::WebhookError;
use auth_core::{
    Outcome, Principal, Refusal, ScopeRefusal, StepUpError, StoreError, ThrottleError,
};
use http::StatusCode;

#[test]
fn webhook_errors() {
    let table = [
        (
            WebhookError::Missing,
            StatusCode::UNAUTHORIZED,
            "webhook.missing",
        ),
        (
            WebhookError::Malformed { field: "t" },
            StatusCode::UNAUTHORIZED,
            "webhook.malformed",
        ),
        (
            WebhookError::Stale,
            StatusCode::UNAUTHORIZED,
            "webhook.stale",
        ),
        (
            WebhookError::BadSignature,
            StatusCode::UNAUTHORIZED,
            "webhook.bad_signature",
        ),
        (
            WebhookError::Unavailable(StoreError::Backend("down".into())),
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook.unavailable",
        ),
    ];
    for (e, status, code) in table {
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
    }
}

#[test]
fn step_up_errors() {
    for (e, status, code) in [
        (
            StepUpError::Required,
            StatusCode::FORBIDDEN,
            "mfa.step_up_required",
        ),
        (
            StepUpError::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "mfa.step_up_unavailable",
        ),
    ] {
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
    }
}

#[test]
fn scope_refusals() {
    for (e, code) in [
        (ScopeRefusal::Insufficient, "scope.insufficient"),
        (ScopeRefusal::Undeclared, "scope.undeclared"),
        (ScopeRefusal::InteractiveOnly, "scope.interactive_only"),
    ] {
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::FORBIDDEN, code),
            "{e:?}"
        );
    }
}

#[test]
fn throttle_errors() {
    let e = ThrottleError::Throttled {
        retry_after: Duration::from_secs(3),
    };
    assert_eq!(
        (e.status(), e.code()),
        (StatusCode::TOO_MANY_REQUESTS, "throttle.throttled")
    );
}

#[test]
fn outcomes() {
    let r = Refusal::new("x.y");
    let p = Principal::new("u", auth_core::AuthMethod::Session);
    for (o, status) in [
        (Outcome::Authenticated(p), StatusCode::OK),
        (Outcome::Missing, StatusCode::UNAUTHORIZED),
        (Outcome::Invalid(r), StatusCode::FORBIDDEN),
        (Outcome::Unavailable(r), StatusCode::SERVICE_UNAVAILABLE),
    ] {
        assert_eq!(o.status(), status, "{o:?}");
    }
}

#[cfg(feature = "axum")]
#[test]
fn auth_rejections_and_their_responses() {
    use auth_core::http::{AuthRejection, LayerMissing, PASSWORD_CHANGE_REQUIRED};
    use axum::response::IntoResponse;
    for (e, status, code) in [
        (
            AuthRejection::LayerMissing(LayerMissing),
            StatusCode::INTERNAL_SERVER_ERROR,
            "auth.layer_missing",
        ),
        (
            AuthRejection::Scope(ScopeRefusal::Undeclared),
            StatusCode::FORBIDDEN,
            "scope.undeclared",
        ),
        (
            AuthRejection::PasswordChangeRequired,
            StatusCode::FORBIDDEN,
            PASSWORD_CHANGE_REQUIRED,
        ),
    ] {
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
        // The response answers the same status as the method.
        assert_eq!(e.into_response().status(), status, "{e:?}");
    }
    for e in [StepUpError::Required, StepUpError::Unavailable] {
        assert_eq!(e.into_response().status(), e.status());
    }
    let e = WebhookError::Stale;
    let status = e.status();
    assert_eq!(e.into_response().status(), status);
    let e = ScopeRefusal::InteractiveOnly;
    assert_eq!(e.into_response().status(), e.status());
}
