//! `homecare`: the service binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use homecare_core::{NationalIdentityNumber, SystemClock};
use homecare_server::config::Config;
use homecare_server::dev_keys::{DevKey, TokenMinter};

#[derive(Parser)]
#[command(
    name = "homecare",
    version,
    about = "Digital citizen dialogue for municipal home care"
)]
struct Cli {
    /// A TOML configuration file (default: homecare.toml, if it exists).
    #[arg(long, global = true, env = "HOMECARE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a token signed by the development key, for the embedded default only.
    DevToken {
        #[command(subcommand)]
        kind: TokenKind,
        /// How long the token is valid, in minutes.
        #[arg(long, default_value_t = 60, global = true)]
        minutes: i64,
    },
}

#[derive(Subcommand)]
enum TokenKind {
    /// A citizen logged in at the high assurance level.
    Citizen {
        /// The person's national identity number (11 digits).
        pid: String,
    },
    /// A staff member working in care units.
    Staff {
        /// The staff member's id.
        #[arg(long, default_value = "dev-nurse")]
        subject: String,
        /// The staff member's name, shown to patients in their access log.
        #[arg(long)]
        name: Option<String>,
        /// A care unit the staff member works in (repeatable).
        #[arg(long = "unit")]
        units: Vec<String>,
        /// A role (repeatable).
        #[arg(long = "role", default_value = "nurse")]
        roles: Vec<String>,
    },
    /// The EPJ integration's system account.
    Epj,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // An operator's error: what went wrong and why, without the backtrace that
            // anyhow's Debug adds under RUST_BACKTRACE (kept for panics).
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref())?;
    homecare_server::telemetry::init(&config.log);

    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.listen_addr)
                .await
                .with_context(|| format!("binding {}", config.listen_addr))?;
            homecare_server::run(config, listener, Arc::new(SystemClock), shutdown_signal())
                .await?;
        }
        Command::Migrate => {
            let db = homecare_server::database::connect(&config).await?;
            homecare_server::database::migrate(&db)
                .await
                .context("migrating")?;
            println!("migrations applied");
        }
        Command::DevToken { kind, minutes } => {
            anyhow::ensure!(
                config.dev_keys_enabled(),
                "auth.dev_keys is off (the default on PostgreSQL): development tokens would not \
                 be accepted"
            );
            let minter = TokenMinter::new(
                DevKey::load_or_create(&config.dev_key_path())?,
                &config.auth,
            );
            let ttl = chrono::Duration::minutes(minutes);
            let token = match kind {
                TokenKind::Citizen { pid } => {
                    NationalIdentityNumber::parse(&pid).context("pid")?;
                    minter.citizen(&pid, ttl)?
                }
                TokenKind::Staff {
                    subject,
                    name,
                    units,
                    roles,
                } => {
                    let units: Vec<&str> = units.iter().map(String::as_str).collect();
                    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
                    minter.named_staff(&subject, name.as_deref(), &roles, &units, ttl)?
                }
                TokenKind::Epj => minter.staff(
                    "epj-integration",
                    &[homecare_core::caller::EPJ_INTEGRATION_ROLE],
                    &[],
                    ttl,
                )?,
            };
            println!("{token}");
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
