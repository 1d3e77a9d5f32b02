//! Background chunking: files the watcher reports as changed are cut, hashed and stored on a
//! dedicated low-priority thread, and the result is recorded in the index keyed by the file's
//! identity, so `nshard commit` only has to write the manifest.
//!
//! One file at a time, at nice 10, so background work never competes with an interactive
//! request for more than its share. A file rewritten while it is read is detected (its stamp
//! changes) and read again; nothing half-read is ever recorded.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use crate::activity::{Activity, Change};
use crate::chunk::codec;
use crate::error::{Error, Result};
use crate::index::{FileStamp, Prepared};
use crate::ops::Reporter;
use crate::ops::hashing::{Storing, hash_file};
use crate::repo::Repo;
use crate::repos::Repos;

/// Niceness of the background thread: below interactive work, above idle batch jobs.
const BACKGROUND_NICE: i32 = 10;

/// Work for the background thread.
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
pub(crate) enum Job {
    File(PathBuf, String),
    Scan(PathBuf),
    Compress(PathBuf),
}

/// Chunks recompressed per job before yielding to queued file work.
const COMPRESS_BATCH: usize = 16;

/// Queues background work.
#[derive(Clone)]
pub struct Preparer {
    jobs: Sender<Job>,
    queued: Arc<Mutex<HashSet<(PathBuf, String)>>>,
    /// Roots with a scan queued: a burst of new directories asks for one scan, not one each.
    scans: Arc<Mutex<HashSet<PathBuf>>>,
}

impl Preparer {
    /// Starts the background thread.
    #[must_use]
    pub fn start(repos: Arc<Repos>, activity: Arc<Activity>) -> Self {
        let (jobs, rx) = channel();
        let queued: Arc<Mutex<HashSet<(PathBuf, String)>>> = Arc::default();
        let scans: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let worker = Worker {
            repos,
            activity,
            queued: Arc::clone(&queued),
            scans: Arc::clone(&scans),
            jobs: jobs.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("shardd-prepare".into())
            .spawn(move || worker.run(&rx));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start background chunking");
        }
        Self {
            jobs,
            queued,
            scans,
        }
    }

    /// A preparer whose jobs nobody runs: a test reads what was queued from the receiver.
    #[cfg(test)]
    pub(crate) fn queue_only() -> (Self, Receiver<Job>) {
        let (jobs, rx) = channel();
        let preparer = Self {
            jobs,
            queued: Arc::default(),
            scans: Arc::default(),
        };
        (preparer, rx)
    }

    /// Prepares `rel` in `root` (coalesced with a queued request for the same file).
    pub fn prepare(&self, root: PathBuf, rel: String) {
        let fresh = self
            .queued
            .lock()
            .expect("no code panics while holding this lock")
            .insert((root.clone(), rel.clone()));
        if fresh {
            let _ = self.jobs.send(Job::File(root, rel));
        }
    }

    /// Compresses the chunks a commit in `root` stored raw.
    pub fn compress(&self, root: &Path) {
        let _ = self.jobs.send(Job::Compress(root.to_path_buf()));
    }

    /// Prepares every tracked file of `root` the index does not know in its current state
    /// (coalesced with a queued scan of the same root).
    pub fn scan(&self, root: &Path) {
        let fresh = self
            .scans
            .lock()
            .expect("no code panics while holding this lock")
            .insert(root.to_path_buf());
        if fresh {
            let _ = self.jobs.send(Job::Scan(root.to_path_buf()));
        }
    }
}

struct Worker {
    repos: Arc<Repos>,
    activity: Arc<Activity>,
    queued: Arc<Mutex<HashSet<(PathBuf, String)>>>,
    scans: Arc<Mutex<HashSet<PathBuf>>>,
    jobs: Sender<Job>,
}

impl Worker {
    fn run(&self, rx: &Receiver<Job>) {
        if let Err(e) =
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE)
        {
            tracing::debug!(error = %e, "cannot lower the background thread's priority");
        }
        while let Ok(job) = rx.recv() {
            match job {
                Job::File(root, rel) => {
                    let _ = self
                        .queued
                        .lock()
                        .expect("no code panics while holding this lock")
                        .remove(&(root.clone(), rel.clone()));
                    if let Err(e) = self.prepare(&root, &rel) {
                        tracing::debug!(path = rel, error = %e.render(), "background chunking skipped");
                    }
                }
                Job::Scan(root) => {
                    // Taken off before the scan starts: a change during it asks for another.
                    let _ = self
                        .scans
                        .lock()
                        .expect("no code panics while holding this lock")
                        .remove(&root);
                    self.scan(&root);
                }
                Job::Compress(root) => match self.compress(&root) {
                    // More to do: queue the rest behind whatever file work arrived meanwhile.
                    Ok(true) => {
                        let _ = self.jobs.send(Job::Compress(root));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(root = %root.display(), error = %e.render(), "background compression stopped");
                    }
                },
            }
        }
    }

    fn scan(&self, root: &Path) {
        let tracked = Repo::open(root).and_then(|repo| repo.tracked());
        match tracked {
            Ok(files) => {
                for file in files.into_iter().filter(|f| f.exists) {
                    let fresh = self
                        .queued
                        .lock()
                        .expect("no code panics while holding this lock")
                        .insert((root.to_path_buf(), file.path.clone()));
                    if fresh {
                        let _ = self.jobs.send(Job::File(root.to_path_buf(), file.path));
                    }
                }
            }
            Err(e) => tracing::debug!(root = %root.display(), error = %e.render(), "scan skipped"),
        }
    }

    /// Compresses a batch of raw chunks; returns whether any remain.
    fn compress(&self, root: &Path) -> Result<bool> {
        let repo = Repo::open(root)?;
        let handle = self.repos.handle(&repo)?;
        let batch = handle.index.deferred(COMPRESS_BATCH);
        // One object buffer, one chunk buffer and one zstd context serve the whole batch.
        let (mut object, mut data) = (Vec::new(), Vec::new());
        let mut encoder = codec::Encoder::new()?;
        for hash in &batch {
            match repo.store.read_chunk_into(hash, &mut object, &mut data) {
                Ok(()) => {
                    if encoder.compress(&data)? {
                        // Replaced only under the repository's lock and only if still stored:
                        // a gc that deleted the chunk meanwhile must not see it come back.
                        let Ok(_guard) = handle.lock.try_lock() else {
                            // An interactive operation runs: wait for it, then start over.
                            drop(handle.lock.blocking_lock());
                            return Ok(true);
                        };
                        if repo.store.contains(hash) {
                            repo.store.replace_object(hash, encoder.frame())?;
                        }
                    }
                }
                // Deleted by gc, or damaged (verify reports it): nothing to compress.
                Err(crate::store::Error::NotFound(_) | crate::store::Error::Corrupt { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            handle.index.done_deferred(hash)?;
        }
        Ok(batch.len() == COMPRESS_BATCH)
    }

    /// Prepares a file, giving way to interactive work: it does not start while a commit,
    /// checkout, push, pull or gc holds the repository's lock, and when one takes it, the read
    /// stops at once; either way it starts over (the file may have been committed or changed
    /// meanwhile) after that operation.
    fn prepare(&self, root: &Path, rel: &str) -> Result<()> {
        loop {
            match self.prepare_once(root, rel) {
                Err(Error::Yielded { .. }) => {
                    self.activity.clear(root, rel);
                    let repo = Repo::open(root)?;
                    let handle = self.repos.handle(&repo)?;
                    drop(handle.lock.blocking_lock());
                }
                other => return other,
            }
        }
    }

    fn prepare_once(&self, root: &Path, rel: &str) -> Result<()> {
        let repo = Repo::open(root)?;
        let path = repo.abs(rel);
        if !path.is_file() || !(repo.has_manifest(rel) || repo.patterns()?.is_match(rel)) {
            return Ok(());
        }
        let handle = self.repos.handle(&repo)?;
        let stamp = FileStamp::read(&path)?;
        if handle.index.prepared(rel, &stamp).is_some() {
            return Ok(());
        }
        let manifest = repo.read_manifest(rel).ok();
        if let Some(known) = handle.index.known_hash(rel, &stamp)
            && manifest.as_ref().is_some_and(|m| m.sha256 == known)
        {
            return Ok(()); // Clean: nothing to prepare.
        }
        // Not a byte is read while an interactive operation holds the repository: it may be
        // committing this very file. `prepare` waits for it, then looks again.
        if handle.lock.try_lock().is_err() {
            return Err(Error::Yielded {
                path: rel.to_owned(),
            });
        }
        // The chunking the next commit will use (see `ops::commit`).
        let chunking = manifest.map_or(repo.config.chunking, |m| m.chunking);
        let lock = Arc::clone(&handle.lock);
        let mut reporter = Reporter::activity(Arc::clone(&self.activity), root, rel)
            .yielding_to(move || lock.try_lock().is_err());
        let hashed = hash_file(
            &path,
            rel,
            &chunking,
            Storing::Compressed(&repo.store),
            &mut reporter,
        )?;
        let prepared = Prepared {
            stamp: hashed.stamp.expect("set after hashing"),
            sha256: hashed.digest(),
            chunking,
            new_chunks: hashed.new_chunks,
            new_bytes: hashed.new_bytes,
            stored_bytes: hashed.stored_bytes,
            chunks: hashed.chunks,
        };
        handle.index.record_prepared(rel, &prepared)?;
        tracing::debug!(
            path = rel,
            chunks = prepared.chunks.len(),
            "prepared in the background"
        );
        self.activity
            .emit(root, rel, Change::Prepared, Some(prepared.sha256));
        Ok(())
    }
}
