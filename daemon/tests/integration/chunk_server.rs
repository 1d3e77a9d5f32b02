//! [`ChunkServer`]: a real `shard-server` router served in-process on `127.0.0.1:0` over a
//! temporary directory, bound before its task is spawned so tests never wait or sleep.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use shardd::chunk::cdc::Chunking;
use shardd::chunk::{ChunkHash, codec};
use shardd::http::{Backend, Server, ServerConfig, Storage};
use shardd::manifest::{ChunkRef, FORMAT, Manifest};
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

    /// The storage directory the server serves.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The same storage opened as `gc` and `verify` open it.
    pub fn backend(&self) -> Backend {
        Backend::open(&Storage::Directory(self.storage())).unwrap()
    }

    /// Where the chunk's object is stored.
    pub fn object_path(&self, hash: &ChunkHash) -> PathBuf {
        let hex = hash.to_hex();
        self.storage().join("objects").join(&hex[..2]).join(hex)
    }

    /// Moves the chunk's timestamp (its gc lease) `age` into the past.
    pub fn age(&self, hash: &ChunkHash, age: Duration) {
        let file = std::fs::File::options()
            .write(true)
            .open(self.object_path(hash))
            .unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    /// PUTs manifest `json` under `id` with an optional bearer token; returns the response.
    pub async fn put_manifest_as(
        &self,
        id: &ChunkHash,
        json: impl Into<reqwest::Body>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let url = self.url(&format!("/v1/manifests/{id:#}"));
        let mut request = self.client.put(url).body(json);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// PUTs `json` under its own SHA-256; returns the status.
    pub async fn put_manifest(&self, json: &str) -> u16 {
        let id = ChunkHash::of(json.as_bytes());
        let response = self.put_manifest_as(&id, json.to_owned(), None).await;
        response.status().as_u16()
    }

    /// POSTs a `missing` query; returns the ids reported missing.
    pub async fn missing(&self, hashes: &[ChunkHash]) -> Vec<String> {
        let ids: Vec<String> = hashes.iter().map(ChunkHash::to_hex).collect();
        let response = self
            .client
            .post(self.url("/v1/chunks/missing"))
            .json(&serde_json::json!({ "chunks": ids }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        serde_json::from_value(body["missing"].clone()).unwrap()
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
    (
        ChunkHash::of(&data),
        codec::encode(&data).unwrap().into_owned(),
    )
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

/// A valid manifest of `path` made of `chunks` (each of `chunk_len` bytes), rendered as
/// `nshard` renders it.
pub fn manifest_json(path: &str, chunks: &[ChunkHash], chunk_len: u32) -> String {
    let chunks: Vec<ChunkRef> = chunks
        .iter()
        .enumerate()
        .map(|(i, hash)| ChunkRef {
            offset: i as u64 * u64::from(chunk_len),
            size: chunk_len,
            sha256: *hash,
        })
        .collect();
    Manifest {
        format: FORMAT.to_owned(),
        path: path.to_owned(),
        size: chunks.len() as u64 * u64::from(chunk_len),
        sha256: ChunkHash::of(path.as_bytes()),
        chunking: Chunking::default(),
        message: "test".to_owned(),
        created_at: "2026-01-01T00:00:00Z".to_owned(),
        chunks,
    }
    .to_json()
}
