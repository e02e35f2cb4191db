//! Row decoding straight from the bytes of WRITE/UPDATE/DELETE_ROWS events.
//!
//! A [`TableDecoder`] is built once per TABLE_MAP (names, signedness, charsets and labels
//! resolved up front), so decoding a cell is a `match` on a precomputed [`Kind`] and a few byte
//! reads; names are shared `Arc<str>`s, so a row costs one `Vec` plus the values themselves.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use stream_core::{Date, DateTime, Decimal, Json, Name, Namespace, Row, Time, Timestamp, Value};

use crate::binary::{Malformed, Reader};
use crate::charset::Charset;
use crate::decimal::decode_decimal;
use crate::schema::{Catalog, ColumnSchema, TableSchema};
use crate::tablemap::{MapColumn, TableMap, ty};

/// How one column's bytes are decoded.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Int { len: u8, unsigned: bool },
    Year,
    Float,
    Double,
    Decimal { precision: u8, scale: u8 },
    Date,
    Time2 { fsp: u8 },
    TimeOld,
    DateTime2 { fsp: u8 },
    DateTimeOld,
    Timestamp2 { fsp: u8 },
    TimestampOld,
    Bit { bytes: u8 },
    Text { len_bytes: u8, charset: Charset },
    Bytes { len_bytes: u8 },
    JsonText { len_bytes: u8, charset: Charset },
    JsonBinary { len_bytes: u8 },
    Enum { pack: u8, labels: Arc<[String]> },
    Set { pack: u8, labels: Arc<[String]> },
    Geometry { len_bytes: u8 },
    Uuid,
    Inet4,
    Inet6,
    Null,
}

#[derive(Debug, Clone)]
pub(crate) struct ColumnDecoder {
    pub(crate) name: Name,
    pub(crate) kind: Kind,
}

/// Everything needed to decode the rows of one table as of one TABLE_MAP.
#[derive(Debug, Clone)]
pub(crate) struct TableDecoder {
    pub(crate) namespace: Namespace,
    pub(crate) columns: Vec<ColumnDecoder>,
    /// Primary-key column indexes; empty when the table has none.
    pub(crate) key: Vec<usize>,
    /// Every column's name, shared by the rows that carry all columns (full row images).
    names: Arc<[Name]>,
    /// The primary-key columns' names, shared by the keys.
    key_names: Arc<[Name]>,
}

/// A value that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub(crate) column: String,
    pub(crate) reason: String,
}

/// The schema we have does not describe the rows the binlog holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaMismatch(pub(crate) String);

/// information_schema data types that may sit behind each binlog type.
fn compatible(binlog_ty: u8, data_type: &str) -> bool {
    match binlog_ty {
        ty::TINY => matches!(data_type, "tinyint" | "bool" | "boolean"),
        ty::SHORT => data_type == "smallint",
        ty::INT24 => data_type == "mediumint",
        ty::LONG => matches!(data_type, "int" | "integer"),
        ty::LONGLONG => data_type == "bigint",
        ty::FLOAT => data_type == "float",
        ty::DOUBLE => matches!(data_type, "double" | "real" | "double precision"),
        ty::NEWDECIMAL | ty::DECIMAL => matches!(data_type, "decimal" | "numeric"),
        ty::YEAR => data_type == "year",
        ty::DATE | ty::NEWDATE => data_type == "date",
        ty::TIME | ty::TIME2 => data_type == "time",
        ty::DATETIME | ty::DATETIME2 => data_type == "datetime",
        ty::TIMESTAMP | ty::TIMESTAMP2 => data_type == "timestamp",
        ty::BIT => data_type == "bit",
        ty::VARCHAR | ty::VAR_STRING => matches!(data_type, "varchar" | "varbinary"),
        ty::STRING => matches!(data_type, "char" | "binary" | "uuid" | "inet4" | "inet6"),
        ty::ENUM => data_type == "enum",
        ty::SET => data_type == "set",
        ty::BLOB => {
            data_type.ends_with("text") || data_type.ends_with("blob") || data_type == "json"
        }
        ty::JSON => data_type == "json",
        ty::GEOMETRY => matches!(
            data_type,
            "geometry"
                | "point"
                | "linestring"
                | "polygon"
                | "multipoint"
                | "multilinestring"
                | "multipolygon"
                | "geometrycollection"
                | "geomcollection"
        ),
        ty::NULL => true,
        _ => false,
    }
}

fn type_name(t: u8) -> String {
    let name = match t {
        ty::TINY => "TINYINT",
        ty::SHORT => "SMALLINT",
        ty::INT24 => "MEDIUMINT",
        ty::LONG => "INT",
        ty::LONGLONG => "BIGINT",
        ty::FLOAT => "FLOAT",
        ty::DOUBLE => "DOUBLE",
        ty::NEWDECIMAL => "DECIMAL",
        ty::YEAR => "YEAR",
        ty::DATE | ty::NEWDATE => "DATE",
        ty::TIME | ty::TIME2 => "TIME",
        ty::DATETIME | ty::DATETIME2 => "DATETIME",
        ty::TIMESTAMP | ty::TIMESTAMP2 => "TIMESTAMP",
        ty::BIT => "BIT",
        ty::VARCHAR | ty::VAR_STRING => "VARCHAR/VARBINARY",
        ty::STRING => "CHAR/BINARY",
        ty::ENUM => "ENUM",
        ty::SET => "SET",
        ty::BLOB => "TEXT/BLOB",
        ty::JSON => "JSON",
        ty::GEOMETRY => "GEOMETRY",
        other => return format!("type {other}"),
    };
    name.to_owned()
}

impl TableDecoder {
    /// Resolves every column of `map`, using `schema` for what the TABLE_MAP lacks.
    ///
    /// Without column names in the TABLE_MAP (NO_LOG/MINIMAL metadata) the schema must match
    /// the binlog column for column, or the table fails with a [`SchemaMismatch`] rather than
    /// have its columns misnamed.
    pub(crate) fn build(
        map: &TableMap,
        schema: Option<&TableSchema>,
        catalog: &Catalog,
    ) -> Result<Self, SchemaMismatch> {
        let ns = format!("{}.{}", map.db, map.table);
        if !map.has_names {
            let Some(s) = schema else {
                return Err(SchemaMismatch(format!(
                    "no definition of {ns} is known at this position and the binlog carries no \
                     column names (binlog_row_metadata is not FULL); set binlog_row_metadata=FULL \
                     on the server or start from a position after the table was created"
                )));
            };
            if s.columns.len() != map.columns.len() {
                return Err(SchemaMismatch(format!(
                    "the binlog row has {} columns but the known definition of {ns} has {} ({}); \
                     the table changed after this position and binlog_row_metadata is not FULL",
                    map.columns.len(),
                    s.columns.len(),
                    s.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            for (i, (mc, sc)) in map.columns.iter().zip(&s.columns).enumerate() {
                if !compatible(mc.ty, &sc.data_type) {
                    return Err(SchemaMismatch(format!(
                        "column {} of {ns} is {} in the binlog but `{}` is {} in the known \
                         definition; the table changed after this position",
                        i + 1,
                        type_name(mc.ty),
                        sc.name,
                        sc.data_type
                    )));
                }
            }
        }
        let mut columns = Vec::with_capacity(map.columns.len());
        for (i, mc) in map.columns.iter().enumerate() {
            let hint: Option<&ColumnSchema> = match (&mc.name, schema) {
                (Some(name), Some(s)) => s
                    .columns
                    .iter()
                    .find(|c| &c.name == name)
                    .filter(|c| compatible(mc.ty, &c.data_type)),
                (None, Some(s)) => s.columns.get(i),
                _ => None,
            };
            let name: Name = match (&mc.name, hint) {
                (Some(n), _) => n.as_str().into(),
                (None, Some(h)) => h.name.as_str().into(),
                (None, None) => format!("#{}", i + 1).into(),
            };
            let kind = kind_of(mc, hint, catalog)
                .map_err(|reason| SchemaMismatch(format!("column `{name}` of {ns}: {reason}")))?;
            columns.push(ColumnDecoder { name, kind });
        }
        let key = match (&map.primary_key, schema) {
            (Some(pk), _) => pk.clone(),
            (None, Some(s)) if map.has_names => s
                .primary_key
                .iter()
                .filter_map(|&i| s.columns.get(i))
                .filter_map(|c| columns.iter().position(|d| *d.name == *c.name))
                .collect(),
            (None, Some(s)) => s.primary_key.clone(),
            (None, None) => Vec::new(),
        };
        let names: Arc<[Name]> = columns.iter().map(|c| c.name.clone()).collect();
        let key_names: Arc<[Name]> = key
            .iter()
            .filter_map(|&i| columns.get(i).map(|c| c.name.clone()))
            .collect();
        Ok(Self {
            namespace: Namespace::new(map.db.as_str(), map.table.as_str()),
            columns,
            key,
            names,
            key_names,
        })
    }

    /// Decodes one row image. `present` marks the columns the image holds.
    pub(crate) fn decode_row(
        &self,
        r: &mut Reader<'_>,
        present: &[u8],
        present_count: usize,
    ) -> Result<Row, DecodeError> {
        let nulls = r
            .take(present_count.div_ceil(8), "the null bitmap")
            .map_err(|e| DecodeError {
                column: "(null bitmap)".into(),
                reason: e.0,
            })?;
        let mut values = Vec::with_capacity(present_count);
        let mut partial = Vec::new();
        let mut n = 0usize;
        for (i, col) in self.columns.iter().enumerate() {
            if present[i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let is_null = nulls[n / 8] & (1 << (n % 8)) != 0;
            n += 1;
            let value = if is_null {
                Value::Null
            } else {
                decode_value(r, &col.kind).map_err(|reason| DecodeError {
                    column: col.name.to_string(),
                    reason,
                })?
            };
            if present_count < self.columns.len() {
                partial.push(col.name.clone());
            }
            values.push(value);
        }
        if present_count < self.columns.len() {
            // A partial image (MINIMAL/NOBLOB): the row has names of its own.
            return Ok(partial.into_iter().zip(values).collect());
        }
        Ok(Row::from_shared(self.names.clone(), values))
    }

    /// The primary-key columns of a decoded row, or `None` when the table has no key.
    pub(crate) fn key_of(&self, row: &Row) -> Option<Row> {
        if self.key.is_empty() {
            return None;
        }
        let values = self
            .key_names
            .iter()
            .map(|name| row.get(name).cloned().unwrap_or(Value::Null))
            .collect();
        Some(Row::from_shared(self.key_names.clone(), values))
    }
}

fn charset_of(
    mc: &MapColumn,
    hint: Option<&ColumnSchema>,
    catalog: &Catalog,
) -> Result<Charset, String> {
    let name = match (mc.collation, hint) {
        (Some(id), _) => catalog
            .collations
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("unknown collation id {id}"))?,
        (None, Some(h)) => h.charset.clone().unwrap_or_else(|| "binary".to_owned()),
        // No charset information at all: treat as UTF-8 text (the server default).
        (None, None) => "utf8mb4".to_owned(),
    };
    Charset::from_mysql_name(&name)
        .ok_or_else(|| format!("character set `{name}` is not supported"))
}

fn labels_of(
    mc: &MapColumn,
    hint: Option<&ColumnSchema>,
    catalog: &Catalog,
) -> Result<Arc<[String]>, String> {
    match (&mc.labels, hint) {
        (Some(l), _) => {
            let charset = charset_of(mc, hint, catalog)?;
            Ok(l.iter().map(|b| charset.decode_lossy(b)).collect())
        }
        (None, Some(h)) if !h.labels.is_empty() => Ok(h.labels.clone().into()),
        _ => Err("ENUM/SET labels are unknown (no FULL metadata and no definition)".into()),
    }
}

fn kind_of(mc: &MapColumn, hint: Option<&ColumnSchema>, catalog: &Catalog) -> Result<Kind, String> {
    let unsigned = mc.unsigned.or(hint.map(|h| h.unsigned)).unwrap_or(false);
    let data_type = hint.map_or("", |h| h.data_type.as_str());
    let meta = mc.meta;
    let len_bytes = |n: u16| -> u8 { if n > 255 { 2 } else { 1 } };
    Ok(match mc.ty {
        ty::TINY => Kind::Int { len: 1, unsigned },
        ty::SHORT => Kind::Int { len: 2, unsigned },
        ty::INT24 => Kind::Int { len: 3, unsigned },
        ty::LONG => Kind::Int { len: 4, unsigned },
        ty::LONGLONG => Kind::Int { len: 8, unsigned },
        ty::YEAR => Kind::Year,
        ty::FLOAT => Kind::Float,
        ty::DOUBLE => Kind::Double,
        ty::NEWDECIMAL => Kind::Decimal {
            precision: (meta >> 8) as u8,
            scale: (meta & 0xff) as u8,
        },
        ty::DATE | ty::NEWDATE => Kind::Date,
        ty::TIME => Kind::TimeOld,
        ty::TIME2 => Kind::Time2 { fsp: meta as u8 },
        ty::DATETIME => Kind::DateTimeOld,
        ty::DATETIME2 => Kind::DateTime2 { fsp: meta as u8 },
        ty::TIMESTAMP => Kind::TimestampOld,
        ty::TIMESTAMP2 => Kind::Timestamp2 { fsp: meta as u8 },
        ty::BIT => {
            let bits = u32::from(meta >> 8) + u32::from(meta & 0xff) * 8;
            Kind::Bit {
                bytes: bits.div_ceil(8) as u8,
            }
        }
        ty::VARCHAR | ty::VAR_STRING => match charset_of(mc, hint, catalog)? {
            Charset::Binary => Kind::Bytes {
                len_bytes: len_bytes(meta),
            },
            charset => Kind::Text {
                len_bytes: len_bytes(meta),
                charset,
            },
        },
        ty::STRING => {
            let b0 = meta >> 8;
            let b1 = meta & 0xff;
            let max_len = if b0 != 0 && (b0 & 0x30) != 0x30 {
                b1 | (((b0 & 0x30) ^ 0x30) << 4)
            } else {
                b1
            };
            match data_type {
                "uuid" => Kind::Uuid,
                "inet6" => Kind::Inet6,
                "inet4" => Kind::Inet4,
                _ => match charset_of(mc, hint, catalog)? {
                    Charset::Binary => Kind::Bytes {
                        len_bytes: len_bytes(max_len),
                    },
                    charset => Kind::Text {
                        len_bytes: len_bytes(max_len),
                        charset,
                    },
                },
            }
        }
        ty::ENUM => Kind::Enum {
            pack: (meta & 0xff) as u8,
            labels: labels_of(mc, hint, catalog)?,
        },
        ty::SET => Kind::Set {
            pack: (meta & 0xff) as u8,
            labels: labels_of(mc, hint, catalog)?,
        },
        ty::BLOB | ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB => {
            let len_bytes = meta as u8;
            match charset_of(mc, hint, catalog)? {
                charset if hint.is_some_and(|h| h.json) => Kind::JsonText { len_bytes, charset },
                Charset::Binary => Kind::Bytes { len_bytes },
                charset => Kind::Text { len_bytes, charset },
            }
        }
        ty::JSON => Kind::JsonBinary {
            len_bytes: meta as u8,
        },
        ty::GEOMETRY => Kind::Geometry {
            len_bytes: meta as u8,
        },
        ty::NULL => Kind::Null,
        other => return Err(format!("binlog column type {other} is not supported")),
    })
}

fn malformed(e: Malformed) -> String {
    e.0
}

fn sign_extend(v: u64, bytes: u8) -> i64 {
    let shift = 64 - u32::from(bytes) * 8;
    ((v << shift) as i64) >> shift
}

/// Fraction of a temporal2 value: `(fsp+1)/2` big-endian bytes, scaled to microseconds.
fn frac_micros(r: &mut Reader<'_>, fsp: u8) -> Result<u32, String> {
    Ok(match fsp {
        0 => 0,
        1 | 2 => r.uint_be(1, "fractional seconds").map_err(malformed)? as u32 * 10_000,
        3 | 4 => r.uint_be(2, "fractional seconds").map_err(malformed)? as u32 * 100,
        5 | 6 => r.uint_be(3, "fractional seconds").map_err(malformed)? as u32,
        other => return Err(format!("fractional precision {other} is out of range")),
    })
}

fn temporal_err(e: stream_core::ValueError) -> String {
    e.to_string()
}

fn read_len(r: &mut Reader<'_>, len_bytes: u8) -> Result<usize, String> {
    let n = r
        .uint_le(usize::from(len_bytes), "a length prefix")
        .map_err(malformed)?;
    usize::try_from(n).map_err(|_| "length does not fit in memory".to_owned())
}

fn decode_value(r: &mut Reader<'_>, kind: &Kind) -> Result<Value, String> {
    Ok(match kind {
        Kind::Int { len, unsigned } => {
            let raw = r
                .uint_le(usize::from(*len), "an integer")
                .map_err(malformed)?;
            if *unsigned {
                Value::UInt(raw)
            } else {
                Value::Int(sign_extend(raw, *len))
            }
        }
        Kind::Year => {
            let y = r.u8("a YEAR").map_err(malformed)?;
            Value::Int(if y == 0 { 0 } else { 1900 + i64::from(y) })
        }
        Kind::Float => {
            let b = r.take(4, "a FLOAT").map_err(malformed)?;
            Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        Kind::Double => {
            let b = r.take(8, "a DOUBLE").map_err(malformed)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Value::Double(f64::from_le_bytes(a))
        }
        Kind::Decimal { precision, scale } => Value::Decimal(Decimal::from_plain_unchecked(
            decode_decimal(r, *precision, *scale).map_err(malformed)?,
        )),
        Kind::Date => {
            let v = r.uint_le(3, "a DATE").map_err(malformed)?;
            Value::Date(date_of(v)?)
        }
        Kind::Time2 { fsp } => {
            let intpart = r.uint_be(3, "a TIME").map_err(malformed)? as i64 - 0x80_0000;
            let packed: i64 = match fsp {
                0 => intpart << 24,
                1 | 2 => {
                    let mut frac = r.uint_be(1, "a TIME fraction").map_err(malformed)? as i64;
                    let mut ip = intpart;
                    if ip < 0 && frac != 0 {
                        ip += 1;
                        frac -= 0x100;
                    }
                    (ip << 24) + frac * 10_000
                }
                3 | 4 => {
                    let mut frac = r.uint_be(2, "a TIME fraction").map_err(malformed)? as i64;
                    let mut ip = intpart;
                    if ip < 0 && frac != 0 {
                        ip += 1;
                        frac -= 0x10000;
                    }
                    (ip << 24) + frac * 100
                }
                _ => {
                    let frac = r.uint_be(3, "a TIME fraction").map_err(malformed)? as i64;
                    // 6-byte big-endian value minus TIMEF_OFS, here split in 3 + 3 bytes.
                    (((intpart + 0x80_0000) << 24) | frac) - 0x8000_0000_0000
                }
            };
            let negative = packed < 0;
            let abs = packed.unsigned_abs();
            let hms = abs >> 24;
            let micros = (abs & 0xff_ffff) as u32;
            Value::Time(
                Time::new(
                    negative,
                    ((hms >> 12) & 0x3ff) as u32,
                    ((hms >> 6) & 0x3f) as u8,
                    (hms & 0x3f) as u8,
                    micros,
                    *fsp,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::TimeOld => {
            let v = sign_extend(r.uint_le(3, "a TIME").map_err(malformed)?, 3);
            let a = v.unsigned_abs();
            Value::Time(
                Time::new(
                    v < 0,
                    (a / 10_000) as u32,
                    (a / 100 % 100) as u8,
                    (a % 100) as u8,
                    0,
                    0,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::DateTime2 { fsp } => {
            let packed = r.uint_be(5, "a DATETIME").map_err(malformed)? as i64 - 0x80_0000_0000;
            let micros = frac_micros(r, *fsp)?;
            let packed = packed.unsigned_abs();
            let ymd = packed >> 17;
            let hms = packed % (1 << 17);
            let ym = ymd >> 5;
            let date = Date::new((ym / 13) as u16, (ym % 13) as u8, (ymd % 32) as u8)
                .map_err(temporal_err)?;
            Value::DateTime(
                DateTime::new(
                    date,
                    (hms >> 12) as u8,
                    ((hms >> 6) % 64) as u8,
                    (hms % 64) as u8,
                    micros,
                    *fsp,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::DateTimeOld => {
            let v = r.uint_le(8, "a DATETIME").map_err(malformed)?;
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            let date = Date::new((d / 10_000) as u16, (d / 100 % 100) as u8, (d % 100) as u8)
                .map_err(temporal_err)?;
            Value::DateTime(
                DateTime::new(
                    date,
                    (t / 10_000) as u8,
                    (t / 100 % 100) as u8,
                    (t % 100) as u8,
                    0,
                    0,
                )
                .map_err(temporal_err)?,
            )
        }
        Kind::Timestamp2 { fsp } => {
            let secs = r.uint_be(4, "a TIMESTAMP").map_err(malformed)? as i64;
            let micros = frac_micros(r, *fsp)?;
            Value::Timestamp(Timestamp::new(secs, micros, *fsp).map_err(temporal_err)?)
        }
        Kind::TimestampOld => {
            let secs = r.uint_le(4, "a TIMESTAMP").map_err(malformed)? as i64;
            Value::Timestamp(Timestamp::new(secs, 0, 0).map_err(temporal_err)?)
        }
        Kind::Bit { bytes } => {
            Value::UInt(r.uint_be(usize::from(*bytes), "a BIT").map_err(malformed)?)
        }
        Kind::Text { len_bytes, charset } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a text value").map_err(malformed)?;
            Value::String(charset.decode(b)?)
        }
        Kind::Bytes { len_bytes } => {
            let n = read_len(r, *len_bytes)?;
            Value::Bytes(r.take(n, "a binary value").map_err(malformed)?.to_vec())
        }
        Kind::JsonText { len_bytes, charset } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a JSON value").map_err(malformed)?;
            Value::Json(Json::parse(&charset.decode_borrowed(b)?).map_err(|e| e.to_string())?)
        }
        Kind::JsonBinary { len_bytes } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a JSON value").map_err(malformed)?;
            Value::Json(mysql_binary_json(b)?)
        }
        Kind::Enum { pack, labels } => {
            let idx = r
                .uint_le(usize::from(*pack), "an ENUM")
                .map_err(malformed)? as usize;
            match idx {
                0 => Value::Enum(String::new()),
                i => Value::Enum(labels.get(i - 1).cloned().ok_or_else(|| {
                    format!("ENUM index {i} is past its {} labels", labels.len())
                })?),
            }
        }
        Kind::Set { pack, labels } => {
            let bits = r.uint_le(usize::from(*pack), "a SET").map_err(malformed)?;
            let mut chosen = Vec::new();
            for (i, label) in labels.iter().enumerate().take(64) {
                if bits & (1u64 << i) != 0 {
                    chosen.push(label.clone());
                }
            }
            if labels.len() < 64 && bits >> labels.len() != 0 {
                return Err(format!(
                    "SET bits {bits:#x} name members past its {} labels",
                    labels.len()
                ));
            }
            Value::Set(chosen)
        }
        Kind::Geometry { len_bytes } => {
            let n = read_len(r, *len_bytes)?;
            let b = r.take(n, "a GEOMETRY").map_err(malformed)?;
            // Stored as a 4-byte SRID followed by the WKB.
            Value::Bytes(b.get(4..).unwrap_or_default().to_vec())
        }
        Kind::Uuid => {
            let b = fixed_binary(r, 16)?;
            Value::String(mariadb_uuid_text(&b))
        }
        Kind::Inet6 => {
            let b = fixed_binary(r, 16)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&b);
            Value::String(Ipv6Addr::from(a).to_string())
        }
        Kind::Inet4 => {
            let b = fixed_binary(r, 4)?;
            Value::String(Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
        }
        Kind::Null => Value::Null,
    })
}

fn date_of(v: u64) -> Result<Date, String> {
    Date::new((v >> 9) as u16, ((v >> 5) & 15) as u8, (v & 31) as u8).map_err(temporal_err)
}

/// A fixed-size binary value (length-prefixed, trailing zero bytes possibly trimmed).
fn fixed_binary(r: &mut Reader<'_>, size: usize) -> Result<Vec<u8>, String> {
    let n = read_len(r, 1)?;
    let mut b = r
        .take(n, "a fixed-size binary value")
        .map_err(malformed)?
        .to_vec();
    if b.len() > size {
        return Err(format!("{} bytes where {size} were expected", b.len()));
    }
    b.resize(size, 0);
    Ok(b)
}

/// MariaDB's UUID as canonical text (the row image holds the 16 bytes in display order).
fn mariadb_uuid_text(stored: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, b) in stored.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

fn mysql_binary_json(bytes: &[u8]) -> Result<Json, String> {
    use mysql_common::io::ParseBuf;
    use mysql_common::proto::MyDeserialize;
    if bytes.is_empty() {
        return Ok(Json::from_compact_unchecked("null".to_owned()));
    }
    let mut buf = ParseBuf(bytes);
    let value = mysql_common::binlog::jsonb::Value::deserialize((), &mut buf)
        .map_err(|e| format!("binary JSON: {e}"))?;
    let dom = value.parse().map_err(|e| format!("binary JSON: {e}"))?;
    let json: serde_json::Value = dom.into();
    Ok(Json::from_compact_unchecked(json.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: Kind, bytes: &[u8]) -> Value {
        decode_value(&mut Reader::new(bytes), &kind).expect("decode")
    }

    #[test]
    fn integers_are_sign_extended_or_unsigned_per_column() {
        assert_eq!(
            one(
                Kind::Int {
                    len: 3,
                    unsigned: false
                },
                &[0, 0, 0x80]
            ),
            Value::Int(-8_388_608)
        );
        assert_eq!(
            one(
                Kind::Int {
                    len: 3,
                    unsigned: true
                },
                &[0xff, 0xff, 0xff]
            ),
            Value::UInt(16_777_215)
        );
        assert_eq!(
            one(
                Kind::Int {
                    len: 8,
                    unsigned: true
                },
                &[0xff; 8]
            ),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            one(
                Kind::Int {
                    len: 1,
                    unsigned: false
                },
                &[0x80]
            ),
            Value::Int(-128)
        );
        assert_eq!(one(Kind::Year, &[124]), Value::Int(2024));
        assert_eq!(one(Kind::Year, &[0]), Value::Int(0));
    }

    #[test]
    fn temporal2_formats_decode() {
        // DATETIME(0) 2024-02-29 12:34:56: ym = 2024*13+2, ymd = ym<<5 | 29, hms = 12<<12|34<<6|56.
        let ym: u64 = 2024 * 13 + 2;
        let packed = (((ym << 5) | 29) << 17) | (12 << 12) | (34 << 6) | 56;
        let v = packed + 0x80_0000_0000;
        let bytes = &v.to_be_bytes()[3..];
        let Value::DateTime(dt) = one(Kind::DateTime2 { fsp: 0 }, bytes) else {
            panic!()
        };
        assert_eq!(
            (
                dt.date.year,
                dt.date.month,
                dt.date.day,
                dt.hour,
                dt.minute,
                dt.second
            ),
            (2024, 2, 29, 12, 34, 56)
        );
        // TIME(0) -00:00:01: intpart = -1 -> stored 0x7fffff.
        let Value::Time(t) = one(Kind::Time2 { fsp: 0 }, &[0x7f, 0xff, 0xff]) else {
            panic!()
        };
        assert!(t.negative);
        assert_eq!((t.hours, t.minutes, t.seconds), (0, 0, 1));
    }

    #[test]
    fn truncated_values_name_what_was_being_read() {
        let err = decode_value(&mut Reader::new(&[1, 2]), &Kind::Double).expect_err("short");
        assert!(err.contains("a DOUBLE"), "{err}");
        let labels: Arc<[String]> = vec!["a".to_owned()].into();
        let err = decode_value(&mut Reader::new(&[5]), &Kind::Enum { pack: 1, labels })
            .expect_err("bad index");
        assert!(err.contains("ENUM index 5"), "{err}");
    }
}
