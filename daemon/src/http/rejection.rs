//! Why a request was refused, and the single mapping of those reasons onto HTTP statuses and
//! `{"error": "..."}` bodies.
//!
//! | Status | When |
//! |---|---|
//! | 400 | an id that is not 64 lowercase hex digits, malformed JSON (also as a manifest), an unreadable body |
//! | 401 | no `Authorization: Bearer` token, or an unknown one |
//! | 403 | a read-only token used to upload |
//! | 404 | an unknown chunk or route |
//! | 405 | a method the route does not serve |
//! | 409 | a manifest referencing chunks the server does not hold (upload them first) |
//! | 413 | a body over its limit, more than [`MAX_MISSING_IDS`] ids in one query |
//! | 422 | an upload that does not decode (corrupt zstd, or expanding past 16 MiB) or whose content does not hash to its id, a manifest that fails validation or does not hash to its id; nothing is stored |
//! | 500 | the storage failed (details are logged, not sent) |

use std::error::Error as _;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::backend;
use crate::chunk::{ChunkHash, ParseHashError, codec};
use crate::manifest;

/// Most chunk ids accepted in one `POST /v1/chunks/missing`. Clients send batches of 1000;
/// ten times that still answers in well under a second from a local directory.
pub const MAX_MISSING_IDS: usize = 10_000;

/// A refused request.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// A chunk id that is not 64 lowercase hex digits.
    #[error(transparent)]
    BadId(#[from] ParseHashError),
    /// The path could not be decoded.
    #[error("invalid request path")]
    BadPath(#[source] PathRejection),
    /// The JSON body is malformed or lacks a field.
    #[error("invalid JSON request body")]
    BadJson(#[source] serde_json::Error),
    /// The body could not be read (the client went away mid-upload).
    #[error("failed to read the request body")]
    BadBody(#[source] axum::Error),
    /// No bearer token was presented.
    #[error("this server needs a token: send `Authorization: Bearer <token>`")]
    MissingToken,
    /// The bearer token is not in the server's token file.
    #[error("the bearer token is not valid")]
    InvalidToken,
    /// A read-only token tried to write.
    #[error("this token is read-only; uploads need a read-write (`rw`) token")]
    ReadOnly,
    /// The chunk is not stored.
    #[error("chunk {0:#} is not on this server")]
    NotFound(ChunkHash),
    /// No route matches the path.
    #[error("no such route; the API lives under /v1")]
    NoRoute,
    /// The route exists but not for this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The body is larger than the route accepts.
    #[error("request body is larger than the {limit} bytes this route accepts")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many ids in one `missing` query.
    #[error("{count} chunk ids in one request; at most {MAX_MISSING_IDS} are accepted")]
    TooManyIds {
        /// How many were sent.
        count: usize,
    },
    /// The manifest body fails [`Manifest::parse`](crate::manifest::Manifest::parse).
    #[error("the manifest is invalid")]
    BadManifest(#[source] manifest::Error),
    /// The manifest body does not hash to the id it is uploaded under.
    #[error("the manifest's bytes hash to {actual:#}, not to its id {id:#}")]
    ManifestMismatch {
        /// The id in the path.
        id: ChunkHash,
        /// The SHA-256 of the body.
        actual: ChunkHash,
    },
    /// The manifest references chunks the server does not hold.
    #[error(
        "the manifest references {count} chunk(s) this server does not hold, the first \
         {first:#}: upload its chunks before the manifest"
    )]
    MissingChunks {
        /// How many distinct chunks are missing.
        count: usize,
        /// The first, in manifest order.
        first: ChunkHash,
    },
    /// The upload does not decode to the chunk it is named after.
    #[error(transparent)]
    Invalid(#[from] codec::Error),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] backend::Error),
}

impl Rejection {
    /// The HTTP status this rejection is answered with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadId(_)
            | Self::BadPath(_)
            | Self::BadJson(_)
            | Self::BadBody(_)
            | Self::BadManifest(manifest::Error::Json(_) | manifest::Error::Conflicted) => {
                StatusCode::BAD_REQUEST
            }
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::ReadOnly => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoRoute => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::MissingChunks { .. } => StatusCode::CONFLICT,
            Self::TooLarge { .. }
            | Self::TooManyIds { .. }
            | Self::Invalid(codec::Error::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid(_) | Self::BadManifest(_) | Self::ManifestMismatch { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tokio::task::JoinError> for Rejection {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Storage(e.into())
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            // Logged once, here, where it is handled; clients get no internals.
            tracing::error!(error = %chain(&self), "request failed");
            "internal storage error; see the server log".to_owned()
        } else {
            chain(&self)
        };
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let _ = response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"shard-server\""),
            );
        }
        response
    }
}

/// The message and its causes, `outer: inner: innermost`, as `anyhow`'s `{:#}` prints them.
fn chain(error: &Rejection) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_errors_are_not_repeated() {
        let err: Rejection = "xyz".parse::<ChunkHash>().expect_err("not hex").into();
        assert_eq!(
            chain(&err),
            "`xyz` is not a SHA-256 chunk id (64 lowercase hex characters)"
        );
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn sources_are_appended() {
        let json = serde_json::from_slice::<serde_json::Value>(b"{").expect_err("truncated");
        let message = chain(&Rejection::BadJson(json));
        assert!(
            message.starts_with("invalid JSON request body: EOF"),
            "{message}"
        );
    }
}
