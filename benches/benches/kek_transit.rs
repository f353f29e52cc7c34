//! crypto-envelope's Transit backend (issue 11): a 64 B envelope open through OpenBao
//! Transit beside the raw Transit `decrypt` of a 32-byte data key on the same server
//! (one HTTP round trip, the least an open through Transit can cost), and the backend's
//! `unwrap` alone.
//!
//! Goal: `envelope_open / raw_decrypt` within 1.05x: the envelope adds nothing
//! measurable to a remote round trip.
//!
//! Needs an OpenBao (or Vault) server: `STRONGROOM_TRANSIT_TEST_ADDR` and
//! `STRONGROOM_OPENBAO_ROOT_TOKEN`, as `.ci/services/openbao.sh` exports them. Without
//! them the group is skipped with a note on stderr.

// Set-up failures abort the benchmark run, which is what a panic does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use base64ct::{Base64, Encoding};
use criterion::{Criterion, criterion_group, criterion_main};
use crypto_envelope::{EncryptionContext, Envelope, KekBackend, TransitBuilder};
use strongroom_benches::Paired;

fn context() -> EncryptionContext {
    EncryptionContext::new()
        .with("owner", "user-42")
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", "api_secret")
        .unwrap()
}

fn transit(c: &mut Criterion) {
    let (Ok(addr), Ok(token)) = (
        std::env::var("STRONGROOM_TRANSIT_TEST_ADDR"),
        std::env::var("STRONGROOM_OPENBAO_ROOT_TOKEN"),
    ) else {
        eprintln!(
            "kek/transit: STRONGROOM_TRANSIT_TEST_ADDR and STRONGROOM_OPENBAO_ROOT_TOKEN are not set: skipped"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    let key = format!("bench-{}", std::process::id());
    let created = rt
        .block_on(
            http.post(format!("{addr}/v1/transit/keys/{key}"))
                .header("X-Vault-Token", &token)
                .json(&serde_json::json!({"type": "aes256-gcm96", "derived": true}))
                .send(),
        )
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());

    let kek = Arc::new(
        rt.block_on(TransitBuilder::new(&addr, &key).token(&token).connect())
            .unwrap(),
    );
    let envelope = Envelope::from_arc(Arc::clone(&kek) as Arc<dyn KekBackend>).unwrap();
    let ctx = context();
    let sealed = rt
        .block_on(envelope.seal(&[7u8; 64], &ctx))
        .unwrap()
        .to_bytes();

    // The raw call: decrypt of a 32-byte data key under the same key, with a context of
    // the same size as the envelope's (the hash of the wrap's associated data).
    let aad = crypto_envelope::hazmat::wrap_aad(&ctx);
    let transit_context = Base64::encode_string(digest(&SHA256, &aad).as_ref());
    let encrypted: serde_json::Value = rt
        .block_on(async {
            http.post(format!("{addr}/v1/transit/encrypt/{key}"))
                .header("X-Vault-Token", &token)
                .json(&serde_json::json!({
                    "plaintext": Base64::encode_string(&[9u8; 32]),
                    "context": transit_context,
                }))
                .send()
                .await
                .unwrap()
                .json()
                .await
        })
        .unwrap();
    let decrypt_body = serde_json::to_vec(&serde_json::json!({
        "ciphertext": encrypted["data"]["ciphertext"],
        "context": transit_context,
    }))
    .unwrap();
    let decrypt_url = format!("{addr}/v1/transit/decrypt/{key}");

    // The backend's unwrap alone, on a wrap of its own.
    let dek = crypto_envelope::DataKey::generate().unwrap();
    let wrapped = rt.block_on(kek.wrap(&dek, &aad, &ctx)).unwrap();

    // The three take turns (see `strongroom_benches::Paired`).
    let raw = || {
        rt.block_on(async {
            let answer = http
                .post(&decrypt_url)
                .header("X-Vault-Token", &token)
                .header("Content-Type", "application/json")
                .body(decrypt_body.clone())
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success());
            black_box(answer.bytes().await.unwrap());
        });
    };
    let unwrap = || {
        rt.block_on(kek.unwrap(&wrapped.key, black_box(&wrapped.bytes), &aad, &ctx))
            .unwrap();
    };
    let open = || {
        rt.block_on(envelope.open(black_box(&sealed), &ctx))
            .unwrap();
    };
    let routines: [(&str, &dyn Fn()); 3] = [
        ("raw_decrypt", &raw),
        ("backend_unwrap", &unwrap),
        ("envelope_open", &open),
    ];
    let paired = Paired::new(&routines);
    let mut group = c.benchmark_group("kek/transit");
    for (i, name) in ["raw_decrypt", "backend_unwrap", "envelope_open"]
        .into_iter()
        .enumerate()
    {
        group.bench_function(name, |b| b.iter_custom(|iters| paired.run(iters, i)));
    }
    group.finish();
    paired.report("kek/transit", "envelope_open", "raw_decrypt");
    paired.report("kek/transit", "backend_unwrap", "raw_decrypt");
}

criterion_group!(benches, transit);
criterion_main!(benches);
