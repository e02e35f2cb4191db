//! [`Value`]/[`Row`] to BSON.

use std::str::FromStr as _;

use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{
    Binary, Bson, DateTime as BsonDateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex,
    Timestamp as BsonTimestamp,
};
use stream_core::{Date, Row, Value};

use super::{ConvertError, MAX_DEPTH, deeper, show, sorted};

/// Converts a value to BSON, for writing.
///
/// | value | BSON |
/// | --- | --- |
/// | `Int` | int32 when it fits, else int64 |
/// | `UInt` | int64 up to `i64::MAX`, else an error |
/// | `Float`, `Double` | double |
/// | `Decimal` (MySQL DECIMAL) | Decimal128 parsed from the text (exact, else an error) |
/// | `String`, `Enum` | string |
/// | `Set` | array of strings |
/// | `Bytes` | binary, generic subtype |
/// | `Json` | the JSON as BSON: objects as documents in key order, integers as int32/int64, other numbers as double |
/// | `Date`, `DateTime`, `Timestamp` | datetime: UTC (a DATETIME is read as UTC), milliseconds; finer fractions are truncated; zero dates are an error |
/// | `Time` | an error: BSON has no time-of-day type |
/// | every BSON variant | the same BSON type |
///
/// Documents and arrays nested deeper than [`MAX_DEPTH`] are [`ConvertError::TooDeep`].
pub fn value_to_bson(v: &Value) -> Result<Bson, ConvertError> {
    match v {
        // A document on its own is a top-level document.
        Value::Document(row) => document_at(row, 0).map(Bson::Document),
        other => bson_at(other, 0),
    }
}

/// A value inside a document or array whose nesting level is `nesting`. Only documents and
/// arrays recurse here; everything else is converted in functions of its own, so that each
/// level of a deep document costs a small stack frame.
fn bson_at(v: &Value, nesting: usize) -> Result<Bson, ConvertError> {
    match v {
        Value::Document(row) => document_at(row, deeper(nesting, MAX_DEPTH)?).map(Bson::Document),
        Value::Array(items) => array_at(items, deeper(nesting, MAX_DEPTH)?).map(Bson::Array),
        Value::Set(_) | Value::Json(_) | Value::JavaScriptWithScope { .. } => {
            other_nested_to_bson(v, nesting)
        }
        leaf => leaf_to_bson(leaf),
    }
}

/// The items of an array whose own nesting level is `nesting`.
fn array_at(items: &[Value], nesting: usize) -> Result<Vec<Bson>, ConvertError> {
    let mut values = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        values.push(bson_at(item, nesting).map_err(|e| e.within(&i.to_string()))?);
    }
    Ok(values)
}

/// The values that nest without being a document or an array of values.
fn other_nested_to_bson(v: &Value, nesting: usize) -> Result<Bson, ConvertError> {
    Ok(match v {
        Value::Set(labels) => {
            deeper(nesting, MAX_DEPTH)?;
            Bson::Array(labels.iter().cloned().map(Bson::String).collect())
        }
        Value::Json(j) => json_to_bson(j.as_str(), nesting)?,
        Value::JavaScriptWithScope { code, scope } => {
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: code.clone(),
                scope: document_at(scope, deeper(nesting, MAX_DEPTH)?)
                    .map_err(|e| e.within("$scope"))?,
            })
        }
        leaf => leaf_to_bson(leaf)?,
    })
}

/// A value that holds no other values.
fn leaf_to_bson(v: &Value) -> Result<Bson, ConvertError> {
    Ok(match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(*i),
        },
        Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => match i32::try_from(i) {
                Ok(small) => Bson::Int32(small),
                Err(_) => Bson::Int64(i),
            },
            Err(_) => {
                return Err(ConvertError::IntegerOutOfRange {
                    field: String::new(),
                    value: *u,
                });
            }
        },
        Value::Float(f) => Bson::Double(f64::from(*f)),
        Value::Double(d) => Bson::Double(*d),
        Value::Decimal(d) => Bson::Decimal128(decimal128(d.as_str())?),
        Value::Decimal128(d) => Bson::Decimal128(decimal128(d)?),
        Value::String(s) | Value::Enum(s) => Bson::String(s.clone()),
        Value::Symbol(s) => Bson::Symbol(s.clone()),
        Value::Bytes(bytes) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: bytes.clone(),
        }),
        Value::Date(d) => {
            let days = days_of(d).map_err(|reason| temporal("date", v, reason))?;
            Bson::DateTime(BsonDateTime::from_millis(days * MILLIS_PER_DAY))
        }
        Value::DateTime(dt) => {
            let days = days_of(&dt.date).map_err(|reason| temporal("datetime", v, reason))?;
            let secs_of_day =
                (i64::from(dt.hour) * 60 + i64::from(dt.minute)) * 60 + i64::from(dt.second);
            let ms = days * MILLIS_PER_DAY + secs_of_day * 1000 + i64::from(dt.micros / 1000);
            Bson::DateTime(BsonDateTime::from_millis(ms))
        }
        Value::Timestamp(ts) => {
            if ts.is_zero() {
                return Err(temporal(
                    "timestamp",
                    v,
                    "MySQL's zero timestamp is not an instant",
                ));
            }
            let ms = ts
                .secs
                .checked_mul(1000)
                .and_then(|ms| ms.checked_add(i64::from(ts.micros / 1000)))
                .ok_or_else(|| temporal("timestamp", v, "out of the 64-bit millisecond range"))?;
            Bson::DateTime(BsonDateTime::from_millis(ms))
        }
        Value::Time(_) => {
            return Err(ConvertError::Unsupported {
                field: String::new(),
                kind: "time",
                value: show(v),
            });
        }
        Value::ObjectId(id) => Bson::ObjectId(ObjectId::from_bytes(*id)),
        Value::BsonDateTime(ms) => Bson::DateTime(BsonDateTime::from_millis(*ms)),
        Value::Binary { subtype, bytes } => Bson::Binary(Binary {
            subtype: BinarySubtype::from(*subtype),
            bytes: bytes.clone(),
        }),
        Value::Regex { pattern, options } => {
            if pattern.contains('\0') || options.contains('\0') {
                return Err(invalid("a regular expression cannot contain a NUL byte"));
            }
            Bson::RegularExpression(Regex {
                pattern: pattern.clone(),
                options: sorted(options),
            })
        }
        Value::BsonTimestamp { t, i } => Bson::Timestamp(BsonTimestamp {
            time: *t,
            increment: *i,
        }),
        Value::MinKey => Bson::MinKey,
        Value::MaxKey => Bson::MaxKey,
        Value::Undefined => Bson::Undefined,
        Value::JavaScript(code) => Bson::JavaScriptCode(code.clone()),
        Value::DbPointer { namespace, id } => db_pointer_to_bson(namespace, id)?,
        other => {
            return Err(ConvertError::Invalid {
                field: String::new(),
                reason: format!("no BSON conversion for {}", show(other)),
            });
        }
    })
}

/// Converts a row to a document, keeping the field order. Errors name the field at fault by
/// its dotted path.
pub fn row_to_document(r: &Row) -> Result<Document, ConvertError> {
    document_at(r, 0)
}

/// The fields of a row whose own nesting level is `nesting` (0 for the top level).
fn document_at(r: &Row, nesting: usize) -> Result<Document, ConvertError> {
    let mut doc = Document::new();
    for (name, value) in r.iter() {
        check_name(&doc, name)?;
        let bson = bson_at(value, nesting).map_err(|e| e.within(name))?;
        doc.insert(name.to_string(), bson);
    }
    Ok(doc)
}

/// A field name BSON can hold, not yet in `doc`.
fn check_name(doc: &Document, name: &str) -> Result<(), ConvertError> {
    if name.contains('\0') {
        return Err(ConvertError::Invalid {
            field: name.escape_default().to_string(),
            reason: "a field name cannot contain a NUL byte".into(),
        });
    }
    if doc.contains_key(name) {
        return Err(ConvertError::Invalid {
            field: name.to_owned(),
            reason: "the field appears more than once".into(),
        });
    }
    Ok(())
}

fn invalid(reason: &str) -> ConvertError {
    ConvertError::Invalid {
        field: String::new(),
        reason: reason.to_owned(),
    }
}

fn temporal(kind: &'static str, v: &Value, reason: &'static str) -> ConvertError {
    ConvertError::Temporal {
        field: String::new(),
        kind,
        value: show(v),
        reason,
    }
}

fn decimal128(text: &str) -> Result<Decimal128, ConvertError> {
    Decimal128::from_str(text).map_err(|e| ConvertError::Decimal {
        field: String::new(),
        value: text.to_owned(),
        reason: e.to_string(),
    })
}

/// `bson` gives DBPointer no public constructor; its Extended JSON parser builds one.
fn db_pointer_to_bson(namespace: &str, id: &[u8; 12]) -> Result<Bson, ConvertError> {
    let json = serde_json::json!({
        "$dbPointer": {
            "$ref": namespace,
            "$id": { "$oid": ObjectId::from_bytes(*id).to_hex() },
        }
    });
    match Bson::try_from(json) {
        Ok(b @ Bson::DbPointer(_)) => Ok(b),
        Ok(other) => Err(invalid(&format!(
            "DBPointer built as BSON {:?}",
            other.element_type()
        ))),
        Err(e) => Err(invalid(&format!("cannot build a DBPointer: {e}"))),
    }
}

/// Plain JSON (not Extended JSON: `{"$oid": ...}` stays a document) to BSON, keys in order.
fn json_to_bson(text: &str, nesting: usize) -> Result<Bson, ConvertError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| ConvertError::Json {
        field: String::new(),
        reason: e.to_string(),
    })?;
    plain_json(&json, nesting)
}

fn plain_json(j: &serde_json::Value, nesting: usize) -> Result<Bson, ConvertError> {
    Ok(match j {
        serde_json::Value::Null => Bson::Null,
        serde_json::Value::Bool(b) => Bson::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(small) => Bson::Int32(small),
                Err(_) => Bson::Int64(i),
            },
            // u64 above i64::MAX and non-integers.
            None => Bson::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Bson::String(s.clone()),
        serde_json::Value::Array(items) => {
            let inner = deeper(nesting, MAX_DEPTH)?;
            Bson::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| plain_json(item, inner).map_err(|e| e.within(&i.to_string())))
                    .collect::<Result<_, _>>()?,
            )
        }
        serde_json::Value::Object(map) => {
            let inner = deeper(nesting, MAX_DEPTH)?;
            let mut doc = Document::new();
            for (name, value) in map {
                if name.contains('\0') {
                    return Err(ConvertError::Invalid {
                        field: name.escape_default().to_string(),
                        reason: "a field name cannot contain a NUL byte".into(),
                    });
                }
                doc.insert(
                    name.clone(),
                    plain_json(value, inner).map_err(|e| e.within(name))?,
                );
            }
            Bson::Document(doc)
        }
    })
}

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a real calendar date; zero and impossible dates are errors.
fn days_of(d: &Date) -> Result<i64, &'static str> {
    if d.month == 0 || d.day == 0 {
        return Err("zero dates are not instants");
    }
    let (y, m, day) = (i64::from(d.year), i64::from(d.month), i64::from(d.day));
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if m > 12 || day > month_days {
        return Err("the day does not exist in the calendar");
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok(era * 146_097 + doe - 719_468)
}
