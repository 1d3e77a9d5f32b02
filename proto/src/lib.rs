#![doc = include_str!("../README.md")]

use std::path::{Path, PathBuf};

#[allow(missing_docs, clippy::pedantic, unused_results)]
mod generated {
    tonic::include_proto!("shard.v1");
}

pub use generated::*;

/// Bumped whenever a change to `shardd.proto` is not backward compatible. A client that sees a
/// daemon with another protocol version restarts it (or tells the user how to).
pub const PROTOCOL_VERSION: u32 = 1;

/// The encoded `FileDescriptorSet` of `shard.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("shard_descriptor");

/// Unix socket paths must fit in `sockaddr_un.sun_path` (108 bytes on Linux, 104 on macOS);
/// 100 leaves room for both.
pub const MAX_SOCKET_PATH_BYTES: usize = 100;

/// The socket path used when neither `--socket` nor `SHARDD_SOCKET` is given:
/// `$XDG_RUNTIME_DIR/shardd/shardd.sock` when that directory is set, else
/// `${TMPDIR:-/tmp}/shardd-$UID/shardd.sock` (and `/tmp/shardd-$UID/shardd.sock` when the
/// `TMPDIR` form would be too long for a Unix socket).
#[must_use]
pub fn default_socket_path(runtime_dir: Option<&Path>, tmp_dir: Option<&Path>) -> PathBuf {
    if let Some(dir) = runtime_dir.filter(|d| d.is_absolute()) {
        let path = dir.join("shardd").join("shardd.sock");
        if fits(&path) {
            return path;
        }
    }
    let user_dir = format!("shardd-{}", current_uid());
    if let Some(dir) = tmp_dir.filter(|d| d.is_absolute()) {
        let path = dir.join(&user_dir).join("shardd.sock");
        if fits(&path) {
            return path;
        }
    }
    Path::new("/tmp").join(user_dir).join("shardd.sock")
}

/// The pidfile that guards a socket: it sits beside the socket, so two daemons can never
/// share one socket whatever paths they were given.
#[must_use]
pub fn pidfile_path(socket: &Path) -> PathBuf {
    sibling(socket, "pid")
}

/// The lock `nshard` holds while it starts a daemon, so two clients never spawn two.
#[must_use]
pub fn startup_lock_path(socket: &Path) -> PathBuf {
    sibling(socket, "startup.lock")
}

/// The log an auto-spawned daemon writes (its stderr), beside its socket.
#[must_use]
pub fn log_path(socket: &Path) -> PathBuf {
    sibling(socket, "log")
}

/// The list of repositories the daemon watches, re-armed when it restarts.
#[must_use]
pub fn repos_path(socket: &Path) -> PathBuf {
    sibling(socket, "repos")
}

/// The real user id of this process; the socket directory and its peers must belong to it.
#[must_use]
pub fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

fn sibling(socket: &Path, extension: &str) -> PathBuf {
    let stem = socket
        .file_stem()
        .map_or_else(|| "shardd".to_owned(), |s| s.to_string_lossy().into_owned());
    socket.with_file_name(format!("{stem}.{extension}"))
}

fn fits(path: &Path) -> bool {
    path.as_os_str().len() <= MAX_SOCKET_PATH_BYTES
}

/// `text` as one word for a POSIX shell, for commands suggested in messages (by the daemon
/// and the client alike): as it is when nothing in it is special, else in single quotes.
#[must_use]
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_commands_quote_what_a_shell_would_split() {
        assert_eq!(shell_word("models/a.bin"), "models/a.bin");
        assert_eq!(shell_word("d ir/x.bin"), "'d ir/x.bin'");
        assert_eq!(shell_word("it's.bin"), "'it'\\''s.bin'");
        assert_eq!(shell_word("w[1].bin"), "'w[1].bin'");
    }

    #[test]
    fn runtime_dir_wins() {
        let path = default_socket_path(Some(Path::new("/run/user/1000")), Some(Path::new("/t")));
        assert_eq!(path, Path::new("/run/user/1000/shardd/shardd.sock"));
    }

    #[test]
    fn tmp_dir_is_per_user() {
        let path = default_socket_path(None, Some(Path::new("/var/tmp")));
        assert_eq!(
            path,
            Path::new(&format!("/var/tmp/shardd-{}/shardd.sock", current_uid()))
        );
    }

    #[test]
    fn overlong_paths_fall_back_to_tmp() {
        let long = format!("/{}", "x".repeat(120));
        let path = default_socket_path(Some(Path::new(&long)), Some(Path::new(&long)));
        assert!(path.starts_with("/tmp"));
    }

    #[test]
    fn siblings_share_the_socket_directory() {
        let socket = Path::new("/run/user/1/shardd/shardd.sock");
        assert_eq!(
            pidfile_path(socket),
            Path::new("/run/user/1/shardd/shardd.pid")
        );
        assert_eq!(log_path(socket), Path::new("/run/user/1/shardd/shardd.log"));
    }
}
