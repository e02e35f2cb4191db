//! BSON to [`Value`]/[`Row`].

use mongodb::bson::oid::ObjectId;
use mongodb::bson::raw::{RawBsonRef, RawDocument};
use mongodb::bson::{
    Binary, Bson, Document, JavaScriptCodeWithScope, Regex, Timestamp as BsonTimestamp,
};
use stream_core::{Row, Value};

use super::{ConvertError, MAX_DEPTH, deeper, sorted};

/// Converts one BSON value: every BSON type has its own [`Value`] variant, so nothing is lost.
/// The only error is nesting deeper than [`MAX_DEPTH`] ([`ConvertError::TooDeep`]).
///
/// Int32 and Int64 both become [`Value::Int`]; regular expression options are sorted
/// alphabetically; Decimal128 keeps its canonical string.
pub fn value_from_bson(b: &Bson) -> Result<Value, ConvertError> {
    match b {
        // A document on its own is a top-level document.
        Bson::Document(d) => row_at(d, 0).map(Value::Document),
        other => value_at(other, 0),
    }
}

/// Converts a document to a [`Row`], keeping the field order; an error only for nesting
/// deeper than [`MAX_DEPTH`], naming the path of the first value past it.
pub fn document_to_row(d: &Document) -> Result<Row, ConvertError> {
    row_at(d, 0)
}

/// Converts a document in its raw form, as the driver reads it: the nesting is checked on the
/// bytes first ([`ConvertError::TooDeep`]), then the document is decoded and converted like
/// [`document_to_row`]. Bytes that are not well-formed BSON are [`ConvertError::Invalid`].
pub fn raw_document_to_row(raw: &RawDocument) -> Result<Row, ConvertError> {
    check_depth(raw, 0)?;
    document_to_row(&decode(raw)?)
}

/// Decodes a raw document whose nesting was checked ([`check_depth`]).
pub(crate) fn decode(raw: &RawDocument) -> Result<Document, ConvertError> {
    Document::try_from(raw).map_err(malformed)
}

/// A document of a collection, decoded once its nesting is known to be within [`MAX_DEPTH`].
pub(crate) fn decode_checked(raw: &RawDocument) -> Result<Document, ConvertError> {
    check_depth(raw, 0)?;
    decode(raw)
}

/// The value at a dotted `path` of a raw document (through embedded documents only), unless
/// it is itself nested too deep to decode safely.
pub(crate) fn raw_path(raw: &RawDocument, path: &str) -> Option<Bson> {
    let (parents, name) = match path.rsplit_once('.') {
        Some((parents, name)) => (Some(parents), name),
        None => (None, path),
    };
    let mut holder = raw;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        holder = holder.get_document(part).ok()?;
    }
    let value = holder.get(name).ok()??;
    let mut alone = mongodb::bson::RawDocumentBuf::new();
    alone.append_ref("v", value);
    check_depth(&alone, 0).ok()?;
    decode(&alone).ok()?.remove("v")
}

fn malformed(e: mongodb::bson::raw::Error) -> ConvertError {
    ConvertError::Invalid {
        field: String::new(),
        reason: format!("malformed BSON: {e}"),
    }
}

/// Whether documents and arrays nest at most [`MAX_DEPTH`] levels inside `raw`, or inside
/// the documents `raw` carries `envelope` levels deep (a change event's `fullDocument` is one
/// level deep). Recurses no deeper than the limit, so it is safe on any input.
pub(crate) fn check_depth(raw: &RawDocument, envelope: usize) -> Result<(), ConvertError> {
    raw_fields_within(raw, 0, MAX_DEPTH + envelope).map_err(|e| match e {
        ConvertError::TooDeep { field, .. } => ConvertError::TooDeep {
            field,
            limit: MAX_DEPTH,
        },
        other => other,
    })
}

fn raw_fields_within(raw: &RawDocument, nesting: usize, limit: usize) -> Result<(), ConvertError> {
    for element in raw {
        let (name, value) = element.map_err(malformed)?;
        raw_value_within(value, nesting, limit).map_err(|e| e.within(name))?;
    }
    Ok(())
}

fn raw_value_within(
    value: RawBsonRef<'_>,
    nesting: usize,
    limit: usize,
) -> Result<(), ConvertError> {
    let inner = || deeper(nesting, limit);
    match value {
        RawBsonRef::Document(d) => raw_fields_within(d, inner()?, limit),
        RawBsonRef::JavaScriptCodeWithScope(code) => {
            raw_fields_within(code.scope, inner()?, limit).map_err(|e| e.within("$scope"))
        }
        RawBsonRef::Array(items) => {
            let nesting = inner()?;
            for (i, item) in items.into_iter().enumerate() {
                let item = item.map_err(malformed)?;
                raw_value_within(item, nesting, limit).map_err(|e| e.within(&i.to_string()))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The fields of a document whose own nesting level is `nesting` (0 for the top level).
fn row_at(d: &Document, nesting: usize) -> Result<Row, ConvertError> {
    // Loops, not iterator adapters: every frame counts in a recursion this deep.
    let mut row = Row::with_capacity(d.len());
    for (name, value) in d {
        row.push(
            name.as_str(),
            value_at(value, nesting).map_err(|e| e.within(name))?,
        );
    }
    Ok(row)
}

/// A value inside a document or array whose nesting level is `nesting`.
///
/// The nesting kinds are handled here and the rest in [`leaf_from_bson`], so that each level
/// of a deep document costs a small stack frame, not that of the whole conversion table.
fn value_at(b: &Bson, nesting: usize) -> Result<Value, ConvertError> {
    Ok(match b {
        Bson::Array(items) => {
            let inner = deeper(nesting, MAX_DEPTH)?;
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                values.push(value_at(item, inner).map_err(|e| e.within(&i.to_string()))?);
            }
            Value::Array(values)
        }
        Bson::Document(d) => Value::Document(row_at(d, deeper(nesting, MAX_DEPTH)?)?),
        Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code, scope }) => {
            Value::JavaScriptWithScope {
                code: code.clone(),
                scope: row_at(scope, deeper(nesting, MAX_DEPTH)?)
                    .map_err(|e| e.within("$scope"))?,
            }
        }
        leaf => leaf_from_bson(leaf),
    })
}

/// A value that holds no other values.
fn leaf_from_bson(b: &Bson) -> Value {
    match b {
        Bson::Double(d) => Value::Double(*d),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Boolean(v) => Value::Bool(*v),
        Bson::Null => Value::Null,
        Bson::RegularExpression(Regex { pattern, options }) => Value::Regex {
            pattern: pattern.clone(),
            options: sorted(options),
        },
        Bson::JavaScriptCode(code) => Value::JavaScript(code.clone()),
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
        // Handled by `value_at`.
        Bson::Array(_) | Bson::Document(_) | Bson::JavaScriptCodeWithScope(_) => Value::Null,
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
