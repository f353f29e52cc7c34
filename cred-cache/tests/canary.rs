//! No secret in any `Debug`, `Display` or log line: canary values go through
//! every source, every error path and every public type, while a subscriber
//! captures all tracing output at TRACE level.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).
#![cfg(all(feature = "envelope", feature = "remote", feature = "redis"))]

use crate::common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{ck, key, owns, z};
use cred_cache::invalidation::MessageError;
use cred_cache::local::{DEFAULT_NAMESPACE, LocalSource, SECRET_NAME};
use cred_cache::redis::RedisInvalidation;
use cred_cache::remote::{RemoteVaultSource, parse_response};
use cred_cache::{
    AccountId, CacheStats, ConfigError, CredCache, CredentialSource, ExchangeCredential,
    FetchError, IdError, Invalidation, InvalidationMessage, Level, PublishError, UserId, danger,
    record,
};
use crypto_envelope::{Envelope, LocalKeyRing, MasterKey, MemoryStore, SecretRef, Secrets};

const CANARY: &str = "CANARY";
const KEY: &str = "CANARY-KEY-7f3a";
const SECRET: &str = "CANARY-SECRET-9b2c";
const PASS: &str = "CANARY-PASS-1d4e";
const INTERNAL: &str = "CANARY-INTERNAL-5e6f0123";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

fn canary_credential(id: &str, read_only: bool) -> ExchangeCredential {
    ExchangeCredential::new(
        AccountId::new(id).unwrap(),
        z(KEY),
        z(SECRET),
        Some(z(PASS)),
        read_only,
    )
    .unwrap()
}

async fn vault(headers: HeaderMap, Json(body): Json<serde_json::Value>) -> Response {
    if headers
        .get("x-internal-secret")
        .and_then(|v| v.to_str().ok())
        != Some(INTERNAL)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let id = body["account_id"].as_str().unwrap_or_default().to_owned();
    let value = match id.as_str() {
        "acct-ok" => serde_json::json!({"credential_id": id, "api_key": KEY, "secret": SECRET,
            "passphrase": PASS, "read_only": false}),
        "acct-ro" => serde_json::json!({"credential_id": id, "api_key": KEY, "secret": SECRET,
            "read_only": true}),
        "acct-bad-type" => {
            serde_json::json!({"credential_id": id, "api_key": KEY, "secret": SECRET,
            "read_only": SECRET})
        }
        "acct-unknown-member" => serde_json::json!({"credential_id": id, "api_key": KEY,
            "secret": SECRET, "read_only": false, SECRET: KEY}),
        "acct-bad-char" => serde_json::json!({"credential_id": id, "api_key": KEY,
            "secret": format!("{SECRET} x"), "read_only": false}),
        _ => serde_json::json!({"credential_id": "acct-ok", "api_key": KEY, "secret": SECRET,
            "read_only": false}),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

#[test]
fn no_canary_in_debug_display_or_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    // tracing caches each callsite's interest for the whole process, and while a single
    // dispatcher is registered it asks the *registering* thread's default: a test beside
    // this one, with no subscriber, could cache `never` for a line asserted here. A second
    // registered dispatcher makes the interest the union of both.
    let _anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut shown: Vec<String> = Vec::new();
    let mut show = |label: &str, debug: String| shown.push(format!("{label}: {debug}"));

    runtime.block_on(async {
        // Local source: put, fetch, refusals, a broken record.
        let store = Arc::new(MemoryStore::new());
        let ring = LocalKeyRing::single(MasterKey::generate().unwrap()).unwrap();
        let secrets = Secrets::new(Envelope::new(ring).unwrap(), Arc::clone(&store) as _);
        let local = Arc::new(LocalSource::new(secrets.clone()));
        local
            .put(&owns("acct-ok"), &canary_credential("acct-ok", false))
            .await
            .unwrap();
        local
            .put(&owns("acct-ro"), &canary_credential("acct-ro", true))
            .await
            .unwrap();
        let junk = format!("\x01\x00\x00\x18{SECRET}{KEY}");
        secrets
            .put(
                &SecretRef::scoped(DEFAULT_NAMESPACE, "acct-junk", SECRET_NAME).unwrap(),
                junk.as_bytes(),
            )
            .await
            .unwrap();
        let bus = RedisInvalidation::new("redis://:CANARY-REDIS-PW@127.0.0.1:1/", "canary-channel")
            .unwrap();
        let builder = CredCache::builder(Arc::clone(&local) as _)
            .max_uses(2)
            .publisher(bus.publisher());
        show("builder", format!("{builder:?}"));
        let cache = builder.build().unwrap();
        let subscription = bus.subscribe(&cache);
        let c = cache
            .get_or_fetch(key("u1", "acct-ok", Level::Trade), Level::Trade)
            .await
            .unwrap();
        // The canary really is in there: the checks below could fail.
        assert_eq!(
            (c.expose_api_key(), c.expose_secret(), c.expose_passphrase()),
            (KEY, SECRET, Some(PASS))
        );
        show("credential", format!("{c:?} {c:#?}"));
        for k in ["acct-ro", "acct-junk", "acct-none"] {
            let e = cache
                .get_or_fetch(key("u1", k, Level::Trade), Level::Trade)
                .await
                .unwrap_err();
            show("fetch error", format!("{e:?} {e}"));
        }
        let e = cache
            .invalidate_credential(&AccountId::new("acct-ok").unwrap())
            .await
            .unwrap_err();
        show("publish error", format!("{e:?} {e}"));
        cache
            .invalidate_user(&UserId::new("u1").unwrap())
            .await
            .unwrap_err();
        cache.invalidate_all().await.unwrap_err();
        show("cache", format!("{cache:?} {cache:#?}"));
        show("local", format!("{local:?}"));
        show("bus", format!("{bus:?} {subscription:?}"));
        show("stats", format!("{:?}", cache.stats()));

        // Remote source against a real server, success and every refusal.
        let app = Router::new().route("/vault", post(vault));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/vault", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let remote_builder = danger::allow_plain_http(RemoteVaultSource::builder(&url))
            .internal_secret(z(INTERNAL))
            .timeout(Duration::from_secs(2));
        show("remote builder", format!("{remote_builder:?}"));
        let remote = Arc::new(remote_builder.build().unwrap());
        show("remote", format!("{remote:?}"));
        let remote_cache = CredCache::builder(Arc::clone(&remote) as _)
            .build()
            .unwrap();
        let c = remote_cache
            .get_or_fetch(key("u2", "acct-ok", Level::Read), Level::Read)
            .await
            .unwrap();
        assert_eq!(c.expose_secret(), SECRET);
        for k in [
            "acct-ro",
            "acct-bad-type",
            "acct-unknown-member",
            "acct-bad-char",
            "acct-other",
        ] {
            let e = remote_cache
                .get_or_fetch(key("u2", k, Level::Trade), Level::Trade)
                .await
                .unwrap_err();
            show("remote error", format!("{e:?} {e}"));
        }
        let wrong = danger::allow_plain_http(RemoteVaultSource::builder(&url))
            .internal_secret(z("CANARY-WRONG-0123456789"))
            .build()
            .unwrap();
        let e = wrong
            .fetch(&ck("u2", "acct-ok", Level::Read))
            .await
            .unwrap_err();
        show("wrong secret", format!("{e:?} {e} {wrong:?}"));
        show("remote cache", format!("{remote_cache:?}"));
        runtime_yield().await;
    });

    // Every public type's Debug and Display, including errors built from
    // canary input.
    let k = ck("u", "acct-ok", Level::Trade);
    show(
        "key",
        format!("{k:?} {:?} {:?} {:?}", k.user(), k.credential(), k.level()),
    );
    show(
        "ids",
        format!("{} {} {}", k.user(), k.credential(), k.level()),
    );
    show("stats", format!("{:?}", CacheStats::default()));
    for e in [
        FetchError::Unavailable,
        FetchError::NotFound,
        FetchError::Refused,
        FetchError::Backend,
        FetchError::InvalidResponse,
        FetchError::Storage,
        FetchError::Contended,
        FetchError::Misconfigured,
    ] {
        show("fetch error", format!("{e:?} {e} {}", e.code()));
    }
    let id_error: IdError = UserId::new(&format!("{SECRET} x")).unwrap_err();
    show("id error", format!("{id_error:?} {id_error}"));
    let cred_error = ExchangeCredential::new(
        AccountId::new("c").unwrap(),
        z(KEY),
        z(&format!("{SECRET}\n")),
        None,
        false,
    )
    .unwrap_err();
    show("credential error", format!("{cred_error:?} {cred_error}"));
    let config_error: ConfigError = RemoteVaultSource::builder("https://vault.internal/")
        .internal_secret(z("CANARY\u{1}"))
        .build()
        .unwrap_err();
    show("config error", format!("{config_error:?} {config_error}"));
    let with_userinfo =
        RemoteVaultSource::builder(&format!("https://{SECRET}:{KEY}@vault.internal/"));
    show("builder with userinfo", format!("{with_userinfo:?}"));
    let config_error = with_userinfo.build().unwrap_err();
    show("config error", format!("{config_error:?} {config_error}"));
    show(
        "publish error",
        format!("{:?} {}", PublishError::Transport, PublishError::Transport),
    );
    let message = InvalidationMessage {
        origin: "0123456789abcdef".into(),
        invalidation: Invalidation::Credential(AccountId::new("acct-ok").unwrap()),
    };
    show(
        "message",
        format!(
            "{message:?} {:?}",
            String::from_utf8(message.encode()).unwrap()
        ),
    );
    let bad: MessageError = InvalidationMessage::decode(SECRET.as_bytes()).unwrap_err();
    show("message error", format!("{bad:?} {bad}"));
    for body in [
        format!(
            r#"{{"credential_id":"acct-ok","api_key":"{KEY}","secret":"{SECRET}","read_only":"{SECRET}"}}"#
        ),
        format!(
            r#"{{"credential_id":"acct-ok","api_key":"{KEY}","secret":"{SECRET}","read_only":false,"{SECRET}":1}}"#
        ),
        format!(
            r#"{{"credential_id":"{SECRET}","api_key":"{KEY}","secret":"{SECRET}","read_only":false}}"#
        ),
        format!(
            r#"{{"credential_id":"acct-ok","api_key":"{KEY} ","secret":"{SECRET}","read_only":false}}"#
        ),
        format!(
            r#"{{"credential_id":"acct-ok","api_key":"{KEY}","secret":"{SECRET}","read_only":true}}"#
        ),
        SECRET.to_owned(),
    ] {
        let e = parse_response(body.as_bytes(), &k).unwrap_err();
        show("response error", format!("{e:?} {e}"));
    }
    let e = record::decode(
        AccountId::new("c").unwrap(),
        format!("\x01\x00\x00\x05{SECRET}").as_bytes(),
    )
    .unwrap_err();
    show("record error", format!("{e:?} {e}"));
    let encoded = record::encode(&canary_credential("c", false));
    assert!(
        encoded
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: the events we expect are there.
    for code in [
        "cred_cache.invalidated",
        "cred_cache.level_refused",
        "cred_cache.local.bad_record",
        "cred_cache.redis.publish_failed",
        "cred_cache.remote.invalid_response",
        "cred_cache.remote.status",
    ] {
        assert!(logs.contains(code), "missing {code} in logs:\n{logs}");
    }
    assert!(shown.len() > 30);
    for line in &shown {
        assert!(!line.contains(CANARY), "canary in {line}");
        assert!(!line.contains("REDIS-PW"), "password in {line}");
    }
    for line in logs.lines() {
        assert!(!line.contains(CANARY), "canary in log line: {line}");
    }
}

async fn runtime_yield() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}
