//! Permits: `Policy::authorize` issues one only for an allowed decision, at the level
//! the operation required; `Policy::ownership` only for the owner. The forging of either
//! outside the crate is the `compile_fail` tests in `src/permit.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::sync::Arc;

use common::{RecordingSink, acct, user};
use grant_policy::store::MemoryStore;
use grant_policy::{AccessPermit, DenyReason, GrantError, Level, Operation, OwnerPermit, Policy};

#[tokio::test]
async fn a_permit_only_for_an_allowed_decision_at_the_required_level() {
    let sink = Arc::new(RecordingSink::default());
    let policy = Policy::builder(Arc::new(MemoryStore::new()))
        .audit(sink.clone())
        .build();
    let (alice, bob, mallory) = (user("alice"), user("bob"), user("mallory"));
    let account = acct("acct-1");
    policy
        .register_account(&alice, &account, Level::Trade)
        .await
        .unwrap();
    policy
        .share(&alice, &account, &bob, Level::Read, None)
        .await
        .unwrap();

    // The owner: a trade permit for an order, a read permit for a balance (the level
    // the operation requires, not the owner's effective Trade), a trade permit when
    // `want` raises a read.
    let permit = policy
        .authorize(&alice, &account, Operation::CreateOrder, None)
        .await
        .unwrap();
    assert_eq!(
        (permit.user(), permit.account(), permit.level()),
        (&alice, &account, Level::Trade)
    );
    let read = policy
        .authorize(&alice, &account, Operation::Balance, None)
        .await
        .unwrap();
    assert_eq!(read.level(), Level::Read);
    let raised = policy
        .authorize(&alice, &account, Operation::Balance, Some(Level::Trade))
        .await
        .unwrap();
    assert_eq!(AccessPermit::level(&raised), Level::Trade);
    assert_eq!(AccessPermit::user(&raised), &alice);
    assert_eq!(AccessPermit::account(&raised), &account);

    // The read grantee: a read permit, and for a trade operation no permit at all.
    let grantee = policy
        .authorize(&bob, &account, Operation::OpenOrders, None)
        .await
        .unwrap();
    assert_eq!(grantee.level(), Level::Read);
    assert_eq!(
        policy
            .authorize(&bob, &account, Operation::CancelAll, None)
            .await
            .unwrap_err(),
        DenyReason::InsufficientLevel
    );
    assert_eq!(
        policy
            .authorize(&bob, &account, Operation::Ledger, Some(Level::Trade))
            .await
            .unwrap_err(),
        DenyReason::InsufficientLevel
    );
    // A stranger, and withdrawals (even for the owner): no permit.
    assert_eq!(
        policy
            .authorize(&mallory, &account, Operation::Balance, None)
            .await
            .unwrap_err(),
        DenyReason::NotVisible
    );
    for op in [Operation::Withdraw, Operation::Transfer] {
        assert_eq!(
            policy
                .authorize(&alice, &account, op, None)
                .await
                .unwrap_err(),
            DenyReason::NeverAllowed
        );
    }
    // Every authorize is one audited decision.
    assert_eq!(sink.decisions.lock().unwrap().len(), 9);
}

#[tokio::test]
async fn a_revoke_between_two_requests_leaves_the_second_without_a_permit() {
    let policy = Policy::builder(Arc::new(MemoryStore::new())).build();
    let (alice, bob, account) = (user("alice"), user("bob"), acct("acct-1"));
    policy
        .register_account(&alice, &account, Level::Trade)
        .await
        .unwrap();
    policy
        .share(&alice, &account, &bob, Level::Trade, None)
        .await
        .unwrap();
    let first = policy
        .authorize(&bob, &account, Operation::CreateOrder, None)
        .await;
    assert!(first.is_ok());
    policy.revoke(&alice, &account, &bob).await.unwrap();
    assert_eq!(
        policy
            .authorize(&bob, &account, Operation::CreateOrder, None)
            .await
            .unwrap_err(),
        DenyReason::NotVisible
    );
}

#[tokio::test]
async fn ownership_only_for_the_owner() {
    let policy = Policy::builder(Arc::new(MemoryStore::new())).build();
    let (alice, bob, account) = (user("alice"), user("bob"), acct("acct-1"));
    let claimed = policy
        .register_account(&alice, &account, Level::Read)
        .await
        .unwrap();
    assert_eq!((claimed.owner(), claimed.account()), (&alice, &account));
    policy
        .share(&alice, &account, &bob, Level::Trade, None)
        .await
        .unwrap();
    let proof = policy.ownership(&alice, &account).await.unwrap();
    assert_eq!(OwnerPermit::owner(&proof), &alice);
    assert_eq!(OwnerPermit::account(&proof), &account);
    // A grantee, even at trade level, and a stranger: no proof, the same answer as for
    // an account that does not exist.
    for (who, which) in [
        (&bob, &account),
        (&user("mallory"), &account),
        (&alice, &acct("none")),
    ] {
        assert!(matches!(
            policy.ownership(who, which).await,
            Err(GrantError::NotFound)
        ));
    }
    // Another user cannot claim the id, so gets no proof either.
    assert!(matches!(
        policy.register_account(&bob, &account, Level::Trade).await,
        Err(GrantError::AlreadyRegistered)
    ));
}
