//! Running blocking repository work from async handlers, and turning its progress and result
//! into a server-streaming response.

use std::future::Future;
use std::pin::Pin;

use futures::Stream;
use shard_proto::Progress;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::error::Result;
use crate::ops::Reporter;

/// The stream type of every server-streaming rpc.
pub type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Progress messages buffered per stream; more are dropped rather than slowing the work.
const PROGRESS_BUFFER: usize = 16;

/// Runs `work` on a blocking thread.
pub async fn blocking<T, F>(work: F) -> Result<T, Status>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Status::from),
        Err(join) => Err(panicked(&join)),
    }
}

/// Runs `work` on a blocking thread, streaming its progress and then its result.
pub fn stream_blocking<T, R, F>(
    work: F,
    progress: fn(Progress) -> T,
    finish: impl FnOnce(R) -> T + Send + 'static,
) -> RpcStream<T>
where
    T: Send + 'static,
    R: Send + 'static,
    F: FnOnce(&mut Reporter) -> Result<R> + Send + 'static,
{
    let (progress_tx, progress_rx) = mpsc::channel(PROGRESS_BUFFER);
    let task = tokio::task::spawn_blocking(move || work(&mut Reporter::new(progress_tx)));
    forward(task, progress_rx, progress, finish)
}

/// Runs async `work` on its own task, streaming its progress and then its result.
pub fn stream_async<T, R, F, Fut>(
    work: F,
    progress: fn(Progress) -> T,
    finish: impl FnOnce(R) -> T + Send + 'static,
) -> RpcStream<T>
where
    T: Send + 'static,
    R: Send + 'static,
    F: FnOnce(Reporter) -> Fut,
    Fut: Future<Output = Result<R>> + Send + 'static,
{
    let (progress_tx, progress_rx) = mpsc::channel(PROGRESS_BUFFER);
    let task = tokio::spawn(work(Reporter::new(progress_tx)));
    forward(task, progress_rx, progress, finish)
}

/// Streams `task`'s progress until it drops its reporter, then its result (or error).
fn forward<T, R>(
    task: tokio::task::JoinHandle<Result<R>>,
    mut progress_rx: mpsc::Receiver<Progress>,
    progress: fn(Progress) -> T,
    finish: impl FnOnce(R) -> T + Send + 'static,
) -> RpcStream<T>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel(PROGRESS_BUFFER);
    drop(tokio::spawn(async move {
        while let Some(p) = progress_rx.recv().await {
            // A client that went away still lets the work finish consistently.
            let _ = out_tx.send(Ok(progress(p))).await;
        }
        let last = match task.await {
            Ok(Ok(result)) => Ok(finish(result)),
            Ok(Err(e)) => Err(Status::from(e)),
            Err(join) => Err(panicked(&join)),
        };
        let _ = out_tx.send(last).await;
    }));
    Box::pin(ReceiverStream::new(out_rx))
}

fn panicked(join: &tokio::task::JoinError) -> Status {
    tracing::error!(error = %join, "request task failed");
    Status::internal("the daemon hit an internal error; see `nshard daemon logs`")
}
