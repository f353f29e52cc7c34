//! Every value this service seals under the master key ring, outside crypto-envelope's
//! secret store: the one list that `trading-backend rewrap` walks after a master-key
//! rotation (see `rewrap.rs`).
//!
//! crypto-envelope's secret store (`strongroom_secrets`: exchange credentials and the
//! users' secrets) is re-wrapped by its own [`Rewrapper`](crypto_envelope::Rewrapper).
//! Everything else sealed by this service's [`Envelope`](crypto_envelope::Envelope) is
//! listed here:
//!
//! * [`SEALED_COLUMNS`]: the sealed columns of this service's own tables, described by
//!   table, id column, sealed column and the function that rebuilds the row's encryption
//!   context (the same function the sealing code uses);
//! * [`sealed_values`]: those, plus the sealed values kept in a library's tables, reached
//!   through the library's store API (the TOTP secrets in auth-core's `auth_mfa`, via
//!   [`MfaStore::sealed_secrets_page`](auth_core::MfaStore::sealed_secrets_page) and
//!   [`MfaStore::replace_sealed_secret`](auth_core::MfaStore::replace_sealed_secret)).
//!
//! **A new table holding a value sealed under the master key ring is added to
//! [`SEALED_COLUMNS`]** (or, for a library's table, to [`sealed_values`]); otherwise a
//! rotation strands it and dropping the old key makes it unopenable. Name such a column
//! `sealed` or `sealed_*`: a unit test reads the migrations and fails for a `sealed*`
//! column that is not listed.

use std::sync::Arc;

use async_trait::async_trait;
use crypto_envelope::EncryptionContext;

use crate::db::{Db, Stores, on_pool};

/// A sealed column of one of this service's tables.
#[derive(Debug)]
pub(crate) struct SealedColumn {
    /// The table.
    pub(crate) table: &'static str,
    /// Its primary key (one column).
    pub(crate) id: RowId,
    /// The column holding the sealed value (binary form, BLOB / BYTEA).
    pub(crate) sealed: &'static str,
    /// The other columns the encryption context is built from, read as text.
    pub(crate) context_columns: &'static [&'static str],
    /// Rebuilds the row's encryption context from its id and its `context_columns` (in
    /// that order); `None` when they do not validate. Must be the function the sealing
    /// code uses, so that a re-wrapped value opens where it was sealed.
    pub(crate) context: fn(&str, &[String]) -> Option<EncryptionContext>,
    /// What it holds, for the operator.
    pub(crate) holds: &'static str,
}

/// The type of a sealed table's primary key; the walk goes in ascending key order.
#[derive(Debug, Clone, Copy)]
#[allow(dead_code)] // `Integer` is for tables keyed by a number (none yet).
pub(crate) enum RowId {
    /// A TEXT key.
    Text(&'static str),
    /// An INTEGER / BIGINT key.
    Integer(&'static str),
}

/// **The sealed columns of this service's tables.** Add a new sealed table here.
pub(crate) const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "tb_signing_keys",
        id: RowId::Text("kid"),
        sealed: "sealed",
        context_columns: &["alg"],
        context: crate::signing_keys::rewrap_context,
        holds: "access-token signing keys",
    },
    SealedColumn {
        table: "tb_audit_key",
        id: RowId::Text("id"),
        sealed: "sealed",
        context_columns: &[],
        context: crate::audit::rewrap_context,
        holds: "the audit log's MAC key",
    },
    SealedColumn {
        table: "tb_strategy_secrets",
        id: RowId::Text("id"),
        sealed: "sealed",
        context_columns: &["strategy_id", "slot"],
        context: crate::strategies::rewrap_context,
        holds: "copy-trading webhook secrets",
    },
];

/// auth-core's sealed TOTP secrets (`auth_mfa.sealed_secret`), reached through its store.
const MFA_TABLE: (&str, &str) = ("auth_mfa", "sealed_secret");

/// Every sealed value outside crypto-envelope's secret store, in the order `rewrap`
/// walks them: [`SEALED_COLUMNS`], then the libraries' sealed values.
pub(crate) fn sealed_values(stores: &Stores) -> Vec<Arc<dyn SealedValues>> {
    let mut all: Vec<Arc<dyn SealedValues>> = SEALED_COLUMNS
        .iter()
        .map(|column| {
            Arc::new(SqlColumn {
                column,
                db: stores.db.clone(),
            }) as Arc<dyn SealedValues>
        })
        .collect();
    all.push(Arc::new(MfaSecrets(stores.mfa.clone())));
    all
}

/// One stored sealed value, with the context it was sealed under.
#[derive(Debug)]
pub(crate) struct SealedRow {
    /// The row's id (a table key, a user id): not secret.
    pub(crate) id: String,
    /// The sealed value as stored.
    pub(crate) sealed: Vec<u8>,
    /// Its encryption context; `None` when the row's ids do not validate.
    pub(crate) context: Option<EncryptionContext>,
}

/// The table of a kind of sealed value is unavailable.
#[derive(Debug, thiserror::Error)]
#[error("the {0} table is unavailable")]
pub(crate) struct Unavailable(pub(crate) &'static str);

/// One kind of sealed value, as a key rotation sees it: paged in ascending id order, read
/// one at a time, and replaced by a compare-and-set.
#[async_trait]
pub(crate) trait SealedValues: Send + Sync + std::fmt::Debug {
    /// The table (a stable name: it is written into the rewrap cursor file).
    fn name(&self) -> &'static str;

    /// What it holds, for the operator.
    fn holds(&self) -> &'static str;

    /// Up to `limit` rows with an id after `after` (`None`: from the first), ascending.
    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<SealedRow>, Unavailable>;

    /// The row with this id, if it still exists.
    async fn row(&self, id: &str) -> Result<Option<SealedRow>, Unavailable>;

    /// Replaces the row's sealed value by `new` only if it still holds exactly `old`;
    /// whether it did.
    async fn replace(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool, Unavailable>;
}

/// A [`SealedColumn`] over the shared pool.
#[derive(Debug)]
struct SqlColumn {
    column: &'static SealedColumn,
    db: Db,
}

impl SqlColumn {
    fn id_name(&self) -> &'static str {
        match self.column.id {
            RowId::Text(name) | RowId::Integer(name) => name,
        }
    }

    /// `SELECT` of the id (as text), the sealed value and the context columns (as text).
    /// Every name is a constant of [`SEALED_COLUMNS`], never input.
    fn select(&self) -> String {
        let mut sql = format!(
            "SELECT CAST({id} AS TEXT) AS id, {sealed} AS sealed",
            id = self.id_name(),
            sealed = self.column.sealed
        );
        for (i, c) in self.column.context_columns.iter().enumerate() {
            sql.push_str(&format!(", CAST({c} AS TEXT) AS c{i}"));
        }
        sql.push_str(&format!(" FROM {}", self.column.table));
        sql
    }

    fn unavailable(&self) -> Unavailable {
        Unavailable(self.column.table)
    }

    fn to_row<R>(&self, row: &R) -> Result<SealedRow, Unavailable>
    where
        R: sqlx::Row,
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    {
        let id: String = row.try_get("id").map_err(|_| self.unavailable())?;
        let sealed: Vec<u8> = row.try_get("sealed").map_err(|_| self.unavailable())?;
        let mut columns = Vec::with_capacity(self.column.context_columns.len());
        let mut complete = true;
        for i in 0..self.column.context_columns.len() {
            let value: Option<String> = row
                .try_get(format!("c{i}").as_str())
                .map_err(|_| self.unavailable())?;
            match value {
                Some(v) => columns.push(v),
                None => complete = false,
            }
        }
        let context = if complete {
            (self.column.context)(&id, &columns)
        } else {
            None
        };
        Ok(SealedRow {
            id,
            sealed,
            context,
        })
    }

    /// The id as bound in a query: text, or the integer it names.
    fn integer_id(&self, id: &str) -> Result<Option<i64>, Unavailable> {
        match self.column.id {
            RowId::Text(_) => Ok(None),
            RowId::Integer(_) => id.parse().map(Some).map_err(|_| self.unavailable()),
        }
    }
}

#[async_trait]
impl SealedValues for SqlColumn {
    fn name(&self) -> &'static str {
        self.column.table
    }

    fn holds(&self) -> &'static str {
        self.column.holds
    }

    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<SealedRow>, Unavailable> {
        let sql = format!(
            "{select} WHERE ($1 IS NULL OR {id} > $1) ORDER BY {id} LIMIT $2",
            select = self.select(),
            id = self.id_name()
        );
        let integer = match after {
            Some(a) => self.integer_id(a)?,
            None => None,
        };
        let rows = on_pool!(&self.db, pool => {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql));
            let query = match self.column.id {
                RowId::Text(_) => query.bind(after),
                RowId::Integer(_) => query.bind(integer),
            };
            query
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
                .map_err(|_| self.unavailable())?
                .iter()
                .map(|r| self.to_row(r))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows)
    }

    async fn row(&self, id: &str) -> Result<Option<SealedRow>, Unavailable> {
        let sql = format!("{} WHERE {} = $1", self.select(), self.id_name());
        let integer = self.integer_id(id)?;
        on_pool!(&self.db, pool => {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql));
            let query = match integer {
                Some(n) => query.bind(n),
                None => query.bind(id),
            };
            query
                .fetch_optional(pool)
                .await
                .map_err(|_| self.unavailable())?
                .as_ref()
                .map(|r| self.to_row(r))
                .transpose()
        })
    }

    async fn replace(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool, Unavailable> {
        let sql = format!(
            "UPDATE {table} SET {sealed} = $1 WHERE {id} = $2 AND {sealed} = $3",
            table = self.column.table,
            sealed = self.column.sealed,
            id = self.id_name()
        );
        let integer = self.integer_id(id)?;
        let n = on_pool!(&self.db, pool => {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(new);
            let query = match integer {
                Some(n) => query.bind(n),
                None => query.bind(id),
            };
            query
                .bind(old)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(|_| self.unavailable())?
        });
        Ok(n > 0)
    }
}

/// auth-core's sealed TOTP secrets, through its [`MfaStore`](auth_core::MfaStore) (the
/// backend does not write auth-core's tables itself).
// The derived Debug holds no secret: a store handle, whose Debug names the store only.
#[derive(Debug)]
struct MfaSecrets(Arc<dyn auth_core::MfaStore>);

#[async_trait]
impl SealedValues for MfaSecrets {
    fn name(&self) -> &'static str {
        MFA_TABLE.0
    }

    fn holds(&self) -> &'static str {
        "TOTP second-factor secrets"
    }

    async fn page(&self, after: Option<&str>, limit: u32) -> Result<Vec<SealedRow>, Unavailable> {
        let page = self
            .0
            .sealed_secrets_page(after, limit)
            .await
            .map_err(|_| Unavailable(MFA_TABLE.0))?;
        Ok(page
            .into_iter()
            .map(|s| SealedRow {
                context: crate::totp_sealer::context(&s.user_id).ok(),
                id: s.user_id,
                sealed: s.sealed_secret,
            })
            .collect())
    }

    async fn row(&self, id: &str) -> Result<Option<SealedRow>, Unavailable> {
        let record = self
            .0
            .mfa_record(id)
            .await
            .map_err(|_| Unavailable(MFA_TABLE.0))?;
        Ok(record.map(|r| SealedRow {
            context: crate::totp_sealer::context(&r.user_id).ok(),
            id: r.user_id.clone(),
            sealed: r.sealed_secret.clone(),
        }))
    }

    async fn replace(&self, id: &str, old: &[u8], new: &[u8]) -> Result<bool, Unavailable> {
        self.0
            .replace_sealed_secret(id, old, new)
            .await
            .map_err(|_| Unavailable(MFA_TABLE.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(table, column)` of every column named `sealed*` that a migration creates.
    fn sealed_columns_in(dir: &std::path::Path) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let sql = std::fs::read_to_string(&file).unwrap().to_lowercase();
            let mut table = None::<String>;
            for line in sql.lines() {
                let line = line.split("--").next().unwrap().trim();
                let words: Vec<&str> = line.split_whitespace().collect();
                if let Some(i) = words.iter().position(|w| *w == "table") {
                    let name = words[i + 1..]
                        .iter()
                        .find(|w| !matches!(**w, "if" | "not" | "exists"))
                        .map(|w| w.trim_end_matches('(').to_owned());
                    if words.first() == Some(&"create") {
                        table = name;
                    } else if words.first() == Some(&"alter")
                        && let Some(j) = words.iter().position(|w| *w == "column")
                        && let (Some(t), Some(c)) = (name, words.get(j + 1))
                        && c.starts_with("sealed")
                    {
                        found.push((t, (*c).to_owned()));
                    }
                    continue;
                }
                if line.starts_with(')') {
                    table = None;
                }
                if let (Some(t), Some(c)) = (&table, words.first())
                    && c.starts_with("sealed")
                {
                    found.push((t.clone(), (*c).to_owned()));
                }
            }
        }
        found
    }

    /// A migration that adds a `sealed*` column not in [`SEALED_COLUMNS`] (or, for
    /// auth-core's tables, reached by [`sealed_values`]) fails here: `rewrap` would leave
    /// its values under the old key.
    #[test]
    fn every_sealed_column_is_listed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let listed: Vec<(String, String)> = SEALED_COLUMNS
            .iter()
            .map(|c| (c.table.to_owned(), c.sealed.to_owned()))
            .chain([(MFA_TABLE.0.to_owned(), MFA_TABLE.1.to_owned())])
            .collect();
        let mut checked = 0;
        for dir in [
            root.join("migrations/sqlite"),
            root.join("migrations/postgres"),
            root.join("../../auth-core/migrations/sqlite"),
            root.join("../../auth-core/migrations/postgres"),
        ] {
            for column in sealed_columns_in(&dir) {
                assert!(
                    listed.contains(&column),
                    "{column:?} (in {}) holds a sealed value but is not listed in \
                     sealed.rs: `rewrap` would strand it under the old master key",
                    dir.display()
                );
                checked += 1;
            }
        }
        // tb_signing_keys.sealed, tb_audit_key.sealed and auth_mfa.sealed_secret, on
        // SQLite and PostgreSQL.
        assert!(checked >= 6, "{checked}");
        // And every listed column exists.
        let sqlite = sealed_columns_in(&root.join("migrations/sqlite"));
        for c in SEALED_COLUMNS {
            assert!(
                sqlite.contains(&(c.table.to_owned(), c.sealed.to_owned())),
                "{}.{} is listed but no migration creates it",
                c.table,
                c.sealed
            );
        }
    }

    #[test]
    fn the_scan_sees_create_and_alter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("1.sql"),
            "-- a sealed comment\nCREATE TABLE IF NOT EXISTS tb_x (\n  id TEXT,\n  sealed_value BLOB NOT NULL\n);\n\
             CREATE TABLE tb_y (id TEXT);\nALTER TABLE tb_y ADD COLUMN sealed BYTEA;\n",
        )
        .unwrap();
        assert_eq!(
            sealed_columns_in(dir.path()),
            [
                ("tb_x".to_owned(), "sealed_value".to_owned()),
                ("tb_y".to_owned(), "sealed".to_owned())
            ]
        );
    }
}
