//! A repository: its root, `.shard/` directory, configuration, local store and the rules that
//! map user paths and patterns onto repository-relative files.

pub mod config;
pub mod remotes;
pub mod walk;

use std::path::{Component, Path, PathBuf};

use fs_err as fs;
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::chunk::cdc::Chunking;
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::store::local::LocalStore;
use config::RepoConfig;

/// The directory, at the repository root, holding everything local to one clone.
pub const SHARD_DIR: &str = ".shard";

/// An open repository.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Absolute, canonical repository root.
    pub root: PathBuf,
    /// The configuration as last loaded.
    pub config: RepoConfig,
    /// The tracked patterns of the committed `.shardconfig`, as last loaded.
    pub shared_patterns: Vec<String>,
    /// The local chunk store in `.shard/`.
    pub store: LocalStore,
}

impl Repo {
    /// Finds the repository containing `cwd`: the nearest directory with `.shard/`, else the
    /// root of the enclosing Git work tree (a fresh clone needs no `nshard init`).
    pub fn discover(cwd: &Path) -> Result<Self> {
        let cwd = fs::canonicalize(cwd)?;
        let shard_root = cwd.ancestors().find(|d| d.join(SHARD_DIR).is_dir());
        let root = shard_root
            .or_else(|| cwd.ancestors().find(|d| d.join(".git").exists()))
            .ok_or_else(|| Error::NotARepository { cwd: cwd.clone() })?;
        Self::open(root)
    }

    /// Opens the repository rooted at `root` (which may not have `.shard/` yet).
    pub fn open(root: &Path) -> Result<Self> {
        let root = root.to_path_buf();
        let config = RepoConfig::load(&root.join(SHARD_DIR).join("config.toml"))?;
        let shared_patterns = remotes::SharedConfig::load(&root)?.track.patterns;
        let store = LocalStore::new(root.join(SHARD_DIR));
        Ok(Self {
            root,
            config,
            shared_patterns,
            store,
        })
    }

    /// Creates `.shard/` in `dir`. Returns the repository and whether it was newly created;
    /// an existing repository is left exactly as it was.
    pub fn init(dir: &Path, chunking: Chunking) -> Result<(Self, bool)> {
        let root = fs::canonicalize(dir)?;
        let shard = root.join(SHARD_DIR);
        if shard.join("config.toml").is_file() {
            return Ok((Self::open(&root)?, false));
        }
        fs::create_dir_all(shard.join("objects"))?;
        ignore_itself(&shard)?;
        let config = RepoConfig {
            chunking,
            ..RepoConfig::default()
        };
        config.save(&shard.join("config.toml"))?;
        Ok((Self::open(&root)?, true))
    }

    /// `.shard/` of this repository.
    #[must_use]
    pub fn shard_dir(&self) -> PathBuf {
        self.root.join(SHARD_DIR)
    }

    /// Creates `.shard/` if needed (a fresh clone has none until its first command), always
    /// with the `.gitignore` that keeps it out of Git.
    pub fn ensure_shard_dir(&self) -> Result<()> {
        fs::create_dir_all(self.shard_dir())?;
        ignore_itself(&self.shard_dir())
    }

    /// Writes the configuration back, creating `.shard/` if needed.
    pub fn save_config(&self) -> Result<()> {
        self.ensure_shard_dir()?;
        self.config.save(&self.shard_dir().join("config.toml"))
    }

    /// The absolute path of a repository-relative path.
    #[must_use]
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Turns a user argument (relative to the caller's `cwd`) into a repository-relative,
    /// `/`-separated path, refusing anything outside the repository. Works for paths that do
    /// not exist yet.
    pub fn relative(&self, cwd: &Path, arg: &str) -> Result<String> {
        let joined = normalize(&cwd.join(arg));
        let rel = joined
            .strip_prefix(&self.root)
            .map_err(|_| Error::OutsideRepository {
                path: joined.clone(),
                root: self.root.clone(),
            })?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Ok(parts.join("/"))
    }

    /// Resolves a user argument naming a file or its manifest to the file's relative path.
    pub fn file_arg(&self, cwd: &Path, arg: &str) -> Result<String> {
        let rel = self.relative(cwd, arg)?;
        Ok(rel
            .strip_suffix(manifest::SUFFIX)
            .map_or(rel.clone(), str::to_owned))
    }

    /// Every tracked pattern: the team's (`.shardconfig`), then this clone's own.
    #[must_use]
    pub fn tracked_patterns(&self) -> Vec<String> {
        let mut all = self.shared_patterns.clone();
        for pattern in &self.config.track.patterns {
            if !all.contains(pattern) {
                all.push(pattern.clone());
            }
        }
        all
    }

    /// Compiles the tracked patterns.
    pub fn patterns(&self) -> Result<GlobSet> {
        compile_patterns(&self.tracked_patterns())
    }

    /// Reads and validates the manifest of `file` (repository-relative).
    pub fn read_manifest(&self, file: &str) -> Result<Manifest> {
        let manifest_rel = format!("{file}{}", manifest::SUFFIX);
        let bytes = match fs::read(self.abs(&manifest_rel)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoManifest {
                    path: file.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Manifest::parse(&bytes).map_err(|source| Error::Manifest {
            advice: source.advice(&manifest_rel),
            path: manifest_rel,
            source,
        })
    }

    /// True if `manifest_rel` exists (a quick check, no parsing).
    #[must_use]
    pub fn has_manifest(&self, file: &str) -> bool {
        self.abs(&format!("{file}{}", manifest::SUFFIX)).is_file()
    }
}

/// Compiles repository-relative patterns; `*` does not cross `/`, `**` does.
pub fn compile_patterns(patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| Error::BadPattern {
                pattern: pattern.clone(),
                source,
            })?;
        let _ = builder.add(glob);
    }
    builder.build().map_err(|source| Error::BadPattern {
        pattern: patterns.join(" "),
        source,
    })
}

/// True when `pattern` contains glob syntax (and so may match files that do not exist yet).
#[must_use]
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// A pattern matching exactly the file `path`: glob syntax and a trailing space are escaped
/// with `\`, which both the tracked patterns and `.gitignore` read as "this character itself".
#[must_use]
pub fn escape_glob(path: &str) -> String {
    let kept = path.trim_end_matches(' ');
    let mut out = String::with_capacity(path.len() + 4);
    for c in kept.chars() {
        if matches!(c, '\\' | '*' | '?' | '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    for _ in kept.len()..path.len() {
        out.push_str("\\ ");
    }
    out
}

/// Checks a pattern parses, without compiling a set.
pub fn check_pattern(pattern: &str) -> Result<()> {
    let _ = Glob::new(pattern).map_err(|source| Error::BadPattern {
        pattern: pattern.to_owned(),
        source,
    })?;
    Ok(())
}

/// Lexically resolves `.` and `..` (the path may not exist, so no canonicalize).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                let _ = out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Puts a `.gitignore` of `*` in `.shard/`, as virtualenv does in a venv, so `git add -A` can
/// never commit the store or the index, whether or not `nshard git-init` ran.
fn ignore_itself(shard: &Path) -> Result<()> {
    let path = shard.join(".gitignore");
    if !path.exists() {
        crate::fsutil::write_atomic(
            &path,
            b"# NeuroShard's store and index: never committed to Git.\n*\n",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, created) = Repo::init(dir.path(), Chunking::default()).expect("init");
        assert!(created);
        let sub = repo.root.join("models");
        assert_eq!(
            repo.relative(&sub, "a.bin").expect("inside"),
            "models/a.bin"
        );
        assert_eq!(repo.relative(&sub, "../b.bin").expect("inside"), "b.bin");
        assert!(matches!(
            repo.relative(&sub, "../../x"),
            Err(Error::OutsideRepository { .. })
        ));
        assert_eq!(
            repo.file_arg(&repo.root, "a.bin.shard.json")
                .expect("inside"),
            "a.bin"
        );
    }

    #[test]
    fn patterns_do_not_cross_directories() {
        let set = compile_patterns(&["models/*.bin".into(), "data/**".into()]).expect("valid");
        assert!(set.is_match("models/a.bin"));
        assert!(!set.is_match("models/sub/a.bin"));
        assert!(set.is_match("data/x/y.csv"));
    }
}
