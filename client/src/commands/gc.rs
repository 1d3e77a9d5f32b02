//! `nshard gc`.

use anyhow::Result;
use serde_json::json;
use shard_proto::GcRequest;

use crate::cli::GcArgs;
use crate::render::{self, drive, size, status_error};
use crate::say;

use super::Ctx;

/// Deletes unreferenced chunks (or lists them with `--dry-run`).
pub async fn gc(ctx: &Ctx, args: &GcArgs) -> Result<()> {
    let request = GcRequest {
        cwd: ctx.cwd.clone(),
        dry_run: args.dry_run,
        grace_secs: Some(args.grace.as_secs()),
        evict_pushed: args.evict_pushed,
        env: crate::cli::forwarded_env(),
    };
    let stream = ctx
        .client()
        .await?
        .gc(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let s = drive(stream).await?;
    if args.json {
        return render::json(&json!({
            "dry_run": s.dry_run, "manifests": s.manifests, "kept_chunks": s.kept_chunks,
            "deleted_chunks": s.deleted_chunks, "freed_bytes": s.freed_bytes, "deleted": s.deleted,
            "evicted_chunks": s.evicted_chunks,
        }));
    }
    if s.dry_run {
        for id in &s.deleted {
            say!("would delete {id}");
        }
        say!(
            "would delete {} chunk(s), freeing {}; {} kept for {} manifest(s)",
            s.deleted_chunks,
            size(s.freed_bytes),
            s.kept_chunks,
            s.manifests
        );
    } else {
        say!(
            "deleted {} chunk(s), freed {}; {} kept for {} manifest(s)",
            s.deleted_chunks,
            size(s.freed_bytes),
            s.kept_chunks,
            s.manifests
        );
    }
    Ok(())
}
