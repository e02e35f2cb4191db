//! DDL from the MySQL source applied to the target mid-stream; incompatible changes stop with
//! a named error and nothing half-applied; keyless tables refused by name or appended.

use std::time::Duration;

use mysql_async::prelude::*;
use stream_core::StartFrom;
use stream_postgres::{Keyless, PostgresError, PostgresSink, PostgresSinkConfig};

use crate::support::*;

async fn column_type(
    pg: &tokio_postgres::Client,
    db: &str,
    table: &str,
    column: &str,
) -> Option<String> {
    texts(pg, &format!(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = '\"{db}\".{table}'::regclass AND attname = '{column}' AND NOT attisdropped"
    ))
    .await
    .into_iter()
    .next()
    .flatten()
}

#[tokio::test]
async fn postgres_follows_add_rename_widen_new_table_truncate_and_keeps_dropped_columns() {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgddl").await;
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    for sql in [
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a INT, note VARCHAR(10), amount DECIMAL(5,2))",
        "INSERT INTO `{db}`.t VALUES (1, 1, 'one', 1.50)",
        "ALTER TABLE `{db}`.t ADD COLUMN extra VARCHAR(20)",
        "INSERT INTO `{db}`.t VALUES (2, 2, 'two', 2.50, 'x')",
        "ALTER TABLE `{db}`.t RENAME COLUMN a TO b",
        "INSERT INTO `{db}`.t VALUES (3, 3, 'three', 3.50, 'y')",
        "ALTER TABLE `{db}`.t MODIFY b BIGINT, MODIFY note VARCHAR(50), MODIFY amount DECIMAL(10,2)",
        "INSERT INTO `{db}`.t VALUES (4, 1099511627776, 'a much longer note', 12345678.90, 'z')",
        "CREATE TABLE `{db}`.t2 (id INT PRIMARY KEY)",
        "INSERT INTO `{db}`.t2 VALUES (7), (8)",
        "TRUNCATE TABLE `{db}`.t2",
        "INSERT INTO `{db}`.t2 VALUES (9)",
        "ALTER TABLE `{db}`.t DROP COLUMN extra",
        "INSERT INTO `{db}`.t VALUES (5, 5, 'five', 5.50)",
    ] {
        my.query_drop(sql.replace("{db}", &db))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let pg = pg().await;
    let mut sink = PostgresSink::new("ddl", sink_config());
    let t_count = format!("SELECT count(*) FROM \"{db}\".t");
    let t2_ids = format!("SELECT string_agg(id::text, ',') FROM \"{db}\".t2");
    pump(&mut batches, &mut sink, async || {
        let t = pg
            .query_one(&t_count, &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 5);
        let t2 = pg
            .query_one(&t2_ids, &[])
            .await
            .is_ok_and(|r| r.get::<_, Option<String>>(0).as_deref() == Some("9"));
        t && t2
    })
    .await;
    shutdown.cancel();
    assert_eq!(column_type(&pg, &db, "t", "a").await, None, "renamed");
    assert_eq!(
        column_type(&pg, &db, "t", "b").await.as_deref(),
        Some("bigint"),
        "widened"
    );
    assert_eq!(
        column_type(&pg, &db, "t", "note").await.as_deref(),
        Some("text")
    );
    assert_eq!(
        column_type(&pg, &db, "t", "amount").await.as_deref(),
        Some("numeric(10,2)")
    );
    assert_eq!(
        column_type(&pg, &db, "t", "extra").await.as_deref(),
        Some("text"),
        "a dropped column is kept"
    );
    let rows = texts(&pg, &format!(
        "SELECT concat_ws('|', id, b, note, amount, coalesce(extra, 'NULL')) FROM \"{db}\".t ORDER BY id"
    ))
    .await;
    let rows: Vec<String> = rows.into_iter().flatten().collect();
    assert_eq!(
        rows,
        [
            "1|1|one|1.50|NULL",
            "2|2|two|2.50|x",
            "3|3|three|3.50|y",
            "4|1099511627776|a much longer note|12345678.90|z",
            "5|5|five|5.50|NULL",
        ]
    );
}

#[tokio::test]
async fn postgres_incompatible_change_stops_with_table_column_types_and_position_and_nothing_half_applied()
 {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgbad").await;
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    my.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, note VARCHAR(10))"
    ))
    .await
    .expect("create");
    my.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, '12')"))
        .await
        .expect("insert");
    let pg = pg().await;
    let mut sink = PostgresSink::new("bad", sink_config());
    let count_sql = format!("SELECT count(*) FROM \"{db}\".t");
    pump(&mut batches, &mut sink, async || {
        pg.query_one(&count_sql, &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == 1)
    })
    .await;
    my.query_drop(format!(
        "ALTER TABLE `{db}`.t ADD COLUMN z INT, MODIFY note INT"
    ))
    .await
    .expect("alter");
    let err = loop {
        let batch = next_batch(&mut batches).await;
        if let Err(e) = sink.apply(&batch).await {
            break e;
        }
    };
    shutdown.cancel();
    assert!(
        matches!(err, PostgresError::IncompatibleChange { .. }),
        "{err}"
    );
    let text = err.to_string();
    for part in [
        &format!("{db}.t"),
        "note",
        "varchar",
        "int",
        "text in PostgreSQL",
        "integer in PostgreSQL",
        "binlog:",
        "DROP TABLE",
        "from: snapshot",
    ] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    assert_eq!(
        column_type(&pg, &db, "t", "z").await,
        None,
        "the ADD COLUMN of the same statement is rolled back"
    );
    assert_eq!(
        column_type(&pg, &db, "t", "note").await.as_deref(),
        Some("text")
    );
}

async fn keyless_run(
    db: &str,
    config: PostgresSinkConfig,
    want_rows: i64,
) -> Result<Vec<String>, PostgresError> {
    let mut my = mysql().await;
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(db, StartFrom::Position(from), None).await;
    for sql in [
        "CREATE TABLE `{db}`.log (msg VARCHAR(10))",
        "INSERT INTO `{db}`.log VALUES ('a')",
        "UPDATE `{db}`.log SET msg = 'b'",
        "DELETE FROM `{db}`.log",
    ] {
        my.query_drop(sql.replace("{db}", db)).await.expect(sql);
    }
    let pg = pg().await;
    let mut sink = PostgresSink::new("keyless", config);
    let count_sql = format!("SELECT count(*) FROM \"{db}\".log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while pg
        .query_one(&count_sql, &[])
        .await
        .map_or(0, |r| r.get::<_, i64>(0))
        < want_rows
    {
        assert!(tokio::time::Instant::now() < deadline, "no rows in time");
        let batch = next_batch(&mut batches).await;
        sink.apply(&batch).await?;
    }
    shutdown.cancel();
    let rows = texts(
        &pg,
        &format!(
            "SELECT concat_ws('|', msg, _op, _position IS NOT NULL) FROM \"{db}\".log ORDER BY ctid"
        ),
    )
    .await;
    Ok(rows.into_iter().flatten().collect())
}

#[tokio::test]
async fn postgres_keyless_table_is_refused_by_name_unless_appended() {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, "pgkeyless").await;
    let err = keyless_run(&db, sink_config(), 3)
        .await
        .expect_err("refused");
    assert!(matches!(err, PostgresError::Keyless { .. }), "{err}");
    assert!(err.to_string().contains(&format!("{db}.log")), "{err}");

    let db = fresh_db(&mut my, "pgappend").await;
    let mut config = sink_config();
    config.keyless = Keyless::Append;
    let rows = keyless_run(&db, config, 3).await.expect("appended");
    assert_eq!(rows, ["a|insert|t", "b|update|t", "b|delete|t"]);
}

#[tokio::test]
async fn postgres_added_column_with_a_constant_default_fills_the_existing_rows_like_mariadb() {
    let (db, pg) = replay_into_postgres(
        "pgdefault",
        &[
            "CREATE TABLE `{db}`.customers (id INT PRIMARY KEY, name VARCHAR(10))",
            "INSERT INTO `{db}`.customers VALUES (1, 'ann'), (2, 'bob')",
            "ALTER TABLE `{db}`.customers ADD COLUMN tier VARCHAR(5) NOT NULL DEFAULT 'std', \
             ADD COLUMN credit INT DEFAULT -3, ADD COLUMN quote VARCHAR(9) DEFAULT 'it''s', \
             ADD COLUMN seen TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP, ADD COLUMN gone INT DEFAULT NULL",
            "INSERT INTO `{db}`.customers (id, name, tier) VALUES (3, 'cy', 'gold')",
        ],
        "customers",
        3,
    )
    .await;
    let rows = texts(&pg, &format!(
        "SELECT concat_ws('|', id, tier, credit, quote, coalesce(seen::text, 'NULL'), coalesce(gone::text, 'NULL')) \
         FROM \"{db}\".customers ORDER BY id"
    ))
    .await;
    let rows: Vec<String> = rows.into_iter().flatten().collect();
    assert_eq!(
        rows[..2],
        ["1|std|-3|it's|NULL|NULL", "2|std|-3|it's|NULL|NULL"]
    );
    assert!(rows[2].starts_with("3|gold|-3|it's|"), "{rows:?}");
}

#[tokio::test]
async fn postgres_column_turned_from_int_into_varchar_at_the_source_becomes_text_keeping_its_values()
 {
    let (db, pg) = replay_into_postgres(
        "pgtotext",
        &[
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, code INT, amount DECIMAL(6,2))",
            "INSERT INTO `{db}`.t VALUES (1, 12, 1.50), (2, -7, 20.00)",
            "ALTER TABLE `{db}`.t MODIFY code VARCHAR(20), MODIFY amount VARCHAR(20)",
            "INSERT INTO `{db}`.t VALUES (3, 'A-3', 'n/a')",
        ],
        "t",
        3,
    )
    .await;
    for column in ["code", "amount"] {
        assert_eq!(
            column_type(&pg, &db, "t", column).await.as_deref(),
            Some("text"),
            "{column}"
        );
    }
    let rows = texts(
        &pg,
        &format!("SELECT concat_ws('|', id, code, amount) FROM \"{db}\".t ORDER BY id"),
    )
    .await;
    let rows: Vec<String> = rows.into_iter().flatten().collect();
    // What MariaDB shows after the same ALTER.
    assert_eq!(rows, ["1|12|1.50", "2|-7|20.00", "3|A-3|n/a"]);
}

/// Runs `statements` (`{db}` for a fresh database) at MariaDB, streams them into a new sink
/// until `db.table` has `rows` rows; the database's name and a PostgreSQL connection.
async fn replay_into_postgres(
    prefix: &str,
    statements: &[&str],
    table: &str,
    rows: i64,
) -> (String, tokio_postgres::Client) {
    let mut my = mysql().await;
    let db = fresh_db(&mut my, prefix).await;
    let from = binlog_now(&mut my).await;
    let (mut batches, shutdown) = mysql_stream(&db, StartFrom::Position(from), None).await;
    for sql in statements {
        my.query_drop(sql.replace("{db}", &db))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let pg = pg().await;
    let mut sink = PostgresSink::new(prefix, sink_config());
    let count_sql = format!("SELECT count(*) FROM \"{db}\".{table}");
    pump(&mut batches, &mut sink, async || {
        pg.query_one(&count_sql, &[])
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) == rows)
    })
    .await;
    shutdown.cancel();
    (db, pg)
}
