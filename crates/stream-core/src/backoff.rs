//! Capped exponential [`Backoff`] with jitter, shared by the retry policy (`stream-edge`), the
//! reconnect loop (`stream-heartbeat`) and the connectors' own reconnects.
//!
//! ```
//! use std::time::Duration;
//! use stream_core::Backoff;
//!
//! let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
//! assert_eq!(backoff.base_delay(3), Duration::from_millis(400));
//! let delay = backoff.delay(3); // 400 ms less up to 20 % at random
//! assert!(delay <= Duration::from_millis(400) && delay >= Duration::from_millis(320));
//! assert_eq!(backoff.validate("reconnect.backoff"), Ok(()));
//! ```

use std::fmt;
use std::time::Duration;

/// Capped exponential backoff with jitter.
///
/// The delay before retry `n` (after failed attempt `n`, counted from 1) is
/// `min(initial × multiplierⁿ⁻¹, max)`, then reduced by a random fraction of up to `jitter` of
/// itself: it always lies in `[base × (1 − jitter), base]`, so it never exceeds `max`, and
/// clients that failed together do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failed attempt (before jitter).
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Growth per attempt; values below 1.0 (or not finite) count as 1.0.
    pub multiplier: f64,
    /// Fraction of the delay that may be taken off at random, 0.0 (none) to 1.0 (anything down
    /// to zero); values outside are clamped.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling, capped at 30 s, 20 % jitter.
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
    /// Doubling from `initial` up to `max`, with 20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            ..Self::default()
        }
    }

    /// The same delay every time, without jitter.
    pub fn constant(delay: Duration) -> Self {
        Self {
            initial: delay,
            max: delay,
            multiplier: 1.0,
            jitter: 0.0,
        }
    }

    /// No delay at all (tests, or retries that wait elsewhere).
    pub fn none() -> Self {
        Self::constant(Duration::ZERO)
    }

    /// Checks the fields; the error names the first that cannot work, under `prefix`
    /// (`reconnect.backoff.jitter must be in 0..=1, is 1.5` for the prefix
    /// `reconnect.backoff`).
    ///
    /// This is the check for a configured backoff: `initial` must be > 0 (a zero first delay
    /// would retry in a tight loop), so [`Backoff::none`] and `Backoff::constant(Duration::ZERO)`
    /// do not pass, though [`Backoff::delay`] works with them. [`Backoff::delay`] never needs
    /// a valid backoff: it clamps what it is given.
    pub fn validate(&self, prefix: &str) -> Result<(), InvalidBackoff> {
        let invalid = |field, requirement: String| {
            Err(InvalidBackoff {
                prefix: prefix.to_owned(),
                field,
                requirement,
            })
        };
        if self.initial.is_zero() {
            return invalid(BackoffField::Initial, "must be > 0".to_owned());
        }
        if self.max < self.initial {
            return invalid(
                BackoffField::Max,
                format!("must be >= {prefix}.initial ({:?})", self.initial),
            );
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return invalid(
                BackoffField::Multiplier,
                format!("must be a number >= 1, is {}", self.multiplier),
            );
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return invalid(
                BackoffField::Jitter,
                format!("must be in 0..=1, is {}", self.jitter),
            );
        }
        Ok(())
    }

    /// The delay after failed attempt `attempt` (counted from 1; 0 counts as 1), with a random
    /// jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// The delay before jitter: `min(initial × multiplier^(attempt−1), max)`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let max = self.max.as_secs_f64();
        let initial = self.initial.as_secs_f64().min(max);
        let multiplier = if self.multiplier.is_finite() && self.multiplier > 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = initial * multiplier.powi(exponent);
        if secs.is_finite() && secs < max {
            Duration::try_from_secs_f64(secs).unwrap_or(self.max)
        } else {
            self.max
        }
    }

    /// [`Backoff::delay`] with the random draw given: `random` in `[0, 1]` is the fraction of
    /// the allowed jitter taken off, so 0.0 gives the [`base_delay`](Backoff::base_delay) and
    /// 1.0 gives `base × (1 − jitter)`. Values outside are clamped (NaN counts as 0.0).
    pub fn delay_with(&self, attempt: u32, random: f64) -> Duration {
        let base = self.base_delay(attempt);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        let random = if random.is_nan() {
            0.0
        } else {
            random.clamp(0.0, 1.0)
        };
        let factor = (1.0 - jitter * random).clamp(0.0, 1.0);
        if factor >= 1.0 {
            // No round trip through f64: a base near `Duration::MAX` would overflow it.
            return base;
        }
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).map_or(base, |d| d.min(base))
    }
}

/// The field of a [`Backoff`] that [`Backoff::validate`] rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackoffField {
    /// [`Backoff::initial`].
    Initial,
    /// [`Backoff::max`].
    Max,
    /// [`Backoff::multiplier`].
    Multiplier,
    /// [`Backoff::jitter`].
    Jitter,
}

impl BackoffField {
    /// The field's name: `initial`, `max`, `multiplier` or `jitter`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackoffField::Initial => "initial",
            BackoffField::Max => "max",
            BackoffField::Multiplier => "multiplier",
            BackoffField::Jitter => "jitter",
        }
    }
}

impl fmt::Display for BackoffField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`Backoff`] field that cannot work, e.g. `heartbeat.backoff.jitter must be in 0..=1, is
/// 1.5`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{prefix}.{field} {requirement}")]
pub struct InvalidBackoff {
    /// Where the backoff sits in its configuration, as given to [`Backoff::validate`]
    /// (`heartbeat.backoff`).
    pub prefix: String,
    /// The field at fault.
    pub field: BackoffField,
    /// What it must be, and what it is when that helps (`must be in 0..=1, is 1.5`).
    pub requirement: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let b = Backoff {
            initial: ms(100),
            max: ms(1000),
            multiplier: 2.0,
            jitter: 0.0,
        };
        let delays: Vec<_> = (1..=6).map(|a| b.delay(a)).collect();
        assert_eq!(
            delays,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(b.delay(0), ms(100));
        assert_eq!(b.delay(u32::MAX), ms(1000), "no overflow");
        let odd = Backoff {
            multiplier: f64::NAN,
            jitter: f64::NAN,
            ..b
        };
        assert_eq!(odd.delay(5), ms(100));
        let big_initial = Backoff {
            initial: ms(5000),
            ..b
        };
        assert_eq!(big_initial.delay(1), ms(1000));
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let b = Backoff {
            initial: ms(100),
            max: ms(1000),
            multiplier: 2.0,
            jitter: 0.25,
        };
        assert_eq!(b.delay_with(3, 0.0), ms(400));
        assert_eq!(b.delay_with(3, 1.0), ms(300));
        for attempt in 1..=10 {
            let base = b.base_delay(attempt);
            for _ in 0..200 {
                let d = b.delay(attempt);
                assert!(d <= base && d >= base.mul_f64(0.75), "{d:?} vs {base:?}");
                assert!(d <= b.max);
            }
        }
        let full = Backoff { jitter: 7.0, ..b };
        assert_eq!(
            full.delay_with(1, 1.0),
            Duration::ZERO,
            "jitter clamps to 1"
        );
    }

    #[test]
    fn constructors_are_as_documented() {
        assert_eq!(
            Backoff::new(ms(50), ms(800)),
            Backoff {
                initial: ms(50),
                max: ms(800),
                multiplier: 2.0,
                jitter: 0.2,
            }
        );
        let constant = Backoff::constant(ms(7));
        for attempt in [0, 1, 2, 10, u32::MAX] {
            assert_eq!(constant.delay(attempt), ms(7));
            assert_eq!(Backoff::none().delay(attempt), Duration::ZERO);
        }
    }

    #[test]
    fn huge_delays_saturate_at_max_without_panicking() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::MAX,
            multiplier: 10.0,
            jitter: 0.2,
        };
        assert_eq!(b.delay_with(1_000, 0.0), Duration::MAX);
        assert!(b.delay_with(1_000, 1.0) <= Duration::MAX);
        let _ = b.delay(1_000);
    }

    #[test]
    fn validation_names_the_field_under_the_prefix() {
        let check = |b: Backoff| {
            b.validate("reconnect.backoff")
                .expect_err("should be invalid")
                .to_string()
        };
        assert_eq!(Backoff::default().validate("x"), Ok(()));
        assert_eq!(Backoff::constant(ms(5)).validate("x"), Ok(()));
        assert_eq!(
            check(Backoff::none()),
            "reconnect.backoff.initial must be > 0"
        );
        assert_eq!(
            check(Backoff {
                max: ms(10),
                ..Backoff::default()
            }),
            "reconnect.backoff.max must be >= reconnect.backoff.initial (100ms)"
        );
        assert_eq!(
            check(Backoff {
                multiplier: 0.5,
                ..Backoff::default()
            }),
            "reconnect.backoff.multiplier must be a number >= 1, is 0.5"
        );
        assert_eq!(
            check(Backoff {
                jitter: f64::NAN,
                ..Backoff::default()
            }),
            "reconnect.backoff.jitter must be in 0..=1, is NaN"
        );
        let err = Backoff {
            jitter: -0.1,
            ..Backoff::default()
        }
        .validate("p")
        .expect_err("negative jitter");
        assert_eq!(err.field, BackoffField::Jitter);
        assert_eq!(err.prefix, "p");
        assert_eq!(err.requirement, "must be in 0..=1, is -0.1");
    }
}
