//! Named remotes: `[remotes.NAME]` tables in `.shard/config.toml` (this clone) and in the
//! committed `.shardconfig` (the team's), and the rule that picks the default one.

use std::io;
use std::path::Path;

use fs_err as fs;
use serde::{Deserialize, Serialize};

use super::Repo;
use super::config::{RemoteEntry, Track};
use crate::error::{Error, Result};

/// The committed, team-wide configuration file at the repository root.
pub const SHARED_CONFIG: &str = ".shardconfig";

/// A remote and where it is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRemote {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Marked as the default.
    pub default: bool,
    /// True when it comes from `.shardconfig`.
    pub shared: bool,
    /// Its token, from `.shard/config.toml`.
    pub token: Option<String>,
}

/// Where a push, pull or verify goes.
#[derive(Clone, Debug)]
pub struct RemoteTarget<'a> {
    /// The URL or path.
    pub url: String,
    /// What a relative directory path is relative to.
    pub base: &'a Path,
    /// The configured token, if any.
    pub token: Option<String>,
}

/// The `.shardconfig` file: what the team shares through Git, tracked patterns and remotes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedConfig {
    /// Patterns every clone tracks (`nshard track` adds here), like Git LFS's
    /// `.gitattributes`: the `.gitignore` block that hides their files from Git is committed
    /// too, so a clone must track what it hides.
    #[serde(skip_serializing_if = "Track::is_empty")]
    pub track: Track,
    /// Named remotes shared by the team.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub remotes: std::collections::BTreeMap<String, RemoteEntry>,
}

impl SharedConfig {
    /// Reads `.shardconfig` in `root` (absent means empty).
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(SHARED_CONFIG);
        match fs::read_to_string(&path) {
            Ok(text) => super::config::parse_toml(&path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `.shardconfig` in `root` atomically.
    pub fn save(&self, root: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).expect("the config always serializes");
        crate::fsutil::write_atomic(&root.join(SHARED_CONFIG), text.as_bytes())?;
        Ok(())
    }
}

impl Repo {
    /// Every remote, local entries shadowing shared ones of the same name, sorted by name,
    /// with `default` set on the one remote used when none is named (see
    /// [`Repo::remote_url`]).
    pub fn remotes(&self) -> Result<Vec<NamedRemote>> {
        let mut remotes = self.configured_remotes()?;
        let default = default_remote(&remotes).map(|r| r.name.clone());
        for remote in &mut remotes {
            remote.default = default.as_ref() == Some(&remote.name);
        }
        Ok(remotes)
    }

    /// The remotes as configured (`default` is the explicit mark only).
    fn configured_remotes(&self) -> Result<Vec<NamedRemote>> {
        let shared = SharedConfig::load(&self.root)?;
        // Refused where remotes are used, not on every command: a teammate's mistake must
        // not stop `status` or `commit`, but no token leaves a committed file.
        if let Some((name, _)) = shared.remotes.iter().find(|(_, e)| e.token.is_some()) {
            return Err(Error::TokenInSharedConfig { name: name.clone() });
        }
        let mut out: Vec<NamedRemote> = self
            .config
            .remotes
            .iter()
            .map(|(name, e)| NamedRemote {
                name: name.clone(),
                url: e.url.clone(),
                default: e.default,
                shared: false,
                token: e.token.clone(),
            })
            .collect();
        for (name, e) in shared.remotes {
            if !out.iter().any(|r| r.name == name) {
                out.push(NamedRemote {
                    name,
                    url: e.url,
                    default: e.default,
                    shared: true,
                    token: None,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The URL to use for `arg`: a URL or path as given, a remote's name, or (empty) the
    /// default remote: the one marked default (this clone's first), else `origin`, else the
    /// only one.
    ///
    /// The second value is the directory a relative directory path is relative to: the
    /// repository root for a configured remote (so it means the same from any subdirectory,
    /// and a committed `.shardconfig` the same in every clone), `cwd` for one given as is.
    pub fn remote_url<'a>(&'a self, arg: &str, cwd: &'a Path) -> Result<RemoteTarget<'a>> {
        let remotes = self.configured_remotes()?;
        let configured = |r: &NamedRemote| RemoteTarget {
            url: r.url.clone(),
            base: self.root.as_path(),
            token: r.token.clone(),
        };
        if arg.is_empty() {
            return default_remote(&remotes)
                .map(configured)
                .ok_or(Error::NoDefaultRemote {
                    count: remotes.len(),
                });
        }
        if let Some(remote) = remotes.iter().find(|r| r.name == arg) {
            return Ok(configured(remote));
        }
        // A bare word is a name, unless no remote has it and it names a directory here.
        let looks_like_location = arg.contains("://")
            || arg.contains('/')
            || arg.starts_with('.')
            || cwd.join(arg).is_dir();
        if looks_like_location {
            Ok(RemoteTarget {
                url: arg.to_owned(),
                base: cwd,
                token: None,
            })
        } else {
            Err(Error::UnknownRemote {
                name: arg.to_owned(),
            })
        }
    }

    /// `url` as a named remote stores it: a relative directory path typed in `cwd` becomes
    /// relative to the repository root (where a named remote's path is resolved), so it names
    /// the directory the user meant from any subdirectory.
    #[must_use]
    pub fn remote_url_from(&self, cwd: &Path, url: &str) -> String {
        if url.contains("://") || Path::new(url).is_absolute() {
            return url.to_owned();
        }
        let cwd = fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        let target = super::normalize(&cwd.join(url));
        let common = self
            .root
            .components()
            .zip(target.components())
            .take_while(|(a, b)| a == b)
            .count();
        let mut rebased = std::path::PathBuf::new();
        for _ in common..self.root.components().count() {
            rebased.push("..");
        }
        for part in target.components().skip(common) {
            rebased.push(part);
        }
        if rebased.as_os_str().is_empty() {
            ".".to_owned()
        } else {
            rebased.to_string_lossy().into_owned()
        }
    }

    /// Adds a remote to this clone's config (or, with `shared`, to `.shardconfig`).
    pub fn add_remote(
        &mut self,
        name: &str,
        url: &str,
        default: bool,
        shared: bool,
    ) -> Result<NamedRemote> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid || name.contains("..") {
            return Err(Error::BadRemoteName {
                name: name.to_owned(),
            });
        }
        if self
            .remotes()?
            .iter()
            .any(|r| r.name == name && r.shared == shared)
        {
            return Err(Error::RemoteExists {
                name: name.to_owned(),
            });
        }
        let entry = RemoteEntry {
            url: url.to_owned(),
            default,
            token: None,
        };
        if shared {
            let mut config = SharedConfig::load(&self.root)?;
            clear_default(&mut config.remotes, default);
            let _ = config.remotes.insert(name.to_owned(), entry);
            config.save(&self.root)?;
        } else {
            clear_default(&mut self.config.remotes, default);
            let _ = self.config.remotes.insert(name.to_owned(), entry);
            self.save_config()?;
        }
        Ok(NamedRemote {
            name: name.to_owned(),
            url: url.to_owned(),
            default,
            shared,
            token: None,
        })
    }

    /// Removes a remote from this clone's config, else from `.shardconfig`.
    pub fn remove_remote(&mut self, name: &str) -> Result<()> {
        if self.config.remotes.remove(name).is_some() {
            return self.save_config();
        }
        let mut shared = SharedConfig::load(&self.root)?;
        if shared.remotes.remove(name).is_some() {
            return shared.save(&self.root);
        }
        Err(Error::UnknownRemote {
            name: name.to_owned(),
        })
    }
}

/// The default among configured remotes: the one marked default (this clone's first), else
/// `origin`, else the only one.
fn default_remote(remotes: &[NamedRemote]) -> Option<&NamedRemote> {
    remotes
        .iter()
        .filter(|r| r.default)
        .min_by_key(|r| r.shared)
        .or_else(|| remotes.iter().find(|r| r.name == "origin"))
        .or_else(|| {
            if remotes.len() == 1 {
                remotes.first()
            } else {
                None
            }
        })
}

/// A new default unmarks the old one.
fn clear_default(remotes: &mut std::collections::BTreeMap<String, RemoteEntry>, new_default: bool) {
    if new_default {
        for remote in remotes.values_mut() {
            remote.default = false;
        }
    }
}
