//! `nshard hook <name>`: what the installed Git hooks run.
//!
//! `pre-push` reads Git's `<local ref> <local sha> <remote ref> <remote sha>` lines and uploads
//! the chunks of every manifest in the commits being pushed, failing the push when it cannot.
//! `post-checkout` and `post-merge` pull and check out the files whose manifests changed.

use std::io::Read;

use anyhow::{Context, Result, bail};
use shard_proto::{PullRequest, PushRequest};

use super::Ctx;
use crate::cli::{HookArgs, forwarded_env};
use crate::render::{drive, status_error};

const ZERO: &str = "0000000000000000000000000000000000000000";

/// Runs one hook.
pub async fn hook(ctx: &Ctx, args: HookArgs) -> Result<()> {
    match args.name.as_str() {
        "pre-push" => pre_push(ctx, &args.args).await,
        "post-checkout" => match args.args.as_slice() {
            [old, new, flag, ..] if flag == "1" => pull_changed(ctx, old, new).await,
            // A file checkout (`git checkout REV -- x.shard.json`): HEAD did not move, so
            // update whatever it left behind its manifest.
            _ => pull_outdated(ctx).await,
        },
        "post-merge" => pull_changed(ctx, "ORIG_HEAD", "HEAD").await,
        other => bail!("unknown hook `{other}`"),
    }
}

async fn pre_push(ctx: &Ctx, args: &[String]) -> Result<()> {
    let mut input = String::new();
    let _ = std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the hook's input")?;
    let remote_name = args.first().cloned().unwrap_or_default();
    let mut revisions = Vec::new();
    let mut new_branch = false;
    for line in input.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, local_sha, _, remote_sha] = fields.as_slice() else {
            continue;
        };
        if local_sha.bytes().all(|b| b == b'0') {
            continue; // Deleting a branch pushes no data.
        }
        revisions.push((*local_sha).to_owned());
        if remote_sha.bytes().all(|b| b == b'0') {
            new_branch = true;
        } else {
            revisions.push(format!("^{remote_sha}"));
        }
    }
    if revisions.is_empty() {
        return Ok(());
    }
    if new_branch && !remote_name.is_empty() {
        revisions.extend(["--not".to_owned(), format!("--remotes={remote_name}")]);
    }
    let request = PushRequest {
        cwd: ctx.cwd.clone(),
        revisions,
        env: forwarded_env(),
        ..PushRequest::default()
    };
    let result = async {
        let stream = ctx
            .client()
            .await?
            .push(request)
            .await
            .map_err(status_error)?
            .into_inner();
        drive(stream).await
    }
    .await;
    match result {
        Ok(s) => {
            eprintln!(
                "nshard: uploaded {} chunk(s) to {} ({} already there)",
                s.chunks_transferred, s.remote, s.chunks_present
            );
            Ok(())
        }
        Err(e) => Err(
            e.context("the chunks this push needs could not be uploaded, so the push was stopped")
        ),
    }
}

async fn pull_changed(ctx: &Ctx, old: &str, new: &str) -> Result<()> {
    let old = if old.is_empty() { ZERO } else { old };
    pull_after_checkout(
        ctx,
        PullRequest {
            cwd: ctx.cwd.clone(),
            changed: vec![old.to_owned(), new.to_owned()],
            env: forwarded_env(),
            ..PullRequest::default()
        },
    )
    .await
}

async fn pull_outdated(ctx: &Ctx) -> Result<()> {
    pull_after_checkout(
        ctx,
        PullRequest {
            cwd: ctx.cwd.clone(),
            outdated: true,
            env: forwarded_env(),
            ..PullRequest::default()
        },
    )
    .await
}

/// Pulls what a checkout or merge changed; a failure is reported, not returned, because Git
/// has already moved.
async fn pull_after_checkout(ctx: &Ctx, request: PullRequest) -> Result<()> {
    let result = async {
        let stream = ctx
            .client()
            .await?
            .pull(request)
            .await
            .map_err(status_error)?
            .into_inner();
        drive(stream).await
    }
    .await;
    match result {
        Ok(s) => {
            let written = s.checkout.map_or(0, |c| c.written.len());
            if written > 0 || s.chunks_transferred > 0 {
                eprintln!(
                    "nshard: pulled {} chunk(s), checked out {written} file(s)",
                    s.chunks_transferred
                );
            }
        }
        // Git has already moved; failing the hook would not undo that. Say what to do instead.
        Err(e) => eprintln!(
            "nshard: could not update model files after checkout: {e:#} (run `nshard pull`)"
        ),
    }
    Ok(())
}
