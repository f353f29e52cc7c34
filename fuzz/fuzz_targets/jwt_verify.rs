//! Fuzz the SSO JWT verifier with a fixed in-memory key set (no network).
//!
//! Input byte 0 picks the mode:
//! * even: the rest, if UTF-8, is the token string as is (shape, header, base64, key
//!   lookup, issuer selection and signature paths);
//! * odd: the rest is `header bytes 0x00 payload bytes`, encoded and signed with one of
//!   two trusted P-256 keys (byte 1 picks which), so the claim checks behind the
//!   signature are reached with arbitrary JSON. Oracle: a token is only ever accepted for
//!   the issuer whose key signed it, never when already expired, and never with an `exp`
//!   beyond the default maximum lifetime (24 h).
#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::sso::{Algorithm, IssuerConfig, SsoVerifier};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64ct::{Base64UrlUnpadded, Encoding};
use libfuzzer_sys::fuzz_target;

const ISS_A: &str = "https://idp-a.fuzz";
const ISS_B: &str = "https://idp-b.fuzz";

struct Setup {
    verifier: SsoVerifier,
    ec_a: EcdsaKeyPair,
    ec_b: EcdsaKeyPair,
}

fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn ec_jwk(kp: &EcdsaKeyPair, kid: &str) -> String {
    let p = kp.public_key().as_ref();
    format!(
        r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"{}","y":"{}"}}"#,
        b64(&p[1..33]),
        b64(&p[33..65])
    )
}

fn rsa_jwk(kp: &RsaKeyPair, kid: &str) -> String {
    let pk = kp.public_key();
    format!(
        r#"{{"kty":"RSA","kid":"{kid}","alg":"RS256","n":"{}","e":"{}"}}"#,
        b64(pk.modulus().big_endian_without_leading_zero()),
        b64(pk.exponent().big_endian_without_leading_zero())
    )
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let ec_a = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("keygen");
    let ec_b = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("keygen");
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("keygen");
    // "shared" is a kid both issuers use, to exercise issuer selection by `iss`.
    let jwks_a = format!(
        r#"{{"keys":[{},{}]}}"#,
        ec_jwk(&ec_a, "ec-a"),
        rsa_jwk(&rsa, "shared")
    );
    let jwks_b = format!(r#"{{"keys":[{}]}}"#, ec_jwk(&ec_b, "shared"));
    let verifier = SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(ISS_A, jwks_a)
                .audience("api")
                .algorithms([Algorithm::RS256, Algorithm::ES256])
                .build()
                .expect("issuer a"),
        )
        .issuer(
            IssuerConfig::pinned(ISS_B, jwks_b)
                .audience("api")
                .algorithms([Algorithm::ES256])
                .build()
                .expect("issuer b"),
        )
        .build()
        .expect("verifier");
    Setup {
        verifier,
        ec_a,
        ec_b,
    }
});

fuzz_target!(|data: &[u8]| {
    let setup = &*SETUP;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            // Unsigned input can never verify.
            let _ = futures::executor::block_on(setup.verifier.verify(token));
        }
        return;
    }
    let Some((&which, rest)) = rest.split_first() else {
        return;
    };
    let (header, payload) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let (key, issuer) = if which % 2 == 0 {
        (&setup.ec_a, ISS_A)
    } else {
        (&setup.ec_b, ISS_B)
    };
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = key
        .sign(&SystemRandom::new(), input.as_bytes())
        .expect("sign");
    let token = format!("{input}.{}", b64(sig.as_ref()));
    if let Ok(id) = futures::executor::block_on(setup.verifier.verify(&token)) {
        assert_eq!(
            id.issuer(),
            issuer,
            "accepted for an issuer that did not sign"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let now = i64::try_from(now).expect("time");
        assert!(id.expires_at() >= now - 60, "accepted an expired token");
        // Default maximum lifetime: 24 h (plus the 60 s leeway) from now.
        assert!(
            id.expires_at() <= now + 24 * 3600 + 60,
            "accepted a token living longer than the maximum"
        );
        assert!(!id.subject().is_empty());
    }
});
