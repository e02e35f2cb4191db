//! Conversions between BSON and the portable [`Value`]/[`Row`] model of `stream-core`.
//!
//! Reading ([`value_from_bson`], [`document_to_row`]) is total: every BSON type has a [`Value`]
//! variant of its own, so nothing is lost. Writing ([`value_to_bson`], [`row_to_document`]) maps
//! every BSON variant back to exactly the BSON it came from (except that an int64 which fits in
//! 32 bits is written as an int32), and maps the MySQL variants to their nearest BSON type; what
//! BSON cannot hold is a [`ConvertError`] naming the field and the value.

use std::str::FromStr as _;

use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{
    Binary, Bson, DateTime as BsonDateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex,
    Timestamp as BsonTimestamp,
};
use stream_core::{Date, Row, Value};

/// Why a [`Value`] or [`Row`] cannot be written as BSON.
///
/// Every variant carries the dotted path of the field at fault (`a.b`, `tags.2` inside arrays);
/// it is empty when [`value_to_bson`] fails on a top-level value, and [`row_to_document`] fills
/// it in. The message starts with ``field `path`: `` when the path is known.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// An unsigned integer above `i64::MAX`: BSON has no unsigned 64-bit type.
    #[error("{at}unsigned integer {value} is above the BSON int64 maximum {max}", at = at(.field), max = i64::MAX)]
    IntegerOutOfRange {
        /// Dotted path of the field.
        field: String,
        /// The value.
        value: u64,
    },
    /// A value of a kind BSON has no type for (MySQL `TIME`).
    #[error("{at}{kind} value {value} has no BSON equivalent", at = at(.field))]
    Unsupported {
        /// Dotted path of the field.
        field: String,
        /// The kind of value (`time`).
        kind: &'static str,
        /// The value, as its JSON encoding.
        value: String,
    },
    /// A date or time a BSON datetime cannot hold: zero dates, days past the month's end, or
    /// instants out of the 64-bit millisecond range.
    #[error("{at}{kind} {value} cannot be stored as a BSON datetime: {reason}", at = at(.field))]
    Temporal {
        /// Dotted path of the field.
        field: String,
        /// `date`, `datetime` or `timestamp`.
        kind: &'static str,
        /// The value, as its JSON encoding.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Decimal text that a Decimal128 cannot hold exactly (more than 34 significant digits, or
    /// an exponent out of range).
    #[error("{at}decimal {value} does not fit a BSON Decimal128: {reason}", at = at(.field))]
    Decimal {
        /// Dotted path of the field.
        field: String,
        /// The decimal text.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// A JSON document that is not valid JSON.
    #[error("{at}JSON document cannot be converted to BSON: {reason}", at = at(.field))]
    Json {
        /// Dotted path of the field.
        field: String,
        /// The parser's reason.
        reason: String,
    },
    /// Something BSON cannot encode: a field name appearing twice, NUL bytes in field names or
    /// regular expressions.
    #[error("{at}{reason}", at = at(.field))]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// The message prefix naming a field, or nothing for a top-level value.
fn at(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field `{field}`: ")
    }
}

impl ConvertError {
    /// The dotted path of the field at fault; empty for a top-level value.
    pub fn field(&self) -> &str {
        match self {
            ConvertError::IntegerOutOfRange { field, .. }
            | ConvertError::Unsupported { field, .. }
            | ConvertError::Temporal { field, .. }
            | ConvertError::Decimal { field, .. }
            | ConvertError::Json { field, .. }
            | ConvertError::Invalid { field, .. } => field,
        }
    }

    /// Prefixes the path with the name of the enclosing field or array index.
    fn within(mut self, name: &str) -> Self {
        let field = match &mut self {
            ConvertError::IntegerOutOfRange { field, .. }
            | ConvertError::Unsupported { field, .. }
            | ConvertError::Temporal { field, .. }
            | ConvertError::Decimal { field, .. }
            | ConvertError::Json { field, .. }
            | ConvertError::Invalid { field, .. } => field,
        };
        *field = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{name}.{field}")
        };
        self
    }
}

/// The value as its canonical JSON encoding, for error messages.
fn show(v: &Value) -> String {
    let mut buf = Vec::new();
    stream_core::json::write_value(&mut buf, v);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Converts one BSON value; total, every BSON type has its own [`Value`] variant.
///
/// Int32 and Int64 both become [`Value::Int`]; regular expression options are sorted
/// alphabetically; Decimal128 keeps its canonical string.
pub fn value_from_bson(b: &Bson) -> Value {
    match b {
        Bson::Double(d) => Value::Double(*d),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(value_from_bson).collect()),
        Bson::Document(d) => Value::Document(document_to_row(d)),
        Bson::Boolean(v) => Value::Bool(*v),
        Bson::Null => Value::Null,
        Bson::RegularExpression(Regex { pattern, options }) => Value::Regex {
            pattern: pattern.clone(),
            options: sorted(options),
        },
        Bson::JavaScriptCode(code) => Value::JavaScript(code.clone()),
        Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code, scope }) => {
            Value::JavaScriptWithScope {
                code: code.clone(),
                scope: document_to_row(scope),
            }
        }
        Bson::Int32(i) => Value::Int(i64::from(*i)),
        Bson::Int64(i) => Value::Int(*i),
        Bson::Timestamp(BsonTimestamp { time, increment }) => Value::BsonTimestamp {
            t: *time,
            i: *increment,
        },
        Bson::Binary(Binary { subtype, bytes }) => Value::Binary {
            subtype: u8::from(*subtype),
            bytes: bytes.clone(),
        },
        Bson::ObjectId(oid) => Value::ObjectId(oid.bytes()),
        Bson::DateTime(dt) => Value::BsonDateTime(dt.timestamp_millis()),
        Bson::Symbol(s) => Value::Symbol(s.clone()),
        Bson::Decimal128(d) => Value::Decimal128(d.to_string()),
        Bson::Undefined => Value::Undefined,
        Bson::MaxKey => Value::MaxKey,
        Bson::MinKey => Value::MinKey,
        Bson::DbPointer(_) => db_pointer_from_bson(b),
    }
}

/// The fields of a DBPointer are private in `bson`; its Extended JSON form is public.
fn db_pointer_from_bson(b: &Bson) -> Value {
    let json = b.clone().into_relaxed_extjson();
    let body = &json["$dbPointer"];
    let namespace = body["$ref"].as_str().unwrap_or_default().to_owned();
    let id = body["$id"]["$oid"]
        .as_str()
        .and_then(|hex| ObjectId::parse_str(hex).ok())
        .map(|oid| oid.bytes());
    if id.is_none() {
        // Cannot happen with bson 2.x; keep the conversion total rather than panic.
        tracing::warn!(%json, "unexpected Extended JSON form of a BSON DBPointer");
    }
    Value::DbPointer {
        namespace,
        id: id.unwrap_or_default(),
    }
}

fn sorted(options: &str) -> String {
    let mut chars: Vec<char> = options.chars().collect();
    chars.sort_unstable();
    chars.into_iter().collect()
}

/// Converts a document to a [`Row`], keeping the field order.
pub fn document_to_row(d: &Document) -> Row {
    d.iter()
        .map(|(name, value)| (name.as_str(), value_from_bson(value)))
        .collect()
}

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
pub fn value_to_bson(v: &Value) -> Result<Bson, ConvertError> {
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
        Value::Set(labels) => Bson::Array(labels.iter().cloned().map(Bson::String).collect()),
        Value::Bytes(bytes) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: bytes.clone(),
        }),
        Value::Json(j) => json_to_bson(j.as_str())?,
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
        Value::Document(row) => Bson::Document(row_to_document(row)?),
        Value::Array(items) => Bson::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| value_to_bson(item).map_err(|e| e.within(&i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Value::MinKey => Bson::MinKey,
        Value::MaxKey => Bson::MaxKey,
        Value::Undefined => Bson::Undefined,
        Value::JavaScript(code) => Bson::JavaScriptCode(code.clone()),
        Value::JavaScriptWithScope { code, scope } => {
            Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                code: code.clone(),
                scope: row_to_document(scope).map_err(|e| e.within("$scope"))?,
            })
        }
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
    let mut doc = Document::new();
    for (name, value) in r.iter() {
        if name.contains('\0') {
            return Err(ConvertError::Invalid {
                field: name.escape_default().to_string(),
                reason: "a field name cannot contain a NUL byte".into(),
            });
        }
        if doc.contains_key(&**name) {
            return Err(ConvertError::Invalid {
                field: name.to_string(),
                reason: "the field appears more than once".into(),
            });
        }
        let bson = value_to_bson(value).map_err(|e| e.within(name))?;
        doc.insert(name.to_string(), bson);
    }
    Ok(doc)
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
fn json_to_bson(text: &str) -> Result<Bson, ConvertError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| ConvertError::Json {
        field: String::new(),
        reason: e.to_string(),
    })?;
    plain_json(&json)
}

fn plain_json(j: &serde_json::Value) -> Result<Bson, ConvertError> {
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
        serde_json::Value::Array(items) => Bson::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| plain_json(item).map_err(|e| e.within(&i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => {
            let mut doc = Document::new();
            for (name, value) in map {
                if name.contains('\0') {
                    return Err(ConvertError::Invalid {
                        field: name.escape_default().to_string(),
                        reason: "a field name cannot contain a NUL byte".into(),
                    });
                }
                doc.insert(name.clone(), plain_json(value).map_err(|e| e.within(name))?);
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

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;
    use stream_core::{DateTime, Decimal, Json, Time, Timestamp};

    fn oid() -> ObjectId {
        ObjectId::parse_str("65e0000102030405060708ff").expect("oid")
    }

    fn db_pointer() -> Bson {
        Bson::try_from(serde_json::json!({
            "$dbPointer": {"$ref": "db.c", "$id": {"$oid": "65e0000102030405060708ff"}}
        }))
        .expect("dbpointer")
    }

    /// Every BSON type, with the Value it reads as.
    fn every_bson_type() -> Vec<(Bson, Value)> {
        let oid_bytes = oid().bytes();
        vec![
            (Bson::Double(1.5), Value::Double(1.5)),
            (Bson::Double(-0.0), Value::Double(-0.0)),
            (Bson::String("café".into()), Value::String("café".into())),
            (
                Bson::Array(vec![Bson::Int32(1), Bson::String("x".into())]),
                Value::Array(vec![Value::Int(1), Value::String("x".into())]),
            ),
            (
                Bson::Document(doc! {"b": 1, "a": {"c": true}}),
                Value::Document(
                    [
                        ("b", Value::Int(1)),
                        (
                            "a",
                            Value::Document([("c", Value::Bool(true))].into_iter().collect()),
                        ),
                    ]
                    .into_iter()
                    .collect(),
                ),
            ),
            (Bson::Boolean(true), Value::Bool(true)),
            (Bson::Null, Value::Null),
            (
                Bson::RegularExpression(Regex {
                    pattern: "^a\\d".into(),
                    options: "im".into(),
                }),
                Value::Regex {
                    pattern: "^a\\d".into(),
                    options: "im".into(),
                },
            ),
            (
                Bson::JavaScriptCode("f()".into()),
                Value::JavaScript("f()".into()),
            ),
            (
                Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope {
                    code: "x + 1".into(),
                    scope: doc! {"x": 1},
                }),
                Value::JavaScriptWithScope {
                    code: "x + 1".into(),
                    scope: [("x", Value::Int(1))].into_iter().collect(),
                },
            ),
            (Bson::Int32(-7), Value::Int(-7)),
            (Bson::Int32(i32::MIN), Value::Int(i64::from(i32::MIN))),
            (
                Bson::Int64(9_007_199_254_740_993),
                Value::Int(9_007_199_254_740_993),
            ),
            (Bson::Int64(i64::MIN), Value::Int(i64::MIN)),
            (
                Bson::Timestamp(BsonTimestamp {
                    time: 1_700_000_000,
                    increment: 3,
                }),
                Value::BsonTimestamp {
                    t: 1_700_000_000,
                    i: 3,
                },
            ),
            (
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: vec![1, 2],
                }),
                Value::Binary {
                    subtype: 0,
                    bytes: vec![1, 2],
                },
            ),
            (
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Uuid,
                    bytes: vec![7; 16],
                }),
                Value::Binary {
                    subtype: 4,
                    bytes: vec![7; 16],
                },
            ),
            (
                Bson::Binary(Binary {
                    subtype: BinarySubtype::UserDefined(0x80),
                    bytes: vec![],
                }),
                Value::Binary {
                    subtype: 0x80,
                    bytes: vec![],
                },
            ),
            (Bson::ObjectId(oid()), Value::ObjectId(oid_bytes)),
            (
                Bson::DateTime(BsonDateTime::from_millis(1_709_210_096_789)),
                Value::BsonDateTime(1_709_210_096_789),
            ),
            (
                Bson::DateTime(BsonDateTime::from_millis(-1)),
                Value::BsonDateTime(-1),
            ),
            (Bson::Symbol("sym".into()), Value::Symbol("sym".into())),
            (
                Bson::Decimal128(Decimal128::from_str("1.10").expect("dec")),
                Value::Decimal128("1.10".into()),
            ),
            (
                Bson::Decimal128(Decimal128::from_str("-1E+400").expect("dec")),
                Value::Decimal128("-1E+400".into()),
            ),
            (
                Bson::Decimal128(Decimal128::from_str("NaN").expect("dec")),
                Value::Decimal128("NaN".into()),
            ),
            (Bson::Undefined, Value::Undefined),
            (Bson::MaxKey, Value::MaxKey),
            (Bson::MinKey, Value::MinKey),
            (
                db_pointer(),
                Value::DbPointer {
                    namespace: "db.c".into(),
                    id: oid_bytes,
                },
            ),
        ]
    }

    #[test]
    fn every_bson_type_reads_as_its_value_and_writes_back_exactly() {
        for (bson, value) in every_bson_type() {
            assert_eq!(value_from_bson(&bson), value, "{bson:?}");
            assert_eq!(value_to_bson(&value).expect("to bson"), bson, "{value:?}");
        }
    }

    #[test]
    fn int64_outside_i32_stays_int64_but_small_int64_comes_back_as_int32() {
        let big = Bson::Int64(i64::from(i32::MAX) + 1);
        assert_eq!(value_to_bson(&value_from_bson(&big)).expect("b"), big);
        let small = Bson::Int64(5);
        assert_eq!(
            value_to_bson(&value_from_bson(&small)).expect("b"),
            Bson::Int32(5)
        );
        assert_eq!(
            value_to_bson(&Value::Int(-2_147_483_649)).expect("b"),
            Bson::Int64(-2_147_483_649)
        );
    }

    #[test]
    fn regex_options_are_sorted_both_ways() {
        let unsorted = Bson::RegularExpression(Regex {
            pattern: "x".into(),
            options: "xsmi".into(),
        });
        assert_eq!(
            value_from_bson(&unsorted),
            Value::Regex {
                pattern: "x".into(),
                options: "imsx".into()
            }
        );
        let back = value_to_bson(&Value::Regex {
            pattern: "x".into(),
            options: "mi".into(),
        })
        .expect("regex");
        assert_eq!(
            back,
            Bson::RegularExpression(Regex {
                pattern: "x".into(),
                options: "im".into()
            })
        );
    }

    #[test]
    fn documents_round_trip_through_bson_bytes_keeping_field_order() {
        let doc: Document = every_bson_type()
            .into_iter()
            .enumerate()
            .map(|(i, (b, _))| (format!("f{}", 40 - i), b))
            .collect();
        // Through the wire format, as the driver does.
        let mut bytes = Vec::new();
        doc.to_writer(&mut bytes).expect("encode");
        let decoded = Document::from_reader(bytes.as_slice()).expect("decode");
        let row = document_to_row(&decoded);
        let names: Vec<&str> = row.iter().map(|(n, _)| &**n).collect();
        let expected: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(names, expected);
        let back = row_to_document(&row).expect("row to doc");
        // Int64 values that fit in i32 would collapse; there are none in the sample.
        assert_eq!(back, doc);
    }

    #[test]
    fn mysql_values_map_to_their_nearest_bson_type() {
        let date = Date::new(2024, 2, 29).expect("date");
        let cases: Vec<(Value, Bson)> = vec![
            (Value::UInt(7), Bson::Int32(7)),
            (Value::UInt(1 << 40), Bson::Int64(1 << 40)),
            (
                Value::UInt(i64::MAX as u64),
                Bson::Int64(i64::MAX),
            ),
            (Value::Float(0.5), Bson::Double(0.5)),
            (
                Value::Decimal(Decimal::parse("-19.90").expect("d")),
                Bson::Decimal128(Decimal128::from_str("-19.90").expect("d")),
            ),
            (Value::Enum("paid".into()), Bson::String("paid".into())),
            (
                Value::Set(vec!["a".into(), "c".into()]),
                Bson::Array(vec![Bson::String("a".into()), Bson::String("c".into())]),
            ),
            (
                Value::Bytes(vec![0xff, 0]),
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: vec![0xff, 0],
                }),
            ),
            (
                Value::Date(date),
                Bson::DateTime(BsonDateTime::from_millis(1_709_164_800_000)),
            ),
            (
                Value::DateTime(DateTime::new(date, 12, 34, 56, 789_999, 6).expect("dt")),
                Bson::DateTime(BsonDateTime::from_millis(1_709_210_096_789)),
            ),
            (
                Value::DateTime(
                    DateTime::new(Date::new(1969, 12, 31).expect("d"), 23, 59, 59, 0, 0)
                        .expect("dt"),
                ),
                Bson::DateTime(BsonDateTime::from_millis(-1000)),
            ),
            (
                Value::Timestamp(Timestamp::new(1_709_210_096, 789_000, 3).expect("ts")),
                Bson::DateTime(BsonDateTime::from_millis(1_709_210_096_789)),
            ),
            (
                Value::Json(Json::parse(r#"{"z":[1,2.5,"s",null,true],"a":{"big":4294967296,"u":18446744073709551615},"$oid":"x"}"#).expect("json")),
                Bson::Document(doc! {
                    "z": [1, 2.5, "s", Bson::Null, true],
                    "a": {"big": 4_294_967_296_i64, "u": 18_446_744_073_709_551_615_f64},
                    "$oid": "x",
                }),
            ),
            (
                Value::Json(Json::parse("[1]").expect("json")),
                Bson::Array(vec![Bson::Int32(1)]),
            ),
        ];
        for (value, bson) in cases {
            assert_eq!(value_to_bson(&value).expect("to bson"), bson, "{value:?}");
        }
        // Key order of JSON objects is kept (serde_json's preserve_order, which bson enables).
        let Bson::Document(d) =
            value_to_bson(&Value::Json(Json::parse(r#"{"b":1,"a":2}"#).expect("json")))
                .expect("json")
        else {
            panic!("not a document");
        };
        assert_eq!(d.keys().collect::<Vec<_>>(), ["b", "a"]);
    }

    #[test]
    fn values_bson_cannot_hold_are_errors_naming_the_field_and_value() {
        let time = Time::new(true, 838, 59, 59, 0, 0).expect("time");
        let inner: Row = [("t", Value::Time(time))].into_iter().collect();
        let row: Row = [("ok", Value::Int(1)), ("outer", Value::Document(inner))]
            .into_iter()
            .collect();
        let err = row_to_document(&row).expect_err("time");
        assert_eq!(err.field(), "outer.t");
        assert_eq!(
            err.to_string(),
            r#"field `outer.t`: time value "-838:59:59" has no BSON equivalent"#
        );

        let row: Row = [("big", Value::UInt(u64::MAX))].into_iter().collect();
        let err = row_to_document(&row).expect_err("u64");
        assert_eq!(
            err.to_string(),
            "field `big`: unsigned integer 18446744073709551615 is above the BSON int64 maximum 9223372036854775807"
        );

        let row: Row = [(
            "list",
            Value::Array(vec![Value::Int(1), Value::UInt(u64::MAX)]),
        )]
        .into_iter()
        .collect();
        assert_eq!(row_to_document(&row).expect_err("u64").field(), "list.1");

        let zero = Value::Date(Date::new(0, 0, 0).expect("zero date"));
        let err = row_to_document(&[("d", zero)].into_iter().collect()).expect_err("zero");
        assert_eq!(
            err.to_string(),
            r#"field `d`: date "0000-00-00" cannot be stored as a BSON datetime: zero dates are not instants"#
        );
        let feb30 = Value::Date(Date::new(2023, 2, 29).expect("date"));
        assert!(
            value_to_bson(&feb30)
                .expect_err("feb 29")
                .to_string()
                .contains("2023-02-29")
        );
        let zero_dt = Value::DateTime(
            DateTime::new(Date::new(2024, 0, 1).expect("d"), 0, 0, 0, 0, 0).expect("dt"),
        );
        assert!(
            value_to_bson(&zero_dt)
                .expect_err("zero")
                .to_string()
                .contains("2024-00-01T00:00:00")
        );
        let zero_ts = Value::Timestamp(Timestamp::new(0, 0, 0).expect("ts"));
        assert!(
            value_to_bson(&zero_ts)
                .expect_err("zero ts")
                .to_string()
                .contains("zero timestamp")
        );

        let wide =
            Value::Decimal(Decimal::parse("12345678901234567890123456789012345.6").expect("d"));
        let err = row_to_document(&[("price", wide)].into_iter().collect()).expect_err("wide");
        assert!(
            err.to_string().starts_with(
                "field `price`: decimal 12345678901234567890123456789012345.6 does not fit"
            ),
            "{err}"
        );

        let err = row_to_document(&[("a\0b", Value::Null)].into_iter().collect()).expect_err("nul");
        assert!(err.to_string().contains("NUL"), "{err}");
        let err = row_to_document(
            &[("x", Value::Int(1)), ("x", Value::Int(2))]
                .into_iter()
                .collect(),
        )
        .expect_err("twice");
        assert_eq!(
            err.to_string(),
            "field `x`: the field appears more than once"
        );

        // Top-level values have no field to name.
        let err = value_to_bson(&Value::UInt(u64::MAX)).expect_err("u64");
        assert_eq!(err.field(), "");
        assert!(err.to_string().starts_with("unsigned integer"), "{err}");
    }

    #[test]
    fn converted_documents_print_as_relaxed_extended_json_v2() {
        let d = doc! {
            "_id": oid(),
            "n": 1,
            "big": 9_007_199_254_740_993_i64,
            "x": 1.0,
            "d": BsonDateTime::from_millis(1_709_210_096_789),
            "old": BsonDateTime::from_millis(-1),
            "dec": Decimal128::from_str("1.10").expect("dec"),
            "bin": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2] },
            "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![0; 16] },
            "re": Regex { pattern: "^a".into(), options: "mi".into() },
            "ts": BsonTimestamp { time: 1_700_000_000, increment: 3 },
            "nan": f64::NAN,
            "a": [Bson::Null, true, "s"],
            "sub": {"k": Bson::MinKey, "m": Bson::MaxKey},
            "u": Bson::Undefined,
            "sym": Bson::Symbol("s".into()),
            "js": Bson::JavaScriptCode("f()".into()),
            "jss": JavaScriptCodeWithScope { code: "x".into(), scope: doc! {"x": 1} },
            "p": db_pointer(),
        };
        let mut buf = Vec::new();
        stream_core::json::write_row(&mut buf, &document_to_row(&d));
        let json = String::from_utf8(buf).expect("utf8");
        assert_eq!(
            json,
            concat!(
                r#"{"_id":{"$oid":"65e0000102030405060708ff"},"n":1,"big":9007199254740993,"x":1.0,"#,
                r#""d":{"$date":"2024-02-29T12:34:56.789Z"},"old":{"$date":{"$numberLong":"-1"}},"#,
                r#""dec":{"$numberDecimal":"1.10"},"bin":{"$binary":{"base64":"AQI=","subType":"00"}},"#,
                r#""uuid":{"$binary":{"base64":"AAAAAAAAAAAAAAAAAAAAAA==","subType":"04"}},"#,
                r#""re":{"$regularExpression":{"pattern":"^a","options":"im"}},"#,
                r#""ts":{"$timestamp":{"t":1700000000,"i":3}},"nan":{"$numberDouble":"NaN"},"#,
                r#""a":[null,true,"s"],"sub":{"k":{"$minKey":1},"m":{"$maxKey":1}},"#,
                r#""u":{"$undefined":true},"sym":{"$symbol":"s"},"js":{"$code":"f()"},"#,
                r#""jss":{"$code":"x","$scope":{"x":1}},"#,
                r#""p":{"$dbPointer":{"$ref":"db.c","$id":{"$oid":"65e0000102030405060708ff"}}}}"#
            )
        );
        // Same JSON values as the bson crate's own Relaxed Extended JSON (it omits a zero
        // millisecond fraction; none here).
        let ours: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(ours, Bson::Document(d).into_relaxed_extjson());
    }
}
