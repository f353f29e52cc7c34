//! The operator command line: `serve` and the maintenance subcommands.

use std::path::Path;
use std::process::ExitCode;

use auth_core::{AccountError, Password, normalize_email};
use clap::{Parser, Subcommand};
use crypto_envelope::MasterKey;
use zeroize::Zeroizing;

use crate::config::Config;

/// A reference trading backend built on the Strongroom crates.
#[derive(Debug, Parser)]
#[command(name = "trading-backend", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (configuration from environment variables: see the README).
    Serve,
    /// Create a user. By default the user must change the password at first login.
    CreateUser {
        /// The user's email address.
        email: String,
        /// The initial password (at least 12 characters). Without it a random one is
        /// generated and printed once.
        #[arg(long)]
        password: Option<SecretArg>,
        /// Do not require a password change at first login.
        #[arg(long)]
        no_reset: bool,
    },
    /// Print a new random 256-bit master key (hex by default) for STRONGROOM_MASTER_KEY.
    GenMasterKey {
        /// Print base64 instead of hex.
        #[arg(long)]
        base64: bool,
    },
    /// Open every sealed value (exchange credentials and user secrets, access-token
    /// signing keys, TOTP secrets: every kind listed in `src/sealed.rs`) and re-wrap its
    /// data key under the current primary master key (resumable). Exits non-zero unless
    /// the run is complete: every value opened and none left under another key.
    Rewrap {
        /// Ignore a saved cursor and start from the beginning.
        #[arg(long)]
        restart: bool,
        /// Rows per batch.
        #[arg(long, default_value_t = 100)]
        batch_size: u32,
    },
    /// Issue an API key for a user and print it once.
    IssueApiKey {
        /// The user's email address.
        email: String,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// Delete expired sessions (and sessions ended by a password change, disable, link or
    /// sign-out-everywhere) once.
    SweepSessions,
    /// Disable a user: every session and API key of the user ends at once, and no
    /// credential of the user resolves while disabled.
    DisableUser {
        /// The user's email address.
        email: String,
    },
    /// Enable a disabled user again (credentials ended by the disable stay ended).
    EnableUser {
        /// The user's email address.
        email: String,
    },
    /// End every session and API key of a user at once ("sign out everywhere").
    SignOutEverywhere {
        /// The user's email address.
        email: String,
    },
    /// Set a new password for a user, who must change it at next login; every session and
    /// API key of the user ends.
    ResetPassword {
        /// The user's email address.
        email: String,
        /// The new password (at least 12 characters). Without it a random one is
        /// generated and printed once.
        #[arg(long)]
        password: Option<SecretArg>,
    },
    /// Make a new access-token signing key the primary one (in the shared database, so
    /// every instance picks it up at its next reload); the previous key stays published
    /// and accepted until the last token it signed has expired. Prints the new `kid`.
    RotateSigningKey,
}

/// A secret given on the command line: wiped on drop, and its `Debug` prints nothing of it
/// (the derived `Debug` of [`Cli`] goes through this).
#[derive(Clone)]
pub struct SecretArg(Zeroizing<String>);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(Zeroizing::new(s.to_owned())))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretArg(..)")
    }
}

/// A command failed. Names the input or the component, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum CliError {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("master key: {0}")]
    Key(#[from] crate::keyring::KeyError),
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    #[error("{0}")]
    Build(#[from] crate::app::BuildError),
    #[error("{0}")]
    Input(String),
    #[error("{0} (the store is unavailable; nothing was written)")]
    Unavailable(&'static str),
    #[error("cannot bind the listen address {0}")]
    Bind(std::net::SocketAddr),
    #[error("the server failed")]
    Serve,
    #[error("rewrap: {0}")]
    Rewrap(&'static str),
    #[error("rewrap: {0}")]
    RewrapStopped(#[from] crate::rewrap::RewrapError),
}

/// Runs the command line; the process exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => {
            eprintln!("error: cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

async fn run(command: Command) -> Result<(), CliError> {
    if let Command::GenMasterKey { base64 } = command {
        let key =
            MasterKey::generate().map_err(|_| CliError::Input("no system randomness".into()))?;
        let text = if base64 {
            key.to_base64()
        } else {
            key.to_hex()
        };
        println!("{}", text.as_str());
        return Ok(());
    }
    let config = Config::from_env()?;
    let (ring, _) = crate::keyring::load(&config.data_dir)?;
    let stores = crate::db::open(&config.database).await?;
    match command {
        Command::Serve => serve(&config, &stores, ring).await,
        Command::CreateUser {
            email,
            password,
            no_reset,
        } => create_user(&stores, ring, &email, password.map(|p| p.0), no_reset).await,
        Command::IssueApiKey { email, name } => issue_api_key(&stores, ring, &email, &name).await,
        Command::SweepSessions => {
            let core = crate::app::core(&stores, ring)?;
            let n = core
                .sessions
                .sweep()
                .await
                .map_err(|_| CliError::Unavailable("session store"))?;
            println!("deleted {n} expired session(s)");
            Ok(())
        }
        Command::Rewrap {
            restart,
            batch_size,
        } => rewrap(&config.data_dir, &stores, ring, restart, batch_size).await,
        Command::DisableUser { email } => {
            user_command(&stores, ring, &email, UserCommand::Disable).await
        }
        Command::EnableUser { email } => {
            user_command(&stores, ring, &email, UserCommand::Enable).await
        }
        Command::SignOutEverywhere { email } => {
            user_command(&stores, ring, &email, UserCommand::SignOutEverywhere).await
        }
        Command::ResetPassword { email, password } => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p.0,
                None => random_password()?,
            };
            user_command(
                &stores,
                ring,
                &email,
                UserCommand::Reset(Password::new(password.as_str())),
            )
            .await?;
            if generated {
                println!("password: {}", password.as_str());
                println!("(shown once; store it now)");
            }
            Ok(())
        }
        Command::RotateSigningKey => {
            let kid = crate::app::rotate_signing_key(&config, &stores, ring).await?;
            println!("new signing key: {kid}");
            Ok(())
        }
        Command::GenMasterKey { .. } => Ok(()),
    }
}

async fn serve(
    config: &Config,
    stores: &crate::db::Stores,
    ring: crypto_envelope::LocalKeyRing,
) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|_| CliError::Bind(config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|_| CliError::Bind(config.listen))?;
    // Built once bound: the default token issuer names the bound port.
    let (app, audit) = crate::app::build(config, stores, ring, addr).await?;
    eprintln!("listening on http://{addr}");
    tracing::info!(code = "server.listening", %addr, registration_open = config.registration_open, api_token = config.api_token.is_some(), internal_secret = config.internal_secret.is_some(), sso = config.sso.is_some(), "listening");
    let served = crate::app::serve(listener, app).await;
    // What was queued for the audit log before the shutdown is written.
    if let Err(e) = audit.flush().await {
        tracing::error!(code = "audit.flush_failed", error = e.code(), "audit events not written at shutdown");
    }
    served.map_err(|_| CliError::Serve)
}

fn random_password() -> Result<Zeroizing<String>, CliError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = Zeroizing::new([0u8; 20]);
    aws_lc_rs::rand::fill(bytes.as_mut())
        .map_err(|_| CliError::Input("no system randomness".into()))?;
    // 256 = 4 * 57 + 28: a small bias, irrelevant for a 20-character one-time password
    // (> 110 bits).
    Ok(Zeroizing::new(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect(),
    ))
}

async fn create_user(
    stores: &crate::db::Stores,
    ring: crypto_envelope::LocalKeyRing,
    email: &str,
    password: Option<Zeroizing<String>>,
    no_reset: bool,
) -> Result<(), CliError> {
    let email = normalize_email(email).map_err(|e| CliError::Input(format!("email: {e}")))?;
    let core = crate::app::core(stores, ring)?;
    let generated = password.is_none();
    let password = match password {
        Some(p) => p,
        None => random_password()?,
    };
    let secret = Password::new(password.as_str());
    let result = if no_reset {
        core.accounts
            .admin_create_user_keep_password(&email, &secret)
            .await
    } else {
        core.accounts.admin_create_user(&email, &secret).await
    };
    let user = result.map_err(|e| match e {
        AccountError::EmailTaken => CliError::Input("email: already registered".into()),
        AccountError::Policy(p) => CliError::Input(format!("password: {p}")),
        AccountError::Email(e) => CliError::Input(format!("email: {e}")),
        _ => CliError::Unavailable("user store"),
    })?;
    println!("created user {} ({})", user.id, user.email);
    if generated {
        println!("password: {}", password.as_str());
        println!("(shown once; store it now)");
    }
    if !no_reset {
        println!("the user must change the password at first login");
    }
    Ok(())
}

/// A user-state change made by an operator.
enum UserCommand {
    Disable,
    Enable,
    SignOutEverywhere,
    Reset(Password),
}

async fn user_command(
    stores: &crate::db::Stores,
    ring: crypto_envelope::LocalKeyRing,
    email: &str,
    command: UserCommand,
) -> Result<(), CliError> {
    let email = normalize_email(email).map_err(|e| CliError::Input(format!("email: {e}")))?;
    let core = crate::app::core(stores, ring)?;
    let user = stores
        .users
        .user_by_email(&email)
        .await
        .map_err(|_| CliError::Unavailable("user store"))?
        .ok_or_else(|| CliError::Input("email: no such user".into()))?;
    let accounts = &core.accounts;
    let (result, done) = match &command {
        UserCommand::Disable => (
            accounts.set_disabled(&user.id, true).await,
            "disabled; every session and API key ended",
        ),
        UserCommand::Enable => (accounts.set_disabled(&user.id, false).await, "enabled"),
        UserCommand::SignOutEverywhere => (
            accounts.sign_out_everywhere(&user.id).await,
            "signed out everywhere; every session and API key ended",
        ),
        UserCommand::Reset(password) => (
            accounts.admin_reset_password(&user.id, password).await,
            "password reset; the user must change it at next login; every session and API key ended",
        ),
    };
    result.map_err(|e| match e {
        AccountError::Policy(p) => CliError::Input(format!("password: {p}")),
        AccountError::UserNotFound => CliError::Input("email: no such user".into()),
        _ => CliError::Unavailable("user store"),
    })?;
    println!("user {} ({}): {done}", user.id, user.email);
    Ok(())
}

async fn issue_api_key(
    stores: &crate::db::Stores,
    ring: crypto_envelope::LocalKeyRing,
    email: &str,
    name: &str,
) -> Result<(), CliError> {
    let email = normalize_email(email).map_err(|e| CliError::Input(format!("email: {e}")))?;
    let core = crate::app::core(stores, ring)?;
    let user = stores
        .users
        .user_by_email(&email)
        .await
        .map_err(|_| CliError::Unavailable("user store"))?
        .ok_or_else(|| CliError::Input("email: no such user".into()))?;
    let key = core
        .api_keys
        .create(&user.id, name, Vec::new())
        .await
        .map_err(|e| match e {
            auth_core::api_key::ApiKeyError::InvalidName => CliError::Input("name: invalid".into()),
            _ => CliError::Unavailable("api key store"),
        })?;
    println!("api key id: {}", key.key_id());
    println!("api key: {}", key.expose_secret());
    println!("(shown once; send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`)");
    Ok(())
}

/// `rewrap`: every sealed value (the secret store and each kind `sealed.rs` lists), then
/// the summary on stdout; non-zero unless complete.
async fn rewrap(
    data_dir: &Path,
    stores: &crate::db::Stores,
    ring: crypto_envelope::LocalKeyRing,
    restart: bool,
    batch_size: u32,
) -> Result<(), CliError> {
    let core = crate::app::core(stores, ring)?;
    let kinds = crate::sealed::sealed_values(stores);
    let report = crate::rewrap::run(data_dir, &core.secrets, &kinds, restart, batch_size).await?;
    report.print();
    if report.complete() {
        return Ok(());
    }
    Err(CliError::Rewrap(
        "rows remain under an old key or did not open: keep the old key (do not raise \
         STRONGROOM_MASTER_KEY_MIN_VERSION) until they are resolved and a run reports complete",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `create-user` and `reset-password` take a password: the command line's `Debug`
    /// shows the email, never the password, and the value still reaches the command.
    #[test]
    fn debug_of_the_command_line_never_prints_a_password() {
        for command in ["create-user", "reset-password"] {
            let canary = format!("CANARY-cli-{command}-77a1");
            let cli = Cli::try_parse_from([
                "trading-backend",
                command,
                "a@example.com",
                "--password",
                &canary,
            ])
            .unwrap();
            let shown = format!("{cli:?}");
            assert!(shown.contains("a@example.com"), "{shown}");
            assert!(
                !shown.contains(&canary),
                "the password was printed: {shown}"
            );
            assert!(
                format!("{:?}", cli.command).contains("SecretArg"),
                "{shown}"
            );
            let (Command::CreateUser { password, .. } | Command::ResetPassword { password, .. }) =
                cli.command
            else {
                panic!("parsed another command");
            };
            assert_eq!(password.unwrap().0.as_str(), canary);
        }
    }
}
