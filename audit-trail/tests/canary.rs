//! Canary: the MAC key never reaches `Debug`, an error, a report or the logs, and a
//! failing store logs stable codes and counts, never an event's values.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sqlite")]
use crate::capture;

use std::time::Duration;

use audit_trail::{Actor, AuditLog, Event, MacKey, Outcome, SqliteStore};

const KEY: &[u8; 32] = b"CANARY-audit-key-0123456789abcd!";
const EVENT_CANARY: &str = "CANARY-event-target";

fn assert_clean(what: &str, text: &str) {
    let hex = base16ct::lower::encode_string(KEY);
    for needle in [
        "CANARY-audit-key",
        hex.as_str(),
        &hex[..16],
        "0123456789abcd!",
    ] {
        assert!(!text.contains(needle), "{what} leaks the key: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_never_leaks_and_failures_log_codes_only() {
    let capture = capture::Capture::install();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("audit.db"))
        .await
        .unwrap();
    let key = MacKey::from_bytes(*KEY);
    assert_clean("MacKey Debug", &format!("{key:?} {key:#?}"));
    let id = key.id().to_owned();
    let builder = AuditLog::builder(store.clone(), key);
    assert_clean("builder Debug", &format!("{builder:?}"));
    let log = builder.build().await.unwrap();
    assert_clean("AuditLog Debug", &format!("{log:?}"));

    let event = Event::new(
        Actor::new("user-1", "session"),
        "login.success",
        Outcome::Success,
    )
    .with_target(EVENT_CANARY);
    let record = log.append(event.clone()).await.unwrap();
    assert_clean("Record Debug", &format!("{record:?}"));
    let report = log.verify().await.unwrap();
    assert_clean("Report", &format!("{report} {report:?}"));

    // Another key: the error names the stored key id, not a key.
    let err = AuditLog::new(store.clone(), MacKey::from_bytes([1; 32]))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains(&id));
    assert_clean("WrongKey", &text);

    // The store goes away: the writer keeps the event, warns with a code, and the flush
    // says so; neither the key nor the event's values reach the logs.
    store.pool().close().await;
    log.record(event.clone()).await;
    let err = log.flush().await.unwrap_err();
    assert_eq!(err.code(), "audit.store_unavailable");
    assert_clean("flush error", &format!("{err} {err:?}"));
    let err = log.append(event).await.unwrap_err();
    assert_clean("append error", &format!("{err} {err:?}"));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let logs = capture.text();
    assert!(logs.contains("audit.store_failed"), "{logs}");
    assert!(!logs.contains(EVENT_CANARY), "{logs}");
    assert_clean("logs", &logs);
}

#[test]
fn derived_and_generated_keys_do_not_print_their_bytes() {
    let derived = MacKey::derive(KEY).unwrap();
    let hex = base16ct::lower::encode_string(derived.expose_secret());
    let text = format!("{derived:?}");
    assert!(!text.contains(&hex) && !text.contains(&hex[..16]), "{text}");
    assert!(text.contains(derived.id()));
    assert!(MacKey::derive(&KEY[..31]).is_err());
    let generated = MacKey::generate().unwrap();
    let hex = base16ct::lower::encode_string(generated.expose_secret());
    assert!(!format!("{generated:?}").contains(&hex[..16]));
}
