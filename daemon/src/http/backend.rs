//! Where `shard-server` keeps its chunks: a local directory ([`LocalStore`]) or an S3 bucket
//! ([`ObjectBackend`]), behind one small enum so the handlers never ask which.
//!
//! Both hold the same encoded objects under the same `objects/ab/<hash>` keys, and both only
//! ever receive objects the handlers have already verified.
//!
//! Every time the server tells a client it may rely on a stored chunk (a `missing` query that
//! finds it, a PUT of a chunk already stored) it renews the chunk's timestamp, the lease that
//! protects it from [`super::gc`] for the grace period. On a directory that is one `utimensat`
//! per chunk; on S3 it costs a server-side copy, so it is done only for objects older than
//! [`S3_REFRESH_AFTER`]. The manifests (the roots gc keeps) are stored by [`super::roots`].

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tokio_util::io::ReaderStream;

use crate::chunk::ChunkHash;
use crate::store::local::{LocalStore, StoredObject};
use crate::store::object::{Listed, ObjectBackend, OpenError};

/// HEAD requests in flight at once while answering one `missing` query against S3: enough to
/// hide the round trip, few enough not to trip the provider's request-rate limits.
const S3_PROBES_IN_FLIGHT: usize = 32;

/// On S3 a chunk's lease is renewed only when its `Last-Modified` is older than this: renewing
/// costs two server-side copies, and a chunk renewed less than 10 minutes ago is still far
/// inside the default 1-hour grace period of `shard-server gc`. The grace period must exceed
/// the longest push plus this.
pub const S3_REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);

/// Read size when streaming a local object. Every read of a `tokio::fs::File` is a hop
/// through the blocking thread pool, and with 64 KiB reads those wake-ups (futex, scheduler)
/// took about 30% of the server's CPU while serving a pull; 1 MiB reads make a 2 MiB chunk 2
/// hops, while a download still holds at most 1 MiB of its object in memory.
const STREAM_BUFFER_BYTES: usize = 1024 * 1024;

/// Where chunks are stored, as given on the command line (`--storage`).
#[derive(Clone)]
pub enum Storage {
    /// A local directory holding `objects/`.
    Directory(PathBuf),
    /// An S3-compatible bucket and prefix.
    S3 {
        /// `s3://bucket/prefix`.
        url: String,
        /// The server's own `AWS_*` variables (credentials, region, `AWS_ENDPOINT_URL`) and
        /// `HOME`, where its `~/.aws/` profiles are.
        env: HashMap<String, String>,
    },
}

impl Storage {
    /// Reads a `--storage` value: `s3://bucket/prefix` selects S3 configured from `aws_env`;
    /// anything else is a directory path (`file://` is optional).
    #[must_use]
    pub fn from_arg(arg: &str, aws_env: HashMap<String, String>) -> Self {
        if arg.starts_with("s3://") {
            Self::S3 {
                url: arg.to_owned(),
                env: aws_env,
            }
        } else {
            Self::Directory(PathBuf::from(arg))
        }
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => write!(f, "{}", path.display()),
            Self::S3 { url, .. } => f.write_str(url),
        }
    }
}

/// Shows the variable names only: the values include the secret key.
impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory(path) => f.debug_tuple("Directory").field(path).finish(),
            Self::S3 { url, env } => {
                let mut names: Vec<_> = env.keys().collect();
                names.sort();
                f.debug_struct("S3")
                    .field("url", url)
                    .field("env", &names)
                    .finish()
            }
        }
    }
}

/// Why the storage failed. Its details are logged, never sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local directory could not be read or written.
    #[error("local chunk storage failed")]
    Io(#[from] io::Error),
    /// The bucket could not be opened, read or written.
    #[error("object storage failed")]
    S3(#[from] object_store::Error),
    /// The shared AWS configuration (`~/.aws/`) cannot be used.
    #[error("the AWS configuration cannot be used")]
    Profile(#[source] crate::store::aws_profile::Error),
    /// A blocking storage task panicked or was cancelled.
    #[error("storage task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// An opened chunk store.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Chunks in a local directory.
    Directory(LocalStore),
    /// Chunks in an S3 bucket.
    S3(ObjectBackend),
}

/// A stored object ready to be sent.
#[derive(Debug)]
pub struct Object {
    /// Its size in bytes.
    pub len: u64,
    /// Its bytes: streamed from disk, or already fetched from S3.
    pub body: Body,
}

impl Backend {
    /// Checks that the storage answers: for a bucket, one listing (a missing bucket or
    /// refused credentials fail here, at start-up, instead of on every request).
    pub async fn probe(&self) -> Result<(), Error> {
        match self {
            Self::Directory(_) => Ok(()),
            Self::S3(bucket) => Ok(bucket.list_probe().await?),
        }
    }

    /// Opens `storage`, creating a local directory if needed so permission problems show at
    /// start-up rather than on the first upload. Opening a bucket does not contact it.
    pub fn open(storage: &Storage) -> Result<Self, Error> {
        match storage {
            Storage::Directory(path) => {
                fs_err::create_dir_all(path.join("objects"))?;
                Ok(Self::Directory(LocalStore::new(path)))
            }
            Storage::S3 { url, env } => match ObjectBackend::from_url(url, env) {
                Ok(bucket) => Ok(Self::S3(bucket)),
                Err(OpenError::Profile(e)) => Err(Error::Profile(e)),
                Err(OpenError::Store(e)) => Err(Error::S3(e)),
            },
        }
    }

    /// True when the chunk is stored.
    pub async fn contains(&self, hash: &ChunkHash) -> Result<bool, Error> {
        match self {
            Self::Directory(store) => {
                let (store, hash) = (store.clone(), *hash);
                Ok(tokio::task::spawn_blocking(move || store.contains(&hash)).await?)
            }
            Self::S3(bucket) => Ok(bucket.contains(hash).await?),
        }
    }

    /// The size of the chunk's stored object; `None` when it is not stored.
    pub async fn size(&self, hash: &ChunkHash) -> Result<Option<u64>, Error> {
        match self {
            Self::Directory(store) => {
                let path = store.object_path(hash);
                match tokio::fs::metadata(path).await {
                    Ok(meta) => Ok(Some(meta.len())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            Self::S3(bucket) => Ok(bucket.size(hash).await?),
        }
    }

    /// The chunks of `hashes` that are not stored, in request order and without duplicates.
    /// The chunks that are stored get their lease renewed (see the module docs): the client
    /// will not upload them and relies on them staying.
    pub async fn missing(&self, hashes: Vec<ChunkHash>) -> Result<Vec<ChunkHash>, Error> {
        let mut seen = HashSet::with_capacity(hashes.len());
        let unique: Vec<_> = hashes.into_iter().filter(|h| seen.insert(*h)).collect();
        match self {
            Self::Directory(store) => {
                let store = store.clone();
                let absent = move || -> io::Result<Vec<ChunkHash>> {
                    let mut missing = Vec::new();
                    for hash in unique {
                        if !store.touch(&hash)? {
                            missing.push(hash);
                        }
                    }
                    Ok(missing)
                };
                Ok(tokio::task::spawn_blocking(absent).await??)
            }
            Self::S3(bucket) => {
                let probes = futures::stream::iter(unique).map(|hash| async move {
                    let present = renew_s3_lease(bucket, &hash).await?;
                    Ok::<_, Error>((!present).then_some(hash))
                });
                let found: Vec<_> = probes.buffered(S3_PROBES_IN_FLIGHT).try_collect().await?;
                Ok(found.into_iter().flatten().collect())
            }
        }
    }

    /// Stores a verified object. Returns `false` (and stores nothing) when the chunk was
    /// already there; its lease is renewed then, as for [`missing`](Self::missing).
    pub async fn put(&self, hash: &ChunkHash, object: Bytes) -> Result<bool, Error> {
        match self {
            Self::Directory(store) => {
                let (store, hash) = (store.clone(), *hash);
                let store_or_touch = move || -> io::Result<bool> {
                    Ok(!store.touch(&hash)? && store.put_object(&hash, &object)?)
                };
                Ok(tokio::task::spawn_blocking(store_or_touch).await??)
            }
            Self::S3(bucket) => {
                // Content-addressed: an existing object already holds these bytes, so a HEAD
                // saves re-sending up to 16 MiB (a racing writer only rewrites the same bytes),
                // unless the lease is due: rewriting renews it.
                let present = bucket.modified(hash).await?;
                if present.is_some_and(|at| !lease_due(at)) {
                    return Ok(false);
                }
                bucket.put(hash, object).await?;
                Ok(present.is_none())
            }
        }
    }

    /// Every stored chunk with its size and timestamp, sorted by hash on a directory.
    pub async fn list_chunks(&self) -> Result<Vec<StoredObject>, Error> {
        match self {
            Self::Directory(store) => {
                let store = store.clone();
                Ok(tokio::task::spawn_blocking(move || store.list()).await??)
            }
            Self::S3(bucket) => Ok(bucket.list().await?.into_iter().map(stored).collect()),
        }
    }

    /// When the chunk was last written or its lease renewed; `None` when it is absent.
    pub async fn chunk_modified(&self, hash: &ChunkHash) -> Result<Option<SystemTime>, Error> {
        match self {
            Self::Directory(store) => {
                let (store, hash) = (store.clone(), *hash);
                Ok(tokio::task::spawn_blocking(move || store.modified(&hash)).await??)
            }
            Self::S3(bucket) => Ok(bucket.modified(hash).await?),
        }
    }

    /// Deletes one chunk with a single unlink or DELETE (absent is fine).
    pub async fn delete_chunk(&self, hash: &ChunkHash) -> Result<(), Error> {
        match self {
            Self::Directory(store) => {
                let (store, hash) = (store.clone(), *hash);
                Ok(tokio::task::spawn_blocking(move || store.remove(&hash)).await??)
            }
            Self::S3(bucket) => Ok(bucket.delete(hash).await?),
        }
    }

    /// The whole stored object of `hash`, or `None` when it is absent (for verification).
    pub async fn read_object(&self, hash: &ChunkHash) -> Result<Option<Bytes>, Error> {
        match self {
            Self::Directory(store) => match tokio::fs::read(store.object_path(hash)).await {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Self::S3(bucket) => Ok(bucket.get(hash).await?),
        }
    }

    /// Deletes temporary files (interrupted uploads on a directory, interrupted lease renewals
    /// on S3) written before `cutoff`; returns how many went.
    pub async fn remove_stale_temporaries(&self, cutoff: SystemTime) -> Result<u64, Error> {
        match self {
            Self::Directory(store) => {
                let tmp = store.root().join("tmp");
                Ok(tokio::task::spawn_blocking(move || remove_older(&tmp, cutoff)).await??)
            }
            Self::S3(bucket) => Ok(bucket.remove_stale_scratch(cutoff).await?),
        }
    }

    /// The stored object of `hash`, or `None` when it is absent. Local objects are streamed
    /// from disk. S3 objects are fetched whole (at most
    /// [`crate::chunk::codec::MAX_OBJECT_BYTES`]), so each takes one of `slots` until the
    /// server has written it out.
    pub async fn get(
        &self,
        hash: &ChunkHash,
        slots: &Arc<Semaphore>,
    ) -> Result<Option<Object>, Error> {
        match self {
            Self::Directory(store) => {
                let file = match tokio::fs::File::open(store.object_path(hash)).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let len = file.metadata().await?.len();
                let frames = ReaderStream::with_capacity(file, STREAM_BUFFER_BYTES);
                Ok(Some(Object {
                    len,
                    body: Body::from_stream(frames),
                }))
            }
            Self::S3(bucket) => {
                let slot = Arc::clone(slots)
                    .acquire_owned()
                    .await
                    .expect("slots are never closed");
                let Some(bytes) = bucket.get(hash).await? else {
                    return Ok(None);
                };
                let len = bytes.len() as u64;
                // hyper asks for the frame after the object only once it has written the object.
                let release = futures::stream::once(async move { drop(slot) })
                    .filter_map(|()| async { None::<Result<Bytes, Infallible>> });
                let frames = futures::stream::once(async { Ok(bytes) }).chain(release);
                Ok(Some(Object {
                    len,
                    body: Body::from_stream(frames),
                }))
            }
        }
    }
}

/// True when an S3 object last written at `at` should have its lease renewed.
fn lease_due(at: SystemTime) -> bool {
    at.elapsed().unwrap_or_default() >= S3_REFRESH_AFTER
}

/// Whether the chunk is stored, renewing its lease when it is due.
async fn renew_s3_lease(bucket: &ObjectBackend, hash: &ChunkHash) -> Result<bool, Error> {
    match bucket.modified(hash).await? {
        None => Ok(false),
        Some(at) if lease_due(at) => Ok(bucket.refresh(hash).await?),
        Some(_) => Ok(true),
    }
}

fn stored(listed: Listed) -> StoredObject {
    StoredObject {
        hash: listed.hash,
        stored_bytes: listed.size,
        modified: listed.modified,
    }
}

/// Deletes the regular files directly in `dir` last modified before `cutoff`.
fn remove_older(dir: &std::path::Path, cutoff: SystemTime) -> io::Result<u64> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let Ok(meta) = entry.metadata() else {
            continue; // Renamed into place or removed meanwhile.
        };
        if meta.is_file() && meta.modified()? < cutoff {
            match fs_err::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}
