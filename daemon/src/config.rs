//! The daemon's configuration, resolved once at start-up: defaults < environment < flags.
//! This is the only module that reads environment variables.
//!
//! | Variable | Meaning | Default |
//! |---|---|---|
//! | `SHARDD_SOCKET` | socket path | `$XDG_RUNTIME_DIR/shardd/shardd.sock`, else `${TMPDIR:-/tmp}/shardd-$UID/shardd.sock` |
//! | `SHARDD_LOG` | tracing filter (`info`, `shardd=debug`, …) | [`DEFAULT_LOG_FILTER`] |
//! | `SHARDD_IDLE_TIMEOUT` | exit after this long without requests (`0` = never) | `0` |
//! | `XDG_RUNTIME_DIR`, `TMPDIR` | where the default socket lives | |

use std::path::PathBuf;
use std::time::Duration;

/// The log filter without `SHARDD_LOG`: notify reports every watch it could not remove (a
/// directory deleted under it) at `info`, which is noise.
pub const DEFAULT_LOG_FILTER: &str = "info,notify=warn";

/// Everything the daemon needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The Unix socket to serve on.
    pub socket: PathBuf,
    /// Exit after this long without a request; zero disables the timeout.
    pub idle_timeout: Duration,
    /// True when `nshard` started this daemon (reported so a newer client may restart it).
    pub auto_spawned: bool,
    /// The tracing filter.
    pub log_filter: String,
}

/// Values given on the command line, which win over the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--auto-spawned`.
    pub auto_spawned: bool,
}

impl Config {
    /// Resolves the configuration from the process environment and `overrides`.
    #[must_use]
    pub fn resolve(overrides: Overrides) -> Self {
        let socket = overrides
            .socket
            .or_else(|| var("SHARDD_SOCKET").map(PathBuf::from));
        let socket = socket.unwrap_or_else(|| {
            let runtime = var("XDG_RUNTIME_DIR").map(PathBuf::from);
            let tmp = var("TMPDIR").map(PathBuf::from);
            shard_proto::default_socket_path(runtime.as_deref(), tmp.as_deref())
        });
        let idle_timeout = overrides
            .idle_timeout
            .or_else(|| var("SHARDD_IDLE_TIMEOUT").and_then(|v| humantime::parse_duration(&v).ok()))
            .unwrap_or(Duration::ZERO);
        Self {
            socket,
            idle_timeout,
            auto_spawned: overrides.auto_spawned,
            log_filter: var("SHARDD_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
        }
    }
}

/// glibc's malloc raises its mmap threshold after the first large `free`, after which every
/// multi-megabyte chunk buffer is carved from per-thread arenas that are never returned to the system
/// (a 1 GiB push left the daemon at 295 MB). Pinning the threshold at 1 MiB keeps chunk buffers
/// in their own mappings, released when freed (the same push peaks at 84 MB and falls back to
/// 24 MB). The tunable must be in the environment before the process starts, so the daemon
/// re-executes itself once with it set; a value the operator chose is left alone.
pub const MALLOC_TUNABLE: (&str, &str) = ("MALLOC_MMAP_THRESHOLD_", "1048576");

/// On Linux, re-executes the current binary with [`MALLOC_TUNABLE`] set unless it already is.
/// Returns only when no re-execution happened (or it failed, which costs memory, not
/// correctness).
#[expect(
    clippy::disallowed_methods,
    reason = "config.rs is the one place that reads the environment"
)]
pub fn tune_malloc() {
    if !cfg!(target_os = "linux") || std::env::var_os(MALLOC_TUNABLE.0).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(MALLOC_TUNABLE.0, MALLOC_TUNABLE.1),
    );
    // exec only returns on failure; run untuned.
    eprintln!(
        "shardd: could not re-execute with {}: {error}",
        MALLOC_TUNABLE.0
    );
}

/// A non-empty environment variable.
#[expect(
    clippy::disallowed_methods,
    reason = "config.rs is the one place that reads the environment"
)]
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Standard error for logs, ignoring write errors: tracing-subscriber reports a failed write
/// with `eprintln!`, which panics when stderr is a closed pipe (`shardd 2>&1 | head -1`), and
/// a panicking task never finishes what it was doing (shutting down on SIGTERM).
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        *self
    }
}
