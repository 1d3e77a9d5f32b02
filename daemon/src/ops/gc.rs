//! `nshard gc`: delete stored chunks nothing needs. A chunk is kept when any of these
//! references it: a manifest in the working tree, a manifest in any commit reachable from any
//! Git ref or reflog entry (or staged in the index), or a result the daemon prepared but nobody
//! committed yet. Chunks younger than the grace period are kept too, so a commit running at the
//! same moment (in this or another process) is never hurt. Each deletion is one unlink, so an
//! interrupted gc leaves a consistent store. The index forgets, too, which versions it knew to
//! assemble correctly ([`Index::is_assembled`]) once no manifest has them.

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

/// What the roots (working tree, history, prepared results) reference.
#[derive(Debug, Default)]
struct Roots {
    /// Chunks any root needs.
    chunks: HashSet<ChunkHash>,
    /// The assembly ids ([`crate::manifest::Manifest::assembly_id`]) of every manifest.
    assemblies: HashSet<ChunkHash>,
    /// Manifests read (working tree and history).
    manifests: u32,
}

/// What every root (working tree, history, prepared results) references.
fn roots(repo: &Repo, index: &Index) -> Result<Roots> {
    let mut roots = Roots::default();
    for (file, prepared) in index.all_prepared() {
        // Only a result a commit could still use: its file is there, exactly as prepared.
        // Anything else is stale, and so are its chunks unless something else needs them.
        let current = FileStamp::read(&repo.abs(&file)).is_ok_and(|s| s == prepared.stamp);
        if current {
            roots
                .chunks
                .extend(prepared.chunks.iter().map(|c| c.sha256));
        } else {
            index.forget_prepared(&file)?;
        }
    }
    let mut add = |manifest: &crate::manifest::Manifest| {
        roots
            .chunks
            .extend(manifest.chunks.iter().map(|c| c.sha256));
        let _ = roots.assemblies.insert(manifest.assembly_id());
        roots.manifests += 1;
    };
    for manifest in repo.manifests()? {
        let file = manifest
            .strip_suffix(crate::manifest::SUFFIX)
            .expect("listed as a manifest");
        add(&repo.read_manifest(file)?);
    }
    for manifest in all_history_manifests(repo)? {
        add(&manifest);
    }
    Ok(roots)
}

/// Collects garbage.
pub fn gc(
    repo: &Repo,
    index: &Index,
    options: &GcOptions,
    reporter: &mut Reporter,
) -> Result<GcReport> {
    let Roots {
        chunks: live,
        assemblies,
        manifests,
    } = roots(repo, index)?;
    let mut report = GcReport {
        manifests,
        ..GcReport::default()
    };
    if !options.dry_run {
        // What the index remembers of versions no manifest has any more goes too.
        let forgotten = index.retain_assembled(&assemblies)?;
        tracing::debug!(
            forgotten,
            "forgot the assemblies of versions no manifest has"
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::cdc::Chunking;
    use crate::ops::commit::{CommitOptions, commit};

    #[test]
    fn gc_forgets_the_assemblies_of_versions_no_manifest_has() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut repo, _) =
            Repo::init(dir.path(), Chunking::fastcdc(64 * 1024).expect("size")).expect("init");
        let index = Index::open(&dir.path().join(".shard/index")).expect("index");
        repo.config.track.patterns.push("a.bin".into());
        let mut ids = Vec::new();
        for version in [1u32, 2] {
            let data: Vec<u8> = (0..200_000u32).map(|i| (i * version % 251) as u8).collect();
            fs_err::write(dir.path().join("a.bin"), &data).expect("write");
            let options = CommitOptions {
                message: format!("v{version}"),
                paths: Vec::new(),
                created_at: "2026-11-30T00:00:00Z".into(),
            };
            let _ = commit(&repo, &index, &options, &mut Reporter::silent()).expect("commit");
            ids.push(repo.read_manifest("a.bin").expect("manifest").assembly_id());
        }
        assert!(index.is_assembled(&ids[0]) && index.is_assembled(&ids[1]));
        let options = GcOptions {
            dry_run: false,
            grace: Duration::ZERO,
            evictable: HashSet::new(),
        };

        let _ = gc(&repo, &index, &options, &mut Reporter::silent()).expect("gc");

        // No Git here: v2's manifest replaced v1's, and nothing else has v1.
        assert!(!index.is_assembled(&ids[0]));
        assert!(index.is_assembled(&ids[1]));
    }
}
