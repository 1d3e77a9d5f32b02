//! Reading a repository's Git history through the `git` command (the user's own Git, so every
//! repository layout it supports works: worktrees, submodules, alternates).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Why Git could not answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory is not inside a Git work tree.
    #[error("{} is not a Git repository, so it has no history (run `git init` to start one)", .0.display())]
    NotGit(std::path::PathBuf),
    /// `git` is not installed.
    #[error("cannot run git: is it installed and on PATH?")]
    Spawn(#[source] std::io::Error),
    /// A revision that does not resolve.
    #[error("`{0}` is not a revision in this repository")]
    BadRevision(String),
    /// Git failed.
    #[error("git {args} failed: {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// What Git printed.
        stderr: String,
    },
}

/// One commit touching a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Full commit id.
    pub commit: String,
    /// Author date, ISO 8601.
    pub date: String,
    /// First line of the message.
    pub subject: String,
    /// The path the manifest had in that commit (follows renames).
    pub path: String,
}

/// A Git work tree.
#[derive(Clone, Debug)]
pub struct Git {
    root: std::path::PathBuf,
}

impl Git {
    /// The Git work tree containing `dir`, if any.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let out = run(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| match e {
            Error::Failed { .. } => Error::NotGit(dir.to_path_buf()),
            other => other,
        })?;
        Ok(Self {
            root: std::path::PathBuf::from(out.trim_end()),
        })
    }

    fn git(&self, args: &[&str]) -> Result<String, Error> {
        run(&self.root, args)
    }

    /// The full commit id `rev` names.
    pub fn resolve(&self, rev: &str) -> Result<String, Error> {
        let spec = format!("{rev}^{{commit}}");
        self.git(&["rev-parse", "--verify", "--quiet", &spec])
            .map(|s| s.trim().to_owned())
            .map_err(|_| Error::BadRevision(rev.to_owned()))
    }

    /// The bytes of `path` (relative to the work-tree root) at `rev`, or `None` when the
    /// file does not exist there.
    pub fn show(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let commit = self.resolve(rev)?;
        let spec = format!("{commit}:{path}");
        let output = Command::new("git")
            .current_dir(&self.root)
            .args(["cat-file", "blob", &spec])
            .stderr(Stdio::null())
            .output()
            .map_err(Error::Spawn)?;
        Ok(output.status.success().then_some(output.stdout))
    }

    /// True when `ancestor` is `commit` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, commit: &str) -> Result<bool, Error> {
        let status = Command::new("git")
            .current_dir(&self.root)
            .args(["merge-base", "--is-ancestor", ancestor, commit])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(Error::Spawn)?;
        Ok(status.success())
    }

    /// Commits that changed `path` (newest first), following renames.
    pub fn log(&self, path: &str) -> Result<Vec<LogEntry>, Error> {
        let out = match self.git(&[
            "log",
            "--follow",
            // A merge that changed the file is one of its versions too (a conflicted one
            // included); without this, --follow leaves merges out.
            "--diff-merges=first-parent",
            "--name-only",
            "--format=%x1e%H%x1f%aI%x1f%s",
            "--",
            path,
        ]) {
            Ok(out) => out,
            // A repository without commits has no history yet: that is an empty log.
            Err(Error::Failed { stderr, .. }) if stderr.contains("does not have any commits") => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for record in out.split('\u{1e}').filter(|r| !r.trim().is_empty()) {
            let mut lines = record.lines();
            let header = lines.next().unwrap_or_default();
            let mut fields = header.split('\u{1f}');
            let (Some(commit), Some(date), Some(subject)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let file = lines
                .find(|l| !l.trim().is_empty())
                .unwrap_or(path)
                .trim()
                .to_owned();
            entries.push(LogEntry {
                commit: commit.into(),
                date: date.into(),
                subject: subject.into(),
                path: file,
            });
        }
        Ok(entries)
    }

    /// The contents of every blob whose path ends with `suffix` in every commit reachable from
    /// any ref (branches, tags, stash) or reflog entry, deduplicated by blob id, each with a
    /// path it has there.
    pub fn all_blobs_with_suffix(&self, suffix: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let listing = self.git(&[
            "rev-list",
            "--objects",
            "--all",
            "--reflog",
            "--indexed-objects",
        ])?;
        let mut ids: Vec<String> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |id: &str, path: &str| {
            if path.ends_with(suffix) && seen.insert(id.to_owned()) {
                ids.push(id.to_owned());
                paths.push(path.to_owned());
            }
        };
        for line in listing.lines() {
            if let Some((id, path)) = line.split_once(' ') {
                add(id, path);
            }
        }
        for (id, path) in self.versions_written(&["--all", "--reflog"], suffix)? {
            add(&id, &path);
        }
        let pathspec = format!("*{suffix}");
        let staged = self.git(&["ls-files", "--stage", "--", &pathspec])?;
        for line in staged.lines() {
            // `<mode> <id> <stage><TAB>path`
            if let Some((meta, path)) = line.split_once('\t')
                && let Some(id) = meta.split_whitespace().nth(1)
            {
                add(id, path);
            }
        }
        Ok(paths.into_iter().zip(self.cat_blobs(&ids)?).collect())
    }

    /// The contents of every blob whose path ends with `suffix` in the commits that
    /// `git rev-list <revisions>` selects (e.g. `<new>`, `^<old>`).
    pub fn blobs_in_revisions(
        &self,
        revisions: &[String],
        suffix: &str,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let mut args = vec!["rev-list", "--objects"];
        args.extend(revisions.iter().map(String::as_str));
        let listing = self.git(&args)?;
        let revisions: Vec<&str> = revisions.iter().map(String::as_str).collect();
        let written = self.versions_written(&revisions, suffix)?;
        let mut seen = HashSet::new();
        let ids: Vec<String> = listing
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(id, path)| (id.to_owned(), path.to_owned()))
            .chain(written)
            .filter(|(id, path)| path.ends_with(suffix) && seen.insert(id.clone()))
            .map(|(id, _)| id)
            .collect();
        self.cat_blobs(&ids)
    }

    /// (blob id, path) of every version written at a path ending with `suffix` by the commits
    /// `revisions` select, from their diffs. `rev-list --objects` names each blob once, by the
    /// first path it meets it at, so a manifest also committed under another name (a copy, a
    /// directory remote's `manifests/ab/<id>` inside the work tree) is only found this way.
    fn versions_written(
        &self,
        revisions: &[&str],
        suffix: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let pathspec = format!("*{suffix}");
        let mut args = vec![
            "log",
            "-m",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--format=",
        ];
        args.extend_from_slice(revisions);
        args.extend(["--", &pathspec]);
        let changes = self.git(&args)?;
        Ok(changes
            .lines()
            .filter_map(|line| {
                // `:100644 100644 <old> <new> M<TAB>path`; a deletion's new id is all zeros.
                let (meta, path) = line.split_once('\t')?;
                let new = meta.split_whitespace().nth(3)?;
                (!new.bytes().all(|b| b == b'0')).then(|| (new.to_owned(), path.to_owned()))
            })
            .collect())
    }

    /// Paths ending with `suffix` that differ between `old` and `new` (root-relative); every
    /// such path in `new` when `old` is the all-zero id (a fresh clone).
    pub fn changed_paths(&self, old: &str, new: &str, suffix: &str) -> Result<Vec<String>, Error> {
        let listing = if old.bytes().all(|b| b == b'0') {
            self.git(&["ls-tree", "-r", "--name-only", new])?
        } else {
            self.git(&[
                "diff",
                "--name-only",
                "--no-renames",
                "--diff-filter=AMR",
                old,
                new,
            ])?
        };
        Ok(listing
            .lines()
            .filter(|p| p.ends_with(suffix))
            .map(str::to_owned)
            .collect())
    }

    /// The absolute path of a root-relative Git path.
    #[must_use]
    pub fn abs(&self, path: &str) -> std::path::PathBuf {
        self.root.join(path)
    }

    /// Reads blobs with one `git cat-file --batch`.
    fn cat_blobs(&self, ids: &[String]) -> Result<Vec<Vec<u8>>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut child = Command::new("git")
            .current_dir(&self.root)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(Error::Spawn)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input: String = ids.iter().flat_map(|id| [id.as_str(), "\n"]).collect();
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut blobs = Vec::with_capacity(ids.len());
        let mut header = String::new();
        for _ in ids {
            header.clear();
            if reader.read_line(&mut header).map_err(Error::Spawn)? == 0 {
                break;
            }
            let size: usize = match header
                .split_whitespace()
                .nth(2)
                .and_then(|s| s.parse().ok())
            {
                Some(size) => size,
                None => continue, // "<id> missing"
            };
            let mut blob = vec![0; size + 1]; // plus the trailing newline
            reader.read_exact(&mut blob).map_err(Error::Spawn)?;
            blob.truncate(size);
            blobs.push(blob);
        }
        let _ = writer.join();
        let _ = child.wait();
        Ok(blobs)
    }

    /// Of `paths` (relative to the work-tree root), those a `git add -A` would take into Git
    /// itself: untracked and not ignored, or already in Git's index.
    pub fn would_add(&self, paths: &[String]) -> Result<Vec<String>, Error> {
        let untracked = self.git(&["ls-files", "-z", "--others", "--exclude-standard"])?;
        let indexed = self.git(&["ls-files", "-z", "--cached"])?;
        let listed: std::collections::HashSet<&str> = untracked
            .split('\0')
            .chain(indexed.split('\0'))
            .filter(|p| !p.is_empty())
            .collect();
        Ok(paths
            .iter()
            .filter(|p| listed.contains(p.as_str()))
            .cloned()
            .collect())
    }

    /// The path of `abs` relative to the work-tree root, `/`-separated.
    #[must_use]
    pub fn relative(&self, abs: &Path) -> Option<String> {
        let rel = abs.strip_prefix(&self.root).ok()?;
        Some(
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }

    /// The `.git` directory's hooks folder (honours `core.hooksPath` and worktrees).
    pub fn hooks_dir(&self) -> Result<std::path::PathBuf, Error> {
        let out = self.git(&["rev-parse", "--git-path", "hooks"])?;
        Ok(self.root.join(out.trim()))
    }
}

fn run(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let output = Command::new("git")
        .current_dir(dir)
        // Paths as they are: by default Git prints `uni/\303\251.bin` in quotes for
        // `uni/é.bin`, which matches no file.
        .args(["-c", "core.quotePath=false"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::Spawn)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
