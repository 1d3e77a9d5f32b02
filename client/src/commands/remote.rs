//! `nshard remote add|remove|list`.

use anyhow::Result;
use serde_json::json;
use shard_proto::{RemoteAddRequest, RemoteListRequest, RemoteRemoveRequest};

use super::Ctx;
use crate::cli::RemoteAction;
use crate::render::{self, status_error};
use crate::say;

/// Manages named remotes.
pub async fn remote(ctx: &Ctx, action: RemoteAction) -> Result<()> {
    let mut client = ctx.client().await?;
    match action {
        RemoteAction::Add {
            name,
            url,
            default,
            shared,
        } => {
            let request = RemoteAddRequest {
                cwd: ctx.cwd.clone(),
                name,
                url,
                make_default: default,
                shared,
            };
            let added = client
                .remote_add(request)
                .await
                .map_err(status_error)?
                .into_inner();
            if let Some(r) = added.remote {
                say!("added remote {} -> {} ({})", r.name, r.url, r.source);
            }
        }
        RemoteAction::Remove { name } => {
            let request = RemoteRemoveRequest {
                cwd: ctx.cwd.clone(),
                name: name.clone(),
            };
            let _ = client.remote_remove(request).await.map_err(status_error)?;
            say!("removed remote {name}");
        }
        RemoteAction::List(args) => {
            let request = RemoteListRequest {
                cwd: ctx.cwd.clone(),
            };
            let list = client
                .remote_list(request)
                .await
                .map_err(status_error)?
                .into_inner();
            if args.json {
                let remotes: Vec<_> = list
                    .remotes
                    .iter()
                    .map(|r| json!({"name": r.name, "url": r.url, "default": r.is_default, "source": r.source}))
                    .collect();
                return render::json(&json!({"remotes": remotes}));
            }
            for r in &list.remotes {
                let mark = if r.is_default { " (default)" } else { "" };
                say!("{}\t{}\t[{}]{mark}", r.name, r.url, r.source);
            }
        }
    }
    Ok(())
}
