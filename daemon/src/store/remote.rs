//! The remotes push and pull talk to: a `shard-server` over HTTP, a plain directory, or an
//! S3 bucket. Each returns stored (encoded) objects; verification is the caller's job and is
//! never skipped.

mod http;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::local::LocalStore;
use super::manifest_key;
use super::object::{ObjectBackend, OpenError};
use crate::chunk::ChunkHash;
pub use http::HttpRemote;

/// Why a remote operation failed. Every message names the remote.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not one we understand.
    #[error(
        "`{0}` is not a remote URL: use http(s)://host:port, a directory, file:///path or s3://bucket/prefix"
    )]
    BadUrl(String),
    /// Nothing answered.
    #[error("remote {remote} is unreachable ({reason}): is the server running and the URL right?")]
    Unreachable {
        /// The remote.
        remote: String,
        /// A short reason ("connection refused", "timed out", ...); the full transport error
        /// is logged by the daemon.
        reason: String,
    },
    /// The server refused our credentials.
    #[error("remote {remote} refused the request ({status}): {advice}")]
    Auth {
        /// The remote.
        remote: String,
        /// The HTTP status.
        status: u16,
        /// What to do about it.
        advice: &'static str,
    },
    /// The remote does not have a chunk.
    #[error("chunk {hash:#} is not on remote {remote}: push it from a clone that has it")]
    NotFound {
        /// The remote.
        remote: String,
        /// The chunk.
        hash: ChunkHash,
    },
    /// The remote rejected or mangled a chunk.
    #[error("remote {remote} answered {status} for chunk {hash:#}: {message}")]
    Rejected {
        /// The remote.
        remote: String,
        /// The chunk.
        hash: ChunkHash,
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The remote refused a pushed manifest.
    #[error("remote {remote} answered {status} for the manifest of {file}: {message}")]
    ManifestRejected {
        /// The remote.
        remote: String,
        /// The file the manifest describes.
        file: String,
        /// The HTTP status.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The remote sent something that is not a valid answer.
    #[error("remote {remote} sent an invalid response ({detail}): is it a shard-server?")]
    BadResponse {
        /// The remote.
        remote: String,
        /// What was wrong.
        detail: String,
    },
    /// A chunk from the remote does not match its name.
    #[error("chunk {hash:#} from remote {remote} is corrupted: {source}; nothing was written")]
    Corrupt {
        /// The remote.
        remote: String,
        /// The chunk.
        hash: ChunkHash,
        /// What is wrong.
        source: crate::chunk::codec::Error,
    },
    /// Object storage failed.
    #[error("remote {remote} failed: {}", first_line(&.source.to_string()))]
    Object {
        /// The remote.
        remote: String,
        /// What `object_store` reported.
        source: object_store::Error,
    },
    /// The bucket does not exist.
    #[error(
        "the bucket of remote {remote} does not exist: create it first (or check AWS_ENDPOINT_URL)"
    )]
    NoBucket {
        /// The remote.
        remote: String,
    },
    /// The object store refused our credentials.
    #[error(
        "remote {remote} refused the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    Denied {
        /// The remote.
        remote: String,
    },
    /// No credentials anywhere: not in the environment, not in `~/.aws/`, and no instance
    /// metadata service answered.
    #[error(
        "no AWS credentials for remote {remote}: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or AWS_PROFILE for a profile in ~/.aws/credentials"
    )]
    NoCredentials {
        /// The remote.
        remote: String,
    },
    /// The shared AWS configuration (`~/.aws/`) cannot be used for an `s3://` remote.
    #[error("remote {remote} cannot be opened: {source}")]
    Profile {
        /// The remote.
        remote: String,
        /// What is wrong with the configuration.
        source: super::aws_profile::Error,
    },
    /// A directory remote failed.
    #[error("remote {remote} failed")]
    Dir {
        /// The remote.
        remote: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether retrying may help (network trouble, overload, server errors).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Rejected { status, .. } | Self::ManifestRejected { status, .. } => {
                *status >= 500 || *status == 429
            }
            Self::Object { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. } | object_store::Error::Generic { .. }
            ),
            _ => false,
        }
    }

    /// The same error for an operation that writes (a push's queries need a read-write
    /// token, so that is what the advice asks for).
    #[must_use]
    pub fn when_writing(self) -> Self {
        match self {
            Self::Auth { remote, status, .. } => refused(&remote, status, true),
            other => other,
        }
    }

    /// The gRPC code for this failure.
    #[must_use]
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::BadUrl(_) => tonic::Code::InvalidArgument,
            Self::Unreachable { .. } => tonic::Code::Unavailable,
            Self::Auth { .. } | Self::Denied { .. } | Self::NoCredentials { .. } => {
                tonic::Code::PermissionDenied
            }
            Self::NoBucket { .. }
            | Self::Profile { .. }
            | Self::ManifestRejected { status: 409, .. } => tonic::Code::FailedPrecondition,
            Self::NotFound { .. } => tonic::Code::NotFound,
            Self::Corrupt { .. } => tonic::Code::DataLoss,
            _ => tonic::Code::Internal,
        }
    }
}

/// A remote ready for transfers.
#[derive(Clone, Debug)]
pub enum Remote {
    /// `http(s)://…`: a `shard-server`.
    Http(HttpRemote),
    /// A directory with the store layout (NFS share, USB disk).
    Dir(LocalStore),
    /// `s3://bucket/prefix`.
    S3(ObjectBackend),
}

impl Remote {
    /// Opens `url`. Relative directory paths are relative to `cwd`; credentials come only from
    /// `env` (the caller's environment).
    pub fn open(url: &str, cwd: &Path, env: &HashMap<String, String>) -> Result<Self, Error> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Self::Http(HttpRemote::new(
                url,
                env.get("NSHARD_TOKEN").cloned(),
            )?));
        }
        if url.starts_with("s3://") {
            return ObjectBackend::from_url(url, env)
                .map(Self::S3)
                .map_err(|e| match e {
                    OpenError::Profile(source) => Error::Profile {
                        remote: url.to_owned(),
                        source,
                    },
                    OpenError::Store(source) => object_error(url.to_owned(), source),
                });
        }
        let path = if let Some(path) = file_url_path(url) {
            PathBuf::from(path)
        } else if url.contains("://") || url.is_empty() {
            return Err(Error::BadUrl(url.to_owned()));
        } else {
            cwd.join(url)
        };
        Ok(Self::Dir(LocalStore::new(path)))
    }

    /// A name for messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Http(h) => h.url().to_owned(),
            Self::Dir(d) => d.root().display().to_string(),
            Self::S3(s) => s.url().to_owned(),
        }
    }

    /// Checks the remote answers (and, for directories, exists), before any transfer.
    pub async fn check(&self) -> Result<(), Error> {
        match self {
            Self::Http(h) => h.health().await,
            Self::Dir(d) if !d.root().is_dir() => Err(Error::Dir {
                remote: self.describe(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "directory {} does not exist (create it first)",
                        d.root().display()
                    ),
                ),
            }),
            Self::Dir(_) => Ok(()),
            Self::S3(s) => s
                .list_probe()
                .await
                .map_err(|source| self.object_error(source)),
        }
    }

    /// The subset of `ids` the remote does not have, in order.
    pub async fn missing(&self, ids: &[ChunkHash]) -> Result<Vec<ChunkHash>, Error> {
        match self {
            Self::Http(h) => h.missing(ids).await,
            Self::Dir(d) => Ok(ids.iter().filter(|id| !d.contains(id)).copied().collect()),
            Self::S3(s) => {
                let mut out = Vec::new();
                for id in ids {
                    let present = s
                        .contains(id)
                        .await
                        .map_err(|source| self.object_error(source))?;
                    if !present {
                        out.push(*id);
                    }
                }
                Ok(out)
            }
        }
    }

    /// Uploads an encoded object the caller has verified.
    pub async fn put(&self, hash: &ChunkHash, object: Bytes) -> Result<(), Error> {
        match self {
            Self::Http(h) => h.put(hash, object).await,
            Self::Dir(d) => {
                let hash = *hash;
                self.in_dir(d, move |store| store.put_object(&hash, &object))
                    .await
            }
            Self::S3(s) => s
                .put(hash, object)
                .await
                .map_err(|source| self.object_error(source)),
        }
    }

    /// Stores the manifest of `file` (its bytes `json`) as a root the remote keeps, at
    /// [`manifest_key`] named by the SHA-256 of `json`. Call it only once every chunk the
    /// manifest references is on the remote: `shard-server` refuses it otherwise (409).
    pub async fn put_manifest(&self, file: &str, json: Bytes) -> Result<(), Error> {
        let id = ChunkHash::of(&json);
        match self {
            Self::Http(h) => h.put_manifest(&id, file, json).await,
            Self::Dir(d) => {
                self.in_dir(d, move |store| store.put_manifest(&id, &json))
                    .await
            }
            Self::S3(s) => s
                .put_file(&manifest_key(&id), json)
                .await
                .map_err(|source| self.object_error(source)),
        }
    }

    /// Downloads an encoded object (unverified: the caller verifies).
    pub async fn get(&self, hash: &ChunkHash) -> Result<Bytes, Error> {
        let mut object = Vec::new();
        self.get_into(hash, &mut object).await?;
        Ok(Bytes::from(object))
    }

    /// Downloads an encoded object into `out` (replacing its contents; unverified: the caller
    /// verifies). `out`'s allocation is reused, so a transfer that recycles its buffers does
    /// not fault in fresh pages for every chunk.
    pub async fn get_into(&self, hash: &ChunkHash, out: &mut Vec<u8>) -> Result<(), Error> {
        let not_found = || Error::NotFound {
            remote: self.describe(),
            hash: *hash,
        };
        match self {
            Self::Http(h) => h.get_into(hash, out).await,
            Self::Dir(d) => {
                let (store, id, mut buffer) = (d.clone(), *hash, std::mem::take(out));
                let (buffer, read) = tokio::task::spawn_blocking(move || {
                    let read = store.read_object_into(&id, &mut buffer);
                    (buffer, read)
                })
                .await
                .map_err(|e| Error::Dir {
                    remote: self.describe(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                *out = buffer;
                match read {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(not_found()),
                    Err(source) => Err(Error::Dir {
                        remote: self.describe(),
                        source,
                    }),
                }
            }
            Self::S3(s) => {
                let object = s
                    .get(hash)
                    .await
                    .map_err(|source| self.object_error(source))?
                    .ok_or_else(not_found)?;
                out.clear();
                out.extend_from_slice(&object);
                Ok(())
            }
        }
    }

    /// Runs a blocking write on a directory remote's store off the async threads.
    async fn in_dir(
        &self,
        store: &LocalStore,
        write: impl FnOnce(&LocalStore) -> std::io::Result<bool> + Send + 'static,
    ) -> Result<(), Error> {
        let store = store.clone();
        tokio::task::spawn_blocking(move || write(&store))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map(drop)
            .map_err(|source| Error::Dir {
                remote: self.describe(),
                source,
            })
    }

    fn object_error(&self, source: object_store::Error) -> Error {
        object_error(self.describe(), source)
    }
}

/// A transport failure as one short phrase (the chain is logged, not shown).
#[must_use]
pub fn unreachable(remote: &str, error: &reqwest::Error) -> Error {
    tracing::debug!(remote, error = ?error, "remote request failed");
    let chain = {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text.to_ascii_lowercase()
    };
    let reason = if error.is_timeout() || chain.contains("timed out") {
        "timed out"
    } else if chain.contains("refused") {
        "connection refused"
    } else if chain.contains("dns") || chain.contains("resolve") || chain.contains("lookup") {
        "cannot resolve the host"
    } else if chain.contains("reset") || chain.contains("closed") || chain.contains("broken pipe") {
        "the connection was cut"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    Error::Unreachable {
        remote: remote.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The credential error for an HTTP 401/403, with advice that fits what was attempted.
#[must_use]
pub fn refused(remote: &str, status: u16, writing: bool) -> Error {
    let advice = match (status, writing) {
        (403, true) => "the token is read-only: use a read-write token to push",
        (403, false) => "the token may not read from it: ask for a read token",
        (_, true) => {
            "set NSHARD_TOKEN (or the remote's `token` in .shard/config.toml) to a read-write \
             token it accepts"
        }
        (_, false) => {
            "set NSHARD_TOKEN (or the remote's `token` in .shard/config.toml) to a token it \
             accepts"
        }
    };
    Error::Auth {
        remote: remote.to_owned(),
        status,
        advice,
    }
}

/// Classifies an `object_store` failure into the errors users can act on.
/// The absolute path of a `file:///abs` URL, or of its RFC 8089 spelling with the local
/// host, `file://localhost/abs`; `None` for anything else (another host included).
fn file_url_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    path.starts_with('/').then_some(path)
}

/// Checks that `url` names a remote (`http(s)://host[:port]`, `file:///path`,
/// `s3://bucket[/prefix]` or a directory path), without contacting it: `remote add` refuses
/// what a push would refuse later.
pub fn check_url(url: &str) -> Result<(), Error> {
    let bad = || Error::BadUrl(url.to_owned());
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.trim().is_empty() {
            Err(bad())
        } else {
            Ok(())
        };
    };
    let sound = match scheme {
        "http" | "https" => {
            reqwest::Url::parse(url).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        }
        "file" => file_url_path(url).is_some(),
        "s3" => rest
            .split('/')
            .next()
            .is_some_and(|bucket| !bucket.is_empty()),
        _ => false,
    };
    if sound { Ok(()) } else { Err(bad()) }
}

/// The EC2 instance metadata service, where S3 clients look for credentials last.
const INSTANCE_METADATA: &str = "169.254.169.254";

fn object_error(remote: String, source: object_store::Error) -> Error {
    let text = source.to_string();
    if text.contains("NoSuchBucket") {
        Error::NoBucket { remote }
    } else if text.contains(INSTANCE_METADATA) {
        Error::NoCredentials { remote }
    } else if let Some(reason) = transport_failure(&text) {
        Error::Unreachable {
            remote,
            reason: reason.to_owned(),
        }
    } else if matches!(
        source,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) || text.contains("SignatureDoesNotMatch")
        || text.contains("InvalidAccessKeyId")
    {
        Error::Denied { remote }
    } else {
        Error::Object { remote, source }
    }
}

/// Why an object store request found nobody to talk to, as a short phrase; `None` when it
/// did (`object_store` reports transport failures as text, after its retries).
fn transport_failure(text: &str) -> Option<&'static str> {
    let text = text.to_ascii_lowercase();
    if text.contains("connection refused") {
        Some("connection refused")
    } else if text.contains("timed out") {
        Some("timed out")
    } else if text.contains("dns error") || text.contains("failed to lookup") {
        Some("cannot resolve the host")
    } else if text.contains("error sending request") || text.contains("connection reset") {
        Some("the connection failed")
    } else {
        None
    }
}

/// The first line of a long error, at most 300 characters (S3 errors embed whole XML bodies),
/// without the "Generic S3 error: " prefix `object_store` adds.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let line = line.strip_prefix("Generic S3 error: ").unwrap_or(line);
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_checked_without_contacting_anything() {
        for good in [
            "http://127.0.0.1:8000",
            "https://models.example.com/",
            "file:///mnt/share",
            "file://localhost/mnt/share",
            "s3://bucket",
            "s3://bucket/prefix/x",
            "../usb",
            "/mnt/share",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "s3://",
            "http://",
            "http://host:notaport",
            "gopher://a/b",
            "file://otherhost/mnt/share",
            "",
        ] {
            assert!(matches!(check_url(bad), Err(Error::BadUrl(_))), "{bad:?}");
        }
    }

    #[test]
    fn object_store_failures_become_advice() {
        let imds = object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT http://169.254.169.254/latest/api/token".into(),
        };
        let error = object_error("s3://b/p".to_owned(), imds);
        assert!(matches!(error, Error::NoCredentials { .. }), "{error}");
        assert!(error.to_string().contains("AWS_PROFILE"), "{error}");
        assert!(!error.is_transient());

        let missing = object_store::Error::Generic {
            store: "S3",
            source: "<Code>NoSuchBucket</Code>".into(),
        };
        let error = object_error("s3://b/p".to_owned(), missing);
        assert!(matches!(error, Error::NoBucket { .. }), "{error}");

        let down = object_store::Error::Generic {
            store: "S3",
            source: "Error performing list request: Error performing GET http://127.0.0.1:1/b \
                     after 10 retries - HTTP error: error sending request: Connection refused"
                .into(),
        };
        let error = object_error("s3://b/p".to_owned(), down);
        assert_eq!(
            error.to_string(),
            "remote s3://b/p is unreachable (connection refused): is the server running and \
             the URL right?"
        );

        let half = object_store::Error::Generic {
            store: "S3",
            source: "Missing SecretAccessKey".into(),
        };
        let error = object_error("s3://b/p".to_owned(), half);
        assert_eq!(
            error.to_string(),
            "remote s3://b/p failed: Missing SecretAccessKey"
        );
    }
}
