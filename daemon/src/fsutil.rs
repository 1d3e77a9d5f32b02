//! Atomic file replacement: write a temporary sibling, fsync it, rename it over the target
//! (large working files rebuilt from the store skip the fsync).
//!
//! Readers (and a crash at any moment) see either the old file or the new one, never a mix.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically and durably, keeping the old file's permissions if
/// it had any.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = durable_sibling(path, bytes)?;
    persist_rebuildable(tmp, path)
}

/// `bytes` in a [`temp_sibling`] of `path`, flushed to disk: the first half of
/// [`write_atomic`], for work that writes many files from several threads and puts them in
/// place in order, with [`persist_rebuildable`] (the rename then costs no wait for the disk).
pub fn durable_sibling(path: &Path, bytes: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut tmp = temp_sibling(path)?;
    tmp.write_all(bytes).map_err(|e| with_path(e, tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| with_path(e, tmp.path()))?;
    Ok(tmp)
}

/// A temporary file in the same directory as `path` (so the final rename is atomic), named
/// `.<file name>.<random>.tmp` so it is obviously ours if a crash leaves it behind.
pub fn temp_sibling(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let (dir, name) = split(path);
    tempfile::Builder::new()
        .prefix(&format!(".{}.", temp_stem(&name)))
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
/// `.<file name>.nshard-<random>.tmp`. A crash mid-write leaves one behind: remove those of
/// earlier rebuilds first with [`LeftoverTemps::remove_for`].
pub fn rebuild_sibling(path: &Path) -> io::Result<tempfile::NamedTempFile> {
    let (dir, name) = split(path);
    tempfile::Builder::new()
        .prefix(&format!(".{}{REBUILD_MARK}", temp_stem(&name)))
        .rand_bytes(RANDOM_CHARS)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| with_path(e, dir))
}

/// The [`rebuild_sibling`] temporaries that crashed rebuilds left behind, found by listing each
/// directory once: a checkout of thousands of files in one directory lists it once, not once
/// per file. Only use it while holding the repository's lock, so that none of them is still
/// being written.
#[derive(Debug, Default)]
pub struct LeftoverTemps {
    /// Names of the temporaries not yet removed, by directory.
    by_dir: HashMap<PathBuf, Vec<String>>,
}

impl LeftoverTemps {
    /// Deletes the temporaries left by earlier rebuilds of `path`.
    pub fn remove_for(&mut self, path: &Path) {
        let (dir, name) = split(path);
        let prefix = format!(".{}{REBUILD_MARK}", temp_stem(&name));
        let found = self
            .by_dir
            .entry(dir.to_path_buf())
            .or_insert_with(|| rebuild_temps_in(dir));
        found.retain(|temp| {
            let stale = temp
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".tmp"))
                .is_some_and(is_random_part);
            if stale {
                let temp = dir.join(temp);
                tracing::info!(path = %temp.display(), "removing a leftover temporary file");
                let _ = std::fs::remove_file(temp);
            }
            !stale
        });
    }
}

/// Names of the [`rebuild_sibling`] temporaries in `dir` (none if it cannot be listed).
fn rebuild_temps_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_rebuild_temp(name))
        .collect()
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

/// Longest part of a file's name a temporary file's name repeats: names may have 255 bytes,
/// and a temporary adds up to 19 to its file's name.
const MAX_TEMP_STEM: usize = 200;

/// `name`, cut to [`MAX_TEMP_STEM`] bytes (at a character boundary) for a temporary's name.
fn temp_stem(name: &str) -> &str {
    let mut end = name.len().min(MAX_TEMP_STEM);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
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

/// Renames `tmp` to `path` without waiting for the disk, keeping `path`'s permissions if it
/// exists: for a [`durable_sibling`], already on disk, and for working files rebuilt from the
/// store, as `git checkout` writes them. Readers
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_a_file_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let keep = [
            ".b.bin.nshard-Xy12Zw.tmp",   // another file's, until that file is rebuilt
            ".a.bin.nshard-toolong1.tmp", // not a name we make
            "a.bin.nshard-Ab12Cd.tmp",    // not hidden: a user's file
            "notes.txt",
        ];
        for name in keep.iter().chain(&[".a.bin.nshard-Ab12Cd.tmp"]) {
            std::fs::write(dir.path().join(name), b"x").expect("written");
        }
        let mut leftovers = LeftoverTemps::default();
        leftovers.remove_for(&dir.path().join("a.bin"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("listed")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .into_string()
                    .expect("UTF-8")
            })
            .collect();
        left.sort_unstable();
        let mut expected = keep.map(str::to_owned).to_vec();
        expected.sort_unstable();
        assert_eq!(left, expected);

        // The directory was listed once: a temporary made since then is a rebuild in progress.
        let fresh = rebuild_sibling(&dir.path().join("a.bin")).expect("created");
        leftovers.remove_for(&dir.path().join("a.bin"));
        assert!(fresh.path().exists());
        leftovers.remove_for(&dir.path().join("b.bin"));
        assert!(!dir.path().join(".b.bin.nshard-Xy12Zw.tmp").exists());
    }

    #[test]
    fn files_with_the_longest_names_get_temporaries_and_replacements() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // 255 bytes, the limit, with multi-byte characters around the cut.
        let name = format!("{}.bin", "é".repeat(125)) + "x";
        assert_eq!(name.len(), 255);
        let path = dir.path().join(&name);
        write_atomic(&path, b"model").expect("replaced atomically");
        assert_eq!(std::fs::read(&path).expect("read"), b"model");

        let stale = dir
            .path()
            .join(format!(".{}{REBUILD_MARK}Ab12Cd.tmp", temp_stem(&name)));
        std::fs::write(&stale, b"x").expect("written");
        LeftoverTemps::default().remove_for(&path);
        assert!(!stale.exists(), "the leftover of a long name was kept");
        let tmp = rebuild_sibling(&path).expect("a temporary beside the longest name");
        persist_rebuildable(tmp, &path).expect("renamed");
    }
}
