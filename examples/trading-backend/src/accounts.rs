//! Exchange account metadata (`tb_accounts`) and the index of shares used to list the
//! accounts shared with a user (`tb_account_shares`).
//!
//! Neither table holds a key or a secret: those are sealed by crypto-envelope through
//! cred-cache's `LocalSource`. Neither table decides access: grant-policy does, and the
//! share index only says which accounts to ask grant-policy about.

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

    /// Accounts the index says are shared with `grantee` (ask grant-policy whether the
    /// share is still live).
    pub(crate) async fn shared_with(&self, grantee: &str) -> Result<Vec<AccountMeta>, StoreDown> {
        let sql = "SELECT a.id, a.owner_id, a.exchange, a.label, a.read_only, a.created_at \
                   FROM tb_accounts a JOIN tb_account_shares s ON s.account_id = a.id \
                   WHERE s.grantee_id = $1 ORDER BY a.created_at, a.id";
        let rows: Vec<Row> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(grantee)
            .fetch_all(pool)
            .await
            .map_err(|_| StoreDown))?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// Deletes an account row of `owner` (its share index rows go with it).
    pub(crate) async fn delete(&self, owner: &str, id: &str) -> Result<bool, StoreDown> {
        let shares = "DELETE FROM tb_account_shares WHERE account_id = $1 \
                      AND EXISTS (SELECT 1 FROM tb_accounts WHERE id = $1 AND owner_id = $2)";
        let account = "DELETE FROM tb_accounts WHERE id = $1 AND owner_id = $2";
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(|_| StoreDown)?;
            sqlx::query(shares).bind(id).bind(owner).execute(&mut *tx).await.map_err(|_| StoreDown)?;
            let done = sqlx::query(account).bind(id).bind(owner).execute(&mut *tx).await.map_err(|_| StoreDown)?;
            tx.commit().await.map_err(|_| StoreDown)?;
            Ok(done.rows_affected() > 0)
        })
    }

    pub(crate) async fn index_share(&self, account: &str, grantee: &str) -> Result<(), StoreDown> {
        let sql = "INSERT INTO tb_account_shares (account_id, grantee_id) VALUES ($1, $2) \
                   ON CONFLICT (account_id, grantee_id) DO NOTHING";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(account)
            .bind(grantee)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|_| StoreDown))
    }

    pub(crate) async fn unindex_share(
        &self,
        account: &str,
        grantee: &str,
    ) -> Result<(), StoreDown> {
        let sql = "DELETE FROM tb_account_shares WHERE account_id = $1 AND grantee_id = $2";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(account)
            .bind(grantee)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|_| StoreDown))
    }
}
