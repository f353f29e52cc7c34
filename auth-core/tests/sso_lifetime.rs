//! Token lifetime, `typ` and `azp` (hardening item C14).
//!
//! * An `exp` in milliseconds (a year around 58 000) was accepted. Now every issuer has a
//!   maximum token lifetime (default 24 h): `exp - iat` and `exp - now` above it are
//!   refused with `jwt.lifetime_too_long`.
//! * Optional per issuer: the header `typ` (RFC 9068 section 4, `at+jwt`) and the `azp`
//!   claim (OpenID Connect Core 1.0 section 2).

// Test helpers outside #[test] fns panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::sso_common;

use std::sync::LazyLock;
use std::time::Duration;

use auth_core::sso::{IssuerConfig, IssuerConfigBuilder, Reason, SsoVerifier};
use serde_json::{Value, json};
use sso_common::*;

static KEY: LazyLock<RsaSigner> = LazyLock::new(|| RsaSigner::generate("k1"));

fn issuer() -> IssuerConfigBuilder {
    IssuerConfig::pinned(ISS_A, jwks(&[KEY.jwk()])).audience(AUD)
}

fn verifier(issuer: IssuerConfigBuilder) -> SsoVerifier {
    SsoVerifier::builder()
        .issuer(issuer.build().unwrap())
        .build()
        .unwrap()
}

fn with(claims: Value, key: &str, value: Value) -> Value {
    let mut c = claims;
    c[key] = value;
    c
}

fn without(claims: Value, key: &str) -> Value {
    let mut c = claims;
    c.as_object_mut().unwrap().remove(key);
    c
}

async fn reason(v: &SsoVerifier, token: &str) -> Reason {
    let err = v.verify(token).await.unwrap_err();
    assert!(!err.is_unavailable());
    err.reason()
}

const DAY: i64 = 24 * 3600;

#[tokio::test]
async fn exp_in_milliseconds_is_refused() {
    let v = verifier(issuer());
    let ms = (now() + 3600) * 1000;
    let token = KEY.token(&with(claims(ISS_A), "exp", json!(ms)));
    assert_eq!(reason(&v, &token).await, Reason::LifetimeTooLong);
    // Also without iat.
    let token = KEY.token(&without(with(claims(ISS_A), "exp", json!(ms)), "iat"));
    assert_eq!(reason(&v, &token).await, Reason::LifetimeTooLong);
    // iat in milliseconds too (both far in the future): iat is then in the future.
    let token = KEY.token(&with(
        with(claims(ISS_A), "exp", json!(ms)),
        "iat",
        json!(now() * 1000),
    ));
    assert_eq!(reason(&v, &token).await, Reason::IssuedInFuture);
}

#[tokio::test]
async fn default_maximum_lifetime_is_24_hours() {
    let v = verifier(issuer());
    let t = now();
    // Exactly 24 h from iat: accepted.
    let ok = with(with(claims(ISS_A), "iat", json!(t)), "exp", json!(t + DAY));
    v.verify(&KEY.token(&ok)).await.unwrap();
    // One second more: refused.
    let long = with(ok.clone(), "exp", json!(t + DAY + 1));
    assert_eq!(reason(&v, &KEY.token(&long)).await, Reason::LifetimeTooLong);
    // An old iat with a near exp: exp - iat is what counts.
    let old = with(
        with(claims(ISS_A), "iat", json!(t - 2 * DAY)),
        "exp",
        json!(t + 600),
    );
    assert_eq!(reason(&v, &KEY.token(&old)).await, Reason::LifetimeTooLong);
    // No iat: measured from now (plus the 60 s leeway).
    let no_iat = without(claims(ISS_A), "iat");
    v.verify(&KEY.token(&with(no_iat.clone(), "exp", json!(t + DAY))))
        .await
        .unwrap();
    assert_eq!(
        reason(&v, &KEY.token(&with(no_iat, "exp", json!(t + DAY + 3600)))).await,
        Reason::LifetimeTooLong
    );
}

#[tokio::test]
async fn maximum_lifetime_is_configurable_per_issuer() {
    let v = verifier(issuer().max_token_lifetime(Duration::from_secs(3600)));
    let t = now();
    let c = with(claims(ISS_A), "iat", json!(t));
    v.verify(&KEY.token(&with(c.clone(), "exp", json!(t + 3600))))
        .await
        .unwrap();
    assert_eq!(
        reason(&v, &KEY.token(&with(c, "exp", json!(t + 7200)))).await,
        Reason::LifetimeTooLong
    );
    let v = verifier(issuer().max_token_lifetime(Duration::from_secs(7 * 86_400)));
    v.verify(&KEY.token(&with(claims(ISS_A), "exp", json!(t + 5 * DAY))))
        .await
        .unwrap();
}

fn token_with_typ(typ: Option<&str>) -> String {
    let mut header = json!({"alg": "RS256", "kid": KEY.kid});
    if let Some(typ) = typ {
        header["typ"] = json!(typ);
    }
    mint(&header.to_string(), &claims(ISS_A).to_string(), |m| {
        KEY.sign(m)
    })
}

#[tokio::test]
async fn typ_is_checked_when_configured() {
    // Not configured: any typ, or none.
    let v = verifier(issuer());
    for typ in [None, Some("JWT"), Some("at+jwt"), Some("whatever")] {
        v.verify(&token_with_typ(typ)).await.unwrap();
    }
    // RFC 9068: at+jwt or application/at+jwt, compared case-insensitively.
    for configured in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let v = verifier(issuer().token_type(configured));
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            v.verify(&token_with_typ(Some(typ)))
                .await
                .unwrap_or_else(|e| panic!("{configured} {typ}: {e:?}"));
        }
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt "),
            Some("application/jwt"),
            Some("text/at+jwt"),
            Some("applicationat+jwt"),
            Some("application/application/at+jwt"),
            Some(""),
        ] {
            assert_eq!(
                reason(&v, &token_with_typ(typ)).await,
                Reason::WrongType,
                "{configured} {typ:?}"
            );
        }
    }
    // A typ of the wrong JSON type is a malformed header.
    let bad = mint(
        &json!({"alg": "RS256", "kid": KEY.kid, "typ": 1}).to_string(),
        &claims(ISS_A).to_string(),
        |m| KEY.sign(m),
    );
    assert_eq!(reason(&verifier(issuer()), &bad).await, Reason::Malformed);
}

#[tokio::test]
async fn azp_is_checked_when_configured() {
    // Not configured: azp ignored, whatever it holds.
    let v = verifier(issuer());
    for azp in [json!("web"), json!("other"), json!(7)] {
        v.verify(&KEY.token(&with(claims(ISS_A), "azp", azp)))
            .await
            .unwrap();
    }
    v.verify(&KEY.token(&claims(ISS_A))).await.unwrap();
    // Configured: required, one of the list, exact.
    let v = verifier(issuer().authorized_party("web").authorized_party("cli"));
    for azp in ["web", "cli"] {
        v.verify(&KEY.token(&with(claims(ISS_A), "azp", json!(azp))))
            .await
            .unwrap();
    }
    for azp in ["other", "WEB", "web ", ""] {
        assert_eq!(
            reason(&v, &KEY.token(&with(claims(ISS_A), "azp", json!(azp)))).await,
            Reason::WrongAuthorizedParty,
            "{azp}"
        );
    }
    assert_eq!(
        reason(&v, &KEY.token(&claims(ISS_A))).await,
        Reason::MissingClaim
    );
    for azp in [json!(["web"]), json!(null), json!(1)] {
        assert_eq!(
            reason(&v, &KEY.token(&with(claims(ISS_A), "azp", azp))).await,
            Reason::ClaimType
        );
    }
}
