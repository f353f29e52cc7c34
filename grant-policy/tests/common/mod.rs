//! Shared test helpers: ids, stores on every backend, a recording audit sink.
#![allow(dead_code, unreachable_pub)] // Shared by every test module, each using a part.

use std::sync::Mutex;

use grant_policy::{
    AccountId, AuditSink, Decision, DecisionEvent, GrantEvent, Level, Operation, RiskEvent, UserId,
};

pub fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

pub fn acct(s: &str) -> AccountId {
    AccountId::new(s).unwrap()
}

/// One audited decision, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub user: String,
    pub account: String,
    pub operation: Operation,
    pub want: Option<Level>,
    pub decision: Decision,
}

/// Keeps every record it is given.
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub decisions: Mutex<Vec<Recorded>>,
    pub grants: Mutex<Vec<(String, &'static str, &'static str)>>,
    pub risk: Mutex<Vec<(String, &'static str)>>,
}

impl AuditSink for RecordingSink {
    fn decision(&self, e: &DecisionEvent<'_>) {
        self.decisions.lock().unwrap().push(Recorded {
            user: e.user.to_string(),
            account: e.account.to_string(),
            operation: e.operation,
            want: e.want,
            decision: e.decision,
        });
    }
    fn grant(&self, e: &GrantEvent<'_>) {
        self.grants
            .lock()
            .unwrap()
            .push((e.actor.to_string(), e.action, e.outcome));
    }
    fn risk(&self, e: &RiskEvent<'_>) {
        self.risk.lock().unwrap().push((e.user.to_string(), e.code));
    }
}

/// A SQLite store in a fresh temporary directory, with a realistic pool (8 connections,
/// WAL, busy timeout). Keep the directory alive as long as the store.
#[cfg(feature = "sqlite")]
pub async fn sqlite_store() -> (grant_policy::store::SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = grant_policy::store::SqliteStore::builder(dir.path().join("grants.db"))
        .max_connections(8)
        .busy_timeout(std::time::Duration::from_secs(30))
        .open()
        .await
        .unwrap();
    (store, dir)
}

/// Runs `test` on a PostgreSQL store in a fresh schema with a random name, first on the
/// search path, so that tests from every crate can share one database; drops the schema
/// afterwards (a test that panics leaves its schema behind for inspection). Panics when
/// `STRONGROOM_PG_URL` is not set: an ignored test that is run must not pass silently.
#[cfg(feature = "postgres")]
pub async fn with_pg_store<T, F>(
    test: impl FnOnce(std::sync::Arc<grant_policy::store::PgStore>) -> F,
) -> T
where
    F: Future<Output = T>,
{
    let (store, schema) = pg_store().await;
    let out = test(std::sync::Arc::new(store.clone())).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    out
}

#[cfg(feature = "postgres")]
async fn pg_store() -> (grant_policy::store::PgStore, String) {
    use std::hash::{BuildHasher, Hasher};
    use std::str::FromStr;

    use sqlx::Connection;
    use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

    let url = std::env::var("STRONGROOM_PG_URL")
        .expect("needs PostgreSQL (STRONGROOM_PG_URL) (this test must not pass without it)");
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    let schema = format!("gp_test_{:016x}", h.finish());
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .unwrap();
    let store = grant_policy::store::PgStore::new(pool);
    store.migrate().await.unwrap();
    (store, schema)
}
