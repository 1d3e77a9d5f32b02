//! The `/v1` routes of an open (tokenless, loopback) in-process `shard-server`.

use serde_json::{Value, json};
use shardd::chunk::{ChunkHash, codec};

use crate::chunk_server::{ChunkServer, compressible, error_of};

#[tokio::test]
async fn health_answers_ok_with_the_version() {
    let server = ChunkServer::open().await;
    let response = server
        .client
        .get(server.url("/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json_value().await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    server.stop().await;
}

#[tokio::test]
async fn put_then_get_round_trips_a_zstd_object() {
    let server = ChunkServer::open().await;
    let (hash, object) = compressible(1, 300_000);
    assert!(
        object.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]),
        "the test chunk is a zstd frame"
    );
    assert_eq!(server.put(&hash, object.clone(), None).await, 201);
    assert_eq!(
        server.put(&hash, object.clone(), None).await,
        200,
        "already stored"
    );

    let response = server
        .client
        .get(server.chunk_url(&hash))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(
        response.headers()["content-length"],
        object.len().to_string().as_str()
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        object.as_slice(),
        "the stored object comes back unchanged"
    );
    assert_eq!(codec::decode_verified(&body, &hash).unwrap().len(), 300_000);
    assert_eq!(
        server.stored_files().len(),
        1,
        "one object, no temporary files"
    );
    server.stop().await;
}

#[tokio::test]
async fn raw_objects_round_trip_too() {
    let server = ChunkServer::open().await;
    let data = b"short and stored raw".to_vec();
    let hash = ChunkHash::of(&data);
    assert_eq!(server.put(&hash, data.clone(), None).await, 201);
    let body = server
        .client
        .get(server.chunk_url(&hash))
        .send()
        .await
        .unwrap()
        .bytes()
        .await;
    assert_eq!(body.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn missing_returns_only_absent_ids_in_order_without_duplicates() {
    let server = ChunkServer::open().await;
    let (stored, object) = compressible(2, 10_000);
    assert_eq!(server.put(&stored, object, None).await, 201);
    let (absent_a, _) = compressible(3, 10_000);
    let (absent_b, _) = compressible(4, 10_000);
    let ids = [absent_b, stored, absent_a, absent_b].map(|h| format!("{h:#}"));
    let response = server
        .client
        .post(server.url("/v1/chunks/missing"))
        .json_body(&json!({ "chunks": ids }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.json_value().await;
    assert_eq!(
        body,
        json!({ "missing": [format!("{absent_b:#}"), format!("{absent_a:#}")] })
    );

    let empty = server
        .client
        .post(server.url("/v1/chunks/missing"))
        .json_body(&json!({"chunks": []}));
    assert_eq!(
        empty.send().await.unwrap().json_value().await,
        json!({ "missing": [] })
    );
}

#[tokio::test]
async fn wrong_content_is_422_and_nothing_is_kept() {
    let server = ChunkServer::open().await;
    let (claimed, _) = compressible(5, 50_000);
    let (_, other_object) = compressible(6, 50_000);
    let response = server
        .client
        .put(server.chunk_url(&claimed))
        .body(other_object)
        .send()
        .await
        .unwrap();
    let message = error_of(response, 422).await;
    assert!(message.contains("does not match its id"), "{message}");
    let head = server
        .client
        .head(server.chunk_url(&claimed))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    assert!(
        server.stored_files().is_empty(),
        "{:?}",
        server.stored_files()
    );
}

#[tokio::test]
async fn corrupt_frames_and_zstd_bombs_are_422() {
    let server = ChunkServer::open().await;
    // A valid frame that expands past the 16 MiB maximum chunk, named after what it expands to.
    let huge = vec![0u8; 16 * 1024 * 1024 + 1];
    let bomb = zstd::bulk::compress(&huge, 1).unwrap();
    assert!(bomb.len() < 10_000);
    let response = server
        .client
        .put(server.chunk_url(&ChunkHash::of(&huge)))
        .body(bomb);
    let message = error_of(response.send().await.unwrap(), 422).await;
    assert!(message.contains("not a valid chunk encoding"), "{message}");

    let mut corrupt = compressible(7, 100_000).1;
    corrupt.truncate(corrupt.len() / 2);
    let response = server
        .client
        .put(server.chunk_url(&ChunkHash::of(b"x")))
        .body(corrupt);
    let _ = error_of(response.send().await.unwrap(), 422).await;
    assert!(server.stored_files().is_empty());
}

#[tokio::test]
async fn bad_ids_are_400_on_every_route() {
    let server = ChunkServer::open().await;
    let upper = format!("{:#}", ChunkHash::of(b"abc")).to_uppercase();
    for id in [
        "xyz",
        upper.as_str(),
        "..%2F..%2Fetc%2Fpasswd",
        &"a".repeat(65),
    ] {
        let url = server.url(&format!("/v1/chunks/{id}"));
        let message = error_of(server.client.get(&url).send().await.unwrap(), 400).await;
        assert!(message.contains("is not a SHA-256 chunk id"), "{message}");
        let _ = error_of(server.client.put(&url).body("x").send().await.unwrap(), 400).await;
        let head = server.client.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 400);
    }
    let body = json!({ "chunks": [format!("{:#}", ChunkHash::of(b"ok")), "nope"] });
    let response = server
        .client
        .post(server.url("/v1/chunks/missing"))
        .json_body(&body)
        .send()
        .await;
    let message = error_of(response.unwrap(), 400).await;
    assert!(
        message.contains("`nope` is not a SHA-256 chunk id"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let server = ChunkServer::open().await;
    for body in ["not json", "{\"chunks\": 5}", "{}", "[]"] {
        let request = server
            .client
            .post(server.url("/v1/chunks/missing"))
            .body(body);
        let message = error_of(request.send().await.unwrap(), 400).await;
        assert!(
            message.starts_with("invalid JSON request body: "),
            "{message}"
        );
    }
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let server = ChunkServer::open().await;
    let too_big = vec![1u8; codec::MAX_OBJECT_BYTES + 1];
    let hash = ChunkHash::of(&too_big);
    let response = server
        .client
        .put(server.chunk_url(&hash))
        .body(too_big)
        .send()
        .await
        .unwrap();
    let message = error_of(response, 413).await;
    assert!(message.contains("larger than"), "{message}");
    assert!(server.stored_files().is_empty());

    let ids: Vec<String> = (0..10_001u32)
        .map(|i| format!("{:#}", ChunkHash::of(&i.to_le_bytes())))
        .collect();
    let request = server
        .client
        .post(server.url("/v1/chunks/missing"))
        .json_body(&json!({ "chunks": ids }));
    let message = error_of(request.send().await.unwrap(), 413).await;
    assert!(message.contains("10001 chunk ids"), "{message}");
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read() {
    let server = ChunkServer::open().await;
    // A raw chunk of the maximum size that is not the chunk it claims to be: it must get past
    // the size checks and be judged on its content.
    let at_limit = vec![1u8; shardd::chunk::cdc::MAX_CHUNK_BYTES as usize];
    let response = server
        .client
        .put(server.chunk_url(&ChunkHash::of(b"x")))
        .body(at_limit);
    let _ = error_of(response.send().await.unwrap(), 422).await;
    // A raw object larger than any chunk is too large even though the body limit (sized for
    // compressed frames) lets it in.
    let over = vec![1u8; codec::MAX_OBJECT_BYTES];
    let response = server
        .client
        .put(server.chunk_url(&ChunkHash::of(b"y")))
        .body(over);
    let _ = error_of(response.send().await.unwrap(), 413).await;
}

#[tokio::test]
async fn head_is_200_or_404_and_unknown_chunks_are_404() {
    let server = ChunkServer::open().await;
    let (hash, object) = compressible(8, 20_000);
    let head = server
        .client
        .head(server.chunk_url(&hash))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    let message = error_of(
        server
            .client
            .get(server.chunk_url(&hash))
            .send()
            .await
            .unwrap(),
        404,
    );
    assert!(message.await.contains("is not on this server"));
    let stored_len = object.len();
    assert_eq!(server.put(&hash, object, None).await, 201);
    let head = server
        .client
        .head(server.chunk_url(&hash))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    // The headers a GET carries, so a client can size its buffer before downloading.
    let header = |name| {
        head.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-length"), Some(stored_len.to_string()));
    assert_eq!(
        header("content-type").as_deref(),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = ChunkServer::open().await;
    let _ = error_of(
        server
            .client
            .get(server.url("/chunks"))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let hash = ChunkHash::of(b"x");
    let delete = server
        .client
        .delete(server.chunk_url(&hash))
        .send()
        .await
        .unwrap();
    let _ = error_of(delete, 405).await;
}

#[tokio::test]
async fn concurrent_uploads_share_few_slots() {
    let server = ChunkServer::start(None, 1).await;
    let chunks: Vec<_> = (0..12).map(|i| compressible(i, 200_000)).collect();
    let uploads = chunks
        .iter()
        .map(|(hash, object)| server.put(hash, object.clone(), None));
    let statuses = futures::future::join_all(uploads).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(server.stored_files().len(), 12);
    server.stop().await;
}

/// Small conveniences over reqwest without its `json` feature.
trait JsonExt {
    async fn json_value(self) -> Value;
}

impl JsonExt for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}
