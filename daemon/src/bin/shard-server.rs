//! `shard-server`: parse flags, set up logging (`SHARDD_LOG`), then serve until SIGTERM/SIGINT,
//! or run one maintenance command over the storage (`gc`, `verify`) and print its report.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use shardd::http::gc::{self, GcOptions, GcReport};
use shardd::http::{self, Server, ServerConfig, Storage, verify};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "shard-server",
    version,
    about = "NeuroShard's remote chunk server: the /v1 HTTP API",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeFlags,
}

#[derive(Subcommand)]
enum Command {
    /// Delete the chunks no pushed manifest references and that are older than the grace
    /// period (two phases; safe next to running servers and pushes).
    Gc(GcFlags),
    /// Read every stored chunk and manifest and check their hashes; exit 1 on any problem.
    Verify(StorageFlag),
}

/// Serving (the default when no subcommand is given).
#[derive(Args)]
struct ServeFlags {
    /// Address to listen on, `IP:PORT` or `HOST:PORT` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = http::DEFAULT_LISTEN, value_parser = http::resolve_listen)]
    listen: SocketAddr,
    #[command(flatten)]
    storage: StorageFlag,
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

#[derive(Args)]
struct StorageFlag {
    /// A directory, or `s3://bucket/prefix` (credentials, region, endpoint from `AWS_*` variables).
    #[arg(long, value_name = "DIR|S3_URL", default_value = http::DEFAULT_STORAGE)]
    storage: String,
}

#[derive(Args)]
struct GcFlags {
    #[command(flatten)]
    storage: StorageFlag,
    /// Keep unreferenced chunks written or relied on more recently than this (`1h`, `30m`, `0s`);
    /// make it longer than your longest push.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    grace: std::time::Duration,
    /// Only list what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Collect even when no manifest was ever pushed (then every old chunk is deleted).
    #[arg(long)]
    allow_no_roots: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("SHARDD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    logs.with_ansi(ansi)
        .with_writer(shardd::config::LogWriter)
        .init();
    let result = match cli.command {
        None => serve(cli.serve).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Gc(flags)) => collect(flags).await.map(|()| ExitCode::SUCCESS),
        Some(Command::Verify(flags)) => check(&flags).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("shard-server: {e:#}");
        ExitCode::FAILURE
    })
}

impl StorageFlag {
    fn storage(&self) -> Storage {
        // The server's own environment is its S3 configuration (shardd's comes with each
        // request); HOME locates the shared `~/.aws/` files.
        let aws_env: HashMap<_, _> = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
            .collect();
        Storage::from_arg(&self.storage, aws_env)
    }
}

async fn serve(flags: ServeFlags) -> anyhow::Result<()> {
    let config = ServerConfig {
        listen: flags.listen,
        storage: flags.storage.storage(),
        token_file: flags.token_file,
        insecure_open: flags.insecure_open,
        upload_slots: flags.max_uploads.unwrap_or_else(http::default_upload_slots),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    shardd::lifecycle::cancel_on_signals(shutdown.clone()).context("failed to handle signals")?;
    let server = Server::bind(config).await?;
    // Not eprintln!: with stderr a closed pipe it would panic, and the server must run on.
    let _ = writeln!(
        std::io::stderr(),
        "shard-server listening on http://{}",
        server.local_addr()
    );
    Ok(server.run(shutdown).await?)
}

async fn collect(flags: GcFlags) -> anyhow::Result<()> {
    let options = GcOptions {
        grace: flags.grace,
        dry_run: flags.dry_run,
        allow_no_roots: flags.allow_no_roots,
    };
    let report = gc::run(&flags.storage.storage(), &options).await?;
    print_gc(&report, flags.dry_run);
    Ok(())
}

fn print_gc(report: &GcReport, dry_run: bool) {
    let verb = if dry_run { "would delete" } else { "deleted" };
    for chunk in &report.deleted {
        println!("{verb} {:#} ({} bytes)", chunk.hash, chunk.stored_bytes);
    }
    println!(
        "{} manifests, {} chunks: {} referenced, {} within the grace period, {} spared by pushes \
         during gc; {verb} {} chunks ({} bytes), {} stale temporary files",
        report.manifests,
        report.chunks,
        report.referenced,
        report.young,
        report.spared,
        report.deleted.len(),
        report.freed_bytes,
        report.temporaries,
    );
}

async fn check(flags: &StorageFlag) -> anyhow::Result<ExitCode> {
    let report = verify::run(&flags.storage()).await?;
    for problem in &report.problems {
        println!("{problem}");
    }
    println!(
        "verified {} chunks ({} bytes) and {} manifests: {} problems",
        report.chunks,
        report.bytes,
        report.manifests,
        report.problems.len()
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
