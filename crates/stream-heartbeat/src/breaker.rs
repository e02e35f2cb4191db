//! A circuit breaker: stop hammering a server that keeps failing, then try again carefully.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::HeartbeatConfig;

/// Where a [`CircuitBreaker`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Attempts go through; consecutive failures are counted.
    Closed,
    /// Attempts are rejected until `open_for` has elapsed.
    Open,
    /// `open_for` has elapsed: one trial attempt goes through; its success closes the breaker,
    /// its failure opens it again.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half-open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `trial`: when the one allowed attempt was let through, if it was.
    HalfOpen {
        trial: Option<Instant>,
    },
}

/// Closed → open after `failures_to_open` consecutive failures; open rejects until `open_for`
/// has elapsed; then half-open lets one trial through: success closes, failure re-opens.
///
/// Shared by reference (`&self` methods, a short internal lock), so a probe loop and a
/// reconnect loop can feed the same breaker. Time comes from [`tokio::time::Instant`], so tests
/// can drive it with `tokio::time::pause()` and `advance()`.
///
/// A half-open trial that never reports back (its task was cancelled) is forgotten after
/// another `open_for`, and the next caller gets the trial instead.
///
/// ```
/// use std::time::Duration;
/// use stream_heartbeat::{BreakerState, CircuitBreaker};
///
/// let breaker = CircuitBreaker::new(2, Duration::from_secs(5));
/// breaker.record_failure();
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// breaker.record_failure();
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert!(!breaker.allow());
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    failures_to_open: u32,
    open_for: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `failures_to_open` consecutive failures (at least 1)
    /// and stays open for `open_for`.
    pub fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            open_for,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    /// A breaker with `config.failures_to_open` and `config.open_for`.
    pub fn from_config(config: &HeartbeatConfig) -> Self {
        Self::new(config.failures_to_open, config.open_for)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is a plain value, valid even if a holder panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves an open breaker whose time is up to half-open.
    fn settle(inner: &mut Inner, now: Instant) {
        if let Inner::Open { until } = *inner
            && now >= until
        {
            *inner = Inner::HalfOpen { trial: None };
        }
    }

    /// Whether an attempt may go ahead now. Closed: yes. Open: no, until `open_for` has
    /// elapsed. Half-open: yes for exactly one caller (the trial), no for the others until
    /// the trial reports back with [`record_success`](Self::record_success) or
    /// [`record_failure`](Self::record_failure).
    pub fn allow(&self) -> bool {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::settle(&mut inner, now);
        match *inner {
            Inner::Closed { .. } => true,
            Inner::Open { .. } => false,
            Inner::HalfOpen { trial } => {
                let free = trial.is_none_or(|since| now.duration_since(since) >= self.open_for);
                if free {
                    *inner = Inner::HalfOpen { trial: Some(now) };
                }
                free
            }
        }
    }

    /// An attempt succeeded: the breaker closes and the failure count restarts.
    pub fn record_success(&self) {
        *self.lock() = Inner::Closed { failures: 0 };
    }

    /// An attempt failed: one more consecutive failure while closed (opening the breaker at
    /// `failures_to_open`); a failed half-open trial opens it again. Failures reported while
    /// open (attempts that started before it opened) change nothing.
    pub fn record_failure(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::settle(&mut inner, now);
        let open = Inner::Open {
            until: now + self.open_for,
        };
        match *inner {
            Inner::Closed { failures } => {
                let failures = failures.saturating_add(1);
                *inner = if failures >= self.failures_to_open {
                    open
                } else {
                    Inner::Closed { failures }
                };
            }
            Inner::HalfOpen { .. } => *inner = open,
            Inner::Open { .. } => {}
        }
    }

    /// Gives up a half-open trial without a verdict (the attempt ended for a reason that says
    /// nothing about the server), so the next caller may try at once.
    pub(crate) fn release_trial(&self) {
        let mut inner = self.lock();
        if let Inner::HalfOpen { .. } = *inner {
            *inner = Inner::HalfOpen { trial: None };
        }
    }

    /// The current state; an open breaker whose `open_for` has elapsed reads as half-open.
    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        Self::settle(&mut inner, Instant::now());
        match *inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted while closed (0 when open or half-open).
    pub fn consecutive_failures(&self) -> u32 {
        match *self.lock() {
            Inner::Closed { failures } => failures,
            Inner::Open { .. } | Inner::HalfOpen { .. } => 0,
        }
    }

    /// How long until [`allow`](Self::allow) may say yes: `None` when it would now (closed,
    /// or half-open with the trial free); the remaining open time when open; when a
    /// half-open trial is under way, the time until it would be forgotten.
    pub fn retry_after(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::settle(&mut inner, now);
        match *inner {
            Inner::Closed { .. } | Inner::HalfOpen { trial: None } => None,
            Inner::Open { until } => Some(until.saturating_duration_since(now)),
            Inner::HalfOpen { trial: Some(since) } => {
                Some((since + self.open_for).saturating_duration_since(now))
                    .filter(|d| !d.is_zero())
            }
        }
    }

    /// Failures that open the breaker.
    pub fn failures_to_open(&self) -> u32 {
        self.failures_to_open
    }

    /// How long the breaker stays open.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_only() {
        let b = CircuitBreaker::new(3, Duration::from_secs(5));
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        b.record_failure();
        assert_eq!(b.consecutive_failures(), 2);
        b.record_success();
        assert_eq!(b.consecutive_failures(), 0);
        b.record_failure();
        b.record_failure();
        assert!(b.allow());
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        assert_eq!(b.retry_after(), Some(Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn open_rejects_until_open_for_then_lets_one_trial_through() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.record_failure();
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert!(!b.allow());
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.retry_after(), Some(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.retry_after(), None);
        assert!(b.allow(), "the trial");
        assert!(!b.allow(), "only one trial at a time");
        assert_eq!(b.retry_after(), Some(Duration::from_secs(5)));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
        assert!(b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_the_breaker_again() {
        let b = CircuitBreaker::new(2, Duration::from_secs(5));
        b.record_failure();
        b.record_failure();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow());
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow());
    }

    #[tokio::test(start_paused = true)]
    async fn late_failures_while_open_do_not_extend_it() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.record_failure();
        tokio::time::advance(Duration::from_secs(3)).await;
        b.record_failure();
        assert_eq!(b.retry_after(), Some(Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_is_forgotten_after_open_for() {
        let b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.record_failure();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.allow());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!b.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.allow(), "the silent trial is forgotten");
        b.release_trial();
        assert!(b.allow(), "a released trial frees the slot at once");
    }
}
