//! The block of `.gitignore` that NeuroShard manages: `.shard/` and every tracked file, never
//! a manifest. Lines outside the block are the user's and are never touched.

use std::collections::HashSet;
use std::io;

use fs_err as fs;

use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::manifest;
use crate::repo::{self, Repo};

const BEGIN: &str = "# >>> neuroshard: managed by `nshard` (edit outside this block)";
const END: &str = "# <<< neuroshard";

/// Writes (or rewrites) the managed block. Returns the entries written.
pub fn write_block(repo: &Repo) -> Result<Vec<String>> {
    let path = repo.root.join(".gitignore");
    let existing = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let entries = entries(repo)?;
    let text = splice(&existing, &entries);
    if text != existing {
        write_atomic(&path, text.as_bytes())?;
    }
    Ok(entries)
}

/// Of the repository's `files` (repository-relative), those `git add -A` would store in Git
/// itself (see [`Git::would_add`](crate::git::Git::would_add)): worth a warning, so none
/// outside a Git work tree or when Git cannot tell.
#[must_use]
pub fn git_would_add(repo: &Repo, files: &[String]) -> Vec<String> {
    let Ok(git) = crate::git::Git::open(&repo.root) else {
        return Vec::new();
    };
    let Some(prefix) = git.relative(&repo.root) else {
        return Vec::new();
    };
    let in_git = |file: &String| {
        if prefix.is_empty() {
            file.clone()
        } else {
            format!("{prefix}/{file}")
        }
    };
    let listed: Vec<String> = files.iter().map(in_git).collect();
    match git.would_add(&listed) {
        Ok(adds) => {
            let adds: std::collections::HashSet<String> = adds.into_iter().collect();
            files
                .iter()
                .zip(&listed)
                .filter(|(_, listed)| adds.contains(listed.as_str()))
                .map(|(file, _)| file.clone())
                .collect()
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not ask Git what it ignores");
            Vec::new()
        }
    }
}

/// Whether `.gitignore` holds the managed block (`nshard git-init` ran).
#[must_use]
pub fn has_block(repo: &Repo) -> bool {
    fs::read_to_string(repo.root.join(".gitignore")).is_ok_and(|text| text.contains(BEGIN))
}

/// Rewrites the block only if `nshard git-init` created one.
pub fn refresh_if_managed(repo: &Repo) -> Result<()> {
    let path = repo.root.join(".gitignore");
    match fs::read_to_string(&path) {
        Ok(text) if text.contains(BEGIN) => write_block(repo).map(drop),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Rewrites a managed block that lacks the line of one of `files` (just committed); a block
/// that lists them all is left alone, without walking the repository again.
pub fn ensure_listed(repo: &Repo, files: &[&str]) -> Result<()> {
    let path = repo.root.join(".gitignore");
    let text = match fs::read_to_string(&path) {
        Ok(text) if text.contains(BEGIN) => text,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let lines: HashSet<&str> = text.lines().collect();
    let listed = |file: &&str| {
        let line = format!("/{}", one_line(&repo::escape_glob(file)));
        lines.contains(line.as_str())
    };
    if files.iter().all(listed) {
        return Ok(());
    }
    write_block(repo).map(drop)
}

/// `/.shard/`, each tracked pattern and committed file (anchored at the root), the temporary
/// files of checkouts, and final re-includes of Git's and NeuroShard's configuration files and
/// of manifests, so no pattern can hide one from Git.
fn entries(repo: &Repo) -> Result<Vec<String>> {
    let mut entries = vec![format!("/{}/", crate::repo::SHARD_DIR)];
    let mut seen: HashSet<String> = entries.iter().cloned().collect();
    let mut add = |entry: String| {
        if seen.insert(entry.clone()) {
            entries.push(entry);
        }
    };
    for pattern in &repo.tracked_patterns() {
        add(format!("/{}", one_line(pattern)));
        // `dir/**` also excludes the directories below `dir`, and Git never re-includes a file
        // (a manifest) whose parent directory is excluded. Let those directories back in: every
        // file below them is still matched by the pattern itself.
        if pattern.ends_with("/**") {
            add(format!("!/{}/", one_line(pattern)));
        } else if crate::repo::is_glob(pattern) {
            // Only files are tracked: `m/*` must not hide the directories it also matches
            // (and everything in them) from Git.
            add(format!("!/{}/", one_line(pattern)));
        }
    }
    for tracked in repo.tracked()? {
        add(format!("/{}", one_line(&repo::escape_glob(&tracked.path))));
    }
    // A file a checkout is writing, or one a crash left (the next checkout of it removes it).
    entries.push(format!(".*{}*.tmp", crate::fsutil::REBUILD_MARK));
    // Git's and NeuroShard's own files stay visible whatever a pattern (`*`) matches.
    entries.extend(
        crate::repo::walk::CONFIG_FILES
            .iter()
            .map(|f| format!("!{f}")),
    );
    entries.push(format!("!*{}", manifest::SUFFIX));
    Ok(entries)
}

/// `pattern` on one line: a line break in a file name would end the entry and start another
/// (a bare `*` would ignore everything), so each becomes `?`, which matches it.
fn one_line(pattern: &str) -> String {
    pattern.replace(['\n', '\r'], "?")
}

fn splice(existing: &str, entries: &[String]) -> String {
    let mut block = String::new();
    block.push_str(BEGIN);
    block.push('\n');
    for entry in entries {
        block.push_str(entry);
        block.push('\n');
    }
    block.push_str(END);
    block.push('\n');
    if let (Some(start), Some(end)) = (existing.find(BEGIN), existing.find(END))
        && start < end
    {
        let after = &existing[end + END.len()..];
        let after = after.strip_prefix('\n').unwrap_or(after);
        return format!("{}{block}{after}", &existing[..start]);
    }
    let mut text = existing.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&block);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_keeps_user_lines_and_replaces_the_block() {
        let first = splice("target/\n", &["/.shard/".into()]);
        assert!(first.starts_with("target/\n# >>> neuroshard"));
        let second = splice(
            &format!("{first}*.log\n"),
            &["/.shard/".into(), "/a.bin".into()],
        );
        assert_eq!(second.matches(BEGIN).count(), 1);
        assert!(second.contains("/a.bin\n"));
        assert!(second.ends_with("*.log\n"));
        assert!(second.starts_with("target/\n"));
    }
}
