//! Chunks in S3-compatible object storage (through `object_store`), at
//! `s3://bucket/prefix/objects/ab/<hash>`: used directly by `nshard push/pull s3://…` and as a
//! `shard-server` backend. Several servers may share one bucket: every write is a whole-object
//! PUT of content-addressed data, so concurrent writers can only write the same bytes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::{aws_profile, object_key};
use crate::chunk::ChunkHash;

/// A bucket (and prefix) holding chunks.
#[derive(Clone, Debug)]
pub struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

/// Why a bucket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The shared AWS configuration files could not be used.
    #[error(transparent)]
    Profile(#[from] aws_profile::Error),
    /// The URL or the settings are not valid.
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

/// An object that was listed.
#[derive(Clone, Copy, Debug)]
pub struct Listed {
    /// The chunk (or, for a manifest, its id).
    pub hash: ChunkHash,
    /// Stored size.
    pub size: u64,
    /// When the object was last written (S3 `Last-Modified`).
    pub modified: SystemTime,
}

impl ObjectBackend {
    /// Opens `s3://bucket/prefix` with credentials and endpoint taken only from `env` (the
    /// caller's `AWS_*` variables and `HOME`): `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (plain http
    /// is allowed for a custom endpoint, as MinIO-style servers on a LAN need), completed from
    /// the profile `AWS_PROFILE` names in `~/.aws/` ([`aws_profile`]).
    ///
    /// # Errors
    /// When the URL names no bucket, or the AWS configuration cannot be used.
    pub fn from_url(url: &str, env: &HashMap<String, String>) -> Result<Self, OpenError> {
        let env = &aws_profile::resolve(env)?;
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid(url, "it must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid(url, "it names no bucket").into());
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in env.iter().filter(|(k, _)| k.starts_with("AWS_")) {
            let key = if key == "AWS_DEFAULT_REGION" {
                "aws_region".to_owned()
            } else {
                key.to_ascii_lowercase()
            };
            if let Ok(config_key) = key.parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(config_key, value);
            }
        }
        let endpoint = env
            .get("AWS_ENDPOINT_URL_S3")
            .or_else(|| env.get("AWS_ENDPOINT_URL"));
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        if !env.contains_key("AWS_REGION") && !env.contains_key("AWS_DEFAULT_REGION") {
            builder = builder.with_region("us-east-1");
        }
        Ok(Self {
            store: Arc::new(builder.build()?),
            prefix: prefix.trim_matches('/').to_owned(),
            url: url.to_owned(),
        })
    }

    /// Wraps any `object_store` implementation (tests use `object_store::memory::InMemory`);
    /// `url` only names it in messages.
    #[must_use]
    pub fn with_store(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            url: url.to_owned(),
        }
    }

    /// The URL it was opened from.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, hash: &ChunkHash) -> ObjectPath {
        self.key(&object_key(hash))
    }

    fn key(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// True when the chunk is stored.
    pub async fn contains(&self, hash: &ChunkHash) -> Result<bool, object_store::Error> {
        match self.store.head(&self.path(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The stored size of a chunk's object; `None` when it is absent.
    pub async fn size(&self, hash: &ChunkHash) -> Result<Option<u64>, object_store::Error> {
        match self.store.head(&self.path(hash)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores an encoded object (the caller has verified it).
    pub async fn put(&self, hash: &ChunkHash, object: Bytes) -> Result<(), object_store::Error> {
        let _ = self
            .store
            .put(&self.path(hash), PutPayload::from_bytes(object))
            .await?;
        Ok(())
    }

    /// Reads an encoded object; `Ok(None)` when it is absent.
    pub async fn get(&self, hash: &ChunkHash) -> Result<Option<Bytes>, object_store::Error> {
        match self.store.get(&self.path(hash)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes a chunk (absent is fine).
    pub async fn delete(&self, hash: &ChunkHash) -> Result<(), object_store::Error> {
        match self.store.delete(&self.path(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// When the chunk was last written; `None` when it is absent.
    pub async fn modified(
        &self,
        hash: &ChunkHash,
    ) -> Result<Option<SystemTime>, object_store::Error> {
        match self.store.head(&self.path(hash)).await {
            Ok(meta) => Ok(Some(meta.last_modified.into())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Renews the chunk's `Last-Modified` without sending its bytes through this process: S3
    /// refuses to copy an object onto itself unchanged, so it is copied to `tmp/` and back
    /// (readers always find the object; a leftover `tmp/` copy is removed by
    /// `shard-server gc`). Returns `false` when the chunk is not stored.
    pub async fn refresh(&self, hash: &ChunkHash) -> Result<bool, object_store::Error> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let scratch = self.key(&format!("tmp/{}.{nanos}", hash.to_hex()));
        match self.store.copy(&self.path(hash), &scratch).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        let copied_back = self.store.copy(&scratch, &self.path(hash)).await;
        let removed = self.store.delete(&scratch).await;
        copied_back?;
        removed?;
        Ok(true)
    }

    /// Every stored chunk.
    pub async fn list(&self) -> Result<Vec<Listed>, object_store::Error> {
        self.list_fanout("objects").await
    }

    /// Every pushed manifest (`hash` is its id).
    pub async fn list_manifests(&self) -> Result<Vec<Listed>, object_store::Error> {
        self.list_fanout("manifests").await
    }

    async fn list_fanout(&self, top: &str) -> Result<Vec<Listed>, object_store::Error> {
        let prefix = self.key(top);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let hash = m.location.filename()?.parse().ok()?;
                let modified = m.last_modified.into();
                Some(Listed {
                    hash,
                    size: m.size,
                    modified,
                })
            })
            .collect())
    }

    /// Scratch objects under `tmp/` (left by an interrupted [`refresh`](Self::refresh)) last
    /// written before `cutoff`; deletes them and returns how many went.
    pub async fn remove_stale_scratch(
        &self,
        cutoff: SystemTime,
    ) -> Result<u64, object_store::Error> {
        let prefix = self.key("tmp");
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let mut removed = 0;
        for meta in metas {
            if SystemTime::from(meta.last_modified) < cutoff {
                match self.store.delete(&meta.location).await {
                    Ok(()) => removed += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    /// Lists the prefix once: fails when the bucket is missing or the credentials are wrong.
    pub async fn list_probe(&self) -> Result<(), object_store::Error> {
        let _ = self
            .store
            .list_with_delimiter(Some(&self.key("objects")))
            .await?;
        Ok(())
    }

    /// Stores an arbitrary small file (for example a pushed manifest) under `key`.
    pub async fn put_file(&self, key: &str, body: Bytes) -> Result<(), object_store::Error> {
        let _ = self
            .store
            .put(&self.key(key), PutPayload::from_bytes(body))
            .await?;
        Ok(())
    }

    /// Reads a file stored with [`put_file`](Self::put_file); `Ok(None)` when it is absent.
    pub async fn get_file(&self, key: &str) -> Result<Option<Bytes>, object_store::Error> {
        match self.store.get(&self.key(key)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when a file stored with [`put_file`](Self::put_file) exists.
    pub async fn contains_file(&self, key: &str) -> Result<bool, object_store::Error> {
        match self.store.head(&self.key(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn invalid(url: &str, why: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: format!("`{url}` is not a valid S3 URL: {why}").into(),
    }
}
