//! Watching tracked files with notify: changes are debounced per file and handed to the
//! background preparer ([`crate::prepare`]). Every repository the daemon has served is watched
//! and remembered (in `shardd.repos` beside the socket), so a restarted daemon re-arms.
//!
//! Every directory of the working tree is watched on its own, except `.git` and `.shard`: their
//! churn (chunk objects, the index, Git's own files) is never a tracked file's change, and
//! their hundreds of fan-out directories would each take an inotify watch. A directory created
//! later is watched when its creation is seen, and the repository rescanned for files written
//! into it before that.
//!
//! notify's limits are handled: an exhausted inotify watch limit is logged with the sysctl that
//! raises it, and an overflowed event queue triggers a rescan so state is never silently stale.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Change};
use crate::manifest::SUFFIX;
use crate::prepare::Preparer;
use crate::repo::SHARD_DIR;
use crate::repo::walk::SKIPPED_DIRS;

mod debounce;

use debounce::Debouncer;

/// A file must stay quiet this long before it is chunked: long enough to let a training loop
/// finish writing a checkpoint, short enough that a commit right after saving finds it ready.
const DEBOUNCE: Duration = Duration::from_millis(400);

/// How long after start the remembered repositories are caught up on (changes made while no
/// daemon watched, compression left undone). A daemon is usually started by a command, say
/// `nshard commit`, that is about to work on those very files: it goes first, alone on the
/// cores, and the catch-up then finds its work done.
const CATCH_UP_DELAY: Duration = Duration::from_secs(2);

/// inotify watches single directories, so the tree is watched directory by directory (and
/// `.git` and `.shard` left out); other platforms' watchers cover a whole tree natively.
const PER_DIRECTORY_WATCHES: bool = cfg!(target_os = "linux");

/// Handle for registering repositories with the watcher task.
#[derive(Clone, Debug)]
pub struct Watcher {
    roots: mpsc::UnboundedSender<PathBuf>,
}

impl Watcher {
    /// Watches `root` from now on (idempotent).
    pub fn watch(&self, root: &Path) {
        let _ = self.roots.send(root.to_path_buf());
    }
}

/// Starts the watcher task. `remembered` lists repositories to re-arm and is kept current.
#[must_use]
pub fn spawn(
    preparer: Preparer,
    activity: Arc<Activity>,
    remembered: PathBuf,
    shutdown: CancellationToken,
) -> Watcher {
    let (roots_tx, roots_rx) = mpsc::unbounded_channel();
    drop(tokio::spawn(run(
        roots_rx, preparer, activity, remembered, shutdown,
    )));
    Watcher { roots: roots_tx }
}

struct State {
    watcher: Option<notify::RecommendedWatcher>,
    roots: BTreeSet<PathBuf>,
    /// Changed files, each prepared once it has been quiet for [`DEBOUNCE`].
    pending: Debouncer<PathBuf>,
    /// Remembered repositories not caught up on yet, and when to.
    catch_up: (Vec<PathBuf>, Instant),
    remembered: PathBuf,
    preparer: Preparer,
    activity: Arc<Activity>,
}

async fn run(
    mut roots_rx: mpsc::UnboundedReceiver<PathBuf>,
    preparer: Preparer,
    activity: Arc<Activity>,
    remembered: PathBuf,
    shutdown: CancellationToken,
) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event| {
        let _ = events_tx.send(event);
    });
    let watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "file watching is unavailable; commits will read files on demand");
            None
        }
    };
    let mut state = State::new(watcher, remembered, preparer, activity);
    for root in load_remembered(&state.remembered) {
        state.add_root(root, Origin::Remembered);
    }
    loop {
        let next_due = state.next_due();
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(root) = roots_rx.recv() => state.add_root(root, Origin::Request),
            Some(event) = events_rx.recv() => state.on_event(event),
            () = sleep_until(next_due) => state.dispatch_due(),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a repository to watch comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The list of a previous daemon: caught up on after [`CATCH_UP_DELAY`].
    Remembered,
    /// A request: remembered from now on, and caught up on at once.
    Request,
}

impl State {
    fn new(
        watcher: Option<notify::RecommendedWatcher>,
        remembered: PathBuf,
        preparer: Preparer,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            watcher,
            roots: BTreeSet::new(),
            pending: Debouncer::new(DEBOUNCE),
            catch_up: (Vec::new(), Instant::now() + CATCH_UP_DELAY),
            remembered,
            preparer,
            activity,
        }
    }

    /// When the loop must next wake up for due work, if ever.
    fn next_due(&self) -> Option<Instant> {
        let catch_up = (!self.catch_up.0.is_empty()).then_some(self.catch_up.1);
        self.pending.next_due().into_iter().chain(catch_up).min()
    }

    fn add_root(&mut self, root: PathBuf, origin: Origin) {
        if !root.join(SHARD_DIR).is_dir() && !root.join(".git").exists() {
            return; // Gone since it was remembered.
        }
        if !self.roots.insert(root.clone()) {
            return;
        }
        if let Some(watcher) = &mut self.watcher {
            if let Err(e) = watch_tree(watcher, &root) {
                log_watch_error(&root, &e);
            } else {
                tracing::info!(root = %root.display(), "watching repository");
            }
        }
        match origin {
            Origin::Request => {
                save_remembered(&self.remembered, &self.roots);
                self.catch_up_on(&root);
            }
            Origin::Remembered => self.catch_up.0.push(root),
        }
    }

    /// Prepares what changed in `root` while nobody watched, and compresses what a commit
    /// stored raw and nobody compressed.
    fn catch_up_on(&self, root: &Path) {
        self.preparer.scan(root);
        self.preparer.compress(root);
    }

    fn on_event(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "file watcher error; rescanning");
                self.rescan();
                return;
            }
        };
        if event.need_rescan() {
            tracing::warn!("file events were lost (queue overflow); rescanning");
            self.rescan();
            return;
        }
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        if PER_DIRECTORY_WATCHES && may_add_directory(event.kind) {
            for path in &event.paths {
                self.watch_new_directory(path);
            }
        }
        for path in event.paths {
            if let Some((root, rel)) = self.locate(&path) {
                // One write of a large file is many notify events: tell subscribers once per
                // burst, not once per event.
                if self.pending.touch(path, Instant::now()) {
                    self.activity.emit(&root, &rel, Change::Modified, None);
                }
            }
        }
    }

    /// Watches a directory created (or moved) into a repository, with everything below it,
    /// and rescans the repository: files may have been written into it before the watch.
    fn watch_new_directory(&mut self, path: &Path) {
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        let Some((root, _)) = self.locate(path).filter(|_| is_dir) else {
            return;
        };
        if let Some(watcher) = &mut self.watcher
            && let Err(e) = watch_tree(watcher, path)
        {
            log_watch_error(&root, &e);
        }
        self.preparer.scan(&root);
    }

    /// The repository and relative path of a changed file we may care about.
    fn locate(&self, path: &Path) -> Option<(PathBuf, String)> {
        let root = self
            .roots
            .iter()
            .filter(|r| path.starts_with(r))
            .max_by_key(|r| r.as_os_str().len())?;
        let rel = path.strip_prefix(root).ok()?.to_str()?.to_owned();
        let name = path.file_name()?.to_str()?;
        let internal = rel
            .split('/')
            .any(|part| part == ".git" || part == SHARD_DIR);
        let temporary = name.starts_with('.')
            && std::path::Path::new(name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("tmp"));
        let ours = rel.ends_with(SUFFIX) || temporary;
        (!internal && !ours && !rel.is_empty()).then(|| (root.clone(), rel))
    }

    fn dispatch_due(&mut self) {
        let now = Instant::now();
        if now >= self.catch_up.1 {
            for root in std::mem::take(&mut self.catch_up.0) {
                tracing::debug!(root = %root.display(), "catching up on changes made while no daemon watched");
                self.catch_up_on(&root);
            }
        }
        for path in self.pending.take_due(now) {
            if let Some((root, rel)) = self.locate(&path) {
                self.preparer.prepare(root, rel);
            }
        }
    }

    fn rescan(&self) {
        for root in &self.roots {
            self.preparer.scan(root);
        }
    }
}

/// Whether an event may bring a new directory into a watched tree.
fn may_add_directory(kind: notify::EventKind) -> bool {
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    matches!(
        kind,
        notify::EventKind::Create(CreateKind::Folder | CreateKind::Any)
            | notify::EventKind::Modify(ModifyKind::Name(
                RenameMode::To | RenameMode::Both | RenameMode::Any
            ))
    )
}

/// Watches `dir` and every directory below it (not following symlinks), except Git's and
/// NeuroShard's own. A directory removed while this runs is skipped.
fn watch_tree(watcher: &mut notify::RecommendedWatcher, dir: &Path) -> notify::Result<()> {
    if !PER_DIRECTORY_WATCHES {
        return watcher.watch(dir, RecursiveMode::Recursive);
    }
    match watcher.watch(dir, RecursiveMode::NonRecursive) {
        Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => return Ok(()),
        other => other?,
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // Removed or unreadable since: nothing to watch below it.
    };
    for entry in entries.flatten() {
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let skipped = entry
            .file_name()
            .to_str()
            .is_some_and(|name| SKIPPED_DIRS.contains(&name));
        if is_dir && !skipped {
            watch_tree(watcher, &entry.path())?;
        }
    }
    Ok(())
}

fn log_watch_error(root: &Path, error: &notify::Error) {
    if matches!(error.kind, notify::ErrorKind::MaxFilesWatch) {
        tracing::warn!(
            root = %root.display(),
            "the inotify watch limit is exhausted; background chunking is off for this repository \
             (raise it with `sudo sysctl fs.inotify.max_user_watches=524288`)"
        );
    } else {
        tracing::warn!(root = %root.display(), error = %error, "cannot watch repository");
    }
}

fn load_remembered(path: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default()
}

fn save_remembered(path: &Path, roots: &BTreeSet<PathBuf>) {
    let text: String = roots.iter().fold(String::new(), |mut text, r| {
        text.push_str(&r.to_string_lossy());
        text.push('\n');
        text
    });
    if let Err(e) = crate::fsutil::write_atomic(path, text.as_bytes()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remember watched repositories");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::Receiver;

    use super::*;
    use crate::prepare::Job;

    fn queued(jobs: &Receiver<Job>) -> Vec<Job> {
        jobs.try_iter().collect()
    }

    fn repository(dir: &Path, name: &str) -> PathBuf {
        let root = dir.join(name);
        std::fs::create_dir_all(root.join(SHARD_DIR)).expect("a repository directory");
        root
    }

    #[tokio::test(start_paused = true)]
    async fn remembered_repositories_are_caught_up_on_after_a_delay_and_requested_ones_at_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (old, new) = (repository(dir.path(), "old"), repository(dir.path(), "new"));
        let (preparer, jobs) = Preparer::queue_only();
        let remembered = dir.path().join("shardd.repos");
        let mut state = State::new(None, remembered.clone(), preparer, Arc::default());
        let due = Instant::now() + CATCH_UP_DELAY;

        state.add_root(old.clone(), Origin::Remembered);
        state.add_root(new.clone(), Origin::Request);
        assert_eq!(
            queued(&jobs),
            [Job::Scan(new.clone()), Job::Compress(new.clone())]
        );
        assert_eq!(load_remembered(&remembered), [new.clone(), old.clone()]);
        assert_eq!(state.next_due(), Some(due));

        tokio::time::advance(CATCH_UP_DELAY / 2).await;
        state.dispatch_due();
        assert_eq!(queued(&jobs), []);

        tokio::time::advance(CATCH_UP_DELAY / 2).await;
        state.dispatch_due();
        assert_eq!(queued(&jobs), [Job::Scan(old.clone()), Job::Compress(old)]);
        assert_eq!(state.next_due(), None, "nothing is left to catch up on");

        // A repository asked for again is neither watched nor caught up on twice.
        state.add_root(new, Origin::Request);
        assert_eq!(queued(&jobs), []);
    }
}
