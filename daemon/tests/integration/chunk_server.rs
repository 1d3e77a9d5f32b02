//! [`ChunkServer`]: a real `shard-server` router served in-process on `127.0.0.1:0` over a
//! temporary directory, bound before its task is spawned so tests never wait or sleep.

use std::net::SocketAddr;
use std::path::PathBuf;

use shardd::chunk::{ChunkHash, codec};
use shardd::http::{Server, ServerConfig, Storage};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running server; dropping it shuts it down.
pub struct ChunkServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), shardd::http::Error>>>,
}

impl ChunkServer {
    /// A server without tokens (allowed: it listens on loopback).
    pub async fn open() -> Self {
        Self::start(None, 4).await
    }

    /// A server guarded by a token file holding `tokens`.
    pub async fn with_tokens(tokens: &str) -> Self {
        Self::start(Some(tokens), 4).await
    }

    /// A server with `tokens` (if any) and `upload_slots` concurrent uploads.
    pub async fn start(tokens: Option<&str>, upload_slots: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = tokens.map(|text| {
            let path = dir.path().join("tokens");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut config = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            Storage::Directory(dir.path().join("storage")),
        );
        config.token_file = token_file;
        config.upload_slots = upload_slots;
        let server = Server::bind(config).await.unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0, "port 0 is replaced by the bound port");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            addr,
            dir,
            client: reqwest::Client::new(),
            shutdown,
            task: Some(task),
        }
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of a chunk.
    pub fn chunk_url(&self, hash: &ChunkHash) -> String {
        self.url(&format!("/v1/chunks/{hash:#}"))
    }

    /// Every file under the storage directory's `objects/` and `tmp/` (to prove nothing was
    /// kept).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for top in ["objects", "tmp"] {
            let mut pending = vec![self.dir.path().join("storage").join(top)];
            while let Some(dir) = pending.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        pending.push(path);
                    } else {
                        files.push(path);
                    }
                }
            }
        }
        files
    }

    /// PUTs `object` under `hash` with an optional bearer token; returns the status.
    pub async fn put(&self, hash: &ChunkHash, object: Vec<u8>, token: Option<&str>) -> u16 {
        let mut request = self.client.put(self.chunk_url(hash)).body(object);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().status().as_u16()
    }

    /// Stops the server and checks it shut down cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        task.await.unwrap().unwrap();
    }
}

impl Drop for ChunkServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A chunk of `len` bytes derived from `seed`, with its id and stored (encoded) object.
/// Repetitive bytes, so the object is a zstd frame.
pub fn compressible(seed: u8, len: usize) -> (ChunkHash, Vec<u8>) {
    let data: Vec<u8> = (0..len)
        .map(|i| seed.wrapping_add((i / 1000) as u8))
        .collect();
    (ChunkHash::of(&data), codec::encode(&data).unwrap())
}

/// The `error` string of a JSON error response, checking its status.
pub async fn error_of(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    body["error"].as_str().unwrap().to_owned()
}
