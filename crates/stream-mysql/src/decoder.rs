//! Row decoding straight from the bytes of WRITE/UPDATE/DELETE_ROWS events.
//!
//! A [`TableDecoder`] is built once per TABLE_MAP (names, signedness, charsets and labels
//! resolved up front), so decoding a cell is a `match` on a precomputed [`Kind`] and a few byte
//! reads; names are shared `Arc<str>`s, so a row costs one `Vec` plus the values themselves.

use std::sync::Arc;

use stream_core::{Name, Namespace, Row, Value};

use crate::charset::Charset;
use crate::chunks::RowInput;
use crate::schema::{Catalog, ColumnSchema, TableSchema};
use crate::tablemap::{MapColumn, TableMap, ty};

/// How one column's bytes are decoded.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Int {
        len: u8,
        unsigned: bool,
    },
    Year,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: u8,
    },
    Date,
    Time2 {
        fsp: u8,
    },
    TimeOld,
    DateTime2 {
        fsp: u8,
    },
    DateTimeOld,
    Timestamp2 {
        fsp: u8,
    },
    TimestampOld,
    Bit {
        bytes: u8,
    },
    Text {
        len_bytes: u8,
        charset: Charset,
    },
    Bytes {
        len_bytes: u8,
    },
    /// `BINARY(size)`: the row image drops trailing zero bytes, the column holds them.
    FixedBytes {
        len_bytes: u8,
        size: u16,
    },
    JsonText {
        len_bytes: u8,
        charset: Charset,
    },
    JsonBinary {
        len_bytes: u8,
    },
    Enum {
        pack: u8,
        labels: Arc<[String]>,
    },
    Set {
        pack: u8,
        labels: Arc<[String]>,
    },
    Geometry {
        len_bytes: u8,
    },
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

    /// Decodes one row image. `present` marks the columns the image holds, `present_count`
    /// of them; a bitmap shorter than the columns leaves the rest absent.
    pub(crate) fn decode_row<'a>(
        &self,
        r: &mut impl RowInput<'a>,
        present: &[u8],
        present_count: usize,
    ) -> Result<Row, DecodeError> {
        let bit = |bits: &[u8], i: usize| bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
        let nulls = r
            .bits(present_count.div_ceil(8), "the null bitmap")
            .map_err(|e| DecodeError {
                column: "(null bitmap)".into(),
                reason: e.0,
            })?;
        let nulls: &[u8] = &nulls;
        let mut values = Vec::with_capacity(present_count.min(self.columns.len()));
        let mut n = 0usize;
        for (i, col) in self.columns.iter().enumerate() {
            if !bit(present, i) {
                continue;
            }
            let is_null = bit(nulls, n);
            n += 1;
            let value = if is_null {
                Value::Null
            } else {
                r.value(&col.kind).map_err(|reason| DecodeError {
                    column: col.name.to_string(),
                    reason,
                })?
            };
            values.push(value);
        }
        if n == self.columns.len() {
            return Ok(Row::from_shared(self.names.clone(), values));
        }
        // A partial image (MINIMAL/NOBLOB): the row has names of its own.
        let names = (self.columns.iter().enumerate())
            .filter(|(i, _)| bit(present, *i))
            .map(|(_, c)| c.name.clone());
        Ok(names.zip(values).collect())
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
    // Metadata a server could not have written is refused here, before any row is read.
    let fsp = || match meta {
        0..=6 => Ok(meta as u8),
        _ => Err(format!(
            "fractional precision {meta} is out of range (0 to 6)"
        )),
    };
    let prefix = || match meta {
        1..=4 => Ok(meta as u8),
        _ => Err(format!("a length prefix of {meta} bytes is not 1 to 4")),
    };
    let pack = |max: u16| match meta & 0xff {
        n @ 1.. if n <= max => Ok(n as u8),
        n => Err(format!("a pack length of {n} bytes is not 1 to {max}")),
    };
    Ok(match mc.ty {
        ty::TINY => Kind::Int { len: 1, unsigned },
        ty::SHORT => Kind::Int { len: 2, unsigned },
        ty::INT24 => Kind::Int { len: 3, unsigned },
        ty::LONG => Kind::Int { len: 4, unsigned },
        ty::LONGLONG => Kind::Int { len: 8, unsigned },
        ty::YEAR => Kind::Year,
        ty::FLOAT => Kind::Float,
        ty::DOUBLE => Kind::Double,
        ty::NEWDECIMAL => {
            let (precision, scale) = ((meta >> 8) as u8, (meta & 0xff) as u8);
            if precision == 0 || precision > 65 || scale > precision.min(38) {
                return Err(format!("DECIMAL({precision},{scale}) is not a valid type"));
            }
            Kind::Decimal { precision, scale }
        }
        ty::DATE | ty::NEWDATE => Kind::Date,
        ty::TIME => Kind::TimeOld,
        ty::TIME2 => Kind::Time2 { fsp: fsp()? },
        ty::DATETIME => Kind::DateTimeOld,
        ty::DATETIME2 => Kind::DateTime2 { fsp: fsp()? },
        ty::TIMESTAMP => Kind::TimestampOld,
        ty::TIMESTAMP2 => Kind::Timestamp2 { fsp: fsp()? },
        ty::BIT => {
            let bits = u32::from(meta >> 8) + u32::from(meta & 0xff) * 8;
            if bits > 64 {
                return Err(format!("BIT({bits}) is wider than 64 bits"));
            }
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
                    Charset::Binary => Kind::FixedBytes {
                        len_bytes: len_bytes(max_len),
                        size: max_len,
                    },
                    charset => Kind::Text {
                        len_bytes: len_bytes(max_len),
                        charset,
                    },
                },
            }
        }
        ty::ENUM => Kind::Enum {
            pack: pack(2)?,
            labels: labels_of(mc, hint, catalog)?,
        },
        ty::SET => Kind::Set {
            pack: pack(8)?,
            labels: labels_of(mc, hint, catalog)?,
        },
        ty::BLOB | ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB => {
            let len_bytes = prefix()?;
            match charset_of(mc, hint, catalog)? {
                charset if hint.is_some_and(|h| h.json) => Kind::JsonText { len_bytes, charset },
                Charset::Binary => Kind::Bytes { len_bytes },
                charset => Kind::Text { len_bytes, charset },
            }
        }
        ty::JSON => Kind::JsonBinary {
            len_bytes: prefix()?,
        },
        ty::GEOMETRY => Kind::Geometry {
            len_bytes: prefix()?,
        },
        ty::NULL => Kind::Null,
        other => return Err(format!("binlog column type {other} is not supported")),
    })
}
