//! `nshard diff`: chunk-level statistics of a working file against its manifest.

use std::collections::HashSet;

use crate::chunk::ChunkHash;
use crate::error::{Error, Result};
use crate::manifest::ChunkRef;
use crate::ops::Reporter;
use crate::ops::hashing::{Storing, hash_file};
use crate::repo::Repo;

/// Chunk and byte counts between two versions of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Size before.
    pub size_before: u64,
    /// Size after.
    pub size_after: u64,
    /// Chunks in both.
    pub chunks_unchanged: u64,
    /// Bytes in chunks in both (counted in the new version).
    pub bytes_unchanged: u64,
    /// Chunks only in the new version.
    pub chunks_added: u64,
    /// Bytes only in the new version.
    pub bytes_added: u64,
    /// Chunks only in the old version.
    pub chunks_removed: u64,
    /// Bytes only in the old version.
    pub bytes_removed: u64,
    /// The two versions are byte-identical.
    pub identical: bool,
}

impl DiffStats {
    /// Compares two chunk lists (old, new) whose files have digests `old_sha` and `new_sha`.
    #[must_use]
    pub fn between(
        old: &[ChunkRef],
        new: &[ChunkRef],
        old_sha: ChunkHash,
        new_sha: ChunkHash,
    ) -> Self {
        let old_ids: HashSet<ChunkHash> = old.iter().map(|c| c.sha256).collect();
        let new_ids: HashSet<ChunkHash> = new.iter().map(|c| c.sha256).collect();
        let mut stats = Self {
            size_before: old.iter().map(|c| u64::from(c.size)).sum(),
            size_after: new.iter().map(|c| u64::from(c.size)).sum(),
            identical: old_sha == new_sha,
            ..Self::default()
        };
        for chunk in new {
            if old_ids.contains(&chunk.sha256) {
                stats.chunks_unchanged += 1;
                stats.bytes_unchanged += u64::from(chunk.size);
            } else {
                stats.chunks_added += 1;
                stats.bytes_added += u64::from(chunk.size);
            }
        }
        for chunk in old.iter().filter(|c| !new_ids.contains(&c.sha256)) {
            stats.chunks_removed += 1;
            stats.bytes_removed += u64::from(chunk.size);
        }
        stats
    }
}

/// Diffs the working file `file` against its manifest.
pub fn diff_working(repo: &Repo, file: &str, reporter: &mut Reporter) -> Result<DiffStats> {
    let manifest = repo.read_manifest(file)?;
    let path = repo.abs(file);
    if !path.is_file() {
        return Err(Error::FileMissing {
            path: file.to_owned(),
        });
    }
    // Cut with the manifest's own parameters so unchanged regions line up chunk for chunk.
    let hashed = hash_file(&path, file, &manifest.chunking, Storing::Nothing, reporter)?;
    Ok(DiffStats::between(
        &manifest.chunks,
        &hashed.chunks,
        manifest.sha256,
        hashed.digest(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, size: u32, tag: &[u8]) -> ChunkRef {
        ChunkRef {
            offset,
            size,
            sha256: ChunkHash::of(tag),
        }
    }

    #[test]
    fn counts_shared_added_and_removed() {
        let old = [chunk(0, 10, b"a"), chunk(10, 20, b"b"), chunk(30, 5, b"c")];
        let new = [chunk(0, 10, b"a"), chunk(10, 7, b"x"), chunk(17, 5, b"c")];
        let stats = DiffStats::between(&old, &new, ChunkHash::of(b"1"), ChunkHash::of(b"2"));
        assert_eq!((stats.chunks_unchanged, stats.bytes_unchanged), (2, 15));
        assert_eq!((stats.chunks_added, stats.bytes_added), (1, 7));
        assert_eq!((stats.chunks_removed, stats.bytes_removed), (1, 20));
        assert_eq!((stats.size_before, stats.size_after), (35, 22));
        assert!(!stats.identical);
    }
}
