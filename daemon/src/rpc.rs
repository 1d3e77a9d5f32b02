//! `impl Shardd for Service`: decode each request, call the domain operation, encode the
//! answer. No repository logic lives here.

mod convert;
mod streaming;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shard_proto as pb;
use shard_proto::shardd_server::Shardd;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::activity::{Activity, Change, CheckoutsShown};
use crate::chunk::cdc::{self, Chunking, DEFAULT_AVG_BYTES};
use crate::error::Result;
use crate::ops::{
    self, checkout, commit, diff, gc, gitignore, history, hooks, status, track, transfer, verify,
};
use crate::prepare::Preparer;
use crate::repo::Repo;
use crate::repos::Repos;
use crate::store::remote::Remote;
use streaming::{RpcStream, blocking, stream_async, stream_blocking};

/// State the service shares with the daemon's background tasks.
pub struct Shared {
    /// Open repositories.
    pub repos: Arc<Repos>,
    /// File events and background progress.
    pub activity: Arc<Activity>,
    /// The background worker (chunking, compression).
    pub preparer: Preparer,
}

/// The daemon's gRPC service.
pub struct Service {
    repos: Arc<Repos>,
    activity: Arc<Activity>,
    preparer: Preparer,
    shutdown: CancellationToken,
    socket: String,
    auto_spawned: bool,
    started: Instant,
}

impl Service {
    /// A service over `repos` that cancels `shutdown` when asked to stop.
    #[must_use]
    pub fn new(
        shared: Shared,
        shutdown: CancellationToken,
        socket: &Path,
        auto_spawned: bool,
    ) -> Self {
        let Shared {
            repos,
            activity,
            preparer,
        } = shared;
        Self {
            repos,
            activity,
            preparer,
            shutdown,
            socket: socket.display().to_string(),
            auto_spawned,
            started: Instant::now(),
        }
    }
}

/// `SOURCE_DATE_EPOCH` from the client's environment (reproducible manifests), else now.
fn created_at(env: &HashMap<String, String>) -> String {
    let time = env
        .get("SOURCE_DATE_EPOCH")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or_else(SystemTime::now, |secs| {
            UNIX_EPOCH + Duration::from_secs(secs)
        });
    humantime::format_rfc3339_seconds(time).to_string()
}

#[tonic::async_trait]
impl Shardd for Service {
    type CommitStream = RpcStream<pb::CommitResponse>;
    type CheckoutStream = RpcStream<pb::CheckoutResponse>;
    type GcStream = RpcStream<pb::GcResponse>;
    type PushStream = RpcStream<pb::PushResponse>;
    type PullStream = RpcStream<pb::PullResponse>;
    type SubscribeStream = RpcStream<pb::SubscribeResponse>;
    type VerifyStream = RpcStream<pb::VerifyResponse>;

    async fn daemon_status(
        &self,
        _: Request<pb::DaemonStatusRequest>,
    ) -> Result<Response<pb::DaemonStatusResponse>, Status> {
        Ok(Response::new(pb::DaemonStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: shard_proto::PROTOCOL_VERSION,
            pid: std::process::id(),
            socket: self.socket.clone(),
            auto_spawned: self.auto_spawned,
            uptime_secs: self.started.elapsed().as_secs(),
            repositories: self
                .repos
                .roots()
                .iter()
                .map(|r| r.display().to_string())
                .collect(),
        }))
    }

    async fn shutdown(
        &self,
        _: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        tracing::info!("shutdown requested by a client");
        self.shutdown.cancel();
        Ok(Response::new(pb::ShutdownResponse {}))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn init(
        &self,
        request: Request<pb::InitRequest>,
    ) -> Result<Response<pb::InitResponse>, Status> {
        let req = request.into_inner();
        let _ = crate::repos::check_cwd(&req.cwd)?;
        let size = u32::try_from(req.chunk_size);
        let chunking = match (req.fixed, req.chunk_size) {
            (false, 0) => Ok(Chunking::default()),
            (true, 0) => Chunking::fixed(DEFAULT_AVG_BYTES),
            // Out of range whatever its kind, and named as the user gave it.
            (false, avg) => size
                .map_err(|_| cdc::Error::AvgOutOfRange(avg))
                .and_then(Chunking::fastcdc),
            (true, block) => size
                .map_err(|_| cdc::Error::BlockOutOfRange(block))
                .and_then(Chunking::fixed),
        }
        .map_err(crate::Error::from)?;
        let (repo, created) = blocking(move || Repo::init(Path::new(&req.cwd), chunking)).await?;
        Ok(Response::new(pb::InitResponse {
            root: repo.root.display().to_string(),
            created,
            chunking: repo.config.chunking.to_string(),
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn git_init(
        &self,
        request: Request<pb::GitInitRequest>,
    ) -> Result<Response<pb::GitInitResponse>, Status> {
        let req = request.into_inner();
        let (repo, _) = self.repos.resolve(&req.cwd)?;
        let gitignore = repo.root.join(".gitignore").display().to_string();
        let (entries, hooks) = blocking(move || {
            let entries = gitignore::write_block(&repo)?;
            let hooks = if req.hooks {
                hooks::install(&repo)?
            } else {
                Vec::new()
            };
            Ok((
                entries,
                hooks.iter().map(|h| h.display().to_string()).collect(),
            ))
        })
        .await?;
        Ok(Response::new(pb::GitInitResponse {
            gitignore,
            entries,
            hooks,
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn track(
        &self,
        request: Request<pb::TrackRequest>,
    ) -> Result<Response<pb::TrackResponse>, Status> {
        let req = request.into_inner();
        let (mut repo, handle) = self.repos.resolve(&req.cwd)?;
        let _guard = handle.lock.lock().await;
        let response = blocking(move || {
            let added = track::track(&mut repo, Path::new(&req.cwd), &req.patterns)?;
            let files = repo
                .tracked()?
                .into_iter()
                .filter(|t| t.exists)
                .map(|t| t.path)
                .collect::<Vec<_>>();
            let git_would_add = gitignore::git_would_add(&repo, &files);
            Ok(pb::TrackResponse {
                added,
                files,
                git_would_add,
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn untrack(
        &self,
        request: Request<pb::UntrackRequest>,
    ) -> Result<Response<pb::UntrackResponse>, Status> {
        let req = request.into_inner();
        let (mut repo, handle) = self.repos.resolve(&req.cwd)?;
        let _guard = handle.lock.lock().await;
        let untracked =
            blocking(move || track::untrack(&mut repo, Path::new(&req.cwd), &req.patterns)).await?;
        Ok(Response::new(pb::UntrackResponse {
            removed: untracked.removed,
            still_versioned: untracked.still_versioned,
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<Self::CommitStream>, Status> {
        let req = request.into_inner();
        let (repo, handle) = self.repos.resolve(&req.cwd)?;
        let paths = req
            .paths
            .iter()
            .map(|p| repo.file_arg(Path::new(&req.cwd), p))
            .collect::<Result<_>>()?;
        let options = commit::CommitOptions {
            message: req.message,
            paths,
            created_at: created_at(&req.env),
        };
        let guard = Arc::clone(&handle.lock).lock_owned().await;
        let (activity, root) = (Arc::clone(&self.activity), repo.root.clone());
        let preparer = self.preparer.clone();
        Ok(Response::new(stream_blocking(
            move |reporter| {
                let _guard = guard;
                commit::commit(&repo, &handle.index, &options, reporter)
            },
            |p| pb::CommitResponse {
                event: Some(pb::commit_response::Event::Progress(p)),
            },
            move |r| {
                preparer.compress(&root);
                for c in &r.committed {
                    activity.emit(
                        &root,
                        &c.manifest.path,
                        Change::Committed,
                        Some(c.manifest.sha256),
                    );
                }
                pb::CommitResponse {
                    event: Some(pb::commit_response::Event::Summary(r.into())),
                }
            },
        )))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let (repo, handle) = self.repos.resolve(&request.get_ref().cwd)?;
        let root = repo.root.clone();
        let (files, git_would_add) = blocking(move || {
            let files = status::status(&repo, &handle.index)?;
            // Asking Git walks the work tree: only until `nshard git-init` has run.
            let git_would_add = if gitignore::has_block(&repo) {
                Vec::new()
            } else {
                let present: Vec<String> = files
                    .iter()
                    .filter(|f| f.state != status::State::Missing)
                    .map(|f| f.path.clone())
                    .collect();
                gitignore::git_would_add(&repo, &present)
            };
            Ok((files, git_would_add))
        })
        .await?;
        let files = files
            .into_iter()
            .map(|f| {
                let busy = self.activity.progress(&root, &f.path);
                let mut file = pb::FileStatus::from(f);
                if let Some((work, done, total)) = busy {
                    file.activity = format!("{} {}%", work.verb(), done * 100 / total.max(1));
                }
                file
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            root: root.display().to_string(),
            files,
            git_would_add,
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd, path = %request.get_ref().path))]
    async fn diff(
        &self,
        request: Request<pb::DiffRequest>,
    ) -> Result<Response<pb::DiffResponse>, Status> {
        let req = request.into_inner();
        let (repo, _) = self.repos.resolve(&req.cwd)?;
        let file = repo.file_arg(Path::new(&req.cwd), &req.path)?;
        let path = file.clone();
        let stats = blocking(move || match (req.rev.as_str(), req.rev2.as_str()) {
            ("", _) => diff::diff_working(&repo, &path, &mut ops::Reporter::silent()),
            (rev, "") => history::diff_revisions(&repo, &path, rev, None),
            (rev, rev2) => history::diff_revisions(&repo, &path, rev, Some(rev2)),
        })
        .await?;
        Ok(Response::new(convert::diff_response(file, &stats)))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn checkout(
        &self,
        request: Request<pb::CheckoutRequest>,
    ) -> Result<Response<Self::CheckoutStream>, Status> {
        let req = request.into_inner();
        let (repo, handle) = self.repos.resolve(&req.cwd)?;
        let named: Vec<String> = req
            .manifests
            .iter()
            .map(|m| repo.file_arg(Path::new(&req.cwd), m))
            .collect::<Result<_>>()?;
        let guard = Arc::clone(&handle.lock).lock_owned().await;
        let (activity, root) = (Arc::clone(&self.activity), repo.root.clone());
        let shown = (Arc::clone(&self.activity), repo.root.clone());
        Ok(Response::new(stream_blocking(
            move |reporter| {
                let _guard = guard;
                let _shown = CheckoutsShown::new(Arc::clone(&shown.0), shown.1.clone());
                reporter.showing_checkouts(shown.0, shown.1);
                if req.rev.is_empty() {
                    let files = if named.is_empty() {
                        checkout::all_files(&repo)?
                    } else {
                        named
                    };
                    return checkout::checkout(&repo, &handle.index, &files, req.force, reporter);
                }
                let manifests = history::manifests_at(&repo, &req.rev, named)?;
                checkout::checkout_manifests(&repo, &handle.index, &manifests, req.force, reporter)
                    .map_err(|e| e.fetch_at(&req.rev))
            },
            |p| pb::CheckoutResponse {
                event: Some(pb::checkout_response::Event::Progress(p)),
            },
            move |r| {
                for file in &r.written {
                    activity.emit(&root, file, Change::CheckedOut, None);
                }
                pb::CheckoutResponse {
                    event: Some(pb::checkout_response::Event::Summary(r.into())),
                }
            },
        )))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn gc(
        &self,
        request: Request<pb::GcRequest>,
    ) -> Result<Response<Self::GcStream>, Status> {
        let req = request.into_inner();
        let (repo, handle) = self.repos.resolve(&req.cwd)?;
        let remote = if req.evict_pushed {
            Some(open_remote(&repo, &req.cwd, "", &req.env)?)
        } else {
            None
        };
        let guard = Arc::clone(&handle.lock).lock_owned().await;
        let dry_run = req.dry_run;
        let grace = req
            .grace_secs
            .map_or(gc::DEFAULT_GRACE, Duration::from_secs);
        Ok(Response::new(stream_async(
            move |mut reporter| async move {
                let _guard = guard;
                let evictable = match remote {
                    Some(remote) => held_by(&repo, &remote).await?,
                    None => std::collections::HashSet::new(),
                };
                let options = gc::GcOptions {
                    dry_run,
                    grace,
                    evictable,
                };
                let index = handle.index.clone();
                tokio::task::spawn_blocking(move || gc::gc(&repo, &index, &options, &mut reporter))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?
            },
            |p| pb::GcResponse {
                event: Some(pb::gc_response::Event::Progress(p)),
            },
            move |r| pb::GcResponse {
                event: Some(pb::gc_response::Event::Summary(convert::gc_summary(
                    &r, dry_run,
                ))),
            },
        )))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd, name = %request.get_ref().name))]
    async fn remote_add(
        &self,
        request: Request<pb::RemoteAddRequest>,
    ) -> Result<Response<pb::RemoteAddResponse>, Status> {
        let req = request.into_inner();
        crate::store::remote::check_url(&req.url).map_err(crate::error::Error::from)?;
        let (mut repo, handle) = self.repos.resolve(&req.cwd)?;
        let _guard = handle.lock.lock().await;
        let url = repo.remote_url_from(Path::new(&req.cwd), &req.url);
        let added =
            blocking(move || repo.add_remote(&req.name, &url, req.make_default, req.shared))
                .await?;
        Ok(Response::new(pb::RemoteAddResponse {
            remote: Some(added.into()),
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd, name = %request.get_ref().name))]
    async fn remote_remove(
        &self,
        request: Request<pb::RemoteRemoveRequest>,
    ) -> Result<Response<pb::RemoteRemoveResponse>, Status> {
        let req = request.into_inner();
        let (mut repo, handle) = self.repos.resolve(&req.cwd)?;
        let _guard = handle.lock.lock().await;
        blocking(move || repo.remove_remote(&req.name)).await?;
        Ok(Response::new(pb::RemoteRemoveResponse {}))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn remote_list(
        &self,
        request: Request<pb::RemoteListRequest>,
    ) -> Result<Response<pb::RemoteListResponse>, Status> {
        let (repo, _) = self.repos.resolve(&request.get_ref().cwd)?;
        let remotes = blocking(move || repo.remotes()).await?;
        Ok(Response::new(pb::RemoteListResponse {
            remotes: remotes.into_iter().map(Into::into).collect(),
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd, remote = %request.get_ref().remote))]
    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let req = request.into_inner();
        let (repo, handle) = self.repos.resolve(&req.cwd)?;
        let selection = if req.revisions.is_empty() {
            transfer::Selection::Files(self.selected_files(&repo, &req.cwd, &req.manifests)?)
        } else {
            transfer::Selection::Revisions(req.revisions)
        };
        let remote = open_remote(&repo, &req.cwd, &req.remote, &req.env)?;
        let guard = Arc::clone(&handle.lock).lock_owned().await;
        let jobs = jobs(req.jobs);
        let scan = repo.clone();
        let manifests = blocking(move || transfer::select(&scan, &selection)).await?;
        let pushed: Vec<String> = manifests.iter().map(|(f, _)| f.clone()).collect();
        let (activity, root) = (Arc::clone(&self.activity), repo.root.clone());
        Ok(Response::new(stream_async(
            move |mut reporter| async move {
                let _guard = guard;
                transfer::push(repo, manifests, remote, jobs, &mut reporter).await
            },
            |p| pb::PushResponse {
                event: Some(pb::push_response::Event::Progress(p)),
            },
            move |r| {
                for file in &pushed {
                    activity.emit(&root, file, Change::Pushed, None);
                }
                pb::PushResponse {
                    event: Some(pb::push_response::Event::Summary(r.into())),
                }
            },
        )))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd, remote = %request.get_ref().remote))]
    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let req = request.into_inner();
        let (repo, handle) = self.repos.resolve(&req.cwd)?;
        let selection = match req.changed.as_slice() {
            [old, new] => transfer::Selection::Changed(old.clone(), new.clone()),
            // A stat of every tracked file: off the async threads.
            _ if req.outdated => {
                let (scan, index) = (repo.clone(), handle.index.clone());
                transfer::Selection::Only(
                    blocking(move || status::outdated_files(&scan, &index)).await?,
                )
            }
            // Without names, the files recorded at that revision (not the working tree's).
            _ if !req.rev.is_empty() => transfer::Selection::AtRevision(
                req.rev.clone(),
                req.manifests
                    .iter()
                    .map(|m| repo.file_arg(Path::new(&req.cwd), m))
                    .collect::<Result<_>>()?,
            ),
            _ => {
                transfer::Selection::Files(self.selected_files(&repo, &req.cwd, &req.manifests)?)
            }
        };
        let remote = open_remote(&repo, &req.cwd, &req.remote, &req.env);
        // A remote the user named must work even when nothing needs downloading; only the
        // default may be missing then (a hook after a local branch switch).
        let remote = if req.remote.is_empty() {
            remote
        } else {
            Ok(remote?)
        };
        let guard = Arc::clone(&handle.lock).lock_owned().await;
        let options = (jobs(req.jobs), req.force);
        let scan = repo.clone();
        let files = blocking(move || transfer::select(&scan, &selection)).await?;
        let index = handle.index.clone();
        let (activity, root) = (Arc::clone(&self.activity), repo.root.clone());
        let shown = (Arc::clone(&self.activity), repo.root.clone());
        Ok(Response::new(stream_async(
            move |mut reporter| async move {
                let _guard = guard;
                let _shown = CheckoutsShown::new(Arc::clone(&shown.0), shown.1.clone());
                reporter.showing_checkouts(shown.0, shown.1);
                transfer::pull(repo, index, files, remote, options, reporter).await
            },
            |p| pb::PullResponse {
                event: Some(pb::pull_response::Event::Progress(p)),
            },
            move |r| {
                for file in r.checkout.iter().flat_map(|c| &c.written) {
                    activity.emit(&root, file, Change::CheckedOut, None);
                }
                pb::PullResponse {
                    event: Some(pb::pull_response::Event::Summary(r.into())),
                }
            },
        )))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd, path = %request.get_ref().path))]
    async fn log(
        &self,
        request: Request<pb::LogRequest>,
    ) -> Result<Response<pb::LogResponse>, Status> {
        let req = request.into_inner();
        let (repo, _) = self.repos.resolve(&req.cwd)?;
        let file = repo.file_arg(Path::new(&req.cwd), &req.path)?;
        let versions = blocking(move || history::log(&repo, &file)).await?;
        Ok(Response::new(pb::LogResponse {
            entries: versions.into_iter().map(Into::into).collect(),
        }))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<Self::VerifyStream>, Status> {
        let req = request.into_inner();
        let (repo, _) = self.repos.resolve(&req.cwd)?;
        let remote = if req.remote.is_empty() {
            None
        } else {
            Some(open_remote(&repo, &req.cwd, &req.remote, &req.env)?)
        };
        let all = req.all;
        Ok(Response::new(stream_async(
            move |mut reporter| async move {
                match remote {
                    Some(remote) => verify::verify_remote(repo, remote, all, &mut reporter).await,
                    None => tokio::task::spawn_blocking(move || {
                        verify::verify_local(&repo, all, &mut reporter)
                    })
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?,
                }
            },
            |p| pb::VerifyResponse {
                event: Some(pb::verify_response::Event::Progress(p)),
            },
            |r| pb::VerifyResponse {
                event: Some(pb::verify_response::Event::Summary(r.into())),
            },
        )))
    }

    #[instrument(skip_all, fields(cwd = %request.get_ref().cwd))]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let cwd = request.into_inner().cwd;
        let root = if cwd.is_empty() {
            None
        } else {
            Some(self.repos.resolve(&cwd)?.0.root)
        };
        let events = tokio_stream::wrappers::BroadcastStream::new(self.activity.subscribe());
        let stream = events.filter_map(move |event| match event {
            Ok(e) if root.as_ref().is_none_or(|r| *r == e.root) => Some(Ok(e.into())),
            Ok(_) => None,
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                Some(Ok(pb::SubscribeResponse {
                    lagged: n,
                    ..Default::default()
                }))
            }
        });
        // A subscription never ends on its own: end it when the daemon stops, or the server's
        // graceful shutdown would wait for the subscriber to hang up, forever.
        let stream =
            futures::StreamExt::take_until(stream, self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }
}

impl Service {
    /// The named manifests (as files), or every manifest in the repository.
    #[expect(
        clippy::unused_self,
        reason = "kept a method so handlers read uniformly"
    )]
    fn selected_files(&self, repo: &Repo, cwd: &str, manifests: &[String]) -> Result<Vec<String>> {
        if manifests.is_empty() {
            return checkout::all_files(repo);
        }
        manifests
            .iter()
            .map(|m| repo.file_arg(Path::new(cwd), m))
            .collect()
    }
}

/// Resolves and opens the remote named (or defaulted) in a request.
fn open_remote(repo: &Repo, cwd: &str, arg: &str, env: &HashMap<String, String>) -> Result<Remote> {
    let target = repo.remote_url(arg, Path::new(cwd))?;
    let with_token;
    let env = match target.token {
        Some(token) if !env.contains_key("NSHARD_TOKEN") => {
            with_token = env
                .clone()
                .into_iter()
                .chain([("NSHARD_TOKEN".to_owned(), token)])
                .collect();
            &with_token
        }
        _ => env,
    };
    Ok(Remote::open(&target.url, target.base, env)?)
}

/// The local chunks `remote` already holds (their local copies are re-downloadable).
async fn held_by(
    repo: &Repo,
    remote: &Remote,
) -> Result<std::collections::HashSet<crate::chunk::ChunkHash>> {
    let store = repo.store.clone();
    let local: Vec<_> = tokio::task::spawn_blocking(move || store.list())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??
        .into_iter()
        .map(|o| o.hash)
        .collect();
    remote.check().await?;
    let missing: std::collections::HashSet<_> = remote.missing(&local).await?.into_iter().collect();
    Ok(local.into_iter().filter(|h| !missing.contains(h)).collect())
}

/// The requested parallelism, or the default.
fn jobs(requested: u32) -> usize {
    if requested == 0 {
        transfer::DEFAULT_JOBS
    } else {
        requested as usize
    }
}
