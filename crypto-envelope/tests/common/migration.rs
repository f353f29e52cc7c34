//! Moving a store from the local master key to another key-encryption backend (an HSM,
//! a KMS, Transit) by bulk re-wrap: the scenario every backend's tests run on SQLite and
//! on PostgreSQL.
//!
//! The old deployment seals [`ROWS`] secrets under local key 1. The new deployment seals
//! with `target` and opens local values too (decrypt-only). A re-wrap run is killed
//! after [`BATCHES_BEFORE_KILL`] batches (its `Rewrapper` dropped mid-run, as a killed
//! process would leave it) and a second run resumes from the cursor the first one
//! persisted. The second run must report complete, every row must then be under the
//! target's primary key, keep its payload bytes (nonce, commitment and ciphertext), and
//! open with the local key gone.

use std::sync::Arc;

use crypto_envelope::format::{COMMITMENT_LEN, NONCE_LEN};
use crypto_envelope::store::key_label;
use crypto_envelope::{
    Envelope, KekBackend, LocalKeyRing, Rewrapper, Sealed, SecretRef, SecretStore, Secrets,
};

use super::key;

/// Secrets the old deployment stores.
pub(crate) const ROWS: usize = 30;
/// Rows per re-wrap batch.
pub(crate) const BATCH: u32 = 4;
/// Batches the first run completes before it is killed.
pub(crate) const BATCHES_BEFORE_KILL: usize = 3;

fn secret(i: usize) -> SecretRef {
    SecretRef::owner(&format!("user-{i}"), "API_SECRET").unwrap()
}

fn value(i: usize) -> Vec<u8> {
    format!("exchange-secret-{i}-{}", "x".repeat(i)).into_bytes()
}

fn local() -> LocalKeyRing {
    LocalKeyRing::builder()
        .key(1, key(1))
        .primary(1)
        .build()
        .unwrap()
}

/// The payload part of a sealed value: nonce, commitment, length and ciphertext, which
/// end the binary form (FORMAT.md) and which a re-wrap must not change.
fn payload(sealed: &[u8]) -> Vec<u8> {
    let parsed = Sealed::from_bytes(sealed).unwrap();
    let tail = NONCE_LEN + COMMITMENT_LEN + 4 + parsed.ciphertext().len();
    sealed[sealed.len() - tail..].to_vec()
}

/// Runs the migration from local key 1 to `target` over `store` (empty on entry).
pub(crate) async fn local_to(store: Arc<dyn SecretStore>, target: Arc<dyn KekBackend>) {
    let old = Secrets::new(Envelope::new(local()).unwrap(), Arc::clone(&store));
    for i in 0..ROWS {
        old.put(&secret(i), &value(i)).await.unwrap();
    }
    let mut before = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let stored = store.get(&secret(i)).await.unwrap().unwrap();
        assert_eq!(
            Sealed::from_bytes(&stored.sealed).unwrap().backend(),
            "local"
        );
        before.push(payload(&stored.sealed));
    }

    let new = Secrets::new(
        Envelope::from_arc(Arc::clone(&target))
            .unwrap()
            .with_decrypt_only(local())
            .unwrap(),
        Arc::clone(&store),
    );
    // The first run is killed after a few batches; only its cursor survives.
    let cursor = {
        let mut first = Rewrapper::new(&new).batch_size(BATCH);
        for _ in 0..BATCHES_BEFORE_KILL {
            first.next_batch().await.unwrap();
        }
        let progress = first.progress();
        assert!(
            !progress.done,
            "the first run must be cut short: {progress:?}"
        );
        assert_eq!(
            progress.rewrapped,
            (BATCH as u64) * BATCHES_BEFORE_KILL as u64
        );
        progress.cursor
    };
    let report = Rewrapper::new(&new)
        .batch_size(BATCH)
        .resume_after(cursor)
        .run(|_| {})
        .await
        .unwrap();
    assert!(report.complete, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        report.rewrapped as usize,
        ROWS - BATCH as usize * BATCHES_BEFORE_KILL
    );

    // The final count: every row under the target's primary key.
    let primary = key_label(target.id(), &target.primary_key());
    let counts = store.count_by_key().await.unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts[0].key, primary);
    assert_eq!(counts[0].rows, ROWS as u64);

    // Payloads unchanged; every value opens with the local key gone.
    let after = Secrets::new(Envelope::from_arc(target).unwrap(), Arc::clone(&store));
    for (i, payload_before) in before.iter().enumerate() {
        let stored = store.get(&secret(i)).await.unwrap().unwrap();
        let sealed = Sealed::from_bytes(&stored.sealed).unwrap();
        assert_ne!(sealed.backend(), "local", "row {i}");
        assert_eq!(&payload(&stored.sealed), payload_before, "row {i}");
        let opened = after.get(&secret(i)).await.unwrap().unwrap();
        assert_eq!(opened.expose_secret(), value(i).as_slice(), "row {i}");
    }
}
