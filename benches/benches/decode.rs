//! Row decoding per type family, straight from row-image bytes as the binlog source sees them.
//! Run: `cargo bench -p ultimate-stream-benches --bench decode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stream_mysql::bench_support::RowDecoderBench;

const ROWS: usize = 1000;

/// A TABLE_MAP body for `bench.t` with these (type, metadata bytes, unsigned) columns and FULL
/// optional metadata: signedness, default charset utf8mb4, column names.
fn table_map(columns: &[(u8, &[u8], bool)]) -> Vec<u8> {
    let mut b = vec![1, 0, 0, 0, 0, 0, 1, 0, 5];
    b.extend_from_slice(b"bench\0");
    b.push(1);
    b.extend_from_slice(b"t\0");
    b.push(columns.len() as u8);
    b.extend(columns.iter().map(|c| c.0));
    let meta: Vec<u8> = columns.iter().flat_map(|c| c.1.iter().copied()).collect();
    b.push(meta.len() as u8);
    b.extend_from_slice(&meta);
    b.extend(std::iter::repeat_n(0u8, columns.len().div_ceil(8)));
    // SIGNEDNESS: one bit per numeric column (these benches put numeric columns first).
    let numeric: Vec<bool> = columns
        .iter()
        .filter(|c| matches!(c.0, 1 | 2 | 3 | 8 | 9 | 246 | 4 | 5 | 13))
        .map(|c| c.2)
        .collect();
    let mut bits = vec![0u8; numeric.len().div_ceil(8).max(1)];
    for (i, u) in numeric.iter().enumerate() {
        if *u {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
    }
    b.push(1);
    b.push(bits.len() as u8);
    b.extend_from_slice(&bits);
    b.extend_from_slice(&[2, 1, 45]);
    let mut names = Vec::new();
    for i in 0..columns.len() {
        let n = format!("c{i}");
        names.push(n.len() as u8);
        names.extend_from_slice(n.as_bytes());
    }
    b.push(4);
    b.push(names.len() as u8);
    b.extend_from_slice(&names);
    b
}

fn rows(image: &[u8], columns: usize) -> Vec<u8> {
    let nulls = vec![0u8; columns.div_ceil(8)];
    let mut out = Vec::with_capacity(ROWS * (image.len() + nulls.len()));
    for _ in 0..ROWS {
        out.extend_from_slice(&nulls);
        out.extend_from_slice(image);
    }
    out
}

fn family(c: &mut Criterion, name: &str, columns: &[(u8, &[u8], bool)], image: &[u8]) {
    let bench = RowDecoderBench::from_table_map(&table_map(columns)).expect("table map");
    let data = rows(image, columns.len());
    assert_eq!(
        bench.decode_all(&data),
        Ok(ROWS),
        "{name}: the image must decode"
    );
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function(name, |b| b.iter(|| bench.decode_all(&data)));
    group.finish();
}

fn integers(c: &mut Criterion) {
    // INT, BIGINT UNSIGNED, SMALLINT, TINYINT, MEDIUMINT
    let cols: &[(u8, &[u8], bool)] = &[
        (3, &[], false),
        (8, &[], true),
        (2, &[], false),
        (1, &[], false),
        (9, &[], false),
    ];
    let mut image = Vec::new();
    image.extend_from_slice(&123_456i32.to_le_bytes());
    image.extend_from_slice(&u64::MAX.to_le_bytes());
    image.extend_from_slice(&(-5i16).to_le_bytes());
    image.push(7);
    image.extend_from_slice(&[0x00, 0x00, 0x80]);
    family(c, "integers_5_columns", cols, &image);
}

fn decimals_and_floats(c: &mut Criterion) {
    // DECIMAL(14,4) 1234567890.1234, DOUBLE, FLOAT
    let cols: &[(u8, &[u8], bool)] = &[(246, &[14, 4], false), (5, &[8], false), (4, &[4], false)];
    let mut image = vec![0x81, 0x0D, 0xFB, 0x38, 0xD2, 0x04, 0xD2];
    image.extend_from_slice(&1.25e-3f64.to_le_bytes());
    image.extend_from_slice(&3.5f32.to_le_bytes());
    family(c, "decimal_double_float", cols, &image);
}

fn temporals(c: &mut Criterion) {
    // DATETIME(6), TIMESTAMP(3), DATE, TIME
    let cols: &[(u8, &[u8], bool)] = &[
        (18, &[6], false),
        (17, &[3], false),
        (10, &[], false),
        (19, &[0], false),
    ];
    let ym: u64 = 2024 * 13 + 2;
    let packed = ((((ym << 5) | 29) << 17) | (12 << 12) | (34 << 6) | 56) + 0x80_0000_0000;
    let mut image = packed.to_be_bytes()[3..].to_vec();
    image.extend_from_slice(&[0x01, 0xe2, 0x40]);
    image.extend_from_slice(&1_709_210_096u32.to_be_bytes());
    image.extend_from_slice(&789u16.to_be_bytes());
    let date = (2024u32 << 9) | (2 << 5) | 29;
    image.extend_from_slice(&date.to_le_bytes()[..3]);
    image.extend_from_slice(&[0x80, 0xc8, 0xb8]);
    family(c, "datetime_timestamp_date_time", cols, &image);
}

fn strings(c: &mut Criterion) {
    // VARCHAR(255) utf8mb4 x2 (max 1020 bytes: 2-byte length), BLOB (binary, 2-byte length)
    let cols: &[(u8, &[u8], bool)] = &[(15, &[0xfc, 0x03], false), (15, &[0xfc, 0x03], false)];
    let mut image = Vec::new();
    for s in ["Ada Lovelace <ada@example.org>", "Grüße aus Köln, 東京 😀"] {
        image.extend_from_slice(&(s.len() as u16).to_le_bytes());
        image.extend_from_slice(s.as_bytes());
    }
    family(c, "varchar_utf8mb4_2_columns", cols, &image);
}

mod harness {
    #![allow(missing_docs)]
    use super::*;
    criterion_group!(benches, integers, decimals_and_floats, temporals, strings);
}
criterion_main!(harness::benches);
