//! `.shard/config.toml`: this clone's chunking, remotes and (older repositories, or added by
//! hand) tracked patterns; `nshard track` records patterns in the committed `.shardconfig`.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use fs_err as fs;
use serde::{Deserialize, Serialize};

use crate::chunk::cdc::Chunking;
use crate::error::{Error, Result};

/// The repository configuration. Unknown keys are refused so typos do not go unnoticed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoConfig {
    /// How files are cut into chunks (default: FastCDC 512 KiB / 2 MiB / 8 MiB).
    pub chunking: Chunking,
    /// What is tracked.
    pub track: Track,
    /// Named remotes.
    pub remotes: BTreeMap<String, RemoteEntry>,
}

/// Tracked paths and glob patterns, repository-relative.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Track {
    /// Patterns in the order they were added.
    pub patterns: Vec<String>,
}

impl Track {
    /// No patterns.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// A named remote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEntry {
    /// `http(s)://…`, `file://…` or a directory, `s3://bucket/prefix`.
    pub url: String,
    /// Used when no remote is named.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Bearer token for a `shard-server` (`NSHARD_TOKEN` wins over it). Only in
    /// `.shard/config.toml`, which is never committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Parses a TOML configuration file, with one-sentence errors: merge conflict markers are
/// named as such (a `git pull` that conflicted in `.shardconfig`), and a parse error says on
/// which line it is instead of the parser's multi-line picture.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    let conflicted = text
        .lines()
        .any(|l| l.starts_with("<<<<<<< ") || l.starts_with(">>>>>>> "));
    let reason = if conflicted {
        "it has unresolved merge conflict markers: resolve them, then run the command again"
            .to_owned()
    } else {
        match toml::from_str(text) {
            Ok(value) => return Ok(value),
            Err(e) => {
                let line = e
                    .span()
                    .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
                match line {
                    Some(line) => format!("line {line}: {}", e.message()),
                    None => e.message().to_owned(),
                }
            }
        }
    };
    Err(Error::Config {
        path: path.into(),
        reason,
    })
}

impl RepoConfig {
    /// Reads the configuration; a missing file means defaults.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e.into()),
        };
        let config: Self = parse_toml(path, &text)?;
        // A hand-edited file: say which one is wrong, not only what.
        config.chunking.validate().map_err(|e| Error::Config {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Ok(config)
    }

    /// Writes the configuration atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).expect("the config always serializes");
        crate::fsutil::write_atomic(path, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_are_one_sentence_and_name_conflicts() {
        let path = Path::new("/r/.shardconfig");
        let text = "[track]\npatterns = [\n  \"a.pt\"\n  \"b.pt\",\n]\n";
        let err = parse_toml::<RepoConfig>(path, text).expect_err("missing comma");
        let message = err.to_string();
        assert!(
            message.starts_with("/r/.shardconfig is invalid: line 4: "),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");

        let conflicted =
            "[track]\n<<<<<<< HEAD\npatterns = [\"a\"]\n=======\npatterns = [\"b\"]\n>>>>>>> x\n";
        let err = parse_toml::<RepoConfig>(path, conflicted).expect_err("conflict");
        assert!(err.to_string().contains("merge conflict markers"), "{err}");

        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("config.toml");
        let bounds = "[chunking]\nalgorithm = \"fastcdc\"\nmin_size = 2097152\n\
                      avg_size = 8388608\nmax_size = 33554432\n";
        std::fs::write(&file, bounds).expect("written");
        let err = RepoConfig::load(&file).expect_err("out of range");
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn toml_round_trip() {
        let mut config = RepoConfig::default();
        config.track.patterns.push("models/*.bin".into());
        let _ = config.remotes.insert(
            "origin".into(),
            RemoteEntry {
                url: "http://x".into(),
                default: true,
                token: Some("secret".into()),
            },
        );
        let text = toml::to_string_pretty(&config).expect("serialize");
        assert_eq!(toml::from_str::<RepoConfig>(&text).expect("parse"), config);
    }
}
