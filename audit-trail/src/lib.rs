#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("audit-trail needs a store: enable the `sqlite` or `postgres` feature");

mod error;
mod event;
mod key;
mod log;
mod record;
mod store;
mod verify;

pub use error::AuditError;
pub use event::{Actor, Event, MAX_CODE_LEN, MAX_REQUEST_ID_LEN, MAX_TEXT_LEN, Outcome};
pub use key::{KEY_LEN, MacKey};
pub use log::{
    AuditLog, AuditLogBuilder, DEFAULT_BATCH, DEFAULT_LINGER, DEFAULT_QUEUE, MAX_SUBJECT_LIMIT,
    RETRY_MAX, RETRY_MIN, WriterStats,
};
pub use record::{Anchor, AnchorParseError, Checkpoint, GENESIS, MAC_LEN, Record};
pub use store::AuditStore;
#[cfg(feature = "postgres")]
pub use store::PgStore;
#[cfg(feature = "sqlite")]
pub use store::SqliteStore;
pub use verify::{Fault, FaultKind, Report, verify_records};
