//! Binding the Unix socket (or taking one from systemd) and serving the gRPC service on it
//! until the shutdown token is cancelled.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fs_err as fs;
use futures::StreamExt;
use shard_proto::shardd_server::SharddServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use crate::rpc::Service;

/// Cancels `shutdown` once no request has arrived for `timeout`.
async fn stop_when_idle(
    last_request: Arc<Mutex<Instant>>,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let last = *last_request
            .lock()
            .expect("no code panics while holding this lock");
        let deadline = last + timeout;
        if Instant::now() >= deadline {
            tracing::info!(?timeout, "idle timeout reached; shutting down");
            shutdown.cancel();
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline.into()) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Where the listening socket came from.
pub enum Listener {
    /// Bound by this process at the configured path.
    Bound(UnixListener),
    /// Inherited from a service manager (systemd socket activation).
    Inherited(UnixListener),
}

/// Takes an inherited socket (`LISTEN_FDS`) if there is one, else binds `path`.
///
/// Call only while holding the pidfile lock: a leftover socket file is unlinked first, which
/// is safe because the lock proves no live daemon is behind it.
pub fn listen(path: &Path) -> std::io::Result<Listener> {
    let mut fds = listenfd::ListenFd::from_env();
    match fds.take_unix_listener(0) {
        Ok(Some(std_listener)) => {
            std_listener.set_nonblocking(true)?;
            return Ok(Listener::Inherited(UnixListener::from_std(std_listener)?));
        }
        Ok(None) => {}
        // Binding our own socket still serves the user; say why the manager's went unused.
        Err(e) => tracing::warn!(error = %e, "ignoring the socket passed in LISTEN_FDS"),
    }
    // Only a leftover socket is ours to remove: any other file there is somebody's data.
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket: choose another --socket path",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(crate::fsutil::with_path(e, path)),
    }
    let listener = UnixListener::bind(path).map_err(|e| crate::fsutil::with_path(e, path))?;
    fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Listener::Bound(listener))
}

/// Serves `service` on `listener` until `shutdown` is cancelled. Connections from other users
/// are dropped before any request is read. With a non-zero `idle_timeout`, the daemon stops
/// after that long without a request.
pub async fn serve(
    listener: UnixListener,
    service: Service,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let last_request = Arc::new(Mutex::new(Instant::now()));
    if !idle_timeout.is_zero() {
        drop(tokio::spawn(stop_when_idle(
            Arc::clone(&last_request),
            idle_timeout,
            shutdown.clone(),
        )));
    }
    let touch = tower::ServiceBuilder::new().map_request(
        move |request: tonic::codegen::http::Request<_>| {
            *last_request
                .lock()
                .expect("no code panics while holding this lock") = Instant::now();
            request
        },
    );
    let uid = shard_proto::current_uid();
    let incoming = UnixListenerStream::new(listener).filter_map(move |conn| async move {
        match conn {
            Ok(stream) => match stream.peer_cred() {
                Ok(cred) if cred.uid() == uid => Some(Ok(stream)),
                Ok(cred) => {
                    tracing::warn!(
                        peer_uid = cred.uid(),
                        "refused a connection from another user"
                    );
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refused a connection whose peer is unknown");
                    None
                }
            },
            Err(e) => Some(Err(e)),
        }
    });
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(shard_proto::FILE_DESCRIPTOR_SET)
    };
    // Both versions: older grpcurl, grpcio's reflection client and GUI tools speak v1alpha.
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor set is valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor set is valid");
    tonic::transport::Server::builder()
        .layer(touch)
        .add_service(SharddServer::new(service).max_decoding_message_size(64 << 20))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled())
        .await
}
