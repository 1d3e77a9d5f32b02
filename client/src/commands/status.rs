//! `nshard status`.
//!
//! `--json` schema (stable): `{"root": str, "files": [{"path": str, "state":
//! "clean"|"modified"|"new"|"missing"|"invalid"|"outdated", "size": int, "chunks": int, "missing_chunks":
//! int, "prepared": bool, "activity": str, "problem": str}], "git_would_add": [str]}`;
//! `problem` says why an `invalid` file's manifest cannot be used (empty otherwise);
//! `git_would_add` names the tracked files `git add -A` would store in Git itself (asked of
//! Git only before `nshard git-init`).

use anyhow::Result;
use serde_json::json;
use shard_proto::{FileState, StatusRequest};

use super::Ctx;
use crate::render::{self, status_error};
use crate::say;

/// The name of a state in output.
fn state_name(state: FileState) -> &'static str {
    match state {
        FileState::Clean => "clean",
        FileState::Modified => "modified",
        FileState::New => "new",
        FileState::Missing => "missing",
        FileState::Invalid => "invalid",
        FileState::Outdated => "outdated",
        FileState::Unspecified => "unknown",
    }
}

/// Prints the state of every tracked file.
pub async fn status(ctx: &Ctx, as_json: bool) -> Result<()> {
    let request = StatusRequest {
        cwd: ctx.cwd.clone(),
    };
    let response = ctx
        .client()
        .await?
        .status(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if as_json {
        let files: Vec<_> = response
            .files
            .iter()
            .map(|f| {
                json!({"path": f.path, "state": state_name(f.state()), "size": f.size,
                       "chunks": f.chunks, "missing_chunks": f.missing_chunks,
                       "prepared": f.prepared, "activity": f.activity, "problem": f.problem})
            })
            .collect();
        return render::json(&json!({"root": response.root, "files": files,
                                    "git_would_add": response.git_would_add}));
    }
    render::warn_git_would_add(&response.git_would_add);
    if response.files.is_empty() {
        say!("No tracked files. Track some with `nshard track <path|glob>`.");
        return Ok(());
    }
    for file in &response.files {
        let note = if file.state() == FileState::Outdated {
            "  (its manifest changed since it was written: run `nshard pull` to update it)"
                .to_owned()
        } else if file.missing_chunks > 0 {
            format!(
                "  ({} of {} chunks not stored locally: run `nshard pull`)",
                file.missing_chunks, file.chunks
            )
        } else {
            String::new()
        };
        let busy = if file.activity.is_empty() {
            String::new()
        } else {
            format!("  [{}]", file.activity)
        };
        if file.state() == FileState::Invalid {
            say!("{:>9}  {}  ({})", "invalid", file.path, file.problem);
            continue;
        }
        say!("{:>9}  {}{busy}{note}", state_name(file.state()), file.path);
    }
    Ok(())
}
