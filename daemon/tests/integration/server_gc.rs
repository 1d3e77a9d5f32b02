//! `shard-server gc` and `verify` over the storage of an in-process server: what gc keeps
//! (referenced, young) and deletes, both phases with pushes interleaved between them, dry
//! runs, and damage found by verify; then the same through the built binary. Chunks are made
//! old by moving their mtime back, never by waiting.

use std::process::Command;
use std::time::Duration;

use shardd::chunk::ChunkHash;
use shardd::http::gc::{self, GcOptions};
use shardd::http::verify::{self, Problem};
use shardd::http::{Error, Storage};

use crate::chunk_server::{ChunkServer, compressible, manifest_json};

/// Older than the default grace period.
const OLD: Duration = Duration::from_secs(2 * 3600);

/// A server holding `count` old, unreferenced chunks (seeds 100…), plus one root manifest
/// referencing a chunk of its own, so gc has roots.
async fn server_with_garbage(count: u8) -> (ChunkServer, Vec<ChunkHash>) {
    let server = ChunkServer::open().await;
    let (root_chunk, object) = compressible(99, 10_000);
    assert_eq!(server.put(&root_chunk, object, None).await, 201);
    let root = manifest_json("kept.bin", &[root_chunk], 10_000);
    assert_eq!(server.put_manifest(&root).await, 201);
    server.age(&root_chunk, OLD);
    let mut garbage = Vec::new();
    for seed in 100..100 + count {
        let (hash, object) = compressible(seed, 10_000);
        assert_eq!(server.put(&hash, object, None).await, 201);
        server.age(&hash, OLD);
        garbage.push(hash);
    }
    (server, garbage)
}

fn storage(server: &ChunkServer) -> Storage {
    Storage::Directory(server.storage())
}

#[tokio::test]
async fn keeps_referenced_and_young_chunks_and_deletes_old_garbage() {
    let server = ChunkServer::open().await;
    let chunks: Vec<_> = (1..=4).map(|seed| compressible(seed, 10_000)).collect();
    for (hash, object) in &chunks {
        assert_eq!(server.put(hash, object.clone(), None).await, 201);
    }
    let [
        (referenced_old, _),
        (garbage, garbage_object),
        (young, _),
        (referenced, _),
    ] = chunks.as_slice()
    else {
        unreachable!()
    };
    let json = manifest_json("m.bin", &[*referenced_old, *referenced], 10_000);
    assert_eq!(server.put_manifest(&json).await, 201);
    for hash in [referenced_old, garbage, referenced] {
        server.age(hash, OLD);
    }

    let report = gc::run(&storage(&server), &GcOptions::default())
        .await
        .unwrap();
    assert_eq!(report.manifests, 1);
    assert_eq!((report.chunks, report.referenced, report.young), (4, 2, 1));
    let deleted: Vec<_> = report.deleted.iter().map(|c| c.hash).collect();
    assert_eq!(deleted, [*garbage]);
    assert_eq!(report.freed_bytes, garbage_object.len() as u64);
    assert!(!server.object_path(garbage).exists());
    for kept in [referenced_old, young, referenced] {
        assert!(server.object_path(kept).is_file(), "{kept} was kept");
    }
    assert!(server.missing(&[*garbage]).await.len() == 1);
}

#[tokio::test]
async fn a_dry_run_lists_the_garbage_and_deletes_nothing() {
    let (server, garbage) = server_with_garbage(2).await;
    let options = GcOptions {
        dry_run: true,
        ..GcOptions::default()
    };
    let report = gc::run(&storage(&server), &options).await.unwrap();
    let mut listed: Vec<_> = report.deleted.iter().map(|c| c.hash).collect();
    listed.sort();
    let mut expected = garbage.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(report.freed_bytes > 0);
    for hash in &garbage {
        assert!(server.object_path(hash).is_file());
    }
}

#[tokio::test]
async fn phase_two_spares_what_pushes_relied_on_since_phase_one() {
    let (server, garbage) = server_with_garbage(4).await;
    let backend = server.backend();
    let marked = gc::mark(&backend, gc::DEFAULT_GRACE).await.unwrap();
    assert_eq!(marked.candidates().len(), 4);

    // Between the phases: a push stores a manifest of one candidate, another finds a second
    // present through `missing`, a third uploads a third again.
    let [in_new_root, found_present, uploaded_again, garbage_left] = garbage.as_slice() else {
        unreachable!()
    };
    let json = manifest_json("new.bin", &[*in_new_root], 10_000);
    assert_eq!(server.put_manifest(&json).await, 201);
    assert!(server.missing(&[*found_present]).await.is_empty());
    let (_, object) = compressible(102, 10_000);
    assert_eq!(server.put(uploaded_again, object, None).await, 200);

    let report = gc::sweep(&backend, marked).await.unwrap();
    assert_eq!(report.spared, 3);
    assert_eq!(report.manifests, 2, "the new root was read in phase 2");
    let deleted: Vec<_> = report.deleted.iter().map(|c| c.hash).collect();
    assert_eq!(deleted, [*garbage_left]);
    for kept in [in_new_root, found_present, uploaded_again] {
        assert!(server.object_path(kept).is_file(), "{kept} was kept");
    }
}

#[tokio::test]
async fn a_manifest_whose_chunk_gc_deleted_is_refused_and_a_rerun_push_heals() {
    let (server, garbage) = server_with_garbage(1).await;
    let report = gc::run(&storage(&server), &GcOptions::default())
        .await
        .unwrap();
    assert_eq!(report.deleted.len(), 1);
    let json = manifest_json("late.bin", &garbage, 10_000);
    assert_eq!(server.put_manifest(&json).await, 409);
    assert_eq!(server.missing(&garbage).await, [garbage[0].to_hex()]);
    let (_, object) = compressible(100, 10_000);
    assert_eq!(server.put(&garbage[0], object, None).await, 201);
    assert_eq!(server.put_manifest(&json).await, 201);
}

#[tokio::test]
async fn without_any_manifest_gc_refuses_unless_allowed() {
    let server = ChunkServer::open().await;
    let (hash, object) = compressible(1, 10_000);
    assert_eq!(server.put(&hash, object, None).await, 201);
    server.age(&hash, OLD);
    let refused = gc::run(&storage(&server), &GcOptions::default()).await;
    let message = format!("{}", refused.unwrap_err());
    assert!(
        message.contains("holds no pushed manifests") && message.contains("--allow-no-roots"),
        "{message}"
    );
    assert!(server.object_path(&hash).is_file());
    let options = GcOptions {
        allow_no_roots: true,
        ..GcOptions::default()
    };
    let report = gc::run(&storage(&server), &options).await.unwrap();
    assert_eq!(report.deleted.len(), 1);
}

#[tokio::test]
async fn gc_and_verify_refuse_a_directory_without_storage() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Storage::Directory(dir.path().join("typo"));
    let gc = gc::run(&missing, &GcOptions::default()).await;
    assert!(matches!(gc, Err(Error::NoStorage(_))));
    assert!(matches!(
        verify::run(&missing).await,
        Err(Error::NoStorage(_))
    ));
}

#[tokio::test]
async fn verify_finds_a_flipped_byte_and_a_missing_chunk() {
    let server = ChunkServer::open().await;
    let chunks: Vec<_> = (1..=3).map(|seed| compressible(seed, 10_000)).collect();
    for (hash, object) in &chunks {
        assert_eq!(server.put(hash, object.clone(), None).await, 201);
    }
    let hashes: Vec<_> = chunks.iter().map(|(h, _)| *h).collect();
    assert_eq!(
        server
            .put_manifest(&manifest_json("m.bin", &hashes, 10_000))
            .await,
        201
    );
    let clean = verify::run(&storage(&server)).await.unwrap();
    assert_eq!((clean.chunks, clean.manifests), (3, 1));
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);

    let path = server.object_path(&hashes[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    std::fs::remove_file(server.object_path(&hashes[1])).unwrap();

    let report = verify::run(&storage(&server)).await.unwrap();
    assert_eq!(report.chunks, 2);
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(matches!(
        &report.problems[0],
        Problem::CorruptChunk { hash, .. } if *hash == hashes[0]
    ));
    assert!(matches!(
        &report.problems[1],
        Problem::MissingChunk { hash, path, .. } if *hash == hashes[1] && path == "m.bin"
    ));
    let advice = report.problems[1].to_string();
    assert!(advice.contains("push m.bin again"), "{advice}");
}

fn shard_server(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shard-server"))
        .args(args)
        .env("SHARDD_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_binary_collects_with_a_zero_grace_and_verify_exits_1_on_damage() {
    let (server, garbage) = server_with_garbage(1).await;
    let (young, object) = compressible(50, 10_000);
    assert_eq!(server.put(&young, object, None).await, 201);
    let dir = server.storage();
    let dir = dir.to_str().unwrap();

    let dry = shard_server(&["gc", "--storage", dir, "--dry-run"]);
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        stdout.contains(&format!("would delete {:#}", garbage[0])),
        "{stdout}"
    );
    assert!(!stdout.contains(&format!("{young:#}")), "young: {stdout}");

    let output = shard_server(&["gc", "--storage", dir, "--grace", "0s"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(&format!("deleted {:#}", garbage[0])),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("deleted {young:#}")), "{stdout}");
    assert!(
        stdout.contains("1 manifests, 3 chunks: 1 referenced"),
        "{stdout}"
    );

    let clean = shard_server(&["verify", "--storage", dir]);
    assert!(clean.status.success(), "{clean:?}");
    let root_chunk = compressible(99, 10_000).0;
    std::fs::write(server.object_path(&root_chunk), b"not the chunk").unwrap();
    let damaged = shard_server(&["verify", "--storage", dir]);
    assert_eq!(damaged.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&damaged.stdout);
    assert!(
        stdout.contains(&format!("chunk {root_chunk:#} is corrupt")),
        "{stdout}"
    );
    assert!(stdout.contains("1 problems"), "{stdout}");

    let conflict = shard_server(&["gc", "--listen", "127.0.0.1:0"]);
    assert_eq!(
        conflict.status.code(),
        Some(2),
        "serve flags are not gc flags"
    );
}
