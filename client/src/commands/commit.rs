//! `nshard commit`.

use anyhow::Result;
use serde_json::json;
use shard_proto::CommitRequest;

use super::Ctx;
use crate::cli::{CommitArgs, forwarded_env};
use crate::render::{self, drive, size, status_error};
use crate::say;

/// Commits changed tracked files.
pub async fn commit(ctx: &Ctx, args: CommitArgs) -> Result<()> {
    let request = CommitRequest {
        cwd: ctx.cwd.clone(),
        message: args.message,
        paths: args.paths,
        env: forwarded_env(),
    };
    let stream = ctx
        .client()
        .await?
        .commit(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let summary = drive(stream).await?;
    if args.json {
        let files: Vec<_> = summary
            .files
            .iter()
            .map(|f| {
                json!({"path": f.path, "manifest": f.manifest, "size": f.size, "chunks": f.chunks,
                       "new_chunks": f.new_chunks, "sha256": f.sha256})
            })
            .collect();
        return render::json(&json!({
            "files": files,
            "unchanged_files": summary.unchanged_files,
            "new_chunks": summary.new_chunks,
            "reused_chunks": summary.reused_chunks,
            "new_bytes": summary.new_bytes,
            "stored_bytes": summary.stored_bytes,
            "git_would_add": summary.git_would_add,
        }));
    }
    for file in &summary.files {
        say!(
            "committed {} ({}, {} chunks, {} new) -> {}",
            file.path,
            size(file.size),
            file.chunks,
            file.new_chunks,
            file.manifest
        );
    }
    say!(
        "{} file(s) committed, {} unchanged; chunks: {} new, {} reused; stored {} for {} of new content",
        summary.files.len(),
        summary.unchanged_files,
        summary.new_chunks,
        summary.reused_chunks,
        size(summary.stored_bytes),
        size(summary.new_bytes)
    );
    render::warn_git_would_add(&summary.git_would_add);
    Ok(())
}
