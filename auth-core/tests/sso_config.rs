//! SSO configuration errors: each names the issuer and the field, never key material.

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_core::sso::{
    Algorithm, CachePolicy, IssuerConfig, Limits, SsoConfigError, SsoVerifier, danger,
};

const ISS: &str = "https://idp.test";
const URL: &str = "https://idp.test/jwks";

fn err(b: auth_core::sso::IssuerConfigBuilder) -> SsoConfigError {
    b.build().unwrap_err()
}

#[test]
fn issuer_configuration_is_checked() {
    assert!(matches!(
        err(IssuerConfig::remote(ISS, "http://idp.test/jwks").audience("a")),
        SsoConfigError::InsecureJwksUrl { .. }
    ));
    danger::allow_plain_http(IssuerConfig::remote(ISS, "http://idp.test/jwks"))
        .audience("a")
        .build()
        .unwrap();
    for bad in [
        "ftp://idp.test/jwks",
        "not a url",
        "file:///etc/passwd",
        "https://",
    ] {
        assert!(
            matches!(
                err(IssuerConfig::remote(ISS, bad).audience("a")),
                SsoConfigError::InvalidJwksUrl { .. }
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        err(IssuerConfig::remote(ISS, URL)),
        SsoConfigError::NoAudience { .. }
    ));
    assert!(matches!(
        err(IssuerConfig::remote(ISS, URL).audience("")),
        SsoConfigError::NoAudience { .. }
    ));
    assert!(matches!(
        err(IssuerConfig::remote("", URL).audience("a")),
        SsoConfigError::EmptyIssuer
    ));
    assert!(matches!(
        err(IssuerConfig::remote(ISS, URL).audience("a").algorithms([])),
        SsoConfigError::NoAlgorithm { .. }
    ));
    for hs in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let e = err(IssuerConfig::remote(ISS, URL)
            .audience("a")
            .algorithms([Algorithm::RS256, hs]));
        assert!(
            matches!(e, SsoConfigError::SymmetricAlgorithm { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains(ISS));
    }
    assert!(matches!(
        err(IssuerConfig::remote(ISS, URL)
            .audience("a")
            .leeway(Duration::from_secs(3600))),
        SsoConfigError::OutOfRange { field: "leeway" }
    ));
}

#[test]
fn cache_policy_and_limits_are_range_checked() {
    let bad_policies = [
        CachePolicy::default().timeout(Duration::ZERO),
        CachePolicy::default().ttl_bounds(Duration::from_secs(10), Duration::from_secs(5)),
        CachePolicy::default().max_body_bytes(10),
        CachePolicy::default().max_keys(0),
    ];
    for p in bad_policies {
        assert!(
            matches!(
                err(IssuerConfig::remote(ISS, URL)
                    .audience("a")
                    .cache_policy(p.clone())),
                SsoConfigError::OutOfRange { .. }
            ),
            "{p:?}"
        );
    }
    let issuer = || {
        IssuerConfig::remote(ISS, URL)
            .audience("a")
            .build()
            .unwrap()
    };
    for limits in [
        Limits::default().max_token_len(10),
        Limits::default().max_kid_len(0),
        Limits::default().max_subject_len(0),
    ] {
        let e = SsoVerifier::builder()
            .issuer(issuer())
            .limits(limits)
            .build()
            .unwrap_err();
        assert!(matches!(e, SsoConfigError::OutOfRange { .. }), "{limits:?}");
    }
    assert!(matches!(
        SsoVerifier::builder().build().unwrap_err(),
        SsoConfigError::NoIssuer
    ));
    assert!(matches!(
        SsoVerifier::builder()
            .issuer(issuer())
            .issuer(issuer())
            .build()
            .unwrap_err(),
        SsoConfigError::DuplicateIssuer { .. }
    ));
}

#[test]
fn pinned_sets_need_a_usable_public_key() {
    let kat: serde_json::Value = serde_json::from_str(include_str!("data/jwt_jwks.json")).unwrap();
    let rsa = kat["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA")
        .unwrap()
        .clone();
    let set = |key: serde_json::Value| serde_json::json!({ "keys": [key] }).to_string();
    let with = |k: &str, v: serde_json::Value| {
        let mut key = rsa.clone();
        key[k] = v;
        set(key)
    };
    let mut no_kid = rsa.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let short_n = rsa["n"].as_str().unwrap()[..88].to_owned();
    let cases = [
        "not json".to_owned(),
        r#"{"keys":[]}"#.to_owned(),
        r#"{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#.to_owned(),
        // A private key published by mistake is skipped, not trusted.
        with("d", serde_json::json!("c2VjcmV0LXByaXZhdGUtZXhwb25lbnQ")),
        // Too short an RSA modulus (528 bits).
        with("n", serde_json::json!(short_n)),
        // For encryption, or for other operations than verify.
        with("use", serde_json::json!("enc")),
        with("key_ops", serde_json::json!(["encrypt"])),
        // A declared alg that does not fit the key type.
        with("alg", serde_json::json!("ES256")),
        // The same kid twice: ambiguous, both dropped.
        serde_json::json!({ "keys": [rsa.clone(), rsa.clone()] }).to_string(),
    ];
    for jwks in cases {
        let e = SsoVerifier::builder()
            .issuer(
                IssuerConfig::pinned(ISS, jwks.clone())
                    .audience("a")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap_err();
        assert!(
            matches!(e, SsoConfigError::NoUsableKey { .. }),
            "{jwks}: {e:?}"
        );
        // The error never echoes key material.
        assert!(!e.to_string().contains("c2Vj"), "{e}");
        assert!(!format!("{e:?}").contains("c2Vj"), "{e:?}");
    }
    // The well-formed public key is accepted.
    let v = SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(ISS, set(rsa.clone()))
                .audience("a")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(v.cached_key_count(ISS), 1);
    // A key without kid is kept too (RFC 7517 makes kid optional): it can only serve
    // tokens without kid (tests/sso_kidless.rs).
    let v = SsoVerifier::builder()
        .issuer(
            IssuerConfig::pinned(ISS, set(no_kid))
                .audience("a")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(v.cached_key_count(ISS), 1);
}

#[test]
fn discovery_lifetime_typ_and_azp_settings_are_checked() {
    // Discovery needs an https issuer URL without query or fragment.
    IssuerConfig::discover("https://idp.test/realms/main")
        .audience("a")
        .build()
        .unwrap();
    IssuerConfig::discover("https://idp.test/")
        .audience("a")
        .build()
        .unwrap();
    assert!(matches!(
        err(IssuerConfig::discover("http://idp.test").audience("a")),
        SsoConfigError::InsecureIssuerUrl { .. }
    ));
    danger::allow_plain_http(IssuerConfig::discover("http://127.0.0.1:1"))
        .audience("a")
        .build()
        .unwrap();
    for bad in [
        "idp.test",
        "https://",
        "https://idp.test/?tenant=a",
        "https://idp.test/#x",
        "https://idp.test/?",
        "ftp://idp.test",
    ] {
        let e = err(IssuerConfig::discover(bad).audience("a"));
        assert!(
            matches!(e, SsoConfigError::InvalidIssuerUrl { .. }),
            "{bad}: {e:?}"
        );
        assert!(e.to_string().contains("issuer"), "{e}");
    }
    // Maximum token lifetime: 1 s ..= 30 days, beyond only through danger.
    for bad in [
        Duration::ZERO,
        Duration::from_millis(999),
        Duration::from_secs(30 * 86_400 + 1),
    ] {
        assert!(matches!(
            err(IssuerConfig::remote(ISS, URL)
                .audience("a")
                .max_token_lifetime(bad)),
            SsoConfigError::OutOfRange {
                field: "max_token_lifetime"
            }
        ));
    }
    IssuerConfig::remote(ISS, URL)
        .audience("a")
        .max_token_lifetime(Duration::from_secs(30 * 86_400))
        .build()
        .unwrap();
    danger::allow_long_lived_tokens(
        IssuerConfig::remote(ISS, URL).audience("a"),
        Duration::from_secs(365 * 86_400),
    )
    .build()
    .unwrap();
    // typ: a media type, with or without application/.
    for good in ["at+jwt", "application/at+jwt", "AT+JWT", "JWT"] {
        IssuerConfig::remote(ISS, URL)
            .audience("a")
            .token_type(good)
            .build()
            .unwrap();
    }
    for bad in ["", "application/", "at jwt", "a/b", "at+jwt\n"] {
        assert!(
            matches!(
                err(IssuerConfig::remote(ISS, URL).audience("a").token_type(bad)),
                SsoConfigError::InvalidSetting { field: "typ", .. }
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        err(IssuerConfig::remote(ISS, URL)
            .audience("a")
            .authorized_party("web")
            .authorized_party("")),
        SsoConfigError::InvalidSetting { field: "azp", .. }
    ));
}
