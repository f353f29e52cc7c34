//! The Transit backend against a real OpenBao server (`.ci/services/openbao.sh` starts a
//! dev server and exports `STRONGROOM_TRANSIT_TEST_ADDR`, `STRONGROOM_OPENBAO_ROOT_TOKEN`
//! and `STRONGROOM_OPENBAO_BIN`). The outage and TLS tests start servers of their own.
#![cfg(feature = "transit")]
// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::openbao::OwnServer;
use crypto_envelope::backend::transit::ConnectError;
use crypto_envelope::{
    BackendError, DataKey, EncryptionContext, Envelope, Error, KekBackend, KeyRef, MemoryStore,
    Rewrap, Sealed, SecretStore, SqliteStore, TransitBuilder, TransitKek,
};
use serde_json::{Value, json};

const NEEDS: &str = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {NEEDS}"))
}

fn addr() -> String {
    env("STRONGROOM_TRANSIT_TEST_ADDR")
}

fn root() -> String {
    env("STRONGROOM_OPENBAO_ROOT_TOKEN")
}

/// An administrative call with the root token; returns status and JSON body.
async fn admin(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client
        .request(method, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", root());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

static KEYS: AtomicU32 = AtomicU32::new(0);

/// A fresh derived aes256-gcm96 key in the default Transit mount.
async fn fresh_key(addr: &str) -> String {
    let name = format!(
        "t{}-{}-{}",
        std::process::id(),
        KEYS.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_007
    );
    let (status, body) = admin(
        addr,
        "POST",
        &format!("transit/keys/{name}"),
        Some(json!({"type": "aes256-gcm96", "derived": true})),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    name
}

async fn backend(addr: &str, key: &str) -> TransitKek {
    TransitBuilder::new(addr, key)
        .token(&root())
        .connect()
        .await
        .unwrap()
}

fn ctx(owner: &str) -> EncryptionContext {
    common::ctx(owner, "API_SECRET")
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn seals_and_opens_with_the_context_bound() {
    let addr = addr();
    let key = fresh_key(&addr).await;
    let kek = backend(&addr, &key).await;
    assert_eq!(kek.primary_key(), KeyRef::new(format!("transit/{key}"), 1));
    let envelope = Envelope::new(kek).unwrap();
    let sealed = envelope
        .seal(b"exchange secret", &ctx("alice"))
        .await
        .unwrap();
    assert_eq!(sealed.backend(), "transit");
    assert_eq!(sealed.key(), &KeyRef::new(format!("transit/{key}"), 1));
    let bytes = sealed.to_bytes();
    let opened = envelope.open(&bytes, &ctx("alice")).await.unwrap();
    assert_eq!(opened.expose_secret(), b"exchange secret");
    // Another row's context: refused, not unavailable.
    let err = envelope.open(&bytes, &ctx("mallory")).await.unwrap_err();
    assert!(matches!(err, Error::Refused), "{err:?}");
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn tampered_or_foreign_wrapped_keys_are_refused_or_not_found() {
    let addr = addr();
    let key = fresh_key(&addr).await;
    let kek = backend(&addr, &key).await;
    let dek = DataKey::generate().unwrap();
    let context = ctx("alice");
    let wrapped = kek.wrap(&dek, b"aad-1", &context).await.unwrap();
    assert_eq!(wrapped.bytes.len(), 12 + 32 + 16);
    let back = kek
        .unwrap(&wrapped.key, &wrapped.bytes, b"aad-1", &context)
        .await
        .unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());

    for i in [0, 12, 40, wrapped.bytes.len() - 1] {
        let mut bad = wrapped.bytes.clone();
        bad[i] ^= 1;
        let err = kek
            .unwrap(&wrapped.key, &bad, b"aad-1", &context)
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Refused), "byte {i}: {err:?}");
    }
    let err = kek
        .unwrap(&wrapped.key, &wrapped.bytes, b"aad-2", &context)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Refused), "{err:?}");
    let err = kek
        .unwrap(&wrapped.key, &wrapped.bytes[..20], b"aad-1", &context)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Refused), "{err:?}");
    // A version the key does not have yet, another key, version 0.
    for other in [
        KeyRef::new(wrapped.key.id.clone(), 9),
        KeyRef::new("transit/another-key", 1),
        KeyRef::new(wrapped.key.id.clone(), 0),
    ] {
        let err = kek
            .unwrap(&other, &wrapped.bytes, b"aad-1", &context)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::KeyNotFound { .. }),
            "{other}: {err:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn rotation_rewraps_inside_transit_and_retires_old_versions() {
    let addr = addr();
    let key = fresh_key(&addr).await;
    let kek = Arc::new(backend(&addr, &key).await);
    let envelope = Envelope::from_arc(Arc::clone(&kek) as Arc<dyn KekBackend>).unwrap();
    let sealed = envelope.seal(b"rotate me", &ctx("alice")).await.unwrap();
    let v1 = sealed.to_bytes();
    assert!(matches!(
        envelope.rewrap(&v1, &ctx("alice")).await.unwrap(),
        Rewrap::Current
    ));
    let aad = b"any associated data";
    let dek = DataKey::generate().unwrap();
    let w1 = kek.wrap(&dek, aad, &ctx("alice")).await.unwrap();
    assert_eq!(w1.key.version, 1);

    let (status, _) = admin(&addr, "POST", &format!("transit/keys/{key}/rotate"), None).await;
    assert!(status == 200 || status == 204);
    // Not seen until the backend reads the key again (or wraps).
    assert_eq!(kek.primary_key().version, 1);
    kek.refresh().await.unwrap();
    assert_eq!(kek.primary_key().version, 2);

    // The backend's own rewrap: a version-1 wrap comes back under version 2, and the
    // data key never left Transit.
    let parsed = Sealed::from_bytes(&v1).unwrap();
    let again = kek
        .rewrap(&w1.key, &w1.bytes, aad, &ctx("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.key.version, 2);
    assert_ne!(again.bytes, w1.bytes);
    let back = kek
        .unwrap(&again.key, &again.bytes, aad, &ctx("alice"))
        .await
        .unwrap();
    assert_eq!(back.expose_secret(), dek.expose_secret());

    let Rewrap::Rewrapped(v2) = envelope.rewrap(&v1, &ctx("alice")).await.unwrap() else {
        panic!("a v1 value must be re-wrapped after the rotation");
    };
    assert_eq!(v2.key().version, 2);
    assert_eq!(v2.ciphertext(), parsed.ciphertext());
    assert_ne!(v2.to_bytes(), v1);
    assert_eq!(
        envelope
            .open(&v2.to_bytes(), &ctx("alice"))
            .await
            .unwrap()
            .expose_secret(),
        b"rotate me"
    );
    // A re-wrap still refuses another row's context.
    let err = envelope.rewrap(&v1, &ctx("mallory")).await.unwrap_err();
    assert!(matches!(err, Error::Refused), "{err:?}");

    // Retire version 1: the old value is KeyRetired, the new one opens.
    let (status, body) = admin(
        &addr,
        "POST",
        &format!("transit/keys/{key}/config"),
        Some(json!({"min_decryption_version": 2})),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let err = envelope.open(&v1, &ctx("alice")).await.unwrap_err();
    assert!(
        matches!(err, Error::Backend(BackendError::KeyRetired { .. })),
        "{err:?}"
    );
    envelope.open(&v2.to_bytes(), &ctx("alice")).await.unwrap();
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn connect_refuses_unusable_keys_and_tokens() {
    let addr = addr();
    // A key that does not exist.
    let err =
        common::connect_refused(TransitBuilder::new(&addr, "no-such-key").token(&root())).await;
    assert!(matches!(err, BackendError::KeyNotFound { .. }), "{err:?}");
    // A key without derivation: the context would not be bound.
    let name = format!("plain{}", std::process::id());
    admin(
        &addr,
        "POST",
        &format!("transit/keys/{name}"),
        Some(json!({"type": "aes256-gcm96"})),
    )
    .await;
    let err = common::connect_refused(TransitBuilder::new(&addr, &name).token(&root())).await;
    assert!(matches!(err, BackendError::Misbehaved { .. }), "{err:?}");
    // A token the server does not know: unavailable (503), and the token never shows.
    let key = fresh_key(&addr).await;
    let canary = "s.CANARY-transit-token-7f3a9c";
    let builder = TransitBuilder::new(&addr, &key)
        .token(canary)
        .max_attempts(1);
    assert!(!format!("{builder:?}").contains("CANARY"));
    let err = common::connect_refused(builder).await;
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("CANARY"));
    // Plain http to a host that is not loopback, a path in the address.
    for bad in [
        "http://10.0.0.1:8200",
        "https://vault.example/v1",
        "vault:8200",
    ] {
        let err = TransitBuilder::new(bad, &key)
            .token(&root())
            .connect()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ConnectError::Config(e) if e.to_string().contains("VAULT_ADDR")),
            "{bad}: {err:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn approle_login_with_a_policy_limited_to_one_key() {
    let addr = addr();
    let key = fresh_key(&addr).await;
    let (status, body) = admin(
        &addr,
        "POST",
        "sys/auth/approle",
        Some(json!({"type": "approle"})),
    )
    .await;
    assert!(status == 204 || status == 400, "{status} {body}");
    let policy = format!(
        "path \"transit/encrypt/{key}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/decrypt/{key}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/rewrap/{key}\" {{ capabilities = [\"update\"] }}\n\
         path \"transit/keys/{key}\" {{ capabilities = [\"read\"] }}\n"
    );
    let (status, body) = admin(
        &addr,
        "PUT",
        &format!("sys/policies/acl/{key}"),
        Some(json!({ "policy": policy })),
    )
    .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, body) = admin(
        &addr,
        "POST",
        &format!("auth/approle/role/{key}"),
        Some(json!({"token_policies": [key.clone()], "token_ttl": "2s", "token_max_ttl": "1h"})),
    )
    .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (_, body) = admin(
        &addr,
        "GET",
        &format!("auth/approle/role/{key}/role-id"),
        None,
    )
    .await;
    let role_id = body["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, body) = admin(
        &addr,
        "POST",
        &format!("auth/approle/role/{key}/secret-id"),
        None,
    )
    .await;
    let secret_id = body["data"]["secret_id"].as_str().unwrap().to_owned();

    let vars = |name: &str| match name {
        "VAULT_ADDR" => Some(addr.clone()),
        "STRONGROOM_TRANSIT_KEY" => Some(key.clone()),
        "STRONGROOM_TRANSIT_ROLE_ID" => Some(role_id.clone()),
        "STRONGROOM_TRANSIT_SECRET_ID" => Some(secret_id.clone()),
        _ => None,
    };
    let builder = TransitBuilder::from_lookup(vars).unwrap();
    assert!(!format!("{builder:?}").contains(&secret_id));
    let kek = builder.connect().await.unwrap();
    assert!(!format!("{kek:?}").contains(&secret_id));
    let envelope = Envelope::new(kek).unwrap();
    let sealed = envelope.seal(b"via approle", &ctx("bob")).await.unwrap();
    // The token's lease is 2 s: the backend logs in again when it runs out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let opened = envelope
        .open(&sealed.to_bytes(), &ctx("bob"))
        .await
        .unwrap();
    assert_eq!(opened.expose_secret(), b"via approle");

    // A wrong secret id: the login is refused, as Unavailable, without the secret.
    let wrong = "CANARY-secret-id-0b1d";
    let err = common::connect_refused(
        TransitBuilder::new(&addr, &key)
            .approle(&role_id, wrong)
            .max_attempts(1),
    )
    .await;
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("CANARY"));
}

#[test]
fn configuration_from_the_environment_names_the_variable() {
    let base = |extra: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            let fixed = [
                ("VAULT_ADDR", "http://127.0.0.1:8200"),
                ("STRONGROOM_TRANSIT_KEY", "k"),
            ];
            fixed
                .iter()
                .chain(extra.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let missing = TransitBuilder::from_lookup(base(&[])).unwrap_err();
    assert!(missing.to_string().contains("VAULT_TOKEN"), "{missing}");
    let both = TransitBuilder::from_lookup(base(&[
        ("VAULT_TOKEN", "CANARY-a"),
        ("VAULT_TOKEN_FILE", "/nonexistent"),
    ]))
    .unwrap_err();
    assert!(both.to_string().contains("VAULT_TOKEN_FILE"), "{both}");
    assert!(!both.to_string().contains("CANARY"));
    let mixed = TransitBuilder::from_lookup(base(&[
        ("VAULT_TOKEN", "CANARY-a"),
        ("STRONGROOM_TRANSIT_ROLE_ID", "r"),
    ]))
    .unwrap_err();
    assert!(
        mixed.to_string().contains("STRONGROOM_TRANSIT_ROLE_ID"),
        "{mixed}"
    );
    let no_secret =
        TransitBuilder::from_lookup(base(&[("STRONGROOM_TRANSIT_ROLE_ID", "r")])).unwrap_err();
    assert!(
        no_secret
            .to_string()
            .contains("STRONGROOM_TRANSIT_SECRET_ID")
    );
    let unreadable =
        TransitBuilder::from_lookup(base(&[("VAULT_TOKEN_FILE", "/nonexistent/CANARY")]))
            .unwrap_err();
    assert!(unreadable.to_string().contains("VAULT_TOKEN_FILE"));
    let bad_token =
        TransitBuilder::from_lookup(base(&[("VAULT_TOKEN", "has space CANARY")])).unwrap_err();
    assert!(bad_token.to_string().contains("VAULT_TOKEN"));
    assert!(!bad_token.to_string().contains("CANARY"));
    let no_addr = TransitBuilder::from_lookup(|_| None).unwrap_err();
    assert!(no_addr.to_string().contains("VAULT_ADDR"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s.CANARY-file-token\n").unwrap();
    let path: &'static str = Box::leak(file.to_str().unwrap().to_owned().into_boxed_str());
    let list: &'static [(&str, &str)] = Box::leak(Box::new([("VAULT_TOKEN_FILE", path)]));
    let from_file = TransitBuilder::from_lookup(base(list)).unwrap();
    assert!(!format!("{from_file:?}").contains("CANARY"));
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn many_concurrent_opens() {
    let addr = addr();
    let key = fresh_key(&addr).await;
    let envelope = Arc::new(Envelope::new(backend(&addr, &key).await).unwrap());
    let sealed = envelope
        .seal(b"hot value", &ctx("alice"))
        .await
        .unwrap()
        .to_bytes();
    let sealed = Arc::new(sealed);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let envelope = Arc::clone(&envelope);
            let sealed = Arc::clone(&sealed);
            tokio::spawn(async move {
                envelope
                    .open(&sealed, &ctx("alice"))
                    .await
                    .map(|p| p.expose_secret() == b"hot value")
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap());
    }
}

async fn migration_target(addr: &str) -> Arc<dyn KekBackend> {
    let key = fresh_key(addr).await;
    Arc::new(backend(addr, &key).await)
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn migration_from_the_local_key_memory() {
    let addr = addr();
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::new());
    common::migration::local_to(store, migration_target(&addr).await).await;
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn migration_from_the_local_key_sqlite() {
    let addr = addr();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    common::migration::local_to(Arc::new(store), migration_target(&addr).await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR) and PostgreSQL (STRONGROOM_PG_URL)"]
async fn migration_from_the_local_key_postgres() {
    let addr = addr();
    let schema = common::pg::PgSchema::create("envelope_transit", 4).await;
    common::migration::local_to(
        Arc::new(schema.store().await),
        migration_target(&addr).await,
    )
    .await;
    schema.drop_schema().await;
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn an_outage_is_unavailable_and_the_backend_recovers_without_a_restart() {
    let mut server = OwnServer::start(&env("STRONGROOM_OPENBAO_BIN")).await;
    let kek = TransitBuilder::new(&server.addr(), "outage")
        .token(&server.root_token)
        .attempt_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let envelope = Envelope::new(kek).unwrap();
    let sealed = envelope
        .seal(b"survives", &ctx("alice"))
        .await
        .unwrap()
        .to_bytes();

    // Killed: opens and seals are unavailable (503), never refused, never a success.
    server.stop();
    let err = envelope.open(&sealed, &ctx("alice")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = envelope.seal(b"x", &ctx("alice")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    // Restarted but still sealed: 503 from the server, unavailable too.
    server.restart().await;
    let err = envelope.open(&sealed, &ctx("alice")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");

    // Unsealed: the same envelope opens again, with no reconnect of its own.
    server.unseal().await;
    let opened = envelope.open(&sealed, &ctx("alice")).await.unwrap();
    assert_eq!(opened.expose_secret(), b"survives");
    envelope.seal(b"y", &ctx("alice")).await.unwrap();
}

#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn tls_with_a_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::openbao::free_port();
    let token = "strongroom-tls-root";
    let mut child = Command::new(env("STRONGROOM_OPENBAO_BIN"))
        .args([
            "server",
            "-dev",
            "-dev-tls",
            &format!("-dev-tls-cert-dir={}", dir.path().display()),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-root-token-id={token}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ca_path = dir.path().join("vault-ca.pem");
    for _ in 0..100 {
        if ca_path.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca = std::fs::read(&ca_path).unwrap();
    let addr = format!("https://127.0.0.1:{port}");
    let admin_client = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..50 {
        if let Ok(answer) = admin_client
            .post(format!("{addr}/v1/sys/mounts/transit"))
            .header("X-Vault-Token", token)
            .json(&json!({"type": "transit"}))
            .send()
            .await
        {
            ready = answer.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the TLS dev server did not take the Transit mount");
    let key = admin_client
        .post(format!("{addr}/v1/transit/keys/tls"))
        .header("X-Vault-Token", token)
        .json(&json!({"type": "aes256-gcm96", "derived": true}))
        .send()
        .await
        .unwrap();
    assert!(key.status().is_success());

    // Without the CA the server's certificate does not verify: unavailable.
    let err = common::connect_refused(
        TransitBuilder::new(&addr, "tls")
            .token(token)
            .max_attempts(1),
    )
    .await;
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    // With it (as VAULT_CACERT gives it), a round trip.
    let ca_file = ca_path.to_str().unwrap().to_owned();
    let vars = |name: &str| match name {
        "VAULT_ADDR" => Some(addr.clone()),
        "VAULT_TOKEN" => Some(token.to_owned()),
        "VAULT_CACERT" => Some(ca_file.clone()),
        "STRONGROOM_TRANSIT_KEY" => Some("tls".to_owned()),
        _ => None,
    };
    let kek = TransitBuilder::from_lookup(vars)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let envelope = Envelope::new(kek).unwrap();
    let sealed = envelope.seal(b"over tls", &ctx("alice")).await.unwrap();
    assert_eq!(
        envelope
            .open(&sealed.to_bytes(), &ctx("alice"))
            .await
            .unwrap()
            .expose_secret(),
        b"over tls"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Reads `name: value` lines of a vector file.
fn vector(name: &str) -> Vec<(String, String)> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn field<'a>(v: &'a [(String, String)], name: &str) -> &'a str {
    &v.iter().find(|(k, _)| k == name).unwrap().1
}

/// FORMAT.md section 6, `transit`: a value sealed through a real OpenBao
/// (`tests/data/envelope_v1_transit_header.txt`) names backend `transit`, key id
/// `<mount>/<name>` and the Transit key version; its wrap's associated data and Transit
/// context match the vector, whose context was computed independently (Python's
/// `hashlib.sha256` and `base64.b64encode` over the `wrap_aad` bytes).
#[test]
fn header_fields_vector() {
    let v = vector("envelope_v1_transit_header.txt");
    let sealed = Sealed::from_text(field(&v, "sealed")).unwrap();
    assert_eq!(sealed.backend(), field(&v, "backend"));
    assert_eq!(sealed.key().id, field(&v, "key_id"));
    assert_eq!(sealed.key().version.to_string(), field(&v, "key_version"));
    let mut context = EncryptionContext::new();
    for pair in field(&v, "context").split(',') {
        let (name, value) = pair.split_once('=').unwrap();
        context.insert(name, value).unwrap();
    }
    let aad = crypto_envelope::hazmat::wrap_aad(&context);
    assert_eq!(base16ct::lower::encode_string(&aad), field(&v, "wrap_aad"));
    assert_eq!(
        crypto_envelope::backend::transit::transit_context(&aad),
        field(&v, "transit_context")
    );
}

/// Produces the header vector's fields from a real server (key `strongroom`, rotated
/// once), and checks that they have the vector's shape; prints them for the file.
#[tokio::test]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn header_fields_from_a_real_server_have_the_vector_shape() {
    let addr = addr();
    admin(
        &addr,
        "POST",
        "transit/keys/strongroom",
        Some(json!({"type": "aes256-gcm96", "derived": true})),
    )
    .await;
    let (_, info) = admin(&addr, "GET", "transit/keys/strongroom", None).await;
    if info["data"]["latest_version"] == 1 {
        admin(&addr, "POST", "transit/keys/strongroom/rotate", None).await;
    }
    let kek = backend(&addr, "strongroom").await;
    let envelope = Envelope::new(kek).unwrap();
    let context = EncryptionContext::new()
        .with("owner", "alice")
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", "API_SECRET")
        .unwrap();
    let sealed = envelope.seal(b"vector", &context).await.unwrap();
    let aad = crypto_envelope::hazmat::wrap_aad(&context);
    println!("sealed: {}", sealed.to_text());
    println!("wrap_aad: {}", base16ct::lower::encode_string(&aad));
    let v = vector("envelope_v1_transit_header.txt");
    assert_eq!(sealed.backend(), field(&v, "backend"));
    assert_eq!(sealed.key().id, field(&v, "key_id"));
    assert!(sealed.key().version >= 2);
    assert_eq!(
        crypto_envelope::backend::transit::transit_context(&aad),
        field(&v, "transit_context")
    );
}
