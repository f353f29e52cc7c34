//! Test helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cred_cache::{
    AccessLevel, CacheKey, CredentialId, CredentialSource, ExchangeCredential, FetchError, UserId,
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
                CredentialId::new("someone-else").unwrap(),
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

pub fn key(user: &str, credential: &str, level: AccessLevel) -> CacheKey {
    CacheKey::new(
        UserId::new(user).unwrap(),
        CredentialId::new(credential).unwrap(),
        level,
    )
}
