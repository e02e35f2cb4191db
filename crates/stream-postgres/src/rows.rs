//! From change events to staged rows: the key of each change, collapsing several changes of one
//! key to the last, and the binary COPY encoding of a row (MongoDB `_id`, `doc` and extracted
//! columns included).

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, BytesMut};
use stream_core::{ChangeEvent, Op, Row, SourceKind, Value};

use crate::config::ExtractedType;
use crate::encode::{
    Cell, NullReason, put_bytes, put_display, put_jsonb, put_null, put_text, put_value,
};
use crate::table::{ColumnSource, TableKind, TargetColumn, TargetTable};
use crate::types::PgType;

/// What a staged row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOp {
    Upsert,
    Delete,
}

/// One change waiting in a table's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Staged<'a> {
    pub(crate) op: RowOp,
    pub(crate) event: &'a ChangeEvent,
    /// The values: the after image for upserts, the before image (if any) for deletes.
    pub(crate) row: Option<&'a Row>,
}

/// Values written as NULL, by `(table, reason)`.
pub(crate) type NullCounts = BTreeMap<(String, NullReason), u64>;

/// The changes of one table in a batch, one per key (append tables: every change).
#[derive(Debug)]
pub(crate) struct TableBuffer<'a> {
    index: HashMap<Vec<u8>, usize>,
    pub(crate) rows: Vec<Staged<'a>>,
}

/// A change the buffer could not take (its key does not encode).
#[derive(Debug)]
pub(crate) struct Unkeyed<'a> {
    pub(crate) event: &'a ChangeEvent,
    pub(crate) reason: String,
}

impl<'a> TableBuffer<'a> {
    pub(crate) fn new() -> Self {
        Self {
            index: HashMap::new(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn put(&mut self, table: &TargetTable, staged: Staged<'a>) -> Result<(), String> {
        if table.kind == TableKind::Append {
            self.rows.push(staged);
            return Ok(());
        }
        let key = key_bytes(table, staged.event, staged.row)?;
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = staged,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(staged);
            }
        }
        Ok(())
    }

    /// Adds a change; an update that moves the key also deletes the old key. Returns `false`
    /// for a MongoDB update without a full document (nothing to apply).
    pub(crate) fn add(
        &mut self,
        table: &TargetTable,
        event: &'a ChangeEvent,
    ) -> Result<bool, Unkeyed<'a>> {
        let unkeyed = |reason| Unkeyed { event, reason };
        if table.kind == TableKind::Append {
            let row = event.after.as_ref().or(event.before.as_ref());
            self.put(
                table,
                Staged {
                    op: RowOp::Upsert,
                    event,
                    row,
                },
            )
            .map_err(unkeyed)?;
            return Ok(true);
        }
        match (event.op, &event.after) {
            (Op::Delete, _) => {
                // A soft delete keeps the last values: the before image, else those of an
                // earlier change of this key in the batch (a MongoDB delete has no before).
                let row = match event.before.as_ref() {
                    Some(before) => Some(before),
                    None => key_bytes(table, event, None)
                        .ok()
                        .and_then(|k| self.index.get(&k))
                        .map(|&i| self.rows[i])
                        .filter(|earlier| earlier.op == RowOp::Upsert)
                        .and_then(|earlier| earlier.row),
                };
                self.put(
                    table,
                    Staged {
                        op: RowOp::Delete,
                        event,
                        row,
                    },
                )
                .map_err(unkeyed)?;
            }
            (_, None) => return Ok(false),
            (_, Some(after)) => {
                if let Some(before) = &event.before
                    && event.source != SourceKind::MongoDb
                {
                    let old = key_bytes(table, event, Some(before)).map_err(unkeyed)?;
                    let new = key_bytes(table, event, Some(after)).map_err(unkeyed)?;
                    if old != new {
                        self.put(
                            table,
                            Staged {
                                op: RowOp::Delete,
                                event,
                                row: Some(before),
                            },
                        )
                        .map_err(unkeyed)?;
                    }
                }
                self.put(
                    table,
                    Staged {
                        op: RowOp::Upsert,
                        event,
                        row: Some(after),
                    },
                )
                .map_err(unkeyed)?;
            }
        }
        Ok(true)
    }
}

/// The value of a row field, or of the event's key when the row lacks it.
fn field<'v>(name: &str, event: &'v ChangeEvent, row: Option<&'v Row>) -> Option<&'v Value> {
    row.and_then(|r| r.get(name))
        .or_else(|| event.key.as_ref().and_then(|k| k.get(name)))
}

fn mongo_id<'v>(event: &'v ChangeEvent, row: Option<&'v Row>) -> Option<&'v Value> {
    event
        .key
        .as_ref()
        .and_then(|k| k.get("_id"))
        .or_else(|| row.and_then(|r| r.get("_id")))
}

/// The key columns of a change, encoded: equal bytes, equal key.
fn key_bytes(
    table: &TargetTable,
    event: &ChangeEvent,
    row: Option<&Row>,
) -> Result<Vec<u8>, String> {
    let mut buf = BytesMut::new();
    let mut nulls = NullCounts::new();
    for &i in &table.key {
        let column = &table.columns[i];
        let present = match column.source {
            ColumnSource::MongoId => mongo_id(event, row).is_some(),
            _ => field(&column.name, event, row).is_some_and(|v| !v.is_null()),
        };
        if !present {
            return Err(format!(
                "the change has no value for key column `{}`",
                column.name
            ));
        }
        match put_cell(&mut buf, column, event, row, &table.source_name, &mut nulls) {
            Ok(()) if nulls.is_empty() => {}
            Ok(()) => {
                return Err(format!(
                    "key column `{}` holds a value PostgreSQL cannot store",
                    column.name
                ));
            }
            Err(reason) => return Err(reason),
        }
    }
    Ok(buf.to_vec())
}

/// The key of a change as JSON, for messages.
pub(crate) fn key_json(event: &ChangeEvent) -> String {
    let mut buf = Vec::new();
    match &event.key {
        Some(key) => stream_core::json::write_row(&mut buf, key),
        None => buf.extend_from_slice(b"null"),
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// MongoDB `_id` as text: an ObjectId as 24 hex digits, a string as itself, anything else as
/// canonical Extended JSON.
pub(crate) fn mongo_id_text(id: &Value) -> String {
    match id {
        Value::ObjectId(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Value::String(s) => s.clone(),
        other => {
            let mut buf = Vec::new();
            write_canonical(&mut buf, other);
            String::from_utf8_lossy(&buf).into_owned()
        }
    }
}

/// Canonical Extended JSON v2: numbers and dates typed; everything else prints as the relaxed
/// form does. (The event model keeps int32 and int64 alike: an integer that fits 32 bits is
/// written as `$numberInt`.)
fn write_canonical(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Int(i) if i32::try_from(*i).is_ok() => {
            buf.extend_from_slice(format!("{{\"$numberInt\":\"{i}\"}}").as_bytes());
        }
        Value::Int(i) => buf.extend_from_slice(format!("{{\"$numberLong\":\"{i}\"}}").as_bytes()),
        Value::Double(d) if d.is_finite() => {
            buf.extend_from_slice(format!("{{\"$numberDouble\":\"{d:?}\"}}").as_bytes());
        }
        Value::BsonDateTime(ms) => {
            buf.extend_from_slice(format!("{{\"$date\":{{\"$numberLong\":\"{ms}\"}}}}").as_bytes());
        }
        Value::Document(row) => {
            buf.push(b'{');
            for (i, (name, v)) in row.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                stream_core::json::write_str(buf, name);
                buf.push(b':');
                write_canonical(buf, v);
            }
            buf.push(b'}');
        }
        Value::Array(items) => {
            buf.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_canonical(buf, v);
            }
            buf.push(b']');
        }
        other => stream_core::json::write_value(buf, other),
    }
}

fn count(nulls: &mut NullCounts, table: &str, cell: Cell) -> Result<(), String> {
    match cell {
        Cell::Written => Ok(()),
        Cell::Nulled(reason) => {
            *nulls.entry((table.to_owned(), reason)).or_default() += 1;
            Ok(())
        }
        Cell::Refused(reason) => Err(reason),
    }
}

/// An extracted column's value, converted; `Err` names the path and what it holds.
fn put_extracted(
    buf: &mut BytesMut,
    path: &str,
    ty: ExtractedType,
    value: &Value,
    pg: PgType,
) -> Result<Cell, String> {
    let refuse = || {
        let mut shown = Vec::new();
        stream_core::json::write_value(&mut shown, value);
        let shown: String = String::from_utf8_lossy(&shown).chars().take(80).collect();
        format!("field `{path}` holds {shown}, which does not convert to {pg}")
    };
    let converted = match (ty, value) {
        (_, Value::Null) => Value::Null,
        (ExtractedType::Jsonb, v) => {
            let mut json = Vec::new();
            stream_core::json::write_value(&mut json, v);
            put_jsonb(buf, &json);
            return Ok(Cell::Written);
        }
        (ExtractedType::Text, Value::String(_)) => value.clone(),
        (ExtractedType::Text, Value::Document(_) | Value::Array(_)) => return Err(refuse()),
        (ExtractedType::Text, v) => {
            let mut json = Vec::new();
            stream_core::json::write_value(&mut json, v);
            Value::String(String::from_utf8_lossy(&json).into_owned())
        }
        (ExtractedType::Integer | ExtractedType::Bigint, Value::Double(d))
            if d.fract() == 0.0 && d.abs() < 9.0e15 =>
        {
            Value::Int(*d as i64)
        }
        (ExtractedType::Integer | ExtractedType::Bigint, Value::Int(_)) => value.clone(),
        (ExtractedType::Numeric, Value::Int(_) | Value::Decimal128(_) | Value::Decimal(_)) => {
            value.clone()
        }
        (ExtractedType::Numeric | ExtractedType::Double, Value::Double(d)) if d.is_finite() => {
            value.clone()
        }
        (ExtractedType::Double, Value::Int(i)) => Value::Double(*i as f64),
        (ExtractedType::Double, Value::Decimal128(d)) => match d.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Double(f),
            _ => return Err(refuse()),
        },
        (ExtractedType::Boolean, Value::Bool(_)) => value.clone(),
        (ExtractedType::Timestamptz, Value::BsonDateTime(_)) => value.clone(),
        _ => return Err(refuse()),
    };
    match put_value(buf, &converted, pg) {
        Cell::Refused(_) => Err(refuse()),
        other => Ok(other),
    }
}

/// Writes one cell of `column` for a change.
fn put_cell(
    buf: &mut BytesMut,
    column: &TargetColumn,
    event: &ChangeEvent,
    row: Option<&Row>,
    table: &str,
    nulls: &mut NullCounts,
) -> Result<(), String> {
    let cell = match &column.source {
        ColumnSource::Field => match field(&column.name, event, row) {
            Some(v) => put_value(buf, v, column.ty),
            None => {
                put_null(buf);
                Cell::Written
            }
        },
        ColumnSource::MongoId => match mongo_id(event, row) {
            Some(id) => put_text(buf, &mongo_id_text(id)),
            None => {
                put_null(buf);
                Cell::Written
            }
        },
        ColumnSource::MongoDoc => match row {
            Some(doc) => {
                let mut json = Vec::with_capacity(256);
                stream_core::json::write_row(&mut json, doc);
                if json.windows(6).any(|w| w == b"\\u0000") {
                    put_null(buf);
                    Cell::Nulled(NullReason::NulByte)
                } else {
                    put_jsonb(buf, &json);
                    Cell::Written
                }
            }
            None => {
                put_null(buf);
                Cell::Written
            }
        },
        ColumnSource::Path(path, ty) => match row.and_then(|r| r.get_path(path)) {
            Some(v) => put_extracted(buf, path, *ty, v, column.ty)?,
            None => {
                put_null(buf);
                Cell::Written
            }
        },
    };
    count(nulls, table, cell)
}

/// Appends one staged row: the table's columns, then `_op` (when `with_op`: staging and append
/// tables have it, a replica table does not) and `_position`. On `Err` the buffer is left as
/// it was.
pub(crate) fn encode_row(
    buf: &mut BytesMut,
    table: &TargetTable,
    staged: &Staged<'_>,
    with_op: bool,
    nulls: &mut NullCounts,
) -> Result<(), String> {
    let start = buf.len();
    let mut local = NullCounts::new();
    let meta = if with_op { 2 } else { 1 };
    buf.put_i16((table.columns.len() + meta) as i16);
    for column in &table.columns {
        let row = match staged.op {
            // A hard delete needs only the key; soft deletes keep the last values, append
            // tables the whole before image.
            RowOp::Delete if !table.soft && !table.key.is_empty() && !is_key(table, column) => None,
            _ => staged.row,
        };
        if let Err(reason) = put_cell(
            buf,
            column,
            staged.event,
            row,
            &table.source_name,
            &mut local,
        ) {
            buf.truncate(start);
            return Err(format!("column `{}`: {reason}", column.name));
        }
    }
    let op = match (table.kind, staged.op) {
        (TableKind::Append, _) => staged.event.op.as_str(),
        (_, RowOp::Upsert) => "u",
        // Soft deletes: `d` with the last values (upserted as deleted), `k` with the key only.
        (_, RowOp::Delete) if table.soft && staged.row.is_none() => "k",
        (_, RowOp::Delete) => "d",
    };
    if with_op {
        put_bytes(buf, op.as_bytes());
    }
    put_display(buf, &staged.event.position);
    for (k, n) in local {
        *nulls.entry(k).or_default() += n;
    }
    Ok(())
}

fn is_key(table: &TargetTable, column: &TargetColumn) -> bool {
    table
        .key
        .iter()
        .any(|&i| std::ptr::eq(&table.columns[i], column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongo_ids_print_as_hex_text_or_canonical_json() {
        assert_eq!(
            mongo_id_text(&Value::ObjectId([0x65, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a])),
            "65000000000000000000000a"
        );
        assert_eq!(mongo_id_text(&Value::from("abc")), "abc");
        assert_eq!(mongo_id_text(&Value::Int(7)), r#"{"$numberInt":"7"}"#);
        assert_eq!(
            mongo_id_text(&Value::Int(1 << 40)),
            r#"{"$numberLong":"1099511627776"}"#
        );
        let doc: Row = [("a", Value::Double(1.0))].into_iter().collect();
        assert_eq!(
            mongo_id_text(&Value::Document(doc)),
            r#"{"a":{"$numberDouble":"1.0"}}"#
        );
    }

    #[test]
    fn extracted_values_convert_or_say_why_not() {
        let mut buf = BytesMut::new();
        let ok = put_extracted(
            &mut buf,
            "amount.total",
            ExtractedType::Numeric,
            &Value::Double(12.5),
            PgType::Numeric(None),
        );
        assert_eq!(ok, Ok(Cell::Written));
        let err = put_extracted(
            &mut buf,
            "amount.total",
            ExtractedType::Numeric,
            &Value::from("lots"),
            PgType::Numeric(None),
        )
        .expect_err("text is not numeric");
        assert!(
            err.contains("`amount.total`") && err.contains("\"lots\"") && err.contains("numeric"),
            "{err}"
        );
    }
}
