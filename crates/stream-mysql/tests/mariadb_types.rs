//! Every column type of docs/event-json.md, decoded from the binlog in both metadata modes.

use crate::support::*;
use mysql_async::prelude::*;

const TABLE: &str = "CREATE TABLE `{db}`.all_types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  yr YEAR, bt BIT(12),
  dc DECIMAL(20,6), dc0 DECIMAL(5,0), fl FLOAT, db DOUBLE,
  vc VARCHAR(40), ch CHAR(5), tx TEXT, l1 VARCHAR(20) CHARACTER SET latin1, u16 VARCHAR(10) CHARACTER SET ucs2,
  bn BINARY(3), vb VARBINARY(10), bl BLOB,
  js JSON,
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, tm6 TIME(6),
  en ENUM('new','paid','it''s'), st SET('a','b','c'),
  u UUID, ip6 INET6, ip4 INET4, g GEOMETRY
)";

const ROW: &str = "INSERT INTO `{db}`.all_types VALUES (
  1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615, 2024, b'101010101010',
  -12345678901234.123456, 99999, 3.5, -1.25e-300,
  'héllo wörld 😀', 'ab', 'long text', 'café', 'Ω',
  x'ff0000', x'deadbeef', x'',
  '{\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}',
  '2024-02-29', '2024-02-29 12:34:56', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.789', '-838:59:59', '-00:00:01.500000',
  'it''s', 'a,c',
  '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1', '192.168.0.1', ST_GeomFromText('POINT(1 2)')
)";

const ZERO_ROW: &str = "INSERT INTO `{db}`.all_types (id, dt, dtm, tm, en, st, yr, ts) VALUES (2, '0000-00-00', '0000-00-00 00:00:00', '00:00:00', 0, '', 0, NULL)";

/// (column, expected JSON) for row 1.
const EXPECTED: &[(&str, &str)] = &[
    ("ti", "-128"),
    ("tiu", "255"),
    ("si", "-32768"),
    ("siu", "65535"),
    ("mi", "-8388608"),
    ("miu", "16777215"),
    ("i", "-2147483648"),
    ("iu", "4294967295"),
    ("bi", "-9223372036854775808"),
    ("biu", "18446744073709551615"),
    ("yr", "2024"),
    ("bt", "2730"),
    ("dc", "\"-12345678901234.123456\""),
    ("dc0", "\"99999\""),
    ("fl", "3.5"),
    ("db", "-1.25e-300"),
    ("vc", "\"héllo wörld 😀\""),
    ("ch", "\"ab\""),
    ("tx", "\"long text\""),
    ("l1", "\"café\""),
    ("u16", "\"Ω\""),
    ("bn", "\"/wAA\""),
    ("vb", "\"3q2+7w==\""),
    ("bl", "\"\""),
    ("js", r#"{"a":[1,2.5,null],"b":{"c":"d"}}"#),
    ("dt", "\"2024-02-29\""),
    ("dtm", "\"2024-02-29T12:34:56\""),
    ("dtm6", "\"2024-02-29T12:34:56.000001\""),
    ("ts", "\"2024-02-29T12:34:56.789Z\""),
    ("tm", "\"-838:59:59\""),
    ("tm6", "\"-00:00:01.500000\""),
    ("en", "\"it's\""),
    ("st", "[\"a\",\"c\"]"),
    ("u", "\"123e4567-e89b-12d3-a456-426614174000\""),
    ("ip6", "\"2001:db8::1\""),
    ("ip4", "\"192.168.0.1\""),
    // WKB of POINT(1 2): little-endian, type 1, x = 1.0, y = 2.0
    ("g", "\"AQEAAAAAAAAAAADwPwAAAAAAAABA\""),
];

/// `column: expected X, got Y` for every column of row 1 that differs from [`EXPECTED`].
fn differences_from_expected(row: &stream_core::ChangeEvent) -> Vec<String> {
    EXPECTED
        .iter()
        .filter_map(|(column, expected)| {
            let got = field(row, column);
            (got != *expected).then(|| format!("{column}: expected {expected}, got {got}"))
        })
        .collect()
}

async fn every_type_decodes_exactly(mode: &str) {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "types").await;
    c.query_drop(TABLE.replace("{db}", &db))
        .await
        .expect("create table");
    // Zero dates need a permissive sql_mode; TIMESTAMP values are written in UTC.
    c.query_drop("SET SESSION sql_mode = '', time_zone = '+00:00'")
        .await
        .expect("session");
    let start = now(&mut c).await;
    with_metadata(mode, || async {
        c.query_drop(ROW.replace("{db}", &db))
            .await
            .expect("insert");
        c.query_drop(ZERO_ROW.replace("{db}", &db))
            .await
            .expect("insert zero row");
    })
    .await;
    let events = changes(config(&url(), &format!("{db}.*")), start, 2).await;
    let row = &events[0];
    assert_eq!(
        row.key.as_ref().map(|k| k.len()),
        Some(1),
        "{}",
        row.to_json()
    );
    let wrong = differences_from_expected(row);
    assert!(
        wrong.is_empty(),
        "binlog_row_metadata={mode}:\n{}",
        wrong.join("\n")
    );
    let zero = &events[1];
    for (column, expected) in [
        ("dt", "\"0000-00-00\""),
        ("dtm", "\"0000-00-00T00:00:00\""),
        ("tm", "\"00:00:00\""),
        ("en", "\"\""),
        ("st", "[]"),
        ("yr", "0"),
        ("ts", "null"),
        ("vc", "null"),
    ] {
        assert_eq!(field(zero, column), expected, "{mode}: {column}");
    }
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_every_type_decodes_exactly_with_full_metadata() {
    every_type_decodes_exactly("FULL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_every_type_decodes_exactly_with_minimal_metadata() {
    every_type_decodes_exactly("MINIMAL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_every_type_decodes_exactly_without_metadata() {
    every_type_decodes_exactly("NO_LOG").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_every_type_reads_the_same_through_the_snapshot() {
    let mut c = conn().await;
    let db = fresh_db(&mut c, "snaptypes").await;
    c.query_drop(TABLE.replace("{db}", &db))
        .await
        .expect("create table");
    c.query_drop("SET SESSION sql_mode = '', time_zone = '+00:00'")
        .await
        .expect("session");
    c.query_drop(ROW.replace("{db}", &db))
        .await
        .expect("insert");
    c.query_drop(ZERO_ROW.replace("{db}", &db))
        .await
        .expect("insert zero row");
    let got = collect(
        config(&url(), &format!("{db}.*")),
        stream_core::StartFrom::Snapshot,
        2,
        std::time::Duration::from_secs(20),
    )
    .await;
    assert!(got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.changes.len(), 2);
    let row = &got.changes[0];
    assert_eq!(row.op, stream_core::Op::Insert);
    let wrong = differences_from_expected(row);
    assert!(wrong.is_empty(), "snapshot path:\n{}", wrong.join("\n"));
    for (column, expected) in [
        ("dt", "\"0000-00-00\""),
        ("dtm", "\"0000-00-00T00:00:00\""),
        ("en", "\"\""),
        ("st", "[]"),
        ("ts", "null"),
    ] {
        assert_eq!(
            field(&got.changes[1], column),
            expected,
            "snapshot: {column}"
        );
    }
}
