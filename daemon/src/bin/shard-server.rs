//! `shard-server`: parse flags, set up logging (`SHARDD_LOG`), bind, serve until SIGTERM/SIGINT.

use std::{io::IsTerminal as _, net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use shardd::http::{self, Server, ServerConfig, Storage};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "NeuroShard's remote chunk server: the /v1 HTTP API")]
struct Flags {
    /// Address to listen on, `IP:PORT` or `HOST:PORT` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = http::DEFAULT_LISTEN, value_parser = http::resolve_listen)]
    listen: SocketAddr,
    /// A directory, or `s3://bucket/prefix` (credentials, region, endpoint from `AWS_*` variables).
    #[arg(long, value_name = "DIR|S3_URL", default_value = http::DEFAULT_STORAGE)]
    storage: String,
    /// Tokens, one per line: `rw TOKEN` or `ro TOKEN` (read-only); `#` comments. Without a
    /// token file anyone may read and upload, so only a loopback address is served.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve without tokens on a non-loopback address (only behind an authenticating proxy).
    #[arg(long)]
    insecure_open: bool,
    /// Uploads read and verified at once, ~32 MiB each [default: 2 × cores, at most 16].
    #[arg(long, value_name = "N")]
    max_uploads: Option<usize>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = Flags::parse();
    let filter = EnvFilter::try_from_env("SHARDD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    logs.with_ansi(ansi).with_writer(std::io::stderr).init();
    if let Err(e) = run(flags).await {
        eprintln!("shard-server: {e:#}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    // The server's own environment is its S3 configuration (shardd's comes with each request).
    let aws_env = std::env::vars().filter(|(k, _)| k.starts_with("AWS_"));
    let config = ServerConfig {
        listen: flags.listen,
        storage: Storage::from_arg(&flags.storage, aws_env.collect()),
        token_file: flags.token_file,
        insecure_open: flags.insecure_open,
        upload_slots: flags.max_uploads.unwrap_or_else(http::default_upload_slots),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    shardd::lifecycle::cancel_on_signals(shutdown.clone()).context("failed to handle signals")?;
    let server = Server::bind(config).await?;
    eprintln!("shard-server listening on http://{}", server.local_addr());
    Ok(server.run(shutdown).await?)
}
