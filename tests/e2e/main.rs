//! Black-box end-to-end tests of `nshard` and `shardd`: every test builds its own [`Sandbox`]
//! (tempdir, socket, HOME, Git repository) and lets `nshard` auto-spawn a private daemon.
//!
//! Needs the binaries: `cargo build --workspace --bins && cargo test -p shard-e2e`.
//! Snapshots live in `snapshots/`; review changes with `cargo insta review`.
//!
//! [`Sandbox`]: sandbox::Sandbox

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    missing_docs
)]
#![allow(
    clippy::similar_names,
    reason = "`status` and `states` read well side by side"
)]

// The per-test sandbox: private dirs, socket and Git repository; Drop stops the daemon.
mod sandbox;
// `nshard init`, `git-init` and `track`: setting a repository up, and running outside one.
mod init;
// `nshard commit`: the manifest contract, determinism, unchanged files, deduplicated edits.
mod commit;
// `nshard status` and `diff`: file states and chunk-level statistics.
mod status;
// `nshard checkout`: rebuilding files, protecting uncommitted edits, refusing corrupt chunks.
mod checkout;
// `nshard gc`: unreferenced chunks are listed, deleted, and nothing referenced is lost.
mod gc;
// `nshard push`, `pull` and `remote`: two machines, a directory remote and `shard-server`.
mod remote;
// Malformed manifests are refused before anything is written.
mod manifest;
// The sled index is only a cache: deleting it loses nothing.
mod index;
// The daemon's lifecycle as users see it: status, stop, auto-start, start-up failures.
mod daemon;
// The command line itself: usage errors, help, versions, and the thin-client dependency check.
mod cli;
// Fixtures of the remote tests: two clones of one Git repository, shard-server and moto S3.
mod remote_fixtures;
// Push and pull through `shard-server` over a directory: edits, tokens, corruption, crashes.
mod remote_server;
// Directory remotes (path, file://) and named remotes, `.shardconfig` team defaults.
mod remote_dir;
// S3 remotes through moto: directly via s3:// and as shard-server's storage.
mod remote_s3;
// Speaking gRPC to the daemon directly: a channel over its socket, a Subscribe stream to wait on.
mod grpc;
// Background chunking: prepared before commit, rewritten while read, daemon stopped half-way.
mod background;
// The plugin API without nshard: reflection, Status and Subscribe over the socket.
mod plugin_api;
// Socket activation through an inherited fd, NSHARD_AUTOSTART=0, and the idle timeout.
mod activation;
// Git integration: hooks, log across renames, diff between revisions, history-aware gc, verify.
mod history;
