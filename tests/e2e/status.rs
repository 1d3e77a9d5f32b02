//! `nshard status` and `nshard diff`: every file state, the `--json` schema, and chunk-level
//! statistics after an edit. Each test boots its own daemon in a `Sandbox`; the `status --json`
//! snapshot in `snapshots/` pins its documented keys (review with `cargo insta review`).

use crate::sandbox::{MIB, Sandbox, random_bytes};

/// clean a.bin, modified b.bin, new c.bin, missing d.bin.
fn four_states() -> Sandbox {
    let s = Sandbox::with_repo();
    for (i, name) in ["a", "b", "d"].iter().enumerate() {
        s.write(
            &format!("models/{name}.bin"),
            &random_bytes(20 + i as u64, 50_000),
        );
    }
    let _ = s.ok(&["commit", "-m", "first"]);
    let mut b = s.read("models/b.bin");
    b[100] ^= 0xFF;
    s.write("models/b.bin", &b);
    s.write("models/c.bin", &random_bytes(30, 40_000));
    std::fs::remove_file(s.path("models/d.bin")).unwrap();
    s
}

#[test]
fn status_json_reports_clean_modified_new_and_missing() {
    let s = four_states();
    let status = s.json(&["status", "--json"]);
    // Only the documented keys: more may be added (design.md §3), none removed or renamed.
    let documented: Vec<serde_json::Value> = status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let keys = ["path", "state", "size", "chunks", "missing_chunks"];
            keys.iter()
                .map(|k| ((*k).to_owned(), f[*k].clone()))
                .collect()
        })
        .collect();
    insta::assert_json_snapshot!("status_four_states", documented);
    assert_eq!(status["root"].as_str(), Some(s.root().to_str().unwrap()));
    let states: Vec<(&str, &str)> = status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("models/a.bin", "clean"),
            ("models/b.bin", "modified"),
            ("models/c.bin", "new"),
            ("models/d.bin", "missing")
        ]
    );
}

#[test]
fn status_without_json_names_each_state() {
    let s = four_states();
    let out = s.ok(&["status"]);
    for (state, path) in [
        ("clean", "a"),
        ("modified", "b"),
        ("new", "c"),
        ("missing", "d"),
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(&format!("models/{path}.bin")));
        assert!(
            line.is_some_and(|l| l.contains(state)),
            "{path}.bin should be {state}:\n{out}"
        );
    }
}

#[test]
fn status_works_from_a_subdirectory() {
    let s = four_states();
    let out = s
        .nshard_in(&s.path("models"))
        .args(["status", "--json"])
        .assert()
        .success();
    let status: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(status["files"].as_array().unwrap().len(), 4, "{status:#}");
}

#[test]
fn a_same_size_edit_is_seen_as_modified() {
    let s = Sandbox::with_repo();
    let mut data = random_bytes(31, 2 * MIB);
    s.write("models/a.bin", &data);
    let _ = s.ok(&["commit", "-m", "first"]);
    assert_eq!(s.json(&["status", "--json"])["files"][0]["state"], "clean");
    data[MIB] ^= 1;
    s.write("models/a.bin", &data);
    assert_eq!(
        s.json(&["status", "--json"])["files"][0]["state"],
        "modified"
    );
}

#[test]
fn diff_json_counts_the_chunks_an_edit_touched() {
    let s = Sandbox::with_repo();
    let mut data = random_bytes(32, 16 * MIB);
    s.write("models/a.bin", &data);
    let _ = s.ok(&["commit", "-m", "first"]);
    let chunks = s.manifest("models/a.bin")["chunks"]
        .as_array()
        .unwrap()
        .len() as u64;

    let same = s.json(&["diff", "models/a.bin", "--json"]);
    assert_eq!(same["identical"], true, "{same:#}");
    assert_eq!(
        (
            same["chunks_added"].as_u64(),
            same["chunks_removed"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(same["chunks_unchanged"].as_u64(), Some(chunks));

    data[8 * MIB..9 * MIB].copy_from_slice(&random_bytes(33, MIB));
    s.write("models/a.bin", &data);
    let diff = s.json(&["diff", "models/a.bin.shard.json", "--json"]);
    assert_eq!(diff["path"], "models/a.bin", "{diff:#}");
    assert_eq!(diff["identical"], false);
    let size = data.len() as u64;
    assert_eq!(
        (diff["size_before"].as_u64(), diff["size_after"].as_u64()),
        (Some(size), Some(size))
    );
    let get = |key: &str| diff[key].as_u64().unwrap();
    assert!((1..=3).contains(&get("chunks_added")), "{diff:#}");
    assert!(
        get("chunks_removed") >= 1 && get("chunks_unchanged") >= 1,
        "{diff:#}"
    );
    assert_eq!(
        get("bytes_unchanged") + get("bytes_added"),
        size,
        "{diff:#}"
    );
    assert!(get("bytes_added") >= MIB as u64, "{diff:#}");
}

#[test]
fn diff_of_a_file_without_manifest_is_an_error() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(34, 1000));
    let message = s.fails(&["diff", "models/a.bin"]);
    assert!(message.contains("models/a.bin"), "{message}");
}
