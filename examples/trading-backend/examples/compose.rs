//! The Strongroom crates composed on one shared SQLite pool, without the HTTP service:
//! the smallest version of what `trading-backend` does when a user adds an exchange
//! account and later rotates its key.
//!
//! ```text
//! cargo run -p trading-backend --example compose
//! ```
//!
//! 1. One pool for every crate, with a busy timeout (a writer waits for SQLite's write
//!    lock instead of failing at once) and WAL; each crate applies its own migrations
//!    (their version ranges do not overlap).
//! 2. Register the user (auth-core): the owner must exist before anything is his.
//! 3. Store the exchange credential, sealed (cred-cache's `LocalSource` over
//!    crypto-envelope), then register the exchange account to its owner (grant-policy).
//!    In this order a visible account always has its credential; undo in reverse.
//! 4. Authorise (grant-policy), then fetch through the cache (cred-cache).
//! 5. Rotate: write the new credential first, then invalidate the cache. Invalidating
//!    first would let a fetch that runs in between cache the old value again, for up to
//!    the cache's TTL.
//!
//! It runs in the test command too (`tests/compose.rs` calls [`run`]), so it cannot
//! silently rot.

use std::sync::Arc;
use std::time::Duration;

use auth_core::{Accounts, Password, PasswordConfig, PasswordHasher, SessionConfig, Sessions};
use cred_cache::local::LocalSource;
use cred_cache::{AccessLevel, CacheKey, CredCache, CredentialId, ExchangeCredential};
use crypto_envelope::{Envelope, LocalKeyRing, MasterKey, Secrets};
use grant_policy::{AccountId, Level, Operation, Policy};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use zeroize::Zeroizing;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    run(&dir.path().join("service.db")).await
}

/// The whole composition on a fresh database file at `path`.
///
/// # Errors
///
/// Any crate's error, or a step whose result is not the expected one.
pub(crate) async fn run(path: &std::path::Path) -> Result<(), Error> {
    // 1. One shared pool, with a busy timeout.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    let sealed = crypto_envelope::SqliteStore::new(pool.clone());
    let users = auth_core::SqliteStore::new(pool.clone());
    let grants = grant_policy::SqliteStore::new(pool.clone());
    sealed.migrate().await?;
    users.migrate().await?;
    grants.migrate().await?;

    // 2. The user (auth-core).
    let users = Arc::new(users);
    let sessions = Sessions::new(users.clone(), SessionConfig::default());
    let accounts = Accounts::new(
        users.clone(),
        sessions,
        PasswordHasher::new(PasswordConfig::default())?,
    );
    let user = accounts
        .register(
            "alice@example.com",
            &Password::new("correct horse battery staple"),
        )
        .await?;
    println!("registered user {}", user.id);

    // 3. Her exchange credential, sealed at rest, then the exchange account's grant.
    // A throwaway key; a service reads its ring with `LocalKeyRing::from_env()`.
    let ring = LocalKeyRing::single(MasterKey::generate()?)?;
    let source = Arc::new(LocalSource::new(Secrets::new(
        Envelope::new(ring)?,
        Arc::new(sealed),
    )));
    let credential_id = CredentialId::new("acct-1")?;
    source.put(&credential(&credential_id, "key-v1")?).await?;
    let policy = Policy::builder(Arc::new(grants)).build();
    let owner = grant_policy::UserId::new(&user.id)?;
    let account = AccountId::new("acct-1")?;
    policy
        .register_account(&owner, &account, Level::Trade)
        .await?;
    println!(
        "stored the sealed credential, then registered account {}",
        account.as_str()
    );

    // 4. Authorise, then fetch through the cache.
    let cache = CredCache::builder(source.clone()).build()?;
    let decision = policy
        .decide(&owner, &account, Operation::CreateOrder, None)
        .await;
    if !decision.is_allowed() {
        return Err(format!("owner refused: {} ({})", decision.code(), decision.status()).into());
    }
    let key = CacheKey::new(
        cred_cache::UserId::new(&user.id)?,
        credential_id.clone(),
        AccessLevel::Trade,
    );
    expect_api_key(&cache, &key, "key-v1").await?;
    expect_api_key(&cache, &key, "key-v1").await?; // a hit: no second fetch
    println!(
        "fetched the credential: {} fetch(es)",
        cache.stats().fetches
    );

    // 5. Rotate: the new value first, then the invalidation.
    source.put(&credential(&credential_id, "key-v2")?).await?;
    cache.invalidate_credential(&credential_id).await?;
    expect_api_key(&cache, &key, "key-v2").await?;
    let fetches = cache.stats().fetches;
    if fetches != 2 {
        return Err(format!("expected 2 fetches, got {fetches}").into());
    }
    println!("rotated and invalidated: the next fetch read the new key");

    // Someone else is refused before the cache is ever asked (404: the account's
    // existence does not leak).
    let stranger = grant_policy::UserId::new("mallory")?;
    let refused = policy
        .decide(&stranger, &account, Operation::CreateOrder, None)
        .await;
    if refused.is_allowed() || refused.status() != http::StatusCode::NOT_FOUND {
        return Err(format!("stranger not refused with 404: {refused:?}").into());
    }
    println!("a stranger is refused: {}", refused.status());
    pool.close().await;
    Ok(())
}

fn credential(id: &CredentialId, api_key: &str) -> Result<ExchangeCredential, Error> {
    Ok(ExchangeCredential::new(
        id.clone(),
        Zeroizing::new(api_key.to_owned()),
        Zeroizing::new("not-a-real-secret".to_owned()),
        None,
        false,
    )?)
}

async fn expect_api_key(cache: &CredCache, key: &CacheKey, want: &str) -> Result<(), Error> {
    let got = cache.get_or_fetch(key).await?;
    if got.expose_api_key() != want {
        return Err(format!("fetched the wrong credential (want {want})").into());
    }
    Ok(())
}
