//! The PKCS#11 backend against a real token (SoftHSM2): `.ci/services/softhsm.sh` sets
//! `STRONGROOM_PKCS11_MODULE`, `STRONGROOM_PKCS11_TOKEN_LABEL`, `STRONGROOM_PKCS11_PIN`
//! and `SOFTHSM2_CONF`. Every test makes its own key labels.
//!
//! PKCS#11 logs in a whole process, not a session, so the tests that need a process
//! where nobody is logged in (a wrong PIN, a logout) or a token to break (the outage, a
//! hung call) run themselves again as a child process, each on its own copy of the CI
//! token: SoftHSM2 does not stand two processes writing one token (a process whose
//! refresh of the token directory fails while another writes it marks the token
//! absent until it restarts).

#![cfg(feature = "pkcs11")]
// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crypto_envelope::backend::pkcs11::{
    self, ENV_KEY_LABEL, ENV_MODULE, ENV_PIN, ENV_PIN_FILE, ENV_TOKEN_LABEL, Pkcs11Error,
    WRAPPED_LEN,
};
use crypto_envelope::hazmat::wrap_aad;
use crypto_envelope::{
    BackendError, ConfigError, DataKey, Envelope, Error, KekBackend, KeyRef, MemoryStore,
    Pkcs11Kek, Pkcs11KekBuilder, Rewrap, Sealed, SecretStore, SqliteStore,
};

const NEEDS: &str = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE): source .ci/services/softhsm.sh";
/// Set in a child process to the name of the test it runs.
const CHILD: &str = "STRONGROOM_PKCS11_TEST_CHILD";
/// A distinctive PIN that must never show up anywhere.
const CANARY_PIN: &str = "canary-PIN-5e1f9a7c-never-print";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {NEEDS}"))
}

/// A fresh key label for one test.
fn unique_label(test: &str) -> String {
    let mut suffix = [0u8; 6];
    aws_lc_rs::rand::fill(&mut suffix).unwrap();
    let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("strongroom-test-{test}-{hex}")
}

/// A builder on the CI token with `label` as primary key.
fn builder(label: &str) -> Pkcs11KekBuilder {
    Pkcs11Kek::builder()
        .module(env(ENV_MODULE))
        .token_label(env(ENV_TOKEN_LABEL))
        .pin(env(ENV_PIN))
        .key_label(label)
}

/// A backend on a fresh key of its own.
async fn fresh(test: &str) -> Pkcs11Kek {
    let label = unique_label(test);
    let kek = builder(&label).build().unwrap();
    kek.generate_key(&label).await.unwrap();
    kek.check().await.unwrap();
    kek
}

fn tamper(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

/// Runs `test` (this binary's test of that name) in a child process with `envs`, and
/// returns its combined output; fails if the child fails.
fn run_child(test: &str, envs: &[(&str, &str)]) -> String {
    // The tests share one binary: a test's name there is its module path and its own.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let path = format!("{module}::{test}");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            path.as_str(),
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, test);
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child {test} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {test} ran no test:\n{text}"
    );
    text
}

fn in_child(test: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|v| v == test)
}

// ----- configuration (no token needed) -----

#[test]
fn from_lookup_names_the_missing_variable_never_a_value() {
    let vars = [
        (ENV_MODULE, "/usr/lib/softhsm/libsofthsm2.so"),
        (ENV_TOKEN_LABEL, "strongroom-ci"),
        (ENV_PIN, CANARY_PIN),
        (ENV_KEY_LABEL, "strongroom-kek-1"),
    ];
    for missing in [ENV_MODULE, ENV_TOKEN_LABEL, ENV_PIN, ENV_KEY_LABEL] {
        let err = Pkcs11KekBuilder::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name && name != missing)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                field: missing.to_owned()
            }
        );
    }
    // Both PIN sources at once is refused, naming the variable.
    let err = Pkcs11KekBuilder::from_lookup(|name| match name {
        ENV_PIN_FILE => Some("/nonexistent".to_owned()),
        _ => vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned()),
    })
    .unwrap_err();
    assert!(format!("{err}").contains(ENV_PIN_FILE), "{err}");
    assert!(!format!("{err:?}").contains(CANARY_PIN));

    // A bad key label from the environment names the variable.
    let err = Pkcs11KekBuilder::from_lookup(|name| match name {
        ENV_KEY_LABEL => Some("has space".to_owned()),
        _ => vars
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned()),
    })
    .unwrap()
    .build()
    .unwrap_err();
    assert!(format!("{err}").contains(ENV_KEY_LABEL), "{err}");

    let ok = Pkcs11KekBuilder::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    assert!(!format!("{ok:?}").contains(CANARY_PIN));
    let kek = ok.build().unwrap();
    assert!(!format!("{kek:?}").contains(CANARY_PIN));
    assert_eq!(kek.primary_key(), KeyRef::new("strongroom-kek-1", 1));
    assert_eq!(kek.id(), "pkcs11");
}

#[test]
fn labels_and_limits_are_checked_at_configuration() {
    let base = || {
        Pkcs11Kek::builder()
            .module("/usr/lib/softhsm/libsofthsm2.so")
            .token_label("strongroom-ci")
            .pin(CANARY_PIN)
    };
    for bad in ["", "with space", "tab\there", "é-accent", &"x".repeat(256)] {
        let err = base().key_label(bad).build().unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{bad:?}: {err}");
    }
    assert!(base().key_label("x".repeat(255)).build().is_ok());
    assert!(base().key_label("!~").build().is_ok());
    let err = base()
        .key_label("a")
        .decrypt_only_label("a")
        .build()
        .unwrap_err();
    assert!(format!("{err}").contains("twice"), "{err}");
    assert!(base().key_label("a").pool_size(0).build().is_err());
    assert!(base().key_label("a").pool_size(65).build().is_err());
    assert!(
        base()
            .key_label("a")
            .timeout(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        base()
            .token_label("x".repeat(33))
            .key_label("a")
            .build()
            .is_err()
    );
    assert!(
        Pkcs11Kek::builder()
            .module("/m.so")
            .token_label("t")
            .key_label("a")
            .build()
            .is_err(),
        "a PIN is required"
    );
    assert!(
        Pkcs11Kek::builder()
            .module("/m.so")
            .token_label("t")
            .pin("")
            .key_label("a")
            .build()
            .is_err(),
        "an empty PIN is refused"
    );
}

#[test]
fn pin_file_loses_one_trailing_newline_and_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let base = |file: &Path| {
        Pkcs11Kek::builder()
            .module("/m.so")
            .token_label("t")
            .pin_file(file)
            .key_label("a")
    };
    for (content, ok) in [
        (format!("{CANARY_PIN}\n"), true),
        (format!("{CANARY_PIN}\r\n"), true),
        (CANARY_PIN.to_owned(), true),
        ("\n".to_owned(), false),
        (String::new(), false),
    ] {
        let file = dir.path().join("pin");
        std::fs::write(&file, &content).unwrap();
        let builder = base(&file);
        assert!(!format!("{builder:?}").contains(CANARY_PIN));
        match builder.build() {
            Ok(kek) => {
                assert!(ok, "{content:?} accepted");
                assert!(!format!("{kek:?}").contains(CANARY_PIN));
            }
            Err(err) => {
                assert!(!ok, "{content:?} refused: {err}");
                assert!(!format!("{err} {err:?}").contains(CANARY_PIN));
            }
        }
    }
    let err = base(&dir.path().join("absent")).build().unwrap_err();
    assert!(format!("{err}").contains("pin_file"), "{err}");
}

#[test]
fn outside_a_tokio_runtime_calls_are_unavailable() {
    let kek = Pkcs11Kek::builder()
        .module("/nonexistent/libpkcs11.so")
        .token_label("t")
        .pin(CANARY_PIN)
        .key_label("a")
        .build()
        .unwrap();
    // A future polled by another executor: no panic, an outage.
    let err = futures_lite_block_on(kek.check()).unwrap_err();
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err}");
}

/// Polls a future to completion on this thread, without Tokio.
fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn a_module_that_does_not_load_is_unavailable() {
    let kek = Pkcs11Kek::builder()
        .module("/nonexistent/libpkcs11.so")
        .token_label("t")
        .pin(CANARY_PIN)
        .key_label("a")
        .build()
        .unwrap();
    let err = kek.check().await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err}");
    let envelope = Envelope::new(kek).unwrap();
    let err = envelope
        .seal(b"x", &common::ctx("u", "f"))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(!format!("{err} {err:?}").contains(CANARY_PIN));
}

// ----- against the token -----

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn seal_open_round_trip() {
    let kek = fresh("roundtrip").await;
    let label = kek.primary_label().to_owned();
    let envelope = Envelope::new(kek).unwrap();
    let ctx = common::ctx("user-1", "api_secret");
    let sealed = envelope.seal(b"exchange secret", &ctx).await.unwrap();
    let parsed = Sealed::from_bytes(&sealed.to_bytes()).unwrap();
    assert_eq!(parsed.backend(), "pkcs11");
    assert_eq!(parsed.key(), &KeyRef::new(label, 1));
    let opened = envelope.open_text(&sealed.to_text(), &ctx).await.unwrap();
    assert_eq!(opened.expose_secret(), b"exchange secret");
    // Two seals of the same value differ (fresh DEK and IV).
    let again = envelope.seal(b"exchange secret", &ctx).await.unwrap();
    assert_ne!(again.to_bytes(), sealed.to_bytes());
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn wrapped_form_is_iv_ciphertext_tag() {
    let kek = fresh("shape").await;
    let ctx = common::ctx("user-1", "f");
    let aad = wrap_aad(&ctx);
    let dek = DataKey::generate().unwrap();
    let a = kek.wrap(&dek, &aad, &ctx).await.unwrap();
    let b = kek.wrap(&dek, &aad, &ctx).await.unwrap();
    assert_eq!(a.bytes.len(), WRAPPED_LEN);
    assert_eq!(WRAPPED_LEN, 60);
    assert_ne!(a.bytes[..12], b.bytes[..12], "a fresh IV per wrap");
    assert_ne!(a.bytes, b.bytes);
    let back = kek.unwrap(&a.key, &a.bytes, &aad, &ctx).await.unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn wrong_context_is_refused() {
    let kek = fresh("context").await;
    let envelope = Envelope::new(kek).unwrap();
    let sealed = envelope
        .seal(b"secret", &common::ctx("user-1", "api_secret"))
        .await
        .unwrap();
    for other in [
        common::ctx("user-2", "api_secret"),
        common::ctx("user-1", "api_key"),
    ] {
        let err = envelope.open_sealed(&sealed, &other).await.unwrap_err();
        assert!(matches!(err, Error::Refused), "{err:?}");
    }
    // The token itself refuses the wrap under another context (not just the payload).
    let kek = fresh("context-raw").await;
    let ctx = common::ctx("user-1", "f");
    let dek = DataKey::generate().unwrap();
    let wrapped = kek.wrap(&dek, &wrap_aad(&ctx), &ctx).await.unwrap();
    let other = common::ctx("user-2", "f");
    let err = kek
        .unwrap(&wrapped.key, &wrapped.bytes, &wrap_aad(&other), &other)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Refused), "{err:?}");
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn tampered_wrapped_bytes_are_refused_not_unavailable() {
    let kek = fresh("tamper").await;
    let ctx = common::ctx("user-1", "f");
    let aad = wrap_aad(&ctx);
    let dek = DataKey::generate().unwrap();
    let wrapped = kek.wrap(&dek, &aad, &ctx).await.unwrap();
    // A bit flipped in the IV, the ciphertext and the tag.
    for index in [0, 11, 12, 30, 43, 44, 59] {
        let err = kek
            .unwrap(&wrapped.key, &tamper(&wrapped.bytes, index), &aad, &ctx)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Refused),
            "byte {index}: {err:?}"
        );
    }
    // Wrong lengths, the empty wrap included.
    for len in [0, 1, 28, 59, 61, 200] {
        let mut bytes = wrapped.bytes.clone();
        bytes.resize(len, 0);
        let err = kek
            .unwrap(&wrapped.key, &bytes, &aad, &ctx)
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Refused), "len {len}: {err:?}");
    }
    // The session pool survives refusals: the genuine wrap still opens.
    let back = kek
        .unwrap(&wrapped.key, &wrapped.bytes, &aad, &ctx)
        .await
        .unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn unknown_labels_and_versions_are_key_not_found() {
    let kek = fresh("notfound").await;
    let ctx = common::ctx("user-1", "f");
    let aad = wrap_aad(&ctx);
    let dek = DataKey::generate().unwrap();
    let wrapped = kek.wrap(&dek, &aad, &ctx).await.unwrap();
    // A label this backend is not configured with.
    let other = KeyRef::new("strongroom-kek-elsewhere", 1);
    let err = kek
        .unwrap(&other, &wrapped.bytes, &aad, &ctx)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::KeyNotFound { key } if *key == other),
        "{err:?}"
    );
    // A version other than 1.
    let v2 = KeyRef::new(kek.primary_label().to_owned(), 2);
    let err = kek
        .unwrap(&v2, &wrapped.bytes, &aad, &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::KeyNotFound { .. }), "{err:?}");

    // A configured label the token does not hold.
    let absent = unique_label("absent");
    let kek = builder(&absent).build().unwrap();
    let err = kek.check().await.unwrap_err();
    assert!(matches!(err, BackendError::KeyNotFound { .. }), "{err:?}");
    let envelope = Envelope::new(kek).unwrap();
    let err = envelope.seal(b"x", &ctx).await.unwrap_err();
    assert!(matches!(err, Error::KeyNotHeld { .. }), "{err:?}");
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn generate_refuses_a_taken_label_and_the_key_is_not_extractable() {
    let kek = fresh("generate").await;
    let label = kek.primary_label().to_owned();
    let err = kek.generate_key(&label).await.unwrap_err();
    assert!(
        matches!(&err, Pkcs11Error::KeyExists { label: l } if *l == label),
        "{err:?}"
    );
    assert!(matches!(
        kek.generate_key("bad label").await.unwrap_err(),
        Pkcs11Error::Config(_)
    ));

    let attributes = kek.key_attributes(&label).await.unwrap();
    assert!(attributes.sensitive, "{attributes:?}");
    assert!(!attributes.extractable, "{attributes:?}");
    assert!(attributes.always_sensitive, "{attributes:?}");
    assert!(attributes.never_extractable, "{attributes:?}");
    assert!(attributes.token && attributes.private, "{attributes:?}");
    assert_eq!(attributes.value_len, 32);

    // Straight through the PKCS#11 API: the key value cannot be read, nor wrapped out.
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
    let label_bytes = label.clone().into_bytes();
    with_token_session(move |session| {
        let key = session
            .find_objects(&[Attribute::Label(label_bytes)])
            .unwrap()[0];
        let read = session
            .get_attributes(key, &[AttributeType::Value])
            .unwrap();
        assert!(
            !read.iter().any(|a| matches!(a, Attribute::Value(_))),
            "the key value was readable"
        );
        // A session key that could wrap: the KEK still does not leave.
        let wrapper = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32usize.try_into().unwrap()),
                    Attribute::Token(false),
                    Attribute::Wrap(true),
                ],
            )
            .unwrap();
        let err = session
            .wrap_key(&Mechanism::AesKeyWrapPad, wrapper, key)
            .unwrap_err();
        assert!(
            matches!(err, CkError::Pkcs11(RvError::KeyUnextractable, _)),
            "{err}"
        );
        // The KEK cannot be made extractable afterwards.
        assert!(
            session
                .update_attributes(key, &[Attribute::Extractable(true)])
                .is_err()
        );
    })
    .await;
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn rotation_to_a_new_label_in_the_token() {
    let old = fresh("rotate-old").await;
    let old_label = old.primary_label().to_owned();
    let new_label = unique_label("rotate-new");
    old.generate_key(&new_label).await.unwrap();

    let ctx = common::ctx("user-1", "api_secret");
    let sealed = Envelope::new(old)
        .unwrap()
        .seal(b"rotate me", &ctx)
        .await
        .unwrap();
    assert_eq!(sealed.key().id, old_label);

    let rotated = builder(&new_label)
        .decrypt_only_label(&old_label)
        .build()
        .unwrap();
    assert!(!rotated.is_current(sealed.key()));
    let envelope = Envelope::new(rotated).unwrap();
    // The old value still opens through the decrypt-only label.
    assert_eq!(
        envelope
            .open_sealed(&sealed, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"rotate me"
    );
    let Rewrap::Rewrapped(moved) = envelope.rewrap(&sealed.to_bytes(), &ctx).await.unwrap() else {
        panic!("not re-wrapped");
    };
    assert_eq!(moved.key(), &KeyRef::new(new_label.clone(), 1));
    assert_eq!(moved.ciphertext(), sealed.ciphertext());
    assert_eq!(
        envelope.rewrap(&moved.to_bytes(), &ctx).await.unwrap(),
        Rewrap::Current
    );

    // With the old label gone from the configuration: the moved value opens, the old
    // one names a key not held.
    let only_new = Envelope::new(builder(&new_label).build().unwrap()).unwrap();
    assert_eq!(
        only_new
            .open_sealed(&moved, &ctx)
            .await
            .unwrap()
            .expose_secret(),
        b"rotate me"
    );
    let err = only_new.open_sealed(&sealed, &ctx).await.unwrap_err();
    assert!(matches!(err, Error::KeyNotHeld { .. }), "{err:?}");
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn migration_local_to_pkcs11_memory() {
    let kek: Arc<dyn KekBackend> = Arc::new(fresh("migrate-mem").await);
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    common::migration::local_to(store, kek).await;
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn migration_local_to_pkcs11_sqlite() {
    let kek: Arc<dyn KekBackend> = Arc::new(fresh("migrate-sqlite").await);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    common::migration::local_to(Arc::new(store), kek).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE) and PostgreSQL (STRONGROOM_PG_URL)"]
async fn migration_local_to_pkcs11_postgres() {
    let kek: Arc<dyn KekBackend> = Arc::new(fresh("migrate-pg").await);
    let schema = common::pg::PgSchema::create("envelope_pkcs11", 4).await;
    common::migration::local_to(Arc::new(schema.store().await), kek).await;
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn many_concurrent_opens_through_a_small_pool() {
    let label = unique_label("concurrent");
    let kek = builder(&label).pool_size(2).build().unwrap();
    kek.generate_key(&label).await.unwrap();
    let envelope = Envelope::new(kek).unwrap();
    let mut sealed = Vec::new();
    for i in 0..8 {
        let ctx = common::ctx(&format!("user-{i}"), "f");
        sealed.push((
            ctx.clone(),
            envelope
                .seal(format!("v{i}").as_bytes(), &ctx)
                .await
                .unwrap(),
        ));
    }
    let sealed = Arc::new(sealed);
    let mut tasks = Vec::new();
    for n in 0..64 {
        let envelope = envelope.clone();
        let sealed = Arc::clone(&sealed);
        tasks.push(tokio::spawn(async move {
            let (ctx, value) = &sealed[n % 8];
            let opened = envelope.open_sealed(value, ctx).await.unwrap();
            assert_eq!(opened.expose_secret(), format!("v{}", n % 8).as_bytes());
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// A wrong PIN, in a process where nobody is logged in: a clear `Unavailable` naming
/// `CKR_PIN_INCORRECT`, and the PIN (a canary) nowhere in any error or `Debug`.
#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn wrong_pin_is_a_clear_error_and_the_pin_never_shows() {
    const NAME: &str = "wrong_pin_is_a_clear_error_and_the_pin_never_shows";
    if !in_child(NAME) {
        let out = TokenCopy::new().run_child(NAME);
        assert!(out.contains("CKR_PIN_INCORRECT"), "{out}");
        assert!(!out.contains(CANARY_PIN), "{out}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{CANARY_PIN}\n")).unwrap();
    let label = unique_label("wrongpin");
    let mut texts = Vec::new();
    for from_file in [false, true] {
        let builder = Pkcs11Kek::builder()
            .module(env(ENV_MODULE))
            .token_label(env(ENV_TOKEN_LABEL))
            .key_label(&label);
        let builder = if from_file {
            builder.pin_file(&pin_file)
        } else {
            builder.pin(CANARY_PIN)
        };
        texts.push(format!("{builder:?}"));
        let kek = builder.build().unwrap();
        texts.push(format!("{kek:?}"));
        let err = kek.check().await.unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, BackendError::Unavailable { .. }), "{text}");
        assert!(text.contains("CKR_PIN_INCORRECT"), "{text}");
        // Printed so that the parent checks it too.
        println!("wrong PIN error: {err}");
        texts.push(text);
        // Not tried again: the same answer, without a new login.
        let again = kek.check().await.unwrap_err();
        texts.push(format!("{again} {again:?}"));
        let gen_err = kek.generate_key(&label).await.unwrap_err();
        texts.push(format!("{gen_err} {gen_err:?}"));
        let envelope = Envelope::new(kek).unwrap();
        texts.push(format!("{envelope:?}"));
        let err = envelope
            .seal(b"x", &common::ctx("u", "f"))
            .await
            .unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        texts.push(format!("{err} {err:?}"));
    }
    for text in &texts {
        assert!(!text.contains(CANARY_PIN), "the PIN leaked: {text}");
    }
    // The right PIN in a new backend works in the same process.
    let good = builder(&label).build().unwrap();
    good.generate_key(&label).await.unwrap();
    good.check().await.unwrap();
}

/// The token's directory disappears mid-run (SoftHSM2 keeps a token as files): calls are
/// `Unavailable`, never `Refused` or a success. SoftHSM2 cannot show the token coming
/// back to the same process (see below), so recovery is tested with a lost login
/// (`recovers_after_the_login_is_lost`) and a hung call
/// (`a_hung_token_call_times_out_as_unavailable`). Runs in a child process on a copy of
/// the CI token, so that no other test sees the outage.
#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn token_directory_gone_is_unavailable_never_refused() {
    const NAME: &str = "token_directory_gone_is_unavailable_never_refused";
    if !in_child(NAME) {
        let copy = TokenCopy::new();
        println!("{}", copy.run_child(NAME));
        return;
    }
    let tokens = token_dir();
    let away = tokens.with_extension("away");
    let kek = fresh("outage").await;
    let envelope = Envelope::new(kek).unwrap();
    let ctx = common::ctx("user-1", "f");
    let sealed = envelope.seal(b"during outage", &ctx).await.unwrap();
    envelope.open_sealed(&sealed, &ctx).await.unwrap();

    std::fs::rename(&tokens, &away).unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        match envelope.open_sealed(&sealed, &ctx).await {
            Ok(_) => outcomes.push("opened".to_owned()),
            Err(err) => {
                assert!(
                    err.is_unavailable(),
                    "an outage must be Unavailable: {err:?}"
                );
                outcomes.push(format!("{err:?}"));
            }
        }
        match envelope.seal(b"y", &ctx).await {
            Ok(_) => outcomes.push("sealed".to_owned()),
            Err(err) => {
                assert!(
                    err.is_unavailable(),
                    "an outage must be Unavailable: {err:?}"
                );
                outcomes.push(format!("{err:?}"));
            }
        }
    }
    println!("during the outage: {outcomes:#?}");
    assert!(
        outcomes.iter().all(|o| o.contains("Unavailable")),
        "{outcomes:#?}"
    );

    std::fs::rename(&away, &tokens).unwrap();
    // SoftHSM2 (2.6 and 2.7 alike) marks a token whose directory vanished invalid for
    // the rest of the process (OSToken::index returns early once `valid` is false), so
    // this process cannot see the token come back; whatever it answers must still be
    // an outage or a success, never a refusal. Recovery of the backend itself (fresh
    // sessions, a fresh login) is `recovers_after_the_login_is_lost`.
    for i in 0..3 {
        match envelope.open_sealed(&sealed, &ctx).await {
            Ok(opened) => {
                assert_eq!(opened.expose_secret(), b"during outage");
                println!("after restore {i}: opened");
            }
            Err(err) => {
                assert!(err.is_unavailable(), "{err:?}");
                println!("after restore {i}: {err}");
            }
        }
    }
}

/// The sessions of the pool lose their login behind the backend's back (another part of
/// the process logs the token out, as a token reset or a session timeout in an HSM
/// would): the next call drops the stale session, opens and logs in a fresh one, and
/// succeeds, with no restart. In a child process, since the logout is process-wide.
#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn recovers_after_the_login_is_lost() {
    const NAME: &str = "recovers_after_the_login_is_lost";
    if !in_child(NAME) {
        TokenCopy::new().run_child(NAME);
        return;
    }
    let kek = fresh("relogin").await;
    let envelope =
        Envelope::new(builder(kek.primary_label()).pool_size(2).build().unwrap()).unwrap();
    let ctx = common::ctx("user-1", "f");
    let sealed = envelope.seal(b"still here", &ctx).await.unwrap();
    for round in 0..3 {
        // Fill the pool with logged-in sessions.
        let (a, b) = tokio::join!(
            envelope.open_sealed(&sealed, &ctx),
            envelope.open_sealed(&sealed, &ctx)
        );
        a.unwrap();
        b.unwrap();
        logout_everywhere().await;
        let opened = envelope
            .open_sealed(&sealed, &ctx)
            .await
            .unwrap_or_else(|e| panic!("round {round}: no recovery after the logout: {e:?}"));
        assert_eq!(opened.expose_secret(), b"still here");
        envelope.seal(b"again", &ctx).await.unwrap();
    }
}

/// Logs the CI token out for this whole process (`C_Logout` from a session of our own).
async fn logout_everywhere() {
    with_token_session(|session| session.logout().unwrap()).await;
}

/// Set in a child process to the token directory of its own copy of the CI token.
const TOKENS: &str = "STRONGROOM_PKCS11_TEST_TOKENS";

/// A copy of the CI token (its directory and a `softhsm2.conf` naming it), for a child
/// process that breaks its token without disturbing the other tests.
struct TokenCopy {
    dir: tempfile::TempDir,
}

impl TokenCopy {
    fn new() -> Self {
        let conf = PathBuf::from(env("SOFTHSM2_CONF"));
        let text = std::fs::read_to_string(&conf).unwrap();
        let tokens = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("directories.tokendir"))
            .map(|rest| PathBuf::from(rest.trim().trim_start_matches('=').trim()))
            .expect("tokendir in SOFTHSM2_CONF");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&tokens, &dir.path().join("tokens"));
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn run_child(&self, test: &str) -> String {
        let conf = self.dir.path().join("softhsm2.conf");
        let tokens = self.dir.path().join("tokens");
        run_child(
            test,
            &[
                ("SOFTHSM2_CONF", conf.to_str().unwrap()),
                (TOKENS, tokens.to_str().unwrap()),
            ],
        )
    }
}

/// In a child on a [`TokenCopy`]: the directory of the (one) token.
fn token_dir() -> PathBuf {
    std::fs::read_dir(PathBuf::from(env(TOKENS)))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap()
}

/// A token call that hangs: another process holds an fcntl write lock on the token's
/// `generation` file, which SoftHSM2 read-locks (blocking) before it uses an object. The
/// caller gets `Unavailable` after the timeout, the hung call finishes once the lock is
/// released, and the backend then works again. The lock holder is a python3 one-liner
/// (the Rust standard library only has flock(2), which fcntl locks do not see).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn a_hung_token_call_times_out_as_unavailable() {
    const NAME: &str = "a_hung_token_call_times_out_as_unavailable";
    if !in_child(NAME) {
        let copy = TokenCopy::new();
        println!("{}", copy.run_child(NAME));
        return;
    }
    let label = unique_label("hang");
    let kek = builder(&label)
        .timeout(Duration::from_millis(700))
        .pool_size(1)
        .build()
        .unwrap();
    kek.generate_key(&label).await.unwrap();
    let envelope = Envelope::new(kek).unwrap();
    let ctx = common::ctx("user-1", "f");
    let sealed = envelope.seal(b"slow", &ctx).await.unwrap();

    let generation = token_dir().join("generation");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys,time\n\
             f=open(sys.argv[1],'r+')\n\
             fcntl.lockf(f,fcntl.LOCK_EX)\n\
             print('locked',flush=True)\n\
             time.sleep(30)",
            generation.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to hold an fcntl lock on the token");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
    }
    let started = std::time::Instant::now();
    let err = envelope.open_sealed(&sealed, &ctx).await.unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(format!("{err:?}").contains("within"), "{err:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // The one session is still held by the hung call: the next caller times out too,
    // waiting for it, rather than piling up another blocked thread.
    let err = envelope.open_sealed(&sealed, &ctx).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    holder.kill().unwrap();
    holder.wait().unwrap();
    let opened = envelope.open_sealed(&sealed, &ctx).await.unwrap();
    assert_eq!(opened.expose_secret(), b"slow");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn from_env_reads_the_ci_token() {
    // The env as the service script exports it, with a key label of our own.
    let label = unique_label("fromenv");
    let kek = Pkcs11KekBuilder::from_lookup(|name| match name {
        ENV_KEY_LABEL => Some(label.clone()),
        other => std::env::var(other).ok(),
    })
    .unwrap()
    .build()
    .unwrap();
    kek.generate_key(&label).await.unwrap();
    kek.check().await.unwrap();
    assert_eq!(kek.token_label(), env(ENV_TOKEN_LABEL));
    // connect = build + check.
    let connected = builder(&label).connect().await.unwrap();
    assert_eq!(connected.primary_label(), label);
    let err = builder(&unique_label("absent"))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            crypto_envelope::ConnectError::Backend(BackendError::KeyNotFound { .. })
        ),
        "{err:?}"
    );
    assert!(matches!(
        builder("bad label").connect().await.unwrap_err(),
        crypto_envelope::ConnectError::Config(_)
    ));
    assert_eq!(pkcs11::BACKEND_ID, kek.id());
}

/// The known-answer vector of FORMAT.md's `pkcs11` backend
/// (`tests/data/envelope_v1_pkcs11_pass.txt`) opens through a real token: its test KEK
/// is imported into the CI token under the vector's label (sensitive, not extractable),
/// and the token's `CKM_AES_GCM` unwraps the vector's wrapped key to its DEK.
#[tokio::test]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn the_format_vector_opens_through_the_token() {
    let path = format!(
        "{}/tests/data/envelope_v1_pkcs11_pass.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let fields: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(':'))
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_owned(), v.trim_start().to_owned())
        })
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut ctx = crypto_envelope::EncryptionContext::new();
    for (_, pair) in fields.iter().filter(|(k, _)| k == "context") {
        let (n, v) = pair.split_once('=').unwrap();
        ctx.insert(n, v).unwrap();
    }
    let label = field("key_id");
    let kek_value = hex(&field("kek"));

    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    let import_label = label.clone();
    with_token_session(move |session| {
        let existing = session
            .find_objects(&[Attribute::Label(import_label.as_bytes().to_vec())])
            .unwrap();
        if existing.is_empty() {
            session
                .create_object(&[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::Value(kek_value),
                    Attribute::Label(import_label.into_bytes()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                ])
                .unwrap();
        }
    })
    .await;

    let kek = builder(&label).build().unwrap();
    let wrapped = hex(&field("wrapped"));
    let dek = kek
        .unwrap(
            &KeyRef::new(label.clone(), 1),
            &wrapped,
            &wrap_aad(&ctx),
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(dek.expose_secret().as_slice(), hex(&field("dek")));
    let envelope = Envelope::new(kek).unwrap();
    let opened = envelope.open_text(&field("text"), &ctx).await.unwrap();
    assert_eq!(opened.expose_secret(), hex(&field("plaintext")));
    let opened = envelope.open(&hex(&field("sealed")), &ctx).await.unwrap();
    assert_eq!(opened.expose_secret(), hex(&field("plaintext")));
}

/// Runs `f` on a logged-in R/W session of the CI token, opened straight through
/// `cryptoki` (not through the backend).
async fn with_token_session(f: impl FnOnce(&cryptoki::session::Session) + Send + 'static) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::error::{Error as CkError, RvError};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    tokio::task::spawn_blocking(move || {
        let ctx = Pkcs11::new(env(ENV_MODULE)).unwrap();
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("{e}"),
        }
        let token = env(ENV_TOKEN_LABEL);
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label() == token)
            .unwrap();
        let session = ctx.open_rw_session(slot).unwrap();
        match session.login(UserType::User, Some(&AuthPin::from(env(ENV_PIN).as_str()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("{e}"),
        }
        f(&session);
    })
    .await
    .unwrap();
}
