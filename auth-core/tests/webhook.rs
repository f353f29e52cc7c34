//! Signed webhooks (`auth_core::webhook`): the pass/fail vectors of WEBHOOKS.md, an
//! independent sender, the time window, rotation, replay across instances, malformed
//! headers and property tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use auth_core::webhook::{
    ActiveSecrets, Claim, DEFAULT_ROTATION_GRACE, Delivery, MAX_HEADER_LEN, MAX_SIGNATURES,
    MatchedSecret, MemoryReplayGuard, ReplayGuard, SIGNATURE_HEADER, SignatureHeader, Signer,
    Verifier, WebhookConfigError, WebhookError, WebhookSecret, signature_header_value,
};
use aws_lc_rs::hmac;
use proptest::prelude::*;

const T: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"event":"signal","id":"sig_1"}"#;

fn secret(fill: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(&[fill; 32]).unwrap()
}

fn verifier() -> Verifier {
    Verifier::builder(Arc::new(MemoryReplayGuard::default()))
        .build()
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A sender written from WEBHOOKS.md alone: HMAC-SHA256 with aws-lc-rs over one
/// concatenated buffer, hex by hand. Does not use `Signer`.
fn independent_header(key: &[u8], t: i64, body: &[u8]) -> String {
    let mut payload = format!("{t}.").into_bytes();
    payload.extend_from_slice(body);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &payload);
    format!("t={t},v1={}", hex(tag.as_ref()))
}

/// `current[,previous@expires_at]` as in the vector files.
fn secrets_column(column: &str) -> ActiveSecrets {
    let mut parts = column.split(',');
    let current = WebhookSecret::parse(parts.next().unwrap()).unwrap();
    let mut set = ActiveSecrets::new(current);
    if let Some(previous) = parts.next() {
        let (text, at) = previous.split_once('@').unwrap();
        set = set.with_previous(WebhookSecret::parse(text).unwrap(), at.parse().unwrap());
    }
    set
}

fn vector_lines(name: &str) -> Vec<Vec<String>> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn pass_vectors_verify_and_sign() {
    let all = vector_lines("webhook_pass.txt");
    assert!(all.len() >= 13, "vectors missing");
    let mut signed = 0;
    for v in &all {
        let [kind, secrets, now, body, header, id] = &v[..] else {
            panic!("bad vector line {v:?}");
        };
        let secrets = secrets_column(secrets);
        let now: i64 = now.parse().unwrap();
        let body = unhex(body);
        let verifier = verifier();
        let verified = verifier
            .verify_signature(Some(header), &body, &secrets, now)
            .unwrap_or_else(|e| panic!("{header}: {e}"));
        let delivery = verifier
            .verify("sender", Some(header), &body, &secrets, now, "ref")
            .await
            .unwrap();
        assert_eq!(
            delivery,
            Delivery::Accepted {
                delivery_id: id.clone(),
                timestamp: verified.timestamp()
            }
        );
        if kind == "sign" {
            let t = u64::try_from(verified.timestamp()).unwrap();
            assert_eq!(&Signer::rotating(secrets).sign(t, &body), header);
            signed += 1;
        } else {
            assert_eq!(kind, "verify");
        }
    }
    assert!(signed >= 5);
}

/// The vectors printed in WEBHOOKS.md section 9: the signer produces each header, an
/// independent sender produces the same `v1` under each secret, the receiver accepts it
/// and the delivery id matches.
#[tokio::test]
async fn spec_vectors_in_webhooks_md() {
    let spec =
        std::fs::read_to_string(format!("{}/WEBHOOKS.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let vectors = spec.split("## 9. Test vectors").nth(1).unwrap();
    let mut checked = 0;
    for block in vectors.split("```text").skip(1) {
        let block = block.split("```").next().unwrap();
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let secrets: Vec<String> = field("secrets:")
            .unwrap()
            .split(' ')
            .map(str::to_owned)
            .collect();
        let t: i64 = field("t:").unwrap().parse().unwrap();
        let body = match field("body-hex:") {
            Some(h) => unhex(&h),
            None => field("body:").unwrap().into_bytes(),
        };
        let header = field("header:").unwrap();
        let id = field("id:").unwrap();

        let mut set = ActiveSecrets::new(WebhookSecret::parse(&secrets[0]).unwrap());
        if let Some(previous) = secrets.get(1) {
            set = set.with_previous(WebhookSecret::parse(previous).unwrap(), i64::MAX);
        }
        let signer_header = Signer::rotating(set).sign(u64::try_from(t).unwrap(), &body);
        assert_eq!(signer_header, header);
        let independent: Vec<String> = secrets
            .iter()
            .map(|s| {
                let key = WebhookSecret::parse(s).unwrap();
                independent_header(key.expose_secret(), t, &body)
                    .split_once(',')
                    .unwrap()
                    .1
                    .to_owned()
            })
            .collect();
        assert_eq!(format!("t={t},{}", independent.join(",")), header);
        let receiver = ActiveSecrets::new(WebhookSecret::parse(&secrets[0]).unwrap());
        let d = verifier()
            .verify("spec", Some(&header), &body, &receiver, t, "r")
            .await
            .unwrap();
        assert_eq!(
            d,
            Delivery::Accepted {
                delivery_id: id,
                timestamp: t
            }
        );
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[tokio::test]
async fn fail_vectors_are_refused_with_their_code_and_field() {
    let all = vector_lines("webhook_fail.txt");
    assert!(all.len() >= 35, "vectors missing");
    let guard = Arc::new(MemoryReplayGuard::default());
    let verifier = Verifier::builder(guard.clone()).build().unwrap();
    for v in &all {
        let [secrets, now, body, header, expected] = &v[..] else {
            panic!("bad vector line {v:?}");
        };
        let secrets = secrets_column(secrets);
        let header = (header != "(none)").then_some(header.as_str());
        let body = unhex(body);
        let now = now.parse().unwrap();
        let err = verifier
            .verify_signature(header, &body, &secrets, now)
            .unwrap_err();
        let got = match &err {
            WebhookError::Malformed { field } => format!("{}:{field}", err.code()),
            other => other.code().to_owned(),
        };
        assert_eq!(&got, expected, "{header:?}");
        assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
        // The async path refuses the same way and claims nothing.
        let err = verifier
            .verify("sender", header, &body, &secrets, now, "ref")
            .await
            .unwrap_err();
        assert_eq!(err.code(), expected.split(':').next().unwrap());
    }
    assert!(guard.is_empty(), "a refused delivery was claimed");
}

#[test]
fn an_independent_sender_is_accepted_and_matches_the_signer() {
    let key = [0x5au8; 32];
    let secrets = ActiveSecrets::new(WebhookSecret::from_bytes(&key).unwrap());
    for body in [
        &b""[..],
        BODY,
        &[0u8, 0xff, b'\n', b'.'][..],
        &[7u8; 5000][..],
    ] {
        let header = independent_header(&key, T, body);
        let verified = verifier()
            .verify_signature(Some(&header), body, &secrets, T)
            .unwrap();
        assert_eq!(verified.timestamp(), T);
        assert_eq!(verified.matched(), MatchedSecret::Current);
        let signer = Signer::new(WebhookSecret::from_bytes(&key).unwrap());
        assert_eq!(signer.sign(1_700_000_000, body), header);
    }
}

#[test]
fn secret_text_form() {
    let s = WebhookSecret::generate().unwrap();
    let text = s.to_text();
    assert!(text.starts_with("whsec_"));
    assert_eq!(text.len(), 49);
    let back = WebhookSecret::parse(&text).unwrap();
    assert_eq!(back.expose_secret(), s.expose_secret());
    assert_eq!(back.id(), s.id());
    assert_ne!(
        WebhookSecret::generate().unwrap().expose_secret(),
        s.expose_secret()
    );

    let known = WebhookSecret::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap();
    assert_eq!(
        known.to_text().as_str(),
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    );
    let cases = [
        (
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            WebhookConfigError::SecretPrefix,
        ),
        (
            "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            WebhookConfigError::SecretPrefix,
        ),
        (
            "WHSEC_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            WebhookConfigError::SecretPrefix,
        ),
        (
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",
            WebhookConfigError::SecretLength,
        ),
        (
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            WebhookConfigError::SecretLength,
        ),
        ("whsec_", WebhookConfigError::SecretLength),
        // Non-zero trailing bits: not the canonical text of any key.
        (
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9",
            WebhookConfigError::SecretEncoding,
        ),
        // Standard base64 alphabet, not base64url.
        (
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd+h8",
            WebhookConfigError::SecretEncoding,
        ),
        (
            " whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            WebhookConfigError::SecretPrefix,
        ),
    ];
    for (text, expected) in cases {
        let err = WebhookSecret::parse(text).unwrap_err();
        assert_eq!(err, expected, "{text}");
        assert_eq!(err.field(), "secret");
        assert!(!err.to_string().contains("AAEC"));
    }
    assert_eq!(
        WebhookSecret::from_bytes(&[1; 31]).unwrap_err(),
        WebhookConfigError::SecretLength
    );
    assert_eq!(
        WebhookSecret::from_bytes(&[1; 33]).unwrap_err(),
        WebhookConfigError::SecretLength
    );
}

#[test]
fn tolerance_is_inclusive_and_configurable() {
    let secrets = ActiveSecrets::new(secret(1));
    let header = Signer::new(secret(1)).sign(1_700_000_000, BODY);
    let v = Verifier::builder(Arc::new(MemoryReplayGuard::default()))
        .tolerance(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(v.tolerance(), Duration::from_secs(60));
    for now in [T - 60, T, T + 60] {
        assert!(
            v.verify_signature(Some(&header), BODY, &secrets, now)
                .is_ok()
        );
    }
    for now in [T - 61, T + 61, i64::MIN, i64::MAX, 0] {
        assert!(matches!(
            v.verify_signature(Some(&header), BODY, &secrets, now),
            Err(WebhookError::Stale)
        ));
    }
    // Default: 300 s either side.
    let v = verifier();
    assert_eq!(v.tolerance(), Duration::from_secs(300));
    assert!(
        v.verify_signature(Some(&header), BODY, &secrets, T + 300)
            .is_ok()
    );
    assert!(
        v.verify_signature(Some(&header), BODY, &secrets, T - 300)
            .is_ok()
    );
    assert!(
        v.verify_signature(Some(&header), BODY, &secrets, T + 301)
            .is_err()
    );
    assert!(
        v.verify_signature(Some(&header), BODY, &secrets, T - 301)
            .is_err()
    );

    for bad in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_secs(3601),
    ] {
        let err = Verifier::builder(Arc::new(MemoryReplayGuard::default()))
            .tolerance(bad)
            .build()
            .unwrap_err();
        assert_eq!(err, WebhookConfigError::Tolerance);
        assert_eq!(err.field(), "tolerance");
    }
}

#[test]
fn wrong_secret_and_tampering_are_refused() {
    let secrets = ActiveSecrets::new(secret(1));
    let v = verifier();
    let header = Signer::new(secret(2)).sign(1_700_000_000, BODY);
    assert!(matches!(
        v.verify_signature(Some(&header), BODY, &secrets, T),
        Err(WebhookError::BadSignature)
    ));
    let header = Signer::new(secret(1)).sign(1_700_000_000, BODY);
    for i in 0..BODY.len() {
        let mut body = BODY.to_vec();
        body[i] ^= 1;
        assert!(matches!(
            v.verify_signature(Some(&header), &body, &secrets, T),
            Err(WebhookError::BadSignature)
        ));
    }
    // Every hex digit of the signature matters.
    let (prefix, sig) = header.split_once(",v1=").unwrap();
    for i in 0..64 {
        let mut sig = sig.as_bytes().to_vec();
        sig[i] = if sig[i] == b'0' { b'1' } else { b'0' };
        let tampered = format!("{prefix},v1={}", String::from_utf8(sig).unwrap());
        assert!(matches!(
            v.verify_signature(Some(&tampered), BODY, &secrets, T),
            Err(WebhookError::BadSignature)
        ));
    }
    assert!(matches!(
        v.verify_signature(None, BODY, &secrets, T),
        Err(WebhookError::Missing)
    ));
}

#[test]
fn rotation_overlap_then_expiry() {
    let now = T;
    let before = ActiveSecrets::new(secret(1));
    let after = before.rotate(secret(2), now, DEFAULT_ROTATION_GRACE);
    let expiry = now + 24 * 3600;
    assert_eq!(after.previous().unwrap().1, expiry);
    assert_eq!(after.active(now).count(), 2);
    assert_eq!(after.active(expiry - 1).count(), 2);
    assert_eq!(after.active(expiry).count(), 1);

    let v = verifier();
    let old = Signer::new(secret(1));
    let new = Signer::new(secret(2));
    for at in [now, expiry - 1] {
        let t = u64::try_from(at).unwrap();
        let h = old.sign(t, BODY);
        let ok = v.verify_signature(Some(&h), BODY, &after, at).unwrap();
        assert_eq!(ok.matched(), MatchedSecret::Previous);
        let h = new.sign(t, BODY);
        let ok = v.verify_signature(Some(&h), BODY, &after, at).unwrap();
        assert_eq!(ok.matched(), MatchedSecret::Current);
    }
    for at in [expiry, expiry + 1] {
        let t = u64::try_from(at).unwrap();
        assert!(matches!(
            v.verify_signature(Some(&old.sign(t, BODY)), BODY, &after, at),
            Err(WebhookError::BadSignature)
        ));
        assert!(
            v.verify_signature(Some(&new.sign(t, BODY)), BODY, &after, at)
                .is_ok()
        );
    }

    // A rotating sender puts both signatures in the header during the grace period,
    // only the current one after it.
    let sender = Signer::rotating(ActiveSecrets::new(secret(1)).rotate(
        secret(2),
        now,
        Duration::from_secs(600),
    ));
    let during = sender.sign(u64::try_from(now).unwrap(), BODY);
    assert_eq!(
        SignatureHeader::parse(&during).unwrap().signatures().len(),
        2
    );
    let receiver_old = ActiveSecrets::new(secret(1));
    let receiver_new = ActiveSecrets::new(secret(2));
    assert!(
        v.verify_signature(Some(&during), BODY, &receiver_old, now)
            .is_ok()
    );
    assert!(
        v.verify_signature(Some(&during), BODY, &receiver_new, now)
            .is_ok()
    );
    let later = sender.sign(u64::try_from(now + 600).unwrap(), BODY);
    assert_eq!(
        SignatureHeader::parse(&later).unwrap().signatures().len(),
        1
    );
    assert!(
        v.verify_signature(Some(&later), BODY, &receiver_old, now + 600)
            .is_err()
    );

    // A second rotation drops the oldest secret at once.
    let twice = after.rotate(secret(3), now + 10, DEFAULT_ROTATION_GRACE);
    assert_eq!(twice.previous().unwrap().0.id(), secret(2).id());
    assert!(
        v.verify_signature(Some(&old.sign(1_700_000_010, BODY)), BODY, &twice, now + 10)
            .is_err()
    );
}

#[test]
fn header_parser_limits() {
    let sig = "ab".repeat(32);
    let ok = SignatureHeader::parse(&format!("t=5,v1={sig}")).unwrap();
    assert_eq!(ok.timestamp(), 5);
    assert_eq!(ok.signatures(), &[[0xab; 32]]);
    let many = format!("t=5{}", format!(",v1={sig}").repeat(MAX_SIGNATURES));
    assert_eq!(
        SignatureHeader::parse(&many).unwrap().signatures().len(),
        MAX_SIGNATURES
    );
    let too_many = format!("{many},v1={sig}");
    assert!(matches!(
        SignatureHeader::parse(&too_many),
        Err(WebhookError::Malformed { field: "v1" })
    ));
    // Exactly the length limit is fine; one more byte is not.
    let pad = |n: usize| {
        let head = format!("t=5,v1={sig},x=");
        format!("{head}{}", "a".repeat(n - head.len()))
    };
    assert!(SignatureHeader::parse(&pad(MAX_HEADER_LEN)).is_ok());
    assert!(matches!(
        SignatureHeader::parse(&pad(MAX_HEADER_LEN + 1)),
        Err(WebhookError::Malformed { field: "header" })
    ));
    // Non-ASCII anywhere is refused, never a panic on a char boundary.
    for bad in [
        "t=５,v1=x",
        "t=5,v1=é",
        "t=5,ü=1",
        "\u{0}",
        "t=5,v1=\u{1F600}",
    ] {
        assert!(SignatureHeader::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(SIGNATURE_HEADER.as_str(), "x-strongroom-signature");
}

#[test]
fn header_value_from_a_request() {
    use http::{HeaderMap, HeaderValue};
    let mut headers = HeaderMap::new();
    assert_eq!(signature_header_value(&headers).unwrap(), None);
    headers.insert(
        "X-Strongroom-Signature",
        HeaderValue::from_static("t=1,v1=ab"),
    );
    assert_eq!(signature_header_value(&headers).unwrap(), Some("t=1,v1=ab"));
    headers.append(&SIGNATURE_HEADER, HeaderValue::from_static("t=2,v1=cd"));
    assert!(matches!(
        signature_header_value(&headers),
        Err(WebhookError::Malformed { field: "header" })
    ));
    let mut headers = HeaderMap::new();
    headers.insert(
        &SIGNATURE_HEADER,
        HeaderValue::from_bytes(b"t=1,\xff").unwrap(),
    );
    assert!(matches!(
        signature_header_value(&headers),
        Err(WebhookError::Malformed { field: "header" })
    ));
}

#[test]
fn errors_have_stable_codes_and_statuses() {
    let cases = [
        (WebhookError::Missing, "webhook.missing", 401),
        (
            WebhookError::Malformed { field: "t" },
            "webhook.malformed",
            401,
        ),
        (WebhookError::Stale, "webhook.stale", 401),
        (WebhookError::BadSignature, "webhook.bad_signature", 401),
        (
            WebhookError::Unavailable(auth_core::StoreError::Backend("down".into())),
            "webhook.unavailable",
            503,
        ),
    ];
    for (err, code, status) in cases {
        assert_eq!(err.code(), code);
        assert_eq!(err.status().as_u16(), status);
    }
    assert!(
        WebhookError::Malformed { field: "v1" }
            .to_string()
            .contains("v1")
    );
}

#[tokio::test]
async fn replay_returns_the_first_reference_whichever_secret_signed() {
    let guard = Arc::new(MemoryReplayGuard::default());
    let v = Verifier::builder(guard.clone()).build().unwrap();
    let secrets = ActiveSecrets::new(secret(2)).with_previous(secret(1), T + 3600);
    let by_old = Signer::new(secret(1)).sign(1_700_000_000, BODY);
    let by_new = Signer::new(secret(2)).sign(1_700_000_000, BODY);
    let first = v
        .verify("partner", Some(&by_old), BODY, &secrets, T, "signal-1")
        .await
        .unwrap();
    let Delivery::Accepted {
        delivery_id,
        timestamp,
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(timestamp, T);
    assert_eq!(delivery_id.len(), 64);
    for header in [&by_old, &by_new] {
        let again = v
            .verify("partner", Some(header), BODY, &secrets, T + 100, "signal-2")
            .await
            .unwrap();
        assert_eq!(
            again,
            Delivery::Duplicate {
                delivery_id: delivery_id.clone(),
                reference: "signal-1".to_owned()
            }
        );
    }
    // Another sender's identical delivery is its own.
    assert!(matches!(
        v.verify("other", Some(&by_new), BODY, &secrets, T, "signal-3")
            .await
            .unwrap(),
        Delivery::Accepted { .. }
    ));
    // A new timestamp is a new delivery.
    let resent = Signer::new(secret(2)).sign(1_700_000_001, BODY);
    assert!(matches!(
        v.verify("partner", Some(&resent), BODY, &secrets, T, "signal-4")
            .await
            .unwrap(),
        Delivery::Accepted { .. }
    ));
    // The claim lasts exactly as long as the signature could verify: t + tolerance.
    assert_eq!(v.sweep(T + 300).await.unwrap(), 0);
    assert_eq!(v.sweep(T + 301).await.unwrap(), 2);
    assert_eq!(guard.len(), 1);
}

#[tokio::test]
async fn memory_guard_is_bounded_and_fails_closed() {
    let guard = Arc::new(MemoryReplayGuard::new(2));
    let v = Verifier::builder(guard.clone()).build().unwrap();
    let secrets = ActiveSecrets::new(secret(1));
    let signer = Signer::new(secret(1));
    for (i, t) in [T, T + 1].into_iter().enumerate() {
        let h = signer.sign(u64::try_from(t).unwrap(), BODY);
        let d = v
            .verify("p", Some(&h), BODY, &secrets, T, &format!("r{i}"))
            .await
            .unwrap();
        assert!(matches!(d, Delivery::Accepted { .. }));
    }
    // Full of unexpired claims: refuse (503) rather than forget one.
    let h = signer.sign(1_700_000_002, BODY);
    let err = v
        .verify("p", Some(&h), BODY, &secrets, T, "r2")
        .await
        .unwrap_err();
    assert!(matches!(err, WebhookError::Unavailable(_)));
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    // Once the first claim expires (t + 300 < now), its slot is reused.
    let d = v
        .verify("p", Some(&h), BODY, &secrets, T + 301, "r2")
        .await
        .unwrap();
    assert!(matches!(d, Delivery::Accepted { .. }));
    assert_eq!(guard.len(), 2);
}

/// Claim semantics every guard must have.
async fn guard_semantics(guard: Arc<dyn ReplayGuard>) {
    let first = guard.claim("s", "d1", "ref-a", T + 300, T).await.unwrap();
    assert_eq!(first, Claim::First);
    let dup = guard
        .claim("s", "d1", "ref-b", T + 300, T + 300)
        .await
        .unwrap();
    assert_eq!(
        dup,
        Claim::Duplicate {
            reference: "ref-a".to_owned()
        }
    );
    // Another sender, another id: independent.
    assert_eq!(
        guard.claim("s2", "d1", "ref-c", T + 300, T).await.unwrap(),
        Claim::First
    );
    // Expired (expires_at < now): replaced, and the new reference wins from then on.
    assert_eq!(
        guard
            .claim("s", "d1", "ref-d", T + 700, T + 301)
            .await
            .unwrap(),
        Claim::First
    );
    assert_eq!(
        guard
            .claim("s", "d1", "ref-e", T + 700, T + 400)
            .await
            .unwrap(),
        Claim::Duplicate {
            reference: "ref-d".to_owned()
        }
    );
    assert_eq!(guard.delete_expired(T + 301).await.unwrap(), 1);
    assert_eq!(guard.delete_expired(T + 701).await.unwrap(), 1);
    assert_eq!(guard.delete_expired(T + 701).await.unwrap(), 0);
}

/// 100 concurrent verifications of one delivery (each its own reference) through
/// `verifiers` (several instances sharing the guard): exactly one is accepted, every other
/// is a duplicate naming the winner's reference.
async fn race(verifiers: Vec<Verifier>) {
    let secrets = Arc::new(ActiveSecrets::new(secret(9)));
    let header = Arc::new(Signer::new(secret(9)).sign(1_700_000_000, BODY));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let v = verifiers[i % verifiers.len()].clone();
        let secrets = secrets.clone();
        let header = header.clone();
        tasks.push(tokio::spawn(async move {
            v.verify(
                "racer",
                Some(&header),
                BODY,
                &secrets,
                T,
                &format!("ref-{i}"),
            )
            .await
            .unwrap()
        }));
    }
    let results = futures::future::join_all(tasks).await;
    let mut winners = Vec::new();
    let mut references = std::collections::HashSet::new();
    for (i, r) in results.into_iter().enumerate() {
        match r.unwrap() {
            Delivery::Accepted { .. } => winners.push(format!("ref-{i}")),
            Delivery::Duplicate { reference, .. } => {
                references.insert(reference);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one first claim");
    assert!(references.len() <= 1);
    if let Some(r) = references.iter().next() {
        assert_eq!(r, &winners[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_guard_semantics_and_race() {
    guard_semantics(Arc::new(MemoryReplayGuard::default())).await;
    let guard: Arc<dyn ReplayGuard> = Arc::new(MemoryReplayGuard::default());
    let v = Verifier::builder(guard).build().unwrap();
    race(vec![v.clone(), v]).await;
}

#[cfg(feature = "sqlite")]
async fn sqlite_store(path: &std::path::Path) -> auth_core::SqliteStore {
    use std::str::FromStr as _;
    // 100 writers queue on SQLite's one write lock: a long busy timeout, so that a
    // loaded machine does not turn the race into a timeout.
    let url = format!("sqlite://{}", path.display());
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(60));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap();
    let store = auth_core::SqliteStore::new(pool);
    store.migrate().await.unwrap();
    store
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_guard_semantics_and_race_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    guard_semantics(Arc::new(sqlite_store(&path).await)).await;
    // Two instances: two pools on the same database file.
    let a = Verifier::builder(Arc::new(sqlite_store(&path).await))
        .build()
        .unwrap();
    let b = Verifier::builder(Arc::new(sqlite_store(&path).await))
        .build()
        .unwrap();
    race(vec![a, b]).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_guard_semantics_and_race_across_instances() {
    let pg = support::PgSchema::create("auth_webhook_replay", 16).await;
    guard_semantics(Arc::new(pg.store.clone())).await;
    let other = auth_core::PgStore::new(pg.pool(16).await);
    let a = Verifier::builder(Arc::new(pg.store.clone()))
        .build()
        .unwrap();
    let b = Verifier::builder(Arc::new(other)).build().unwrap();
    race(vec![a, b]).await;
    pg.drop_schema().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// sign -> verify round-trips for any body and timestamp, and any single-byte change
    /// of the body is refused.
    #[test]
    fn sign_verify_round_trip(
        key in proptest::array::uniform32(any::<u8>()),
        t in 0i64..=i64::MAX,
        body in proptest::collection::vec(any::<u8>(), 0..512),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let secrets = ActiveSecrets::new(WebhookSecret::from_bytes(&key).unwrap());
        let header = Signer::new(WebhookSecret::from_bytes(&key).unwrap())
            .sign(u64::try_from(t).unwrap(), &body);
        prop_assert_eq!(&header, &independent_header(&key, t, &body));
        let v = verifier();
        let ok = v.verify_signature(Some(&header), &body, &secrets, t).unwrap();
        prop_assert_eq!(ok.timestamp(), t);
        if !body.is_empty() {
            let mut changed = body.clone();
            changed[index.index(body.len())] ^= flip;
            prop_assert!(matches!(
                v.verify_signature(Some(&header), &changed, &secrets, t),
                Err(WebhookError::BadSignature)
            ));
        }
        // Appending or removing a byte is refused too.
        let mut longer = body.clone();
        longer.push(flip);
        prop_assert!(v.verify_signature(Some(&header), &longer, &secrets, t).is_err());
    }

    /// The parser never panics, and whatever it accepts is within the documented bounds.
    #[test]
    fn parser_total(value in "[tv1x=,0-9a-fA-F]{0,300}") {
        if let Ok(h) = SignatureHeader::parse(&value) {
            prop_assert!(h.timestamp() >= 0);
            prop_assert!((1..=MAX_SIGNATURES).contains(&h.signatures().len()));
        }
    }
}
