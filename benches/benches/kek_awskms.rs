//! crypto-envelope's AWS KMS backend (feature `awskms`): a 64 B envelope open through
//! `AwsKms` beside the same backend's unwrap alone and the raw SDK `Decrypt` call alone,
//! on the same KMS server, key and encryption context.
//!
//! Goal (issue 11): the envelope open within 1.05x of the raw unwrap call, i.e. the
//! envelope adds nothing measurable to a remote round trip.
//!
//! Needs a KMS server: `source .ci/services/awskms.sh` (moto on 127.0.0.1) exports
//! `AWS_ENDPOINT_URL`, `AWS_REGION` and test credentials. Without `AWS_ENDPOINT_URL` the
//! group does nothing and says so on stderr.

// Set-up failures abort the benchmark run, which is what a panic does.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeySpec, KeyUsageType};
use criterion::{Criterion, criterion_group, criterion_main};
use crypto_envelope::backend::awskms::kms_context;
use crypto_envelope::{AwsKms, DataKey, EncryptionContext, Envelope, KekBackend};

fn context() -> EncryptionContext {
    EncryptionContext::new()
        .with("owner", "42")
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", "api_secret")
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        eprintln!(
            "kek/awskms: AWS_ENDPOINT_URL is not set: group skipped (source .ci/services/awskms.sh)"
        );
        return;
    };
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ctx = context();
    let (envelope, kms, client, sealed, arn, wrapped, aad) = rt.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .endpoint_url(endpoint.clone())
            .load()
            .await;
        let client = aws_sdk_kms::Client::new(&config);
        let arn = client
            .create_key()
            .key_spec(KeySpec::SymmetricDefault)
            .key_usage(KeyUsageType::EncryptDecrypt)
            .description("strongroom bench")
            .send()
            .await
            .unwrap()
            .key_metadata()
            .unwrap()
            .arn()
            .unwrap()
            .to_owned();
        let kms = Arc::new(
            AwsKms::builder()
                .region(region)
                .endpoint_url(endpoint)
                .key_id(&arn)
                .connect()
                .await
                .unwrap(),
        );
        let envelope = Envelope::from_arc(kms.clone()).unwrap();
        let sealed = envelope.seal(&[0x5a; 64], &ctx).await.unwrap().to_bytes();
        // aad(2) of FORMAT.md, for the backend's and the raw call.
        let mut aad = b"SRE\x01\x01\x02".to_vec();
        aad.extend_from_slice(&ctx.canonical_bytes());
        let wrapped = kms
            .wrap(&DataKey::generate().unwrap(), &aad, &ctx)
            .await
            .unwrap();
        (envelope, kms, client, sealed, arn, wrapped, aad)
    });
    let pairs = kms_context(&aad, &ctx).unwrap();

    let mut group = c.benchmark_group("kek/awskms");
    group.bench_function("envelope_open_64B", |b| {
        b.iter(|| {
            rt.block_on(envelope.open(black_box(&sealed), &ctx))
                .unwrap()
        })
    });
    group.bench_function("backend_unwrap", |b| {
        b.iter(|| {
            rt.block_on(kms.unwrap(&wrapped.key, black_box(&wrapped.bytes), &aad, &ctx))
                .unwrap()
        })
    });
    group.bench_function("raw_decrypt", |b| {
        b.iter(|| {
            rt.block_on(
                client
                    .decrypt()
                    .key_id(&arn)
                    .ciphertext_blob(Blob::new(black_box(wrapped.bytes.as_slice())))
                    .set_encryption_context(Some(pairs.clone()))
                    .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
                    .send(),
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
