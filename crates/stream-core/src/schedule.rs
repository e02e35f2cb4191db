//! When a polling source polls: every fixed interval, or at the times a cron expression names.
//!
//! Cron expressions have the five classic fields, read in UTC: minute (0-59), hour (0-23),
//! day of month (1-31), month (1-12 or `jan`-`dec`), day of week (0-7, 0 and 7 both Sunday, or
//! `sun`-`sat`). Each field is `*`, a number, a range `a-b`, any of those with a step `/n`, or
//! a comma-separated list of them; `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly` and
//! `@yearly` (`@annually`) stand for their usual expressions. As in cron, when both day fields
//! are restricted a day matching either one fires.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use stream_core::{Cron, PollSchedule};
//!
//! let every_5_minutes: Cron = "*/5 * * * *".parse()?;
//! // 1970-01-01 00:03:10 UTC: the next time is 00:05:00.
//! let now = UNIX_EPOCH + Duration::from_secs(190);
//! assert_eq!(every_5_minutes.next_after(now), Some(UNIX_EPOCH + Duration::from_secs(300)));
//!
//! let schedule = PollSchedule::Cron(every_5_minutes);
//! assert_eq!(schedule.delay_from(now), Duration::from_secs(110));
//! let refused = "61 * * * *".parse::<Cron>().expect_err("no minute 61");
//! assert!(refused.to_string().contains("minute: 61 is outside 0-59"));
//! # Ok::<(), stream_core::CronError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When to poll next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollSchedule {
    /// This long after the previous poll.
    Every(Duration),
    /// At the next time the expression names.
    Cron(Cron),
}

impl PollSchedule {
    /// How long to wait from `now` until the next poll.
    pub fn delay_from(&self, now: SystemTime) -> Duration {
        match self {
            PollSchedule::Every(interval) => *interval,
            PollSchedule::Cron(cron) => cron
                .next_after(now)
                .and_then(|next| next.duration_since(now).ok())
                // An expression that names no time within years (e.g. February 30th) was
                // refused when parsed; this only guards the arithmetic.
                .unwrap_or(Duration::from_secs(3600)),
        }
    }
}

/// A parsed five-field cron expression (UTC).
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A cron expression that cannot be read, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron expression `{text}`: {reason}")]
pub struct CronError {
    text: String,
    reason: String,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

/// The bits of `field` that `text` selects, and whether it was a plain `*`.
fn parse_field(text: &str, field: &Field) -> Result<(u64, bool), String> {
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        if let Some(i) = field.names.iter().position(|n| *n == lower) {
            return Ok(field.min + i as u32);
        }
        let n: u32 = v
            .parse()
            .map_err(|_| format!("{}: `{v}` is not a number", field.name))?;
        // Day of week 7 is Sunday, as 0 is.
        let n = if field.name == "day of week" && n == 7 {
            0
        } else {
            n
        };
        if n < field.min || n > field.max {
            return Err(format!(
                "{}: {v} is outside {}-{}",
                field.name,
                field.min,
                if field.name == "day of week" {
                    7
                } else {
                    field.max
                }
            ));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{}: step `{step}` is not a positive number", field.name)
                })?;
                if step > field.max {
                    return Err(format!(
                        "{}: step {step} is larger than {}",
                        field.name, field.max
                    ));
                }
                (range, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" {
            (field.min, field.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!("{}: range {range} runs backwards", field.name));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `5/15` means from 5 to the end, every 15.
            (a, if step > 1 { field.max } else { a })
        };
        let mut n = from;
        while n <= to {
            bits |= 1 << n;
            n += step;
        }
    }
    Ok((bits, text == "*"))
}

impl FromStr for Cron {
    type Err = CronError;

    fn from_str(text: &str) -> Result<Self, CronError> {
        let error = |reason: String| CronError {
            text: text.to_owned(),
            reason,
        };
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(error(format!(
                    "unknown macro `{other}` (@hourly, @daily, @weekly, @monthly, @yearly)"
                )));
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(error(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        };
        let field = |name, min, max, names| Field {
            name,
            min,
            max,
            names,
        };
        let (minutes, _) = parse_field(minute, &field("minute", 0, 59, &[])).map_err(error)?;
        let (hours, _) = parse_field(hour, &field("hour", 0, 23, &[])).map_err(error)?;
        let (days, any_day) =
            parse_field(day, &field("day of month", 1, 31, &[])).map_err(error)?;
        let (months, _) = parse_field(month, &field("month", 1, 12, &MONTHS)).map_err(error)?;
        let (weekdays, any_weekday) =
            parse_field(weekday, &field("day of week", 0, 6, &WEEKDAYS)).map_err(error)?;
        let cron = Cron {
            text: text.trim().to_owned(),
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            any_day,
            any_weekday,
        };
        if cron.next_after(UNIX_EPOCH).is_none() {
            return Err(error("names no day that exists".into()));
        }
        Ok(cron)
    }
}

/// (year, month 1-12, day 1-31) of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Cron {
    fn day_matches(&self, days: i64) -> bool {
        let (_, month, day) = civil_from_days(days);
        if self.months & (1 << month) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday.
        let weekday = (days + 4).rem_euclid(7) as u32;
        let by_day = self.days & (1 << day) != 0;
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => by_weekday,
            (false, true) => by_day,
            (false, false) => by_day || by_weekday,
        }
    }

    /// The first time after `now` (to the minute, strictly later) that the expression names;
    /// `None` if there is none within 5 years.
    pub fn next_after(&self, now: SystemTime) -> Option<SystemTime> {
        let secs = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        let start = secs.div_euclid(60) + 1;
        let (mut day, mut minute_of_day) = (start.div_euclid(1440), start.rem_euclid(1440));
        for _ in 0..(5 * 366) {
            if self.day_matches(day) {
                for m in minute_of_day..1440 {
                    let (hour, minute) = (m / 60, m % 60);
                    if self.hours & (1 << hour) != 0 && self.minutes & (1 << minute) != 0 {
                        let at = (day * 1440 + m) * 60;
                        return Some(if at >= 0 {
                            UNIX_EPOCH + Duration::from_secs(at as u64)
                        } else {
                            UNIX_EPOCH - Duration::from_secs(at.unsigned_abs())
                        });
                    }
                }
            }
            day += 1;
            minute_of_day = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of a UTC date and time.
    fn at(y: i64, mo: u32, d: u32, h: u64, mi: u64) -> SystemTime {
        // Walk up from a lower bound (leap days only push the real count higher).
        let mut days = (y - 1970) * 365;
        while civil_from_days(days) != (y, mo, d) {
            days += 1;
        }
        UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400 + h * 3600 + mi * 60)
    }

    fn next(expr: &str, from: SystemTime) -> SystemTime {
        expr.parse::<Cron>()
            .expect("valid")
            .next_after(from)
            .expect("a next time")
    }

    #[test]
    fn civil_dates_round_trip_over_leap_years() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
    }

    #[test]
    fn fields_steps_ranges_lists_and_names_select_the_right_times() {
        let now = at(2026, 12, 1, 18, 7); // a Tuesday
        assert_eq!(next("*/5 * * * *", now), at(2026, 12, 1, 18, 10));
        assert_eq!(next("* * * * *", now), at(2026, 12, 1, 18, 8));
        assert_eq!(next("0 * * * *", now), at(2026, 12, 1, 19, 0));
        assert_eq!(next("30 2 * * *", now), at(2026, 12, 2, 2, 30));
        assert_eq!(next("0 9-17/4 * * *", now), at(2026, 12, 2, 9, 0));
        assert_eq!(next("15,45 18 * * *", now), at(2026, 12, 1, 18, 15));
        assert_eq!(next("0 0 * * sun", now), at(2026, 12, 6, 0, 0));
        assert_eq!(next("0 0 * * 7", now), at(2026, 12, 6, 0, 0));
        assert_eq!(next("0 0 1 jan *", now), at(2027, 1, 1, 0, 0));
        assert_eq!(next("0 0 29 2 *", now), at(2028, 2, 29, 0, 0));
        assert_eq!(next("@daily", now), at(2026, 12, 2, 0, 0));
        assert_eq!(next("@monthly", now), at(2027, 1, 1, 0, 0));
        // Both day fields restricted: either one fires (the 15th, or a Monday before it).
        assert_eq!(next("0 0 15 * mon", now), at(2026, 12, 7, 0, 0));
        // Strictly later, to the minute: at 18:10:00 exactly, the next is 18:15.
        assert_eq!(
            next("*/5 * * * *", at(2026, 12, 1, 18, 10)),
            at(2026, 12, 1, 18, 15)
        );
    }

    #[test]
    fn bad_expressions_name_the_field_at_fault() {
        let refused = |e: &str| e.parse::<Cron>().expect_err("refused").to_string();
        assert!(refused("60 * * * *").contains("minute: 60 is outside 0-59"));
        assert!(refused("* 24 * * *").contains("hour: 24 is outside 0-23"));
        assert!(refused("* * 0 * *").contains("day of month: 0 is outside 1-31"));
        assert!(refused("* * * foo *").contains("month: `foo` is not a number"));
        assert!(refused("* * * * 8").contains("day of week: 8 is outside 0-7"));
        assert!(refused("*/0 * * * *").contains("step `0`"));
        assert!(refused("*/61 * * * *").contains("minute: step 61 is larger than 59"));
        assert!(refused("5-1 * * * *").contains("runs backwards"));
        assert!(refused("* * * *").contains("expected 5 fields"));
        assert!(refused("@often").contains("unknown macro"));
        assert!(refused("0 0 30 2 *").contains("names no day that exists"));
    }

    #[test]
    fn an_interval_waits_its_length_and_a_cron_until_its_next_time() {
        let now = at(2026, 12, 1, 18, 7) + Duration::from_secs(30);
        assert_eq!(
            PollSchedule::Every(Duration::from_secs(7)).delay_from(now),
            Duration::from_secs(7)
        );
        let cron = PollSchedule::Cron("*/5 * * * *".parse().expect("valid"));
        assert_eq!(cron.delay_from(now), Duration::from_secs(150));
    }
}
