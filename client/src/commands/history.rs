//! `nshard log`.

use anyhow::Result;
use serde_json::json;
use shard_proto::LogRequest;

use super::Ctx;
use crate::cli::LogArgs;
use crate::render::{self, size, status_error};
use crate::say;

/// Prints every version of a file in Git history, newest first.
pub async fn log(ctx: &Ctx, args: LogArgs) -> Result<()> {
    let request = LogRequest {
        cwd: ctx.cwd.clone(),
        path: args.file.clone(),
    };
    let response = ctx
        .client()
        .await?
        .log(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        let entries: Vec<_> = response
            .entries
            .iter()
            .map(|e| {
                json!({"commit": e.commit, "date": e.date, "subject": e.subject, "message": e.message,
                       "path": e.path, "size": e.size, "chunks": e.chunks, "new_chunks": e.new_chunks,
                       "new_bytes": e.new_bytes, "sha256": e.sha256, "problem": e.problem})
            })
            .collect();
        return render::json(&json!({"entries": entries}));
    }
    if response.entries.is_empty() {
        say!("{} has no committed versions in Git history yet", args.file);
    }
    for e in &response.entries {
        let renamed = if e.path == args.file {
            String::new()
        } else {
            format!("  ({})", e.path)
        };
        if !e.problem.is_empty() {
            say!(
                "{}  {}  {}{renamed}: {}",
                &e.commit[..e.commit.len().min(10)],
                e.date,
                e.subject,
                e.problem
            );
            continue;
        }
        say!(
            "{}  {}  {:>10}  {:>4} chunks  +{:<10}  {}{}",
            &e.commit[..e.commit.len().min(10)],
            e.date,
            size(e.size),
            e.chunks,
            size(e.new_bytes),
            e.subject,
            renamed
        );
    }
    Ok(())
}
