//! `shard-server`, the remote chunk server: an axum [`Router`] serving the `/v1` API of the
//! design over a local directory or an S3 bucket.
//!
//! ```text
//! GET  /v1/health             no token needed
//! POST /v1/chunks/missing     {"chunks": [id, …]} → {"missing": [id, …]}      any token
//! PUT  /v1/chunks/{hash}      encoded object; decoded and hash-checked first   rw token
//! GET  /v1/chunks/{hash}      the stored object                                any token
//! HEAD /v1/chunks/{hash}      200 / 404                                        any token
//! PUT  /v1/manifests/{id}     a pushed manifest, id = SHA-256 of the body      rw token
//! ```
//!
//! Statuses are listed in [`rejection`]. [`Server::bind`] binds first (port 0 works) so callers
//! and tests learn the address before serving; [`serve`] does both. The same storage is
//! maintained offline by [`gc`] (`shard-server gc`, keeping every chunk a stored manifest
//! ([`roots`]) references) and checked by [`verify`] (`shard-server verify`).

pub mod auth;
pub mod backend;
pub mod gc;
pub mod handlers;
pub mod rejection;
pub mod roots;
pub mod verify;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::chunk::buffers::BufferPool;
pub use auth::{Access, Auth, Tokens};
pub use backend::{Backend, Storage};
use handlers::AppState;

/// The default `--listen` address, the one the seed server used.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

/// The default `--storage` directory.
pub const DEFAULT_STORAGE: &str = "./shard-data";

/// The upper bound of [`default_upload_slots`]: each slot may hold about 32 MiB (body plus
/// decoded chunk), so 16 slots cap upload memory near 512 MiB however many cores there are.
pub const MAX_DEFAULT_UPLOAD_SLOTS: usize = 16;

/// Free upload buffers kept for reuse: enough for a push's 8 parallel uploads to stream
/// through recycled memory, while an idle server holds at most this many objects' worth
/// (about 8 × 2 MiB at the default chunk size, 8 × 16 MiB at worst).
const MAX_FREE_UPLOAD_BUFFERS: usize = 8;

/// Why the server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file could not be read.
    #[error("failed to read the token file")]
    TokenFile(#[source] io::Error),
    /// A line of the token file is malformed.
    #[error("{}:{line}: {reason}", .path.display())]
    TokenLine {
        /// The token file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token file holds no token, so nobody could use the server.
    #[error("token file {} holds no tokens; add lines such as `rw TOKEN` or `ro TOKEN`", .0.display())]
    NoTokens(PathBuf),
    /// No tokens on an address other hosts can reach.
    #[error(
        "refusing to serve {0} without authentication: pass --token-file FILE, listen on a \
         loopback address, or pass --insecure-open if a proxy in front authenticates"
    )]
    OpenOnNetwork(SocketAddr),
    /// The storage could not be opened.
    #[error("failed to open chunk storage {location}")]
    Storage {
        /// The directory or `s3://` URL.
        location: String,
        /// Why.
        #[source]
        source: backend::Error,
    },
    /// The address could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("the HTTP server failed")]
    Serve(#[source] io::Error),
    /// `gc` or `verify` was pointed at a directory that holds no chunk storage.
    #[error("{} holds no chunk storage (it has no objects/ directory)", .0.display())]
    NoStorage(PathBuf),
    /// Reading, renewing or deleting stored objects failed during `gc` or `verify`.
    #[error("chunk storage {location} failed")]
    Maintenance {
        /// The directory or `s3://` URL.
        location: String,
        /// Why.
        #[source]
        source: backend::Error,
    },
    /// A stored manifest could not be read, so gc stopped before deleting anything more.
    #[error("gc stopped because a root of {location} cannot be read")]
    Roots {
        /// The directory or `s3://` URL.
        location: String,
        /// Why.
        #[source]
        source: roots::Error,
    },
    /// gc found no manifests at all, so it would delete every old chunk.
    #[error(
        "{location} holds no pushed manifests, so gc would delete every chunk older than the \
         grace period: push with an nshard that uploads manifests first, or pass \
         --allow-no-roots if the chunks really are garbage"
    )]
    NoRoots {
        /// The directory or `s3://` URL.
        location: String,
    },
}

/// Everything `shard-server` needs to start.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The address to listen on; port 0 picks a free port (see [`Server::local_addr`]).
    pub listen: SocketAddr,
    /// Where chunks are stored.
    pub storage: Storage,
    /// The token file; `None` serves without authentication (loopback only, unless
    /// `insecure_open`).
    pub token_file: Option<PathBuf>,
    /// Serve without tokens on a non-loopback address.
    pub insecure_open: bool,
    /// Uploads read and verified at once (S3 downloads count too); the rest wait. See
    /// [`handlers`].
    pub upload_slots: usize,
}

impl ServerConfig {
    /// An open (tokenless) configuration with the default upload slots.
    #[must_use]
    pub fn new(listen: SocketAddr, storage: Storage) -> Self {
        Self {
            listen,
            storage,
            token_file: None,
            insecure_open: false,
            upload_slots: default_upload_slots(),
        }
    }
}

/// Twice the cores (decoding is CPU-bound, reading bodies is not), at most
/// [`MAX_DEFAULT_UPLOAD_SLOTS`].
#[must_use]
pub fn default_upload_slots() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (2 * cores).min(MAX_DEFAULT_UPLOAD_SLOTS)
}

/// Reads a `--listen` value: `IP:PORT`, or `HOST:PORT` resolved now (its first address).
pub fn resolve_listen(addr: &str) -> io::Result<SocketAddr> {
    if let Ok(addr) = addr.parse() {
        return Ok(addr);
    }
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{addr} resolves to no address"),
        )
    })
}

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    router: Router,
    addr: SocketAddr,
}

impl Server {
    /// Loads the tokens, opens the storage and binds the address. Refuses to serve without
    /// tokens on a non-loopback address unless `insecure_open` is set.
    pub async fn bind(config: ServerConfig) -> Result<Self, Error> {
        let auth = Auth::from_file(config.token_file.as_deref())?;
        let open = matches!(auth, Auth::Open);
        if open && !config.listen.ip().is_loopback() && !config.insecure_open {
            return Err(Error::OpenOnNetwork(config.listen));
        }
        let backend = Backend::open(&config.storage).map_err(|source| Error::Storage {
            location: config.storage.to_string(),
            source,
        })?;
        backend.probe().await.map_err(|source| Error::Storage {
            location: config.storage.to_string(),
            source,
        })?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        if open {
            tracing::warn!(%addr, "no --token-file: anyone who can connect may read and upload chunks");
        }
        let tokens = match &auth {
            Auth::Open => 0,
            Auth::Tokens(tokens) => tokens.len(),
        };
        tracing::info!(
            %addr,
            storage = %config.storage,
            tokens,
            upload_slots = config.upload_slots,
            version = env!("CARGO_PKG_VERSION"),
            "listening"
        );
        Ok(Self {
            listener,
            router: router(backend, auth, config.upload_slots),
            addr,
        })
    }

    /// The address actually bound (the real port when port 0 was asked for).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(Error::Serve)?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Opens `storage` for `gc` or `verify`: unlike serving, a directory must exist already (a
/// typo must not look like an empty store).
fn open_existing(storage: &Storage) -> Result<Backend, Error> {
    if let Storage::Directory(path) = storage
        && !path.join("objects").is_dir()
    {
        return Err(Error::NoStorage(path.clone()));
    }
    Backend::open(storage).map_err(|source| Error::Storage {
        location: storage.to_string(),
        source,
    })
}

/// Binds and serves `config` until `shutdown` is cancelled.
pub async fn serve(config: ServerConfig, shutdown: CancellationToken) -> Result<(), Error> {
    Server::bind(config).await?.run(shutdown).await
}

/// The `/v1` router over `backend`, guarded by `auth`, with at most `upload_slots` uploads
/// in memory at once.
pub fn router(backend: Backend, auth: Auth, upload_slots: usize) -> Router {
    let upload_slots = upload_slots.max(1);
    let state = AppState {
        backend: Arc::new(backend),
        upload_slots: Arc::new(Semaphore::new(upload_slots)),
        buffers: Arc::new(BufferPool::new(
            (2 * upload_slots).min(MAX_FREE_UPLOAD_BUFFERS),
        )),
    };
    let chunks = Router::new()
        .route("/v1/chunks/missing", post(handlers::missing))
        .route(
            "/v1/chunks/{hash}",
            get(handlers::get_chunk)
                .head(handlers::head_chunk)
                .put(handlers::put_chunk),
        )
        .route("/v1/manifests/{id}", put(handlers::put_manifest))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(auth),
            auth::require_token,
        ));
    Router::new()
        .route("/v1/health", get(handlers::health))
        .merge(chunks)
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::no_method)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Middleware: one `info` line per request with method, path, status and latency.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        latency = ?started.elapsed(),
        peer = peer.map(tracing::field::display),
        "request"
    );
    response
}
