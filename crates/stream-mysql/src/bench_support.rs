//! Entry points for the criterion benchmarks in `benches/` and the fuzz targets in `fuzz/`
//! (not a stable API): the decoding code of the binlog source, reachable with plain bytes.

use stream_core::{MariaDbGtidList, Position, Row, SourceEvent};

use crate::MySqlConfig;
use crate::binary::Reader;
use crate::decoder::TableDecoder;
use crate::schema::Catalog;
use crate::start::{FilePos, Resume};
use crate::tablemap::TableMap;
use crate::tracker::{RawEvent, Tracker};

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
        if present_count == 0 {
            // As the tracker refuses them: images of no column take no bytes, rows never end.
            return Err("the images hold no column".into());
        }
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

/// The binlog source's event handling (its tracker) with no server: events in, change and
/// schema events out, exactly as the source turns the events of its binlog stream into them.
pub struct BinlogReplay {
    tracker: Tracker,
    catalog: Catalog,
    config: MySqlConfig,
    /// The end position of the last event fed (events follow each other in one file).
    end: u32,
}

impl std::fmt::Debug for BinlogReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogReplay")
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl BinlogReplay {
    /// A stream of every table of a MariaDB (`mariadb`) or MySQL server, requested from
    /// `mysql-bin.000001:4` or, with `by_gtid`, from GTID state `0-1-1`; `skip` rows of the
    /// first transaction were delivered before (a resume in the middle of a transaction);
    /// `checksum`: the server sends CRC32 checksums (the first, fake ROTATE still has its own).
    pub fn new(mariadb: bool, by_gtid: bool, skip: u64, checksum: bool) -> Result<Self, String> {
        let file = FilePos {
            file: if by_gtid { "" } else { "mysql-bin.000001" }.into(),
            offset: 4,
            skip,
        };
        let gtid = if by_gtid {
            let state: MariaDbGtidList = "0-1-1".parse().map_err(|e| format!("{e}"))?;
            Some((state, skip))
        } else {
            None
        };
        let config = MySqlConfig::from_url("mysql://fuzz@127.0.0.1").map_err(|e| e.to_string())?;
        Ok(Self {
            tracker: Tracker::new(&Resume { file, gtid }, checksum, None),
            catalog: catalog_with_collations(mariadb),
            config,
            end: 4,
        })
    }

    /// Handles one event: its type code and its data (after the 19-byte header, without
    /// checksum); what it makes, or the error that would end the stream.
    pub fn feed(&mut self, kind: u8, data: &[u8]) -> Result<Vec<SourceEvent>, String> {
        let size = u32::try_from(data.len())
            .ok()
            .and_then(|n| n.checked_add(19))
            .ok_or("event over 4 GiB")?;
        self.end = self.end.saturating_add(size);
        let event = RawEvent {
            kind,
            timestamp: 1_700_000_000,
            server_id: 1,
            size,
            end: self.end,
            flags: 0,
            data,
        };
        let mut out = Vec::new();
        self.tracker
            .handle(event, &self.config, &mut self.catalog, &mut out)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Where the stream would resume after everything fed.
    pub fn resume_position(&self) -> Position {
        self.tracker.resume().position()
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

    /// The `binlog_rows` fuzz target's inputs (as its `Frames` reads them): a flags byte, then
    /// length-prefixed DDL (`db\0statement...`), TABLE_MAP and columns bitmap, then row images.
    fn seed_parts(seed: &[u8]) -> (bool, String, Vec<String>, [&[u8]; 3]) {
        let flags = seed.first().copied().unwrap_or(0);
        let mut rest = seed.get(1..).unwrap_or_default();
        let mut chunk = || {
            let byte = |i: usize| rest.get(i).copied().unwrap_or(0);
            let len = usize::from(u16::from_le_bytes([byte(0), byte(1)]));
            let body = rest.get(2..).unwrap_or_default();
            let (c, r) = body.split_at(len.min(body.len()));
            rest = r;
            c
        };
        let (ddl, table_map, present) = (chunk(), chunk(), chunk());
        let ddl = String::from_utf8_lossy(ddl).into_owned();
        let mut parts = ddl.split('\0').map(str::to_owned);
        let db = parts.next().unwrap_or_default();
        let statements = parts.filter(|s| !s.is_empty()).collect();
        (flags & 1 != 0, db, statements, [table_map, present, rest])
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
                catalog.apply(sql, (!db.is_empty()).then_some(db.as_str()));
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

    #[test]
    fn a_replayed_stream_turns_ddl_table_maps_and_rows_into_events() {
        let mut replay = BinlogReplay::new(true, false, 0, false).expect("replay");
        let mut query = vec![0; 8]; // thread id, exec time
        query.push(1); // database name length
        query.extend_from_slice(&[0, 0, 0, 0]); // error code, no status variables
        query.extend_from_slice(b"d\0CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(8))");
        let schema = replay.feed(2, &query).expect("DDL");
        assert!(
            matches!(schema.as_slice(), [SourceEvent::Schema(_)]),
            "{schema:?}"
        );
        let map = [
            7, 0, 0, 0, 0, 0, 0, 0, 1, b'd', 0, 1, b't', 0, 2, 3, 15, 2, 32, 0, 0b10,
        ];
        assert!(replay.feed(19, &map).expect("TABLE_MAP").is_empty());
        let mut rows = vec![7, 0, 0, 0, 0, 0, 0, 0, 2, 0b11];
        rows.extend_from_slice(&[0, 7, 0, 0, 0, 2, b'h', b'i']);
        // Rows outside BEGIN/COMMIT: the transaction starts at its TABLE_MAP (offset 87).
        let changes = replay.feed(23, &rows).expect("WRITE_ROWS");
        let [SourceEvent::Change(change)] = changes.as_slice() else {
            panic!("{changes:?}")
        };
        assert_eq!(
            change.to_json(),
            r#"{"source":"mysql","db":"d","table":"t","op":"insert","key":{"id":7},"before":null,"after":{"id":7,"v":"hi"},"position":"binlog:mysql-bin.000001:87+1","ts_ms":1700000000000,"txn":null}"#
        );
        assert!(
            replay.feed(23, &rows[..12]).is_err(),
            "a truncated rows event"
        );
    }

    #[test]
    fn the_recorded_binlog_streams_replay_into_change_events() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/seeds/binlog_events"
        );
        let mut seeds = 0;
        for entry in std::fs::read_dir(dir).expect("seeds") {
            let path = entry.expect("entry").path();
            let seed = std::fs::read(&path).expect("seed");
            let mut replay = BinlogReplay::new(
                seed[0] & 1 != 0,
                seed[0] & 2 != 0,
                u64::from(seed[1] & 3),
                seed[0] & 4 != 0,
            )
            .expect("replay");
            let (mut rest, mut changes) = (&seed[2..], 0);
            while let [kind, a, b, tail @ ..] = rest {
                let (data, after) = tail.split_at(usize::from(u16::from_le_bytes([*a, *b])));
                let events = replay
                    .feed(*kind, data)
                    .unwrap_or_else(|e| panic!("{path:?}: {e}"));
                changes += events
                    .iter()
                    .filter(|e| matches!(e, SourceEvent::Change(_)))
                    .count();
                rest = after;
            }
            assert!(changes >= 4, "{path:?}: {changes} change events");
            seeds += 1;
        }
        assert!(seeds >= 3);
    }

    fn found(target: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let dir = format!(
            "{}/../../fuzz/artifacts-found/{target}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_dir(dir)
            .expect("fuzz/artifacts-found")
            .map(|e| {
                let path = e.expect("entry").path();
                let bytes = std::fs::read(&path).expect("reproducer");
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn inputs_the_fuzzers_found_are_refused_not_crashes() {
        let column = BinaryJsonColumn::new().expect("column");
        for (path, bytes) in found("binary_json") {
            if let Ok(text) = column.decode(&bytes) {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{path:?} decoded to invalid JSON: {e}"));
            }
        }
        for (_, bytes) in found("binlog_rows") {
            let (mariadb, db, statements, [table_map, present, images]) = seed_parts(&bytes);
            let mut catalog = DdlCatalog::new(mariadb);
            for sql in &statements {
                catalog.apply(sql, (!db.is_empty()).then_some(db.as_str()));
            }
            if let Ok(table) = BoundTable::bind(table_map, &catalog) {
                // Must end (the endless case allocated until killed).
                let _ = table.decode_images(present, images);
            }
        }
    }
}
