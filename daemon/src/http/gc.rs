//! `shard-server gc`: delete the stored chunks no pushed manifest references, in two phases
//! with a grace period, so a push in progress never loses a chunk it relies on.
//!
//! # What is kept
//!
//! The roots are the manifests `nshard push` stores with `PUT /v1/manifests/{id}` once all
//! their chunks are uploaded ([`super::roots`]). A chunk is kept when a root references it, or
//! when its timestamp is younger than the grace period (default [`DEFAULT_GRACE`]). The
//! timestamp is the file's mtime (S3: `Last-Modified`), and it is a lease: it is set when the
//! chunk is written, and renewed whenever the server tells a client it may rely on the chunk
//! (a `POST /v1/chunks/missing` that finds it, a PUT of a chunk already stored; see
//! [`super::backend`]).
//!
//! # The two phases
//!
//! 1. **Mark** ([`mark`]): note the time `T`, read every root, list every chunk, and mark as
//!    candidates the chunks no root references whose timestamp is older than `T − grace`.
//! 2. **Sweep** ([`sweep`]), in batches of [`DELETE_BATCH`]: take the roots lock exclusively,
//!    read the roots stored since (manifests uploaded meanwhile), then for each candidate
//!    delete it only if still no root references it *and* its timestamp is still older than
//!    `T − grace` (a lease renewed since phase 1 spares it). Each deletion is one unlink (S3:
//!    one DELETE) of a whole object.
//!
//! # Why a push in progress is safe
//!
//! A push asks `missing`, uploads what is missing, then stores its manifests. Every chunk it
//! relies on therefore has a timestamp no older than the start of the push: it was uploaded by
//! it, or its lease was renewed when `missing` reported it present. While the push runs its
//! manifest is not a root yet, so the grace period is what protects those chunks: gc only
//! deletes chunks older than the grace period, so a push that started less than `grace` before
//! gc's mark (less than `grace` minus [`super::backend::S3_REFRESH_AFTER`] on S3, where leases
//! are renewed lazily) cannot lose one. Once the manifest is stored it is a root, and it is
//! stored only if all its chunks are there.
//!
//! The rare race the grace period leaves (gc checks a candidate's timestamp, a client renews
//! it, gc deletes it) cannot publish a broken manifest: on a directory, storing a manifest
//! holds the roots lock shared and checks its chunks exist, and the sweep reads the roots and
//! deletes under the lock held exclusively, so the manifest either is read as a root before
//! the deletion or is refused with 409 after it; the push then fails and its rerun uploads the
//! chunk again. Several servers over one S3 bucket share no lock, so there the guarantee rests
//! on the grace period alone (and the existence check narrows the window to the few
//! milliseconds between gc's HEAD and DELETE of one chunk). Give pushes that may run longer
//! than the default hour a longer `--grace`.
//!
//! # Interruption
//!
//! gc writes nothing but deletions, each of a whole object, and never touches roots, so an
//! interrupted gc (crash, Ctrl-C) leaves a consistent store with fewer garbage chunks; the
//! roots lock is a `flock`, released by the kernel when the process dies. Running it again
//! finishes the job. Temporary files of interrupted uploads older than the grace period are
//! removed too. Manifests are never deleted by gc: removing a root is an administrator's
//! decision (delete the file under `manifests/`).

use std::time::{Duration, SystemTime};

use super::backend::Backend;
use super::roots::{self, LockMode, Roots};
use super::{Error, Storage, open_existing};
use crate::store::local::StoredObject;

/// Default grace period: far longer than a push of a large model takes.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// Candidates deleted per hold of the roots lock: long enough to amortise re-reading the
/// roots, short enough that a manifest upload waits at most a second or so.
pub const DELETE_BATCH: usize = 1000;

/// How to collect.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Keep unreferenced chunks whose lease is younger than this.
    pub grace: Duration,
    /// Only report what would be deleted.
    pub dry_run: bool,
    /// Collect even when the storage holds no manifest at all (every old chunk goes).
    pub allow_no_roots: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            dry_run: false,
            allow_no_roots: false,
        }
    }
}

/// What gc did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Manifests read as roots (by the end of the sweep).
    pub manifests: usize,
    /// Chunks stored when phase 1 listed them.
    pub chunks: u64,
    /// Of those, chunks a root referenced in phase 1.
    pub referenced: u64,
    /// Of those, unreferenced chunks kept because their lease is within the grace period.
    pub young: u64,
    /// Candidates kept in phase 2: a new root references them or their lease was renewed.
    pub spared: u64,
    /// Chunks deleted (with `dry_run`: the candidates that would be).
    pub deleted: Vec<StoredObject>,
    /// Stored bytes freed (or that would be).
    pub freed_bytes: u64,
    /// Stale temporary files removed (interrupted uploads).
    pub temporaries: u64,
}

/// The outcome of phase 1, to be passed to [`sweep`].
#[derive(Debug)]
pub struct Marked {
    cutoff: SystemTime,
    roots: Roots,
    candidates: Vec<StoredObject>,
    report: GcReport,
}

impl Marked {
    /// The chunks phase 1 marked for deletion.
    #[must_use]
    pub fn candidates(&self) -> &[StoredObject] {
        &self.candidates
    }

    /// The report of a dry run: the candidates are what would be deleted.
    #[must_use]
    pub fn into_dry_run_report(self) -> GcReport {
        GcReport {
            freed_bytes: self.candidates.iter().map(|c| c.stored_bytes).sum(),
            deleted: self.candidates,
            ..self.report
        }
    }
}

/// Runs `shard-server gc` on `storage`: both phases, or phase 1 only with `dry_run`.
pub async fn run(storage: &Storage, options: &GcOptions) -> Result<GcReport, Error> {
    let backend = open_existing(storage)?;
    let location = storage.to_string();
    let failed = |source: roots::Error| match source {
        roots::Error::Storage(source) => Error::Maintenance {
            location: location.clone(),
            source,
        },
        source => Error::Roots {
            location: location.clone(),
            source,
        },
    };
    let marked = mark(&backend, options.grace).await.map_err(failed)?;
    if options.dry_run {
        return Ok(marked.into_dry_run_report());
    }
    if marked.roots.manifests() == 0 && !marked.candidates.is_empty() && !options.allow_no_roots {
        return Err(Error::NoRoots {
            location: location.clone(),
        });
    }
    sweep(&backend, marked).await.map_err(failed)
}

/// Phase 1: reads the roots, lists the chunks, and marks the unreferenced ones whose lease is
/// older than `grace`.
pub async fn mark(backend: &Backend, grace: Duration) -> Result<Marked, roots::Error> {
    let now = SystemTime::now();
    let cutoff = now.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut roots = Roots::default();
    let _ = roots.refresh(backend).await?;
    let stored = backend.list_chunks().await?;
    let mut report = GcReport {
        chunks: stored.len() as u64,
        ..GcReport::default()
    };
    let mut candidates = Vec::new();
    for object in stored {
        if roots.references(&object.hash) {
            report.referenced += 1;
        } else if object.modified >= cutoff {
            report.young += 1;
        } else {
            candidates.push(object);
        }
    }
    report.manifests = roots.manifests();
    tracing::info!(
        manifests = report.manifests,
        chunks = report.chunks,
        candidates = candidates.len(),
        "gc phase 1: marked"
    );
    Ok(Marked {
        cutoff,
        roots,
        candidates,
        report,
    })
}

/// Phase 2: deletes the candidates of `marked` that are still unreferenced (roots re-read
/// under the exclusive roots lock) and whose lease was not renewed, then stale temporaries.
pub async fn sweep(backend: &Backend, marked: Marked) -> Result<GcReport, roots::Error> {
    let Marked {
        cutoff,
        mut roots,
        candidates,
        mut report,
    } = marked;
    for batch in candidates.chunks(DELETE_BATCH) {
        let _lock = backend.lock_roots(LockMode::Exclusive).await?;
        let _ = roots.refresh(backend).await?;
        for candidate in batch {
            if roots.references(&candidate.hash) {
                report.spared += 1;
                continue;
            }
            match backend.chunk_modified(&candidate.hash).await? {
                None => {} // Already gone (another gc).
                Some(at) if at >= cutoff => report.spared += 1,
                Some(_) => {
                    backend.delete_chunk(&candidate.hash).await?;
                    tracing::debug!(hash = %candidate.hash, "deleted chunk");
                    report.freed_bytes += candidate.stored_bytes;
                    report.deleted.push(*candidate);
                }
            }
        }
    }
    report.manifests = roots.manifests();
    report.temporaries = backend.remove_stale_temporaries(cutoff).await?;
    tracing::info!(
        deleted = report.deleted.len(),
        freed_bytes = report.freed_bytes,
        spared = report.spared,
        "gc phase 2: swept"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use object_store::memory::InMemory;

    use super::*;
    use crate::chunk::cdc::Chunking;
    use crate::chunk::{ChunkHash, codec};
    use crate::http::roots::RootAdded;
    use crate::http::verify::{self, Problem};
    use crate::manifest::{ChunkRef, FORMAT, Manifest};
    use crate::store::object::ObjectBackend;

    fn bucket() -> (Backend, ObjectBackend) {
        let objects = ObjectBackend::with_store(Arc::new(InMemory::new()), "team", "mem://team");
        (Backend::S3(objects.clone()), objects)
    }

    async fn put_chunk(backend: &Backend, seed: u8) -> ChunkHash {
        let data = vec![seed; 5000];
        let hash = ChunkHash::of(&data);
        let object = Bytes::from(codec::encode(&data).expect("encode").into_owned());
        assert!(backend.put(&hash, object).await.expect("put"));
        hash
    }

    fn manifest_of(hash: ChunkHash) -> (ChunkHash, Manifest, Bytes) {
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            path: "a.bin".to_owned(),
            size: 5000,
            sha256: hash,
            chunking: Chunking::default(),
            message: String::new(),
            created_at: String::new(),
            chunks: vec![ChunkRef {
                offset: 0,
                size: 5000,
                sha256: hash,
            }],
        };
        let json = Bytes::from(manifest.to_json());
        (ChunkHash::of(&json), manifest, json)
    }

    #[tokio::test]
    async fn s3_storage_keeps_roots_and_deletes_garbage() {
        let (backend, _) = bucket();
        let kept = put_chunk(&backend, 1).await;
        let garbage = put_chunk(&backend, 2).await;
        let (id, manifest, json) = manifest_of(kept);
        let added = backend.add_root(&id, &manifest, json).await.expect("root");
        assert_eq!(added, RootAdded::Created);

        let marked = mark(&backend, Duration::ZERO).await.expect("mark");
        let report = sweep(&backend, marked).await.expect("sweep");
        assert_eq!(report.manifests, 1);
        assert_eq!(report.referenced, 1);
        let deleted: Vec<_> = report.deleted.iter().map(|c| c.hash).collect();
        assert_eq!(deleted, [garbage]);
        assert!(backend.contains(&kept).await.expect("head"));
        assert!(!backend.contains(&garbage).await.expect("head"));
    }

    #[tokio::test]
    async fn s3_leases_are_renewed_by_a_server_side_copy() {
        let (backend, objects) = bucket();
        let hash = put_chunk(&backend, 3).await;
        let before = objects
            .modified(&hash)
            .await
            .expect("head")
            .expect("stored");
        assert!(objects.refresh(&hash).await.expect("refresh"));
        let after = objects
            .modified(&hash)
            .await
            .expect("head")
            .expect("stored");
        assert!(after >= before);
        assert!(backend.read_object(&hash).await.expect("get").is_some());
        let scratch = objects.remove_stale_scratch(SystemTime::now()).await;
        assert_eq!(scratch.expect("tmp"), 0, "the scratch copy was removed");
        assert!(
            !objects
                .refresh(&ChunkHash::of(b"absent"))
                .await
                .expect("refresh")
        );
    }

    #[tokio::test]
    async fn s3_verify_finds_an_object_stored_under_the_wrong_name() {
        let (backend, objects) = bucket();
        let good = put_chunk(&backend, 4).await;
        let wrong = ChunkHash::of(b"something else");
        objects
            .put(&wrong, Bytes::from(vec![4u8; 5000]))
            .await
            .expect("put");
        let report = verify::verify(&backend).await.expect("verify");
        assert_eq!(report.chunks, 2);
        assert!(matches!(
            report.problems.as_slice(),
            [Problem::CorruptChunk { hash, .. }] if *hash == wrong && *hash != good
        ));
    }
}
