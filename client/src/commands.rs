//! Dispatch: one file per subcommand in `commands/`, each sending one request.

mod checkout;
mod commit;
mod daemon;
mod diff;
mod gc;
mod history;
mod hook;
mod init;
mod remote;
mod status;
mod track;
mod transfer;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::cli::{self, Cli, Command};
use crate::daemon::{Client, ensure_running};

/// What every command needs: where the daemon is and where the user stands.
pub struct Ctx {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// The absolute working directory, sent with every repository request.
    pub cwd: String,
}

impl Ctx {
    /// A client of a running daemon (started if needed).
    pub async fn client(&self) -> Result<Client> {
        if !cli::autostart() {
            return crate::daemon::existing(&self.socket)
                .await?
                .map(|(client, _)| client)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "shardd is not running on {} and NSHARD_AUTOSTART forbids starting one: \
                         start it with your service manager (e.g. `systemctl --user start shardd`)",
                        self.socket.display()
                    )
                });
        }
        ensure_running(&self.socket, cli::shardd_bin_override().as_deref()).await
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let ctx = Ctx {
        socket: cli.socket.unwrap_or_else(cli::default_socket),
        cwd: cwd.display().to_string(),
    };
    match cli.command {
        Command::Init(args) => init::init(&ctx, &args).await,
        Command::GitInit(args) => init::git_init(&ctx, args.hooks).await,
        Command::Track(args) => track::track(&ctx, args.paths).await,
        Command::Untrack(args) => track::untrack(&ctx, args.paths).await,
        Command::Commit(args) => commit::commit(&ctx, args).await,
        Command::Status(args) => status::status(&ctx, args.json).await,
        Command::Diff(args) => diff::diff(&ctx, args).await,
        Command::Checkout(args) => checkout::checkout(&ctx, args).await,
        Command::Gc(args) => gc::gc(&ctx, &args).await,
        Command::Push(args) => transfer::push(&ctx, args).await,
        Command::Pull(args) => transfer::pull(&ctx, args).await,
        Command::Remote(args) => remote::remote(&ctx, args.action).await,
        Command::Log(args) => history::log(&ctx, args).await,
        Command::Verify(args) => verify::verify(&ctx, args).await,
        Command::Hook(args) => hook::hook(&ctx, args).await,
        Command::Daemon(args) => daemon::daemon(&ctx, args.action).await,
    }
}
