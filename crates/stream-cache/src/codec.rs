//! A lossless, tagged JSON encoding of rows, values and queries.
//!
//! The contract JSON (`docs/event-json.md`) is made for readers and merges kinds (`Int(1)` and
//! `UInt(1)` both print `1`, a decimal prints as a string, NaN as an extended-JSON object), so
//! it cannot be read back into the same [`Value`]. This encoding can: every value is `null` or
//! a one-field object naming its kind (`{"i":5}`, `{"dec":"19.90"}`), floats travel as their
//! bit patterns, bytes as hex, rows as arrays of `[name, value]` pairs (order and duplicate
//! names kept). It is private to this crate: rows stored in the Redis tier, and the keys of
//! cached query results.

use serde_json::{Value as J, json};
use stream_core::{Date, DateTime, Decimal, Filter, Json, Query, Row, Time, Timestamp, Value};

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(format!("invalid hex digit in `{s}`")),
    };
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex `{s}`"));
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Encodes a row; `None` if it holds a value kind this crate does not know yet.
pub(crate) fn encode_row(row: &Row) -> Option<J> {
    row.iter()
        .map(|(name, value)| Some(json!([&**name, encode_value(value)?])))
        .collect::<Option<Vec<J>>>()
        .map(J::Array)
}

/// Encodes one value; `None` for a value kind this crate does not know yet.
pub(crate) fn encode_value(value: &Value) -> Option<J> {
    let tagged = |tag: &str, payload: J| {
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(tag.to_owned(), payload);
        J::Object(map)
    };
    Some(match value {
        Value::Null => J::Null,
        Value::Bool(b) => tagged("b", J::Bool(*b)),
        Value::Int(i) => tagged("i", json!(i)),
        Value::UInt(u) => tagged("u", json!(u)),
        Value::Float(f) => tagged("f", json!(f.to_bits())),
        Value::Double(d) => tagged("d", json!(d.to_bits())),
        Value::Decimal(d) => tagged("dec", json!(d.as_str())),
        Value::String(s) => tagged("s", json!(s)),
        Value::Bytes(b) => tagged("x", json!(hex(b))),
        Value::Json(j) => tagged("j", json!(j.as_str())),
        Value::Date(d) => tagged("date", json!([d.year, d.month, d.day])),
        Value::DateTime(dt) => tagged(
            "dt",
            json!([
                dt.date.year,
                dt.date.month,
                dt.date.day,
                dt.hour,
                dt.minute,
                dt.second,
                dt.micros,
                dt.fsp
            ]),
        ),
        Value::Timestamp(ts) => tagged("ts", json!([ts.secs, ts.micros, ts.fsp])),
        Value::Time(t) => tagged(
            "tm",
            json!([t.negative, t.hours, t.minutes, t.seconds, t.micros, t.fsp]),
        ),
        Value::Enum(s) => tagged("e", json!(s)),
        Value::Set(labels) => tagged("set", json!(labels)),
        Value::ObjectId(id) => tagged("oid", json!(hex(id))),
        Value::BsonDateTime(ms) => tagged("bdt", json!(ms)),
        Value::Decimal128(s) => tagged("d128", json!(s)),
        Value::Binary { subtype, bytes } => tagged("bin", json!([subtype, hex(bytes)])),
        Value::Regex { pattern, options } => tagged("re", json!([pattern, options])),
        Value::BsonTimestamp { t, i } => tagged("bts", json!([t, i])),
        Value::Document(row) => tagged("doc", encode_row(row)?),
        Value::Array(items) => tagged(
            "arr",
            J::Array(items.iter().map(encode_value).collect::<Option<_>>()?),
        ),
        Value::MinKey => json!("minkey"),
        Value::MaxKey => json!("maxkey"),
        Value::Undefined => json!("undefined"),
        Value::Symbol(s) => tagged("sym", json!(s)),
        Value::JavaScript(s) => tagged("js", json!(s)),
        Value::JavaScriptWithScope { code, scope } => {
            tagged("jsws", json!([code, encode_row(scope)?]))
        }
        Value::DbPointer { namespace, id } => tagged("dbp", json!([namespace, hex(id)])),
        _ => return None,
    })
}

/// Decodes what [`encode_row`] wrote.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn decode_row(j: &J) -> Result<Row, String> {
    let fields = j.as_array().ok_or("a row must be an array of pairs")?;
    let mut row = Row::with_capacity(fields.len());
    for field in fields {
        match field.as_array().map(Vec::as_slice) {
            Some([J::String(name), value]) => row.push(name.as_str(), decode_value(value)?),
            _ => return Err(format!("a row field must be [name, value], not {field}")),
        }
    }
    Ok(row)
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn num<T: TryFrom<u64> + TryFrom<i64>>(j: &J) -> Result<T, String> {
    let out = match (j.as_u64(), j.as_i64()) {
        (Some(u), _) => T::try_from(u).ok(),
        (None, Some(i)) => T::try_from(i).ok(),
        _ => None,
    };
    out.ok_or_else(|| format!("expected an integer in range, not {j}"))
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn text(j: &J) -> Result<String, String> {
    j.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("expected a string, not {j}"))
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn array<const N: usize>(j: &J) -> Result<&[J; N], String> {
    j.as_array()
        .and_then(|a| <&[J; N]>::try_from(a.as_slice()).ok())
        .ok_or_else(|| format!("expected an array of {N}, not {j}"))
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn oid(j: &J) -> Result<[u8; 12], String> {
    <[u8; 12]>::try_from(unhex(&text(j)?)?).map_err(|_| format!("an ObjectId has 12 bytes: {j}"))
}

/// Decodes what [`encode_value`] wrote.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn decode_value(j: &J) -> Result<Value, String> {
    let (tag, p) = match j {
        J::Null => return Ok(Value::Null),
        J::String(s) => {
            return match s.as_str() {
                "minkey" => Ok(Value::MinKey),
                "maxkey" => Ok(Value::MaxKey),
                "undefined" => Ok(Value::Undefined),
                other => Err(format!("unknown value `{other}`")),
            };
        }
        J::Object(map) if map.len() == 1 => map.iter().next().ok_or("empty object")?,
        other => return Err(format!("not a tagged value: {other}")),
    };
    Ok(match tag.as_str() {
        "b" => Value::Bool(p.as_bool().ok_or("expected a boolean")?),
        "i" => Value::Int(num(p)?),
        "u" => Value::UInt(num(p)?),
        "f" => Value::Float(f32::from_bits(num(p)?)),
        "d" => Value::Double(f64::from_bits(num(p)?)),
        "dec" => Value::Decimal(Decimal::parse(&text(p)?).map_err(|e| e.to_string())?),
        "s" => Value::String(text(p)?),
        "x" => Value::Bytes(unhex(&text(p)?)?),
        "j" => {
            let compact = text(p)?;
            Json::parse(&compact).map_err(|e| e.to_string())?;
            Value::Json(Json::from_compact_unchecked(compact))
        }
        "date" => {
            let [y, m, d] = array(p)?;
            Value::Date(Date {
                year: num(y)?,
                month: num(m)?,
                day: num(d)?,
            })
        }
        "dt" => {
            let [y, mo, d, h, mi, s, us, fsp] = array(p)?;
            Value::DateTime(DateTime {
                date: Date {
                    year: num(y)?,
                    month: num(mo)?,
                    day: num(d)?,
                },
                hour: num(h)?,
                minute: num(mi)?,
                second: num(s)?,
                micros: num(us)?,
                fsp: num(fsp)?,
            })
        }
        "ts" => {
            let [secs, us, fsp] = array(p)?;
            Value::Timestamp(Timestamp {
                secs: num(secs)?,
                micros: num(us)?,
                fsp: num(fsp)?,
            })
        }
        "tm" => {
            let [neg, h, m, s, us, fsp] = array(p)?;
            Value::Time(Time {
                negative: neg.as_bool().ok_or("expected the sign as a boolean")?,
                hours: num(h)?,
                minutes: num(m)?,
                seconds: num(s)?,
                micros: num(us)?,
                fsp: num(fsp)?,
            })
        }
        "e" => Value::Enum(text(p)?),
        "set" => Value::Set(
            p.as_array()
                .ok_or("expected an array of labels")?
                .iter()
                .map(text)
                .collect::<Result<_, _>>()?,
        ),
        "oid" => Value::ObjectId(oid(p)?),
        "bdt" => Value::BsonDateTime(num(p)?),
        "d128" => Value::Decimal128(text(p)?),
        "bin" => {
            let [subtype, bytes] = array(p)?;
            Value::Binary {
                subtype: num(subtype)?,
                bytes: unhex(&text(bytes)?)?,
            }
        }
        "re" => {
            let [pattern, options] = array(p)?;
            Value::Regex {
                pattern: text(pattern)?,
                options: text(options)?,
            }
        }
        "bts" => {
            let [t, i] = array(p)?;
            Value::BsonTimestamp {
                t: num(t)?,
                i: num(i)?,
            }
        }
        "doc" => Value::Document(decode_row(p)?),
        "arr" => Value::Array(
            p.as_array()
                .ok_or("expected an array")?
                .iter()
                .map(decode_value)
                .collect::<Result<_, _>>()?,
        ),
        "sym" => Value::Symbol(text(p)?),
        "js" => Value::JavaScript(text(p)?),
        "jsws" => {
            let [code, scope] = array(p)?;
            Value::JavaScriptWithScope {
                code: text(code)?,
                scope: decode_row(scope)?,
            }
        }
        "dbp" => {
            let [namespace, id] = array(p)?;
            Value::DbPointer {
                namespace: text(namespace)?,
                id: oid(id)?,
            }
        }
        other => return Err(format!("unknown value tag `{other}`")),
    })
}

fn encode_filter(filter: &Filter) -> Option<J> {
    let field = |op: &str, name: &str, v: &Value| Some(json!([op, name, encode_value(v)?]));
    let many = |op: &str, fs: &[Filter]| {
        let fs = fs.iter().map(encode_filter).collect::<Option<Vec<_>>>()?;
        Some(json!([op, fs]))
    };
    match filter {
        Filter::All => Some(json!(["all"])),
        Filter::Eq(n, v) => field("eq", n, v),
        Filter::Ne(n, v) => field("ne", n, v),
        Filter::Lt(n, v) => field("lt", n, v),
        Filter::Lte(n, v) => field("lte", n, v),
        Filter::Gt(n, v) => field("gt", n, v),
        Filter::Gte(n, v) => field("gte", n, v),
        Filter::In(n, vs) => {
            let vs = vs.iter().map(encode_value).collect::<Option<Vec<_>>>()?;
            Some(json!(["in", n, vs]))
        }
        Filter::IsNull(n) => Some(json!(["null", n])),
        Filter::And(fs) => many("and", fs),
        Filter::Or(fs) => many("or", fs),
        Filter::Not(f) => Some(json!(["not", encode_filter(f)?])),
        _ => None,
    }
}

/// The canonical text of a query; `None` if it uses a filter this crate does not know yet.
pub(crate) fn encode_query(query: &Query) -> Option<String> {
    let q = json!([encode_filter(&query.filter)?, query.order_by, query.limit]);
    Some(q.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) {
        let encoded = encode_value(&v).expect("known kind");
        let text = encoded.to_string();
        let parsed: J = serde_json::from_str(&text).expect("valid JSON");
        let back = decode_value(&parsed).unwrap_or_else(|e| panic!("{text}: {e}"));
        // Compare through Debug as well, so NaN payloads and -0.0 count.
        assert_eq!(format!("{back:?}"), format!("{v:?}"), "{text}");
        if !matches!(v, Value::Float(_) | Value::Double(_)) {
            assert_eq!(back, v, "{text}");
        }
    }

    fn every_value() -> Vec<Value> {
        let date = Date::new(2024, 2, 29).expect("date");
        let scope: Row = [("x", Value::Int(1))].into_iter().collect();
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::UInt(u64::MAX),
            Value::Float(0.1),
            Value::Float(f32::NAN),
            Value::Float(-0.0),
            Value::Double(f64::INFINITY),
            Value::Double(f64::from_bits(0x7ff8_0000_0000_0001)),
            Value::Double(-1.5e-300),
            Value::Decimal(Decimal::parse("-12345678901234.123456").expect("decimal")),
            Value::String("café \"😀\"\n\u{1}".into()),
            Value::Bytes(vec![0, 0xff, 0x10]),
            Value::Bytes(vec![]),
            Value::Json(Json::parse(r#"{"b":[1,"x"],"a":null}"#).expect("json")),
            Value::Date(Date {
                year: 0,
                month: 0,
                day: 0,
            }),
            Value::DateTime(DateTime::new(date, 12, 34, 56, 120_000, 2).expect("datetime")),
            Value::Timestamp(Timestamp::new(-1, 999_999, 6).expect("timestamp")),
            Value::Time(Time::new(true, 838, 59, 59, 5, 6).expect("time")),
            Value::Enum(String::new()),
            Value::Set(vec!["a".into(), "c".into()]),
            Value::ObjectId([0x65, 0xe0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff]),
            Value::BsonDateTime(-62_135_596_800_000),
            Value::Decimal128("1.10E+3".into()),
            Value::Binary {
                subtype: 4,
                bytes: vec![1, 2, 3],
            },
            Value::Regex {
                pattern: "^a\\d".into(),
                options: "im".into(),
            },
            Value::BsonTimestamp { t: u32::MAX, i: 3 },
            Value::Document(
                [("a", Value::Int(1)), ("a", Value::String("dup".into()))]
                    .into_iter()
                    .collect(),
            ),
            Value::Array(vec![Value::Int(1), Value::Null, Value::Array(vec![])]),
            Value::MinKey,
            Value::MaxKey,
            Value::Undefined,
            Value::Symbol("sym".into()),
            Value::JavaScript("f()".into()),
            Value::JavaScriptWithScope {
                code: "x".into(),
                scope,
            },
            Value::DbPointer {
                namespace: "db.c".into(),
                id: [9; 12],
            },
        ]
    }

    #[test]
    fn every_value_kind_round_trips_exactly() {
        for v in every_value() {
            round_trip(v);
        }
    }

    #[test]
    fn kinds_that_print_alike_in_the_contract_stay_apart() {
        let a = encode_value(&Value::Int(1)).expect("int");
        let b = encode_value(&Value::UInt(1)).expect("uint");
        let c = encode_value(&Value::Enum("x".into())).expect("enum");
        let d = encode_value(&Value::String("x".into())).expect("string");
        assert_ne!(a, b);
        assert_ne!(c, d);
    }

    #[test]
    fn rows_keep_field_order_and_every_value() {
        let row: Row = every_value()
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("f{}", 40 - i), v))
            .collect();
        let text = encode_row(&row).expect("known kinds").to_string();
        let back = decode_row(&serde_json::from_str(&text).expect("json")).expect("decode");
        assert_eq!(format!("{back:?}"), format!("{row:?}"));
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        for bad in [
            r#"{"i":"x"}"#,
            r#"{"u":-1}"#,
            r#"{"date":[1,2]}"#,
            r#"{"oid":"00"}"#,
            r#"{"x":"abc"}"#,
            r#"{"dec":"1e5"}"#,
            r#"{"j":"{"}"#,
            r#"{"zz":1}"#,
            r#"{"i":1,"u":1}"#,
            r#""maybe""#,
            "[]",
        ] {
            let j: J = serde_json::from_str(bad).expect("json");
            assert!(decode_value(&j).is_err(), "{bad}");
        }
        assert!(decode_row(&serde_json::from_str("[[1,null]]").expect("json")).is_err());
    }
}
