//! crypto-envelope's PKCS#11 backend (group `kek/pkcs11`): an envelope open through the
//! backend beside the backend's raw unwrap alone (one `C_Decrypt` with `CKM_AES_GCM` on
//! a pooled session, through the blocking pool), on the same token and the same value.
//!
//! Goal (issue 11): `envelope_open` within 1.05x of `raw_unwrap`, i.e. the envelope adds
//! nothing measurable to a round trip to the token.
//!
//! Runs only when built with the `pkcs11` feature and `STRONGROOM_PKCS11_MODULE`,
//! `STRONGROOM_PKCS11_TOKEN_LABEL` and `STRONGROOM_PKCS11_PIN` are set (as
//! `.ci/services/softhsm.sh` does); otherwise the group does nothing and says so on
//! stderr. The key is `STRONGROOM_PKCS11_KEY_LABEL`, or `strongroom-bench-kek`, generated
//! in the token when absent.

// Set-up failures abort the benchmark run, which is what a panic does.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};

#[cfg(feature = "pkcs11")]
fn pkcs11(c: &mut Criterion) {
    use std::hint::black_box;

    use crypto_envelope::backend::pkcs11::{
        ENV_KEY_LABEL, ENV_MODULE, Pkcs11Error, Pkcs11KekBuilder,
    };
    use crypto_envelope::hazmat::wrap_aad;
    use crypto_envelope::{DataKey, EncryptionContext, Envelope, KekBackend};
    use strongroom_benches::Paired;

    if std::env::var_os(ENV_MODULE).is_none() {
        eprintln!("kek/pkcs11: {ENV_MODULE} is not set; skipped (source .ci/services/softhsm.sh)");
        return;
    }
    let label = std::env::var(ENV_KEY_LABEL).unwrap_or_else(|_| "strongroom-bench-kek".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kek = Pkcs11KekBuilder::from_lookup(|name| match name {
        ENV_KEY_LABEL => Some(label.clone()),
        other => std::env::var(other).ok(),
    })
    .unwrap()
    .build()
    .unwrap();
    match runtime.block_on(kek.generate_key(&label)) {
        Ok(()) | Err(Pkcs11Error::KeyExists { .. }) => {}
        Err(e) => panic!("kek/pkcs11: cannot make the bench key: {e}"),
    }
    runtime.block_on(kek.check()).unwrap();
    let kek = std::sync::Arc::new(kek);
    let envelope = Envelope::from_arc(kek.clone()).unwrap();
    let ctx = EncryptionContext::new()
        .with("owner", "42")
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", "api_secret")
        .unwrap();
    let sealed = runtime
        .block_on(envelope.seal(&[7u8; 64], &ctx))
        .unwrap()
        .to_bytes();
    let aad = wrap_aad(&ctx);
    let dek = DataKey::generate().unwrap();
    let wrapped = runtime.block_on(kek.wrap(&dek, &aad, &ctx)).unwrap();

    // The two take turns (see `strongroom_benches::Paired`).
    let open = || {
        runtime
            .block_on(envelope.open(black_box(&sealed), &ctx))
            .unwrap();
    };
    let raw = || {
        runtime
            .block_on(kek.unwrap(&wrapped.key, black_box(&wrapped.bytes), &aad, &ctx))
            .unwrap();
    };
    let routines: [(&str, &dyn Fn()); 2] = [("envelope_open", &open), ("raw_unwrap", &raw)];
    let paired = Paired::new(&routines);
    let mut group = c.benchmark_group("kek/pkcs11");
    for (i, name) in ["envelope_open", "raw_unwrap"].into_iter().enumerate() {
        group.bench_function(name, |b| b.iter_custom(|iters| paired.run(iters, i)));
    }
    group.finish();
    paired.report("kek/pkcs11", "envelope_open", "raw_unwrap");
}

#[cfg(not(feature = "pkcs11"))]
fn pkcs11(_: &mut Criterion) {
    eprintln!("kek/pkcs11: built without the `pkcs11` feature; skipped");
}

criterion_group!(benches, pkcs11);
criterion_main!(benches);
