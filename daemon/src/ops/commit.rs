//! `nshard commit`: chunk and store every changed tracked file, then write its manifest.

use std::sync::Arc;

use crate::chunk::cdc::Chunking;
use crate::error::{Error, Result};
use crate::fsutil::{durable_sibling, persist_rebuildable, write_atomic};
use crate::index::{FileStamp, Index, SyncState};
use crate::manifest::{self, Manifest};
use crate::ops::Reporter;
use crate::ops::hashing::{Hashed, SMALL_FILE_BYTES, Storing, hash_file};
use crate::repo::Repo;
use crate::repo::walk::Tracked;

/// What to commit.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Stored in each manifest written.
    pub message: String,
    /// Repository-relative files to restrict the commit to; empty means all tracked files.
    pub paths: Vec<String>,
    /// RFC 3339 timestamp for the manifests.
    pub created_at: String,
}

/// One file whose manifest was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The manifest written.
    pub manifest: Manifest,
    /// Chunks stored for the first time.
    pub new_chunks: u64,
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Files whose manifest was (re)written.
    pub committed: Vec<Committed>,
    /// Files already committed as they are.
    pub unchanged: u32,
    /// Chunks stored for the first time.
    pub new_chunks: u64,
    /// Chunks that were already stored.
    pub reused_chunks: u64,
    /// Content bytes in new chunks.
    pub new_bytes: u64,
    /// Bytes written to the store.
    pub stored_bytes: u64,
    /// Committed files that `git add -A` would store in Git itself (no `nshard git-init`).
    pub git_would_add: Vec<String>,
}

/// A file to commit, as the cheap first pass found it.
struct Planned {
    /// Repository-relative path.
    file: String,
    /// Its manifest's path.
    manifest_rel: String,
    /// The manifest it has now.
    previous: Option<Arc<Manifest>>,
    /// The file's stamp when planned.
    stamp: FileStamp,
    /// Whether the index already records the file as in step with `previous`.
    in_step: bool,
}

/// One `stat` and one manifest lookup per file, and every refusal that can be made before
/// anything is written: an unusable manifest, something other than a file where a new
/// manifest belongs, and a file that is only behind its manifest (committing it would quietly
/// record the older version again over a teammate's newer one).
fn plan(repo: &Repo, index: &Index, candidates: Vec<Tracked>) -> Result<Vec<Planned>> {
    let mut planned = Vec::with_capacity(candidates.len());
    for Tracked {
        path: file,
        has_manifest,
        ..
    } in candidates
    {
        let manifest_rel = format!("{file}{}", manifest::SUFFIX);
        let previous = if has_manifest {
            Some(index.manifest(repo, &file)?)
        } else {
            check_manifest_slot(repo, &manifest_rel)?;
            None
        };
        let stamp = FileStamp::read(&repo.abs(&file))?;
        let sync = previous.as_ref().map_or(SyncState::Unknown, |p| {
            index.sync_state(&file, &stamp, &p.sha256)
        });
        if sync == SyncState::Outdated {
            return Err(Error::Outdated { path: file });
        }
        planned.push(Planned {
            file,
            manifest_rel,
            previous,
            stamp,
            in_step: sync == SyncState::InStep,
        });
    }
    Ok(planned)
}

/// Refuses a directory or symbolic link where the manifest `manifest_rel` belongs: a manifest
/// can only replace a manifest.
fn check_manifest_slot(repo: &Repo, manifest_rel: &str) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(repo.abs(manifest_rel)) else {
        return Ok(());
    };
    let kind = if meta.is_dir() {
        "directory"
    } else if meta.file_type().is_symlink() {
        "symbolic link"
    } else {
        return Ok(());
    };
    Err(Error::NotAFile {
        path: manifest_rel.to_owned(),
        kind,
    })
}

/// What the look at one planned file found, off the committing thread.
enum Found {
    /// Committed as it is, every chunk stored.
    Unchanged,
    /// Its chunks and digest: from the daemon's background work, or read just now (a small
    /// file, already stored). When they make a new version, its manifest is already written
    /// beside its place and on disk: the committing thread only renames it, and the waits for
    /// the disk of many small files overlap.
    Hashed(Hashed, Option<tempfile::NamedTempFile>),
    /// A large file: read by the committing thread, which shows its progress.
    Large,
}

/// Files looked at ahead of the one being committed (their results wait in memory).
const LOOKAHEAD: usize = 64;

/// Threads looking at files, per core. A small file's work is mostly waiting for the disk: for
/// its manifest to be flushed (a journal commit each on ext4), or for a file not in the page
/// cache. With more of those waits in flight, the filesystem groups the flushes: 20,000 small
/// files committed in 6.1 s instead of 9.9 s with one thread per core (ext4 with a journal, two
/// cores). A large file is read by the committing thread; these threads then wait.
const THREADS_PER_CORE: usize = 4;

/// Commits the tracked files selected by `options`. Small files are read and stored on every
/// core at once, a large one by all cores in turn (see [`hash_file`]); manifests are written
/// and recorded in order, and the first failure stops the commit there, as if it had run file
/// by file.
pub fn commit(
    repo: &Repo,
    index: &Index,
    options: &CommitOptions,
    reporter: &mut Reporter,
) -> Result<CommitReport> {
    let planned = plan(repo, index, select(repo, &options.paths)?)?;
    commit_planned(repo, index, options, &planned, reporter)
}

/// Commits the planned files: see [`commit`].
fn commit_planned(
    repo: &Repo,
    index: &Index,
    options: &CommitOptions,
    planned: &[Planned],
    reporter: &mut Reporter,
) -> Result<CommitReport> {
    let mut report = CommitReport::default();
    let mut next = planned.iter();
    crate::ops::parallel::ordered(
        planned,
        crate::ops::parallel::workers() * THREADS_PER_CORE,
        LOOKAHEAD,
        |planned| look_at(repo, index, options, planned),
        |found| {
            let planned = next.next().expect("one result per planned file");
            record(repo, index, options, planned, found, &mut report, reporter)
        },
    )?;
    // Every committed file gets its line in the managed block (a pattern added to
    // .shard/config.toml by hand has none until now).
    let committed: Vec<&str> = report
        .committed
        .iter()
        .map(|c| c.manifest.path.as_str())
        .collect();
    crate::ops::gitignore::ensure_listed(repo, &committed)?;
    // Asking Git walks the work tree (25 ms among 1000 small files), so only while the
    // managed block is missing; a file forced into Git's index anyway is `track`'s to report.
    if !committed.is_empty() && !crate::ops::gitignore::has_block(repo) {
        let committed: Vec<String> = committed.into_iter().map(str::to_owned).collect();
        report.git_would_add = crate::ops::gitignore::git_would_add(repo, &committed);
    }
    Ok(report)
}

/// Whether `planned` is committed as it is with every chunk stored, else its chunks and digest
/// when they are at hand or cheap (a small file is read here), else [`Found::Large`].
fn look_at(
    repo: &Repo,
    index: &Index,
    options: &CommitOptions,
    planned: &Planned,
) -> Result<Found> {
    let Planned {
        file,
        previous,
        stamp,
        ..
    } = planned;
    if let Some(previous) = previous {
        // A renamed manifest still naming the old path is rewritten.
        let same_place = stamp.size == previous.size && previous.path == *file;
        if same_place
            && index.known_hash(file, stamp) == Some(previous.sha256)
            && previous
                .chunks
                .iter()
                .all(|c| repo.store.contains(&c.sha256))
        {
            return Ok(Found::Unchanged);
        }
    }
    let chunking = chunking_of(repo, planned);
    let hashed = match prepared(repo, index, file, stamp, &chunking) {
        Some(hashed) => hashed,
        None if stamp.size > SMALL_FILE_BYTES => return Ok(Found::Large),
        None => read_small(repo, index, file, &chunking)?,
    };
    let version = version(planned, options, chunking, &hashed);
    let staged = if is_new_version(planned, &version) {
        let path = repo.abs(&planned.manifest_rel);
        Some(durable_sibling(&path, version.to_json().as_bytes())?)
    } else {
        None
    };
    Ok(Found::Hashed(hashed, staged))
}

/// Reads, chunks and stores a small file (compression left for later).
fn read_small(repo: &Repo, index: &Index, file: &str, chunking: &Chunking) -> Result<Hashed> {
    let hashed = hash_file(
        &repo.abs(file),
        file,
        chunking,
        Storing::Deferred(&repo.store),
        &mut Reporter::silent(),
    )?;
    // Recorded at once: a failure further on must not leave these chunks raw for good.
    index.defer_compression(&hashed.deferred)?;
    Ok(hashed)
}

/// The manifest `hashed` makes of `planned`'s file.
fn version(
    planned: &Planned,
    options: &CommitOptions,
    chunking: Chunking,
    hashed: &Hashed,
) -> Manifest {
    Manifest {
        format: manifest::FORMAT.to_owned(),
        path: planned.file.clone(),
        size: hashed.size,
        sha256: hashed.digest(),
        chunking,
        message: options.message.clone(),
        created_at: options.created_at.clone(),
        chunks: hashed.chunks.clone(),
    }
}

/// Whether `manifest` records something its file's current manifest does not: other content,
/// or the file's path (a renamed manifest still naming the old path is rewritten).
fn is_new_version(planned: &Planned, manifest: &Manifest) -> bool {
    !planned
        .previous
        .as_ref()
        .is_some_and(|p| p.same_content(manifest) && p.path == planned.file)
}

/// The chunking `planned` is cut with: the one its manifest records, so its versions share
/// chunks even in a clone whose (never committed) config says otherwise.
fn chunking_of(repo: &Repo, planned: &Planned) -> Chunking {
    planned
        .previous
        .as_ref()
        .map_or(repo.config.chunking, |p| p.chunking)
}

/// Commits one planned file from what [`look_at`] found: its manifest written if its content
/// changed, the index told, the report counted.
fn record(
    repo: &Repo,
    index: &Index,
    options: &CommitOptions,
    planned: &Planned,
    found: Found,
    report: &mut CommitReport,
    reporter: &mut Reporter,
) -> Result<()> {
    let Planned {
        file,
        manifest_rel,
        previous,
        stamp,
        in_step,
    } = planned;
    let chunking = chunking_of(repo, planned);
    let (hashed, staged) = match found {
        Found::Unchanged => {
            let previous = previous
                .as_ref()
                .expect("only a committed file is unchanged");
            if !in_step {
                index.record_synced(file, stamp, &previous.sha256)?;
            }
            report.unchanged += 1;
            report.reused_chunks += previous.chunks.len() as u64;
            return Ok(());
        }
        Found::Hashed(hashed, staged) => {
            reporter.bytes("chunking", file, hashed.size, hashed.size);
            (hashed, staged)
        }
        Found::Large => {
            let hashed = hash_file(
                &repo.abs(file),
                file,
                &chunking,
                Storing::Deferred(&repo.store),
                reporter,
            )?;
            index.defer_compression(&hashed.deferred)?;
            (hashed, None)
        }
    };
    let synced = hashed.stamp.expect("set after hashing");
    index.record(file, &synced, &hashed.digest())?;
    report.new_chunks += hashed.new_chunks;
    report.reused_chunks += hashed.chunks.len() as u64 - hashed.new_chunks;
    report.new_bytes += hashed.new_bytes;
    report.stored_bytes += hashed.stored_bytes;
    let manifest = version(planned, options, chunking, &hashed);
    // Chunks and digest were computed from the same bytes: checkouts of this version
    // need not check the whole file again.
    index.record_assembled(&manifest.assembly_id())?;
    if !is_new_version(planned, &manifest) {
        index.record_synced(file, &synced, &manifest.sha256)?;
        report.unchanged += 1;
        return Ok(());
    }
    // A manifest that is a symbolic link is not written through.
    check_manifest_slot(repo, manifest_rel)?;
    let path = repo.abs(manifest_rel);
    match staged {
        Some(staged) => persist_rebuildable(staged, &path)?,
        None => write_atomic(&path, manifest.to_json().as_bytes())?,
    }
    index.record_synced(file, &synced, &manifest.sha256)?;
    index.forget_prepared(file)?;
    report.committed.push(Committed {
        manifest,
        new_chunks: hashed.new_chunks,
    });
    Ok(())
}

/// The daemon's background result for `file`, if it was made from the file exactly as it is
/// now, with `chunking`, and all its chunks are still stored.
fn prepared(
    repo: &Repo,
    index: &Index,
    file: &str,
    stamp: &FileStamp,
    chunking: &Chunking,
) -> Option<Hashed> {
    let p = index.prepared(file, stamp)?;
    let usable = p.chunking == *chunking && p.chunks.iter().all(|c| repo.store.contains(&c.sha256));
    usable.then(|| Hashed {
        size: p.stamp.size,
        sha256: Some(p.sha256),
        stamp: Some(p.stamp),
        new_chunks: p.new_chunks,
        new_bytes: p.new_bytes,
        stored_bytes: p.stored_bytes,
        chunks: p.chunks,
        ..Hashed::default()
    })
}

/// The existing tracked files to look at: all of them, or the named ones (each of which must
/// exist and be tracked).
fn select(repo: &Repo, paths: &[String]) -> Result<Vec<Tracked>> {
    let tracked = repo.tracked()?;
    if paths.is_empty() {
        return Ok(tracked.into_iter().filter(|t| t.exists).collect());
    }
    let mut out: Vec<Tracked> = Vec::new();
    let add = |out: &mut Vec<Tracked>, t: &Tracked| {
        if !out.iter().any(|o| o.path == t.path) {
            out.push(t.clone());
        }
    };
    for path in paths {
        let found = tracked.iter().find(|t| &t.path == path);
        match found {
            Some(t) if t.exists => add(&mut out, t),
            None if repo.abs(path).is_file() => {
                return Err(Error::NotTracked { path: path.clone() });
            }
            // A directory (the repository itself too) or a pattern: the tracked files in it or
            // matching it, like `git commit DIR`.
            None if path.is_empty() || repo.abs(path).is_dir() || crate::repo::is_glob(path) => {
                let within = crate::repo::compile_patterns(&[if crate::repo::is_glob(path) {
                    path.clone()
                } else if path.is_empty() {
                    "**".to_owned()
                } else {
                    format!("{}/**", crate::repo::escape_glob(path))
                }])?;
                let before = out.len();
                for t in tracked
                    .iter()
                    .filter(|t| t.exists && within.is_match(&t.path))
                {
                    add(&mut out, t);
                }
                if out.len() == before {
                    return Err(Error::NothingTrackedIn { path: path.clone() });
                }
            }
            Some(t) if t.has_manifest => return Err(Error::FileMissing { path: path.clone() }),
            Some(_) | None => return Err(Error::PathNotFound { path: path.clone() }),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use fs_err as fs;

    use super::*;

    #[test]
    fn a_file_that_fails_stops_the_commit_there_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut repo, _) =
            Repo::init(dir.path(), Chunking::fastcdc(64 * 1024).expect("size")).expect("init");
        let index = Index::open(&dir.path().join(".shard/index")).expect("index");
        repo.config.track.patterns.push("d/*.bin".into());
        fs::create_dir(dir.path().join("d")).expect("mkdir");
        let name = |i: usize| format!("d/f{i:02}.bin");
        for i in 0..30 {
            fs::write(
                repo.abs(&name(i)),
                vec![u8::try_from(i).expect("small"); 1000 + i],
            )
            .expect("write");
        }
        let options = CommitOptions {
            message: "m".into(),
            paths: Vec::new(),
            created_at: "2026-11-30T00:00:00Z".into(),
        };
        let planned = plan(&repo, &index, select(&repo, &[]).expect("select")).expect("plan");
        // Gone after planning: reading it fails, while the threads look at the files after it.
        fs::remove_file(repo.abs(&name(10))).expect("rm");

        let failed = commit_planned(&repo, &index, &options, &planned, &mut Reporter::silent());

        assert!(matches!(failed, Err(Error::Io(_))), "{failed:?}");
        let mut names: Vec<String> = fs::read_dir(dir.path().join("d"))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected: Vec<String> = (0..30).filter(|&i| i != 10).map(name).collect();
        expected.extend((0..10).map(|i| format!("{}{}", name(i), manifest::SUFFIX)));
        let mut expected: Vec<String> = expected
            .iter()
            .map(|p| p.trim_start_matches("d/").to_owned())
            .collect();
        expected.sort();
        assert_eq!(names, expected);
    }
}
