//! Entry points for the criterion benchmarks in `benches/` (not a stable API).

use crate::binary::Reader;
use crate::decoder::TableDecoder;
use crate::schema::Catalog;
use crate::tablemap::TableMap;

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
        let mut catalog = Catalog::default();
        for (id, charset) in [
            (33, "utf8mb3"),
            (45, "utf8mb4"),
            (8, "latin1"),
            (63, "binary"),
        ] {
            catalog.collations.insert(id, charset.to_owned());
        }
        let decoder = TableDecoder::build(&map, None, &catalog).map_err(|e| e.0)?;
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
