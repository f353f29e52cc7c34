//! Properties: any change of any single field of any record breaks verification at
//! that record (or, for its MAC, at the next link); export lines round-trip; the field
//! rules hold for every input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use audit_trail::{
    Actor, Anchor, Event, FaultKind, MAX_CODE_LEN, MAX_REQUEST_ID_LEN, MAX_TEXT_LEN, MacKey,
    Outcome, Record, verify_records,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Fields {
    principal: Option<String>,
    method: String,
    action: String,
    target: Option<String>,
    subject: Option<String>,
    outcome: Outcome,
    reason: Option<String>,
    request_id: Option<String>,
}

impl Fields {
    fn event(&self) -> Event {
        let actor = match &self.principal {
            Some(p) => Actor::new(p, &self.method),
            None => Actor::anonymous(),
        };
        let mut e = Event::new(actor, &self.action, self.outcome);
        if let Some(v) = &self.target {
            e = e.with_target(v);
        }
        if let Some(v) = &self.subject {
            e = e.with_subject(v);
        }
        if let Some(v) = &self.reason {
            e = e.with_reason(v);
        }
        if let Some(v) = &self.request_id {
            e = e.with_request_id(v);
        }
        e
    }
}

fn code() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,20}"
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9@. é-]{0,30}"
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Refused),
        Just(Outcome::Failed)
    ]
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        proptest::option::of(text()),
        code(),
        code(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        outcome(),
        proptest::option::of(code()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(principal, method, action, target, subject, outcome, reason, request_id)| Fields {
                // The anonymous actor's method is fixed.
                method: if principal.is_some() {
                    method
                } else {
                    "anonymous".to_owned()
                },
                principal,
                action,
                target,
                subject,
                outcome,
                reason,
                request_id,
            },
        )
}

fn chain(key: &MacKey, all: &[Fields]) -> Vec<Record> {
    let mut prev = audit_trail::GENESIS;
    let mut out = Vec::new();
    for (i, f) in all.iter().enumerate() {
        let seq = u64::try_from(i).unwrap() + 1;
        let r = Record::seal(
            key,
            seq,
            1_700_000_000_000 + i64::try_from(i).unwrap(),
            f.event(),
            prev,
        );
        prev = r.mac;
        out.push(r);
    }
    out
}

/// Changes field `which` of `f` (or of the record) to something else.
fn mutate(record: &mut Record, f: &Fields, which: u8, salt: &str) {
    let mut g = f.clone();
    let other = |v: &Option<String>| match v {
        Some(_) => None,
        None => Some(format!("x{salt}")),
    };
    match which {
        0 => record.seq += 1,
        1 => record.at += 1,
        2 => record.prev_mac[salt.len() % 32] ^= 1,
        3 => record.mac[salt.len() % 32] ^= 0x80,
        4 => {
            g.principal = Some(format!("{}z", g.principal.clone().unwrap_or_default()));
            if g.method == "anonymous" {
                g.method = "session".to_owned();
            }
        }
        5 => g.method = format!("{}z", g.method),
        6 => g.action = format!("{}z", g.action),
        7 => g.target = other(&g.target),
        8 => g.subject = other(&g.subject),
        9 => {
            g.outcome = match g.outcome {
                Outcome::Success => Outcome::Refused,
                Outcome::Refused => Outcome::Failed,
                Outcome::Failed => Outcome::Success,
            }
        }
        10 => g.reason = other(&g.reason),
        _ => g.request_id = other(&g.request_id),
    }
    if which >= 4 {
        // The anonymous actor differs only by its method when a principal appears.
        if which == 5 && g.principal.is_none() {
            g.principal = Some("p".to_owned());
        }
        record.event = g.event();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_single_field_change_breaks_verification(
        all in proptest::collection::vec(fields(), 1..6),
        pick in any::<proptest::sample::Index>(),
        which in 0u8..12,
        salt in "[a-z]{0,8}",
    ) {
        let key = MacKey::from_bytes([3; 32]);
        let mut records = chain(&key, &all);
        prop_assert!(verify_records(&key, Anchor::EMPTY, &records, &[]).is_intact());
        let i = pick.index(records.len());
        let before = records[i].clone();
        mutate(&mut records[i], &all[i], which, &salt);
        prop_assert_ne!(&records[i], &before);
        let report = verify_records(&key, Anchor::EMPTY, &records, &[]);
        let fault = report.fault.expect("a changed field went unnoticed");
        let seq = before.seq;
        prop_assert_eq!(fault.seq, seq, "{}", report);
        if which == 0 {
            // A renumbered record leaves a gap before it.
            prop_assert_eq!(fault.kind, FaultKind::Deleted);
        }
    }

    #[test]
    fn export_lines_round_trip(all in proptest::collection::vec(fields(), 1..4)) {
        let key = MacKey::from_bytes([5; 32]);
        let records = chain(&key, &all);
        for r in &records {
            let line = serde_json::to_string(r).unwrap();
            prop_assert!(!line.contains('\n'));
            let back: Record = serde_json::from_str(&line).unwrap();
            prop_assert_eq!(&back, r);
            prop_assert!(back.verify(&key));
        }
    }

    #[test]
    fn field_rules_hold_for_any_input(a in any::<String>(), b in any::<String>(), c in any::<String>()) {
        let e = Event::new(Actor::new(&a, &b), &c, Outcome::Failed)
            .with_target(&a)
            .with_subject(&c)
            .with_reason(&a)
            .with_request_id(&b);
        let codes = [e.action(), e.actor().method(), e.reason().unwrap()];
        for code in codes {
            prop_assert!(!code.is_empty() && code.len() <= MAX_CODE_LEN);
            prop_assert!(code.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c)));
        }
        let texts = [
            (e.actor().principal().unwrap(), MAX_TEXT_LEN),
            (e.target().unwrap(), MAX_TEXT_LEN),
            (e.subject().unwrap(), MAX_TEXT_LEN),
            (e.request_id().unwrap(), MAX_REQUEST_ID_LEN),
        ];
        for (t, max) in texts {
            prop_assert!(t.len() <= max);
            let bad = |c: char| {
                c.is_control()
                    || ('\u{2028}'..='\u{202E}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c)
            };
            prop_assert!(!t.chars().any(bad));
        }
    }
}

proptest! {
    /// Untrusted text (a CLI argument, an export line) never panics the parsers.
    #[test]
    fn parsers_never_panic(text in any::<String>(), seq in any::<u64>(), mac in "[0-9a-fA-F]{0,70}") {
        let _ = Anchor::parse(&text);
        if let Ok(a) = Anchor::parse(&format!("{seq}:{mac}")) {
            prop_assert_eq!(a.seq, seq);
            prop_assert_eq!(Anchor::parse(&a.to_string()).unwrap(), a);
        }
        let _ = serde_json::from_str::<Record>(&text);
        let line = format!(
            "{{\"seq\":{seq},\"at\":1,\"actor\":{{\"principal\":null,\"method\":{m:?}}},\
             \"action\":{m:?},\"target\":null,\"subject\":null,\"outcome\":\"failed\",\
             \"reason\":null,\"request_id\":null,\"prev_mac\":{mac:?},\"mac\":{mac:?}}}",
            m = text
        );
        if let Ok(r) = serde_json::from_str::<Record>(&line) {
            let key = MacKey::from_bytes([1; 32]);
            let _ = verify_records(&key, Anchor::EMPTY, &[r], &[]);
        }
    }
}
