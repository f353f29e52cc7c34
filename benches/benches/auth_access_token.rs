//! auth-core access tokens: resolution of this service's own EdDSA access token through
//! `AccessTokenResolver`, beside plain `jsonwebtoken::decode` of the same token with the
//! same key and validation, in one group.
//!
//! Goal (issue 10): resolver (no epoch check) at most 1.10x plain decode, on first use.
//!
//! * `jsonwebtoken_decode`: `decode::<AccessTokenClaims>` with a prebuilt `DecodingKey`
//!   (from the issuer's JWKS) and a prebuilt `Validation` (EdDSA, iss, aud, exp, nbf,
//!   required claims): the raw primitive.
//! * `resolver_first_use`: `AccessTokenResolver::resolve` of a token this issuer has not
//!   verified before (shape and header checks, kid lookup, alg pinning, decode, our own
//!   claim checks, the principal); each iteration gets a freshly issued token (issued
//!   outside the timing).
//! * `resolver`: the same token again: the ring remembers tokens whose signature it
//!   verified (by SHA-256 of the token) and runs only the claim checks.
//! * `resolver_epoch_check`: the same with the epoch check on a `MemoryStore` (one
//!   `user_by_id` and `admit` per request).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark setup: a failure must abort the run"
)]

use std::hint::black_box;
use std::sync::Arc;

use auth_core::token::{
    AccessTokenClaims, AccessTokenRequest, AccessTokenResolver, Issuer, MemorySigningKeyStore,
};
use auth_core::user::{User, UserStore};
use auth_core::{Credential, CredentialKind, MemoryStore, Resolution, Resolver};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const ISS: &str = "https://auth.strongroom.example";
const AUD: &str = "trading-api";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = rt
        .block_on(Issuer::builder(ISS, AUD).build(Arc::new(MemorySigningKeyStore::new())))
        .unwrap();
    let users = Arc::new(MemoryStore::new());
    let user = User::new(
        "f1c3a9e255d44b8e9a513f0c2d7e8b61",
        "trader@example.com",
        None,
        0,
    );
    rt.block_on(users.create_user(&user)).unwrap();
    let token = rt
        .block_on(
            issuer.issue(
                &AccessTokenRequest::new(user.id.clone(), 0, ["pwd", "otp"], 1_700_000_000)
                    .with_sid("0b5e8a0c7d1f4e2ab9c35a6d7e8f9012")
                    .with_scope("read trade"),
            ),
        )
        .unwrap();
    let token = token.expose_secret().to_owned();
    let cred = Credential::new(CredentialKind::Bearer, &token).unwrap();

    // Plain jsonwebtoken: the key from the published JWKS, the same validation.
    let set: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();
    let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.leeway = 30;
    validation.validate_nbf = true;
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[ISS]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<AccessTokenClaims>(&token, &key, &validation).unwrap();

    let plain = AccessTokenResolver::new(issuer.clone());
    let checked = AccessTokenResolver::new(issuer.clone()).with_epoch_check(users);
    assert!(matches!(
        block_on(plain.resolve(&cred)),
        Resolution::Authenticated(_)
    ));
    assert!(matches!(
        block_on(checked.resolve(&cred)),
        Resolution::Authenticated(_)
    ));

    let mut g = c.benchmark_group("auth_access_token");
    g.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<AccessTokenClaims>(black_box(&token), &key, &validation)
                .unwrap()
                .claims
        });
    });
    g.bench_function("resolver_first_use", |b| {
        b.iter_batched(
            || {
                let fresh = rt
                    .block_on(issuer.issue(&AccessTokenRequest::new(
                        user.id.clone(),
                        0,
                        ["pwd"],
                        1_700_000_000,
                    )))
                    .unwrap();
                Credential::new(CredentialKind::Bearer, fresh.expose_secret()).unwrap()
            },
            |fresh| block_on(plain.resolve(&fresh)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("resolver", |b| {
        b.iter(|| block_on(plain.resolve(black_box(&cred))));
    });
    g.bench_function("resolver_epoch_check", |b| {
        b.iter(|| block_on(checked.resolve(black_box(&cred))));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
