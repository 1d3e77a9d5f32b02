//! The `shardd` integration test binary (one binary; each module below is one area).
//!
//! The `server_*` modules boot `shard-server` in-process on `127.0.0.1:0` over a temporary
//! directory ([`chunk_server::ChunkServer`]) and speak real HTTP to it with reqwest;
//! `server_cli` (and the end of `server_gc`) run the built `shard-server` binary. No
//! snapshots, no sleeps: gc tests age chunks by moving their mtime back.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

/// The in-process server fixture and request helpers.
mod chunk_server;
/// `Remote::get_into`: reused download buffers; oversized chunk bodies are refused.
mod remote_download;
/// The `/v1` routes: health, missing, PUT/GET/HEAD, and the 400/404/413/422 answers.
mod server_api;
/// Bearer tokens: 401 without or with an unknown token, 403 for read-only uploads.
mod server_auth;
/// The `shard-server` binary: start-up line, port 0, SIGTERM, refusing open network serving.
mod server_cli;
/// `shard-server gc` and `verify`: roots, grace period, both phases, dry runs, damage.
mod server_gc;
/// `PUT /v1/manifests/{id}`: validation, id check, chunks first; the push client's side.
mod server_manifests;
