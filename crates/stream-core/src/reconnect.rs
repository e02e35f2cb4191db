//! The one reconnect loop every source uses: transient failures are retried with a capped
//! [`Backoff`] until the source has been failing for longer than its `reconnect_for` window;
//! definite failures end the stream at once. Progress (a batch handed downstream) restarts
//! the window, so a source that reconnects and delivers again is never given up on.
//!
//! ```
//! use std::time::Duration;
//! use stream_core::{CancellationToken, ErrorClass, Reconnect, Retry, SourceError};
//!
//! # tokio_test_block_on(async {
//! let shutdown = CancellationToken::new();
//! let mut reconnect = Reconnect::new(Duration::from_secs(60)).delays(
//!     stream_core::Backoff::constant(Duration::from_millis(1)),
//! );
//! let lost = SourceError::ConnectionLost { reason: "reset by peer".into() };
//! assert!(matches!(reconnect.failed(lost, &shutdown, "binlog").await, Retry::Again));
//! let refused = SourceError::Other { reason: "no".into(), class: ErrorClass::Definite };
//! assert!(matches!(reconnect.failed(refused, &shutdown, "binlog").await, Retry::GiveUp(_)));
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(f)
//! # }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::source::{ErrorClass, SourceError};

/// What a source does after a failed attempt.
#[derive(Debug)]
#[must_use]
pub enum Retry {
    /// The delay has passed: connect again.
    Again,
    /// Final: send this error downstream and end the stream.
    GiveUp(SourceError),
    /// Shutdown began while waiting: end quietly.
    Shutdown,
}

/// Reconnect loops of this process between a failure and the next progress.
static FAILING: AtomicUsize = AtomicUsize::new(0);

/// How many sources of this process are failing and reconnecting right now (each from its
/// first failure to its next progress, or until it is dropped). A consumer that ends once the
/// stream is idle (`ustream tail --idle-exit-ms`) must not take an outage for the end.
pub fn reconnecting() -> usize {
    FAILING.load(Ordering::SeqCst)
}

/// Failure bookkeeping of one source's reconnects (see the module docs).
#[derive(Debug)]
pub struct Reconnect {
    backoff: Backoff,
    reconnect_for: Duration,
    failures: u32,
    failing_since: Option<Instant>,
    /// What failed (`failed`'s `what`), for the line that says it is back.
    failing: String,
}

impl Reconnect {
    /// Retries transient failures for up to `reconnect_for` of continuous failure, waiting
    /// 100 ms, doubling, up to 5 s between attempts.
    pub fn new(reconnect_for: Duration) -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            reconnect_for,
            failures: 0,
            failing_since: None,
            failing: String::new(),
        }
    }

    /// Other delays between attempts.
    pub fn delays(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The source delivered something: the next failure starts a new window.
    pub fn progressed(&mut self) {
        if let Some(since) = self.failing_since.take() {
            FAILING.fetch_sub(1, Ordering::SeqCst);
            // WARN like the lines it ends, so that the default level shows both.
            tracing::warn!(
                source = %self.failing,
                failed_attempts = self.failures,
                failing_for = ?since.elapsed(),
                "reconnected; streaming again"
            );
        }
        self.failures = 0;
    }

    /// Failed attempts since the last progress.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Decides after a failed attempt of `what` (for the log): waits the backoff delay (or
    /// until shutdown) and answers [`Retry::Again`], or gives up with the error when it is
    /// definite or the source has been failing for longer than `reconnect_for`.
    pub async fn failed(
        &mut self,
        error: SourceError,
        shutdown: &CancellationToken,
        what: &str,
    ) -> Retry {
        if shutdown.is_cancelled() {
            return Retry::Shutdown;
        }
        if error.class() == ErrorClass::Definite {
            return Retry::GiveUp(error);
        }
        let since = *self.failing_since.get_or_insert_with(|| {
            FAILING.fetch_add(1, Ordering::SeqCst);
            what.clone_into(&mut self.failing);
            Instant::now()
        });
        if since.elapsed() > self.reconnect_for {
            if self.reconnect_for.is_zero() {
                // A caller that reconnects itself (the Streamer reopens its sources) says so
                // and logs the outcome; an ERROR here would claim a final failure that is not.
                tracing::debug!(error = %error, source = what, "connection failed; the caller reconnects");
            } else {
                tracing::error!(error = %error, source = what, failing_for = ?since.elapsed(), "giving up reconnecting");
            }
            return Retry::GiveUp(error);
        }
        self.failures = self.failures.saturating_add(1);
        let delay = self.backoff.delay(self.failures);
        tracing::warn!(error = %error, source = what, attempt = self.failures, ?delay, "connection failed; reconnecting");
        tokio::select! {
            () = shutdown.cancelled() => Retry::Shutdown,
            () = tokio::time::sleep(delay) => Retry::Again,
        }
    }
}

impl Drop for Reconnect {
    fn drop(&mut self) {
        if self.failing_since.is_some() {
            FAILING.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> SourceError {
        SourceError::ConnectionLost {
            reason: "reset".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_the_window_closes() {
        let shutdown = CancellationToken::new();
        let mut r = Reconnect::new(Duration::from_secs(10))
            .delays(Backoff::constant(Duration::from_secs(3)));
        let started = Instant::now();
        let mut attempts = 0;
        let given_up = loop {
            match r.failed(lost(), &shutdown, "test").await {
                Retry::Again => attempts += 1,
                Retry::GiveUp(e) => break e,
                Retry::Shutdown => panic!("not shut down"),
            }
        };
        assert!(matches!(given_up, SourceError::ConnectionLost { .. }));
        // 0, 3, 6, 9 s: four retries inside the 10 s window, the fifth failure (at 12 s) ends it.
        assert_eq!(attempts, 4);
        assert_eq!(started.elapsed(), Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_restarts_the_window() {
        let shutdown = CancellationToken::new();
        let mut r = Reconnect::new(Duration::from_secs(5))
            .delays(Backoff::constant(Duration::from_secs(4)));
        for _ in 0..10 {
            assert!(matches!(
                r.failed(lost(), &shutdown, "test").await,
                Retry::Again
            ));
            r.progressed();
            assert_eq!(r.failures(), 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn definite_errors_are_final_at_once() {
        let shutdown = CancellationToken::new();
        let mut r = Reconnect::new(Duration::from_secs(60));
        let e = SourceError::Prerequisite {
            setting: "binlog_format".into(),
            expected: "ROW".into(),
            actual: "STATEMENT".into(),
        };
        let started = Instant::now();
        assert!(matches!(
            r.failed(e, &shutdown, "test").await,
            Retry::GiveUp(SourceError::Prerequisite { .. })
        ));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_the_wait() {
        let shutdown = CancellationToken::new();
        let mut r = Reconnect::new(Duration::from_secs(600))
            .delays(Backoff::constant(Duration::from_secs(300)));
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let started = Instant::now();
        assert!(matches!(
            r.failed(lost(), &shutdown, "test").await,
            Retry::Shutdown
        ));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
