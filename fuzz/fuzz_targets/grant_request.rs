//! grant-policy: parsing the untrusted parts of a request (operation name, `want` level,
//! user and account ids) and deciding on them. Must never panic; whatever parses must
//! round-trip to the same text, errors must name their field and never echo the input,
//! and a decision must never allow withdraw/transfer or lower a requirement.
#![no_main]

use grant_policy::{Access, AccountId, Decision, Level, Operation, Requirement, Role, UserId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Fields separated by '|': operation, want, user, account, then a selector byte.
    let mut parts = text.splitn(5, '|');
    let op_s = parts.next().unwrap_or("");
    let want_s = parts.next().unwrap_or("");
    let user_s = parts.next().unwrap_or("");
    let acct_s = parts.next().unwrap_or("");
    let selector = parts.next().and_then(|s| s.bytes().next()).unwrap_or(0);

    let op = match op_s.parse::<Operation>() {
        Ok(op) => {
            assert_eq!(op.as_str(), op_s);
            Some(op)
        }
        Err(e) => {
            assert_eq!(e.field(), "operation");
            assert_eq!(e.to_string(), "operation: not a recognised value");
            None
        }
    };
    let want = match Level::parse_field(want_s, "want") {
        Ok(l) => {
            assert_eq!(l.as_str(), want_s);
            Some(l)
        }
        Err(e) => {
            assert_eq!(e.field(), "want");
            None
        }
    };
    match UserId::new(user_s) {
        Ok(u) => assert_eq!(u.as_str(), user_s),
        Err(e) => assert_eq!(e.field(), "user_id"),
    }
    match AccountId::new(acct_s) {
        Ok(a) => assert_eq!(a.as_str(), acct_s),
        Err(e) => assert_eq!(e.field(), "account_id"),
    }

    let Some(op) = op else { return };
    let requirement = op.required_with(want);
    match (op.required(), requirement) {
        (Requirement::Never, r) => assert_eq!(r, Requirement::Never),
        (Requirement::AtLeast(base), Requirement::AtLeast(r)) => assert!(r >= base),
        (Requirement::AtLeast(_), Requirement::Never) => panic!("requirement became Never"),
    }
    let level = |b: u8| {
        if b & 1 == 0 {
            Level::Read
        } else {
            Level::Trade
        }
    };
    let access = match selector % 3 {
        0 => None,
        1 => Some(Access {
            capability: level(selector >> 2),
            role: Role::Owner,
        }),
        _ => Some(Access {
            capability: level(selector >> 2),
            role: Role::Grantee {
                level: level(selector >> 3),
                expires_at: if selector & 0x20 != 0 {
                    Some(i64::from(selector))
                } else {
                    None
                },
            },
        }),
    };
    let decision = Decision::evaluate(requirement, access.as_ref(), 100);
    if let Decision::Allow { effective } = decision {
        assert!(!matches!(op, Operation::Withdraw | Operation::Transfer));
        let cap = access.map(|a| a.capability);
        assert!(cap.is_some_and(|c| effective <= c));
        if let Requirement::AtLeast(r) = requirement {
            assert!(effective >= r);
        }
    }
});
