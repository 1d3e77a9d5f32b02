//! `nshard track` and `nshard untrack`.

use anyhow::Result;
use shard_proto::{TrackRequest, UntrackRequest};

use super::Ctx;
use crate::render::{self, status_error};
use crate::say;

/// Adds patterns.
pub async fn track(ctx: &Ctx, patterns: Vec<String>) -> Result<()> {
    let request = TrackRequest {
        cwd: ctx.cwd.clone(),
        patterns,
    };
    let response = ctx
        .client()
        .await?
        .track(request)
        .await
        .map_err(status_error)?
        .into_inner();
    for pattern in &response.added {
        say!("Tracking {pattern}");
    }
    if response.added.is_empty() {
        say!("Already tracked; nothing changed");
    }
    say!("{} tracked file(s) present", response.files.len());
    render::warn_git_would_add(&response.git_would_add);
    Ok(())
}

/// Removes patterns.
pub async fn untrack(ctx: &Ctx, patterns: Vec<String>) -> Result<()> {
    let request = UntrackRequest {
        cwd: ctx.cwd.clone(),
        patterns,
    };
    let response = ctx
        .client()
        .await?
        .untrack(request)
        .await
        .map_err(status_error)?
        .into_inner();
    for pattern in &response.removed {
        say!("No longer tracking {pattern}");
    }
    for file in &response.still_versioned {
        say!(
            "{file} keeps its manifest, so it is still versioned: `git rm {}` to stop",
            shard_proto::shell_word(&format!("{file}.shard.json"))
        );
    }
    Ok(())
}
