//! The SQL shared by the SQLite and PostgreSQL stores.
//!
//! Both dialects accept the same statements (numbered `$n` parameters), so the store
//! methods are written once, in [`sql_store_impls!`], and instantiated for each pool
//! type. They differ in how the head is locked: SQLite takes the database write lock
//! with `BEGIN IMMEDIATE`; PostgreSQL locks the head row with `SELECT ... FOR UPDATE`.

use crate::error::AuditError;
use crate::event::{Actor, Event, Outcome};
use crate::record::{MAC_LEN, Record};
use crate::verify::Slot;

pub(super) const HEAD: &str = "SELECT seq, mac, key_id FROM audit_head WHERE id = 1";

pub(super) const SET_HEAD: &str =
    "UPDATE audit_head SET seq = $1, mac = $2, key_id = $3 WHERE id = 1";

pub(super) const INSERT: &str = "INSERT INTO audit_records \
(seq, at, principal, method, action, target, subject, outcome, reason, request_id, prev_mac, mac) ";

/// Rows per `INSERT` statement: 12 parameters each, far below SQLite's 32766. A batch
/// is inserted in chunks of this size and then of halving sizes (32, 16, ... 1), so
/// that only seven statement texts exist and each stays prepared in the connection's
/// statement cache (preparing a fresh multi-row statement per batch size costs more
/// than the rows).
pub(super) const INSERT_CHUNK: usize = 64;

/// The sizes of the `INSERT` statements for `n` rows: full chunks, then the binary
/// digits of the remainder, largest first.
pub(super) fn insert_chunks(n: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(INSERT_CHUNK, n / INSERT_CHUNK);
    let rest = n % INSERT_CHUNK;
    let bits = (0..INSERT_CHUNK.trailing_zeros())
        .rev()
        .map(|b| 1usize << b)
        .filter(move |size| rest & size != 0);
    full.chain(bits)
}

const COLUMNS: &str = "seq, at, principal, method, action, target, subject, outcome, reason, \
request_id, prev_mac, mac";

pub(super) fn page_sql() -> String {
    format!("SELECT {COLUMNS} FROM audit_records WHERE seq > $1 ORDER BY seq LIMIT $2")
}

pub(super) fn subject_sql() -> String {
    format!("SELECT {COLUMNS} FROM audit_records WHERE subject = $1 ORDER BY seq DESC LIMIT $2")
}

pub(super) fn since_sql() -> String {
    format!("SELECT {COLUMNS} FROM audit_records WHERE at >= $1 AND seq > $2 ORDER BY seq LIMIT $3")
}

pub(super) const CHECKPOINT: &str = "SELECT seq, mac, at, checkpoint_mac FROM audit_checkpoints \
ORDER BY seq DESC LIMIT 1";

pub(super) const FIRST_KEPT: &str = "SELECT MIN(seq) FROM audit_records WHERE at >= $1";

pub(super) const MAC_OF: &str = "SELECT mac FROM audit_records WHERE seq = $1";

pub(super) const INSERT_CHECKPOINT: &str =
    "INSERT INTO audit_checkpoints (seq, mac, at, checkpoint_mac) VALUES ($1, $2, $3, $4)";

pub(super) const DELETE_PREFIX: &str = "DELETE FROM audit_records WHERE seq <= $1";

/// A sequence number as stored (`BIGINT`); sequence numbers never reach 2^63.
pub(super) fn db_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A stored sequence number; a negative one (never written) reads as 0.
pub(super) fn seq_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn mac_of(seq: u64, field: &'static str, v: &[u8]) -> Result<[u8; MAC_LEN], AuditError> {
    <[u8; MAC_LEN]>::try_from(v).map_err(|_| AuditError::Corrupt { seq, field })
}

/// The columns of one row, as read.
pub(super) struct Columns {
    pub(super) seq: i64,
    pub(super) at: i64,
    pub(super) principal: Option<String>,
    pub(super) method: String,
    pub(super) action: String,
    pub(super) target: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) outcome: String,
    pub(super) reason: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) prev_mac: Vec<u8>,
    pub(super) mac: Vec<u8>,
}

impl Columns {
    /// The record exactly as stored, or [`Slot::Corrupt`] when a column cannot be one.
    pub(super) fn into_slot(self) -> Slot {
        let seq = seq_of(self.seq);
        let (Some(outcome), Ok(prev_mac), Ok(mac)) = (
            Outcome::parse(&self.outcome),
            mac_of(seq, "prev_mac", &self.prev_mac),
            mac_of(seq, "mac", &self.mac),
        ) else {
            return Slot::Corrupt(seq);
        };
        if self.seq < 1 {
            return Slot::Corrupt(seq);
        }
        Slot::Record(Record {
            seq,
            at: self.at,
            event: Event::raw(
                Actor::raw(self.principal, self.method),
                self.action,
                self.target,
                self.subject,
                outcome,
                self.reason,
                self.request_id,
            ),
            prev_mac,
            mac,
        })
    }
}

/// The store methods, for `$store` over the database `$db`. `$begin` opens the
/// transaction of a write; `$lock` is appended to the head query inside it.
macro_rules! sql_store_impls {
    ($store:ty, $db:ty, $begin:literal, $lock:literal) => {
        impl $store {
            async fn read_head<'c, E>(
                exec: E,
                lock: bool,
            ) -> Result<$crate::store::Head, AuditError>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let sql = if lock {
                    concat!(
                        "SELECT seq, mac, key_id FROM audit_head WHERE id = 1",
                        $lock
                    )
                } else {
                    $crate::store::sql::HEAD
                };
                let row = sqlx::query(sql)
                    .fetch_optional(exec)
                    .await
                    .map_err(unavailable("head"))?
                    .ok_or(AuditError::Corrupt {
                        seq: 0,
                        field: "head",
                    })?;
                let seq: i64 = row.try_get("seq").map_err(unavailable("head"))?;
                let mac: Vec<u8> = row.try_get("mac").map_err(unavailable("head"))?;
                let key_id: Option<String> = row.try_get("key_id").map_err(unavailable("head"))?;
                let seq = $crate::store::sql::seq_of(seq);
                Ok($crate::store::Head {
                    anchor: $crate::record::Anchor {
                        seq,
                        mac: $crate::store::sql::mac_of(seq, "head mac", &mac)?,
                    },
                    key_id,
                })
            }

            fn slots(
                rows: Vec<<$db as sqlx::Database>::Row>,
                op: &'static str,
            ) -> Result<Vec<$crate::verify::Slot>, AuditError> {
                rows.into_iter()
                    .map(|row| {
                        Ok($crate::store::sql::Columns {
                            seq: row.try_get("seq").map_err(unavailable(op))?,
                            at: row.try_get("at").map_err(unavailable(op))?,
                            principal: row.try_get("principal").map_err(unavailable(op))?,
                            method: row.try_get("method").map_err(unavailable(op))?,
                            action: row.try_get("action").map_err(unavailable(op))?,
                            target: row.try_get("target").map_err(unavailable(op))?,
                            subject: row.try_get("subject").map_err(unavailable(op))?,
                            outcome: row.try_get("outcome").map_err(unavailable(op))?,
                            reason: row.try_get("reason").map_err(unavailable(op))?,
                            request_id: row.try_get("request_id").map_err(unavailable(op))?,
                            prev_mac: row.try_get("prev_mac").map_err(unavailable(op))?,
                            mac: row.try_get("mac").map_err(unavailable(op))?,
                        }
                        .into_slot())
                    })
                    .collect()
            }

            pub(crate) async fn append(
                &self,
                key: &$crate::key::MacKey,
                events: &[(i64, $crate::event::Event)],
            ) -> Result<$crate::store::Appended, AuditError> {
                let op = "append";
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(unavailable(op))?;
                let head = Self::read_head(&mut *tx, true).await?;
                head.check_key(key)?;
                let mut prev = head.anchor;
                // Each event's place in the chain, sealed from a borrow of the event: the
                // rows are bound from the events themselves, nothing is copied.
                let mut links = Vec::with_capacity(events.len());
                for (at, event) in events {
                    let seq = prev.seq.saturating_add(1);
                    let mac = $crate::record::record_mac(key, seq, *at, event, &prev.mac);
                    links.push($crate::store::Link {
                        seq,
                        prev_mac: prev.mac,
                        mac,
                    });
                    prev = $crate::record::Anchor { seq, mac };
                }
                let rows: Vec<_> = events.iter().zip(&links).collect();
                let mut rest = &rows[..];
                for size in $crate::store::sql::insert_chunks(rows.len()) {
                    let (chunk, tail) = rest.split_at(size);
                    rest = tail;
                    let mut q = sqlx::QueryBuilder::<$db>::new($crate::store::sql::INSERT);
                    q.push_values(chunk, |mut b, ((at, e), link)| {
                        b.push_bind($crate::store::sql::db_seq(link.seq))
                            .push_bind(*at)
                            .push_bind(e.actor().principal())
                            .push_bind(e.actor().method())
                            .push_bind(e.action())
                            .push_bind(e.target())
                            .push_bind(e.subject())
                            .push_bind(e.outcome().as_str())
                            .push_bind(e.reason())
                            .push_bind(e.request_id())
                            .push_bind(&link.prev_mac[..])
                            .push_bind(&link.mac[..]);
                    });
                    q.build().execute(&mut *tx).await.map_err(unavailable(op))?;
                }
                sqlx::query($crate::store::sql::SET_HEAD)
                    .bind($crate::store::sql::db_seq(prev.seq))
                    .bind(prev.mac.to_vec())
                    .bind(key.id().to_owned())
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable(op))?;
                let committing = std::time::Instant::now();
                tx.commit().await.map_err(unavailable(op))?;
                Ok($crate::store::Appended {
                    links,
                    commit: committing.elapsed(),
                })
            }

            pub(crate) async fn head(&self) -> Result<$crate::store::Head, AuditError> {
                Self::read_head(&self.pool, false).await
            }

            pub(crate) async fn page(
                &self,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::verify::Slot>, AuditError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe($crate::store::sql::page_sql()))
                    .bind($crate::store::sql::db_seq(after))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable("read"))?;
                Self::slots(rows, "read")
            }

            pub(crate) async fn for_subject(
                &self,
                subject: &str,
                limit: u32,
            ) -> Result<Vec<$crate::verify::Slot>, AuditError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe($crate::store::sql::subject_sql()))
                    .bind(subject)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable("for_subject"))?;
                Self::slots(rows, "for_subject")
            }

            pub(crate) async fn since(
                &self,
                since: i64,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::verify::Slot>, AuditError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe($crate::store::sql::since_sql()))
                    .bind(since)
                    .bind($crate::store::sql::db_seq(after))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable("export"))?;
                Self::slots(rows, "export")
            }

            async fn newest_checkpoint<'c, E>(
                exec: E,
            ) -> Result<Option<$crate::record::Checkpoint>, AuditError>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                let op = "checkpoint";
                let Some(row) = sqlx::query($crate::store::sql::CHECKPOINT)
                    .fetch_optional(exec)
                    .await
                    .map_err(unavailable(op))?
                else {
                    return Ok(None);
                };
                let seq = $crate::store::sql::seq_of(row.try_get("seq").map_err(unavailable(op))?);
                let mac: Vec<u8> = row.try_get("mac").map_err(unavailable(op))?;
                let cmac: Vec<u8> = row.try_get("checkpoint_mac").map_err(unavailable(op))?;
                Ok(Some($crate::record::Checkpoint {
                    seq,
                    mac: $crate::store::sql::mac_of(seq, "checkpoint mac", &mac)?,
                    at: row.try_get("at").map_err(unavailable(op))?,
                    checkpoint_mac: $crate::store::sql::mac_of(seq, "checkpoint_mac", &cmac)?,
                }))
            }

            pub(crate) async fn checkpoint(
                &self,
            ) -> Result<Option<$crate::record::Checkpoint>, AuditError> {
                Self::newest_checkpoint(&self.pool).await
            }

            pub(crate) async fn prune(
                &self,
                key: &$crate::key::MacKey,
                cutoff: i64,
                verified: u64,
                now: i64,
            ) -> Result<Option<$crate::record::Checkpoint>, AuditError> {
                let op = "prune";
                let mut tx = self
                    .pool
                    .begin_with($begin)
                    .await
                    .map_err(unavailable(op))?;
                let head = Self::read_head(&mut *tx, true).await?;
                head.check_key(key)?;
                let floor = Self::newest_checkpoint(&mut *tx)
                    .await?
                    .map_or(0, |c| c.seq);
                let first_kept: Option<i64> = sqlx::query_scalar($crate::store::sql::FIRST_KEPT)
                    .bind(cutoff)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable(op))?;
                let last = first_kept
                    .map_or(head.anchor.seq, |s| {
                        $crate::store::sql::seq_of(s).saturating_sub(1)
                    })
                    .min(verified);
                if last <= floor {
                    return Ok(None);
                }
                let mac: Option<Vec<u8>> = sqlx::query_scalar($crate::store::sql::MAC_OF)
                    .bind($crate::store::sql::db_seq(last))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable(op))?;
                let mac = mac.ok_or(AuditError::Corrupt {
                    seq: last,
                    field: "seq",
                })?;
                let mac = $crate::store::sql::mac_of(last, "mac", &mac)?;
                let checkpoint = $crate::record::Checkpoint::seal(key, last, mac, now);
                sqlx::query($crate::store::sql::INSERT_CHECKPOINT)
                    .bind($crate::store::sql::db_seq(last))
                    .bind(mac.to_vec())
                    .bind(now)
                    .bind(checkpoint.checkpoint_mac.to_vec())
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable(op))?;
                sqlx::query($crate::store::sql::DELETE_PREFIX)
                    .bind($crate::store::sql::db_seq(last))
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable(op))?;
                tx.commit().await.map_err(unavailable(op))?;
                Ok(Some(checkpoint))
            }
        }
    };
}

pub(super) use sql_store_impls;

/// Maps a driver error to [`AuditError::Unavailable`] naming `operation`.
pub(super) fn unavailable(operation: &'static str) -> impl Fn(sqlx::Error) -> AuditError {
    move |e| AuditError::Unavailable {
        operation,
        source: Some(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_chunks_cover_every_row_with_seven_sizes() {
        for n in 0..=600 {
            let sizes: Vec<usize> = insert_chunks(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}: {sizes:?}");
            assert!(
                sizes.iter().all(|s| [64, 32, 16, 8, 4, 2, 1].contains(s)),
                "{n}: {sizes:?}"
            );
            // Largest first, and at most one of each size below the chunk.
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{n}: {sizes:?}");
            assert!(
                sizes
                    .windows(2)
                    .all(|w| w[0] == INSERT_CHUNK || w[0] > w[1]),
                "{n}: {sizes:?}"
            );
        }
        assert_eq!(insert_chunks(200).collect::<Vec<_>>(), [64, 64, 64, 8]);
    }
}
