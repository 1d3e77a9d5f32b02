//! `nshard daemon status|stop|restart|logs`.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use serde_json::json;
use shard_proto::ShutdownRequest;

use super::Ctx;
use crate::cli::DaemonAction;
use crate::daemon::{existing, wait_until_gone};
use crate::render;
use crate::say;

/// Manages the daemon.
pub async fn daemon(ctx: &Ctx, action: DaemonAction) -> Result<()> {
    match action {
        DaemonAction::Status(args) => status(ctx, args.json).await,
        DaemonAction::Stop => stop(ctx).await,
        DaemonAction::Restart => {
            stop(ctx).await?;
            let mut client = ctx.client().await?;
            let s = client
                .daemon_status(shard_proto::DaemonStatusRequest {})
                .await?
                .into_inner();
            say!(
                "shardd {} started (pid {}) on {}",
                s.version,
                s.pid,
                s.socket
            );
            Ok(())
        }
        DaemonAction::Logs(args) => logs(ctx, args.lines),
    }
}

async fn status(ctx: &Ctx, as_json: bool) -> Result<()> {
    let Some((_, s)) = existing(&ctx.socket).await else {
        if as_json {
            return render::json(
                &json!({"running": false, "socket": ctx.socket.display().to_string()}),
            );
        }
        say!(
            "shardd is not running (socket {}); any nshard command starts it",
            ctx.socket.display()
        );
        return Ok(());
    };
    if as_json {
        return render::json(&json!({
            "running": true, "version": s.version, "protocol_version": s.protocol_version,
            "pid": s.pid, "socket": s.socket, "auto_spawned": s.auto_spawned,
            "uptime_secs": s.uptime_secs, "repositories": s.repositories,
        }));
    }
    say!(
        "shardd {} running (pid {}, up {}s) on {}",
        s.version,
        s.pid,
        s.uptime_secs,
        s.socket
    );
    say!(
        "started by: {}",
        if s.auto_spawned {
            "nshard"
        } else {
            "a service manager or by hand"
        }
    );
    for repo in &s.repositories {
        say!("serving {repo}");
    }
    Ok(())
}

async fn stop(ctx: &Ctx) -> Result<()> {
    let Some((mut client, s)) = existing(&ctx.socket).await else {
        say!("shardd is not running");
        return Ok(());
    };
    let _ = client.shutdown(ShutdownRequest {}).await;
    wait_until_gone(&ctx.socket).await?;
    say!("stopped shardd (pid {})", s.pid);
    Ok(())
}

fn logs(ctx: &Ctx, lines: usize) -> Result<()> {
    let path = shard_proto::log_path(&ctx.socket);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no daemon log at {} (a daemon run by a service manager logs to its journal)",
            path.display()
        )
    })?;
    let all: Vec<&str> = text.lines().collect();
    for line in &all[all.len().saturating_sub(lines)..] {
        say!("{line}");
    }
    if std::io::stdout().is_terminal() {
        eprintln!("({})", path.display());
    }
    Ok(())
}
