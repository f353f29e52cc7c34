//! The operator command line: `serve` and the maintenance subcommands.

use std::path::Path;
use std::process::ExitCode;

use auth_core::{AccountError, Password, normalize_email};
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use crypto_envelope::MasterKey;
use zeroize::Zeroizing;

use audit_trail::Outcome;

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
    /// Run the HTTP service. Configuration from environment variables (listed below; each
    /// also a flag, secrets excepted); README "Configuration".
    Serve(Box<crate::settings::Settings>),
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
    /// The audit log: verify the chain, export it, drop old records.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// `trading-backend audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole chain; exits non-zero naming the first record that was edited,
    /// deleted, inserted or reordered.
    Verify,
    /// Write the records since a time as JSON lines to stdout (audit-trail FORMAT.md).
    Export {
        /// Unix seconds or an RFC 3339 date-time.
        #[arg(long)]
        since: String,
    },
    /// Drop the records older than a time (as a whole prefix, behind a signed checkpoint;
    /// verification keeps working). Without `--before`, the retention
    /// `STRONGROOM_AUDIT_RETENTION_DAYS`.
    Prune {
        /// Unix seconds or an RFC 3339 date-time.
        #[arg(long)]
        before: Option<String>,
    },
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
    #[error("master key: {0}")]
    KeyNotHeld(#[from] crate::key_check::KeyNotHeld),
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
    #[error("audit log not intact: {0}")]
    AuditFault(String),
    #[error("audit log: {0}")]
    Audit(&'static str),
}

/// Runs the command line; the process exit code.
#[must_use]
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `serve`'s settings (flags or environment), and every `_FILE`, before anything reads
    // the configuration (logging first).
    let given = match &cli.command {
        Command::Serve(settings) => {
            let serve = matches.subcommand_matches("serve");
            if let Some(name) = serve.and_then(crate::settings::secret_on_command_line) {
                eprintln!(
                    "error: configuration: {name} is a secret: give it in the environment or \
                     through {name}_FILE, never on the command line"
                );
                return ExitCode::FAILURE;
            }
            settings.values()
        }
        _ => Vec::new(),
    };
    if let Err(e) = crate::config::load_environment(&given).and_then(|()| init_tracing()) {
        eprintln!("error: configuration: {e}");
        return ExitCode::FAILURE;
    }
    drop(given);
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

/// Logs on stderr, filtered by `RUST_LOG` (default `info`), as text or, with
/// `LOG_FORMAT=json`, one JSON object per line (fields `timestamp`, `level`, `target`,
/// `fields`, and the current request's `span`).
fn init_tracing() -> Result<(), crate::config::ConfigError> {
    use tracing_subscriber::EnvFilter;
    let json = crate::config::log_format_json(&crate::config::var)?;
    let filter = crate::config::var("RUST_LOG")
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A subscriber set before (tests) stays.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    Ok(())
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
    let (envelope, kek) = crate::kek::envelope(&config.data_dir, config.production).await?;
    tracing::info!(
        code = "kek.configured",
        primary = kek.primary,
        decrypt_only = ?kek.decrypt_only,
        "key-encryption backends"
    );
    let stores = crate::db::open(&config.database, config.validity_cache).await?;
    // Before anything is sealed: the stored data opens under the configured keys
    // (key_check.rs). `rewrap` opens every row itself and lists those it cannot.
    if !matches!(command, Command::Rewrap { .. }) {
        let probed = crate::key_check::check(&stores, &envelope, &kek).await?;
        tracing::info!(
            code = "kek.checked",
            opened = probed.opened,
            refused = probed.refused,
            unavailable = probed.unavailable,
            "stored sealed values checked against the key configuration"
        );
    }
    if let Command::Serve(_) = command {
        return serve(&config, &stores, envelope).await;
    }
    let core = crate::app::core(&stores, envelope)?;
    let audit = crate::audit::open(&stores.db, core.secrets.envelope()).await?;
    let action = command.audit_action();
    let mut done = Done::default();
    let result = match command {
        Command::Serve(_) | Command::GenMasterKey { .. } => Ok(()),
        Command::Audit { command } => audit_command(&audit, command, &mut done).await,
        Command::CreateUser {
            email,
            password,
            no_reset,
        } => create_user(&core, &email, password.map(|p| p.0), no_reset, &mut done).await,
        Command::IssueApiKey { email, name } => {
            issue_api_key(&stores, &core, &email, &name, &mut done).await
        }
        Command::SweepSessions => {
            let n = core
                .sessions
                .sweep()
                .await
                .map_err(|_| CliError::Unavailable("session store"))?;
            println!("deleted {n} expired session(s)");
            done.target = Some(format!("{n} sessions"));
            Ok(())
        }
        Command::Rewrap {
            restart,
            batch_size,
        } => {
            // The start is on record before anything is re-wrapped.
            audit
                .append(crate::audit::cli_event(
                    "cli.rewrap.start",
                    Outcome::Success,
                ))
                .await
                .map_err(|_| CliError::Unavailable("audit log"))?;
            rewrap(&config.data_dir, &stores, &core, restart, batch_size).await
        }
        Command::DisableUser { email } => {
            user_command(&stores, &core, &email, UserCommand::Disable, &mut done).await
        }
        Command::EnableUser { email } => {
            user_command(&stores, &core, &email, UserCommand::Enable, &mut done).await
        }
        Command::SignOutEverywhere { email } => {
            user_command(
                &stores,
                &core,
                &email,
                UserCommand::SignOutEverywhere,
                &mut done,
            )
            .await
        }
        Command::ResetPassword { email, password } => {
            let generated = password.is_none();
            let password = match password {
                Some(p) => p.0,
                None => random_password()?,
            };
            let result = user_command(
                &stores,
                &core,
                &email,
                UserCommand::Reset(Password::new(password.as_str())),
                &mut done,
            )
            .await;
            if result.is_ok() && generated {
                println!("password: {}", password.as_str());
                println!("(shown once; store it now)");
            }
            result
        }
        Command::RotateSigningKey => {
            let kid = crate::app::rotate_signing_key(&config, &stores, &core).await?;
            println!("new signing key: {kid}");
            done.target = Some(kid);
            Ok(())
        }
    };
    // Every operator action is on record (durably) before the command exits.
    let (outcome, reason) = match &result {
        Ok(()) => (done.outcome.unwrap_or(Outcome::Success), done.reason),
        Err(e) => (
            match e {
                CliError::Input(_) => Outcome::Refused,
                _ => Outcome::Failed,
            },
            Some(e.code()),
        ),
    };
    let mut event = crate::audit::cli_event(action, outcome);
    if let Some(target) = &done.target {
        event = event.with_target(target);
    }
    if let Some(subject) = &done.subject {
        event = event.with_subject(subject);
    }
    if let Some(reason) = reason {
        event = event.with_reason(reason);
    }
    let appended = audit.append(event).await;
    result?;
    appended.map_err(|_| {
        CliError::Unavailable("the action was done, but its audit record could not be written")
    })?;
    Ok(())
}

/// What a command reports for its audit record.
#[derive(Debug, Default)]
struct Done {
    target: Option<String>,
    subject: Option<String>,
    /// When the command succeeded but found a problem (`audit verify` found a fault).
    outcome: Option<Outcome>,
    reason: Option<&'static str>,
}

impl Command {
    /// The stable action code of the command's audit record (README, "Audit trail").
    fn audit_action(&self) -> &'static str {
        match self {
            Command::Serve(_) | Command::GenMasterKey { .. } => "cli.other",
            Command::CreateUser { .. } => "cli.user.create",
            Command::IssueApiKey { .. } => "cli.api_key.issue",
            Command::SweepSessions => "cli.sessions.sweep",
            Command::Rewrap { .. } => "cli.rewrap",
            Command::DisableUser { .. } => "cli.user.disable",
            Command::EnableUser { .. } => "cli.user.enable",
            Command::SignOutEverywhere { .. } => "cli.user.sign_out_everywhere",
            Command::ResetPassword { .. } => "cli.user.reset_password",
            Command::RotateSigningKey => "cli.signing_key.rotate",
            Command::Audit { command } => match command {
                AuditCommand::Verify => "cli.audit.verify",
                AuditCommand::Export { .. } => "cli.audit.export",
                AuditCommand::Prune { .. } => "cli.audit.prune",
            },
        }
    }
}

impl CliError {
    /// A stable reason code for the audit record.
    fn code(&self) -> &'static str {
        match self {
            CliError::Input(_) => "invalid_input",
            CliError::Config(_) => "configuration",
            CliError::Key(_) => "master_key",
            CliError::KeyNotHeld(_) => "key_not_held",
            CliError::Db(_) | CliError::Unavailable(_) => "unavailable",
            CliError::Build(_) => "build",
            CliError::Bind(_) | CliError::Serve => "serve",
            CliError::Rewrap(_) => "incomplete",
            CliError::RewrapStopped(_) => "stopped",
            CliError::AuditFault(_) => "tampered",
            CliError::Audit(_) => "audit_unavailable",
        }
    }
}

/// `audit verify | export | prune`.
async fn audit_command(
    audit: &audit_trail::AuditLog,
    command: AuditCommand,
    done: &mut Done,
) -> Result<(), CliError> {
    match command {
        AuditCommand::Verify => {
            let report = audit
                .verify()
                .await
                .map_err(|e| CliError::Audit(e.code()))?;
            let checkpoint = report
                .checkpoint
                .as_ref()
                .map_or_else(|| "none".to_owned(), |c| c.seq.to_string());
            println!(
                "checked {} record(s); checkpoint: {checkpoint}; last: {}",
                report.checked, report.last.seq
            );
            match report.fault {
                None => {
                    println!("audit log intact");
                    Ok(())
                }
                Some(fault) => {
                    println!("FAULT: {fault}");
                    done.target = Some(fault.seq.to_string());
                    Err(CliError::AuditFault(fault.to_string()))
                }
            }
        }
        AuditCommand::Export { since } => {
            let since = crate::audit::parse_time(&since)
                .map_err(|e| CliError::Input(format!("--since: {e}")))?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let n = audit
                .export_since(since, &mut out)
                .await
                .map_err(|e| CliError::Audit(e.code()))?;
            drop(out);
            eprintln!("exported {n} record(s)");
            done.target = Some(format!("{n} records since {since} ms"));
            Ok(())
        }
        AuditCommand::Prune { before } => {
            let before = match before {
                Some(t) => crate::audit::parse_time(&t)
                    .map_err(|e| CliError::Input(format!("--before: {e}")))?,
                None => {
                    let retention = crate::audit::retention_from_env().map_err(CliError::Input)?;
                    let Some(retention) = retention else {
                        return Err(CliError::Input(format!(
                            "--before not given and {} not set: nothing to prune",
                            crate::audit::ENV_AUDIT_RETENTION_DAYS
                        )));
                    };
                    crate::audit::cutoff_ms(retention)
                }
            };
            match audit.prune_before(before).await {
                Ok(Some(checkpoint)) => {
                    println!("dropped records 1..={} behind a checkpoint", checkpoint.seq);
                    done.target = Some(checkpoint.seq.to_string());
                    Ok(())
                }
                Ok(None) => {
                    println!("nothing older than the cutoff");
                    Ok(())
                }
                Err(audit_trail::AuditError::Tampered(fault)) => {
                    println!("FAULT: {fault}; nothing dropped");
                    Err(CliError::AuditFault(fault.to_string()))
                }
                Err(e) => Err(CliError::Audit(e.code())),
            }
        }
    }
}

async fn serve(
    config: &Config,
    stores: &crate::db::Stores,
    envelope: crypto_envelope::Envelope,
) -> Result<(), CliError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|_| CliError::Bind(config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|_| CliError::Bind(config.listen))?;
    // Built once bound: the default token issuer names the bound port.
    let crate::app::Service {
        app,
        metrics,
        audit,
    } = crate::app::build(config, stores, envelope, addr).await?;
    let metrics = match config.metrics_listen {
        Some(wanted) => {
            let listener = tokio::net::TcpListener::bind(wanted)
                .await
                .map_err(|_| CliError::Bind(wanted))?;
            let bound = listener.local_addr().map_err(|_| CliError::Bind(wanted))?;
            eprintln!("metrics on http://{bound}/metrics");
            tracing::info!(code = "server.metrics", addr = %bound, "metrics listening");
            Some((listener, metrics))
        }
        None => None,
    };
    eprintln!("listening on http://{addr}");
    tracing::info!(code = "server.listening", %addr, registration_open = config.registration_open, api_token = config.api_token.is_some(), internal_secret = config.internal_secret.is_some(), sso = config.sso.is_some(), "listening");
    let served = crate::app::serve(listener, app, metrics, config.shutdown_grace).await;
    // What was queued for the audit log before the shutdown is written.
    if let Err(e) = audit.flush().await {
        tracing::error!(
            code = "audit.flush_failed",
            error = e.code(),
            "audit events not written at shutdown"
        );
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
    core: &crate::app::Core,
    email: &str,
    password: Option<Zeroizing<String>>,
    no_reset: bool,
    done: &mut Done,
) -> Result<(), CliError> {
    let email = normalize_email(email).map_err(|e| CliError::Input(format!("email: {e}")))?;
    done.target = Some(email.clone());
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
    done.subject = Some(user.id.clone());
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
    core: &crate::app::Core,
    email: &str,
    command: UserCommand,
    done: &mut Done,
) -> Result<(), CliError> {
    let email = normalize_email(email).map_err(|e| CliError::Input(format!("email: {e}")))?;
    done.target = Some(email.clone());
    let user = stores
        .users
        .user_by_email(&email)
        .await
        .map_err(|_| CliError::Unavailable("user store"))?
        .ok_or_else(|| CliError::Input("email: no such user".into()))?;
    done.subject = Some(user.id.clone());
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
    core: &crate::app::Core,
    email: &str,
    name: &str,
    done: &mut Done,
) -> Result<(), CliError> {
    let email = normalize_email(email).map_err(|e| CliError::Input(format!("email: {e}")))?;
    done.target = Some(email.clone());
    let user = stores
        .users
        .user_by_email(&email)
        .await
        .map_err(|_| CliError::Unavailable("user store"))?
        .ok_or_else(|| CliError::Input("email: no such user".into()))?;
    done.subject = Some(user.id.clone());
    let key = core
        .api_keys
        .create(&user.id, name, Vec::new())
        .await
        .map_err(|e| match e {
            auth_core::api_key::ApiKeyError::InvalidName => CliError::Input("name: invalid".into()),
            _ => CliError::Unavailable("api key store"),
        })?;
    done.target = Some(key.key_id().to_owned());
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
    core: &crate::app::Core,
    restart: bool,
    batch_size: u32,
) -> Result<(), CliError> {
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
