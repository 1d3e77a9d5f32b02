//! Git history of models: `nshard log`, `diff --rev`, and manifests as they were at a revision.

use std::collections::HashSet;

use crate::chunk::ChunkHash;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::manifest::{Manifest, SUFFIX};
use crate::ops::diff::DiffStats;
use crate::repo::Repo;

/// One version of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Git commit id.
    pub commit: String,
    /// Author date.
    pub date: String,
    /// Git subject line.
    pub subject: String,
    /// Manifest path in that commit, relative to the Git root.
    pub path: String,
    /// The manifest then, or why it cannot be used (a merge committed with conflict markers
    /// in it, say): such a version is listed, not skipped.
    pub manifest: std::result::Result<Manifest, String>,
    /// Chunks not in the previous (older) version.
    pub new_chunks: u64,
    /// Bytes in those chunks.
    pub new_bytes: u64,
}

/// The Git work tree of a repository.
pub fn git(repo: &Repo) -> Result<Git> {
    Ok(Git::open(&repo.root)?)
}

/// The manifest path of `file` relative to the Git root.
fn git_path(repo: &Repo, git: &Git, file: &str) -> String {
    let abs = repo.abs(&format!("{file}{SUFFIX}"));
    git.relative(&abs)
        .unwrap_or_else(|| format!("{file}{SUFFIX}"))
}

/// The files (repository-relative) whose manifests the tree of `rev` holds, inside this
/// repository.
pub fn files_at(repo: &Repo, git: &Git, rev: &str) -> Result<Vec<String>> {
    let commit = git.resolve(rev)?;
    let zero = "0".repeat(40);
    let mut files = Vec::new();
    for path in git.changed_paths(&zero, &commit, SUFFIX)? {
        let abs = git.abs(&path);
        let Ok(rel) = repo.relative(&repo.root, &abs.display().to_string()) else {
            continue; // Outside this NeuroShard repository.
        };
        if let Some(file) = rel.strip_suffix(SUFFIX) {
            files.push(file.to_owned());
        }
    }
    Ok(files)
}

/// The manifests of `files` as committed at `rev`; without names, of every file recorded
/// there (a file added since is left alone, one deleted since comes back), as
/// `git checkout REV -- .` does.
pub fn manifests_at(repo: &Repo, rev: &str, files: Vec<String>) -> Result<Vec<(String, Manifest)>> {
    let git = git(repo)?;
    let files = if files.is_empty() {
        files_at(repo, &git, rev)?
    } else {
        files
    };
    files
        .into_iter()
        .map(|f| Ok((f.clone(), manifest_at(repo, &git, rev, &f)?)))
        .collect()
}

/// The manifest of `file` as committed at `rev`, following renames: when the manifest had
/// another name at `rev`, the name it had in the newest commit of its history that `rev`
/// contains is used.
pub fn manifest_at(repo: &Repo, git: &Git, rev: &str, file: &str) -> Result<Manifest> {
    let mut path = git_path(repo, git, file);
    let mut bytes = git.show(rev, &path)?;
    if bytes.is_none() {
        let commit = git.resolve(rev)?;
        for entry in git.log(&path)? {
            if git.is_ancestor(&entry.commit, &commit)? {
                path = entry.path;
                bytes = git.show(&commit, &path)?;
                break;
            }
        }
    }
    let bytes = bytes.ok_or_else(|| Error::NoManifestAt {
        path: file.to_owned(),
        rev: rev.to_owned(),
    })?;
    // A version in history is what it is: there is nothing to undo.
    Manifest::parse(&bytes).map_err(|source| Error::Manifest {
        path: format!("{path} at {rev}"),
        source,
        advice: String::new(),
    })
}

/// Every version of `file` in history, newest first.
pub fn log(repo: &Repo, file: &str) -> Result<Vec<Version>> {
    let git = git(repo)?;
    let entries = git.log(&git_path(repo, &git, file))?;
    let mut versions: Vec<Version> = Vec::new();
    for entry in entries {
        let Some(bytes) = git.show(&entry.commit, &entry.path)? else {
            continue; // The commit deleted the manifest.
        };
        versions.push(Version {
            manifest: Manifest::parse(&bytes).map_err(|e| e.to_string()),
            commit: entry.commit,
            date: entry.date,
            subject: entry.subject,
            path: entry.path,
            new_chunks: 0,
            new_bytes: 0,
        });
    }
    // Growth of each valid version against the next older valid one.
    for i in 0..versions.len() {
        let Ok(manifest) = &versions[i].manifest else {
            continue;
        };
        let older: HashSet<ChunkHash> = versions[i + 1..]
            .iter()
            .find_map(|v| v.manifest.as_ref().ok())
            .map(|m| m.chunks.iter().map(|c| c.sha256).collect())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        let (mut chunks, mut bytes) = (0, 0);
        for c in &manifest.chunks {
            if !older.contains(&c.sha256) && seen.insert(c.sha256) {
                chunks += 1;
                bytes += u64::from(c.size);
            }
        }
        versions[i].new_chunks = chunks;
        versions[i].new_bytes = bytes;
    }
    Ok(versions)
}

/// Compares `file` at `rev` with the working manifest, or with `rev2` when given.
pub fn diff_revisions(repo: &Repo, file: &str, rev: &str, rev2: Option<&str>) -> Result<DiffStats> {
    let git = git(repo)?;
    let before = manifest_at(repo, &git, rev, file);
    let after = match rev2 {
        Some(rev2) => manifest_at(repo, &git, rev2, file),
        None => repo.read_manifest(file),
    };
    // A side without the file counts as empty, as `git diff` shows a file added or deleted;
    // with neither side there is nothing to compare.
    let (before, after) = match (before, after) {
        (Err(e), Err(other)) if is_absent(&e) && is_absent(&other) => return Err(e),
        (before, after) => (absent_as_none(before)?, absent_as_none(after)?),
    };
    let empty = ChunkHash::of(b"");
    let chunks = |m: &Option<Manifest>| m.as_ref().map_or(&[][..], |m| &m.chunks[..]).to_vec();
    Ok(DiffStats::between(
        &chunks(&before),
        &chunks(&after),
        before.as_ref().map_or(empty, |m| m.sha256),
        after.as_ref().map_or(empty, |m| m.sha256),
    ))
}

/// `Ok(None)` for a manifest that is not there (at a revision, or in the working tree).
fn absent_as_none(manifest: Result<Manifest>) -> Result<Option<Manifest>> {
    match manifest {
        Ok(manifest) => Ok(Some(manifest)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_absent(error: &Error) -> bool {
    matches!(error, Error::NoManifestAt { .. } | Error::NoManifest { .. })
}

/// Every manifest in every commit reachable from any ref or reflog entry (and the index).
/// Invalid ones are left out (see [`history_manifests`]).
pub fn all_history_manifests(repo: &Repo) -> Result<Vec<Manifest>> {
    Ok(history_manifests(repo)?.0)
}

/// A manifest in Git history that does not parse.
#[derive(Clone, Debug)]
pub struct InvalidManifest {
    /// A path the manifest has in history.
    pub path: String,
    /// The SHA-256 of its bytes.
    pub id: crate::chunk::ChunkHash,
    /// What is wrong with it.
    pub error: String,
}

/// [`all_history_manifests`], and the manifests that do not parse.
pub fn history_manifests(repo: &Repo) -> Result<(Vec<Manifest>, Vec<InvalidManifest>)> {
    let Ok(git) = Git::open(&repo.root) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    for (path, bytes) in git.all_blobs_with_suffix(SUFFIX)? {
        match Manifest::parse(&bytes) {
            Ok(manifest) => valid.push(manifest),
            Err(e) => invalid.push(InvalidManifest {
                path,
                id: crate::chunk::ChunkHash::of(&bytes),
                error: e.to_string(),
            }),
        }
    }
    Ok((valid, invalid))
}
