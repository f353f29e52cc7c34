//! Where the chain lives: SQLite or PostgreSQL, one chain with a serialized head.

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::error::AuditError;
use crate::event::Event;
use crate::key::MacKey;
use crate::record::{Anchor, Checkpoint, Record};
use crate::verify::Slot;

/// Rows fetched per query when walking the chain.
pub(crate) const PAGE: u32 = 4096;

/// The head row: the newest record's place, and the id of the key that writes the chain.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) anchor: Anchor,
    pub(crate) key_id: Option<String>,
}

impl Head {
    /// Refuses a key other than the one the chain was written with.
    pub(crate) fn check_key(&self, key: &MacKey) -> Result<(), AuditError> {
        match &self.key_id {
            Some(stored) if stored != key.id() => Err(AuditError::WrongKey {
                stored: stored.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// The audit store: one of the SQL stores. Build it from a store with `into()`.
///
/// Every store keeps one chain with a serialized head (README, "Several instances"), and
/// refuses updates and deletes of audit rows with triggers (deletes only of the prefix a
/// checkpoint covers).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuditStore {
    /// SQLite (feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    /// PostgreSQL (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

#[cfg(feature = "sqlite")]
impl From<SqliteStore> for AuditStore {
    fn from(store: SqliteStore) -> Self {
        AuditStore::Sqlite(store)
    }
}

#[cfg(feature = "postgres")]
impl From<PgStore> for AuditStore {
    fn from(store: PgStore) -> Self {
        AuditStore::Postgres(store)
    }
}

/// Calls the same method on whichever store this is.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AuditStore::Sqlite($s) => $call,
            #[cfg(feature = "postgres")]
            AuditStore::Postgres($s) => $call,
        }
    };
}

/// One appended event's place in the chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub(crate) seq: u64,
    pub(crate) prev_mac: [u8; crate::record::MAC_LEN],
    pub(crate) mac: [u8; crate::record::MAC_LEN],
}

/// What one append made durable (each event's link, in order), and how long its commit
/// took (the durability wait: for SQLite with `synchronous = FULL`, the fsync of the
/// write-ahead log).
#[derive(Debug)]
pub(crate) struct Appended {
    pub(crate) links: Vec<Link>,
    pub(crate) commit: std::time::Duration,
}

impl Appended {
    /// The records, from the events that were appended (in the same order).
    pub(crate) fn records(&self, events: &[(i64, Event)]) -> Vec<Record> {
        events
            .iter()
            .zip(&self.links)
            .map(|((at, event), link)| Record {
                seq: link.seq,
                at: *at,
                event: event.clone(),
                prev_mac: link.prev_mac,
                mac: link.mac,
            })
            .collect()
    }
}

impl AuditStore {
    /// Appends `events` (each with its time) as the next records, in one transaction
    /// under the head lock.
    pub(crate) async fn append(
        &self,
        key: &MacKey,
        events: &[(i64, Event)],
    ) -> Result<Appended, AuditError> {
        dispatch!(self, s => s.append(key, events).await)
    }

    pub(crate) async fn head(&self) -> Result<Head, AuditError> {
        dispatch!(self, s => s.head().await)
    }

    /// Up to `limit` rows with `seq > after`, in sequence order.
    pub(crate) async fn page(&self, after: u64, limit: u32) -> Result<Vec<Slot>, AuditError> {
        dispatch!(self, s => s.page(after, limit).await)
    }

    pub(crate) async fn for_subject(
        &self,
        subject: &str,
        limit: u32,
    ) -> Result<Vec<Slot>, AuditError> {
        dispatch!(self, s => s.for_subject(subject, limit).await)
    }

    /// Up to `limit` rows with `at >= since` and `seq > after`, in sequence order.
    pub(crate) async fn since(
        &self,
        since: i64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Slot>, AuditError> {
        dispatch!(self, s => s.since(since, after, limit).await)
    }

    pub(crate) async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        dispatch!(self, s => s.checkpoint().await)
    }

    /// Writes a checkpoint after the longest prefix of records older than `cutoff` (and
    /// not past `verified`) and deletes that prefix, in one transaction under the head
    /// lock.
    pub(crate) async fn prune(
        &self,
        key: &MacKey,
        cutoff: i64,
        verified: u64,
        now: i64,
    ) -> Result<Option<Checkpoint>, AuditError> {
        dispatch!(self, s => s.prune(key, cutoff, verified, now).await)
    }
}
