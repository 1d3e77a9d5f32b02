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

/// How often the socket is probed while a daemon starts or stops (atuin uses 40 ms too).
const STARTUP_POLL: Duration = Duration::from_millis(40);

/// The first pause while a new daemon starts, doubled up to [`STARTUP_POLL`]: a daemon
/// answers within about 10 ms, and the command that started it should not wait 40 ms more.
const FIRST_STARTUP_POLL: Duration = Duration::from_millis(1);

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

/// How long a daemon may take to answer `DaemonStatus`, which never waits for other work. A
/// daemon that accepts connections but stays silent longer is stuck (or stopped, `kill -STOP`).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// What answers on a socket.
enum Probe {
    /// A daemon, with its status.
    Answered(Client, Box<DaemonStatusResponse>),
    /// Nothing: no socket, or nobody behind it.
    Nothing,
    /// Something accepts connections but does not answer.
    Stuck,
}

/// Asks whatever is behind `socket` for its status, waiting at most [`ANSWER_TIMEOUT`].
async fn probe(socket: &Path) -> Probe {
    let ask = async {
        let Ok(channel) = connect(socket).await else {
            return Probe::Nothing;
        };
        let mut client = SharddClient::new(channel).max_decoding_message_size(64 << 20);
        match client.daemon_status(DaemonStatusRequest {}).await {
            Ok(status) => Probe::Answered(client, Box::new(status.into_inner())),
            Err(_) => Probe::Nothing,
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, ask)
        .await
        .unwrap_or(Probe::Stuck)
}

/// The error for a daemon that does not answer, naming its pid when the pidfile has one.
fn stuck(socket: &Path) -> anyhow::Error {
    let pid = pidfile_pid(socket).map_or_else(String::new, |pid| format!(" (pid {pid})"));
    anyhow!(
        "shardd{pid} accepts connections on {} but has not answered for {ANSWER_TIMEOUT:?}: stop \
         it with `nshard daemon stop`",
        socket.display()
    )
}

/// The pid the daemon behind `socket` wrote into its pidfile.
pub fn pidfile_pid(socket: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(shard_proto::pidfile_path(socket)).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// A client of a running daemon; never starts one (for `nshard daemon status|stop`). `None`
/// when nothing runs; an error when a daemon runs but does not answer.
pub async fn existing(socket: &Path) -> Result<Option<(Client, DaemonStatusResponse)>> {
    match probe(socket).await {
        Probe::Answered(client, status) => Ok(Some((client, *status))),
        Probe::Nothing => Ok(None),
        Probe::Stuck => Err(stuck(socket)),
    }
}

/// A client of a daemon of our version (or a newer one speaking our protocol), starting (or
/// restarting) one when needed.
pub async fn ensure_running(socket: &Path, shardd: Option<&Path>) -> Result<Client> {
    if let Some((client, status)) = existing(socket).await? {
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
    if let Probe::Answered(client, status) = probe(socket).await
        && compatible(&status)
    {
        return Ok(client);
    }
    let result = spawn_and_wait(socket, shardd).await;
    drop(lock);
    result
}

/// A daemon of our protocol that is not older than this client serves us; a newer one is
/// never replaced by an older client (two installed versions would take turns).
fn compatible(status: &DaemonStatusResponse) -> bool {
    status.protocol_version == shard_proto::PROTOCOL_VERSION
        && version(&status.version) >= version(env!("CARGO_PKG_VERSION"))
}

/// `1.2.3` as comparable numbers (anything after `-` or `+` ignored; junk counts as 0).
fn version(text: &str) -> Vec<u64> {
    let core = text.split(['-', '+']).next().unwrap_or_default();
    core.split('.').map(|n| n.parse().unwrap_or(0)).collect()
}

/// Stops an older daemon if we started it; otherwise explains how to.
async fn replace_outdated(
    mut client: Client,
    status: &DaemonStatusResponse,
    socket: &Path,
) -> Result<()> {
    if version(&status.version) > version(env!("CARGO_PKG_VERSION")) {
        bail!(
            "shardd {} (pid {}) on {} is newer than this nshard {} and speaks another protocol: \
             upgrade nshard",
            status.version,
            status.pid,
            socket.display(),
            env!("CARGO_PKG_VERSION")
        );
    }
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
    while !matches!(probe(socket).await, Probe::Nothing) {
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
    // The daemon outlives this command: it must not keep descriptors its caller handed us
    // beyond stdio (a test runner's pipe on fd 3, a make jobserver), or whoever waits for
    // that pipe to close waits forever. Rust opens its own files close-on-exec already.
    close_fds::set_fds_cloexec_threadsafe(3, &[]);
    let mut child = Command::new(&bin)
        .arg("--socket")
        .arg(socket)
        .arg("--auto-spawned")
        // Not the caller's directory: the daemon outlives it and must not keep a mount busy.
        .current_dir("/")
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
    let mut pause = FIRST_STARTUP_POLL;
    loop {
        if let Probe::Answered(client, _) = probe(socket).await {
            return Ok(client);
        }
        if let Some(status) = child
            .try_wait()
            .context("failed to check on the new daemon")?
        {
            let tail = log_tail(log_path, log_start);
            return Err(match startup_error(&tail) {
                Some(reason) => anyhow!("shardd failed to start: {reason}"),
                None => anyhow!(
                    "shardd failed to start ({status}); see {}",
                    log_path.display()
                ),
            });
        }
        if Instant::now() > deadline {
            let tail = log_tail(log_path, log_start);
            bail!(
                "shardd did not answer on {} within {STARTUP_TIMEOUT:?}:\n{tail}",
                socket.display()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(STARTUP_POLL);
    }
}

/// The message of the last error a failed daemon logged, without the log line's time, level
/// and target (`2026-… ERROR shardd: socket directory … (mode 755); run chmod 700 on it`).
/// Without such a line (a daemon that died before its logging started), the last line.
fn startup_error(log: &str) -> Option<String> {
    let Some(line) = log.lines().rev().find(|l| l.contains(" ERROR ")) else {
        let last = log.lines().rev().find(|l| !l.trim().is_empty())?;
        return Some(last.trim().to_owned());
    };
    let message = line.split_once(" ERROR ").map_or(line, |(_, m)| m);
    let message = message.split_once(": ").map_or(message, |(_, m)| m);
    Some(message.trim().to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_reads_as_one_sentence() {
        let log = "2026-11-30T12:07:31.394158Z  INFO shardd: starting\n\
                   2026-11-30T12:07:31.394158Z ERROR shardd: socket directory /x is accessible \
                   to other users (mode 755); run `chmod 700` on it\n";
        assert_eq!(
            startup_error(log).as_deref(),
            Some(
                "socket directory /x is accessible to other users (mode 755); run `chmod 700` on it"
            )
        );
        assert_eq!(startup_error(""), None);
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(version("0.10.0") > version("0.9.9"));
        assert!(version("1.0.0-rc1") == version("1.0.0"));
        assert!(version("0.1.0") >= version("0.1.0"));
    }
}
