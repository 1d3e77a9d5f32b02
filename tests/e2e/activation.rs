//! `shardd` under a service manager, and on its own: socket activation through an inherited
//! listening socket (what systemd's `shardd.socket` does), `NSHARD_AUTOSTART=0` leaving such a
//! daemon alone, and the idle timeout of an auto-spawned daemon. Each test has its own
//! `Sandbox`; the socket-activated daemon is started by a small python3 stand-in for systemd.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::sandbox::{Sandbox, expect_failure};

/// How long a daemon may take to start or to stop (a safety net).
const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Between two polls of the daemon's state.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What systemd does for `shardd.socket`: bind and listen on the socket, place it at fd 3,
/// set `LISTEN_FDS=1` and `LISTEN_PID` to the pid that will run `shardd`, then exec it. The
/// socket is created in this process, so no descriptor of it ever leaks into the test process
/// or into daemons other tests start meanwhile.
const SOCKET_ACTIVATE: &str = r#"
import os, socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen(64)
if listener.fileno() != 3:
    os.dup2(listener.fileno(), 3)
os.set_inheritable(3, True)  # python's sockets are close-on-exec
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"#;

/// A socket-activated `shardd`; killed if a test fails before stopping it.
struct Activated(Child);

impl Drop for Activated {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn socket_activate(s: &Sandbox) -> Activated {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(s.socket().parent().unwrap())
        .unwrap();
    let log = File::create(s.base().join("activated.log")).unwrap();
    let child = s
        .command("python3")
        .args(["-c", SOCKET_ACTIVATE])
        .arg(s.socket())
        .arg(s.shardd_bin())
        .arg("--socket")
        .arg(s.socket())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("python3 runs (it stands in for systemd)");
    Activated(child)
}

/// `daemon status --json` with autostart off (which never starts a daemon anyway).
fn daemon_status(s: &Sandbox) -> serde_json::Value {
    let out = s
        .nshard()
        .args(["daemon", "status", "--json"])
        .env("NSHARD_AUTOSTART", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_socket_activated_daemon_serves_the_inherited_socket_and_is_left_alone() {
    let mut s = Sandbox::new();
    s.set_env("NSHARD_AUTOSTART", "0");
    let mut daemon = socket_activate(&s);
    let deadline = Instant::now() + LIFECYCLE_TIMEOUT;
    let status = loop {
        let status = daemon_status(&s);
        if status["running"] == true {
            break status;
        }
        let log = std::fs::read_to_string(s.base().join("activated.log")).unwrap();
        assert!(
            Instant::now() < deadline && matches!(daemon.0.try_wait(), Ok(None)),
            "the socket-activated daemon never answered:\n{log}"
        );
        std::thread::sleep(POLL_INTERVAL);
    };

    assert_eq!(status["auto_spawned"], false, "{status:#}");
    assert_eq!(status["pid"], daemon.0.id(), "not the activated process");
    let log = std::fs::read_to_string(s.base().join("activated.log")).unwrap();
    assert!(log.contains("inherited=true"), "{log}");
    let _ = s.ok(&["init"]);
    let _ = s.ok(&["track", "models/*.bin"]);
    s.write("models/a.bin", b"weights");
    assert!(s.ok(&["status"]).contains("models/a.bin"));

    let _ = s.ok(&["daemon", "stop"]);

    let exit = daemon.0.wait().unwrap();
    assert!(exit.success(), "shardd exited with {exit}");
    assert!(
        s.socket().exists(),
        "the daemon removed a socket it did not create (the service manager owns it)"
    );
    let refused = expect_failure(
        &s.nshard().arg("status").output().unwrap(),
        "status with NSHARD_AUTOSTART=0 and no daemon",
    );
    assert!(refused.contains("NSHARD_AUTOSTART"), "{refused}");
    assert_eq!(daemon_status(&s)["running"], false, "a daemon was started");
}

#[test]
fn an_idle_auto_spawned_daemon_exits_on_its_own() {
    let mut s = Sandbox::new();
    // nshard starts shardd with its own environment, so the daemon sees this.
    s.set_env("SHARDD_IDLE_TIMEOUT", "1s");
    let _ = s.ok(&["init"]);
    assert_eq!(daemon_status(&s)["running"], true);

    // Every request resets the idle clock, so watch the files the daemon leaves behind instead
    // of asking it: it removes its socket and releases its pidfile lock on the way out.
    let pidfile = s.socket().with_file_name("s.pid");
    let deadline = Instant::now() + LIFECYCLE_TIMEOUT;
    while s.socket().exists() || !unlocked(&pidfile) {
        assert!(
            Instant::now() < deadline,
            "the daemon was still running {LIFECYCLE_TIMEOUT:?} after its last request"
        );
        std::thread::sleep(POLL_INTERVAL);
    }

    assert_eq!(daemon_status(&s)["running"], false);
    let log = std::fs::read_to_string(s.daemon_log()).unwrap();
    assert!(log.contains("idle timeout"), "{log}");
}

/// True when no process holds the pidfile's lock (or there is no pidfile).
fn unlocked(pidfile: &Path) -> bool {
    File::open(pidfile).map_or(true, |file| file.try_lock().is_ok())
}
