//! Malformed manifests (design.md §4) are refused with exit 1 and a message naming the
//! manifest, before anything is written: not the broken file, and not the valid files beside
//! it either. Each test boots its own daemon in a `Sandbox`.

use serde_json::{Value, json};

use crate::sandbox::{Sandbox, random_bytes};

/// Commits a.bin and b.bin, deletes both, breaks a.bin's manifest with `break_it`, then
/// checks that checkout (of everything, and of a.bin alone) refuses and writes nothing.
fn refused(break_it: impl FnOnce(&Sandbox)) -> String {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(70, 200_000));
    s.write("models/b.bin", &random_bytes(71, 200_000));
    let _ = s.ok(&["commit", "-m", "first"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    std::fs::remove_file(s.path("models/b.bin")).unwrap();
    break_it(&s);
    let before = s.files_under("models");

    let message = s.fails(&["checkout"]);
    assert!(
        message.contains("models/a.bin.shard.json"),
        "the error must name the manifest: {message}"
    );
    let named = s.fails(&["checkout", "models/a.bin.shard.json"]);
    assert_eq!(named, message);

    assert_eq!(
        s.files_under("models"),
        before,
        "a refused checkout wrote something"
    );
    s.redact(&message)
}

fn edit(s: &Sandbox, change: impl FnOnce(&mut Value)) {
    let mut manifest = s.manifest("models/a.bin");
    change(&mut manifest);
    s.write(
        "models/a.bin.shard.json",
        serde_json::to_string_pretty(&manifest).unwrap().as_bytes(),
    );
}

#[test]
fn a_manifest_that_is_not_json_is_refused() {
    let message = refused(|s| {
        s.write(
            "models/a.bin.shard.json",
            b"{\"format\": \"neuroshard.manifest/v1\",",
        );
    });
    assert!(message.contains("invalid"), "{message}");
    assert!(
        message.contains("(`git checkout HEAD -- models/a.bin.shard.json` in the repository root)"),
        "the error must say how to undo the edit: {message}"
    );
}

#[test]
fn a_manifest_with_another_format_tag_is_refused() {
    let message = refused(|s| edit(s, |m| m["format"] = json!("neuroshard.manifest/v99")));
    assert!(message.contains("neuroshard.manifest/v99"), "{message}");
    assert!(message.contains("upgrade nshard"), "{message}");
}

#[test]
fn a_manifest_whose_path_climbs_out_is_refused() {
    let message = refused(|s| edit(s, |m| m["path"] = json!("../../escaped.bin")));
    assert!(message.contains(".."), "{message}");
    assert!(!std::path::Path::new("/tmp/escaped.bin").exists());
}

#[test]
fn a_manifest_with_an_absolute_path_is_refused() {
    let _ = refused(|s| edit(s, |m| m["path"] = json!("/tmp/absolute.bin")));
}

#[test]
fn a_manifest_whose_chunks_leave_a_gap_is_refused() {
    let message = refused(|s| {
        edit(s, |m| {
            let chunks = m["chunks"].as_array_mut().unwrap();
            let first = chunks[0].clone();
            let size = first["size"].as_u64().unwrap();
            // Two half chunks with a one-byte hole between them.
            chunks[0]["size"] = json!(size / 2);
            chunks.insert(1, json!({"offset": size / 2 + 1, "size": size - size / 2 - 1, "sha256": first["sha256"]}));
        });
    });
    assert!(message.contains("tile"), "{message}");
}

#[test]
fn a_manifest_whose_chunks_do_not_reach_its_size_is_refused() {
    let message = refused(|s| edit(s, |m| m["size"] = json!(m["size"].as_u64().unwrap() + 1)));
    assert!(message.contains("tile"), "{message}");
}

#[test]
fn a_manifest_with_a_malformed_chunk_id_is_refused() {
    let _ = refused(|s| edit(s, |m| m["chunks"][0]["sha256"] = json!("not-a-hash")));
}

#[test]
fn a_manifest_that_misstates_a_chunk_size_is_refused_and_verify_names_it() {
    // The tiling stays valid (file size and last chunk grow together) and every chunk id is
    // sound: only the chunk's real length can tell.
    let message = refused(|s| {
        let remote = s.base().join("remote");
        std::fs::create_dir(&remote).unwrap();
        let remote = remote.to_str().unwrap();
        let _ = s.ok(&["push", "--remote", remote]);
        edit(s, |m| {
            let last = m["chunks"].as_array().unwrap().len() - 1;
            m["chunks"][last]["size"] = json!(m["chunks"][last]["size"].as_u64().unwrap() + 1000);
            m["size"] = json!(m["size"].as_u64().unwrap() + 1000);
        });
        // Locally and against a remote alike.
        for args in [
            &["verify", "--json"][..],
            &["verify", "--remote", remote, "--json"],
        ] {
            let out = s.nshard().args(args).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?} must fail");
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            let problems = report["problems"].as_array().unwrap();
            assert_eq!(problems.len(), 1, "{report:#}");
            assert_eq!(problems[0]["kind"], "wrong-size", "{report:#}");
            assert_eq!(problems[0]["files"], json!(["models/a.bin"]), "{report:#}");
        }
    });
    assert!(message.contains("holds"), "{message}");
    assert!(message.contains("restore it from Git"), "{message}");
}

/// Two branches committed different versions of a model: `git merge` leaves conflict markers
/// in its manifest. `status` still reports every other file and says what to do; `checkout`
/// refuses the same way.
#[test]
fn a_manifest_left_conflicted_by_a_merge_is_invalid_in_status_and_the_rest_still_shows() {
    let s = Sandbox::with_repo();
    let _ = s.ok(&["git-init"]);
    s.write("models/b.bin", &random_bytes(81, 300_000));
    s.merge_conflicting_versions("models/a.bin", 300_000, [80, 82, 83]);

    let status = s.json(&["status", "--json"]);
    let files = status["files"].as_array().unwrap();
    let state = |path: &str| {
        files
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing from {status:#}"))
            .clone()
    };
    let a = state("models/a.bin");
    assert_eq!(a["state"], "invalid", "{status:#}");
    let problem = a["problem"].as_str().unwrap();
    assert!(problem.contains("models/a.bin.shard.json"), "{problem}");
    assert!(problem.contains("merge conflict markers"), "{problem}");
    assert_eq!(state("models/b.bin")["state"], "clean", "{status:#}");
    assert_eq!(state("models/b.bin")["problem"], "", "{status:#}");
    let human = s.ok(&["status"]);
    assert!(human.contains("invalid  models/a.bin"), "{human}");
    assert!(human.contains("clean  models/b.bin"), "{human}");

    let refused = s.fails(&["checkout", "models/a.bin"]);
    assert!(refused.contains("git checkout --ours"), "{refused}");
    // The advice, followed to the letter.
    assert!(refused.contains("then run `nshard pull`"), "{refused}");
    let _ = s.git(&["checkout", "--theirs", "models/a.bin.shard.json"]);
    let _ = s.ok(&["pull"]);
    assert_eq!(s.read("models/a.bin"), random_bytes(82, 300_000));
}
