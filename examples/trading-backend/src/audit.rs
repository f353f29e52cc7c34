//! The audit log of this service (audit-trail): its MAC key, sealed under the master key
//! ring in `tb_audit_key`; the log over the service database; retention; and the
//! operator commands `audit verify | export | prune`. The HTTP side (request ids, the
//! per-handler helper, the grant-policy sink, `GET /api/audit`) is `app/audit.rs`.
//!
//! ## Why a sealed random key, not one derived from the master key
//!
//! audit-trail offers both (`MacKey::derive` from key material, or `MacKey::generate`
//! kept sealed). This service seals 32 random bytes with crypto-envelope under the
//! master key ring (context `{purpose: "trading-backend.audit-key"}`):
//!
//! * the same property as a derived key: only a holder of the master key can obtain it,
//!   so a database writer cannot forge records or re-chain the log after an edit;
//! * it survives a master-key rotation: `rewrap` re-seals it under the new master key
//!   (it is listed in `sealed.rs`), so the chain keeps one key and records written
//!   before the rotation still verify after the old master key is dropped. A key derived
//!   from the master key would change with it, and the old records would become
//!   unverifiable (or the old master key would have to be kept forever);
//! * it works with master-key backends that cannot export key material (an HSM or a
//!   KMS only wraps and unwraps data keys: there are no bytes to derive from).

use std::time::Duration;

use audit_trail::{Actor, AuditLog, Event, MacKey, Outcome};
use crypto_envelope::{EncryptionContext, Envelope};

use crate::app::BuildError;
use crate::db::{Db, on_pool};

/// The `purpose` of the encryption context of the sealed audit key.
pub(crate) const AUDIT_KEY_PURPOSE: &str = "trading-backend.audit-key";

/// The id of the one row of `tb_audit_key`.
const KEY_ROW: &str = "mac";

/// `STRONGROOM_AUDIT_RETENTION_DAYS`: records older than this many days are dropped (as a
/// whole prefix, behind a signed checkpoint) by `serve` every [`PRUNE_EVERY`] and by
/// `audit prune`. Unset: keep everything.
pub(crate) const ENV_AUDIT_RETENTION_DAYS: &str = "STRONGROOM_AUDIT_RETENTION_DAYS";

/// How often `serve` applies the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

fn context() -> Option<EncryptionContext> {
    EncryptionContext::new()
        .with("purpose", AUDIT_KEY_PURPOSE)
        .ok()
}

/// The context of the stored row for `rewrap` (`sealed.rs`); `None` for any other id.
pub(crate) fn rewrap_context(id: &str, columns: &[String]) -> Option<EncryptionContext> {
    (id == KEY_ROW && columns.is_empty())
        .then(context)
        .flatten()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn read_sealed(db: &Db) -> Result<Option<Vec<u8>>, BuildError> {
    let sql = "SELECT sealed FROM tb_audit_key WHERE id = $1";
    on_pool!(db, pool => sqlx::query_scalar(sql)
        .bind(KEY_ROW)
        .fetch_optional(pool)
        .await
        .map_err(|_| BuildError::Component("audit key table unavailable")))
}

/// The audit MAC key: unsealed from `tb_audit_key`, or made, sealed and stored when there
/// is none. Two instances starting together both insert with `ON CONFLICT DO NOTHING` and
/// then re-read: both use the row that won.
///
/// # Errors
///
/// [`BuildError::Component`] when the table or the master-key backend is unavailable, or
/// the stored key does not open under the master key ring (fail closed: the service does
/// not start and does not write a second chain).
pub(crate) async fn load_or_create_key(db: &Db, envelope: &Envelope) -> Result<MacKey, BuildError> {
    let ctx = context().ok_or(BuildError::Component("audit key context"))?;
    let sealed = match read_sealed(db).await? {
        Some(sealed) => sealed,
        None => {
            let key =
                MacKey::generate().map_err(|_| BuildError::Component("no system randomness"))?;
            let sealed = envelope
                .seal(key.expose_secret(), &ctx)
                .await
                .map_err(|_| BuildError::Component("sealing the audit key failed"))?
                .to_bytes();
            let sql = "INSERT INTO tb_audit_key (id, sealed, created_at) VALUES ($1, $2, $3) \
                       ON CONFLICT (id) DO NOTHING";
            on_pool!(db, pool => sqlx::query(sql)
                .bind(KEY_ROW)
                .bind(sealed)
                .bind(unix_now())
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|_| BuildError::Component("audit key table unavailable")))?;
            read_sealed(db)
                .await?
                .ok_or(BuildError::Component("audit key table unavailable"))?
        }
    };
    let plain = envelope.open(&sealed, &ctx).await.map_err(|e| {
        if e.is_unavailable() {
            BuildError::Component("master key backend unavailable (audit key)")
        } else if e.is_configuration() {
            tracing::error!(code = "audit.key_not_held", error = %e, "the stored audit key was sealed under a key the configured key ring does not hold");
            BuildError::Component(
                "the audit key (tb_audit_key) was sealed under another key: start with the \
                 STRONGROOM_MASTER_KEY it was sealed under",
            )
        } else {
            tracing::error!(
                code = "audit.key_unseal_refused",
                "the stored audit key does not open under the master key ring"
            );
            BuildError::Component(
                "the audit key (tb_audit_key) does not open under the configured master keys",
            )
        }
    })?;
    let bytes: [u8; audit_trail::KEY_LEN] = plain
        .expose_secret()
        .try_into()
        .map_err(|_| BuildError::Component("the stored audit key has the wrong length"))?;
    Ok(MacKey::from_bytes(bytes))
}

/// The audit log over the service database (its tables were migrated with the others in
/// `db.rs`), with the sealed key. Starts the writer task on the current runtime.
///
/// # Errors
///
/// As [`load_or_create_key`]; [`BuildError::Component`] when the audit store cannot be
/// read or its chain was written with another key.
pub(crate) async fn open(db: &Db, envelope: &Envelope) -> Result<AuditLog, BuildError> {
    let key = load_or_create_key(db, envelope).await?;
    let store: audit_trail::AuditStore = match db {
        #[cfg(feature = "sqlite")]
        Db::Sqlite(pool) => audit_trail::SqliteStore::new(pool.clone()).into(),
        #[cfg(feature = "postgres")]
        Db::Postgres(pool) => audit_trail::PgStore::new(pool.clone()).into(),
    };
    AuditLog::builder(store, key)
        .build()
        .await
        .map_err(|e| match e {
            audit_trail::AuditError::WrongKey { .. } => BuildError::Component(
                "the audit chain was written with another key than tb_audit_key's",
            ),
            _ => BuildError::Component("audit store unavailable"),
        })
}

/// The retention from [`ENV_AUDIT_RETENTION_DAYS`]: `None` (keep everything) when unset
/// or empty.
///
/// # Errors
///
/// A message naming the variable when it is not a whole number of days in 1..=36500.
pub(crate) fn retention_from_env() -> Result<Option<Duration>, String> {
    // Through the configuration's one reader (the `serve` flag, then the environment).
    let Some(value) = crate::config::var(ENV_AUDIT_RETENTION_DAYS) else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<u64>() {
        Ok(days @ 1..=36_500) => Ok(Some(Duration::from_secs(days * 86_400))),
        _ => Err(format!(
            "{ENV_AUDIT_RETENTION_DAYS}: a whole number of days, 1..=36500"
        )),
    }
}

/// The newest time (unix ms) a record may have and still be dropped under `retention`.
pub(crate) fn cutoff_ms(retention: Duration) -> i64 {
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
    )
    .unwrap_or(i64::MAX);
    now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
}

/// `serve`: applies the retention every [`PRUNE_EVERY`] (first at start). Every
/// instance may run it: pruning is serialized by the chain's head lock, and a second
/// instance finds nothing left to drop. A failure (the chain does not verify, the store
/// is down) is logged with its code and retried at the next tick; nothing is dropped.
pub(crate) fn spawn_retention(log: AuditLog, retention: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            match log.prune_before(cutoff_ms(retention)).await {
                Ok(Some(checkpoint)) => tracing::info!(
                    code = "audit.pruned",
                    through_seq = checkpoint.seq,
                    "audit records past the retention dropped behind a checkpoint"
                ),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    code = "audit.prune_failed",
                    error = e.code(),
                    "audit retention not applied"
                ),
            }
        }
    });
}

/// An operator action, as the CLI records it: actor = the operating system user
/// (`$USER`, else `operator`), method `cli`.
pub(crate) fn cli_event(action: &str, outcome: Outcome) -> Event {
    let who = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "operator".to_owned());
    Event::new(Actor::new(who, "cli"), action, outcome)
}

/// A time given on the command line: unix seconds, or an RFC 3339 date-time
/// (`2025-01-31T12:00:00Z`, `2025-01-31T12:00:00.5+01:00`). Unix milliseconds.
///
/// # Errors
///
/// A message naming the accepted forms.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    const FORMS: &str = "expected unix seconds or an RFC 3339 date-time (2025-01-31T12:00:00Z)";
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<i64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| FORMS.to_owned());
    }
    rfc3339_ms(text).ok_or_else(|| FORMS.to_owned())
}

/// RFC 3339 section 5.6 `date-time` to unix milliseconds (no leap second).
fn rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        (!part.is_empty() && part.bytes().all(|c| c.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut millis = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &text[start..i.min(start + 3)];
        millis = digits.parse::<i64>().ok()? * 10_i64.pow(3 - u32::try_from(digits.len()).ok()?);
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let total = h * 60 + m;
            if *sign == b'+' { total } else { -total }
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 to the civil date (proleptic Gregorian).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Some(secs * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20.25+01:00"),
            Ok(1_700_000_000_250)
        );
        assert_eq!(
            parse_time("2024-02-29T00:00:00-00:30"),
            Ok(1_709_166_600_000)
        );
        for bad in [
            "",
            "-1",
            "2023-02-29T00:00:00Z",
            "2023-11-14T22:13:20",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20Zjunk",
            "yesterday",
            "99999999999999999999",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rewrap_context_is_the_sealing_context() {
        assert!(rewrap_context(KEY_ROW, &[]).is_some());
        assert!(rewrap_context("other", &[]).is_none());
        assert_eq!(
            format!("{:?}", rewrap_context(KEY_ROW, &[])),
            format!("{:?}", context())
        );
    }
}
