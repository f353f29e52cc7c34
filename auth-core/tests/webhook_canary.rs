//! Canary for signed webhooks: a known secret goes through generation of its text form,
//! signing, every refusal, acceptance, replay, rotation, and every Debug/Display with a
//! capturing tracing subscriber at TRACE; neither the secret (raw hex, text form, its
//! base64url part) nor the body nor a signature may appear in the captured output or in
//! any Debug/Display string.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use crate::capture;
use capture::Capture;

use std::sync::Arc;

use auth_core::webhook::{
    ActiveSecrets, DEFAULT_ROTATION_GRACE, MemoryReplayGuard, SignatureHeader, Signer, Verifier,
    WebhookSecret,
};

const CANARY: [u8; 32] = *b"CANARY-webhook-secret-0123456789";
const BODY: &[u8] = b"{\"canary_body\":\"c4n4ry-b0dy\"}";
const T: i64 = 1_700_000_000;

#[tokio::test]
async fn webhook_secrets_never_leak() {
    let capture = Capture::install();
    let secret = || WebhookSecret::from_bytes(&CANARY).unwrap();
    let text = secret().to_text().to_string();
    let b64 = text.strip_prefix("whsec_").unwrap().to_owned();
    let raw_hex: String = CANARY.iter().map(|b| format!("{b:02x}")).collect();

    let mut out = String::new();
    let parsed = WebhookSecret::parse(&text).unwrap();
    out += &format!("{parsed:?} {secret:?}", secret = secret());
    // Near misses of the secret's text are refused without echoing it.
    for bad in [
        format!("{text}x"),
        format!("whsec_{}", &b64[..42]),
        b64.clone(),
        format!("whsec_{}!", &b64[..42]),
    ] {
        let e = WebhookSecret::parse(&bad).unwrap_err();
        out += &format!("{e:?} {e}");
    }

    let signer = Signer::rotating(ActiveSecrets::new(secret()).rotate(
        WebhookSecret::generate().unwrap(),
        T,
        DEFAULT_ROTATION_GRACE,
    ));
    out += &format!("{signer:?}");
    let header = Signer::new(secret()).sign(1_700_000_000, BODY);
    let signature = header.split_once("v1=").unwrap().1.to_owned();
    out += &format!("{:?}", SignatureHeader::parse(&header).unwrap());

    let guard = Arc::new(MemoryReplayGuard::default());
    let verifier = Verifier::builder(guard.clone()).build().unwrap();
    out += &format!("{verifier:?} {guard:?}");
    let secrets =
        ActiveSecrets::new(WebhookSecret::generate().unwrap()).with_previous(secret(), T + 10);
    out += &format!("{secrets:?}");

    // Every refusal, then acceptance and a replay.
    let tampered = b"{\"canary_body\":\"c4n4ry-b0dX\"}";
    let attempts: Vec<(Option<String>, &[u8], i64)> = vec![
        (None, BODY, T),
        (Some(format!("t=1700000000,v1={raw_hex}")), BODY, T),
        (
            Some(format!("t=1700000000,v1={signature},x={b64}")),
            BODY,
            T,
        ),
        (Some(format!("{header},{text}")), BODY, T),
        (Some(header.clone()), BODY, T + 301),
        (Some(header.clone()), tampered, T),
        (Some(header.clone()), BODY, T + 10),
        (Some(header.clone()), BODY, T),
        (Some(header.clone()), BODY, T),
    ];
    for (h, body, now) in attempts {
        match verifier
            .verify("canary-sender", h.as_deref(), body, &secrets, now, "ref-1")
            .await
        {
            Ok(d) => out += &format!("{d:?}"),
            Err(e) => out += &format!("{e:?} {e} {}", e.code()),
        }
        if let Err(e) = verifier.verify_signature(h.as_deref(), body, &secrets, now) {
            out += &format!("{e:?} {e}");
        }
    }
    out += &capture.text();
    assert!(out.contains("webhook.bad_signature"), "the paths ran");
    assert!(out.contains("webhook.malformed"), "the paths ran");
    for needle in [
        text.as_str(),
        b64.as_str(),
        &b64[..20],
        raw_hex.as_str(),
        "CANARY-webhook",
        "c4n4ry-b0d",
        signature.as_str(),
    ] {
        assert!(!out.contains(needle), "leaked {needle}");
    }
}
