//! `shardd`, the NeuroShard daemon, and the library behind `shard-server`.
//!
//! One daemon per user serves every repository of that user over a Unix socket. `nshard`
//! (and editor plugins) send gRPC requests carrying their working directory; the daemon finds
//! the repository, does the work on blocking threads and streams progress back.
//!
//! ```text
//!  nshard ──gRPC/UDS──▶ server ──▶ rpc::Service ──▶ ops::{commit,status,checkout,gc,…}
//!                                      │                   │
//!                                  repos::Repos        repo::Repo ──▶ store::local (.shard/objects)
//!                              (index per repo, lock)      │
//!                                         chunk::{cdc,segments,codec,buffers}, manifest
//! ```
//!
//! Main types: [`Config`], [`repo::Repo`], [`store::local::LocalStore`], [`manifest::Manifest`],
//! [`chunk::ChunkHash`].

pub mod activity;
pub mod chunk;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod git;
pub mod http;
pub mod index;
pub mod lifecycle;
pub mod manifest;
pub mod ops;
pub mod prepare;
pub mod repo;
pub mod repos;
pub mod rpc;
pub mod server;
pub mod store;
pub mod watch;

use std::sync::Arc;

pub use config::Config;
pub use error::Error;
use tokio_util::sync::CancellationToken;

/// Runs the daemon until `shutdown` is cancelled (by a signal, the `Shutdown` rpc or the
/// caller), then flushes every index and removes the socket.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    use anyhow::Context as _;
    lifecycle::prepare_socket_dir(&config.socket)?;
    let pidfile = lifecycle::lock_pidfile(&config.socket)?;
    let listener = server::listen(&config.socket)
        .with_context(|| format!("failed to listen on {}", config.socket.display()))?;
    let (listener, owns_socket) = match listener {
        server::Listener::Bound(l) => (l, true),
        server::Listener::Inherited(l) => (l, false),
    };
    lifecycle::cancel_on_signals(shutdown.clone())?;
    tracing::info!(
        socket = %config.socket.display(),
        inherited = !owns_socket,
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        "listening"
    );
    let repos = Arc::new(repos::Repos::default());
    let activity = Arc::new(activity::Activity::default());
    let preparer = prepare::Preparer::start(Arc::clone(&repos), Arc::clone(&activity));
    let remembered = shard_proto::repos_path(&config.socket);
    repos.set_watcher(watch::spawn(
        preparer.clone(),
        Arc::clone(&activity),
        remembered,
        shutdown.child_token(),
    ));
    let service = rpc::Service::new(
        rpc::Shared {
            repos: Arc::clone(&repos),
            activity,
            preparer,
        },
        shutdown.clone(),
        &config.socket,
        config.auto_spawned,
    );
    let served = server::serve(listener, service, config.idle_timeout, shutdown.clone()).await;
    repos.close_all();
    if owns_socket {
        let _ = std::fs::remove_file(&config.socket);
    }
    tracing::info!("stopped");
    // Keep the pidfile locked until the process is gone: the OS releases it at exit, after the
    // last index handle (a background thread may still hold one) has closed, so a client that
    // waits for the lock (`nshard daemon stop`, an upgrade restart) never meets a half-exited
    // daemon. Its pid goes now, though: a client must not signal a pid that will be dead.
    pidfile.vacate();
    std::mem::forget(pidfile);
    served.context("the gRPC server failed")
}
