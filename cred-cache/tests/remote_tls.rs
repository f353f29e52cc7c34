//! The remote vault source over real TLS: a rustls server on 127.0.0.1 with a
//! certificate from a test CA (`tests/data/tls/`, test-only keys, valid for
//! 100 years). Trusting that CA works; an unrelated CA or the platform roots
//! refuse the server before any byte of the request (or the secret) is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![cfg(feature = "remote")]

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{ck, z};
use cred_cache::remote::RemoteVaultSource;
use cred_cache::{CredentialSource, FetchError, Level};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "internal-secret-over-tls-0123";
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls");

#[derive(Default)]
struct Seen {
    handshakes_failed: AtomicU64,
    requests: Mutex<Vec<String>>,
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}/{name}")).unwrap()
}

/// A one-request-per-connection HTTPS server answering every POST with a
/// credential for `acct-1`.
async fn tls_server() -> (String, Arc<Seen>) {
    let certs = vec![CertificateDer::from_pem_slice(&read("test_server.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(&read("test_server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let state = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&state);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    seen.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Headers, then Content-Length bytes of body.
                let body_len = loop {
                    let n = tls.read(&mut buf).await.unwrap();
                    assert!(n > 0, "connection closed mid-request");
                    request.extend_from_slice(&buf[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse().unwrap())
                            .unwrap_or(0);
                        break end + 4 + len;
                    }
                };
                while request.len() < body_len {
                    let n = tls.read(&mut buf).await.unwrap();
                    assert!(n > 0, "connection closed mid-body");
                    request.extend_from_slice(&buf[..n]);
                }
                seen.requests
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(request).unwrap());
                let body = r#"{"credential_id":"acct-1","api_key":"AK-tls","secret":"sk-tls","read_only":false}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                tls.write_all(response.as_bytes()).await.unwrap();
                tls.shutdown().await.ok();
            });
        }
    });
    (format!("https://127.0.0.1:{port}/vault"), seen)
}

#[tokio::test]
async fn https_with_the_internal_ca_works() {
    let (url, seen) = tls_server().await;
    let source = RemoteVaultSource::builder(&url)
        .internal_secret(z(SECRET))
        .root_certificates_pem(&read("test_ca.pem"))
        .build()
        .unwrap();
    let c = source
        .fetch(&ck("u1", "acct-1", Level::Read))
        .await
        .unwrap();
    assert_eq!(
        (c.expose_api_key(), c.expose_secret()),
        ("AK-tls", "sk-tls")
    );
    let requests = seen.requests.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = requests[0].to_ascii_lowercase();
    assert!(request.starts_with("post /vault http/1.1\r\n"), "{request}");
    assert!(request.contains(&format!("x-internal-secret: {SECRET}")));
    assert!(request.ends_with(r#"{"account_id":"acct-1","user_id":"u1","want":"read"}"#));
}

#[tokio::test]
async fn an_untrusted_server_never_sees_the_request() {
    let (url, seen) = tls_server().await;
    let unrelated = RemoteVaultSource::builder(&url)
        .internal_secret(z(SECRET))
        .root_certificates_pem(&read("unrelated_ca.pem"))
        .build()
        .unwrap();
    let platform = RemoteVaultSource::builder(&url)
        .internal_secret(z(SECRET))
        .build()
        .unwrap();
    for source in [unrelated, platform] {
        assert_eq!(
            source
                .fetch(&ck("u1", "acct-1", Level::Read))
                .await
                .unwrap_err(),
            FetchError::Backend
        );
    }
    // The server records the failed handshakes on its own schedule.
    for _ in 0..100 {
        if seen.handshakes_failed.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen.handshakes_failed.load(Ordering::SeqCst) >= 2);
    assert!(seen.requests.lock().unwrap().is_empty());
}
