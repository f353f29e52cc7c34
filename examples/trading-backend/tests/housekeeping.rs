//! `serve` deletes what has ended (module `app::housekeeping`): expired sessions, ended
//! refresh-token families and expired second-factor challenges, at start and hourly,
//! and leaves what is live.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may unwrap (workspace rule).

use crate::common;

use std::time::Duration;

use common::{Server, create_user};

const PASSWORD: &str = "correct horse battery staple 7";

async fn count(pool: &sqlx::SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_sweeps_ended_rows_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), &[], "alice@example.com", Some(PASSWORD), false);
    let url = format!("sqlite://{}", dir.path().join("strongroom.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let user_id: String = sqlx::query_scalar("SELECT id FROM auth_users WHERE email = ?")
        .bind("alice@example.com")
        .fetch_one(&pool)
        .await
        .unwrap();
    // Rows that ended long ago (times in Unix seconds).
    sqlx::query(
        "INSERT INTO auth_sessions (token_digest, id, user_id, created_at, expires_at) \
         VALUES (?, 'ended-session', ?, 1, 2)",
    )
    .bind(vec![1u8; 32])
    .bind(&user_id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_refresh_families (id, user_id, user_epoch, token_digest, created_at, \
         expires_at, idle_expires_at, last_used_at, auth_time) \
         VALUES ('ended-family', ?, 0, ?, 1, 2, 2, 1, 1)",
    )
    .bind(&user_id)
    .bind(vec![2u8; 32])
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_mfa_challenges (token_digest, user_id, user_epoch, created_at, expires_at) \
         VALUES (?, ?, 0, 1, 2)",
    )
    .bind(vec![3u8; 32])
    .bind(&user_id)
    .execute(&pool)
    .await
    .unwrap();
    let ended = "SELECT (SELECT COUNT(*) FROM auth_sessions WHERE id = 'ended-session') \
                 + (SELECT COUNT(*) FROM auth_refresh_families WHERE id = 'ended-family') \
                 + (SELECT COUNT(*) FROM auth_mfa_challenges WHERE expires_at = 2)";
    assert_eq!(count(&pool, ended).await, 3);

    let s = Server::start(dir.path(), &[]);
    let session = s.login("alice@example.com", PASSWORD).await;
    let mut left = count(&pool, ended).await;
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = count(&pool, ended).await;
    }
    assert_eq!(left, 0, "the ended rows are still there after 10 s");
    // The live session is untouched.
    let (status, me) = s.get("/api/auth/me", Some(&session)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "alice@example.com", "{me}");
}
