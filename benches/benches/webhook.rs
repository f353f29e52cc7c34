//! auth-core signed webhooks: `Verifier::verify_signature` (parse the header, check the
//! time window, HMAC-SHA256 of `"<t>." || body`, constant-time compare with every `v1`
//! entry) beside the raw primitive, one aws-lc-rs HMAC-SHA256 of the same body with a
//! prepared key, for bodies of 256 B and 4 KiB. Goal (issue 12): one secret within 1.2x
//! of the raw HMAC.
//!
//! `two_secrets` is a receiver in a rotation whose sender still signs with the previous
//! secret: the worst case, two HMACs (the current secret is tried first). `verify_replayed`
//! is the whole `Verifier::verify` with the memory replay guard on a delivery already
//! claimed (signature, SHA-256 delivery id, one guard lookup). `sign` is the sender side.
// Benchmark set-up: a failure must abort the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use auth_core::webhook::{ActiveSecrets, MemoryReplayGuard, Signer, Verifier, WebhookSecret};
use aws_lc_rs::hmac;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const T: i64 = 1_700_000_000;

/// Polls a future that completes without waiting (the memory guard never waits) once.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory guard unexpectedly waited"),
    }
}

fn secret(fill: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(&[fill; 32]).unwrap()
}

fn webhook_verify(c: &mut Criterion) {
    let verifier = Verifier::builder(Arc::new(MemoryReplayGuard::default()))
        .build()
        .unwrap();
    let one = ActiveSecrets::new(secret(1));
    let two = ActiveSecrets::new(secret(2)).with_previous(secret(1), i64::MAX);
    let raw_key = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
    let signer = Signer::new(secret(1));

    let mut g = c.benchmark_group("webhook_verify");
    for size in [256usize, 4096] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let header = signer.sign(1_700_000_000, &body);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("raw_hmac_sha256/{size}"), |b| {
            b.iter(|| hmac::sign(&raw_key, black_box(&body)))
        });
        g.bench_function(format!("verify_signature/one_secret/{size}"), |b| {
            b.iter(|| {
                verifier
                    .verify_signature(Some(black_box(&header)), black_box(&body), &one, T)
                    .unwrap()
            })
        });
        g.bench_function(format!("verify_signature/two_secrets/{size}"), |b| {
            b.iter(|| {
                verifier
                    .verify_signature(Some(black_box(&header)), black_box(&body), &two, T)
                    .unwrap()
            })
        });
        block_on(verifier.verify("bench", Some(&header), &body, &one, T, "first")).unwrap();
        g.bench_function(format!("verify_replayed/{size}"), |b| {
            b.iter(|| {
                block_on(verifier.verify(
                    "bench",
                    Some(black_box(&header)),
                    black_box(&body),
                    &one,
                    T,
                    "again",
                ))
                .unwrap()
            })
        });
        g.bench_function(format!("sign/{size}"), |b| {
            b.iter(|| signer.sign(1_700_000_000, black_box(&body)))
        });
    }
    g.finish();
}

criterion_group!(benches, webhook_verify);
criterion_main!(benches);
