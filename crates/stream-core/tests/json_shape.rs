//! An independent oracle for the canonical event JSON (`docs/event-json.md`): what each
//! [`Value`] and each [`ChangeEvent`] must look like once a JSON parser has read the encoder's
//! output. The property tests use it, and so does the `event_json` fuzz target (which includes
//! this file by path), so both hold the encoder to one description of the contract.
//!
//! Objects are read with their fields in order and duplicates kept (`serde_json::Value` would
//! sort them and keep one), because the contract promises columns in table order.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use stream_core::{ChangeEvent, Date, Row, Value};

/// A parsed JSON value that keeps object fields in order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ordered {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<Ordered>),
    Obj(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Int(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Int(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(Ordered::Float(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::Str(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(Ordered::Obj(fields))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Ordered {
    /// Parses JSON text (one value, nothing after it).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))
    }

    fn obj(fields: &[(&str, Ordered)]) -> Self {
        Ordered::Obj(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    fn str(s: impl Into<String>) -> Self {
        Ordered::Str(s.into())
    }
}

/// Checks that `json`, read back by a JSON parser, is what the contract says `value` prints as.
pub(crate) fn check_value(value: &Value, json: &Ordered) -> Result<(), String> {
    let mismatch = || Err(format!("{value:?} printed as {json:?}"));
    let expect = |wanted: Ordered| {
        if &wanted == json {
            Ok(())
        } else {
            Err(format!(
                "{value:?} printed as {json:?}, expected {wanted:?}"
            ))
        }
    };
    match value {
        Value::Null => expect(Ordered::Null),
        Value::Bool(b) => expect(Ordered::Bool(*b)),
        Value::Int(i) => expect(Ordered::Int((*i).into())),
        Value::UInt(u) => expect(Ordered::Int((*u).into())),
        Value::Float(f) if f.is_finite() => match json {
            // Shortest form that reads back as the same f32 (read as f64, then narrowed).
            Ordered::Float(x) if *x as f32 == *f => Ok(()),
            Ordered::Int(x) if *x as f32 == *f => Ok(()),
            _ => mismatch(),
        },
        Value::Double(d) if d.is_finite() => match json {
            Ordered::Float(x) if x == d => Ok(()),
            Ordered::Int(x) if *x as f64 == *d => Ok(()),
            _ => mismatch(),
        },
        Value::Float(_) | Value::Double(_) => {
            let wide = match value {
                Value::Float(f) => f64::from(*f),
                Value::Double(d) => *d,
                _ => 0.0,
            };
            let text = if wide.is_nan() {
                "NaN"
            } else if wide > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            expect(Ordered::obj(&[("$numberDouble", Ordered::str(text))]))
        }
        Value::Decimal(d) => expect(Ordered::str(d.as_str())),
        Value::String(s) | Value::Enum(s) => expect(Ordered::str(s.as_str())),
        Value::Bytes(b) => expect(Ordered::str(STANDARD.encode(b))),
        Value::Json(j) => expect(Ordered::parse(j.as_str())?),
        Value::Date(d) => expect(Ordered::str(date_text(d))),
        Value::DateTime(dt) => expect(Ordered::str(format!(
            "{}T{}",
            date_text(&dt.date),
            clock_text(u32::from(dt.hour), dt.minute, dt.second, dt.micros, dt.fsp)
        ))),
        Value::Time(t) => expect(Ordered::str(format!(
            "{}{}",
            if t.negative { "-" } else { "" },
            clock_text(t.hours, t.minutes, t.seconds, t.micros, t.fsp)
        ))),
        Value::Timestamp(ts) => {
            let Ordered::Str(text) = json else {
                return mismatch();
            };
            let fraction = fraction_text(ts.micros, ts.fsp);
            if ts.secs == 0 && ts.micros == 0 {
                return expect(Ordered::str(format!("0000-00-00T00:00:00{fraction}Z")));
            }
            let body = text
                .strip_suffix('Z')
                .and_then(|t| t.strip_suffix(fraction.as_str()))
                .ok_or_else(|| format!("{value:?} printed as {text:?}"))?;
            // Instants from year 0 to 9999 print as that instant; others only need the form.
            match unix_seconds_of(body) {
                _ if !(-62_167_219_200..=253_402_300_799).contains(&ts.secs) => Ok(()),
                Some(secs) if secs == ts.secs => Ok(()),
                _ => mismatch(),
            }
        }
        Value::Set(labels) => expect(Ordered::Arr(
            labels.iter().map(|l| Ordered::str(l.as_str())).collect(),
        )),
        Value::ObjectId(id) => expect(Ordered::obj(&[("$oid", Ordered::str(hex(id)))])),
        Value::BsonDateTime(ms) => check_bson_date(*ms, json),
        Value::Decimal128(d) => expect(Ordered::obj(&[(
            "$numberDecimal",
            Ordered::str(d.as_str()),
        )])),
        Value::Binary { subtype, bytes } => expect(Ordered::obj(&[(
            "$binary",
            Ordered::obj(&[
                ("base64", Ordered::str(STANDARD.encode(bytes))),
                ("subType", Ordered::str(hex(&[*subtype]))),
            ]),
        )])),
        Value::Regex { pattern, options } => expect(Ordered::obj(&[(
            "$regularExpression",
            Ordered::obj(&[
                ("pattern", Ordered::str(pattern.as_str())),
                ("options", Ordered::str(options.as_str())),
            ]),
        )])),
        Value::BsonTimestamp { t, i } => expect(Ordered::obj(&[(
            "$timestamp",
            Ordered::obj(&[
                ("t", Ordered::Int((*t).into())),
                ("i", Ordered::Int((*i).into())),
            ]),
        )])),
        Value::Document(row) => check_row(row, json),
        Value::Array(items) => {
            let Ordered::Arr(got) = json else {
                return mismatch();
            };
            if got.len() != items.len() {
                return mismatch();
            }
            items
                .iter()
                .zip(got)
                .try_for_each(|(v, j)| check_value(v, j))
        }
        Value::MinKey => expect(Ordered::obj(&[("$minKey", Ordered::Int(1))])),
        Value::MaxKey => expect(Ordered::obj(&[("$maxKey", Ordered::Int(1))])),
        Value::Undefined => expect(Ordered::obj(&[("$undefined", Ordered::Bool(true))])),
        Value::Symbol(s) => expect(Ordered::obj(&[("$symbol", Ordered::str(s.as_str()))])),
        Value::JavaScript(code) => expect(Ordered::obj(&[("$code", Ordered::str(code.as_str()))])),
        Value::JavaScriptWithScope { code, scope } => match json {
            Ordered::Obj(fields) if fields.len() == 2 => {
                if fields[0] != ("$code".to_owned(), Ordered::str(code.as_str()))
                    || fields[1].0 != "$scope"
                {
                    return mismatch();
                }
                check_row(scope, &fields[1].1)
            }
            _ => mismatch(),
        },
        Value::DbPointer { namespace, id } => expect(Ordered::obj(&[(
            "$dbPointer",
            Ordered::obj(&[
                ("$ref", Ordered::str(namespace.as_str())),
                ("$id", Ordered::obj(&[("$oid", Ordered::str(hex(id)))])),
            ]),
        )])),
        other => Err(format!("the oracle does not know {other:?} yet")),
    }
}

/// Checks a row or document: an object with the row's fields, in order.
pub(crate) fn check_row(row: &Row, json: &Ordered) -> Result<(), String> {
    let Ordered::Obj(fields) = json else {
        return Err(format!("row {row:?} printed as {json:?}"));
    };
    if fields.len() != row.len() {
        return Err(format!("row {row:?} printed as {json:?}"));
    }
    for ((name, value), (key, got)) in row.iter().zip(fields) {
        if **name != *key {
            return Err(format!("field `{name}` printed as `{key}`"));
        }
        check_value(value, got)?;
    }
    Ok(())
}

/// Checks the JSON text of a whole event: every field of the contract, in order.
pub(crate) fn check_event(event: &ChangeEvent, text: &str) -> Result<(), String> {
    let json = Ordered::parse(text)?;
    let Ordered::Obj(fields) = &json else {
        return Err(format!("an event printed as {text}"));
    };
    let mut expected = vec![
        "source", "db", "table", "op", "key", "before", "after", "position", "ts_ms", "txn",
    ];
    if event.update.is_some() {
        expected.insert(7, "update");
    }
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    if names != expected {
        return Err(format!("fields {names:?}, expected {expected:?}"));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or(&Ordered::Null)
    };
    let same = |name: &str, wanted: Ordered| {
        if field(name) == &wanted {
            Ok(())
        } else {
            Err(format!(
                "`{name}` is {:?}, expected {wanted:?}",
                field(name)
            ))
        }
    };
    same("source", Ordered::str(event.source.as_str()))?;
    same("db", Ordered::str(&*event.namespace.db))?;
    same("table", Ordered::str(&*event.namespace.table))?;
    same("op", Ordered::str(event.op.as_str()))?;
    for (name, row) in [
        ("key", &event.key),
        ("before", &event.before),
        ("after", &event.after),
    ] {
        match row {
            Some(row) => check_row(row, field(name)).map_err(|e| format!("`{name}`: {e}"))?,
            None => same(name, Ordered::Null)?,
        }
    }
    if let Some(update) = &event.update {
        let Ordered::Obj(parts) = field("update") else {
            return Err(format!("`update` is {:?}", field("update")));
        };
        let [(set_name, set), (unset_name, unset)] = parts.as_slice() else {
            return Err(format!("`update` is {parts:?}"));
        };
        if set_name != "set" || unset_name != "unset" {
            return Err(format!("`update` is {parts:?}"));
        }
        check_row(&update.set, set).map_err(|e| format!("`update.set`: {e}"))?;
        let wanted = Ordered::Arr(
            update
                .unset
                .iter()
                .map(|f| Ordered::str(f.as_str()))
                .collect(),
        );
        if unset != &wanted {
            return Err(format!("`update.unset` is {unset:?}, expected {wanted:?}"));
        }
    }
    same("position", Ordered::str(event.position.to_string()))?;
    same("ts_ms", Ordered::Int(event.ts_ms.into()))?;
    same(
        "txn",
        event.txn.as_deref().map_or(Ordered::Null, Ordered::str),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn date_text(d: &Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)
}

fn fraction_text(micros: u32, fsp: u8) -> String {
    if fsp == 0 {
        return String::new();
    }
    let digits = format!("{micros:06}");
    format!(".{}", &digits[..usize::from(fsp.min(6))])
}

fn clock_text(hours: u32, minutes: u8, seconds: u8, micros: u32, fsp: u8) -> String {
    format!(
        "{hours:02}:{minutes:02}:{seconds:02}{}",
        fraction_text(micros, fsp)
    )
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS` (UTC), counted forward from the date: the
/// inverse of what the encoder computes, so the two are checked against each other.
fn unix_seconds_of(text: &str) -> Option<i64> {
    let (date, clock) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (c.next()??, c.next()??, c.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day > month_days[(m - 1) as usize] {
        return None;
    }
    // Days from 0000-01-01 to the date, then shifted to the Unix epoch (719528 days later).
    let years_before = y;
    let leap_days = if years_before > 0 {
        (years_before - 1) / 4 - (years_before - 1) / 100 + (years_before - 1) / 400 + 1
    } else {
        0
    };
    let days = years_before * 365
        + leap_days
        + month_days[..(m - 1) as usize].iter().sum::<i64>()
        + (day - 1)
        - 719_528;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// BSON dates: ISO text with milliseconds for 1970 to 9999, `$numberLong` otherwise.
fn check_bson_date(ms: i64, json: &Ordered) -> Result<(), String> {
    let long = Ordered::obj(&[(
        "$date",
        Ordered::obj(&[("$numberLong", Ordered::str(ms.to_string()))]),
    )]);
    if (0..253_402_300_800_000).contains(&ms) {
        let Ordered::Obj(fields) = json else {
            return Err(format!("BSON date {ms} printed as {json:?}"));
        };
        let [(key, Ordered::Str(text))] = fields.as_slice() else {
            return Err(format!("BSON date {ms} printed as {json:?}"));
        };
        let secs = text
            .strip_suffix('Z')
            .and_then(|t| t.rsplit_once('.'))
            .filter(|(_, millis)| millis.len() == 3)
            .and_then(|(body, millis)| Some((unix_seconds_of(body)?, millis.parse::<i64>().ok()?)));
        match secs {
            Some((s, millis)) if key == "$date" && s * 1000 + millis == ms => Ok(()),
            _ => Err(format!("BSON date {ms} printed as {json:?}")),
        }
    } else if *json == long {
        Ok(())
    } else {
        Err(format!(
            "BSON date {ms} printed as {json:?}, expected {long:?}"
        ))
    }
}

#[test]
fn the_oracle_counts_days_like_the_calendar() {
    assert_eq!(unix_seconds_of("1970-01-01T00:00:00"), Some(0));
    assert_eq!(unix_seconds_of("2000-03-01T00:00:00"), Some(951_868_800));
    assert_eq!(unix_seconds_of("2024-02-29T12:34:56"), Some(1_709_210_096));
    assert_eq!(
        unix_seconds_of("0000-01-01T00:00:00"),
        Some(-62_167_219_200)
    );
    assert_eq!(
        unix_seconds_of("9999-12-31T23:59:59"),
        Some(253_402_300_799)
    );
    assert_eq!(unix_seconds_of("2023-02-29T00:00:00"), None);
}
