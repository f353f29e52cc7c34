//! `trading-backend rewrap` with the key unchanged: it opens every row, reports the rows
//! that do not validate or do not open by id (never a value), finishes the rest, and
//! exits non-zero; after the rows are fixed it reports complete and exits zero.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

mod common;

use std::sync::Arc;

use common::{cli, create_user, stderr, stdout};
use crypto_envelope::{Envelope, LocalKeyRing, SecretRef, SecretStore, Secrets, SqliteStore};

const CANARY_A: &str = "CANARY-rewrap-a-91e2";
const CANARY_B: &str = "CANARY-rewrap-b-4c07";

#[tokio::test]
async fn rewrap_reports_rows_that_do_not_open_or_validate_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // Creates the database, runs every migration and writes the development key.
    create_user(
        dir.path(),
        &[],
        "w@example.com",
        Some("rewrap-password-1"),
        false,
    );
    let dev_key = std::fs::read_to_string(dir.path().join("dev-master.key")).unwrap();
    let ring = LocalKeyRing::from_lookup(|name| {
        (name == "STRONGROOM_MASTER_KEY").then(|| dev_key.trim().to_owned())
    })
    .unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("strongroom.db"))
        .await
        .unwrap();
    let store: Arc<dyn SecretStore> = Arc::new(sqlite.clone());
    let secrets = Secrets::new(Envelope::new(ring).unwrap(), Arc::clone(&store));
    let a = SecretRef::owner("alice", "API_SECRET").unwrap();
    let b = SecretRef::owner("bob", "API_SECRET").unwrap();
    secrets.put(&a, CANARY_A.as_bytes()).await.unwrap();
    secrets.put(&b, CANARY_B.as_bytes()).await.unwrap();
    let fine = SecretRef::owner("carol", "API_SECRET").unwrap();
    secrets.put(&fine, b"fine").await.unwrap();

    // Bob's row gets Alice's blob: on the primary key, but sealed for another row.
    let copied = store.get(&a).await.unwrap().unwrap();
    store
        .put(&b, &copied.sealed, &copied.meta.key, 0)
        .await
        .unwrap();
    // A row whose name no longer validates.
    sqlx::query(
        "INSERT INTO strongroom_secrets (owner, scope, name, sealed, key_ref, created_at, updated_at) \
         VALUES ('dave', '', 'bad name', $1, $2, 0, 0)",
    )
    .bind(&copied.sealed)
    .bind(&copied.meta.key)
    .execute(sqlite.pool())
    .await
    .unwrap();
    let id_of = |owner: &'static str| {
        let pool = sqlite.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM strongroom_secrets WHERE owner = $1")
                .bind(owner)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (bob_id, dave_id) = (id_of("bob").await, id_of("dave").await);
    sqlite.pool().close().await;

    let out = cli(dir.path(), &[], &["rewrap", "--batch-size", "1"]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{o}\n{e}");
    assert!(o.contains("rewrap INCOMPLETE"), "{o}");
    assert!(o.contains(&format!("row {bob_id}: ")), "{o}");
    assert!(o.contains("envelope.rewrap.row_refused"), "{o}");
    assert!(o.contains(&format!("row {dave_id}: ")), "{o}");
    assert!(o.contains("envelope.rewrap.row_invalid"), "{o}");
    assert!(e.contains("keep the old key"), "{e}");
    for text in [&o, &e] {
        assert!(!text.contains("CANARY"), "{text}");
    }

    // Fixed by hand: the run is complete and exits zero.
    let sqlite = SqliteStore::open(&dir.path().join("strongroom.db"))
        .await
        .unwrap();
    sqlx::query("DELETE FROM strongroom_secrets WHERE owner IN ('bob', 'dave')")
        .execute(sqlite.pool())
        .await
        .unwrap();
    sqlite.pool().close().await;
    let out = cli(dir.path(), &[], &["rewrap"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("rewrap complete"), "{}", stdout(&out));
}
