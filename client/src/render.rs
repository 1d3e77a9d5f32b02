//! Output: progress bars on a terminal (stderr), human summaries or `--json` on stdout, and
//! turning daemon errors into one-sentence messages.

use std::io::IsTerminal;

use anyhow::{Result, anyhow};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use shard_proto as pb;
use tonic::Streaming;

/// A streamed response: progress, or the final summary.
pub trait Event {
    /// The final message.
    type Summary;
    /// Splits one message.
    fn into_event(self) -> Option<Result<pb::Progress, Self::Summary>>;
}

macro_rules! impl_event {
    ($response:ty, $module:ident, $summary:ty) => {
        impl Event for $response {
            type Summary = $summary;
            fn into_event(self) -> Option<Result<pb::Progress, $summary>> {
                match self.event? {
                    pb::$module::Event::Progress(p) => Some(Ok(p)),
                    pb::$module::Event::Summary(s) => Some(Err(s)),
                }
            }
        }
    };
}

impl_event!(pb::CommitResponse, commit_response, pb::CommitSummary);
impl_event!(pb::CheckoutResponse, checkout_response, pb::CheckoutSummary);
impl_event!(pb::GcResponse, gc_response, pb::GcSummary);
impl_event!(pb::PushResponse, push_response, pb::TransferSummary);
impl_event!(pb::PullResponse, pull_response, pb::TransferSummary);
impl_event!(pb::VerifyResponse, verify_response, pb::VerifySummary);

/// Reads a progress stream to its summary, drawing a bar on a terminal.
pub async fn drive<R: Event>(mut stream: Streaming<R>) -> Result<R::Summary> {
    let bar = Bar::new();
    loop {
        let message = stream.message().await.map_err(status_error)?;
        match message.and_then(Event::into_event) {
            Some(Ok(progress)) => bar.update(&progress),
            Some(Err(summary)) => {
                bar.finish();
                return Ok(summary);
            }
            None => {
                bar.finish();
                return Err(anyhow!(
                    "the daemon ended the operation without a result; see `nshard daemon logs`"
                ));
            }
        }
    }
}

/// A progress bar that only exists when both stdout and stderr are terminals.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar on stderr, hidden when output is redirected.
    #[must_use]
    pub fn new() -> Self {
        let visible = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        Self { bar }
    }

    /// Shows `progress`.
    pub fn update(&self, progress: &pb::Progress) {
        // `wide_bar` takes what the terminal has left, so a line never wraps (a wrapped bar
        // redraws as a stack of lines on an 80-column terminal).
        let template = match progress.unit() {
            pb::ProgressUnit::Chunks | pb::ProgressUnit::Files => {
                "{msg:24!} [{wide_bar}] {pos}/{len} ({eta})"
            }
            pb::ProgressUnit::Bytes | pb::ProgressUnit::Unspecified => {
                "{msg:24!} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})"
            }
        };
        self.bar.set_style(
            ProgressStyle::with_template(template)
                .expect("the templates are valid")
                .progress_chars("=> "),
        );
        let label = if progress.path.is_empty() {
            progress.phase.clone()
        } else {
            format!("{} {}", progress.phase, progress.path)
        };
        self.bar.set_message(label);
        self.bar.set_length(progress.total.max(progress.done));
        self.bar.set_position(progress.done);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

/// The daemon's one-sentence error, or a hint when the connection itself failed.
#[expect(
    clippy::needless_pass_by_value,
    reason = "used as `map_err(status_error)`"
)]
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    // How tonic and h2 word a daemon that went away mid-request (killed, crashed, restarted).
    const LOST: [&str; 4] = [
        "transport",
        "h2 protocol error",
        "connection reset",
        "broken pipe",
    ];
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
            if LOST.iter().any(|m| status.message().contains(m)) =>
        {
            anyhow!(
                "lost the connection to shardd ({}): it stopped mid-request; see `nshard daemon \
                 logs`, then run the command again",
                status.message()
            )
        }
        _ => anyhow!("{}", status.message()),
    }
}

/// Prints a line on stdout, returning (rather than panicking on) a closed pipe.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

/// Prints `value` as pretty JSON on stdout.
pub fn json(value: &serde_json::Value) -> Result<()> {
    say!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialize")
    );
    Ok(())
}

/// `1.5 GiB`-style sizes.
#[must_use]
pub fn size(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}

/// Warns on stderr when `git add -A` would store tracked files in Git itself.
pub fn warn_git_would_add(would_add: &[String]) {
    let Some(first) = would_add.first() else {
        return;
    };
    let more = match would_add.len() {
        1 => String::new(),
        n => format!(" and {} more", n - 1),
    };
    eprintln!(
        "hint: Git does not ignore {first}{more}, so `git add` would store the file itself: run \
         `nshard git-init` to have .gitignore leave tracked files to nshard (and `git rm \
         --cached` any already added)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_lost_mid_request_is_named_with_what_to_do() {
        let lost =
            tonic::Status::unknown("h2 protocol error: error reading a body from connection");
        let message = status_error(lost).to_string();
        assert!(
            message.starts_with("lost the connection to shardd"),
            "{message}"
        );
        assert!(message.contains("nshard daemon logs"), "{message}");
        let plain = tonic::Status::failed_precondition("a.bin has changes");
        assert_eq!(status_error(plain).to_string(), "a.bin has changes");
    }
}
