//! Test helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cred_cache::{
    AccessPermit, AccountId, CacheKey, CredentialSource, ExchangeCredential, FetchError, Level,
    OwnerPermit, UserId,
};
use zeroize::Zeroizing;

/// What the [`TestSource`] answers next.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// A credential whose api key is `key-<fetch number>`.
    Ok,
    /// A read-only credential (the source does not refuse Trade itself).
    ReadOnlyUnchecked,
    /// A credential for another id.
    WrongId,
    /// This error.
    Fail(FetchError),
}

/// A source that counts its fetches and can be slowed down or made to fail.
#[derive(Debug)]
pub struct TestSource {
    pub fetches: AtomicU64,
    pub delay: Duration,
    pub behaviour: Mutex<Behaviour>,
    /// When set, each fetch waits for this notification before answering.
    pub gate: Option<tokio::sync::Notify>,
    /// Signalled when a fetch starts.
    pub started: tokio::sync::Notify,
    /// While `false`, every fetch waits (after counting itself and notifying
    /// `started`) until it is set to `true` again. `true` at construction.
    pub open: tokio::sync::watch::Sender<bool>,
}

impl TestSource {
    pub fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            fetches: AtomicU64::new(0),
            delay,
            behaviour: Mutex::new(Behaviour::Ok),
            gate: None,
            started: tokio::sync::Notify::new(),
            open: tokio::sync::watch::Sender::new(true),
        })
    }

    pub fn gated() -> Arc<Self> {
        Arc::new(Self {
            fetches: AtomicU64::new(0),
            delay: Duration::ZERO,
            behaviour: Mutex::new(Behaviour::Ok),
            gate: Some(tokio::sync::Notify::new()),
            started: tokio::sync::Notify::new(),
            open: tokio::sync::watch::Sender::new(true),
        })
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

pub fn z(s: &str) -> Zeroizing<String> {
    Zeroizing::new(s.to_owned())
}

#[async_trait]
impl CredentialSource for TestSource {
    async fn fetch(&self, key: &CacheKey) -> Result<ExchangeCredential, FetchError> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        self.started.notify_one();
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        // Only fails if the sender is dropped, which `self` prevents.
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let behaviour = self.behaviour.lock().unwrap().clone();
        let id = key.credential().clone();
        let key_text = format!("key-{n}");
        match behaviour {
            Behaviour::Ok => ExchangeCredential::new(id, z(&key_text), z("secret"), None, false)
                .map_err(|_| FetchError::Storage),
            Behaviour::ReadOnlyUnchecked => {
                ExchangeCredential::new(id, z(&key_text), z("secret"), None, true)
                    .map_err(|_| FetchError::Storage)
            }
            Behaviour::WrongId => ExchangeCredential::new(
                AccountId::new("someone-else").unwrap(),
                z(&key_text),
                z("secret"),
                None,
                false,
            )
            .map_err(|_| FetchError::Storage),
            Behaviour::Fail(e) => Err(e),
        }
    }
}

/// A test policy engine's permit: whatever the test says was allowed. It is `Clone`
/// and lends itself (`&TestPermit` is a permit too) so that tests can repeat a lookup;
/// grant-policy's `Permit` is neither.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TestPermit {
    pub user: UserId,
    pub account: AccountId,
    pub level: Level,
}

impl TestPermit {
    pub fn user(&self) -> &UserId {
        &self.user
    }
    pub fn credential(&self) -> &AccountId {
        &self.account
    }
    pub fn level(&self) -> Level {
        self.level
    }
}

impl AccessPermit for TestPermit {
    fn user(&self) -> &UserId {
        &self.user
    }
    fn account(&self) -> &AccountId {
        &self.account
    }
    fn level(&self) -> Level {
        self.level
    }
}

impl AccessPermit for &TestPermit {
    fn user(&self) -> &UserId {
        &self.user
    }
    fn account(&self) -> &AccountId {
        &self.account
    }
    fn level(&self) -> Level {
        self.level
    }
}

/// A permit for (`user`, `credential`, `level`).
pub fn key(user: &str, credential: &str, level: Level) -> TestPermit {
    TestPermit {
        user: UserId::new(user).unwrap(),
        account: AccountId::new(credential).unwrap(),
        level,
    }
}

/// The cache key of a permit for (`user`, `credential`, `level`), at `level`: what a
/// source is asked for.
pub fn ck(user: &str, credential: &str, level: Level) -> CacheKey {
    CacheKey::new(&key(user, credential, level), level).unwrap()
}

/// A test policy engine's proof that `owner` owns `account`.
#[derive(Debug)]
pub struct Owns {
    pub owner: UserId,
    pub account: AccountId,
}

impl OwnerPermit for Owns {
    fn owner(&self) -> &UserId {
        &self.owner
    }
    fn account(&self) -> &AccountId {
        &self.account
    }
}

/// Proof that some owner owns `account`.
pub fn owns(account: &str) -> Owns {
    Owns {
        owner: UserId::new("owner").unwrap(),
        account: AccountId::new(account).unwrap(),
    }
}
