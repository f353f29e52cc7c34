//! Grant decisions and grant management, on every store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::{RecordingSink, acct, user};
use grant_policy::store::{GrantStore, MemoryStore};
use grant_policy::{
    Access, AccountId, Decision, DenyReason, GrantError, Level, ManualClock, Operation, Policy,
    Share, StoreError, UserId,
};

const T0: i64 = 1_795_305_600; // 2026-11-22T00:00:00Z

fn allow(effective: Level) -> Decision {
    Decision::Allow { effective }
}

fn deny(reason: DenyReason) -> Decision {
    Decision::Deny { reason }
}

/// The whole grant life cycle; the same assertions for every store.
pub(crate) async fn scenario(store: Arc<dyn GrantStore>) {
    let clock = Arc::new(ManualClock::new(T0));
    let sink = Arc::new(RecordingSink::default());
    let policy = Policy::builder(store)
        .clock(clock.clone())
        .audit(sink.clone())
        .build();
    let (alice, bob, carol, mallory) = (user("alice"), user("bob"), user("carol"), user("mallory"));
    let (trade_acct, read_acct) = (acct("acct-trade"), acct("acct-read"));

    policy
        .register_account(&alice, &trade_acct, Level::Trade)
        .await
        .unwrap();
    policy
        .register_account(&alice, &read_acct, Level::Read)
        .await
        .unwrap();

    // Another user cannot take over the id.
    assert!(matches!(
        policy
            .register_account(&mallory, &trade_acct, Level::Trade)
            .await,
        Err(GrantError::AlreadyRegistered)
    ));

    // Owner: Trade, capped by the key.
    let asked = Arc::new(AtomicUsize::new(0));
    let d = |u: &UserId, a: &AccountId, op: Operation, want: Option<Level>| {
        asked.fetch_add(1, Ordering::SeqCst);
        let policy = policy.clone();
        let (u, a) = (u.clone(), a.clone());
        async move { policy.decide(&u, &a, op, want).await }
    };
    assert_eq!(
        d(&alice, &trade_acct, Operation::CreateOrder, None).await,
        allow(Level::Trade)
    );
    assert_eq!(
        d(&alice, &read_acct, Operation::Balance, None).await,
        allow(Level::Read)
    );
    assert_eq!(
        d(&alice, &read_acct, Operation::CreateOrder, None).await,
        deny(DenyReason::InsufficientLevel)
    );
    // Withdraw and transfer: never, not even for the owner.
    assert_eq!(
        d(&alice, &trade_acct, Operation::Withdraw, None).await,
        deny(DenyReason::NeverAllowed)
    );
    assert_eq!(
        d(&alice, &trade_acct, Operation::Transfer, Some(Level::Trade)).await,
        deny(DenyReason::NeverAllowed)
    );

    // No grant: 404, the same as an account that does not exist.
    let nobody = d(&bob, &trade_acct, Operation::Balance, None).await;
    let missing = d(&bob, &acct("no-such-account"), Operation::Balance, None).await;
    assert_eq!(nobody, deny(DenyReason::NotVisible));
    assert_eq!(nobody, missing);
    assert_eq!(nobody.status().as_u16(), 404);

    // Only the owner shares and revokes; a non-owner gets the same error whether the
    // account exists or not.
    let e1 = policy
        .share(&mallory, &trade_acct, &mallory.clone(), Level::Trade, None)
        .await;
    assert!(matches!(e1, Err(GrantError::SelfShare)));
    let e2 = policy
        .share(&mallory, &trade_acct, &bob, Level::Trade, None)
        .await;
    let e3 = policy
        .share(&mallory, &acct("no-such-account"), &bob, Level::Trade, None)
        .await;
    assert!(matches!(e2, Err(GrantError::NotFound)));
    assert!(matches!(e3, Err(GrantError::NotFound)));
    assert_eq!(
        d(&bob, &trade_acct, Operation::Balance, None).await,
        deny(DenyReason::NotVisible)
    );
    assert!(matches!(
        policy
            .share(&alice, &trade_acct, &alice, Level::Read, None)
            .await,
        Err(GrantError::SelfShare)
    ));
    assert!(matches!(
        policy
            .share(&alice, &trade_acct, &bob, Level::Read, Some(T0))
            .await,
        Err(GrantError::ExpiryInPast)
    ));

    // Read share.
    policy
        .share(&alice, &trade_acct, &bob, Level::Read, None)
        .await
        .unwrap();
    assert_eq!(
        d(&bob, &trade_acct, Operation::OpenOrders, None).await,
        allow(Level::Read)
    );
    assert_eq!(
        d(&bob, &trade_acct, Operation::CancelOrder, None).await,
        deny(DenyReason::InsufficientLevel)
    );
    // `want` can only raise the requirement.
    assert_eq!(
        d(&bob, &trade_acct, Operation::Balance, Some(Level::Trade)).await,
        deny(DenyReason::InsufficientLevel)
    );
    assert_eq!(
        d(&bob, &trade_acct, Operation::Balance, Some(Level::Read)).await,
        allow(Level::Read)
    );

    // A share is per account: bob sees nothing on the other one.
    assert_eq!(
        d(&bob, &read_acct, Operation::Balance, None).await,
        deny(DenyReason::NotVisible)
    );

    // Upgrade to Trade, with an expiry.
    policy
        .share(&alice, &trade_acct, &bob, Level::Trade, Some(T0 + 3600))
        .await
        .unwrap();
    assert_eq!(
        d(&bob, &trade_acct, Operation::CancelAll, None).await,
        allow(Level::Trade)
    );
    assert_eq!(
        d(&bob, &trade_acct, Operation::Withdraw, None).await,
        deny(DenyReason::NeverAllowed)
    );

    // Trade share on a read-only key: capped at Read.
    policy
        .share(&alice, &read_acct, &carol, Level::Trade, None)
        .await
        .unwrap();
    assert_eq!(
        d(&carol, &read_acct, Operation::Ledger, None).await,
        allow(Level::Read)
    );
    assert_eq!(
        d(&carol, &read_acct, Operation::EditOrder, None).await,
        deny(DenyReason::InsufficientLevel)
    );

    // Expiry, at the exact second.
    clock.set(T0 + 3599);
    assert_eq!(
        d(&bob, &trade_acct, Operation::CreateOrder, None).await,
        allow(Level::Trade)
    );
    clock.set(T0 + 3600);
    let expired = d(&bob, &trade_acct, Operation::Balance, None).await;
    assert_eq!(expired, deny(DenyReason::ShareExpired));
    assert_eq!(expired.status().as_u16(), 404);

    // Listing is the owner's only.
    let shares = policy.shares(&alice, &trade_acct).await.unwrap();
    assert_eq!(
        shares,
        vec![Share {
            grantee: bob.clone(),
            level: Level::Trade,
            expires_at: Some(T0 + 3600)
        }]
    );
    assert!(matches!(
        policy.shares(&bob, &trade_acct).await,
        Err(GrantError::NotFound)
    ));

    // Revoke: only the owner; afterwards the grantee sees nothing.
    assert!(matches!(
        policy.revoke(&bob, &read_acct, &carol).await,
        Err(GrantError::NotFound)
    ));
    assert_eq!(
        d(&carol, &read_acct, Operation::Balance, None).await,
        allow(Level::Read)
    );
    policy.revoke(&alice, &read_acct, &carol).await.unwrap();
    assert_eq!(
        d(&carol, &read_acct, Operation::Balance, None).await,
        deny(DenyReason::NotVisible)
    );
    // Revoking again is fine.
    policy.revoke(&alice, &read_acct, &carol).await.unwrap();

    // Key downgraded to read-only by the owner: everyone is capped at once.
    clock.set(T0);
    policy
        .share(&alice, &trade_acct, &bob, Level::Trade, None)
        .await
        .unwrap();
    policy
        .register_account(&alice, &trade_acct, Level::Read)
        .await
        .unwrap();
    assert_eq!(
        d(&alice, &trade_acct, Operation::CreateOrder, None).await,
        deny(DenyReason::InsufficientLevel)
    );
    assert_eq!(
        d(&bob, &trade_acct, Operation::CreateOrder, None).await,
        deny(DenyReason::InsufficientLevel)
    );
    assert_eq!(
        d(&bob, &trade_acct, Operation::Positions, None).await,
        allow(Level::Read)
    );

    // Deregistering removes the shares with it.
    assert!(matches!(
        policy.deregister_account(&bob, &trade_acct).await,
        Err(GrantError::NotFound)
    ));
    policy
        .deregister_account(&alice, &trade_acct)
        .await
        .unwrap();
    assert_eq!(
        d(&alice, &trade_acct, Operation::Balance, None).await,
        deny(DenyReason::NotVisible)
    );
    assert_eq!(
        d(&bob, &trade_acct, Operation::Balance, None).await,
        deny(DenyReason::NotVisible)
    );
    policy
        .register_account(&mallory, &trade_acct, Level::Trade)
        .await
        .unwrap();
    assert_eq!(
        d(&bob, &trade_acct, Operation::Balance, None).await,
        deny(DenyReason::NotVisible)
    );

    {
        // Every decision was audited, with its outcome.
        let recorded = sink.decisions.lock().unwrap();
        assert_eq!(
            recorded.len(),
            asked.load(Ordering::SeqCst),
            "one audit record per decision"
        );
        assert!(recorded.iter().any(|r| r.user == "bob"
            && r.account == "acct-trade"
            && r.operation == Operation::Balance
            && r.decision == deny(DenyReason::ShareExpired)));
        let grants = sink.grants.lock().unwrap();
        assert!(grants.contains(&("mallory".into(), "grant.share", "not_found")));
        assert!(grants.contains(&("alice".into(), "grant.revoke", "ok")));
    }

    // What a user may use now: owned accounts at the key's capability, shares in effect
    // capped by the key, an expired share left out, nobody else's accounts.
    let (lister, other) = (user("lister"), user("lister-other"));
    for (owner, id, capability) in [
        (&lister, "list-own", Level::Trade),
        (&other, "list-read", Level::Trade),
        (&other, "list-capped", Level::Read),
        (&other, "list-expiring", Level::Trade),
        (&other, "list-private", Level::Trade),
    ] {
        policy
            .register_account(owner, &acct(id), capability)
            .await
            .unwrap();
    }
    for (id, level, expires_at) in [
        ("list-read", Level::Read, None),
        ("list-capped", Level::Trade, None),
        ("list-expiring", Level::Trade, Some(T0 + 60)),
    ] {
        policy
            .share(&other, &acct(id), &lister, level, expires_at)
            .await
            .unwrap();
    }
    let listed = |list: Vec<grant_policy::AccountAccess>| {
        list.into_iter()
            .map(|a| (a.account.as_str().to_owned(), a.level, a.owned))
            .collect::<Vec<_>>()
    };
    let now = listed(policy.accounts_for(&lister).await.unwrap());
    assert_eq!(
        now,
        [
            ("list-capped".to_owned(), Level::Read, false),
            ("list-expiring".to_owned(), Level::Trade, false),
            ("list-own".to_owned(), Level::Trade, true),
            ("list-read".to_owned(), Level::Read, false),
        ]
    );
    clock.advance(120);
    let later = listed(policy.accounts_for(&lister).await.unwrap());
    assert!(
        later.iter().all(|(id, _, _)| id != "list-expiring"),
        "{later:?}"
    );
    assert_eq!(later.len(), 3);
    assert!(
        policy
            .accounts_for(&user("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn memory_store() {
    scenario(Arc::new(MemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store() {
    let (store, _dir) = common::sqlite_store().await;
    scenario(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_store() {
    common::with_pg_store(|store| scenario(store)).await;
}

/// A store that always fails.
#[derive(Debug)]
struct Down;

#[async_trait]
impl GrantStore for Down {
    async fn register(
        &self,
        _: &UserId,
        _: &AccountId,
        _: Level,
        _: i64,
    ) -> Result<(), GrantError> {
        Err(StoreError::Poisoned.into())
    }
    async fn deregister(&self, _: &UserId, _: &AccountId) -> Result<(), GrantError> {
        Err(StoreError::Poisoned.into())
    }
    async fn access(&self, _: &UserId, _: &AccountId) -> Result<Option<Access>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
    async fn share(&self, _: &UserId, _: &AccountId, _: &Share, _: i64) -> Result<(), GrantError> {
        Err(StoreError::Poisoned.into())
    }
    async fn revoke(&self, _: &UserId, _: &AccountId, _: &UserId) -> Result<bool, GrantError> {
        Err(StoreError::Poisoned.into())
    }
    async fn shares(&self, _: &UserId, _: &AccountId) -> Result<Vec<Share>, GrantError> {
        Err(StoreError::Poisoned.into())
    }
    async fn owner(&self, _: &AccountId) -> Result<Option<UserId>, StoreError> {
        Err(StoreError::Poisoned)
    }
    async fn accessible(&self, _: &UserId) -> Result<Vec<(AccountId, Access)>, StoreError> {
        Err(StoreError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn store_failure_is_503_never_allow() {
    let sink = Arc::new(RecordingSink::default());
    let policy = Policy::builder(Arc::new(Down)).audit(sink.clone()).build();
    for op in Operation::ALL {
        let got = policy.decide(&user("alice"), &acct("a"), op, None).await;
        assert!(!got.is_allowed());
        if op == Operation::Withdraw || op == Operation::Transfer {
            assert_eq!(got, deny(DenyReason::NeverAllowed));
        } else {
            assert_eq!(got, deny(DenyReason::StoreUnavailable));
            assert_eq!(got.status().as_u16(), 503);
        }
    }
    assert_eq!(sink.decisions.lock().unwrap().len(), Operation::ALL.len());
    // No permit from a store that is down, and no proof of ownership.
    assert_eq!(
        policy
            .authorize(&user("alice"), &acct("a"), Operation::Balance, None)
            .await
            .unwrap_err(),
        DenyReason::StoreUnavailable
    );
    assert!(matches!(
        policy.ownership(&user("alice"), &acct("a")).await,
        Err(GrantError::Store(_))
    ));
    assert!(policy.accounts_for(&user("alice")).await.is_err());
    assert!(matches!(
        policy
            .share(&user("alice"), &acct("a"), &user("bob"), Level::Read, None)
            .await,
        Err(GrantError::Store(_))
    ));
}

/// A corrupt row (an unknown level) is a store failure, not a grant.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn corrupt_level_denies() {
    let (store, _dir) = common::sqlite_store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query(
        "INSERT INTO gp_accounts (account_id, owner_id, capability, created_at) \
         VALUES ('a', 'alice', 'trade', 0)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    // Bypass the CHECK constraint the way a broken migration or manual edit might.
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO gp_shares (account_id, grantee_id, level, expires_at, created_at) \
         VALUES ('a', 'bob', 'admin', NULL, 0)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let policy = Policy::builder(Arc::new(store)).build();
    let got = policy
        .decide(&user("bob"), &acct("a"), Operation::Balance, None)
        .await;
    assert_eq!(got, deny(DenyReason::StoreUnavailable));
}

/// The SQLite store is opened the way the README says: WAL, a busy timeout, FULL sync,
/// foreign keys.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_store_settings() {
    let (store, _dir) = common::sqlite_store().await;
    let mut conn = store.pool().acquire().await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let (timeout,): (i64,) = sqlx::query_as("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(timeout, 30_000);
    let (sync,): (i64,) = sqlx::query_as("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous = FULL");
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let (versions,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM _sqlx_migrations WHERE version BETWEEN 30001 AND 39999",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(versions, 3);
}
