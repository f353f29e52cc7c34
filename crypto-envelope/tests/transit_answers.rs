//! The Transit backend against a scripted server on loopback: answers a real server gives
//! only in faults (a proxy's or a plain-HTTP listener's text, a missing route, a key of
//! another type, an absurd lease), each mapped so that no value is refused because of the
//! deployment and no answer panics. Runs without OpenBao.
#![cfg(feature = "transit")]
// Test helpers outside #[test] functions may panic: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crypto_envelope::{BackendError, DataKey, KekBackend, KeyRef, TransitBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the scripted server answers to a request line: status and body.
type Script = Arc<dyn Fn(&str) -> (u16, String) + Send + Sync>;

/// What an error must be.
type Check = fn(&BackendError) -> bool;

const KEY_INFO: &str = r#"{"data":{"type":"aes256-gcm96","derived":true,"latest_version":1,"min_decryption_version":1,"keys":{"1":1700000000}}}"#;

/// Serves `script` on a loopback port; returns the address and a request counter.
async fn serve(script: Script) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let script = Arc::clone(&script);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head and as much body as Content-Length says.
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let line = String::from_utf8_lossy(&request)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let (status, body) = script(&line);
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, count)
}

/// A script that answers the key read with a usable key and `other` for the rest.
fn with_key(other: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> Script {
    Arc::new(move |line: &str| {
        if line.starts_with("GET /v1/transit/keys/k ") {
            (200, KEY_INFO.to_owned())
        } else {
            other(line)
        }
    })
}

async fn connect(addr: &str) -> crypto_envelope::TransitKek {
    TransitBuilder::new(addr, "k")
        .token("s.scripted")
        .max_attempts(2)
        .connect()
        .await
        .unwrap()
}

async fn unwrap_err(kek: &crypto_envelope::TransitKek) -> BackendError {
    kek.unwrap(
        &KeyRef::new("transit/k", 1),
        &[7u8; 60],
        b"aad",
        &common::ctx("a", "f"),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn only_an_authentication_failure_refuses_a_value() {
    let cases: [(u16, &str, Check); 7] = [
        (
            400,
            r#"{"errors":["cipher: message authentication failed"]}"#,
            |e| matches!(e, BackendError::Refused),
        ),
        (400, r#"{"errors":["invalid ciphertext length"]}"#, |e| {
            matches!(e, BackendError::Refused)
        }),
        (
            400,
            r#"{"errors":["invalid ciphertext: version is too new"]}"#,
            |e| matches!(e, BackendError::KeyNotFound { .. }),
        ),
        (
            400,
            r#"{"errors":["ciphertext or signature version is disallowed by policy (too old)"]}"#,
            |e| matches!(e, BackendError::KeyRetired { .. }),
        ),
        // A plain-HTTP request to a TLS listener, a key of another type, a missing route.
        (
            400,
            "Client sent an HTTP request to an HTTPS server.",
            |e| matches!(e, BackendError::Unavailable { .. }),
        ),
        (
            400,
            r#"{"errors":["message decryption not supported for key type ed25519"]}"#,
            |e| matches!(e, BackendError::Unavailable { .. }),
        ),
        (
            404,
            r#"{"errors":["no handler for route \"nomount/decrypt/k\". route entry not found."]}"#,
            |e| matches!(e, BackendError::Unavailable { .. }),
        ),
    ];
    for (status, body, expected) in cases {
        let (addr, _) = serve(with_key(move |_| (status, body.to_owned()))).await;
        let kek = connect(&addr).await;
        let err = unwrap_err(&kek).await;
        assert!(expected(&err), "{status} {body}: {err:?}");
    }
}

#[tokio::test]
async fn transient_statuses_are_retried_then_unavailable() {
    let (addr, count) = serve(with_key(|_| (503, r#"{"errors":["sealed"]}"#.to_owned()))).await;
    let kek = connect(&addr).await;
    let before = count.load(Ordering::SeqCst);
    let err = unwrap_err(&kek).await;
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    // max_attempts(2): two requests, no more.
    assert_eq!(count.load(Ordering::SeqCst) - before, 2);
}

#[tokio::test]
async fn connect_refuses_exportable_and_mistyped_keys_and_missing_mounts() {
    for (status, body) in [
        (
            200,
            r#"{"data":{"type":"aes256-gcm96","derived":true,"exportable":true,"latest_version":1,"keys":{"1":1}}}"#,
        ),
        (
            200,
            r#"{"data":{"type":"aes256-gcm96","derived":true,"allow_plaintext_backup":true,"latest_version":1,"keys":{"1":1}}}"#,
        ),
        (
            200,
            r#"{"data":{"type":"aes128-gcm96","derived":true,"latest_version":1,"keys":{"1":1}}}"#,
        ),
        (
            200,
            r#"{"data":{"type":"chacha20-poly1305","derived":true,"latest_version":1,"keys":{"1":1}}}"#,
        ),
    ] {
        let (addr, _) = serve(Arc::new(move |_: &str| (status, body.to_owned()))).await;
        let err =
            common::connect_refused(TransitBuilder::new(&addr, "k").token("s.scripted")).await;
        assert!(
            matches!(err, BackendError::Misbehaved { .. }),
            "{body}: {err:?}"
        );
    }
    let (addr, _) = serve(Arc::new(|_: &str| (404, r#"{"errors":[]}"#.to_owned()))).await;
    let err = common::connect_refused(TransitBuilder::new(&addr, "k").token("s.scripted")).await;
    assert!(matches!(err, BackendError::KeyNotFound { .. }), "{err:?}");
    let (addr, _) = serve(Arc::new(|_: &str| {
        (
            404,
            r#"{"errors":["no handler for route \"transit/keys/k\""]}"#.to_owned(),
        )
    }))
    .await;
    let err = common::connect_refused(
        TransitBuilder::new(&addr, "k")
            .token("s.scripted")
            .max_attempts(1),
    )
    .await;
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn a_key_deleted_and_recreated_is_noticed_on_refresh() {
    let first = Arc::new(AtomicUsize::new(0));
    let reads = Arc::clone(&first);
    let (addr, _) = serve(Arc::new(move |_: &str| {
        // The second read reports version 1 created at another time.
        let created = if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            1_700_000_000
        } else {
            1_800_000_000
        };
        (
            200,
            format!(
                r#"{{"data":{{"type":"aes256-gcm96","derived":true,"latest_version":1,"keys":{{"1":{created}}}}}}}"#
            ),
        )
    }))
    .await;
    let kek = connect(&addr).await;
    let err = kek.refresh().await.unwrap_err();
    assert!(matches!(err, BackendError::Misbehaved { .. }), "{err:?}");
}

#[tokio::test]
async fn an_absurd_approle_lease_does_not_panic() {
    let (addr, _) = serve(with_key(|line| {
        if line.starts_with("POST /v1/auth/approle/login ") {
            (
                200,
                r#"{"auth":{"client_token":"s.t","lease_duration":18446744073709551615}}"#
                    .to_owned(),
            )
        } else {
            (
                200,
                format!(
                    r#"{{"data":{{"ciphertext":"vault:v1:{}","key_version":1}}}}"#,
                    "A".repeat(80)
                ),
            )
        }
    }))
    .await;
    let kek = TransitBuilder::new(&addr, "k")
        .approle("role", "secret")
        .connect()
        .await
        .unwrap();
    let dek = DataKey::generate().unwrap();
    let wrapped = kek
        .wrap(&dek, b"aad", &common::ctx("a", "f"))
        .await
        .unwrap();
    assert_eq!(wrapped.key.version, 1);
}
