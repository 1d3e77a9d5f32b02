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
        let mut client_gone = false;
        loop {
            tokio::select! {
                p = progress_rx.recv() => match p {
                    Some(p) => {
                        let _ = out_tx.send(Ok(progress(p))).await;
                    }
                    None => break,
                },
                // The client went away (Ctrl-C): the work sees its reporter closed
                // (`Reporter::cancelled`) and decides how to stop consistently.
                () = out_tx.closed(), if !client_gone => {
                    client_gone = true;
                    progress_rx.close();
                }
            }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;

    use super::*;

    /// A hang guard only: the work normally notices within a few milliseconds.
    const PATIENCE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_work_sees_its_client_go_away() {
        let (saw, seen) = std::sync::mpsc::channel();
        let mut stream = stream_blocking(
            move |reporter| {
                reporter.bytes("working", "", 1, 10);
                while !reporter.cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = saw.send(());
                Ok(())
            },
            |_| 0u8,
            |()| 1u8,
        );
        // The client reads the first progress message, then hangs up.
        assert!(matches!(stream.next().await, Some(Ok(0))));
        drop(stream);
        let waited = tokio::task::spawn_blocking(move || seen.recv_timeout(PATIENCE)).await;
        assert!(
            matches!(waited, Ok(Ok(()))),
            "the work never saw the client leave"
        );
    }

    #[tokio::test]
    async fn a_client_that_stays_sees_the_result() {
        let stream = stream_blocking(
            |reporter| Ok(reporter.cancelled()),
            |_| false,
            |cancelled| !cancelled,
        );
        let items: Vec<_> = stream.collect().await;
        assert!(matches!(items.as_slice(), [Ok(true)]), "{items:?}");
    }
}
