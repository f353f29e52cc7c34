//! Store-independent suites: each SQL store's test file runs every suite on fresh
//! databases, so SQLite and PostgreSQL are held to the same behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use audit_trail::{
    Actor, Anchor, AuditError, AuditLog, Checkpoint, Event, Fault, FaultKind, MacKey, Outcome,
    Record,
};

/// The key of the test chains.
pub fn key() -> MacKey {
    MacKey::from_bytes([7; 32])
}

/// Another key (a forger's).
pub fn other_key() -> MacKey {
    MacKey::from_bytes([9; 32])
}

pub fn event(i: u32) -> Event {
    let user = format!("user-{}", i % 2);
    Event::new(
        Actor::new(&user, "session"),
        "login.success",
        Outcome::Success,
    )
    .with_subject(&user)
    .with_target(format!("target-{i}"))
    .with_request_id(format!("req-{i}"))
}

/// A fresh database with the audit migration and a log on it, and raw access to it.
pub trait Db: Sized {
    fn log(&self) -> &AuditLog;
    /// Runs `sql` (several statements allowed) as the application's connection.
    async fn sql(&self, sql: &str) -> Result<(), String>;
    /// Becomes a database administrator: disables or drops every audit trigger.
    async fn admin(&self);
    /// Inserts `record` as a row, as it is.
    async fn insert(&self, record: &Record) -> Result<(), String>;
    /// Inserts `checkpoint` as a row, as it is.
    async fn insert_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), String>;
    /// Another log (another instance) on the same database, with `key`.
    async fn open(&self, key: MacKey) -> Result<AuditLog, AuditError>;
    /// Drops the database.
    async fn cleanup(self);
}

/// Records 1..=10.
pub async fn seed<D: Db>(db: &D) -> Anchor {
    for i in 1..=10 {
        let r = db.log().append(event(i)).await.unwrap();
        assert_eq!(r.seq, u64::from(i));
    }
    let head = db.log().head().await.unwrap();
    assert_eq!(head.seq, 10);
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 10);
    head
}

async fn expect<D: Db>(db: &D, seq: u64, kind: FaultKind) {
    let report = db.log().verify().await.unwrap();
    assert_eq!(report.fault, Some(Fault { seq, kind }), "{report}");
    assert!(!report.is_intact());
}

/// Without admin rights, the triggers refuse every change but appends.
pub async fn guards<D: Db>(db: D) {
    seed(&db).await;
    for sql in [
        "UPDATE audit_records SET target = 'x' WHERE seq = 5",
        "UPDATE audit_records SET seq = 50 WHERE seq = 5",
        "DELETE FROM audit_records WHERE seq = 5",
        "DELETE FROM audit_records",
        "UPDATE audit_head SET seq = 9",
        "UPDATE audit_head SET key_id = 'someone-else'",
        "DELETE FROM audit_head",
    ] {
        assert!(db.sql(sql).await.is_err(), "allowed: {sql}");
    }
    // A checkpoint row goes in (only a key holder can make it verify), but cannot be
    // changed or removed once there.
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 10);
    db.cleanup().await;
}

/// Edit, delete, insert, reorder, truncate, forge: each named.
pub async fn tampering<D: Db>(fresh: impl AsyncFn() -> D) {
    // Edit a field.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql("UPDATE audit_records SET target = 'elsewhere' WHERE seq = 5")
        .await
        .unwrap();
    expect(&db, 5, FaultKind::Edited).await;
    db.cleanup().await;

    // Edit the time only.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql("UPDATE audit_records SET at = at + 1 WHERE seq = 3")
        .await
        .unwrap();
    expect(&db, 3, FaultKind::Edited).await;
    db.cleanup().await;

    // Delete a row.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql("DELETE FROM audit_records WHERE seq = 5")
        .await
        .unwrap();
    expect(&db, 5, FaultKind::Deleted).await;
    db.cleanup().await;

    // Insert a row (a doctored copy of record 5) and renumber the rest.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql(
        "UPDATE audit_records SET seq = -seq WHERE seq >= 5; \
         UPDATE audit_records SET seq = 1 - seq WHERE seq < 0; \
         INSERT INTO audit_records (seq, at, principal, method, action, target, subject, \
           outcome, reason, request_id, prev_mac, mac) \
         SELECT 5, at, principal, method, 'grant.create', target, subject, outcome, reason, \
           request_id, prev_mac, mac FROM audit_records WHERE seq = 6",
    )
    .await
    .unwrap();
    expect(&db, 5, FaultKind::Inserted).await;
    db.cleanup().await;

    // Reorder: records 5 and 6 trade places (every column but seq). Swapping the seq
    // column with the rest would change nothing: the order is the seq.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql(
        "UPDATE audit_records SET seq = -1 WHERE seq = 5; \
         UPDATE audit_records SET seq = 5 WHERE seq = 6; \
         UPDATE audit_records SET seq = 6 WHERE seq = -1",
    )
    .await
    .unwrap();
    expect(&db, 5, FaultKind::Reordered).await;
    db.cleanup().await;

    // Move a record far: record 2 and record 8 trade places.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql(
        "UPDATE audit_records SET seq = -1 WHERE seq = 2; \
         UPDATE audit_records SET seq = 2 WHERE seq = 8; \
         UPDATE audit_records SET seq = 8 WHERE seq = -1",
    )
    .await
    .unwrap();
    expect(&db, 2, FaultKind::Reordered).await;
    db.cleanup().await;

    // Cut the tail: the head row still says 10.
    let db = fresh().await;
    let anchor = seed(&db).await;
    db.admin().await;
    db.sql("DELETE FROM audit_records WHERE seq >= 9")
        .await
        .unwrap();
    expect(&db, 9, FaultKind::Deleted).await;
    // Rewind the head too: undetectable from the database alone (README), caught by an
    // anchor kept outside.
    db.sql("UPDATE audit_head SET seq = 8, mac = (SELECT mac FROM audit_records WHERE seq = 8)")
        .await
        .unwrap();
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    let report = db.log().verify_against(anchor).await.unwrap();
    assert_eq!(
        report.fault,
        Some(Fault {
            seq: 9,
            kind: FaultKind::Deleted
        })
    );
    db.cleanup().await;

    // Forge a record with another key: past the head it is an insertion; with the head
    // moved to it, it is indistinguishable from an edit of record 11.
    let db = fresh().await;
    let anchor = seed(&db).await;
    let forged = Record::seal(&other_key(), 11, 1, event(11), anchor.mac);
    db.insert(&forged).await.unwrap();
    expect(&db, 11, FaultKind::Inserted).await;
    db.admin().await;
    db.sql("UPDATE audit_head SET seq = 11").await.unwrap();
    expect(&db, 11, FaultKind::Edited).await;
    db.cleanup().await;

    // A record forged in the middle with another key and spliced in.
    let db = fresh().await;
    let _ = seed(&db).await;
    db.admin().await;
    db.sql("DELETE FROM audit_records WHERE seq = 4")
        .await
        .unwrap();
    let forged = Record::seal(&other_key(), 4, 1, event(99), [0; 32]);
    db.insert(&forged).await.unwrap();
    expect(&db, 4, FaultKind::Edited).await;
    db.cleanup().await;

    // Rewrite the head's MAC: the anchor check names it.
    let db = fresh().await;
    seed(&db).await;
    db.admin().await;
    db.sql("UPDATE audit_head SET mac = (SELECT mac FROM audit_records WHERE seq = 3)")
        .await
        .unwrap();
    expect(&db, 10, FaultKind::Anchor).await;
    db.cleanup().await;

    // A log with another key is refused before it writes anything.
    let db = fresh().await;
    seed(&db).await;
    assert!(matches!(
        db.open(other_key()).await,
        Err(AuditError::WrongKey { .. })
    ));
    db.cleanup().await;
}

/// Retention: a prefix goes with a checkpoint, verification stays green, nothing else
/// can be deleted, and a forged checkpoint is caught.
pub async fn retention<D: Db>(fresh: impl AsyncFn() -> D) {
    let db = fresh().await;
    seed(&db).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    for i in 11..=15 {
        db.log().append(event(i)).await.unwrap();
    }
    let checkpoint = db.log().prune_before(cutoff).await.unwrap().unwrap();
    assert_eq!(checkpoint.seq, 10);
    assert!(checkpoint.verify(&key()));
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 5);
    assert_eq!(report.checkpoint, Some(checkpoint));
    assert_eq!((report.start.seq, report.last.seq), (10, 15));
    // Nothing more to drop at the same cutoff.
    assert_eq!(db.log().prune_before(cutoff).await.unwrap(), None);
    // A record after the checkpoint cannot be deleted; the checkpoint cannot either.
    assert!(
        db.sql("DELETE FROM audit_records WHERE seq = 12")
            .await
            .is_err()
    );
    assert!(db.sql("DELETE FROM audit_checkpoints").await.is_err());
    // Appends continue the chain.
    db.log().append(event(16)).await.unwrap();
    assert!(db.log().verify().await.unwrap().is_intact());
    // An anchor older than the checkpoint cannot be checked and is accepted.
    let old = Anchor {
        seq: 3,
        mac: [1; 32],
    };
    assert!(db.log().verify_against(old).await.unwrap().is_intact());
    // Everything old: the whole chain goes, the head stays.
    let all = db
        .log()
        .prune_before(now_ms() + 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.seq, 16);
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, 0);
    db.log().append(event(17)).await.unwrap();
    assert!(db.log().verify().await.unwrap().is_intact());
    db.cleanup().await;

    // A checkpoint forged without the key lets the triggers delete, but not verify.
    let db = fresh().await;
    let anchor = seed(&db).await;
    let forged = Checkpoint::seal(&other_key(), 6, [0; 32], 1);
    db.insert_checkpoint(&forged).await.unwrap();
    db.sql("DELETE FROM audit_records WHERE seq <= 6")
        .await
        .unwrap();
    expect(&db, 6, FaultKind::Checkpoint).await;
    assert!(matches!(
        db.log().prune_before(now_ms()).await,
        Err(AuditError::Tampered(Fault {
            seq: 6,
            kind: FaultKind::Checkpoint
        }))
    ));
    let _ = anchor;
    db.cleanup().await;

    // The checkpoint removed by an administrator: the prefix is missing.
    let db = fresh().await;
    seed(&db).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = now_ms();
    db.log().append(event(11)).await.unwrap();
    db.log().prune_before(cutoff).await.unwrap().unwrap();
    db.admin().await;
    db.sql("DELETE FROM audit_checkpoints").await.unwrap();
    expect(&db, 1, FaultKind::Deleted).await;
    // Pruning refuses a chain that does not verify.
    assert!(matches!(
        db.log().prune_before(now_ms()).await,
        Err(AuditError::Tampered(_))
    ));
    db.cleanup().await;
}

/// The queue, flush, the user's own view and the export.
pub async fn reading<D: Db>(db: D) {
    seed(&db).await;
    for i in 11..=20 {
        db.log().record(event(i)).await;
    }
    db.log().flush().await.unwrap();
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.last.seq, 20);

    let mine = db.log().for_subject("user-1", 3).await.unwrap();
    let seqs: Vec<u64> = mine.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [19, 17, 15]);
    assert!(
        mine.iter()
            .all(|r| r.event.subject() == Some("user-1") && r.verify(&key()))
    );
    assert!(db.log().for_subject("nobody", 10).await.unwrap().is_empty());
    assert!(db.log().for_subject("user-1", 0).await.unwrap().is_empty());

    let mut out = Vec::new();
    let n = db.log().export_since(0, &mut out).await.unwrap();
    assert_eq!(n, 20);
    let text = String::from_utf8(out).unwrap();
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 20);
    let report = audit_trail::verify_records(&key(), Anchor::EMPTY, &records, &[]);
    assert!(report.is_intact(), "{report}");
    // Since the 15th record's time: at least records 15..=20.
    let since = records[14].at;
    let mut out = Vec::new();
    let n = db.log().export_since(since, &mut out).await.unwrap();
    assert!((6..=20).contains(&n));

    // An edited row is refused in the user's view and the export.
    db.admin().await;
    db.sql("UPDATE audit_records SET action = 'x' WHERE seq = 17")
        .await
        .unwrap();
    assert!(matches!(
        db.log().for_subject("user-1", 10).await,
        Err(AuditError::Tampered(Fault { seq: 17, .. }))
    ));
    assert!(matches!(
        db.log().export_since(0, &mut Vec::new()).await,
        Err(AuditError::Tampered(Fault { seq: 17, .. }))
    ));
    db.cleanup().await;
}

/// Two instances writing at once, through `append` and through the queue: one
/// contiguous chain that verifies.
pub async fn two_instances<D: Db>(db: D, per_instance: u32) {
    let a = db.log().clone();
    let b = db.open(key()).await.unwrap();
    let logs = [a, b];
    let mut tasks = Vec::new();
    for (n, log) in logs.iter().cloned().enumerate() {
        for i in 0..per_instance {
            let log = log.clone();
            let n = u32::try_from(n).unwrap();
            tasks.push(tokio::spawn(async move {
                let e = event(n * 10_000 + i);
                if i % 2 == 0 {
                    log.append(e).await.map(|_| ())
                } else {
                    log.record(e).await;
                    Ok(())
                }
            }));
        }
        tasks.push(tokio::spawn(async move { log.flush().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for log in &logs {
        log.flush().await.unwrap();
    }
    let report = db.log().verify().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.checked, u64::from(2 * per_instance));
    assert_eq!(
        db.log().head().await.unwrap().seq,
        u64::from(2 * per_instance)
    );
    db.cleanup().await;
}

/// The INSERT of a raw record row (both dialects).
pub const INSERT_ROW: &str = "INSERT INTO audit_records (seq, at, principal, method, action, \
target, subject, outcome, reason, request_id, prev_mac, mac) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// The INSERT of a raw checkpoint row.
pub const INSERT_CHECKPOINT: &str =
    "INSERT INTO audit_checkpoints (seq, mac, at, checkpoint_mac) VALUES ($1, $2, $3, $4)";

/// Binds a record's columns to [`INSERT_ROW`].
#[macro_export]
macro_rules! bind_record {
    ($q:expr, $r:expr) => {{
        let r = $r;
        let e = &r.event;
        $q.bind(i64::try_from(r.seq).unwrap())
            .bind(r.at)
            .bind(e.actor().principal().map(str::to_owned))
            .bind(e.actor().method().to_owned())
            .bind(e.action().to_owned())
            .bind(e.target().map(str::to_owned))
            .bind(e.subject().map(str::to_owned))
            .bind(e.outcome().as_str())
            .bind(e.reason().map(str::to_owned))
            .bind(e.request_id().map(str::to_owned))
            .bind(r.prev_mac.to_vec())
            .bind(r.mac.to_vec())
    }};
}

pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
