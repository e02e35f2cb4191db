//! Values read with queries (snapshot, polling, `Store`) and values written as parameters.
//!
//! Queries use the binary protocol, so floats, dates and times arrive as typed values, not
//! text; the column's definition (information_schema) says how to turn each into the same
//! [`Value`] the binlog decoder produces for it.

use mysql_async::Value as My;
use stream_core::{Date, DateTime, Decimal, Json, Time, Timestamp, Value};

use crate::schema::ColumnSchema;

fn text(bytes: &[u8], column: &ColumnSchema) -> Result<String, String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| format!("column `{}` returned text that is not UTF-8", column.name))
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Converts a query result value of `column` to the event model.
pub(crate) fn from_query(v: My, column: &ColumnSchema) -> Result<Value, String> {
    let t = column.data_type.as_str();
    let bad = |v: &My| {
        format!(
            "column `{}` ({t}) returned an unexpected {v:?}",
            column.name
        )
    };
    Ok(match v {
        My::NULL => Value::Null,
        My::Int(i) => match t {
            "year" => Value::Int(i),
            _ if column.unsigned => Value::UInt(i as u64),
            _ => Value::Int(i),
        },
        My::UInt(u) => Value::UInt(u),
        My::Float(f) => Value::Float(f),
        My::Double(d) if t == "float" => Value::Float(d as f32),
        My::Double(d) => Value::Double(d),
        My::Date(y, mo, d, h, mi, s, us) => match t {
            "date" => Value::Date(Date::new(y, mo, d).map_err(|e| e.to_string())?),
            "timestamp" => {
                if y == 0 && mo == 0 && d == 0 {
                    Value::Timestamp(Timestamp::new(0, 0, column.fsp).map_err(|e| e.to_string())?)
                } else {
                    let days = days_from_civil(i64::from(y), u32::from(mo), u32::from(d));
                    let secs =
                        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
                    Value::Timestamp(
                        Timestamp::new(secs, us, column.fsp).map_err(|e| e.to_string())?,
                    )
                }
            }
            _ => Value::DateTime(
                DateTime::new(
                    Date::new(y, mo, d).map_err(|e| e.to_string())?,
                    h,
                    mi,
                    s,
                    us,
                    column.fsp,
                )
                .map_err(|e| e.to_string())?,
            ),
        },
        My::Time(neg, days, h, mi, s, us) => Value::Time(
            Time::new(neg, days * 24 + u32::from(h), mi, s, us, column.fsp)
                .map_err(|e| e.to_string())?,
        ),
        My::Bytes(b) => match t {
            "decimal" | "numeric" => {
                Value::Decimal(Decimal::parse(&text(&b, column)?).map_err(|e| e.to_string())?)
            }
            "bit" => Value::UInt(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))),
            "enum" => Value::Enum(text(&b, column)?),
            "set" => {
                let s = text(&b, column)?;
                Value::Set(if s.is_empty() {
                    Vec::new()
                } else {
                    s.split(',').map(str::to_owned).collect()
                })
            }
            // MySQL's JSON type, or MariaDB LONGTEXT a CHECK keeps valid JSON.
            _ if column.json => {
                Value::Json(Json::parse(&text(&b, column)?).map_err(|e| e.to_string())?)
            }
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => {
                Value::Bytes(b.get(4..).unwrap_or_default().to_vec())
            }
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                let s = text(&b, column)?;
                if column.unsigned {
                    Value::UInt(s.parse().map_err(|_| bad(&My::Bytes(b.clone())))?)
                } else {
                    Value::Int(s.parse().map_err(|_| bad(&My::Bytes(b.clone())))?)
                }
            }
            "float" => Value::Float(
                text(&b, column)?
                    .parse()
                    .map_err(|_| bad(&My::Bytes(b.clone())))?,
            ),
            "double" | "real" => Value::Double(
                text(&b, column)?
                    .parse()
                    .map_err(|_| bad(&My::Bytes(b.clone())))?,
            ),
            // MariaDB's UUID, INET4 and INET6 arrive as their canonical text.
            "uuid" | "inet4" | "inet6" => Value::String(text(&b, column)?),
            _ if column.charset.is_none() => Value::Bytes(b),
            _ => Value::String(text(&b, column)?),
        },
    })
}

/// A result row of `SELECT <every column of schema>` as an event-model row; `Err` names the
/// column that failed.
pub(crate) fn row_from_query(
    row: mysql_async::Row,
    schema: &crate::schema::TableSchema,
) -> Result<stream_core::Row, (String, String)> {
    let values = row.unwrap();
    let mut out = stream_core::Row::with_capacity(values.len());
    for (col, v) in schema.columns.iter().zip(values) {
        let v = from_query(v, col).map_err(|e| (col.name.clone(), e))?;
        out.push(col.name.as_str(), v);
    }
    Ok(out)
}

/// The primary-key fields of `row`, or `None` when the table has no primary key.
pub(crate) fn key_of(
    row: &stream_core::Row,
    schema: &crate::schema::TableSchema,
) -> Option<stream_core::Row> {
    if schema.primary_key.is_empty() {
        return None;
    }
    Some(
        schema
            .primary_key
            .iter()
            .map(|&i| {
                let name = schema.columns[i].name.as_str();
                (name, row.get(name).cloned().unwrap_or(Value::Null))
            })
            .collect(),
    )
}

/// Contract JSON text of a row or value, for positions.
pub(crate) fn json_text(value: &Value) -> String {
    let mut buf = Vec::new();
    stream_core::json::write_value(&mut buf, value);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `` `name` `` with backticks doubled.
pub(crate) fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// A value in contract JSON (from a saved position) back to a query parameter for `column`.
pub(crate) fn json_to_param(v: &serde_json::Value, column: &ColumnSchema) -> Result<My, String> {
    use base64::Engine as _;
    Ok(match v {
        serde_json::Value::Null => My::NULL,
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => My::Int(i),
            (None, Some(u)) => My::UInt(u),
            _ => My::Double(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s)
            if column.charset.is_none()
                && !is_temporal(&column.data_type)
                && column.data_type != "decimal" =>
        {
            My::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| format!("binary value `{s}` of `{}`: {e}", column.name))?,
            )
        }
        // Temporal text is accepted by the server with its `T` and without the `Z`.
        serde_json::Value::String(s) => My::Bytes(s.trim_end_matches('Z').as_bytes().to_vec()),
        other => My::Bytes(other.to_string().into_bytes()),
    })
}

fn is_temporal(data_type: &str) -> bool {
    matches!(
        data_type,
        "date" | "datetime" | "timestamp" | "time" | "year"
    )
}

/// Converts an event-model value to a query parameter.
pub(crate) fn to_param(v: &Value) -> Result<My, String> {
    Ok(match v {
        Value::Null => My::NULL,
        Value::Bool(b) => My::Int(i64::from(*b)),
        Value::Int(i) => My::Int(*i),
        Value::UInt(u) => My::UInt(*u),
        Value::Float(f) => My::Float(*f),
        Value::Double(d) => My::Double(*d),
        Value::Decimal(d) => My::Bytes(d.as_str().as_bytes().to_vec()),
        Value::String(s) | Value::Enum(s) => My::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => My::Bytes(b.clone()),
        Value::Json(j) => My::Bytes(j.as_str().as_bytes().to_vec()),
        Value::Set(labels) => My::Bytes(labels.join(",").into_bytes()),
        Value::Date(d) => My::Date(d.year, d.month, d.day, 0, 0, 0, 0),
        Value::DateTime(dt) => My::Date(
            dt.date.year,
            dt.date.month,
            dt.date.day,
            dt.hour,
            dt.minute,
            dt.second,
            dt.micros,
        ),
        Value::Timestamp(ts) => {
            let mut buf = Vec::new();
            stream_core::json::write_value(&mut buf, &Value::Timestamp(*ts));
            // "YYYY-MM-DDTHH:MM:SS[.f]Z" -> a UTC DATETIME literal for a session in +00:00.
            let s = String::from_utf8_lossy(&buf)
                .trim_matches('"')
                .trim_end_matches('Z')
                .replace('T', " ");
            My::Bytes(s.into_bytes())
        }
        Value::Time(t) => {
            let days = t.hours / 24;
            My::Time(
                t.negative,
                days,
                (t.hours % 24) as u8,
                t.minutes,
                t.seconds,
                t.micros,
            )
        }
        other => return Err(format!("{other:?} cannot be stored in MySQL")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(t: &str, unsigned: bool, fsp: u8) -> ColumnSchema {
        ColumnSchema {
            name: "c".into(),
            data_type: t.into(),
            unsigned,
            charset: Some("utf8mb4".into()),
            labels: Vec::new(),
            json: false,
            fsp,
            precision: None,
        }
    }

    #[test]
    fn typed_query_values_become_the_binlog_values() {
        assert_eq!(
            from_query(My::Int(-1), &col("bigint", true, 0)),
            Ok(Value::UInt(u64::MAX))
        );
        assert_eq!(
            from_query(My::Bytes(b"-1.50".to_vec()), &col("decimal", false, 0)),
            Ok(Value::Decimal(Decimal::parse("-1.50").expect("decimal")))
        );
        let Ok(Value::Timestamp(ts)) = from_query(
            My::Date(2024, 2, 29, 12, 34, 56, 789_000),
            &col("timestamp", false, 3),
        ) else {
            panic!("timestamp")
        };
        assert_eq!((ts.secs, ts.micros, ts.fsp), (1_709_210_096, 789_000, 3));
        let Ok(Value::Time(t)) =
            from_query(My::Time(true, 34, 22, 59, 59, 0), &col("time", false, 0))
        else {
            panic!("time")
        };
        assert_eq!((t.negative, t.hours), (true, 838));
        assert_eq!(
            from_query(My::Bytes(b"a,c".to_vec()), &col("set", false, 0)),
            Ok(Value::Set(vec!["a".into(), "c".into()]))
        );
        assert_eq!(
            from_query(My::Bytes(vec![0x0a, 0xaa]), &col("bit", false, 0)),
            Ok(Value::UInt(2730))
        );
    }

    #[test]
    fn params_round_trip_the_common_kinds() {
        assert_eq!(to_param(&Value::Int(5)), Ok(My::Int(5)));
        assert_eq!(
            to_param(&Value::String("x".into())),
            Ok(My::Bytes(b"x".to_vec()))
        );
        let ts = Timestamp::new(1_709_210_096, 789_000, 3).expect("ts");
        assert_eq!(
            to_param(&Value::Timestamp(ts)),
            Ok(My::Bytes(b"2024-02-29 12:34:56.789".to_vec()))
        );
        assert!(to_param(&Value::MinKey).is_err());
    }
}
