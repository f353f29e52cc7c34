//! The integrator's half of axum-login: a `users` table, the user type and the
//! `AuthnBackend` that checks passwords (Argon2id) and loads users by id.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use axum_login::{AuthUser, AuthnBackend, UserId};
use serde::Deserialize;
use sqlx::SqlitePool;

/// A row of `users`.
#[derive(Clone)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) email: String,
    /// The PHC string (`$argon2id$...`).
    password_hash: String,
}

// By hand: the password hash stays out of logs.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    /// The bytes of the password hash, as axum-login's guide does: a new password
    /// changes them, which ends every session holding the old value.
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// What `POST /login` takes, as JSON or as a form.
#[derive(Clone, Deserialize)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A store or hashing failure.
#[derive(Debug)]
pub(crate) enum BackendError {
    /// The SQLite query failed.
    Sqlx(sqlx::Error),
    /// The blocking hashing task failed.
    Task(tokio::task::JoinError),
    /// The stored hash could not be parsed or a new one made.
    Hash(argon2::password_hash::Error),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlx(e) => write!(f, "user store: {e}"),
            Self::Task(e) => write!(f, "hashing task: {e}"),
            Self::Hash(e) => write!(f, "password hash: {e}"),
        }
    }
}

impl std::error::Error for BackendError {}

impl From<sqlx::Error> for BackendError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sqlx(e)
    }
}

/// Users in SQLite.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pool: SqlitePool,
}

type Row = (i64, String, String);

fn user((id, email, password_hash): Row) -> User {
    User {
        id,
        email,
        password_hash,
    }
}

impl Backend {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Creates the `users` table.
    pub(crate) async fn migrate(&self) -> Result<(), BackendError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS users (
                id INTEGER PRIMARY KEY,
                email TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL
            )",
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds a user with an Argon2id hash of `password` (the argon2 crate's defaults).
    pub(crate) async fn create_user(
        &self,
        email: &str,
        password: String,
    ) -> Result<User, BackendError> {
        let password_hash = tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
        })
        .await
        .map_err(BackendError::Task)?
        .map_err(BackendError::Hash)?;
        let row: Row = sqlx::query_as(
            "INSERT INTO users (email, password_hash) VALUES (?, ?)
             RETURNING id, email, password_hash",
        )
        .bind(email)
        .bind(password_hash)
        .fetch_one(&self.pool)
        .await?;
        Ok(user(row))
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = BackendError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, BackendError> {
        let row: Option<Row> =
            sqlx::query_as("SELECT id, email, password_hash FROM users WHERE email = ?")
                .bind(&creds.email)
                .fetch_optional(&self.pool)
                .await?;
        // Like axum-login's example: an unknown address answers at once (no work to
        // equalise its timing with a wrong password's).
        let Some(found) = row.map(user) else {
            return Ok(None);
        };
        // Argon2id takes tens of milliseconds of CPU: off the async workers.
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&found.password_hash).map_err(BackendError::Hash)?;
            let ok = Argon2::default()
                .verify_password(creds.password.as_bytes(), &parsed)
                .is_ok();
            Ok(ok.then_some(found))
        })
        .await
        .map_err(BackendError::Task)?
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, BackendError> {
        let row: Option<Row> =
            sqlx::query_as("SELECT id, email, password_hash FROM users WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(user))
    }
}
