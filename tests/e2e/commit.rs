//! `nshard commit`: the manifest contract of design.md §4 (checked with an independent
//! SHA-256), deterministic output, unchanged files left alone, and deduplication after an edit.
//! Each test boots its own daemon in a `Sandbox`. The manifest snapshot in `snapshots/` pins
//! chunk boundaries and hashes: review a change with `cargo insta review`.

use std::os::unix::fs::MetadataExt;

use serde_json::Value;

use crate::sandbox::{MIB, Sandbox, each, random_bytes, sha256_hex};

/// 1700000000 = 2023-11-14T22:13:20Z.
const EPOCH: &str = "1700000000";

/// Asserts the §4 contract: keys, path, size, whole-file digest, and chunks that tile the file
/// in order, each named by the SHA-256 of its bytes and within the chunking bounds.
fn assert_manifest_describes(manifest: &Value, path: &str, data: &[u8]) {
    assert_eq!(manifest["format"], "neuroshard.manifest/v1");
    assert_eq!(manifest["path"], path);
    assert_eq!(manifest["size"].as_u64(), Some(data.len() as u64));
    assert_eq!(manifest["sha256"].as_str(), Some(sha256_hex(data).as_str()));
    for key in ["algorithm", "min_size", "avg_size", "max_size"] {
        assert!(
            manifest["chunking"].get(key).is_some(),
            "chunking.{key} missing: {manifest:#}"
        );
    }
    assert!(manifest["message"].is_string() && manifest["created_at"].is_string());
    let max = manifest["chunking"]["max_size"].as_u64().unwrap();
    let chunks = manifest["chunks"].as_array().expect("chunks is an array");
    let mut offset = 0u64;
    for chunk in chunks {
        assert_eq!(
            chunk["offset"].as_u64(),
            Some(offset),
            "chunks do not tile: {manifest:#}"
        );
        let size = chunk["size"].as_u64().unwrap();
        assert!(size > 0 && size <= max, "chunk size {size} out of bounds");
        let bytes = &data[offset as usize..(offset + size) as usize];
        assert_eq!(
            chunk["sha256"].as_str(),
            Some(sha256_hex(bytes).as_str()),
            "chunk at {offset}"
        );
        offset += size;
    }
    assert_eq!(offset, data.len() as u64, "chunks do not cover the file");
}

#[test]
fn commit_writes_a_manifest_that_describes_the_file() {
    let s = Sandbox::with_repo();
    let data = random_bytes(10, 9 * MIB + 12_345);
    s.write("models/a.bin", &data);
    let summary = s.json(&["commit", "-m", "Initial checkpoint", "--json"]);

    let manifest = s.manifest("models/a.bin");
    assert_manifest_describes(&manifest, "models/a.bin", &data);
    assert_eq!(manifest["message"], "Initial checkpoint");
    assert_eq!(manifest["chunking"]["algorithm"], "fastcdc");
    let created = manifest["created_at"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
        "{created}"
    );

    let chunks = manifest["chunks"].as_array().unwrap();
    let text = String::from_utf8(s.read("models/a.bin.shard.json")).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.contains("\"offset\"")).count(),
        chunks.len(),
        "one chunk per line"
    );
    assert_eq!(
        summary["new_chunks"].as_u64(),
        Some(chunks.len() as u64),
        "{summary:#}"
    );
    // Every chunk is stored. (The store may also hold a chunk of a half-written file the
    // watcher started reading in the background: garbage that gc removes.)
    let stored = s.stored_chunks();
    assert!(
        chunks
            .iter()
            .all(|c| stored.iter().any(|id| c["sha256"] == id.as_str())),
        "a chunk of the manifest is not stored"
    );
}

#[test]
fn identical_content_gives_byte_identical_manifests() {
    let data = random_bytes(11, 12 * MIB + 777);
    let manifests: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let mut s = Sandbox::with_repo();
            s.set_env("SOURCE_DATE_EPOCH", EPOCH);
            s.write("models/a.bin", &data);
            let _ = s.ok(&["commit", "-m", "Initial checkpoint"]);
            s.read("models/a.bin.shard.json")
        })
        .collect();
    assert_eq!(
        manifests[0], manifests[1],
        "manifests differ between two sandboxes"
    );
    let text = String::from_utf8(manifests[0].clone()).unwrap();
    assert!(
        text.contains("\"created_at\": \"2023-11-14T22:13:20Z\""),
        "{text}"
    );
    insta::assert_snapshot!("manifest_of_seed_11", text);
}

#[test]
fn committing_an_unchanged_file_stores_nothing_and_keeps_the_manifest() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(12, 5 * MIB));
    let _ = s.ok(&["commit", "-m", "first"]);
    let manifest_path = s.path("models/a.bin.shard.json");
    let before = std::fs::metadata(&manifest_path).unwrap();
    let bytes = s.read("models/a.bin.shard.json");

    let summary = s.json(&["commit", "-m", "second", "--json"]);

    assert_eq!(summary["new_chunks"], 0, "{summary:#}");
    assert_eq!(summary["new_bytes"], 0, "{summary:#}");
    assert_eq!(summary["files"], serde_json::json!([]), "{summary:#}");
    assert_eq!(summary["unchanged_files"], 1, "{summary:#}");
    let after = std::fs::metadata(&manifest_path).unwrap();
    assert_eq!(
        (after.ino(), after.mtime_nsec(), after.mtime()),
        (before.ino(), before.mtime_nsec(), before.mtime())
    );
    assert_eq!(
        s.read("models/a.bin.shard.json"),
        bytes,
        "the message must not be rewritten either"
    );
}

#[test]
fn editing_one_mib_in_the_middle_stores_only_a_few_new_chunks() {
    let s = Sandbox::with_repo();
    let mut data = random_bytes(13, 20 * MIB);
    s.write("models/big.bin", &data);
    let _ = s.ok(&["commit", "-m", "v1"]);
    // The watcher may still be chunking a half-written v1 in the background, which stores a
    // chunk no version keeps: count what v2's manifest adds, not every object in the store.
    s.wait_until_idle();
    let stored_before: std::collections::HashSet<String> = s.stored_chunks().into_iter().collect();

    data[10 * MIB..11 * MIB].copy_from_slice(&random_bytes(14, MIB));
    s.write("models/big.bin", &data);
    let summary = s.json(&["commit", "-m", "v2", "--json"]);

    let manifest = s.manifest("models/big.bin");
    assert_manifest_describes(&manifest, "models/big.bin", &data);
    let total = manifest["chunks"].as_array().unwrap().len() as u64;
    let new = summary["new_chunks"].as_u64().unwrap();
    let new_bytes = summary["new_bytes"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&new),
        "{new} of {total} chunks are new: {summary:#}"
    );
    assert!(
        new_bytes < data.len() as u64 / 2,
        "{new_bytes} new bytes for a 1 MiB edit: {summary:#}"
    );
    assert_eq!(
        summary["reused_chunks"].as_u64(),
        Some(total - new),
        "{summary:#}"
    );
    let stored_now: std::collections::HashSet<String> = s.stored_chunks().into_iter().collect();
    let added: std::collections::HashSet<&str> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha256"].as_str().unwrap())
        .filter(|id| !stored_before.contains(*id))
        .collect();
    assert_eq!(added.len() as u64, new, "{summary:#}");
    assert!(
        added.iter().all(|id| stored_now.contains(*id)),
        "a new chunk is not stored"
    );
}

#[test]
fn init_chunking_options_reach_the_manifest() {
    let s = Sandbox::new();
    // Sizes beyond what any chunking allows are named as given, not as a clamped number.
    for (args, named) in [
        (&["init", "--chunk-size", "5GiB"][..], "5368709120"),
        (&["init", "--chunk-size", "8MiB"], "8388608"),
        (&["init", "--chunk-size", "5GiB", "--fixed"], "5368709120"),
    ] {
        let refused = s.fails(args);
        assert!(refused.contains(named), "{args:?}: {refused}");
    }
    let _ = s.ok(&["init", "--chunk-size", "256KiB", "--fixed"]);
    let _ = s.ok(&["track", "models/*.bin"]);
    let data = random_bytes(15, MIB + 1000);
    s.write("models/a.bin", &data);
    let _ = s.ok(&["commit", "-m", "fixed"]);

    let manifest = s.manifest("models/a.bin");
    assert_manifest_describes(&manifest, "models/a.bin", &data);
    assert_eq!(manifest["chunking"]["avg_size"], 256 * 1024);
    let sizes: Vec<u64> = manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [262_144, 262_144, 262_144, 262_144, 1000]);
}

#[test]
fn commit_names_files_that_cannot_be_committed() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(16, 1000));
    s.write("other.dat", b"not tracked");
    let message = s.fails(&["commit", "-m", "x", "other.dat"]);
    assert!(
        message.contains("other.dat") && message.contains("not tracked"),
        "{message}"
    );
    let message = s.fails(&["commit", "-m", "x", "models/gone.bin"]);
    assert!(message.contains("models/gone.bin"), "{message}");
    assert!(
        !s.path("models/a.bin.shard.json").exists(),
        "a failed commit wrote a manifest"
    );
}

#[test]
fn commit_takes_directories_and_patterns_like_git_commit() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(90, 1000));
    s.write("models/b.bin", &random_bytes(91, 1000));
    s.write("other/c.bin", &random_bytes(92, 1000));
    let _ = s.ok(&["track", "other/*.bin"]);

    let by_dir = s.json(&["commit", "-m", "dir", "models", "--json"]);
    let files = each(&by_dir["files"], "path");
    assert_eq!(files, ["models/a.bin", "models/b.bin"], "{by_dir:#}");
    assert!(!s.path("other/c.bin.shard.json").exists());

    let by_glob = s.json(&["commit", "-m", "glob", "other/*.bin", "--json"]);
    assert_eq!(by_glob["files"][0]["path"], "other/c.bin", "{by_glob:#}");

    std::fs::create_dir_all(s.path("empty")).unwrap();
    let message = s.fails(&["commit", "-m", "none", "empty"]);
    assert!(message.contains("no tracked file is in empty"), "{message}");
}

#[test]
fn a_file_keeps_its_manifests_chunking_even_where_the_config_says_otherwise() {
    let s = Sandbox::new();
    let _ = s.ok(&["init", "--chunk-size", "64KiB"]);
    let v1 = random_bytes(93, 2 * MIB);
    s.write("m.bin", &v1);
    let _ = s.ok(&["track", "m.bin"]);
    let _ = s.ok(&["commit", "-m", "v1"]);
    // A fresh clone has no .shard/config.toml (it is never committed): default chunking, and
    // m.bin is tracked through its manifest only.
    let _ = s.ok(&["daemon", "stop"]);
    std::fs::remove_file(s.path(".shard/config.toml")).unwrap();
    let mut v2 = v1.clone();
    v2[MIB..MIB + 1024].copy_from_slice(&random_bytes(94, 1024));
    s.write("m.bin", &v2);

    let out = s.json(&["commit", "-m", "v2", "--json"]);

    assert_eq!(
        s.manifest("m.bin")["chunking"]["avg_size"],
        65536,
        "{out:#}"
    );
    assert!(out["new_chunks"].as_u64().unwrap() <= 2, "{out:#}");
}

#[test]
fn a_directory_where_the_manifest_belongs_is_named_before_any_work() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(17, 100_000));
    std::fs::create_dir_all(s.path("models/a.bin.shard.json")).unwrap();
    let refused = s.fails(&["commit", "-m", "first"]);
    assert!(
        refused.contains("models/a.bin.shard.json is a directory"),
        "{refused}"
    );
    assert!(s.stored_chunks().is_empty(), "chunks were stored");
}

#[test]
fn files_committed_together_get_the_manifests_and_chunks_of_one_commit_each() {
    // Small files, one chunk or several (read whole, on every core at once), and files past
    // the small size (read through the pipeline, one at a time).
    let mut files: Vec<(String, Vec<u8>)> = (0..40u64)
        .map(|i| {
            let len = 1000 + 25_000 * usize::try_from(i).unwrap();
            (format!("models/s{i:02}.bin"), random_bytes(200 + i, len))
        })
        .collect();
    files.push(("models/mid.bin".into(), random_bytes(300, MIB + 1)));
    files.push(("models/big.bin".into(), random_bytes(301, 5 * MIB)));
    let sandbox = || {
        let s = Sandbox::new();
        let _ = s.ok(&["init", "--chunk-size", "64KiB"]);
        let _ = s.ok(&["track", "models/*.bin"]);
        for (file, data) in &files {
            s.write(file, data);
        }
        s
    };
    let (together, apart) = (sandbox(), sandbox());

    let summary = together.json(&["commit", "-m", "m", "--json"]);
    assert_eq!(
        summary["files"].as_array().map(Vec::len),
        Some(files.len()),
        "{summary:#}"
    );
    for (file, _) in &files {
        let _ = apart.ok(&["commit", "-m", "m", file]);
    }

    for (file, data) in &files {
        let manifest = together.manifest(file);
        assert_manifest_describes(&manifest, file, data);
        let one_by_one = apart.manifest(file);
        assert_eq!(manifest["chunks"], one_by_one["chunks"], "{file}");
        assert_eq!(manifest["sha256"], one_by_one["sha256"], "{file}");
    }
    assert!(
        files.iter().any(|(f, _)| f.starts_with("models/s")
            && together.manifest(f)["chunks"].as_array().unwrap().len() > 1),
        "no small file has several chunks"
    );
    assert_eq!(together.stored_chunks(), apart.stored_chunks());
    // The manifests written ahead on other threads were all put in place.
    let names: Vec<String> = std::fs::read_dir(together.path("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2 * files.len(), "{names:?}");
    let _ = together.ok(&["verify"]);
    let again = together.json(&["commit", "-m", "m", "--json"]);
    assert_eq!(again["unchanged_files"], files.len(), "{again:#}");
}
