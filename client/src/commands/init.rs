//! `nshard init` and `nshard git-init`.

use anyhow::Result;
use shard_proto::{GitInitRequest, InitRequest};

use super::Ctx;
use crate::cli::InitArgs;
use crate::render::status_error;
use crate::say;

/// Creates `.shard/` here.
pub async fn init(ctx: &Ctx, args: &InitArgs) -> Result<()> {
    let request = InitRequest {
        cwd: ctx.cwd.clone(),
        chunk_size: args.chunk_size.unwrap_or(0),
        fixed: args.fixed,
    };
    let response = ctx
        .client()
        .await?
        .init(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if response.created {
        say!(
            "Initialized NeuroShard repository in {}/.shard ({})",
            response.root,
            response.chunking
        );
    } else {
        say!(
            "NeuroShard repository already exists in {}/.shard ({}); nothing changed",
            response.root,
            response.chunking
        );
    }
    Ok(())
}

/// Writes the managed `.gitignore` block.
pub async fn git_init(ctx: &Ctx, hooks: bool) -> Result<()> {
    let request = GitInitRequest {
        cwd: ctx.cwd.clone(),
        hooks,
    };
    let response = ctx
        .client()
        .await?
        .git_init(request)
        .await
        .map_err(status_error)?
        .into_inner();
    say!("Updated {} to ignore:", response.gitignore);
    for entry in response.entries.iter().filter(|e| !e.starts_with('!')) {
        say!("  {entry}");
    }
    for hook in &response.hooks {
        say!("Installed hook {hook}");
    }
    Ok(())
}
