//! Fuzz the audit log's readers of untrusted text: export lines (JSON records, as
//! `trading-backend audit export` writes them and an auditor reads them back), the
//! operator's anchor (`<seq>:<hex mac>`), and verification over whatever parsed.
//!
//! Input: lines; the first is an anchor, the rest are export lines. Oracle: nothing
//! panics; a parsed anchor prints back to text that parses to the same anchor; and no
//! fuzzer-made record verifies under the fixed key (it would need a forged HMAC), so a
//! non-empty list of parsed records always reports a fault.
#![no_main]

use audit_trail::{Anchor, MacKey, Record, verify_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let anchors: Vec<Anchor> = match lines.next().map(Anchor::parse) {
        Some(Ok(anchor)) => {
            let again = Anchor::parse(&anchor.to_string()).expect("an anchor's text parses");
            assert_eq!(again.to_string(), anchor.to_string());
            vec![anchor]
        }
        _ => Vec::new(),
    };
    let records: Vec<Record> = lines
        .filter_map(|line| serde_json::from_str::<Record>(line).ok())
        .collect();
    let key = MacKey::from_bytes([0x5a; 32]);
    let report = verify_records(&key, Anchor::EMPTY, &records, &anchors);
    if !records.is_empty() {
        assert!(report.fault.is_some(), "a fuzzer-made record verified");
    }
});
