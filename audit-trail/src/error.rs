//! The error type.

use crate::verify::Fault;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an audit operation failed. Names the operation or the record, never a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store could not be reached, or refused the statement (a trigger, a timeout, a
    /// pool closed). `operation` names what was being done (`append`, `verify`...).
    #[error("audit store unavailable during {operation}")]
    Unavailable {
        /// What was being done.
        operation: &'static str,
        /// The store's error, when there is one.
        #[source]
        source: Option<Source>,
    },
    /// The store's migration failed.
    #[error("audit store migration failed")]
    Migration(#[source] Source),
    /// The chain was written with another key (the head row names another key id): the
    /// log refuses to write or verify with this one.
    #[error("the audit chain was written with another key (key id {stored})")]
    WrongKey {
        /// The key id stored in the head row.
        stored: String,
    },
    /// A stored row cannot be read (unknown outcome, MAC of the wrong length...).
    #[error("audit record {seq} cannot be read: bad {field}")]
    Corrupt {
        /// The row's sequence number.
        seq: u64,
        /// The column.
        field: &'static str,
    },
    /// An operation that needs an intact chain (pruning, a user's own events) found a
    /// fault.
    #[error("audit chain not intact: {0}")]
    Tampered(Fault),
    /// `ikm` for [`crate::MacKey::derive`] is shorter than 32 bytes.
    #[error("audit key material must hold at least 32 bytes")]
    WeakKeyMaterial,
    /// The system random generator failed.
    #[error("system randomness unavailable")]
    Random,
    /// [`crate::AuditLog`] was built outside a Tokio runtime.
    #[error("the audit log needs a Tokio runtime")]
    NoRuntime,
    /// The writer task is gone (the runtime is shutting down).
    #[error("the audit writer task has stopped")]
    Closed,
    /// Writing the export failed.
    #[error("audit export write failed")]
    Export(#[source] std::io::Error),
}

impl AuditError {
    /// A stable code for logs and metrics: `audit.store_unavailable`,
    /// `audit.migration_failed`, `audit.wrong_key`, `audit.corrupt_row`,
    /// `audit.tampered`, `audit.weak_key_material`, `audit.random_failed`,
    /// `audit.no_runtime`, `audit.writer_closed`, `audit.export_failed`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Unavailable { .. } => "audit.store_unavailable",
            AuditError::Migration(_) => "audit.migration_failed",
            AuditError::WrongKey { .. } => "audit.wrong_key",
            AuditError::Corrupt { .. } => "audit.corrupt_row",
            AuditError::Tampered(_) => "audit.tampered",
            AuditError::WeakKeyMaterial => "audit.weak_key_material",
            AuditError::Random => "audit.random_failed",
            AuditError::NoRuntime => "audit.no_runtime",
            AuditError::Closed => "audit.writer_closed",
            AuditError::Export(_) => "audit.export_failed",
        }
    }
}
