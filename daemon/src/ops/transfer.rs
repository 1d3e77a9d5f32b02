//! `nshard push` and `nshard pull`: move exactly the chunks that are missing on the other
//! side, in parallel, retrying transient failures, verifying every chunk before it is stored.
//! An interrupted transfer leaves both sides consistent (every stored chunk is whole and
//! verified), so running it again finishes the job. A push stores its manifests on the remote
//! last, after all their chunks: they are the roots `shard-server gc` keeps.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::chunk::buffers::{BufferPool, PooledBuffer};
use crate::chunk::{ChunkHash, codec};
use crate::error::{Error, Result};
use crate::git::Git;
use crate::index::Index;
use crate::manifest::{Manifest, SUFFIX};
use crate::ops::Reporter;
use crate::ops::checkout::{self, CheckoutReport, ChunkSource};
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

/// Which manifests a transfer is about.
#[derive(Clone, Debug)]
pub enum Selection {
    /// These files' working-tree manifests; empty means every manifest.
    Files(Vec<String>),
    /// Every manifest in the commits `git rev-list <args>` selects (pre-push).
    Revisions(Vec<String>),
    /// Manifests that differ between two revisions (post-checkout, post-merge).
    Changed(String, String),
    /// These files (empty: every file) as recorded at a revision (`pull --rev`).
    AtRevision(String, Vec<String>),
    /// Exactly these files' working-tree manifests; empty means none.
    Only(Vec<String>),
}

/// Loads the manifests a selection names, labelled by file.
pub fn select(repo: &Repo, selection: &Selection) -> Result<Vec<(String, Manifest)>> {
    match selection {
        Selection::Files(files) => {
            let files = if files.is_empty() {
                checkout::all_files(repo)?
            } else {
                files.clone()
            };
            files
                .into_iter()
                .map(|f| Ok((f.clone(), repo.read_manifest(&f)?)))
                .collect()
        }
        Selection::Revisions(args) => {
            let git = Git::open(&repo.root)?;
            let blobs = git.blobs_in_revisions(args, SUFFIX)?;
            Ok(blobs
                .iter()
                .filter_map(|b| Manifest::parse(b).ok())
                .map(|m| (m.path.clone(), m))
                .collect())
        }
        Selection::Only(files) => files
            .iter()
            .map(|f| Ok((f.clone(), repo.read_manifest(f)?)))
            .collect(),
        Selection::AtRevision(rev, files) => {
            crate::ops::history::manifests_at(repo, rev, files.clone())
        }
        Selection::Changed(old, new) => {
            let git = Git::open(&repo.root)?;
            let mut out = Vec::new();
            for path in git.changed_paths(old, new, SUFFIX)? {
                let Ok(rel) = repo.relative(&repo.root, &git.abs(&path).display().to_string())
                else {
                    continue; // Outside this NeuroShard repository.
                };
                let file = rel.strip_suffix(SUFFIX).unwrap_or(&rel).to_owned();
                if repo.has_manifest(&file) {
                    out.push((file.clone(), repo.read_manifest(&file)?));
                }
            }
            Ok(out)
        }
    }
}

/// The distinct chunks `manifests` need (first-use order), and which file needs each.
fn needed_chunks(manifests: &[(String, Manifest)]) -> Vec<(ChunkHash, String)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (file, manifest) in manifests {
        for chunk in &manifest.chunks {
            if seen.insert(chunk.sha256) {
                out.push((chunk.sha256, file.clone()));
            }
        }
    }
    out
}

/// The content size of every chunk `manifests` name (for byte progress: rate and ETA).
fn chunk_sizes(manifests: &[(String, Manifest)]) -> std::collections::HashMap<ChunkHash, u64> {
    manifests
        .iter()
        .flat_map(|(_, m)| m.chunks.iter().map(|c| (c.sha256, u64::from(c.size))))
        .collect()
}

/// Uploads what `remote` lacks of the chunks `manifests` need.
pub async fn push(
    repo: Repo,
    manifests: Vec<(String, Manifest)>,
    remote: Remote,
    jobs: usize,
    reporter: &mut Reporter,
) -> Result<TransferReport> {
    let needed = needed_chunks(&manifests);
    remote.check().await?;
    let ids: Vec<ChunkHash> = needed.iter().map(|(h, _)| *h).collect();
    let missing = remote
        .missing(&ids)
        .await
        .map_err(remote::Error::when_writing)?;
    // Only what the remote lacks must be here: a fresh clone can push manifests whose chunks
    // the remote already has.
    let lacking: std::collections::HashSet<&ChunkHash> = missing.iter().collect();
    if let Some((hash, file)) = needed
        .iter()
        .find(|(h, _)| lacking.contains(h) && !repo.store.contains(h))
    {
        return Err(Error::ChunkMissing {
            hash: *hash,
            file: file.clone(),
        });
    }
    let mut report = TransferReport {
        remote: remote.describe(),
        chunks_total: ids.len() as u64,
        chunks_present: (ids.len() - missing.len()) as u64,
        manifests: manifests.len() as u32,
        ..TransferReport::default()
    };
    let sizes = chunk_sizes(&manifests);
    let total: u64 = missing.iter().map(|h| sizes[h]).sum();
    let mut done = 0;
    let objects = ObjectReader::new(&repo, jobs.max(1));
    let (objects, remote_ref) = (&objects, &remote);
    let mut uploads = futures::stream::iter(missing)
        .map(|hash| async move {
            let sent = upload(objects, remote_ref, hash).await?;
            Ok::<_, Error>((sent, hash))
        })
        .buffer_unordered(jobs.max(1));
    while let Some((sent, hash)) = uploads.try_next().await? {
        report.chunks_transferred += 1;
        report.bytes_transferred += sent;
        done += sizes[&hash];
        reporter.bytes("uploading", "", done, total);
    }
    drop(uploads);
    // Only now, with every chunk on the remote, may the manifests become roots there (a
    // shard-server refuses a manifest whose chunks it lacks): its gc keeps what they reference.
    store_manifests(&remote, &manifests, jobs).await?;
    Ok(report)
}

/// Stores each distinct manifest on the remote, rendered as in the working tree.
async fn store_manifests(
    remote: &Remote,
    manifests: &[(String, Manifest)],
    jobs: usize,
) -> Result<()> {
    let mut seen = HashSet::new();
    let mut distinct = Vec::new();
    for (file, manifest) in manifests {
        let json = Bytes::from(manifest.to_json());
        if seen.insert(ChunkHash::of(&json)) {
            distinct.push((file.clone(), json));
        }
    }
    let mut stores = futures::stream::iter(distinct)
        .map(|(file, json)| store_manifest(remote, file, json))
        .buffer_unordered(jobs.max(1));
    while stores.try_next().await?.is_some() {}
    Ok(())
}

/// Stores one manifest, retrying transient failures.
async fn store_manifest(remote: &Remote, file: String, json: Bytes) -> Result<()> {
    retry(|| remote.put_manifest(&file, json.clone()))
        .await
        .map_err(remote::Error::when_writing)?;
    Ok(())
}

/// Reads and uploads one chunk; returns the bytes sent. A `shard-server` verifies every chunk
/// it receives (and refuses a bad one with 422), so for it the chunk is checked here only when
/// refused, to say which local chunk is damaged; a directory or bucket checks nothing, so for
/// those every chunk is verified before it leaves.
async fn upload(objects: &ObjectReader<'_>, remote: &Remote, hash: ChunkHash) -> Result<u64> {
    let receiver_verifies = matches!(remote, Remote::Http(_));
    let object = objects.read(hash, !receiver_verifies).await?;
    let size = object.len() as u64;
    match retry(|| remote.put(&hash, object.clone())).await {
        Ok(()) => Ok(size),
        Err(refused @ remote::Error::Rejected { status: 422, .. }) => {
            let _ = objects.read(hash, true).await?;
            Err(refused.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads stored objects for a push into recycled buffers, verifying them when asked.
struct ObjectReader<'a> {
    repo: &'a Repo,
    buffers: BufferPool,
    /// Verification is CPU-bound: one at a time per core, so only that many decoded chunks
    /// are held at once however many uploads are in flight.
    verifying: tokio::sync::Semaphore,
}

impl<'a> ObjectReader<'a> {
    /// A reader for `uploads` parallel uploads from `repo`'s store.
    fn new(repo: &'a Repo, uploads: usize) -> Self {
        let cores = super::parallel::workers();
        Self {
            repo,
            buffers: BufferPool::new(uploads + cores),
            verifying: tokio::sync::Semaphore::new(cores),
        }
    }

    /// The stored object of `hash`, in a buffer that returns to the pool once the bytes are
    /// dropped (after the upload).
    async fn read(&self, hash: ChunkHash, verify: bool) -> Result<Bytes> {
        let _slot = if verify {
            let slot = self.verifying.acquire().await;
            Some(slot.expect("the semaphore is never closed"))
        } else {
            None
        };
        let store = self.repo.store.clone();
        let (mut object, mut scratch) = (self.buffers.take(), verify.then(|| self.buffers.take()));
        tokio::task::spawn_blocking(move || -> Result<Bytes> {
            if !store.read_object_into(&hash, &mut object)? {
                return Err(crate::store::Error::NotFound(hash).into());
            }
            if let Some(scratch) = &mut scratch {
                codec::verify_using(&object, scratch, &hash)
                    .map_err(|source| crate::store::Error::Corrupt { hash, source })?;
            }
            Ok(Bytes::from_owner(object))
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

/// Downloads the chunks `manifests` need that the local store lacks and checks the files out.
/// Files to be written are rebuilt straight from the downloads: each chunk is fetched,
/// verified once, stored and written into its file. Chunks of files that needed no writing
/// are downloaded into the store afterwards, and so is everything when a file with
/// uncommitted edits stops the checkout (that refusal is returned once they are stored).
pub async fn pull(
    repo: Repo,
    index: Index,
    manifests: Vec<(String, Manifest)>,
    remote: Result<Remote>,
    options: (usize, bool),
    mut reporter: Reporter,
) -> Result<TransferReport> {
    let (jobs, force) = options;
    let needed = needed_chunks(&manifests);
    let missing = needed
        .iter()
        .filter(|(h, _)| !repo.store.contains(h))
        .count();
    // A remote is only needed when something is missing (a hook after a local branch switch
    // must work without one).
    let (remote, name) = match remote {
        Ok(remote) => {
            let name = remote.describe();
            (remote, name)
        }
        // Nothing to fetch from anywhere: the local store serves, and no remote is named.
        Err(_) if missing == 0 => (Remote::Dir(repo.store.clone()), String::new()),
        Err(e) => return Err(e),
    };
    let mut report = TransferReport {
        remote: name,
        chunks_total: needed.len() as u64,
        chunks_present: (needed.len() - missing) as u64,
        manifests: manifests.len() as u32,
        ..TransferReport::default()
    };
    if missing > 0 {
        remote.check().await?;
    }
    let downloader = Downloader {
        repo: repo.clone(),
        remote: remote.clone(),
        runtime: tokio::runtime::Handle::current(),
        jobs: jobs.max(1),
        chunks: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let (checkout, downloader) = tokio::task::spawn_blocking(move || {
        let result =
            checkout::checkout_from(&repo, &downloader, &index, &manifests, force, &mut reporter);
        (result, downloader)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    // A file with uncommitted edits stops the checkout (which then writes nothing), not the
    // download: once the user has committed or discarded the edits, the checkout needs no
    // remote.
    let refused = match checkout {
        Ok(checkout) => {
            report.checkout = Some(checkout);
            None
        }
        Err(Error::WouldOverwrite { path, others, .. }) => Some((path, others)),
        Err(e) => return Err(e),
    };
    report.chunks_transferred = downloader.chunks.into_inner();
    report.bytes_transferred = downloader.bytes.into_inner();
    // What the checkout did not need (files already up to date) still belongs in the store.
    let rest: Vec<ChunkHash> = needed
        .iter()
        .map(|(h, _)| *h)
        .filter(|h| !downloader.repo.store.contains(h))
        .collect();
    let repo = &downloader.repo;
    let buffers = BufferPool::new(2 * jobs.max(1));
    let mut downloads = futures::stream::iter(rest)
        .map(|hash| download(repo, &remote, &buffers, hash))
        .buffer_unordered(jobs.max(1));
    while let Some(received) = downloads.try_next().await? {
        report.chunks_transferred += 1;
        report.bytes_transferred += received;
    }
    match refused {
        Some((path, others)) => Err(Error::WouldOverwrite {
            path,
            others,
            downloaded: true,
        }),
        None => Ok(report),
    }
}

/// Chunks for a checkout during a pull: from the local store when present, else downloaded
/// from the remote, verified, stored, and counted.
struct Downloader {
    repo: Repo,
    remote: Remote,
    runtime: tokio::runtime::Handle,
    jobs: usize,
    chunks: AtomicU64,
    bytes: AtomicU64,
}

impl ChunkSource for Downloader {
    fn has(&self, _hash: &ChunkHash) -> bool {
        true // Whatever the local store lacks, the remote is asked for.
    }

    fn fetch(&self, hash: &ChunkHash, file: &str, buffers: &BufferPool) -> Result<PooledBuffer> {
        if self.repo.store.contains(hash) {
            return self.repo.fetch(hash, file, buffers);
        }
        let object = self
            .runtime
            .block_on(retry(|| download_into(&self.remote, buffers, *hash)))?;
        let corrupt = |source| remote::Error::Corrupt {
            remote: self.remote.describe(),
            hash: *hash,
            source,
        };
        // A raw object is its own chunk: verified in place and handed on without a copy.
        let data = if codec::is_raw(&object) {
            codec::verify(&object, hash).map_err(corrupt)?;
            None
        } else {
            let (mut data, mut scratch) = (buffers.take(), buffers.take());
            codec::copy_verified_into(&object, &mut data, &mut scratch, hash).map_err(corrupt)?;
            Some(data)
        };
        if self.repo.store.put_object(hash, &object)? {
            let _ = self.chunks.fetch_add(1, Ordering::Relaxed);
            let _ = self.bytes.fetch_add(object.len() as u64, Ordering::Relaxed);
        }
        Ok(data.unwrap_or(object))
    }

    /// Up to `--jobs` downloads, but no more than two per core: each holds a chunk and its
    /// object in memory, and past that the cores, not the network, set the pace.
    fn parallelism(&self) -> usize {
        self.jobs.min(2 * super::parallel::workers())
    }
}

/// Downloads, verifies and stores one chunk (in buffers from `buffers`); returns the bytes
/// received.
async fn download(
    repo: &Repo,
    remote: &Remote,
    buffers: &BufferPool,
    hash: ChunkHash,
) -> Result<u64> {
    let object = retry(|| download_into(remote, buffers, hash)).await?;
    let size = object.len() as u64;
    let (store, name, mut scratch) = (repo.store.clone(), remote.describe(), buffers.take());
    tokio::task::spawn_blocking(move || -> Result<()> {
        codec::verify_using(&object, &mut scratch, &hash).map_err(|source| {
            remote::Error::Corrupt {
                remote: name,
                hash,
                source,
            }
        })?;
        let _ = store.put_object(&hash, &object)?;
        Ok(())
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    Ok(size)
}

/// One attempt at downloading the object of `hash` into a buffer from `buffers` (a failed
/// attempt's buffer goes back to the pool).
async fn download_into(
    remote: &Remote,
    buffers: &BufferPool,
    hash: ChunkHash,
) -> Result<PooledBuffer, remote::Error> {
    let mut object = buffers.take();
    remote.get_into(&hash, &mut object).await?;
    Ok(object)
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
