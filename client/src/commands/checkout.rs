//! `nshard checkout`.

use anyhow::Result;
use serde_json::json;
use shard_proto::CheckoutRequest;

use super::Ctx;
use crate::cli::CheckoutArgs;
use crate::render::{self, drive, size, status_error};
use crate::say;

/// Rebuilds files from the local store.
pub async fn checkout(ctx: &Ctx, args: CheckoutArgs) -> Result<()> {
    let request = CheckoutRequest {
        cwd: ctx.cwd.clone(),
        manifests: args.manifests,
        force: args.force,
        rev: args.rev.unwrap_or_default(),
    };
    let stream = ctx
        .client()
        .await?
        .checkout(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let summary = drive(stream).await?;
    if args.json {
        return render::json(&json!({
            "written": summary.written, "unchanged": summary.unchanged,
            "bytes_written": summary.bytes_written,
        }));
    }
    for file in &summary.written {
        say!("checked out {file}");
    }
    say!(
        "{} file(s) written ({}), {} already up to date",
        summary.written.len(),
        size(summary.bytes_written),
        summary.unchanged
    );
    Ok(())
}
