//! Directory remotes (an NFS share, a USB disk) given as a plain path or a `file://` URL, and
//! named remotes: `nshard remote add`, the default remote, and the team default committed in
//! `.shardconfig` so a colleague's fresh clone pulls with no flag and no `nshard init`.

use std::path::Path;

use crate::remote_fixtures::{
    FILE, MANIFEST, assert_same, chunks_of, count, machine_a, machine_b, objects_in, publish,
};
use crate::sandbox::{MIB, random_bytes};

/// A pushes to the directory `dir` as `url_a` names it, B pulls from it as `url_b` names it.
fn exchange_through(dir: &Path, url_a: &str, url_b: &str, seed: u64) {
    let data = random_bytes(seed, 6 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let total = chunks_of(&a, FILE);

    let pushed = a.json(&["push", "--remote", url_a, "--json"]);
    assert_eq!(count(&pushed, "chunks_transferred"), total, "{pushed:#}");
    assert_eq!(
        objects_in(dir).len() as u64,
        total,
        "the remote's layout changed"
    );
    let again = a.json(&["push", "--remote", url_a, "--json"]);
    assert_eq!(count(&again, "chunks_transferred"), 0, "{again:#}");
    assert_eq!(count(&again, "chunks_present"), total, "{again:#}");

    let b = machine_b(&a);
    let pulled = b.json(&["pull", MANIFEST, "--remote", url_b, "--json"]);
    assert_eq!(count(&pulled, "chunks_transferred"), total, "{pulled:#}");
    assert_same(&b, FILE, &data);
    assert_eq!(b.json(&["status", "--json"])["files"][0]["state"], "clean");
    // The store B's first command created keeps itself out of Git, as `init`'s does.
    assert!(
        b.path(".shard/.gitignore").is_file(),
        "B's .shard/ has no .gitignore"
    );
}

/// A directory outside both machines' sandboxes, so each names it its own way.
fn shared_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ns-share")
        .tempdir()
        .unwrap()
}

#[test]
fn push_and_pull_through_a_plain_directory_path() {
    let share = shared_dir();
    let dir = share.path().canonicalize().unwrap();
    let path = dir.to_str().unwrap();
    exchange_through(&dir, path, path, 400);
}

#[test]
fn push_and_pull_through_a_file_url() {
    let share = shared_dir();
    let dir = share.path().canonicalize().unwrap();
    let url = format!("file://{}", dir.display());
    exchange_through(&dir, &url, &url, 401);
}

#[test]
fn a_relative_directory_path_is_relative_to_the_working_directory() {
    let data = random_bytes(402, 2 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    std::fs::create_dir(a.base().join("usb")).unwrap();

    let _ = a.ok(&["push", "--remote", "../usb"]);
    // A bare word that names no remote but a directory here is that directory.
    std::fs::create_dir(a.path("usb2")).unwrap();
    let _ = a.ok(&["push", "--remote", "usb2"]);
    assert_eq!(
        objects_in(&a.path("usb2")).len() as u64,
        chunks_of(&a, FILE)
    );

    assert_eq!(
        objects_in(&a.base().join("usb")).len() as u64,
        chunks_of(&a, FILE)
    );
    let b = machine_b(&a);
    let _ = b.ok(&["pull", "--remote", a.base().join("usb").to_str().unwrap()]);
    assert_same(&b, FILE, &data);
}

#[test]
fn a_missing_directory_remote_is_refused() {
    let a = machine_a();
    publish(&a, FILE, &random_bytes(403, MIB), "v1");
    let missing = a.base().join("not-mounted");

    let message = a.fails(&["push", "--remote", missing.to_str().unwrap()]);

    assert!(
        message.contains("not-mounted"),
        "the remote is not named: {message}"
    );
    assert!(!missing.exists(), "push created the remote directory");
}

#[test]
fn origin_is_the_default_remote_and_names_work_as_urls() {
    let data = random_bytes(404, 2 * MIB);
    let a = machine_a();
    publish(&a, FILE, &data, "v1");
    let share = shared_dir();
    let dir = share.path().canonicalize().unwrap();
    let other = a.base().join("backup");
    std::fs::create_dir(&other).unwrap();
    let _ = a.ok(&["remote", "add", "backup", other.to_str().unwrap()]);
    let _ = a.ok(&["remote", "add", "origin", dir.to_str().unwrap()]);

    // Two remotes, none marked: `origin` is the default, as in Git.
    let pushed = a.json(&["push", "--json"]);
    assert_eq!(
        count(&pushed, "chunks_transferred"),
        chunks_of(&a, FILE),
        "{pushed:#}"
    );
    assert_eq!(objects_in(&dir).len() as u64, chunks_of(&a, FILE));
    assert!(
        objects_in(&other).is_empty(),
        "the default push went to backup"
    );
    let _ = a.ok(&["push", "--remote", "backup"]);
    assert_eq!(objects_in(&other).len() as u64, chunks_of(&a, FILE));

    // B has no remote yet: a clear error, then the same name works there too.
    let b = machine_b(&a);
    let message = b.fails(&["pull"]);
    assert!(message.contains("remote"), "{message}");
    let _ = b.ok(&["remote", "add", "origin", dir.to_str().unwrap()]);
    let list = b.json(&["remote", "list", "--json"]);
    assert_eq!(list["remotes"][0]["name"], "origin", "{list:#}");
    let _ = b.ok(&["pull", MANIFEST]);
    assert_same(&b, FILE, &data);
}

#[test]
fn a_committed_shardconfig_lets_a_fresh_clone_pull_with_no_flag() {
    let data = random_bytes(405, 2 * MIB);
    let a = machine_a();
    let share = shared_dir();
    let dir = share.path().canonicalize().unwrap();
    let url = format!("file://{}", dir.display());
    let _ = a.ok(&["remote", "add", "team", &url, "--shared", "--default"]);
    assert!(
        a.path(".shardconfig").is_file(),
        "--shared writes .shardconfig"
    );
    publish(&a, FILE, &data, "v1");
    let tracked = a.git(&["ls-files"]);
    assert!(tracked.lines().any(|l| l == ".shardconfig"), "{tracked}");
    let _ = a.ok(&["push"]);
    assert_eq!(objects_in(&dir).len() as u64, chunks_of(&a, FILE));

    let b = machine_b(&a);
    let list = b.json(&["remote", "list", "--json"]);
    let team = &list["remotes"][0];
    assert_eq!(team["name"], "team", "{list:#}");
    assert_eq!(team["url"], url.as_str(), "{list:#}");
    assert_eq!(team["default"], true, "{list:#}");
    let pulled = b.json(&["pull", "--json"]);

    assert_eq!(
        count(&pulled, "chunks_transferred"),
        chunks_of(&a, FILE),
        "{pulled:#}"
    );
    assert_same(&b, FILE, &data);
}

#[test]
fn a_fresh_clone_pushes_what_the_remote_already_has_without_its_chunks() {
    let share = shared_dir();
    let dir = share.path().canonicalize().unwrap();
    let url = dir.to_str().unwrap();
    let a = machine_a();
    publish(&a, FILE, &random_bytes(404, 3 * MIB), "v1");
    let total = chunks_of(&a, FILE);
    let _ = a.ok(&["push", "--remote", url]);

    let b = machine_b(&a);
    let pushed = b.json(&["push", "--remote", url, "--json"]);
    assert_eq!(count(&pushed, "chunks_transferred"), 0, "{pushed:#}");
    assert_eq!(count(&pushed, "chunks_present"), total, "{pushed:#}");

    // A remote that lacks them is another matter: B cannot supply them.
    let empty = shared_dir();
    let message = b.fails(&["push", "--remote", empty.path().to_str().unwrap()]);
    assert!(message.contains("not in the local store"), "{message}");
}

#[test]
fn a_named_remote_with_a_relative_path_is_relative_to_the_repository() {
    let a = machine_a();
    publish(&a, FILE, &random_bytes(405, MIB), "v1");
    let shared = a.base().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let _ = a.ok(&["remote", "add", "team", "../shared"]);

    // From a subdirectory the name still means <root>/../shared.
    let sub = a.path("models");
    std::fs::create_dir_all(&sub).unwrap();
    let _ = a.ok_in(&sub, &["push", "--remote", "team"]);

    assert_eq!(objects_in(&shared).len() as u64, chunks_of(&a, FILE));
    assert!(
        !a.path("shared").exists(),
        "the push went below the working directory"
    );

    // Added from the subdirectory, the path means what it meant there.
    let elsewhere = a.base().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let _ = a.ok_in(&sub, &["remote", "add", "far", "../../elsewhere"]);
    let _ = a.ok(&["push", "--remote", "far"]);
    assert_eq!(objects_in(&elsewhere).len() as u64, chunks_of(&a, FILE));
}

#[test]
fn a_clone_tracks_what_the_team_tracks() {
    let a = machine_a();
    publish(&a, FILE, &random_bytes(406, MIB), "v1");
    let b = machine_b(&a);
    // `models/*.bin` came with .shardconfig; Git ignores new weights through the committed
    // .gitignore block, so the clone must track them.
    b.write("models/new.bin", &random_bytes(407, 1000));
    assert!(b.git_ignores("models/new.bin"));

    let status = b.json(&["status", "--json"]);
    let new = status["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "models/new.bin");
    assert_eq!(
        new.map(|f| &f["state"]),
        Some(&serde_json::json!("new")),
        "{status:#}"
    );
    let _ = b.ok(&["commit", "-m", "from the clone"]);
    assert!(b.path("models/new.bin.shard.json").is_file());
}

#[test]
fn a_pull_with_nothing_to_fetch_needs_no_remote_and_names_none() {
    let a = machine_a();
    publish(&a, FILE, &random_bytes(408, MIB), "v1");
    let pulled = a.json(&["pull", "--json"]);
    assert_eq!(pulled["remote"], "", "{pulled:#}");
    let said = a.ok(&["pull"]);
    assert!(said.contains("nothing to download"), "{said}");
}

/// A clone's `pull` fetches what the working tree needs; an older version needs its own
/// chunks, which `checkout --rev` names `pull --rev` for, and `pull --rev` fetches and writes.
#[test]
fn an_older_version_is_fetched_with_pull_rev() {
    let dir = shared_dir();
    let url = dir.path().to_str().unwrap();
    let (v1, v2) = (random_bytes(320, 3 * MIB), random_bytes(321, 3 * MIB));
    let a = machine_a();
    publish(&a, FILE, &v1, "v1");
    let _ = a.ok(&["push", "--remote", url]);
    let added = random_bytes(322, MIB);
    a.write("models/y.bin", &added);
    publish(&a, FILE, &v2, "v2");
    let _ = a.ok(&["push", "--remote", url]);

    let b = machine_b(&a);
    let _ = b.ok(&["pull", "--remote", url]);
    assert_same(&b, FILE, &v2);
    let refused = b.fails(&["checkout", "--rev", "HEAD~1"]);
    assert!(
        refused.contains("run `nshard pull --rev HEAD~1`"),
        "{refused}"
    );
    assert_same(&b, FILE, &v2);
    let report = b.json_of_problems(&["verify", "--all", "--json"]);
    let hints: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["hint"].as_str().unwrap())
        .collect();
    assert!(
        !hints.is_empty() && hints.iter().all(|h| h.contains("nshard pull --rev REV")),
        "{report:#}"
    );

    let empty = b
        .nshard()
        .args(["pull", "--rev", "", "--remote", url])
        .output()
        .unwrap();
    assert_eq!(
        empty.status.code(),
        Some(2),
        "an empty revision is a usage error"
    );

    // Without names: the files recorded at HEAD~1; y.bin, added since, is left alone.
    let pulled = b.json(&["pull", "--rev", "HEAD~1", "--remote", url, "--json"]);
    assert!(count(&pulled, "chunks_transferred") > 0, "{pulled:#}");
    assert_same(&b, FILE, &v1);
    assert_same(&b, "models/y.bin", &added);
    // Like checkout --rev: the working manifest still names v2, so the file is a change.
    assert_eq!(
        b.json(&["status", "--json"])["files"][0]["state"],
        "modified"
    );
    let _ = b.ok(&["checkout"]);
    assert_same(&b, FILE, &v2);
}

#[test]
fn a_pull_of_many_small_files_fetches_and_rebuilds_each() {
    let share = shared_dir();
    let remote = share.path().to_str().unwrap();
    let a = machine_a();
    let files: Vec<(String, Vec<u8>)> = (0..30u64)
        .map(|i| {
            let len = 500 + 7_000 * usize::try_from(i).unwrap();
            (format!("models/s{i:02}.bin"), random_bytes(700 + i, len))
        })
        .collect();
    for (file, data) in &files {
        a.write(file, data);
    }
    publish(&a, FILE, &random_bytes(730, 3 * MIB), "many");
    let _ = a.ok(&["push", "--remote", remote]);

    let b = machine_b(&a);
    let pulled = b.json(&["pull", "--remote", remote, "--json"]);

    assert_eq!(
        count(&pulled, "chunks_transferred"),
        30 + chunks_of(&a, FILE),
        "{pulled:#}"
    );
    for (file, data) in &files {
        assert_same(&b, file, data);
    }
    let _ = b.ok(&["verify"]);
}
