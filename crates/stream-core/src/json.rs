//! The canonical JSON encoding of `docs/event-json.md`, written straight into a byte buffer.
//!
//! This sits on the hot path of every event: no intermediate `serde_json::Value`, no per-value
//! allocation (integers via `itoa`, floats via `ryu`, base64 into the buffer's spare room).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::event::ChangeEvent;
use crate::json_stream::JsonOut;
use crate::position::{MySqlPosition, Position, TxnStart};
use crate::value::{Date, DateTime, Row, Time, Timestamp, Value};

/// Appends the JSON of one event (no newline).
pub fn write_event(buf: &mut Vec<u8>, ev: &ChangeEvent) {
    event_to(buf, ev);
}

/// The JSON of one event (no newline) into any output.
pub(crate) fn event_to<'a, O: JsonOut<'a>>(out: &mut O, ev: &'a ChangeEvent) {
    let buf = out.buf();
    buf.extend_from_slice(b"{\"source\":\"");
    buf.extend_from_slice(ev.source.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"db\":");
    write_str(buf, &ev.namespace.db);
    buf.extend_from_slice(b",\"table\":");
    write_str(buf, &ev.namespace.table);
    buf.extend_from_slice(b",\"op\":\"");
    buf.extend_from_slice(ev.op.as_str().as_bytes());
    buf.extend_from_slice(b"\",\"key\":");
    opt_row_to(out, ev.key.as_ref());
    out.buf().extend_from_slice(b",\"before\":");
    opt_row_to(out, ev.before.as_ref());
    out.buf().extend_from_slice(b",\"after\":");
    opt_row_to(out, ev.after.as_ref());
    if let Some(update) = &ev.update {
        out.buf().extend_from_slice(b",\"update\":{\"set\":");
        row_to(out, &update.set);
        let buf = out.buf();
        buf.extend_from_slice(b",\"unset\":[");
        for (i, field) in update.unset.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_str(buf, field);
        }
        buf.extend_from_slice(b"]}");
    }
    let buf = out.buf();
    buf.extend_from_slice(b",\"position\":\"");
    write_position(buf, &ev.position);
    buf.extend_from_slice(b"\",\"ts_ms\":");
    write_int(buf, ev.ts_ms);
    buf.extend_from_slice(b",\"txn\":");
    match &ev.txn {
        Some(t) => write_str(buf, t),
        None => buf.extend_from_slice(b"null"),
    }
    buf.push(b'}');
}

/// The position's printable form, escaped (a binlog file name is the server's choice). Binlog
/// file positions, one per row on the hot path, skip the formatting machinery.
fn write_position(buf: &mut Vec<u8>, position: &Position) {
    match position {
        Position::MySql(MySqlPosition {
            start: TxnStart::File { file, offset },
            skip,
        }) => {
            buf.extend_from_slice(b"binlog:");
            write_escaped(buf, file);
            buf.push(b':');
            write_int(buf, *offset);
            buf.push(b'+');
            write_int(buf, *skip);
        }
        other => {
            let _ = write!(EscapingWriter(buf), "{other}");
        }
    }
}

fn opt_row_to<'a, O: JsonOut<'a>>(out: &mut O, row: Option<&'a Row>) {
    match row {
        Some(r) => row_to(out, r),
        None => out.buf().extend_from_slice(b"null"),
    }
}

/// Appends a row or document as a JSON object, fields in order.
pub fn write_row(buf: &mut Vec<u8>, row: &Row) {
    row_to(buf, row);
}

fn row_to<'a, O: JsonOut<'a>>(out: &mut O, row: &'a Row) {
    out.buf().push(b'{');
    for (i, (name, value)) in row.iter().enumerate() {
        let buf = out.buf();
        if i > 0 {
            buf.push(b',');
        }
        write_str(buf, name);
        buf.push(b':');
        value_to(out, value);
    }
    out.buf().push(b'}');
}

/// Appends one value in the contract's form.
pub fn write_value(buf: &mut Vec<u8>, value: &Value) {
    value_to(buf, value);
}

/// One value into any output: strings, binary and JSON text through its methods.
fn value_to<'a, O: JsonOut<'a>>(out: &mut O, value: &'a Value) {
    match value {
        Value::String(s) | Value::Enum(s) => out.string(s),
        Value::Bytes(b) => out.base64(b),
        Value::Json(j) => out.verbatim(j.as_str()),
        Value::Document(row) => row_to(out, row),
        Value::Array(items) => {
            out.buf().push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.buf().push(b',');
                }
                value_to(out, item);
            }
            out.buf().push(b']');
        }
        Value::Binary { subtype, bytes } => {
            out.buf().extend_from_slice(b"{\"$binary\":{\"base64\":");
            out.base64(bytes);
            let buf = out.buf();
            buf.extend_from_slice(b",\"subType\":\"");
            crate::hex::encode_into(buf, &[*subtype]);
            buf.extend_from_slice(b"\"}}");
        }
        other => small_value(out.buf(), other),
    }
}

/// A value that is never large: numbers, temporal values, labels, BSON specials.
fn small_value(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Bool(true) => buf.extend_from_slice(b"true"),
        Value::Bool(false) => buf.extend_from_slice(b"false"),
        Value::Int(i) => write_int(buf, *i),
        Value::UInt(u) => write_int(buf, *u),
        Value::Float(f) => write_float(buf, *f, f.is_finite(), f64::from(*f)),
        Value::Double(d) => write_float(buf, *d, d.is_finite(), *d),
        Value::Decimal(d) => write_quoted_ascii(buf, d.as_str()),
        Value::Date(d) => {
            buf.push(b'"');
            write_date(buf, d);
            buf.push(b'"');
        }
        Value::DateTime(dt) => write_datetime(buf, dt),
        Value::Timestamp(ts) => write_timestamp(buf, ts),
        Value::Time(t) => write_time(buf, t),
        Value::Set(labels) => {
            buf.push(b'[');
            for (i, label) in labels.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_str(buf, label);
            }
            buf.push(b']');
        }
        Value::ObjectId(id) => {
            buf.extend_from_slice(b"{\"$oid\":\"");
            crate::hex::encode_into(buf, id);
            buf.extend_from_slice(b"\"}");
        }
        Value::BsonDateTime(ms) => write_bson_date(buf, *ms),
        Value::Decimal128(d) => {
            buf.extend_from_slice(b"{\"$numberDecimal\":");
            write_str(buf, d);
            buf.push(b'}');
        }
        Value::Regex { pattern, options } => {
            buf.extend_from_slice(b"{\"$regularExpression\":{\"pattern\":");
            write_str(buf, pattern);
            buf.extend_from_slice(b",\"options\":");
            write_str(buf, options);
            buf.extend_from_slice(b"}}");
        }
        Value::BsonTimestamp { t, i } => {
            buf.extend_from_slice(b"{\"$timestamp\":{\"t\":");
            write_int(buf, *t);
            buf.extend_from_slice(b",\"i\":");
            write_int(buf, *i);
            buf.extend_from_slice(b"}}");
        }
        Value::MinKey => buf.extend_from_slice(b"{\"$minKey\":1}"),
        Value::MaxKey => buf.extend_from_slice(b"{\"$maxKey\":1}"),
        Value::Undefined => buf.extend_from_slice(b"{\"$undefined\":true}"),
        Value::Symbol(s) => {
            buf.extend_from_slice(b"{\"$symbol\":");
            write_str(buf, s);
            buf.push(b'}');
        }
        Value::JavaScript(code) => {
            buf.extend_from_slice(b"{\"$code\":");
            write_str(buf, code);
            buf.push(b'}');
        }
        Value::JavaScriptWithScope { code, scope } => {
            buf.extend_from_slice(b"{\"$code\":");
            write_str(buf, code);
            buf.extend_from_slice(b",\"$scope\":");
            write_row(buf, scope);
            buf.push(b'}');
        }
        Value::DbPointer { namespace, id } => {
            buf.extend_from_slice(b"{\"$dbPointer\":{\"$ref\":");
            write_str(buf, namespace);
            buf.extend_from_slice(b",\"$id\":{\"$oid\":\"");
            crate::hex::encode_into(buf, id);
            buf.extend_from_slice(b"\"}}}");
        }
        Value::String(_)
        | Value::Enum(_)
        | Value::Bytes(_)
        | Value::Json(_)
        | Value::Document(_)
        | Value::Array(_)
        | Value::Binary { .. } => value_to(buf, value),
    }
}

fn write_int(buf: &mut Vec<u8>, n: impl itoa::Integer) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Shortest round-trip form; non-finite values (only BSON has them) as Extended JSON.
fn write_float<F: ryu::Float>(buf: &mut Vec<u8>, f: F, finite: bool, wide: f64) {
    if finite {
        buf.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        let text: &[u8] = if wide.is_nan() {
            b"NaN"
        } else if wide > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        };
        buf.extend_from_slice(b"{\"$numberDouble\":\"");
        buf.extend_from_slice(text);
        buf.extend_from_slice(b"\"}");
    }
}

pub(crate) fn write_base64(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.push(b'"');
    let start = buf.len();
    let len = bytes.len().div_ceil(3) * 4;
    buf.resize(start + len, 0);
    let written = STANDARD.encode_slice(bytes, &mut buf[start..]).unwrap_or(0);
    buf.truncate(start + written);
    buf.push(b'"');
}

fn write_quoted_ascii(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// Bytes that need escaping inside a JSON string: controls, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = true;
        i += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `s` as a quoted JSON string.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    write_escaped(buf, s);
    buf.push(b'"');
}

fn write_escaped(buf: &mut Vec<u8>, s: &str) {
    escape_bytes(buf, s.as_bytes());
}

/// Appends the escaped body of a JSON string from its UTF-8 bytes. Only ASCII bytes are
/// escaped, so a string may be escaped in slices cut anywhere, also inside a character.
pub(crate) fn escape_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        buf.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            0x08 => buf.extend_from_slice(b"\\b"),
            0x0c => buf.extend_from_slice(b"\\f"),
            _ => {
                buf.extend_from_slice(b"\\u00");
                crate::hex::encode_into(buf, &[b]);
            }
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// A `fmt::Write` that escapes what it is given into a JSON string body.
struct EscapingWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for EscapingWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        write_escaped(self.0, s);
        Ok(())
    }
}

fn write_2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10 % 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

fn write_4(buf: &mut Vec<u8>, n: u32) {
    write_2(buf, n / 100);
    write_2(buf, n % 100);
}

fn write_date(buf: &mut Vec<u8>, d: &Date) {
    write_4(buf, u32::from(d.year));
    buf.push(b'-');
    write_2(buf, u32::from(d.month));
    buf.push(b'-');
    write_2(buf, u32::from(d.day));
}

fn write_clock(buf: &mut Vec<u8>, h: u32, m: u32, s: u32, micros: u32, fsp: u8) {
    if h < 100 {
        write_2(buf, h);
    } else {
        write_int(buf, h);
    }
    buf.push(b':');
    write_2(buf, m);
    buf.push(b':');
    write_2(buf, s);
    if fsp > 0 {
        buf.push(b'.');
        let mut digits = [b'0'; 6];
        let mut rest = micros;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        buf.extend_from_slice(&digits[..usize::from(fsp.min(6))]);
    }
}

fn write_datetime(buf: &mut Vec<u8>, dt: &DateTime) {
    buf.push(b'"');
    write_date(buf, &dt.date);
    buf.push(b'T');
    write_clock(
        buf,
        u32::from(dt.hour),
        u32::from(dt.minute),
        u32::from(dt.second),
        dt.micros,
        dt.fsp,
    );
    buf.push(b'"');
}

fn write_timestamp(buf: &mut Vec<u8>, ts: &Timestamp) {
    buf.push(b'"');
    if ts.is_zero() {
        buf.extend_from_slice(b"0000-00-00T");
        write_clock(buf, 0, 0, 0, 0, ts.fsp);
    } else {
        let (date, secs_of_day) = civil_from_unix(ts.secs);
        write_date(buf, &date);
        buf.push(b'T');
        write_clock(
            buf,
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60,
            ts.micros,
            ts.fsp,
        );
    }
    buf.extend_from_slice(b"Z\"");
}

fn write_time(buf: &mut Vec<u8>, t: &Time) {
    buf.push(b'"');
    if t.negative {
        buf.push(b'-');
    }
    write_clock(
        buf,
        t.hours,
        u32::from(t.minutes),
        u32::from(t.seconds),
        t.micros,
        t.fsp,
    );
    buf.push(b'"');
}

/// Relaxed Extended JSON: ISO text for years 1970–9999, `$numberLong` otherwise.
fn write_bson_date(buf: &mut Vec<u8>, ms: i64) {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000) as u32;
    let (date, secs_of_day) = civil_from_unix(secs);
    if ms >= 0 && date.year <= 9999 && secs < 253_402_300_800 {
        buf.extend_from_slice(b"{\"$date\":\"");
        write_date(buf, &date);
        buf.push(b'T');
        write_clock(
            buf,
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60,
            millis * 1000,
            3,
        );
        buf.extend_from_slice(b"Z\"}");
    } else {
        buf.extend_from_slice(b"{\"$date\":{\"$numberLong\":\"");
        write_int(buf, ms);
        buf.extend_from_slice(b"\"}}");
    }
}

/// Days-to-civil (Howard Hinnant's algorithm) for a Unix time in seconds; the date's year is
/// clamped to 0..=9999 (callers only print in-range instants as dates).
fn civil_from_unix(secs: i64) -> (Date, u32) {
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = Date {
        year: year.clamp(0, 9999) as u16,
        month,
        day,
    };
    (date, secs_of_day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Namespace, Op, SourceKind, UpdateDescription};
    use crate::position::Position;
    use crate::value::{Decimal, Json};

    fn enc(v: &Value) -> String {
        let mut buf = Vec::new();
        write_value(&mut buf, v);
        String::from_utf8(buf).expect("utf8")
    }

    fn date(y: u16, m: u8, d: u8) -> Date {
        Date::new(y, m, d).expect("date")
    }

    #[test]
    fn fast_position_path_prints_what_display_prints() {
        for text in [
            "binlog:mysql-bin.000042:123456789+3",
            "binlog:odd\"name.000001:4+0",
            "mariadb-gtid:0-1-1041+1",
        ] {
            let position: Position = text.parse().expect("position");
            let mut buf = Vec::new();
            super::write_position(&mut buf, &position);
            let mut expected = Vec::new();
            super::write_escaped(&mut expected, &position.to_string());
            assert_eq!(String::from_utf8(buf), String::from_utf8(expected));
        }
    }

    #[test]
    fn integers_are_exact_signed_and_unsigned_and_bits() {
        assert_eq!(enc(&Value::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(enc(&Value::Int(-8_388_608)), "-8388608");
        assert_eq!(enc(&Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(enc(&Value::Int(2024)), "2024"); // YEAR
        assert_eq!(enc(&Value::UInt(0b1010_0101)), "165"); // BIT(8)
    }

    #[test]
    fn decimals_are_exact_strings() {
        let d = Decimal::parse("-12345678901234.123456").expect("decimal");
        assert_eq!(enc(&Value::Decimal(d)), "\"-12345678901234.123456\"");
        let d = Decimal::parse("19.90").expect("decimal");
        assert_eq!(enc(&Value::Decimal(d)), "\"19.90\"");
    }

    #[test]
    fn floats_print_the_shortest_form_that_reads_back() {
        assert_eq!(enc(&Value::Float(0.1)), "0.1");
        assert_eq!(enc(&Value::Double(0.1)), "0.1");
        assert_eq!(enc(&Value::Float(3.4028235e38)), "3.4028235e38");
        assert_eq!(enc(&Value::Double(-1.5e-300)), "-1.5e-300");
        let f: f32 = enc(&Value::Float(16_777_217.0)).parse().expect("f32");
        assert_eq!(f, 16_777_217.0_f32);
        assert_eq!(enc(&Value::Double(f64::NAN)), "{\"$numberDouble\":\"NaN\"}");
        assert_eq!(
            enc(&Value::Double(f64::NEG_INFINITY)),
            "{\"$numberDouble\":\"-Infinity\"}"
        );
    }

    #[test]
    fn strings_are_escaped_and_keep_unicode() {
        assert_eq!(enc(&Value::String("café".into())), "\"café\"");
        assert_eq!(
            enc(&Value::String("a\"b\\c\n\t\u{1}\u{7f}".into())),
            "\"a\\\"b\\\\c\\n\\t\\u0001\u{7f}\""
        );
        assert_eq!(enc(&Value::String("😀".into())), "\"😀\"");
    }

    #[test]
    fn binary_is_standard_base64_with_padding() {
        assert_eq!(enc(&Value::Bytes(vec![0xff, 0x00])), "\"/wA=\"");
        assert_eq!(enc(&Value::Bytes(vec![])), "\"\"");
        assert_eq!(enc(&Value::Bytes(b"abc".to_vec())), "\"YWJj\"");
        // GEOMETRY: base64 of the WKB.
        assert_eq!(enc(&Value::Bytes(vec![1, 1, 0, 0, 0])), "\"AQEAAAA=\"");
    }

    #[test]
    fn json_columns_print_as_json_values() {
        let j = Json::parse(r#"{"a": [1, "x"], "b": null}"#).expect("json");
        assert_eq!(enc(&Value::Json(j)), r#"{"a":[1,"x"],"b":null}"#);
        assert_eq!(
            enc(&Value::Json(Json::parse("\"s\"").expect("json"))),
            "\"s\""
        );
    }

    #[test]
    fn dates_keep_zero_dates_as_written() {
        assert_eq!(enc(&Value::Date(date(2024, 2, 29))), "\"2024-02-29\"");
        assert_eq!(enc(&Value::Date(date(0, 0, 0))), "\"0000-00-00\"");
        assert_eq!(enc(&Value::Date(date(2024, 0, 10))), "\"2024-00-10\"");
        assert_eq!(enc(&Value::Date(date(99, 1, 1))), "\"0099-01-01\"");
    }

    #[test]
    fn datetimes_print_exactly_fsp_fraction_digits_without_zone() {
        let dt = |micros, fsp| {
            Value::DateTime(DateTime::new(date(2024, 2, 29), 12, 34, 56, micros, fsp).expect("dt"))
        };
        assert_eq!(enc(&dt(123_456, 6)), "\"2024-02-29T12:34:56.123456\"");
        assert_eq!(enc(&dt(0, 0)), "\"2024-02-29T12:34:56\"");
        assert_eq!(enc(&dt(120_000, 2)), "\"2024-02-29T12:34:56.12\"");
        assert_eq!(enc(&dt(5, 6)), "\"2024-02-29T12:34:56.000005\"");
        let zero = DateTime::new(date(0, 0, 0), 0, 0, 0, 0, 0).expect("dt");
        assert_eq!(enc(&Value::DateTime(zero)), "\"0000-00-00T00:00:00\"");
    }

    #[test]
    fn timestamps_are_utc_with_z() {
        // 2024-02-29T12:34:56.789Z = 1709210096 s
        let ts = Timestamp::new(1_709_210_096, 789_000, 3).expect("ts");
        assert_eq!(enc(&Value::Timestamp(ts)), "\"2024-02-29T12:34:56.789Z\"");
        let ts = Timestamp::new(1, 0, 0).expect("ts");
        assert_eq!(enc(&Value::Timestamp(ts)), "\"1970-01-01T00:00:01Z\"");
        let ts = Timestamp::new(2_147_483_647, 999_999, 6).expect("ts");
        assert_eq!(
            enc(&Value::Timestamp(ts)),
            "\"2038-01-19T03:14:07.999999Z\""
        );
        let zero = Timestamp::new(0, 0, 2).expect("ts");
        assert_eq!(enc(&Value::Timestamp(zero)), "\"0000-00-00T00:00:00.00Z\"");
    }

    #[test]
    fn times_carry_sign_long_hours_and_fractions() {
        let t = |neg, h, m, s, us, fsp| Value::Time(Time::new(neg, h, m, s, us, fsp).expect("t"));
        assert_eq!(enc(&t(true, 838, 59, 59, 0, 0)), "\"-838:59:59\"");
        assert_eq!(enc(&t(false, 12, 34, 56, 0, 0)), "\"12:34:56\"");
        assert_eq!(enc(&t(true, 0, 0, 1, 500_000, 6)), "\"-00:00:01.500000\"");
        assert_eq!(enc(&t(false, 100, 0, 0, 0, 1)), "\"100:00:00.0\"");
    }

    #[test]
    fn enum_and_set_print_labels() {
        assert_eq!(enc(&Value::Enum("paid".into())), "\"paid\"");
        assert_eq!(enc(&Value::Enum(String::new())), "\"\"");
        assert_eq!(
            enc(&Value::Set(vec!["a".into(), "c".into()])),
            "[\"a\",\"c\"]"
        );
        assert_eq!(enc(&Value::Set(vec![])), "[]");
    }

    #[test]
    fn mariadb_text_types_and_null() {
        assert_eq!(enc(&Value::String("2001:db8::1".into())), "\"2001:db8::1\"");
        assert_eq!(
            enc(&Value::String(
                "123e4567-e89b-12d3-a456-426614174000".into()
            )),
            "\"123e4567-e89b-12d3-a456-426614174000\""
        );
        assert_eq!(enc(&Value::Null), "null");
    }

    #[test]
    fn bson_values_print_as_relaxed_extended_json() {
        let oid = [0x65, 0xe0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff];
        assert_eq!(
            enc(&Value::ObjectId(oid)),
            r#"{"$oid":"65e0000102030405060708ff"}"#
        );
        assert_eq!(
            enc(&Value::BsonDateTime(1_709_210_096_789)),
            r#"{"$date":"2024-02-29T12:34:56.789Z"}"#
        );
        assert_eq!(
            enc(&Value::BsonDateTime(-1)),
            r#"{"$date":{"$numberLong":"-1"}}"#
        );
        assert_eq!(
            enc(&Value::BsonDateTime(253_402_300_800_000)),
            r#"{"$date":{"$numberLong":"253402300800000"}}"#
        );
        assert_eq!(
            enc(&Value::Decimal128("1.10".into())),
            r#"{"$numberDecimal":"1.10"}"#
        );
        assert_eq!(
            enc(&Value::Binary {
                subtype: 4,
                bytes: vec![1, 2, 3]
            }),
            r#"{"$binary":{"base64":"AQID","subType":"04"}}"#
        );
        assert_eq!(
            enc(&Value::Regex {
                pattern: "^a\\d".into(),
                options: "i".into()
            }),
            r#"{"$regularExpression":{"pattern":"^a\\d","options":"i"}}"#
        );
        assert_eq!(
            enc(&Value::BsonTimestamp {
                t: 1_700_000_000,
                i: 3
            }),
            r#"{"$timestamp":{"t":1700000000,"i":3}}"#
        );
        assert_eq!(enc(&Value::MinKey), r#"{"$minKey":1}"#);
        assert_eq!(enc(&Value::MaxKey), r#"{"$maxKey":1}"#);
        assert_eq!(enc(&Value::Undefined), r#"{"$undefined":true}"#);
        assert_eq!(enc(&Value::Symbol("s".into())), r#"{"$symbol":"s"}"#);
        assert_eq!(enc(&Value::JavaScript("f()".into())), r#"{"$code":"f()"}"#);
        let scope: Row = [("x", Value::Int(1))].into_iter().collect();
        assert_eq!(
            enc(&Value::JavaScriptWithScope {
                code: "x".into(),
                scope
            }),
            r#"{"$code":"x","$scope":{"x":1}}"#
        );
        assert_eq!(
            enc(&Value::DbPointer {
                namespace: "db.c".into(),
                id: oid
            }),
            r#"{"$dbPointer":{"$ref":"db.c","$id":{"$oid":"65e0000102030405060708ff"}}}"#
        );
        let doc: Row = [(
            "a",
            Value::Array(vec![Value::Int(1), Value::Bool(true), Value::Double(1.5)]),
        )]
        .into_iter()
        .collect();
        assert_eq!(enc(&Value::Document(doc)), r#"{"a":[1,true,1.5]}"#);
    }

    fn sample_event() -> ChangeEvent {
        let row = |status: &str| -> Row {
            [
                ("id", Value::Int(7)),
                ("status", Value::String(status.into())),
                (
                    "total",
                    Value::Decimal(Decimal::parse("19.90").expect("decimal")),
                ),
            ]
            .into_iter()
            .collect()
        };
        ChangeEvent {
            source: SourceKind::MySql,
            namespace: Namespace::new("shop", "orders"),
            op: Op::Update,
            key: Some([("id", Value::Int(7))].into_iter().collect()),
            before: Some(row("new")),
            after: Some(row("paid")),
            update: None,
            position: "mariadb-gtid:0-1-1041+1"
                .parse::<Position>()
                .expect("position"),
            ts_ms: 1_732_272_000_000,
            txn: Some("0-1-1042".into()),
        }
    }

    #[test]
    fn event_matches_the_contract_example_field_for_field() {
        let json = sample_event().to_json();
        assert_eq!(
            json,
            concat!(
                r#"{"source":"mysql","db":"shop","table":"orders","op":"update","#,
                r#""key":{"id":7},"#,
                r#""before":{"id":7,"status":"new","total":"19.90"},"#,
                r#""after":{"id":7,"status":"paid","total":"19.90"},"#,
                r#""position":"mariadb-gtid:0-1-1041+1","ts_ms":1732272000000,"txn":"0-1-1042"}"#
            )
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed["position"], "mariadb-gtid:0-1-1041+1");
    }

    #[test]
    fn delete_without_key_prints_nulls_and_mongo_update_prints_description() {
        let mut ev = sample_event();
        ev.op = Op::Delete;
        ev.key = None;
        ev.after = None;
        ev.txn = None;
        let parsed: serde_json::Value = serde_json::from_str(&ev.to_json()).expect("json");
        assert!(parsed["key"].is_null() && parsed["after"].is_null() && parsed["txn"].is_null());
        assert!(parsed.get("update").is_none());

        ev.source = SourceKind::MongoDb;
        ev.op = Op::Update;
        ev.update = Some(UpdateDescription {
            set: [("a.b", Value::Int(1))].into_iter().collect(),
            unset: vec!["c".into()],
        });
        let json = ev.to_json();
        assert!(
            json.contains(r#""update":{"set":{"a.b":1},"unset":["c"]}"#),
            "{json}"
        );
        assert!(json.starts_with(r#"{"source":"mongodb""#));
    }

    #[test]
    fn civil_conversion_matches_known_dates() {
        assert_eq!(civil_from_unix(0), (date(1970, 1, 1), 0));
        assert_eq!(civil_from_unix(951_782_400), (date(2000, 2, 29), 0));
        assert_eq!(civil_from_unix(-86_400), (date(1969, 12, 31), 0));
        assert_eq!(
            civil_from_unix(253_402_300_799),
            (date(9999, 12, 31), 86_399)
        );
    }
}
