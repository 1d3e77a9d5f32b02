//! Speaking gRPC to a sandbox's daemon directly, as an editor plugin does: a channel over its
//! Unix socket, and [`Events`], a `Subscribe` stream read on its own thread so a blocking test
//! can wait for a file event (bounded) instead of sleeping.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use shard_proto::shardd_client::SharddClient;
use shard_proto::{FileEvent, SubscribeRequest, SubscribeResponse};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::sandbox::Sandbox;

/// How long connecting and opening a subscription may take (a safety net).
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Events kept to explain a failed wait: enough to see what the daemon did last.
const EVENTS_SHOWN: usize = 40;

/// A runtime for one blocking call from a `#[test]` function (or one subscription thread).
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

/// A channel to the daemon listening on `socket` (the same connector `nshard` uses).
pub async fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
}

/// What the reader thread hands over.
enum Item {
    Event(SubscribeResponse),
    /// The stream ended (the daemon stopped, or an error status), with why.
    Ended(String),
}

/// A live `Subscribe` stream. Dropping it hangs up.
pub struct Events {
    rx: mpsc::Receiver<Item>,
    /// The last events received, to explain a failed wait.
    seen: VecDeque<String>,
    /// Dropped with `self`, which tells the reader thread to hang up.
    _hang_up: tokio::sync::oneshot::Sender<()>,
}

impl Events {
    /// Subscribes to the events of the sandbox's repository (which the daemon then watches).
    /// Returns once the daemon has registered the subscription, so no later event is missed.
    #[must_use]
    pub fn of_repo(s: &Sandbox) -> Self {
        Self::open(s.socket(), s.root().to_str().expect("UTF-8 tempdir"))
    }

    fn open(socket: &Path, cwd: &str) -> Self {
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (hang_up, hung_up) = tokio::sync::oneshot::channel::<()>();
        let socket = socket.to_path_buf();
        let cwd = cwd.to_owned();
        let _ = std::thread::spawn(move || {
            runtime().block_on(read(socket, cwd, &ready_tx, &tx, hung_up));
        });
        match ready_rx.recv_timeout(SUBSCRIBE_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("Subscribe failed: {e}"),
            Err(RecvTimeoutError::Timeout) => {
                panic!("Subscribe did not answer within {SUBSCRIBE_TIMEOUT:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the subscription thread panicked"),
        }
        Self {
            rx,
            seen: VecDeque::new(),
            _hang_up: hang_up,
        }
    }

    /// Waits (bounded by `timeout`) for the first event `accept` takes and returns it; panics
    /// naming `what` and the events seen if none comes or the stream ends first.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut accept: impl FnMut(&SubscribeResponse) -> bool,
    ) -> SubscribeResponse {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Item::Event(event)) => {
                    self.remember(&event);
                    if accept(&event) {
                        return event;
                    }
                }
                Ok(Item::Ended(why)) => panic!(
                    "the subscription ended ({why}) before {what}; events seen:\n{}",
                    self.history()
                ),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no {what} within {timeout:?}; events seen:\n{}",
                    self.history()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!("the subscription thread panicked"),
            }
        }
    }

    /// Watches the stream for `window` and panics naming `what` if an event `reject` takes
    /// arrives in that time (the one wait here that must last: it shows that something did
    /// not happen).
    pub fn none_within(
        &mut self,
        what: &str,
        window: Duration,
        mut reject: impl FnMut(&SubscribeResponse) -> bool,
    ) {
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Item::Event(event)) => {
                    self.remember(&event);
                    assert!(!reject(&event), "{what}; events seen:\n{}", self.history());
                }
                Ok(Item::Ended(why)) => panic!(
                    "the subscription ended ({why}) while watching for {what}; events seen:\n{}",
                    self.history()
                ),
                Err(RecvTimeoutError::Timeout) => return,
                Err(RecvTimeoutError::Disconnected) => panic!("the subscription thread panicked"),
            }
        }
    }

    /// Waits (bounded) until the daemon ends the stream, and returns why it ended.
    pub fn wait_until_ended(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Item::Event(event)) => self.remember(&event),
                Ok(Item::Ended(why)) => return why,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "the subscription was still open after {timeout:?}; events seen:\n{}",
                    self.history()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!("the subscription thread panicked"),
            }
        }
    }

    fn remember(&mut self, event: &SubscribeResponse) {
        if self.seen.len() == EVENTS_SHOWN {
            let _ = self.seen.pop_front();
        }
        self.seen.push_back(describe(event));
    }

    fn history(&self) -> String {
        let mut text = String::new();
        for line in &self.seen {
            let _ = writeln!(text, "  {line}");
        }
        if text.is_empty() {
            text.push_str("  (none)\n");
        }
        text
    }
}

/// True for `event` about `path` of kind `kind`.
#[must_use]
pub fn is(event: &SubscribeResponse, kind: FileEvent, path: &str) -> bool {
    event.event() == kind && event.path == path
}

/// One line per event for failure messages.
fn describe(e: &SubscribeResponse) -> String {
    let mut line = format!("{:?} {}", e.event(), e.path);
    if !e.sha256.is_empty() {
        let _ = write!(line, " sha256={}", &e.sha256[..e.sha256.len().min(12)]);
    }
    if e.total > 0 {
        let _ = write!(line, " {}/{}", e.done, e.total);
    }
    if e.lagged > 0 {
        let _ = write!(line, " (missed {} events)", e.lagged);
    }
    line
}

/// The reader thread: subscribe, report readiness, forward events until either side hangs up.
async fn read(
    socket: PathBuf,
    cwd: String,
    ready: &mpsc::Sender<Result<(), String>>,
    events: &mpsc::Sender<Item>,
    mut hung_up: tokio::sync::oneshot::Receiver<()>,
) {
    let opened = async {
        let channel = channel(&socket)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        SharddClient::new(channel)
            .subscribe(SubscribeRequest { cwd })
            .await
            .map_err(|status| status.to_string())
    };
    let mut stream = match opened.await {
        Ok(response) => response.into_inner(),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    loop {
        tokio::select! {
            _ = &mut hung_up => return,
            message = stream.message() => {
                let item = match message {
                    Ok(Some(event)) => Item::Event(event),
                    Ok(None) => Item::Ended("the daemon closed the stream".to_owned()),
                    Err(status) => Item::Ended(status.to_string()),
                };
                let ended = matches!(item, Item::Ended(_));
                if events.send(item).is_err() || ended {
                    return;
                }
            }
        }
    }
}
