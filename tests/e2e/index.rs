//! The sled index (`.shard/index`) is a cache (design.md §5): deleting it, with the daemon
//! stopped or running, loses nothing: status and checkout stay right. Each test boots its own
//! daemon in a `Sandbox`.

use crate::sandbox::{MIB, Sandbox, each, random_bytes};

/// a.bin committed and clean, b.bin committed then edited, c.bin committed then deleted.
fn committed() -> (Sandbox, Vec<u8>) {
    let s = Sandbox::with_repo();
    let c = random_bytes(82, 2 * MIB);
    s.write("models/a.bin", &random_bytes(80, 2 * MIB));
    s.write("models/b.bin", &random_bytes(81, 2 * MIB));
    s.write("models/c.bin", &c);
    let _ = s.ok(&["commit", "-m", "first"]);
    let mut b = s.read("models/b.bin");
    b[7] ^= 1;
    s.write("models/b.bin", &b);
    std::fs::remove_file(s.path("models/c.bin")).unwrap();
    (s, c)
}

fn assert_still_right(s: &Sandbox, c: &[u8]) {
    let status = s.json(&["status", "--json"]);
    let states = each(&status["files"], "state");
    assert_eq!(states, ["clean", "modified", "missing"], "{status:#}");
    let _ = s.ok(&["checkout", "models/c.bin.shard.json"]);
    assert!(s.read("models/c.bin") == c, "c.bin differs after checkout");
    let summary = s.json(&["commit", "-m", "again", "models/a.bin", "--json"]);
    assert_eq!(summary["new_chunks"], 0, "{summary:#}");
}

#[test]
fn deleting_the_index_while_the_daemon_is_stopped_loses_nothing() {
    let (s, c) = committed();
    let _ = s.ok(&["status"]);
    let _ = s.ok(&["daemon", "stop"]);
    std::fs::remove_dir_all(s.path(".shard/index")).unwrap();
    assert_still_right(&s, &c);
}

#[test]
fn deleting_the_index_under_a_running_daemon_loses_nothing() {
    let (s, c) = committed();
    let _ = s.ok(&["status"]);
    std::fs::remove_dir_all(s.path(".shard/index")).unwrap();
    assert_still_right(&s, &c);
    // And after a restart, which reopens whatever is (or is not) on disk.
    let _ = s.ok(&["daemon", "restart"]);
    let status = s.json(&["status", "--json"]);
    assert_eq!(status["files"][0]["state"], "clean", "{status:#}");
}
