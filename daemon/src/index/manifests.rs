//! Parsed manifests kept between requests, so `status` and `commit` over thousands of tracked
//! files neither re-read nor re-parse the manifests that did not change. Reading them was also
//! the watcher's burden: every open of a watched file is an inotify event.
//!
//! An entry is trusted while the manifest file's stamp is unchanged. A manifest rewritten in
//! the same timestamp tick as it was read could keep its stamp (same inode, size and times),
//! so a manifest that changed just before it was read is not kept
//! ([`FileStamp::is_racy`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{FileStamp, now_ns};
use crate::error::Result;
use crate::manifest::{Manifest, SUFFIX};
use crate::repo::Repo;

/// Chunk references held at most (about 12 MiB; half a terabyte of 2 MiB chunks). Past that,
/// manifests are read from disk each time rather than evicting others.
const MAX_CHUNKS: usize = 1 << 18;

/// The cache of one repository's manifests.
#[derive(Debug)]
pub struct ManifestCache {
    entries: Mutex<Entries>,
    racy_window_ns: Option<i64>,
    max_chunks: usize,
}

impl Default for ManifestCache {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            racy_window_ns: None,
            max_chunks: MAX_CHUNKS,
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    /// Parsed manifests by repository-relative file, with the stamp of the manifest file.
    by_file: HashMap<String, (FileStamp, Arc<Manifest>)>,
    /// Chunk references held.
    chunks: usize,
}

impl ManifestCache {
    /// A cache that keeps no manifest changed less than `racy_window_ns` before it was read
    /// (instead of [`FileStamp::is_racy`]), and at most `max_chunks` chunk references.
    #[cfg(test)]
    fn with_limits(racy_window_ns: i64, max_chunks: usize) -> Self {
        Self {
            racy_window_ns: Some(racy_window_ns),
            max_chunks,
            ..Self::default()
        }
    }

    /// The manifest of `file`, from the cache when its manifest file is unchanged.
    pub fn get(&self, repo: &Repo, file: &str) -> Result<Arc<Manifest>> {
        let path = repo.abs(&format!("{file}{SUFFIX}"));
        let looked_at = now_ns();
        let stamp = FileStamp::read(&path).ok();
        if let Some(stamp) = &stamp
            && let Some((cached, manifest)) = self.lock().by_file.get(file)
            && cached == stamp
        {
            return Ok(Arc::clone(manifest));
        }
        // Read after the stamp was taken: content newer than the stamp only means a miss later.
        let manifest = Arc::new(repo.read_manifest(file)?);
        let racy = |stamp: &FileStamp| match self.racy_window_ns {
            Some(window) => stamp.ctime_ns >= looked_at.saturating_sub(window),
            None => stamp.is_racy(looked_at),
        };
        if let Some(stamp) = stamp
            && !racy(&stamp)
        {
            self.lock()
                .insert(file, stamp, Arc::clone(&manifest), self.max_chunks);
        }
        Ok(manifest)
    }

    /// Manifests held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().by_file.len()
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .expect("no code panics while holding this lock")
    }
}

impl Entries {
    fn insert(&mut self, file: &str, stamp: FileStamp, manifest: Arc<Manifest>, max_chunks: usize) {
        if let Some((_, old)) = self.by_file.remove(file) {
            self.chunks -= old.chunks.len();
        }
        if self.chunks + manifest.chunks.len() <= max_chunks {
            self.chunks += manifest.chunks.len();
            let _ = self.by_file.insert(file.to_owned(), (stamp, manifest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkHash;
    use crate::chunk::cdc::Chunking;
    use crate::fsutil::write_atomic;
    use crate::manifest::{ChunkRef, FORMAT};

    /// A repository whose `a.bin` has a one-chunk manifest committed with `message`.
    fn repo_with_manifest(dir: &std::path::Path, message: &str) -> Repo {
        let (repo, _) = Repo::init(dir, Chunking::default()).expect("init");
        write_manifest(&repo, message);
        repo
    }

    fn write_manifest(repo: &Repo, message: &str) {
        let hash = ChunkHash::of(b"a");
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            path: "a.bin".to_owned(),
            size: 1,
            sha256: hash,
            chunking: Chunking::default(),
            message: message.to_owned(),
            created_at: String::new(),
            chunks: vec![ChunkRef {
                offset: 0,
                size: 1,
                sha256: hash,
            }],
        };
        write_atomic(&repo.abs("a.bin.shard.json"), manifest.to_json().as_bytes())
            .expect("write manifest");
    }

    #[test]
    fn a_rewritten_manifest_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_manifest(dir.path(), "one");
        let cache = ManifestCache::with_limits(0, MAX_CHUNKS);
        assert_eq!(cache.get(&repo, "a.bin").expect("read").message, "one");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&repo, "a.bin").expect("cached").message, "one");
        write_manifest(&repo, "two");
        assert_eq!(cache.get(&repo, "a.bin").expect("reread").message, "two");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_manifest_changed_just_before_it_was_read_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_manifest(dir.path(), "one");
        let cache = ManifestCache::with_limits(60_000_000_000, MAX_CHUNKS);
        assert_eq!(cache.get(&repo, "a.bin").expect("read").message, "one");
        assert!(cache.is_empty());
    }

    #[test]
    fn past_the_chunk_limit_manifests_are_read_but_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_manifest(dir.path(), "one");
        let cache = ManifestCache::with_limits(0, 0);
        assert_eq!(cache.get(&repo, "a.bin").expect("read").message, "one");
        assert!(cache.is_empty());
    }

    #[test]
    fn a_missing_manifest_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_manifest(dir.path(), "one");
        let cache = ManifestCache::with_limits(0, MAX_CHUNKS);
        assert!(cache.get(&repo, "b.bin").is_err());
        assert!(cache.is_empty());
    }
}
