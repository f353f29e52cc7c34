//! An OpenBao server of a test's own, for the tests that stop and restart it (outages).
//! Shared by crypto-envelope's Transit tests and the reference backend's
//! (`examples/trading-backend/tests/kek.rs` includes this file by path).

// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// The Transit key [`OwnServer::start`] creates.
pub(crate) const KEY: &str = "outage";

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free loopback port whose successor is free too (API and cluster ports).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let port = free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports");
}

/// An OpenBao server of this test's own, with integrated storage so that its keys survive
/// a restart: initialised with one unseal key, unsealed on every start.
pub(crate) struct OwnServer {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    unseal_key: String,
    /// The root token.
    pub(crate) root_token: String,
}

impl OwnServer {
    pub(crate) fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(bin: &str, dir: &std::path::Path, port: u16) -> Child {
        // Integrated storage (raft), one node: OpenBao has no plain file storage.
        let config = dir.join("server.hcl");
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
                 cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\n\
                 cluster_addr = \"http://127.0.0.1:{cluster}\"\n",
                data.display(),
                cluster = port + 1
            ),
        )
        .unwrap();
        Command::new(bin)
            .arg("server")
            .arg(format!("-config={}", config.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    async fn wait_listening(addr: &str) {
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("{addr}/v1/sys/seal-status"))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao at {addr} did not start");
    }

    pub(crate) async fn unseal(&self) {
        let client = reqwest::Client::new();
        let answer: Value = client
            .put(format!("{}/v1/sys/unseal", self.addr()))
            .json(&json!({ "key": self.unseal_key }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["sealed"], false, "{answer}");
        // Unsealed is not yet active: the single raft node elects itself first.
        for _ in 0..100 {
            let health = client
                .get(format!("{}/v1/sys/health", self.addr()))
                .send()
                .await
                .unwrap();
            if health.status().as_u16() == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao at {} did not become active", self.addr());
    }

    /// Starts a server from the `bao` binary at `bin`, initialised and unsealed, with
    /// Transit mounted and a derived `aes256-gcm96` key named [`KEY`].
    pub(crate) async fn start(bin: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_pair();
        let child = Self::spawn(bin, dir.path(), port);
        let addr = format!("http://127.0.0.1:{port}");
        Self::wait_listening(&addr).await;
        let client = reqwest::Client::new();
        let init: Value = client
            .put(format!("{addr}/v1/sys/init"))
            .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let server = Self {
            bin: bin.to_owned(),
            dir,
            port,
            child: Some(child),
            unseal_key: init["keys_base64"][0].as_str().unwrap().to_owned(),
            root_token: init["root_token"].as_str().unwrap().to_owned(),
        };
        server.unseal().await;
        let mount = client
            .post(format!("{addr}/v1/sys/mounts/transit"))
            .header("X-Vault-Token", &server.root_token)
            .json(&json!({"type": "transit"}))
            .send()
            .await
            .unwrap();
        assert!(mount.status().is_success(), "{}", mount.status());
        let key = client
            .post(format!("{addr}/v1/transit/keys/{KEY}"))
            .header("X-Vault-Token", &server.root_token)
            .json(&json!({"type": "aes256-gcm96", "derived": true}))
            .send()
            .await
            .unwrap();
        assert!(key.status().is_success(), "{}", key.status());
        server
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) async fn restart(&mut self) {
        self.stop();
        self.child = Some(Self::spawn(&self.bin, self.dir.path(), self.port));
        Self::wait_listening(&self.addr()).await;
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}
