//! Hostile or corrupt events, crafted byte by byte: every one is an error naming the table
//! (or what could be read) and the position, never a panic, an abort or a huge allocation.

use proptest::prelude::*;

use super::tests::{Recorded, config as fx_config};
use super::*;
use crate::tablemap::ty;

const TABLE_ID: u8 = 42;

fn lenenc(n: u64, out: &mut Vec<u8>) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// A TABLE_MAP of `shop.t`: column types with their metadata bytes, every column nullable,
/// then `optional` metadata fields.
fn table_map(columns: &[(u8, &[u8])], optional: &[u8]) -> Vec<u8> {
    let mut b = vec![TABLE_ID, 0, 0, 0, 0, 0, 1, 0];
    b.push(4);
    b.extend_from_slice(b"shop\0");
    b.push(1);
    b.extend_from_slice(b"t\0");
    lenenc(columns.len() as u64, &mut b);
    b.extend(columns.iter().map(|(t, _)| *t));
    let meta: Vec<u8> = columns
        .iter()
        .flat_map(|(_, m)| m.iter().copied())
        .collect();
    lenenc(meta.len() as u64, &mut b);
    b.extend(meta);
    b.extend(vec![0xff; columns.len().div_ceil(8)]);
    b.extend_from_slice(optional);
    b
}

/// Optional metadata field `kind` holding `value`.
fn field(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut b = vec![kind];
    lenenc(value.len() as u64, &mut b);
    b.extend_from_slice(value);
    b
}

/// `shop.t (id INT, v VARCHAR(40), j JSON, e ENUM('a','b'))` with column names.
fn good_map() -> Vec<u8> {
    let names = [b"id".as_slice(), b"v", b"j", b"e"]
        .iter()
        .flat_map(|n| {
            let mut b = vec![n.len() as u8];
            b.extend_from_slice(n);
            b
        })
        .collect::<Vec<u8>>();
    let mut optional = field(4, &names);
    optional.extend(field(6, &[2, 1, b'a', 1, b'b']));
    table_map(
        &[
            (ty::LONG, &[]),
            (ty::VARCHAR, &[40, 0]),
            (ty::JSON, &[4]),
            (ty::STRING, &[ty::ENUM, 1]),
        ],
        &optional,
    )
}

/// A WRITE_ROWS_V1 event for `TABLE_ID` with `columns` columns, all present, and `rows`.
fn write_rows(columns: u64, rows: &[u8]) -> Vec<u8> {
    let mut b = vec![TABLE_ID, 0, 0, 0, 0, 0, 0, 0];
    lenenc(columns, &mut b);
    b.extend(vec![0xff; (columns as usize).div_ceil(8)]);
    b.extend_from_slice(rows);
    b
}

/// One row of `good_map`: id 1, v "ab", j `json` (binary), e 'a'.
fn row(json: &[u8]) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[2, b'a', b'b']);
    b.extend_from_slice(&(json.len() as u32).to_le_bytes());
    b.extend_from_slice(json);
    b.push(1);
    b
}

fn config() -> MySqlConfig {
    MySqlConfig::from_url("mysql://u@h/shop").expect("url")
}

/// Feeds `events` (kind, data) to a fresh tracker; the first error, or the changes.
fn feed(events: &[(u8, Vec<u8>)]) -> Result<Vec<SourceEvent>, SourceError> {
    let start = Resume {
        file: FilePos {
            file: "mysql-bin.000001".into(),
            offset: 1000,
            skip: 0,
        },
        gtid: None,
    };
    let mut tracker = Tracker::new(&start, false, None);
    let mut catalog = Catalog::default();
    let mut out = Vec::new();
    let mut end = 1000;
    for (kind, data) in events {
        end += 19 + data.len() as u32;
        let event = Recorded::new(*kind, end, 0, data.clone());
        tracker.handle(event.raw(), &config(), &mut catalog, &mut out)?;
    }
    Ok(out)
}

fn refused(events: &[(u8, Vec<u8>)]) -> String {
    let err = feed(events).expect_err("refused").to_string();
    assert!(
        err.contains("binlog:mysql-bin.000001:"),
        "names the position: {err}"
    );
    err
}

#[test]
fn a_well_formed_pair_decodes() {
    let json = [0x04, 0x01]; // true
    let out = feed(&[
        (event_type::TABLE_MAP, good_map()),
        (event_type::WRITE_ROWS_V1, write_rows(4, &row(&json))),
    ])
    .expect("decodes");
    let [SourceEvent::Change(change)] = out.as_slice() else {
        panic!("{out:?}")
    };
    let text = change.to_json();
    assert!(
        text.contains(r#""after":{"id":1,"v":"ab","j":true,"e":"a"}"#),
        "{text}"
    );
}

#[test]
fn label_counts_past_the_event_are_refused_before_allocating() {
    for count in [1u64 << 32, 1 << 60, u64::MAX] {
        let mut labels = Vec::new();
        lenenc(count, &mut labels);
        labels.extend_from_slice(&[1, b'a']);
        let map = table_map(&[(ty::STRING, &[ty::ENUM, 1])], &field(6, &labels));
        assert!(map.len() < 60, "a small event: {} bytes", map.len());
        let err = refused(&[(event_type::TABLE_MAP, map)]);
        assert!(
            err.contains("shop.t") && err.contains("labels announced"),
            "{err}"
        );
    }
}

#[test]
fn column_counts_and_lengths_past_the_event_are_refused() {
    let mut huge = good_map();
    huge[17..18].copy_from_slice(&[0xfe]);
    huge.splice(18..18, (1u64 << 60).to_le_bytes());
    let err = refused(&[(event_type::TABLE_MAP, huge)]);
    assert!(err.contains("shop.t"), "{err}");
    for cut in [3, 10, 16, 20, 30] {
        refused(&[(event_type::TABLE_MAP, good_map()[..cut].to_vec())]);
    }
    let mut long_text = row(&[0x04, 0x01]);
    long_text[5] = 250; // VARCHAR length past the end of the row
    let err = refused(&[
        (event_type::TABLE_MAP, good_map()),
        (event_type::WRITE_ROWS_V1, write_rows(4, &long_text)),
    ]);
    assert!(
        err.contains("shop.t.v") && err.contains("a text value"),
        "{err}"
    );
}

#[test]
fn rows_with_another_column_count_than_their_table_map_are_refused() {
    for columns in [1, 3, 5, 9, 64] {
        let err = refused(&[
            (event_type::TABLE_MAP, good_map()),
            (event_type::WRITE_ROWS_V1, write_rows(columns, &[0; 16])),
        ]);
        assert!(
            err.contains("shop.t") && err.contains(&format!("has {columns} columns")),
            "{err}"
        );
    }
    let err = refused(&[(event_type::WRITE_ROWS_V1, write_rows(4, &[0]))]);
    assert!(err.contains("table id 42") && err.contains("without a preceding TABLE_MAP"));
}

#[test]
fn rows_whose_images_hold_no_column_are_refused_instead_of_read_forever() {
    let mut rows = write_rows(4, &row(&[0x04, 0x01]));
    rows[9] = 0; // the columns bitmap: no column present, so a row takes no bytes
    let err = refused(&[
        (event_type::TABLE_MAP, good_map()),
        (event_type::WRITE_ROWS_V1, rows),
    ]);
    assert!(
        err.contains("shop.t") && err.contains("hold no column"),
        "{err}"
    );
}

#[test]
fn unknown_column_types_and_impossible_metadata_are_refused() {
    for (column, meta) in [
        (200u8, &[][..]),
        (ty::NEWDECIMAL, &[70, 2][..]),
        (ty::DATETIME2, &[9][..]),
        (ty::BIT, &[7, 200][..]),
        (ty::BLOB, &[9][..]),
        (ty::STRING, &[ty::SET, 9][..]),
    ] {
        let map = table_map(&[(column, meta)], &field(4, &[1, b'c']));
        let err = refused(&[(event_type::TABLE_MAP, map)]);
        assert!(err.contains("schema of shop.t"), "{err}");
    }
}

#[test]
fn json_nested_a_thousand_deep_is_an_error_naming_the_column() {
    let mut inner = vec![0u8, 0, 4, 0];
    for _ in 1..1000 {
        let mut outer = vec![1, 0];
        outer.extend_from_slice(&((7 + inner.len()) as u16).to_le_bytes());
        outer.extend_from_slice(&[0x02, 7, 0]);
        outer.extend(inner);
        inner = outer;
    }
    let mut json = vec![0x02];
    json.extend(inner);
    let err = refused(&[
        (event_type::TABLE_MAP, good_map()),
        (event_type::WRITE_ROWS_V1, write_rows(4, &row(&json))),
    ]);
    assert!(
        err.contains("shop.t.j") && err.contains("nested deeper than 100"),
        "{err}"
    );
}

#[test]
fn truncated_events_of_every_kind_are_errors() {
    use event_type::*;
    for kind in [
        ROTATE,
        MARIADB_GTID,
        MARIADB_GTID_LIST,
        QUERY,
        TABLE_MAP,
        WRITE_ROWS_V1,
        UPDATE_ROWS_V2,
        DELETE_ROWS_V1,
    ] {
        refused(&[(kind, vec![1, 2, 3])]);
    }
    let mut gtids = vec![0xff, 0xff, 0xff, 0x0f];
    gtids.extend_from_slice(&[0; 16]);
    refused(&[(MARIADB_GTID_LIST, gtids)]);
}

/// Event kinds the tracker reads, for the random-bytes properties.
const KINDS: [u8; 14] = [
    event_type::QUERY,
    event_type::ROTATE,
    event_type::XID,
    event_type::TABLE_MAP,
    event_type::WRITE_ROWS_V1,
    event_type::UPDATE_ROWS_V1,
    event_type::DELETE_ROWS_V1,
    event_type::WRITE_ROWS_V2,
    event_type::UPDATE_ROWS_V2,
    event_type::DELETE_ROWS_V2,
    event_type::MYSQL_GTID,
    event_type::MARIADB_GTID,
    event_type::MARIADB_GTID_LIST,
    event_type::FORMAT_DESCRIPTION,
];

proptest! {
    #[test]
    fn random_events_never_panic(
        events in prop::collection::vec(
            (prop::sample::select(KINDS.to_vec()), prop::collection::vec(any::<u8>(), 0..96)),
            1..8,
        )
    ) {
        let _ = feed(&events);
    }

    #[test]
    fn corrupted_table_maps_and_rows_never_panic(
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        in_rows in any::<bool>(),
    ) {
        let mut map = good_map();
        let mut rows = write_rows(4, &row(&[0x04, 0x01]));
        let target = if in_rows { &mut rows } else { &mut map };
        let i = at.index(target.len());
        target[i] = byte;
        let _ = feed(&[(event_type::TABLE_MAP, map), (event_type::WRITE_ROWS_V1, rows)]);
    }

    #[test]
    fn the_recorded_stream_with_one_byte_changed_never_panics(
        event in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut events = super::tests::recorded(include_bytes!("../../tests/fixtures/binlog/by_file.bin"));
        let e = event.index(events.len());
        if !events[e].data.is_empty() {
            let i = at.index(events[e].data.len());
            events[e].data[i] = byte;
        }
        let start = Resume {
            file: FilePos { file: "mysql-bin.000001".into(), offset: 163_456_682, skip: 0 },
            gtid: None,
        };
        let mut tracker = Tracker::new(&start, true, None);
        let mut catalog = Catalog::default();
        for event in &events {
            if tracker.handle(event.raw(), &fx_config(), &mut catalog, &mut Vec::new()).is_err() {
                break;
            }
        }
    }
}
