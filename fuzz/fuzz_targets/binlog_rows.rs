//! A TABLE_MAP event and the row images of a rows event, decoded as the binlog source decodes
//! them, in both metadata modes: with column names in the TABLE_MAP (FULL) or, without them
//! (MINIMAL, NO_LOG), with the definition that DDL statements left in the catalog.
//!
//! Input: a flags byte (bit 0: MariaDB), a chunk of DDL (`db\0statement\0...`), a chunk with the
//! TABLE_MAP body, a chunk with the columns bitmap, then row images. Whatever decodes must print
//! as the event JSON contract says; nothing may panic, hang or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_core::{Decimal, Value};
use stream_mysql::bench_support::{BoundTable, DdlCatalog};
use ultimate_stream_fuzz::{Frames, ddl_statements, on_worker_stack};

#[allow(dead_code)]
#[path = "../../crates/stream-core/tests/json_shape.rs"]
mod json_shape;

fn check_decoded(value: &Value) {
    match value {
        Value::Decimal(d) => assert!(Decimal::parse(d.as_str()).is_ok(), "decimal {d:?}"),
        Value::Array(items) => items.iter().for_each(check_decoded),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    on_worker_stack(move || {
        let mut input = Frames::new(&data);
        let mariadb = input.byte() & 1 != 0;
        let (db, statements) = ddl_statements(input.chunk());
        let table_map = input.chunk();
        let present = input.chunk();
        let images = input.rest();
        let mut catalog = DdlCatalog::new(mariadb);
        for sql in &statements {
            catalog.apply(sql, (!db.is_empty()).then_some(db.as_str()));
        }
        let Ok(table) = BoundTable::bind(table_map, &catalog) else {
            return;
        };
        let Ok(rows) = table.decode_images(present, images) else {
            return;
        };
        for row in &rows {
            let mut buf = Vec::new();
            stream_core::json::write_row(&mut buf, row);
            let text = String::from_utf8(buf).expect("the encoder writes UTF-8");
            let json = json_shape::Ordered::parse(&text).unwrap_or_else(|e| panic!("{e}"));
            json_shape::check_row(row, &json).unwrap_or_else(|e| panic!("{e}"));
            row.iter().for_each(|(_, v)| check_decoded(v));
            if let Some(key) = table.key_of(row) {
                assert!(key.len() <= row.len(), "a key of {key:?} for {row:?}");
            }
        }
    });
});
