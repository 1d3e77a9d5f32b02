//! The `/v1` handlers: decode the request, call the [`Backend`], encode the answer.
//!
//! Uploads are the memory-hungry part: each holds its body (up to
//! [`codec::MAX_OBJECT_BYTES`]) and, while it is checked, the decoded chunk (up to 16 MiB).
//! An upload therefore takes a slot of [`AppState::upload_slots`] *before* its body is read,
//! and clients beyond that wait with their bytes still in the socket. Manifest uploads (up to
//! [`MAX_MANIFEST_BYTES`]) and downloads from S3, which are fetched whole, take a slot too;
//! local downloads are streamed and need none.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, HttpBody as _};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::backend::Backend;
use super::rejection::{MAX_MISSING_IDS, Rejection};
use super::roots::RootAdded;
use crate::chunk::buffers::BufferPool;
use crate::chunk::{ChunkHash, codec};
use crate::manifest::Manifest;

/// Largest `missing` query body: [`MAX_MISSING_IDS`] quoted 64-digit ids with separators and
/// generous room for whitespace.
pub const MAX_MISSING_BODY_BYTES: usize = 1024 * 1024;

/// Largest manifest accepted: about 600 000 chunk lines, a file of over 1 TiB at the default
/// 2 MiB average chunk size.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Where chunks live.
    pub backend: Arc<Backend>,
    /// Objects held in memory at once (uploads, S3 downloads); see the module docs.
    pub upload_slots: Arc<Semaphore>,
    /// Recycled upload buffers (a body and its decoded chunk per slot): a fresh
    /// multi-megabyte buffer per request costs a page fault per 4 KiB.
    pub buffers: Arc<BufferPool>,
}

/// A chunk id taken from the path; anything but 64 lowercase hex digits is a 400.
#[derive(Clone, Copy, Debug)]
pub struct ChunkId(pub ChunkHash);

impl<S: Send + Sync> FromRequestParts<S> for ChunkId {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        path_id(parts, state).await.map(Self)
    }
}

/// A manifest id (the SHA-256 of its bytes) taken from the path; anything but 64 lowercase hex
/// digits is a 400.
#[derive(Clone, Copy, Debug)]
pub struct ManifestId(pub ChunkHash);

impl<S: Send + Sync> FromRequestParts<S> for ManifestId {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        path_id(parts, state).await.map(Self)
    }
}

/// The SHA-256 id that is the route's only path parameter.
async fn path_id<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<ChunkHash, Rejection> {
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(Rejection::BadPath)?;
    Ok(raw.parse()?)
}

/// The body of `POST /v1/chunks/missing`.
#[derive(Debug, Deserialize)]
pub struct MissingRequest {
    /// Chunk ids the client is about to upload.
    pub chunks: Vec<String>,
}

/// The answer to `POST /v1/chunks/missing`.
#[derive(Debug, Serialize)]
pub struct MissingResponse {
    /// The requested ids this server does not hold, in request order, without duplicates.
    pub missing: Vec<ChunkHash>,
}

/// GET /v1/health: 200 with `{"status": "ok", "version": "…"}`. Needs no token, so load
/// balancers and probes can call it.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// POST /v1/chunks/missing: `{"chunks": [id, …]}` → 200 `{"missing": [id, …]}`, the ids not
/// stored here; the stored ones get their gc lease renewed, since the client now relies on
/// them (see [`super::gc`]). 400 for malformed JSON or a bad id, 413 for more than [`MAX_MISSING_IDS`] ids
/// or a body over [`MAX_MISSING_BODY_BYTES`].
pub async fn missing(
    State(state): State<AppState>,
    body: Body,
) -> Result<Json<MissingResponse>, Rejection> {
    let bytes = read_limited(body, MAX_MISSING_BODY_BYTES).await?;
    let request: MissingRequest = serde_json::from_slice(&bytes).map_err(Rejection::BadJson)?;
    if request.chunks.len() > MAX_MISSING_IDS {
        return Err(Rejection::TooManyIds {
            count: request.chunks.len(),
        });
    }
    let hashes = request
        .chunks
        .iter()
        .map(|id| id.parse())
        .collect::<Result<Vec<_>, _>>()?;
    let missing = state.backend.missing(hashes).await?;
    Ok(Json(MissingResponse { missing }))
}

/// PUT /v1/chunks/{hash}: the body is the stored (encoded) object. It is decoded and its
/// SHA-256 checked against `{hash}` before it is stored atomically: 201 when stored, 200 when
/// the chunk was already here (its gc lease renewed). 400 bad id, 403 read-only token, 413 body over
/// [`codec::MAX_OBJECT_BYTES`], 422 undecodable (including zstd expanding past 16 MiB) or not
/// matching `{hash}` (nothing is kept).
pub async fn put_chunk(
    State(state): State<AppState>,
    ChunkId(hash): ChunkId,
    body: Body,
) -> Result<StatusCode, Rejection> {
    let _slot = state
        .upload_slots
        .acquire()
        .await
        .expect("the upload semaphore is never closed");
    let mut object = state.buffers.take();
    read_limited_into(body, codec::MAX_OBJECT_BYTES, &mut object).await?;
    let object = Bytes::from_owner(object);
    let (encoded, mut scratch) = (object.clone(), state.buffers.take());
    let check = move || codec::verify_using(&encoded, &mut scratch, &hash);
    tokio::task::spawn_blocking(check).await??;
    let created = state.backend.put(&hash, object).await?;
    if created {
        tracing::debug!(hash = %hash, "stored chunk");
    }
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

/// PUT /v1/manifests/{id}: the body is a manifest JSON whose SHA-256 is `{id}`, stored
/// atomically as a root that `shard-server gc` keeps, once every chunk it references is here:
/// 201 when stored, 200 when it was already here. 400 bad id or malformed JSON, 403 read-only
/// token, 409 some of its chunks are not stored (upload them first), 413 body over
/// [`MAX_MANIFEST_BYTES`], 422 not a valid manifest or not hashing to `{id}`.
pub async fn put_manifest(
    State(state): State<AppState>,
    ManifestId(id): ManifestId,
    body: Body,
) -> Result<StatusCode, Rejection> {
    let _slot = state
        .upload_slots
        .acquire()
        .await
        .expect("the upload semaphore is never closed");
    let bytes = read_limited(body, MAX_MANIFEST_BYTES).await?;
    let manifest = Manifest::parse(&bytes).map_err(Rejection::BadManifest)?;
    let actual = ChunkHash::of(&bytes);
    if actual != id {
        return Err(Rejection::ManifestMismatch { id, actual });
    }
    match state.backend.add_root(&id, &manifest, bytes).await? {
        RootAdded::Created => Ok(StatusCode::CREATED),
        RootAdded::AlreadyStored => Ok(StatusCode::OK),
        RootAdded::MissingChunks { count, first } => Err(Rejection::MissingChunks { count, first }),
    }
}

/// GET /v1/chunks/{hash}: 200 with the stored object as `application/octet-stream`
/// (decode it with [`codec::decode_verified`]). 400 bad id, 404 unknown chunk.
pub async fn get_chunk(
    State(state): State<AppState>,
    ChunkId(hash): ChunkId,
) -> Result<Response, Rejection> {
    let object = state.backend.get(&hash, &state.upload_slots).await?;
    let object = object.ok_or(Rejection::NotFound(hash))?;
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, object.len.to_string()),
    ];
    Ok((headers, object.body).into_response())
}

/// HEAD /v1/chunks/{hash}: 200 with the `Content-Length` of the stored object when the chunk
/// is stored, 404 when not, 400 bad id.
pub async fn head_chunk(
    State(state): State<AppState>,
    ChunkId(hash): ChunkId,
) -> Result<Response, Rejection> {
    let len = state.backend.size(&hash).await?;
    let len = len.ok_or(Rejection::NotFound(hash))?;
    // The headers a GET would carry, without the body.
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, len.to_string()),
    ];
    Ok(headers.into_response())
}

/// Any unknown path: 404.
pub async fn no_route() -> Rejection {
    Rejection::NoRoute
}

/// A known path with a method it does not serve: 405.
pub async fn no_method() -> Rejection {
    Rejection::MethodNotAllowed
}

/// Reads a whole body of at most `limit` bytes. A declared `Content-Length` over the limit is
/// refused before anything is read.
async fn read_limited(body: Body, limit: usize) -> Result<Bytes, Rejection> {
    let mut buffer = Vec::new();
    read_limited_into(body, limit, &mut buffer).await?;
    Ok(Bytes::from(buffer))
}

/// [`read_limited`] into `buffer` (replacing its contents), reusing its allocation.
async fn read_limited_into(
    body: Body,
    limit: usize,
    buffer: &mut Vec<u8>,
) -> Result<(), Rejection> {
    let declared = body.size_hint().lower();
    if declared > limit as u64 {
        return Err(Rejection::TooLarge { limit });
    }
    buffer.clear();
    buffer.reserve(declared as usize);
    let mut frames = body.into_data_stream();
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(Rejection::BadBody)?;
        if buffer.len() + frame.len() > limit {
            return Err(Rejection::TooLarge { limit });
        }
        buffer.extend_from_slice(&frame);
    }
    Ok(())
}
