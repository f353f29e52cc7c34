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
//! 3. Register the exchange account to its owner (grant-policy), which claims the id and
//!    answers an `Ownership` proof; then store the exchange credential, sealed
//!    (cred-cache's `LocalSource` over crypto-envelope), with that proof: storing
//!    overwrites by account id, so only the account's owner may. Undo in reverse.
//! 4. Authorise (grant-policy's `Permit`, issued only for an allowed decision), then
//!    fetch through the cache with the permit as the key (cred-cache).
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
use cred_cache::{CredCache, ExchangeCredential};
use crypto_envelope::{Envelope, LocalKeyRing, MasterKey, Secrets};
use grant_policy::{AccountId, Level, Operation, Permit, Policy, UserId};
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
    let policy = Policy::builder(Arc::new(grants)).build();
    let owner = UserId::new(&user.id)?;
    let account = AccountId::new("acct-1")?;
    let ownership = policy
        .register_account(&owner, &account, Level::Trade)
        .await?;
    source
        .put(&ownership, &credential(&account, "key-v1")?)
        .await?;
    println!(
        "registered account {}, then stored its sealed credential",
        account.as_str()
    );

    // 4. Authorise, then fetch through the cache.
    let cache = CredCache::builder(source.clone()).build()?;
    // A permit is spent by one fetch: each request decides again.
    for _ in 0..2 {
        // The second round is a hit: no second fetch.
        let permit = policy
            .authorize(&owner, &account, Operation::CreateOrder, None)
            .await
            .map_err(|reason| format!("owner refused: {} ({})", reason.code(), reason.status()))?;
        expect_api_key(&cache, permit, "key-v1").await?;
    }
    println!(
        "fetched the credential: {} fetch(es)",
        cache.stats().fetches
    );

    // 5. Rotate: the new value first, then the invalidation.
    let ownership = policy.ownership(&owner, &account).await?;
    source
        .put(&ownership, &credential(&account, "key-v2")?)
        .await?;
    cache.invalidate_credential(&account).await?;
    let permit = policy
        .authorize(&owner, &account, Operation::CreateOrder, None)
        .await
        .map_err(|reason| format!("owner refused: {}", reason.code()))?;
    expect_api_key(&cache, permit, "key-v2").await?;
    let fetches = cache.stats().fetches;
    if fetches != 2 {
        return Err(format!("expected 2 fetches, got {fetches}").into());
    }
    println!("rotated and invalidated: the next fetch read the new key");

    // Someone else is refused before the cache is ever asked (404: the account's
    // existence does not leak).
    let stranger = UserId::new("mallory")?;
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

fn credential(id: &AccountId, api_key: &str) -> Result<ExchangeCredential, Error> {
    Ok(ExchangeCredential::new(
        id.clone(),
        Zeroizing::new(api_key.to_owned()),
        Zeroizing::new("not-a-real-secret".to_owned()),
        None,
        false,
    )?)
}

async fn expect_api_key(cache: &CredCache, permit: Permit, want: &str) -> Result<(), Error> {
    let got = cache.get_or_fetch(permit, Level::Trade).await?;
    if got.expose_api_key() != want {
        return Err(format!("fetched the wrong credential (want {want})").into());
    }
    Ok(())
}
