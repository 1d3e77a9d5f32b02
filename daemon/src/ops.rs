//! The repository operations behind each command. They are synchronous (they read and write
//! files) and run on blocking threads; progress goes out through a [`Reporter`].

pub mod checkout;
pub mod commit;
pub mod diff;
pub mod gc;
pub mod gitignore;
pub mod hashing;
pub mod history;
pub mod hooks;
pub mod parallel;
pub mod status;
pub mod track;
pub mod transfer;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shard_proto::{Progress, ProgressUnit};
use tokio::sync::mpsc;

use crate::activity::{Activity, Change};

/// Progress is sent at most this often: smooth bars without flooding the socket.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The progress phase of rebuilding a file (checkout, pull).
pub const CHECKING_OUT: &str = "checking out";

/// Sends throttled progress to the client. Never blocks the work: when the client reads
/// slowly, intermediate updates are dropped.
pub struct Reporter {
    tx: Option<mpsc::Sender<Progress>>,
    activity: Option<(Arc<Activity>, PathBuf, String)>,
    last: Option<Instant>,
    yield_when: Option<Box<dyn Fn() -> bool + Send>>,
    yielded: bool,
    /// Where a checkout's progress on each file is shown to `status`.
    checkouts: Option<(Arc<Activity>, PathBuf)>,
}

impl Reporter {
    /// Reports into `tx`.
    #[must_use]
    pub fn new(tx: mpsc::Sender<Progress>) -> Self {
        Self {
            tx: Some(tx),
            activity: None,
            last: None,
            yield_when: None,
            yielded: false,
            checkouts: None,
        }
    }

    /// Reports background progress on `rel` to subscribers and `status`.
    #[must_use]
    pub fn activity(activity: Arc<Activity>, root: &Path, rel: &str) -> Self {
        Self {
            tx: None,
            activity: Some((activity, root.to_path_buf(), rel.to_owned())),
            last: None,
            yield_when: None,
            yielded: false,
            checkouts: None,
        }
    }

    /// Reports nowhere (background work, tests).
    #[must_use]
    pub fn silent() -> Self {
        Self {
            tx: None,
            activity: None,
            last: None,
            yield_when: None,
            yielded: false,
            checkouts: None,
        }
    }

    /// Reports progress if enough time has passed since the last report (or `force`).
    pub fn report(&mut self, phase: &str, path: &str, done: u64, total: u64, unit: ProgressUnit) {
        if let Some(should_yield) = &self.yield_when {
            self.yielded |= should_yield();
        }
        if self.tx.is_none() && self.activity.is_none() && self.checkouts.is_none() {
            return;
        }
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|last| now.duration_since(last) >= PROGRESS_INTERVAL);
        if !due && done < total {
            return;
        }
        self.last = Some(now);
        if let Some((activity, root)) = &self.checkouts
            && phase == CHECKING_OUT
            && !path.is_empty()
        {
            activity.checking_out(root, path, done, total);
        }
        if let Some((activity, root, rel)) = &self.activity {
            if done < total {
                activity.emit(root, rel, Change::Preparing { done, total }, None);
            }
            return;
        }
        let Some(tx) = &self.tx else { return };
        let _ = tx.try_send(Progress {
            phase: phase.to_owned(),
            path: path.to_owned(),
            done,
            total,
            unit: unit.into(),
        });
    }

    /// Background work: stop as soon as `should_yield` says an interactive operation wants the
    /// machine (checked at every progress point).
    #[must_use]
    pub fn yielding_to(mut self, should_yield: impl Fn() -> bool + Send + 'static) -> Self {
        self.yield_when = Some(Box::new(should_yield));
        self
    }

    /// True once the work should stop and give way (see [`Reporter::yielding_to`]).
    #[must_use]
    pub fn yielded(&self) -> bool {
        self.yielded
    }

    /// Shows the progress of every file this checkout (or pull) rebuilds in `root` to
    /// `status` (see [`crate::activity::CheckoutsShown`], which clears it afterwards).
    pub fn showing_checkouts(&mut self, activity: Arc<Activity>, root: PathBuf) {
        self.checkouts = Some((activity, root));
    }

    /// True once the client that asked for the work is gone (Ctrl-C, a killed `nshard`):
    /// work that would change the working tree must then stop, not finish unseen later.
    #[must_use]
    pub fn cancelled(&self) -> bool {
        self.tx.as_ref().is_some_and(mpsc::Sender::is_closed)
    }

    /// Byte progress.
    pub fn bytes(&mut self, phase: &str, path: &str, done: u64, total: u64) {
        self.report(phase, path, done, total, ProgressUnit::Bytes);
    }
}
