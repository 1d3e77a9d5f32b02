//! `nshard push` and `nshard pull`: move exactly the chunks that are missing on the other
//! side, in parallel, retrying transient failures, verifying every chunk before it is stored.
//! An interrupted transfer leaves both sides consistent (every stored chunk is whole and
//! verified), so running it again finishes the job.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::chunk::{ChunkHash, codec};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::ops::Reporter;
use crate::ops::checkout::{self, CheckoutReport};
use crate::repo::Repo;
use crate::store::remote::{self, Remote};

/// Parallel transfers when the client does not say.
pub const DEFAULT_JOBS: usize = 8;

/// Attempts per chunk for transient failures (then the error is reported).
const ATTEMPTS: u32 = 4;

/// First back-off delay; tripled after each failure (0.2 s, 0.6 s, 1.8 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// What a push or pull moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// The remote.
    pub remote: String,
    /// Distinct chunks the manifests need.
    pub chunks_total: u64,
    /// Chunks moved.
    pub chunks_transferred: u64,
    /// Stored bytes moved.
    pub bytes_transferred: u64,
    /// Chunks already at the destination.
    pub chunks_present: u64,
    /// Manifests involved.
    pub manifests: u32,
    /// For pull: the checkout that followed.
    pub checkout: Option<CheckoutReport>,
}

/// The distinct chunks needed by `files`' manifests (first-use order), and which file needs
/// each (for error messages).
fn needed_chunks(repo: &Repo, files: &[String]) -> Result<Vec<(ChunkHash, String)>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for file in files {
        for chunk in repo.read_manifest(file)?.chunks {
            if seen.insert(chunk.sha256) {
                out.push((chunk.sha256, file.clone()));
            }
        }
    }
    Ok(out)
}

/// Uploads what `remote` lacks of the chunks `files` need.
pub async fn push(repo: Repo, files: Vec<String>, remote: Remote, jobs: usize, reporter: &mut Reporter) -> Result<TransferReport> {
    let scan_repo = repo.clone();
    let scan_files = files.clone();
    let needed = tokio::task::spawn_blocking(move || needed_chunks(&scan_repo, &scan_files))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    if let Some((hash, file)) = needed.iter().find(|(h, _)| !repo.store.contains(h)) {
        return Err(Error::ChunkMissing { hash: *hash, file: file.clone() });
    }
    remote.check().await?;
    let ids: Vec<ChunkHash> = needed.iter().map(|(h, _)| *h).collect();
    let missing = remote.missing(&ids).await?;
    let mut report = TransferReport {
        remote: remote.describe(),
        chunks_total: ids.len() as u64,
        chunks_present: (ids.len() - missing.len()) as u64,
        manifests: files.len() as u32,
        ..TransferReport::default()
    };
    let total = missing.len() as u64;
    let mut uploads = futures::stream::iter(missing)
        .map(|hash| upload(&repo, &remote, hash))
        .buffer_unordered(jobs.max(1));
    while let Some(sent) = uploads.try_next().await? {
        report.chunks_transferred += 1;
        report.bytes_transferred += sent;
        reporter.report("uploading", "", report.chunks_transferred, total, shard_proto::ProgressUnit::Chunks);
    }
    Ok(report)
}

/// Reads, verifies and uploads one chunk; returns the bytes sent.
async fn upload(repo: &Repo, remote: &Remote, hash: ChunkHash) -> Result<u64> {
    let store = repo.store.clone();
    let object = tokio::task::spawn_blocking(move || -> Result<Bytes> {
        let object = store.get_object(&hash)?;
        let _ = codec::decode_verified(&object, &hash)
            .map_err(|source| crate::store::Error::Corrupt { hash, source })?;
        Ok(Bytes::from(object))
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    let size = object.len() as u64;
    retry(|| remote.put(&hash, object.clone())).await?;
    Ok(size)
}

/// Downloads the chunks `files` need that the local store lacks, then checks the files out.
pub async fn pull(
    repo: Repo,
    index: Index,
    files: Vec<String>,
    remote: Remote,
    options: (usize, bool),
    reporter: &mut Reporter,
) -> Result<TransferReport> {
    let (jobs, force) = options;
    let scan_repo = repo.clone();
    let scan_files = files.clone();
    let needed = tokio::task::spawn_blocking(move || needed_chunks(&scan_repo, &scan_files))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let missing: Vec<ChunkHash> =
        needed.iter().map(|(h, _)| *h).filter(|h| !repo.store.contains(h)).collect();
    let mut report = TransferReport {
        remote: remote.describe(),
        chunks_total: needed.len() as u64,
        chunks_present: (needed.len() - missing.len()) as u64,
        manifests: files.len() as u32,
        ..TransferReport::default()
    };
    if !missing.is_empty() {
        remote.check().await?;
    }
    let total = missing.len() as u64;
    let mut downloads = futures::stream::iter(missing)
        .map(|hash| download(&repo, &remote, hash))
        .buffer_unordered(jobs.max(1));
    while let Some(received) = downloads.try_next().await? {
        report.chunks_transferred += 1;
        report.bytes_transferred += received;
        reporter.report("downloading", "", report.chunks_transferred, total, shard_proto::ProgressUnit::Chunks);
    }
    drop(downloads);
    let checkout_report = tokio::task::spawn_blocking(move || {
        checkout::checkout(&repo, &index, &files, force, &mut Reporter::silent())
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    report.checkout = Some(checkout_report);
    Ok(report)
}

/// Downloads, verifies and stores one chunk; returns the bytes received.
async fn download(repo: &Repo, remote: &Remote, hash: ChunkHash) -> Result<u64> {
    let object = retry(|| remote.get(&hash)).await?;
    let size = object.len() as u64;
    let store = repo.store.clone();
    let name = remote.describe();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let _ = codec::decode_verified(&object, &hash)
            .map_err(|source| remote::Error::Corrupt { remote: name, hash, source })?;
        let _ = store.put_object(&hash, &object)?;
        Ok(())
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    Ok(size)
}

/// Runs `op` until it succeeds, fails permanently, or runs out of attempts.
async fn retry<T, F, Fut>(mut op: F) -> Result<T, remote::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, remote::Error>>,
{
    let mut delay = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "transient remote failure; retrying");
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
            other => return other,
        }
    }
}
