//! The retry policy: one table from [`ErrorClass`] to [`Decision`], and a capped exponential
//! [`Backoff`] with jitter ([`stream_core::Backoff`]).
//!
//! Attempts are counted from 1: attempt 1 is the first try. A rule
//! `Retry { max_attempts: 5 }` allows five tries in all (the first and four retries); when the
//! fifth fails the retries are exhausted and the policy gives up with its
//! [`on_exhausted`](RetryPolicy::on_exhausted) action, [`GiveUp::DeadLetter`] unless changed.
//!
//! ```
//! use std::time::Duration;
//! use stream_core::{Backoff, ErrorClass};
//! use stream_edge::retry::{Action, Decision, RetryPolicy};
//!
//! let policy = RetryPolicy::from_table([
//!     (ErrorClass::Transient, Decision::Retry { max_attempts: 3 }),
//!     (ErrorClass::Definite, Decision::DeadLetter),
//! ])
//! .with_backoff(Backoff::constant(Duration::from_millis(10)));
//!
//! assert_eq!(policy.next(ErrorClass::Transient, 1), Action::RetryAfter(Duration::from_millis(10)));
//! assert_eq!(policy.next(ErrorClass::Transient, 3), Action::DeadLetter); // exhausted
//! assert_eq!(policy.next(ErrorClass::Definite, 1), Action::DeadLetter);
//! ```

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use stream_core::{Backoff, ErrorClass};

/// What to do about an error of one class: one cell of the policy table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Try again after a backoff delay, up to `max_attempts` tries in all (the first included);
    /// then give up with the policy's [`on_exhausted`](RetryPolicy::on_exhausted) action.
    Retry {
        /// Tries in all, the first included; 0 and 1 both mean "no retry".
        max_attempts: u32,
    },
    /// Put the event in the dead-letter queue with the error as its reason, and go on.
    DeadLetter,
    /// Stop with the error.
    Fail,
    /// Drop the event (log it) and go on.
    Skip,
}

impl fmt::Display for Decision {
    /// The form [`FromStr`] reads: `retry:5`, `dead-letter`, `fail`, `skip`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Retry { max_attempts } => write!(f, "retry:{max_attempts}"),
            Decision::DeadLetter => f.write_str("dead-letter"),
            Decision::Fail => f.write_str("fail"),
            Decision::Skip => f.write_str("skip"),
        }
    }
}

impl FromStr for Decision {
    type Err = PolicyParseError;

    /// `retry:<max_attempts>`, `retry` (5 attempts), `dead-letter`, `fail` or `skip`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| PolicyParseError {
            input: s.to_owned(),
            reason: reason.to_owned(),
        };
        match s.trim() {
            "retry" => Ok(Decision::Retry {
                max_attempts: DEFAULT_MAX_ATTEMPTS,
            }),
            "dead-letter" | "dead_letter" | "deadletter" => Ok(Decision::DeadLetter),
            "fail" => Ok(Decision::Fail),
            "skip" => Ok(Decision::Skip),
            other => match other.strip_prefix("retry:") {
                Some(n) => n
                    .trim()
                    .parse()
                    .map(|max_attempts| Decision::Retry { max_attempts })
                    .map_err(|_| err("`retry:` must be followed by a number of attempts")),
                None => Err(err(
                    "expected `retry:<attempts>`, `dead-letter`, `fail` or `skip`",
                )),
            },
        }
    }
}

/// What the policy says to do now, for one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Give up on this event: put it in the dead-letter queue.
    DeadLetter,
    /// Give up: stop with the error.
    Fail,
    /// Give up on this event: drop it.
    Skip,
}

impl Action {
    /// Whether this action gives up (anything but [`Action::RetryAfter`]).
    pub fn is_final(&self) -> bool {
        !matches!(self, Action::RetryAfter(_))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RetryAfter(d) => write!(f, "retry after {d:?}"),
            Action::DeadLetter => f.write_str("dead-letter"),
            Action::Fail => f.write_str("fail"),
            Action::Skip => f.write_str("skip"),
        }
    }
}

/// How to give up once a [`Decision::Retry`] rule's attempts are used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GiveUp {
    /// Dead-letter the event (the default: right for subscribers and sinks).
    #[default]
    DeadLetter,
    /// Stop with the error (right for a source, which has no single event to set aside).
    Fail,
    /// Drop the event.
    Skip,
}

impl From<GiveUp> for Action {
    fn from(g: GiveUp) -> Self {
        match g {
            GiveUp::DeadLetter => Action::DeadLetter,
            GiveUp::Fail => Action::Fail,
            GiveUp::Skip => Action::Skip,
        }
    }
}

const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The retry policy: the first rule of the table for an error's class decides; a class without
/// a rule fails.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    rules: Vec<(ErrorClass, Decision)>,
    backoff: Backoff,
    exhausted: GiveUp,
}

impl Default for RetryPolicy {
    /// Transient errors: 5 attempts, then dead-letter; definite errors: dead-letter at once;
    /// [`Backoff::default`].
    fn default() -> Self {
        Self::from_table([
            (
                ErrorClass::Transient,
                Decision::Retry {
                    max_attempts: DEFAULT_MAX_ATTEMPTS,
                },
            ),
            (ErrorClass::Definite, Decision::DeadLetter),
        ])
    }
}

impl RetryPolicy {
    /// A policy from its table, with [`Backoff::default`] and [`GiveUp::DeadLetter`] for
    /// exhausted retries. When a class appears twice, the first row wins.
    pub fn from_table(table: impl IntoIterator<Item = (ErrorClass, Decision)>) -> Self {
        Self {
            rules: table.into_iter().collect(),
            backoff: Backoff::default(),
            exhausted: GiveUp::default(),
        }
    }

    /// The same policy with another backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The same policy, giving up this way once a retry rule's attempts are used up.
    pub fn on_exhausted(mut self, give_up: GiveUp) -> Self {
        self.exhausted = give_up;
        self
    }

    /// The table, in order.
    pub fn rules(&self) -> &[(ErrorClass, Decision)] {
        &self.rules
    }

    /// The backoff between retries.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// How exhausted retries end.
    pub fn exhausted(&self) -> GiveUp {
        self.exhausted
    }

    /// The table's decision for `class` ([`Decision::Fail`] when it has no row).
    pub fn decision(&self, class: ErrorClass) -> Decision {
        self.rules
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(Decision::Fail, |(_, d)| *d)
    }

    /// What to do after attempt number `attempt` (counted from 1) failed with an error of
    /// `class`.
    pub fn next(&self, class: ErrorClass, attempt: u32) -> Action {
        match self.decision(class) {
            Decision::Retry { max_attempts } if attempt.max(1) < max_attempts => {
                Action::RetryAfter(self.backoff.delay(attempt))
            }
            Decision::Retry { .. } => self.exhausted.into(),
            Decision::DeadLetter => Action::DeadLetter,
            Decision::Fail => Action::Fail,
            Decision::Skip => Action::Skip,
        }
    }
}

impl fmt::Display for RetryPolicy {
    /// The table in the form [`FromStr`] reads, e.g. `transient=retry:5,definite=dead-letter`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (class, decision)) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={decision}", class_name(*class))?;
        }
        Ok(())
    }
}

impl FromStr for RetryPolicy {
    type Err = PolicyParseError;

    /// A table as comma-separated `class=decision` pairs, e.g.
    /// `transient=retry:8,definite=fail` (classes `transient`, `definite`; decisions as
    /// [`Decision`]'s `FromStr`), with the default backoff.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rules = Vec::new();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((class, decision)) = pair.split_once('=') else {
                return Err(PolicyParseError {
                    input: pair.to_owned(),
                    reason: "expected `class=decision`, e.g. `transient=retry:5`".to_owned(),
                });
            };
            let class = match class.trim() {
                "transient" => ErrorClass::Transient,
                "definite" => ErrorClass::Definite,
                _ => {
                    return Err(PolicyParseError {
                        input: pair.to_owned(),
                        reason: "the error class must be `transient` or `definite`".to_owned(),
                    });
                }
            };
            rules.push((class, decision.parse()?));
        }
        if rules.is_empty() {
            return Err(PolicyParseError {
                input: s.to_owned(),
                reason: "empty policy table".to_owned(),
            });
        }
        Ok(Self::from_table(rules))
    }
}

fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Transient => "transient",
        ErrorClass::Definite => "definite",
    }
}

/// A policy table or decision that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry policy `{input}`: {reason}")]
pub struct PolicyParseError {
    /// The text at fault.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The error of [`retry`] once the policy gave up: the last error, how many attempts were
/// made, and how the policy says to end ([`Action::DeadLetter`], [`Action::Fail`] or
/// [`Action::Skip`]).
#[derive(Debug)]
pub struct Exhausted<E> {
    /// The error of the last attempt.
    pub error: E,
    /// Its class.
    pub class: ErrorClass,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The final action: never [`Action::RetryAfter`].
    pub action: Action,
}

impl<E: fmt::Display> fmt::Display for Exhausted<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "gave up after {} attempt{s} ({} error, {}): {}",
            self.attempts,
            class_name(self.class),
            self.action,
            self.error
        )
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Exhausted<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs `op` until it succeeds or the policy gives up, sleeping the backoff delay between
/// attempts. `classify` tells the class of each error.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use stream_core::{Backoff, ErrorClass};
/// use stream_edge::retry::{retry, Action, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let policy = RetryPolicy::default().with_backoff(Backoff::none());
/// let calls = AtomicU32::new(0);
/// let out = retry(&policy, |_: &&str| ErrorClass::Transient, || async {
///     if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err("busy") } else { Ok(42) }
/// })
/// .await;
/// assert_eq!(out.ok(), Some(42));
///
/// let gave_up = retry(&policy, |_: &&str| ErrorClass::Definite, || async { Err::<(), _>("bad") })
///     .await
///     .err()
///     .map(|e| (e.attempts, e.action));
/// assert_eq!(gave_up, Some((1, Action::DeadLetter)));
/// # }
/// ```
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    classify: impl Fn(&E) -> ErrorClass,
    mut op: F,
) -> Result<T, Exhausted<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt: u32 = 1;
    loop {
        match op().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                let class = classify(&error);
                match policy.next(class, attempt) {
                    Action::RetryAfter(delay) => {
                        tracing::debug!(
                            attempt,
                            class = class_name(class),
                            ?delay,
                            "attempt failed; retrying"
                        );
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        attempt = attempt.saturating_add(1);
                    }
                    action => {
                        return Err(Exhausted {
                            error,
                            class,
                            attempts: attempt,
                            action,
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_default_table_retries_transient_errors_and_dead_letters_definite_ones() {
        let policy = RetryPolicy::default().with_backoff(Backoff::constant(ms(7)));
        for attempt in 1..5 {
            assert_eq!(
                policy.next(ErrorClass::Transient, attempt),
                Action::RetryAfter(ms(7)),
                "attempt {attempt}"
            );
        }
        assert_eq!(policy.next(ErrorClass::Transient, 5), Action::DeadLetter);
        assert_eq!(policy.next(ErrorClass::Transient, 99), Action::DeadLetter);
        assert_eq!(policy.next(ErrorClass::Definite, 1), Action::DeadLetter);
        assert_eq!(policy.to_string(), "transient=retry:5,definite=dead-letter");
    }

    #[test]
    fn every_decision_maps_to_its_action_and_missing_classes_fail() {
        let policy = RetryPolicy::from_table([(ErrorClass::Definite, Decision::Skip)]);
        assert_eq!(policy.next(ErrorClass::Definite, 1), Action::Skip);
        assert_eq!(policy.next(ErrorClass::Transient, 1), Action::Fail);
        let policy = RetryPolicy::from_table([
            (ErrorClass::Definite, Decision::Fail),
            (ErrorClass::Definite, Decision::Skip),
        ]);
        assert_eq!(
            policy.next(ErrorClass::Definite, 1),
            Action::Fail,
            "first row wins"
        );
    }

    #[test]
    fn exhausted_retries_give_up_the_configured_way() {
        let policy =
            RetryPolicy::from_table([(ErrorClass::Transient, Decision::Retry { max_attempts: 2 })])
                .with_backoff(Backoff::none())
                .on_exhausted(GiveUp::Fail);
        assert_eq!(
            policy.next(ErrorClass::Transient, 1),
            Action::RetryAfter(Duration::ZERO)
        );
        assert_eq!(policy.next(ErrorClass::Transient, 2), Action::Fail);
        for max_attempts in [0, 1] {
            let p = RetryPolicy::from_table([(
                ErrorClass::Transient,
                Decision::Retry { max_attempts },
            )]);
            assert_eq!(p.next(ErrorClass::Transient, 1), Action::DeadLetter);
        }
    }

    #[test]
    fn tables_and_decisions_parse_from_text() {
        let p: RetryPolicy = "transient=retry:8, definite=fail".parse().expect("policy");
        assert_eq!(
            p.rules(),
            &[
                (ErrorClass::Transient, Decision::Retry { max_attempts: 8 }),
                (ErrorClass::Definite, Decision::Fail)
            ]
        );
        assert_eq!(
            "retry".parse::<Decision>(),
            Ok(Decision::Retry { max_attempts: 5 })
        );
        for d in [
            Decision::DeadLetter,
            Decision::Skip,
            Decision::Retry { max_attempts: 3 },
        ] {
            assert_eq!(d.to_string().parse::<Decision>(), Ok(d));
        }
        let err = "sometimes=skip".parse::<RetryPolicy>().expect_err("class");
        assert!(err.to_string().contains("`sometimes=skip`"), "{err}");
        let err = "transient=retry:x"
            .parse::<RetryPolicy>()
            .expect_err("count");
        assert!(err.to_string().contains("number of attempts"), "{err}");
        assert!("".parse::<RetryPolicy>().is_err());
    }

    #[tokio::test]
    async fn retry_returns_the_first_success() {
        let policy = RetryPolicy::default().with_backoff(Backoff::constant(ms(1)));
        let calls = AtomicU32::new(0);
        let out = retry(
            &policy,
            |_: &String| ErrorClass::Transient,
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=2 => Err("busy".to_owned()),
                    n => Ok(n),
                }
            },
        )
        .await;
        assert_eq!(out.ok(), Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn retry_reports_attempts_and_the_final_action_when_it_gives_up() {
        let policy = RetryPolicy::from_table([
            (ErrorClass::Transient, Decision::Retry { max_attempts: 3 }),
            (ErrorClass::Definite, Decision::Fail),
        ])
        .with_backoff(Backoff::none());
        let calls = AtomicU32::new(0);
        let err = retry(
            &policy,
            |_: &std::io::Error| ErrorClass::Transient,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(std::io::Error::other("connection reset"))
            },
        )
        .await
        .expect_err("gives up");
        assert_eq!((err.attempts, err.action), (3, Action::DeadLetter));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(
            err.to_string(),
            "gave up after 3 attempts (transient error, dead-letter): connection reset"
        );
        assert!(std::error::Error::source(&err).is_some());

        // A definite error after a transient one ends at once, with the definite rule.
        let calls = AtomicU32::new(0);
        let err = retry(
            &policy,
            |e: &&str| {
                if *e == "bad" {
                    ErrorClass::Definite
                } else {
                    ErrorClass::Transient
                }
            },
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err::<(), _>("busy")
                } else {
                    Err("bad")
                }
            },
        )
        .await
        .expect_err("fails");
        assert_eq!(
            (err.attempts, err.action, err.error),
            (2, Action::Fail, "bad")
        );
    }
}
