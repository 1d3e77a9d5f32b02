//! The command line itself: usage errors exit 2, `--help` lists every command, and the client
//! stays thin (`cargo tree -p nshard` links none of the daemon's heavy crates). Nothing here
//! starts a daemon except where a test says so.

use std::path::Path;

use crate::sandbox::Sandbox;

#[test]
fn usage_errors_exit_2() {
    let s = Sandbox::with_repo();
    for args in [
        &["commit"][..],
        &["frobnicate"],
        &["status", "--no-such-flag"],
        &["track"],
    ] {
        let out = s.nshard().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "nshard {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn help_lists_every_command() {
    let s = Sandbox::new();
    let help = s.ok(&["--help"]);
    let commands = [
        "init", "git-init", "track", "untrack", "commit", "status", "diff", "push", "pull",
        "checkout", "gc", "remote", "log", "verify", "daemon",
    ];
    for command in commands {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "`{command}` missing:\n{help}"
        );
    }
    for (parent, actions) in [
        ("daemon", &["status", "stop", "restart", "logs"][..]),
        ("remote", &["add", "remove", "list"]),
    ] {
        let help = s.ok(&[parent, "--help"]);
        for action in actions {
            let listed = help.lines().any(|l| l.trim_start().starts_with(action));
            assert!(listed, "`{parent} {action}` missing:\n{help}");
        }
    }
    assert!(!s.socket().exists(), "--help started a daemon");
}

#[test]
fn untrack_stops_tracking_a_pattern() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", b"weights");
    assert_eq!(
        s.json(&["status", "--json"])["files"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let _ = s.ok(&["untrack", "models/*.bin"]);
    assert_eq!(
        s.json(&["status", "--json"])["files"],
        serde_json::json!([])
    );
    let message = s.fails(&["untrack", "models/*.bin"]);
    assert!(message.contains("not tracked"), "{message}");
    assert!(
        !message.contains("nshard track"),
        "advice to track it: {message}"
    );
}

/// The crates only the daemon may link (design.md §2: the client never chunks, hashes,
/// compresses, watches or opens the index).
const DAEMON_ONLY: [&str; 5] = ["sled", "zstd", "sha2", "notify", "fastcdc"];

#[test]
fn the_client_links_none_of_the_daemons_crates() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("Cargo.toml");
    #[expect(
        clippy::disallowed_methods,
        reason = "the cargo running this test, if any"
    )]
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--quiet",
            "-p",
            "nshard",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(&workspace)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"nshard") && crates.contains(&"tonic"),
        "unexpected tree:\n{tree}"
    );
    for banned in DAEMON_ONLY {
        assert!(
            !crates.contains(&banned),
            "nshard depends on {banned}:\n{tree}"
        );
    }
}
