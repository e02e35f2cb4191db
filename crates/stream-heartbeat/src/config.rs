//! Configuration: probe timing, circuit breaker thresholds and reconnect backoff.

use std::time::Duration;

use stream_core::{Backoff, BackoffField};

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeartbeatError {
    /// A field of [`HeartbeatConfig`] is out of range, e.g. `heartbeat.interval must be > 0`.
    #[error("{field} {requirement}")]
    InvalidConfig {
        /// The field, as a dotted path (`heartbeat.backoff.jitter`).
        field: &'static str,
        /// What it must be, and what it is when that helps (`must be in 0..=1, is 1.5`).
        requirement: String,
    },
}

fn invalid(field: &'static str, requirement: impl Into<String>) -> HeartbeatError {
    HeartbeatError::InvalidConfig {
        field,
        requirement: requirement.into(),
    }
}

/// How one source's connection is watched and restored.
///
/// Built with [`Default`] and adjusted field by field; [`HeartbeatConfig::validate`] names the
/// first field that cannot work. Components given an invalid configuration clamp it to
/// something harmless (a zero interval becomes 1 ms) rather than panic.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// Time between probes (default 1 s).
    pub interval: Duration,
    /// How long one ping, or one read of the server position, may take (default 2 s).
    pub probe_timeout: Duration,
    /// The server's position moved but what we delivered did not for this long: `Degraded`
    /// (default 30 s).
    pub stall_after: Duration,
    /// Consecutive failures (pings or reconnect attempts) that open the circuit breaker
    /// (default 3).
    pub failures_to_open: u32,
    /// How long an open breaker rejects attempts before letting one trial through (default 5 s).
    pub open_for: Duration,
    /// Delays between reconnect attempts.
    pub backoff: Backoff,
    /// Reconnect attempts before [`reconnect`](crate::reconnect()) gives up and returns the last
    /// transient error; `None` (the default) retries until shutdown.
    pub max_reconnect_attempts: Option<u32>,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            stall_after: Duration::from_secs(30),
            failures_to_open: 3,
            open_for: Duration::from_secs(5),
            backoff: Backoff::default(),
            max_reconnect_attempts: None,
        }
    }
}

impl HeartbeatConfig {
    /// Checks every field; the error names the first that cannot work
    /// (`heartbeat.interval must be > 0`).
    pub fn validate(&self) -> Result<(), HeartbeatError> {
        for (field, value) in [
            ("heartbeat.interval", self.interval),
            ("heartbeat.probe_timeout", self.probe_timeout),
            ("heartbeat.stall_after", self.stall_after),
            ("heartbeat.open_for", self.open_for),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "must be > 0"));
            }
        }
        if self.failures_to_open == 0 {
            return Err(invalid("heartbeat.failures_to_open", "must be > 0"));
        }
        if self.max_reconnect_attempts == Some(0) {
            return Err(invalid(
                "heartbeat.max_reconnect_attempts",
                "must be > 0 (or unset to retry until shutdown)",
            ));
        }
        self.backoff.validate("heartbeat.backoff").map_err(|e| {
            let field = match e.field {
                BackoffField::Initial => "heartbeat.backoff.initial",
                BackoffField::Max => "heartbeat.backoff.max",
                BackoffField::Multiplier => "heartbeat.backoff.multiplier",
                BackoffField::Jitter => "heartbeat.backoff.jitter",
            };
            invalid(field, e.requirement)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let config = HeartbeatConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.probe_timeout, Duration::from_secs(2));
        assert_eq!(config.stall_after, Duration::from_secs(30));
        assert_eq!(config.failures_to_open, 3);
        assert_eq!(config.open_for, Duration::from_secs(5));
        assert_eq!(config.backoff.initial, Duration::from_millis(100));
        assert_eq!(config.backoff.max, Duration::from_secs(30));
    }

    #[test]
    fn validation_names_the_field_that_cannot_work() {
        let check = |config: HeartbeatConfig| {
            config
                .validate()
                .expect_err("should be invalid")
                .to_string()
        };
        let base = HeartbeatConfig::default();
        assert_eq!(
            check(HeartbeatConfig {
                interval: Duration::ZERO,
                ..base.clone()
            }),
            "heartbeat.interval must be > 0"
        );
        assert_eq!(
            check(HeartbeatConfig {
                failures_to_open: 0,
                ..base.clone()
            }),
            "heartbeat.failures_to_open must be > 0"
        );
        let with_backoff = |backoff: Backoff| HeartbeatConfig {
            backoff,
            ..base.clone()
        };
        assert_eq!(
            check(with_backoff(Backoff {
                jitter: 1.5,
                ..Backoff::default()
            })),
            "heartbeat.backoff.jitter must be in 0..=1, is 1.5"
        );
        assert!(
            check(with_backoff(Backoff {
                max: Duration::from_millis(10),
                ..Backoff::default()
            }))
            .starts_with("heartbeat.backoff.max must be >= heartbeat.backoff.initial")
        );
        assert!(
            check(with_backoff(Backoff {
                multiplier: f64::NAN,
                ..Backoff::default()
            }))
            .starts_with("heartbeat.backoff.multiplier must be a number >= 1")
        );
    }

    #[test]
    fn backoff_grows_exponentially_and_stops_at_max() {
        let b = Backoff::default();
        // `random` is the fraction of the 20 % jitter taken off: 0.0 leaves the base delay.
        let ms = |attempt, random| b.delay_with(attempt, random).as_millis();
        assert_eq!(ms(0, 0.0), 100);
        assert_eq!(ms(1, 0.0), 100);
        assert_eq!(ms(2, 0.0), 200);
        assert_eq!(ms(3, 0.0), 400);
        // 80–100 ms at the extremes: jitter only takes off.
        assert_eq!(ms(1, 1.0), 80);
        assert_eq!(ms(1, 0.5), 90);
        assert_eq!(ms(9, 0.0), 25_600);
        // Capped, and jitter never lifts it above max.
        assert_eq!(ms(10, 0.0), 30_000);
        assert_eq!(ms(10, 1.0), 24_000);
        assert_eq!(ms(u32::MAX, 0.0), 30_000);
        assert_eq!(ms(u32::MAX, 1.0), 24_000);
    }

    #[test]
    fn random_backoff_stays_within_its_bounds() {
        let b = Backoff::default();
        for attempt in 1..=40u32 {
            let base = (100.0 * 2f64.powi(attempt as i32 - 1)).min(30_000.0);
            for _ in 0..200 {
                let d = b.delay(attempt).as_secs_f64() * 1000.0;
                assert!(
                    d >= base * 0.8 - 1e-6,
                    "attempt {attempt}: {d} < {}",
                    base * 0.8
                );
                assert!(d <= base + 1e-6, "attempt {attempt}: {d} > {base}");
            }
        }
        let exact = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(exact.delay(3), Duration::from_millis(400));
    }

    #[test]
    fn odd_backoff_values_never_panic() {
        let b = Backoff {
            initial: Duration::ZERO,
            max: Duration::MAX,
            multiplier: f64::INFINITY,
            jitter: f64::NAN,
        };
        assert_eq!(b.delay(5), Duration::ZERO);
        let huge = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::MAX,
            multiplier: 10.0,
            jitter: 0.0,
        };
        assert_eq!(huge.delay(1_000), Duration::MAX);
    }
}
