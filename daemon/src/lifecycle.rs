//! The daemon's claim on its socket: a private directory, a pidfile lock held for the whole
//! lifetime (so two daemons never share a socket), and signal handling.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fs_err as fs;
use tokio_util::sync::CancellationToken;

/// Why the daemon could not claim its socket.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket directory is a symlink.
    #[error("socket directory {} is a symlink; refusing to use it", .0.display())]
    Symlink(PathBuf),
    /// The socket directory belongs to someone else.
    #[error("socket directory {} belongs to uid {owner}, not to you", .path.display())]
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Other users could reach the socket.
    #[error("socket directory {} is accessible to other users (mode {mode:o}); run `chmod 700` on it", .path.display())]
    Permissions {
        /// The directory.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Another daemon holds the pidfile.
    #[error("another shardd is already serving {} (pidfile {})", .socket.display(), .pidfile.display())]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
        /// The pidfile.
        pidfile: PathBuf,
    },
    /// Filesystem trouble.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Holds the pidfile lock; dropping it releases the claim.
#[derive(Debug)]
pub struct PidfileGuard {
    file: File,
}

impl PidfileGuard {
    /// Empties the pidfile while its lock is still held: the file stays (its lock, not its
    /// name, says whether a daemon runs), but no dead pid is left in it for a client to signal.
    pub fn vacate(&self) {
        let _ = self.file.set_len(0);
    }
}

/// A daemon that fails to start vacates its pidfile too.
impl Drop for PidfileGuard {
    fn drop(&mut self) {
        self.vacate();
    }
}

/// Creates the socket directory (0700) if needed and checks it is private and ours.
pub fn prepare_socket_dir(socket: &Path) -> Result<(), Error> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Err(Error::Symlink(dir.into()));
    }
    if meta.uid() != shard_proto::current_uid() {
        return Err(Error::ForeignOwner {
            path: dir.into(),
            owner: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::Permissions {
            path: dir.into(),
            mode,
        });
    }
    Ok(())
}

/// Takes the pidfile lock beside `socket` and records our pid and version in it.
pub fn lock_pidfile(socket: &Path) -> Result<PidfileGuard, Error> {
    let pidfile = shard_proto::pidfile_path(socket);
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&pidfile)?;
    match file.file().try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::AlreadyRunning {
                socket: socket.into(),
                pidfile,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    file.set_len(0)?;
    writeln!(
        file,
        "{}\n{}",
        std::process::id(),
        env!("CARGO_PKG_VERSION")
    )?;
    Ok(PidfileGuard {
        file: file.into_parts().0,
    })
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    drop(tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = token.cancelled() => return,
        };
        // Shut down first: nothing, not even logging, may stand in the way.
        token.cancel();
        tracing::info!("{name} received; shutting down");
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("run/s.sock");
        prepare_socket_dir(&socket).expect("creates a private dir");
        let guard = lock_pidfile(&socket).expect("first lock");
        assert!(matches!(
            lock_pidfile(&socket),
            Err(Error::AlreadyRunning { .. })
        ));
        let pidfile = shard_proto::pidfile_path(&socket);
        let pid = std::process::id().to_string();
        assert!(
            fs::read_to_string(&pidfile)
                .expect("read")
                .starts_with(&pid)
        );
        drop(guard);
        assert_eq!(
            fs::read_to_string(&pidfile).expect("read"),
            "",
            "a dead pid was left"
        );
        let _again = lock_pidfile(&socket).expect("free again");
    }

    #[test]
    fn shared_directories_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let socket = dir.path().join("s.sock");
        assert!(matches!(
            prepare_socket_dir(&socket),
            Err(Error::Permissions { .. })
        ));
    }
}
