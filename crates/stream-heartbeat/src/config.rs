//! Configuration: probe timing, circuit breaker thresholds and reconnect backoff.

use std::time::Duration;

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
        self.backoff.validate()
    }
}

/// Exponential backoff with jitter: attempt `n` waits about `initial * multiplier^(n-1)`,
/// never more than `max`, spread by `± jitter` of itself so reconnecting clients do not
/// stampede a restarted server together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure (default 100 ms).
    pub initial: Duration,
    /// The longest delay (default 30 s).
    pub max: Duration,
    /// Growth per failure (default 2.0).
    pub multiplier: f64,
    /// Random spread as a fraction of the delay, `0..=1` (default 0.2: ±20 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// Checks the fields; the error names the first that cannot work.
    pub fn validate(&self) -> Result<(), HeartbeatError> {
        if self.initial.is_zero() {
            return Err(invalid("heartbeat.backoff.initial", "must be > 0"));
        }
        if self.max < self.initial {
            return Err(invalid(
                "heartbeat.backoff.max",
                format!("must be >= heartbeat.backoff.initial ({:?})", self.initial),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(invalid(
                "heartbeat.backoff.multiplier",
                format!("must be a number >= 1, is {}", self.multiplier),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(invalid(
                "heartbeat.backoff.jitter",
                format!("must be in 0..=1, is {}", self.jitter),
            ));
        }
        Ok(())
    }

    /// The delay after the `attempt`-th consecutive failure (1-based; 0 counts as 1).
    ///
    /// With `base = min(initial * multiplier^(attempt-1), max)`, the result lies in
    /// `base * (1 - jitter) ..= min(base * (1 + jitter), max)`, chosen at random.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// [`Backoff::delay`] with the random draw given: `unit` in `0..1` maps linearly onto the
    /// jitter range (0.5 is the undisturbed base).
    pub(crate) fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let exponent = f64::from(attempt.saturating_sub(1));
        let multiplier = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        let base = if self.initial.is_zero() {
            0.0
        } else {
            (self.initial.as_secs_f64() * multiplier.powf(exponent)).min(max)
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let secs = (base * (1.0 + jitter * (2.0 * unit - 1.0))).clamp(0.0, max);
        Duration::try_from_secs_f64(secs).unwrap_or(self.max)
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
        let ms = |attempt, unit| b.delay_with(attempt, unit).as_millis();
        assert_eq!(ms(0, 0.5), 100);
        assert_eq!(ms(1, 0.5), 100);
        assert_eq!(ms(2, 0.5), 200);
        assert_eq!(ms(3, 0.5), 400);
        assert_eq!(ms(1, 0.0), 80);
        assert_eq!(ms(1, 1.0), 120);
        assert_eq!(ms(9, 0.5), 25_600);
        // Capped, and jitter never lifts it above max.
        assert_eq!(ms(10, 0.5), 30_000);
        assert_eq!(ms(10, 1.0), 30_000);
        assert_eq!(ms(10, 0.0), 24_000);
        assert_eq!(ms(u32::MAX, 1.0), 30_000);
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
                assert!(
                    d <= (base * 1.2).min(30_000.0) + 1e-6,
                    "attempt {attempt}: {d}"
                );
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
