//! Every MySQL/MariaDB type of docs/event-json.md, read from a real binlog by `MySqlSource`,
//! lands in PostgreSQL by the mapping of docs/postgres.md: the target's column types, and each
//! value compared with the source's own SELECT.

use mysql_async::prelude::*;
use stream_core::StartFrom;
use stream_postgres::PostgresSink;

use crate::support::*;

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
  x'00ff10', x'deadbeef', x'',
  '{\"a\": [1, 2.5, null], \"b\": {\"c\": \"d\"}}',
  '2024-02-29', '2024-02-29 12:34:56', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.789', '-838:59:59', '-00:00:01.500000',
  'it''s', 'a,c',
  '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1', '192.168.0.1', ST_GeomFromText('POINT(1 2)')
)";

const ZERO_ROW: &str = "INSERT INTO `{db}`.all_types (id, dt, dtm, tm, en, st, yr, ts, vc) VALUES (2, '0000-00-00', '0000-00-00 00:00:00', '00:00:00', 0, '', 0, NULL, CONCAT('a', CHAR(0), 'b'))";

/// (column, PostgreSQL type, MariaDB expression, PostgreSQL expression): both print the same
/// text for the same value.
const COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("ti", "smallint", "CAST(ti AS CHAR)", "ti::text"),
    ("tiu", "smallint", "CAST(tiu AS CHAR)", "tiu::text"),
    ("si", "smallint", "CAST(si AS CHAR)", "si::text"),
    ("siu", "integer", "CAST(siu AS CHAR)", "siu::text"),
    ("mi", "integer", "CAST(mi AS CHAR)", "mi::text"),
    ("miu", "integer", "CAST(miu AS CHAR)", "miu::text"),
    ("i", "integer", "CAST(i AS CHAR)", "i::text"),
    ("iu", "bigint", "CAST(iu AS CHAR)", "iu::text"),
    ("bi", "bigint", "CAST(bi AS CHAR)", "bi::text"),
    ("biu", "numeric(20,0)", "CAST(biu AS CHAR)", "biu::text"),
    ("yr", "smallint", "CAST(yr + 0 AS CHAR)", "yr::text"),
    ("bt", "bigint", "CAST(bt + 0 AS CHAR)", "bt::text"),
    ("dc", "numeric(20,6)", "CAST(dc AS CHAR)", "dc::text"),
    ("dc0", "numeric(5,0)", "CAST(dc0 AS CHAR)", "dc0::text"),
    ("fl", "real", "CAST(fl AS CHAR)", "fl::text"),
    ("db", "double precision", "CAST(db AS CHAR)", "db::text"),
    ("vc", "text", "vc", "vc"),
    ("ch", "text", "ch", "ch"),
    ("tx", "text", "tx", "tx"),
    ("l1", "text", "CONVERT(l1 USING utf8mb4)", "l1"),
    ("u16", "text", "CONVERT(u16 USING utf8mb4)", "u16"),
    ("bn", "bytea", "HEX(bn)", "upper(encode(bn, 'hex'))"),
    ("vb", "bytea", "HEX(vb)", "upper(encode(vb, 'hex'))"),
    ("bl", "bytea", "HEX(bl)", "upper(encode(bl, 'hex'))"),
    ("js", "jsonb", "js", "js::text"),
    (
        "dt",
        "date",
        "DATE_FORMAT(dt, '%Y-%m-%d')",
        "to_char(dt, 'YYYY-MM-DD')",
    ),
    (
        "dtm",
        "timestamp(0) without time zone",
        "DATE_FORMAT(dtm, '%Y-%m-%d %H:%i:%s')",
        "to_char(dtm, 'YYYY-MM-DD HH24:MI:SS')",
    ),
    (
        "dtm6",
        "timestamp(6) without time zone",
        "DATE_FORMAT(dtm6, '%Y-%m-%d %H:%i:%s.%f')",
        "to_char(dtm6, 'YYYY-MM-DD HH24:MI:SS.US')",
    ),
    (
        "ts",
        "timestamp(3) with time zone",
        "CAST(UNIX_TIMESTAMP(ts) AS DECIMAL(20,3))",
        "extract(epoch from ts)::numeric(20,3)::text",
    ),
    (
        "tm",
        "interval",
        "CAST(TIME_TO_SEC(tm) AS DECIMAL(20,6))",
        "extract(epoch from tm)::numeric(20,6)::text",
    ),
    (
        "tm6",
        "interval",
        "CAST(TIME_TO_SEC(tm6) AS DECIMAL(20,6))",
        "extract(epoch from tm6)::numeric(20,6)::text",
    ),
    ("en", "text", "CAST(en AS CHAR)", "en"),
    (
        "st",
        "text[]",
        "CAST(st AS CHAR)",
        "array_to_string(st, ',')",
    ),
    ("u", "uuid", "CAST(u AS CHAR)", "u::text"),
    ("ip6", "inet", "CAST(ip6 AS CHAR)", "host(ip6)"),
    ("ip4", "inet", "CAST(ip4 AS CHAR)", "host(ip4)"),
    ("g", "bytea", "HEX(ST_AsWKB(g))", "upper(encode(g, 'hex'))"),
];

fn same_json(a: &str, b: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    parse(a).is_some() && parse(a) == parse(b)
}

#[tokio::test]
async fn postgres_replica_of_every_mariadb_type_matches_the_source_select() {
    replica_matches_the_source(TableKnownFrom::Ddl).await;
}

#[tokio::test]
async fn postgres_replica_of_a_mariadb_table_created_before_the_stream_keeps_its_types() {
    replica_matches_the_source(TableKnownFrom::Server).await;
}

/// Where the source learns the table's columns: the CREATE TABLE in its binlog, or the
/// server's information_schema (a table that existed before the stream started).
#[derive(PartialEq)]
enum TableKnownFrom {
    Ddl,
    Server,
}

async fn replica_matches_the_source(known_from: TableKnownFrom) {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgtypes").await;
    if known_from == TableKnownFrom::Server {
        my.query_drop(TABLE.replace("{db}", &db))
            .await
            .expect("create");
    }
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    if known_from == TableKnownFrom::Ddl {
        my.query_drop(TABLE.replace("{db}", &db))
            .await
            .expect("create");
    }
    my.query_drop(ROW.replace("{db}", &db)).await.expect("row");
    my.query_drop("SET SESSION sql_mode = ''")
        .await
        .expect("sql_mode");
    my.query_drop(ZERO_ROW.replace("{db}", &db))
        .await
        .expect("zero row");

    let pg = pg().await;
    let mut sink = PostgresSink::new("types", sink_config());
    let count_sql = format!("SELECT count(*) FROM \"{db}\".all_types");
    pump(&mut batches, &mut sink, async || {
        pg.query_one(&count_sql, &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 2)
    })
    .await;
    shutdown.cancel();

    let mut differences = Vec::new();
    for (column, pg_type, mysql_expr, pg_expr) in COLUMNS {
        let ty = texts(
            &pg,
            &format!(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = '\"{db}\".all_types'::regclass AND attname = '{column}'"
            ),
        )
        .await;
        if ty != [Some((*pg_type).to_owned())] {
            differences.push(format!("{column}: type {ty:?}, expected {pg_type}"));
        }
        for id in [1, 2] {
            let source: Option<String> = my
                .query_first(format!(
                    "SELECT {mysql_expr} FROM `{db}`.all_types WHERE id = {id}"
                ))
                .await
                .expect("source select")
                .flatten();
            let target = texts(
                &pg,
                &format!("SELECT {pg_expr} FROM \"{db}\".all_types WHERE id = {id}"),
            )
            .await;
            let target = target.into_iter().next().flatten();
            let zero_or_nul = id == 2 && matches!(*column, "dt" | "dtm" | "vc");
            let equal = match (&source, &target) {
                _ if zero_or_nul => target.is_none(),
                (Some(s), Some(t)) if *column == "js" => same_json(s, t),
                (s, t) => s == t,
            };
            if !equal {
                differences.push(format!(
                    "{column} (id {id}): source {source:?}, target {target:?}"
                ));
            }
        }
    }
    assert!(differences.is_empty(), "{differences:#?}");
    let mut nulled = sink.nulled_values();
    nulled.sort();
    let table = format!("{db}.all_types");
    assert_eq!(
        nulled,
        [(table.clone(), "nul_byte", 1), (table, "zero_date", 2)],
        "the zero date, zero datetime and the NUL byte are counted"
    );
}
