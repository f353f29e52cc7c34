//! Copy-trading storage: strategies (`tb_strategies`), their sealed webhook secrets
//! (`tb_strategy_secrets`), followers (`tb_strategy_followers`) and signals
//! (`tb_signals`, `tb_signal_accounts`).
//!
//! No table here decides access: grant-policy does (a follower's account is shared at
//! trade level to the strategy's principal); the follower rows only say which accounts to
//! ask grant-policy about, and carry the follower's own per-order maximum. Webhook
//! secrets are sealed by crypto-envelope under the context
//! `{purpose: "trading-backend.webhook-secret", strategy_id, slot}` ([`secret_context`];
//! module `app::strategies` seals and opens them, `rewrap` re-wraps them after a
//! master-key rotation: `tb_strategy_secrets` is listed in `sealed.rs`).

use crypto_envelope::EncryptionContext;

use crate::db::{Db, on_pool};

/// The `purpose` of a sealed webhook secret's encryption context.
pub(crate) const SECRET_PURPOSE: &str = "trading-backend.webhook-secret";

/// The encryption context of strategy `strategy_id`'s webhook secret in `slot`:
/// `{purpose: "trading-backend.webhook-secret", strategy_id, slot}` (`slot` in decimal).
pub(crate) fn secret_context(strategy_id: &str, slot: i64) -> Option<EncryptionContext> {
    EncryptionContext::new()
        .with("purpose", SECRET_PURPOSE)
        .and_then(|c| c.with("strategy_id", strategy_id))
        .and_then(|c| c.with("slot", &slot.to_string()))
        .ok()
}

/// The row id of a secret: `<strategy_id>.<slot>`.
fn secret_row_id(strategy_id: &str, slot: i64) -> String {
    format!("{strategy_id}.{slot}")
}

/// [`secret_context`] from a `tb_strategy_secrets` row as `rewrap` reads it (`id`, then
/// the columns `strategy_id` and `slot` as text); `None` unless they agree.
pub(crate) fn rewrap_context(id: &str, columns: &[String]) -> Option<EncryptionContext> {
    let [strategy_id, slot] = columns else {
        return None;
    };
    let slot: i64 = slot.parse().ok().filter(|s| *s >= 1)?;
    (id == secret_row_id(strategy_id, slot)).then_some(())?;
    secret_context(strategy_id, slot)
}

/// A database failure (the caller answers 503).
#[derive(Debug, thiserror::Error)]
#[error("copy-trading store unavailable")]
pub(crate) struct StoreDown;

/// A write refused by a uniqueness rule (a concurrent rotation, a duplicate row).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// Another writer got there first.
    #[error("conflict")]
    Conflict,
    /// The database failed.
    #[error("copy-trading store unavailable")]
    Down,
}

fn write_error(e: &sqlx::Error) -> WriteError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => WriteError::Conflict,
        _ => WriteError::Down,
    }
}

/// A strategy's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Strategy {
    pub(crate) id: String,
    pub(crate) owner_id: String,
    pub(crate) name: String,
    pub(crate) created_at: i64,
}

/// One sealed webhook secret: its slot (generation), the blob, and when it stops
/// verifying (`None`: the current secret).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SealedSecret {
    pub(crate) slot: i64,
    pub(crate) sealed: Vec<u8>,
    pub(crate) expires_at: Option<i64>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("slot", &self.slot)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A subscribed follower account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Follower {
    pub(crate) account_id: String,
    pub(crate) follower_id: String,
    /// Minor units; `None`: no maximum of the follower's own.
    pub(crate) max_order_notional: Option<i64>,
    pub(crate) created_at: i64,
}

/// A recorded signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signal {
    pub(crate) id: String,
    pub(crate) strategy_id: String,
    pub(crate) created_at: i64,
    pub(crate) status: String,
    /// JSON text (the validated order), `None` when the body was refused.
    pub(crate) request: Option<String>,
    /// JSON text: all results (owner view) or the caller's accounts' (follower view).
    pub(crate) results: String,
}

/// The copy-trading store.
#[derive(Debug, Clone)]
pub(crate) struct StrategyStore {
    db: Db,
}

type StrategyRow = (String, String, String, i64);
type FollowerRow = (String, String, Option<i64>, i64);
type SignalRow = (String, String, i64, String, Option<String>, String);

fn strategy(row: StrategyRow) -> Strategy {
    let (id, owner_id, name, created_at) = row;
    Strategy {
        id,
        owner_id,
        name,
        created_at,
    }
}

fn signal(row: SignalRow) -> Signal {
    let (id, strategy_id, created_at, status, request, results) = row;
    Signal {
        id,
        strategy_id,
        created_at,
        status,
        request,
        results,
    }
}

/// Most rows a list answers.
pub(crate) const MAX_LIST: i64 = 500;

impl StrategyStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Inserts a strategy with its first secret (slot 1), in one transaction.
    pub(crate) async fn create(
        &self,
        s: &Strategy,
        sealed_slot_1: &[u8],
    ) -> Result<(), WriteError> {
        let strategy =
            "INSERT INTO tb_strategies (id, owner_id, name, created_at) VALUES ($1, $2, $3, $4)";
        let secret = "INSERT INTO tb_strategy_secrets (id, strategy_id, slot, sealed, created_at, expires_at) \
                      VALUES ($4, $1, 1, $2, $3, NULL)";
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(|_| WriteError::Down)?;
            sqlx::query(strategy).bind(&s.id).bind(&s.owner_id).bind(&s.name).bind(s.created_at)
                .execute(&mut *tx).await.map_err(|e| write_error(&e))?;
            sqlx::query(secret).bind(&s.id).bind(sealed_slot_1).bind(s.created_at).bind(secret_row_id(&s.id, 1))
                .execute(&mut *tx).await.map_err(|e| write_error(&e))?;
            tx.commit().await.map_err(|_| WriteError::Down)
        })
    }

    pub(crate) async fn get(&self, id: &str) -> Result<Option<Strategy>, StoreDown> {
        let sql = "SELECT id, owner_id, name, created_at FROM tb_strategies WHERE id = $1";
        let row: Option<StrategyRow> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(id).fetch_optional(pool).await.map_err(|_| StoreDown))?;
        Ok(row.map(strategy))
    }

    pub(crate) async fn owned_by(&self, owner: &str) -> Result<Vec<Strategy>, StoreDown> {
        let sql = "SELECT id, owner_id, name, created_at FROM tb_strategies WHERE owner_id = $1 \
                   ORDER BY created_at, id LIMIT $2";
        let rows: Vec<StrategyRow> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(owner).bind(MAX_LIST).fetch_all(pool).await.map_err(|_| StoreDown))?;
        Ok(rows.into_iter().map(strategy).collect())
    }

    /// The secrets that may still verify at `now`: the current one and a previous one
    /// whose grace has not ended. Newest first.
    pub(crate) async fn active_secrets(
        &self,
        strategy_id: &str,
        now: i64,
    ) -> Result<Vec<SealedSecret>, StoreDown> {
        let sql = "SELECT slot, sealed, expires_at FROM tb_strategy_secrets \
                   WHERE strategy_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
                   ORDER BY slot DESC LIMIT 2";
        let rows: Vec<(i64, Vec<u8>, Option<i64>)> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(strategy_id).bind(now).fetch_all(pool).await.map_err(|_| StoreDown))?;
        Ok(rows
            .into_iter()
            .map(|(slot, sealed, expires_at)| SealedSecret {
                slot,
                sealed,
                expires_at,
            })
            .collect())
    }

    /// The slot the next secret takes (one above the highest ever used).
    pub(crate) async fn next_slot(&self, strategy_id: &str) -> Result<i64, StoreDown> {
        let sql = "SELECT COALESCE(MAX(slot), 0) FROM tb_strategy_secrets WHERE strategy_id = $1";
        let (max,): (i64,) = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(strategy_id).fetch_one(pool).await.map_err(|_| StoreDown))?;
        max.checked_add(1).ok_or(StoreDown)
    }

    /// Rotation, in one transaction: any earlier previous secret is deleted, the current
    /// one expires at `previous_until`, `sealed` becomes current in `slot`. A concurrent
    /// rotation that took the same slot makes this one fail with `Conflict` (nothing
    /// changes).
    pub(crate) async fn rotate(
        &self,
        strategy_id: &str,
        slot: i64,
        sealed: &[u8],
        now: i64,
        previous_until: i64,
    ) -> Result<(), WriteError> {
        let drop_old =
            "DELETE FROM tb_strategy_secrets WHERE strategy_id = $1 AND expires_at IS NOT NULL";
        let expire = "UPDATE tb_strategy_secrets SET expires_at = $2 WHERE strategy_id = $1 AND expires_at IS NULL";
        let insert = "INSERT INTO tb_strategy_secrets (id, strategy_id, slot, sealed, created_at, expires_at) \
                      VALUES ($5, $1, $2, $3, $4, NULL)";
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(|_| WriteError::Down)?;
            sqlx::query(drop_old).bind(strategy_id)
                .execute(&mut *tx).await.map_err(|e| write_error(&e))?;
            sqlx::query(expire).bind(strategy_id).bind(previous_until)
                .execute(&mut *tx).await.map_err(|e| write_error(&e))?;
            sqlx::query(insert).bind(strategy_id).bind(slot).bind(sealed).bind(now)
                .bind(secret_row_id(strategy_id, slot))
                .execute(&mut *tx).await.map_err(|e| write_error(&e))?;
            tx.commit().await.map_err(|e| write_error(&e))
        })
    }

    /// Adds or replaces a follower row.
    pub(crate) async fn put_follower(
        &self,
        strategy_id: &str,
        f: &Follower,
    ) -> Result<(), StoreDown> {
        let sql = "INSERT INTO tb_strategy_followers \
                   (strategy_id, account_id, follower_id, max_order_notional, created_at) \
                   VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (strategy_id, account_id) DO UPDATE SET \
                   follower_id = excluded.follower_id, max_order_notional = excluded.max_order_notional";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(strategy_id).bind(&f.account_id).bind(&f.follower_id)
            .bind(f.max_order_notional).bind(f.created_at)
            .execute(pool).await.map(|_| ()).map_err(|_| StoreDown))
    }

    /// Deletes the follower row of `follower`'s `account`; whether there was one.
    pub(crate) async fn delete_follower(
        &self,
        strategy_id: &str,
        account_id: &str,
        follower_id: &str,
    ) -> Result<bool, StoreDown> {
        let sql = "DELETE FROM tb_strategy_followers \
                   WHERE strategy_id = $1 AND account_id = $2 AND follower_id = $3";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(strategy_id).bind(account_id).bind(follower_id)
            .execute(pool).await.map(|r| r.rows_affected() > 0).map_err(|_| StoreDown))
    }

    /// The strategy's follower rows, oldest first (at most `limit`).
    pub(crate) async fn followers(
        &self,
        strategy_id: &str,
        limit: i64,
    ) -> Result<Vec<Follower>, StoreDown> {
        let sql = "SELECT account_id, follower_id, max_order_notional, created_at \
                   FROM tb_strategy_followers WHERE strategy_id = $1 \
                   ORDER BY created_at, account_id LIMIT $2";
        let rows: Vec<FollowerRow> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(strategy_id).bind(limit).fetch_all(pool).await.map_err(|_| StoreDown))?;
        Ok(rows
            .into_iter()
            .map(
                |(account_id, follower_id, max_order_notional, created_at)| Follower {
                    account_id,
                    follower_id,
                    max_order_notional,
                    created_at,
                },
            )
            .collect())
    }

    /// Number of follower rows of the strategy.
    pub(crate) async fn follower_count(&self, strategy_id: &str) -> Result<i64, StoreDown> {
        let sql = "SELECT COUNT(*) FROM tb_strategy_followers WHERE strategy_id = $1";
        let (n,): (i64,) = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(strategy_id).fetch_one(pool).await.map_err(|_| StoreDown))?;
        Ok(n)
    }

    /// Records a verified delivery as signal `id` (status `received` or a refusal).
    pub(crate) async fn insert_signal(
        &self,
        s: &Signal,
        delivery_id: &str,
    ) -> Result<(), WriteError> {
        let sql = "INSERT INTO tb_signals (id, strategy_id, delivery_id, created_at, status, request, results) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        on_pool!(&self.db, pool => sqlx::query(sql)
            .bind(&s.id).bind(&s.strategy_id).bind(delivery_id).bind(s.created_at)
            .bind(&s.status).bind(&s.request).bind(&s.results)
            .execute(pool).await.map(|_| ()).map_err(|e| write_error(&e)))
    }

    /// The id of the signal recorded for `delivery_id` of the strategy, if any.
    pub(crate) async fn signal_of_delivery(
        &self,
        strategy_id: &str,
        delivery_id: &str,
    ) -> Result<Option<String>, StoreDown> {
        let sql = "SELECT id FROM tb_signals WHERE strategy_id = $1 AND delivery_id = $2";
        let row: Option<(String,)> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(strategy_id).bind(delivery_id).fetch_optional(pool).await.map_err(|_| StoreDown))?;
        Ok(row.map(|(id,)| id))
    }

    /// Stores the outcome of signal `id`: its status, the request summary, all results, and each follower's
    /// own result (`(account_id, follower_id, result JSON)`), in one transaction.
    pub(crate) async fn finish_signal(
        &self,
        id: &str,
        status: &str,
        request: Option<&str>,
        results: &str,
        per_account: &[(String, String, String)],
    ) -> Result<(), StoreDown> {
        let update = "UPDATE tb_signals SET status = $2, request = $3, results = $4 WHERE id = $1";
        let row = "INSERT INTO tb_signal_accounts (signal_id, account_id, follower_id, result) \
                   VALUES ($1, $2, $3, $4)";
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(|_| StoreDown)?;
            sqlx::query(update).bind(id).bind(status).bind(request).bind(results)
                .execute(&mut *tx).await.map_err(|_| StoreDown)?;
            for (account, follower, result) in per_account {
                sqlx::query(row).bind(id).bind(account).bind(follower).bind(result)
                    .execute(&mut *tx).await.map_err(|_| StoreDown)?;
            }
            tx.commit().await.map_err(|_| StoreDown)
        })
    }

    /// The strategy's signals, newest first (owner view: every result).
    pub(crate) async fn signals(
        &self,
        strategy_id: &str,
        limit: i64,
    ) -> Result<Vec<Signal>, StoreDown> {
        let sql = "SELECT id, strategy_id, created_at, status, request, results FROM tb_signals \
                   WHERE strategy_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
        let rows: Vec<SignalRow> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(strategy_id).bind(limit).fetch_all(pool).await.map_err(|_| StoreDown))?;
        Ok(rows.into_iter().map(signal).collect())
    }

    /// One row per (signal, account of `follower` it touched), newest signal first;
    /// `results` holds that account's result only (the follower never sees the other
    /// followers' accounts).
    pub(crate) async fn signals_for_follower(
        &self,
        follower: &str,
        limit: i64,
    ) -> Result<Vec<Signal>, StoreDown> {
        let sql = "SELECT s.id, s.strategy_id, s.created_at, s.status, s.request, a.result \
                   FROM tb_signal_accounts a JOIN tb_signals s ON s.id = a.signal_id \
                   WHERE a.follower_id = $1 ORDER BY s.created_at DESC, s.id DESC, a.account_id LIMIT $2";
        let rows: Vec<SignalRow> = on_pool!(&self.db, pool => sqlx::query_as(sql)
            .bind(follower).bind(limit).fetch_all(pool).await.map_err(|_| StoreDown))?;
        Ok(rows.into_iter().map(signal).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrap_rebuilds_the_sealing_context_and_nothing_else() {
        let id = "stg_0123456789abcdef0123456789abcdef";
        let row = |slot: &str| vec![id.to_owned(), slot.to_owned()];
        assert_eq!(
            rewrap_context(&format!("{id}.3"), &row("3")),
            secret_context(id, 3)
        );
        assert!(rewrap_context(&format!("{id}.3"), &row("3")).is_some());
        // The row id must agree with its columns; slots are positive numbers.
        assert_eq!(rewrap_context(&format!("{id}.2"), &row("3")), None);
        assert_eq!(rewrap_context(&format!("{id}.0"), &row("0")), None);
        assert_eq!(rewrap_context(&format!("{id}.x"), &row("x")), None);
        assert_eq!(rewrap_context(id, &[id.to_owned()]), None);
        assert_ne!(secret_context(id, 3), secret_context(id, 4));
    }
}
