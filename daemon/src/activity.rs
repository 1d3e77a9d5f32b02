//! What the daemon is doing to tracked files: background work in progress (for `status`) and a
//! broadcast of file state changes (for the `Subscribe` rpc and editor plugins).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::chunk::ChunkHash;

/// Events kept for slow subscribers before they start missing some (they are told).
const EVENT_BACKLOG: usize = 1024;

/// A change in a tracked file's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The file changed on disk.
    Modified,
    /// Background chunking progressed.
    Preparing {
        /// Bytes read.
        done: u64,
        /// Bytes in the file.
        total: u64,
    },
    /// Background chunking finished: a commit will not need to read the file.
    Prepared,
    /// A manifest was written.
    Committed,
    /// Its chunks reached a remote.
    Pushed,
    /// The file was rebuilt from the store.
    CheckedOut,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEvent {
    /// Repository root.
    pub root: PathBuf,
    /// Repository-relative file path.
    pub path: String,
    /// What happened.
    pub change: Change,
    /// The content hash, when known.
    pub sha256: Option<ChunkHash>,
}

/// Shared by the watcher, the request handlers and subscribers.
pub struct Activity {
    events: broadcast::Sender<FileEvent>,
    preparing: Mutex<HashMap<(PathBuf, String), (u64, u64)>>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            events: broadcast::channel(EVENT_BACKLOG).0,
            preparing: Mutex::default(),
        }
    }
}

impl Activity {
    /// Publishes an event (and tracks background progress).
    pub fn emit(&self, root: &Path, path: &str, change: Change, sha256: Option<ChunkHash>) {
        {
            let mut preparing = self
                .preparing
                .lock()
                .expect("no code panics while holding this lock");
            let key = (root.to_path_buf(), path.to_owned());
            match change {
                Change::Preparing { done, total } => {
                    let _ = preparing.insert(key, (done, total));
                }
                _ => {
                    let _ = preparing.remove(&key);
                }
            }
        }
        // No subscribers is fine.
        let _ = self.events.send(FileEvent {
            root: root.to_path_buf(),
            path: path.to_owned(),
            change,
            sha256,
        });
    }

    /// Forgets background progress on `path` without an event (the work was abandoned).
    pub fn clear(&self, root: &Path, path: &str) {
        let mut preparing = self
            .preparing
            .lock()
            .expect("no code panics while holding this lock");
        let _ = preparing.remove(&(root.to_path_buf(), path.to_owned()));
    }

    /// A new subscription to every future event.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<FileEvent> {
        self.events.subscribe()
    }

    /// Background progress on `path`, as (bytes done, bytes total).
    #[must_use]
    pub fn preparing(&self, root: &Path, path: &str) -> Option<(u64, u64)> {
        let preparing = self
            .preparing
            .lock()
            .expect("no code panics while holding this lock");
        preparing
            .get(&(root.to_path_buf(), path.to_owned()))
            .copied()
    }
}
