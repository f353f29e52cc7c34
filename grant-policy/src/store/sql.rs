//! The SQL shared by the SQLite and PostgreSQL stores.
//!
//! Both dialects accept the same statements (numbered `$n` parameters, `INSERT ... ON
//! CONFLICT ... DO UPDATE ... WHERE`), so the trait implementations are written once, in
//! [`sql_store_impls!`], and instantiated for each pool type. Every statement names the
//! user it acts for.

use crate::error::StoreError;
use crate::grant::{Access, Role};
use access_types::Level;

pub(super) const REGISTER: &str = "\
INSERT INTO gp_accounts (account_id, owner_id, capability, created_at) VALUES ($1, $2, $3, $4) \
ON CONFLICT (account_id) DO UPDATE SET capability = excluded.capability \
WHERE gp_accounts.owner_id = excluded.owner_id";

pub(super) const DEREGISTER_SHARES: &str = "\
DELETE FROM gp_shares WHERE account_id = $1 \
AND EXISTS (SELECT 1 FROM gp_accounts WHERE account_id = $1 AND owner_id = $2)";

pub(super) const DEREGISTER_ACCOUNT: &str =
    "DELETE FROM gp_accounts WHERE account_id = $1 AND owner_id = $2";

/// One row when `$1` owns `$2` or holds a share of it; none otherwise.
pub(super) const ACCESS: &str = "\
SELECT a.owner_id, a.capability, s.level, s.expires_at \
FROM gp_accounts a LEFT JOIN gp_shares s ON s.account_id = a.account_id AND s.grantee_id = $1 \
WHERE a.account_id = $2 AND (a.owner_id = $1 OR s.grantee_id IS NOT NULL)";

/// Every account `$1` owns or holds a share of (its share row, if any, joined).
pub(super) const ACCESSIBLE: &str = "\
SELECT a.account_id, a.owner_id, a.capability, s.level, s.expires_at \
FROM gp_accounts a LEFT JOIN gp_shares s ON s.account_id = a.account_id AND s.grantee_id = $1 \
WHERE a.owner_id = $1 OR s.grantee_id IS NOT NULL ORDER BY a.account_id";

/// Inserts only when `$6` owns `$1`: ownership is checked in the same statement.
pub(super) const SHARE: &str = "\
INSERT INTO gp_shares (account_id, grantee_id, level, expires_at, created_at) \
SELECT account_id, $2, $3, $4, $5 FROM gp_accounts WHERE account_id = $1 AND owner_id = $6 \
ON CONFLICT (account_id, grantee_id) DO UPDATE SET level = excluded.level, \
expires_at = excluded.expires_at, created_at = excluded.created_at";

pub(super) const REVOKE: &str = "\
DELETE FROM gp_shares WHERE account_id = $1 AND grantee_id = $2 \
AND EXISTS (SELECT 1 FROM gp_accounts WHERE account_id = $1 AND owner_id = $3)";

pub(super) const OWNS: &str =
    "SELECT COUNT(*) FROM gp_accounts WHERE account_id = $1 AND owner_id = $2";

pub(super) const SHARES: &str = "\
SELECT s.grantee_id, s.level, s.expires_at FROM gp_shares s \
JOIN gp_accounts a ON a.account_id = s.account_id \
WHERE s.account_id = $1 AND a.owner_id = $2 ORDER BY s.grantee_id";

pub(super) const OWNER: &str = "SELECT owner_id FROM gp_accounts WHERE account_id = $1";

/// Clears the live-trading switch of an account being deregistered (same transaction).
pub(super) const DEREGISTER_LIVE: &str =
    "DELETE FROM gp_risk_live WHERE account_id = $1 AND owner_id = $2";

/// The limits; `allow_live_trading` (migration 30002) is no longer read.
pub(super) const PROFILE: &str = "\
SELECT max_order_notional, daily_cap FROM gp_risk_profiles WHERE user_id = $1";

pub(super) const SET_LIMITS: &str = "\
INSERT INTO gp_risk_profiles (user_id, allow_live_trading, max_order_notional, daily_cap, updated_at) \
VALUES ($1, FALSE, $2, $3, $4) \
ON CONFLICT (user_id) DO UPDATE SET max_order_notional = excluded.max_order_notional, \
daily_cap = excluded.daily_cap, updated_at = excluded.updated_at";

/// Writes the switch of (`$3`, `$4`) only when `$3` has limits, in one statement.
pub(super) const SET_LIVE: &str = "\
INSERT INTO gp_risk_live (owner_id, account_id, enabled, updated_at) \
SELECT $3, $4, $1, $2 WHERE EXISTS (SELECT 1 FROM gp_risk_profiles WHERE user_id = $3) \
ON CONFLICT (owner_id, account_id) DO UPDATE SET enabled = excluded.enabled, \
updated_at = excluded.updated_at";

pub(super) const LIVE: &str =
    "SELECT enabled FROM gp_risk_live WHERE owner_id = $1 AND account_id = $2";

/// The atomic reservation: one statement, which takes the row's write lock (SQLite: the
/// database write lock; PostgreSQL: the row lock of `ON CONFLICT DO UPDATE`, whose `WHERE`
/// is evaluated against the latest committed row). `$4` is `cap - amount`, computed by
/// the caller with `amount <= cap`, so the comparison cannot overflow a `BIGINT`.
pub(super) const RESERVE: &str = "\
INSERT INTO gp_risk_usage (user_id, day, used, reserved) VALUES ($1, $2, 0, $3) \
ON CONFLICT (user_id, day) DO UPDATE SET reserved = gp_risk_usage.reserved + excluded.reserved \
WHERE gp_risk_usage.used + gp_risk_usage.reserved <= $4";

pub(super) const SETTLE: &str = "\
UPDATE gp_risk_usage SET reserved = reserved - $1, used = used + $2 \
WHERE user_id = $3 AND day = $4 AND reserved >= $1";

pub(super) const USAGE: &str =
    "SELECT used, reserved FROM gp_risk_usage WHERE user_id = $1 AND day = $2";

pub(super) fn level_from(s: &str, column: &'static str) -> Result<Level, StoreError> {
    match s {
        "read" => Ok(Level::Read),
        "trade" => Ok(Level::Trade),
        _ => Err(StoreError::Corrupt { column }),
    }
}

pub(super) fn access_from(
    user: &str,
    (owner, capability, level, expires_at): (String, String, Option<String>, Option<i64>),
) -> Result<Access, StoreError> {
    let capability = level_from(&capability, "gp_accounts.capability")?;
    let role = if owner == user {
        Role::Owner
    } else {
        match level {
            Some(level) => Role::Grantee {
                level: level_from(&level, "gp_shares.level")?,
                expires_at,
            },
            // The WHERE clause makes this unreachable; refuse rather than guess.
            None => {
                return Err(StoreError::Corrupt {
                    column: "gp_shares.level",
                });
            }
        }
    };
    Ok(Access { capability, role })
}

macro_rules! sql_store_impls {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::GrantStore for $store {
            async fn register(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
                capability: $crate::Level,
                now: i64,
            ) -> Result<(), $crate::GrantError> {
                let done = sqlx::query::<$db>($crate::store::sql::REGISTER)
                    .bind(account.as_str())
                    .bind(owner.as_str())
                    .bind(capability.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::from)?;
                if done.rows_affected() == 0 {
                    Err($crate::GrantError::AlreadyRegistered)
                } else {
                    Ok(())
                }
            }

            async fn deregister(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
            ) -> Result<(), $crate::GrantError> {
                let mut tx = self.pool.begin().await.map_err($crate::StoreError::from)?;
                sqlx::query::<$db>($crate::store::sql::DEREGISTER_SHARES)
                    .bind(account.as_str())
                    .bind(owner.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::StoreError::from)?;
                let done = sqlx::query::<$db>($crate::store::sql::DEREGISTER_ACCOUNT)
                    .bind(account.as_str())
                    .bind(owner.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::StoreError::from)?;
                if done.rows_affected() == 0 {
                    return Err($crate::GrantError::NotFound);
                }
                sqlx::query::<$db>($crate::store::sql::DEREGISTER_LIVE)
                    .bind(account.as_str())
                    .bind(owner.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::StoreError::from)?;
                tx.commit().await.map_err($crate::StoreError::from)?;
                Ok(())
            }

            async fn access(
                &self,
                user: &$crate::UserId,
                account: &$crate::AccountId,
            ) -> Result<Option<$crate::Access>, $crate::StoreError> {
                let row: Option<(String, String, Option<String>, Option<i64>)> =
                    sqlx::query_as::<$db, _>($crate::store::sql::ACCESS)
                        .bind(user.as_str())
                        .bind(account.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|r| $crate::store::sql::access_from(user.as_str(), r))
                    .transpose()
            }

            async fn accessible(
                &self,
                user: &$crate::UserId,
            ) -> Result<Vec<($crate::AccountId, $crate::Access)>, $crate::StoreError> {
                let rows: Vec<(String, String, String, Option<String>, Option<i64>)> =
                    sqlx::query_as::<$db, _>($crate::store::sql::ACCESSIBLE)
                        .bind(user.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter()
                    .map(|(account, owner, capability, level, expires_at)| {
                        let id = $crate::AccountId::new(&account).map_err(|_| {
                            $crate::StoreError::Corrupt {
                                column: "gp_accounts.account_id",
                            }
                        })?;
                        let access = $crate::store::sql::access_from(
                            user.as_str(),
                            (owner, capability, level, expires_at),
                        )?;
                        Ok((id, access))
                    })
                    .collect()
            }

            async fn share(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
                share: &$crate::Share,
                now: i64,
            ) -> Result<(), $crate::GrantError> {
                let done = sqlx::query::<$db>($crate::store::sql::SHARE)
                    .bind(account.as_str())
                    .bind(share.grantee.as_str())
                    .bind(share.level.as_str())
                    .bind(share.expires_at)
                    .bind(now)
                    .bind(owner.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::from)?;
                if done.rows_affected() == 0 {
                    Err($crate::GrantError::NotFound)
                } else {
                    Ok(())
                }
            }

            async fn revoke(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
                grantee: &$crate::UserId,
            ) -> Result<bool, $crate::GrantError> {
                let done = sqlx::query::<$db>($crate::store::sql::REVOKE)
                    .bind(account.as_str())
                    .bind(grantee.as_str())
                    .bind(owner.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err($crate::StoreError::from)?;
                if done.rows_affected() > 0 {
                    return Ok(true);
                }
                let (owned,): (i64,) = sqlx::query_as::<$db, _>($crate::store::sql::OWNS)
                    .bind(account.as_str())
                    .bind(owner.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::StoreError::from)?;
                if owned == 0 {
                    Err($crate::GrantError::NotFound)
                } else {
                    Ok(false)
                }
            }

            async fn shares(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
            ) -> Result<Vec<$crate::Share>, $crate::GrantError> {
                let rows: Vec<(String, String, Option<i64>)> =
                    sqlx::query_as::<$db, _>($crate::store::sql::SHARES)
                        .bind(account.as_str())
                        .bind(owner.as_str())
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::StoreError::from)?;
                if rows.is_empty() {
                    let (owned,): (i64,) = sqlx::query_as::<$db, _>($crate::store::sql::OWNS)
                        .bind(account.as_str())
                        .bind(owner.as_str())
                        .fetch_one(&self.pool)
                        .await
                        .map_err($crate::StoreError::from)?;
                    if owned == 0 {
                        return Err($crate::GrantError::NotFound);
                    }
                }
                let mut out = Vec::with_capacity(rows.len());
                for (grantee, level, expires_at) in rows {
                    out.push($crate::Share {
                        grantee: $crate::UserId::new(&grantee).map_err(|_| {
                            $crate::StoreError::Corrupt {
                                column: "gp_shares.grantee_id",
                            }
                        })?,
                        level: $crate::store::sql::level_from(&level, "gp_shares.level")?,
                        expires_at,
                    });
                }
                Ok(out)
            }

            async fn owner(
                &self,
                account: &$crate::AccountId,
            ) -> Result<Option<$crate::UserId>, $crate::StoreError> {
                let row: Option<(String,)> = sqlx::query_as::<$db, _>($crate::store::sql::OWNER)
                    .bind(account.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(owner,)| {
                    $crate::UserId::new(&owner).map_err(|_| $crate::StoreError::Corrupt {
                        column: "gp_accounts.owner_id",
                    })
                })
                .transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::RiskStore for $store {
            async fn limits(
                &self,
                user: &$crate::UserId,
            ) -> Result<Option<$crate::RiskLimits>, $crate::StoreError> {
                let row: Option<(i64, i64)> = sqlx::query_as::<$db, _>($crate::store::sql::PROFILE)
                    .bind(user.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                let Some((max_order, cap)) = row else {
                    return Ok(None);
                };
                Ok(Some($crate::RiskLimits {
                    max_order_notional: $crate::Notional::from_stored(
                        max_order,
                        "gp_risk_profiles.max_order_notional",
                    )?,
                    daily_cap: $crate::Notional::from_stored(cap, "gp_risk_profiles.daily_cap")?,
                }))
            }

            async fn set_limits(
                &self,
                user: &$crate::UserId,
                limits: $crate::RiskLimits,
                now: i64,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query::<$db>($crate::store::sql::SET_LIMITS)
                    .bind(user.as_str())
                    .bind(limits.max_order_notional.as_i64())
                    .bind(limits.daily_cap.as_i64())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn set_live_trading(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
                enabled: bool,
                now: i64,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query::<$db>($crate::store::sql::SET_LIVE)
                    .bind(enabled)
                    .bind(now)
                    .bind(owner.as_str())
                    .bind(account.as_str())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn live_trading(
                &self,
                owner: &$crate::UserId,
                account: &$crate::AccountId,
            ) -> Result<bool, $crate::StoreError> {
                let row: Option<(bool,)> = sqlx::query_as::<$db, _>($crate::store::sql::LIVE)
                    .bind(owner.as_str())
                    .bind(account.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some_and(|(enabled,)| enabled))
            }

            async fn reserve(
                &self,
                user: &$crate::UserId,
                day: i64,
                amount: $crate::Notional,
                cap: $crate::Notional,
            ) -> Result<bool, $crate::StoreError> {
                let Some(room) = cap.checked_sub(amount) else {
                    return Ok(false);
                };
                let done = sqlx::query::<$db>($crate::store::sql::RESERVE)
                    .bind(user.as_str())
                    .bind(day)
                    .bind(amount.as_i64())
                    .bind(room.as_i64())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn settle(
                &self,
                user: &$crate::UserId,
                day: i64,
                reserved_amount: $crate::Notional,
                used_amount: $crate::Notional,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query::<$db>($crate::store::sql::SETTLE)
                    .bind(reserved_amount.as_i64())
                    .bind(used_amount.as_i64())
                    .bind(user.as_str())
                    .bind(day)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn usage(
                &self,
                user: &$crate::UserId,
                day: i64,
            ) -> Result<$crate::Usage, $crate::StoreError> {
                let row: Option<(i64, i64)> = sqlx::query_as::<$db, _>($crate::store::sql::USAGE)
                    .bind(user.as_str())
                    .bind(day)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some((used, reserved)) = row else {
                    return Ok($crate::Usage::default());
                };
                Ok($crate::Usage {
                    used: $crate::Notional::from_stored(used, "gp_risk_usage.used")?,
                    reserved: $crate::Notional::from_stored(reserved, "gp_risk_usage.reserved")?,
                })
            }
        }
    };
}

pub(super) use sql_store_impls;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement names the user it acts for (owner, grantee or risk user).
    #[test]
    fn every_statement_is_scoped_by_user() {
        for (name, sql, column) in [
            ("REGISTER", REGISTER, "owner_id"),
            ("DEREGISTER_SHARES", DEREGISTER_SHARES, "owner_id = $2"),
            ("DEREGISTER_ACCOUNT", DEREGISTER_ACCOUNT, "owner_id = $2"),
            ("ACCESS", ACCESS, "grantee_id = $1"),
            ("ACCESSIBLE", ACCESSIBLE, "grantee_id = $1"),
            ("SHARE", SHARE, "owner_id = $6"),
            ("REVOKE", REVOKE, "owner_id = $3"),
            ("OWNS", OWNS, "owner_id = $2"),
            ("SHARES", SHARES, "owner_id = $2"),
            ("PROFILE", PROFILE, "user_id = $1"),
            ("SET_LIMITS", SET_LIMITS, "user_id"),
            ("SET_LIVE", SET_LIVE, "user_id = $3"),
            ("LIVE", LIVE, "owner_id = $1 AND account_id = $2"),
            ("DEREGISTER_LIVE", DEREGISTER_LIVE, "owner_id = $2"),
            ("RESERVE", RESERVE, "user_id"),
            ("SETTLE", SETTLE, "user_id = $3"),
            ("USAGE", USAGE, "user_id = $1"),
        ] {
            assert!(sql.contains(column), "{name} is not scoped by {column}");
        }
        assert!(ACCESS.contains("a.owner_id = $1 OR s.grantee_id IS NOT NULL"));
        assert!(ACCESSIBLE.contains("a.owner_id = $1 OR s.grantee_id IS NOT NULL"));
    }
}
