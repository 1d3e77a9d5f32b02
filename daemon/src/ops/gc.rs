//! `nshard gc`: delete stored chunks nothing needs. A chunk is kept when any of these
//! references it: a manifest in the working tree, a manifest in any commit reachable from any
//! Git ref or reflog entry (or staged in the index), or a result the daemon prepared but nobody
//! committed yet. Chunks younger than the grace period are kept too, so a commit running at the
//! same moment (in this or another process) is never hurt. Each deletion is one unlink, so an
//! interrupted gc leaves a consistent store.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use shard_proto::ProgressUnit;

use crate::chunk::ChunkHash;
use crate::error::Result;
use crate::index::{FileStamp, Index};
use crate::ops::Reporter;
use crate::ops::history::all_history_manifests;
use crate::repo::Repo;

/// Default grace period: far longer than any commit takes.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// How to collect.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Only report.
    pub dry_run: bool,
    /// Keep chunks written less than this long ago.
    pub grace: Duration,
    /// Chunks a remote holds: their local copies may go even when referenced.
    pub evictable: HashSet<ChunkHash>,
}

/// What gc did (or would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Manifests whose chunks were kept (working tree and history).
    pub manifests: u32,
    /// Chunks kept.
    pub kept: u64,
    /// Chunks deleted (or that would be).
    pub deleted: Vec<ChunkHash>,
    /// Stored bytes freed (or that would be).
    pub freed_bytes: u64,
    /// Of the deleted, chunks that were referenced but held by the remote.
    pub evicted: u64,
}

/// The chunks every root (working tree, history, prepared results) references.
pub fn live_chunks(repo: &Repo, index: &Index) -> Result<(HashSet<ChunkHash>, u32)> {
    let mut live: HashSet<ChunkHash> = HashSet::new();
    let mut manifests = 0u32;
    for (file, prepared) in index.all_prepared() {
        // Only a result a commit could still use: its file is there, exactly as prepared.
        // Anything else is stale, and so are its chunks unless something else needs them.
        let current = FileStamp::read(&repo.abs(&file)).is_ok_and(|s| s == prepared.stamp);
        if current {
            live.extend(prepared.chunks.iter().map(|c| c.sha256));
        } else {
            index.forget_prepared(&file)?;
        }
    }
    for manifest in repo.manifests()? {
        let file = manifest
            .strip_suffix(crate::manifest::SUFFIX)
            .expect("listed as a manifest");
        live.extend(repo.read_manifest(file)?.chunks.iter().map(|c| c.sha256));
        manifests += 1;
    }
    for manifest in all_history_manifests(repo)? {
        live.extend(manifest.chunks.iter().map(|c| c.sha256));
        manifests += 1;
    }
    Ok((live, manifests))
}

/// Collects garbage.
pub fn gc(
    repo: &Repo,
    index: &Index,
    options: &GcOptions,
    reporter: &mut Reporter,
) -> Result<GcReport> {
    let (live, manifests) = live_chunks(repo, index)?;
    let mut report = GcReport {
        manifests,
        ..GcReport::default()
    };
    let cutoff = SystemTime::now()
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let stored = repo.store.list()?;
    let total = stored.len() as u64;
    for (i, object) in stored.into_iter().enumerate() {
        reporter.report("collecting", "", i as u64 + 1, total, ProgressUnit::Chunks);
        let evict = options.evictable.contains(&object.hash);
        if (live.contains(&object.hash) && !evict) || object.modified > cutoff {
            report.kept += 1;
            continue;
        }
        if !options.dry_run {
            repo.store.remove(&object.hash)?;
        }
        report.evicted += u64::from(evict && live.contains(&object.hash));
        report.deleted.push(object.hash);
        report.freed_bytes += object.stored_bytes;
    }
    Ok(report)
}
