//! Finding the daemon: connect to its socket, and when nothing answers, start `shardd` and wait
//! for it (probe → lock → probe → spawn → wait), so users never have to think about it.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hyper_util::rt::TokioIo;
use shard_proto::shardd_client::SharddClient;
use shard_proto::{DaemonStatusRequest, DaemonStatusResponse, ShutdownRequest};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The client type every command uses.
pub type Client = SharddClient<Channel>;

/// How often the socket is probed while a new daemon starts (atuin uses 40 ms too).
const STARTUP_POLL: Duration = Duration::from_millis(40);

/// How long a new daemon may take to answer before we give up and show its log.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of the daemon's log shown when it failed to start.
const LOG_TAIL_LINES: usize = 15;

/// Opens a gRPC channel over the Unix socket at `path`.
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// Connects to a daemon that answers, with a compatible version.
async fn probe(socket: &Path) -> Option<(Client, DaemonStatusResponse)> {
    let channel = connect(socket).await.ok()?;
    let mut client = SharddClient::new(channel).max_decoding_message_size(64 << 20);
    let status = client
        .daemon_status(DaemonStatusRequest {})
        .await
        .ok()?
        .into_inner();
    Some((client, status))
}

/// A client of a running daemon; never starts one (for `nshard daemon status|stop`).
pub async fn existing(socket: &Path) -> Option<(Client, DaemonStatusResponse)> {
    probe(socket).await
}

/// A client of a daemon of our own version, starting (or restarting) one when needed.
pub async fn ensure_running(socket: &Path, shardd: Option<&Path>) -> Result<Client> {
    if let Some((client, status)) = probe(socket).await {
        if compatible(&status) {
            return Ok(client);
        }
        replace_outdated(client, &status, socket).await?;
    }
    prepare_dir(socket)?;
    let lock_path = shard_proto::startup_lock_path(socket);
    let lock = File::create(&lock_path)
        .with_context(|| format!("failed to create {}", lock_path.display()))?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .context("startup lock task failed")?
        .with_context(|| format!("failed to lock {}", lock_path.display()))?;
    // Another nshard may have started the daemon while we waited for the lock.
    if let Some((client, status)) = probe(socket).await
        && compatible(&status)
    {
        return Ok(client);
    }
    let result = spawn_and_wait(socket, shardd).await;
    drop(lock);
    result
}

fn compatible(status: &DaemonStatusResponse) -> bool {
    status.protocol_version == shard_proto::PROTOCOL_VERSION
        && status.version == env!("CARGO_PKG_VERSION")
}

/// Stops a daemon of another version if we started it; otherwise explains how to.
async fn replace_outdated(
    mut client: Client,
    status: &DaemonStatusResponse,
    socket: &Path,
) -> Result<()> {
    if !status.auto_spawned {
        bail!(
            "shardd {} (pid {}) is serving {} but this nshard is {}: restart it with `nshard daemon \
             restart` or through your service manager",
            status.version,
            status.pid,
            socket.display(),
            env!("CARGO_PKG_VERSION")
        );
    }
    let _ = client.shutdown(ShutdownRequest {}).await;
    wait_until_gone(socket).await
}

/// Waits until nothing answers on `socket` any more.
pub async fn wait_until_gone(socket: &Path) -> Result<()> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while probe(socket).await.is_some() {
        if Instant::now() > deadline {
            bail!(
                "shardd on {} did not stop within {STARTUP_TIMEOUT:?}",
                socket.display()
            );
        }
        tokio::time::sleep(STARTUP_POLL).await;
    }
    // The pidfile lock is released when the process exits, a moment after the socket closes.
    let pidfile = shard_proto::pidfile_path(socket);
    while let Ok(file) = File::open(&pidfile) {
        match file.try_lock_shared() {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(STARTUP_POLL).await,
            Err(_) => bail!("shardd still holds {}", pidfile.display()),
        }
    }
    Ok(())
}

/// Creates the socket directory privately (the daemon checks it again).
fn prepare_dir(socket: &Path) -> Result<()> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    Ok(())
}

async fn spawn_and_wait(socket: &Path, shardd: Option<&Path>) -> Result<Client> {
    let bin = find_shardd(shardd)?;
    let log_path = shard_proto::log_path(socket);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("failed to open the daemon log {}", log_path.display()))?;
    let log_start = log.metadata().map_or(0, |m| m.len());
    let mut child = Command::new(&bin)
        .arg("--socket")
        .arg(socket)
        .arg("--auto-spawned")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("failed to start {}", bin.display()))?;
    wait_ready(socket, &mut child, &log_path, log_start).await
}

async fn wait_ready(
    socket: &Path,
    child: &mut Child,
    log_path: &Path,
    log_start: u64,
) -> Result<Client> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some((client, _)) = probe(socket).await {
            return Ok(client);
        }
        if let Some(status) = child
            .try_wait()
            .context("failed to check on the new daemon")?
        {
            let tail = log_tail(log_path, log_start);
            return Err(anyhow!("shardd failed to start ({status}):\n{tail}"));
        }
        if Instant::now() > deadline {
            let tail = log_tail(log_path, log_start);
            bail!(
                "shardd did not answer on {} within {STARTUP_TIMEOUT:?}:\n{tail}",
                socket.display()
            );
        }
        tokio::time::sleep(STARTUP_POLL).await;
    }
}

/// The last lines the daemon logged since `start`.
fn log_tail(path: &Path, start: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(start));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// `SHARDD_BIN`, else `shardd` beside this executable, else on `PATH`.
#[expect(
    clippy::disallowed_methods,
    reason = "PATH lookup is the one environment read here"
)]
fn find_shardd(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(sibling) = std::env::current_exe().ok().and_then(|exe| {
        let candidate = exe.parent()?.join("shardd");
        candidate.is_file().then_some(candidate)
    }) {
        return Ok(sibling);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("shardd"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!("cannot find the shardd binary beside nshard or on PATH; set SHARDD_BIN")
        })
}
