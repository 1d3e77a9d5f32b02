//! Enumerating a repository's tracked files: files matching a tracked pattern, plus every file
//! that has a manifest (so a fresh clone needs no `nshard track`).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use fs_err as fs;

use super::remotes::SHARED_CONFIG;
use super::{Repo, SHARD_DIR};
use crate::error::Result;
use crate::manifest;

/// Directories never descended into (nor watched): Git's and NeuroShard's own.
pub const SKIPPED_DIRS: [&str; 2] = [".git", SHARD_DIR];

/// A tracked file as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracked {
    /// Repository-relative path of the file.
    pub path: String,
    /// The working file exists.
    pub exists: bool,
    /// Its manifest exists.
    pub has_manifest: bool,
}

impl Repo {
    /// Every tracked file, sorted by path.
    pub fn tracked(&self) -> Result<Vec<Tracked>> {
        let patterns = self.patterns()?;
        let (manifests, files): (Vec<String>, Vec<String>) = self
            .walk_files()?
            .into_iter()
            .partition(|p| p.ends_with(manifest::SUFFIX));
        let committed: BTreeSet<String> = manifests
            .iter()
            .filter_map(|m| m.strip_suffix(manifest::SUFFIX).map(str::to_owned))
            .collect();
        let mut out: BTreeMap<String, Tracked> = BTreeMap::new();
        // A name no manifest can record (a backslash) is never tracked, whatever matches it.
        for path in files.into_iter().filter(|p| manifest::is_clean_relative(p)) {
            let has_manifest = committed.contains(&path);
            if has_manifest || patterns.is_match(&path) {
                let tracked = Tracked {
                    path: path.clone(),
                    exists: true,
                    has_manifest,
                };
                let _ = out.insert(path, tracked);
            }
        }
        for path in committed {
            let _ = out.entry(path.clone()).or_insert(Tracked {
                path,
                exists: false,
                has_manifest: true,
            });
        }
        Ok(out.into_values().collect())
    }

    /// Repository-relative paths of every manifest in the working tree, sorted.
    pub fn manifests(&self) -> Result<Vec<String>> {
        Ok(self
            .walk_files()?
            .into_iter()
            .filter(|p| p.ends_with(manifest::SUFFIX))
            .collect())
    }

    /// Every regular file below the root (not following symlinks), skipping `.git` and
    /// `.shard`, as sorted repository-relative paths.
    pub fn walk_files(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out)?;
        out.sort();
        Ok(out)
    }
}

/// Files no pattern can track: Git's and NeuroShard's own configuration (versioned by Git as
/// they are), and the temporary file a checkout is writing (or a crash left).
pub const CONFIG_FILES: [&str; 4] = [".gitignore", ".gitattributes", ".gitmodules", SHARED_CONFIG];

fn never_tracked(name: &str) -> bool {
    CONFIG_FILES.contains(&name) || crate::fsutil::is_rebuild_temp(name)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A directory removed or made unreadable mid-walk holds nothing we can track.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // Non-UTF-8 names cannot appear in a manifest's `path`.
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&entry.path(), &rel, out)?;
            }
        } else if file_type.is_file() && !never_tracked(&name) {
            out.push(rel);
        }
    }
    Ok(())
}
