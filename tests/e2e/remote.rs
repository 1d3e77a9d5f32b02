//! Remotes: `push`, `pull` and `remote add|remove|list` between two sandboxes (two machines,
//! the second a `git clone` of the first), through a plain directory and through a
//! `shard-server` on a free loopback port, with and without tokens. Each sandbox boots its own
//! daemon; each server is killed when its test ends.

use serde_json::Value;

use crate::sandbox::{MIB, Sandbox, ShardServer, random_bytes};

/// Alice's machine: `models/a.bin` committed with nshard and Git.
fn alice(data: &[u8]) -> Sandbox {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["git-init"]);
    s.write("models/a.bin", data);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "--quiet", "-m", "v1"]);
    s
}

fn chunk_count(s: &Sandbox, file: &str) -> u64 {
    s.manifest(file)["chunks"].as_array().unwrap().len() as u64
}

fn count(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {summary:#}"))
}

#[test]
fn push_and_pull_through_a_directory_remote() {
    let v1 = random_bytes(90, 6 * MIB);
    let a = alice(&v1);
    let remote = a.base().join("usb-disk");
    std::fs::create_dir(&remote).unwrap();
    let remote = remote.to_str().unwrap();
    let chunks = chunk_count(&a, "models/a.bin");

    let pushed = a.json(&["push", "--remote", remote, "--json"]);
    assert_eq!(count(&pushed, "chunks_transferred"), chunks, "{pushed:#}");
    let again = a.json(&["push", "--remote", remote, "--json"]);
    assert_eq!(
        count(&again, "chunks_transferred"),
        0,
        "a second push uploaded again: {again:#}"
    );

    let b = Sandbox::clone_of(&a);
    assert!(!b.path("models/a.bin").exists(), "Git carried the big file");
    let status = b.json(&["status", "--json"]);
    assert_eq!(status["files"][0]["state"], "missing", "{status:#}");
    assert_eq!(
        count(&status["files"][0], "missing_chunks"),
        chunks,
        "{status:#}"
    );

    let pulled = b.json(&[
        "pull",
        "models/a.bin.shard.json",
        "--remote",
        remote,
        "--json",
    ]);

    assert_eq!(count(&pulled, "chunks_transferred"), chunks, "{pulled:#}");
    assert!(b.read("models/a.bin") == v1, "the pulled file differs");
    assert_eq!(b.json(&["status", "--json"])["files"][0]["state"], "clean");
}

#[test]
fn an_edit_travels_through_shard_server_as_a_few_chunks() {
    let mut data = random_bytes(91, 16 * MIB);
    let a = alice(&data);
    let server = ShardServer::start(&a, &[]);
    let _ = a.ok(&["push", "--remote", &server.url]);
    let on_server = std::fs::read_dir(server.storage.join("objects"))
        .unwrap()
        .map(|dir| std::fs::read_dir(dir.unwrap().path()).unwrap().count() as u64)
        .sum::<u64>();
    assert_eq!(
        on_server,
        chunk_count(&a, "models/a.bin"),
        "the server's store layout changed"
    );
    let b = Sandbox::clone_of(&a);
    let _ = b.ok(&["pull", "models/a.bin.shard.json", "--remote", &server.url]);
    assert!(b.read("models/a.bin") == data);

    data[5 * MIB..6 * MIB].copy_from_slice(&random_bytes(92, MIB));
    a.write("models/a.bin", &data);
    let _ = a.ok(&["commit", "-m", "v2"]);
    let _ = a.git(&["commit", "--quiet", "-am", "v2"]);
    let pushed = a.json(&["push", "--remote", &server.url, "--json"]);
    let _ = b.git(&["pull", "--quiet"]);
    let pulled = b.json(&["pull", "--remote", &server.url, "--json"]);

    let total = chunk_count(&a, "models/a.bin");
    for summary in [&pushed, &pulled] {
        let moved = count(summary, "chunks_transferred");
        assert!(
            (1..=3).contains(&moved),
            "{moved} of {total} chunks moved for a 1 MiB edit: {summary:#}"
        );
    }
    assert!(
        b.read("models/a.bin") == data,
        "bob's file is not alice's v2"
    );
}

#[test]
fn shard_server_tokens_come_from_each_invocation() {
    let data = random_bytes(93, 2 * MIB);
    let a = alice(&data);
    std::fs::write(
        a.base().join("tokens"),
        "# test tokens\nrw writer-secret\nro reader-secret\n",
    )
    .unwrap();
    let tokens = a.base().join("tokens");
    let server = ShardServer::start(&a, &["--token-file", tokens.to_str().unwrap()]);
    // The daemon is already running, without any token in its own environment.
    let _ = a.ok(&["status"]);

    let push = |token: Option<&str>| {
        let mut cmd = a.nshard();
        let _ = cmd.args(["push", "--remote", &server.url]);
        if let Some(token) = token {
            let _ = cmd.env("NSHARD_TOKEN", token);
        }
        cmd.output().unwrap()
    };
    let message = crate::sandbox::expect_failure(&push(None), "push without a token");
    assert!(
        message.contains("NSHARD_TOKEN"),
        "no hint to set NSHARD_TOKEN: {message}"
    );
    let _ =
        crate::sandbox::expect_failure(&push(Some("reader-secret")), "push with a read-only token");
    let out = push(Some("writer-secret"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let b = Sandbox::clone_of(&a);
    let _ = b
        .nshard()
        .args(["pull", "--remote", &server.url])
        .env("NSHARD_TOKEN", "reader-secret")
        .assert()
        .success();
    assert!(b.read("models/a.bin") == data);
}

#[test]
fn named_remotes_are_added_listed_used_and_removed() {
    let data = random_bytes(94, MIB);
    let a = alice(&data);
    let dir = a.base().join("shared-drive");
    std::fs::create_dir(&dir).unwrap();
    let _ = a.ok(&["remote", "add", "origin", dir.to_str().unwrap()]);

    let list = a.json(&["remote", "list", "--json"]);
    assert_eq!(list["remotes"][0]["name"], "origin", "{list:#}");
    assert_eq!(
        list["remotes"][0]["default"], true,
        "the only remote is the default: {list:#}"
    );
    let pushed = a.json(&["push", "--json"]);
    assert_eq!(
        count(&pushed, "chunks_transferred"),
        chunk_count(&a, "models/a.bin"),
        "{pushed:#}"
    );

    let _ = a.ok(&["remote", "remove", "origin"]);
    assert_eq!(
        a.json(&["remote", "list", "--json"])["remotes"],
        serde_json::json!([])
    );
    let message = a.fails(&["push"]);
    assert!(message.contains("remote"), "{message}");
}

#[test]
fn pull_refuses_to_overwrite_uncommitted_edits() {
    let data = random_bytes(95, MIB);
    let a = alice(&data);
    let remote = a.base().join("remote");
    std::fs::create_dir(&remote).unwrap();
    let _ = a.ok(&["push", "--remote", remote.to_str().unwrap()]);
    let b = Sandbox::clone_of(&a);
    b.write("models/a.bin", b"my own experiment, never committed");
    b.wait_until_prepared("models/a.bin");

    let message = b.fails(&["pull", "--remote", remote.to_str().unwrap()]);

    assert!(message.contains("models/a.bin"), "{message}");
    assert!(message.contains("the chunks were downloaded"), "{message}");
    assert_eq!(
        b.read("models/a.bin"),
        b"my own experiment, never committed"
    );
    // The refusal stopped the checkout, not the download: no remote is needed any more.
    std::fs::remove_dir_all(&remote).unwrap();
    let _ = b.ok(&["checkout", "--force"]);
    assert!(b.read("models/a.bin") == data);
}
