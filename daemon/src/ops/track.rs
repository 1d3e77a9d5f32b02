//! `nshard track` / `untrack`: edit the tracked patterns and keep `.gitignore` current.

use std::path::Path;

use crate::error::{Error, Result};
use crate::ops::gitignore;
use crate::repo::{self, Repo};

/// Adds patterns (relative to `cwd`). Plain paths must exist; a directory tracks everything
/// below it. Returns the patterns that were new.
pub fn track(repo: &mut Repo, cwd: &Path, args: &[String]) -> Result<Vec<String>> {
    let mut added = Vec::new();
    for arg in args {
        let pattern = to_pattern(repo, cwd, arg)?;
        if !repo.config.track.patterns.contains(&pattern) {
            repo.config.track.patterns.push(pattern.clone());
            added.push(pattern);
        }
    }
    repo.save_config()?;
    gitignore::refresh_if_managed(repo)?;
    Ok(added)
}

/// Removes patterns (given as they were tracked, relative to `cwd`). Returns those removed.
pub fn untrack(repo: &mut Repo, cwd: &Path, args: &[String]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for arg in args {
        let rel = repo.relative(cwd, arg)?;
        let candidates = [rel.clone(), format!("{rel}/**")];
        let before = repo.config.track.patterns.len();
        repo.config
            .track
            .patterns
            .retain(|p| !candidates.contains(p));
        if repo.config.track.patterns.len() == before {
            return Err(Error::NotTracked { path: rel });
        }
        removed.push(rel);
    }
    repo.save_config()?;
    gitignore::refresh_if_managed(repo)?;
    Ok(removed)
}

fn to_pattern(repo: &Repo, cwd: &Path, arg: &str) -> Result<String> {
    let rel = repo.relative(cwd, arg)?;
    if rel.is_empty()
        || rel == repo::SHARD_DIR
        || rel.starts_with(".shard/")
        || rel.starts_with(".git/")
    {
        return Err(Error::OutsideRepository {
            path: cwd.join(arg),
            root: repo.root.clone(),
        });
    }
    if repo::is_glob(&rel) {
        repo::check_pattern(&rel)?;
        return Ok(rel);
    }
    let path = repo.abs(&rel);
    if path.is_dir() {
        Ok(format!("{rel}/**"))
    } else if path.is_file() {
        Ok(rel)
    } else {
        Err(Error::PathNotFound { path: rel })
    }
}
