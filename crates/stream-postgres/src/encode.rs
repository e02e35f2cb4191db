//! Values into PostgreSQL's binary COPY format, without a detour through text.
//!
//! Each cell is `i32` length + bytes (or `-1` for NULL). A value PostgreSQL cannot hold (a zero
//! date, a NUL byte in text) is written as NULL and reported as [`Cell::Nulled`], so the caller
//! counts it; a value that does not fit the column's type at all is [`Cell::Refused`].

use bytes::{BufMut, BytesMut};
use stream_core::{Date, DateTime, Time, Timestamp, Value};

use crate::types::PgType;

/// The 19-byte header and the trailer of a binary COPY stream.
pub(crate) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
pub(crate) const COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// Why a value was written as NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NullReason {
    /// MySQL's zero date or timestamp (`0000-00-00`).
    ZeroDate,
    /// A date PostgreSQL has no day for (`2024-02-30`, a zero month or day).
    InvalidDate,
    /// Text containing a NUL byte.
    NulByte,
}

impl NullReason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            NullReason::ZeroDate => "zero_date",
            NullReason::InvalidDate => "invalid_date",
            NullReason::NulByte => "nul_byte",
        }
    }
}

/// The outcome of encoding one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Written,
    Nulled(NullReason),
    Refused(String),
}

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_SECS: i64 = 946_684_800;
const PG_EPOCH_DAYS: i64 = 10_957;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 2000-01-01, or why the date has no day.
fn pg_days(d: &Date) -> Result<i32, NullReason> {
    if d.year == 0 && d.month == 0 && d.day == 0 {
        return Err(NullReason::ZeroDate);
    }
    let year = i64::from(d.year);
    if d.month == 0 || d.day == 0 || d.month > 12 || d.day > days_in_month(year, d.month) {
        return Err(NullReason::InvalidDate);
    }
    let days = days_from_civil(year, u32::from(d.month), u32::from(d.day)) - PG_EPOCH_DAYS;
    i32::try_from(days).map_err(|_| NullReason::InvalidDate)
}

fn pg_datetime_micros(dt: &DateTime) -> Result<i64, NullReason> {
    let days = i64::from(pg_days(&dt.date)?);
    let secs = days * 86_400
        + i64::from(dt.hour) * 3600
        + i64::from(dt.minute) * 60
        + i64::from(dt.second);
    Ok(secs * 1_000_000 + i64::from(dt.micros))
}

fn pg_timestamp_micros(ts: &Timestamp) -> Result<i64, NullReason> {
    if ts.is_zero() {
        return Err(NullReason::ZeroDate);
    }
    Ok((ts.secs - PG_EPOCH_SECS) * 1_000_000 + i64::from(ts.micros))
}

fn time_micros(t: &Time) -> i64 {
    let total = ((i64::from(t.hours) * 60 + i64::from(t.minutes)) * 60 + i64::from(t.seconds))
        * 1_000_000
        + i64::from(t.micros);
    if t.negative { -total } else { total }
}

/// Writes a NULL cell.
pub(crate) fn put_null(buf: &mut BytesMut) {
    buf.put_i32(-1);
}

/// Writes `bytes` as one cell.
pub(crate) fn put_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_i32(bytes.len() as i32);
    buf.put_slice(bytes);
}

/// Writes a value's `Display` text, formatted straight into the buffer (no string per row).
pub(crate) fn put_display(buf: &mut BytesMut, value: &impl std::fmt::Display) {
    use std::fmt::Write as _;
    let at = buf.len();
    buf.put_i32(0);
    // Writing into a BytesMut cannot fail.
    let _ = write!(buf, "{value}");
    let len = (buf.len() - at - 4) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes text, or NULL when it holds a NUL byte.
pub(crate) fn put_text(buf: &mut BytesMut, text: &str) -> Cell {
    if text.as_bytes().contains(&0) {
        put_null(buf);
        return Cell::Nulled(NullReason::NulByte);
    }
    put_bytes(buf, text.as_bytes());
    Cell::Written
}

/// Writes a `jsonb` cell from JSON text.
pub(crate) fn put_jsonb(buf: &mut BytesMut, json: &[u8]) {
    buf.put_i32(json.len() as i32 + 1);
    buf.put_u8(1);
    buf.put_slice(json);
}

/// Encodes decimal text (`-12.50`, `1e3` is not accepted) as PostgreSQL's binary numeric.
pub(crate) fn put_numeric(buf: &mut BytesMut, text: &str) -> Result<(), String> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(format!("`{text}` is not a decimal number"));
    }
    let int = int.trim_start_matches('0');
    // Base-10000 groups aligned on the decimal point.
    let int_pad = (4 - int.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let mut all = String::with_capacity(int.len() + frac.len() + 8);
    all.extend(std::iter::repeat_n('0', int_pad));
    all.push_str(int);
    all.push_str(frac);
    all.extend(std::iter::repeat_n('0', frac_pad));
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = ((int.len() + int_pad) / 4) as i32 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight).map_err(|_| format!("`{text}` is out of range"))?;
    buf.put_i32(8 + 2 * groups.len() as i32);
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    buf.put_u16(frac.len() as u16);
    for g in groups {
        buf.put_i16(g);
    }
    Ok(())
}

fn put_text_array(buf: &mut BytesMut, labels: &[String]) -> Cell {
    if labels.iter().any(|l| l.as_bytes().contains(&0)) {
        put_null(buf);
        return Cell::Nulled(NullReason::NulByte);
    }
    let body: usize = labels.iter().map(|l| 4 + l.len()).sum();
    if labels.is_empty() {
        buf.put_i32(12);
        buf.put_i32(0);
        buf.put_i32(0);
        buf.put_u32(25);
        return Cell::Written;
    }
    buf.put_i32((20 + body) as i32);
    buf.put_i32(1); // dimensions
    buf.put_i32(0); // no NULL elements
    buf.put_u32(25); // element type: text
    buf.put_i32(labels.len() as i32);
    buf.put_i32(1); // lower bound
    for l in labels {
        put_bytes(buf, l.as_bytes());
    }
    Cell::Written
}

fn put_uuid(buf: &mut BytesMut, text: &str) -> Result<(), String> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    let parse = |pair: &[u8]| {
        std::str::from_utf8(pair)
            .ok()
            .and_then(|s| u8::from_str_radix(s, 16).ok())
    };
    let bytes: Option<Vec<u8>> = hex.chunks(2).map(parse).collect();
    match bytes {
        Some(b) if b.len() == 16 => {
            put_bytes(buf, &b);
            Ok(())
        }
        _ => Err(format!("`{text}` is not a UUID")),
    }
}

fn put_inet(buf: &mut BytesMut, text: &str) -> Result<(), String> {
    let addr: std::net::IpAddr = text
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address"))?;
    match addr {
        std::net::IpAddr::V4(a) => {
            buf.put_i32(8);
            buf.put_slice(&[2, 32, 0, 4]);
            buf.put_slice(&a.octets());
        }
        std::net::IpAddr::V6(a) => {
            buf.put_i32(20);
            buf.put_slice(&[3, 128, 0, 16]);
            buf.put_slice(&a.octets());
        }
    }
    Ok(())
}

fn int_of(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(i128::from(*i)),
        Value::UInt(u) => Some(i128::from(*u)),
        Value::Bool(b) => Some(i128::from(*b)),
        _ => None,
    }
}

fn refused(value: &Value, ty: PgType) -> Cell {
    let mut shown = Vec::new();
    stream_core::json::write_value(&mut shown, value);
    let shown = String::from_utf8_lossy(&shown);
    let shown: String = shown.chars().take(80).collect();
    Cell::Refused(format!("value {shown} does not fit column type {ty}"))
}

/// Encodes one value as a cell of type `ty`.
pub(crate) fn put_value(buf: &mut BytesMut, value: &Value, ty: PgType) -> Cell {
    if value.is_null() {
        put_null(buf);
        return Cell::Written;
    }
    let bad = || refused(value, ty);
    match ty {
        PgType::Int2 | PgType::Int4 | PgType::Int8 => {
            let Some(n) = int_of(value) else {
                return bad();
            };
            match ty {
                PgType::Int2 => match i16::try_from(n) {
                    Ok(v) => put_bytes(buf, &v.to_be_bytes()),
                    Err(_) => return bad(),
                },
                PgType::Int4 => match i32::try_from(n) {
                    Ok(v) => put_bytes(buf, &v.to_be_bytes()),
                    Err(_) => return bad(),
                },
                _ => match (i64::try_from(n), value) {
                    (Ok(v), _) => put_bytes(buf, &v.to_be_bytes()),
                    // BIT(64) with the top bit set: the same 64 bits, read as signed.
                    (Err(_), Value::UInt(u)) => put_bytes(buf, &u.to_be_bytes()),
                    _ => return bad(),
                },
            }
        }
        PgType::Numeric(_) => {
            let text = match value {
                Value::Int(i) => i.to_string(),
                Value::UInt(u) => u.to_string(),
                Value::Decimal(d) => d.as_str().to_owned(),
                Value::Decimal128(d) => d.clone(),
                Value::Double(d) if d.is_finite() => format!("{d}"),
                Value::Float(f) if f.is_finite() => format!("{f}"),
                Value::String(s) => s.clone(),
                _ => return bad(),
            };
            if let Err(reason) = put_numeric(buf, &text) {
                return Cell::Refused(reason);
            }
        }
        PgType::Float4 => match value {
            Value::Float(f) => put_bytes(buf, &f.to_be_bytes()),
            Value::Double(d) => put_bytes(buf, &(*d as f32).to_be_bytes()),
            _ => return bad(),
        },
        PgType::Float8 => match value {
            Value::Double(d) => put_bytes(buf, &d.to_be_bytes()),
            Value::Float(f) => put_bytes(buf, &f64::from(*f).to_be_bytes()),
            Value::Int(i) => put_bytes(buf, &(*i as f64).to_be_bytes()),
            _ => return bad(),
        },
        PgType::Bool => match value {
            Value::Bool(b) => put_bytes(buf, &[u8::from(*b)]),
            Value::Int(i) => put_bytes(buf, &[u8::from(*i != 0)]),
            _ => return bad(),
        },
        PgType::Text => match value {
            Value::String(s) | Value::Enum(s) => return put_text(buf, s),
            Value::Set(labels) => return put_text(buf, &labels.join(",")),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => return put_text(buf, s),
                Err(_) => return bad(),
            },
            other => {
                let mut json = Vec::new();
                stream_core::json::write_value(&mut json, other);
                // Scalars print as JSON; a string's quotes are not part of the text.
                return put_text(buf, &String::from_utf8_lossy(&json));
            }
        },
        PgType::TextArray => match value {
            Value::Set(labels) => return put_text_array(buf, labels),
            _ => return bad(),
        },
        PgType::Bytea => match value {
            Value::Bytes(b) | Value::Binary { bytes: b, .. } => put_bytes(buf, b),
            Value::String(s) => put_bytes(buf, s.as_bytes()),
            _ => return bad(),
        },
        PgType::Jsonb => match value {
            Value::Json(j) => put_jsonb(buf, j.as_str().as_bytes()),
            Value::String(s) => {
                if serde_json::from_str::<serde::de::IgnoredAny>(s).is_err() {
                    return Cell::Refused("text in a JSON column is not valid JSON".into());
                }
                if s.contains("\\u0000") {
                    put_null(buf);
                    return Cell::Nulled(NullReason::NulByte);
                }
                put_jsonb(buf, s.as_bytes());
            }
            other => {
                let mut json = Vec::new();
                stream_core::json::write_value(&mut json, other);
                put_jsonb(buf, &json);
            }
        },
        PgType::Date => match value {
            Value::Date(d) => match pg_days(d) {
                Ok(days) => put_bytes(buf, &days.to_be_bytes()),
                Err(reason) => {
                    put_null(buf);
                    return Cell::Nulled(reason);
                }
            },
            _ => return bad(),
        },
        PgType::Timestamp(_) => match value {
            Value::DateTime(dt) => match pg_datetime_micros(dt) {
                Ok(us) => put_bytes(buf, &us.to_be_bytes()),
                Err(reason) => {
                    put_null(buf);
                    return Cell::Nulled(
                        if reason == NullReason::InvalidDate
                            && dt.date
                                == (Date {
                                    year: 0,
                                    month: 0,
                                    day: 0,
                                })
                        {
                            NullReason::ZeroDate
                        } else {
                            reason
                        },
                    );
                }
            },
            _ => return bad(),
        },
        PgType::Timestamptz(_) => match value {
            Value::Timestamp(ts) => match pg_timestamp_micros(ts) {
                Ok(us) => put_bytes(buf, &us.to_be_bytes()),
                Err(reason) => {
                    put_null(buf);
                    return Cell::Nulled(reason);
                }
            },
            Value::BsonDateTime(ms) => {
                put_bytes(buf, &((ms - PG_EPOCH_SECS * 1000) * 1000).to_be_bytes())
            }
            _ => return bad(),
        },
        PgType::Interval => match value {
            Value::Time(t) => {
                buf.put_i32(16);
                buf.put_i64(time_micros(t));
                buf.put_i32(0);
                buf.put_i32(0);
            }
            _ => return bad(),
        },
        PgType::Uuid => match value {
            Value::String(s) => {
                if let Err(reason) = put_uuid(buf, s) {
                    return Cell::Refused(reason);
                }
            }
            Value::Bytes(b) if b.len() == 16 => put_bytes(buf, b),
            _ => return bad(),
        },
        PgType::Inet => match value {
            Value::String(s) => {
                if let Err(reason) = put_inet(buf, s) {
                    return Cell::Refused(reason);
                }
            }
            _ => return bad(),
        },
    }
    Cell::Written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<u8> {
        let mut buf = BytesMut::new();
        put_numeric(&mut buf, text).expect(text);
        buf.to_vec()
    }

    #[test]
    fn displayed_values_are_written_with_their_length_first() {
        let mut buf = BytesMut::from(&b"x"[..]);
        let position: stream_core::Position = "binlog:b.000001:10+2".parse().expect("position");
        put_display(&mut buf, &position);
        let text = position.to_string();
        let mut expected = b"x".to_vec();
        expected.extend_from_slice(&(text.len() as i32).to_be_bytes());
        expected.extend_from_slice(text.as_bytes());
        assert_eq!(buf.to_vec(), expected);
    }

    #[test]
    fn numerics_encode_in_base_10000_groups() {
        // 12.50: one group 12 at weight 0, one group 5000 at weight -1, dscale 2.
        assert_eq!(
            numeric("12.50"),
            [0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x13, 0x88]
        );
        assert_eq!(numeric("0"), [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        // -10000: one group 1 at weight 1, negative.
        assert_eq!(
            numeric("-10000"),
            [0, 0, 0, 10, 0, 1, 0, 1, 0x40, 0, 0, 0, 0, 1]
        );
        let mut buf = BytesMut::new();
        assert!(put_numeric(&mut buf, "1e5").is_err());
    }

    #[test]
    fn dates_count_days_from_2000_and_zero_dates_are_null() {
        let d = |y, m, dd| Date {
            year: y,
            month: m,
            day: dd,
        };
        assert_eq!(pg_days(&d(2000, 1, 1)), Ok(0));
        assert_eq!(pg_days(&d(2024, 2, 29)), Ok(8825));
        assert_eq!(pg_days(&d(1999, 12, 31)), Ok(-1));
        assert_eq!(pg_days(&d(0, 0, 0)), Err(NullReason::ZeroDate));
        assert_eq!(pg_days(&d(2024, 2, 30)), Err(NullReason::InvalidDate));
        assert_eq!(pg_days(&d(2024, 0, 10)), Err(NullReason::InvalidDate));
    }

    #[test]
    fn nul_bytes_and_mismatched_values_are_reported() {
        let mut buf = BytesMut::new();
        assert_eq!(
            put_value(&mut buf, &Value::from("a\0b"), PgType::Text),
            Cell::Nulled(NullReason::NulByte)
        );
        assert_eq!(&buf[..], &(-1i32).to_be_bytes());
        let cell = put_value(&mut buf, &Value::Int(70_000), PgType::Int2);
        assert!(
            matches!(&cell, Cell::Refused(r) if r.contains("70000") && r.contains("smallint")),
            "{cell:?}"
        );
        let cell = put_value(&mut buf, &Value::from("x"), PgType::Int4);
        assert!(matches!(cell, Cell::Refused(_)));
    }
}
