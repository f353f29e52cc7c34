//! The service on OpenBao Transit (`STRONGROOM_KEK=transit`) through an outage: with the
//! OpenBao server killed, and then restarted but still sealed, every route that opens or
//! seals a value answers 503 (never a refusal, never a success); once it is unsealed the
//! same service process opens and seals again, with no restart of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::common;
#[path = "../../../crypto-envelope/tests/common/openbao.rs"]
mod openbao;

use common::{Server, cli, create_user, stderr};
use serde_json::json;

const EMAIL: &str = "kek@example.com";
const PASSWORD: &str = "kek-outage-password-1";

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs OpenBao (STRONGROOM_OPENBAO_BIN)"]
async fn transit_outage_is_503_and_the_service_recovers_on_its_own() {
    let bin = std::env::var("STRONGROOM_OPENBAO_BIN")
        .expect("STRONGROOM_OPENBAO_BIN is not set: needs OpenBao");
    let mut bao = openbao::OwnServer::start(&bin).await;
    let addr = bao.addr();
    let env = [
        ("STRONGROOM_KEK", "transit"),
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", bao.root_token.as_str()),
        ("STRONGROOM_TRANSIT_KEY", openbao::KEY),
    ];
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &env, EMAIL, Some(PASSWORD), false);
    // No master key configured and none generated: Transit is the only backend.
    assert!(!dir.path().join("dev-master.key").exists());
    let s = Server::start(dir.path(), &env);
    let session = s.login(EMAIL, PASSWORD).await;
    let account = |label: &str| json!({"exchange": "paper", "label": label, "api_key": "ok", "secret": "os", "read_only": false});
    let (status, created) = s.post("/api/accounts", Some(&session), account("a")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    bao.stop();
    // Opening the credential (not cached yet) and sealing a new one: 503.
    let (status, body) = s
        .post(
            "/api/exchange/balance",
            Some(&session),
            json!({"account_id": id}),
        )
        .await;
    assert_eq!(
        status,
        503,
        "balance with OpenBao down: {body}\n{}",
        s.logs()
    );
    let (status, body) = s.post("/api/accounts", Some(&session), account("b")).await;
    assert_eq!(
        status,
        503,
        "new account with OpenBao down: {body}\n{}",
        s.logs()
    );

    // Back but sealed: OpenBao answers 503 itself; still 503 here.
    bao.restart().await;
    let (status, body) = s
        .post(
            "/api/exchange/balance",
            Some(&session),
            json!({"account_id": id}),
        )
        .await;
    assert_eq!(status, 503, "balance with OpenBao sealed: {body}");

    // Unsealed: the same process recovers.
    bao.unseal().await;
    let (status, body) = s
        .post(
            "/api/exchange/balance",
            Some(&session),
            json!({"account_id": id}),
        )
        .await;
    assert_eq!(status, 200, "balance after recovery: {body}\n{}", s.logs());
    let (status, body) = s.post("/api/accounts", Some(&session), account("c")).await;
    assert_eq!(status, 201, "new account after recovery: {body}");
    // The account refused during the outage was not half-created.
    let (status, list) = s.get("/api/accounts", Some(&session)).await;
    assert_eq!(status, 200);
    let labels: Vec<&str> = list
        .as_array()
        .or_else(|| list["accounts"].as_array())
        .expect("a list of accounts")
        .iter()
        .filter_map(|a| a["label"].as_str())
        .collect();
    assert!(labels.contains(&"a") && labels.contains(&"c"), "{list}");
    assert!(!labels.contains(&"b"), "{list}");
    let logs = s.logs();
    assert!(
        !logs.contains(&bao.root_token),
        "the Vault token was logged"
    );
}

/// A key-encryption setting that is set but empty or unknown is refused by name, never
/// read as the default (`local`, which would create a development key).
#[test]
fn empty_or_unknown_kek_settings_are_refused() {
    for (name, value) in [
        ("STRONGROOM_KEK", ""),
        ("STRONGROOM_KEK", "hsm"),
        ("STRONGROOM_KEK_DECRYPT_ONLY", "transit,,local"),
        ("STRONGROOM_KEK_DECRYPT_ONLY", "local"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = cli(dir.path(), &[(name, value)], &["audit", "verify"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{name}={value:?}: {err}");
        assert!(err.contains(name), "{name}={value:?}: {err}");
        assert!(
            !dir.path().join("dev-master.key").exists(),
            "{name}={value:?} created a development key"
        );
    }
}

/// With Transit primary, a development key file beside the data is not used unless
/// `STRONGROOM_KEK_DECRYPT_ONLY=local` says so: a value sealed under it does not open.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs OpenBao (STRONGROOM_OPENBAO_BIN)"]
async fn the_development_key_opens_beside_transit_only_when_named() {
    let bin = std::env::var("STRONGROOM_OPENBAO_BIN")
        .expect("STRONGROOM_OPENBAO_BIN is not set: needs OpenBao");
    let bao = openbao::OwnServer::start(&bin).await;
    let addr = bao.addr();
    let dir = tempfile::tempdir().unwrap();
    // Under the development key (created now): a user with a sealed TOTP-free account.
    create_user(dir.path(), &[], EMAIL, Some(PASSWORD), false);
    let s = Server::start(dir.path(), &[]);
    let session = s.login(EMAIL, PASSWORD).await;
    let (status, created) = s
        .post(
            "/api/accounts",
            Some(&session),
            json!({"exchange": "paper", "label": "d", "api_key": "dk", "secret": "ds", "read_only": false}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    drop(s);
    let transit = [
        ("STRONGROOM_KEK", "transit"),
        ("VAULT_ADDR", addr.as_str()),
        ("VAULT_TOKEN", bao.root_token.as_str()),
        ("STRONGROOM_TRANSIT_KEY", openbao::KEY),
    ];
    let out = cli(dir.path(), &transit, &["rewrap"]);
    assert!(
        !out.status.success(),
        "the development key was used unasked"
    );
    let mut named = transit.to_vec();
    named.push(("STRONGROOM_KEK_DECRYPT_ONLY", "local"));
    let out = cli(dir.path(), &named, &["rewrap"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
