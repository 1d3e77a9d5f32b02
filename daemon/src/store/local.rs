//! A chunk store in a local directory: one file per chunk, written to `tmp/` and renamed into
//! `objects/ab/<hash>`, so readers only ever see complete objects. As a remote (a directory
//! remote, `shard-server` storage) it also keeps pushed manifests under `manifests/ab/<id>`,
//! and each object's mtime is its gc lease ([`LocalStore::touch`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs_err as fs;

use super::{Error, manifest_key, object_key};
use crate::chunk::{ChunkHash, codec};

/// A directory holding `objects/` and a `tmp/` staging area on the same filesystem.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

/// One stored object, as listed by [`LocalStore::list`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The chunk.
    pub hash: ChunkHash,
    /// Bytes the object takes on disk (encoded).
    pub stored_bytes: u64,
    /// When it was written.
    pub modified: SystemTime,
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory holding `objects/`.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the chunk's object lives (whether or not it exists).
    #[must_use]
    pub fn object_path(&self, hash: &ChunkHash) -> PathBuf {
        self.root.join(object_key(hash))
    }

    /// True when the chunk is stored (its content is checked when it is read, not here).
    #[must_use]
    pub fn contains(&self, hash: &ChunkHash) -> bool {
        self.object_path(hash).is_file()
    }

    /// Stores an encoded object under `hash` atomically. Returns `false` (and writes nothing)
    /// when the chunk was already stored. The caller vouches that `object` encodes `hash`.
    pub fn put_object(&self, hash: &ChunkHash, object: &[u8]) -> io::Result<bool> {
        if self.contains(hash) {
            return Ok(false);
        }
        self.write_object(hash, object)?;
        Ok(true)
    }

    /// Atomically replaces the stored object of `hash` with another encoding of the same chunk
    /// (readers see the old or the new file, both decoding to the same bytes).
    pub fn replace_object(&self, hash: &ChunkHash, object: &[u8]) -> io::Result<()> {
        self.write_object(hash, object)
    }

    fn write_object(&self, hash: &ChunkHash, object: &[u8]) -> io::Result<()> {
        self.write_atomic(&self.object_path(hash), hash, object)
    }

    /// Writes `bytes` to a temporary file in `tmp/` and renames it to `path`, so readers see
    /// the whole file or nothing. `name` prefixes the temporary file's name.
    fn write_atomic(&self, path: &Path, name: &ChunkHash, bytes: &[u8]) -> io::Result<()> {
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir)?;
        let parent = path
            .parent()
            .expect("object paths always have a fan-out directory");
        fs::create_dir_all(parent)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("{}.", &name.to_hex()[..16]))
            .tempfile_in(&tmp_dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{e} (in {})", tmp_dir.display())))?;
        tmp.write_all(bytes).map_err(|e| {
            io::Error::new(e.kind(), format!("{e} (writing {})", tmp.path().display()))
        })?;
        let _ = tmp.persist(path).map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!("{} (renaming into {})", e.error, path.display()),
            )
        })?;
        Ok(())
    }

    /// Sets the object's modification time to now, so a grace-period gc sees it as freshly
    /// written. Returns `false` when the chunk is not stored.
    pub fn touch(&self, hash: &ChunkHash) -> io::Result<bool> {
        let file = match fs::File::open(self.object_path(hash)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        file.set_modified(SystemTime::now())?;
        Ok(true)
    }

    /// When the object was last written or [touched](Self::touch); `None` when it is absent.
    pub fn modified(&self, hash: &ChunkHash) -> io::Result<Option<SystemTime>> {
        match fs::metadata(self.object_path(hash)) {
            Ok(meta) => meta.modified().map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Where a pushed manifest lives (whether or not it exists): `manifests/ab/<id>`.
    #[must_use]
    pub fn manifest_path(&self, id: &ChunkHash) -> PathBuf {
        self.root.join(manifest_key(id))
    }

    /// Stores the bytes of a pushed manifest, named by their SHA-256 `id`, atomically.
    /// Returns `false` (and writes nothing) when a sound copy was already stored; a damaged
    /// copy is replaced. The caller vouches that `id` is the SHA-256 of `bytes`.
    pub fn put_manifest(&self, id: &ChunkHash, bytes: &[u8]) -> io::Result<bool> {
        if self
            .get_manifest(id)?
            .is_some_and(|stored| ChunkHash::of(&stored) == *id)
        {
            return Ok(false);
        }
        self.write_atomic(&self.manifest_path(id), id, bytes)?;
        Ok(true)
    }

    /// The bytes of a pushed manifest; `None` when it is absent.
    pub fn get_manifest(&self, id: &ChunkHash) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.manifest_path(id)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads the encoded object of `hash`.
    pub fn get_object(&self, hash: &ChunkHash) -> Result<Vec<u8>, Error> {
        match fs::read(self.object_path(hash)) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(*hash)),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Reads the encoded object of `hash` into `out` (replacing its contents), reusing its
    /// allocation. Returns `false` (and leaves `out` empty) when the chunk is not stored.
    pub fn read_object_into(&self, hash: &ChunkHash, out: &mut Vec<u8>) -> io::Result<bool> {
        out.clear();
        let path = self.object_path(hash);
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        // Through the std file: fs-err's wrapper implements only `read`, so `read_to_end` would
        // zero the buffer's spare capacity before every read (a memset per object).
        let _ = io::Read::read_to_end(&mut file.file(), out)
            .map_err(|e| io::Error::new(e.kind(), format!("{e} (reading {})", path.display())))?;
        Ok(true)
    }

    /// Reads, decodes and verifies the chunk `hash` into `out`, reusing the allocations of
    /// `out` and of `scratch` (which holds the stored object meanwhile).
    pub fn read_chunk_into(
        &self,
        hash: &ChunkHash,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if !self.read_object_into(hash, scratch)? {
            return Err(Error::NotFound(*hash));
        }
        codec::decode_verified_into(scratch, out, hash).map_err(|source| Error::Corrupt {
            hash: *hash,
            source,
        })
    }

    /// Reads, decodes and verifies the chunk `hash`.
    pub fn read_chunk(&self, hash: &ChunkHash) -> Result<Vec<u8>, Error> {
        let object = self.get_object(hash)?;
        codec::into_verified_chunk(object, hash).map_err(|source| Error::Corrupt {
            hash: *hash,
            source,
        })
    }

    /// Encodes and stores a chunk whose hash the caller computed. Returns the bytes written,
    /// or `None` when the chunk was already stored. With `compress` false the chunk is stored
    /// raw (when the codec allows), to be compressed later off the critical path.
    pub fn put_chunk(
        &self,
        hash: &ChunkHash,
        data: &[u8],
        compress: bool,
    ) -> io::Result<Option<u64>> {
        if self.contains(hash) {
            return Ok(None);
        }
        let object = if compress {
            codec::encode(data)?
        } else {
            codec::encode_raw(data)?
        };
        Ok(self
            .put_object(hash, &object)?
            .then_some(object.len() as u64))
    }

    /// Deletes a chunk; a chunk that is already gone is not an error.
    pub fn remove(&self, hash: &ChunkHash) -> io::Result<()> {
        match fs::remove_file(self.object_path(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every stored object. Stray files (temporary names, foreign files) are skipped.
    pub fn list(&self) -> io::Result<Vec<StoredObject>> {
        self.list_fanout("objects")
    }

    /// Every pushed manifest (`hash` is its id, `stored_bytes` its length).
    pub fn list_manifests(&self) -> io::Result<Vec<StoredObject>> {
        self.list_fanout("manifests")
    }

    /// The files named by a SHA-256 under `top/ab/`, sorted. A file deleted while it is
    /// listed is left out.
    fn list_fanout(&self, top: &str) -> io::Result<Vec<StoredObject>> {
        let mut out = Vec::new();
        let fanout = match fs::read_dir(self.root.join(top)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for dir in fanout {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(dir.path())? {
                let entry = entry?;
                let Some(hash) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                out.push(StoredObject {
                    hash,
                    stored_bytes: meta.len(),
                    modified: meta.modified()?,
                });
            }
        }
        out.sort_by_key(|o| o.hash);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        let data = b"some chunk".repeat(100);
        let hash = ChunkHash::of(&data);
        assert!(store.put_chunk(&hash, &data, true).expect("put").is_some());
        assert!(
            store
                .put_chunk(&hash, &data, true)
                .expect("put again")
                .is_none()
        );
        assert_eq!(store.read_chunk(&hash).expect("read"), data);
        assert_eq!(store.list().expect("list").len(), 1);
        store.remove(&hash).expect("remove");
        assert!(matches!(store.read_chunk(&hash), Err(Error::NotFound(_))));
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).expect("tmp").count(),
            0
        );
    }

    #[test]
    fn touch_renews_the_lease_and_manifests_are_listed_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        let data = vec![7u8; 5000];
        let hash = ChunkHash::of(&data);
        assert!(!store.touch(&hash).expect("touch absent"));
        assert_eq!(store.modified(&hash).expect("stat absent"), None);
        let _ = store.put_chunk(&hash, &data, true).expect("put");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let file = fs::File::options()
            .write(true)
            .open(store.object_path(&hash))
            .expect("open");
        file.set_modified(old).expect("age");
        assert!(store.touch(&hash).expect("touch"));
        assert!(store.modified(&hash).expect("stat").expect("stored") > old);

        let id = ChunkHash::of(b"{}");
        assert!(store.put_manifest(&id, b"{}").expect("manifest"));
        assert!(!store.put_manifest(&id, b"{}").expect("again"));
        fs::write(store.manifest_path(&id), b"{} ").expect("damage");
        assert!(
            store.put_manifest(&id, b"{}").expect("repair"),
            "a damaged copy was kept"
        );
        assert_eq!(store.get_manifest(&id).expect("read"), Some(b"{}".to_vec()));
        assert_eq!(store.get_manifest(&id).expect("read"), Some(b"{}".to_vec()));
        let manifests: Vec<_> = store
            .list_manifests()
            .expect("list")
            .iter()
            .map(|m| m.hash)
            .collect();
        assert_eq!(manifests, [id]);
        assert_eq!(
            store.list().expect("list").len(),
            1,
            "manifests are not chunks"
        );
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::new(dir.path());
        let data = vec![1u8; 5000];
        let hash = ChunkHash::of(&data);
        let _ = store.put_object(&hash, &[2u8; 5000]).expect("put");
        assert!(matches!(
            store.read_chunk(&hash),
            Err(Error::Corrupt { .. })
        ));
    }
}
