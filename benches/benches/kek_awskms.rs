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
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeySpec, KeyUsageType};
use criterion::{Criterion, criterion_group, criterion_main};
use crypto_envelope::backend::awskms::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_OPERATION_TIMEOUT, kms_context,
};
use crypto_envelope::{AwsKms, DataKey, EncryptionContext, Envelope, KekBackend};
use strongroom_benches::Paired;

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
        // The raw client is configured as `AwsKms` configures its own (retry mode,
        // backoff, timeouts), so that the two differ only in what the backend does.
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .endpoint_url(endpoint.clone())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(DEFAULT_MAX_ATTEMPTS)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(1)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(DEFAULT_OPERATION_TIMEOUT)
                    .operation_attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)
                    .connect_timeout(DEFAULT_ATTEMPT_TIMEOUT)
                    .build(),
            )
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

    // The three take turns (see `strongroom_benches::Paired`): moto's round trip
    // drifts by more than the difference looked for.
    let open = || {
        rt.block_on(envelope.open(black_box(&sealed), &ctx))
            .unwrap();
    };
    let unwrap = || {
        rt.block_on(kms.unwrap(&wrapped.key, black_box(&wrapped.bytes), &aad, &ctx))
            .unwrap();
    };
    let raw = || {
        rt.block_on(
            client
                .decrypt()
                .key_id(&arn)
                .ciphertext_blob(Blob::new(black_box(wrapped.bytes.as_slice())))
                .set_encryption_context(Some(pairs.clone()))
                .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
                .send(),
        )
        .unwrap();
    };
    let routines: [(&str, &dyn Fn()); 3] = [
        ("envelope_open_64B", &open),
        ("backend_unwrap", &unwrap),
        ("raw_decrypt", &raw),
    ];
    let paired = Paired::new(&routines);
    let mut group = c.benchmark_group("kek/awskms");
    for (i, name) in ["envelope_open_64B", "backend_unwrap", "raw_decrypt"]
        .into_iter()
        .enumerate()
    {
        group.bench_function(name, |b| b.iter_custom(|iters| paired.run(iters, i)));
    }
    group.finish();
    paired.report("kek/awskms", "envelope_open_64B", "raw_decrypt");
    paired.report("kek/awskms", "backend_unwrap", "raw_decrypt");
}

criterion_group!(benches, bench);
criterion_main!(benches);
