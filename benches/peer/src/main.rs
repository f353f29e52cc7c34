//! The load bench's peer: `GET /api/auth/me` behind axum-login 0.18 and tower-sessions
//! 0.14 on SQLite, built the way an axum integrator builds it today (axum-login's SQLite
//! example), with the SQLite settings of Strongroom's reference backend.
//!
//! ```sh
//! cargo run --release --manifest-path benches/peer/Cargo.toml -- --store cached --port 8091
//! ```
//!
//! It makes a SQLite file in a temporary directory (removed on Ctrl-C or SIGTERM),
//! creates one user (`--email`, `--password`), prints its listen address and serves:
//!
//! * `POST /login`, JSON or form `{email, password}`: 204 and a session cookie, or 401;
//! * `GET /api/auth/me` behind `login_required!`: `{user_id, email, auth_method}` as
//!   Strongroom's `/api/auth/me` answers it;
//! * `GET /healthz`: `{"status": "ok", "store": ...}`, outside the session layers.
//!
//! `--store sqlite` keeps sessions in tower-sessions' `SqliteStore`; `--store cached`
//! (the default) puts a moka `CachingSessionStore` in front of it.

mod users;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_login::{AuthManagerLayerBuilder, AuthSession, login_required};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tower_sessions::cookie::time;
use tower_sessions::{
    CachingSessionStore, ExpiredDeletion, Expiry, SessionManagerLayer, SessionStore,
};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_sqlx_store::SqliteStore;

use crate::users::{Backend, Credentials};

/// Which session store the session layer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// tower-sessions' `SqliteStore` alone: one SQLite read per request for the session.
    Sqlite,
    /// A moka `CachingSessionStore` in front of the `SqliteStore`.
    Cached,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Cached => "cached",
        }
    }
}

#[derive(Debug)]
struct Args {
    store: Store,
    port: u16,
    email: String,
    password: String,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        store: Store::Cached,
        port: 8091,
        email: "peer@example.com".into(),
        password: "peer-password-123".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--store" => {
                out.store = match value.as_str() {
                    "sqlite" => Store::Sqlite,
                    "cached" => Store::Cached,
                    _ => return Err("--store: sqlite or cached".into()),
                }
            }
            "--port" => out.port = value.parse().map_err(|_| "--port: a port number")?,
            "--email" => out.email = value,
            "--password" => out.password = value,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let dir = tempfile::tempdir()?;

    // Strongroom's SQLite settings (examples/trading-backend/src/db.rs): WAL, synchronous
    // FULL, foreign keys, 10 s busy timeout, 8 connections, no ping before each use.
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("peer.sqlite"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;

    let backend = Backend::new(pool.clone());
    backend.migrate().await?;
    let user = backend.create_user(&args.email, args.password).await?;

    let sqlite_store = SqliteStore::new(pool);
    sqlite_store.migrate().await?;
    // Expired sessions are swept once a minute, as axum-login's example does.
    let sweeper = tokio::spawn(
        sqlite_store
            .clone()
            .continuously_delete_expired(Duration::from_secs(60)),
    );

    let app = match args.store {
        Store::Sqlite => app(backend, sqlite_store, args.store),
        Store::Cached => {
            // Capacity as in tower-sessions' own example.
            let cache = MokaStore::new(Some(2_000));
            app(
                backend,
                CachingSessionStore::new(cache, sqlite_store),
                args.store,
            )
        }
    };

    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    println!(
        "peer (axum-login 0.18, tower-sessions 0.14, store {}) listening on http://{}, user {} ({})",
        args.store.name(),
        listener.local_addr()?,
        user.id,
        user.email,
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    sweeper.abort();
    // `dir` drops here and removes the database.
    Ok(())
}

/// The router: the session layer over `store`, axum-login's layer over it, and
/// `/api/auth/me` behind `login_required!`.
fn app<S: SessionStore + Clone>(backend: Backend, store: S, kind: Store) -> Router {
    // axum-login's example: plain-HTTP cookie (loopback here; `true` behind TLS), a
    // session that lives a day past its last use.
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(1)));
    let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
    Router::new()
        .route("/api/auth/me", get(me))
        .route_layer(login_required!(Backend))
        .route("/login", post(login))
        .layer(auth)
        .route(
            "/healthz",
            get(move || async move { Json(json!({ "status": "ok", "store": kind.name() })) }),
        )
}

/// `Credentials` from a JSON body or a form body, by `Content-Type`.
#[derive(Debug)]
struct Login(Credentials);

impl<S: Send + Sync> FromRequest<S> for Login {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if json {
            let Json(c) = Json::<Credentials>::from_request(req, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Self(c))
        } else {
            let Form(c) = Form::<Credentials>::from_request(req, state)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Self(c))
        }
    }
}

/// `POST /login`: 204 with the session cookie, 401, or 500 when the store fails.
async fn login(mut auth: AuthSession<Backend>, Login(creds): Login) -> StatusCode {
    match auth.authenticate(creds).await {
        Ok(Some(user)) => match auth.login(&user).await {
            Ok(()) => StatusCode::NO_CONTENT,
            Err(e) => {
                eprintln!("login: session: {e}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        },
        Ok(None) => StatusCode::UNAUTHORIZED,
        Err(e) => {
            eprintln!("login: {e}");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// `GET /api/auth/me`: the logged-in user, shaped like Strongroom's answer.
async fn me(auth: AuthSession<Backend>) -> Response {
    match auth.user {
        Some(user) => Json(json!({
            "user_id": user.id.to_string(),
            "email": user.email,
            "auth_method": "session",
        }))
        .into_response(),
        // `login_required!` already answered 401; kept for a route added without it.
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
