//! `Sandbox`: one private world per test (tempdir, socket, HOME, XDG dirs, a real Git
//! repository) in which `nshard` runs as a user would run it and auto-spawns its own `shardd`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A safety net against a hung daemon, not an assertion: a healthy command takes a fraction of
/// this even on a loaded 2-core CI machine with a debug build.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// How long `shard-server` may take to bind and report its address (a safety net).
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long background chunking or compression of a small file may take (a safety net, not a
/// benchmark).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// Between two polls of `status`: often enough to be quick, rare enough to stay cheap.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long `Drop` lets `nshard daemon stop` take before killing the daemon by its pid.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The built binaries, found the way users find them: side by side in one directory.
struct Bins {
    nshard: PathBuf,
    shardd: PathBuf,
    shard_server: PathBuf,
}

impl Bins {
    /// The test executable is `target/<profile>/deps/e2e-<hash>`, so the binaries built by
    /// `cargo build --workspace --bins` are two levels up.
    fn locate() -> Self {
        let exe = std::env::current_exe().expect("the test executable has a path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps/");
        let bins = Self {
            nshard: dir.join("nshard"),
            shardd: dir.join("shardd"),
            shard_server: dir.join("shard-server"),
        };
        for bin in [&bins.nshard, &bins.shardd, &bins.shard_server] {
            assert!(
                bin.is_file(),
                "{} is missing: run `cargo build --workspace --bins` first",
                bin.display()
            );
        }
        bins
    }
}

/// A private tempdir holding a Git repository (`repo/`), the daemon's socket directory
/// (`run/`), HOME and XDG directories. Dropping it stops the daemon it started.
pub struct Sandbox {
    /// Deleted (after `Drop` stopped the daemon) when the sandbox goes.
    _tempdir: TempDir,
    root: PathBuf,
    socket: PathBuf,
    bins: Bins,
    extra_env: Vec<(OsString, OsString)>,
}

impl Sandbox {
    /// A sandbox whose `repo/` is a fresh `git init` repository (no `.shard/` yet).
    #[must_use]
    pub fn new() -> Self {
        let sandbox = Self::without_repo();
        std::fs::create_dir(&sandbox.root).expect("create repo/");
        let _ = sandbox.git(&["init", "--quiet", "--initial-branch=main"]);
        sandbox
    }

    /// A sandbox whose `repo/` is a `git clone` of `origin`'s repository: another machine.
    #[must_use]
    pub fn clone_of(origin: &Sandbox) -> Self {
        let sandbox = Self::without_repo();
        let origin = origin.root.to_str().expect("tempdir paths are UTF-8");
        let _ = sandbox.git_in(sandbox.base(), &["clone", "--quiet", origin, "repo"]);
        sandbox
    }

    fn without_repo() -> Self {
        let bins = Bins::locate();
        // Unix socket paths are limited to ~100 bytes: stay directly under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("ns")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let base = dir.path().canonicalize().expect("canonical tempdir");
        for sub in ["home/.config", "home/.cache", "home/.local/state", "tmp"] {
            std::fs::create_dir_all(base.join(sub)).expect("create sandbox directory");
        }
        Self {
            socket: base.join("run").join("s.sock"),
            root: base.join("repo"),
            _tempdir: dir,
            bins,
            extra_env: Vec::new(),
        }
    }

    /// A sandbox after `nshard init` and `nshard track 'models/*.bin'`.
    #[must_use]
    pub fn with_repo() -> Self {
        let sandbox = Self::new();
        let _ = sandbox.ok(&["init"]);
        let _ = sandbox.ok(&["track", "models/*.bin"]);
        sandbox
    }

    /// Adds an environment variable to every later command of this sandbox.
    pub fn set_env(&mut self, key: &str, value: impl Into<OsString>) {
        self.extra_env.push((key.into(), value.into()));
    }

    /// The sandbox's tempdir (parent of the repository).
    #[must_use]
    pub fn base(&self) -> &Path {
        self.root.parent().expect("repo/ has a parent")
    }

    /// The repository root.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The daemon's socket.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The `nshard` binary under test.
    #[must_use]
    pub fn nshard_bin(&self) -> &Path {
        &self.bins.nshard
    }

    /// The `shardd` binary the sandbox's `nshard` starts.
    #[must_use]
    pub fn shardd_bin(&self) -> &Path {
        &self.bins.shardd
    }

    /// The log an auto-spawned daemon writes (beside its socket).
    #[must_use]
    pub fn daemon_log(&self) -> PathBuf {
        self.socket.with_file_name("s.log")
    }

    /// `program` with the sandbox's private environment, run in the sandbox's tempdir: for
    /// starting `shardd` the way a service manager would.
    #[must_use]
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut cmd = std::process::Command::new(program);
        let _ = cmd.env_clear().envs(self.env()).current_dir(self.base());
        cmd
    }

    /// A path inside the repository.
    #[must_use]
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The private environment every process of this sandbox gets (and nothing else, so the
    /// developer's own `SHARDD_*`, `NSHARD_*`, `AWS_*` or Git settings never leak in).
    fn env(&self) -> Vec<(OsString, OsString)> {
        let base = self.base();
        let home = base.join("home");
        let mut env: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("XDG_CACHE_HOME".into(), home.join(".cache").into()),
            ("XDG_STATE_HOME".into(), home.join(".local/state").into()),
            ("XDG_RUNTIME_DIR".into(), base.join("run").into()),
            ("TMPDIR".into(), base.join("tmp").into()),
            ("SHARDD_SOCKET".into(), self.socket.clone().into()),
            ("SHARDD_BIN".into(), self.bins.shardd.clone().into()),
            ("SHARDD_LOG".into(), "info".into()),
            ("LC_ALL".into(), "C".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_AUTHOR_NAME".into(), "E2E Test".into()),
            ("GIT_AUTHOR_EMAIL".into(), "e2e@example.com".into()),
            ("GIT_COMMITTER_NAME".into(), "E2E Test".into()),
            ("GIT_COMMITTER_EMAIL".into(), "e2e@example.com".into()),
        ];
        #[expect(
            clippy::disallowed_methods,
            reason = "the sandbox passes only PATH through"
        )]
        if let Some(path) = std::env::var_os("PATH") {
            env.push(("PATH".into(), path));
        }
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// `nshard` in the repository root.
    #[must_use]
    pub fn nshard(&self) -> Command {
        self.nshard_in(&self.root)
    }

    /// `nshard` in `cwd`.
    #[must_use]
    pub fn nshard_in(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(&self.bins.nshard);
        let _ = cmd
            .env_clear()
            .envs(self.env())
            .current_dir(cwd)
            .timeout(COMMAND_TIMEOUT);
        cmd
    }

    /// Runs `nshard args` in the repository root, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_in(&self.root, args)
    }

    /// Runs `nshard args` in `cwd`, asserts success, returns stdout.
    pub fn ok_in(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self
            .nshard_in(cwd)
            .args(args)
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stdout).expect("stdout is UTF-8")
    }

    /// Runs `nshard args --json`-style commands and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let stdout = self.ok(args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "`nshard {}` printed invalid JSON ({e}):\n{stdout}",
                args.join(" ")
            )
        })
    }

    /// Waits (polling `status --json`, bounded) until the daemon has chunked the current
    /// content of `file` in the background, for tests about what that must not change.
    pub fn wait_until_prepared(&self, file: &str) {
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        loop {
            let status = self.json(&["status", "--json"]);
            let entry = status["files"]
                .as_array()
                .and_then(|files| files.iter().find(|f| f["path"] == file));
            if entry.is_some_and(|f| f["prepared"] == true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never prepared {file}: {status:#}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (polling `status --json`, bounded) until the daemon works on no file in the
    /// background, before a test tampers with `.shard/objects` behind its back.
    pub fn wait_until_idle(&self) {
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        loop {
            let status = self.json(&["status", "--json"]);
            let files = status["files"].as_array().expect("files");
            if files
                .iter()
                .all(|f| f["activity"].as_str().is_none_or(str::is_empty))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon stayed busy: {status:#}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (bounded) until the stored objects of `file`'s chunks take less room than the
    /// file: commit stores new chunks raw and the daemon compresses them when idle.
    pub fn wait_until_compressed(&self, file: &str) {
        let manifest = self.manifest(file);
        let size = manifest["size"].as_u64().expect("size");
        let deadline = Instant::now() + PREPARE_TIMEOUT;
        loop {
            let stored: u64 = manifest["chunks"]
                .as_array()
                .expect("chunks")
                .iter()
                .filter_map(|c| std::fs::metadata(self.object(c["sha256"].as_str()?)).ok())
                .map(|m| m.len())
                .sum();
            if stored < size {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{file} was never stored compressed"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Runs `nshard args` in the repository root, asserts it fails the way every failure must
    /// (exit 1, nothing on stdout, one line on stderr starting with `nshard: `) and returns
    /// that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.nshard().args(args).output().expect("nshard runs");
        expect_failure(&out, &format!("nshard {}", args.join(" ")))
    }

    /// Runs `nshard args` (a `--json` report of problems, such as `verify`) in the
    /// repository root, asserts it exits 1, and returns the report it printed.
    pub fn json_of_problems(&self, args: &[&str]) -> Value {
        let out = self.nshard().args(args).output().expect("nshard runs");
        assert_eq!(out.status.code(), Some(1), "nshard {}", args.join(" "));
        serde_json::from_slice(&out.stdout).expect("a JSON report")
    }

    /// Versions `file` so that its manifest conflicts: `v1` on main, then `tuned` on a branch
    /// and `retrained` on main (`len` bytes from each of `seeds`), committed with nshard and
    /// Git, then `git merge tuned`, which must stop on the conflict. Needs `git-init`.
    pub fn merge_conflicting_versions(&self, file: &str, len: usize, seeds: [u64; 3]) {
        self.write(file, &random_bytes(seeds[0], len));
        let _ = self.ok(&["commit", "-m", "v1"]);
        let _ = self.git(&["add", "-A"]);
        let _ = self.git(&["commit", "-qm", "v1"]);
        let _ = self.git(&["checkout", "-qb", "tuned"]);
        self.write(file, &random_bytes(seeds[1], len));
        let _ = self.ok(&["commit", "-m", "tuned"]);
        let _ = self.git(&["commit", "-qam", "tuned"]);
        let _ = self.git(&["checkout", "-q", "main"]);
        let _ = self.ok(&["checkout"]);
        self.write(file, &random_bytes(seeds[2], len));
        let _ = self.ok(&["commit", "-m", "retrained"]);
        let _ = self.git(&["commit", "-qam", "retrained"]);
        let merge = self
            .command("git")
            .current_dir(&self.root)
            .args(["merge", "-q", "tuned"])
            .output()
            .expect("git runs");
        assert!(!merge.status.success(), "the manifests must conflict");
    }

    /// Runs `git args` in the repository root, asserts success, returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.root, args)
    }

    fn git_in(&self, cwd: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .env_clear()
            .envs(self.env())
            .current_dir(cwd)
            .args(args)
            .output()
            .expect("git runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "git {} failed: {stderr}",
            args.join(" ")
        );
        String::from_utf8(out.stdout).expect("git prints UTF-8")
    }

    /// True when `git check-ignore` says Git ignores `rel`.
    #[must_use]
    pub fn git_ignores(&self, rel: &str) -> bool {
        let out = std::process::Command::new("git")
            .env_clear()
            .envs(self.env())
            .current_dir(&self.root)
            .args(["check-ignore", "--quiet", "--no-index", rel])
            .output()
            .expect("git runs");
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!(
                "git check-ignore {rel} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Writes a file in the repository, creating its directory.
    pub fn write(&self, rel: &str, data: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Reads a file of the repository.
    #[must_use]
    pub fn read(&self, rel: &str) -> Vec<u8> {
        let path = self.path(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The parsed manifest of `file`.
    #[must_use]
    pub fn manifest(&self, file: &str) -> Value {
        let text = self.read(&format!("{file}.shard.json"));
        serde_json::from_slice(&text).expect("the manifest is JSON")
    }

    /// The object file of a chunk in the local store.
    #[must_use]
    pub fn object(&self, hash: &str) -> PathBuf {
        self.path(&format!(".shard/objects/{}/{hash}", &hash[..2]))
    }

    /// Every chunk id in the local store, sorted.
    #[must_use]
    pub fn stored_chunks(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(fanout) = std::fs::read_dir(self.path(".shard/objects")) else {
            return out;
        };
        for dir in fanout {
            for entry in std::fs::read_dir(dir.expect("fan-out entry").path()).expect("fan-out dir")
            {
                let name = entry.expect("object entry").file_name();
                out.push(name.to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    /// Every file below `rel` (relative paths, sorted), to prove nothing stray was written.
    #[must_use]
    pub fn files_under(&self, rel: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    let rel = path.strip_prefix(base).expect("below base");
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path(rel), &self.root, &mut out);
        out.sort();
        out
    }

    /// The pid the running daemon recorded in its pidfile (first line).
    #[must_use]
    pub fn pidfile_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.socket.with_file_name("s.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Replaces `repo`-relative tempdir paths in `text` with `[ROOT]`/`[BASE]` for snapshots.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "[ROOT]")
            .replace(&self.base().display().to_string(), "[BASE]")
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandbox {
    /// Stops the daemon this sandbox started. Bounded: if `nshard daemon stop` does not
    /// finish, the daemon is killed by the pid in its pidfile so no test leaves one behind.
    fn drop(&mut self) {
        if !self.socket.exists() && self.pidfile_pid().is_none() {
            return;
        }
        let mut stop = self.nshard();
        let stopped = stop
            .args(["daemon", "stop"])
            .timeout(STOP_TIMEOUT)
            .output()
            .is_ok_and(|out| out.status.success());
        if let (false, Some(pid)) = (stopped, self.pidfile_pid()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A `shard-server` on a free loopback port, storing in the sandbox. Dropping it kills it.
pub struct ShardServer {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its storage directory.
    pub storage: PathBuf,
}

impl ShardServer {
    /// Starts `shard-server --listen 127.0.0.1:0 --storage <base>/server-data [extra...]` and
    /// waits (bounded) for the address it reports on stderr.
    #[must_use]
    pub fn start(sandbox: &Sandbox, extra: &[&str]) -> Self {
        let storage = sandbox.base().join("server-data");
        let mut child = std::process::Command::new(&sandbox.bins.shard_server)
            .env_clear()
            .envs(sandbox.env())
            .current_dir(sandbox.base())
            .args(["--listen", "127.0.0.1:0", "--storage"])
            .arg(&storage)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shard-server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, rx) = mpsc::channel();
        // Keeps draining after the address is known, so the server never blocks on a full pipe.
        let _ = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        let mut seen = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "shard-server reported no address; stderr:\n{}",
                    seen.join("\n")
                );
            };
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break url.to_owned();
            }
            seen.push(line);
        };
        Self {
            child,
            url,
            storage,
        }
    }
}

impl Drop for ShardServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts `out` is a clean failure (exit 1, empty stdout, one `nshard: ` line on stderr) and
/// returns the stderr line.
pub fn expect_failure(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "`{what}` should exit 1; stderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(
        stdout.is_empty(),
        "`{what}` failed but printed on stdout:\n{stdout}"
    );
    assert!(
        stderr.starts_with("nshard: "),
        "`{what}`: stderr must start with `nshard: `:\n{stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "`{what}`: the error must be one line:\n{stderr}"
    );
    stderr.trim_end().to_owned()
}

/// `len` deterministic pseudo-random (incompressible) bytes: xorshift64 seeded by `seed`.
#[must_use]
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `len` deterministic bytes that compress well (16 distinct values), like sparse weights.
#[must_use]
pub fn compressible_bytes(seed: u64, len: usize) -> Vec<u8> {
    random_bytes(seed, len)
        .into_iter()
        .map(|b| b & 0x0F)
        .collect()
}

/// Lowercase hex SHA-256, computed independently of the product.
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// 1 MiB.
pub const MIB: usize = 1 << 20;

/// The string field `key` of every entry of the JSON array `list`, in order: the paths of
/// `status --json`'s files, the states, and so on.
#[must_use]
pub fn each<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|entry| entry[key].as_str().expect("a string field"))
        .collect()
}
