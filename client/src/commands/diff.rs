//! `nshard diff`.

use anyhow::Result;
use serde_json::json;
use shard_proto::DiffRequest;

use super::Ctx;
use crate::cli::DiffArgs;
use crate::render::{self, size, status_error};
use crate::say;

/// Prints chunk-level statistics of a working file against its manifest.
pub async fn diff(ctx: &Ctx, args: DiffArgs) -> Result<()> {
    let (rev, rev2) = match (args.rev, args.revs.as_slice()) {
        (Some(rev), _) => (rev, String::new()),
        (None, [rev]) => (rev.clone(), String::new()),
        (None, [rev, rev2]) => (rev.clone(), rev2.clone()),
        _ => (String::new(), String::new()),
    };
    let request = DiffRequest {
        cwd: ctx.cwd.clone(),
        path: args.file,
        rev,
        rev2,
    };
    let d = ctx
        .client()
        .await?
        .diff(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if args.json {
        return render::json(&json!({
            "path": d.path,
            "size_before": d.size_before, "size_after": d.size_after,
            "chunks_unchanged": d.chunks_unchanged, "bytes_unchanged": d.bytes_unchanged,
            "chunks_added": d.chunks_added, "bytes_added": d.bytes_added,
            "chunks_removed": d.chunks_removed, "bytes_removed": d.bytes_removed,
            "identical": d.identical,
        }));
    }
    say!(
        "{}: {} -> {}{}",
        d.path,
        size(d.size_before),
        size(d.size_after),
        if d.identical { " (identical)" } else { "" }
    );
    say!(
        "  unchanged {:>6} chunks  {}",
        d.chunks_unchanged,
        size(d.bytes_unchanged)
    );
    say!(
        "  added     {:>6} chunks  {}",
        d.chunks_added,
        size(d.bytes_added)
    );
    say!(
        "  removed   {:>6} chunks  {}",
        d.chunks_removed,
        size(d.bytes_removed)
    );
    Ok(())
}
