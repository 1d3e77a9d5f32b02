//! The client of a `shard-server` (the `/v1` API of design.md §6), over one keep-alive
//! connection pool shared by every parallel transfer.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::Error;
use crate::chunk::{ChunkHash, codec};

/// Ids per `POST /v1/chunks/missing` request.
pub const MISSING_BATCH: usize = 1000;

/// Connecting should be quick on any network we support; a dead host must not hang a push.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Generous enough for a 16 MiB chunk on a slow link, short enough to notice a stalled server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A `shard-server` at a base URL.
#[derive(Clone, Debug)]
pub struct HttpRemote {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct MissingRequest {
    chunks: Vec<String>,
}

#[derive(Deserialize)]
struct MissingResponse {
    missing: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

impl HttpRemote {
    /// A client of the server at `url` (trailing slashes ignored), sending `token` if given.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| super::unreachable(url, &e))?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }

    /// The base URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> Error {
        super::unreachable(&self.base, error)
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<(), Error> {
        let response = self
            .request(reqwest::Method::GET, "/v1/health")
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Err(super::refused(&self.base, s.as_u16(), false))
            }
            s => Err(Error::BadResponse {
                remote: self.base.clone(),
                detail: format!("health answered {s}"),
            }),
        }
    }

    /// `POST /v1/chunks/missing`, batched.
    pub async fn missing(&self, ids: &[ChunkHash]) -> Result<Vec<ChunkHash>, Error> {
        let mut out = Vec::new();
        for batch in ids.chunks(MISSING_BATCH) {
            let body = MissingRequest {
                chunks: batch.iter().map(ChunkHash::to_hex).collect(),
            };
            let response = self
                .request(reqwest::Method::POST, "/v1/chunks/missing")
                .json(&body)
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(super::refused(&self.base, status.as_u16(), false));
            }
            if !status.is_success() {
                return Err(self.bad(format!("missing-chunks query answered {status}")));
            }
            let parsed: MissingResponse = response
                .json()
                .await
                .map_err(|e| self.bad(format!("missing-chunks body: {e}")))?;
            for hex in parsed.missing {
                let hash: ChunkHash = hex.parse().map_err(|e| self.bad(format!("{e}")))?;
                if !batch.contains(&hash) {
                    return Err(self.bad(format!("it reported unasked chunk {hash:#} as missing")));
                }
                out.push(hash);
            }
        }
        Ok(out)
    }

    /// `PUT /v1/chunks/{hash}`.
    pub async fn put(&self, hash: &ChunkHash, object: Bytes) -> Result<(), Error> {
        let response = self
            .request(reqwest::Method::PUT, &format!("/v1/chunks/{hash:#}"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(object)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(super::refused(&self.base, status.as_u16(), true));
        }
        Err(self.rejected(hash, response).await)
    }

    /// `PUT /v1/manifests/{id}` with the manifest of `file`. A server that predates stored
    /// manifests (404: no such route) keeps none, so that is only logged.
    pub async fn put_manifest(&self, id: &ChunkHash, file: &str, json: Bytes) -> Result<(), Error> {
        let response = self
            .request(reqwest::Method::PUT, &format!("/v1/manifests/{id:#}"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(super::refused(&self.base, status.as_u16(), true));
        }
        if status == StatusCode::NOT_FOUND {
            tracing::warn!(remote = %self.base, file, "the server stores no manifests (it predates them); its gc cannot know this file");
            return Ok(());
        }
        Err(Error::ManifestRejected {
            remote: self.base.clone(),
            file: file.to_owned(),
            status: status.as_u16(),
            message: explanation(response).await,
        })
    }

    /// `GET /v1/chunks/{hash}`.
    pub async fn get(&self, hash: &ChunkHash) -> Result<Bytes, Error> {
        let mut object = Vec::new();
        self.get_into(hash, &mut object).await?;
        Ok(Bytes::from(object))
    }

    /// `GET /v1/chunks/{hash}` into `out` (replacing its contents), reusing its allocation: a
    /// fresh multi-megabyte buffer per chunk costs a page fault per 4 KiB. A body larger than
    /// any stored object ([`codec::MAX_OBJECT_BYTES`]) is refused as it arrives, so a broken
    /// server cannot make the daemon buffer without bound.
    pub async fn get_into(&self, hash: &ChunkHash, out: &mut Vec<u8>) -> Result<(), Error> {
        let mut response = self
            .request(reqwest::Method::GET, &format!("/v1/chunks/{hash:#}"))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                remote: self.base.clone(),
                hash: *hash,
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(super::refused(&self.base, status.as_u16(), false));
        }
        if !status.is_success() {
            return Err(self.rejected(hash, response).await);
        }
        let too_large = || self.bad(format!("chunk {hash:#} is larger than any stored object"));
        out.clear();
        let declared = response.content_length().unwrap_or(0);
        if declared > codec::MAX_OBJECT_BYTES as u64 {
            return Err(too_large());
        }
        out.reserve(declared as usize);
        while let Some(frame) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if out.len() + frame.len() > codec::MAX_OBJECT_BYTES {
                return Err(too_large());
            }
            out.extend_from_slice(&frame);
        }
        Ok(())
    }

    async fn rejected(&self, hash: &ChunkHash, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let message = explanation(response).await;
        Error::Rejected {
            remote: self.base.clone(),
            hash: *hash,
            status,
            message,
        }
    }

    fn bad(&self, detail: String) -> Error {
        Error::BadResponse {
            remote: self.base.clone(),
            detail,
        }
    }
}

/// The `error` of a JSON error body.
async fn explanation(response: reqwest::Response) -> String {
    match response.json::<ErrorBody>().await {
        Ok(body) => body.error,
        Err(_) => "no explanation".to_owned(),
    }
}
