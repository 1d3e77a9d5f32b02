//! The daemon as users meet it: `nshard daemon status|stop|restart|logs`, auto-start after a
//! stop, one daemon for concurrent clients, and the reason shown when `shardd` cannot start.
//! Each test boots its own daemon in a `Sandbox` (or fails to, on purpose).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::sandbox::Sandbox;

fn version_of_nshard(s: &Sandbox) -> String {
    let out = s.ok(&["--version"]);
    out.trim()
        .strip_prefix("nshard ")
        .expect("`nshard --version` prints `nshard X.Y.Z`")
        .to_owned()
}

fn daemon_pid(s: &Sandbox) -> u64 {
    let status = s.json(&["daemon", "status", "--json"]);
    assert_eq!(status["running"], true, "{status:#}");
    status["pid"].as_u64().expect("pid is a number")
}

/// True while `pid` runs. A zombie (exited, not yet reaped by whoever inherited it) is dead.
fn is_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X'])),
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => false,
        Err(_) => std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// `nshard daemon stop` returns once the socket is closed and the pidfile lock released; the
/// process itself may take a moment longer to exit. Polls for that, bounded.
fn assert_exits(pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while is_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "shardd {pid} still runs after `daemon stop`"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemon_status_json_reports_running_version_and_pid() {
    let s = Sandbox::with_repo();
    let status = s.json(&["daemon", "status", "--json"]);

    assert_eq!(status["running"], true, "{status:#}");
    assert_eq!(
        status["version"].as_str(),
        Some(version_of_nshard(&s).as_str()),
        "{status:#}"
    );
    let pid = status["pid"].as_u64().expect("pid");
    assert_eq!(
        Some(pid),
        s.pidfile_pid().map(u64::from),
        "pid differs from the pidfile"
    );
    assert!(is_alive(pid));
    assert_eq!(status["socket"].as_str(), s.socket().to_str(), "{status:#}");
    assert_eq!(status["auto_spawned"], true, "{status:#}");
    let human = s.ok(&["daemon", "status"]);
    assert!(
        human.contains(&pid.to_string()) && human.contains("running"),
        "{human}"
    );
}

#[test]
fn daemon_status_does_not_start_a_daemon() {
    let s = Sandbox::new();
    let status = s.json(&["daemon", "status", "--json"]);
    assert_eq!(status["running"], false, "{status:#}");
    assert!(!s.socket().exists(), "`daemon status` started a daemon");
    assert!(s.ok(&["daemon", "stop"]).contains("not running"));
}

#[test]
fn a_stopped_daemon_is_started_again_by_the_next_command() {
    let s = Sandbox::with_repo();
    let first = daemon_pid(&s);

    let out = s.ok(&["daemon", "stop"]);

    assert!(out.contains(&first.to_string()), "{out}");
    assert_exits(first);
    assert!(!s.socket().exists(), "the socket was left behind");
    assert_eq!(s.json(&["daemon", "status", "--json"])["running"], false);
    let _ = s.ok(&["status"]);
    let second = daemon_pid(&s);
    assert_ne!(first, second);
}

#[test]
fn daemon_restart_replaces_the_daemon() {
    let s = Sandbox::with_repo();
    let first = daemon_pid(&s);
    let _ = s.ok(&["daemon", "restart"]);
    let second = daemon_pid(&s);
    assert_ne!(first, second);
    assert_exits(first);
}

#[test]
fn daemon_logs_show_the_daemon_starting() {
    let s = Sandbox::with_repo();
    let logs = s.ok(&["daemon", "logs"]);
    assert!(logs.contains("listening"), "{logs}");
    assert!(
        s.socket().with_file_name("s.log").is_file(),
        "the log lives beside the socket"
    );
}

#[test]
fn concurrent_commands_share_one_daemon() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["daemon", "stop"]);
    let handles: Vec<std::thread::JoinHandle<std::process::Output>> = (0..4)
        .map(|_| {
            let mut cmd = s.nshard();
            let _ = cmd.args(["status", "--json"]);
            std::thread::spawn(move || cmd.output().unwrap())
        })
        .collect();
    for handle in handles {
        let out = handle.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pid = daemon_pid(&s);
    assert_eq!(Some(pid), s.pidfile_pid().map(u64::from));
    let log = std::fs::read_to_string(s.socket().with_file_name("s.log")).unwrap();
    assert!(
        !log.contains("already serving"),
        "a second daemon was started:\n{log}"
    );
}

#[test]
fn a_daemon_that_cannot_start_has_its_reason_shown() {
    let mut s = Sandbox::with_repo();
    let _ = s.ok(&["daemon", "stop"]);
    // Written and made executable by a child process, so no writable descriptor of it is ever
    // open in this (multi-threaded) test process when it is executed (ETXTBSY).
    let fake = s.base().join("broken-shardd");
    let script = "#!/bin/sh\necho 'shardd: cannot open the frobnicator (simulated)' >&2\nexit 1\n";
    let made = std::process::Command::new("sh")
        .args([
            "-c",
            "printf '%s' \"$1\" > \"$2\" && chmod 755 \"$2\"",
            "sh",
            script,
        ])
        .arg(&fake)
        .status()
        .unwrap();
    assert!(made.success());
    s.set_env("SHARDD_BIN", &fake);

    let out = s.nshard().arg("status").output().unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("nshard: "), "{stderr}");
    assert!(
        stderr.contains("cannot open the frobnicator (simulated)"),
        "the reason is missing:\n{stderr}"
    );
}

#[test]
fn an_insecure_socket_directory_is_refused_with_a_fix() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["daemon", "stop"]);
    let dir = s.socket().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = s.nshard().arg("status").output().unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("nshard: "), "{stderr}");
    assert!(stderr.contains("chmod 700"), "no fix offered:\n{stderr}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _ = s.ok(&["status"]);
}

#[test]
fn autostart_can_be_turned_off_for_a_service_manager() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["daemon", "stop"]);
    let out = s
        .nshard()
        .arg("status")
        .env("NSHARD_AUTOSTART", "0")
        .output()
        .unwrap();
    let message = crate::sandbox::expect_failure(&out, "status with NSHARD_AUTOSTART=0");
    assert!(message.contains("NSHARD_AUTOSTART"), "{message}");
    assert!(!s.socket().exists(), "a daemon was started anyway");
}

#[test]
fn a_daemon_that_stops_answering_is_named_and_can_still_be_stopped() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["status"]);
    let pid = s.pidfile_pid().expect("the daemon wrote its pid");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");

    let message = s.fails(&["daemon", "status"]);
    assert!(message.contains("has not answered"), "{message}");
    assert!(message.contains(&format!("pid {pid}")), "{message}");
    let said = s.ok(&["daemon", "stop"]);
    assert!(said.contains("with SIGTERM"), "{said}");
    // Gone, or a zombie nobody reaped yet: either way it no longer runs.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit(')').next().unwrap_or_default().trim_start();
    assert!(
        state.is_empty() || state.starts_with('Z'),
        "shardd {pid} still runs: {state}"
    );
}

#[test]
fn sigterm_stops_a_daemon_whose_stderr_reader_went_away() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["daemon", "stop"]); // The one `with_repo` started.
    let mut daemon = s
        .command(s.shardd_bin())
        .args(["--socket", s.socket().to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Like `shardd 2>&1 | head -1`: the reader leaves, and every later log line hits EPIPE.
    drop(daemon.stderr.take());
    let _ = s.ok(&["status"]);

    let term = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "shardd ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "shardd did not shut down cleanly: {status}"
    );
    assert!(!s.socket().exists(), "the socket was left behind");
}

/// A daemon that `nshard` starts keeps none of its caller's descriptors beyond stdio: a test
/// runner or CI step that hands `nshard` a pipe (bats uses fd 3) would otherwise wait forever
/// for the daemon to close it.
#[test]
fn an_auto_spawned_daemon_keeps_none_of_the_callers_descriptors() {
    let s = Sandbox::new();
    let marker = s.base().join("caller-fd3");
    let out = s
        .command("sh")
        .current_dir(s.root())
        .args(["-c", r#"exec 3>"$1"; exec "$2" init"#, "sh"])
        .arg(&marker)
        .arg(s.nshard_bin())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = s.pidfile_pid().expect("nshard started a daemon");
    let held: Vec<std::path::PathBuf> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's descriptors are listed")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .collect();
    assert!(
        !held.contains(&marker),
        "the daemon holds the caller's fd 3: {held:?}"
    );
}
