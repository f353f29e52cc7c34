//! Fuzz the paper exchange venue of `trading-backend` with arbitrary operations and
//! request bodies (client input that reaches it through `POST /api/exchange/{op}`).
//!
//! Input: byte 0 picks the operation (or, past the list, uses the next bytes up to `\n`
//! as an arbitrary operation name); the rest is the JSON body. The request is signed with
//! the venue key's secret, and sent a second time with the signature of another secret.
//! Oracle: nothing panics; a request signed with the wrong secret is always refused as
//! unauthenticated; balances never go negative.
//!
//! The venue keeps its state in the service's database: here an in-memory SQLite
//! database (one connection), driven by a current-thread Tokio runtime.
#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use trading_backend::exchange::ExchangeError;
use trading_backend::exchange::paper::sign;
use trading_backend::exchange::simulator::PaperVenue;

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

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

static VENUE: LazyLock<PaperVenue> = LazyLock::new(|| {
    RUNTIME.block_on(async {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        let venue = PaperVenue::sqlite(pool);
        venue.migrate().await.expect("venue tables");
        let _ = venue.open_key("fuzz-key", "fuzz-secret", true).await;
        venue
    })
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
    assert_eq!(
        RUNTIME.block_on(VENUE.handle(&forged)),
        Err(ExchangeError::Unauthenticated)
    );
    let signed = sign("fuzz-key", "fuzz-secret", now, &op, body);
    let _ = RUNTIME.block_on(VENUE.handle(&signed));
    let balance = sign("fuzz-key", "fuzz-secret", now, "balance", "{}".to_owned());
    if let Ok(value) = RUNTIME.block_on(VENUE.handle(&balance)) {
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
