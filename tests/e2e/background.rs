//! Background chunking as users (and editor plugins) see it: the daemon notices an edit, chunks
//! the file before anyone asks, and the commit that follows is exactly the commit that would
//! have been made without its help, even when the file changes under it or the daemon is
//! stopped half-way. Each test boots its own daemon in a `Sandbox` and waits on a `Subscribe`
//! stream ([`Events`]), never on a sleep.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shard_proto::FileEvent;

use crate::grpc::{Events, is};
use crate::sandbox::{MIB, Sandbox, random_bytes, sha256_hex};

/// How long background chunking of a test file may take on a loaded 2-core machine with a debug
/// build (a safety net, not a benchmark).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(120);

/// Large enough that chunking it takes many progress reports (one per chunk at most every
/// 100 ms), so the test can act while it is under way.
const BIG: usize = 48 * MIB;

const FILE: &str = "models/a.bin";

/// The `status --json` entry of `file`.
fn status_of(s: &Sandbox, file: &str) -> Value {
    let status = s.json(&["status", "--json"]);
    status["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == file))
        .cloned()
        .unwrap_or_else(|| panic!("{file} is not in the status: {status:#}"))
}

/// Waits until the daemon has prepared `file` with content `sha256`, without a race: the
/// subscription is registered before `status` is asked, so a PREPARED event that `status` did
/// not see yet is still delivered.
fn wait_until_prepared(s: &Sandbox, file: &str, sha256: &str) {
    let mut events = Events::of_repo(s);
    if status_of(s, file)["prepared"] == true {
        return;
    }
    let _ = events.wait_for(
        &format!("PREPARED event for {file} with sha256 {sha256}"),
        PREPARE_TIMEOUT,
        |e| is(e, FileEvent::Prepared, file) && e.sha256 == sha256,
    );
}

/// Commits and returns the one committed file of the `--json` summary.
fn commit(s: &Sandbox) -> Value {
    let summary = s.json(&["commit", "-m", "m", "--json"]);
    let files = summary["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{summary:#}");
    files[0].clone()
}

/// The manifest fields that describe content (not the message or the time of the commit).
fn content_of(manifest: &Value) -> Value {
    serde_json::json!({
        "path": manifest["path"],
        "size": manifest["size"],
        "sha256": manifest["sha256"],
        "chunking": manifest["chunking"],
        "chunks": manifest["chunks"],
    })
}

/// `v1` committed, then `v2` written: the same history in every sandbox of these tests.
fn versions() -> (Vec<u8>, Vec<u8>) {
    let v1 = random_bytes(1, 6 * MIB);
    let mut v2 = v1.clone();
    v2[3 * MIB..3 * MIB + 64 * 1024].copy_from_slice(&random_bytes(2, 64 * 1024));
    (v1, v2)
}

#[test]
fn a_modified_file_is_prepared_in_the_background_and_commits_like_a_cold_commit() {
    let (v1, v2) = versions();
    let s = Sandbox::with_repo();
    s.write(FILE, &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let mut events = Events::of_repo(&s);

    s.write(FILE, &v2);

    let want = sha256_hex(&v2);
    let prepared = events.wait_for("PREPARED event for the edited file", PREPARE_TIMEOUT, |e| {
        is(e, FileEvent::Prepared, FILE) && e.sha256 == want
    });
    assert_eq!(prepared.root, s.root().to_str().unwrap());
    let entry = status_of(&s, FILE);
    assert_eq!(entry["prepared"], true, "{entry:#}");
    assert_eq!(entry["state"], "modified", "{entry:#}");
    let committed = commit(&s);
    assert_eq!(committed["sha256"], want.as_str(), "{committed:#}");
    let helped = s.manifest(FILE);

    // The same history on another machine, where v2 is committed without the daemon having
    // seen it: written while no daemon runs, and with no repository for a new one to re-arm.
    let cold = Sandbox::with_repo();
    cold.write(FILE, &v1);
    let _ = cold.ok(&["commit", "-m", "v1"]);
    let _ = cold.ok(&["daemon", "stop"]);
    std::fs::remove_file(cold.socket().with_file_name("s.repos")).unwrap();
    cold.write(FILE, &v2);
    let _ = commit(&cold);
    let unhelped = cold.manifest(FILE);

    assert_eq!(
        content_of(&helped),
        content_of(&unhelped),
        "a prepared commit differs from a cold one"
    );
}

#[test]
fn files_in_directories_created_after_the_repository_was_watched_are_prepared() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["track", "data/**/*.bin"]);
    let _ = s.json(&["status", "--json"]); // The daemon now watches the repository.
    let mut events = Events::of_repo(&s);

    // A whole tree at once: its inner directories exist before the daemon can watch them.
    let (top, deep) = ("models/a.bin", "data/x/y/z.bin");
    let (a, z) = (random_bytes(3, 2 * MIB), random_bytes(4, 2 * MIB));
    s.write(top, &a);
    s.write(deep, &z);

    let mut waiting = vec![(top, sha256_hex(&a)), (deep, sha256_hex(&z))];
    let _ = events.wait_for("PREPARED events for both new files", PREPARE_TIMEOUT, |e| {
        waiting.retain(|(file, want)| !(is(e, FileEvent::Prepared, file) && e.sha256 == *want));
        waiting.is_empty()
    });
    // And an edit inside the deepest one is seen as well: it is watched now.
    let z2 = random_bytes(5, 2 * MIB);
    s.write(deep, &z2);
    wait_until_prepared(&s, deep, &sha256_hex(&z2));
}

#[test]
fn a_file_rewritten_during_background_chunking_is_prepared_and_committed_as_it_ends_up() {
    let old = random_bytes(21, BIG);
    let new = random_bytes(22, BIG);
    let (old_sha, new_sha) = (sha256_hex(&old), sha256_hex(&new));
    let s = Sandbox::with_repo();
    let mut events = Events::of_repo(&s);
    s.write(FILE, &old);
    let _ = events.wait_for(
        "PREPARING event for the first content",
        PREPARE_TIMEOUT,
        |e| is(e, FileEvent::Preparing, FILE),
    );

    // In place and at the same size: only the file's stamp tells the daemon it changed.
    s.write(FILE, &new);

    let _ = events.wait_for(
        "PREPARED event for the rewritten content",
        PREPARE_TIMEOUT,
        |e| {
            if !is(e, FileEvent::Prepared, FILE) {
                return false;
            }
            // The first content may have been read completely before the rewrite began.
            assert!(
                e.sha256 == old_sha || e.sha256 == new_sha,
                "the daemon prepared content that was never on disk: {}",
                e.sha256
            );
            e.sha256 == new_sha
        },
    );
    let entry = status_of(&s, FILE);
    assert_eq!(entry["prepared"], true, "{entry:#}");
    let committed = commit(&s);
    assert_eq!(committed["sha256"], new_sha.as_str(), "{committed:#}");
    assert_eq!(
        s.manifest(FILE)["sha256"],
        sha256_hex(&s.read(FILE)).as_str()
    );
    // The chunks themselves are the new content: rebuild the file from them.
    std::fs::remove_file(s.path(FILE)).unwrap();
    let _ = s.ok(&["checkout", &format!("{FILE}.shard.json")]);
    assert!(s.read(FILE) == new, "the checked-out file differs");
}

#[test]
fn a_daemon_stopped_during_background_chunking_is_restarted_and_finishes_the_work() {
    let data = random_bytes(31, BIG);
    let sha = sha256_hex(&data);
    let s = Sandbox::with_repo();
    let mut events = Events::of_repo(&s);
    s.write(FILE, &data);
    let _ = events.wait_for("PREPARING event for the new file", PREPARE_TIMEOUT, |e| {
        is(e, FileEvent::Preparing, FILE)
    });

    let _ = s.ok(&["daemon", "stop"]);

    let _ = events.wait_until_ended(PREPARE_TIMEOUT);
    drop(events);
    let log_start = std::fs::metadata(s.daemon_log()).unwrap().len();
    // Starts a daemon without naming any repository: it must re-arm from `shardd.repos`.
    let _ = s.ok(&["daemon", "restart"]);
    wait_for_log(&s, log_start, "watching repository");
    wait_until_prepared(&s, FILE, &sha);
    let committed = commit(&s);
    assert_eq!(committed["sha256"], sha.as_str(), "{committed:#}");
    let verified = s.json(&["verify", "--json"]);
    assert_eq!(verified["problems"], serde_json::json!([]), "{verified:#}");
}

/// A loopback "HTTP server" that accepts connections and never answers: a push to it holds
/// its repository until the server is dropped, which closes them all.
struct SilentServer {
    url: String,
    accepted: mpsc::Receiver<()>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentServer {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let (accepted_tx, accepted) = mpsc::channel();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(10))
            {
                while let Ok((connection, _)) = listener.accept() {
                    held.push(connection);
                    let _ = accepted_tx.send(());
                }
            }
        });
        Self {
            url,
            accepted,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn wait_for_a_connection(&self) {
        self.accepted
            .recv_timeout(PREPARE_TIMEOUT)
            .expect("nothing connected to the silent server");
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_file_changed_while_an_operation_holds_the_repository_is_read_only_after_it() {
    let data = random_bytes(51, 6 * MIB);
    let s = Sandbox::with_repo();
    let mut events = Events::of_repo(&s);
    let server = SilentServer::start();
    // A push to a server that never answers holds the repository until the server goes.
    let push = s
        .command(s.nshard_bin())
        .current_dir(s.root())
        .args(["push", "--remote", &server.url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nshard push");
    server.wait_for_a_connection();

    s.write(FILE, &data);
    let _ = events.wait_for("MODIFIED event for the new file", PREPARE_TIMEOUT, |e| {
        is(e, FileEvent::Modified, FILE)
    });
    // Long past the debounce: a preparer that did not wait would be reading the file by now
    // (and its first progress report, a PREPARING event, would be here).
    events.none_within(
        "the file was read while a push held the repository",
        Duration::from_secs(2),
        |e| is(e, FileEvent::Preparing, FILE) || is(e, FileEvent::Prepared, FILE),
    );

    drop(server);
    let out = push.wait_with_output().expect("wait for nshard push");
    assert!(
        !out.status.success(),
        "a push to a server that closed every connection succeeded"
    );
    wait_until_prepared(&s, FILE, &sha256_hex(&data));
}

#[test]
fn a_file_written_in_many_pieces_is_reported_modified_once_per_burst() {
    const PIECE: usize = 64 * 1024;
    const PIECES: usize = 256;
    let data = random_bytes(41, PIECE * PIECES);
    let s = Sandbox::with_repo();
    let mut events = Events::of_repo(&s);

    std::fs::create_dir_all(s.path("models")).unwrap();
    let mut file = std::fs::File::create(s.path("models/b.bin")).unwrap();
    for piece in data.chunks(PIECE) {
        std::io::Write::write_all(&mut file, piece).unwrap();
        // Like a training loop streaming a checkpoint out: each write reaches the watcher as
        // its own event instead of being merged with the previous one in the inotify queue.
        file.sync_data().unwrap();
    }
    drop(file);

    let sha = sha256_hex(&data);
    let mut modified = 0;
    let _ = events.wait_for(
        "PREPARED event for the written file",
        PREPARE_TIMEOUT,
        |e| {
            if is(e, FileEvent::Modified, "models/b.bin") {
                modified += 1;
            }
            is(e, FileEvent::Prepared, "models/b.bin") && e.sha256 == sha
        },
    );
    // One per quiet period of the debounce; a flood of one per write would drown a plugin
    // (and overflow the event backlog for large files).
    assert!(
        (1..PIECES / 4).contains(&modified),
        "{modified} MODIFIED events for {PIECES} writes"
    );
}

/// Waits (bounded, polling the file) until the daemon log written after `start` contains
/// `needle` on a line naming the sandbox's repository.
fn wait_for_log(s: &Sandbox, start: u64, needle: &str) {
    let root = s.root().to_str().unwrap();
    let deadline = Instant::now() + PREPARE_TIMEOUT;
    loop {
        let log = std::fs::read(s.daemon_log()).unwrap();
        let new = String::from_utf8_lossy(&log[start as usize..]);
        if new.lines().any(|l| l.contains(needle) && l.contains(root)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new daemon never logged `{needle}` for {root}:\n{new}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gc_keeps_what_a_commit_could_still_use_of_prepared_work_and_nothing_stale() {
    let (v1, v2) = versions();
    let s = Sandbox::with_repo();
    s.write(FILE, &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    s.write(FILE, &v2);
    wait_until_prepared(&s, FILE, &sha256_hex(&v2));
    let stored = s.stored_chunks().len();

    // Prepared but not committed: the chunks only v2 has must survive a gc without grace.
    let kept = s.json(&["gc", "--grace", "0s", "--json"]);
    assert_eq!(kept["deleted_chunks"], 0, "{kept:#}");
    assert_eq!(s.stored_chunks().len(), stored);

    // Once the file is back to v1, that work is stale, and so are the chunks only it had.
    s.write(FILE, &v1);
    let _ = s.ok(&["status"]);
    let stale = s.json(&["gc", "--grace", "0s", "--json"]);
    assert!(stale["deleted_chunks"].as_u64().unwrap() > 0, "{stale:#}");
    let _ = s.ok(&["verify"]);
}
