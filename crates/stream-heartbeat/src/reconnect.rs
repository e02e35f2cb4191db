//! Reconnect with exponential backoff and jitter, through the circuit breaker.

use std::future::Future;
use std::time::Duration;

use stream_core::{ErrorClass, Opened, Position, SourceError};
use tokio_util::sync::CancellationToken;

use crate::breaker::{BreakerState, CircuitBreaker};
use crate::config::HeartbeatConfig;
use crate::monitor::Monitor;

/// What a successful reconnect attempt returns, and where it resumed from (reported in the
/// `Reconnected` health event).
///
/// Implemented for [`Opened`] (its `start`), [`Position`], `Option<T>`, `Box<T>`, pairs whose
/// first element implements it, and `()` (no position).
pub trait Resumed {
    /// The position streaming resumed from, if known.
    fn resumed_from(&self) -> Option<&Position>;
}

impl Resumed for Opened {
    fn resumed_from(&self) -> Option<&Position> {
        Some(&self.start)
    }
}

impl Resumed for Position {
    fn resumed_from(&self) -> Option<&Position> {
        Some(self)
    }
}

impl Resumed for () {
    fn resumed_from(&self) -> Option<&Position> {
        None
    }
}

impl<T: Resumed> Resumed for Option<T> {
    fn resumed_from(&self) -> Option<&Position> {
        self.as_ref().and_then(Resumed::resumed_from)
    }
}

impl<T: Resumed + ?Sized> Resumed for Box<T> {
    fn resumed_from(&self) -> Option<&Position> {
        (**self).resumed_from()
    }
}

impl<A: Resumed, B> Resumed for (A, B) {
    fn resumed_from(&self) -> Option<&Position> {
        self.0.resumed_from()
    }
}

fn cancelled(attempts: u32) -> SourceError {
    SourceError::Other {
        reason: format!("reconnect cancelled by shutdown after {attempts} attempt(s)"),
        class: ErrorClass::Definite,
    }
}

/// Sleeps for `duration`; `false` when `shutdown` came first.
async fn sleep_or_cancel(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        biased;
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(duration) => true,
    }
}

/// Calls `attempt(1)`, `attempt(2)`, … until one succeeds, waiting between them.
///
/// - Success: closes the breaker, calls `monitor.reconnected(attempts, resumed_from)` (see
///   [`Resumed`]) and returns the value.
/// - A [`ErrorClass::Transient`] error: a breaker failure; after `config.backoff.delay(n)`
///   the next attempt. With `config.max_reconnect_attempts = Some(m)`, the error of attempt
///   `m` is returned instead.
/// - A [`ErrorClass::Definite`] error is returned at once (retrying would fail the same way).
/// - While the breaker is open, no attempt is made: the loop waits until it lets a trial
///   through. The breaker is the monitor's (shared with its pings) when a monitor is given,
///   otherwise a fresh one from `config`.
/// - `shutdown` stops it at once, even in the middle of an attempt (the attempt's future is
///   dropped), with a definite [`SourceError::Other`] saying "reconnect cancelled by
///   shutdown"; check `shutdown.is_cancelled()` to tell it apart.
///
/// The caller reopens its source from the last checkpoint inside `attempt`, and should have
/// told the monitor [`connection_lost`](Monitor::connection_lost) before calling this. For the
/// first connect, pass `monitor: None` (a fresh breaker, no `Reconnected` event).
pub async fn reconnect<T, F, Fut>(
    config: &HeartbeatConfig,
    monitor: Option<&Monitor>,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<T, SourceError>
where
    T: Resumed,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, SourceError>>,
{
    let own;
    let breaker = match monitor {
        Some(monitor) => monitor.breaker(),
        None => {
            own = CircuitBreaker::from_config(config);
            &own
        }
    };
    let name = monitor.map_or("", Monitor::name);
    let mut attempts = 0u32;
    loop {
        while !breaker.allow() {
            let mut wait = breaker.retry_after().unwrap_or(config.backoff.initial);
            if breaker.state() == BreakerState::HalfOpen {
                // Someone else's trial (a ping) is under way: look again soon.
                wait = wait.min(config.backoff.initial);
            }
            let wait = wait.max(Duration::from_millis(1));
            tracing::debug!(source = name, ?wait, "circuit breaker open; waiting");
            if !sleep_or_cancel(shutdown, wait).await {
                return Err(cancelled(attempts));
            }
        }
        if shutdown.is_cancelled() {
            breaker.release_trial();
            return Err(cancelled(attempts));
        }
        attempts = attempts.saturating_add(1);
        let outcome = tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            outcome = attempt(attempts) => Some(outcome),
        };
        match outcome {
            None => {
                breaker.release_trial();
                return Err(cancelled(attempts));
            }
            Some(Ok(value)) => {
                breaker.record_success();
                match monitor {
                    Some(monitor) => monitor.reconnected(attempts, value.resumed_from()),
                    None => tracing::info!(attempts, "reconnected"),
                }
                return Ok(value);
            }
            Some(Err(e)) if e.class() == ErrorClass::Definite => {
                breaker.release_trial();
                tracing::warn!(source = name, attempts, error = %e, "reconnect failed for good");
                return Err(e);
            }
            Some(Err(e)) => {
                breaker.record_failure();
                if config
                    .max_reconnect_attempts
                    .is_some_and(|max| attempts >= max)
                {
                    tracing::warn!(source = name, attempts, error = %e, "reconnect gave up");
                    return Err(e);
                }
                let delay = config.backoff.delay(attempts);
                tracing::warn!(source = name, attempts, error = %e, ?delay, "reconnect failed; retrying");
                if !sleep_or_cancel(shutdown, delay).await {
                    return Err(cancelled(attempts));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;
    use crate::health::HealthEventKind;
    use crate::testing::{FakeProbe, pos};
    use stream_core::Backoff;

    fn transient() -> SourceError {
        SourceError::Connect {
            target: "127.0.0.1:3306".into(),
            reason: "connection refused".into(),
            class: ErrorClass::Transient,
        }
    }

    /// No jitter, a breaker that stays out of the way unless a test wants it.
    fn config() -> HeartbeatConfig {
        HeartbeatConfig {
            failures_to_open: 100,
            backoff: Backoff {
                jitter: 0.0,
                ..Backoff::default()
            },
            ..HeartbeatConfig::default()
        }
    }

    /// Milliseconds since `start` of each call.
    fn offsets(start: Instant, calls: &RefCell<Vec<Instant>>) -> Vec<u128> {
        calls
            .borrow()
            .iter()
            .map(|t| t.duration_since(start).as_millis())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_growing_delays_and_success_is_reported() {
        let monitor = Monitor::new("shop", config(), Arc::new(FakeProbe::new()));
        let mut rx = monitor.subscribe();
        let calls = RefCell::new(Vec::new());
        let start = Instant::now();
        let result = reconnect(&config(), Some(&monitor), &CancellationToken::new(), |n| {
            calls.borrow_mut().push(Instant::now());
            async move { if n < 4 { Err(transient()) } else { Ok(pos(4)) } }
        })
        .await;
        assert_eq!(result.expect("reconnected"), pos(4));
        // 100, 200, 400 ms between attempts.
        assert_eq!(offsets(start, &calls), [0, 100, 300, 700]);
        let event = rx.try_recv().expect("an event");
        assert_eq!(
            event.kind,
            HealthEventKind::Reconnected {
                attempts: 4,
                resumed_from: Some("binlog:mysql-bin.000001:4+0".into())
            }
        );
        assert_eq!(monitor.breaker().consecutive_failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_delays_stay_within_bounds() {
        let config = HeartbeatConfig {
            failures_to_open: 100,
            ..HeartbeatConfig::default()
        };
        let calls = RefCell::new(Vec::new());
        let start = Instant::now();
        let result = reconnect(&config, None, &CancellationToken::new(), |n| {
            calls.borrow_mut().push(Instant::now());
            async move { if n < 3 { Err(transient()) } else { Ok(()) } }
        })
        .await;
        assert!(result.is_ok());
        let at = offsets(start, &calls);
        let first = at[1];
        let second = at[2] - at[1];
        assert!((80..=100).contains(&first), "{at:?}");
        assert!((160..=200).contains(&second), "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_definite_error_is_returned_at_once() {
        let monitor = Monitor::new("shop", config(), Arc::new(FakeProbe::new()));
        let mut rx = monitor.subscribe();
        let calls = RefCell::new(0);
        let result: Result<(), _> =
            reconnect(&config(), Some(&monitor), &CancellationToken::new(), |_| {
                *calls.borrow_mut() += 1;
                async {
                    Err(SourceError::PositionPurged {
                        requested: "binlog:mysql-bin.000001:4+0".into(),
                        oldest: "binlog:mysql-bin.000009:4+0".into(),
                    })
                }
            })
            .await;
        assert!(matches!(result, Err(SourceError::PositionPurged { .. })));
        assert_eq!(*calls.borrow(), 1);
        assert!(rx.try_recv().is_err(), "no Reconnected event");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_retries() {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            cancel.cancel();
        });
        let calls = RefCell::new(Vec::new());
        let start = Instant::now();
        let result: Result<(), _> = reconnect(&config(), None, &shutdown, |_| {
            calls.borrow_mut().push(Instant::now());
            async { Err(transient()) }
        })
        .await;
        let err = result.expect_err("cancelled");
        assert_eq!(
            err.to_string(),
            "reconnect cancelled by shutdown after 4 attempt(s)"
        );
        assert_eq!(err.class(), ErrorClass::Definite);
        assert_eq!(offsets(start, &calls), [0, 100, 300, 700]);
        assert_eq!(start.elapsed(), Duration::from_millis(1_000), "at once");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_interrupts_an_attempt_that_hangs() {
        let shutdown = CancellationToken::new();
        let cancel = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            cancel.cancel();
        });
        let result: Result<(), _> = reconnect(&config(), None, &shutdown, |_| {
            std::future::pending::<Result<(), SourceError>>()
        })
        .await;
        assert!(
            result
                .expect_err("cancelled")
                .to_string()
                .contains("cancelled")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_shutdown_means_no_attempt() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let calls = RefCell::new(0);
        let result: Result<(), _> = reconnect(&config(), None, &shutdown, |_| {
            *calls.borrow_mut() += 1;
            async { Ok(()) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(*calls.borrow(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_holds_attempts_until_its_trial() {
        let config = HeartbeatConfig {
            failures_to_open: 2,
            ..config()
        };
        let calls = RefCell::new(Vec::new());
        let start = Instant::now();
        let result = reconnect(&config, None, &CancellationToken::new(), |n| {
            calls.borrow_mut().push(Instant::now());
            async move { if n < 4 { Err(transient()) } else { Ok(()) } }
        })
        .await;
        assert!(result.is_ok());
        // Attempt 2 (t = 100 ms) opens the breaker for 5 s; attempt 3 is its half-open trial
        // and fails, opening it again; attempt 4 waits another 5 s.
        assert_eq!(offsets(start, &calls), [0, 100, 5_100, 10_100]);
    }

    #[tokio::test(start_paused = true)]
    async fn max_reconnect_attempts_returns_the_last_error() {
        let config = HeartbeatConfig {
            max_reconnect_attempts: Some(3),
            ..config()
        };
        let calls = RefCell::new(0);
        let result: Result<(), _> = reconnect(&config, None, &CancellationToken::new(), |_| {
            *calls.borrow_mut() += 1;
            async { Err(transient()) }
        })
        .await;
        assert!(matches!(result, Err(SourceError::Connect { .. })));
        assert_eq!(*calls.borrow(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_opened_source_reports_where_it_resumed() {
        let monitor = Monitor::new("shop", config(), Arc::new(FakeProbe::new()));
        let mut rx = monitor.subscribe();
        monitor.connection_lost("killed");
        let opened = reconnect(
            &config(),
            Some(&monitor),
            &CancellationToken::new(),
            |_| async {
                Ok(Opened {
                    start: pos(1234),
                    batches: Box::pin(futures::stream::empty()),
                })
            },
        )
        .await
        .expect("opened");
        assert_eq!(opened.start, pos(1234));
        let kinds: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                HealthEventKind::ConnectionLost {
                    reason: "killed".into()
                },
                HealthEventKind::Unhealthy {
                    reason: "connection lost: killed".into()
                },
                HealthEventKind::Reconnected {
                    attempts: 1,
                    resumed_from: Some("binlog:mysql-bin.000001:1234+0".into())
                },
                HealthEventKind::Healthy,
            ]
        );
    }

    #[test]
    fn resumed_positions_are_found_through_wrappers() {
        assert_eq!(().resumed_from(), None);
        assert_eq!(Some(pos(4)).resumed_from(), Some(&pos(4)));
        assert_eq!(None::<Position>.resumed_from(), None);
        assert_eq!((pos(4), "state").resumed_from(), Some(&pos(4)));
        assert_eq!(Box::new(pos(4)).resumed_from(), Some(&pos(4)));
    }
}
