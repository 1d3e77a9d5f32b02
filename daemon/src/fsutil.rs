//! Atomic file replacement: write a temporary sibling, fsync it, rename it over the target
//! (large working files rebuilt from the store skip the fsync).
//!
//! Readers (and a crash at any moment) see either the old file or the new one, never a mix.

use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` atomically, keeping the old file's permissions if it had any.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = temp_sibling(path)?;
    tmp.write_all(bytes).map_err(|e| with_path(e, tmp.path()))?;
    persist(tmp, path)
}

/// A temporary file in the same directory as `path` (so the final rename is atomic), named
/// `.<file name>.<random>.tmp` so it is obviously ours if a crash leaves it behind.
pub fn temp_sibling(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let (dir, name) = split(path);
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| with_path(e, dir))
}

/// Marks the temporary files of [`rebuild_sibling`] (and the `.gitignore` pattern that hides
/// them from Git while a checkout writes one).
pub const REBUILD_MARK: &str = ".nshard-";

/// Random characters in a temporary file's name.
const RANDOM_CHARS: usize = 6;

/// A temporary file beside `path` for rebuilding it (a checkout), named
/// `.<file name>.nshard-<random>.tmp`. A crash mid-write leaves it behind, so temporary files
/// of earlier rebuilds of `path` are deleted first: the caller must hold the repository's lock,
/// so none of them is still being written.
pub fn rebuild_sibling(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let (dir, name) = split(path);
    let prefix = format!(".{name}{REBUILD_MARK}");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let stale = entry.file_name().to_str().is_some_and(|n| {
                n.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".tmp"))
                    .is_some_and(is_random_part)
            });
            if stale {
                tracing::info!(path = %entry.path().display(), "removing a leftover temporary file");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(RANDOM_CHARS)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| with_path(e, dir))
}

/// True for the name of a [`rebuild_sibling`] temporary file (of any file).
#[must_use]
pub fn is_rebuild_temp(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(REBUILD_MARK)
            .and_then(|(_, rest)| rest.strip_suffix(".tmp"))
            .is_some_and(is_random_part)
}

/// True for the random part of a temporary file's name.
fn is_random_part(text: &str) -> bool {
    text.len() == RANDOM_CHARS && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The directory of `path` (`.` for a bare name) and its file name.
fn split(path: &Path) -> (&Path, String) {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, name)
}

/// Flushes `tmp` to disk and renames it to `path`, keeping `path`'s permissions if it exists.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.as_file()
        .sync_all()
        .map_err(|e| with_path(e, tmp.path()))?;
    persist_rebuildable(tmp, path)
}

/// Renames `tmp` to `path` without waiting for the disk, keeping `path`'s permissions if it
/// exists: for working files rebuilt from the store, as `git checkout` writes them. Readers
/// still see the old file or the whole new one. Only a power loss within the kernel's
/// writeback delay (about 30 s) could leave the file damaged, as after any `git checkout`;
/// `nshard checkout --force` rebuilds it from the store. Waiting for the disk would more than
/// double the time of a large checkout.
pub fn persist_rebuildable(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    // tempfile creates 0600 files; a new working file gets the usual 0644 instead.
    let permissions = std::fs::metadata(path).map_or_else(
        |_| std::os::unix::fs::PermissionsExt::from_mode(0o644),
        |meta| meta.permissions(),
    );
    std::fs::set_permissions(tmp.path(), permissions).map_err(|e| with_path(e, path))?;
    let _ = tmp.persist(path).map_err(|e| with_path(e.error, path))?;
    Ok(())
}

/// Adds the path to an I/O error's message, the way fs-err does.
#[must_use]
#[expect(
    clippy::needless_pass_by_value,
    reason = "used as `map_err(|e| with_path(e, p))`"
)]
pub fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{error} ({})", path.display()))
}
