//! grant-policy: one access decision from the memory store, beside Cedar (`cedar-policy`)
//! evaluating the same rules (`benches/cedar/grant.cedarschema`, `grant.cedar`).
//!
//! Goal (issue 4, grant-policy item 7): a grant-policy decision at least 20x faster than
//! Cedar's `is_authorized` on the same request. The setup checks first that both engines
//! agree on every request of the matrix (5 users x 2 accounts x 12 operations x 3 wants),
//! so the benchmark compares equal answers.
//!
//! Three functions in one group, each deciding the same 8 requests per iteration:
//! - `grant_policy_evaluate`: `MemoryStore::access_now` + `Decision::evaluate`, the
//!   synchronous, allocation-free core;
//! - `grant_policy_decide`: the full `Policy::decide` (async store trait object, clock,
//!   default tracing audit sink with no subscriber installed);
//! - `cedar_is_authorized`: `Authorizer::is_authorized` with the request, policy set and
//!   entities built beforehand (the most favourable setting for Cedar).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup: a failure must stop the run"
)]

use std::hint::black_box;
use std::pin::pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};

use cedar_policy::{
    Authorizer, Context, Entities, EntityUid, PolicySet, Request, RestrictedExpression, Schema,
    ValidationMode, Validator,
};
use criterion::{Criterion, criterion_group, criterion_main};
use grant_policy::store::{GrantStore, MemoryStore};
use grant_policy::{
    AccountId, Decision, Level, ManualClock, Operation, Policy, Requirement, Role, UserId,
};

const NOW: i64 = 1_795_305_600;
const SCHEMA: &str = include_str!("../cedar/grant.cedarschema");
const POLICIES: &str = include_str!("../cedar/grant.cedar");

/// Polls a future that never waits (the memory store) to completion without a runtime.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn uid(ty: &str, id: &str) -> EntityUid {
    EntityUid::from_str(&format!("{ty}::\"{id}\"")).unwrap()
}

/// The fixture, in both engines: alice owns a trade key and a read-only key; bob has a
/// read share, carol a trade share until NOW + 1h, dave a trade share that has expired,
/// and carol a trade share on the read-only key; eve has nothing.
struct Fixture {
    store: Arc<MemoryStore>,
    policy: Policy,
    schema: Schema,
    policies: PolicySet,
    entities: Entities,
}

const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "eve"];
const ACCOUNTS: [&str; 2] = ["acct-trade", "acct-read"];

fn fixture() -> Fixture {
    let store = Arc::new(MemoryStore::new());
    let u = |s: &str| UserId::new(s).unwrap();
    let a = |s: &str| AccountId::new(s).unwrap();
    ready(async {
        store
            .register(&u("alice"), &a("acct-trade"), Level::Trade, NOW - 10)
            .await
            .unwrap();
        store
            .register(&u("alice"), &a("acct-read"), Level::Read, NOW - 10)
            .await
            .unwrap();
        for (grantee, account, level, expires_at) in [
            ("bob", "acct-trade", Level::Read, None),
            ("carol", "acct-trade", Level::Trade, Some(NOW + 3600)),
            ("dave", "acct-trade", Level::Trade, Some(NOW - 1)),
            ("carol", "acct-read", Level::Trade, None),
        ] {
            let share = grant_policy::Share {
                grantee: u(grantee),
                level,
                expires_at,
            };
            store
                .share(&u("alice"), &a(account), &share, NOW - 10)
                .await
                .unwrap();
        }
    });
    let policy = Policy::builder(store.clone())
        .clock(Arc::new(ManualClock::new(NOW)))
        .build();

    let (schema, warnings) = Schema::from_cedarschema_str(SCHEMA).unwrap();
    assert_eq!(warnings.count(), 0);
    let policies = PolicySet::from_str(POLICIES).unwrap();
    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    assert!(validation.validation_passed(), "{validation}");

    // The same grants as Cedar entities, built from what the memory store answers.
    let mut entities = Vec::new();
    for user in USERS {
        entities.push(serde_json::json!({
            "uid": {"type": "User", "id": user}, "attrs": {"key": user}, "parents": []
        }));
    }
    for account in ACCOUNTS {
        let mut tags = serde_json::Map::new();
        let mut capability = None;
        for user in USERS {
            if let Some(access) = store.access_now(&u(user), &a(account)).unwrap() {
                capability = Some(access.capability);
                if let Role::Grantee { level, expires_at } = access.role {
                    tags.insert(
                        user.to_string(),
                        serde_json::json!({
                            "level": level.as_str(),
                            "expires_at": expires_at.unwrap_or(i64::MAX),
                        }),
                    );
                }
            }
        }
        entities.push(serde_json::json!({
            "uid": {"type": "Account", "id": account},
            "attrs": {
                "owner": {"__entity": {"type": "User", "id": "alice"}},
                "capability": capability.unwrap().as_str(),
            },
            "parents": [],
            "tags": tags,
        }));
    }
    let entities =
        Entities::from_json_value(serde_json::Value::Array(entities), Some(&schema)).unwrap();
    Fixture {
        store,
        policy,
        schema,
        policies,
        entities,
    }
}

struct Case {
    user: UserId,
    account: AccountId,
    operation: Operation,
    want: Option<Level>,
    cedar: Request,
}

fn case(f: &Fixture, user: &str, account: &str, operation: Operation, want: Option<Level>) -> Case {
    let context = Context::from_pairs([
        ("now".to_string(), RestrictedExpression::new_long(NOW)),
        (
            "want".to_string(),
            RestrictedExpression::new_string(want.map_or("", Level::as_str).to_string()),
        ),
    ])
    .unwrap();
    let cedar = Request::new(
        uid("User", user),
        uid("Action", operation.as_str()),
        uid("Account", account),
        context,
        Some(&f.schema),
    )
    .unwrap();
    Case {
        user: UserId::new(user).unwrap(),
        account: AccountId::new(account).unwrap(),
        operation,
        want,
        cedar,
    }
}

fn evaluate(store: &MemoryStore, c: &Case) -> Decision {
    let requirement = c.operation.required_with(c.want);
    let access = match requirement {
        Requirement::Never => None,
        Requirement::AtLeast(_) => store.access_now(&c.user, &c.account).unwrap(),
    };
    Decision::evaluate(requirement, access.as_ref(), NOW)
}

fn cedar_allows(f: &Fixture, authorizer: &Authorizer, c: &Case) -> bool {
    authorizer
        .is_authorized(&c.cedar, &f.policies, &f.entities)
        .decision()
        == cedar_policy::Decision::Allow
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let authorizer = Authorizer::new();

    // Agreement on the whole matrix before anything is timed.
    let mut checked = 0;
    for user in USERS {
        for account in ACCOUNTS {
            for operation in Operation::ALL {
                for want in [None, Some(Level::Read), Some(Level::Trade)] {
                    let k = case(&f, user, account, operation, want);
                    let ours = ready(f.policy.decide(&k.user, &k.account, operation, want));
                    assert_eq!(ours, evaluate(&f.store, &k));
                    assert_eq!(
                        ours.is_allowed(),
                        cedar_allows(&f, &authorizer, &k),
                        "engines disagree on {user} {account} {operation} want={want:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 360);

    // The timed mix: allows and denies of every kind.
    let cases = [
        case(&f, "alice", "acct-trade", Operation::CreateOrder, None), // owner: allow
        case(&f, "bob", "acct-trade", Operation::Balance, None),       // read share: allow
        case(&f, "bob", "acct-trade", Operation::CancelOrder, None),   // read share: deny
        case(&f, "carol", "acct-trade", Operation::EditOrder, None),   // trade share: allow
        case(&f, "carol", "acct-read", Operation::CreateOrder, None),  // key cap: deny
        case(&f, "dave", "acct-trade", Operation::Balance, None),      // expired: deny
        case(&f, "eve", "acct-trade", Operation::Balance, None),       // no grant: deny
        case(&f, "alice", "acct-trade", Operation::Withdraw, None),    // never: deny
    ];
    let allowed = cases
        .iter()
        .filter(|k| evaluate(&f.store, k).is_allowed())
        .count();
    assert_eq!(allowed, 3);

    let mut group = c.benchmark_group("grant_policy_decision_x8");
    group.bench_function("grant_policy_evaluate", |b| {
        b.iter(|| {
            for k in &cases {
                let _ = black_box(evaluate(&f.store, black_box(k)));
            }
        });
    });
    group.bench_function("grant_policy_decide", |b| {
        b.iter(|| {
            for k in &cases {
                let k = black_box(k);
                let _ = black_box(ready(f.policy.decide(
                    &k.user,
                    &k.account,
                    k.operation,
                    k.want,
                )));
            }
        });
    });
    group.bench_function("cedar_is_authorized", |b| {
        b.iter(|| {
            for k in &cases {
                black_box(cedar_allows(&f, &authorizer, black_box(k)));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
