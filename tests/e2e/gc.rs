//! `nshard gc`: chunks no manifest references are listed by `--dry-run`, deleted by `gc`, and
//! every file still checks out afterwards. Each test boots its own daemon in a `Sandbox`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::sandbox::{MIB, Sandbox, random_bytes};

fn chunk_ids(manifest: &Value) -> BTreeSet<String> {
    manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha256"].as_str().unwrap().to_owned())
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_lists_then_deletes_unreferenced_chunks_and_keeps_the_rest() {
    let s = Sandbox::with_repo();
    let a_v1 = random_bytes(60, 6 * MIB);
    let b = random_bytes(61, 3 * MIB);
    s.write("models/a.bin", &a_v1);
    s.write("models/b.bin", &b);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let old = chunk_ids(&s.manifest("models/a.bin"));
    let mut a_v2 = a_v1.clone();
    a_v2[..MIB].copy_from_slice(&random_bytes(62, MIB));
    s.write("models/a.bin", &a_v2);
    let _ = s.ok(&["commit", "-m", "v2"]);
    let live: BTreeSet<String> = chunk_ids(&s.manifest("models/a.bin"))
        .union(&chunk_ids(&s.manifest("models/b.bin")))
        .cloned()
        .collect();
    let garbage: BTreeSet<String> = old.difference(&live).cloned().collect();
    assert!(!garbage.is_empty(), "the edit should have orphaned a chunk");
    let stored_before = s.stored_chunks();

    let fresh = s.json(&["gc", "--dry-run", "--json"]);
    assert_eq!(
        fresh["deleted"],
        serde_json::json!([]),
        "the default grace period keeps fresh chunks"
    );
    let dry = s.json(&["gc", "--dry-run", "--grace", "0s", "--json"]);
    assert_eq!(dry["dry_run"], true, "{dry:#}");
    assert_eq!(strings(&dry["deleted"]), garbage, "{dry:#}");
    assert_eq!(
        s.stored_chunks(),
        stored_before,
        "--dry-run deleted something"
    );
    let human = s.ok(&["gc", "--dry-run", "--grace", "0s"]);
    for id in &garbage {
        assert!(
            human.contains(id.as_str()),
            "gc --dry-run should list {id}:\n{human}"
        );
    }

    let done = s.json(&["gc", "--grace", "0s", "--json"]);
    assert_eq!(done["dry_run"], false, "{done:#}");
    assert_eq!(strings(&done["deleted"]), garbage, "{done:#}");
    assert_eq!(s.stored_chunks().into_iter().collect::<BTreeSet<_>>(), live);

    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    std::fs::remove_file(s.path("models/b.bin")).unwrap();
    let _ = s.ok(&["checkout"]);
    assert!(s.read("models/a.bin") == a_v2 && s.read("models/b.bin") == b);
    assert_eq!(
        s.json(&["gc", "--grace", "0s", "--json"])["deleted"],
        serde_json::json!([])
    );
}

#[test]
fn gc_keeps_chunks_shared_between_files() {
    let s = Sandbox::with_repo();
    let data = random_bytes(63, 2 * MIB);
    s.write("models/a.bin", &data);
    s.write("models/copy.bin", &data);
    let _ = s.ok(&["commit", "-m", "twins"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    std::fs::remove_file(s.path("models/a.bin.shard.json")).unwrap();

    assert_eq!(
        s.json(&["gc", "--grace", "0s", "--json"])["deleted"],
        serde_json::json!([])
    );
    std::fs::remove_file(s.path("models/copy.bin")).unwrap();
    let _ = s.ok(&["checkout"]);
    assert!(s.read("models/copy.bin") == data);
}

#[test]
fn gc_keeps_chunks_of_versions_committed_to_git() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["git-init"]);
    let v1 = random_bytes(64, 2 * MIB);
    s.write("models/a.bin", &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "-A"]);
    let _ = s.git(&["commit", "--quiet", "-m", "v1"]);
    let v1_chunks = chunk_ids(&s.manifest("models/a.bin"));
    s.write("models/a.bin", &random_bytes(65, 2 * MIB));
    let _ = s.ok(&["commit", "-m", "v2"]);
    let _ = s.git(&["commit", "--quiet", "-am", "v2"]);

    let done = s.json(&["gc", "--grace", "0s", "--json"]);

    assert_eq!(done["deleted"], serde_json::json!([]), "{done:#}");
    let stored: BTreeSet<String> = s.stored_chunks().into_iter().collect();
    assert!(
        v1_chunks.is_subset(&stored),
        "chunks of the v1 in Git history were deleted"
    );
    let _ = s.ok(&["checkout", "--rev", "HEAD~1"]);
    assert!(
        s.read("models/a.bin") == v1,
        "checkout --rev HEAD~1 did not bring v1 back"
    );
}
