//! `nshard checkout`: rebuild working files from the local store. Every chunk is verified as
//! it is read, the whole file is verified before it is renamed into place, and a file whose
//! current content is stored nowhere is never overwritten without `--force`.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use fs_err as fs;
use sha2::{Digest, Sha256};

use crate::chunk::ChunkHash;
use crate::chunk::buffers::{BufferPool, PooledBuffer};
use crate::error::{Error, Result};
use crate::fsutil::{LeftoverTemps, persist_rebuildable, rebuild_sibling, with_path};
use crate::index::{FileStamp, Index};
use crate::manifest::{ChunkRef, Manifest};
use crate::ops::hashing::SMALL_FILE_BYTES;
use crate::ops::history::all_history_manifests;
use crate::ops::status::content_hash;
use crate::ops::{Reporter, parallel};
use crate::repo::Repo;
use crate::store;

/// What a checkout did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutReport {
    /// Files written.
    pub written: Vec<String>,
    /// Files that already matched.
    pub unchanged: u32,
    /// Bytes written.
    pub bytes_written: u64,
}

/// Checks out `files` (repository-relative; each must have a manifest).
pub fn checkout(
    repo: &Repo,
    index: &Index,
    files: &[String],
    force: bool,
    reporter: &mut Reporter,
) -> Result<CheckoutReport> {
    let files = expand(repo, files)?;
    // Validate every manifest before writing anything.
    let manifests: Vec<(String, Manifest)> = files
        .iter()
        .map(|f| Ok((f.clone(), repo.read_manifest(f)?)))
        .collect::<Result<_>>()?;
    checkout_manifests(repo, index, &manifests, force, reporter)
}

/// The files named: each file as it is, a directory or a pattern as the committed files in
/// it or matching it (like `git checkout DIR`).
fn expand(repo: &Repo, files: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut committed: Option<Vec<String>> = None;
    for file in files {
        // A committed file by its exact name first, even one named like a pattern: `w[1].bin`.
        if repo.has_manifest(file) {
            out.push(file.clone());
            continue;
        }
        let pattern = if crate::repo::is_glob(file) {
            file.clone()
        } else if file.is_empty() {
            "**".to_owned()
        } else if repo.abs(file).is_dir() {
            format!("{}/**", crate::repo::escape_glob(file))
        } else {
            out.push(file.clone());
            continue;
        };
        let within = crate::repo::compile_patterns(&[pattern])?;
        let all = match &mut committed {
            Some(all) => all,
            None => committed.insert(all_files(repo)?),
        };
        let matched: Vec<String> = all.iter().filter(|f| within.is_match(f)).cloned().collect();
        if matched.is_empty() {
            return Err(Error::NothingTrackedIn { path: file.clone() });
        }
        out.extend(matched);
    }
    out.dedup();
    Ok(out)
}

/// Where a checkout gets the verified bytes of each chunk.
pub trait ChunkSource: Sync {
    /// Whether `hash` can be fetched; checked for every chunk of a file before it is written.
    fn has(&self, hash: &ChunkHash) -> bool;

    /// The bytes of `hash` (needed by `file`), in a buffer from `buffers`, verified against
    /// `hash`: a checkout relies on that alone when it skips the whole-file digest.
    fn fetch(&self, hash: &ChunkHash, file: &str, buffers: &BufferPool) -> Result<PooledBuffer>;

    /// Chunks fetched at once: one more than the cores, so that while one worker waits for
    /// its turn to write, the others keep every core busy.
    fn parallelism(&self) -> usize {
        parallel::workers() + 1
    }
}

/// The repository's own store.
impl ChunkSource for Repo {
    fn has(&self, hash: &ChunkHash) -> bool {
        self.store.contains(hash)
    }

    fn fetch(&self, hash: &ChunkHash, file: &str, buffers: &BufferPool) -> Result<PooledBuffer> {
        let (mut object, mut data) = (buffers.take(), buffers.take());
        read_chunk(self, hash, file, &mut object, &mut data)?;
        Ok(data)
    }
}

/// Writes each file as its manifest describes (manifests from the working tree or from Git
/// history alike).
pub fn checkout_manifests(
    repo: &Repo,
    index: &Index,
    manifests: &[(String, Manifest)],
    force: bool,
    reporter: &mut Reporter,
) -> Result<CheckoutReport> {
    checkout_from(repo, repo, index, manifests, force, reporter)
}

/// [`checkout_manifests`] with chunks from `source`. Like `git checkout`, it decides about
/// every file before it writes any: when one holds edits no manifest records (and `force` is
/// off) or lacks a chunk, it fails naming it and writes nothing.
pub fn checkout_from(
    repo: &Repo,
    source: &dyn ChunkSource,
    index: &Index,
    manifests: &[(String, Manifest)],
    force: bool,
    reporter: &mut Reporter,
) -> Result<CheckoutReport> {
    let mut report = CheckoutReport::default();
    let mut leftovers = LeftoverTemps::default();
    let pending = plan(
        repo,
        source,
        index,
        manifests,
        force,
        &mut report,
        &mut leftovers,
    )?;
    for Pending { file, .. } in &pending {
        let path = repo.abs(file);
        ensure_parent_inside(repo, &path)?;
        leftovers.remove_for(&path);
    }
    // Small files are rebuilt on every core at once, each by one thread, into temporary files;
    // a large one by every core in turn. Files replace the old ones in order, and the first
    // failure stops the checkout there: the files after it stay as they were.
    let buffers = BufferPool::new(2 * source.parallelism());
    let mut next = pending.iter();
    parallel::ordered(
        &pending,
        source.parallelism(),
        LOOKAHEAD,
        |pending| {
            if pending.manifest.size > SMALL_FILE_BYTES {
                return Ok::<_, Error>(None);
            }
            let unproven = unproven_assembly(index, pending.manifest);
            let rebuilt = rebuild_small_file(source, pending, repo, unproven.is_some(), &buffers)?;
            Ok(Some((unproven, rebuilt)))
        },
        |written| {
            let pending = next.next().expect("one result per pending file");
            let Pending { file, manifest, .. } = pending;
            let path = repo.abs(file);
            let unproven = if let Some((unproven, rebuilt)) = written {
                may_replace(pending, &path, force, reporter.cancelled())?;
                persist_rebuildable(rebuilt, &path)?;
                reporter.bytes(super::CHECKING_OUT, file, manifest.size, manifest.size);
                unproven
            } else {
                let unproven = unproven_assembly(index, manifest);
                write_file(
                    source,
                    file,
                    manifest,
                    &path,
                    unproven.is_some(),
                    reporter,
                    |r| may_replace(pending, &path, force, r.cancelled()),
                )?;
                unproven
            };
            // The whole file was checked: this assembly is now known to give its digest.
            if let Some(assembly) = unproven {
                index.record_assembled(&assembly)?;
            }
            let stamp = FileStamp::read(&path)?;
            index.record(file, &stamp, &manifest.sha256)?;
            note_sync(repo, index, file, &stamp, &manifest.sha256)?;
            report.bytes_written += manifest.size;
            report.written.push((*file).clone());
            Ok(())
        },
    )?;
    Ok(report)
}

/// The manifest's assembly when it is not yet known to give its digest: the whole file must
/// then be checked as it is written ([`Index::is_assembled`]), and the assembly recorded after.
fn unproven_assembly(index: &Index, manifest: &Manifest) -> Option<ChunkHash> {
    let assembly = manifest.assembly_id();
    (!index.is_assembled(&assembly)).then_some(assembly)
}

/// Small files rebuilt ahead of the one being recorded.
const LOOKAHEAD: usize = 64;

/// The last look before a rebuilt file replaces `path`: an edit made while the file was
/// rebuilt is as precious as one made before, and a client that went away (`cancelled`) must
/// not find its files replaced later.
fn may_replace(pending: &Pending<'_>, path: &Path, force: bool, cancelled: bool) -> Result<()> {
    if cancelled {
        return Err(Error::Cancelled {
            path: pending.file.clone(),
        });
    }
    if !force && stamp_if_present(path)? != pending.seen {
        return Err(Error::ChangedDuringCheckout {
            path: pending.file.clone(),
        });
    }
    Ok(())
}

/// A file a checkout is to write.
struct Pending<'a> {
    file: &'a String,
    manifest: &'a Manifest,
    /// The file's stamp when it was judged (`None`: absent); it must still match before the
    /// rebuilt file replaces it.
    seen: Option<FileStamp>,
}

/// Decides about every file before anything is written: files that already match are noted
/// (and counted in `report`, their crashed rebuilds removed through `leftovers`), the rest are
/// returned to be written. Fails, writing nothing, when a file cannot be written or replaced.
fn plan<'a>(
    repo: &Repo,
    source: &dyn ChunkSource,
    index: &Index,
    manifests: &'a [(String, Manifest)],
    force: bool,
    report: &mut CheckoutReport,
    leftovers: &mut LeftoverTemps,
) -> Result<Vec<Pending<'a>>> {
    let mut pending = Vec::new();
    let mut precious = Vec::new();
    let mut committed: Option<HashSet<ChunkHash>> = None;
    for (file, manifest) in manifests {
        let path = repo.abs(file);
        // Never written through, and never mistaken for the file: status calls it missing.
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            let kind = if meta.file_type().is_symlink() {
                Some("symbolic link")
            } else if meta.is_dir() {
                Some("directory")
            } else {
                None
            };
            if let Some(kind) = kind {
                return Err(Error::NotAFile {
                    path: file.clone(),
                    kind,
                });
            }
        }
        // Taken before anything is decided about the file: an edit at any later moment, even
        // while the checks below run, shows as a different stamp before the rename.
        let seen = stamp_if_present(&path)?;
        if path.exists() {
            let current = content_hash(repo, index, file)?;
            if current == manifest.sha256 {
                // A crashed rebuild of an up-to-date file left a copy of it: remove that too
                // (never through a directory that leads out of the repository).
                if ensure_parent_inside(repo, &path).is_ok() {
                    leftovers.remove_for(&path);
                }
                // The stamp taken first: a change since then leaves no record that matches.
                if let Some(stamp) = &seen {
                    note_sync(repo, index, file, stamp, &manifest.sha256)?;
                }
                report.unchanged += 1;
                continue;
            }
            if !force {
                let known = match &mut committed {
                    Some(known) => known,
                    None => committed.insert(committed_digests(repo)?),
                };
                if !known.contains(&current) {
                    precious.push(file.clone());
                    continue;
                }
            }
        }
        if let Some(chunk) = manifest.chunks.iter().find(|c| !source.has(&c.sha256)) {
            return Err(Error::ChunkMissing {
                hash: chunk.sha256,
                file: file.clone(),
            });
        }
        pending.push(Pending {
            file,
            manifest,
            seen,
        });
    }
    if let Some((path, others)) = precious.split_first() {
        return Err(Error::WouldOverwrite {
            path: path.clone(),
            others: others.len(),
            downloaded: false,
        });
    }
    Ok(pending)
}

/// Notes whether `file`, now holding content `sha256` as `stamp`, matches its working
/// manifest. A file checked out at another revision does not: it may be committed as a revert,
/// so it must not count as merely behind its manifest.
fn note_sync(
    repo: &Repo,
    index: &Index,
    file: &str,
    stamp: &FileStamp,
    sha256: &ChunkHash,
) -> Result<()> {
    match index.manifest(repo, file) {
        Ok(working) if working.sha256 == *sha256 => index.record_synced(file, stamp, sha256),
        _ => index.forget_synced(file),
    }
}

/// Every manifest in the working tree, as file paths.
pub fn all_files(repo: &Repo) -> Result<Vec<String>> {
    Ok(repo
        .manifests()?
        .into_iter()
        .filter_map(|m| m.strip_suffix(crate::manifest::SUFFIX).map(str::to_owned))
        .collect())
}

/// Digests of every file version a manifest records, in the working tree or in Git history:
/// content with one of these digests can always be rebuilt, so overwriting it loses nothing.
/// (Chunks alone are not enough: the daemon stores chunks of uncommitted edits in the
/// background, and nothing would name them.)
fn committed_digests(repo: &Repo) -> Result<HashSet<ChunkHash>> {
    let mut digests = HashSet::new();
    for file in all_files(repo)? {
        let _ = digests.insert(repo.read_manifest(&file)?.sha256);
    }
    digests.extend(all_history_manifests(repo)?.iter().map(|m| m.sha256));
    Ok(digests)
}

/// Creates the file's directory and makes sure it resolves inside the repository (a symlinked
/// directory must not lead a checkout outside it).
fn ensure_parent_inside(repo: &Repo, path: &Path) -> Result<()> {
    let parent = path.parent().expect("a repository file has a parent");
    fs::create_dir_all(parent)?;
    let real = fs::canonicalize(parent)?;
    if real.starts_with(&repo.root) {
        Ok(())
    } else {
        Err(Error::OutsideRepository {
            path: real,
            root: repo.root.clone(),
        })
    }
}

/// The file's stamp, `None` when there is no file.
fn stamp_if_present(path: &Path) -> Result<Option<FileStamp>> {
    match FileStamp::read(path) {
        Ok(stamp) => Ok(Some(stamp)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(with_path(e, path).into()),
    }
}

/// Rebuilds `path` in a temporary sibling and renames it into place once `may_replace`
/// agrees. Workers fetch each chunk (verified against its id by `source`) and write it at its
/// offset, while this thread takes the chunks in order. With `check_whole` it also hashes
/// them into the whole-file digest and compares that with the manifest's before the rename;
/// without it, the manifest's assembly is already known to give its digest
/// ([`Index::is_assembled`]), so verified chunks give it again and the pass is skipped.
fn write_file(
    source: &dyn ChunkSource,
    file: &str,
    manifest: &Manifest,
    path: &Path,
    check_whole: bool,
    reporter: &mut Reporter,
    may_replace: impl FnOnce(&Reporter) -> Result<()>,
) -> Result<()> {
    let tmp = rebuild_sibling(path)?;
    let out = tmp.as_file();
    reserve(out, manifest.size).map_err(|e| with_path(e, path))?;
    let mut whole = check_whole.then(Sha256::new);
    let mut done = 0u64;
    let workers = source.parallelism();
    let buffers = BufferPool::new(2 * workers + 2);
    // One writer at a time. The kernel takes writes to one file in turn anyway (the inode
    // lock), and a writer kept waiting there spins, taking a core that another worker could
    // use to decode and verify its chunk; waiting here, it sleeps.
    let write_turn = Mutex::new(());
    parallel::ordered(
        &manifest.chunks,
        workers,
        workers + 2,
        |chunk| {
            let data = source.fetch(&chunk.sha256, file, &buffers)?;
            check_chunk_size(file, chunk, &data)?;
            let turn = write_turn.lock().unwrap_or_else(PoisonError::into_inner);
            out.write_all_at(&data, chunk.offset)
                .map_err(|e| with_path(e, path))?;
            drop(turn);
            Ok::<_, Error>(data)
        },
        |data| {
            if reporter.cancelled() {
                return Err(Error::Cancelled {
                    path: file.to_owned(),
                });
            }
            if let Some(whole) = &mut whole {
                whole.update(&*data);
            }
            done += data.len() as u64;
            reporter.bytes(super::CHECKING_OUT, file, done, manifest.size);
            Ok(())
        },
    )?;
    if let Some(whole) = whole
        && ChunkHash::from_hasher(whole) != manifest.sha256
    {
        return Err(Error::FileDigestMismatch {
            file: file.to_owned(),
        });
    }
    may_replace(reporter)?;
    persist_rebuildable(tmp, path)?;
    Ok(())
}

/// Rebuilds a small file as [`write_file`] does, on this thread alone (each chunk fetched in
/// turn and appended), but leaves it in its temporary sibling: the caller renames it into
/// place once its turn comes and [`may_replace`] agrees.
fn rebuild_small_file(
    source: &dyn ChunkSource,
    pending: &Pending<'_>,
    repo: &Repo,
    check_whole: bool,
    buffers: &BufferPool,
) -> Result<tempfile::NamedTempFile> {
    let Pending { file, manifest, .. } = pending;
    let path = repo.abs(file);
    let mut tmp = rebuild_sibling(&path)?;
    reserve(tmp.as_file(), manifest.size).map_err(|e| with_path(e, &path))?;
    let mut whole = check_whole.then(Sha256::new);
    for chunk in &manifest.chunks {
        let data = source.fetch(&chunk.sha256, file, buffers)?;
        check_chunk_size(file, chunk, &data)?;
        tmp.write_all(&data).map_err(|e| with_path(e, &path))?;
        if let Some(whole) = &mut whole {
            whole.update(&*data);
        }
    }
    if let Some(whole) = whole
        && ChunkHash::from_hasher(whole) != manifest.sha256
    {
        return Err(Error::FileDigestMismatch {
            file: (*file).clone(),
        });
    }
    Ok(tmp)
}

/// The whole-file digest covers what the chunks hold, not the size the manifest claims: a
/// wrong size would leave a gap or an overlap that it cannot see.
fn check_chunk_size(file: &str, chunk: &ChunkRef, data: &[u8]) -> Result<()> {
    if data.len() == chunk.size as usize {
        return Ok(());
    }
    Err(Error::ChunkSizeMismatch {
        file: file.to_owned(),
        hash: chunk.sha256,
        offset: chunk.offset,
        declared: chunk.size,
        actual: data.len(),
    })
}

/// Sizes a new working file, reserving its blocks up front where the filesystem can. A full
/// disk then fails here, before anything is written; and on ext4 a file whose blocks are
/// already allocated replaces the old one without the rename first flushing all of its data
/// (`auto_da_alloc`, a safeguard for delayed allocation), which made a large checkout over an
/// existing file take half as long again.
fn reserve(file: &std::fs::File, size: u64) -> std::io::Result<()> {
    if size > 0 {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
            Ok(()) => return Ok(()),
            // Filesystems without it (some network ones) get a plain size.
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
            Err(e) => return Err(e.into()),
        }
    }
    file.set_len(size)
}

fn read_chunk(
    repo: &Repo,
    hash: &ChunkHash,
    file: &str,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    repo.store
        .read_chunk_into(hash, scratch, out)
        .map_err(|e| match e {
            store::Error::NotFound(hash) => Error::ChunkMissing {
                hash,
                file: file.to_owned(),
            },
            store::Error::Corrupt { hash, .. } => Error::ChunkCorrupt {
                hash,
                file: file.to_owned(),
                object: repo.store.object_path(&hash),
            },
            store::Error::Io(e) => e.into(),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::chunk::cdc::Chunking;
    use crate::ops::commit::{CommitOptions, commit};

    /// The repository's chunks, with an edit of `victim` made during the first fetch: what a
    /// user saving the file while a slow pull rebuilds it looks like.
    struct EditsWhileFetching<'a> {
        repo: &'a Repo,
        victim: std::path::PathBuf,
        edited: AtomicBool,
    }

    impl ChunkSource for EditsWhileFetching<'_> {
        fn has(&self, hash: &ChunkHash) -> bool {
            self.repo.has(hash)
        }

        fn fetch(
            &self,
            hash: &ChunkHash,
            file: &str,
            buffers: &BufferPool,
        ) -> Result<PooledBuffer> {
            if !self.edited.swap(true, Ordering::SeqCst) {
                fs::write(&self.victim, b"an edit worth keeping").expect("edit");
            }
            self.repo.fetch(hash, file, buffers)
        }
    }

    /// A repository in `dir` with `a.bin` committed; returns it, its index and the content.
    fn committed_repo(dir: &Path) -> (Repo, Index, Vec<u8>) {
        let (mut repo, _) =
            Repo::init(dir, Chunking::fastcdc(64 * 1024).expect("size")).expect("init");
        let index = Index::open(&dir.join(".shard/index")).expect("index");
        repo.config.track.patterns.push("a.bin".into());
        let v1: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(dir.join("a.bin"), &v1).expect("write v1");
        let options = CommitOptions {
            message: "v1".into(),
            paths: Vec::new(),
            created_at: "2026-11-30T00:00:00Z".into(),
        };
        let _ = commit(&repo, &index, &options, &mut Reporter::silent()).expect("commit");
        (repo, index, v1)
    }

    #[test]
    fn the_whole_file_is_checked_until_its_assembly_is_known() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, index, v1) = committed_repo(dir.path());
        let manifest = repo.read_manifest("a.bin").expect("manifest");
        assert!(
            index.is_assembled(&manifest.assembly_id()),
            "commit made it"
        );
        // A clone's index knows nothing yet: its first checkout checks and remembers.
        let fresh = Index::open(&dir.path().join("fresh-index")).expect("index");
        assert!(!fresh.is_assembled(&manifest.assembly_id()));
        fs::remove_file(dir.path().join("a.bin")).expect("rm");
        let manifests = [("a.bin".to_owned(), manifest.clone())];

        let report = checkout_manifests(&repo, &fresh, &manifests, false, &mut Reporter::silent())
            .expect("checkout");

        assert_eq!(report.written, ["a.bin"]);
        assert_eq!(fs::read(dir.path().join("a.bin")).expect("read"), v1);
        assert!(fresh.is_assembled(&manifest.assembly_id()));
    }

    #[test]
    fn an_edit_made_during_the_checkout_is_kept_unless_forced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, index, v1) = committed_repo(dir.path());
        let path = dir.path().join("a.bin");
        let manifest = repo.read_manifest("a.bin").expect("manifest");
        fs::remove_file(&path).expect("rm");
        let manifests = [("a.bin".to_owned(), manifest)];
        let source = EditsWhileFetching {
            repo: &repo,
            victim: path.clone(),
            edited: AtomicBool::new(false),
        };

        let refused = checkout_from(
            &repo,
            &source,
            &index,
            &manifests,
            false,
            &mut Reporter::silent(),
        );

        assert!(
            matches!(refused, Err(Error::ChangedDuringCheckout { .. })),
            "{refused:?}"
        );
        assert_eq!(fs::read(&path).expect("read"), b"an edit worth keeping");
        let forced = checkout_from(
            &repo,
            &source,
            &index,
            &manifests,
            true,
            &mut Reporter::silent(),
        );
        assert!(forced.is_ok(), "{forced:?}");
        assert_eq!(fs::read(&path).expect("read"), v1);
    }
}
