//! Decisions and their stable reason codes.

use http::StatusCode;

use crate::grant::Access;
use access_types::Level;

use crate::operation::Requirement;

/// The outcome of asking whether a user may run an operation on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub enum Decision {
    /// The operation may run. `effective` is min(grant, key capability).
    Allow {
        /// The level the user holds on the account.
        effective: Level,
    },
    /// The operation must not run.
    Deny {
        /// Why; goes to the audit sink, never into a response body.
        reason: DenyReason,
    },
}

/// Why a decision denied. Each reason has a stable code and an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// The user has no grant on the account (or it does not exist): 404, so that an
    /// account's existence does not leak.
    NotVisible,
    /// The user's effective level is below what the operation (or the caller's `want`)
    /// requires: 403.
    InsufficientLevel,
    /// The operation is never allowed (withdraw, transfer): 403, for every user and
    /// every account id, existing or not.
    NeverAllowed,
    /// The user's share has expired: 404, the same answer as a revoked share, so a
    /// former grantee learns nothing more about the account.
    ShareExpired,
    /// The grant store failed: 503. An error is never an allow.
    StoreUnavailable,
}

impl DenyReason {
    /// The stable reason code, for audit records and metrics.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            DenyReason::NotVisible => "grant.deny.not_visible",
            DenyReason::InsufficientLevel => "grant.deny.insufficient_level",
            DenyReason::NeverAllowed => "grant.deny.never_allowed",
            DenyReason::ShareExpired => "grant.deny.share_expired",
            DenyReason::StoreUnavailable => "grant.deny.store_unavailable",
        }
    }

    /// The HTTP status the embedding service answers with (404, 403 or 503). The body
    /// should carry no more than the status's own text.
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            DenyReason::NotVisible | DenyReason::ShareExpired => StatusCode::NOT_FOUND,
            DenyReason::InsufficientLevel | DenyReason::NeverAllowed => StatusCode::FORBIDDEN,
            DenyReason::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The status as a number.
    #[deprecated(since = "0.1.0", note = "use `status()`, an `http::StatusCode`")]
    #[must_use]
    pub const fn http_status(self) -> u16 {
        self.status().as_u16()
    }
}

impl Decision {
    /// The stable code: `grant.allow` or the deny reason's code.
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Decision::Allow { .. } => "grant.allow",
            Decision::Deny { reason } => reason.code(),
        }
    }

    /// Whether the operation may run.
    #[must_use]
    pub const fn is_allowed(self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The effective level when allowed.
    #[must_use]
    pub const fn effective(self) -> Option<Level> {
        match self {
            Decision::Allow { effective } => Some(effective),
            Decision::Deny { .. } => None,
        }
    }

    /// The deny reason when denied.
    #[must_use]
    pub const fn reason(self) -> Option<DenyReason> {
        match self {
            Decision::Allow { .. } => None,
            Decision::Deny { reason } => Some(reason),
        }
    }

    /// The HTTP status: 200 when allowed, else the reason's [`status`](DenyReason::status).
    #[must_use]
    pub const fn status(self) -> StatusCode {
        match self {
            Decision::Allow { .. } => StatusCode::OK,
            Decision::Deny { reason } => reason.status(),
        }
    }

    /// The status as a number.
    #[deprecated(since = "0.1.0", note = "use `status()`, an `http::StatusCode`")]
    #[must_use]
    pub const fn http_status(self) -> u16 {
        self.status().as_u16()
    }

    const fn deny(reason: DenyReason) -> Decision {
        Decision::Deny { reason }
    }

    /// The decision rule, with no I/O and no allocation.
    ///
    /// In order:
    /// 1. `Never` (withdraw, transfer): `NeverAllowed`, before anything is looked up, so
    ///    the answer is the same for every account id.
    /// 2. No access: `NotVisible`.
    /// 3. An expired share: `ShareExpired`.
    /// 4. Effective = min(grant, key capability); below the requirement:
    ///    `InsufficientLevel`; otherwise `Allow`.
    pub const fn evaluate(requirement: Requirement, access: Option<&Access>, now: i64) -> Self {
        let required = match requirement {
            Requirement::Never => return Decision::deny(DenyReason::NeverAllowed),
            Requirement::AtLeast(level) => level,
        };
        let Some(access) = access else {
            return Decision::deny(DenyReason::NotVisible);
        };
        let Some(effective) = access.effective_at(now) else {
            return Decision::deny(DenyReason::ShareExpired);
        };
        if (effective as u8) < (required as u8) {
            Decision::deny(DenyReason::InsufficientLevel)
        } else {
            Decision::Allow { effective }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Role;
    use crate::operation::Operation;

    const NOW: i64 = 1_700_000_000;

    fn grantee(level: Level, capability: Level, expires_at: Option<i64>) -> Access {
        Access {
            capability,
            role: Role::Grantee { level, expires_at },
        }
    }

    #[test]
    fn decision_table() {
        use DenyReason::*;
        use Level::*;
        let owner_trade = Access {
            capability: Trade,
            role: Role::Owner,
        };
        let owner_read = Access {
            capability: Read,
            role: Role::Owner,
        };
        let cases: &[(Option<Access>, Operation, Option<Level>, Decision)] = &[
            (
                Some(owner_trade),
                Operation::CreateOrder,
                None,
                Decision::Allow { effective: Trade },
            ),
            (
                Some(owner_trade),
                Operation::Balance,
                None,
                Decision::Allow { effective: Trade },
            ),
            (
                Some(owner_trade),
                Operation::Withdraw,
                None,
                Decision::deny(NeverAllowed),
            ),
            (
                Some(owner_trade),
                Operation::Transfer,
                None,
                Decision::deny(NeverAllowed),
            ),
            (
                Some(owner_read),
                Operation::CreateOrder,
                None,
                Decision::deny(InsufficientLevel),
            ),
            (
                Some(owner_read),
                Operation::Balance,
                None,
                Decision::Allow { effective: Read },
            ),
            (
                Some(owner_read),
                Operation::Balance,
                Some(Trade),
                Decision::deny(InsufficientLevel),
            ),
            (
                Some(grantee(Read, Trade, None)),
                Operation::CancelAll,
                None,
                Decision::deny(InsufficientLevel),
            ),
            (
                Some(grantee(Read, Trade, None)),
                Operation::Ledger,
                None,
                Decision::Allow { effective: Read },
            ),
            (
                Some(grantee(Trade, Read, None)),
                Operation::EditOrder,
                None,
                Decision::deny(InsufficientLevel),
            ),
            (
                Some(grantee(Trade, Trade, None)),
                Operation::EditOrder,
                None,
                Decision::Allow { effective: Trade },
            ),
            (
                Some(grantee(Trade, Trade, Some(NOW + 1))),
                Operation::EditOrder,
                None,
                Decision::Allow { effective: Trade },
            ),
            (
                Some(grantee(Trade, Trade, Some(NOW))),
                Operation::Balance,
                None,
                Decision::deny(ShareExpired),
            ),
            (
                Some(grantee(Trade, Trade, Some(NOW))),
                Operation::Withdraw,
                None,
                Decision::deny(NeverAllowed),
            ),
            (None, Operation::Balance, None, Decision::deny(NotVisible)),
            (
                None,
                Operation::Withdraw,
                None,
                Decision::deny(NeverAllowed),
            ),
        ];
        for (access, op, want, expected) in cases {
            let got = Decision::evaluate(op.required_with(*want), access.as_ref(), NOW);
            assert_eq!(got, *expected, "{access:?} {op} want={want:?}");
        }
    }

    #[test]
    fn statuses_and_codes_are_stable() {
        use DenyReason::*;
        let all = [
            NotVisible,
            InsufficientLevel,
            NeverAllowed,
            ShareExpired,
            StoreUnavailable,
        ];
        let statuses: Vec<u16> = all.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses, [404, 403, 403, 404, 503]);
        let codes: Vec<&str> = all.iter().map(|r| r.code()).collect();
        assert_eq!(
            codes,
            [
                "grant.deny.not_visible",
                "grant.deny.insufficient_level",
                "grant.deny.never_allowed",
                "grant.deny.share_expired",
                "grant.deny.store_unavailable"
            ]
        );
        assert_eq!(
            Decision::Allow {
                effective: Level::Read
            }
            .status(),
            StatusCode::OK
        );
    }
}
