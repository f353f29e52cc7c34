//! Password hashing: parameters, legacy bcrypt, rehash flags, bounded concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auth_core::password::{
    MIN_M_COST_KIB, PasswordConfig, PasswordError, PasswordHasher, PasswordPolicy, Verification,
};
use auth_core::{Chain, Credential, CredentialKind, Outcome, Password, StaticTokenResolver};

fn fast(max_concurrent: usize) -> PasswordHasher {
    let config = auth_core::danger::weak_password_params(
        PasswordConfig::default().max_concurrent(max_concurrent),
        256,
        1,
        1,
    );
    PasswordHasher::new(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_parameters_are_owasp_argon2id() {
    let hasher = PasswordHasher::new(PasswordConfig::default()).unwrap();
    let pw = Password::new("correct horse battery staple");
    let phc = hasher.hash(&pw).await.unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert_eq!(
        hasher.verify(&pw, &phc).await.unwrap(),
        Verification::Match {
            needs_rehash: false
        }
    );
    assert_eq!(
        hasher.verify(&Password::new("wrong"), &phc).await.unwrap(),
        Verification::Mismatch
    );
    // Two hashes of one password differ (random salt).
    assert_ne!(hasher.hash(&pw).await.unwrap(), phc);
}

#[test]
fn weaker_than_owasp_is_refused() {
    assert!(matches!(
        PasswordConfig::default().argon2_params(MIN_M_COST_KIB - 1, 2, 1),
        Err(PasswordError::WeakParams)
    ));
    assert!(matches!(
        PasswordConfig::default().argon2_params(MIN_M_COST_KIB, 1, 1),
        Err(PasswordError::WeakParams)
    ));
    assert!(
        PasswordConfig::default()
            .argon2_params(65_536, 3, 1)
            .is_ok()
    );
    assert!(matches!(
        PasswordHasher::new(PasswordConfig::default().max_concurrent(0)),
        Err(PasswordError::ZeroConcurrency)
    ));
}

#[tokio::test]
async fn legacy_bcrypt_verifies_and_asks_for_rehash() {
    let hasher = fast(2);
    let pw = Password::new("legacy password");
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        let h = bcrypt::hash("legacy password", 4).unwrap();
        let h = format!("{prefix}{}", &h[4..]);
        assert_eq!(
            hasher.verify(&pw, &h).await.unwrap(),
            Verification::Match { needs_rehash: true },
            "{prefix}"
        );
        assert_eq!(
            hasher.verify(&Password::new("other"), &h).await.unwrap(),
            Verification::Mismatch
        );
    }
}

#[tokio::test]
async fn weaker_argon2_hash_asks_for_rehash() {
    let weak = fast(1);
    let pw = Password::new("some password");
    let weak_hash = weak.hash(&pw).await.unwrap();
    let strong = PasswordHasher::new(PasswordConfig::default()).unwrap();
    assert_eq!(
        strong.verify(&pw, &weak_hash).await.unwrap(),
        Verification::Match { needs_rehash: true }
    );
}

#[tokio::test]
async fn garbage_hashes_are_errors_not_matches() {
    let hasher = fast(1);
    for stored in [
        "",
        "plaintext",
        "$argon2id$garbage",
        "$2b$04$short",
        "$1$md5$x",
    ] {
        assert!(
            matches!(
                hasher.verify(&Password::new("x"), stored).await,
                Err(PasswordError::UnknownHashFormat)
            ),
            "{stored}"
        );
    }
}

#[tokio::test]
async fn policy() {
    let policy = PasswordPolicy::default();
    assert!(policy.check(&Password::new("short")).is_err());
    assert!(policy.check(&Password::new("twelve chars")).is_ok());
    assert!(policy.check(&Password::new("x".repeat(2000))).is_err());
    assert!(
        PasswordPolicy::default()
            .min_len(1)
            .check(&Password::new("seven77"))
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded() {
    let hasher = fast(2);
    let pw = Password::new("flood password");
    let max_seen = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let h = hasher.clone();
        let pw = pw.clone();
        tasks.push(tokio::spawn(async move { h.hash(&pw).await.unwrap() }));
    }
    // Sample the permits while the flood runs: never more than 2 in flight.
    let sampler = {
        let h = hasher.clone();
        let max_seen = max_seen.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                let in_flight = 2 - h.available_permits();
                max_seen.fetch_max(in_flight, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    sampler.await.unwrap();
    assert!(max_seen.load(Ordering::SeqCst) <= 2);
    assert_eq!(hasher.available_permits(), 2);
    assert_eq!(hasher.waiting_operations(), 0);
}

/// The queue depth: operations beyond the permits wait and are counted, a waiter whose
/// caller gives up leaves the count, and the count drains to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_operations_is_the_queue_depth() {
    // The strong defaults: each hash takes long enough for the others to queue.
    let hasher = PasswordHasher::new(PasswordConfig::default().max_concurrent(1)).unwrap();
    let pw = Password::new("queued password");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (h, pw) = (hasher.clone(), pw.clone());
        tasks.push(tokio::spawn(async move { h.hash(&pw).await.unwrap() }));
    }
    let mut deepest = 0;
    for _ in 0..2000 {
        deepest = deepest.max(hasher.waiting_operations());
        if deepest >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(deepest >= 2, "queue depth never seen: {deepest}");
    // A caller that stops waiting is no longer counted (else the end is not zero).
    let gave_up = {
        let (h, pw) = (hasher.clone(), pw.clone());
        tokio::spawn(async move { h.hash(&pw).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    gave_up.abort();
    let _ = gave_up.await;
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(hasher.waiting_operations(), 0);
}

/// A login flood must not stall token resolution: with the strong default parameters
/// queued many times over, a token resolves while the flood is still unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_flood_does_not_block_token_resolution() {
    let hasher = PasswordHasher::new(PasswordConfig::default().max_concurrent(1)).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let total = 4;
    let mut flood = Vec::new();
    for _ in 0..total {
        let h = hasher.clone();
        let done = done.clone();
        flood.push(tokio::spawn(async move {
            h.hash(&Password::new("flood")).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    tokio::task::yield_now().await;
    let token = "static-token-0123456789abcdef0123456789abcdef";
    let chain = Chain::builder()
        .resolver(StaticTokenResolver::new(token, "bootstrap").unwrap())
        .build();
    for _ in 0..50 {
        let cred = Credential::new(CredentialKind::Bearer, token).unwrap();
        assert!(matches!(
            chain.resolve(Some(&cred)).await,
            Outcome::Authenticated(_)
        ));
    }
    let finished = done.load(Ordering::SeqCst);
    assert!(
        finished < total,
        "flood finished before token resolution: {finished}"
    );
    for t in flood {
        t.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), total);
}

fn vectors(name: &str) -> Vec<(String, String)> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let v: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (pw, hash) = l.split_once('\t').unwrap();
            (pw.to_owned(), hash.to_owned())
        })
        .collect();
    assert!(!v.is_empty(), "{name} has no vectors");
    v
}

#[tokio::test]
async fn bcrypt_known_answers() {
    let hasher = fast(2);
    for (pw, hash) in vectors("bcrypt_pass.txt") {
        assert_eq!(
            hasher.verify(&Password::new(pw), &hash).await.unwrap(),
            Verification::Match { needs_rehash: true },
            "{hash}"
        );
    }
    for (pw, hash) in vectors("bcrypt_fail.txt") {
        assert_eq!(
            hasher.verify(&Password::new(pw), &hash).await.unwrap(),
            Verification::Mismatch,
            "{hash}"
        );
    }
}

/// By default a flood of logins hashes on every CPU but one (at least one), so requests
/// that only resolve tokens keep a CPU.
#[test]
fn default_concurrency_leaves_a_cpu_free() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let hasher = PasswordHasher::new(PasswordConfig::default()).unwrap();
    assert_eq!(hasher.available_permits(), cpus.saturating_sub(1).max(1));
    assert!(hasher.available_permits() >= 1);
    if cpus > 1 {
        assert!(hasher.available_permits() < cpus);
    }
}
