//! The service on OpenBao Transit (`STRONGROOM_KEK=transit`) through an outage: with the
//! OpenBao server killed, and then restarted but still sealed, every route that opens or
//! seals a value answers 503 (never a refusal, never a success); once it is unsealed the
//! same service process opens and seals again, with no restart of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod common;
#[path = "../../../crypto-envelope/tests/common/openbao.rs"]
mod openbao;

use common::{Server, create_user};
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
