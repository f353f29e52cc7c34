//! One way every refusal a handler returns says its HTTP status: `status()`, an
//! `http::StatusCode`, beside its stable `code()`. The whole table, variant by variant.

use grant_policy::{Decision, DenyReason, Level, RiskRefusal};
use http::StatusCode;

#[test]
fn deny_reasons_and_decisions() {
    let table = [
        (
            DenyReason::NotVisible,
            StatusCode::NOT_FOUND,
            "grant.deny.not_visible",
        ),
        (
            DenyReason::InsufficientLevel,
            StatusCode::FORBIDDEN,
            "grant.deny.insufficient_level",
        ),
        (
            DenyReason::NeverAllowed,
            StatusCode::FORBIDDEN,
            "grant.deny.never_allowed",
        ),
        (
            DenyReason::ShareExpired,
            StatusCode::NOT_FOUND,
            "grant.deny.share_expired",
        ),
        (
            DenyReason::StoreUnavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "grant.deny.store_unavailable",
        ),
    ];
    for (reason, status, code) in table {
        assert_eq!(
            (reason.status(), reason.code()),
            (status, code),
            "{reason:?}"
        );
        let decision = Decision::Deny { reason };
        assert_eq!((decision.status(), decision.code()), (status, code));
    }
    let allow = Decision::Allow {
        effective: Level::Trade,
    };
    assert_eq!(
        (allow.status(), allow.code()),
        (StatusCode::OK, "grant.allow")
    );
}

#[test]
fn risk_refusals() {
    let table = [
        (
            RiskRefusal::ZeroNotional,
            StatusCode::BAD_REQUEST,
            "risk.refuse.zero_notional",
        ),
        (
            RiskRefusal::NoAccess,
            StatusCode::NOT_FOUND,
            "risk.refuse.no_access",
        ),
        (
            RiskRefusal::OrderTooLarge,
            StatusCode::FORBIDDEN,
            "risk.refuse.order_too_large",
        ),
        (
            RiskRefusal::DailyCapExceeded,
            StatusCode::FORBIDDEN,
            "risk.refuse.daily_cap_exceeded",
        ),
        (
            RiskRefusal::StoreUnavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "risk.refuse.store_unavailable",
        ),
    ];
    for (e, status, code) in table {
        assert_eq!((e.status(), e.code()), (status, code), "{e:?}");
    }
}
