//! The SQLite store: guards, tampering, retention, reading and two writers on one file.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sqlite")]
use crate::support;

use audit_trail::{AuditError, AuditLog, Checkpoint, MacKey, Record, SqliteStore};
use sqlx::AssertSqlSafe;
use support::Db;

struct SqliteDb {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
    log: AuditLog,
}

async fn fresh() -> SqliteDb {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let log = AuditLog::new(store.clone(), support::key()).await.unwrap();
    SqliteDb {
        _dir: dir,
        path,
        store,
        log,
    }
}

impl Db for SqliteDb {
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
        self.sql(
            "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_prefix_delete; \
             DROP TRIGGER audit_checkpoints_no_update; DROP TRIGGER audit_checkpoints_no_delete; \
             DROP TRIGGER audit_head_no_delete; DROP TRIGGER audit_head_forward;",
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
        // A second pool on the same file: another process, as far as locking goes.
        let store = SqliteStore::open(&self.path).await?;
        AuditLog::new(store, key).await
    }

    async fn cleanup(self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_triggers_refuse_changes() {
    support::guards(fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tampering_is_named() {
    support::tampering(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_retention_keeps_the_chain_verifiable() {
    support::retention(fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_queue_subject_view_and_export() {
    support::reading(fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_writers_one_chain() {
    support::two_instances(fresh().await, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrate_twice_is_a_no_op() {
    let db = fresh().await;
    db.store.migrate().await.unwrap();
    support::seed(&db).await;
    db.store.migrate().await.unwrap();
    assert!(db.log.verify().await.unwrap().is_intact());
}

/// The store is busy (another connection holds the write lock): the writer keeps the
/// events and retries, `flush` reports the failure, `record` waits once the queue is
/// full instead of dropping anything, and everything lands once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_outage_keeps_events_and_applies_backpressure() {
    use std::time::Duration;

    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    SqliteStore::open(&path).await.unwrap();
    // The log's pool gives up on a locked database after 20 ms.
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(Duration::from_millis(20));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .unwrap();
    let log = AuditLog::builder(SqliteStore::new(pool), support::key())
        .queue(2)
        .batch(2)
        .build()
        .await
        .unwrap();

    // Another writer holds the lock.
    let blocker = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let mut lock = blocker.begin_with("BEGIN IMMEDIATE").await.unwrap();

    log.record(support::event(1)).await;
    assert!(matches!(
        log.flush().await,
        Err(AuditError::Unavailable { .. })
    ));
    // The writer holds a batch of at most two and the queue two more: the fifth record
    // waits for room.
    let pending = {
        let log = log.clone();
        tokio::spawn(async move {
            for i in 2..=8 {
                log.record(support::event(i)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "record dropped or skipped the queue"
    );

    sqlx::query("SELECT 1").execute(&mut *lock).await.unwrap();
    lock.rollback().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while log.flush().await.is_err() {}
    })
    .await
    .unwrap();
    let report = log.verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 8);
    // The failed attempts are counted, and their time too.
    let stats = log.writer_stats();
    assert_eq!((stats.enqueued, stats.written), (8, 8));
    assert!(stats.failures >= 1, "{stats:?}");
    assert!(stats.busy >= Duration::from_millis(20), "{stats:?}");
}

/// The writer's counters: every queued event is counted once, in batches no larger than
/// configured, with the time spent appending them; `since` gives one interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writer_stats_count_events_batches_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("audit.db"))
        .await
        .unwrap();
    let log = AuditLog::builder(store, support::key())
        .batch(4)
        .build()
        .await
        .unwrap();
    assert_eq!(log.writer_stats(), audit_trail::WriterStats::default());
    for i in 1..=10 {
        log.record(support::event(i)).await;
    }
    log.flush().await.unwrap();
    let first = log.writer_stats();
    assert_eq!((first.enqueued, first.written, first.failures), (10, 10, 0));
    // At most four per batch: at least three batches, at most one per event.
    assert!((3..=10).contains(&first.batches), "{first:?}");
    assert!(first.busy > std::time::Duration::ZERO, "{first:?}");
    // Each batch commits once; the commit wait is part of the writer's time.
    assert!(first.commit > std::time::Duration::ZERO, "{first:?}");
    assert!(first.commit <= first.busy, "{first:?}");

    for i in 11..=12 {
        log.clone().record(support::event(i)).await;
    }
    log.flush().await.unwrap();
    let interval = log.writer_stats().since(&first);
    assert_eq!((interval.enqueued, interval.written), (2, 2));
    assert!((1..=2).contains(&interval.batches), "{interval:?}");
    assert!(log.verify().await.unwrap().is_intact());
}

/// The writer lingers for a fuller batch: events arriving a few milliseconds apart share
/// one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writer_lingers_for_a_fuller_batch() {
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("audit.db"))
        .await
        .unwrap();
    let log = AuditLog::builder(store, support::key())
        .batch(5)
        .linger(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    for i in 1..=5 {
        log.record(support::event(i)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    log.flush().await.unwrap();
    // One transaction for the five.
    assert_eq!(log.writer_stats().batches, 1, "{:?}", log.writer_stats());
    // Without a linger each event may go alone.
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("audit.db"))
        .await
        .unwrap();
    let log = AuditLog::builder(store, support::key())
        .linger(Duration::ZERO)
        .build()
        .await
        .unwrap();
    for i in 1..=3 {
        log.record(support::event(i)).await;
        log.flush().await.unwrap();
    }
    assert_eq!(log.writer_stats().batches, 3);
}
