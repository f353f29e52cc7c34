//! FORMAT.md's test vectors: an independent encoder (written from FORMAT.md, not from the
//! crate) and the crate must both produce `tests/data/format_vectors_pass.json`, and
//! every entry of `format_vectors_fail.json` must fail to verify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use audit_trail::{Actor, Anchor, Checkpoint, Event, MacKey, Outcome, Record, verify_records};
use aws_lc_rs::hmac;
use serde_json::Value;

const PASS: &str = include_str!("data/format_vectors_pass.json");
const FAIL: &str = include_str!("data/format_vectors_fail.json");
const FORMAT_MD: &str = include_str!("../FORMAT.md");

fn hex(b: &[u8]) -> String {
    base16ct::lower::encode_string(b)
}

fn unhex(s: &str) -> Vec<u8> {
    base16ct::lower::decode_vec(s).unwrap()
}

/// FORMAT.md, "String field".
fn field(m: &mut Vec<u8>, v: &Value) {
    match v.as_str() {
        None => m.push(0),
        Some(s) => {
            m.push(1);
            m.extend_from_slice(&u32::try_from(s.len()).unwrap().to_be_bytes());
            m.extend_from_slice(s.as_bytes());
        }
    }
}

/// FORMAT.md, "Record MAC", from an export line.
fn independent_record_mac(key: &[u8], r: &Value) -> String {
    let mut m = b"strongroom-audit-v1".to_vec();
    m.push(0x01);
    m.extend_from_slice(&unhex(r["prev_mac"].as_str().unwrap()));
    m.extend_from_slice(&r["seq"].as_u64().unwrap().to_be_bytes());
    m.extend_from_slice(&r["at"].as_i64().unwrap().to_be_bytes());
    field(&mut m, &r["actor"]["principal"]);
    field(&mut m, &r["actor"]["method"]);
    field(&mut m, &r["action"]);
    field(&mut m, &r["target"]);
    field(&mut m, &r["subject"]);
    m.push(match r["outcome"].as_str().unwrap() {
        "success" => 1,
        "refused" => 2,
        "failed" => 3,
        other => panic!("outcome {other}"),
    });
    field(&mut m, &r["reason"]);
    field(&mut m, &r["request_id"]);
    hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &m).as_ref())
}

/// FORMAT.md, "Checkpoint MAC".
fn independent_checkpoint_mac(key: &[u8], c: &Value) -> String {
    let mut m = b"strongroom-audit-v1".to_vec();
    m.push(0x02);
    m.extend_from_slice(&c["seq"].as_u64().unwrap().to_be_bytes());
    m.extend_from_slice(&unhex(c["mac"].as_str().unwrap()));
    m.extend_from_slice(&c["at"].as_i64().unwrap().to_be_bytes());
    hex(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &m).as_ref())
}

/// FORMAT.md, "Key id" and "Key derivation".
fn independent_key_id(key: &[u8]) -> String {
    let mut m = b"strongroom-audit-v1".to_vec();
    m.push(0x03);
    hex(&hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &m).as_ref()[..8])
}

fn independent_derive(ikm: &[u8]) -> Vec<u8> {
    // RFC 5869 with HMAC-SHA256: PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info || 0x01).
    let prk = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, b"strongroom-audit-v1"),
        ikm,
    );
    let mut info = b"strongroom-audit-v1 mac key".to_vec();
    info.push(1);
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &info)
        .as_ref()
        .to_vec()
}

fn key_of(v: &Value) -> (Vec<u8>, MacKey) {
    let bytes = unhex(v["key"].as_str().unwrap());
    (bytes.clone(), MacKey::from_bytes(bytes.try_into().unwrap()))
}

#[test]
fn pass_vectors_match_an_independent_encoder_and_the_crate() {
    let v: Value = serde_json::from_str(PASS).unwrap();
    let (raw, key) = key_of(&v);
    assert_eq!(v["key_id"].as_str().unwrap(), independent_key_id(&raw));
    assert_eq!(v["key_id"].as_str().unwrap(), key.id());

    let mut records = Vec::new();
    for line in v["records"].as_array().unwrap() {
        assert_eq!(
            line["mac"].as_str().unwrap(),
            independent_record_mac(&raw, line)
        );
        let record: Record = serde_json::from_value(line.clone()).unwrap();
        assert!(record.verify(&key));
        // The crate seals the same event to the same bytes, and writes the same line.
        let sealed = Record::seal(
            &key,
            record.seq,
            record.at,
            record.event.clone(),
            record.prev_mac,
        );
        assert_eq!(sealed, record);
        assert_eq!(serde_json::to_value(&sealed).unwrap(), *line);
        records.push(record);
    }
    assert!(verify_records(&key, Anchor::EMPTY, &records, &[]).is_intact());

    // The events as a service would build them.
    let first = Event::new(
        Actor::new("user-42", "session"),
        "login.success",
        Outcome::Success,
    )
    .with_subject("user-42")
    .with_request_id("req-1");
    let second = Event::new(Actor::anonymous(), "login.failure", Outcome::Refused)
        .with_target("alice@example.com")
        .with_reason("bad_password");
    assert_eq!(records[0].event, first);
    assert_eq!(records[1].event, second);

    let c = &v["checkpoint"];
    assert_eq!(
        c["checkpoint_mac"].as_str().unwrap(),
        independent_checkpoint_mac(&raw, c)
    );
    let checkpoint = Checkpoint::seal(
        &key,
        c["seq"].as_u64().unwrap(),
        records[1].mac,
        c["at"].as_i64().unwrap(),
    );
    assert_eq!(
        hex(&checkpoint.checkpoint_mac),
        c["checkpoint_mac"].as_str().unwrap()
    );
    assert!(checkpoint.verify(&key));

    let d = &v["derive"];
    let ikm = unhex(d["ikm"].as_str().unwrap());
    assert_eq!(hex(&independent_derive(&ikm)), d["key"].as_str().unwrap());
    let derived = MacKey::derive(&ikm).unwrap();
    assert_eq!(hex(derived.expose_secret()), d["key"].as_str().unwrap());
    assert_eq!(derived.id(), d["key_id"].as_str().unwrap());
}

#[test]
fn fail_vectors_do_not_verify() {
    let v: Value = serde_json::from_str(PASS).unwrap();
    let (_, key) = key_of(&v);
    let cases: Value = serde_json::from_str(FAIL).unwrap();
    for case in cases["records"].as_array().unwrap() {
        let record: Record = serde_json::from_value(case["record"].clone()).unwrap();
        assert!(!record.verify(&key), "{}", case["why"]);
    }
    for case in cases["checkpoints"].as_array().unwrap() {
        let c = &case["checkpoint"];
        let mac: [u8; 32] = unhex(c["mac"].as_str().unwrap()).try_into().unwrap();
        let cmac: [u8; 32] = unhex(c["checkpoint_mac"].as_str().unwrap())
            .try_into()
            .unwrap();
        let checkpoint = Checkpoint {
            seq: c["seq"].as_u64().unwrap(),
            mac,
            at: c["at"].as_i64().unwrap(),
            checkpoint_mac: cmac,
        };
        assert!(!checkpoint.verify(&key), "{}", case["why"]);
    }
}

#[test]
fn format_md_shows_the_same_vectors() {
    let v: Value = serde_json::from_str(PASS).unwrap();
    for needle in [
        v["key"].as_str().unwrap(),
        v["key_id"].as_str().unwrap(),
        v["records"][0]["mac"].as_str().unwrap(),
        v["records"][1]["mac"].as_str().unwrap(),
        v["checkpoint"]["checkpoint_mac"].as_str().unwrap(),
        v["derive"]["key"].as_str().unwrap(),
    ] {
        assert!(FORMAT_MD.contains(needle), "FORMAT.md lacks {needle}");
    }
}
