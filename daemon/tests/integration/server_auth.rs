//! Bearer tokens on an in-process `shard-server` with a token file of one `rw` and one `ro`
//! token.

use serde_json::json;
use shardd::chunk::ChunkHash;
use shardd::http::{Error, Server, ServerConfig, Storage};

use crate::chunk_server::{ChunkServer, compressible, error_of};

const TOKENS: &str = "# test tokens\nrw writer-secret\n\nro reader-secret\n";

#[tokio::test]
async fn requests_without_a_token_are_401_except_health() {
    let server = ChunkServer::with_tokens(TOKENS).await;
    let (hash, object) = compressible(1, 10_000);
    let url = server.chunk_url(&hash);
    let response = server.client.put(&url).body(object).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"shard-server\""
    );
    let message = error_of(response, 401).await;
    assert!(message.contains("Authorization: Bearer"), "{message}");
    let _ = error_of(server.client.get(&url).send().await.unwrap(), 401).await;
    assert_eq!(server.client.head(&url).send().await.unwrap().status(), 401);
    let missing = server
        .client
        .post(server.url("/v1/chunks/missing"))
        .body("{\"chunks\":[]}");
    let _ = error_of(missing.send().await.unwrap(), 401).await;
    // Auth comes first: a bad id without a token is still a 401.
    let bad_id = server
        .client
        .get(server.url("/v1/chunks/xyz"))
        .send()
        .await
        .unwrap();
    let _ = error_of(bad_id, 401).await;

    let health = server
        .client
        .get(server.url("/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(server.stored_files().is_empty());
}

#[tokio::test]
async fn unknown_tokens_and_schemes_are_401() {
    let server = ChunkServer::with_tokens(TOKENS).await;
    let url = server.chunk_url(&ChunkHash::of(b"x"));
    let wrong = server
        .client
        .get(&url)
        .bearer_auth("writer-secre")
        .send()
        .await
        .unwrap();
    let message = error_of(wrong, 401).await;
    assert_eq!(message, "the bearer token is not valid");
    let basic = server
        .client
        .get(&url)
        .basic_auth("writer-secret", None::<&str>)
        .send()
        .await;
    let _ = error_of(basic.unwrap(), 401).await;
}

#[tokio::test]
async fn read_only_tokens_cannot_upload() {
    let server = ChunkServer::with_tokens(TOKENS).await;
    let (hash, object) = compressible(2, 10_000);
    let response = server
        .client
        .put(server.chunk_url(&hash))
        .bearer_auth("reader-secret")
        .body(object);
    let message = error_of(response.send().await.unwrap(), 403).await;
    assert!(message.contains("read-only"), "{message}");
    assert!(server.stored_files().is_empty());
}

#[tokio::test]
async fn read_write_tokens_upload_and_read_only_tokens_read() {
    let server = ChunkServer::with_tokens(TOKENS).await;
    let (hash, object) = compressible(3, 10_000);
    assert_eq!(
        server
            .put(&hash, object.clone(), Some("writer-secret"))
            .await,
        201
    );

    let url = server.chunk_url(&hash);
    let get = server
        .client
        .get(&url)
        .bearer_auth("reader-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.bytes().await.unwrap().as_ref(), object.as_slice());
    let head = server
        .client
        .head(&url)
        .bearer_auth("reader-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let body = json!({ "chunks": [format!("{hash:#}")] }).to_string();
    let missing = server
        .client
        .post(server.url("/v1/chunks/missing"))
        .bearer_auth("reader-secret");
    let response = missing.body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{\"missing\":[]}");
    // The rw token reads too.
    let get = server
        .client
        .get(&url)
        .bearer_auth("writer-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    server.stop().await;
}

fn config(dir: &tempfile::TempDir, listen: &str) -> ServerConfig {
    ServerConfig::new(
        listen.parse().unwrap(),
        Storage::Directory(dir.path().join("storage")),
    )
}

#[tokio::test]
async fn open_serving_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let err = Server::bind(config(&dir, "0.0.0.0:0")).await.unwrap_err();
    assert!(matches!(err, Error::OpenOnNetwork(_)), "{err:?}");
    assert!(err.to_string().contains("--token-file"), "{err}");

    let mut insecure = config(&dir, "0.0.0.0:0");
    insecure.insecure_open = true;
    drop(Server::bind(insecure).await.unwrap());

    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, TOKENS).unwrap();
    let mut guarded = config(&dir, "0.0.0.0:0");
    guarded.token_file = Some(tokens);
    drop(Server::bind(guarded).await.unwrap());
}

#[tokio::test]
async fn bad_token_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "rw good\nadmin bad\n").unwrap();
    let mut with_bad_line = config(&dir, "127.0.0.1:0");
    with_bad_line.token_file = Some(tokens.clone());
    let err = Server::bind(with_bad_line).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2: the access must be `rw` or `ro`", tokens.display())
    );

    let mut absent = config(&dir, "127.0.0.1:0");
    absent.token_file = Some(dir.path().join("nope"));
    let err = Server::bind(absent).await.unwrap_err();
    assert!(matches!(err, Error::TokenFile(_)), "{err:?}");
}
