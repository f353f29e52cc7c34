//! The AWS KMS backend against a KMS-compatible server (moto's server mode, started by
//! `.ci/services/awskms.sh`, which exports `AWS_ENDPOINT_URL`, `AWS_REGION`, test
//! credentials and the marker `STRONGROOM_KMS_ENDPOINT`). Each test creates its own KMS
//! keys with `CreateKey`.
//!
//! What moto does not do like AWS KMS (so what these tests cannot show): `Decrypt` and
//! `ReEncrypt` ignore the key state (a disabled key still decrypts; `DescribeKey` does
//! report it, which `connect` checks for the primary key); `Decrypt` with a `KeyId` that
//! is not the blob's key answers `AccessDeniedException`, not `IncorrectKeyException`
//! (both are refusals here); `DisableKey` and `EnableKey` take a key id, not an ARN;
//! its encryption-context binding concatenates names and values without lengths (so
//! `{ab: c}` and `{a: bc}` bind alike: the `strongroom:aad` pair is what tells them
//! apart here, as a test shows).

#![cfg(feature = "awskms")]
// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use crypto_envelope::backend::awskms::ConnectError;
use crypto_envelope::{
    AwsKms, BackendError, EncryptionContext, Envelope, Error, KekBackend, KeyRef, MemoryStore,
    Rewrap, Sealed, SecretStore, SqliteStore,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const NEEDS: &str = "needs a KMS server: source .ci/services/awskms.sh (STRONGROOM_KMS_ENDPOINT)";

/// The KMS endpoint; panics (fails the test) when the service script did not run.
fn endpoint() -> String {
    std::env::var("STRONGROOM_KMS_ENDPOINT").expect(NEEDS)
}

fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned())
}

/// An SDK client for the test's own key administration (CreateKey, DisableKey, aliases).
async fn admin() -> aws_sdk_kms::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region()))
        .endpoint_url(endpoint())
        .load()
        .await;
    aws_sdk_kms::Client::new(&config)
}

/// A fresh symmetric encryption key; its ARN.
async fn create_key(admin: &aws_sdk_kms::Client) -> String {
    let out = admin
        .create_key()
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .description("strongroom crypto-envelope test")
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

/// The key id part of a key ARN (moto's DisableKey and EnableKey take only that).
fn key_uuid(arn: &str) -> &str {
    arn.rsplit_once(":key/").unwrap().1
}

fn builder(key_id: &str) -> crypto_envelope::AwsKmsBuilder {
    AwsKms::builder()
        .region(region())
        .endpoint_url(endpoint())
        .key_id(key_id)
}

async fn backend(key_id: &str) -> AwsKms {
    builder(key_id).connect().await.unwrap()
}

/// The header fields of a sealed value and where its wrapped key lies (FORMAT.md,
/// section 4).
struct Header {
    key_id: String,
    version: u32,
    wrapped: std::ops::Range<usize>,
    backend_end: usize,
}

fn header(bytes: &[u8]) -> Header {
    let mut at = 5;
    let backend_len = bytes[at] as usize;
    at += 1 + backend_len;
    let backend_end = at;
    let key_len = bytes[at] as usize;
    let key_id = String::from_utf8(bytes[at + 1..at + 1 + key_len].to_vec()).unwrap();
    at += 1 + key_len;
    let version = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    at += 4;
    let wrapped_len = u16::from_be_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    at += 2;
    Header {
        key_id,
        version,
        wrapped: at..at + wrapped_len,
        backend_end,
    }
}

/// The same sealed value naming another key id and version (the header is not
/// authenticated: whoever can write a row can do this).
fn with_key(bytes: &[u8], key_id: &str, version: u32) -> Vec<u8> {
    let h = header(bytes);
    let mut out = bytes[..h.backend_end].to_vec();
    out.push(u8::try_from(key_id.len()).unwrap());
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&bytes[h.wrapped.start - 2..]);
    out
}

fn ctx() -> EncryptionContext {
    common::ctx("user-1", "api_secret")
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn round_trip_through_the_envelope_writes_the_key_arn_version_0() {
    let admin = admin().await;
    let arn = create_key(&admin).await;
    // Configured by alias: the value still names the key ARN.
    let alias = format!("alias/strongroom-test-{}", &arn[arn.len() - 12..]);
    admin
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&arn)
        .send()
        .await
        .unwrap();
    let kms = backend(&alias).await;
    assert_eq!(kms.primary_arn(), arn);
    assert_eq!(kms.primary_key(), KeyRef::new(arn.as_str(), 0));
    let envelope = Envelope::new(kms).unwrap();

    let sealed = envelope.seal(b"exchange api secret", &ctx()).await.unwrap();
    assert_eq!(sealed.backend(), "awskms");
    assert_eq!(sealed.key(), &KeyRef::new(arn.clone(), 0));
    let opened = envelope.open_sealed(&sealed, &ctx()).await.unwrap();
    assert_eq!(opened.expose_secret(), b"exchange api secret");
    let text = envelope.open_text(&sealed.to_text(), &ctx()).await.unwrap();
    assert_eq!(text.expose_secret(), b"exchange api secret");
    assert_eq!(
        envelope.rewrap(&sealed.to_bytes(), &ctx()).await.unwrap(),
        Rewrap::Current
    );

    // The alias re-pointed to another key: old values keep naming (and opening under)
    // the first key; a backend connected afterwards seals under the new one.
    let second = create_key(&admin).await;
    admin
        .update_alias()
        .alias_name(&alias)
        .target_key_id(&second)
        .send()
        .await
        .unwrap();
    let again = envelope.open_sealed(&sealed, &ctx()).await.unwrap();
    assert_eq!(again.expose_secret(), b"exchange api secret");
    let later = backend(&alias).await;
    assert_eq!(later.primary_arn(), second);
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn a_wrong_context_is_refused() {
    let arn = create_key(&admin().await).await;
    let envelope = Envelope::new(backend(&arn).await).unwrap();
    let sealed = envelope.seal(b"v", &ctx()).await.unwrap().to_bytes();
    for other in [
        common::ctx("user-2", "api_secret"),
        common::ctx("user-1", "api_key"),
        EncryptionContext::new(),
    ] {
        assert!(
            matches!(envelope.open(&sealed, &other).await, Err(Error::Refused)),
            "{other:?}"
        );
    }
    // Two contexts that a KMS binding without lengths would confuse (moto's does): the
    // strongroom:aad pair, over the canonical length-prefixed encoding, tells them apart.
    let a = EncryptionContext::new().with("ab", "c").unwrap();
    let b = EncryptionContext::new().with("a", "bc").unwrap();
    let sealed = envelope.seal(b"v", &a).await.unwrap().to_bytes();
    assert!(envelope.open(&sealed, &a).await.is_ok());
    assert!(matches!(
        envelope.open(&sealed, &b).await,
        Err(Error::Refused)
    ));
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn a_tampered_wrapped_key_is_refused_not_unavailable() {
    let arn = create_key(&admin().await).await;
    let kms = Arc::new(backend(&arn).await);
    let envelope = Envelope::from_arc(kms.clone()).unwrap();
    let sealed = envelope.seal(b"v", &ctx()).await.unwrap().to_bytes();
    let h = header(&sealed);
    for index in [h.wrapped.start, h.wrapped.start + 40, h.wrapped.end - 1] {
        let mut bad = sealed.clone();
        bad[index] ^= 0x01;
        let result = envelope.open(&bad, &ctx()).await;
        assert!(
            matches!(result, Err(Error::Refused)),
            "byte {index}: {result:?}"
        );
    }
    // Straight to the backend: garbage and a truncated blob are refused too.
    let aad_ctx = ctx();
    let key = KeyRef::new(arn.as_str(), 0);
    for wrapped in [
        vec![0u8; 1],
        vec![0x42; 200],
        sealed[h.wrapped.start..h.wrapped.end - 5].to_vec(),
    ] {
        let result = kms.unwrap(&key, &wrapped, b"aad", &aad_ctx).await;
        assert!(matches!(result, Err(BackendError::Refused)), "{result:?}");
    }
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn a_key_not_configured_or_not_in_kms_is_key_not_found() {
    let admin = admin().await;
    let arn = create_key(&admin).await;
    let envelope = Envelope::new(backend(&arn).await).unwrap();
    let sealed = envelope.seal(b"v", &ctx()).await.unwrap().to_bytes();

    // A value naming an ARN that is nowhere: refused before any KMS call.
    let absent = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000000";
    let result = envelope.open(&with_key(&sealed, absent, 0), &ctx()).await;
    assert!(
        matches!(&result, Err(Error::KeyNotHeld { key }) if key.id == absent),
        "{result:?}"
    );
    // A key that exists in KMS but is not configured here: not asked either.
    let other = create_key(&admin).await;
    let result = envelope.open(&with_key(&sealed, &other, 0), &ctx()).await;
    assert!(
        matches!(result, Err(Error::KeyNotHeld { .. })),
        "{result:?}"
    );
    // The right ARN under another version: only version 0 exists.
    let result = envelope.open(&with_key(&sealed, &arn, 1), &ctx()).await;
    assert!(
        matches!(result, Err(Error::KeyNotHeld { .. })),
        "{result:?}"
    );
    assert_eq!(header(&sealed).version, 0);
    assert_eq!(header(&sealed).key_id, arn);

    // Configuring a key KMS does not hold: KMS's NotFoundException, at connect.
    for missing in [absent, "alias/strongroom-no-such-alias"] {
        let result = builder(missing).connect().await;
        assert!(
            matches!(
                result,
                Err(ConnectError::Backend(BackendError::KeyNotFound { .. }))
            ),
            "{missing}: {result:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn a_disabled_primary_key_is_retired() {
    let admin = admin().await;
    let arn = create_key(&admin).await;
    admin
        .disable_key()
        .key_id(key_uuid(&arn))
        .send()
        .await
        .unwrap();
    let result = builder(&arn).connect().await;
    assert!(
        matches!(&result, Err(ConnectError::Backend(BackendError::KeyRetired { key })) if key.id == arn),
        "{result:?}"
    );
    // Re-enabled, it serves again.
    admin
        .enable_key()
        .key_id(key_uuid(&arn))
        .send()
        .await
        .unwrap();
    builder(&arn).connect().await.unwrap();
    // A disabled key is accepted as decrypt-only (values under it are KMS's to refuse).
    let primary = create_key(&admin).await;
    admin
        .disable_key()
        .key_id(key_uuid(&arn))
        .send()
        .await
        .unwrap();
    let kms = builder(&primary)
        .decrypt_only_key_id(&arn)
        .connect()
        .await
        .unwrap();
    assert_eq!(kms.key_arns(), [primary, arn]);
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn rotation_to_a_new_key_re_encrypts_inside_kms() {
    let admin = admin().await;
    let old_arn = create_key(&admin).await;
    let old = Envelope::new(backend(&old_arn).await).unwrap();
    let sealed = old.seal(b"rotate me", &ctx()).await.unwrap().to_bytes();

    let new_arn = create_key(&admin).await;
    let new_kms = Arc::new(
        builder(&new_arn)
            .decrypt_only_key_id(&old_arn)
            .connect()
            .await
            .unwrap(),
    );
    assert!(!new_kms.is_current(&KeyRef::new(old_arn.as_str(), 0)));
    assert!(new_kms.is_current(&KeyRef::new(new_arn.as_str(), 0)));

    // The backend's own rewrap: ReEncrypt from the old key to the new one.
    let h = header(&sealed);
    let aad = {
        // aad(2) of FORMAT.md: "SRE" || 1 || 1 || 2 || canonical context.
        let mut aad = b"SRE\x01\x01\x02".to_vec();
        aad.extend_from_slice(&ctx().canonical_bytes());
        aad
    };
    let moved = new_kms
        .rewrap(
            &KeyRef::new(old_arn.as_str(), 0),
            &sealed[h.wrapped.clone()],
            &aad,
            &ctx(),
        )
        .await
        .unwrap()
        .expect("ReEncrypt is used");
    assert_eq!(moved.key, KeyRef::new(new_arn.clone(), 0));
    assert_ne!(moved.bytes, sealed[h.wrapped.clone()]);
    // A rewrap under the wrong context is refused by KMS.
    let result = new_kms
        .rewrap(
            &KeyRef::new(old_arn.as_str(), 0),
            &sealed[h.wrapped.clone()],
            &aad,
            &common::ctx("user-2", "api_secret"),
        )
        .await;
    assert!(matches!(result, Err(BackendError::Refused)), "{result:?}");

    // Through the envelope: the payload is unchanged, and the value opens with only the
    // new key configured.
    let envelope = Envelope::from_arc(new_kms.clone()).unwrap();
    let Rewrap::Rewrapped(rewrapped) = envelope.rewrap(&sealed, &ctx()).await.unwrap() else {
        panic!("expected a re-wrap");
    };
    assert_eq!(rewrapped.key(), &KeyRef::new(new_arn.clone(), 0));
    assert_eq!(
        rewrapped.ciphertext(),
        Sealed::from_bytes(&sealed).unwrap().ciphertext()
    );
    let only_new = Envelope::new(backend(&new_arn).await).unwrap();
    let opened = only_new.open_sealed(&rewrapped, &ctx()).await.unwrap();
    assert_eq!(opened.expose_secret(), b"rotate me");
    // The old value names a key the new-only backend does not hold.
    assert!(matches!(
        only_new.open(&sealed, &ctx()).await,
        Err(Error::KeyNotHeld { .. })
    ));
}

async fn target() -> Arc<dyn KekBackend> {
    let arn = create_key(&admin().await).await;
    Arc::new(backend(&arn).await)
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn local_to_awskms_memory() {
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    common::migration::local_to(store, target().await).await;
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn local_to_awskms_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    common::migration::local_to(Arc::new(store), target().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL) and PostgreSQL (STRONGROOM_PG_URL)"]
async fn local_to_awskms_postgres() {
    let schema = common::pg::PgSchema::create("envelope_awskms", 4).await;
    common::migration::local_to(Arc::new(schema.store().await), target().await).await;
    schema.drop_schema().await;
}

/// A loopback TCP port that nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn a_closed_port_is_unavailable_within_the_bounded_retries() {
    let _ = endpoint();
    let addr = closed_port().await;
    let started = Instant::now();
    let result = AwsKms::builder()
        .region(region())
        .endpoint_url(format!("http://{addr}"))
        .key_id("alias/anything")
        .connect()
        .await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            &result,
            Err(ConnectError::Backend(BackendError::Unavailable { .. }))
        ),
        "{result:?}"
    );
    // Three attempts with backoff, far inside the 5 s operation bound.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

/// A TCP relay to the KMS server that can be cut and restored on the same port, to take
/// KMS away from a connected backend and give it back (a restarted moto would have lost
/// its keys: it keeps them in memory).
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut relay = Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            tasks: JoinSet::new(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream;
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Closes the port and every relayed connection.
    async fn cut(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Listens on the same port again.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn an_outage_mid_run_is_unavailable_and_the_same_backend_recovers() {
    let arn = create_key(&admin().await).await;
    let upstream: SocketAddr = endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("STRONGROOM_KMS_ENDPOINT is http://127.0.0.1:<port>");
    let mut relay = Relay::start(upstream).await;
    let kms = AwsKms::builder()
        .region(region())
        .endpoint_url(format!("http://{}", relay.addr))
        .key_id(&arn)
        .connect()
        .await
        .unwrap();
    let envelope = Envelope::new(kms).unwrap();
    let sealed = envelope.seal(b"v", &ctx()).await.unwrap().to_bytes();
    envelope.open(&sealed, &ctx()).await.unwrap();

    relay.cut().await;
    for _ in 0..2 {
        let started = Instant::now();
        let open = envelope.open(&sealed, &ctx()).await;
        assert!(open.as_ref().is_err_and(Error::is_unavailable), "{open:?}");
        let seal = envelope.seal(b"w", &ctx()).await;
        assert!(seal.as_ref().is_err_and(Error::is_unavailable), "{seal:?}");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{:?}",
            started.elapsed()
        );
    }

    relay.restore().await;
    let opened = envelope.open(&sealed, &ctx()).await.unwrap();
    assert_eq!(opened.expose_secret(), b"v");
    envelope.seal(b"w", &ctx()).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn a_slow_kms_is_unavailable_within_the_operation_timeout() {
    let _ = endpoint();
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let result = AwsKms::builder()
        .region(region())
        .endpoint_url(format!("http://{addr}"))
        .key_id("alias/anything")
        .operation_timeout(Duration::from_secs(2))
        .attempt_timeout(Duration::from_millis(500))
        .connect()
        .await;
    let elapsed = started.elapsed();
    server.abort();
    assert!(
        matches!(
            &result,
            Err(ConnectError::Backend(BackendError::Unavailable { .. }))
        ),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

const CANARY_SECRET: &str = "Canary/Secret+Access+Key/7h1s-must-never-leak";
const CANARY_CHILD: &str = "STRONGROOM_KMS_CANARY_CHILD";
/// A data key the child wraps and unwraps; its base64 (as in KMS's JSON) must not be
/// logged either.
const CANARY_DEK: &[u8; 32] = b"data-key-canary-0123456789abcdef";

fn dek_base64() -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(CANARY_DEK)
}

/// Runs [`credential_canary_child`] in a child process whose `AWS_SECRET_ACCESS_KEY` is a
/// canary (a test cannot safely change its own environment), and checks that nothing
/// the child printed (every `Debug` and error text it could produce, and the SDK's
/// trace-level logs) holds the secret or the data key.
#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn the_credential_canary_never_appears() {
    let arn = create_key(&admin().await).await;
    // The tests share one binary: a test's name there is its module path and its own.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let child = format!("{module}::credential_canary_child");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            child.as_str(),
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CANARY_CHILD, "1")
        .env("STRONGROOM_KMS_KEY_ID", &arn)
        .env("AWS_ACCESS_KEY_ID", "AKIDCANARYTEST")
        .env("AWS_SECRET_ACCESS_KEY", CANARY_SECRET)
        .env_remove("LOG_SENSITIVE_BODIES")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("canary child: done"),
        "child did not run:\n{stdout}"
    );
    assert!(
        stdout.contains("KMS.Decrypt"),
        "the SDK's trace logs were not captured"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(CANARY_SECRET), "the secret leaked to {name}");
        assert!(
            !text.contains(&dek_base64()),
            "the data key leaked to {name}"
        );
    }
}

/// The child half of [`the_credential_canary_never_appears`]; does nothing unless that
/// test started it.
#[tokio::test]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn credential_canary_child() {
    if std::env::var_os(CANARY_CHILD).is_none() {
        return;
    }
    assert_eq!(
        std::env::var("AWS_SECRET_ACCESS_KEY").unwrap(),
        CANARY_SECRET
    );
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::io::stdout)
        .finish();
    // tracing caches each callsite's interest for the whole process, and while a single
    // dispatcher is registered it asks the *registering* thread's default: a test beside
    // this one, with no subscriber, could cache `never` for a line asserted here. A second
    // registered dispatcher makes the interest the union of both.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::subscriber::set_default(subscriber);

    let builder = crypto_envelope::AwsKmsBuilder::from_env().unwrap();
    println!("builder: {builder:?}");
    let kms = Arc::new(builder.connect().await.unwrap());
    println!("backend: {kms:?}");
    // The data key canary, straight through the backend (Encrypt, then Decrypt).
    let dek = crypto_envelope::DataKey::from_slice(CANARY_DEK).unwrap();
    let wrapped = kms.wrap(&dek, b"aad", &ctx()).await.unwrap();
    let back = kms
        .unwrap(&wrapped.key, &wrapped.bytes, b"aad", &ctx())
        .await
        .unwrap();
    assert_eq!(back.expose_secret(), CANARY_DEK);
    println!("wrapped: {wrapped:?}; data key: {back:?}");

    let envelope = Envelope::from_arc(kms.clone()).unwrap();
    let sealed = envelope.seal(b"v", &ctx()).await.unwrap().to_bytes();
    let mut texts = Vec::new();
    let wrong = envelope.open(&sealed, &common::ctx("x", "y")).await;
    texts.push(format!("{wrong:?}"));
    let missing = envelope
        .open(
            &with_key(&sealed, "arn:aws:kms:us-east-1:1:key/x", 0),
            &ctx(),
        )
        .await;
    texts.push(format!("{missing:?}"));
    let unavailable = crypto_envelope::AwsKmsBuilder::from_env()
        .unwrap()
        .endpoint_url(format!("http://{}", closed_port().await))
        .connect()
        .await;
    texts.push(format!("{unavailable:?}"));
    let not_found = crypto_envelope::AwsKmsBuilder::from_env()
        .unwrap()
        .key_id("alias/strongroom-canary-missing")
        .connect()
        .await;
    texts.push(format!("{not_found:?}"));
    for err in [wrong.err(), missing.err()].into_iter().flatten() {
        texts.push(err.to_string());
        if let Some(source) = std::error::Error::source(&err) {
            texts.push(source.to_string());
        }
    }
    for err in [unavailable.err(), not_found.err()].into_iter().flatten() {
        texts.push(err.to_string());
    }
    for text in &texts {
        println!("text: {text}");
        assert!(!text.contains(CANARY_SECRET));
    }
    println!("canary child: done");
}
