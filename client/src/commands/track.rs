//! `nshard track` and `nshard untrack`.

use anyhow::Result;
use shard_proto::{TrackRequest, UntrackRequest};

use super::Ctx;
use crate::render::status_error;
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
    if let Some(hint) = git_hint(&response.git_would_add) {
        eprintln!("{hint}");
    }
    Ok(())
}

/// Warns when `git add -A` would store tracked files in Git itself.
fn git_hint(would_add: &[String]) -> Option<String> {
    let first = would_add.first()?;
    let more = match would_add.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    Some(format!(
        "hint: Git does not ignore {first}{more}, so `git add` would store the file itself: run \
         `nshard git-init` to have .gitignore leave tracked files to nshard (and `git rm \
         --cached` any already added)"
    ))
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
