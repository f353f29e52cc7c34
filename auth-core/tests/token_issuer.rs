//! The token issuer and its resolver: claims, expiry, refusals (iss, aud, typ, alg
//! confusion, tampering, unknown kid), rotation, instances sharing a key store, HS256.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use std::sync::Arc;
use std::time::Duration;

use auth_core::token::{
    AccessTokenRequest, AccessTokenResolver, Issuer, MemorySigningKeyStore, SigningAlgorithm,
    SigningKeyStore, TokenConfigError,
};
use auth_core::{AuthMethod, Credential, CredentialKind, Resolution, Resolver};
use base64ct::{Base64UrlUnpadded, Encoding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISS: &str = "https://auth.strongroom.test";
const AUD: &str = "trading-api";

fn bearer(token: &str) -> Credential {
    Credential::new(CredentialKind::Bearer, token).unwrap()
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn part(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(seg).unwrap()).unwrap()
}

async fn issuer(store: &MemorySigningKeyStore) -> Issuer {
    Issuer::builder(ISS, AUD)
        .build(Arc::new(store.clone()))
        .await
        .unwrap()
}

fn request() -> AccessTokenRequest {
    AccessTokenRequest::new("user-1", 3, ["pwd", "otp"], now() - 5)
        .with_sid("family-9")
        .with_scope("read trade")
}

async fn resolve(r: &AccessTokenResolver, token: &str) -> Resolution {
    r.resolve(&bearer(token)).await
}

fn code(res: &Resolution) -> &'static str {
    match res {
        Resolution::Invalid(r) | Resolution::Unavailable(r) => r.code(),
        Resolution::Pass => "pass",
        Resolution::Authenticated(_) => "authenticated",
    }
}

/// Valid claims of this issuer for `sub`, to be altered and signed by hand.
fn claims() -> Value {
    json!({"iss": ISS, "sub": "user-1", "aud": AUD, "exp": now() + 600, "iat": now(),
           "jti": "0123456789abcdef0123456789abcdef", "amr": ["pwd"], "auth_time": now(),
           "sr_epoch": 0})
}

/// Signs `claims` with `alg`, `typ` and `kid` using the stored private key `kid_key`.
async fn forge(
    store: &MemorySigningKeyStore,
    key_kid: &str,
    header_kid: &str,
    typ: &str,
    claims: &Value,
) -> String {
    let keys = store.signing_keys().await.unwrap();
    let key = keys.iter().find(|k| k.kid() == key_kid).unwrap();
    let (alg, enc) = match key.alg() {
        SigningAlgorithm::Es256 => (
            Algorithm::ES256,
            EncodingKey::from_ec_der(key.expose_secret()),
        ),
        _ => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(key.expose_secret()),
        ),
    };
    let mut h = Header::new(alg);
    h.typ = Some(typ.to_owned());
    h.kid = Some(header_kid.to_owned());
    jsonwebtoken::encode(&h, claims, &enc).unwrap()
}

#[tokio::test]
async fn claims_and_principal_are_right() {
    let store = MemorySigningKeyStore::new();
    let issuer = issuer(&store).await;
    let req = request();
    let token = issuer.issue(&req).await.unwrap();
    assert_eq!(token.expires_in(), 900);
    let t = token.expose_secret();
    let h = part(t, 0);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "EdDSA");
    assert_eq!(h["kid"], issuer.current_kid().unwrap().as_str());
    let c = part(t, 1);
    assert_eq!(c["iss"], ISS);
    assert_eq!(c["sub"], "user-1");
    assert_eq!(c["aud"], AUD);
    let iat = c["iat"].as_i64().unwrap();
    assert!((now() - iat).abs() <= 2);
    assert_eq!(c["exp"].as_i64().unwrap(), iat + 900);
    assert_eq!(c["jti"].as_str().unwrap().len(), 32);
    assert_eq!(c["jti"], token.jti());
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert_eq!(c["auth_time"], req.auth_time);
    assert_eq!(c["sid"], "family-9");
    assert_eq!(c["scope"], "read trade");
    assert_eq!(c["sr_epoch"], 3);

    let r = AccessTokenResolver::new(issuer.clone());
    let Resolution::Authenticated(p) = resolve(&r, t).await else {
        panic!("not authenticated")
    };
    assert_eq!(p.user_id(), "user-1");
    assert_eq!(p.method(), AuthMethod::AccessToken);
    assert_eq!(p.credential_id(), Some("family-9"));
    assert_eq!(p.session_epoch(), Some(3));
    assert_eq!(p.mfa_at(), Some(req.auth_time));
    assert_eq!(p.scopes(), ["read", "trade"]);

    // Without sid, otp or scope: the jti is the credential id, no mfa_at, no scopes.
    let plain = issuer
        .issue(&AccessTokenRequest::new("user-2", 0, ["pwd"], now()))
        .await
        .unwrap();
    let c = part(plain.expose_secret(), 1);
    assert!(c.get("sid").is_none() && c.get("scope").is_none());
    let Resolution::Authenticated(p) = resolve(&r, plain.expose_secret()).await else {
        panic!("not authenticated")
    };
    assert_eq!(p.credential_id(), Some(plain.jti()));
    assert_eq!(p.mfa_at(), None);
    assert!(p.scopes().is_empty());

    // Issue refuses an empty user id.
    assert!(
        issuer
            .issue(&AccessTokenRequest::new("", 0, ["pwd"], now()))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn auth_time_in_the_future_is_refused() {
    // A second-factor time after the token's own issue time would pass every step-up
    // window until then.
    let store = MemorySigningKeyStore::new();
    let issuer = issuer(&store).await;
    let r = AccessTokenResolver::new(issuer.clone());
    let future = issuer
        .issue(&AccessTokenRequest::new(
            "user-1",
            0,
            ["pwd", "otp"],
            now() + 3600,
        ))
        .await
        .unwrap();
    assert_eq!(
        code(&resolve(&r, future.expose_secret()).await),
        "access_token.claims_malformed"
    );
    let fine = issuer
        .issue(&AccessTokenRequest::new("user-1", 0, ["pwd", "otp"], now()))
        .await
        .unwrap();
    assert!(matches!(
        resolve(&r, fine.expose_secret()).await,
        Resolution::Authenticated(_)
    ));
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let store = MemorySigningKeyStore::new();
    let issuer = Issuer::builder(ISS, AUD)
        .lifetime(Duration::from_secs(1))
        .leeway(Duration::ZERO)
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    let r = AccessTokenResolver::new(issuer.clone());
    let token = issuer.issue(&request()).await.unwrap();
    assert_eq!(
        code(&resolve(&r, token.expose_secret()).await),
        "authenticated"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        code(&resolve(&r, token.expose_secret()).await),
        "access_token.expired"
    );
    assert_eq!(
        issuer
            .verify(token.expose_secret())
            .await
            .unwrap_err()
            .code(),
        "access_token.expired"
    );
}

#[tokio::test]
async fn wrong_iss_aud_typ_and_missing_claims_are_refused() {
    let store = MemorySigningKeyStore::new();
    let issuer = issuer(&store).await;
    let kid = issuer.current_kid().unwrap();
    let r = AccessTokenResolver::new(issuer.clone());

    let good = forge(&store, &kid, &kid, "at+jwt", &claims()).await;
    assert_eq!(code(&resolve(&r, &good).await), "authenticated");
    let application = forge(&store, &kid, &kid, "application/at+jwt", &claims()).await;
    assert_eq!(code(&resolve(&r, &application).await), "authenticated");

    let mut c = claims();
    c["iss"] = json!("https://other.test");
    let t = forge(&store, &kid, &kid, "at+jwt", &c).await;
    assert_eq!(code(&resolve(&r, &t).await), "access_token.wrong_issuer");

    let mut c = claims();
    c["aud"] = json!("another-api");
    let t = forge(&store, &kid, &kid, "at+jwt", &c).await;
    assert_eq!(code(&resolve(&r, &t).await), "access_token.wrong_audience");

    let t = forge(&store, &kid, &kid, "JWT", &claims()).await;
    assert_eq!(code(&resolve(&r, &t).await), "access_token.wrong_typ");

    for missing in ["jti", "amr", "auth_time", "sr_epoch", "sub", "exp"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(missing);
        let t = forge(&store, &kid, &kid, "at+jwt", &c).await;
        let res = resolve(&r, &t).await;
        assert!(matches!(res, Resolution::Invalid(_)), "{missing}: {res:?}");
    }
    let mut c = claims();
    c["sr_epoch"] = json!("0");
    let t = forge(&store, &kid, &kid, "at+jwt", &c).await;
    assert_eq!(
        code(&resolve(&r, &t).await),
        "access_token.claims_malformed"
    );

    // Longer than the configured lifetime.
    let mut c = claims();
    c["exp"] = json!(now() + 3600);
    let t = forge(&store, &kid, &kid, "at+jwt", &c).await;
    assert_eq!(
        code(&resolve(&r, &t).await),
        "access_token.lifetime_too_long"
    );

    // Another issuer over the same keys with another audience refuses this one's tokens.
    let other = Issuer::builder(ISS, "another-api")
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    let t = issuer.issue(&request()).await.unwrap();
    assert_eq!(
        code(&resolve(&AccessTokenResolver::new(other), t.expose_secret()).await),
        "access_token.wrong_audience"
    );
}

#[tokio::test]
async fn alg_confusion_is_refused() {
    let store = MemorySigningKeyStore::new();
    let issuer = issuer(&store).await;
    let kid = issuer.current_kid().unwrap();
    let r = AccessTokenResolver::new(issuer.clone());
    let jwks = issuer.jwks();
    let jwk = &jwks["keys"][0];
    let x = Base64UrlUnpadded::decode_vec(jwk["x"].as_str().unwrap()).unwrap();

    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(kid.clone());
    // HMAC keyed with the public key, in every form a confused verifier might use.
    for secret in [
        x.clone(),
        jwk.to_string().into_bytes(),
        jwks.to_string().into_bytes(),
    ] {
        let t = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(code(&resolve(&r, &t).await), "access_token.alg_mismatch");
    }
    // `none`, hand-built.
    let none = format!(
        "{}.{}.{}",
        Base64UrlUnpadded::encode_string(
            json!({"alg":"none","typ":"at+jwt","kid":kid})
                .to_string()
                .as_bytes()
        ),
        Base64UrlUnpadded::encode_string(claims().to_string().as_bytes()),
        "AAAA"
    );
    assert_eq!(code(&resolve(&r, &none).await), "access_token.alg_mismatch");
    // A token carrying its own key is refused.
    let jwk_header = format!(
        "{}.{}.{}",
        Base64UrlUnpadded::encode_string(
            json!({"alg":"EdDSA","typ":"at+jwt","kid":kid,"jwk":jwk})
                .to_string()
                .as_bytes()
        ),
        Base64UrlUnpadded::encode_string(claims().to_string().as_bytes()),
        "AAAA"
    );
    assert_eq!(
        code(&resolve(&r, &jwk_header).await),
        "access_token.forbidden_header"
    );

    // An ES256 issuer's key cannot verify an EdDSA-labelled token, and vice versa.
    let es_store = MemorySigningKeyStore::new();
    let es = Issuer::builder(ISS, AUD)
        .algorithm(SigningAlgorithm::Es256)
        .build(Arc::new(es_store.clone()))
        .await
        .unwrap();
    let es_token = es.issue(&request()).await.unwrap();
    assert_eq!(part(es_token.expose_secret(), 0)["alg"], "ES256");
    let es_r = AccessTokenResolver::new(es.clone());
    assert_eq!(
        code(&resolve(&es_r, es_token.expose_secret()).await),
        "authenticated"
    );
    assert_eq!(es.jwks()["keys"][0]["kty"], "EC");
    let mut relabelled: Vec<String> = es_token
        .expose_secret()
        .split('.')
        .map(str::to_owned)
        .collect();
    let mut h0 = part(es_token.expose_secret(), 0);
    h0["alg"] = json!("EdDSA");
    relabelled[0] = Base64UrlUnpadded::encode_string(h0.to_string().as_bytes());
    assert_eq!(
        code(&resolve(&es_r, &relabelled.join(".")).await),
        "access_token.alg_mismatch"
    );
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let store = MemorySigningKeyStore::new();
    let issuer = issuer(&store).await;
    let r = AccessTokenResolver::new(issuer.clone());
    let token = issuer.issue(&request()).await.unwrap();
    let t = token.expose_secret();
    let segs: Vec<&str> = t.split('.').collect();

    // The genuine token first: its verification is remembered, and must not vouch for
    // any other bytes.
    assert_eq!(code(&resolve(&r, t).await), "authenticated");
    assert_eq!(code(&resolve(&r, t).await), "authenticated");

    // A flipped signature byte.
    let mut sig = Base64UrlUnpadded::decode_vec(segs[2]).unwrap();
    sig[10] ^= 1;
    let bad_sig = format!(
        "{}.{}.{}",
        segs[0],
        segs[1],
        Base64UrlUnpadded::encode_string(&sig)
    );
    assert_eq!(
        code(&resolve(&r, &bad_sig).await),
        "access_token.bad_signature"
    );

    // Another subject under the original signature.
    let mut c = part(t, 1);
    c["sub"] = json!("admin");
    let bad_payload = format!(
        "{}.{}.{}",
        segs[0],
        Base64UrlUnpadded::encode_string(c.to_string().as_bytes()),
        segs[2]
    );
    assert_eq!(
        code(&resolve(&r, &bad_payload).await),
        "access_token.bad_signature"
    );
}

#[tokio::test]
async fn foreign_bearers_pass_and_unknown_kids_of_ours_are_refused() {
    let store = MemorySigningKeyStore::new();
    let issuer = Issuer::builder(ISS, AUD)
        .reload_cooldown(Duration::ZERO)
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    let kid = issuer.current_kid().unwrap();
    let r = AccessTokenResolver::new(issuer.clone());

    // Not JWTs, or JWTs of another issuer: not ours.
    for t in ["ses_abc", "sk_live_x", "a.b", "a.b.c.d"] {
        assert_eq!(code(&resolve(&r, t).await), "pass", "{t}");
    }
    let mut c = claims();
    c["iss"] = json!("https://idp.example.com");
    let foreign = forge(&store, &kid, "someone-elses-kid", "at+jwt", &c).await;
    assert_eq!(code(&resolve(&r, &foreign).await), "pass");
    assert_eq!(
        issuer.verify(&foreign).await.unwrap_err().code(),
        "access_token.not_ours"
    );

    // Our iss with a kid no instance ever created: refused after a reload.
    let unknown = forge(&store, &kid, "no-such-kid", "at+jwt", &claims()).await;
    assert_eq!(
        code(&resolve(&r, &unknown).await),
        "access_token.unknown_kid"
    );

    // The key store down while looking up an unknown kid of ours: 503, never an allow.
    store.set_failing(true);
    let res = resolve(&r, &unknown).await;
    assert!(matches!(res, Resolution::Unavailable(_)), "{res:?}");
    assert_eq!(code(&res), "access_token.keys_unavailable");
    // Known keys keep working through the outage.
    let t = issuer.issue(&request()).await.unwrap();
    assert_eq!(code(&resolve(&r, t.expose_secret()).await), "authenticated");
    store.set_failing(false);
}

#[tokio::test]
async fn rotation_keeps_the_old_key_until_it_retires() {
    let store = MemorySigningKeyStore::new();
    let issuer = Issuer::builder(ISS, AUD)
        .lifetime(Duration::from_secs(2))
        .leeway(Duration::ZERO)
        .reload_interval(Duration::from_secs(1))
        .reload_cooldown(Duration::ZERO)
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    assert_eq!(issuer.retire_grace(), Duration::from_secs(3));
    let r = AccessTokenResolver::new(issuer.clone());
    let old_kid = issuer.current_kid().unwrap();
    let old_token = issuer.issue(&request()).await.unwrap();

    let new_kid = issuer.rotate().await.unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(issuer.current_kid().as_deref(), Some(new_kid.as_str()));
    let new_token = issuer.issue(&request()).await.unwrap();
    assert_eq!(new_token.kid(), new_kid);

    // Both keys published and accepted.
    let kids: Vec<String> = issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    assert_eq!(
        code(&resolve(&r, old_token.expose_secret()).await),
        "authenticated"
    );
    assert_eq!(
        code(&resolve(&r, new_token.expose_secret()).await),
        "authenticated"
    );
    let mut c = claims();
    c["exp"] = json!(now() + 2);
    let late_old = forge(&store, &old_kid, &old_kid, "at+jwt", &c).await;
    assert_eq!(code(&resolve(&r, &late_old).await), "authenticated");

    // Past the retirement time: the old key is neither published nor accepted, not even
    // for a token whose signature it verified before.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let res = resolve(&r, &late_old).await;
    assert!(
        matches!(
            code(&res),
            "access_token.key_retired" | "access_token.unknown_kid" | "access_token.expired"
        ),
        "{res:?}"
    );
    let mut c = claims();
    c["exp"] = json!(now() + 2);
    let after = forge(&store, &old_kid, &old_kid, "at+jwt", &c).await;
    let res = resolve(&r, &after).await;
    assert!(
        matches!(
            code(&res),
            "access_token.key_retired" | "access_token.unknown_kid"
        ),
        "{res:?}"
    );
    assert!(!issuer.jwks().to_string().contains(&old_kid));
    assert!(issuer.jwks().to_string().contains(&new_kid));
    let fresh = issuer.issue(&request()).await.unwrap();
    assert_eq!(
        code(&resolve(&r, fresh.expose_secret()).await),
        "authenticated"
    );

    // The next rotation deletes the retired key from the store.
    issuer.rotate().await.unwrap();
    let stored: Vec<String> = store
        .signing_keys()
        .await
        .unwrap()
        .iter()
        .map(|k| k.kid().to_owned())
        .collect();
    assert!(!stored.contains(&old_kid), "{stored:?}");
}

#[tokio::test]
async fn a_second_instance_verifies_the_first_ones_new_key() {
    let store = MemorySigningKeyStore::new();
    let a = issuer(&store).await;
    let b = Issuer::builder(ISS, AUD)
        .reload_cooldown(Duration::ZERO)
        .build(Arc::new(store.clone()))
        .await
        .unwrap();
    assert_eq!(a.current_kid(), b.current_kid(), "one key shared at start");
    let rb = AccessTokenResolver::new(b.clone());
    let new_kid = a.rotate().await.unwrap();
    assert_ne!(b.current_kid().as_deref(), Some(new_kid.as_str()));
    let t = a.issue(&request()).await.unwrap();
    assert_eq!(t.kid(), new_kid);
    assert_eq!(
        code(&resolve(&rb, t.expose_secret()).await),
        "authenticated"
    );
    // B picked up the new key, and signs with it from now on.
    assert_eq!(b.current_kid().as_deref(), Some(new_kid.as_str()));
}

#[tokio::test]
async fn tampered_store_keys_are_ignored() {
    let store = MemorySigningKeyStore::new();
    let a = issuer(&store).await;
    let good = store.signing_keys().await.unwrap().remove(0);
    // A row whose kid does not match its key (swapped or forged) never verifies.
    let other = auth_core::token::SigningKey::generate(SigningAlgorithm::EdDsa, now()).unwrap();
    let swapped = auth_core::token::SigningKey::from_parts(
        "forged-kid",
        SigningAlgorithm::EdDsa,
        other.expose_secret().to_vec(),
        now() + 10,
        None,
    );
    store.insert_signing_key(&swapped).await.unwrap();
    a.reload().await.unwrap();
    assert_eq!(a.current_kid().as_deref(), Some(good.kid()));
    assert!(!a.jwks().to_string().contains("forged-kid"));
}

#[tokio::test]
async fn hs256_mode() {
    let short = Issuer::builder(ISS, AUD).build_hs256(b"only-31-bytes-of-secret-1234567");
    let err = short.unwrap_err();
    assert_eq!(
        err,
        TokenConfigError::SecretTooShort {
            field: "hs256_secret",
            min_bytes: 32
        }
    );
    assert!(err.to_string().contains("hs256_secret"));
    assert!(!err.to_string().contains("only-31"));

    let secret = b"a-32-byte-secret-from-a-csprng!!";
    let hs = Issuer::builder(ISS, AUD).build_hs256(secret).unwrap();
    assert!(hs.is_hs256());
    assert_eq!(hs.jwks(), json!({"keys": []}));
    assert_eq!(
        hs.discovery()["id_token_signing_alg_values_supported"],
        json!(["HS256"])
    );
    assert!(hs.rotate().await.is_err());
    let token = hs.issue(&request()).await.unwrap();
    assert_eq!(part(token.expose_secret(), 0)["alg"], "HS256");
    let r = AccessTokenResolver::new(hs.clone());
    assert_eq!(
        code(&resolve(&r, token.expose_secret()).await),
        "authenticated"
    );

    // A token made with another secret, or relabelled, is refused.
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some("hs256".into());
    let forged = jsonwebtoken::encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(b"another-32-byte-secret-0123456789"),
    )
    .unwrap();
    assert_eq!(
        code(&resolve(&r, &forged).await),
        "access_token.bad_signature"
    );
    h.alg = Algorithm::HS512;
    let hs512 = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(secret)).unwrap();
    assert_eq!(
        code(&resolve(&r, &hs512).await),
        "access_token.alg_mismatch"
    );

    // An asymmetric issuer refuses an HS256 token under the same iss.
    let store = MemorySigningKeyStore::new();
    let asym = issuer(&store).await;
    assert_eq!(
        code(&resolve(&AccessTokenResolver::new(asym), token.expose_secret()).await),
        "access_token.unknown_kid",
        "kid hs256 is none of the asymmetric issuer's keys, and the iss is ours"
    );
}

#[tokio::test]
async fn config_errors_name_the_field() {
    let store: Arc<dyn SigningKeyStore> = Arc::new(MemorySigningKeyStore::new());
    let e = Issuer::builder("", AUD)
        .build(store.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("iss"), "{e}");
    let e = Issuer::builder(ISS, "")
        .build(store.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("aud"), "{e}");
    let e = Issuer::builder(ISS, AUD)
        .lifetime(Duration::from_secs(2 * 24 * 3600))
        .build(store.clone())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lifetime"), "{e}");
    let e = Issuer::builder("not a url", AUD)
        .build(store)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("iss"), "{e}");
}

#[tokio::test]
async fn discovery_document_shape() {
    let store = MemorySigningKeyStore::new();
    let issuer = Issuer::builder(ISS, AUD)
        .token_endpoint(format!("{ISS}/api/auth/token"))
        .build(Arc::new(store))
        .await
        .unwrap();
    let d = issuer.discovery();
    assert_eq!(d["issuer"], ISS);
    assert_eq!(d["jwks_uri"], format!("{ISS}/.well-known/jwks.json"));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
    assert_eq!(d["response_types_supported"], json!(["token"]));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["token_endpoint"], format!("{ISS}/api/auth/token"));
    let jwks: Value = serde_json::from_slice(&issuer.jwks_json()).unwrap();
    let k = &jwks["keys"][0];
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["alg"], "EdDSA");
    assert!(k.get("d").is_none(), "private part published");
    assert_eq!(k["kid"], issuer.current_kid().unwrap().as_str());
}

/// A token whose signature was verified (and remembered) is refused once its key leaves
/// the ring: deleted from the store (a compromised key) or retired early. The remembered
/// verification never stands in for the key lookup or the claim checks.
#[tokio::test]
async fn a_remembered_verification_ends_with_its_key() {
    let store = MemorySigningKeyStore::new();
    let issuer = issuer(&store).await;
    let r = AccessTokenResolver::new(issuer.clone());
    let old_kid = issuer.current_kid().unwrap();
    let deleted = issuer.issue(&request()).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            code(&resolve(&r, deleted.expose_secret()).await),
            "authenticated"
        );
    }
    issuer.rotate().await.unwrap();
    assert!(store.delete_signing_key(&old_kid).await.unwrap());
    issuer.reload().await.unwrap();
    assert_eq!(
        code(&resolve(&r, deleted.expose_secret()).await),
        "access_token.unknown_kid"
    );

    let kid = issuer.current_kid().unwrap();
    let retired = issuer.issue(&request()).await.unwrap();
    assert_eq!(
        code(&resolve(&r, retired.expose_secret()).await),
        "authenticated"
    );
    assert!(store.retire_signing_key(&kid, now() - 1).await.unwrap());
    issuer.reload().await.unwrap();
    let res = resolve(&r, retired.expose_secret()).await;
    assert!(
        matches!(
            code(&res),
            "access_token.key_retired" | "access_token.unknown_kid"
        ),
        "{res:?}"
    );
}
