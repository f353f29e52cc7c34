//! `trading-backend rewrap`.
//!
//! * With the key unchanged: it opens every row, reports the rows that do not validate or
//!   do not open by id (never a value), finishes the rest, and exits non-zero; after the
//!   rows are fixed it reports complete and exits zero.
//! * After a master-key rotation it re-wraps **every** sealed value, not only the secret
//!   store: a restart with only the new key keeps the second factor (TOTP secrets in
//!   auth-core's table), the access-token signing keys (a token issued before the
//!   rotation still verifies) and the exchange credentials. On SQLite, and on PostgreSQL
//!   (ignored unless `DATABASE_URL` is set; `--features postgres`).
//! * A resumed run starts at the kind of sealed value named in its cursor file and still
//!   opens every value; a value outside the secret store that does not open makes the run
//!   incomplete, reported by table and id.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;

use std::sync::Arc;

#[cfg(feature = "postgres")]
use common::pg_fresh_schema;
use common::{Server, cli, create_user, enable_mfa, now, stderr, stdout, token_login, totp};
use crypto_envelope::{Envelope, LocalKeyRing, SecretRef, SecretStore, Secrets, SqliteStore};
use serde_json::json;

const CANARY_A: &str = "CANARY-rewrap-a-91e2";
const CANARY_B: &str = "CANARY-rewrap-b-4c07";

#[tokio::test]
async fn rewrap_reports_rows_that_do_not_open_or_validate_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Creates the database, runs every migration and writes the development key.
    create_user(
        dir.path(),
        &[],
        "w@example.com",
        Some("rewrap-password-1"),
        false,
    );
    let dev_key = std::fs::read_to_string(dir.path().join("dev-master.key")).unwrap();
    let ring = LocalKeyRing::from_lookup(|name| {
        (name == "STRONGROOM_MASTER_KEY").then(|| dev_key.trim().to_owned())
    })
    .unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("strongroom.db"))
        .await
        .unwrap();
    let store: Arc<dyn SecretStore> = Arc::new(sqlite.clone());
    let secrets = Secrets::new(Envelope::new(ring).unwrap(), Arc::clone(&store));
    let a = SecretRef::owner("alice", "API_SECRET").unwrap();
    let b = SecretRef::owner("bob", "API_SECRET").unwrap();
    secrets.put(&a, CANARY_A.as_bytes()).await.unwrap();
    secrets.put(&b, CANARY_B.as_bytes()).await.unwrap();
    let fine = SecretRef::owner("carol", "API_SECRET").unwrap();
    secrets.put(&fine, b"fine").await.unwrap();

    // Bob's row gets Alice's blob: on the primary key, but sealed for another row.
    let copied = store.get(&a).await.unwrap().unwrap();
    store
        .put(&b, &copied.sealed, &copied.meta.key, 0)
        .await
        .unwrap();
    // A row whose name no longer validates.
    sqlx::query(
        "INSERT INTO strongroom_secrets (owner, scope, name, sealed, key_ref, created_at, updated_at) \
         VALUES ('dave', '', 'bad name', $1, $2, 0, 0)",
    )
    .bind(&copied.sealed)
    .bind(&copied.meta.key)
    .execute(sqlite.pool())
    .await
    .unwrap();
    let id_of = |owner: &'static str| {
        let pool = sqlite.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM strongroom_secrets WHERE owner = $1")
                .bind(owner)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (bob_id, dave_id) = (id_of("bob").await, id_of("dave").await);
    sqlite.pool().close().await;

    let out = cli(dir.path(), &[], &["rewrap", "--batch-size", "1"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{o}\n{e}");
    assert!(o.contains("rewrap INCOMPLETE"), "{o}");
    assert!(o.contains(&format!("row {bob_id}: ")), "{o}");
    assert!(o.contains("envelope.rewrap.row_refused"), "{o}");
    assert!(o.contains(&format!("row {dave_id}: ")), "{o}");
    assert!(o.contains("envelope.rewrap.row_invalid"), "{o}");
    assert!(e.contains("keep the old key"), "{e}");
    for text in [&o, &e] {
        assert!(!text.contains("CANARY"), "{text}");
    }

    // Fixed by hand: the run is complete and exits zero.
    let sqlite = SqliteStore::open(&dir.path().join("strongroom.db"))
        .await
        .unwrap();
    sqlx::query("DELETE FROM strongroom_secrets WHERE owner IN ('bob', 'dave')")
        .execute(sqlite.pool())
        .await
        .unwrap();
    sqlite.pool().close().await;
    let out = cli(dir.path(), &[], &["rewrap"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("rewrap complete"), "{}", stdout(&out));
}

const EMAIL: &str = "rotate@example.com";
const PASSWORD: &str = "rotation-password-1";

fn gen_key(dir: &std::path::Path) -> String {
    let out = cli(dir, &[], &["gen-master-key"]);
    assert!(out.status.success());
    stdout(&out).trim().to_owned()
}

/// What the service holds before the rotation.
struct Before {
    access_token: String,
    account_id: String,
    totp_secret: String,
}

/// Under the first key: an access token (the signing key is made and sealed at start),
/// an exchange credential, and an active second factor.
async fn populate(dir: &std::path::Path, env: &[(&str, &str)]) -> Before {
    create_user(dir, env, EMAIL, Some(PASSWORD), false);
    let s = Server::start(dir, env);
    let (status, body) = token_login(&s, EMAIL, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    let session = s.login(EMAIL, PASSWORD).await;
    let (status, account) = s
        .post(
            "/api/accounts",
            Some(&session),
            json!({"exchange": "paper", "label": "main", "api_key": "rk", "secret": "rs", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let (totp_secret, _) = enable_mfa(&s, &session).await;
    Before {
        access_token,
        account_id: account["id"].as_str().unwrap().to_owned(),
        totp_secret,
    }
}

/// With only the new key: the second factor, the signing key and the credential open.
/// `code_at` is the time of the second-factor code (Unix seconds): a second call within
/// one 30 s step must use a later step, or the replay guard refuses the code.
async fn everything_opens_with_only_the_new_key(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    before: &Before,
    code_at: u64,
) {
    let mut s = Server::start(dir, env);
    // The token signed before the rotation verifies: its signing key opened.
    let (status, body) = s.get("/api/auth/me", Some(&before.access_token)).await;
    assert_eq!(status, 200, "{body}\n{}", s.logs());
    // Login with the second factor: the TOTP secret opened.
    let (status, body) = s
        .post(
            "/api/auth/token",
            None,
            json!({ "email": EMAIL, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        (status, &body["mfa_required"]),
        (200, &json!(true)),
        "{body}"
    );
    let (status, body) = s
        .post(
            "/api/auth/mfa",
            None,
            json!({ "mfa_token": body["mfa_token"], "code": totp(&before.totp_secret, code_at) }),
        )
        .await;
    assert_eq!(
        status,
        200,
        "second factor after the rotation: {body}\n{}",
        s.logs()
    );
    let access = body["access_token"].as_str().unwrap().to_owned();
    // Issued after the restart, it verifies.
    assert_eq!(s.get("/api/auth/me", Some(&access)).await.0, 200);
    // The credential opens.
    let (status, body) = s
        .post(
            "/api/exchange/balance",
            Some(&access),
            json!({"account_id": before.account_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.stop();
    let logs = s.logs();
    assert!(!logs.contains("signing_key.unseal_refused"), "{logs}");
}

/// Rotate (new key primary, old key kept for opening), rewrap, restart with only the new
/// key. Fails when `rewrap` leaves the signing keys or the TOTP secrets under the old key.
async fn rotation_covers_every_sealed_value(dir: &std::path::Path, base: &[(&str, &str)]) {
    fn env<'a>(
        base: &[(&'a str, &'a str)],
        extra: &'a [(&'a str, String)],
    ) -> Vec<(&'a str, &'a str)> {
        // A fixed issuer: the default names the bound port, which changes at restart.
        base.iter()
            .copied()
            .chain([("STRONGROOM_ISSUER", "https://strongroom.test")])
            .chain(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .collect()
    }
    let (k1, k2) = (gen_key(dir), gen_key(dir));
    let first = [("STRONGROOM_MASTER_KEY", k1.clone())];
    let rotated = [
        ("STRONGROOM_MASTER_KEY", k2.clone()),
        ("STRONGROOM_MASTER_KEY_VERSION", "2".to_owned()),
        ("STRONGROOM_MASTER_KEYS_OLD", format!("1:{k1}")),
    ];
    let only_new = [
        ("STRONGROOM_MASTER_KEY", k2.clone()),
        ("STRONGROOM_MASTER_KEY_VERSION", "2".to_owned()),
    ];
    let (first, rotated, only_new) = (env(base, &first), env(base, &rotated), env(base, &only_new));

    let before = populate(dir, &first).await;
    let out = cli(dir, &rotated, &["rewrap", "--batch-size", "1"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{o}\n{e}");
    assert!(o.contains("rewrap complete: 4 re-wrapped"), "{o}");
    assert!(
        o.contains("tb_signing_keys (access-token signing keys): 1 re-wrapped"),
        "{o}"
    );
    assert!(
        o.contains("tb_audit_key (the audit log's MAC key): 1 re-wrapped"),
        "{o}"
    );
    assert!(
        o.contains("auth_mfa (TOTP second-factor secrets): 1 re-wrapped"),
        "{o}"
    );
    for text in [&o, &e] {
        assert!(!text.contains(&before.totp_secret), "{text}");
        assert!(!text.contains(&k1) && !text.contains(&k2), "{text}");
    }
    // Nothing left to do.
    let out = cli(dir, &rotated, &["rewrap"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("0 re-wrapped, 4 already current"),
        "{}",
        stdout(&out)
    );
    everything_opens_with_only_the_new_key(dir, &only_new, &before, now()).await;
    // The audit records written before the rotation verify with the old master key gone:
    // the audit MAC key was re-sealed, not replaced.
    let out = cli(dir, &only_new, &["audit", "verify"]);
    assert!(
        out.status.success() && stdout(&out).contains("audit log intact"),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_rotate_and_rewrap_only_the_new_key_opens_everything() {
    let dir = tempfile::tempdir().unwrap();
    rotation_covers_every_sealed_value(dir.path(), &[]).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn after_rotate_and_rewrap_only_the_new_key_opens_everything_on_postgres() {
    let database_url = pg_fresh_schema("tb_rewrap").await.database_url;
    let dir = tempfile::tempdir().unwrap();
    rotation_covers_every_sealed_value(dir.path(), &[("DATABASE_URL", database_url.as_str())])
        .await;
}

/// A resumed run starts at the kind its cursor file names (here auth-core's TOTP
/// secrets, after the first user id) and then walks the others, so every value is still
/// re-wrapped; a cursor that names nothing known is refused. A signing key that does not
/// open is reported by table and id and the run is incomplete.
#[tokio::test(flavor = "multi_thread")]
async fn resumed_run_covers_every_kind_and_a_bad_column_row_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (gen_key(dir.path()), gen_key(dir.path()));
    let first = [("STRONGROOM_MASTER_KEY", k1.as_str())];
    let old = format!("1:{k1}");
    let rotated = [
        ("STRONGROOM_MASTER_KEY", k2.as_str()),
        ("STRONGROOM_MASTER_KEY_VERSION", "2"),
        ("STRONGROOM_MASTER_KEYS_OLD", old.as_str()),
    ];
    populate(dir.path(), &first).await;

    let cursor = dir.path().join("rewrap.cursor");
    std::fs::write(&cursor, "no_such_table 00").unwrap();
    let out = cli(dir.path(), &rotated, &["rewrap"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cursor file is unreadable"),
        "{}",
        stderr(&out)
    );

    // Resume inside auth_mfa, after the id "\0" (hex 00: before every user id).
    std::fs::write(&cursor, "auth_mfa 00").unwrap();
    let out = cli(dir.path(), &rotated, &["rewrap"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{o}\n{e}");
    assert!(e.contains("resuming"), "{e}");
    assert!(o.contains("rewrap complete: 4 re-wrapped"), "{o}");
    assert!(!cursor.exists());

    // A signing key sealed for another kid: reported by table and id, exit non-zero.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("strongroom.db").display()
    ))
    .await
    .unwrap();
    let (kid, alg, sealed): (String, String, Vec<u8>) =
        sqlx::query_as("SELECT kid, alg, sealed FROM tb_signing_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO tb_signing_keys (kid, alg, sealed, created_at, retire_at) \
         VALUES ('moved-key', $1, $2, 0, 1)",
    )
    .bind(&alg)
    .bind(&sealed)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let out = cli(dir.path(), &rotated, &["rewrap"]);
    let o = stdout(&out);
    assert!(!out.status.success(), "{o}");
    assert!(o.contains("rewrap INCOMPLETE"), "{o}");
    assert!(
        o.contains("tb_signing_keys row moved-key: ") && o.contains("envelope.rewrap.row_refused"),
        "{o}"
    );
    assert!(!o.contains(&format!("row {kid}:")), "{o}");
    assert!(stderr(&out).contains("keep the old key"));
}

/// A fresh derived `aes256-gcm96` key in the OpenBao dev server of `.ci/services`.
async fn transit_key(addr: &str, root: &str) -> String {
    let name = format!("tb-{}-{}", std::process::id(), now());
    let answer = reqwest::Client::new()
        .post(format!("{addr}/v1/transit/keys/{name}"))
        .header("X-Vault-Token", root)
        .json(&json!({"type": "aes256-gcm96", "derived": true}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    name
}

/// The README's walkthrough, for any remote backend: from the local master key to
/// `backend` (configured by `vars`) and back, each move a `rewrap` with both backends
/// configured, after which a start with only the new backend opens everything (second
/// factor, signing key, credential, audit MAC key). `secret` must appear in no output.
async fn local_key_to_and_back(backend: &str, vars: &[(&str, &str)], secret: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (k1, k2) = (gen_key(dir), gen_key(dir));
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        [("STRONGROOM_ISSUER", "https://strongroom.test")]
            .iter()
            .chain(extra.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let first = with(&[("STRONGROOM_MASTER_KEY", &k1)]);
    let mut only_remote = with(vars);
    only_remote.push(("STRONGROOM_KEK".into(), backend.into()));
    let mut to_remote = only_remote.clone();
    to_remote.push(("STRONGROOM_MASTER_KEY".into(), k1.clone()));
    let mut back = with(vars);
    back.push(("STRONGROOM_MASTER_KEY".into(), k2.clone()));
    back.push(("STRONGROOM_KEK_DECRYPT_ONLY".into(), backend.into()));
    let only_k2 = with(&[("STRONGROOM_MASTER_KEY", &k2)]);

    let before = populate(dir, &borrow(&first)).await;
    // The remote backend primary, the local key still opening: every value moves.
    let out = cli(dir, &borrow(&to_remote), &["rewrap"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{backend}: {o}\n{e}");
    assert!(
        o.contains("rewrap complete: 4 re-wrapped"),
        "{backend}: {o}"
    );
    for text in [&o, &e] {
        assert!(!text.contains(&k1) && !text.contains(secret), "{text}");
    }
    // Only the remote backend: everything opens, and the audit log verifies.
    everything_opens_with_only_the_new_key(dir, &borrow(&only_remote), &before, now()).await;
    let out = cli(dir, &borrow(&only_remote), &["audit", "verify"]);
    assert!(
        out.status.success() && stdout(&out).contains("audit log intact"),
        "{backend}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // With only the old local key, nothing moved opens: the move was real.
    let out = cli(dir, &borrow(&first), &["rewrap"]);
    assert!(!out.status.success(), "{backend}: {}", stdout(&out));

    // And back: a new local key primary, the remote backend decrypt-only.
    let out = cli(dir, &borrow(&back), &["rewrap"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{backend}: {o}\n{e}");
    assert!(
        o.contains("rewrap complete: 4 re-wrapped"),
        "{backend}: {o}"
    );
    // The next 30 s step: the code of the first start is spent.
    everything_opens_with_only_the_new_key(dir, &borrow(&only_k2), &before, now() + 30).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs OpenBao (STRONGROOM_TRANSIT_TEST_ADDR)"]
async fn local_key_to_transit_and_back() {
    let addr = std::env::var("STRONGROOM_TRANSIT_TEST_ADDR")
        .expect("STRONGROOM_TRANSIT_TEST_ADDR is not set: needs OpenBao");
    let root = std::env::var("STRONGROOM_OPENBAO_ROOT_TOKEN")
        .expect("STRONGROOM_OPENBAO_ROOT_TOKEN is not set: needs OpenBao");
    let key = transit_key(&addr, &root).await;
    let vars = [
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", root.as_str()),
        ("STRONGROOM_TRANSIT_KEY", key.as_str()),
    ];
    local_key_to_and_back("transit", &vars, &root).await;
}

/// The same walkthrough to AWS KMS (moto): the key is made with a raw, unsigned
/// `CreateKey`.
#[cfg(feature = "awskms")]
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a KMS server (AWS_ENDPOINT_URL)"]
async fn local_key_to_awskms_and_back() {
    let endpoint = std::env::var("STRONGROOM_KMS_ENDPOINT")
        .expect("STRONGROOM_KMS_ENDPOINT is not set: needs a KMS server");
    let created: serde_json::Value = reqwest::Client::new()
        .post(&endpoint)
        .header("X-Amz-Target", "TrentService.CreateKey")
        // moto routes by the credential scope's service name; it checks no signature.
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/kms/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_owned();
    let vars = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "CANARY-kms-secret-access-key"),
        ("STRONGROOM_KMS_KEY_ID", arn.as_str()),
    ];
    local_key_to_and_back("awskms", &vars, "CANARY-kms-secret-access-key").await;
}

/// The same walkthrough to a PKCS#11 token (SoftHSM2): the key is generated in the token
/// first, and the library is unloaded before the service's processes use the token
/// (`SOFTHSM2_CONF` is inherited by them).
#[cfg(feature = "pkcs11")]
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs SoftHSM2 (STRONGROOM_PKCS11_MODULE)"]
async fn local_key_to_pkcs11_and_back() {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: needs SoftHSM2"))
    };
    let (module, token, pin) = (
        var("STRONGROOM_PKCS11_MODULE"),
        var("STRONGROOM_PKCS11_TOKEN_LABEL"),
        var("STRONGROOM_PKCS11_PIN"),
    );
    let label = format!("tb-rewrap-{}-{}", std::process::id(), now());
    {
        let kek = crypto_envelope::Pkcs11Kek::builder()
            .module(module.as_str())
            .token_label(token.as_str())
            .pin(pin.as_str())
            .key_label(label.as_str())
            .build()
            .unwrap();
        kek.generate_key(&label).await.unwrap();
    }
    let vars = [
        ("STRONGROOM_PKCS11_MODULE", module.as_str()),
        ("STRONGROOM_PKCS11_TOKEN_LABEL", token.as_str()),
        ("STRONGROOM_PKCS11_PIN", pin.as_str()),
        ("STRONGROOM_PKCS11_KEY_LABEL", label.as_str()),
    ];
    local_key_to_and_back("pkcs11", &vars, &pin).await;
}

fn borrow(vars: &[(String, String)]) -> Vec<(&str, &str)> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
