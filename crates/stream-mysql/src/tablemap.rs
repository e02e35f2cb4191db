//! TABLE_MAP events: column types, per-type metadata and (with `binlog_row_metadata=FULL`) the
//! optional metadata: names, signedness, charsets, ENUM/SET labels, primary key.

use crate::binary::{Malformed, Reader, Result};

/// Binlog column type codes (`enum_field_types`).
pub(crate) mod ty {
    pub(crate) const DECIMAL: u8 = 0;
    pub(crate) const TINY: u8 = 1;
    pub(crate) const SHORT: u8 = 2;
    pub(crate) const LONG: u8 = 3;
    pub(crate) const FLOAT: u8 = 4;
    pub(crate) const DOUBLE: u8 = 5;
    pub(crate) const NULL: u8 = 6;
    pub(crate) const TIMESTAMP: u8 = 7;
    pub(crate) const LONGLONG: u8 = 8;
    pub(crate) const INT24: u8 = 9;
    pub(crate) const DATE: u8 = 10;
    pub(crate) const TIME: u8 = 11;
    pub(crate) const DATETIME: u8 = 12;
    pub(crate) const YEAR: u8 = 13;
    pub(crate) const NEWDATE: u8 = 14;
    pub(crate) const VARCHAR: u8 = 15;
    pub(crate) const BIT: u8 = 16;
    pub(crate) const TIMESTAMP2: u8 = 17;
    pub(crate) const DATETIME2: u8 = 18;
    pub(crate) const TIME2: u8 = 19;
    pub(crate) const JSON: u8 = 245;
    pub(crate) const NEWDECIMAL: u8 = 246;
    pub(crate) const ENUM: u8 = 247;
    pub(crate) const SET: u8 = 248;
    pub(crate) const TINY_BLOB: u8 = 249;
    pub(crate) const MEDIUM_BLOB: u8 = 250;
    pub(crate) const LONG_BLOB: u8 = 251;
    pub(crate) const BLOB: u8 = 252;
    pub(crate) const VAR_STRING: u8 = 253;
    pub(crate) const STRING: u8 = 254;
    pub(crate) const GEOMETRY: u8 = 255;
}

/// One column as the TABLE_MAP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MapColumn {
    /// Binlog type; for STRING columns the real type (STRING, ENUM or SET).
    pub(crate) ty: u8,
    /// Type metadata: fsp, precision/scale, max length, pack length (meaning depends on `ty`).
    pub(crate) meta: u16,
    pub(crate) nullable: bool,
    /// From optional metadata (FULL): `Some(true)` for UNSIGNED numeric columns.
    pub(crate) unsigned: Option<bool>,
    /// From optional metadata (FULL): the column's collation id.
    pub(crate) collation: Option<u32>,
    /// From optional metadata (FULL).
    pub(crate) name: Option<String>,
    /// From optional metadata (FULL): ENUM or SET labels, in the column's character set.
    pub(crate) labels: Option<Vec<Vec<u8>>>,
}

/// A parsed TABLE_MAP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableMap {
    pub(crate) table_id: u64,
    pub(crate) db: String,
    pub(crate) table: String,
    pub(crate) columns: Vec<MapColumn>,
    /// Primary-key column indexes, from optional metadata (FULL).
    pub(crate) primary_key: Option<Vec<usize>>,
    /// Whether column names came with the event (binlog_row_metadata=FULL).
    pub(crate) has_names: bool,
}

fn is_numeric(ty: u8) -> bool {
    matches!(
        ty,
        ty::TINY
            | ty::SHORT
            | ty::INT24
            | ty::LONG
            | ty::LONGLONG
            | ty::DECIMAL
            | ty::NEWDECIMAL
            | ty::FLOAT
            | ty::DOUBLE
            | ty::YEAR
    )
}

fn is_character(ty: u8) -> bool {
    matches!(ty, ty::STRING | ty::VAR_STRING | ty::VARCHAR | ty::BLOB)
}

fn is_enum_or_set(ty: u8) -> bool {
    matches!(ty, ty::ENUM | ty::SET)
}

/// Bytes of per-column metadata for a binlog type.
fn meta_len(ty: u8) -> usize {
    match ty {
        ty::FLOAT
        | ty::DOUBLE
        | ty::BLOB
        | ty::TINY_BLOB
        | ty::MEDIUM_BLOB
        | ty::LONG_BLOB
        | ty::GEOMETRY
        | ty::JSON
        | ty::TIMESTAMP2
        | ty::DATETIME2
        | ty::TIME2 => 1,
        ty::VARCHAR
        | ty::VAR_STRING
        | ty::BIT
        | ty::NEWDECIMAL
        | ty::DECIMAL
        | ty::STRING
        | ty::ENUM
        | ty::SET => 2,
        _ => 0,
    }
}

/// `db.table` of a TABLE_MAP event, as far as it can be read (for errors about the rest).
pub(crate) fn name_of(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    r.take(8, "").ok()?;
    let db_len = usize::from(r.u8("").ok()?);
    let db = r.take(db_len, "").ok()?;
    r.u8("").ok()?;
    let table_len = usize::from(r.u8("").ok()?);
    let table = r.take(table_len, "").ok()?;
    Some(format!(
        "{}.{}",
        String::from_utf8_lossy(db),
        String::from_utf8_lossy(table)
    ))
}

impl TableMap {
    /// Parses a TABLE_MAP event body (after the common header, without checksum).
    pub(crate) fn parse(data: &[u8]) -> Result<Self> {
        let mut r = Reader::new(data);
        let table_id = r.uint_le(6, "the table id")?;
        let _flags = r.uint_le(2, "the table map flags")?;
        let db_len = usize::from(r.u8("the database name length")?);
        let db = String::from_utf8_lossy(r.take(db_len, "the database name")?).into_owned();
        r.u8("the database name terminator")?;
        let table_len = usize::from(r.u8("the table name length")?);
        let table = String::from_utf8_lossy(r.take(table_len, "the table name")?).into_owned();
        r.u8("the table name terminator")?;
        let count = r.lenenc("the column count")?;
        let count =
            usize::try_from(count).map_err(|_| Malformed(format!("{count} columns announced")))?;
        let types = r.take(count, "the column types")?.to_vec();
        let meta_block = r.lenenc_bytes("the column metadata")?;
        let mut mr = Reader::new(meta_block);
        let mut columns = Vec::with_capacity(count);
        for &t in &types {
            let mut ty = t;
            let meta = match meta_len(t) {
                0 => 0u16,
                1 => u16::from(mr.u8("column metadata")?),
                _ => {
                    let b = mr.take(2, "column metadata")?;
                    match t {
                        // STRING, ENUM, SET: real type byte first, then length.
                        ty::STRING | ty::ENUM | ty::SET => (u16::from(b[0]) << 8) | u16::from(b[1]),
                        // NEWDECIMAL: precision then scale; BIT: bits then bytes.
                        ty::NEWDECIMAL | ty::DECIMAL | ty::BIT => {
                            (u16::from(b[0]) << 8) | u16::from(b[1])
                        }
                        // VARCHAR: little-endian max length.
                        _ => u16::from_le_bytes([b[0], b[1]]),
                    }
                }
            };
            if t == ty::STRING {
                let b0 = (meta >> 8) as u8;
                if b0 != 0 {
                    let real = b0 | 0x30;
                    if real == ty::ENUM || real == ty::SET {
                        ty = real;
                    }
                }
            }
            columns.push(MapColumn {
                ty,
                meta,
                nullable: false,
                unsigned: None,
                collation: None,
                name: None,
                labels: None,
            });
        }
        let nulls = r.take(count.div_ceil(8), "the null bitmap")?;
        for (i, c) in columns.iter_mut().enumerate() {
            c.nullable = nulls[i / 8] & (1 << (i % 8)) != 0;
        }
        let mut map = TableMap {
            table_id,
            db,
            table,
            columns,
            primary_key: None,
            has_names: false,
        };
        while !r.is_empty() {
            let field = r.u8("optional metadata type")?;
            let value = r.lenenc_bytes("optional metadata")?;
            map.apply_optional(field, value)?;
        }
        Ok(map)
    }

    fn indexes_where(&self, pred: fn(u8) -> bool) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| pred(c.ty))
            .map(|(i, _)| i)
            .collect()
    }

    fn apply_optional(&mut self, field: u8, value: &[u8]) -> Result<()> {
        let mut r = Reader::new(value);
        match field {
            // SIGNEDNESS: one bit per numeric column, most significant bit first.
            1 => {
                for (n, idx) in self.indexes_where(is_numeric).into_iter().enumerate() {
                    let byte = value.get(n / 8).copied().unwrap_or(0);
                    self.columns[idx].unsigned = Some(byte & (0x80 >> (n % 8)) != 0);
                }
            }
            // DEFAULT_CHARSET / ENUM_AND_SET_DEFAULT_CHARSET: default, then (index, collation).
            2 | 10 => {
                let targets = self.indexes_where(if field == 2 {
                    is_character
                } else {
                    is_enum_or_set
                });
                let default = r.lenenc("default charset")? as u32;
                for &idx in &targets {
                    self.columns[idx].collation = Some(default);
                }
                while !r.is_empty() {
                    let n = r.lenenc("charset column index")? as usize;
                    let collation = r.lenenc("charset collation")? as u32;
                    if let Some(&idx) = targets.get(n) {
                        self.columns[idx].collation = Some(collation);
                    }
                }
            }
            // COLUMN_CHARSET / ENUM_AND_SET_COLUMN_CHARSET: one collation per column.
            3 | 11 => {
                let targets = self.indexes_where(if field == 3 {
                    is_character
                } else {
                    is_enum_or_set
                });
                for idx in targets {
                    self.columns[idx].collation = Some(r.lenenc("column collation")? as u32);
                }
            }
            // COLUMN_NAME
            4 => {
                for c in &mut self.columns {
                    c.name = Some(
                        String::from_utf8_lossy(r.lenenc_bytes("a column name")?).into_owned(),
                    );
                }
                self.has_names = true;
            }
            // SET_STR_VALUE / ENUM_STR_VALUE
            5 | 6 => {
                let wanted = if field == 5 { ty::SET } else { ty::ENUM };
                let idxs: Vec<usize> = self
                    .columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.ty == wanted)
                    .map(|(i, _)| i)
                    .collect();
                for idx in idxs {
                    let n = r.lenenc("label count")?;
                    // Every label takes at least its length byte: a count past the bytes left
                    // is a lie, refused before anything is allocated for it.
                    if n > r.remaining() as u64 {
                        return Err(Malformed(format!(
                            "{n} ENUM/SET labels announced with {} bytes left",
                            r.remaining()
                        )));
                    }
                    let mut labels = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        labels.push(r.lenenc_bytes("a label")?.to_vec());
                    }
                    self.columns[idx].labels = Some(labels);
                }
            }
            // SIMPLE_PRIMARY_KEY
            8 => {
                let mut pk = Vec::new();
                while !r.is_empty() {
                    pk.push(r.lenenc("primary key column")? as usize);
                }
                self.primary_key = Some(pk);
            }
            // PRIMARY_KEY_WITH_PREFIX: (index, prefix length) pairs.
            9 => {
                let mut pk = Vec::new();
                while !r.is_empty() {
                    pk.push(r.lenenc("primary key column")? as usize);
                    r.lenenc("primary key prefix")?;
                }
                self.primary_key = Some(pk);
            }
            // GEOMETRY_TYPE, COLUMN_VISIBILITY and anything newer: not needed to decode.
            _ => {}
        }
        if self
            .primary_key
            .as_ref()
            .is_some_and(|pk| pk.iter().any(|&i| i >= self.columns.len()))
        {
            return Err(Malformed("primary key names a column past the end".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TABLE_MAP of `shop.t (id INT UNSIGNED NOT NULL, name VARCHAR(10), e ENUM('a','b'))`
    /// with FULL metadata: signedness, charset, names, enum labels, primary key.
    fn sample() -> Vec<u8> {
        let mut b = vec![0x2a, 0, 0, 0, 0, 0, 1, 0];
        b.push(4);
        b.extend_from_slice(b"shop\0");
        b.push(1);
        b.extend_from_slice(b"t\0");
        b.push(3);
        b.extend_from_slice(&[ty::LONG, ty::VARCHAR, ty::STRING]);
        b.push(4); // metadata block length
        b.extend_from_slice(&[40, 0]); // VARCHAR max length 40 bytes, little-endian
        b.extend_from_slice(&[ty::ENUM, 1]); // STRING with real type ENUM, pack length 1
        b.push(0b110); // columns 1 and 2 nullable
        b.extend_from_slice(&[1, 1, 0x80]); // SIGNEDNESS: first numeric column unsigned
        b.extend_from_slice(&[2, 1, 45]); // DEFAULT_CHARSET utf8mb4_general_ci
        b.extend_from_slice(&[4, 10, 2, b'i', b'd', 4, b'n', b'a', b'm', b'e', 1, b'e']);
        b.extend_from_slice(&[6, 5, 2, 1, b'a', 1, b'b']);
        b.extend_from_slice(&[8, 1, 0]);
        b
    }

    #[test]
    fn parses_types_metadata_and_full_optional_metadata() {
        let m = TableMap::parse(&sample()).expect("parse");
        assert_eq!(
            (m.table_id, m.db.as_str(), m.table.as_str()),
            (42, "shop", "t")
        );
        let names: Vec<_> = m
            .columns
            .iter()
            .map(|c| c.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["id", "name", "e"]);
        assert_eq!(m.columns[0].unsigned, Some(true));
        assert!(!m.columns[0].nullable && m.columns[1].nullable);
        assert_eq!((m.columns[1].ty, m.columns[1].meta), (ty::VARCHAR, 40));
        assert_eq!(m.columns[1].collation, Some(45));
        assert_eq!(m.columns[2].ty, ty::ENUM);
        assert_eq!(
            m.columns[2].labels.as_deref(),
            Some(&[b"a".to_vec(), b"b".to_vec()][..])
        );
        assert_eq!(m.primary_key, Some(vec![0]));
        assert!(m.has_names);
    }

    #[test]
    fn truncated_events_say_what_was_cut() {
        let full = sample();
        let err = TableMap::parse(&full[..20]).expect_err("truncated");
        assert!(err.0.contains("column"), "{err}");
    }
}
