//! The sled index of a repository (`.shard/index/`): what the daemon already knows about each
//! working file, keyed by its identity on disk, so `status` and `commit` need not re-read
//! unchanged files. It is a cache: deleting it loses nothing.

pub mod manifests;

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs_err as fs;

use crate::chunk::ChunkHash;
use crate::chunk::cdc::Chunking;
use crate::error::{Error, Result};
use crate::manifest::{ChunkRef, Manifest};
use crate::repo::Repo;
use manifests::ManifestCache;

/// sled's page cache is sized for databases far larger than ours; 8 MiB keeps the idle daemon
/// small while holding tens of thousands of file entries.
const CACHE_BYTES: u64 = 8 << 20;

/// How long to wait for an index another (exiting) daemon still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// sled reports a held lock as an `Other` error whose text says so.
fn is_locked(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.to_string().contains("could not acquire lock")
}

/// How long (ns) after a change another change may get the same file times, on filesystems
/// that keep nanoseconds: their clock ticks every few milliseconds at most.
pub const FINE_RACY_WINDOW_NS: i64 = 50_000_000;

/// The same for filesystems that keep whole seconds (FAT, HFS+, ext3, some NFS servers).
pub const COARSE_RACY_WINDOW_NS: i64 = 2_000_000_000;

/// Wall-clock time in ns since the epoch (the clock file times come from).
#[must_use]
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The identity of a file's content as far as a `stat` can tell: if any of these change, the
/// content may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch).
    pub mtime_ns: i64,
    /// Status change time (ns since the epoch); catches edits that restore the mtime.
    pub ctime_ns: i64,
}

impl FileStamp {
    /// The stamp of a file from its metadata.
    #[must_use]
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }

    /// Stats `path` (following symlinks).
    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Self::of(&fs::metadata(path)?))
    }

    /// Whether a change made after `observed_ns` (wall clock, [`now_ns`]) could leave the file
    /// with this very stamp: it changed so shortly before that a later change may get the same
    /// times. Content read from such a file must not be remembered by its stamp (Git's
    /// "racily clean" rule).
    #[must_use]
    pub fn is_racy(&self, observed_ns: i64) -> bool {
        self.ctime_ns > observed_ns.saturating_sub(self.racy_window_ns())
    }

    /// How long to wait from `now_ns` until the stamp is no longer racy (at most one window,
    /// so a file time in the future cannot stall anyone); `None` when it is not racy now.
    #[must_use]
    pub fn settle_time(&self, now_ns: i64) -> Option<std::time::Duration> {
        if !self.is_racy(now_ns) {
            return None;
        }
        let window = self.racy_window_ns();
        let left = (self.ctime_ns + window - now_ns).clamp(1, window);
        Some(std::time::Duration::from_nanos(left.unsigned_abs()))
    }

    /// The racy window of the filesystem this stamp comes from: whole-second times tell it.
    fn racy_window_ns(&self) -> i64 {
        if self.ctime_ns % 1_000_000_000 == 0 {
            COARSE_RACY_WINDOW_NS
        } else {
            FINE_RACY_WINDOW_NS
        }
    }

    fn encode(&self, sha256: &ChunkHash) -> Vec<u8> {
        let mut out = Vec::with_capacity(72);
        for n in [
            self.dev,
            self.ino,
            self.size,
            self.mtime_ns as u64,
            self.ctime_ns as u64,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(sha256.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<(Self, ChunkHash)> {
        if bytes.len() != 72 {
            return None;
        }
        let n = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let stamp = Self {
            dev: n(0),
            ino: n(1),
            size: n(2),
            mtime_ns: i64::from_le_bytes(n(3).to_le_bytes()),
            ctime_ns: i64::from_le_bytes(n(4).to_le_bytes()),
        };
        let hash: [u8; 32] = bytes[40..72].try_into().expect("32 bytes");
        Some((stamp, ChunkHash::from_bytes(hash)))
    }
}

/// A file chunked ahead of time (by the watcher), ready to become a manifest as long as the
/// file still has `stamp`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Prepared {
    /// The file's identity when it was read (identical before and after the read).
    pub stamp: FileStamp,
    /// SHA-256 of the whole file.
    pub sha256: ChunkHash,
    /// The parameters it was cut with.
    pub chunking: Chunking,
    /// Its chunks, all stored in the repository's store when prepared.
    pub chunks: Vec<ChunkRef>,
    /// Chunks that preparing stored for the first time.
    pub new_chunks: u64,
    /// Content bytes in those chunks.
    pub new_bytes: u64,
    /// Bytes they take in the store.
    pub stored_bytes: u64,
}

/// Where a file stands against its manifest, by what nshard last recorded (see
/// [`Index::sync_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// As nshard last left it, and the manifest still names that content.
    InStep,
    /// As nshard last left it, but the manifest has moved on: the file is behind.
    Outdated,
    /// Changed since, or never recorded: only its content can tell.
    Unknown,
}

/// A repository's index.
#[derive(Clone)]
pub struct Index {
    path: PathBuf,
    manifests: Arc<ManifestCache>,
    files: sled::Tree,
    prepared: sled::Tree,
    deferred: sled::Tree,
    synced: sled::Tree,
    assembled: sled::Tree,
    db: sled::Db,
}

impl Index {
    /// Opens (or creates) the index in `dir`. A damaged index is deleted and rebuilt empty.
    /// An index still locked by a daemon that is exiting is waited for, briefly.
    pub fn open(dir: &Path) -> Result<Self> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match Self::open_or_rebuild(dir) {
                Err(Error::Index {
                    source: sled::Error::Io(e),
                    ..
                }) if is_locked(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(Error::Index {
                    source: sled::Error::Io(e),
                    path,
                }) if is_locked(&e) => {
                    return Err(Error::IndexInUse { path });
                }
                other => return other,
            }
        }
    }

    fn open_or_rebuild(dir: &Path) -> Result<Self> {
        match Self::try_open(dir) {
            Ok(index) => Ok(index),
            Err(sled::Error::Corruption { .. } | sled::Error::Unsupported(_)) => {
                tracing::warn!(path = %dir.display(), "index is damaged; rebuilding it");
                fs::remove_dir_all(dir)?;
                Self::try_open(dir).map_err(|source| Error::Index {
                    path: dir.into(),
                    source,
                })
            }
            Err(source) => Err(Error::Index {
                path: dir.into(),
                source,
            }),
        }
    }

    fn try_open(dir: &Path) -> sled::Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let files = db.open_tree("files")?;
        let prepared = db.open_tree("prepared")?;
        let deferred = db.open_tree("deferred")?;
        let synced = db.open_tree("synced")?;
        let assembled = db.open_tree("assembled")?;
        Ok(Self {
            path: dir.to_path_buf(),
            manifests: Arc::default(),
            files,
            prepared,
            deferred,
            synced,
            assembled,
            db,
        })
    }

    /// An index operation failed.
    fn failed(&self, source: sled::Error) -> Error {
        Error::Index {
            path: self.path.clone(),
            source,
        }
    }

    /// The manifest of `file`, parsed once and reused while the manifest file is unchanged
    /// (see [`manifests`]).
    pub fn manifest(&self, repo: &Repo, file: &str) -> Result<Arc<Manifest>> {
        self.manifests.get(repo, file)
    }

    /// The content hash recorded for `file` if its stamp is still `stamp`.
    #[must_use]
    pub fn known_hash(&self, file: &str, stamp: &FileStamp) -> Option<ChunkHash> {
        let bytes = self.files.get(file.as_bytes()).ok()??;
        let (recorded, hash) = FileStamp::decode(&bytes)?;
        (recorded == *stamp).then_some(hash)
    }

    /// Records that `file`, as identified by `stamp`, has content `sha256`.
    pub fn record(&self, file: &str, stamp: &FileStamp, sha256: &ChunkHash) -> Result<()> {
        let _ = self
            .files
            .insert(file.as_bytes(), stamp.encode(sha256))
            .map_err(|source| self.failed(source))?;
        Ok(())
    }

    /// Records that `file`, as identified by `stamp`, matches its working manifest, whose
    /// content is `sha256`: nshard just wrote it from that manifest, or committed it as that
    /// manifest.
    pub fn record_synced(&self, file: &str, stamp: &FileStamp, sha256: &ChunkHash) -> Result<()> {
        let value = stamp.encode(sha256);
        // A commit of 1000 unchanged files must not write 1000 unchanged entries.
        let known = self.synced.get(file.as_bytes()).ok().flatten();
        if known.as_deref() != Some(value.as_slice()) {
            let _ = self
                .synced
                .insert(file.as_bytes(), value)
                .map_err(|source| self.failed(source))?;
        }
        Ok(())
    }

    /// Forgets that `file` matched its manifest (it now holds another version on purpose).
    pub fn forget_synced(&self, file: &str) -> Result<()> {
        let _ = self
            .synced
            .remove(file.as_bytes())
            .map_err(|source| self.failed(source))?;
        Ok(())
    }

    /// How `file`, as `stamp` identifies it now, stands against its manifest's content
    /// `manifest_sha256`, as far as the last [`record_synced`](Self::record_synced) tells.
    #[must_use]
    pub fn sync_state(
        &self,
        file: &str,
        stamp: &FileStamp,
        manifest_sha256: &ChunkHash,
    ) -> SyncState {
        let recorded = self.synced.get(file.as_bytes()).ok().flatten();
        match recorded.as_deref().and_then(FileStamp::decode) {
            Some((synced, sha256)) if synced == *stamp && sha256 == *manifest_sha256 => {
                SyncState::InStep
            }
            Some((synced, _)) if synced == *stamp => SyncState::Outdated,
            _ => SyncState::Unknown,
        }
    }

    /// True when `file` is exactly as nshard last left it in step with its manifest (`stamp`
    /// unchanged) while the manifest has moved on to `manifest_sha256`: a `git pull`, merge or
    /// branch switch changed the manifest and nothing has updated the file yet. Committing it
    /// would record the older version again.
    #[must_use]
    pub fn is_outdated(&self, file: &str, stamp: &FileStamp, manifest_sha256: &ChunkHash) -> bool {
        self.sync_state(file, stamp, manifest_sha256) == SyncState::Outdated
    }

    /// Records that the chunks of a manifest with assembly id `id` ([`Manifest::assembly_id`])
    /// make up exactly the file digest it claims: a commit computed both from the same bytes,
    /// or a checkout read the whole file they made. Checkouts of it then skip that pass.
    pub fn record_assembled(&self, id: &ChunkHash) -> Result<()> {
        let _ = self
            .assembled
            .insert(id.as_bytes(), &[])
            .map_err(|source| self.failed(source))?;
        Ok(())
    }

    /// Whether [`record_assembled`](Self::record_assembled) was called for `id`.
    #[must_use]
    pub fn is_assembled(&self, id: &ChunkHash) -> bool {
        self.assembled.contains_key(id.as_bytes()).unwrap_or(false)
    }

    /// Forgets every recorded assembly not in `keep` (no manifest has it any more); returns how
    /// many went. One forgotten too eagerly costs a whole-file check at its next checkout.
    pub fn retain_assembled(&self, keep: &HashSet<ChunkHash>) -> Result<u64> {
        let mut forgotten = 0;
        for key in self.assembled.iter().keys() {
            let key = key.map_err(|source| self.failed(source))?;
            let kept = <[u8; 32]>::try_from(&*key)
                .is_ok_and(|id| keep.contains(&ChunkHash::from_bytes(id)));
            if !kept {
                let _ = self
                    .assembled
                    .remove(&key)
                    .map_err(|source| self.failed(source))?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Forgets `file`.
    pub fn forget(&self, file: &str) -> Result<()> {
        let _ = self
            .files
            .remove(file.as_bytes())
            .map_err(|source| self.failed(source))?;
        Ok(())
    }

    /// The prepared result for `file` if it was made from the file as it is now (`stamp`).
    #[must_use]
    pub fn prepared(&self, file: &str, stamp: &FileStamp) -> Option<Prepared> {
        let bytes = self.prepared.get(file.as_bytes()).ok()??;
        let prepared: Prepared = serde_json::from_slice(&bytes).ok()?;
        (prepared.stamp == *stamp).then_some(prepared)
    }

    /// Every prepared result with its file (for gc, which must keep the chunks of those a
    /// commit could still use).
    #[must_use]
    pub fn all_prepared(&self) -> Vec<(String, Prepared)> {
        self.prepared
            .iter()
            .filter_map(|entry| {
                let (file, value) = entry.ok()?;
                let file = String::from_utf8(file.to_vec()).ok()?;
                Some((file, serde_json::from_slice(&value).ok()?))
            })
            .collect()
    }

    /// Records a prepared result for `file` (and its content hash for status).
    pub fn record_prepared(&self, file: &str, prepared: &Prepared) -> Result<()> {
        let bytes = serde_json::to_vec(prepared).expect("prepared results always serialize");
        let _ = self
            .prepared
            .insert(file.as_bytes(), bytes)
            .map_err(|source| self.failed(source))?;
        self.record(file, &prepared.stamp, &prepared.sha256)
    }

    /// Drops the prepared result for `file` (once committed, or when stale).
    pub fn forget_prepared(&self, file: &str) -> Result<()> {
        let _ = self
            .prepared
            .remove(file.as_bytes())
            .map_err(|source| self.failed(source))?;
        Ok(())
    }

    /// Remembers chunks stored raw by a commit, for the background compressor.
    pub fn defer_compression(&self, chunks: &[ChunkHash]) -> Result<()> {
        for chunk in chunks {
            let _ = self
                .deferred
                .insert(chunk.as_bytes(), &[])
                .map_err(|source| self.failed(source))?;
        }
        Ok(())
    }

    /// Up to `limit` chunks waiting for compression.
    #[must_use]
    pub fn deferred(&self, limit: usize) -> Vec<ChunkHash> {
        self.deferred
            .iter()
            .keys()
            .filter_map(|k| <[u8; 32]>::try_from(k.ok()?.as_ref()).ok())
            .map(ChunkHash::from_bytes)
            .take(limit)
            .collect()
    }

    /// Marks a deferred chunk as handled.
    pub fn done_deferred(&self, chunk: &ChunkHash) -> Result<()> {
        let _ = self
            .deferred
            .remove(chunk.as_bytes())
            .map_err(|source| self.failed(source))?;
        Ok(())
    }

    /// Writes everything to disk (on shutdown).
    pub fn flush(&self) -> Result<()> {
        let _ = self.db.flush().map_err(|source| self.failed(source))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        fs::write(&file, b"x").expect("write");
        let stamp = FileStamp::read(&file).expect("stat");
        let hash = ChunkHash::of(b"x");
        {
            let index = Index::open(&dir.path().join("index")).expect("open");
            index.record("f", &stamp, &hash).expect("record");
            index.flush().expect("flush");
        }
        let index = Index::open(&dir.path().join("index")).expect("reopen");
        assert_eq!(index.known_hash("f", &stamp), Some(hash));
        let changed = FileStamp { size: 2, ..stamp };
        assert_eq!(index.known_hash("f", &changed), None);
    }

    #[test]
    fn stamps_changed_within_a_clock_tick_of_a_read_are_racy() {
        let now = 1_700_000_000_123_456_789_i64;
        let stamp = |ctime_ns| FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: ctime_ns,
            ctime_ns,
        };
        let fine = stamp(now - 10_000_000);
        assert!(fine.is_racy(now));
        let wait = fine.settle_time(now).expect("racy");
        assert_eq!(wait.as_nanos(), 40_000_000);
        assert!(!fine.is_racy(now + 40_000_000));
        assert!(!stamp(now - 100_000_000).is_racy(now));
        assert_eq!(stamp(now - 100_000_000).settle_time(now), None);
        // Whole-second file times: the filesystem ticks once a second.
        let coarse = stamp(1_700_000_000_000_000_000);
        assert!(coarse.is_racy(coarse.ctime_ns + 1_500_000_000));
        assert!(!coarse.is_racy(coarse.ctime_ns + 2_500_000_000));
        // A time in the future costs one window at most.
        let future = stamp(now + 3_600_000_000_000);
        assert_eq!(
            future.settle_time(now).expect("racy").as_nanos(),
            50_000_000
        );
    }
}
