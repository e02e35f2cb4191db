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
use stream_core::{Filter, Query, Row, Value};

// Only the Redis tier reads rows back; query keys are never decoded.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) mod decode;

use stream_core::hex::encode as hex;

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
    use super::decode::{decode_row, decode_value};
    use super::*;
    use stream_core::{Date, DateTime, Decimal, Json, Time, Timestamp};

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
