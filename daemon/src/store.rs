//! Where chunks live: the local content-addressed store ([`local`]) used by repositories,
//! directory remotes and `shard-server`, and the remote backends ([`remote`]) that push and
//! pull talk to.
//!
//! Every store shares one layout, `objects/<first two hex digits>/<64 hex digits>`, holding
//! the encoded object of [`crate::chunk::codec`], so a directory remote can be copied into an
//! S3 bucket (or served by `shard-server`) as it is. Remotes also keep the manifests pushed to
//! them, under `manifests/<first two hex digits>/<SHA-256 of the manifest bytes>` (see
//! [`manifest_key`]): they are the roots `shard-server gc` keeps.

pub mod aws_profile;
pub mod local;
pub mod object;
pub mod remote;

use std::io;

use crate::chunk::{ChunkHash, codec};

/// Failures of chunk storage that callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chunk is not in this store.
    #[error("chunk {0:#} is not in the store")]
    NotFound(ChunkHash),
    /// The stored object is damaged (its content no longer matches its name).
    #[error("chunk {hash:#} is corrupted")]
    Corrupt {
        /// The damaged chunk.
        hash: ChunkHash,
        /// What is wrong with it.
        #[source]
        source: codec::Error,
    },
    /// Reading or writing the store failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The relative key of a chunk inside any store: `objects/ab/abcdef…`.
#[must_use]
pub fn object_key(hash: &ChunkHash) -> String {
    let hex = hash.to_hex();
    format!("objects/{}/{hex}", &hex[..2])
}

/// The relative key of a pushed manifest inside a remote: `manifests/ab/abcdef…`, named by the
/// SHA-256 of its bytes.
#[must_use]
pub fn manifest_key(id: &ChunkHash) -> String {
    let hex = id.to_hex();
    format!("manifests/{}/{hex}", &hex[..2])
}
