//! The `<file>.shard.json` manifest: parsing with validation, and deterministic rendering with
//! one chunk per line so `git diff` stays readable and Git deltas stay small.

use std::fmt::Write as _;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::chunk::ChunkHash;
use crate::chunk::cdc::{Chunking, MAX_CHUNK_BYTES};

/// The value of the `format` key of every v1 manifest.
pub const FORMAT: &str = "neuroshard.manifest/v1";

/// Starts what [`Manifest::assembly_id`] hashes, so it never equals a chunk's or file's digest.
const ASSEMBLY_DOMAIN: &[u8] = b"neuroshard.assembly/v1\0";

/// Appended to a file's name to name its manifest.
pub const SUFFIX: &str = ".shard.json";

/// A manifest: which chunks, in which order, make up one version of one file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Repository-relative path of the file, `/`-separated.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file.
    pub sha256: ChunkHash,
    /// How the file was cut.
    pub chunking: Chunking,
    /// The commit message.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 UTC time of the commit.
    #[serde(default)]
    pub created_at: String,
    /// The chunks, tiling `[0, size)` in order.
    pub chunks: Vec<ChunkRef>,
}

/// One chunk of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct ChunkRef {
    /// Offset of the chunk in the file.
    pub offset: u64,
    /// Length of the chunk in bytes.
    pub size: u32,
    /// SHA-256 of the chunk's bytes: its id.
    pub sha256: ChunkHash,
}

/// Why a manifest was refused. Each message completes "manifest X is invalid: ...".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not JSON at all.
    #[error("it is not valid manifest JSON ({0})")]
    Json(String),
    /// A merge of two versions left Git's conflict markers in it.
    #[error(
        "it has unresolved merge conflict markers: keep one version with `git checkout --ours` \
         or `--theirs` on it while the merge is in progress (for a merge already committed, \
         take a parent's version: `git checkout <merge>^1 -- <manifest>`), then run \
         `nshard pull` to fetch and write that version"
    )]
    Conflicted,
    /// JSON, but missing keys or keys of the wrong type (a chunk id that is not 64 hex
    /// digits included).
    #[error("it is not a manifest ({0})")]
    Schema(String),
    /// Another format tag.
    #[error("its format is `{0}`, expected `{FORMAT}`")]
    Format(String),
    /// `path` escapes the repository or is not in canonical form.
    #[error("its path `{0}` must be relative, `/`-separated and free of `..`")]
    Path(String),
    /// The chunks leave a gap, overlap, or do not end at `size`.
    #[error("its chunks do not tile the file: {0}")]
    Tiling(String),
    /// Invalid chunking parameters.
    #[error("its chunking parameters are invalid")]
    Chunking(#[from] crate::chunk::cdc::Error),
}

/// True when a line starts the way Git's merge conflict markers do.
fn has_conflict_markers(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n')
        .any(|line| line.starts_with(b"<<<<<<< ") || line.starts_with(b">>>>>>> "))
}

impl Manifest {
    /// Parses and validates a manifest; nothing that fails here ever reaches the disk.
    pub fn parse(text: &[u8]) -> Result<Self, Error> {
        let manifest: Self = serde_json::from_slice(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Error::Schema(e.to_string()),
            _ if has_conflict_markers(text) => Error::Conflicted,
            _ => Error::Json(e.to_string()),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the invariants the rest of the daemon relies on.
    pub fn validate(&self) -> Result<(), Error> {
        if self.format != FORMAT {
            return Err(Error::Format(self.format.clone()));
        }
        if !is_clean_relative(&self.path) {
            return Err(Error::Path(self.path.clone()));
        }
        self.chunking.validate()?;
        let mut expected = 0u64;
        for (i, chunk) in self.chunks.iter().enumerate() {
            if chunk.offset != expected {
                return Err(Error::Tiling(format!(
                    "chunk {i} starts at {} but the previous one ends at {expected}",
                    chunk.offset
                )));
            }
            if chunk.size == 0 || chunk.size > MAX_CHUNK_BYTES {
                return Err(Error::Tiling(format!("chunk {i} has size {}", chunk.size)));
            }
            expected += u64::from(chunk.size);
        }
        if expected != self.size {
            return Err(Error::Tiling(format!(
                "the chunks cover {expected} bytes but the file has {}",
                self.size
            )));
        }
        Ok(())
    }

    /// Renders the manifest: fixed key order, two-space indent, one chunk per line, trailing
    /// newline. Same content and metadata always give the same bytes.
    #[must_use]
    pub fn to_json(&self) -> String {
        let c = &self.chunking;
        let algorithm = serde_json::to_string(&c.algorithm).expect("an enum always serializes");
        let mut out = String::with_capacity(400 + self.chunks.len() * 110);
        out.push_str("{\n");
        let _ = writeln!(out, "  \"format\": {},", json_str(&self.format));
        let _ = writeln!(out, "  \"path\": {},", json_str(&self.path));
        let _ = writeln!(out, "  \"size\": {},", self.size);
        let _ = writeln!(out, "  \"sha256\": \"{:#}\",", self.sha256);
        let _ = writeln!(
            out,
            "  \"chunking\": {{\"algorithm\": {algorithm}, \"min_size\": {}, \"avg_size\": {}, \
             \"max_size\": {}}},",
            c.min_size, c.avg_size, c.max_size
        );
        let _ = writeln!(out, "  \"message\": {},", json_str(&self.message));
        let _ = writeln!(out, "  \"created_at\": {},", json_str(&self.created_at));
        if self.chunks.is_empty() {
            out.push_str("  \"chunks\": []\n}\n");
            return out;
        }
        out.push_str("  \"chunks\": [\n");
        for (i, chunk) in self.chunks.iter().enumerate() {
            let comma = if i + 1 == self.chunks.len() { "" } else { "," };
            let _ = writeln!(
                out,
                "    {{\"offset\": {}, \"size\": {}, \"sha256\": \"{:#}\"}}{comma}",
                chunk.offset, chunk.size, chunk.sha256
            );
        }
        out.push_str("  ]\n}\n");
        out
    }

    /// A digest of what decides the bytes the chunks assemble into and the digest they must
    /// give: the size, the file digest, and every chunk's place, size and id (not the path,
    /// message or chunking). Once one assembly with this id was seen to give its file digest
    /// (see [`Index::record_assembled`](crate::index::Index::record_assembled)), chunks that
    /// each match their id give it again, so checking the whole file once more proves nothing.
    #[must_use]
    pub fn assembly_id(&self) -> ChunkHash {
        let mut hasher = Sha256::new();
        hasher.update(ASSEMBLY_DOMAIN);
        hasher.update(self.size.to_le_bytes());
        hasher.update(self.sha256.as_bytes());
        for chunk in &self.chunks {
            hasher.update(chunk.offset.to_le_bytes());
            hasher.update(chunk.size.to_le_bytes());
            hasher.update(chunk.sha256.as_bytes());
        }
        ChunkHash::from_hasher(hasher)
    }

    /// True when both describe the same bytes cut the same way (metadata aside).
    #[must_use]
    pub fn same_content(&self, other: &Self) -> bool {
        self.size == other.size
            && self.sha256 == other.sha256
            && self.chunking == other.chunking
            && self.chunks == other.chunks
    }
}

impl Error {
    /// What to do about a working-tree manifest at `path` (repository-relative) that fails
    /// this way, as a clause starting with `; `; empty when the message already says.
    #[must_use]
    pub fn advice(&self, path: &str) -> String {
        match self {
            Self::Conflicted => String::new(),
            Self::Format(format) if format.starts_with("neuroshard.manifest/") => {
                "; a newer nshard wrote it, so upgrade nshard to read it".to_owned()
            }
            _ => format!(
                "; nshard writes manifests itself, so to undo an edit restore the committed one \
                 (`git checkout HEAD -- {path}` in the repository root)"
            ),
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

/// True for `a/b/c` forms: relative, `/`-separated, no empty, `.` or `..` components, no
/// backslashes or NULs.
#[must_use]
pub fn is_clean_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT.to_owned(),
            path: "models/resnet50.pth".to_owned(),
            size: 10,
            sha256: ChunkHash::of(b"whole"),
            chunking: Chunking::default(),
            message: "Initial \"checkpoint\"".to_owned(),
            created_at: "2026-11-23T15:00:00Z".to_owned(),
            chunks: vec![
                ChunkRef {
                    offset: 0,
                    size: 4,
                    sha256: ChunkHash::of(b"a"),
                },
                ChunkRef {
                    offset: 4,
                    size: 6,
                    sha256: ChunkHash::of(b"b"),
                },
            ],
        }
    }

    #[test]
    fn round_trip_is_exact() {
        let m = sample();
        let text = m.to_json();
        assert_eq!(Manifest::parse(text.as_bytes()).expect("valid"), m);
        assert_eq!(
            Manifest::parse(text.as_bytes()).expect("valid").to_json(),
            text
        );
    }

    #[test]
    fn the_assembly_id_follows_the_bytes_and_not_the_metadata() {
        let m = sample();
        let mut renamed = m.clone();
        renamed.path = "elsewhere.pth".to_owned();
        renamed.message = "another message".to_owned();
        assert_eq!(renamed.assembly_id(), m.assembly_id());
        let edits: [fn(&mut Manifest); 4] = [
            |m| m.sha256 = ChunkHash::of(b"other"),
            |m| m.size += 1,
            |m| m.chunks[1].offset += 1,
            |m| m.chunks.swap(0, 1),
        ];
        for edit in edits {
            let mut changed = m.clone();
            edit(&mut changed);
            assert_ne!(changed.assembly_id(), m.assembly_id(), "{changed:?}");
        }
    }

    #[test]
    fn one_chunk_per_line() {
        let text = sample().to_json();
        assert_eq!(text.lines().filter(|l| l.contains("\"offset\"")).count(), 2);
        assert!(text.ends_with("  ]\n}\n"));
        let _: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    }

    #[test]
    fn unknown_keys_are_allowed() {
        let mut value: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("json");
        value["future_key"] = serde_json::json!(true);
        assert!(Manifest::parse(value.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn refuses_bad_manifests() {
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "format",
                Box::new(|v| v["format"] = "neuroshard.manifest/v9".into()),
            ),
            ("path", Box::new(|v| v["path"] = "../outside".into())),
            ("path", Box::new(|v| v["path"] = "/etc/passwd".into())),
            ("tile", Box::new(|v| v["size"] = 11.into())),
            ("tile", Box::new(|v| v["chunks"][1]["offset"] = 5.into())),
            ("json", Box::new(|v| v["chunks"][0]["sha256"] = "zz".into())),
        ];
        for (what, edit) in cases {
            let mut value: serde_json::Value =
                serde_json::from_str(&sample().to_json()).expect("json");
            edit(&mut value);
            let err = Manifest::parse(value.to_string().as_bytes()).expect_err(what);
            let expected = match what {
                "format" => matches!(err, Error::Format(_)),
                "path" => matches!(err, Error::Path(_)),
                "tile" => matches!(err, Error::Tiling(_)),
                _ => matches!(err, Error::Schema(_)),
            };
            assert!(expected, "{what}: got {err}");
        }
        assert!(matches!(Manifest::parse(b"{not json"), Err(Error::Json(_))));
    }

    #[test]
    fn clean_relative_paths() {
        assert!(is_clean_relative("a/b.bin"));
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a\\b", "a/"] {
            assert!(!is_clean_relative(bad), "{bad}");
        }
    }
}
