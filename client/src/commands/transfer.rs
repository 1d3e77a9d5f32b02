//! `nshard push` and `nshard pull`.

use anyhow::Result;
use serde_json::json;
use shard_proto::{PullRequest, PushRequest, TransferSummary};

use super::Ctx;
use crate::cli::{PullArgs, PushArgs, forwarded_env};
use crate::render::{self, drive, size, status_error};
use crate::say;

fn summary_json(s: &TransferSummary) -> serde_json::Value {
    let mut value = json!({
        "remote": s.remote, "manifests": s.manifests, "chunks_total": s.chunks_total,
        "chunks_transferred": s.chunks_transferred, "bytes_transferred": s.bytes_transferred,
        "chunks_present": s.chunks_present,
    });
    if let Some(c) = &s.checkout {
        value["checkout"] = json!({"written": c.written, "unchanged": c.unchanged, "bytes_written": c.bytes_written});
    }
    value
}

/// Uploads missing chunks.
pub async fn push(ctx: &Ctx, args: PushArgs) -> Result<()> {
    let request = PushRequest {
        cwd: ctx.cwd.clone(),
        remote: args.remote.unwrap_or_default(),
        manifests: args.manifests,
        env: forwarded_env(),
        jobs: args.jobs,
        revisions: Vec::new(),
    };
    let stream = ctx
        .client()
        .await?
        .push(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let s = drive(stream).await?;
    if args.json {
        return render::json(&summary_json(&s));
    }
    say!(
        "pushed {} chunk(s) ({}) to {}; {} already there; {} manifest(s)",
        s.chunks_transferred,
        size(s.bytes_transferred),
        s.remote,
        s.chunks_present,
        s.manifests
    );
    Ok(())
}

/// Downloads missing chunks and checks files out.
pub async fn pull(ctx: &Ctx, args: PullArgs) -> Result<()> {
    let request = PullRequest {
        cwd: ctx.cwd.clone(),
        remote: args.remote.unwrap_or_default(),
        manifests: args.manifests,
        env: forwarded_env(),
        jobs: args.jobs,
        force: args.force,
        changed: Vec::new(),
        rev: args.rev.unwrap_or_default(),
        outdated: false,
    };
    let stream = ctx
        .client()
        .await?
        .pull(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let s = drive(stream).await?;
    if args.json {
        return render::json(&summary_json(&s));
    }
    if s.remote.is_empty() {
        say!(
            "nothing to download: all {} chunk(s) are local",
            s.chunks_present
        );
    } else {
        say!(
            "pulled {} chunk(s) ({}) from {}; {} already local",
            s.chunks_transferred,
            size(s.bytes_transferred),
            s.remote,
            s.chunks_present
        );
    }
    if let Some(c) = &s.checkout {
        for file in &c.written {
            say!("checked out {file}");
        }
        say!(
            "{} file(s) written, {} already up to date",
            c.written.len(),
            c.unchanged
        );
    }
    Ok(())
}
