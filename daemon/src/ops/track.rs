//! `nshard track` / `untrack`: edit the tracked patterns (the team's, in the committed
//! `.shardconfig`) and keep `.gitignore` current.

use std::path::Path;

use crate::error::{Error, Result};
use crate::ops::gitignore;
use crate::repo::remotes::SharedConfig;
use crate::repo::{self, Repo};

/// Adds patterns (relative to `cwd`). Plain paths must exist; a directory tracks everything
/// below it. Returns the patterns that were new.
pub fn track(repo: &mut Repo, cwd: &Path, args: &[String]) -> Result<Vec<String>> {
    let mut added = Vec::new();
    let mut shared = SharedConfig::load(&repo.root)?;
    for arg in args {
        let pattern = to_pattern(repo, cwd, arg)?;
        if !repo.tracked_patterns().contains(&pattern) && !added.contains(&pattern) {
            shared.track.patterns.push(pattern.clone());
            added.push(pattern);
        }
    }
    if !added.is_empty() {
        shared.save(&repo.root)?;
        repo.shared_patterns = shared.track.patterns;
    }
    repo.ensure_shard_dir()?;
    gitignore::refresh_if_managed(repo)?;
    Ok(added)
}

/// What `untrack` did.
#[derive(Debug, Default)]
pub struct Untracked {
    /// Patterns removed.
    pub removed: Vec<String>,
    /// Files those patterns matched that keep their manifest, and so stay versioned.
    pub still_versioned: Vec<String>,
}

/// Removes patterns (given as they were tracked, relative to `cwd`, or as the paths they
/// track).
pub fn untrack(repo: &mut Repo, cwd: &Path, args: &[String]) -> Result<Untracked> {
    let mut removed = Vec::new();
    let mut dropped = Vec::new();
    for arg in args {
        let rel = repo.relative(cwd, arg)?;
        let literal = repo::escape_glob(&rel);
        let candidates = [
            format!("{rel}/**"),
            format!("{literal}/**"),
            literal,
            rel.clone(),
        ];
        let (gone, kept) = std::mem::take(&mut repo.config.track.patterns)
            .into_iter()
            .partition::<Vec<_>, _>(|p| candidates.contains(p));
        repo.config.track.patterns = kept;
        let (gone_shared, kept) = std::mem::take(&mut repo.shared_patterns)
            .into_iter()
            .partition::<Vec<_>, _>(|p| candidates.contains(p));
        repo.shared_patterns = kept;
        let gone: Vec<String> = gone.into_iter().chain(gone_shared).collect();
        if gone.is_empty() {
            let by_pattern = repo.tracked_patterns().into_iter().find(|p| {
                repo::compile_patterns(std::slice::from_ref(p)).is_ok_and(|set| set.is_match(&rel))
            });
            return Err(match by_pattern {
                Some(pattern) => Error::TrackedByPattern { path: rel, pattern },
                None => Error::NotUntrackable { path: rel },
            });
        }
        dropped.extend(gone);
        removed.push(rel);
    }
    repo.save_config()?;
    let mut shared = SharedConfig::load(&repo.root)?;
    if shared.track.patterns != repo.shared_patterns {
        shared.track.patterns.clone_from(&repo.shared_patterns);
        shared.save(&repo.root)?;
    }
    gitignore::refresh_if_managed(repo)?;
    // A manifest keeps its file versioned whatever the patterns say.
    let (dropped, current) = (repo::compile_patterns(&dropped)?, repo.patterns()?);
    let still_versioned = repo
        .tracked()?
        .into_iter()
        .filter(|t| t.has_manifest && dropped.is_match(&t.path) && !current.is_match(&t.path))
        .map(|t| t.path)
        .collect();
    Ok(Untracked {
        removed,
        still_versioned,
    })
}

/// The pattern `track` stores for `arg`: an existing file or directory (below it, everything)
/// exactly, with any glob syntax in its name escaped; otherwise a glob pattern.
fn to_pattern(repo: &Repo, cwd: &Path, arg: &str) -> Result<String> {
    let rel = repo.relative(cwd, arg)?;
    let refuse = |why| Error::NotTrackable {
        path: if rel.is_empty() {
            ".".to_owned()
        } else {
            rel.clone()
        },
        why,
    };
    let internal = |dir: &str| rel == dir || rel.starts_with(&format!("{dir}/"));
    if rel.is_empty() {
        return Err(refuse(
            "name files, directories or patterns inside the repository",
        ));
    }
    if internal(".git") || internal(repo::SHARD_DIR) {
        return Err(refuse("it holds Git's or NeuroShard's own data"));
    }
    if rel.contains('\\') {
        return Err(refuse(
            "a manifest records paths with `/` only, and `\\` separates directories on Windows: rename it",
        ));
    }
    let name = rel.rsplit('/').next().unwrap_or(&rel);
    if crate::repo::walk::CONFIG_FILES.contains(&name) {
        return Err(refuse(
            "Git's and NeuroShard's own configuration is versioned by Git as it is",
        ));
    }
    if rel.ends_with(crate::manifest::SUFFIX) {
        return Err(refuse("manifests are committed to Git as they are"));
    }
    match std::fs::symlink_metadata(repo.abs(&rel)) {
        Ok(meta) if meta.file_type().is_symlink() => Err(refuse(
            "it is a symbolic link, which is never followed: track the file it points to",
        )),
        Ok(meta) if meta.is_dir() => Ok(format!("{}/**", repo::escape_glob(&rel))),
        Ok(_) => Ok(repo::escape_glob(&rel)),
        Err(_) if repo::is_glob(&rel) => {
            repo::check_pattern(&rel)?;
            Ok(rel)
        }
        Err(_) => Err(Error::PathNotFound { path: rel }),
    }
}
