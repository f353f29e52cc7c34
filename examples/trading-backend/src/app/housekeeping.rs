//! `serve`'s housekeeping: deletes what has ended, so that tables of expired rows do not
//! grow without bound. Every decision (a session's expiry, a refresh family's lifetime,
//! a challenge's expiry, a limiter's state) is taken on the row itself when it is read;
//! a sweep only reclaims space, so a sweep that fails changes no answer (it is logged
//! and retried at the next run).
//!
//! Every [`EVERY`], first at start, each instance: expired sessions (auth-core
//! `Sessions::sweep`), ended refresh-token families (`RefreshTokens::sweep`), expired
//! second-factor login challenges (`Mfa::sweep`), and on PostgreSQL without Redis the
//! limiters' expired rows (`throttle::PgStore::purge_expired`). The webhook replay guard
//! and the audit retention have their own tasks (modules `copy_trading`, `audit`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::{Mfa, RefreshTokens, Sessions};

/// How often the sweeps run.
pub(crate) const EVERY: Duration = Duration::from_secs(3600);

/// What the sweeps delete from.
#[derive(Debug)]
pub(crate) struct Housekeeping {
    pub(crate) sessions: Sessions,
    pub(crate) refresh: RefreshTokens,
    pub(crate) mfa: Mfa,
    pub(crate) limiters: throttle::Store,
}

impl Housekeeping {
    /// Starts the periodic task on the current runtime.
    pub(crate) fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.run().await;
            }
        })
    }

    /// One run of every sweep; failures are logged with a stable code.
    pub(crate) async fn run(&self) {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
        match self.sessions.sweep().await {
            Ok(n) => tracing::info!(
                code = "housekeeping.sessions",
                deleted = n,
                "expired sessions deleted"
            ),
            Err(e) => {
                tracing::warn!(code = "housekeeping.sessions_failed", error = %e, "session sweep failed")
            }
        }
        match self.refresh.sweep(now).await {
            Ok(n) => tracing::info!(
                code = "housekeeping.refresh_families",
                deleted = n,
                "ended refresh-token families deleted"
            ),
            Err(e) => {
                tracing::warn!(code = "housekeeping.refresh_failed", error = %e, "refresh-family sweep failed")
            }
        }
        match self.mfa.sweep().await {
            Ok(n) => tracing::info!(
                code = "housekeeping.mfa_challenges",
                deleted = n,
                "expired second-factor challenges deleted"
            ),
            Err(e) => {
                tracing::warn!(code = "housekeeping.mfa_failed", error = %e, "second-factor challenge sweep failed")
            }
        }
        #[cfg(feature = "postgres")]
        if let throttle::Store::Postgres(store) = &self.limiters {
            match store.purge_expired(since_epoch).await {
                Ok(n) => tracing::info!(
                    code = "housekeeping.limiters",
                    deleted = n,
                    "expired limiter rows deleted"
                ),
                Err(_) => tracing::warn!(
                    code = "housekeeping.limiters_failed",
                    "limiter purge failed"
                ),
            }
        }
        #[cfg(not(feature = "postgres"))]
        let _ = &self.limiters; // memory and Redis state expire on their own
    }
}
