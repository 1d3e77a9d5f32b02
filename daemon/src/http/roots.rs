//! The roots `shard-server gc` keeps: the manifests `nshard push` uploads after their chunks,
//! stored as `manifests/ab/<id>` (the id is the SHA-256 of the manifest bytes) next to
//! `objects/`, and the lock that orders adding a root against deleting chunks.
//!
//! A manifest is only stored when every chunk it references is stored
//! ([`Backend::add_root`]), and gc deletes a chunk only if no root read *after* it took the
//! exclusive roots lock references it. On a directory, adding a root holds the lock shared, so
//! either the new manifest is stored before gc reads the roots (and its chunks are kept) or it
//! is checked after gc's deletions (and refused with 409 if one of its chunks went, so the push
//! fails loudly and uploads the chunk again when rerun). Either way no stored manifest ever
//! references a deleted chunk. Several servers over one S3 bucket share no lock; there the
//! grace period and the leases of [`super::backend`] carry that guarantee (see [`super::gc`]).

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::backend::{Backend, Error as StorageError};
use crate::chunk::ChunkHash;
use crate::manifest::Manifest;
use crate::store::local::StoredObject;
use crate::store::manifest_key;
use crate::store::object::Listed;

/// The lock file inside a storage directory. It holds no data; it only carries `flock`s.
pub const LOCK_FILE: &str = "roots.lock";

/// HEAD requests in flight when checking a manifest's chunks on S3 (as for `missing`).
const S3_CHECKS_IN_FLIGHT: usize = 32;

/// Why the roots could not be read. Any of these stops gc before it deletes anything more:
/// a root it cannot read might reference any chunk.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The stored bytes no longer hash to the manifest's name.
    #[error("stored manifest {id:#} is damaged: its bytes hash to {actual:#}")]
    Damaged {
        /// The manifest's name.
        id: ChunkHash,
        /// What its bytes hash to now.
        actual: ChunkHash,
    },
    /// The stored bytes are not a valid manifest.
    #[error("stored manifest {id:#} is invalid")]
    Invalid {
        /// The manifest's name.
        id: ChunkHash,
        /// What is wrong with it.
        #[source]
        source: crate::manifest::Error,
    },
}

/// How [`Backend::lock_roots`] holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Adding a root: any number at once.
    Shared,
    /// gc reading the roots and deleting chunks: alone.
    Exclusive,
}

/// A held roots lock, released when dropped (or when the process dies, so an interrupted gc
/// never leaves the server locked). Empty on S3, where there is no lock.
#[derive(Debug)]
pub struct RootsLock {
    _file: Option<fs_err::File>,
}

/// The outcome of [`Backend::add_root`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootAdded {
    /// The manifest is now stored.
    Created,
    /// It was stored already.
    AlreadyStored,
    /// Some of its chunks are not stored, so it was refused.
    MissingChunks {
        /// How many distinct chunks are missing.
        count: usize,
        /// The first missing one, in manifest order.
        first: ChunkHash,
    },
}

impl Backend {
    /// Takes the roots lock (a `flock` on [`LOCK_FILE`] in a storage directory; nothing on
    /// S3), waiting for conflicting holders.
    pub async fn lock_roots(&self, mode: LockMode) -> Result<RootsLock, StorageError> {
        let Self::Directory(store) = self else {
            return Ok(RootsLock { _file: None });
        };
        let path = store.root().join(LOCK_FILE);
        let lock = move || -> std::io::Result<RootsLock> {
            let file = fs_err::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match mode {
                LockMode::Shared => file.lock_shared()?,
                LockMode::Exclusive => file.lock()?,
            }
            Ok(RootsLock { _file: Some(file) })
        };
        Ok(tokio::task::spawn_blocking(lock).await??)
    }

    /// Stores the manifest `bytes` (already parsed as `manifest` and checked to hash to `id`)
    /// as a root, if every chunk it references is stored. Holds the roots lock shared.
    pub async fn add_root(
        &self,
        id: &ChunkHash,
        manifest: &Manifest,
        bytes: Bytes,
    ) -> Result<RootAdded, StorageError> {
        let _lock = self.lock_roots(LockMode::Shared).await?;
        let key = manifest_key(id);
        // A stored copy counts only while it is sound: pushing again repairs a damaged one
        // (as `shard-server verify` advises).
        let stored = match self {
            Self::Directory(store) => {
                let (store, id) = (store.clone(), *id);
                tokio::task::spawn_blocking(move || store.get_manifest(&id)).await??
            }
            Self::S3(bucket) => bucket.get_file(&key).await?.map(|b| b.to_vec()),
        };
        if stored.is_some_and(|bytes| ChunkHash::of(&bytes) == *id) {
            return Ok(RootAdded::AlreadyStored);
        }
        let absent = self.absent(manifest).await?;
        if let Some(first) = absent.first() {
            let (count, first) = (absent.len(), *first);
            return Ok(RootAdded::MissingChunks { count, first });
        }
        match self {
            Self::Directory(store) => {
                let (store, id) = (store.clone(), *id);
                let _ =
                    tokio::task::spawn_blocking(move || store.put_manifest(&id, &bytes)).await??;
            }
            Self::S3(bucket) => bucket.put_file(&key, bytes).await?,
        }
        Ok(RootAdded::Created)
    }

    /// The distinct chunks of `manifest` that are not stored, in manifest order. Unlike
    /// [`Backend::missing`] this renews no lease.
    async fn absent(&self, manifest: &Manifest) -> Result<Vec<ChunkHash>, StorageError> {
        let mut seen = HashSet::with_capacity(manifest.chunks.len());
        let unique: Vec<ChunkHash> = manifest
            .chunks
            .iter()
            .map(|c| c.sha256)
            .filter(|h| seen.insert(*h))
            .collect();
        match self {
            Self::Directory(store) => {
                let store = store.clone();
                let absent = move || unique.into_iter().filter(|h| !store.contains(h)).collect();
                Ok(tokio::task::spawn_blocking(absent).await?)
            }
            Self::S3(bucket) => {
                let checks = futures::stream::iter(unique).map(|hash| async move {
                    let present = bucket.contains(&hash).await?;
                    Ok::<_, StorageError>((!present).then_some(hash))
                });
                let found: Vec<_> = checks.buffered(S3_CHECKS_IN_FLIGHT).try_collect().await?;
                Ok(found.into_iter().flatten().collect())
            }
        }
    }

    /// Every stored manifest (`hash` is its id).
    pub async fn list_roots(&self) -> Result<Vec<StoredObject>, StorageError> {
        match self {
            Self::Directory(store) => {
                let store = store.clone();
                Ok(tokio::task::spawn_blocking(move || store.list_manifests()).await??)
            }
            Self::S3(bucket) => {
                let listed = bucket.list_manifests().await?;
                Ok(listed
                    .into_iter()
                    .map(
                        |Listed {
                             hash,
                             size,
                             modified,
                         }| StoredObject {
                            hash,
                            stored_bytes: size,
                            modified,
                        },
                    )
                    .collect())
            }
        }
    }

    /// Reads a stored manifest and checks it: its bytes hash to `id` and parse as a
    /// manifest. `Ok(None)` when it is absent.
    pub async fn read_root(&self, id: &ChunkHash) -> Result<Option<Manifest>, Error> {
        let bytes = match self {
            Self::Directory(store) => {
                let (store, id) = (store.clone(), *id);
                let read = tokio::task::spawn_blocking(move || store.get_manifest(&id));
                read.await
                    .map_err(StorageError::from)?
                    .map_err(StorageError::from)?
            }
            Self::S3(bucket) => bucket
                .get_file(&manifest_key(id))
                .await
                .map_err(StorageError::from)?
                .map(Vec::from),
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let actual = ChunkHash::of(&bytes);
        if actual != *id {
            return Err(Error::Damaged { id: *id, actual });
        }
        let manifest =
            Manifest::parse(&bytes).map_err(|source| Error::Invalid { id: *id, source })?;
        Ok(Some(manifest))
    }
}

/// The chunks the stored manifests reference, read incrementally: manifests are never changed
/// once stored, so [`Roots::refresh`] reads only the ones it has not seen.
#[derive(Clone, Debug, Default)]
pub struct Roots {
    read: HashSet<ChunkHash>,
    live: HashSet<ChunkHash>,
}

impl Roots {
    /// Reads the manifests stored since the last refresh; returns how many were new.
    pub async fn refresh(&mut self, backend: &Backend) -> Result<usize, Error> {
        let mut new = 0;
        for root in backend.list_roots().await? {
            if self.read.contains(&root.hash) {
                continue;
            }
            // A manifest listed but gone by now was removed by an administrator: nothing to keep.
            if let Some(manifest) = backend.read_root(&root.hash).await? {
                self.live.extend(manifest.chunks.iter().map(|c| c.sha256));
                let _ = self.read.insert(root.hash);
                new += 1;
            }
        }
        Ok(new)
    }

    /// True when a stored manifest references the chunk.
    #[must_use]
    pub fn references(&self, hash: &ChunkHash) -> bool {
        self.live.contains(hash)
    }

    /// How many manifests have been read.
    #[must_use]
    pub fn manifests(&self) -> usize {
        self.read.len()
    }
}
