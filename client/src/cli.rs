//! The command-line surface (clap derive types only) and the environment the client reads.

use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};

/// Git for AI models: version multi-gigabyte files beside Git, deduplicated by content.
///
/// nshard is a thin client: the work is done by the shardd daemon, which nshard starts when
/// none is running.
#[derive(Debug, Parser)]
#[command(
    name = "nshard",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The daemon's socket [default: `$SHARDD_SOCKET`, else `$XDG_RUNTIME_DIR/shardd/shardd.sock`,
    /// else `${TMPDIR:-/tmp}/shardd-$UID/shardd.sock`]
    // SHARDD_SOCKET is read in `default_socket`, not through clap's `env`: clap lists an
    // argument set from the environment in every usage line, as if it were required.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository (.shard/) in the current directory.
    Init(InitArgs),
    /// Add .gitignore entries for .shard/ and every tracked file (never for manifests).
    GitInit(GitInitArgs),
    /// Start tracking files or glob patterns (quote patterns: 'models/*.safetensors').
    Track(PathsArgs),
    /// Stop tracking files or patterns (manifests and stored chunks are kept).
    Untrack(PathsArgs),
    /// Chunk and store changed tracked files and write their manifests (`<file>.shard.json`).
    Commit(CommitArgs),
    /// Show the state of every tracked file: clean, modified, new or missing.
    Status(JsonArgs),
    /// Chunk-level statistics of a working file against its manifest.
    Diff(DiffArgs),
    /// Rebuild files from the local store (all manifests when none is named).
    Checkout(CheckoutArgs),
    /// Delete stored chunks that no manifest references (working tree, Git history, reflog).
    Gc(GcArgs),
    /// Upload the chunks that manifests need to a remote (only what it lacks).
    Push(PushArgs),
    /// Download the chunks that manifests need from a remote, then check the files out.
    Pull(PullArgs),
    /// Manage named remotes.
    Remote(RemoteArgs),
    /// Show every version of a file in Git history, with per-version storage growth.
    Log(LogArgs),
    /// Check the integrity of stored chunks and that every manifest's chunks exist.
    Verify(VerifyArgs),
    /// Manage the daemon.
    Daemon(DaemonArgs),
    /// Entry points for the Git hooks installed by `git-init --hooks`.
    #[command(hide = true)]
    Hook(HookArgs),
}

/// `nshard init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Average chunk size (FastCDC; default 2MiB) or block size (--fixed), e.g. 4MiB, 1M, 65536
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u64>,
    /// Cut fixed-size blocks instead of content-defined chunks
    #[arg(long)]
    pub fixed: bool,
}

/// `nshard git-init`.
#[derive(Debug, Args)]
pub struct GitInitArgs {
    /// Also install Git hooks: pre-push uploads chunks, post-checkout/post-merge pull files
    /// (existing hooks are kept and run first)
    #[arg(long)]
    pub hooks: bool,
}

/// `nshard log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The file (or its manifest)
    pub file: String,
    /// Print machine-readable JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `nshard verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verify this remote's copies (URL or name) instead of the local store
    #[arg(long, short)]
    pub remote: Option<String>,
    /// Also check the manifests of every commit in Git history
    #[arg(long)]
    pub all: bool,
    /// Print machine-readable JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `nshard hook <name> <git's arguments>`.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// pre-push, post-checkout or post-merge
    pub name: String,
    /// The arguments Git passed to the hook
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Commands taking paths or patterns.
#[derive(Debug, Args)]
pub struct PathsArgs {
    /// Files, directories or glob patterns
    #[arg(required = true, value_name = "PATH|GLOB")]
    pub paths: Vec<String>,
}

/// `nshard commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Message stored in each manifest
    #[arg(short, long, value_parser = non_empty_message)]
    pub message: String,
    /// Commit only these tracked files (default: every changed tracked file)
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// Commands with only a `--json` switch.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print machine-readable JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `nshard diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The file (or its manifest)
    pub file: String,
    /// Two Git revisions to compare (`diff FILE REV1 REV2`)
    #[arg(value_name = "REV", num_args = 0..=2, conflicts_with = "rev")]
    pub revs: Vec<String>,
    /// Compare the working manifest with the one at this Git revision
    #[arg(long, value_name = "REV", value_parser = NonEmptyStringValueParser::new())]
    pub rev: Option<String>,
    /// Print machine-readable JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `nshard checkout`.
#[derive(Debug, Args)]
pub struct CheckoutArgs {
    /// Manifests (or files) to rebuild; default: every manifest in the repository
    #[arg(value_name = "MANIFEST")]
    pub manifests: Vec<String>,
    /// Overwrite files even when their current content is stored nowhere
    #[arg(long)]
    pub force: bool,
    /// Materialise the versions recorded at this Git revision (Git's HEAD does not move)
    #[arg(long, value_name = "REV", value_parser = NonEmptyStringValueParser::new())]
    pub rev: Option<String>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `nshard gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only show what would be deleted
    #[arg(long)]
    pub dry_run: bool,
    /// Keep chunks written less than this long ago, e.g. 1h, 10m, 0s
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub grace: std::time::Duration,
    /// Also drop local copies of chunks the default remote holds (they can be pulled again)
    #[arg(long)]
    pub evict_pushed: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `nshard push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Remote URL (`http(s)://`, directory, `file://`, `s3://bucket/prefix`) or name; default: the
    /// default remote
    #[arg(long, short)]
    pub remote: Option<String>,
    /// Manifests (or files) to push; default: every manifest in the repository
    #[arg(value_name = "MANIFEST")]
    pub manifests: Vec<String>,
    /// Parallel uploads
    #[arg(long, short, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `nshard pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Manifests (or files) to pull; default: every manifest in the repository
    #[arg(value_name = "MANIFEST")]
    pub manifests: Vec<String>,
    /// Remote URL or name; default: the default remote
    #[arg(long, short)]
    pub remote: Option<String>,
    /// Parallel downloads
    #[arg(long, short, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Overwrite working files even when their current content is stored nowhere
    #[arg(long)]
    pub force: bool,
    /// Fetch and write the files as recorded at this Git revision (like `checkout --rev`)
    #[arg(long, value_name = "REV", value_parser = NonEmptyStringValueParser::new())]
    pub rev: Option<String>,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `nshard remote`.
#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// What to do with remotes.
    #[command(subcommand)]
    pub action: RemoteAction,
}

/// `nshard remote <action>`.
#[derive(Debug, Subcommand)]
pub enum RemoteAction {
    /// Add a named remote (the only remote, or one named `origin`, is the default).
    Add {
        /// Its name, e.g. origin
        name: String,
        /// Its URL: `http(s)://host:port`, a directory, `file:///path` or `s3://bucket/prefix`
        url: String,
        /// Use it when no --remote is given
        #[arg(long)]
        default: bool,
        /// Store it in the committed .shardconfig so every clone gets it
        #[arg(long)]
        shared: bool,
    },
    /// Remove a named remote.
    Remove {
        /// Its name
        name: String,
    },
    /// List remotes.
    List(JsonArgs),
}

/// `nshard daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// What to do with the daemon.
    #[command(subcommand)]
    pub action: DaemonAction,
}

/// `nshard daemon <action>`.
#[derive(Debug, Subcommand)]
pub enum DaemonAction {
    /// Show whether the daemon runs, its version, pid and socket.
    Status(JsonArgs),
    /// Stop the daemon.
    Stop,
    /// Stop the daemon and start a fresh one.
    Restart,
    /// Print the daemon's log (of a daemon nshard started).
    Logs(LogsArgs),
}

/// `nshard daemon logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only the last N lines
    #[arg(short = 'n', long, default_value_t = 100)]
    pub lines: usize,
}

/// Parses `1h`, `10m`, `0s`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 1h or 30m"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use s, m, h or d)"
            ));
        }
    };
    Ok(std::time::Duration::from_secs(value.saturating_mul(secs)))
}

/// Parses `4MiB`, `4M`, `512KiB`, `65536` into bytes.
/// A commit message with something in it (as `git commit` insists).
fn non_empty_message(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("the message is empty: say what changed".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as 4MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use KiB or MiB)")),
    };
    match value.checked_mul(scale) {
        // 0 would mean "the default" on the wire: say so instead of silently using it.
        Some(0) => Err("a size must be more than 0 (leave --chunk-size out for 2 MiB)".to_owned()),
        Some(size) => Ok(size),
        None => Err(format!("`{text}` is too large")),
    }
}

/// Environment variables forwarded to the daemon with requests that need them, so the
/// daemon acts with the caller's credentials, never its own.
pub const FORWARDED_ENV_PREFIXES: [&str; 2] = ["NSHARD_", "AWS_"];

/// Single variables forwarded likewise: `HOME` locates the caller's `~/.aws/` profiles.
pub const FORWARDED_ENV_NAMES: [&str; 2] = ["SOURCE_DATE_EPOCH", "HOME"];

/// The caller's environment entries the daemon may need.
#[must_use]
pub fn forwarded_env() -> std::collections::HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            FORWARDED_ENV_PREFIXES.iter().any(|p| k.starts_with(p))
                || FORWARDED_ENV_NAMES.contains(&k.as_str())
        })
        .collect()
}

/// `SHARDD_BIN`: the daemon binary to start instead of the one beside `nshard` or on `PATH`.
#[must_use]
#[expect(
    clippy::disallowed_methods,
    reason = "cli.rs is where the client reads its environment"
)]
pub fn shardd_bin_override() -> Option<PathBuf> {
    std::env::var_os("SHARDD_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `NSHARD_AUTOSTART=0` (or `false`/`no`): never start a daemon; for machines where a service
/// manager (systemd, launchd) owns `shardd`.
#[must_use]
#[expect(
    clippy::disallowed_methods,
    reason = "cli.rs is where the client reads its environment"
)]
pub fn autostart() -> bool {
    let value = std::env::var_os("NSHARD_AUTOSTART").unwrap_or_default();
    let value = value.to_string_lossy().trim().to_ascii_lowercase();
    !matches!(value.as_str(), "0" | "false" | "no" | "off")
}

/// The socket when `--socket` is not given: `SHARDD_SOCKET`, else the default path from
/// `XDG_RUNTIME_DIR` / `TMPDIR`.
#[must_use]
#[expect(
    clippy::disallowed_methods,
    reason = "cli.rs is where the client reads its environment"
)]
pub fn default_socket() -> PathBuf {
    if let Some(socket) = std::env::var_os("SHARDD_SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(socket);
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let tmp = std::env::var_os("TMPDIR").map(PathBuf::from);
    shard_proto::default_socket_path(runtime.as_deref(), tmp.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("0").is_err_and(|e| e.contains("more than 0")));
        assert!(parse_size("0MiB").is_err());
    }

    #[test]
    fn commit_messages_must_say_something() {
        assert!(non_empty_message("").is_err());
        assert!(non_empty_message(" \n ").is_err());
        assert_eq!(non_empty_message("v2").as_deref(), Ok("v2"));
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
