//! `shardd`: parse flags, set up logging, resolve the configuration and run the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use shardd::config::{Config, Overrides};
use tokio_util::sync::CancellationToken;

/// The NeuroShard daemon: serves `nshard` and editor plugins over gRPC on a Unix socket,
/// watches tracked files and chunks them in the background. Runs in the foreground; `nshard`
/// starts it on demand.
#[derive(Parser)]
#[command(version)]
struct Flags {
    /// Unix socket to serve on [env: `SHARDD_SOCKET`].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Exit after this long without requests, e.g. `30m` (`0` = never).
    // Read through clap, so a typo in the variable is an error rather than no timeout.
    #[arg(long, env = "SHARDD_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Set by `nshard` when it starts the daemon, so a newer client may restart it.
    #[arg(long, hide = true)]
    auto_spawned: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    shardd::config::tune_malloc();
    let config = Config::resolve(Overrides {
        socket: flags.socket,
        idle_timeout: flags.idle_timeout,
        auto_spawned: flags.auto_spawned,
    });
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(shardd::config::DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(shardd::config::LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match shardd::run(config, CancellationToken::new()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr is the log (the journal, or the file nshard shows when a start fails).
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
