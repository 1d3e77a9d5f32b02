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

/// What is being done to a file right now, as `status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Background chunking.
    Chunking,
    /// A checkout or pull rebuilding it.
    CheckingOut,
}

impl Work {
    /// The verb `status` shows.
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            Self::Chunking => "chunking",
            Self::CheckingOut => "checking out",
        }
    }
}

/// Work in progress per (repository root, file): what, bytes done, bytes total.
type Progress = HashMap<(PathBuf, String), (Work, u64, u64)>;

/// Shared by the watcher, the request handlers and subscribers.
pub struct Activity {
    events: broadcast::Sender<FileEvent>,
    progress: Mutex<Progress>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            events: broadcast::channel(EVENT_BACKLOG).0,
            progress: Mutex::default(),
        }
    }
}

impl Activity {
    /// Publishes an event (and tracks background progress).
    pub fn emit(&self, root: &Path, path: &str, change: Change, sha256: Option<ChunkHash>) {
        {
            let mut progress = self
                .progress
                .lock()
                .expect("no code panics while holding this lock");
            let key = (root.to_path_buf(), path.to_owned());
            match change {
                Change::Preparing { done, total } => {
                    let _ = progress.insert(key, (Work::Chunking, done, total));
                }
                _ => {
                    let _ = progress.remove(&key);
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
        let mut progress = self
            .progress
            .lock()
            .expect("no code panics while holding this lock");
        let _ = progress.remove(&(root.to_path_buf(), path.to_owned()));
    }

    /// Records how far a checkout has rebuilt `path` (for `status`; no event: subscribers
    /// hear `CheckedOut` when it is done).
    pub fn checking_out(&self, root: &Path, path: &str, done: u64, total: u64) {
        let mut progress = self
            .progress
            .lock()
            .expect("no code panics while holding this lock");
        let key = (root.to_path_buf(), path.to_owned());
        let _ = progress.insert(key, (Work::CheckingOut, done, total));
    }

    /// Forgets every checkout's progress in `root` (the checkout or pull ended, however).
    pub fn end_checkouts(&self, root: &Path) {
        let mut progress = self
            .progress
            .lock()
            .expect("no code panics while holding this lock");
        progress.retain(|(r, _), (work, ..)| r != root || *work != Work::CheckingOut);
    }

    /// A new subscription to every future event.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<FileEvent> {
        self.events.subscribe()
    }

    /// What is being done to `path`, with bytes done and bytes total.
    #[must_use]
    pub fn progress(&self, root: &Path, path: &str) -> Option<(Work, u64, u64)> {
        let progress = self
            .progress
            .lock()
            .expect("no code panics while holding this lock");
        progress
            .get(&(root.to_path_buf(), path.to_owned()))
            .copied()
    }
}

/// Clears the checkout progress of a repository when dropped: however a checkout or pull
/// ends, `status` stops showing it.
pub struct CheckoutsShown {
    activity: std::sync::Arc<Activity>,
    root: PathBuf,
}

impl CheckoutsShown {
    /// Until dropped, `status` may show checkouts in `root`.
    #[must_use]
    pub fn new(activity: std::sync::Arc<Activity>, root: PathBuf) -> Self {
        Self { activity, root }
    }
}

impl Drop for CheckoutsShown {
    fn drop(&mut self) {
        self.activity.end_checkouts(&self.root);
    }
}

#[cfg(test)]
mod progress_tests {
    use std::sync::Arc;

    use super::*;
    use crate::ops::{CHECKING_OUT, Reporter};

    #[test]
    fn status_sees_a_checkout_until_it_ends() {
        let activity = Arc::new(Activity::default());
        let root = PathBuf::from("/repo");
        {
            let _shown = CheckoutsShown::new(Arc::clone(&activity), root.clone());
            let mut reporter = Reporter::silent();
            reporter.showing_checkouts(Arc::clone(&activity), root.clone());
            reporter.bytes(CHECKING_OUT, "models/a.bin", 40, 100);
            assert_eq!(
                activity.progress(&root, "models/a.bin"),
                Some((Work::CheckingOut, 40, 100))
            );
            activity.emit(
                &root,
                "models/b.bin",
                Change::Preparing { done: 1, total: 2 },
                None,
            );
        }
        // The checkout ended (here: its guard dropped); background chunking is still shown.
        assert_eq!(activity.progress(&root, "models/a.bin"), None);
        assert_eq!(
            activity.progress(&root, "models/b.bin"),
            Some((Work::Chunking, 1, 2))
        );
    }
}
