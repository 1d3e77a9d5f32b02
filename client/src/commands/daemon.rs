//! `nshard daemon status|stop|restart|logs`.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use serde_json::json;
use shard_proto::ShutdownRequest;

use super::Ctx;
use crate::cli::DaemonAction;
use crate::daemon::{existing, pidfile_pid, wait_until_gone};
use crate::render;
use crate::say;

/// Manages the daemon.
pub async fn daemon(ctx: &Ctx, action: DaemonAction) -> Result<()> {
    match action {
        DaemonAction::Status(args) => status(ctx, args.json).await,
        DaemonAction::Stop => stop(ctx).await,
        DaemonAction::Restart => {
            // Only a daemon nshard started may be replaced by one nshard starts: a service
            // manager's would come back as ours, or not at all.
            if let Some((_, s)) = existing(&ctx.socket).await?
                && !s.auto_spawned
            {
                bail!(
                    "shardd (pid {}) was started by a service manager or by hand: restart it \
                     there (e.g. `systemctl --user restart shardd`)",
                    s.pid
                );
            }
            if !crate::cli::autostart() {
                bail!(
                    "NSHARD_AUTOSTART forbids starting a daemon: restart shardd through your \
                     service manager"
                );
            }
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
        DaemonAction::Logs(args) => logs(ctx, args.lines).await,
    }
}

async fn status(ctx: &Ctx, as_json: bool) -> Result<()> {
    let Some((_, s)) = existing(&ctx.socket).await? else {
        if as_json {
            return render::json(
                &json!({"running": false, "socket": ctx.socket.display().to_string()}),
            );
        }
        let starts = if crate::cli::autostart() {
            "any nshard command starts it"
        } else {
            "NSHARD_AUTOSTART forbids nshard to start it"
        };
        say!(
            "shardd is not running (socket {}); {starts}",
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
    match existing(&ctx.socket).await {
        Ok(Some((mut client, s))) => {
            let _ = client.shutdown(ShutdownRequest {}).await;
            wait_until_gone(&ctx.socket).await?;
            say!("stopped shardd (pid {})", s.pid);
        }
        Ok(None) => say!("shardd is not running"),
        // It does not answer: signals still work on a stuck (or stopped) process.
        Err(stuck) => {
            let pid = pidfile_pid(&ctx.socket).ok_or(stuck)?;
            let signal = terminate(pid).await?;
            say!("stopped shardd (pid {pid}, which did not answer) with {signal}");
        }
    }
    Ok(())
}

/// Ends process `pid`: SIGTERM (and SIGCONT, in case it was stopped), then SIGKILL if it is
/// still there after a grace period. Returns the signal that did it.
async fn terminate(pid: i32) -> Result<&'static str> {
    use rustix::process::{Pid, Signal, kill_process, test_kill_process};
    let pid = Pid::from_raw(pid).context("the pidfile holds no valid pid")?;
    let alive = || test_kill_process(pid).is_ok();
    let _ = kill_process(pid, Signal::TERM);
    let _ = kill_process(pid, Signal::CONT);
    for _ in 0..100 {
        if !alive() {
            return Ok("SIGTERM");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    kill_process(pid, Signal::KILL).context("failed to kill shardd")?;
    Ok("SIGKILL")
}

async fn logs(ctx: &Ctx, lines: usize) -> Result<()> {
    // Only a daemon nshard started writes this file: any other's log is wherever its stderr
    // goes, and this file would be an older daemon's.
    if let Some((_, s)) = existing(&ctx.socket).await?
        && !s.auto_spawned
    {
        bail!(
            "shardd (pid {}) was started by a service manager or by hand: its log is where its \
             stderr goes (e.g. `journalctl --user -u shardd`)",
            s.pid
        );
    }
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
