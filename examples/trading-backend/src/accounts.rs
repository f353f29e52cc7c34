//! Exchange account metadata (`tb_accounts`).
//!
//! The table holds no key or secret (those are sealed by crypto-envelope through
//! cred-cache's `LocalSource`) and decides no access: grant-policy does, and lists the
//! accounts a user may use (`Policy::accounts_for`).

use crate::db::{Db, on_pool};

/// Metadata of one exchange account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountMeta {
    pub(crate) id: String,
    pub(crate) owner_id: String,
    pub(crate) exchange: String,
    pub(crate) label: String,
    pub(crate) read_only: bool,
    pub(crate) created_at: i64,
}

/// A database failure (the caller answers 503).
#[derive(Debug, thiserror::Error)]
#[error("account metadata store unavailable")]
pub(crate) struct StoreDown;

type Row = (String, String, String, String, i64, i64);

fn from_row((id, owner_id, exchange, label, read_only, created_at): Row) -> AccountMeta {
    AccountMeta {
        id,
        owner_id,
        exchange,
        label,
        read_only: read_only != 0,
        created_at,
    }
}

/// The metadata store.
#[derive(Debug, Clone)]
pub(crate) struct AccountStore {
    db: Db,
}

impl AccountStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    pub(crate) async fn insert(&self, meta: &AccountMeta) -> Result<(), StoreDown> {
        let sql = "INSERT INTO tb_accounts (id, owner_id, exchange, label, read_only, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(&meta.id)
            .bind(&meta.owner_id)
            .bind(&meta.exchange)
            .bind(&meta.label)
            .bind(i64::from(meta.read_only))
            .bind(meta.created_at)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|_| StoreDown))
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<AccountMeta>, StoreDown> {
        let sql = "SELECT id, owner_id, exchange, label, read_only, created_at FROM tb_accounts WHERE id = $1";
        let row: Option<Row> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(|_| StoreDown))?;
        Ok(row.map(from_row))
    }

    pub(crate) async fn owned_by(&self, owner: &str) -> Result<Vec<AccountMeta>, StoreDown> {
        let sql = "SELECT id, owner_id, exchange, label, read_only, created_at FROM tb_accounts \
                   WHERE owner_id = $1 ORDER BY created_at, id";
        let rows: Vec<Row> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(owner)
            .fetch_all(pool)
            .await
            .map_err(|_| StoreDown))?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Deletes an account row of `owner`.
    pub(crate) async fn delete(&self, owner: &str, id: &str) -> Result<bool, StoreDown> {
        let sql = "DELETE FROM tb_accounts WHERE id = $1 AND owner_id = $2";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(|_| StoreDown))
    }
}
