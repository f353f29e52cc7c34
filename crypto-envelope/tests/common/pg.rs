//! PostgreSQL test schemas: each test gets a fresh schema on `STRONGROOM_PG_URL` as its
//! search path, so tests run in parallel against one database.

use crypto_envelope::PgStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The database URL the service-backed tests use.
pub(crate) fn url() -> String {
    std::env::var("STRONGROOM_PG_URL")
        .expect("STRONGROOM_PG_URL must be set to run the PostgreSQL tests")
}

/// A fresh schema and a pool whose search path is that schema.
pub(crate) struct PgSchema {
    /// The pool, `max_connections` wide.
    pub(crate) pool: sqlx::PgPool,
    /// The schema's name.
    pub(crate) name: String,
}

impl PgSchema {
    /// Creates a schema named `prefix` and 16 random hex digits.
    pub(crate) async fn create(prefix: &str, max_connections: u32) -> Self {
        let url = url();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let mut suffix = [0u8; 8];
        aws_lc_rs::rand::fill(&mut suffix).unwrap();
        let name = format!(
            "{prefix}_{}",
            suffix
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let options = url
            .parse::<PgConnectOptions>()
            .unwrap()
            .options([("search_path", name.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .unwrap();
        Self { pool, name }
    }

    /// A migrated secret store in this schema.
    pub(crate) async fn store(&self) -> PgStore {
        let store = PgStore::new(self.pool.clone());
        store.migrate().await.unwrap();
        store
    }

    /// Drops the schema (a test that panics before this leaves it for inspection).
    pub(crate) async fn drop_schema(self) {
        self.pool.close().await;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url())
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&admin)
        .await
        .unwrap();
    }
}
