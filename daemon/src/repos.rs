//! The repositories this daemon serves: each request's working directory is resolved to a
//! repository, whose index is opened once and kept, and whose mutating operations are
//! serialised by a per-repository lock (so `gc` can never race a `commit` in this daemon).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::index::Index;
use crate::repo::Repo;
use crate::watch::Watcher;

/// Per-repository state kept across requests.
pub struct Handle {
    /// The repository's index.
    pub index: Index,
    /// Held by operations that write to the store or the working tree.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

/// Every repository served so far, by root.
#[derive(Default)]
pub struct Repos {
    open: Mutex<BTreeMap<PathBuf, Arc<Handle>>>,
    watcher: OnceLock<Watcher>,
}

impl Repos {
    /// Resolves the repository containing `cwd` (an absolute path sent by the client).
    pub fn resolve(&self, cwd: &str) -> Result<(Repo, Arc<Handle>)> {
        let cwd = check_cwd(cwd)?;
        let repo = Repo::discover(cwd)?;
        let handle = self.handle(&repo)?;
        Ok((repo, handle))
    }

    /// The state of an already discovered repository, opening its index on first use.
    pub fn handle(&self, repo: &Repo) -> Result<Arc<Handle>> {
        let mut open = self
            .open
            .lock()
            .expect("no code panics while holding this lock");
        if let Some(handle) = open.get(&repo.root) {
            return Ok(Arc::clone(handle));
        }
        repo.ensure_shard_dir()?;
        let index = Index::open(&repo.shard_dir().join("index"))?;
        let handle = Arc::new(Handle {
            index,
            lock: Arc::default(),
        });
        let _ = open.insert(repo.root.clone(), Arc::clone(&handle));
        if let Some(watcher) = self.watcher.get() {
            watcher.watch(&repo.root);
        }
        Ok(handle)
    }

    /// Registers every repository opened from now on with `watcher`.
    pub fn set_watcher(&self, watcher: Watcher) {
        let _ = self.watcher.set(watcher);
    }

    /// Roots of every repository served. Repositories deleted since they were opened are
    /// forgotten first (their index closes once no operation holds it).
    #[must_use]
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut open = self
            .open
            .lock()
            .expect("no code panics while holding this lock");
        open.retain(|root, _| root.join(crate::repo::SHARD_DIR).is_dir());
        open.keys().cloned().collect()
    }

    /// Flushes and closes every index (on shutdown, before the pidfile is released, so a
    /// successor daemon finds the indexes unlocked). Handles still held elsewhere close when
    /// those holders finish.
    pub fn close_all(&self) {
        self.flush_all();
        self.open
            .lock()
            .expect("no code panics while holding this lock")
            .clear();
    }

    /// Flushes every index.
    pub fn flush_all(&self) {
        let open = self
            .open
            .lock()
            .expect("no code panics while holding this lock");
        for (root, handle) in open.iter() {
            if let Err(e) = handle.index.flush() {
                tracing::warn!(root = %root.display(), error = %e.render(), "index flush failed");
            }
        }
    }
}

/// A request's `cwd` as a path: it must be the absolute path of an existing directory.
pub fn check_cwd(cwd: &str) -> Result<&Path> {
    let path = Path::new(cwd);
    if path.is_absolute() && path.is_dir() {
        Ok(path)
    } else {
        Err(Error::BadCwd {
            cwd: path.to_path_buf(),
        })
    }
}
