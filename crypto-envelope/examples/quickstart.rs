//! Quick start: seal an exchange secret into a SQLite file, list it, open it, rotate the
//! master key with a bulk re-wrap, and check that the raw file holds no plaintext.
//!
//! ```text
//! cargo run -p crypto-envelope --example quickstart
//! ```
//!
//! The keys are throwaway ones generated for this run; a service reads its ring with
//! `LocalKeyRing::from_env()` (`STRONGROOM_MASTER_KEY`).

use std::sync::Arc;

use crypto_envelope::{
    Envelope, LocalKeyRing, MasterKey, Rewrapper, SecretRef, Secrets, SqliteStore,
};

const DEMO_SECRET: &[u8] = b"not-a-real-exchange-secret";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (v1, v2) = (MasterKey::generate()?, MasterKey::generate()?);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("secrets.db");
    let store = Arc::new(SqliteStore::open(&path).await?);

    let ring = LocalKeyRing::builder()
        .key(1, v1.clone())
        .primary(1)
        .build()?;
    let secrets = Secrets::new(Envelope::new(ring)?, store.clone());
    let secret = SecretRef::owner("user-42", "BINANCE_API_SECRET")?;
    secrets.put(&secret, DEMO_SECRET).await?;
    println!("sealed {} into {}", secret.name(), path.display());
    for meta in secrets.list("user-42").await? {
        println!("  listed: {} under {} (metadata only)", meta.name, meta.key);
    }

    // Rotate: version 2 becomes primary, version 1 stays decrypt-only for the re-wrap.
    let ring = LocalKeyRing::builder()
        .key(1, v1.clone())
        .key(2, v2.clone())
        .primary(2)
        .build()?;
    let rotated = Secrets::new(Envelope::new(ring)?, store.clone());
    let progress = Rewrapper::new(&rotated).batch_size(100).run(|_| {}).await?;
    // Retire the old key only after a complete run: every row opened, none left on v1.
    assert!(
        progress.complete,
        "rows remain under the old key: {progress:?}"
    );
    println!(
        "re-wrapped {} of {} values to key version 2",
        progress.rewrapped, progress.scanned
    );

    // Retire version 1: everything still opens.
    let ring = LocalKeyRing::builder()
        .key(1, v1)
        .key(2, v2)
        .primary(2)
        .retire(1)
        .build()?;
    let retired = Secrets::new(Envelope::new(ring)?, store.clone());
    let opened = retired.get(&secret).await?.ok_or("secret missing")?;
    assert_eq!(opened.expose_secret(), DEMO_SECRET);
    println!(
        "opened after retiring version 1: {} bytes",
        opened.expose_secret().len()
    );

    store.pool().close().await;
    let raw = std::fs::read(&path)?;
    let leaked = raw.windows(DEMO_SECRET.len()).any(|w| w == DEMO_SECRET);
    println!(
        "plaintext in the raw database file: {}",
        if leaked { "YES" } else { "no" }
    );
    if leaked {
        return Err("plaintext found at rest".into());
    }
    Ok(())
}
