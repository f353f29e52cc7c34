//! Review: a database created by the migrations before the credential epochs (20001 to
//! 20003), holding users and sessions, upgraded by the current migrations. Old sessions
//! of enabled users keep working at epoch 0 and end with the first sign-out-everywhere;
//! a disabled user's old session and a session whose user row is gone fail closed; a
//! legacy bcrypt user still logs in (and is upgraded).
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.
use crate::support;

use std::sync::Arc;

use auth_core::{
    Accounts, ApiKeys, Credential, CredentialKind, Password, Resolution, Resolver, SessionConfig,
    Sessions, SqliteStore,
};
use support::{bearer, fast_hasher};

const OFF_KEY_ID: &str = "0123456789abcdef0123456789abcdef";
const OFF_KEY_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn digest(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

async fn old_session(pool: &sqlx::SqlitePool, token: &str, id: &str, user_id: &str) {
    sqlx::query(
        "INSERT INTO auth_sessions (token_digest, id, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, 1, 4102444800)",
    )
    .bind(digest(token))
    .bind(id)
    .bind(user_id)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_epoch_rows_upgrade_and_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auth.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    // The schema as the old migrations left it.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    for name in [
        "20001_auth_users.sql",
        "20002_auth_sessions.sql",
        "20003_auth_api_keys.sql",
    ] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations/sqlite")
                .join(name),
            old.join(name),
        )
        .unwrap();
    }
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let legacy = "legacy password 0123";
    for (id, email, disabled) in [
        ("u-old", "old@example.com", false),
        ("u-off", "off@example.com", true),
    ] {
        sqlx::query(
            "INSERT INTO auth_users (id, email, password_hash, must_change_password, disabled, \
             created_at) VALUES ($1, $2, $3, 0, $4, 1)",
        )
        .bind(id)
        .bind(email)
        .bind(bcrypt::hash(legacy, 4).unwrap())
        .bind(disabled)
        .execute(&pool)
        .await
        .unwrap();
    }
    old_session(&pool, "ses_old-enabled", "s-old", "u-old").await;
    old_session(&pool, "ses_old-disabled", "s-off", "u-off").await;
    old_session(&pool, "ses_old-orphan", "s-orphan", "u-gone").await;
    // The old disable did not end API keys.
    sqlx::query(
        "INSERT INTO auth_api_keys (id, user_id, name, secret_digest, scopes, created_at) \
         VALUES ($1, 'u-off', 'bot', $2, '', 1)",
    )
    .bind(OFF_KEY_ID)
    .bind(digest(OFF_KEY_SECRET))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    // Upgrade.
    let store = Arc::new(SqliteStore::connect(&url).await.unwrap());
    let sessions = Sessions::new(store.clone(), SessionConfig::default());
    let accounts = Accounts::new(store.clone(), sessions.clone(), fast_hasher());
    assert!(matches!(
        sessions.resolve(&bearer("ses_old-enabled")).await,
        Resolution::Authenticated(_)
    ));
    assert!(matches!(
        sessions.resolve(&bearer("ses_old-disabled")).await,
        Resolution::Invalid(r) if r.code() == "user.disabled"
    ));
    assert!(matches!(
        sessions.resolve(&bearer("ses_old-orphan")).await,
        Resolution::Invalid(r) if r.code() == "user.unknown"
    ));
    // The legacy bcrypt user logs in; the disabled one does not.
    let login = accounts
        .login("old@example.com", &Password::new(legacy))
        .await
        .unwrap()
        .into_session()
        .unwrap();
    assert!(
        accounts
            .login("off@example.com", &Password::new(legacy))
            .await
            .is_err()
    );
    // The old session ends with the first sign-out-everywhere, with the new one.
    accounts.sign_out_everywhere(&login.user.id).await.unwrap();
    assert!(!matches!(
        sessions.resolve(&bearer("ses_old-enabled")).await,
        Resolution::Authenticated(_)
    ));
    assert!(!matches!(
        sessions.resolve(&bearer(login.token.expose_secret())).await,
        Resolution::Authenticated(_)
    ));
    // Re-enabling the user disabled before the upgrade revives nothing: neither the
    // session that raced the old disable nor the API key the old disable left.
    accounts.set_disabled("u-off", false).await.unwrap();
    assert!(!matches!(
        sessions.resolve(&bearer("ses_old-disabled")).await,
        Resolution::Authenticated(_)
    ));
    let keys = ApiKeys::new(store.clone());
    let key = format!("ak_{OFF_KEY_ID}_{OFF_KEY_SECRET}");
    assert!(matches!(
        keys.resolve(&Credential::new(CredentialKind::ApiKey, &key).unwrap()).await,
        Resolution::Invalid(r) if r.code() == "user.credential_superseded"
    ));
}
