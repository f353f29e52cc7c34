//! Property tests: random sequences of register, share, revoke, expire (clock moves) and
//! decide, checked against a small reference model and three invariants:
//! a user without a live Trade grant is never allowed a trade operation, withdraw and
//! transfer are never allowed, and the effective level never exceeds the key capability.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{acct, user};
use grant_policy::store::{GrantStore, MemoryStore};
use grant_policy::{
    Decision, DenyReason, GrantError, Level, ManualClock, Operation, Policy, Requirement,
};
use proptest::prelude::*;

const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const ACCOUNTS: [&str; 3] = ["a0", "a1", "a2"];
const T0: i64 = 1_795_305_600;

#[derive(Debug, Clone)]
enum Step {
    Register {
        owner: usize,
        account: usize,
        capability: Level,
    },
    Deregister {
        actor: usize,
        account: usize,
    },
    Share {
        actor: usize,
        account: usize,
        grantee: usize,
        level: Level,
        ttl: Option<i64>,
    },
    Revoke {
        actor: usize,
        account: usize,
        grantee: usize,
    },
    Advance {
        secs: i64,
    },
    Decide {
        user: usize,
        account: usize,
        op: Operation,
        want: Option<Level>,
    },
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![Just(Level::Read), Just(Level::Trade)]
}

fn step() -> impl Strategy<Value = Step> {
    let u = 0..USERS.len();
    let a = 0..ACCOUNTS.len();
    prop_oneof![
        2 => (u.clone(), a.clone(), level())
            .prop_map(|(owner, account, capability)| Step::Register { owner, account, capability }),
        1 => (u.clone(), a.clone()).prop_map(|(actor, account)| Step::Deregister { actor, account }),
        4 => (u.clone(), a.clone(), u.clone(), level(), proptest::option::of(-5i64..200))
            .prop_map(|(actor, account, grantee, level, ttl)| Step::Share { actor, account, grantee, level, ttl }),
        2 => (u.clone(), a.clone(), u.clone())
            .prop_map(|(actor, account, grantee)| Step::Revoke { actor, account, grantee }),
        2 => (0i64..150).prop_map(|secs| Step::Advance { secs }),
        8 => (u, a, 0..Operation::ALL.len(), proptest::option::of(level()))
            .prop_map(|(user, account, op, want)| Step::Decide { user, account, op: Operation::ALL[op], want }),
    ]
}

/// grantee -> (level, expiry).
type Shares = HashMap<usize, (Level, Option<i64>)>;

/// The reference model: account -> (owner, capability, shares).
#[derive(Debug, Default)]
struct Model {
    accounts: HashMap<usize, (usize, Level, Shares)>,
}

impl Model {
    /// The level `user` may act with on `account` at `now`, if any (live grants only).
    fn live_level(&self, user: usize, account: usize, now: i64) -> Option<Level> {
        let (owner, cap, shares) = self.accounts.get(&account)?;
        if *owner == user {
            return Some(*cap);
        }
        let (level, exp) = shares.get(&user)?;
        if exp.is_some_and(|e| now >= e) {
            return None;
        }
        Some(if *level == Level::Trade && *cap == Level::Trade {
            Level::Trade
        } else {
            Level::Read
        })
    }

    fn expected(
        &self,
        user: usize,
        account: usize,
        op: Operation,
        want: Option<Level>,
        now: i64,
    ) -> Decision {
        let deny = |reason| Decision::Deny { reason };
        let need = match op.required_with(want) {
            Requirement::Never => return deny(DenyReason::NeverAllowed),
            Requirement::AtLeast(l) => l,
        };
        let Some((owner, _, shares)) = self.accounts.get(&account) else {
            return deny(DenyReason::NotVisible);
        };
        if *owner != user && !shares.contains_key(&user) {
            return deny(DenyReason::NotVisible);
        }
        match self.live_level(user, account, now) {
            None => deny(DenyReason::ShareExpired),
            Some(l) if l >= need => Decision::Allow { effective: l },
            Some(_) => deny(DenyReason::InsufficientLevel),
        }
    }
}

async fn run(store: Arc<dyn GrantStore>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(T0));
    let policy = Policy::builder(store).clock(clock.clone()).build();
    let mut model = Model::default();
    let mut now = T0;
    for step in steps {
        match step {
            Step::Register {
                owner,
                account,
                capability,
            } => {
                let got = policy
                    .register_account(&user(USERS[owner]), &acct(ACCOUNTS[account]), capability)
                    .await;
                match model.accounts.get_mut(&account) {
                    Some((o, cap, _)) if *o == owner => {
                        prop_assert!(got.is_ok());
                        *cap = capability;
                    }
                    Some(_) => prop_assert!(matches!(got, Err(GrantError::AlreadyRegistered))),
                    None => {
                        prop_assert!(got.is_ok());
                        model
                            .accounts
                            .insert(account, (owner, capability, HashMap::new()));
                    }
                }
            }
            Step::Deregister { actor, account } => {
                let got = policy
                    .deregister_account(&user(USERS[actor]), &acct(ACCOUNTS[account]))
                    .await;
                if model
                    .accounts
                    .get(&account)
                    .is_some_and(|(o, _, _)| *o == actor)
                {
                    prop_assert!(got.is_ok());
                    model.accounts.remove(&account);
                } else {
                    prop_assert!(matches!(got, Err(GrantError::NotFound)));
                }
            }
            Step::Share {
                actor,
                account,
                grantee,
                level,
                ttl,
            } => {
                let expires_at = ttl.map(|t| now + t);
                let got = policy
                    .share(
                        &user(USERS[actor]),
                        &acct(ACCOUNTS[account]),
                        &user(USERS[grantee]),
                        level,
                        expires_at,
                    )
                    .await;
                if actor == grantee {
                    prop_assert!(matches!(got, Err(GrantError::SelfShare)));
                } else if expires_at.is_some_and(|e| e <= now) {
                    prop_assert!(matches!(got, Err(GrantError::ExpiryInPast)));
                } else if let Some((o, _, shares)) = model
                    .accounts
                    .get_mut(&account)
                    .filter(|(o, _, _)| *o == actor)
                {
                    let _ = o;
                    prop_assert!(got.is_ok());
                    shares.insert(grantee, (level, expires_at));
                } else {
                    prop_assert!(matches!(got, Err(GrantError::NotFound)));
                }
            }
            Step::Revoke {
                actor,
                account,
                grantee,
            } => {
                let got = policy
                    .revoke(
                        &user(USERS[actor]),
                        &acct(ACCOUNTS[account]),
                        &user(USERS[grantee]),
                    )
                    .await;
                if let Some((_, _, shares)) = model
                    .accounts
                    .get_mut(&account)
                    .filter(|(o, _, _)| *o == actor)
                {
                    prop_assert!(got.is_ok());
                    shares.remove(&grantee);
                } else {
                    prop_assert!(matches!(got, Err(GrantError::NotFound)));
                }
            }
            Step::Advance { secs } => {
                now += secs;
                clock.set(now);
            }
            Step::Decide {
                user: u,
                account,
                op,
                want,
            } => {
                let got = policy
                    .decide(&user(USERS[u]), &acct(ACCOUNTS[account]), op, want)
                    .await;
                // The invariants, stated on their own...
                if matches!(op, Operation::Withdraw | Operation::Transfer) {
                    prop_assert!(!got.is_allowed(), "{op} allowed");
                }
                let live = model.live_level(u, account, now);
                if op.required() == Requirement::AtLeast(Level::Trade) && got.is_allowed() {
                    prop_assert_eq!(
                        live,
                        Some(Level::Trade),
                        "trade op without a live Trade grant"
                    );
                }
                if let Some(effective) = got.effective() {
                    let cap = model.accounts.get(&account).map(|(_, c, _)| *c);
                    prop_assert!(
                        cap.is_some_and(|c| effective <= c),
                        "effective above the key"
                    );
                }
                // ...and the exact decision.
                prop_assert_eq!(got, model.expected(u, account, op, want, now));
            }
        }
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(steps in proptest::collection::vec(step(), 1..80)) {
        runtime().block_on(run(Arc::new(MemoryStore::new()), steps))?;
    }
}

#[cfg(feature = "sqlite")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_matches_the_model(steps in proptest::collection::vec(step(), 1..60)) {
        let rt = runtime();
        rt.block_on(async {
            let (store, _dir) = common::sqlite_store().await;
            run(Arc::new(store), steps).await
        })?;
    }
}

/// The same model check on PostgreSQL (fewer cases: each uses a fresh schema).
#[cfg(feature = "postgres")]
#[test]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
fn postgres_store_matches_the_model() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(step(), 1..60), |steps| {
            runtime().block_on(common::with_pg_store(|store| run(store, steps)))
        })
        .unwrap();
}
