//! `nshard status`: the state of every tracked file, answered from the index plus a `stat`
//! of each file whenever the daemon already knows the content.

use crate::error::{Error, Result};
use crate::index::{FileStamp, Index};
use crate::ops::Reporter;
use crate::ops::hashing::{Storing, hash_file};
use crate::repo::Repo;

/// The state of a tracked file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Matches its manifest.
    Clean,
    /// Differs from its manifest.
    Modified,
    /// Never committed.
    New,
    /// Manifest present, file absent.
    Missing,
    /// Behind its manifest: the file is as nshard last left it, but the manifest has moved on
    /// (a `git pull`, merge or branch switch without the hooks): `nshard pull` updates it.
    Outdated,
    /// The manifest cannot be used (for example a merge left conflict markers in it); the
    /// report's `problem` says why. Every command that needs it refuses it the same way.
    Invalid,
}

/// One file's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileReport {
    /// Repository-relative path.
    pub path: String,
    /// Its state.
    pub state: State,
    /// Size of the working file.
    pub size: u64,
    /// Chunks of the manifest.
    pub chunks: u64,
    /// Chunks of the manifest missing from the local store.
    pub missing_chunks: u64,
    /// The daemon has chunked the file as it is now.
    pub prepared: bool,
    /// Why the manifest is [`State::Invalid`]; empty otherwise.
    pub problem: String,
}

/// The status of every tracked file.
pub fn status(repo: &Repo, index: &Index) -> Result<Vec<FileReport>> {
    let mut out = Vec::new();
    for tracked in repo.tracked()? {
        let path = repo.abs(&tracked.path);
        let stamp = if tracked.exists {
            Some(FileStamp::read(&path)?)
        } else {
            None
        };
        let size = stamp.map_or(0, |s| s.size);
        let prepared = stamp.is_some_and(|s| index.prepared(&tracked.path, &s).is_some());
        let mut report = FileReport {
            path: tracked.path.clone(),
            state: State::New,
            size,
            chunks: 0,
            missing_chunks: 0,
            prepared,
            problem: String::new(),
        };
        if tracked.has_manifest {
            // One broken manifest must not hide the state of every other file.
            let manifest = match index.manifest(repo, &tracked.path) {
                Ok(manifest) => manifest,
                Err(e @ Error::Manifest { .. }) => {
                    report.state = State::Invalid;
                    report.problem = e.to_string();
                    out.push(report);
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.chunks = manifest.chunks.len() as u64;
            report.missing_chunks = manifest
                .chunks
                .iter()
                .filter(|c| !repo.store.contains(&c.sha256))
                .count() as u64;
            report.state = if !tracked.exists {
                State::Missing
            } else if stamp.is_some_and(|s| index.is_outdated(&tracked.path, &s, &manifest.sha256))
            {
                State::Outdated
            } else if size != manifest.size {
                State::Modified
            } else if stamp.and_then(|s| index.known_hash(&tracked.path, &s))
                == Some(manifest.sha256)
                || content_hash(repo, index, &tracked.path)? == manifest.sha256
            {
                State::Clean
            } else {
                State::Modified
            };
        }
        out.push(report);
    }
    Ok(out)
}

/// The files that are behind their manifests ([`State::Outdated`]).
pub fn outdated_files(repo: &Repo, index: &Index) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for tracked in repo.tracked()? {
        if !(tracked.exists && tracked.has_manifest) {
            continue;
        }
        let Ok(manifest) = index.manifest(repo, &tracked.path) else {
            continue; // An unusable manifest has nothing to update the file to.
        };
        let stamp = FileStamp::read(&repo.abs(&tracked.path))?;
        if index.is_outdated(&tracked.path, &stamp, &manifest.sha256) {
            out.push(tracked.path);
        }
    }
    Ok(out)
}

/// The whole-file hash of a working file: from the index when its stamp is unchanged,
/// otherwise by reading it once (and remembering the answer).
pub fn content_hash(repo: &Repo, index: &Index, file: &str) -> Result<crate::chunk::ChunkHash> {
    let path = repo.abs(file);
    let stamp = FileStamp::read(&path)?;
    if let Some(hash) = index.known_hash(file, &stamp) {
        return Ok(hash);
    }
    let hashed = hash_file(
        &path,
        file,
        &repo.config.chunking,
        Storing::Nothing,
        &mut Reporter::silent(),
    )?;
    index.record(
        file,
        &hashed.stamp.expect("set after hashing"),
        &hashed.digest(),
    )?;
    Ok(hashed.digest())
}
