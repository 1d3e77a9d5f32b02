//! `PUT /v1/manifests/{id}` on an in-process `shard-server`: validation, the id check, chunks
//! required first, read-only tokens, where it is stored; and the push client's
//! `Remote::put_manifest` for shard-server and directory remotes.

use std::collections::HashMap;

use bytes::Bytes;
use shardd::chunk::ChunkHash;
use shardd::store::remote::Remote;

use crate::chunk_server::{ChunkServer, compressible, error_of, manifest_json};

const TOKENS: &str = "rw writer-secret\nro reader-secret\n";

/// Where a manifest with `id` is stored under `storage`.
fn manifest_path(server: &ChunkServer, id: &ChunkHash) -> std::path::PathBuf {
    let hex = id.to_hex();
    server.storage().join("manifests").join(&hex[..2]).join(hex)
}

#[tokio::test]
async fn a_manifest_is_stored_under_its_hash_once_its_chunks_are() {
    let server = ChunkServer::open().await;
    let (a, object_a) = compressible(1, 10_000);
    let (b, object_b) = compressible(2, 10_000);
    let json = manifest_json("models/a.bin", &[a, b, a], 10_000);
    let id = ChunkHash::of(json.as_bytes());

    assert_eq!(server.put(&a, object_a, None).await, 201);
    let refused = server.put_manifest_as(&id, json.clone(), None).await;
    let message = error_of(refused, 409).await;
    assert!(
        message.contains("1 chunk(s) this server does not hold")
            && message.contains(&format!("{b:#}")),
        "{message}"
    );
    assert!(!manifest_path(&server, &id).exists(), "nothing is kept");

    assert_eq!(server.put(&b, object_b, None).await, 201);
    assert_eq!(server.put_manifest(&json).await, 201);
    assert_eq!(server.put_manifest(&json).await, 200, "already stored");
    let stored = std::fs::read_to_string(manifest_path(&server, &id)).unwrap();
    assert_eq!(stored, json);
    let tmp = std::fs::read_dir(server.storage().join("tmp")).unwrap();
    assert_eq!(tmp.count(), 0, "written through tmp/ and renamed");
    server.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_an_invalid_manifest_422() {
    let server = ChunkServer::open().await;
    let not_json = "{\"format\": ";
    let response = server
        .put_manifest_as(&ChunkHash::of(not_json.as_bytes()), not_json, None)
        .await;
    let message = error_of(response, 400).await;
    assert!(
        message.starts_with("the manifest is invalid: it is not valid manifest JSON"),
        "{message}"
    );

    let (a, _) = compressible(1, 10_000);
    let mut value: serde_json::Value =
        serde_json::from_str(&manifest_json("a.bin", &[a], 10_000)).unwrap();
    value["path"] = "../escape".into();
    let bad = value.to_string();
    let response = server
        .put_manifest_as(&ChunkHash::of(bad.as_bytes()), bad, None)
        .await;
    let message = error_of(response, 422).await;
    assert!(message.contains("`../escape`"), "{message}");

    // Valid JSON that is no manifest is content that does not fit, not a malformed request.
    let not_a_manifest = "{\"format\": \"x\"}";
    let response = server
        .put_manifest_as(
            &ChunkHash::of(not_a_manifest.as_bytes()),
            not_a_manifest,
            None,
        )
        .await;
    let message = error_of(response, 422).await;
    assert!(message.contains("it is not a manifest"), "{message}");

    let bad_id = server
        .client
        .put(server.url("/v1/manifests/xyz"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let _ = error_of(bad_id, 400).await;
    assert!(!server.storage().join("manifests").exists());
}

#[tokio::test]
async fn a_body_not_hashing_to_its_id_is_422() {
    let server = ChunkServer::open().await;
    let (a, object) = compressible(1, 10_000);
    assert_eq!(server.put(&a, object, None).await, 201);
    let json = manifest_json("a.bin", &[a], 10_000);
    let wrong = ChunkHash::of(b"another manifest");
    let message = error_of(server.put_manifest_as(&wrong, json, None).await, 422).await;
    assert!(
        message.contains("hash to") && message.contains(&format!("not to its id {wrong:#}")),
        "{message}"
    );
    assert!(!manifest_path(&server, &wrong).exists());
}

#[tokio::test]
async fn read_only_tokens_cannot_store_manifests() {
    let server = ChunkServer::with_tokens(TOKENS).await;
    let (a, object) = compressible(1, 10_000);
    assert_eq!(server.put(&a, object, Some("writer-secret")).await, 201);
    let json = manifest_json("a.bin", &[a], 10_000);
    let id = ChunkHash::of(json.as_bytes());
    let ro = server
        .put_manifest_as(&id, json.clone(), Some("reader-secret"))
        .await;
    let _ = error_of(ro, 403).await;
    let none = server.put_manifest_as(&id, json.clone(), None).await;
    let _ = error_of(none, 401).await;
    assert!(!manifest_path(&server, &id).exists());
    let rw = server
        .put_manifest_as(&id, json, Some("writer-secret"))
        .await;
    assert_eq!(rw.status(), 201);
}

#[tokio::test]
async fn the_push_client_stores_manifests_on_servers_and_directories() {
    let server = ChunkServer::open().await;
    let (a, object) = compressible(1, 10_000);
    let json = manifest_json("models/a.bin", &[a], 10_000);
    let id = ChunkHash::of(json.as_bytes());
    let cwd = server.dir.path();
    let env = HashMap::new();

    let http = Remote::open(&server.url(""), cwd, &env).unwrap();
    let early = http
        .put_manifest("models/a.bin", Bytes::from(json.clone()))
        .await;
    let message = format!("{}", early.unwrap_err());
    assert!(
        message.contains("answered 409 for the manifest of models/a.bin"),
        "{message}"
    );
    http.put(&a, Bytes::from(object.clone())).await.unwrap();
    http.put_manifest("models/a.bin", Bytes::from(json.clone()))
        .await
        .unwrap();
    assert!(manifest_path(&server, &id).is_file());

    let dir = Remote::open("dir-remote", cwd, &env).unwrap();
    dir.put(&a, Bytes::from(object)).await.unwrap();
    dir.put_manifest("models/a.bin", Bytes::from(json.clone()))
        .await
        .unwrap();
    let hex = id.to_hex();
    let stored = cwd.join("dir-remote/manifests").join(&hex[..2]).join(&hex);
    assert_eq!(std::fs::read_to_string(stored).unwrap(), json);
}

#[tokio::test]
async fn pushing_a_manifest_again_repairs_a_damaged_stored_copy() {
    let server = ChunkServer::open().await;
    let (a, object_a) = compressible(3, 10_000);
    let json = manifest_json("models/a.bin", &[a], 10_000);
    let id = ChunkHash::of(json.as_bytes());
    assert_eq!(server.put(&a, object_a, None).await, 201);
    assert_eq!(server.put_manifest(&json).await, 201);
    assert_eq!(
        server.put_manifest(&json).await,
        200,
        "a sound copy is kept"
    );

    let path = manifest_path(&server, &id);
    let mut damaged = std::fs::read(&path).expect("stored");
    damaged.push(b' ');
    std::fs::write(&path, damaged).expect("damage");

    assert_eq!(
        server.put_manifest(&json).await,
        201,
        "the damaged copy was kept"
    );
    assert_eq!(std::fs::read(&path).expect("stored"), json.as_bytes());
    server.stop().await;
}
