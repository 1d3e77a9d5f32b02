//! Fixtures of the remote tests: two machines sharing one real Git repository through a bare
//! `origin.git`, `shard-server`s on any storage, and a moto S3 server. Every spawned process is
//! killed when its guard is dropped; every wait is bounded.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sandbox::Sandbox;

/// How long a server may take to bind and report its address (a safety net: moto imports a
/// lot of Python on a loaded CI machine).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The file every remote test exchanges.
pub const FILE: &str = "models/x.bin";

/// Its manifest, as the seed commands name it.
pub const MANIFEST: &str = "models/x.bin.shard.json";

// ---- two machines, one Git repository --------------------------------------------------------

/// The first machine: `nshard init`, `track 'models/*.bin'`, `git-init`, and a bare
/// `origin.git` (beside the repository) as its Git remote.
pub fn machine_a() -> Sandbox {
    let a = Sandbox::with_repo();
    let _ = a.ok(&["git-init"]);
    let origin = origin_of(&a);
    let origin = origin.to_str().unwrap();
    let _ = a.git(&["init", "--quiet", "--bare", "--initial-branch=main", origin]);
    let _ = a.git(&["remote", "add", "origin", origin]);
    a
}

fn origin_of(a: &Sandbox) -> PathBuf {
    a.base().join("origin.git")
}

/// Writes `file` on `a`, commits it with nshard and Git, and `git push`es the manifest.
pub fn publish(a: &Sandbox, file: &str, data: &[u8], message: &str) {
    a.write(file, data);
    let _ = a.ok(&["commit", "-m", message]);
    let _ = a.git(&["add", "-A"]);
    let _ = a.git(&["commit", "--quiet", "-m", message]);
    let _ = a.git(&["push", "--quiet", "--set-upstream", "origin", "main"]);
}

/// A second machine: a fresh clone of `a`'s `origin.git`, with no `nshard init`.
pub fn machine_b(a: &Sandbox) -> Sandbox {
    let b = Sandbox::new();
    let _ = b.git(&["remote", "add", "origin", origin_of(a).to_str().unwrap()]);
    let _ = b.git(&["pull", "--quiet", "origin", "main"]);
    let _ = b.git(&["branch", "--quiet", "--set-upstream-to=origin/main", "main"]);
    assert!(!b.path(".shard").exists(), "B must start without a store");
    b
}

/// Runs `nshard args` on `s` with `env` added to this invocation only.
pub fn run(s: &Sandbox, args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = s.nshard();
    let _ = cmd.args(args);
    for (k, v) in env {
        let _ = cmd.env(k, v);
    }
    cmd.output().expect("nshard runs")
}

/// [`run`], asserting success; returns stdout.
pub fn ok_with(s: &Sandbox, args: &[&str], env: &[(String, String)]) -> String {
    let out = run(s, args, env);
    assert!(
        out.status.success(),
        "`nshard {}` failed ({:?}):\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// [`ok_with`] with `--json` output parsed.
pub fn json_with(s: &Sandbox, args: &[&str], env: &[(String, String)]) -> Value {
    let stdout = ok_with(s, args, env);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "`nshard {}` printed invalid JSON ({e}):\n{stdout}",
            args.join(" ")
        )
    })
}

/// A counter of a push/pull `--json` summary.
pub fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {summary:#}"))
}

/// The number of chunks in `file`'s manifest on `s`.
pub fn chunks_of(s: &Sandbox, file: &str) -> u64 {
    s.manifest(file)["chunks"].as_array().expect("chunks").len() as u64
}

/// The chunk ids of `file`'s manifest on `s`.
pub fn chunk_ids(s: &Sandbox, file: &str) -> Vec<String> {
    s.manifest(file)["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .map(|c| c["sha256"].as_str().expect("sha256").to_owned())
        .collect()
}

/// Asserts that `b`'s copy of `file` is exactly `data` (without printing 64 MiB on failure).
pub fn assert_same(b: &Sandbox, file: &str, data: &[u8]) {
    let got = b.read(file);
    assert!(
        got == data,
        "{file} differs after the exchange: {} bytes, sha256 {} (expected {} bytes, {})",
        got.len(),
        crate::sandbox::sha256_hex(&got),
        data.len(),
        crate::sandbox::sha256_hex(data)
    );
}

/// Chunk objects (files named by a 64-hex id) under `<root>/objects/`: what a directory remote
/// or a `shard-server`'s storage holds. Staging files are not counted.
pub fn objects_in(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(fanout) = std::fs::read_dir(root.join("objects")) else {
        return out;
    };
    for dir in fanout.flatten() {
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// A loopback port nothing listens on (it was free a moment ago and is not ours any more).
pub fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

// ---- servers ---------------------------------------------------------------------------------

/// A child process that reported its URL on stderr; killed on drop.
struct Spawned {
    child: Child,
    url: String,
}

impl Spawned {
    /// Spawns `cmd` with stderr piped and waits (bounded) for a line holding `http://…`.
    fn start(mut cmd: Command, what: &str) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start ({e})"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (lines, rx) = mpsc::channel();
        // Keeps draining after the address is known, so the server never blocks on a full pipe.
        let _ = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let mut seen = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} reported no address; stderr:\n{}", seen.join("\n"));
            };
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                break url.trim_end_matches('/').to_owned();
            }
            seen.push(line);
        };
        Self { child, url }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The built `shard-server`, beside the test executable's `target/<profile>/`.
pub fn shard_server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps/")
        .join("shard-server");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        bin.display()
    );
    bin
}

/// A `shard-server` on a free loopback port; killed when dropped (or by [`Server::kill`]).
pub struct Server {
    process: Spawned,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Server {
    /// `shard-server --listen 127.0.0.1:0 --storage <storage> [extra...]`, with only PATH,
    /// `SHARDD_LOG` and `env` in its environment.
    pub fn start(storage: &str, extra: &[&str], env: &[(String, String)]) -> Self {
        let mut cmd = Command::new(shard_server_bin());
        let _ = cmd
            .env_clear()
            .env("SHARDD_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["--listen", "127.0.0.1:0", "--storage", storage])
            .args(extra);
        #[expect(
            clippy::disallowed_methods,
            reason = "the server gets PATH and nothing else from the developer"
        )]
        if let Some(path) = std::env::var_os("PATH") {
            let _ = cmd.env("PATH", path);
        }
        let process = Spawned::start(cmd, "shard-server");
        let url = process.url.clone();
        Self { process, url }
    }

    /// A server storing in the directory `storage`.
    pub fn on_dir(storage: &Path, extra: &[&str]) -> Self {
        Self::start(storage.to_str().expect("UTF-8 path"), extra, &[])
    }

    /// Kills the server now (SIGKILL: no graceful shutdown).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A moto S3 server (`python3 -m moto.server`, installed by `.ci/run`) on a free loopback
/// port, with nothing in it; killed when dropped.
pub struct Moto {
    _process: Spawned,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto and waits (bounded) until it reports its address.
    pub fn start() -> Self {
        let mut cmd = Command::new("python3");
        let _ = cmd.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]);
        // moto needs the developer's Python setup (pyenv, user site-packages), not their AWS
        // settings.
        let aws: Vec<OsString> = std_env_keys()
            .filter(|k| k.to_string_lossy().starts_with("AWS_"))
            .collect();
        for key in aws {
            let _ = cmd.env_remove(key);
        }
        let process = Spawned::start(
            cmd,
            "moto S3 server (`python3 -m pip install 'moto[server]'`; `.ci/run` installs it)",
        );
        let endpoint = process.url.clone();
        Self {
            _process: process,
            endpoint,
        }
    }

    /// Creates `bucket` (an unauthenticated path-style `PUT /bucket`, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect to moto");
        stream
            .set_read_timeout(Some(START_TIMEOUT))
            .expect("read timeout");
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).expect("send to moto");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response).expect("moto answers");
        let status = response.lines().next().unwrap_or_default();
        assert!(
            status.contains(" 200"),
            "creating bucket {bucket} failed: {response}"
        );
    }

    /// The `AWS_*` variables that point a client (nshard or shard-server) at this server.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

fn std_env_keys() -> impl Iterator<Item = OsString> {
    std::env::vars_os().map(|(k, _)| k)
}
