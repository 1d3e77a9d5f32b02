//! `nshard verify`: read every stored chunk and check its hash, and check that every manifest
//! (in the working tree, and with `--all` in history) has all its chunks. Locally or against a
//! remote.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::{StreamExt, TryStreamExt};
use shard_proto::ProgressUnit;

use crate::chunk::{ChunkHash, codec};
use crate::error::Result;
use crate::manifest::{ChunkRef, SUFFIX};
use crate::ops::Reporter;
use crate::ops::history;
use crate::repo::Repo;
use crate::store::remote::{self, Remote};

/// Chunks read from a remote at once.
const REMOTE_JOBS: usize = 8;

/// What is wrong with a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// Stored, but its content does not match its id.
    Corrupt,
    /// Needed by a manifest but not stored where we looked.
    Missing,
    /// Sound, but a manifest gives it another size: the manifest is damaged.
    WrongSize,
    /// A manifest in Git history that does not parse (`chunk` is the SHA-256 of its bytes).
    InvalidManifest,
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The chunk.
    pub chunk: ChunkHash,
    /// Files whose manifests need it.
    pub files: Vec<String>,
    /// How to repair.
    pub hint: String,
}

/// What verify found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// "local" or the remote.
    pub location: String,
    /// Chunks read and hashed.
    pub chunks_checked: u64,
    /// Manifests checked.
    pub manifests: u32,
    /// Problems, by chunk.
    pub problems: Vec<Problem>,
}

/// Which files need each chunk, and the sizes their manifests give it.
#[derive(Default)]
struct Needs {
    files: BTreeMap<ChunkHash, Vec<String>>,
    sizes: BTreeMap<ChunkHash, BTreeSet<(u32, String)>>,
    manifests: u32,
    invalid: Vec<history::InvalidManifest>,
    /// Chunks the working tree's manifests need (the rest only older versions do).
    current: HashSet<ChunkHash>,
}

/// What the manifests of the working tree (and with `all`, of history) need.
fn needs(repo: &Repo, all: bool) -> Result<Needs> {
    let mut needs = Needs::default();
    let mut current = HashSet::new();
    let mut add = |path: &str, chunks: &[ChunkRef]| {
        needs.manifests += 1;
        for chunk in chunks {
            let files = needs.files.entry(chunk.sha256).or_default();
            if !files.iter().any(|f| f == path) {
                files.push(path.to_owned());
            }
            let _ = needs
                .sizes
                .entry(chunk.sha256)
                .or_default()
                .insert((chunk.size, path.to_owned()));
        }
    };
    for manifest in repo.manifests()? {
        let file = manifest.strip_suffix(SUFFIX).expect("listed as a manifest");
        let m = repo.read_manifest(file)?;
        add(file, &m.chunks);
        current.extend(m.chunks.iter().map(|c| c.sha256));
    }
    let mut invalid = Vec::new();
    if all {
        let (valid, bad) = history::history_manifests(repo)?;
        for m in valid {
            add(&m.path, &m.chunks);
        }
        invalid = bad;
    }
    needs.invalid = invalid;
    needs.current = current;
    Ok(needs)
}

/// Verifies the local store: every stored chunk is hashed; every needed chunk must be stored.
pub fn verify_local(repo: &Repo, all: bool, reporter: &mut Reporter) -> Result<VerifyReport> {
    let needs = needs(repo, all)?;
    let stored = repo.store.list()?;
    let mut report = VerifyReport {
        location: "local".into(),
        manifests: needs.manifests,
        ..VerifyReport::default()
    };
    let present: HashSet<ChunkHash> = stored.iter().map(|o| o.hash).collect();
    let total = stored.len() as u64;
    // Reused for every chunk: a fresh allocation per chunk faults in every page it touches.
    let (mut scratch, mut data) = (Vec::new(), Vec::new());
    for (i, object) in stored.iter().enumerate() {
        reporter.report("verifying", "", i as u64 + 1, total, ProgressUnit::Chunks);
        report.chunks_checked += 1;
        match repo
            .store
            .read_chunk_into(&object.hash, &mut scratch, &mut data)
        {
            Err(crate::store::Error::Corrupt { .. }) => {
                let path = repo.store.object_path(&object.hash);
                report.problems.push(Problem {
                    kind: ProblemKind::Corrupt,
                    chunk: object.hash,
                    files: needs.files.get(&object.hash).cloned().unwrap_or_default(),
                    hint: format!(
                        "delete {} and run `nshard pull` to fetch a good copy",
                        path.display()
                    ),
                });
            }
            Ok(()) => report
                .problems
                .extend(wrong_sizes(&needs, &object.hash, data.len())),
            Err(_) => {}
        }
    }
    report.problems.extend(invalid_manifests(&needs));
    for (chunk, files) in &needs.files {
        if !present.contains(chunk) {
            report.problems.push(Problem {
                kind: ProblemKind::Missing,
                chunk: *chunk,
                files: files.clone(),
                hint: if needs.current.contains(chunk) {
                    "run `nshard pull` to fetch it from the remote".into()
                } else {
                    // Plain `pull` fetches what the working tree needs, not older versions.
                    "only older versions need it: `nshard pull --rev REV` fetches a version's \
                     chunks (`nshard log` lists the revisions)"
                        .into()
                },
            });
        }
    }
    Ok(report)
}

/// A problem for each manifest in Git history that does not parse.
fn invalid_manifests(needs: &Needs) -> impl Iterator<Item = Problem> + '_ {
    needs.invalid.iter().map(|m| Problem {
        kind: ProblemKind::InvalidManifest,
        chunk: m.id,
        files: vec![m.path.strip_suffix(SUFFIX).unwrap_or(&m.path).to_owned()],
        hint: format!(
            "{} in Git history is invalid ({}): that version cannot be checked out (the others can)",
            m.path, m.error
        ),
    })
}

/// A problem for each manifest that gives `chunk` a size other than its real `len`.
fn wrong_sizes(needs: &Needs, chunk: &ChunkHash, len: usize) -> Vec<Problem> {
    let Some(sizes) = needs.sizes.get(chunk) else {
        return Vec::new();
    };
    sizes
        .iter()
        .filter(|(size, _)| *size as usize != len)
        .map(|(size, file)| Problem {
            kind: ProblemKind::WrongSize,
            chunk: *chunk,
            files: vec![file.clone()],
            hint: format!(
                "its manifest gives it {size} bytes but it holds {len}: restore \
                 {file}{SUFFIX} from Git"
            ),
        })
        .collect()
}

/// Verifies a remote: every needed chunk is downloaded and hashed.
pub async fn verify_remote(
    repo: Repo,
    remote: Remote,
    all: bool,
    reporter: &mut Reporter,
) -> Result<VerifyReport> {
    let scan = repo.clone();
    let needs = tokio::task::spawn_blocking(move || needs(&scan, all))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    remote.check().await?;
    let mut report = VerifyReport {
        location: remote.describe(),
        manifests: needs.manifests,
        ..VerifyReport::default()
    };
    let total = needs.files.len() as u64;
    let mut checks = futures::stream::iter(needs.files.keys().copied())
        .map(|hash| check_remote_chunk(&remote, hash))
        .buffer_unordered(REMOTE_JOBS);
    let mut done = 0;
    while let Some((hash, checked)) = checks.try_next().await? {
        done += 1;
        reporter.report("verifying", "", done, total, ProgressUnit::Chunks);
        // Only what was there to read counts as checked.
        if !matches!(checked, Err(ProblemKind::Missing)) {
            report.chunks_checked += 1;
        }
        let kind = match checked {
            Ok(len) => {
                report.problems.extend(wrong_sizes(&needs, &hash, len));
                continue;
            }
            Err(kind) => kind,
        };
        let hint = match kind {
            ProblemKind::Corrupt => {
                "run `nshard push` from a clone with a good copy after deleting the remote's copy"
            }
            ProblemKind::Missing => "run `nshard push` from a clone that has it",
            ProblemKind::WrongSize => "restore the manifest from Git",
            ProblemKind::InvalidManifest => "fix the manifest in a new commit",
        };
        report.problems.push(Problem {
            kind,
            chunk: hash,
            files: needs.files.get(&hash).cloned().unwrap_or_default(),
            hint: hint.into(),
        });
    }
    report.problems.extend(invalid_manifests(&needs));
    report.problems.sort_by_key(|p| p.chunk);
    Ok(report)
}

/// Downloads and verifies one chunk: its length when it is sound, else what is wrong.
async fn check_remote_chunk(
    remote: &Remote,
    hash: ChunkHash,
) -> Result<(ChunkHash, std::result::Result<usize, ProblemKind>)> {
    match remote.get(&hash).await {
        Ok(object) => {
            let decoded = tokio::task::spawn_blocking(move || {
                codec::decode_verified(&object, &hash).map(|chunk| chunk.len())
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((hash, decoded.map_err(|_| ProblemKind::Corrupt)))
        }
        Err(remote::Error::NotFound { .. }) => Ok((hash, Err(ProblemKind::Missing))),
        Err(e) => Err(e.into()),
    }
}
