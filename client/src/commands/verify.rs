//! `nshard verify`.

use anyhow::{Result, bail};
use serde_json::json;
use shard_proto::VerifyRequest;

use super::Ctx;
use crate::cli::{VerifyArgs, forwarded_env};
use crate::render::{self, drive, status_error};
use crate::say;

/// Verifies chunks and manifests; exits 1 when anything is wrong.
pub async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let request = VerifyRequest {
        cwd: ctx.cwd.clone(),
        remote: args.remote.unwrap_or_default(),
        all: args.all,
        env: forwarded_env(),
    };
    let stream = ctx
        .client()
        .await?
        .verify(request)
        .await
        .map_err(status_error)?
        .into_inner();
    let s = drive(stream).await?;
    if args.json {
        let problems: Vec<_> = s
            .problems
            .iter()
            .map(|p| json!({"kind": p.kind, "chunk": p.chunk, "files": p.files, "hint": p.hint}))
            .collect();
        render::json(
            &json!({"location": s.location, "chunks_checked": s.chunks_checked,
                             "manifests": s.manifests, "problems": problems}),
        )?;
    } else {
        for p in &s.problems {
            if p.kind == "invalid-manifest" {
                // Its id is the SHA-256 of the manifest's bytes, not a chunk's.
                say!("{} of {}: {}", p.kind, p.files.join(", "), p.hint);
                continue;
            }
            say!(
                "{} chunk {} (needed by {}): {}",
                p.kind,
                p.chunk,
                p.files.join(", "),
                p.hint
            );
        }
        say!(
            "checked {} chunk(s) in {} for {} manifest(s): {} problem(s)",
            s.chunks_checked,
            s.location,
            s.manifests,
            s.problems.len()
        );
    }
    if !s.problems.is_empty() {
        bail!("verification found {} problem(s)", s.problems.len());
    }
    Ok(())
}
