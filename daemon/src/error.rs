//! The daemon's error type and its single mapping onto gRPC statuses.
//!
//! Every message completes a sentence a user can act on; `nshard` prints it as
//! `nshard: <message>: <cause>: <cause>`.

use std::error::Error as _;
use std::io;
use std::path::PathBuf;

use crate::chunk::ChunkHash;
use crate::{chunk, manifest, store};

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `.shard/` (or Git work tree, where one is enough) above the working directory.
    #[error(
        "not inside a NeuroShard repository (no .shard/ in {} or any parent): run `nshard init`",
        .cwd.display()
    )]
    NotARepository {
        /// Where the search started.
        cwd: PathBuf,
    },
    /// A path argument points outside the repository.
    #[error("{} is outside the repository at {}", .path.display(), .root.display())]
    OutsideRepository {
        /// The offending path.
        path: PathBuf,
        /// The repository root.
        root: PathBuf,
    },
    /// A plain path argument that does not exist.
    #[error("{path} does not exist (quote glob patterns so the shell leaves them to nshard)")]
    PathNotFound {
        /// Repository-relative path.
        path: String,
    },
    /// A file that is only behind its manifest, named in a commit.
    #[error(
        "{path} is older than its manifest (a git pull, merge or branch switch changed the \
         manifest, not the file), so committing it would undo that version: run `nshard pull` \
         to update it first, or name the files to commit; nothing was committed"
    )]
    Outdated {
        /// Repository-relative path.
        path: String,
    },
    /// Something other than a regular file where a tracked file or its manifest belongs.
    #[error("{path} is a {kind} where a file belongs: move it away, then run the command again")]
    NotAFile {
        /// Repository-relative path.
        path: String,
        /// What is there instead: "directory" or "symbolic link".
        kind: &'static str,
    },
    /// A request whose `cwd` is not an absolute path to an existing directory.
    #[error("cwd `{}` must be the absolute path of an existing directory", .cwd.display())]
    BadCwd {
        /// What the request said.
        cwd: PathBuf,
    },
    /// A committed file that is not in the working tree.
    #[error(
        "{path} is missing from the working tree: `nshard checkout {}` restores it",
        shard_proto::shell_word(path)
    )]
    FileMissing {
        /// Repository-relative path.
        path: String,
    },
    /// A directory or pattern argument that covers no tracked file.
    #[error("no tracked file is in {path}: track files first with `nshard track`")]
    NothingTrackedIn {
        /// The directory or pattern.
        path: String,
    },
    /// A token in the committed `.shardconfig`.
    #[error(
        ".shardconfig is committed to Git, so it must not hold the token of remote `{name}`: \
         move it to .shard/config.toml or NSHARD_TOKEN (and revoke it if it was pushed)"
    )]
    TokenInSharedConfig {
        /// The remote.
        name: String,
    },
    /// A path that can never be tracked.
    #[error("{path} cannot be tracked: {why}")]
    NotTrackable {
        /// What was named (repository-relative; `.` for the root).
        path: String,
        /// Why, with what to do instead.
        why: &'static str,
    },
    /// An untrack of a file that only a pattern tracks.
    #[error("{path} is tracked by the pattern `{pattern}`: untrack that pattern instead")]
    TrackedByPattern {
        /// Repository-relative path.
        path: String,
        /// The pattern matching it.
        pattern: String,
    },
    /// An untrack of something no pattern names.
    #[error("{path} is not tracked: no pattern names it (`nshard status` lists what is tracked)")]
    NotUntrackable {
        /// What was named.
        path: String,
    },
    /// A file that is neither tracked nor committed.
    #[error(
        "{path} is not tracked: run `nshard track {}` first",
        shard_proto::shell_word(path)
    )]
    NotTracked {
        /// Repository-relative path.
        path: String,
    },
    /// A file without a manifest where one is needed.
    #[error("{path} has no manifest ({path}.shard.json): commit it first with `nshard commit`")]
    NoManifest {
        /// Repository-relative path of the file.
        path: String,
    },
    /// A glob pattern that does not parse.
    #[error("`{pattern}` is not a valid glob pattern")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// The parser's complaint.
        #[source]
        source: globset::Error,
    },
    /// A manifest that fails validation.
    #[error("manifest {path} is invalid: {source}{advice}")]
    Manifest {
        /// Repository-relative path of the manifest.
        path: String,
        /// What is wrong.
        source: manifest::Error,
        /// What to do, when the message does not say already: empty, or a clause starting
        /// with `; ` (see [`manifest::Error::advice`]).
        advice: String,
    },
    /// A chunk a file needs is not in the local store.
    #[error("chunk {hash:#} of {file} is not in the local store: run `nshard pull` to fetch it")]
    ChunkMissing {
        /// The chunk.
        hash: ChunkHash,
        /// The file that needs it.
        file: String,
    },
    /// A chunk a file needs at a Git revision is not in the local store.
    #[error(
        "chunk {hash:#} of {file} at {rev} is not in the local store: run `nshard pull --rev \
         {rev}` to fetch it"
    )]
    ChunkMissingAt {
        /// The chunk.
        hash: ChunkHash,
        /// The file that needs it.
        file: String,
        /// The revision.
        rev: String,
    },
    /// A stored chunk whose content does not match its name.
    #[error(
        "chunk {hash:#} of {file} is corrupted in the local store: delete {} and run `nshard pull`",
        .object.display()
    )]
    ChunkCorrupt {
        /// The chunk.
        hash: ChunkHash,
        /// The file that needs it.
        file: String,
        /// The damaged object file.
        object: PathBuf,
    },
    /// A chunk whose length differs from the size its manifest gives it: the manifest was
    /// edited or damaged (the chunk itself matched its hash).
    #[error(
        "{file}{} gives chunk {hash:#} at offset {offset} {declared} bytes, but that chunk \
         holds {actual}: the manifest is damaged, restore it from Git; nothing was written",
        crate::manifest::SUFFIX
    )]
    ChunkSizeMismatch {
        /// Repository-relative path.
        file: String,
        /// The chunk.
        hash: ChunkHash,
        /// Where the manifest places it.
        offset: u64,
        /// The size the manifest gives it.
        declared: u32,
        /// Its real length.
        actual: usize,
    },
    /// A rebuilt file whose whole-file digest differs from the manifest.
    #[error("rebuilt {file} does not match the SHA-256 in its manifest; nothing was written")]
    FileDigestMismatch {
        /// Repository-relative path.
        file: String,
    },
    /// Checkout would destroy uncommitted edits; it wrote nothing.
    #[error(
        "{path}{} holds a version no manifest records (uncommitted edits, or a commit whose \
         manifest was discarded): commit it, or pass --force to discard it; no file was \
         written{}",
        and_more(*others),
        if *downloaded { DOWNLOADED_ANYWAY } else { "" }
    )]
    WouldOverwrite {
        /// The first such file, repository-relative.
        path: String,
        /// How many more files are in the same state.
        others: usize,
        /// Whether a pull downloaded every chunk all the same.
        downloaded: bool,
    },
    /// The file kept changing while it was read.
    #[error("{path} changed while it was being read; wait until it is fully written and retry")]
    FileUnstable {
        /// Repository-relative path.
        path: String,
    },
    /// No remote was named and none is the default.
    #[error(
        "no remote given and no default among the {count} configured: pass --remote URL|NAME or \
         run `nshard remote add origin URL`"
    )]
    NoDefaultRemote {
        /// How many remotes are configured.
        count: usize,
    },
    /// A remote name that is not configured.
    #[error("no remote named `{name}`: see `nshard remote list`, or pass a URL")]
    UnknownRemote {
        /// The name.
        name: String,
    },
    /// A remote name that is already taken.
    #[error(
        "a remote named `{name}` already exists: remove it first with `nshard remote remove {name}`"
    )]
    RemoteExists {
        /// The name.
        name: String,
    },
    /// A remote name with odd characters.
    #[error("`{name}` is not a valid remote name: use letters, digits, `-`, `_` and `.`")]
    BadRemoteName {
        /// The name.
        name: String,
    },
    /// No manifest for a file at a revision.
    #[error("{path} has no manifest at {rev}")]
    NoManifestAt {
        /// Repository-relative path of the file.
        path: String,
        /// The revision.
        rev: String,
    },
    /// Git could not answer.
    #[error(transparent)]
    Git(#[from] crate::git::Error),
    /// A remote failed.
    #[error(transparent)]
    Remote(#[from] crate::store::remote::Error),
    /// The client went away (Ctrl-C) before the work was done; nothing more was written.
    #[error("cancelled: the client went away before {path} was written; it was left as it was")]
    Cancelled {
        /// Repository-relative path.
        path: String,
    },
    /// A file changed while a checkout was rebuilding it.
    #[error(
        "{path} changed while it was being checked out: your edit was kept; commit it, or run \
         the command again with --force to discard it"
    )]
    ChangedDuringCheckout {
        /// Repository-relative path.
        path: String,
    },
    /// Background work stopped to leave the machine to an interactive request.
    #[error("background work on {path} gave way to an interactive request")]
    Yielded {
        /// Repository-relative path.
        path: String,
    },
    /// `.shard/config.toml` or `.shardconfig` does not parse.
    #[error("{} is invalid: {reason}", .path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, on one line, with the line it is about.
        reason: String,
    },
    /// Chunking parameters out of range.
    #[error(transparent)]
    Chunking(#[from] chunk::cdc::Error),
    /// The sled index could not be opened or updated.
    #[error("the index at {} failed (it is a cache: deleting it is safe)", .path.display())]
    Index {
        /// The index directory.
        path: PathBuf,
        /// What sled reported.
        #[source]
        source: sled::Error,
    },
    /// Another daemon holds the repository's index.
    #[error(
        "the index at {} is in use by another shardd (one with a different socket?): stop it with \
         `nshard daemon stop` using its SHARDD_SOCKET",
        .path.display()
    )]
    IndexInUse {
        /// The index directory.
        path: PathBuf,
    },
    /// Chunk storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Reading or writing files failed (fs-err puts the path in the message).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a pull that refused to overwrite a file adds: it downloaded the chunks all the same.
const DOWNLOADED_ANYWAY: &str = " (the chunks were downloaded: `nshard checkout` needs no remote)";

/// " (and N more files)" after the first file an error names, nothing when it is the only one.
fn and_more(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " (and 1 more file)".to_owned(),
        n => format!(" (and {n} more files)"),
    }
}

impl Error {
    /// This error from a checkout of the files at `rev`: a missing chunk is then fetched with
    /// `pull --rev`, as plain `pull` only fetches what the working tree's manifests need.
    #[must_use]
    pub fn fetch_at(self, rev: &str) -> Self {
        match self {
            Self::ChunkMissing { hash, file } => Self::ChunkMissingAt {
                hash,
                file,
                rev: rev.to_owned(),
            },
            other => other,
        }
    }

    /// The whole chain as one line, with a hint when the disk is full.
    #[must_use]
    pub fn render(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        let mut disk_full = false;
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                disk_full |= io.kind() == io::ErrorKind::StorageFull;
            }
            source = cause.source();
        }
        if let Self::Io(io) = self {
            disk_full |= io.kind() == io::ErrorKind::StorageFull;
        }
        if disk_full {
            text.push_str(" (the disk is full: free some space and run the command again)");
        }
        text
    }

    fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::NotARepository { .. }
            | Self::WouldOverwrite { .. }
            | Self::ChangedDuringCheckout { .. }
            | Self::NotAFile { .. }
            | Self::Outdated { .. }
            | Self::FileUnstable { .. }
            | Self::Git(crate::git::Error::NotGit(_) | crate::git::Error::BadRevision(_)) => {
                Code::FailedPrecondition
            }
            Self::OutsideRepository { .. }
            | Self::BadCwd { .. }
            | Self::BadPattern { .. }
            | Self::NotTracked { .. }
            | Self::NotUntrackable { .. }
            | Self::NotTrackable { .. }
            | Self::TokenInSharedConfig { .. }
            | Self::TrackedByPattern { .. }
            | Self::Manifest { .. }
            | Self::Chunking(_)
            | Self::Config { .. }
            | Self::UnknownRemote { .. }
            | Self::RemoteExists { .. }
            | Self::BadRemoteName { .. }
            | Self::NoDefaultRemote { .. } => Code::InvalidArgument,
            Self::PathNotFound { .. }
            | Self::NothingTrackedIn { .. }
            | Self::FileMissing { .. }
            | Self::NoManifest { .. }
            | Self::ChunkMissing { .. }
            | Self::ChunkMissingAt { .. }
            | Self::NoManifestAt { .. } => Code::NotFound,
            Self::ChunkSizeMismatch { .. } => Code::DataLoss,
            Self::Cancelled { .. } => Code::Cancelled,
            Self::Remote(e) => e.code(),
            _ => Code::Internal,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        if code == tonic::Code::Internal {
            tracing::warn!(error = %error.render(), "request failed");
        }
        tonic::Status::new(code, error.render())
    }
}
