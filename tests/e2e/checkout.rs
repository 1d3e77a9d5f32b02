//! `nshard checkout`: files are rebuilt byte for byte, uncommitted edits are never overwritten
//! without `--force`, and a corrupted chunk is refused without touching the working file.
//! Each test boots its own daemon in a `Sandbox`.

use crate::sandbox::{MIB, Sandbox, compressible_bytes, random_bytes, sha256_hex};

#[test]
fn checkout_rebuilds_deleted_files_byte_for_byte() {
    let s = Sandbox::with_repo();
    let random = random_bytes(40, 6 * MIB + 3);
    let sparse = compressible_bytes(41, 5 * MIB);
    s.write("models/random.bin", &random);
    s.write("models/sparse.bin", &sparse);
    let _ = s.ok(&["commit", "-m", "first"]);
    // Checkout must decode zstd objects too, not only raw ones.
    s.wait_until_compressed("models/sparse.bin");
    std::fs::remove_file(s.path("models/random.bin")).unwrap();
    std::fs::remove_file(s.path("models/sparse.bin")).unwrap();

    let out = s.json(&["checkout", "--json"]);

    assert_eq!(
        out["written"],
        serde_json::json!(["models/random.bin", "models/sparse.bin"]),
        "{out:#}"
    );
    assert!(
        s.read("models/random.bin") == random,
        "random.bin differs after checkout"
    );
    assert!(
        s.read("models/sparse.bin") == sparse,
        "sparse.bin differs after checkout"
    );
    assert_eq!(
        s.json(&["checkout", "--json"])["written"],
        serde_json::json!([])
    );
    let status = s.json(&["status", "--json"]);
    assert!(
        status["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["state"] == "clean"),
        "{status:#}"
    );
}

#[test]
fn checkout_of_one_named_manifest_rebuilds_only_that_file() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(42, 100_000));
    s.write("models/b.bin", &random_bytes(43, 100_000));
    let _ = s.ok(&["commit", "-m", "first"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    std::fs::remove_file(s.path("models/b.bin")).unwrap();

    let _ = s.ok(&["checkout", "models/a.bin.shard.json"]);

    assert_eq!(s.read("models/a.bin"), random_bytes(42, 100_000));
    assert!(!s.path("models/b.bin").exists());
}

#[test]
fn checkout_refuses_to_overwrite_uncommitted_edits_unless_forced() {
    let s = Sandbox::with_repo();
    let committed = random_bytes(44, 2 * MIB);
    s.write("models/a.bin", &committed);
    let _ = s.ok(&["commit", "-m", "first"]);
    let mut edited = committed.clone();
    edited[12_345] ^= 0x55;
    s.write("models/a.bin", &edited);

    let message = s.fails(&["checkout"]);
    assert!(
        message.contains("models/a.bin"),
        "the refusal must name the file: {message}"
    );
    assert!(
        message.contains("--force"),
        "the refusal should say how to override it: {message}"
    );
    assert!(
        s.read("models/a.bin") == edited,
        "a refused checkout changed the file"
    );

    let _ = s.ok(&["checkout", "--force"]);
    assert!(
        s.read("models/a.bin") == committed,
        "--force did not restore the committed content"
    );
}

#[test]
fn a_checkout_refused_for_one_file_writes_none_of_the_others() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(46, MIB));
    s.write("models/b.bin", &random_bytes(47, MIB));
    s.write("models/c.bin", &random_bytes(48, MIB));
    let _ = s.ok(&["commit", "-m", "first"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    s.write("models/b.bin", b"an experiment, never committed");
    s.write("models/c.bin", b"another one");

    let message = s.fails(&["checkout"]);

    assert!(
        message.contains("models/b.bin") && message.contains("1 more file"),
        "the refusal must name the first file and count the rest: {message}"
    );
    assert!(
        message.contains("no file was written"),
        "the refusal should say nothing changed: {message}"
    );
    assert!(
        !s.path("models/a.bin").exists(),
        "a refused checkout wrote another file"
    );
    assert_eq!(s.read("models/b.bin"), b"an experiment, never committed");
    assert_eq!(s.read("models/c.bin"), b"another one");
}

// The daemon chunks edited files in the background; that must not turn an uncommitted edit
// into "stored" content that checkout may overwrite: no manifest points at it, so overwriting
// it loses it all the same (design.md §5).
#[test]
fn checkout_refuses_to_overwrite_uncommitted_edits_the_daemon_already_chunked() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(53, 2 * MIB));
    let _ = s.ok(&["commit", "-m", "first"]);
    s.write("models/a.bin", b"an experiment that was never committed");
    s.wait_until_prepared("models/a.bin");

    let message = s.fails(&["checkout"]);

    assert!(message.contains("models/a.bin"), "{message}");
    assert_eq!(
        s.read("models/a.bin"),
        b"an experiment that was never committed"
    );
}

#[test]
fn checkout_replaces_a_file_whose_content_is_stored() {
    let s = Sandbox::with_repo();
    let v1 = random_bytes(45, 2 * MIB);
    let v2 = random_bytes(46, 2 * MIB);
    s.write("models/a.bin", &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let manifest_v1 = s.read("models/a.bin.shard.json");
    s.write("models/a.bin", &v2);
    let _ = s.ok(&["commit", "-m", "v2"]);
    let _ = s.git(&["add", "models/a.bin.shard.json"]);
    let _ = s.git(&["commit", "-q", "-m", "v2"]);
    // Going back to v1 (as `git checkout` of the manifest would) loses nothing: v2 is
    // committed in Git history, so it can always be rebuilt.
    s.write("models/a.bin.shard.json", &manifest_v1);

    let _ = s.ok(&["checkout"]);

    assert!(s.read("models/a.bin") == v1);
}

/// Flips one byte in the middle of the stored object of `hash`.
fn corrupt(s: &Sandbox, hash: &str) {
    s.wait_until_idle();
    let path = s.object(hash);
    let mut object = std::fs::read(&path).unwrap();
    let middle = object.len() / 2;
    object[middle] ^= 0x01;
    std::fs::write(&path, object).unwrap();
}

#[test]
fn a_corrupted_chunk_fails_the_checkout_naming_the_chunk_and_the_file() {
    let s = Sandbox::with_repo();
    s.write("models/random.bin", &random_bytes(47, 3 * MIB));
    s.write("models/sparse.bin", &compressible_bytes(48, 3 * MIB));
    let _ = s.ok(&["commit", "-m", "first"]);
    // Corrupt the final, compressed object, not a raw one the daemon is about to replace.
    s.wait_until_compressed("models/sparse.bin");
    for file in ["models/random.bin", "models/sparse.bin"] {
        let hash = s.manifest(file)["chunks"][0]["sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        corrupt(&s, &hash);
        std::fs::remove_file(s.path(file)).unwrap();

        let message = s.fails(&["checkout", file]);

        assert!(
            message.contains(&hash),
            "the error must name the chunk: {message}"
        );
        assert!(
            message.contains(file),
            "the error must name the file: {message}"
        );
        assert!(
            !s.path(file).exists(),
            "a failed checkout left {file} behind"
        );
    }
    let leftovers: Vec<String> = s
        .files_under("models")
        .into_iter()
        .filter(|f| !f.ends_with(".shard.json"))
        .collect();
    assert_eq!(
        leftovers,
        Vec::<String>::new(),
        "half-written files were left behind"
    );
}

#[test]
fn a_corrupted_chunk_never_touches_the_existing_working_file() {
    let s = Sandbox::with_repo();
    let v1 = random_bytes(49, 6 * MIB);
    let mut v2 = v1.clone();
    v2[3 * MIB..4 * MIB].copy_from_slice(&random_bytes(50, MIB));
    s.write("models/a.bin", &v1);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let _ = s.git(&["add", "models/a.bin.shard.json"]);
    let _ = s.git(&["commit", "-q", "-m", "v1"]);
    let v1_chunks = s.stored_chunks();
    s.write("models/a.bin", &v2);
    let _ = s.ok(&["commit", "-m", "v2"]);
    let only_v2 = s
        .stored_chunks()
        .into_iter()
        .find(|c| !v1_chunks.contains(c))
        .expect("v2 has a new chunk");
    corrupt(&s, &only_v2);
    // The working file holds v1 again: committed in Git, so checkout may replace it with v2.
    s.write("models/a.bin", &v1);
    let before = std::fs::metadata(s.path("models/a.bin")).unwrap();

    let message = s.fails(&["checkout"]);

    assert!(
        message.contains(&only_v2) && message.contains("models/a.bin"),
        "{message}"
    );
    assert!(
        s.read("models/a.bin") == v1,
        "the working file was modified by a failed checkout"
    );
    let after = std::fs::metadata(s.path("models/a.bin")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&after),
        std::os::unix::fs::MetadataExt::ino(&before)
    );
    assert_eq!(
        s.files_under("models"),
        ["models/a.bin", "models/a.bin.shard.json"]
    );
}

#[test]
fn a_manifest_whose_file_digest_its_chunks_do_not_give_is_refused() {
    let s = Sandbox::with_repo();
    let data = random_bytes(51, 3 * MIB);
    s.write("models/a.bin", &data);
    let _ = s.ok(&["commit", "-m", "v1"]);
    let committed = std::fs::read(s.path("models/a.bin.shard.json")).unwrap();
    // Every chunk is intact and was committed from this very file: only the digest lies. A
    // checkout of the committed manifest skips the whole-file pass, and this one must not.
    let mut lying = s.manifest("models/a.bin");
    lying["sha256"] = sha256_hex(b"another file").into();
    std::fs::write(
        s.path("models/a.bin.shard.json"),
        serde_json::to_vec_pretty(&lying).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(s.path("models/a.bin")).unwrap();

    let message = s.fails(&["checkout", "models/a.bin"]);

    assert!(
        message.contains("models/a.bin") && message.contains("does not match the SHA-256"),
        "{message}"
    );
    assert_eq!(s.files_under("models"), ["models/a.bin.shard.json"]);
    std::fs::write(s.path("models/a.bin.shard.json"), committed).unwrap();
    let _ = s.ok(&["checkout", "models/a.bin"]);
    assert!(
        s.read("models/a.bin") == data,
        "a.bin differs after checkout"
    );
}

#[test]
fn a_missing_chunk_fails_the_checkout_with_a_hint_to_pull() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(51, 2 * MIB));
    let _ = s.ok(&["commit", "-m", "first"]);
    let hash = s.manifest("models/a.bin")["chunks"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    s.wait_until_idle();
    std::fs::remove_file(s.object(&hash)).unwrap();
    std::fs::remove_file(s.path("models/a.bin")).unwrap();

    let message = s.fails(&["checkout"]);

    assert!(
        message.contains(&hash) && message.contains("models/a.bin"),
        "{message}"
    );
    assert!(message.contains("nshard pull"), "{message}");
    assert!(!s.path("models/a.bin").exists());
}

#[test]
fn verify_names_a_corrupted_chunk_and_the_file_that_needs_it() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(52, 2 * MIB));
    let _ = s.ok(&["commit", "-m", "first"]);
    let _ = s.ok(&["verify"]);
    let hash = s.manifest("models/a.bin")["chunks"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    corrupt(&s, &hash);

    let out = s.nshard().args(["verify", "--json"]).output().unwrap();

    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problem = &report["problems"][0];
    assert_eq!(problem["chunk"].as_str(), Some(hash.as_str()), "{report:#}");
    assert_eq!(
        problem["files"],
        serde_json::json!(["models/a.bin"]),
        "{report:#}"
    );
}

#[test]
fn temporary_files_a_crash_left_are_hidden_from_git_and_removed_by_the_next_checkout() {
    let s = Sandbox::with_repo();
    let data = random_bytes(44, MIB);
    s.write("models/a.bin", &data);
    let _ = s.ok(&["git-init"]);
    let _ = s.ok(&["commit", "-m", "first"]);
    // What a daemon killed mid-checkout leaves: a partial file beside the target.
    let leftover = "models/.a.bin.nshard-X7pQ2z.tmp";
    s.write(leftover, &data[..1000]);
    // Not a leftover of a.bin's checkouts: another file's, and a user's file.
    s.write("models/.a.bin.b.nshard-X7pQ2z.tmp", b"other");
    s.write("models/.a.bin.nshard-notes.txt", b"mine");
    assert!(s.git_ignores(leftover), "git would see the leftover");
    std::fs::remove_file(s.path("models/a.bin")).unwrap();

    let _ = s.ok(&["checkout"]);

    assert!(s.read("models/a.bin") == data);
    assert!(!s.path(leftover).exists(), "the leftover was kept");
    assert!(s.path("models/.a.bin.b.nshard-X7pQ2z.tmp").exists());
    assert!(s.path("models/.a.bin.nshard-notes.txt").exists());

    // A crash can leave a copy beside a file that is up to date: the next checkout of the
    // file removes it too, though it writes nothing.
    s.write(leftover, &data);
    let said = s.json(&["checkout", "--json"]);
    assert_eq!(said["unchanged"], 1, "{said:#}");
    assert!(!s.path(leftover).exists(), "the leftover was kept");
}

#[test]
fn a_directory_where_a_tracked_file_belongs_is_named_not_replaced() {
    let s = Sandbox::with_repo();
    s.write("models/a.bin", &random_bytes(45, 1000));
    let _ = s.ok(&["commit", "-m", "first"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    s.write("models/a.bin/notes.txt", b"mine");

    for args in [&["checkout"][..], &["checkout", "--force"]] {
        let message = s.fails(args);
        assert!(message.contains("models/a.bin is a directory"), "{message}");
        assert_eq!(message.matches("models/a.bin").count(), 1, "{message}");
    }
    assert_eq!(s.read("models/a.bin/notes.txt"), b"mine");

    // A symbolic link is named the same way, and nothing is written through it.
    std::fs::remove_dir_all(s.path("models/a.bin")).unwrap();
    s.write("elsewhere.txt", b"not the model");
    std::os::unix::fs::symlink(s.path("elsewhere.txt"), s.path("models/a.bin")).unwrap();
    let message = s.fails(&["checkout", "--force"]);
    assert!(
        message.contains("models/a.bin is a symbolic link"),
        "{message}"
    );
    assert_eq!(s.read("elsewhere.txt"), b"not the model");
}

#[test]
fn checkout_takes_directories_and_patterns_and_diff_names_a_missing_file() {
    let s = Sandbox::with_repo();
    let (a, b) = (random_bytes(46, 1000), random_bytes(47, 1000));
    s.write("models/a.bin", &a);
    s.write("models/b.bin", &b);
    let _ = s.ok(&["commit", "-m", "first"]);
    std::fs::remove_file(s.path("models/a.bin")).unwrap();
    std::fs::remove_file(s.path("models/b.bin")).unwrap();

    let message = s.fails(&["diff", "models/a.bin"]);
    assert!(
        message.contains("missing from the working tree"),
        "{message}"
    );
    assert!(
        message.contains("nshard checkout models/a.bin"),
        "{message}"
    );
    let message = s.fails(&["commit", "-m", "gone", "models/a.bin"]);
    assert!(
        message.contains("missing from the working tree"),
        "{message}"
    );

    let by_glob = s.json(&["checkout", "models/a.*", "--json"]);
    assert_eq!(
        by_glob["written"],
        serde_json::json!(["models/a.bin"]),
        "{by_glob:#}"
    );
    let by_dir = s.json(&["checkout", "models", "--json"]);
    assert_eq!(
        by_dir["written"],
        serde_json::json!(["models/b.bin"]),
        "{by_dir:#}"
    );
    assert!(s.read("models/a.bin") == a && s.read("models/b.bin") == b);
}

/// Forty small files (one chunk or several) and two past the small size, in two directories.
fn many_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..40u64)
        .map(|i| {
            let len = 1000 + 25_000 * usize::try_from(i).unwrap();
            (
                format!("models/d{}/s{i:02}.bin", i % 2),
                random_bytes(500 + i, len),
            )
        })
        .collect();
    files.push(("models/mid.bin".into(), random_bytes(600, MIB + 1)));
    files.push(("models/big.bin".into(), random_bytes(601, 5 * MIB)));
    files
}

#[test]
fn many_files_are_rebuilt_together_byte_for_byte() {
    let files = many_files();
    let s = Sandbox::new();
    let _ = s.ok(&["init", "--chunk-size", "64KiB"]);
    let _ = s.ok(&["track", "models/**/*.bin"]);
    for (file, data) in &files {
        s.write(file, data);
    }
    let _ = s.ok(&["commit", "-m", "many"]);
    for (file, _) in files.iter().filter(|(f, _)| f.starts_with("models/d0/")) {
        std::fs::remove_file(s.path(file)).unwrap();
    }
    std::fs::remove_file(s.path("models/d1/s01.bin")).unwrap();
    std::fs::remove_file(s.path("models/big.bin")).unwrap();
    s.write("models/mid.bin", b"an edit");

    let refused = s.fails(&["checkout"]);
    assert!(refused.contains("models/mid.bin"), "{refused}");
    assert!(
        s.read("models/mid.bin") == b"an edit",
        "a refused checkout wrote"
    );
    let out = s.json(&["checkout", "--force", "--json"]);

    assert_eq!(out["written"].as_array().map(Vec::len), Some(23), "{out:#}");
    for (file, data) in &files {
        assert!(s.read(file) == *data, "{file} differs after checkout");
    }
    let status = s.json(&["status", "--json"]);
    for file in status["files"].as_array().unwrap() {
        assert_eq!(file["state"], "clean", "{status:#}");
    }
}
