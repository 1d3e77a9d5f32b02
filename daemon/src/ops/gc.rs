//! `nshard gc`: delete stored chunks that no manifest in the working tree references.

use std::collections::HashSet;

use shard_proto::ProgressUnit;

use crate::chunk::ChunkHash;
use crate::error::Result;
use crate::index::Index;
use crate::ops::Reporter;
use crate::repo::Repo;

/// What gc did (or would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Manifests whose chunks were kept.
    pub manifests: u32,
    /// Chunks kept.
    pub kept: u64,
    /// Chunks deleted (or that would be).
    pub deleted: Vec<ChunkHash>,
    /// Stored bytes freed (or that would be).
    pub freed_bytes: u64,
}

/// Collects garbage; with `dry_run` only reports. Chunks of results the daemon prepared in the
/// background but nobody committed yet are kept too.
pub fn gc(repo: &Repo, index: &Index, dry_run: bool, reporter: &mut Reporter) -> Result<GcReport> {
    let mut live: HashSet<ChunkHash> = HashSet::new();
    for prepared in index.all_prepared() {
        live.extend(prepared.chunks.iter().map(|c| c.sha256));
    }
    let mut report = GcReport::default();
    for manifest in repo.manifests()? {
        let file = manifest.strip_suffix(crate::manifest::SUFFIX).expect("listed as a manifest");
        live.extend(repo.read_manifest(file)?.chunks.iter().map(|c| c.sha256));
        report.manifests += 1;
    }
    let stored = repo.store.list()?;
    let total = stored.len() as u64;
    for (i, object) in stored.into_iter().enumerate() {
        if live.contains(&object.hash) {
            report.kept += 1;
        } else {
            if !dry_run {
                repo.store.remove(&object.hash)?;
            }
            report.deleted.push(object.hash);
            report.freed_bytes += object.stored_bytes;
        }
        reporter.report("collecting", "", i as u64 + 1, total, ProgressUnit::Chunks);
    }
    Ok(report)
}
