//! Conversions from domain results to protocol messages.

use shard_proto as pb;

use crate::activity::{Change, FileEvent};
use crate::manifest::SUFFIX;
use crate::ops::checkout::CheckoutReport;
use crate::ops::commit::CommitReport;
use crate::ops::diff::DiffStats;
use crate::ops::gc::GcReport;
use crate::ops::history::Version;
use crate::ops::status::{FileReport, State};
use crate::ops::transfer::TransferReport;
use crate::ops::verify::{ProblemKind, VerifyReport};
use crate::repo::remotes::NamedRemote;

impl From<CommitReport> for pb::CommitSummary {
    fn from(r: CommitReport) -> Self {
        Self {
            files: r
                .committed
                .into_iter()
                .map(|c| pb::CommittedFile {
                    manifest: format!("{}{SUFFIX}", c.manifest.path),
                    size: c.manifest.size,
                    chunks: c.manifest.chunks.len() as u64,
                    new_chunks: c.new_chunks,
                    sha256: c.manifest.sha256.to_hex(),
                    path: c.manifest.path,
                })
                .collect(),
            unchanged_files: r.unchanged,
            new_chunks: r.new_chunks,
            reused_chunks: r.reused_chunks,
            new_bytes: r.new_bytes,
            stored_bytes: r.stored_bytes,
            git_would_add: r.git_would_add,
        }
    }
}

impl From<FileReport> for pb::FileStatus {
    fn from(r: FileReport) -> Self {
        let state = match r.state {
            State::Clean => pb::FileState::Clean,
            State::Modified => pb::FileState::Modified,
            State::New => pb::FileState::New,
            State::Missing => pb::FileState::Missing,
            State::Invalid => pb::FileState::Invalid,
            State::Outdated => pb::FileState::Outdated,
        };
        Self {
            path: r.path,
            state: state.into(),
            size: r.size,
            missing_chunks: r.missing_chunks,
            chunks: r.chunks,
            activity: String::new(),
            prepared: r.prepared,
            problem: r.problem,
        }
    }
}

impl From<CheckoutReport> for pb::CheckoutSummary {
    fn from(r: CheckoutReport) -> Self {
        Self {
            written: r.written,
            unchanged: r.unchanged,
            bytes_written: r.bytes_written,
        }
    }
}

/// The gc summary, which also says whether it was a dry run.
pub fn gc_summary(r: &GcReport, dry_run: bool) -> pb::GcSummary {
    pb::GcSummary {
        kept_chunks: r.kept,
        deleted_chunks: r.deleted.len() as u64,
        freed_bytes: r.freed_bytes,
        deleted: r
            .deleted
            .iter()
            .map(crate::chunk::ChunkHash::to_hex)
            .collect(),
        dry_run,
        manifests: r.manifests,
        evicted_chunks: r.evicted,
    }
}

/// The diff response for `path`.
pub fn diff_response(path: String, s: &DiffStats) -> pb::DiffResponse {
    pb::DiffResponse {
        path,
        size_before: s.size_before,
        size_after: s.size_after,
        chunks_unchanged: s.chunks_unchanged,
        bytes_unchanged: s.bytes_unchanged,
        chunks_added: s.chunks_added,
        bytes_added: s.bytes_added,
        chunks_removed: s.chunks_removed,
        bytes_removed: s.bytes_removed,
        identical: s.identical,
    }
}

impl From<NamedRemote> for pb::Remote {
    fn from(r: NamedRemote) -> Self {
        Self {
            name: r.name,
            url: r.url,
            is_default: r.default,
            source: if r.shared { "shared" } else { "local" }.to_owned(),
        }
    }
}

impl From<TransferReport> for pb::TransferSummary {
    fn from(r: TransferReport) -> Self {
        Self {
            remote: r.remote,
            chunks_total: r.chunks_total,
            chunks_transferred: r.chunks_transferred,
            bytes_transferred: r.bytes_transferred,
            chunks_present: r.chunks_present,
            manifests: r.manifests,
            checkout: r.checkout.map(Into::into),
        }
    }
}

impl From<FileEvent> for pb::SubscribeResponse {
    fn from(e: FileEvent) -> Self {
        let (event, done, total) = match e.change {
            Change::Modified => (pb::FileEvent::Modified, 0, 0),
            Change::Preparing { done, total } => (pb::FileEvent::Preparing, done, total),
            Change::Prepared => (pb::FileEvent::Prepared, 0, 0),
            Change::Committed => (pb::FileEvent::Committed, 0, 0),
            Change::Pushed => (pb::FileEvent::Pushed, 0, 0),
            Change::CheckedOut => (pb::FileEvent::CheckedOut, 0, 0),
        };
        Self {
            root: e.root.display().to_string(),
            path: e.path,
            event: event.into(),
            sha256: e.sha256.map(|h| h.to_hex()).unwrap_or_default(),
            done,
            total,
            lagged: 0,
        }
    }
}

impl From<Version> for pb::LogEntry {
    fn from(v: Version) -> Self {
        let mut entry = Self {
            commit: v.commit,
            date: v.date,
            subject: v.subject,
            path: v.path.strip_suffix(SUFFIX).unwrap_or(&v.path).to_owned(),
            new_chunks: v.new_chunks,
            new_bytes: v.new_bytes,
            ..Self::default()
        };
        match v.manifest {
            Ok(manifest) => {
                entry.message = manifest.message;
                entry.size = manifest.size;
                entry.chunks = manifest.chunks.len() as u64;
                entry.sha256 = manifest.sha256.to_hex();
            }
            Err(problem) => entry.problem = format!("its manifest is invalid: {problem}"),
        }
        entry
    }
}

impl From<VerifyReport> for pb::VerifySummary {
    fn from(r: VerifyReport) -> Self {
        Self {
            location: r.location,
            chunks_checked: r.chunks_checked,
            manifests: r.manifests,
            problems: r
                .problems
                .into_iter()
                .map(|p| pb::Problem {
                    kind: match p.kind {
                        ProblemKind::Corrupt => "corrupt",
                        ProblemKind::Missing => "missing",
                        ProblemKind::WrongSize => "wrong-size",
                        ProblemKind::InvalidManifest => "invalid-manifest",
                    }
                    .to_owned(),
                    chunk: p.chunk.to_hex(),
                    files: p.files,
                    hint: p.hint,
                })
                .collect(),
        }
    }
}
