//! Git integration and history: hooks chained with existing ones, a clone that gets its files
//! through the post-checkout hook, `log` across renames, `diff` between revisions, gc after
//! history is rewritten or while a commit is half-done, and `verify` finding damage.
//!
//! Boots a private daemon per sandbox (see `sandbox.rs`); the hooks run the real `nshard`,
//! which the tests put on the sandbox's PATH.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;

use crate::sandbox::{MIB, Sandbox, each, random_bytes};

/// Puts the directory of the built `nshard` first on the sandbox's PATH, as an installed
/// `nshard` would be, so Git hooks can run it.
fn with_nshard_on_path(s: &mut Sandbox) {
    let bin_dir = s
        .shardd_bin()
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();
    #[expect(clippy::disallowed_methods, reason = "extends the test's own PATH")]
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut joined = OsString::from(bin_dir);
    joined.push(":");
    joined.push(path);
    s.set_env("PATH", joined);
}

/// A bare repository beside the sandbox's, registered as Git remote `origin`.
fn bare_origin(s: &Sandbox) -> std::path::PathBuf {
    let bare = s.base().join("origin.git");
    let _ = s.git(&[
        "init",
        "--quiet",
        "--bare",
        "--initial-branch=main",
        bare.to_str().expect("UTF-8 path"),
    ]);
    let _ = s.git(&[
        "remote",
        "add",
        "origin",
        bare.to_str().expect("UTF-8 path"),
    ]);
    bare
}

/// Runs git in the repository and returns (success, stderr) without asserting.
fn git_status(s: &Sandbox, args: &[&str]) -> (bool, String) {
    let out = s
        .command("git")
        .current_dir(s.root())
        .args(args)
        .output()
        .expect("git runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chunk_ids(s: &Sandbox, file: &str) -> Vec<String> {
    s.manifest(file)["chunks"]
        .as_array()
        .expect("chunks array")
        .iter()
        .map(|c| c["sha256"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn pre_push_uploads_the_chunks_and_chains_an_existing_hook() {
    let mut s = Sandbox::with_repo();
    with_nshard_on_path(&mut s);
    let _ = bare_origin(&s);
    // The user's own pre-push hook records that it ran and what it read.
    let hooks = s.path(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let marker = s.base().join("user-hook-ran");
    let user_hook = format!("#!/bin/sh\ncat > '{}'\n", marker.display());
    std::fs::write(hooks.join("pre-push"), user_hook).unwrap();
    std::fs::set_permissions(
        hooks.join("pre-push"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    let _ = s.ok(&["git-init", "--hooks"]);
    assert!(
        hooks.join("pre-push.local").is_file(),
        "the user's hook was not kept"
    );
    let remote = s.base().join("chunks");
    std::fs::create_dir(&remote).unwrap();
    let _ = s.ok(&["remote", "add", "store", remote.to_str().unwrap()]);

    s.write("models/a.bin", &random_bytes(301, 3 * MIB));
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", ".gitignore", "models/a.bin.shard.json"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);
    let _ = s.git(&["push", "-q", "origin", "main"]);

    let pushed = std::fs::read_to_string(&marker).expect("the chained hook ran");
    assert!(
        pushed.contains("refs/heads/main"),
        "the chained hook got Git's input: {pushed}"
    );
    for id in chunk_ids(&s, "models/a.bin") {
        let object = remote.join("objects").join(&id[..2]).join(&id);
        assert!(
            object.is_file(),
            "chunk {id} was not uploaded by the pre-push hook"
        );
    }
}

#[test]
fn a_push_whose_chunks_cannot_be_uploaded_is_stopped() {
    let mut s = Sandbox::with_repo();
    with_nshard_on_path(&mut s);
    let bare = bare_origin(&s);
    let _ = s.ok(&["git-init", "--hooks"]);
    let gone = s.base().join("no-such-dir");
    let _ = s.ok(&["remote", "add", "store", gone.to_str().unwrap()]);
    s.write("models/a.bin", &random_bytes(302, MIB));
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);

    let (pushed, stderr) = git_status(&s, &["push", "-q", "origin", "main"]);

    assert!(
        !pushed,
        "git push must fail when the chunks cannot be uploaded"
    );
    assert!(stderr.contains("could not be uploaded"), "{stderr}");
    let refs = s.git(&["--git-dir", bare.to_str().unwrap(), "for-each-ref"]);
    assert!(
        refs.is_empty(),
        "the manifest was published without its data: {refs}"
    );
}

#[test]
fn a_clone_gets_its_files_through_the_post_checkout_hook() {
    let mut a = Sandbox::with_repo();
    with_nshard_on_path(&mut a);
    let bare = bare_origin(&a);
    let _ = a.ok(&["git-init", "--hooks"]);
    let remote = a.base().join("team-chunks");
    std::fs::create_dir(&remote).unwrap();
    let _ = a.ok(&[
        "remote",
        "add",
        "team",
        remote.to_str().unwrap(),
        "--shared",
        "--default",
    ]);
    let model = random_bytes(303, 5 * MIB);
    a.write("models/a.bin", &model);
    let _ = a.ok(&["commit", "-m", "v1"]);
    let _ = a.git(&["add", "-A"]);
    let _ = a.git(&["commit", "-q", "-m", "v1 with its team remote"]);
    let _ = a.git(&["push", "-q", "origin", "main"]);

    // B clones with a template holding A's hooks (as a team's Git template directory would):
    // Git runs post-checkout at the end of the clone.
    let mut b = Sandbox::new();
    with_nshard_on_path(&mut b);
    std::fs::remove_dir_all(b.root()).unwrap();
    let template = b.base().join("template");
    std::fs::create_dir_all(template.join("hooks")).unwrap();
    for hook in ["post-checkout", "post-merge", "pre-push"] {
        let _ = std::fs::copy(
            a.path(&format!(".git/hooks/{hook}")),
            template.join("hooks").join(hook),
        )
        .unwrap();
    }
    let clone = b
        .command("git")
        .args(["clone", "-q", "--template", template.to_str().unwrap()])
        .arg(&bare)
        .arg(b.root())
        .output()
        .expect("git clone runs");
    assert!(
        clone.status.success(),
        "{}",
        String::from_utf8_lossy(&clone.stderr)
    );

    let hook_output = String::from_utf8_lossy(&clone.stderr);
    assert!(
        b.path("models/a.bin").is_file(),
        "the hook did not check the model out: {hook_output}"
    );
    assert!(
        b.read("models/a.bin") == model,
        "the hook checked out other bytes"
    );
}

#[test]
fn log_follows_renames_and_reports_growth() {
    let s = Sandbox::with_repo();
    let v1 = random_bytes(304, 6 * MIB);
    s.write("models/a.bin", &v1);
    let _ = s.ok(&["commit", "-m", "first"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);
    let mut v2 = v1.clone();
    v2[3 * MIB..3 * MIB + 1000].copy_from_slice(&random_bytes(305, 1000));
    s.write("models/a.bin", &v2);
    let _ = s.ok(&["commit", "-m", "second"]);
    let _ = s.git(&["commit", "-q", "-am", "v2"]);
    let _ = s.git(&["mv", "models/a.bin.shard.json", "models/b.bin.shard.json"]);
    std::fs::rename(s.path("models/a.bin"), s.path("models/b.bin")).unwrap();
    let _ = s.git(&["commit", "-q", "-m", "rename"]);

    let log = s.json(&["log", "models/b.bin", "--json"]);
    let entries = log["entries"].as_array().expect("entries");

    assert_eq!(each(&log["entries"], "subject"), ["rename", "v2", "v1"]);
    assert_eq!(
        entries[2]["path"], "models/a.bin",
        "the old name is reported"
    );
    assert_eq!(entries[2]["message"], "first");
    assert_eq!(entries[0]["new_bytes"], 0, "a rename adds no data");
    let v2_growth = entries[1]["new_bytes"].as_u64().unwrap();
    assert!(
        v2_growth > 0 && v2_growth < 6 * MIB as u64,
        "v2 grew by {v2_growth}"
    );
    assert_eq!(entries[2]["new_bytes"], 6 * MIB as u64);

    let diff = s.json(&["diff", "models/b.bin", "HEAD~2", "HEAD~1", "--json"]);
    assert_eq!(diff["chunks_added"], diff["chunks_removed"]);
    assert!(diff["chunks_unchanged"].as_u64().unwrap() >= 1);
    assert_eq!(diff["identical"], false);
    let same = s.json(&["diff", "models/b.bin", "--rev", "HEAD~1", "--json"]);
    assert_eq!(same["identical"], true, "the working manifest equals v2");

    // The next commit records the new name in the manifest, though the content is the same
    // (and known: `status` has just hashed it under its new name).
    let _ = s.ok(&["status"]);
    let _ = s.ok(&["commit", "-m", "renamed"]);
    assert_eq!(s.manifest("models/b.bin")["path"], "models/b.bin");
}

/// A merge committed with conflict markers still in a manifest is a version of the file too:
/// `log` lists it with the reason it cannot be checked out, instead of leaving it out.
#[test]
fn log_lists_a_merge_whose_manifest_was_committed_with_conflict_markers() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["git-init"]);
    s.merge_conflicting_versions("models/a.bin", MIB, [306, 307, 308]);
    let _ = s.git(&["commit", "-qam", "merge with markers"]);
    let _ = s.git(&["checkout", "HEAD^1", "--", "models/a.bin.shard.json"]);
    let _ = s.git(&["commit", "-qm", "fixed"]);

    let log = s.json(&["log", "models/a.bin", "--json"]);
    let mut subjects = each(&log["entries"], "subject");
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        ["fixed", "merge with markers", "retrained", "tuned", "v1"]
    );
    let entry = |subject: &str| {
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["subject"] == subject)
            .unwrap()
            .clone()
    };
    let problem = entry("merge with markers")["problem"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(problem.contains("merge conflict markers"), "{problem}");
    assert_eq!(entry("fixed")["problem"], "");
    let human = s.ok(&["log", "models/a.bin"]);
    assert!(
        human.contains("merge with markers: its manifest is invalid"),
        "{human}"
    );
}

#[test]
fn gc_keeps_reflog_versions_until_history_is_really_rewritten() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(306, 2 * MIB));
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);
    let v1_chunks = chunk_ids(&s, "models/a.bin");
    s.write("models/a.bin", &random_bytes(307, 2 * MIB));
    let _ = s.ok(&["commit", "-m", "v2"]);
    let _ = s.git(&["commit", "-q", "-a", "--amend", "-m", "v2 replaces v1"]);

    // v1 is only in the reflog now: still a root.
    let kept = s.json(&["gc", "--grace", "0s", "--json"]);
    assert_eq!(kept["deleted_chunks"], 0, "{kept}");

    let _ = s.git(&["reflog", "expire", "--expire=now", "--all"]);
    let _ = s.git(&["gc", "-q", "--prune=now"]);
    let collected = s.json(&["gc", "--grace", "0s", "--json"]);
    let deleted: Vec<&str> = collected["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        !deleted.is_empty(),
        "v1's chunks should go once no ref reaches them"
    );
    for id in deleted {
        assert!(
            v1_chunks.iter().any(|c| c == id),
            "deleted a chunk v1 did not own: {id}"
        );
    }
    let _ = s.ok(&["checkout", "--force"]);
    let _ = s.ok(&["verify"]);
}

#[test]
fn gc_racing_a_half_done_commit_keeps_the_new_chunks() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(308, 3 * MIB));
    let _ = s.ok(&["commit", "-m", "v1"]);
    let ids = chunk_ids(&s, "models/a.bin");
    // The moment between storing chunks and writing the manifest: nothing references them.
    std::fs::remove_file(s.path("models/a.bin.shard.json")).unwrap();
    std::fs::remove_file(s.path("models/a.bin")).unwrap();

    let within_grace = s.json(&["gc", "--json"]);
    assert_eq!(
        within_grace["deleted_chunks"], 0,
        "young chunks must survive: {within_grace}"
    );
    assert!(ids.iter().all(|id| s.object(id).is_file()));

    let without_grace = s.json(&["gc", "--grace", "0s", "--json"]);
    // At least these: the daemon may also have stored chunks of a half-written a.bin it saw
    // while the test wrote it, and those are garbage too.
    assert!(
        without_grace["deleted_chunks"].as_u64().unwrap() >= ids.len() as u64,
        "{without_grace}"
    );
    assert!(
        ids.iter().all(|id| !s.object(id).exists()),
        "{without_grace}"
    );
}

#[test]
fn verify_finds_a_flipped_byte_and_a_missing_chunk() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(309, 9 * MIB));
    let _ = s.ok(&["commit", "-m", "v1"]);
    s.wait_until_idle();
    let ids = chunk_ids(&s, "models/a.bin");
    assert!(ids.len() >= 2, "need two chunks, got {}", ids.len());
    let damaged = s.object(&ids[0]);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x80;
    std::fs::write(&damaged, bytes).unwrap();
    std::fs::remove_file(s.object(&ids[1])).unwrap();

    let out = s.nshard().args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "verify must fail");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    let find = |kind: &str, id: &str| {
        problems
            .iter()
            .any(|p| p["kind"] == kind && p["chunk"] == id && p["files"][0] == "models/a.bin")
    };
    assert!(find("corrupt", &ids[0]), "{report}");
    assert!(find("missing", &ids[1]), "{report}");
    assert!(
        problems
            .iter()
            .all(|p| p["hint"].as_str().unwrap().contains("pull")),
        "{report}"
    );
}

#[test]
fn log_finds_the_history_of_non_ascii_paths() {
    let s = Sandbox::with_repo();
    s.write("models/é ü.bin", &random_bytes(306, 1000));
    let _ = s.ok(&["commit", "-m", "first"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);
    s.write("models/é ü.bin", &random_bytes(307, 1000));
    let _ = s.ok(&["commit", "-m", "second"]);
    let _ = s.git(&["commit", "-q", "-am", "v2"]);

    let log = s.json(&["log", "models/é ü.bin", "--json"]);
    assert_eq!(each(&log["entries"], "subject"), ["v2", "v1"], "{log:#}");
    assert_eq!(log["entries"][1]["path"], "models/é ü.bin");
}

#[test]
fn verify_all_names_an_invalid_manifest_in_history() {
    let s = Sandbox::with_repo();
    s.write("models/z.bin", &random_bytes(309, 1000));
    let _ = s.ok(&["commit", "-m", "first"]);
    let manifest = s.read("models/z.bin.shard.json");
    s.write("models/z.bin.shard.json", b"{\"format\": \"bad\"}");
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "broken"]);
    s.write("models/z.bin.shard.json", &manifest);
    let _ = s.git(&["commit", "-q", "-am", "fixed"]);
    assert!(
        s.json(&["verify", "--json"])["problems"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let report = s.json_of_problems(&["verify", "--all", "--json"]);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report:#}");
    assert_eq!(problems[0]["kind"], "invalid-manifest", "{report:#}");
    assert_eq!(
        problems[0]["files"],
        serde_json::json!(["models/z.bin"]),
        "{report:#}"
    );
}

#[test]
fn diff_against_a_revision_without_the_file_shows_it_all_added() {
    let s = Sandbox::with_repo();
    s.write("notes.txt", b"first commit without the model");
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "before"]);
    let data = random_bytes(310, 2 * MIB);
    s.write("models/new.bin", &data);
    let _ = s.ok(&["commit", "-m", "added"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "model"]);

    let diff = s.json(&["diff", "models/new.bin", "--rev", "HEAD~1", "--json"]);
    assert_eq!(diff["bytes_added"], 2 * MIB as u64, "{diff:#}");
    assert_eq!(diff["chunks_removed"], 0, "{diff:#}");
    assert_eq!(diff["identical"], false, "{diff:#}");
    let back = s.json(&["diff", "models/new.bin", "HEAD", "HEAD~1", "--json"]);
    assert_eq!(back["bytes_removed"], 2 * MIB as u64, "{back:#}");
}

#[test]
fn gc_keeps_a_version_whose_manifest_is_also_committed_under_another_name() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(311, 300_000));
    let _ = s.ok(&["commit", "-m", "v1"]);
    let v1 = chunk_ids(&s, "models/a.bin");
    // The same bytes under a name Git meets first (a copy, or a directory remote inside the
    // repository): `rev-list --objects` names the blob by that path only.
    s.write("archive/v1.json", &s.read("models/a.bin.shard.json"));
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);
    s.write("models/a.bin", &random_bytes(312, 300_000));
    let _ = s.ok(&["commit", "-m", "v2"]);
    let _ = s.git(&["commit", "-q", "-am", "v2"]);

    let _ = s.ok(&["gc", "--grace", "0s"]);

    assert!(
        v1.iter().all(|id| s.object(id).is_file()),
        "v1's chunks were deleted"
    );
    let _ = s.ok(&["checkout", "--rev", "HEAD~1", "models/a.bin"]);
}

#[test]
fn checkout_rev_without_names_takes_the_files_recorded_at_that_revision() {
    let s = Sandbox::with_repo();
    let a1 = random_bytes(313, 100_000);
    s.write("models/a.bin", &a1);
    let _ = s.ok(&["commit", "-m", "a1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "a1"]);
    let b = random_bytes(314, 100_000);
    s.write("models/a.bin", &random_bytes(315, 100_000));
    s.write("models/b.bin", &b);
    let _ = s.ok(&["commit", "-m", "a2 and b"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-q", "-m", "a2 and b"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();

    // b.bin did not exist at HEAD~1: it is left alone, and a.bin comes back as it was there.
    let out = s.json(&["checkout", "--rev", "HEAD~1", "--json"]);

    assert_eq!(
        out["written"],
        serde_json::json!(["models/a.bin"]),
        "{out:#}"
    );
    assert!(s.read("models/a.bin") == a1);
    assert!(s.read("models/b.bin") == b);
}

/// What a `git pull`, merge or branch switch does without the hooks: the manifest moves on and
/// the file stays as it was. `status` says the file is outdated (not modified), and `commit`
/// refuses to record the older content again over the newer version. `checkout` brings it up
/// to date; `checkout --rev` of another version is a deliberate revert, which may be committed.
#[test]
fn a_file_left_behind_by_a_manifest_change_is_outdated_and_not_committed_back() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["git-init"]);
    let (v1, v2) = (random_bytes(310, 300_000), random_bytes(311, 300_000));
    s.write("models/a.bin", &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-qm", "v1"]);
    let v1_manifest = s.read("models/a.bin.shard.json");
    s.write("models/a.bin", &v2);
    let _ = s.ok(&["commit", "-m", "v2"]);
    let _ = s.git(&["commit", "-qam", "v2"]);

    let _ = s.git(&["checkout", "-qb", "older", "HEAD~1"]);
    let state = |s: &Sandbox| s.json(&["status", "--json"])["files"][0]["state"].clone();
    assert_eq!(state(&s), "outdated");
    assert!(s.ok(&["status"]).contains("run `nshard pull`"));
    let refused = s.fails(&["commit", "-m", "oops"]);
    assert!(
        refused.contains("models/a.bin is older than its manifest"),
        "{refused}"
    );
    assert_eq!(
        s.read("models/a.bin.shard.json"),
        v1_manifest,
        "the manifest was rewritten"
    );

    let _ = s.ok(&["checkout"]);
    assert_eq!(s.read("models/a.bin"), v1);
    assert_eq!(state(&s), "clean");

    // Taking v2 back on purpose on this branch is a change like any other.
    let _ = s.ok(&["checkout", "--rev", "main", "models/a.bin"]);
    assert_eq!(state(&s), "modified");
    let _ = s.ok(&["commit", "-m", "back to v2"]);
    assert_eq!(state(&s), "clean");
    assert_eq!(s.read("models/a.bin"), v2);
}

/// With the hooks installed, a file checkout of a manifest (`git checkout REV -- x.shard.json`,
/// which does not move HEAD) updates the file too, instead of leaving it outdated.
#[test]
fn the_hooks_update_a_file_whose_manifest_alone_was_checked_out() {
    let mut s = Sandbox::with_repo();
    with_nshard_on_path(&mut s);
    let _ = s.ok(&["git-init", "--hooks"]);
    let (v1, v2) = (random_bytes(312, 300_000), random_bytes(313, 300_000));
    s.write("models/a.bin", &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "-qm", "v1"]);
    s.write("models/a.bin", &v2);
    let _ = s.ok(&["commit", "-m", "v2"]);
    let _ = s.git(&["commit", "-qam", "v2"]);

    let _ = s.git(&["checkout", "HEAD~1", "--", "models/a.bin.shard.json"]);
    assert_eq!(s.read("models/a.bin"), v1, "the hook left the file behind");
    assert_eq!(s.json(&["status", "--json"])["files"][0]["state"], "clean");
}
