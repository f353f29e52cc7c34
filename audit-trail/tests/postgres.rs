//! The PostgreSQL store: the same suites, each in its own schema, and two instances
//! (two pools) appending at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "postgres")]
use crate::support;

use audit_trail::{AuditError, AuditLog, Checkpoint, MacKey, PgStore, Record};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use support::Db;

/// `STRONGROOM_PG_URL` as the other crates' tests read it, else `DATABASE_URL`.
fn url() -> String {
    std::env::var("STRONGROOM_PG_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect("STRONGROOM_PG_URL or DATABASE_URL must be set to run the PostgreSQL tests")
}

struct PgDb {
    admin: PgPool,
    schema: String,
    store: PgStore,
    log: AuditLog,
}

async fn pool_on(schema: &str, connections: u32) -> PgPool {
    let options: PgConnectOptions = url().parse().unwrap();
    PgPoolOptions::new()
        .max_connections(connections)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .unwrap()
}

async fn fresh() -> PgDb {
    let schema = format!(
        "audit_test_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url())
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap();
    let store = PgStore::new(pool_on(&schema, 8).await);
    store.migrate().await.unwrap();
    let log = AuditLog::new(store.clone(), support::key()).await.unwrap();
    PgDb {
        admin,
        schema,
        store,
        log,
    }
}

impl Db for PgDb {
    fn log(&self) -> &AuditLog {
        &self.log
    }

    async fn sql(&self, sql: &str) -> Result<(), String> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(self.store.pool())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn admin(&self) {
        // The tables' owner switches its triggers off.
        self.sql(
            "ALTER TABLE audit_records DISABLE TRIGGER USER; \
             ALTER TABLE audit_checkpoints DISABLE TRIGGER USER; \
             ALTER TABLE audit_head DISABLE TRIGGER USER;",
        )
        .await
        .unwrap();
    }

    async fn insert(&self, record: &Record) -> Result<(), String> {
        bind_record!(sqlx::query(support::INSERT_ROW), record)
            .execute(self.store.pool())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn insert_checkpoint(&self, c: &Checkpoint) -> Result<(), String> {
        sqlx::query(support::INSERT_CHECKPOINT)
            .bind(i64::try_from(c.seq).unwrap())
            .bind(c.mac.to_vec())
            .bind(c.at)
            .bind(c.checkpoint_mac.to_vec())
            .execute(self.store.pool())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn open(&self, key: MacKey) -> Result<AuditLog, AuditError> {
        // Another instance: its own pool on the same schema.
        let store = PgStore::new(pool_on(&self.schema, 8).await);
        store.migrate().await?;
        AuditLog::new(store, key).await
    }

    async fn cleanup(self) {
        self.store.pool().close().await;
        sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_triggers_refuse_changes() {
    let db = fresh().await;
    // TRUNCATE skips row triggers: a statement trigger refuses it.
    support::seed(&db).await;
    for sql in [
        "TRUNCATE audit_records",
        "TRUNCATE audit_checkpoints",
        "TRUNCATE audit_head",
    ] {
        assert!(db.sql(sql).await.is_err(), "allowed: {sql}");
    }
    db.cleanup().await;
    support::guards(fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_tampering_is_named() {
    support::tampering(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_retention_keeps_the_chain_verifiable() {
    support::retention(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_queue_subject_view_and_export() {
    support::reading(fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_two_instances_one_chain() {
    support::two_instances(fresh().await, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (STRONGROOM_PG_URL)"]
async fn postgres_migrate_twice_and_beside_other_migrations() {
    let db = fresh().await;
    // Another crate's migration already recorded in the same database is left alone.
    sqlx::raw_sql(AssertSqlSafe(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (40001, 'someone else', TRUE, '\\x00'::bytea, 0)"
            .to_owned(),
    ))
    .execute(db.store.pool())
    .await
    .unwrap();
    db.store.migrate().await.unwrap();
    support::seed(&db).await;
    db.cleanup().await;
}
