//! BSON to [`Value`]/[`Row`].

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{
    Binary, Bson, Document, JavaScriptCodeWithScope, Regex, Timestamp as BsonTimestamp,
};
use stream_core::{Row, Value};

use super::sorted;

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

/// Converts a document to a [`Row`], keeping the field order.
pub fn document_to_row(d: &Document) -> Row {
    d.iter()
        .map(|(name, value)| (name.as_str(), value_from_bson(value)))
        .collect()
}
