//! crypto-envelope: seal and open through the local master-key backend, beside raw
//! AES-256-GCM from the same implementation (aws-lc-rs), at 64 B, 4 KiB and 1 MiB.
//!
//! Goals (issue "crypto-envelope"): a 64 B open within 3x two raw AES-GCM opens (an
//! envelope open is one unwrap plus one payload open); 1 MiB throughput at least 0.9x raw.
//!
//! Beside the raw opens, `floor` is the least an open of this format can do with these
//! primitives, written out by hand from the same crates: open the 32-byte data key under
//! a pre-expanded KEK, one HKDF-SHA-256 expansion to 64 bytes (aws-lc-rs, as the envelope
//! does), set up AES-256-GCM under the derived key, open the payload.
//! `envelope / floor` is what the format's parsing, the backend trait and the hygiene
//! cost on top.

// Set-up failures abort the benchmark run, which is what a panic does.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crypto_envelope::{
    CacheLimits, DataKeyCache, EncryptionContext, Envelope, LocalKeyRing, MasterKey,
};
use futures::executor::block_on;

const SIZES: [usize; 3] = [64, 4 << 10, 1 << 20];

fn envelope() -> Envelope {
    let key = MasterKey::parse("bench", &"5a".repeat(32)).unwrap();
    Envelope::new(LocalKeyRing::single(key).unwrap()).unwrap()
}

fn context() -> EncryptionContext {
    EncryptionContext::new()
        .with("owner", "42")
        .unwrap()
        .with("venue", "binance")
        .unwrap()
        .with("field", "api_secret")
        .unwrap()
}

fn raw_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap())
}

fn raw_seal(key: &LessSafeKey, plaintext: &[u8]) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([1; 12]),
        Aad::from(b"aad"),
        &mut buf,
    )
    .unwrap();
    buf
}

fn raw_open(key: &LessSafeKey, ciphertext: &[u8]) -> usize {
    let mut buf = ciphertext.to_vec();
    key.open_in_place(
        Nonce::assume_unique_for_key([1; 12]),
        Aad::from(b"aad"),
        &mut buf,
    )
    .unwrap()
    .len()
}

/// The payload key of the floor: one HKDF-SHA-256 expansion of the data key.
fn floor_key(dek: &[u8]) -> LessSafeKey {
    struct Len64;
    impl KeyType for Len64 {
        fn len(&self) -> usize {
            64
        }
    }
    let mut okm = zeroize::Zeroizing::new([0u8; 64]);
    Prk::new_less_safe(HKDF_SHA256, dek)
        .expand(&[b"strongroom sre v1 s1"], Len64)
        .unwrap()
        .fill(okm.as_mut())
        .unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap())
}

/// The floor of an envelope open (see the module docs): a data key wrapped under `kek`
/// and a payload sealed under the key derived from it, opened as an envelope would.
fn floor_open(kek: &LessSafeKey, wrapped_dek: &[u8], payload: &[u8]) -> usize {
    let mut dek = [0u8; 48];
    dek.copy_from_slice(wrapped_dek);
    let dek = kek
        .open_in_place(
            Nonce::assume_unique_for_key([1; 12]),
            Aad::from(b"aad"),
            &mut dek,
        )
        .unwrap();
    raw_open(&floor_key(dek), payload)
}

fn open(c: &mut Criterion) {
    let env = envelope();
    let ctx = context();
    let key = raw_key();
    let mut group = c.benchmark_group("envelope/open");
    for size in SIZES {
        let plaintext = vec![0xa5u8; size];
        let sealed = block_on(env.seal(&plaintext, &ctx)).unwrap().to_bytes();
        let raw = raw_seal(&key, &plaintext);
        let unwrap_sized = raw_seal(&key, &[0u8; 32]);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("envelope", size), &sealed, |b, sealed| {
            b.iter(|| block_on(env.open(black_box(sealed), &ctx)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("raw_aes_gcm", size), &raw, |b, raw| {
            b.iter(|| raw_open(&key, black_box(raw)))
        });
        let floor_payload = raw_seal(&floor_key(&[0u8; 32]), &plaintext);
        group.bench_with_input(BenchmarkId::new("floor", size), &floor_payload, |b, p| {
            b.iter(|| floor_open(&key, black_box(&unwrap_sized), black_box(p)))
        });
        group.bench_with_input(
            BenchmarkId::new("raw_aes_gcm_x2_fresh_key", size),
            &raw,
            |b, raw| {
                // What an envelope open must at least do: open a 32-byte data key, then
                // the payload under a key set up for this one value.
                b.iter(|| {
                    raw_open(&key, black_box(&unwrap_sized));
                    raw_open(&raw_key(), black_box(raw))
                })
            },
        );
    }
    group.finish();
}

fn seal(c: &mut Criterion) {
    let env = envelope();
    let ctx = context();
    let key = raw_key();
    let mut group = c.benchmark_group("envelope/seal");
    for size in SIZES {
        let plaintext = vec![0xa5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("envelope", size), &plaintext, |b, p| {
            b.iter(|| block_on(env.seal(black_box(p), &ctx)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("raw_aes_gcm", size), &plaintext, |b, p| {
            b.iter(|| raw_seal(&key, black_box(p)))
        });
    }
    group.finish();
}

/// The data-key cache (issue 11): a 64 B open served from the cache beside the same open
/// through the local master key. The local unwrap is one AES-GCM open of 32 bytes, so a
/// hit can at best match it; against a remote backend a hit saves a round trip.
fn open_cached(c: &mut Criterion) {
    let ctx = context();
    let local = envelope();
    let cached = envelope().with_data_key_cache(
        DataKeyCache::new(CacheLimits {
            max_uses: u64::MAX,
            max_bytes: u64::MAX,
            ..CacheLimits::default()
        })
        .unwrap(),
    );
    let sealed = block_on(local.seal(&[7u8; 64], &ctx)).unwrap().to_bytes();
    block_on(cached.open(&sealed, &ctx)).unwrap();
    let mut group = c.benchmark_group("envelope/open_cached");
    group.bench_function("local_open", |b| {
        b.iter(|| block_on(local.open(black_box(&sealed), &ctx)).unwrap());
    });
    group.bench_function("cache_hit", |b| {
        b.iter(|| block_on(cached.open(black_box(&sealed), &ctx)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, open, seal, open_cached);
criterion_main!(benches);
