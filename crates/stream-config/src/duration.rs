//! Durations written as `500ms`, `5s`, `1m`, `2h`, `1d` or a sum such as `1m30s`.
//!
//! Use with serde's `with`: `#[serde(with = "stream_config::duration")]` on a
//! [`Duration`], `#[serde(default, with = "stream_config::duration::option")]` on an
//! `Option<Duration>`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses `500ms`, `5s`, `1m`, `2h`, `1d`, or a sum of them (`1m30s`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(stream_config::duration::parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(stream_config::duration::parse("5").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected a duration such as 500ms, 5s, 1m or 1h30m, found `{text}`");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(expected());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(expected());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let Some((_, ms)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("`{text}` needs a unit: ms, s, m, h or d (e.g. {amount}s)")
            } else {
                expected()
            });
        };
        total = amount
            .checked_mul(*ms)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("`{text}` is too long a duration"))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total))
}

/// Deserializes a [`Duration`] from text such as `5s` (see [`parse`]).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = DurationText::deserialize(deserializer)?;
    parse(&text.0).map_err(serde::de::Error::custom)
}

/// For `Option<Duration>` fields (with `#[serde(default)]`).
pub mod option {
    use super::*;

    /// Deserializes an optional [`Duration`]; `null` is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<DurationText>::deserialize(deserializer)? {
            Some(text) => parse(&text.0).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Text, or a bare number (which [`parse`] then asks a unit for).
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as 500ms, 5s or 1m")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums_parse() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn a_number_without_a_unit_asks_for_one() {
        assert_eq!(
            parse("5").expect_err("no unit"),
            "`5` needs a unit: ms, s, m, h or d (e.g. 5s)"
        );
    }

    #[test]
    fn nonsense_is_refused_with_examples() {
        for bad in ["", "s", "5 s", "1.5s", "5sec", "-1s", "5s5"] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.contains("500ms") || err.contains("needs a unit"),
                "{bad}: {err}"
            );
        }
        assert!(
            parse("99999999999999999d")
                .expect_err("overflow")
                .contains("too long")
        );
    }
}
