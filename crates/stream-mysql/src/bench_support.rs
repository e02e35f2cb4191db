//! Entry points for the criterion benchmarks in `benches/` and the fuzz targets in `fuzz/`
//! (not a stable API): the decoding code of the binlog source, reachable with plain bytes.

use stream_core::Row;

use crate::binary::Reader;
use crate::decoder::TableDecoder;
use crate::schema::Catalog;
use crate::tablemap::TableMap;

/// Collation ids of the usual character sets, one or more per decoder family (a real catalog
/// reads them all from `information_schema.COLLATIONS`).
const COLLATIONS: [(u32, &str); 27] = [
    (1, "big5"),
    (5, "latin1"),
    (7, "koi8r"),
    (8, "latin1"),
    (9, "latin2"),
    (11, "ascii"),
    (12, "ujis"),
    (13, "sjis"),
    (19, "euckr"),
    (24, "gb2312"),
    (25, "greek"),
    (28, "gbk"),
    (33, "utf8mb3"),
    (35, "ucs2"),
    (45, "utf8mb4"),
    (46, "utf8mb4"),
    (47, "latin1"),
    (51, "cp1251"),
    (54, "utf16"),
    (56, "utf16le"),
    (60, "utf32"),
    (63, "binary"),
    (83, "utf8mb3"),
    (192, "utf8mb3"),
    (224, "utf8mb4"),
    (248, "gb18030"),
    (255, "utf8mb4"),
];

fn catalog_with_collations(mariadb: bool) -> Catalog {
    let mut catalog = Catalog {
        mariadb,
        ..Catalog::default()
    };
    for (id, charset) in COLLATIONS {
        catalog.collations.insert(id, charset.to_owned());
    }
    catalog
}

/// Decodes row images of one table exactly as the binlog source does.
#[derive(Debug)]
pub struct RowDecoderBench {
    decoder: TableDecoder,
    present: Vec<u8>,
}

impl RowDecoderBench {
    /// From a TABLE_MAP event body with FULL metadata (names, signedness, collations 33/45/63).
    pub fn from_table_map(table_map: &[u8]) -> Result<Self, String> {
        let map = TableMap::parse(table_map).map_err(|e| e.0)?;
        let decoder =
            TableDecoder::build(&map, None, &catalog_with_collations(false)).map_err(|e| e.0)?;
        let present = vec![0xff; map.columns.len().div_ceil(8)];
        Ok(Self { decoder, present })
    }

    /// Decodes every row image in `rows` (all columns present); returns how many.
    pub fn decode_all(&self, rows: &[u8]) -> Result<usize, String> {
        let mut r = Reader::new(rows);
        let mut n = 0;
        while !r.is_empty() {
            let row = self
                .decoder
                .decode_row(&mut r, &self.present, self.decoder.columns.len())
                .map_err(|e| format!("{}: {}", e.column, e.reason))?;
            std::hint::black_box(row);
            n += 1;
        }
        Ok(n)
    }
}

/// The table definitions the binlog source keeps, built by applying DDL statements as it
/// applies those of QUERY events (every table tracked).
#[derive(Debug, Clone)]
pub struct DdlCatalog {
    catalog: Catalog,
}

impl DdlCatalog {
    /// An empty catalog of a MariaDB (`mariadb`) or MySQL server.
    pub fn new(mariadb: bool) -> Self {
        Self {
            catalog: catalog_with_collations(mariadb),
        }
    }

    /// Applies one statement, run in database `default_db`; says what it reported, if anything.
    pub fn apply(&mut self, sql: &str, default_db: Option<&str>) -> Option<String> {
        crate::ddl::apply(sql, default_db, |_, _| true, &mut self.catalog)
            .map(|(namespace, kind)| format!("{namespace}: {kind:?}"))
    }

    /// How many tables have a known definition.
    pub fn table_count(&self) -> usize {
        self.catalog.tables.len()
    }

    /// Checks what every known definition must satisfy: its primary key names its own
    /// columns, and it survives being saved in a checkpoint and read back unchanged.
    pub fn check_invariants(&self) -> Result<(), String> {
        for ((db, table), schema) in &self.catalog.tables {
            if let Some(&i) = schema
                .primary_key
                .iter()
                .find(|&&i| i >= schema.columns.len())
            {
                return Err(format!(
                    "{db}.{table}: primary key column {i} of {} columns",
                    schema.columns.len()
                ));
            }
        }
        let saved = self.catalog.to_state();
        let mut restored = catalog_with_collations(self.catalog.mariadb);
        restored.restore(&saved)?;
        if restored.to_state() != saved {
            return Err(format!(
                "the saved definitions read back differently:\n{saved}\n{}",
                restored.to_state()
            ));
        }
        Ok(())
    }
}

/// A TABLE_MAP resolved against a catalog as the binlog source resolves it: column names from
/// the map (FULL metadata) or, without them (MINIMAL, NO_LOG), from the catalog's definition.
#[derive(Debug)]
pub struct BoundTable {
    decoder: TableDecoder,
}

impl BoundTable {
    /// Parses a TABLE_MAP event body (after the common header, without checksum) and builds
    /// its decoder.
    pub fn bind(table_map: &[u8], catalog: &DdlCatalog) -> Result<Self, String> {
        let map = TableMap::parse(table_map).map_err(|e| e.0)?;
        let schema = catalog.catalog.table(&map.db, &map.table);
        let decoder = TableDecoder::build(&map, schema.map(AsRef::as_ref), &catalog.catalog)
            .map_err(|e| e.0)?;
        Ok(Self { decoder })
    }

    /// The table's column count.
    pub fn column_count(&self) -> usize {
        self.decoder.columns.len()
    }

    /// Decodes the row images of a rows event: `present` is its columns bitmap (one bit per
    /// column of the table; FULL images have all set, MINIMAL and NOBLOB ones fewer), `images`
    /// one image after another, each a null bitmap over the present columns, then values.
    pub fn decode_images(&self, present: &[u8], images: &[u8]) -> Result<Vec<Row>, String> {
        let columns = self.decoder.columns.len();
        if present.len() < columns.div_ceil(8) {
            return Err(format!(
                "the columns bitmap has {} bytes for {columns} columns",
                present.len()
            ));
        }
        let present_count = (0..columns)
            .filter(|i| present[i / 8] & (1 << (i % 8)) != 0)
            .count();
        let mut r = Reader::new(images);
        let mut rows = Vec::new();
        while !r.is_empty() {
            let row = self
                .decoder
                .decode_row(&mut r, present, present_count)
                .map_err(|e| format!("{}: {}", e.column, e.reason))?;
            rows.push(row);
        }
        Ok(rows)
    }

    /// The primary-key columns of a decoded row, as change events carry them.
    pub fn key_of(&self, row: &Row) -> Option<Row> {
        self.decoder.key_of(row)
    }
}

/// The TABLE_MAP of a table `j.j` with one column `j` of MySQL's binary JSON type (4-byte
/// length prefix).
const JSON_TABLE_MAP: &[u8] = &[
    1, 0, 0, 0, 0, 0, // table id
    0, 0, // flags
    1, b'j', 0, // database name
    1, b'j', 0,   // table name
    1,   // column count
    245, // JSON
    1, 4, // metadata: the length prefix takes 4 bytes
    1, // null bitmap: nullable
    4, 2, 1, b'j', // COLUMN_NAME: "j"
];

/// A MySQL `JSON` column, to decode binary JSON values through the row decoder exactly as a
/// row image holds them.
#[derive(Debug)]
pub struct BinaryJsonColumn {
    table: BoundTable,
}

impl BinaryJsonColumn {
    /// The column.
    pub fn new() -> Result<Self, String> {
        let table = BoundTable::bind(JSON_TABLE_MAP, &DdlCatalog::new(false))?;
        Ok(Self { table })
    }

    /// Decodes one binary JSON value (MySQL's `JSONB` format) to its JSON text.
    pub fn decode(&self, value: &[u8]) -> Result<String, String> {
        let len = u32::try_from(value.len()).map_err(|_| "value over 4 GiB".to_owned())?;
        let mut image = Vec::with_capacity(value.len() + 5);
        image.push(0); // null bitmap: not NULL
        image.extend_from_slice(&len.to_le_bytes());
        image.extend_from_slice(value);
        let rows = self.table.decode_images(&[1], &image)?;
        match rows.first().and_then(|row| row.get("j")) {
            Some(stream_core::Value::Json(json)) => Ok(json.as_str().to_owned()),
            other => Err(format!("decoded as {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_json_decodes_through_the_row_decoder() {
        let column = BinaryJsonColumn::new().expect("column");
        // Small array of two int16 values, inlined: [1, -2].
        let array = [0x02, 2, 0, 10, 0, 0x05, 1, 0, 0x05, 0xfe, 0xff];
        assert_eq!(column.decode(&array).as_deref(), Ok("[1,-2]"));
        assert!(column.decode(&[0x02, 9, 0]).is_err(), "truncated");
    }

    #[test]
    fn tables_without_column_names_take_them_from_the_ddl() {
        let mut catalog = DdlCatalog::new(true);
        let reported = catalog.apply(
            "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(8))",
            Some("d"),
        );
        assert_eq!(reported.as_deref(), Some("d.t: Create"));
        catalog.check_invariants().expect("invariants");
        // NO_LOG metadata: types and metadata only.
        let map = [
            7, 0, 0, 0, 0, 0, 0, 0, 1, b'd', 0, 1, b't', 0, 2, 3, 15, 2, 32, 0, 0b10,
        ];
        let table = BoundTable::bind(&map, &catalog).expect("bound");
        assert_eq!(table.column_count(), 2);
        let image = [0, 7, 0, 0, 0, 2, b'h', b'i'];
        let rows = table.decode_images(&[0b11], &image).expect("decoded");
        assert_eq!(
            format!("{:?}", rows),
            r#"[{"id": Int(7), "v": String("hi")}]"#
        );
        assert_eq!(
            format!("{:?}", table.key_of(&rows[0])),
            r#"Some({"id": Int(7)})"#
        );
        assert!(
            table.decode_images(&[], &image).is_err(),
            "a columns bitmap too short for the table is refused"
        );
        assert!(
            BoundTable::bind(&map, &DdlCatalog::new(true)).is_err(),
            "no definition"
        );
    }

    /// The `binlog_rows` fuzz target's seeds: a flags byte, then length-prefixed DDL
    /// (`db\0statement...`), TABLE_MAP and columns bitmap, then row images.
    fn seed_parts(seed: &[u8]) -> (bool, String, Vec<String>, [&[u8]; 3]) {
        let mut rest = &seed[1..];
        let mut chunk = || {
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let (c, r) = rest[2..].split_at(len);
            rest = r;
            c
        };
        let (ddl, table_map, present) = (chunk(), chunk(), chunk());
        let ddl = String::from_utf8_lossy(ddl).into_owned();
        let mut parts = ddl.split('\0').map(str::to_owned);
        let db = parts.next().unwrap_or_default();
        (
            seed[0] & 1 != 0,
            db,
            parts.collect(),
            [table_map, present, rest],
        )
    }

    #[test]
    fn the_recorded_fuzz_seeds_decode_with_and_without_column_names() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/binlog_rows");
        let (mut full, mut no_log) = (0, 0);
        for entry in std::fs::read_dir(dir).expect("seeds") {
            let seed = std::fs::read(entry.expect("entry").path()).expect("seed");
            let (mariadb, db, statements, [table_map, present, images]) = seed_parts(&seed);
            let mut catalog = DdlCatalog::new(mariadb);
            for sql in &statements {
                catalog.apply(sql, Some(&db));
            }
            let table = BoundTable::bind(table_map, &catalog).expect("binds");
            let rows = table.decode_images(present, images).expect("decodes");
            assert!(!rows.is_empty());
            let names_in_map = TableMap::parse(table_map).expect("parses").has_names;
            *if names_in_map { &mut full } else { &mut no_log } += 1;
        }
        assert!(
            full >= 3 && no_log >= 3,
            "{full} FULL and {no_log} NO_LOG seeds"
        );
    }
}
