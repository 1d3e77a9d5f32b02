//! `shard-server verify`: read every stored chunk and check it decodes to its hash, then check
//! every stored manifest (its bytes hash to its name, it parses, its chunks are all stored).
//!
//! The manifests are listed before the chunks: a manifest is stored only once its chunks are
//! ([`super::roots`]), and gc never deletes a referenced chunk, so a chunk a listed manifest
//! needs is in the chunk listing unless it really is lost. Verification only reads, so it can
//! run next to a live server.

use std::collections::HashSet;
use std::fmt;

use futures::{StreamExt, TryStreamExt};

use super::backend::{Backend, Error as StorageError};
use super::{Error, Storage, open_existing, roots};
use crate::chunk::{ChunkHash, codec};

/// Objects read at once from S3: each is up to 16 MiB in memory, and the round trips overlap.
const S3_READS_IN_FLIGHT: usize = 8;

/// One problem found.
#[derive(Debug)]
pub enum Problem {
    /// A stored object does not decode to its name.
    CorruptChunk {
        /// The chunk.
        hash: ChunkHash,
        /// What is wrong.
        source: codec::Error,
    },
    /// A stored manifest cannot be read as the manifest its name promises.
    BadManifest(roots::Error),
    /// A stored manifest references a chunk that is not stored.
    MissingChunk {
        /// The chunk.
        hash: ChunkHash,
        /// The manifest's id.
        manifest: ChunkHash,
        /// The file the manifest describes.
        path: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CorruptChunk { hash, source } => write!(
                f,
                "chunk {hash:#} is corrupt ({source}): delete objects/{}/{hash:#} and push it \
                 again from a clone that has it",
                &hash.to_hex()[..2]
            ),
            Self::BadManifest(e) => {
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                f.write_str(": push the file again to store a good copy")
            }
            Self::MissingChunk {
                hash,
                manifest,
                path,
            } => write!(
                f,
                "chunk {hash:#} of {path} (manifest {manifest:#}) is not stored: push {path} \
                 again from a clone that has it"
            ),
        }
    }
}

/// What verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Chunks read and checked.
    pub chunks: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Manifests checked.
    pub manifests: u64,
    /// Everything wrong, chunks first.
    pub problems: Vec<Problem>,
}

/// Runs `shard-server verify` on `storage`.
pub async fn run(storage: &Storage) -> Result<VerifyReport, Error> {
    let backend = open_existing(storage)?;
    verify(&backend).await.map_err(|source| Error::Maintenance {
        location: storage.to_string(),
        source,
    })
}

/// Checks every chunk and manifest of `backend`. Fails only when the storage itself fails;
/// damage is reported in [`VerifyReport::problems`].
pub async fn verify(backend: &Backend) -> Result<VerifyReport, StorageError> {
    let manifests = backend.list_roots().await?;
    let chunks = backend.list_chunks().await?;
    let mut report = VerifyReport::default();
    let in_flight = match backend {
        Backend::Directory(_) => std::thread::available_parallelism().map_or(1, usize::from),
        Backend::S3(_) => S3_READS_IN_FLIGHT,
    };
    let checks = futures::stream::iter(&chunks).map(|object| check_chunk(backend, object.hash));
    let mut checks = checks.buffer_unordered(in_flight);
    while let Some(checked) = checks.try_next().await? {
        let Some((bytes, problem)) = checked else {
            continue; // Deleted by a gc since it was listed.
        };
        report.chunks += 1;
        report.bytes += bytes;
        report.problems.extend(problem);
    }
    drop(checks);
    let stored: HashSet<ChunkHash> = chunks.iter().map(|c| c.hash).collect();
    for root in manifests {
        let manifest = match backend.read_root(&root.hash).await {
            Ok(Some(manifest)) => manifest,
            Ok(None) => continue,
            Err(roots::Error::Storage(e)) => return Err(e),
            Err(e) => {
                report.manifests += 1;
                report.problems.push(Problem::BadManifest(e));
                continue;
            }
        };
        report.manifests += 1;
        let mut reported = HashSet::new();
        for chunk in &manifest.chunks {
            if !stored.contains(&chunk.sha256) && reported.insert(chunk.sha256) {
                report.problems.push(Problem::MissingChunk {
                    hash: chunk.sha256,
                    manifest: root.hash,
                    path: manifest.path.clone(),
                });
            }
        }
    }
    Ok(report)
}

/// Reads and checks one chunk: its stored size and the problem, if any; `None` when it is no
/// longer stored.
async fn check_chunk(
    backend: &Backend,
    hash: ChunkHash,
) -> Result<Option<(u64, Option<Problem>)>, StorageError> {
    let Some(object) = backend.read_object(&hash).await? else {
        return Ok(None);
    };
    let bytes = object.len() as u64;
    let decoded = tokio::task::spawn_blocking(move || codec::verify(&object, &hash));
    let problem = decoded
        .await?
        .err()
        .map(|source| Problem::CorruptChunk { hash, source });
    Ok(Some((bytes, problem)))
}
