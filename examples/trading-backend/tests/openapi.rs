//! `GET /openapi.json` (module `app::openapi`): served without a credential, byte for
//! byte the committed `openapi.json`; every operation it documents is routed by the real
//! server (neither 404 nor 405), and a request to `/ws` that is not a handshake gets the
//! documented JSON error, not axum's plain-text rejection. (The unit tests in
//! `app::openapi` check the other direction: every route of the router is documented.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use common::{Server, create_user};
use serde_json::Value;

const PASSWORD: &str = "openapi-password-canary-5d1e";

fn committed() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_committed_one_and_every_operation_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("STRONGROOM_RATE_LIMITS", "0")]);
    let http = reqwest::Client::new();

    let res = http.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let served = res.text().await.unwrap();
    assert!(
        served == committed(),
        "GET /openapi.json differs from the committed openapi.json: regenerate it with \
         STRONGROOM_UPDATE_OPENAPI=1 cargo test -p trading-backend --all-features --lib openapi::"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // Every documented operation reaches a route: no credential, an empty body, each path
    // parameter `x`. Whatever the refusal, it is not "no such route" (404 with an empty
    // body from the router) or "no such method" (405).
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = http
                .request(method.clone(), server.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{method} {path}: documented but not routed ({status})"
            );
            operations += 1;
        }
    }
    assert!(operations >= 45, "only {operations} operations documented");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_ws_that_is_no_handshake_gets_the_json_error() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "ws@example.com", Some(PASSWORD), false);
    let server = Server::start(dir.path(), &[]);
    let token = server.login("ws@example.com", PASSWORD).await;
    let res = reqwest::Client::new()
        .get(server.url("/ws"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "websocket_upgrade_required");
}
