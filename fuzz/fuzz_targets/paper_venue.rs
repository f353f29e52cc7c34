//! Fuzz the paper exchange venue of `trading-backend` with arbitrary operations and
//! request bodies (client input that reaches it through `POST /api/exchange/{op}`).
//!
//! Input: byte 0 picks the operation (or, past the list, uses the next bytes up to `\n`
//! as an arbitrary operation name); the rest is the JSON body. The request is signed with
//! the venue key's secret, and sent a second time with the signature of another secret.
//! Oracle: nothing panics; a request signed with the wrong secret is always refused as
//! unauthenticated; balances never go negative.
#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use trading_backend::exchange::ExchangeError;
use trading_backend::exchange::paper::{PaperVenue, sign};

const OPS: [&str; 12] = [
    "ping",
    "balance",
    "open_orders",
    "closed_orders",
    "my_trades",
    "ledger",
    "positions",
    "create_order",
    "cancel_order",
    "cancel_all",
    "edit_order",
    "withdraw",
];

static VENUE: LazyLock<PaperVenue> = LazyLock::new(|| {
    let venue = PaperVenue::new();
    let _ = venue.open_key("fuzz-key", "fuzz-secret", true);
    venue
});

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (op, body) = match OPS.get(usize::from(pick)) {
        Some(op) => ((*op).to_owned(), rest),
        None => {
            let cut = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            (
                String::from_utf8_lossy(&rest[..cut]).into_owned(),
                rest.get(cut + 1..).unwrap_or_default(),
            )
        }
    };
    let body = String::from_utf8_lossy(body).into_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let forged = sign("fuzz-key", "another-secret", now, &op, body.clone());
    assert_eq!(VENUE.handle(&forged), Err(ExchangeError::Unauthenticated));
    let signed = sign("fuzz-key", "fuzz-secret", now, &op, body);
    let _ = VENUE.handle(&signed);
    let balance = sign("fuzz-key", "fuzz-secret", now, "balance", "{}".to_owned());
    if let Ok(value) = VENUE.handle(&balance) {
        if let Some(balances) = value["balances"].as_object() {
            for b in balances.values() {
                for part in ["free", "used"] {
                    let text = b[part].as_str().unwrap_or("");
                    assert!(!text.starts_with('-'), "negative balance");
                }
            }
        }
    }
});
