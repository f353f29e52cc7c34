//! The local source over `crypto-envelope`'s sealed secret store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![cfg(feature = "envelope")]

use crate::common;

use std::sync::Arc;

use common::{ck, key, owns, z};
use cred_cache::local::{DEFAULT_NAMESPACE, LocalSource, SECRET_NAME};
use cred_cache::{AccountId, CredCache, CredentialSource, ExchangeCredential, FetchError, Level};
use crypto_envelope::{
    Envelope, LocalKeyRing, MasterKey, MemoryStore, SecretRef, SecretStore, Secrets,
};

fn secrets(store: &Arc<MemoryStore>) -> Secrets {
    let ring = LocalKeyRing::single(MasterKey::generate().unwrap()).unwrap();
    Secrets::new(Envelope::new(ring).unwrap(), Arc::clone(store) as _)
}

fn credential(id: &str, read_only: bool) -> ExchangeCredential {
    ExchangeCredential::new(
        AccountId::new(id).unwrap(),
        z(&format!("AK-{id}")),
        z("sk-secret"),
        Some(z("pass")),
        read_only,
    )
    .unwrap()
}

fn row(id: &str) -> SecretRef {
    SecretRef::scoped(DEFAULT_NAMESPACE, id, SECRET_NAME).unwrap()
}

/// Records are stored by account id: a proof of owning one account does not let its
/// holder store (overwrite) or delete another account's credential.
#[tokio::test]
async fn storing_or_deleting_needs_proof_of_owning_that_account() {
    let store = Arc::new(MemoryStore::new());
    let source = LocalSource::new(secrets(&store));
    source
        .put(&owns("acct-victim"), &credential("acct-victim", false))
        .await
        .unwrap();
    let before = store
        .get(&row("acct-victim"))
        .await
        .unwrap()
        .unwrap()
        .sealed;
    // Mallory owns acct-mallory and tries to put her key on the victim's account.
    let forged = ExchangeCredential::new(
        AccountId::new("acct-victim").unwrap(),
        z("AK-mallory"),
        z("sk-mallory"),
        None,
        false,
    )
    .unwrap();
    assert_eq!(
        source
            .put(&owns("acct-mallory"), &forged)
            .await
            .unwrap_err(),
        FetchError::Refused
    );
    let after = store
        .get(&row("acct-victim"))
        .await
        .unwrap()
        .unwrap()
        .sealed;
    assert_eq!(before, after);
    // Deleting names the account through the proof only.
    assert!(!source.delete(&owns("acct-mallory")).await.unwrap());
    assert!(store.get(&row("acct-victim")).await.unwrap().is_some());
    assert!(source.delete(&owns("acct-victim")).await.unwrap());
    assert!(store.get(&row("acct-victim")).await.unwrap().is_none());
}

#[tokio::test]
async fn sealed_credentials_round_trip_through_the_cache() {
    let store = Arc::new(MemoryStore::new());
    let source = Arc::new(LocalSource::new(secrets(&store)));
    source
        .put(&owns("acct-1"), &credential("acct-1", false))
        .await
        .unwrap();
    // What is stored is sealed: the plaintext does not appear in the row.
    let sealed = store.get(&row("acct-1")).await.unwrap().unwrap().sealed;
    assert!(!sealed.windows(9).any(|w| w == b"sk-secret"));

    let cache = CredCache::builder(Arc::clone(&source) as _)
        .build()
        .unwrap();
    let c = cache
        .get_or_fetch(key("u1", "acct-1", Level::Trade), Level::Trade)
        .await
        .unwrap();
    assert_eq!(c.expose_api_key(), "AK-acct-1");
    assert_eq!(c.expose_secret(), "sk-secret");
    assert_eq!(c.expose_passphrase(), Some("pass"));
    assert!(!c.is_read_only());
}

#[tokio::test]
async fn trade_on_a_read_only_record_is_refused_by_the_source() {
    let store = Arc::new(MemoryStore::new());
    let source = LocalSource::new(secrets(&store));
    source
        .put(&owns("acct-ro"), &credential("acct-ro", true))
        .await
        .unwrap();
    assert!(
        source
            .fetch(&ck("u", "acct-ro", Level::Read))
            .await
            .unwrap()
            .is_read_only()
    );
    assert_eq!(
        source
            .fetch(&ck("u", "acct-ro", Level::Trade))
            .await
            .unwrap_err(),
        FetchError::Refused
    );
}

#[tokio::test]
async fn missing_moved_foreign_and_malformed_records_fail_closed() {
    let store = Arc::new(MemoryStore::new());
    let secrets = secrets(&store);
    let source = LocalSource::new(secrets.clone());
    assert_eq!(
        source
            .fetch(&ck("u", "acct-none", Level::Read))
            .await
            .unwrap_err(),
        FetchError::NotFound
    );

    // A sealed record copied into another credential's row does not open there.
    source
        .put(&owns("acct-a"), &credential("acct-a", false))
        .await
        .unwrap();
    let stored = store.get(&row("acct-a")).await.unwrap().unwrap();
    store
        .put(&row("acct-b"), &stored.sealed, "copied", 0)
        .await
        .unwrap();
    assert_eq!(
        source
            .fetch(&ck("u", "acct-b", Level::Read))
            .await
            .unwrap_err(),
        FetchError::Storage
    );

    // Sealed under another master key: the service's configuration, not the record.
    let other = LocalSource::new(self::secrets(&store));
    assert_eq!(
        other
            .fetch(&ck("u", "acct-a", Level::Read))
            .await
            .unwrap_err(),
        FetchError::Misconfigured
    );

    // Opens, but is not a record.
    secrets
        .put(&row("acct-junk"), b"\x01\x00junk")
        .await
        .unwrap();
    assert_eq!(
        source
            .fetch(&ck("u", "acct-junk", Level::Read))
            .await
            .unwrap_err(),
        FetchError::Storage
    );

    // Deleted: not found.
    assert!(source.delete(&owns("acct-a")).await.unwrap());
    assert_eq!(
        source
            .fetch(&ck("u", "acct-a", Level::Read))
            .await
            .unwrap_err(),
        FetchError::NotFound
    );
}

#[tokio::test]
async fn namespaces_keep_services_apart() {
    let store = Arc::new(MemoryStore::new());
    let secrets = secrets(&store);
    let a = LocalSource::with_namespace(secrets.clone(), "service-a").unwrap();
    let b = LocalSource::with_namespace(secrets.clone(), "service-b").unwrap();
    a.put(&owns("acct-1"), &credential("acct-1", false))
        .await
        .unwrap();
    assert!(a.fetch(&ck("u", "acct-1", Level::Read)).await.is_ok());
    assert_eq!(
        b.fetch(&ck("u", "acct-1", Level::Read)).await.unwrap_err(),
        FetchError::NotFound
    );
    assert!(LocalSource::with_namespace(secrets, "").is_err());
}

/// The service restarted with another master key: a `LocalSource` whose ring does not
/// hold the key the records were sealed under answers `Misconfigured` (500, its own
/// code), through the cache too, never `Storage` or `NotFound`. (That it is logged at
/// ERROR once, with no key material, is checked by the unit test in `src/local.rs`: a
/// captured subscriber there is not raced by sibling tests registering the same
/// callsites.)
#[tokio::test]
async fn a_source_with_the_wrong_key_ring_is_misconfigured() {
    let store = Arc::new(MemoryStore::new());
    let ring_a = LocalSource::new(secrets(&store));
    let ring_b = Arc::new(LocalSource::new(secrets(&store)));
    ring_a
        .put(&owns("acct-1"), &credential("acct-1", false))
        .await
        .unwrap();
    ring_a
        .put(&owns("acct-2"), &credential("acct-2", true))
        .await
        .unwrap();
    for id in ["acct-1", "acct-2", "acct-1"] {
        let err = ring_b.fetch(&ck("u", id, Level::Read)).await.unwrap_err();
        assert_eq!(err, FetchError::Misconfigured);
        assert_eq!(err.status().as_u16(), 500);
        assert_eq!(err.code(), "cred_cache.misconfigured");
        assert!(!err.to_string().contains("sk-secret"));
    }
    let cache = CredCache::builder(Arc::clone(&ring_b) as _)
        .build()
        .unwrap();
    assert_eq!(
        cache
            .get_or_fetch(key("u", "acct-1", Level::Trade), Level::Trade)
            .await
            .unwrap_err(),
        FetchError::Misconfigured
    );
    // A record that does not exist is still not found; the right ring still opens.
    assert_eq!(
        ring_b
            .fetch(&ck("u", "acct-none", Level::Read))
            .await
            .unwrap_err(),
        FetchError::NotFound
    );
    assert!(ring_a.fetch(&ck("u", "acct-1", Level::Read)).await.is_ok());
}
