//! Seal, open and re-wrap through the local and passphrase backends: round trips,
//! refusals, tampering, rotation and secret hygiene.

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use common::{ctx, envelope, key, ring, run};
use crypto_envelope::{
    Argon2Params, BackendError, DataKey, EncryptionContext, Envelope, Error, KekBackend, KeyRef,
    LocalKeyRing, PassphraseKek, Rewrap, Sealed, Wrapped,
};
use proptest::prelude::*;

const CANARY: &[u8] = b"CANARY-7f3a9c-api-secret";

#[tokio::test]
async fn round_trip_binary_and_text() {
    let env = envelope(1);
    let c = ctx("42", "api_secret");
    let sealed = env.seal(CANARY, &c).await.unwrap();
    let opened = env.open(&sealed.to_bytes(), &c).await.unwrap();
    assert_eq!(opened.expose_secret(), CANARY);
    let text = sealed.to_text();
    assert!(text.starts_with("sre1:"));
    assert_eq!(
        env.open_text(&text, &c).await.unwrap().expose_secret(),
        CANARY
    );
    assert_eq!(Sealed::from_text(&text).unwrap(), sealed);
}

#[tokio::test]
async fn every_seal_uses_a_fresh_data_key_and_nonce() {
    let env = envelope(1);
    let c = ctx("42", "api_secret");
    let a = env.seal(CANARY, &c).await.unwrap();
    let b = env.seal(CANARY, &c).await.unwrap();
    assert_ne!(a.ciphertext(), b.ciphertext());
    assert_ne!(a.to_bytes(), b.to_bytes());
}

#[tokio::test]
async fn any_other_context_is_refused() {
    let env = envelope(1);
    let sealed = env
        .seal(CANARY, &ctx("42", "api_secret"))
        .await
        .unwrap()
        .to_bytes();
    for other in [
        ctx("43", "api_secret"),
        ctx("42", "api_key"),
        EncryptionContext::new(),
        ctx("42", "api_secret").with("extra", "").unwrap(),
    ] {
        assert!(matches!(
            env.open(&sealed, &other).await,
            Err(Error::Refused)
        ));
    }
}

/// The service restarted with another master key: a value sealed under ring A, opened
/// with ring B that does not hold A's key, is the typed configuration error
/// `KeyNotHeld` naming A's key (its fingerprint and version), on every path that opens
/// (binary, text, parsed, re-wrap, the secret store), never `Refused`, never a bare
/// backend failure; its message says what happened and holds no key material.
#[tokio::test]
async fn a_value_sealed_under_a_key_the_ring_does_not_hold_is_a_configuration_error() {
    let c = ctx("42", "api_secret");
    let a = envelope(0xa1);
    let b = Envelope::new(
        LocalKeyRing::builder()
            .key(1, key(0xb2))
            .key(2, key(0xb3))
            .primary(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    let sealed = a.seal(CANARY, &c).await.unwrap();
    let a_key = KeyRef::new(key(0xa1).fingerprint(), 1);
    assert_eq!(sealed.key(), &a_key);

    let results = [
        b.open(&sealed.to_bytes(), &c).await.unwrap_err(),
        b.open_text(&sealed.to_text(), &c).await.unwrap_err(),
        b.open_sealed(&sealed, &c).await.unwrap_err(),
        b.rewrap(&sealed.to_bytes(), &c).await.unwrap_err(),
    ];
    let key_hex = "a1".repeat(32);
    let key_b64 = key(0xa1).to_base64();
    for err in results {
        let Error::KeyNotHeld { key } = &err else {
            panic!("not KeyNotHeld: {err:?}");
        };
        assert_eq!(key, &a_key);
        assert!(err.is_configuration(), "{err:?}");
        assert!(!err.is_unavailable(), "{err:?}");
        let shown = err.to_string();
        assert!(shown.contains(&a_key.to_string()), "{shown}");
        assert!(
            shown.contains("no configured key-encryption backend holds"),
            "{shown}"
        );
        assert!(shown.contains("started with another key"), "{shown}");
        for text in [shown, format!("{err:?}")] {
            assert!(!text.contains(&key_hex), "{text}");
            assert!(!text.contains(key_b64.as_str()), "{text}");
            assert!(!text.contains("CANARY"), "{text}");
        }
    }

    // Through the secret store: the same answer, and `SecretsError` says so too.
    let store: std::sync::Arc<dyn crypto_envelope::SecretStore> =
        std::sync::Arc::new(crypto_envelope::MemoryStore::new());
    let id = crypto_envelope::SecretRef::owner("alice", "API_SECRET").unwrap();
    crypto_envelope::Secrets::new(a.clone(), std::sync::Arc::clone(&store))
        .put(&id, CANARY)
        .await
        .unwrap();
    let err = crypto_envelope::Secrets::new(b.clone(), store)
        .get(&id)
        .await
        .unwrap_err();
    assert!(err.is_configuration(), "{err:?}");
    assert!(!err.is_unavailable(), "{err:?}");

    // A refusal, an unknown backend and a retired key are told apart from it.
    let refused = a
        .open(&sealed.to_bytes(), &ctx("43", "api_secret"))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Refused) && !refused.is_configuration());
    let unknown = Envelope::new(
        PassphraseKek::derive(
            b"correct horse battery",
            &PassphraseKek::generate_salt().unwrap(),
            Argon2Params::OWASP_MINIMUM,
        )
        .unwrap(),
    )
    .unwrap()
    .open(&sealed.to_bytes(), &c)
    .await
    .unwrap_err();
    assert!(matches!(unknown, Error::UnknownBackend { .. }) && unknown.is_configuration());
    let retired = Envelope::new(
        LocalKeyRing::builder()
            .key(1, key(0xa1))
            .key(2, key(0xb3))
            .primary(2)
            .min_version(2)
            .build()
            .unwrap(),
    )
    .unwrap()
    .open(&sealed.to_bytes(), &c)
    .await
    .unwrap_err();
    assert!(
        matches!(retired, Error::Backend(BackendError::KeyRetired { .. })),
        "{retired:?}"
    );
    assert!(!retired.is_configuration());
}

/// `From<BackendError>`: every backend answer lands where the envelope's callers look,
/// whichever path produced it.
#[test]
fn backend_errors_convert_to_the_envelope_error_a_caller_matches() {
    let key = KeyRef::new("mk-0011223344556677", 3);
    assert!(matches!(
        Error::from(BackendError::KeyNotFound { key: key.clone() }),
        Error::KeyNotHeld { key: k } if k == key
    ));
    assert!(matches!(Error::from(BackendError::Refused), Error::Refused));
    assert!(matches!(
        Error::from(BackendError::KeyRetired { key }),
        Error::Backend(BackendError::KeyRetired { .. })
    ));
    let outage = Error::from(BackendError::Unavailable {
        backend: "transit".into(),
        reason: "timeout".into(),
    });
    assert!(outage.is_unavailable() && !outage.is_configuration());
}

#[tokio::test]
async fn truncated_or_extended_blobs_are_refused() {
    let env = envelope(1);
    let c = ctx("42", "api_secret");
    let blob = env.seal(CANARY, &c).await.unwrap().to_bytes();
    for len in 0..blob.len() {
        assert!(
            env.open(&blob[..len], &c).await.is_err(),
            "truncated to {len}"
        );
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(
        env.open(&longer, &c).await,
        Err(Error::Malformed {
            field: "trailing bytes"
        })
    ));
}

#[tokio::test]
async fn every_single_bit_flip_is_refused() {
    let env = envelope(1);
    let c = ctx("7", "k");
    let blob = env.seal(b"x", &c).await.unwrap().to_bytes();
    for i in 0..blob.len() * 8 {
        let mut flipped = blob.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        assert!(
            env.open(&flipped, &c).await.is_err(),
            "bit {i} flipped and opened"
        );
    }
}

#[tokio::test]
async fn unknown_version_and_suite_are_typed_errors() {
    let env = envelope(1);
    let c = ctx("42", "api_secret");
    let mut blob = env.seal(CANARY, &c).await.unwrap().to_bytes();
    blob[3] = 2;
    assert!(matches!(
        env.open(&blob, &c).await,
        Err(Error::UnsupportedVersion { version: 2 })
    ));
    blob[3] = 1;
    blob[4] = 9;
    assert!(matches!(
        env.open(&blob, &c).await,
        Err(Error::UnsupportedSuite { suite: 9 })
    ));
    assert!(matches!(
        Sealed::from_text("sre2:AAAA"),
        Err(Error::Malformed {
            field: "text prefix"
        })
    ));
    assert!(matches!(
        Sealed::from_text("sre1:***"),
        Err(Error::Malformed {
            field: "text encoding"
        })
    ));
}

#[tokio::test]
async fn a_value_committed_to_another_data_key_is_refused() {
    // Splice another value's wrapped key into this one: the data key unwraps fine (same
    // context, same master key) but the commitment does not match it.
    let env = envelope(1);
    let c = ctx("42", "api_secret");
    let a = env.seal(CANARY, &c).await.unwrap().to_bytes();
    let b = env.seal(CANARY, &c).await.unwrap().to_bytes();
    let a_parsed = Sealed::from_bytes(&a).unwrap();
    // Layout: magic(3) version suite | backend | key id | version(4) | wrapped len(2) + 60.
    let off = 5 + 1 + a_parsed.backend().len() + 1 + a_parsed.key().id.len() + 4 + 2;
    let mut spliced = a.clone();
    spliced[off..off + 60].copy_from_slice(&b[off..off + 60]);
    assert!(matches!(env.open(&spliced, &c).await, Err(Error::Refused)));
}

#[tokio::test]
async fn rewrap_changes_only_the_wrapped_key() {
    let c = ctx("42", "api_secret");
    let old = LocalKeyRing::builder()
        .key(1, key(1))
        .primary(1)
        .build()
        .unwrap();
    let sealed = Envelope::new(old).unwrap().seal(CANARY, &c).await.unwrap();

    let new = LocalKeyRing::builder()
        .key(1, key(1))
        .key(2, key(2))
        .primary(2)
        .build()
        .unwrap();
    let env = Envelope::new(new).unwrap();
    let Rewrap::Rewrapped(rewrapped) = env.rewrap(&sealed.to_bytes(), &c).await.unwrap() else {
        panic!("expected a re-wrap");
    };
    assert_eq!(rewrapped.key().version, 2);
    assert_eq!(rewrapped.ciphertext(), sealed.ciphertext());
    let (before, after) = (sealed.to_bytes(), rewrapped.to_bytes());
    assert_eq!(
        before[before.len() - 44 - sealed.ciphertext().len()..],
        after[after.len() - 44 - rewrapped.ciphertext().len()..]
    );
    assert_eq!(
        env.rewrap(&rewrapped.to_bytes(), &c).await.unwrap(),
        Rewrap::Current
    );

    // Retire version 1: the re-wrapped value opens, the old one is refused by name.
    let retired = LocalKeyRing::builder()
        .key(1, key(1))
        .key(2, key(2))
        .primary(2)
        .retire(1)
        .build()
        .unwrap();
    let env = Envelope::new(retired).unwrap();
    assert_eq!(env.open(&after, &c).await.unwrap().expose_secret(), CANARY);
    assert!(matches!(
        env.open(&before, &c).await,
        Err(Error::Backend(BackendError::KeyRetired { .. }))
    ));
    let below_min = LocalKeyRing::builder()
        .key(1, key(1))
        .key(2, key(2))
        .primary(2)
        .min_version(2)
        .build()
        .unwrap();
    let env = Envelope::new(below_min).unwrap();
    assert!(matches!(
        env.open(&before, &c).await,
        Err(Error::Backend(BackendError::KeyRetired { .. }))
    ));
}

#[tokio::test]
async fn passphrase_backend_round_trips_and_migrates_to_a_master_key() {
    let salt = PassphraseKek::generate_salt().unwrap();
    let pass = PassphraseKek::derive(b"correct horse battery", &salt, Argon2Params::OWASP_MINIMUM)
        .unwrap();
    assert!(pass.primary_key().id.starts_with("argon2id-m19456-t2-p1-"));
    let c = ctx("42", "api_secret");
    let env = Envelope::new(pass).unwrap();
    let sealed = env.seal(CANARY, &c).await.unwrap();
    assert_eq!(sealed.backend(), "passphrase");
    assert_eq!(
        env.open(&sealed.to_bytes(), &c)
            .await
            .unwrap()
            .expose_secret(),
        CANARY
    );

    // A wrong passphrase derives another key id: not held.
    let wrong = PassphraseKek::derive(
        b"incorrect horse battery",
        &salt,
        Argon2Params::OWASP_MINIMUM,
    )
    .unwrap();
    let err = Envelope::new(wrong)
        .unwrap()
        .open(&sealed.to_bytes(), &c)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyNotHeld { .. }));

    // Move to a master key: the passphrase backend opens, the ring re-wraps.
    let pass = PassphraseKek::derive(b"correct horse battery", &salt, Argon2Params::OWASP_MINIMUM)
        .unwrap();
    let env = Envelope::new(ring(3))
        .unwrap()
        .with_decrypt_only(pass)
        .unwrap();
    let Rewrap::Rewrapped(moved) = env.rewrap(&sealed.to_bytes(), &c).await.unwrap() else {
        panic!("expected a re-wrap");
    };
    assert_eq!(moved.backend(), "local");
    assert_eq!(moved.ciphertext(), sealed.ciphertext());
    assert_eq!(
        envelope(3)
            .open(&moved.to_bytes(), &c)
            .await
            .unwrap()
            .expose_secret(),
        CANARY
    );
}

#[test]
fn weak_passphrase_settings_are_refused() {
    let salt = PassphraseKek::generate_salt().unwrap();
    let weak = Argon2Params {
        memory_kib: 4096,
        iterations: 1,
        parallelism: 1,
    };
    assert!(PassphraseKek::derive(b"correct horse battery", &salt, weak).is_err());
    assert!(PassphraseKek::derive(b"short", &salt, Argon2Params::OWASP_MINIMUM).is_err());
    assert!(
        PassphraseKek::derive(
            b"correct horse battery",
            "AAAA",
            Argon2Params::OWASP_MINIMUM
        )
        .is_err()
    );
}

#[tokio::test]
async fn unknown_backend_is_named() {
    let c = ctx("42", "api_secret");
    let salt = PassphraseKek::generate_salt().unwrap();
    let pass = PassphraseKek::derive(b"correct horse battery", &salt, Argon2Params::OWASP_MINIMUM)
        .unwrap();
    let sealed = Envelope::new(pass).unwrap().seal(CANARY, &c).await.unwrap();
    assert!(matches!(
        envelope(1).open(&sealed.to_bytes(), &c).await,
        Err(Error::UnknownBackend { backend }) if backend == "passphrase"
    ));
}

/// A backend that wraps like a local ring but reports a key id or a wrapped key that does
/// not fit the format, as a misconfigured KMS might (an id over 255 bytes).
#[derive(Debug)]
struct OversizedBackend {
    inner: LocalKeyRing,
    long_id: bool,
}

#[async_trait::async_trait]
impl KekBackend for OversizedBackend {
    fn id(&self) -> &str {
        "oversized"
    }

    fn primary_key(&self) -> KeyRef<'_> {
        self.inner.primary_key()
    }

    async fn wrap(
        &self,
        dek: &DataKey,
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<Wrapped, BackendError> {
        let mut wrapped = self.inner.wrap(dek, aad, context).await?;
        if self.long_id {
            wrapped.key = KeyRef::new("k".repeat(300), 1);
        } else {
            wrapped.bytes.resize(5000, 0);
        }
        Ok(wrapped)
    }

    async fn unwrap(
        &self,
        key: &KeyRef<'_>,
        wrapped: &[u8],
        aad: &[u8],
        context: &EncryptionContext,
    ) -> Result<DataKey, BackendError> {
        self.inner.unwrap(key, wrapped, aad, context).await
    }
}

#[tokio::test]
async fn a_backend_answer_that_does_not_fit_the_format_is_never_written() {
    let c = ctx("42", "api_secret");
    let stored = envelope(1).seal(CANARY, &c).await.unwrap().to_bytes();
    for long_id in [true, false] {
        let bad = || OversizedBackend {
            inner: ring(2),
            long_id,
        };
        let misbehaved = |r: Result<_, Error>| {
            matches!(
                r,
                Err(Error::Backend(BackendError::Misbehaved { backend, .. })) if backend == "oversized"
            )
        };
        // A new value.
        let env = Envelope::new(bad()).unwrap();
        assert!(
            misbehaved(env.seal(CANARY, &c).await.map(|_| ())),
            "seal, long_id={long_id}"
        );
        // A re-wrap onto the misbehaving backend: refused, so a bulk re-wrap leaves the
        // stored value as it was instead of overwriting it with bytes no parser reads.
        let env = Envelope::new(bad())
            .unwrap()
            .with_decrypt_only(ring(1))
            .unwrap();
        assert!(
            misbehaved(env.rewrap(&stored, &c).await.map(|_| ())),
            "rewrap, long_id={long_id}"
        );
        assert_eq!(env.open(&stored, &c).await.unwrap().expose_secret(), CANARY);
    }
}

#[tokio::test]
async fn debug_and_errors_never_show_secrets() {
    let env = envelope(1);
    let c = ctx("42", "api_secret");
    let sealed = env.seal(CANARY, &c).await.unwrap();
    let opened = env.open(&sealed.to_bytes(), &c).await.unwrap();
    let master = key(0xab);
    let canary_text = String::from_utf8_lossy(CANARY).into_owned();
    let mut shown = vec![
        format!("{opened:?}"),
        format!("{env:?}"),
        format!("{sealed:?}"),
        format!("{master:?}"),
        format!("{:?}", ring(0xab)),
        format!("{:?}", env.open(&sealed.to_bytes(), &ctx("1", "x")).await),
    ];
    let bad = LocalKeyRing::from_lookup(|name| {
        (name == "STRONGROOM_MASTER_KEY").then(|| format!("{canary_text} "))
    })
    .unwrap_err();
    shown.push(format!("{bad:?} {bad}"));
    for s in &shown {
        assert!(!s.contains(&canary_text), "canary in {s}");
        assert!(!s.contains(&"ab".repeat(32)), "master key in {s}");
        assert!(
            !s.to_lowercase().contains("q6urq6urq6"),
            "base64 master key in {s}"
        );
    }
}

#[test]
fn master_key_parsing_accepts_hex_and_base64_only() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    let k = key(7);
    assert!(
        LocalKeyRing::from_lookup(|n| (n == "STRONGROOM_MASTER_KEY").then(|| hex.to_owned()))
            .is_ok()
    );
    let b64 = k.to_base64();
    assert_eq!(b64.len(), 44);
    let again = crypto_envelope::MasterKey::parse("k", &b64).unwrap();
    assert_eq!(again.fingerprint(), k.fingerprint());
    assert_eq!(
        crypto_envelope::MasterKey::parse("k", &k.to_hex())
            .unwrap()
            .fingerprint(),
        k.fingerprint()
    );
    for bad in [
        "",
        &hex[..62],
        &format!("{hex}0"),
        &format!(" {}", &hex[1..]),
        &format!("{}\n", &hex[..63]),
        &format!("{}g", &hex[..63]),
        &format!("{} ", &b64[..43]),
        &"0".repeat(64),
    ] {
        let err = crypto_envelope::MasterKey::parse("STRONGROOM_MASTER_KEY", bad).unwrap_err();
        assert!(err.to_string().contains("STRONGROOM_MASTER_KEY"));
    }
    let missing = LocalKeyRing::from_lookup(|_| None).unwrap_err();
    assert!(missing.to_string().contains("STRONGROOM_MASTER_KEY"));
    let old = LocalKeyRing::from_lookup(|n| match n {
        "STRONGROOM_MASTER_KEY" => Some(hex.to_owned()),
        "STRONGROOM_MASTER_KEY_VERSION" => Some("2".to_owned()),
        "STRONGROOM_MASTER_KEYS_OLD" => Some("1:nothex".to_owned()),
        _ => None,
    })
    .unwrap_err();
    assert!(
        old.to_string()
            .contains("STRONGROOM_MASTER_KEYS_OLD (entry 1)")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn prop_round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
                       owner in "[a-z0-9]{1,12}", field in "[a-z_]{1,12}") {
        let env = envelope(9);
        let c = ctx(&owner, &field);
        let sealed = run(env.seal(&plaintext, &c)).unwrap();
        let bytes = sealed.to_bytes();
        prop_assert_eq!(Sealed::from_bytes(&bytes).unwrap(), sealed.clone());
        let opened = run(env.open(&bytes, &c)).unwrap();
        prop_assert_eq!(opened.expose_secret(), &plaintext[..]);
        let opened = run(env.open_text(&sealed.to_text(), &c)).unwrap();
        prop_assert_eq!(opened.expose_secret(), &plaintext[..]);
    }

    #[test]
    fn prop_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Sealed::from_bytes(&bytes);
        let _ = Sealed::from_text(&String::from_utf8_lossy(&bytes));
    }
}

/// One key under two versions would let a value's unauthenticated version field be
/// edited (1 to 3) past a minimum version of 2: the ring refuses such a configuration,
/// and a primary that is not the highest version held.
#[tokio::test]
async fn a_ring_refuses_one_key_under_two_versions_and_a_low_primary() {
    let c = ctx("42", "api_secret");
    let sealed = envelope(1).seal(CANARY, &c).await.unwrap().to_bytes();
    let duplicate = LocalKeyRing::builder()
        .key(1, key(1))
        .key(2, key(2))
        .key(3, key(1))
        .primary(3)
        .min_version(2)
        .build();
    let err = duplicate.expect_err("one key under versions 1 and 3 must be refused");
    assert!(err.to_string().contains("master key version"), "{err}");
    // Through the environment too, naming the version, never the key.
    let env_err = LocalKeyRing::from_lookup(|name| match name {
        "STRONGROOM_MASTER_KEY" => Some("01".repeat(32)),
        "STRONGROOM_MASTER_KEY_VERSION" => Some("3".to_owned()),
        "STRONGROOM_MASTER_KEYS_OLD" => Some(format!("1:{}", "01".repeat(32))),
        _ => None,
    })
    .unwrap_err();
    assert!(!env_err.to_string().contains(&"01".repeat(32)), "{env_err}");

    // The attack the check prevents: with versions 2 and 3 distinct, the edited value
    // names a key the ring does not hold under that version.
    let ring = LocalKeyRing::builder()
        .key(1, key(1))
        .key(2, key(2))
        .key(3, key(3))
        .primary(3)
        .min_version(2)
        .build()
        .unwrap();
    let env = Envelope::new(ring).unwrap();
    let parsed = Sealed::from_bytes(&sealed).unwrap();
    let off = 5 + 1 + parsed.backend().len() + 1 + parsed.key().id.len();
    let mut edited = sealed.clone();
    edited[off..off + 4].copy_from_slice(&3u32.to_be_bytes());
    assert!(matches!(
        env.open(&edited, &c).await,
        Err(Error::KeyNotHeld { .. })
    ));
    assert!(matches!(
        env.open(&sealed, &c).await,
        Err(Error::Backend(BackendError::KeyRetired { .. }))
    ));

    // A primary lower than a version held.
    let low = LocalKeyRing::builder()
        .key(1, key(1))
        .key(2, key(2))
        .primary(1)
        .build();
    assert!(low.is_err());
    let low_env = LocalKeyRing::from_lookup(|name| match name {
        "STRONGROOM_MASTER_KEY" => Some("01".repeat(32)),
        "STRONGROOM_MASTER_KEYS_OLD" => Some(format!("2:{}", "02".repeat(32))),
        _ => None,
    });
    assert!(low_env.is_err());
}

/// `rewrap` opens a value in full before it says anything: a value under the primary
/// key opened with another row's context, and a value under an old key whose payload
/// was tampered with, are both refused (neither counted current nor re-wrapped).
#[tokio::test]
async fn rewrap_opens_every_value_in_full() {
    let c = ctx("42", "api_secret");
    let env = envelope(1);
    let sealed = env.seal(CANARY, &c).await.unwrap().to_bytes();
    assert!(matches!(
        env.rewrap(&sealed, &ctx("43", "api_secret")).await,
        Err(Error::Refused)
    ));
    assert_eq!(env.rewrap(&sealed, &c).await.unwrap(), Rewrap::Current);

    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let new = Envelope::new(
        LocalKeyRing::builder()
            .key(1, key(1))
            .key(2, key(2))
            .primary(2)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        new.rewrap(&tampered, &c).await,
        Err(Error::Refused)
    ));
    assert!(matches!(
        env.rewrap(&tampered, &c).await,
        Err(Error::Refused)
    ));
    assert!(matches!(
        new.rewrap(&sealed, &c).await,
        Ok(Rewrap::Rewrapped(_))
    ));
}
